#!/usr/bin/env bash
# make bench: measures logbook on this machine and rewrites docs/BENCHMARKS.md.
# 1. `logbook dev` on its embedded broker (kfake) and embedded Postgres,
#    driven by `logbook loadgen` (loopback only, bounded).
# 2. When Java and Maven are present: a real Apache Kafka 4.x broker
#    (deploy/local/kafka.sh), Kafka's own ProducerPerformance for the raw
#    append rate, and the same logbook run against that broker, as ratios.
# 3. The Go micro-benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

COMMANDS="${BENCH_COMMANDS:-20000}"
CONCURRENCY="${BENCH_CONCURRENCY:-64}"
WORKSPACES="${BENCH_WORKSPACES:-50}"
PERF_RECORDS="${BENCH_PERF_RECORDS:-300000}"
out=docs/BENCHMARKS.md
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  bash deploy/local/kafka.sh stop --dir "$tmp/kafka" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/logbook" ./cmd/logbook

# load NAME [ENV...]: runs logbook dev (the binary $SERVER, default this
# tree's) with ENV, a warm-up and a measured loadgen run (always this tree's
# loadgen); leaves the JSON figures in $tmp/NAME.json.
load() {
  local name=$1; shift
  # The per-key rate limit is off: one loadgen key would measure the limiter.
  env LOGBOOK_ADMIN_KEY= LOGBOOK_DATABASE_URL= LOGBOOK_KAFKA_BROKERS= LOGBOOK_LOG_LEVEL=warn LOGBOOK_RATE_PER_KEY=-1 \
    LOGBOOK_MASTER_KEY= LOGBOOK_MASTER_KEY_FILE= LOGBOOK_SIGNING_KEY= LOGBOOK_SIGNING_KEY_FILE= "$@" \
    "${SERVER:-$tmp/logbook}" dev --data "$tmp/$name" --http 127.0.0.1:0 >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pid=$!
  for _ in $(seq 1 600); do grep -q '^ready$' "$tmp/$name.out" && break; sleep 0.2; done
  grep -q '^ready$' "$tmp/$name.out" || { cat "$tmp/$name.err" >&2; exit 1; }
  local url key
  url=$(sed -n 's/^http: //p' "$tmp/$name.out")
  key=$(sed -n 's/^admin key (shown once, keep it): //p' "$tmp/$name.out")
  # Task creates only, as every figure before the lifecycle mix; the check
  # is make test's job, the benchmark measures.
  run() { "$tmp/logbook" loadgen --url "$url" --key "$key" --workspaces "$WORKSPACES" --commands "$COMMANDS" --concurrency "$CONCURRENCY" \
    --mix create=100 --check=false --progress=false --json; }
  run >/dev/null # warm-up: Postgres caches, broker segments, connection pools
  run >"$tmp/$name.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
field() { python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]], 1))" "$tmp/$1.json" "$2"; }

load kfake

# The 10,000-workspace targets (BENCH_SCALE=0 leaves them out).
scale=""
if [ "${BENCH_SCALE:-1}" != 0 ]; then
  mkdir -p "$tmp/scale"
  scale=$(bash deploy/bench-scale.sh "$tmp/logbook" "$tmp/scale")
fi

# Data protection's cost: the same load on logbook built from the last
# revision before sensitive fields were sealed and commands signed.
BASELINE=${BENCH_PROTECTION_BASELINE:-480550f}
baseline=""
if git cat-file -e "$BASELINE^{commit}" 2>/dev/null; then
  git worktree add -q --detach "$tmp/baseline-src" "$BASELINE"
  (cd "$tmp/baseline-src" && go build -o "$tmp/logbook-baseline" ./cmd/logbook)
  git worktree remove --force "$tmp/baseline-src"
  SERVER="$tmp/logbook-baseline" load baseline
  baseline=1
fi

real=""
if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
  bootstrap=$(bash deploy/local/kafka.sh start --nodes 1 --dir "$tmp/kafka" | tail -n 1)
  # Raw append rate: Kafka's own producer, acks=all, records the size of a
  # logbook command envelope.
  bash deploy/local/kafka.sh tool --dir "$tmp/kafka" -- org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
    --create --topic bench-raw --partitions 6 --replication-factor 1 >/dev/null
  timeout 600 bash deploy/local/kafka.sh perf --dir "$tmp/kafka" -- --topic bench-raw --num-records "$PERF_RECORDS" \
    --record-size 400 --throughput -1 --command-property bootstrap.servers="$bootstrap" acks=all linger.ms=5 \
    >"$tmp/perf.txt" 2>&1 || true
  raw=$(grep -E 'records sent' "$tmp/perf.txt" | tail -n 1 | sed -E 's/^[0-9]+ records sent, ([0-9]+)[0-9.]* records\/sec.*/\1/')
  load real LOGBOOK_KAFKA_BROKERS="$bootstrap"
  bash deploy/local/kafka.sh stop --dir "$tmp/kafka" >/dev/null 2>&1 || true
  real=1
fi

# A failing micro-benchmark fails the run, never drops out of the table.
if ! micro_out=$(go test -run '^$' -bench . -benchmem -count 1 ./domain/ ./schemas/ ./internal/fieldcrypt/ ./internal/signing/ 2>&1 &&
  go test -run '^$' -bench '^Benchmark(Remember|WindowMemory)$' -benchmem -count 1 ./consumers/decider/ 2>&1); then
  echo "$micro_out" >&2
  echo "bench: a micro-benchmark failed" >&2
  exit 1
fi
micro=$(grep -E '^Benchmark' <<<"$micro_out" || true)

# The AI agent worker draining a backlog queued during a provider outage.
AI_TASKS="${BENCH_AI_TASKS:-10000}"
AI_RATE="${BENCH_AI_RATE:-200}"
BENCH_AI_TASKS=$AI_TASKS BENCH_AI_RATE=$AI_RATE go test -run '^$' -bench '^BenchmarkAIDrainAfterOutage$' -benchtime 1x \
  -timeout 30m ./cmd/logbook/ >"$tmp/ai.txt" 2>&1 || { cat "$tmp/ai.txt" >&2; exit 1; }
ai() { grep -E '^BenchmarkAIDrainAfterOutage' "$tmp/ai.txt" | tr -s ' \t' '\n' | grep -B1 -x "$1" | head -1; }
# A blue-green rebuild of the read models from a decided log, beside raw COPY.
REBUILD_EVENTS="${BENCH_REBUILD_EVENTS:-1000000}"
BENCH_REBUILD_WORKSPACES=10000 BENCH_REBUILD_TASKS=$((REBUILD_EVENTS - 10000)) go test -run '^$' -bench '^BenchmarkRebuild$' \
  -benchtime 1x -timeout 40m ./projections/ >"$tmp/rebuild.txt" 2>&1 || { cat "$tmp/rebuild.txt" >&2; exit 1; }
rebuild() { grep -E '^BenchmarkRebuild' "$tmp/rebuild.txt" | tr -s ' \t' '\n' | grep -B1 -x "$1" | head -1; }
# Recovery: the decider state rebuilt from the events, and an export and import of the log.
go test -run '^$' -bench '^BenchmarkRebuildState$' -benchtime 1x -timeout 30m ./consumers/decider/ >"$tmp/state.txt" 2>&1 ||
  { cat "$tmp/state.txt" >&2; exit 1; }
go test -run '^$' -bench '^BenchmarkExportImport$' -benchtime 1x -timeout 30m ./internal/logexport/ >"$tmp/export.txt" 2>&1 ||
  { cat "$tmp/export.txt" >&2; exit 1; }
metric() { grep -E "^$1" "$2" | tr -s ' \t' '\n' | grep -B1 -x "$3" | head -1; }
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
mem=$(free -g 2>/dev/null | awk '/^Mem:/ {print $2 " GiB"}')

# The soak's section (make soak) is kept as it is.
soak=$(sed -n '/<!-- soak:begin -->/,/<!-- soak:end -->/p' "$out" 2>/dev/null || true)

{
cat <<MD
# Benchmarks

Regenerate with \`make bench\` (deploy/bench.sh). Figures are from one run on
the machine below; the machine is shared and noisy, so compare ratios, not
absolutes.

- Machine: $(nproc) cores (${cpu:-unknown CPU}), ${mem:-unknown memory}, $(go version | awk '{print $3}')
- Date: $(date -u +%Y-%m-%d)
- Load: \`logbook loadgen --workspaces $WORKSPACES --commands $COMMANDS --concurrency $CONCURRENCY\`
  (task.create, no Prefer: wait), after one warm-up run, against \`logbook dev\`
  (all roles in one process, embedded Postgres 15 with fsync on, 6 partitions,
  per-key rate limit off so one loadgen key measures the system, not the limiter).

## Commands through \`logbook dev\` on the embedded broker (kfake)

| measure | value |
|---|---|
| accepted (202 from the API, appended with acks=all) | $(field kfake accepted_per_s) commands/s |
| end to end (decided, in Kafka, projected into Postgres) | $(field kfake end_to_end_per_s) commands/s |
| accept latency p50 / p99 | $(field kfake p50_ms) ms / $(field kfake p99_ms) ms |
| refused (429/503) / failed | $(field kfake refused) / $(field kfake failed) |
$scale
MD
if [ -n "$baseline" ]; then
cat <<MD

## What data protection costs

The same load against \`logbook dev\` built from $BASELINE, the last revision
before task input (here $( python3 -c "import json; print(json.load(open('$tmp/kfake.json')).get('input_bytes', 256))" ) bytes) was sealed
(AES-256-GCM under the workspace's data key) and every command signed
(Ed25519 over the batch's Merkle root) and verified by the decider.

| measure | without | with | ratio |
|---|---|---|---|
| accepted, commands/s | $(field baseline accepted_per_s) | $(field kfake accepted_per_s) | $(python3 -c "print(round($(field kfake accepted_per_s)/$(field baseline accepted_per_s), 3))") |
| end to end, commands/s | $(field baseline end_to_end_per_s) | $(field kfake end_to_end_per_s) | $(python3 -c "print(round($(field kfake end_to_end_per_s)/$(field baseline end_to_end_per_s), 3))") |
| accept latency p99, ms | $(field baseline p99_ms) | $(field kfake p99_ms) | $(python3 -c "print(round($(field kfake p99_ms)/$(field baseline p99_ms), 3))") |

Per command, from the micro-benchmarks below: sealing a 256-byte field
(BenchmarkSeal256B), a share of one batch signature at the API
(BenchmarkSignBatchOf64, per command; one command alone: BenchmarkSignAlone)
and the decider's verification (BenchmarkVerifyInBatchesOf64; alone:
BenchmarkVerifyEachSignedAlone).
MD
fi
if [ -n "$real" ]; then
cat <<MD

## Side by side on a real Apache Kafka 4.x broker

One KRaft node on loopback (\`deploy/local/kafka.sh start --nodes 1\`); the
same \`logbook dev\` pointed at it with \`LOGBOOK_KAFKA_BROKERS\`.

| measure | records/s | ratio to raw append |
|---|---|---|
| raw append: \`ProducerPerformance --num-records $PERF_RECORDS --record-size 400 acks=all\` | ${raw:-n/a} | 1 |
| logbook accepted (HTTP → commands topic) | $(field real accepted_per_s) | $(python3 -c "print(round($(field real accepted_per_s)/${raw:-0}, 3) if ${raw:-0} else 'n/a')") |
| logbook end to end (→ decider transaction → Postgres) | $(field real end_to_end_per_s) | $(python3 -c "print(round($(field real end_to_end_per_s)/${raw:-0}, 3) if ${raw:-0} else 'n/a')") |

Accept latency p50 / p99 on the real broker: $(field real p50_ms) ms / $(field real p99_ms) ms;
refused (429/503) / failed: $(field real refused) / $(field real failed).
Each logbook command costs one HTTP request, one acks=all append, one
transactional decide (event + result + state record + offsets) and one bulk
projection; the raw producer batches records with no request per record.
MD
fi
cat <<MD

## AI agent worker: draining a backlog after a provider outage

\`BENCH_AI_TASKS=$AI_TASKS BENCH_AI_RATE=$AI_RATE go test -run '^\$' -bench '^BenchmarkAIDrainAfterOutage\$' -benchtime 1x ./cmd/logbook/\`:
$AI_TASKS AI tasks queued in 10 workspaces (one holds 55%, nine hold 5% each,
interleaved) while the fake provider answers 5xx; then it is healthy with a
limit of $AI_RATE requests/s (429 + Retry-After above it). \`logbook dev --roles
api,decider,projector\` plus \`logbook serve --roles agent\` in its own process
(default concurrency 16, 4 per workspace, window 256; breaker delay 2 s, ramp 5 s).

| measure | value |
|---|---|
| drain time (provider back → last answer) | $(ai drain_s) s |
| answers/s (provider limit $AI_RATE/s) | $(ai answers/s) |
| agent worker RSS during the outage / peak | $(ai worker_rss_outage_KiB) KiB / $(ai worker_peak_rss_KiB) KiB |
| largest share one workspace took while all ten had tasks, over the fair share (1 = fair; FIFO would give 5.5) | $(ai max_share_per_fair_share) |
| the nine small workspaces done / the big one done (after the first answer) | $(ai small_workspaces_done_s) s / $(ai big_workspace_done_s) s |
| the small ones done, over when an equal share of the measured rate would have done them (1 = fair; first come, first served gives about the drain time over it) | $(ai small_done_per_fair) |

## Rebuilding the read models (\`logbook projections rebuild\`)

\`BENCH_REBUILD_WORKSPACES=10000 BENCH_REBUILD_TASKS=$((REBUILD_EVENTS - 10000)) go test -run '^\$' -bench '^BenchmarkRebuild\$' -benchtime 1x ./projections/\`:
a decider first turns 10000 workspace creates and $((REBUILD_EVENTS - 10000)) task creates into a log of
$REBUILD_EVENTS events and as many results; then new read models are filled from offset 0 in their own
schema (the event trail with every hash checked, workspaces, tasks, command outcomes) and switched in.
Beside it, the ceiling: raw COPY of the same event-trail rows into a copy of the events table in the same Postgres.

| measure | value |
|---|---|
| events/s into fresh read models (fill, results alongside) | $(rebuild events/s) |
| records/s (events and results) | $(rebuild records/s) |
| raw COPY of event-trail rows, rows/s | $(rebuild copy_rows/s) |
| events/s over raw COPY rows/s (each event also writes a task row and a command row) | $(rebuild ratio_to_copy) |
| time the live projection was held at the switch | $(rebuild hold_ms) ms |
| fill time for $REBUILD_EVENTS events | $(python3 -c "print(round($REBUILD_EVENTS/$(rebuild events/s), 1))") s |

## Recovery (docs/RECOVERY.md)

| measure | value |
|---|---|
| \`logbook decider rebuild-state\`, 100000 events (10000 workspaces): \`go test -run '^\$' -bench '^BenchmarkRebuildState\$' -benchtime 1x ./consumers/decider/\` | $(metric BenchmarkRebuildState "$tmp/state.txt" events/s) events/s, $(metric BenchmarkRebuildState "$tmp/state.txt" seconds) s |
| \`logbook log export\`, 100000 events and 100000 results: \`go test -run '^\$' -bench '^BenchmarkExportImport\$' -benchtime 1x ./internal/logexport/\` | $(metric BenchmarkExportImport "$tmp/export.txt" export_records/s) records/s |
| \`logbook log import\` of that export into an empty cluster (every file and chain checked first) | $(metric BenchmarkExportImport "$tmp/export.txt" import_records/s) records/s |

Reference points on this class of machine (from the project brief): a bare
chi JSON handler serves about 37k req/s; batched Postgres upserts reach 51k
rows/s; one row per committed transaction 1.8k/s.

## Micro-benchmarks

\`go test -run '^\$' -bench . -benchmem ./domain/ ./schemas/ ./internal/fieldcrypt/ ./internal/signing/\`
and \`go test -run '^\$' -bench '^Benchmark(Remember|WindowMemory)\$' -benchmem ./consumers/decider/\`
(the idempotency window: one command's cost in a full window, and the
heap per remembered command)

\`\`\`
$micro
\`\`\`
MD
[ -z "$soak" ] || printf '\n%s\n' "$soak"
} >"$out"
echo "wrote $out"
cat "$out"
