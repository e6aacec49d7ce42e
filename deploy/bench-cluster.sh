#!/usr/bin/env bash
# bench-cluster.sh [WORKDIR]: logbook as a fleet on a real three-node Apache
# Kafka 4.x cluster (KRaft, loopback), for docs/SCALING.md: three processes
# per role (api, decider, projector), sharing the work through their consumer
# groups, one Postgres (the embedded one of the first API process, a `logbook
# dev --roles api` pointed at the cluster), driven by three loadgen clients,
# one per API process, each over its own third of the workspaces, with the
# checker on. Prints a markdown section on stdout; progress on stderr.
# Loopback only; every step is bounded by loadgen's --duration/--timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

WS="${BENCH_CLUSTER_WORKSPACES:-9999}"
CONC="${BENCH_CLUSTER_CONCURRENCY:-128}" # per loadgen client
SECS="${BENCH_CLUSTER_SECONDS:-60}"
PARTS="${BENCH_CLUSTER_PARTITIONS:-12}"
log() { echo "bench-cluster: $*" >&2; }

bash deploy/local/ensure-tools.sh --java >&2
tmp=${1:-$(mktemp -d "${TMPDIR:-/tmp}/logbook-bench-cluster.XXXXXX")}
mkdir -p "$tmp"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash deploy/local/kafka.sh stop --dir "$tmp/kafka" >/dev/null 2>&1 || true
}
trap cleanup EXIT

go build -o "$tmp/logbook" ./cmd/logbook
bin=$tmp/logbook
log "starting a 3-node Kafka cluster"
bootstrap=$(bash deploy/local/kafka.sh start --nodes 3 --dir "$tmp/kafka" | tail -n 1)

started() { # started OUT: waits for "ready", prints the URL
  for _ in $(seq 1 900); do grep -q '^ready$' "$1" && break; sleep 0.2; done
  grep -q '^ready$' "$1" || { log "did not start: $1"; cat "${1%.out}.err" >&2; exit 1; }
  sed -n 's/^http: //p' "$1"
}

common=(LOGBOOK_KAFKA_BROKERS="$bootstrap" LOGBOOK_PARTITIONS="$PARTS" LOGBOOK_LOG_LEVEL=warn LOGBOOK_RATE_PER_KEY=-1)
# The first API process holds the database and makes the keys every process shares.
env "${common[@]}" LOGBOOK_ADMIN_KEY= LOGBOOK_DATABASE_URL= LOGBOOK_MASTER_KEY= LOGBOOK_MASTER_KEY_FILE= \
  LOGBOOK_SIGNING_KEY= LOGBOOK_SIGNING_KEY_FILE= \
  "$bin" dev --data "$tmp/dev" --http 127.0.0.1:0 --roles api >"$tmp/api-0.out" 2>"$tmp/api-0.err" &
pids+=($!)
urls=("$(started "$tmp/api-0.out")")
key=$(sed -n 's/^admin key (shown once, keep it): //p' "$tmp/api-0.out")
fleet=("${common[@]}" LOGBOOK_DATABASE_URL="$(cat "$tmp/dev/postgres.url")" LOGBOOK_ADMIN_KEY="$key"
  LOGBOOK_MASTER_KEY_FILE="$tmp/dev/master.key" LOGBOOK_SIGNING_KEY_FILE="$tmp/dev/signing.key")
for role in api decider projector; do
  for i in 1 2 3; do
    [ "$role" = api ] && [ "$i" = 3 ] && continue # the dev process is the third
    env "${fleet[@]}" "$bin" serve --roles "$role" --http 127.0.0.1:0 >"$tmp/$role-$i.out" 2>"$tmp/$role-$i.err" &
    pids+=($!)
    u=$(started "$tmp/$role-$i.out")
    [ "$role" = api ] && urls+=("$u")
  done
done
log "fleet up: ${#pids[@]} logbook processes; APIs ${urls[*]}"

# Each client: its own third of the workspaces (made first, one task each), then a closed loop.
per=$((WS / 3))
for i in 0 1 2; do
  env LOGBOOK_KAFKA_BROKERS="$bootstrap" LOGBOOK_PARTITIONS="$PARTS" "$bin" loadgen --url "${urls[$i]}" --key "$key" \
    --workspaces "$per" --commands "$per" --concurrency "$CONC" --mix create=100 --progress=false --check=false --json \
    --report "$tmp/spaces-$i-report.json" >"$tmp/spaces-$i.json" 2>"$tmp/spaces-$i.err" &
  lp[$i]=$!
done
for i in 0 1 2; do wait "${lp[$i]}" || { cat "$tmp/spaces-$i.err" >&2; exit 1; }; done
log "workspaces made; a closed loop for ${SECS}s from 3 clients, checked"
for i in 0 1 2; do
  env LOGBOOK_KAFKA_BROKERS="$bootstrap" LOGBOOK_PARTITIONS="$PARTS" "$bin" loadgen --url "${urls[$i]}" --key "$key" \
    --reuse "$tmp/spaces-$i-report.json" --commands 0 --duration "${SECS}s" --concurrency "$CONC" --mix create=100 \
    --progress=false --json --check-wait 10m --timeout 30m >"$tmp/closed-$i.json" 2>"$tmp/closed-$i.err" &
  lp[$i]=$!
done
status=0
for i in 0 1 2; do wait "${lp[$i]}" || status=1; done
for i in 0 1 2; do [ -s "$tmp/closed-$i.json" ] || { cat "$tmp/closed-$i.err" >&2; exit 1; }; done

python3 - "$tmp" "$WS" "$CONC" "$SECS" "$PARTS" "$status" <<'PY'
import json, sys
tmp, ws, conc, secs, parts, status = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
runs = [json.load(open(f"{tmp}/closed-{i}.json")) for i in range(3)]
tot = lambda k: sum(r.get(k, 0) or 0 for r in runs)
worst = lambda k: max(r.get(k, 0) or 0 for r in runs)
clean = all(r.get("check_ok") for r in runs)
print(f"""
## Three processes per role on a real 3-node Apache Kafka cluster

`deploy/bench-cluster.sh`: Apache Kafka 4.3.1, 3 KRaft nodes on loopback (replication 3, min.insync.replicas 2),
{parts} partitions; 3 API, 3 decider and 3 projector processes (one of the APIs a `logbook dev --roles api` holding
the embedded Postgres the fleet shares); 3 loadgen clients, one per API, each over its own {ws // 3} workspaces,
{conc} connections each, task.create with 256-byte sealed inputs, a closed loop for {secs} s, then the checker over
the log and the read models. All of it on the same 2 cores as the brokers and Postgres.

| measure | value |
|---|---|
| accepted (sum of the 3 clients) | {tot('accepted_per_s'):.1f} commands/s |
| end to end (decided, projected, visible through the query API) | {tot('end_to_end_per_s'):.1f} commands/s |
| accept latency p99 (worst client) | {worst('p99_ms'):.1f} ms |
| refused (429/503) / failed | {tot('refused')} / {tot('failed')} |
| checker: lost / duplicated / seq gaps / read-model mismatches | {tot('lost')} / {tot('duplicated')} / {tot('seq_gaps')} / {tot('read_model_mismatches')} ({'clean' if clean and status == 0 else 'NOT clean'}) |
""")
PY
