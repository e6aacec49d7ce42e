#!/usr/bin/env bash
# make fuzz-api: schemathesis (OpenAPI property-based fuzzer, pinned below)
# against a real `logbook dev` (embedded broker and Postgres) with an admin
# key: every check, a fixed number of examples per operation, a fixed seed.
# Configuration: deploy/schemathesis/schemathesis.toml. Exits non-zero on any
# server error or failed check; the reports (JUnit, NDJSON) stay in
# $LOGBOOK_FUZZ_REPORT_DIR.
#
#   LOGBOOK_FUZZ_REPORT_DIR  where the reports go (default: $TMPDIR/logbook-schemathesis-report)
#   LOGBOOK_FUZZ_TIMEOUT     hard limit on the schemathesis run, seconds (default 1200)
#   LOGBOOK_SCHEMATHESIS_VENV  the virtualenv (default: ${XDG_CACHE_HOME:-~/.cache}/logbook/schemathesis-venv)
#   Extra arguments are passed to `schemathesis run` (e.g. --include-operation-id getTask).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
root=$PWD

SCHEMATHESIS_VERSION=4.32.5
config=$root/deploy/schemathesis/schemathesis.toml
venv=${LOGBOOK_SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/logbook/schemathesis-venv}
report=${LOGBOOK_FUZZ_REPORT_DIR:-${TMPDIR:-/tmp}/logbook-schemathesis-report}
limit=${LOGBOOK_FUZZ_TIMEOUT:-1200}

log() { echo "fuzz-api: $*" >&2; }

# --- schemathesis, in a virtualenv of its own -------------------------------
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qx "schemathesis, version $SCHEMATHESIS_VERSION"; then
  py=${PYTHON:-python3}
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    log "schemathesis $SCHEMATHESIS_VERSION needs Python 3.11+ ($py)"
    exit 1
  fi
  if ! "$py" -c 'import ensurepip, venv' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "installing python3-venv from Debian's packages"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq >/dev/null
      apt-get install -y -qq python3-venv >/dev/null
    else
      log "$py has no venv module: install python3-venv"
      exit 1
    fi
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$py" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
st=$venv/bin/schemathesis
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ beside hooks.py in the work tree
"$st" --version >&2

# --- logbook dev ------------------------------------------------------------
bash deploy/local/ensure-tools.sh
work=$(mktemp -d "${TMPDIR:-/tmp}/logbook-fuzz.XXXXXX")
server=""
cleanup() {
  local rc=$?
  if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
    kill -TERM "$server" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  # The embedded Postgres runs in a process group of its own: make sure the
  # one this run started is gone even if logbook could not stop it.
  local pm=$work/data/postgres/postmaster.pid
  if [ -f "$pm" ]; then
    local pgpid
    pgpid=$(head -n 1 "$pm" 2>/dev/null || true)
    if [ -n "$pgpid" ] && kill -0 "$pgpid" 2>/dev/null; then
      kill -INT "$pgpid" 2>/dev/null || true
      for _ in $(seq 1 20); do kill -0 "$pgpid" 2>/dev/null || break; sleep 0.5; done
    fi
  fi
  if [ $rc -ne 0 ] && [ -s "$work/server.err" ]; then
    log "server log tail:"
    tail -n 20 "$work/server.err" >&2 || true
  fi
  rm -rf "$work"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building logbook"
go build -o "$work/logbook" ./cmd/logbook
mkdir -m 0700 "$work/data"
# The fuzzer sends thousands of wrong credentials from one address by
# design: the failed-authentication throttle would (rightly) lock it out and
# leave most operations untested. The throttle has tests of its own.
LOGBOOK_AUTH_FAILURES_PER_MINUTE=0 \
  "$work/logbook" dev --data "$work/data" --http 127.0.0.1:0 >"$work/server.out" 2>"$work/server.err" </dev/null &
server=$!

for _ in $(seq 1 240); do
  grep -qx ready "$work/server.out" 2>/dev/null && break
  if ! kill -0 "$server" 2>/dev/null; then
    log "logbook dev exited before it was ready"
    cat "$work/server.out" >&2
    exit 1
  fi
  sleep 0.5
done
if ! grep -qx ready "$work/server.out"; then
  log "logbook dev not ready after 120 s"
  exit 1
fi
url=$(sed -n 's/^http: //p' "$work/server.out" | head -n 1)
key=$(sed -n 's/^admin key (shown once, keep it): //p' "$work/server.out" | head -n 1)
if [ -z "$url" ] || [ -z "$key" ]; then
  log "logbook dev printed no URL or no admin key"
  exit 1
fi
log "server at $url"

# --- fixtures: real ids for the path parameters ---------------------------------
# call METHOD PATH BODY: sends the command with Prefer: wait=5 and prints the
# answer; anything but 200/201 stops the run. field JSON NAME prints one field.
call() {
  local method=$1 path=$2 body=$3 out status
  out=$(curl -sS -X "$method" "$url$path" \
    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' -H 'Prefer: wait=5' \
    ${body:+--data-binary "$body"} -w '\n%{http_code}')
  status=${out##*$'\n'}
  out=${out%$'\n'*}
  if [ "$status" != 200 ] && [ "$status" != 201 ]; then
    log "fixture $method $path answered $status: $out"
    exit 1
  fi
  printf '%s\n' "$out"
}
field() {
  "$venv/bin/python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"
}
created=$(call POST /v1/workspaces '{"name":"fuzz"}')
ws=$(field "$created" workspace_id)
command_id=$(field "$created" command_id)
ws_archive=$(field "$(call POST /v1/workspaces '{"name":"fuzz archive"}')" workspace_id)
ws_erase=$(field "$(call POST /v1/workspaces '{"name":"fuzz erase"}')" workspace_id) # erasing the others would leave every later call a 404
agent=$(field "$(call POST "/v1/workspaces/$ws/agents" '{"name":"fuzz agent","role":"tester","model":"local","instructions":"answer"}')" agent_id)
member=fuzz-member # removed by DELETE .../members/{principal}
call POST "/v1/workspaces/$ws/members" "{\"principal_id\":\"$member\",\"role\":\"reader\"}" >/dev/null
# The assignee of generated tasks and assignments (deploy/schemathesis/hooks.py).
call POST "/v1/workspaces/$ws/members" '{"principal_id":"fuzz-assignee","role":"writer"}' >/dev/null
task() { field "$(call POST "/v1/workspaces/$ws/tasks" '{"title":"fuzz task","input":"in","priority":1}')" task_id; }
step() { call POST "/v1/workspaces/$ws/tasks/$1/$2" "$3" >/dev/null; }
# Assigned to a member, not to the agent: the agent worker would start its
# tasks itself, racing the fixtures.
in_progress() {
  local t
  t=$(task)
  step "$t" assign '{"assignee":"fuzz-assignee"}'
  step "$t" start ''
  echo "$t"
}
task_any=$(task)
task_pending=$(task)
task_cancel=$(task)
task_assigned=$(task)
step "$task_assigned" assign '{"assignee":"fuzz-assignee"}'
task_result=$(in_progress)
task_fail=$(in_progress)
task_complete=$(in_progress)
task_failed=$(in_progress)
step "$task_failed" fail '{"attempt":1,"reason":"fixture","retryable":true}'

export LOGBOOK_FUZZ_KEY=$key LOGBOOK_FUZZ_REPORT_DIR=$report LOGBOOK_FUZZ_CONFIG_DIR=$root/deploy/schemathesis \
  LOGBOOK_FUZZ_WS=$ws LOGBOOK_FUZZ_WS_ARCHIVE=$ws_archive LOGBOOK_FUZZ_WS_ERASE=$ws_erase LOGBOOK_FUZZ_MEMBER=$member \
  LOGBOOK_FUZZ_COMMAND=$command_id LOGBOOK_FUZZ_TASK=$task_any \
  LOGBOOK_FUZZ_TASK_PENDING=$task_pending LOGBOOK_FUZZ_TASK_CANCEL=$task_cancel \
  LOGBOOK_FUZZ_TASK_ASSIGNED=$task_assigned LOGBOOK_FUZZ_TASK_RESULT=$task_result \
  LOGBOOK_FUZZ_TASK_FAIL=$task_fail LOGBOOK_FUZZ_TASK_COMPLETE=$task_complete \
  LOGBOOK_FUZZ_TASK_FAILED=$task_failed
log "fixtures: workspace $ws, agent $agent, member $member"

# --- the run ----------------------------------------------------------------
mkdir -p "$report"
rm -f "$report"/junit-*.xml "$report"/ndjson-*.ndjson "$report/findings.txt"
start=$(date +%s)
set +e
(cd "$work" && timeout --kill-after=30 "$limit" "$st" --config-file "$config" run --no-color "$url/openapi.json" "$@")
rc=$?
set -e
log "schemathesis exited $rc after $(($(date +%s) - start)) s; reports in $report"
if [ $rc = 124 ] || [ $rc = 137 ]; then
  log "schemathesis did not finish within $limit s"
fi
# The findings, deduplicated, with a curl for each.
for ndjson in "$report"/ndjson-*.ndjson; do
  [ -f "$ndjson" ] || continue
  "$venv/bin/python" "$root/deploy/schemathesis/summarize.py" "$ndjson" >"$report/findings.txt" || true
  if [ $rc != 0 ]; then
    echo "=== findings (also in $report/findings.txt) ==="
    cat "$report/findings.txt"
  fi
done
exit $rc
