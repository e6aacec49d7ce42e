#!/usr/bin/env bash
# bench-scale.sh LOGBOOK_BINARY WORKDIR: the 10,000-workspace targets of
# make bench. Prints a markdown section on stdout; progress on stderr.
#  1. a bare chi JSON handler (logbook loadgen bare) under the same client;
#  2. logbook dev: 10,000 workspaces, a closed loop for BENCH_SCALE_SECONDS;
#     its end-to-end rate is the sustainable rate S;
#  3. an open loop at S/2 (accept latency from each command's due time);
#  4. an open loop at 2×S with the checker on, then S/2 again (recovery);
#  5. the workspaces filled to BENCH_SCALE_TASKS tasks each; peak RSS.
# Loopback only; every step is bounded by loadgen's --duration/--timeout.
set -euo pipefail
bin=$1
dir=$2
WS="${BENCH_SCALE_WORKSPACES:-10000}"
CONC="${BENCH_SCALE_CONCURRENCY:-512}"
SECONDS_RUN="${BENCH_SCALE_SECONDS:-60}"
TASKS="${BENCH_SCALE_TASKS:-100}"
log() { echo "bench-scale: $*" >&2; }
num() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); v=d.get(sys.argv[2], 0); print(round(v, 1) if isinstance(v, float) else v)" "$dir/$1.json" "$2"; }
calc() { python3 -c "print($1)"; }

started() { # started OUT: waits for "ready", sets url
  for _ in $(seq 1 600); do grep -q '^ready$' "$1" && break; sleep 0.2; done
  grep -q '^ready$' "$1" || { log "did not start: $1"; exit 1; }
  url=$(sed -n 's/^http: //p' "$1")
}
lg() { # lg NAME ARGS...: one loadgen run; its JSON summary in $dir/NAME.json
  local name=$1; shift
  log "$name: loadgen $*"
  "$bin" loadgen --url "$url" --key "$key" --concurrency "$CONC" --mix create=100 --progress=false --json \
    --timeout 60m "$@" >"$dir/$name.json" 2>"$dir/$name.err" || {
    # A failed check or drain still leaves its figures; anything else ends the run.
    [ -s "$dir/$name.json" ] || { cat "$dir/$name.err" >&2; exit 1; }
  }
}

# 1. The ceiling: the same client against a bare handler.
"$bin" loadgen bare --http 127.0.0.1:0 >"$dir/bare.out" 2>&1 &
barepid=$!
started "$dir/bare.out"
key=bare
lg bare --workspaces "$WS" --commands 0 --duration "${SECONDS_RUN}s" --check=false
kill "$barepid"; wait "$barepid" 2>/dev/null || true

# 2. logbook dev, every guarantee on; the per-key rate limit off so one
# loadgen key measures the system, not the limiter.
env LOGBOOK_ADMIN_KEY= LOGBOOK_DATABASE_URL= LOGBOOK_KAFKA_BROKERS= LOGBOOK_LOG_LEVEL=warn LOGBOOK_RATE_PER_KEY=-1 \
  LOGBOOK_MASTER_KEY= LOGBOOK_MASTER_KEY_FILE= LOGBOOK_SIGNING_KEY= LOGBOOK_SIGNING_KEY_FILE= \
  "$bin" dev --data "$dir/dev" --http 127.0.0.1:0 >"$dir/dev.out" 2>"$dir/dev.err" &
devpid=$!
trap 'kill $devpid 2>/dev/null || true' EXIT
started "$dir/dev.out"
key=$(sed -n 's/^admin key (shown once, keep it): //p' "$dir/dev.out")
# The workspaces, one task each (also the warm-up); every later run drives them.
"$bin" loadgen --url "$url" --key "$key" --workspaces "$WS" --commands "$WS" --concurrency "$CONC" --mix create=100 \
  --progress=false --check=false --json --report "$dir/spaces-report.json" >"$dir/spaces.json" 2>"$dir/spaces.err" \
  || { cat "$dir/spaces.err" >&2; exit 1; }
reuse=(--reuse "$dir/spaces-report.json")
lg closed "${reuse[@]}" --commands 0 --duration "${SECONDS_RUN}s" --check=false
S=$(num closed end_to_end_per_s)
half=$(calc "max(1, round($S / 2))")
double=$(calc "max(2, round($S * 2))")
lg half "${reuse[@]}" --rate "$half" --commands 0 --duration 30s --check=false
lg over "${reuse[@]}" --rate "$double" --commands 0 --duration "${SECONDS_RUN}s" --data "$dir/dev" --check-wait 10m
lg after "${reuse[@]}" --rate "$half" --commands 0 --duration 30s --check=false

# 5. Fill every workspace to TASKS tasks: the memory figure.
done_tasks=$(python3 -c "
import json
print(sum(json.load(open('$dir/' + n + '.json'))['accepted'] for n in ['spaces', 'closed', 'half', 'over', 'after']))")
fill=$(calc "max(0, $WS * $TASKS - $done_tasks)")
if [ "$fill" -gt 0 ]; then
  lg fill "${reuse[@]}" --commands "$fill" --check=false
fi
rss_kib=$(awk '/^VmHWM/ {print $2}' "/proc/$devpid/status")
kill "$devpid"; wait "$devpid" 2>/dev/null || true
trap - EXIT

# 6. The decider and the projectors alone, each on a pre-filled log of the
# same workspaces (Go benchmarks on kfake and the same Postgres build).
iso() { # iso PACKAGE BENCHMARK PREFIX: its commands/s
  env "${3}_WORKSPACES=$WS" "${3}_TASKS=$((WS * 5))" go test -run '^$' -bench "^$2\$" -benchtime 1x -timeout 30m "$1" \
    >"$dir/$2.txt" 2>&1 || { cat "$dir/$2.txt" >&2; exit 1; }
  grep -E "^$2" "$dir/$2.txt" | tr -s ' \t' '\n' | grep -B1 -x 'commands/s' | head -1
}
log "the decider alone"
decider_rate=$(iso ./consumers/decider/ BenchmarkDeciderOnAPrefilledLog BENCH_DECIDER)
log "the projectors alone"
projector_rate=$(iso ./projections/ BenchmarkProjectorsOnAPrefilledLog BENCH_PROJECTOR)

ratio() { calc "round($1 / $2, 3) if $2 else 'n/a'"; }
ok() { if python3 -c "import sys; sys.exit(0 if $1 else 1)"; then echo met; else echo "not met"; fi; }
bare=$(num bare accepted_per_s)
acc=$(num closed accepted_per_s)
cat <<MD

## The 10,000-workspace targets (issue 10)

\`deploy/bench-scale.sh\`: $WS workspaces, task.create with 256-byte sealed inputs, \`logbook loadgen --concurrency $CONC\`
against \`logbook dev\` (embedded kfake and Postgres, every guarantee on: API keys, grants, sealed fields, signed commands, hash
chain), per-key rate limit off. S is the end-to-end rate of the closed loop; the open loops count latency from each command's due time.

| target | measured | ratio | |
|---|---|---|---|
| ingest ≥ 0.5 × a bare chi handler, same client, same run | logbook $acc/s, bare handler $bare/s | $(ratio "$acc" "$bare") | $(ok "$acc >= 0.5 * $bare") |
| end to end ≥ 10,000 commands/s for ${SECONDS_RUN} s | S = $S commands/s | $(ratio "$S" 10000) | $(ok "$S >= 10000") |
| the decider alone ≥ 3 × S, on a pre-filled log ($WS workspace creates, $((WS * 5)) task creates, every signature verified) | $decider_rate commands/s | $(ratio "$decider_rate" "$S") × S | $(ok "$decider_rate >= 3 * $S") |
| the projectors alone ≥ 3 × S (read_models and command_results side by side, from the decided log) | $projector_rate commands/s | $(ratio "$projector_rate" "$S") × S | $(ok "$projector_rate >= 3 * $S") |
| p99 accept ≤ 50 ms at S/2 = $half/s, open loop | p99 $(num half command_p99_ms) ms (p50 $(num half p50_ms) ms) | $(ratio "$(num half command_p99_ms)" 50) | $(ok "$(num half command_p99_ms) <= 50") |
| at 2×S = $double/s only 202 or 429 + Retry-After | accepted $(num over accepted), 429 $(num over throttled_429), refused after retries $(num over refused), failed $(num over failed), dropped at the client's cap $(num over dropped); accept p99 $(num over p99_ms) ms | | $(ok "$(num over failed) == 0 and $(num over throttled_429) > 0") |
| 0 acknowledged commands lost (checker over the overload run) | lost $(num over lost), duplicated $(num over duplicated), seq gaps $(num over seq_gaps), read-model mismatches $(num over read_model_mismatches) | | $(ok "'$(num over check_ok)' == 'True'") |
| recovery without a restart: S/2 after the overload | accepted $(num after accepted), 429 $(num after throttled_429), p99 $(num after command_p99_ms) ms | | $(ok "$(num after failed) == 0 and $(num after throttled_429) == 0") |
| peak RSS < 512 MB at $WS workspaces × $TASKS tasks | $((rss_kib / 1024)) MB (VmHWM of the whole dev process: API, decider, projector, agent worker, kfake with the log in memory) | $(ratio "$rss_kib" $((512 * 1024))) | $(ok "$rss_kib < 512 * 1024") |
MD
