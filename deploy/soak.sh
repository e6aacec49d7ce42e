#!/usr/bin/env bash
# make soak: a steady load against `logbook dev` for SOAK_DURATION (default
# 30m), sampling the process's RSS, Go heap and goroutines every
# SOAK_EVERY seconds; then the loadgen checker over every acknowledged
# command, and the slope of each series over the run after its first fifth
# (warm-up: caches, pools, the broker's segments). A leak shows as a slope
# that does not flatten. Writes the figures into docs/BENCHMARKS.md between
# the soak markers (make bench keeps them) and the samples to
# SOAK_OUT (default soak.csv). Heap profiles at the end of the warm-up and
# at the end of the run say what grew (go tool pprof -diff_base).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${SOAK_DURATION:-30m}"
RATE="${SOAK_RATE:-300}"
WORKSPACES="${SOAK_WORKSPACES:-500}"
EVERY="${SOAK_EVERY:-10}"
CSV="${SOAK_OUT:-soak.csv}"
out=docs/BENCHMARKS.md
tmp=$(mktemp -d)
pid=
lpid=
cleanup() {
  [ -n "$lpid" ] && { kill "$lpid" 2>/dev/null || true; }
  [ -n "$pid" ] && { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/logbook" ./cmd/logbook
debug_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env LOGBOOK_DEBUG_ADDR="127.0.0.1:$debug_port" LOGBOOK_ADMIN_KEY= LOGBOOK_DATABASE_URL= LOGBOOK_KAFKA_BROKERS= LOGBOOK_LOG_LEVEL=warn LOGBOOK_RATE_PER_KEY=-1 \
  LOGBOOK_MASTER_KEY= LOGBOOK_MASTER_KEY_FILE= LOGBOOK_SIGNING_KEY= LOGBOOK_SIGNING_KEY_FILE= \
  "$tmp/logbook" dev --data "$tmp/data" --http 127.0.0.1:0 >"$tmp/dev.out" 2>"$tmp/dev.err" &
pid=$!
for _ in $(seq 1 600); do grep -q '^ready$' "$tmp/dev.out" && break; sleep 0.2; done
grep -q '^ready$' "$tmp/dev.out" || { cat "$tmp/dev.err" >&2; exit 1; }
url=$(sed -n 's/^http: //p' "$tmp/dev.out")
key=$(sed -n 's/^admin key (shown once, keep it): //p' "$tmp/dev.out")

secs=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)(s|m|h)', sys.argv[1]); print(int(m[1]) * {'s': 1, 'm': 60, 'h': 3600}[m[2]] if m else 0)" "$DURATION")
[ "$secs" -gt 0 ] || { echo "SOAK_DURATION must be a whole number of s, m or h, got $DURATION" >&2; exit 2; }
# The run's own bound, past the duration and the check after it.
"$tmp/logbook" loadgen --timeout "$((secs + 1200))s" --url "$url" --key "$key" --data "$tmp/data" --workspaces "$WORKSPACES" --rate "$RATE" --duration "$DURATION" --commands 0 \
  --concurrency 64 --mix create=60,assign=15,complete=15,cancel=5,rename=5 --progress=false --json >"$tmp/load.json" 2>"$tmp/load.err" &
lpid=$!

metric() { awk -v m="$1" '$1 == m {print $2; exit}' "$tmp/metrics.txt"; }
echo "seconds,rss_mb,heap_inuse_mb,goroutines" >"$CSV"
start=$(date +%s)
warm=$((secs / 5))
heap() { curl -sf -m 30 "http://127.0.0.1:$debug_port/debug/pprof/heap" -o "$1" || true; }
while kill -0 "$lpid" 2>/dev/null; do
  [ -s "$tmp/heap-warm.pb.gz" ] || [ $(($(date +%s) - start)) -lt "$warm" ] || heap "$tmp/heap-warm.pb.gz"
  [ $(($(date +%s) - start)) -lt "$secs" ] || [ -s "$tmp/heap-end.pb.gz" ] || heap "$tmp/heap-end.pb.gz"
  if curl -sf -m 5 "$url/metrics" >"$tmp/metrics.txt"; then
    rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
    heap=$(metric go_memstats_heap_inuse_bytes | awk '{printf "%.1f", $1 / 1048576}')
    echo "$(($(date +%s) - start)),$rss,$heap,$(metric go_goroutines)" >>"$CSV"
  fi
  sleep "$EVERY"
done
set +e
wait "$lpid"
load_rc=$?
set -e
lpid=
[ "$load_rc" = 0 ] || tail -n 20 "$tmp/load.err" >&2

# Least-squares slope per hour of a column over the samples after the first fifth.
slope() {
  awk -F, -v c="$1" 'NR > 1 {t[n] = $1; y[n] = $c; n++}
    END {s = int(n / 5); k = 0; for (i = s; i < n; i++) {sx += t[i]; sy += y[i]; k++}
      if (k < 2) {print "n/a"; exit}
      mx = sx / k; my = sy / k
      for (i = s; i < n; i++) {num += (t[i] - mx) * (y[i] - my); den += (t[i] - mx) ^ 2}
      printf "%+.1f", (den > 0 ? num / den * 3600 : 0)}' "$CSV"
}
col() { awk -F, -v c="$1" -v f="$2" 'NR > 1 {v = $c; if (n == 0 || (f == "max" && v > m)) m = v; if (f == "first" && n == 0) m = v; last = v; n++}
  END {print (f == "last" ? last : m)}' "$CSV"; }
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2], ''); print(round(v, 1) if isinstance(v, float) else v)" "$tmp/load.json" "$1" 2>/dev/null || true; }
check="lost $(field lost), duplicated $(field duplicated), seq gaps $(field seq_gaps), read-model mismatches $(field read_model_mismatches) (clean: $(field check_ok))"

grew="(no heap profiles)"
if [ -s "$tmp/heap-warm.pb.gz" ] && [ -s "$tmp/heap-end.pb.gz" ]; then
  grew=$(go tool pprof -top -inuse_space -nodecount=8 -diff_base "$tmp/heap-warm.pb.gz" "$tmp/heap-end.pb.gz" 2>/dev/null |
    awk '/flat%/ {on=1; next} on {print "    " $0}' | head -n 8)
fi

section=$(cat <<MD
<!-- soak:begin -->
## Soak (\`make soak\`)

\`SOAK_DURATION=$DURATION SOAK_RATE=$RATE SOAK_WORKSPACES=$WORKSPACES make soak\` on $(nproc) cores, $(date -u +%Y-%m-%d):
\`logbook loadgen --rate $RATE --duration $DURATION --workspaces $WORKSPACES\` with the lifecycle mix against \`logbook dev\`,
the process sampled every ${EVERY} s. Slopes are least squares over the run after its first fifth.

| series | first | last | max | slope per hour |
|---|---|---|---|---|
| RSS, MB | $(col 2 first) | $(col 2 last) | $(col 2 max) | $(slope 2) |
| Go heap in use, MB | $(col 3 first) | $(col 3 last) | $(col 3 max) | $(slope 3) |
| goroutines | $(col 4 first) | $(col 4 last) | $(col 4 max) | $(slope 4) |

Load: acknowledged $(field accepted) of $(field commands) commands ($(field accepted_per_s)/s, accept p99 $(field p99_ms) ms), refused $(field refused), failed $(field failed); loadgen exit $load_rc.
Checker: $check.

What the live heap gained from the end of the warm-up to the end of the run
(\`go tool pprof -top -inuse_space -diff_base\`, flat and cumulative):

$grew
<!-- soak:end -->
MD
)
if grep -q '<!-- soak:begin -->' "$out"; then
  python3 - "$out" "$section" <<'PY'
import re, sys
p, sec = sys.argv[1], sys.argv[2]
s = open(p).read()
s = re.sub(r'<!-- soak:begin -->.*?<!-- soak:end -->', lambda _: sec, s, flags=re.S)
open(p, 'w').write(s)
PY
else
  printf '\n%s\n' "$section" >>"$out"
fi
echo "$section"
echo "samples: $CSV" >&2
exit "$load_rc"
