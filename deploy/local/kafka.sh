#!/usr/bin/env bash
# Runs a real Apache Kafka 4.x cluster (KRaft, no ZooKeeper) on 127.0.0.1 for
# tests and benchmarks. Needs only java (17+) and mvn: the Kafka jars come from
# Maven Central (deploy/local/kafka/pom.xml) and are cached between runs.
#
#   kafka.sh start [--nodes 1|3] [--dir DIR] [--secure]
#                                              start (or reuse) a cluster; the
#                                              LAST stdout line is the bootstrap.
#                                              --secure (chosen when the cluster
#                                              is made): SASL/SCRAM-SHA-512 on
#                                              every listener, ACLs, one principal
#                                              per logbook role (see ROLES below)
#   kafka.sh stop  [--dir DIR]                 stop every node (idempotent)
#   kafka.sh perf  [--dir DIR] -- ARGS...      org.apache.kafka.tools.ProducerPerformance
#   kafka.sh tool  [--dir DIR] -- CLASS ARGS...  any main class from the Kafka jars
#
# DIR defaults to ${TMPDIR:-/tmp}/logbook-kafka. Inside it:
#   bootstrap, classpath         for other scripts
#   nodeK/server.properties      the node's config
#   nodeK/start.sh               restarts node K exactly as it was started
#                                (tests SIGKILL a node, then run this)
#   nodeK/server.log, nodeK/pid
#   users/NAME.password          --secure: SCRAM passwords (0600) of admin (the
#                                brokers' own, the one super user) and of the
#                                role principals api, decider, projector, agent
#                                and analytics; client.properties: admin's
#                                client config for Kafka's tools (0600)
#
# Environment: LOGBOOK_CACHE (jar cache root, default ~/.cache/logbook),
# KAFKA_BASE_PORT (first broker port tried, default 19092; controllers use
# +100), KAFKA_START_TIMEOUT (s, default 120), KAFKA_STOP_TIMEOUT (s, default
# 30), KAFKA_HEAP_OPTS / KAFKA_JVM_OPTS (per node), KAFKA_PERF_OPTS (perf JVM).
set -euo pipefail

# Pinned: 4.3.1 is the newest 4.x with both kafka_2.13 and kafka-tools on
# Maven Central. Keep in step with kafka.version in kafka/pom.xml.
KAFKA_VERSION=4.3.1

SELF=${BASH_SOURCE[0]}
[[ $SELF == */* ]] || SELF=./$SELF
HERE=$(cd "${SELF%/*}" && pwd)
TPL=$HERE/kafka
CACHE=${LOGBOOK_CACHE:-$HOME/.cache/logbook}/kafka-$KAFKA_VERSION
LIBS=$CACHE/libs
BASE_PORT=${KAFKA_BASE_PORT:-19092}
START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
# Up to 3 nodes share 2 cores: small heaps, and the serial collector (fewer GC
# threads, less native memory than G1; pauses on a 512 MB heap are short).
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}
# Short-lived CLI tools: C1 only starts faster; they do little work.
TOOL_OPTS="-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1"
PERF_OPTS=${KAFKA_PERF_OPTS:--Xms256m -Xmx512m}
READY_TOPIC=logbook-ready
# --secure: the role principals, and the topic prefix their ACLs cover.
ROLES=(api decider projector agent analytics)
ACL_PREFIX=${KAFKA_ACL_PREFIX:-logbook.}

log() { echo "kafka.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

abs_path() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka 4.x needs Java 17+; Debian: apt-get install openjdk-17-jre-headless)"
  JAVA=$(command -v java)
  local v major
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${v%%.*}
  [[ $major =~ ^[0-9]+$ ]] && ((major >= 17)) || die "Kafka 4.x needs Java 17+, found '${v:-unknown}'"
}

# flock serializes concurrent runs where it exists (util-linux); without it we
# just go on.
lock() { # fd file
  eval "exec $1>\"\$2\""
  if command -v flock >/dev/null 2>&1; then flock "$1"; fi
}
unlock() { eval "exec $1>&-"; }

# Fetches the pinned jars once into $LIBS; a half-finished download never
# counts as the cache (it is renamed into place only when complete).
ensure_libs() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH: needed once to fetch Kafka $KAFKA_VERSION from Maven Central (Debian: apt-get install maven)"
  mkdir -p "$CACHE"
  lock 8 "$CACHE/.lock"
  if [ ! -f "$LIBS/.complete" ]; then
    local tmp t0=$SECONDS
    tmp=$(mktemp -d "$CACHE/libs.tmp.XXXXXX")
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS (once)"
    # Maven's output only matters when it fails.
    if ! mvn -q -B -Dstyle.color=never -f "$TPL/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      -DincludeScope=runtime -DoutputDirectory="$tmp" dependency:copy-dependencies >"$CACHE/mvn.log" 2>&1; then
      cat "$CACHE/mvn.log" >&2
      rm -rf "$tmp"
      die "mvn could not fetch the Kafka jars (output above, also in $CACHE/mvn.log)"
    fi
    [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] && [ -f "$tmp/kafka-tools-$KAFKA_VERSION.jar" ] ||
      { rm -rf "$tmp"; die "mvn finished but the Kafka $KAFKA_VERSION jars are missing"; }
    touch "$tmp/.complete"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    log "fetched $(ls "$LIBS" | wc -l) jars in $((SECONDS - t0))s"
  fi
  unlock 8
}

# A pid file alone is not proof: the pid must still be a live process whose
# command line names this node's config (pids get reused; zombies have none).
node_alive() { # nodedir
  local pid
  [ -f "$1/pid" ] || return 1
  pid=$(<"$1/pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$1/server.properties"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

tail_logs() {
  local nd
  for nd in "$DIR"/node*; do
    [ -f "$nd/server.log" ] || continue
    echo "----- $nd/server.log (tail) -----" >&2
    tail -n 25 "$nd/server.log" >&2
  done
  if [ -f "$DIR/ready.log" ]; then
    echo "----- $DIR/ready.log (tail) -----" >&2
    tail -n 15 "$DIR/ready.log" >&2
  fi
}

run_tool() { # class args... (stdout passthrough)
  # shellcheck disable=SC2086 # option strings are meant to split into words
  "$JAVA" $TOOL_OPTS -Dlog4j2.configurationFile="$TPL/tools-log4j2.properties" -cp "$LIBS/*" "$@"
}

# Kafka cluster ids are 16 random bytes in URL-safe base64 without padding;
# made here to spare a JVM start. A leading '-' would read as a CLI flag.
new_cluster_id() {
  local id
  while :; do
    id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    [ "${id:0:1}" != "-" ] && { echo "$id"; return; }
  done
}

# Picks a block of free ports: brokers B..B+N-1, controllers B+100..; steps of
# 10 so several DIRs can run side by side. Caller holds the global port lock.
pick_ports() {
  local base i ok
  for ((base = BASE_PORT; base < BASE_PORT + 100; base += 10)); do
    ok=1
    for ((i = 0; i < NODES; i++)); do
      if port_busy $((base + i)) || port_busy $((base + 100 + i)); then ok=0; break; fi
    done
    if ((ok)); then
      BROKER_PORTS=() CONTROLLER_PORTS=()
      for ((i = 0; i < NODES; i++)); do
        BROKER_PORTS+=($((base + i)))
        CONTROLLER_PORTS+=($((base + 100 + i)))
      done
      return 0
    fi
  done
  die "no free port block in $BASE_PORT..$((BASE_PORT + 99)) (+100 for controllers); set KAFKA_BASE_PORT"
}

bootstrap_of() {
  local p out=""
  for p in "${BROKER_PORTS[@]}"; do out+=${out:+,}127.0.0.1:$p; done
  echo "$out"
}

# A new cluster in $DIR: ports, cluster id, then cluster.env. Leftovers of
# a DIR that never got that far are wiped (they may be formatted for an
# unknown cluster id).
init_cluster() {
  rm -rf "$DIR"/node[0-9]* "$DIR/users"
  pick_ports
  CLUSTER_ID=$(new_cluster_id)
  MIN_ISR=$((NODES >= 3 ? 2 : 1))
  ((SECURE)) && make_users
  render_nodes
  format_nodes
  # Written last: its presence means the DIR is complete and reusable.
  {
    echo "KAFKA_VERSION=$KAFKA_VERSION"
    echo "NODES=$NODES"
    echo "CLUSTER_ID=$CLUSTER_ID"
    echo "BROKER_PORTS=(${BROKER_PORTS[*]})"
    echo "CONTROLLER_PORTS=(${CONTROLLER_PORTS[*]})"
    echo "MIN_ISR=$MIN_ISR"
    echo "SECURE=$SECURE"
  } >"$DIR/cluster.env"
}

# --secure: a random password per principal, and admin's client config.
make_users() {
  local u
  mkdir -p "$DIR/users"
  chmod 700 "$DIR/users"
  for u in admin "${ROLES[@]}"; do
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$DIR/users/$u.password")
  done
  write_client_config
}

write_client_config() {
  (umask 077; {
    echo "security.protocol=SASL_PLAINTEXT"
    echo "sasl.mechanism=SCRAM-SHA-512"
    echo "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$(<"$DIR/users/admin.password")\";"
  } >"$DIR/client.properties")
}

# --secure: what each role principal may do under ACL_PREFIX; nothing else.
# Every logbook role may describe and create its topics (each process makes
# sure they exist); all but the decider read and write the workspace keys.
grant_roles() {
  local p=$ACL_PREFIX r
  acl() { run_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$BOOTSTRAP" --command-config "$DIR/client.properties" \
    --add --allow-principal "User:$1" "${@:2}" >>"$DIR/acl.log" 2>&1 || die "AclCommand for $1 failed: see $DIR/acl.log"; }
  for r in api decider projector agent; do
    acl "$r" --resource-pattern-type prefixed --topic "$p" --operation Describe --operation Create --operation DescribeConfigs
  done
  for r in api projector agent; do
    acl "$r" --topic "${p}workspace-keys" --operation Read --operation Write
  done
  acl api --topic "${p}commands" --topic "${p}access" --operation Write
  acl api --topic "${p}results" --operation Read
  acl api --group logbook-decider --group logbook-agent --operation Describe
  acl decider --topic "${p}commands" --operation Read
  acl decider --topic "${p}events" --topic "${p}results" --topic "${p}decider-state" --operation Write
  acl decider --topic "${p}decider-state" --operation Read
  acl decider --group logbook-decider --operation Read
  acl decider --resource-pattern-type prefixed --transactional-id logbook-decider- --operation Write --operation Describe
  acl projector --topic "${p}events" --topic "${p}results" --topic "${p}access" --operation Read
  acl projector --topic "${p}dlq" --operation Write
  acl projector --resource-pattern-type prefixed --group logbook-projection- --operation Read
  acl agent --topic "${p}events" --operation Read
  acl agent --topic "${p}commands" --topic "${p}dlq" --operation Write
  acl agent --group logbook-agent --operation Read
  acl analytics --topic "${p}events" --operation Read --operation Describe
  acl analytics --resource-pattern-type prefixed --group analytics- --operation Read
}

# Per-node server.properties and start.sh from the templates and the current
# options. Done on every start of a stopped cluster (same ports, ids and data),
# so template or JVM option changes apply; never while a node runs.
render_nodes() {
  local k nd voters="" rf=$((NODES < 3 ? NODES : 3))
  for ((k = 1; k <= NODES; k++)); do voters+=${voters:+,}$k@127.0.0.1:${CONTROLLER_PORTS[k - 1]}; done
  cp "$TPL/log4j2.properties" "$DIR/log4j2.properties"
  for ((k = 1; k <= NODES; k++)); do
    nd=$DIR/node$k
    mkdir -p "$nd/data"
    sed -e "s|@NODE_ID@|$k|g" -e "s|@NODES@|$NODES|g" -e "s|@VOTERS@|$voters|g" \
      -e "s|@BROKER_PORT@|${BROKER_PORTS[k - 1]}|g" -e "s|@CONTROLLER_PORT@|${CONTROLLER_PORTS[k - 1]}|g" \
      -e "s|@DATA_DIR@|$nd/data|g" -e "s|@RF@|$rf|g" -e "s|@MIN_ISR@|$MIN_ISR|g" \
      "$TPL/server.properties.tmpl" >"$nd/server.properties"
    if ((SECURE)); then
      sed -e "s|@BROKER_PORT@|${BROKER_PORTS[k - 1]}|g" -e "s|@CONTROLLER_PORT@|${CONTROLLER_PORTS[k - 1]}|g" \
        -e "s|@ADMIN_PASSWORD@|$(<"$DIR/users/admin.password")|g" \
        "$TPL/server-secure.properties.tmpl" >>"$nd/server.properties"
      chmod 600 "$nd/server.properties"
    fi
    write_start_sh "$k"
  done
}

# KRaft storage, one StorageTool JVM per node, in parallel: they are independent.
format_nodes() {
  local k pids=() failed=0 scram=() u
  if ((SECURE)); then
    for u in admin "${ROLES[@]}"; do scram+=(--add-scram "SCRAM-SHA-512=[name=$u,password=$(<"$DIR/users/$u.password")]"); done
  fi
  for ((k = 1; k <= NODES; k++)); do
    run_tool kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" \
      --config "$DIR/node$k/server.properties" "${scram[@]}" >"$DIR/node$k/format.log" 2>&1 &
    pids+=($!)
  done
  for ((k = 1; k <= NODES; k++)); do
    wait "${pids[k - 1]}" || { failed=1; cat "$DIR/node$k/format.log" >&2; }
  done
  ((failed == 0)) || die "formatting KRaft storage failed"
}

# nodeK/start.sh holds the exact java command line, so a harness can bring a
# SIGKILLed node back without knowing anything about this script.
write_start_sh() { # k
  local k=$1 nd=$DIR/node$1 cmd
  # shellcheck disable=SC2206 # option strings are meant to split into words
  local argv=("$JAVA" $HEAP_OPTS $JVM_OPTS "-Dlog4j2.configurationFile=$DIR/log4j2.properties"
    -cp "$LIBS/*" kafka.Kafka "$nd/server.properties")
  cmd=$(printf '%q ' "${argv[@]}")
  cat >"$nd/start.sh" <<EOF
#!/usr/bin/env bash
# Starts node $k of the local Kafka cluster in $DIR exactly as
# deploy/local/kafka.sh start did (tests use it to bring back a node they
# killed). Returns once the node has rejoined: registered with the quorum and
# unfenced, which Kafka logs as "Kafka Server started" (waits up to
# ${START_TIMEOUT}s; right after a SIGKILL the old incarnation's broker session
# must expire first, a few seconds).
set -euo pipefail
NODE_DIR=$(printf '%q' "$nd")
cd "\$NODE_DIR"
alive() {
  [ -f pid ] || return 1
  local pid; pid=\$(<pid)
  [ -r "/proc/\$pid/cmdline" ] && tr '\\0' ' ' <"/proc/\$pid/cmdline" | grep -qF "\$NODE_DIR/server.properties"
}
if alive; then echo "node $k already running (pid \$(<pid))" >&2; exit 0; fi
rm -f pid
echo "===== start \$(date -u +%FT%TZ) =====" >>server.log
from=\$(stat -c %s server.log)
# setsid, no inherited stdio and no other inherited fds: the node outlives
# this script and never holds the caller's pipes or lock files open (a test
# harness waiting on our stdout, or kafka.sh stop waiting for its lock, would hang).
setsid bash -c 'for fd in /proc/\$\$/fd/*; do fd=\${fd##*/}; ((fd > 2)) && eval "exec \$fd>&-" 2>/dev/null; done
echo \$\$ >pid; exec "\$@"' node$k $cmd </dev/null >>server.log 2>&1 &
deadline=\$((SECONDS + $START_TIMEOUT))
while ((SECONDS < deadline)); do
  if tail -c +\$((from + 1)) server.log | grep -q 'Kafka Server started'; then
    echo "node $k running (pid \$(<pid)), broker 127.0.0.1:${BROKER_PORTS[k - 1]}" >&2; exit 0
  fi
  if [ -s pid ] && ! alive; then break; fi
  sleep 0.2
done
echo "node $k did not come up; tail of \$NODE_DIR/server.log:" >&2
tail -n 30 server.log >&2
exit 1
EOF
  chmod +x "$nd/start.sh"
}

# The cluster is ready once it takes a real write: create a topic replicated
# on every node (fails until all brokers registered), then produce one record
# with acks=all through ProducerPerformance.
wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT)) k out rf=$((NODES < 3 ? NODES : 3))
  local admin=$DIR/admin.properties
  (umask 077; {
    printf 'request.timeout.ms=5000\ndefault.api.timeout.ms=10000\n'
    if ((SECURE)); then cat "$DIR/client.properties"; fi
  } >"$admin")
  : >"$DIR/ready.log"
  while :; do
    for ((k = 1; k <= NODES; k++)); do
      node_alive "$DIR/node$k" || { log "node $k exited during startup"; return 1; }
    done
    if run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" \
      --command-config "$admin" --create --if-not-exists --topic "$READY_TOPIC" \
      --partitions 1 --replication-factor "$rf" --config "min.insync.replicas=$MIN_ISR" \
      >>"$DIR/ready.log" 2>&1; then
      out=$(run_tool org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$BOOTSTRAP" \
        --topic "$READY_TOPIC" --num-records 1 --record-size 16 --throughput -1 --command-config "$admin" \
        --command-property acks=all request.timeout.ms=5000 delivery.timeout.ms=15000 max.block.ms=15000 \
        2>>"$DIR/ready.log") || true
      echo "$out" >>"$DIR/ready.log"
      # A failed send prints a stack trace yet exits 0: check the count.
      grep -q '^1 records sent' <<<"$out" && return 0
    fi
    ((SECONDS < deadline)) || { log "cluster not ready after ${START_TIMEOUT}s"; return 1; }
    sleep 1
  done
}

parse_common() { # sets NODES_ARG, DIR, SECURE_ARG, REST
  NODES_ARG="" DIR=${TMPDIR:-/tmp}/logbook-kafka REST=() SECURE_ARG=0
  while (($#)); do
    case $1 in
      --secure) SECURE_ARG=1; shift ;;
      --nodes) [ $# -ge 2 ] || die "--nodes needs a value"; NODES_ARG=$2; shift 2 ;;
      --nodes=*) NODES_ARG=${1#*=}; shift ;;
      --dir) [ $# -ge 2 ] || die "--dir needs a value"; DIR=$2; shift 2 ;;
      --dir=*) DIR=${1#*=}; shift ;;
      --) shift; REST=("$@"); break ;;
      -h | --help) usage ;;
      *) REST=("$@"); break ;;
    esac
  done
  DIR=$(abs_path "$DIR")
}

cmd_start() {
  parse_common "$@"
  ((${#REST[@]} == 0)) || die "start: unexpected argument '${REST[0]}'"
  [ -z "$NODES_ARG" ] || [ "$NODES_ARG" = 1 ] || [ "$NODES_ARG" = 3 ] || die "--nodes must be 1 or 3"
  need_java
  mkdir -p "$DIR"
  DIR=$(cd "$DIR" && pwd -P)
  lock 7 "$DIR/.lock"
  local t0=$SECONDS k dead=() reused=0

  if [ -f "$DIR/cluster.env" ]; then
    local want=$KAFKA_VERSION
    SECURE=0 # clusters made before --secure existed
    # shellcheck disable=SC1091
    source "$DIR/cluster.env"
    [ "$KAFKA_VERSION" = "$want" ] ||
      die "$DIR was made with Kafka $KAFKA_VERSION, this script runs $want; stop it and remove the directory"
    [ -z "$NODES_ARG" ] || [ "$NODES_ARG" = "$NODES" ] ||
      die "$DIR holds a $NODES-node cluster; stop it and remove the directory, or use another --dir"
    SECURE=${SECURE:-0}
    ((SECURE_ARG == 0 || SECURE == 1)) ||
      die "$DIR holds a cluster made without --secure; stop it and remove the directory, or use another --dir"
    reused=1
  else
    NODES=${NODES_ARG:-1}
    SECURE=$SECURE_ARG
  fi

  if ((reused)); then
    for ((k = 1; k <= NODES; k++)); do node_alive "$DIR/node$k" || dead+=("$k"); done
    BOOTSTRAP=$(bootstrap_of)
    if ((${#dead[@]} == 0)); then
      log "already running in $DIR"
      echo "$BOOTSTRAP"
      return 0
    fi
  fi

  ensure_libs
  # Global lock: two starts on different DIRs must not pick the same ports
  # between checking them and the nodes binding them.
  lock 6 "${TMPDIR:-/tmp}/logbook-kafka-ports.lock"
  if ((reused)); then
    for k in "${dead[@]}"; do
      if port_busy "${BROKER_PORTS[k - 1]}" || port_busy "${CONTROLLER_PORTS[k - 1]}"; then
        die "port ${BROKER_PORTS[k - 1]} or ${CONTROLLER_PORTS[k - 1]} of $DIR/node$k is taken by another process; remove $DIR to start afresh"
      fi
    done
    if ((${#dead[@]} == NODES)); then
      log "restarting the stopped $NODES-node cluster in $DIR"
      render_nodes
    else
      # Others still run: bring back the missing ones exactly as before.
      log "starting node(s) ${dead[*]} of the running $NODES-node cluster in $DIR"
    fi
  else
    log "creating a $NODES-node Kafka $KAFKA_VERSION cluster in $DIR"
    init_cluster
    BOOTSTRAP=$(bootstrap_of)
    for ((k = 1; k <= NODES; k++)); do dead+=("$k"); done
  fi
  echo "$BOOTSTRAP" >"$DIR/bootstrap"
  echo "$LIBS/*" >"$DIR/classpath"

  # All at once: with a 3-voter quorum no node finishes starting alone.
  local pids=() failed=0
  for k in "${dead[@]}"; do
    "$DIR/node$k/start.sh" &
    pids+=($!)
  done
  for k in "${!pids[@]}"; do wait "${pids[k]}" || failed=1; done
  unlock 6
  # (a failed start.sh has already shown its node's log)
  if ((failed)) || ! { wait_ready || { tail_logs; false; }; }; then
    log "stopping what was started"
    do_stop
    die "Kafka did not start in $DIR"
  fi
  if ((SECURE && !reused)); then
    log "granting the role principals their ACLs under the prefix $ACL_PREFIX"
    grant_roles
  fi
  log "ready in $((SECONDS - t0))s: $NODES node(s), bootstrap $BOOTSTRAP$( ((SECURE)) && echo ", SASL/SCRAM-SHA-512 + ACLs: $DIR/users") (logs: $DIR/node*/server.log)"
  echo "$BOOTSTRAP"
}

do_stop() { # DIR set
  local nd pids=() pid deadline
  for nd in "$DIR"/node*; do
    [ -d "$nd" ] || continue
    if node_alive "$nd"; then
      pid=$(<"$nd/pid")
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$nd")
    fi
  done
  ((${#pids[@]})) || { rm -f "$DIR"/node*/pid; return 0; }
  log "stopping ${#pids[@]} node(s) in $DIR"
  deadline=$((SECONDS + STOP_TIMEOUT))
  while :; do
    local left=()
    for nd in "${pids[@]}"; do node_alive "$nd" && left+=("$nd"); done
    ((${#left[@]})) || break
    if ((SECONDS >= deadline)); then
      for nd in "${left[@]}"; do
        log "$nd did not stop within ${STOP_TIMEOUT}s: SIGKILL"
        kill -KILL "$(<"$nd/pid")" 2>/dev/null || true
      done
      sleep 0.5
      break
    fi
    sleep 0.2
  done
  rm -f "$DIR"/node*/pid
}

cmd_stop() {
  parse_common "$@"
  ((${#REST[@]} == 0)) || die "stop: unexpected argument '${REST[0]}'"
  [ -d "$DIR" ] || return 0
  DIR=$(cd "$DIR" && pwd -P)
  lock 7 "$DIR/.lock"
  do_stop
}

# perf/tool: run a class from the cached jars; stdout is the tool's own.
cmd_java() { # class opts-var args...
  local class=$1 opts=$2
  shift 2
  parse_common "$@"
  need_java
  ensure_libs
  local args=("${REST[@]}")
  # perf without --bootstrap-server talks to the cluster in DIR.
  if [ "$class" = org.apache.kafka.tools.ProducerPerformance ] && [ -f "$DIR/bootstrap" ] &&
    ! printf '%s\n' "${args[@]}" | grep -qE '^--bootstrap-server|bootstrap\.servers='; then
    args+=(--bootstrap-server "$(<"$DIR/bootstrap")")
  fi
  if [ -z "$class" ]; then
    ((${#args[@]})) || die "tool: name a main class, e.g. org.apache.kafka.tools.TopicCommand"
    class=${args[0]}
    args=("${args[@]:1}")
  fi
  # shellcheck disable=SC2086 # option strings are meant to split into words
  exec "$JAVA" $opts -Dlog4j2.configurationFile="$TPL/tools-log4j2.properties" \
    -cp "$LIBS/*" "$class" "${args[@]}"
}

case ${1:-} in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  perf) shift; cmd_java org.apache.kafka.tools.ProducerPerformance "$PERF_OPTS" "$@" ;;
  tool) shift; cmd_java "" "$TOOL_OPTS" "$@" ;;
  *) usage ;;
esac
