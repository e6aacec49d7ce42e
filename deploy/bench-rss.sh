#!/usr/bin/env bash
# bench-rss.sh [WORKDIR]: peak RSS of `logbook dev` at 10,000 workspaces x
# 100 tasks, and what its live heap holds then (pprof over
# LOGBOOK_DEBUG_ADDR). The same fill as bench-scale.sh's memory figure,
# alone. Loopback only; bounded by loadgen's --timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/logbook-bench-rss.XXXXXX")}
WS="${BENCH_RSS_WORKSPACES:-10000}"
TASKS="${BENCH_RSS_TASKS:-100}"
DEBUG="${BENCH_RSS_DEBUG_ADDR:-127.0.0.1:16060}"
mkdir -p "$dir"
go build -o "$dir/logbook" ./cmd/logbook
env LOGBOOK_ADMIN_KEY= LOGBOOK_DATABASE_URL= LOGBOOK_KAFKA_BROKERS= LOGBOOK_LOG_LEVEL=warn LOGBOOK_RATE_PER_KEY=-1 \
  LOGBOOK_MASTER_KEY= LOGBOOK_MASTER_KEY_FILE= LOGBOOK_SIGNING_KEY= LOGBOOK_SIGNING_KEY_FILE= LOGBOOK_DEBUG_ADDR="$DEBUG" \
  "$dir/logbook" dev --data "$dir/dev" --http 127.0.0.1:0 >"$dir/dev.out" 2>"$dir/dev.err" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do grep -q '^ready$' "$dir/dev.out" && break; sleep 0.2; done
grep -q '^ready$' "$dir/dev.out" || { cat "$dir/dev.err" >&2; exit 1; }
url=$(sed -n 's/^http: //p' "$dir/dev.out")
key=$(sed -n 's/^admin key (shown once, keep it): //p' "$dir/dev.out")
lg() { "$dir/logbook" loadgen --url "$url" --key "$key" --concurrency 512 --mix create=100 --progress=false --check=false \
  --json --timeout 60m "$@"; }
lg --workspaces "$WS" --commands "$WS" --report "$dir/spaces.json" >"$dir/spaces.out"
lg --reuse "$dir/spaces.json" --commands $((WS * (TASKS - 1))) >"$dir/fill.out"
sleep 20 # the projectors and the decider settle
grep -E '^(VmHWM|VmRSS)' "/proc/$pid/status"
go tool pprof -top -inuse_space -nodecount=25 "http://$DEBUG/debug/pprof/heap" 2>/dev/null | head -35
