#!/usr/bin/env bash
# Makes sure what `make run` and `make test` need is on this machine: Go and
# the PostgreSQL server binaries (the embedded Postgres runs them; as root it
# runs them as the `postgres` user). Installs from Debian's packages when it
# can; prints what is missing otherwise.
set -euo pipefail

if ! command -v go >/dev/null 2>&1; then
  echo "logbook needs Go 1.26+ on PATH" >&2
  exit 1
fi

have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v pg_ctl >/dev/null 2>&1 || [ -n "${LOGBOOK_PG_BIN:-}" ]; }

if ! have_pg; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing PostgreSQL server binaries from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
    # The packaged cluster is not used: logbook starts its own.
    if command -v pg_lsclusters >/dev/null 2>&1; then
      pg_lsclusters -h 2>/dev/null | while read -r ver name _; do pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true; done
    fi
  else
    echo "logbook needs the PostgreSQL server binaries (initdb, postgres): install postgresql, or set LOGBOOK_PG_BIN" >&2
    exit 1
  fi
fi

# --java: also Java 17+ and Maven, for the real-Kafka suite (deploy/local/kafka.sh).
if [ "${1:-}" = "--java" ] && { ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Java and Maven from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null
  else
    echo "the real-Kafka suite needs Java 17+ and Maven on PATH" >&2
    exit 1
  fi
fi

if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi
