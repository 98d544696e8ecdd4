#!/usr/bin/env bash
# A private PostgreSQL 15 cluster with wal_level=logical for the change data capture tests.
#
#   scripts/pg-logical.sh start    create the cluster if needed and start it (fast when running)
#   scripts/pg-logical.sh stop     stop it (the data dir stays, so the next start is quick)
#   scripts/pg-logical.sh status   exit 0 when the cluster answers
#   scripts/pg-logical.sh env      print the `export` line for the tests
#                                  (eval "$(scripts/pg-logical.sh env)")
#
# The machine's own server runs with wal_level=replica and other tests share it, so CDC tests get
# a cluster of their own: initdb into a data dir, trust authentication (loopback only), a free
# loopback port chosen at the first start and kept in the data dir's parent, and enough
# replication slots and WAL senders for tests running at once. PostgreSQL refuses to run as
# root: under root the cluster belongs to the `postgres` user and its commands run through
# runuser.
#
# Settings (environment):
#   PIPECTL_PG_LOGICAL_DIR   where the cluster lives (default ${TMPDIR:-/tmp}/pipectl-pg-logical-UID;
#                            not under $HOME: the postgres user cannot enter /root)
#   PIPECTL_PG_BIN           PostgreSQL's binaries (default /usr/lib/postgresql/15/bin)
set -euo pipefail

readonly BASE="${PIPECTL_PG_LOGICAL_DIR:-${TMPDIR:-/tmp}/pipectl-pg-logical-$(id -u)}"
readonly DATA="${BASE}/data"
readonly PORT_FILE="${BASE}/port"
readonly LOG_FILE="${BASE}/server.log"
readonly LOCK_FILE="${BASE}/lock"
readonly PG_BIN="${PIPECTL_PG_BIN:-/usr/lib/postgresql/15/bin}"
readonly HOST="127.0.0.1"
readonly DATABASE="test"
readonly START_TIMEOUT_SECS=60

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" pg-logical

# Runs a PostgreSQL binary as the cluster's owner.
as_owner() {
    if (($(id -u) == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port() { cat "$PORT_FILE" 2>/dev/null || true; }

answers() {
    local p
    p="$(port)"
    [[ -n "$p" ]] && "${PG_BIN}/pg_isready" -q -h "$HOST" -p "$p" -t 2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

init_cluster() {
    [[ -x "${PG_BIN}/initdb" ]] || die "${PG_BIN}/initdb not found: install PostgreSQL 15 or set PIPECTL_PG_BIN"
    log "creating the cluster in ${DATA} (first start only)"
    as_owner "${PG_BIN}/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 \
        --locale=C.UTF-8 >"${BASE}/initdb.log" 2>&1 ||
        { tail -n 20 "${BASE}/initdb.log" >&2; die "initdb failed (log above)"; }
}

start_server() {
    local p="$1"
    # fd 9 (the lock) is closed for the server, else it would hold the lock as long as it runs.
    # fsync=off: a test cluster need not survive a machine crash; a killed server loses nothing.
    # The socket goes in the data dir: the machine's /var/run/postgresql belongs to its server.
    as_owner "${PG_BIN}/pg_ctl" -D "$DATA" -l "$LOG_FILE" -w -t "$START_TIMEOUT_SECS" \
        -o "-p ${p} -k ${DATA} -c listen_addresses=${HOST} -c wal_level=logical -c max_replication_slots=40 -c max_wal_senders=40 -c fsync=off" \
        start >&2 9>&-
}

cmd_start() {
    mkdir -p "$BASE"
    if (($(id -u) == 0)); then
        getent passwd postgres >/dev/null || die "running as root needs a 'postgres' user to own the cluster"
        # The server writes its log here; the dir must be the owner's (and enterable by it).
        chown postgres "$BASE"
    fi
    # Two test runs at once must not initdb the same dir or race for the port.
    take_lock "$LOCK_FILE"
    if answers; then
        log "already running on ${HOST}:$(port)"
        ensure_database
        return 0
    fi
    if [[ ! -f "${DATA}/PG_VERSION" ]]; then
        rm -rf "$DATA"
        init_cluster
    fi
    # A server killed without a clean stop leaves its pid file; pg_ctl refuses to start on it
    # only while that pid lives, so a stale one is harmless.
    local p
    p="$(free_port)"
    printf '%s\n' "$p" >"$PORT_FILE"
    log "starting on ${HOST}:${p} (log: ${LOG_FILE})"
    if ! start_server "$p"; then
        tail -n 20 "$LOG_FILE" >&2 || true
        die "the cluster did not start (log above)"
    fi
    answers || die "the cluster started but does not answer on ${HOST}:${p}"
    ensure_database
    log "ready: $(url)"
}

ensure_database() {
    local p exists
    p="$(port)"
    exists="$("${PG_BIN}/psql" -h "$HOST" -p "$p" -U postgres -d postgres -Atc \
        "select 1 from pg_database where datname = '${DATABASE}'")" ||
        die "cannot query the cluster on ${HOST}:${p}"
    if [[ "$exists" != 1 ]]; then
        "${PG_BIN}/psql" -h "$HOST" -p "$p" -U postgres -d postgres -qc "create database ${DATABASE}" ||
            die "cannot create database ${DATABASE}"
    fi
}

cmd_stop() {
    if [[ ! -f "${DATA}/postmaster.pid" ]]; then
        log "not running"
        return 0
    fi
    as_owner "${PG_BIN}/pg_ctl" -D "$DATA" -m fast -w stop >&2 || log "pg_ctl stop failed"
}

cmd_status() { report_status "answering on ${HOST}:$(port)" "not answering"; }

url() { printf 'postgres://postgres@%s:%s/%s' "$HOST" "$(port)" "$DATABASE"; }

cmd_env() {
    [[ -n "$(port)" ]] || die "the cluster was never started: run scripts/pg-logical.sh start"
    printf 'export PIPECTL_TEST_PG_LOGICAL_URL=%q\n' "$(url)"
}

dispatch "start|stop|status|env" "${1:-}"
