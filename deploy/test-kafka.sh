#!/usr/bin/env bash
# make test-kafka: the integration and end-to-end suites of the spine against a
# real three-node Apache Kafka 4.x cluster (KRaft, loopback, --secure:
# SASL/SCRAM-SHA-512 and ACLs), plus the broker and process fault tests that
# need one. The broker is chosen by configuration (LOGBOOK_TEST_KAFKA_BROKERS,
# LOGBOOK_TEST_KAFKA_SASL: the tests connect as the cluster's admin, since
# they make topics of their own; TestServeRolesUnderTheirOwnPrincipals runs
# each role as its own principal under its ACLs), not by copied tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/local/ensure-tools.sh --java
dir=$(mktemp -d "${TMPDIR:-/tmp}/logbook-kafka-test.XXXXXX")
# On a failure, the failed tests' own messages come last, where a reader of
# the run's tail looks (the streams above keep only the RUN/PASS/FAIL lines).
why() {
	awk '/^=== (RUN|CONT) /{cur=$3; in_msg=0}
		/^ +[A-Za-z0-9_]+_test\.go:[0-9]+: /{in_msg=1}
		/^(=== |--- |ok|PASS|FAIL)/{in_msg=0}
		in_msg && n[cur]++ < 60 {msg[cur]=msg[cur] $0 "\n"}
		/^ *--- FAIL: /{name=$3; if (name in msg) printf "why %s failed:\n%s", name, msg[name]}' "$dir"/*.log 2>/dev/null || true
}
cleanup() {
	local rc=$?
	[ "$rc" -eq 0 ] || why >&2
	bash deploy/local/kafka.sh stop --dir "$dir" >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

bootstrap=$(bash deploy/local/kafka.sh start --nodes 3 --secure --dir "$dir" | tail -n 1)
echo "real broker: $bootstrap (SASL/SCRAM-SHA-512, ACLs)" >&2
export LOGBOOK_TEST_KAFKA_BROKERS="$bootstrap"
LOGBOOK_TEST_KAFKA_SASL="admin:$(<"$dir/users/admin.password")"
export LOGBOOK_TEST_KAFKA_SASL
export LOGBOOK_TEST_KAFKA_CLUSTER_DIR="$dir"

# Dev-mode tests always use the embedded broker and already ran in `make
# test`; here run everything that talks to the configured broker.
show() { grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|figures:|serve kill test:|zombie after resume:' || true; }
# Watermill's TestReconnect kills a broker: it runs on its own, after the
# packages that must not see that, and the node is back before the next step.
reconnect='^TestPubSub/^TestReconnect$'
go test -count=1 -timeout 40m -v -skip "$reconnect" ./internal/kafka/... ./internal/keyring/... ./internal/watermillkafka/... ./consumers/... ./projections/... ./internal/logexport/... 2>&1 | tee "$dir/integration.log" | show
go test -count=1 -timeout 10m -v -run "$reconnect" ./internal/watermillkafka/ 2>&1 | tee "$dir/reconnect.log" | show
flock "$dir/node2/restart.lock" bash "$dir/node2/start.sh"
go test -count=1 -timeout 40m -v -run 'Serve|Backlog|Faults|Fenced|Recovery|ProjectionsRebuild' ./cmd/logbook/ 2>&1 | tee "$dir/e2e.log" | show
