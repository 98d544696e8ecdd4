#!/usr/bin/env bash
# A private MariaDB server with a row-based binlog for the MySQL/MariaDB change data capture tests.
#
#   scripts/mariadb-binlog.sh start    create the data dir if needed and start the server (fast when running)
#   scripts/mariadb-binlog.sh stop     stop it (the data dir stays, so the next start is quick)
#   scripts/mariadb-binlog.sh status   exit 0 when the server answers
#   scripts/mariadb-binlog.sh env      print the `export` line for the tests
#                                      (eval "$(scripts/mariadb-binlog.sh env)")
#
# The machine's own MariaDB runs with log_bin=OFF and other tests share it, so the CDC tests get
# a server of their own: mariadb-install-db into a data dir, then mariadbd with --log-bin,
# --binlog-format=ROW, --binlog-row-image=FULL and --server-id=1, listening on loopback only on a
# free port chosen at the first start (kept beside the data dir) and on a socket in that dir.
# No option file is read (--no-defaults), so the machine's /etc/mysql settings do not leak in.
# `root` has no password, from the socket and from 127.0.0.1, and a `test` database exists.
# mariadbd refuses to run as root: under root the server runs as the `mysql` user.
#
# Settings (environment):
#   PIPECTL_MARIADB_BINLOG_DIR   where the server lives (default ${TMPDIR:-/tmp}/pipectl-mariadb-binlog-UID)
#   PIPECTL_MARIADB_BIN          the directory holding mariadbd (default /usr/sbin)
set -euo pipefail

readonly BASE="${PIPECTL_MARIADB_BINLOG_DIR:-${TMPDIR:-/tmp}/pipectl-mariadb-binlog-$(id -u)}"
readonly DATA="${BASE}/data"
readonly SOCKET="${BASE}/mariadb.sock"
readonly PORT_FILE="${BASE}/port"
readonly LOG_FILE="${BASE}/server.log"
readonly PID_FILE="${BASE}/mariadbd.pid"
readonly LOCK_FILE="${BASE}/lock"
readonly SERVER_BIN="${PIPECTL_MARIADB_BIN:-/usr/sbin}/mariadbd"
readonly HOST="127.0.0.1"
readonly DATABASE="test"
readonly START_TIMEOUT_SECS=60

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" mariadb-binlog

client() {
    if command -v mariadb >/dev/null 2>&1; then
        mariadb --no-defaults --socket="$SOCKET" -uroot "$@"
    else
        mysql --no-defaults --socket="$SOCKET" -uroot "$@"
    fi
}

port() { cat "$PORT_FILE" 2>/dev/null || true; }

answers() {
    [[ -S "$SOCKET" ]] && client -N -e 'select 1' >/dev/null 2>&1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The user the server runs as: itself, or `mysql` under root.
server_user() {
    if (($(id -u) == 0)); then
        printf 'mysql'
    else
        id -un
    fi
}

init_datadir() {
    command -v mariadb-install-db >/dev/null 2>&1 ||
        die "mariadb-install-db not found: install the MariaDB server (apt-get install mariadb-server)"
    log "creating the data dir ${DATA} (first start only)"
    rm -rf "$DATA"
    mkdir -p "$DATA"
    if (($(id -u) == 0)); then
        chown mysql "$DATA"
    fi
    # `normal`: root has no password and no unix_socket tie to the OS user, so tests connect
    # over TCP as root too.
    mariadb-install-db --no-defaults --user="$(server_user)" --datadir="$DATA" \
        --auth-root-authentication-method=normal --skip-test-db >"${BASE}/install.log" 2>&1 ||
        { tail -n 20 "${BASE}/install.log" >&2; die "mariadb-install-db failed (log above)"; }
    touch "${DATA}/.pipectl-installed"
}

start_server() {
    local p="$1"
    rm -f "$SOCKET" "$PID_FILE"
    # fd 9 (the lock) is closed for the server, else it would hold the lock as long as it runs.
    # sync_binlog=0 and innodb_flush_log_at_trx_commit=2: a test server need not survive a
    # machine crash; a killed server loses nothing that the tests rely on.
    setsid "$SERVER_BIN" --no-defaults --user="$(server_user)" --datadir="$DATA" \
        --socket="$SOCKET" --port="$p" --bind-address="$HOST" --skip-name-resolve \
        --pid-file="$PID_FILE" --log-error="$LOG_FILE" \
        --log-bin=binlog --binlog-format=ROW --binlog-row-image=FULL --server-id=1 \
        --sync-binlog=0 --innodb-flush-log-at-trx-commit=2 --innodb-buffer-pool-size=128M \
        --max-connections=300 --character-set-server=utf8mb4 \
        >/dev/null 2>&1 </dev/null 9>&- &
    local waited=0
    until answers; do
        if ((waited >= START_TIMEOUT_SECS * 10)); then
            return 1
        fi
        if [[ -f "$LOG_FILE" ]] && ! kill -0 "$!" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

ensure_users() {
    client -e "create user if not exists 'root'@'${HOST}';
        grant all privileges on *.* to 'root'@'${HOST}' with grant option;
        create database if not exists ${DATABASE};" ||
        die "cannot create the root@${HOST} user and the ${DATABASE} database"
}

cmd_start() {
    mkdir -p "$BASE"
    if (($(id -u) == 0)); then
        getent passwd mysql >/dev/null || die "running as root needs a 'mysql' user to run the server"
        # The server writes its log and socket here.
        chown mysql "$BASE"
    fi
    [[ -x "$SERVER_BIN" ]] || die "${SERVER_BIN} not found: install the MariaDB server or set PIPECTL_MARIADB_BIN"
    # Two test runs at once must not install the same dir or race for the port.
    take_lock "$LOCK_FILE"
    if answers; then
        log "already running on ${HOST}:$(port)"
        ensure_users
        return 0
    fi
    if [[ ! -f "${DATA}/.pipectl-installed" ]]; then
        init_datadir
    fi
    local p
    p="$(free_port)"
    printf '%s\n' "$p" >"$PORT_FILE"
    log "starting on ${HOST}:${p} (log: ${LOG_FILE})"
    if ! start_server "$p"; then
        tail -n 20 "$LOG_FILE" >&2 || true
        die "the server did not start (log above)"
    fi
    ensure_users
    log "ready: $(url)"
}

cmd_stop() {
    if [[ ! -f "$PID_FILE" ]]; then
        log "not running"
        return 0
    fi
    local pid waited=0
    pid="$(cat "$PID_FILE")"
    kill -TERM "$pid" 2>/dev/null || { log "not running"; return 0; }
    while kill -0 "$pid" 2>/dev/null; do
        if ((waited >= START_TIMEOUT_SECS * 10)); then
            die "the server (pid ${pid}) did not stop"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "stopped"
}

cmd_status() { report_status "answering on ${HOST}:$(port)" "not answering"; }

url() { printf 'mysql://root@%s:%s/%s' "$HOST" "$(port)" "$DATABASE"; }

cmd_env() {
    [[ -n "$(port)" ]] || die "the server was never started: run scripts/mariadb-binlog.sh start"
    printf 'export PIPECTL_TEST_MARIADB_BINLOG_URL=%q\n' "$(url)"
}

dispatch "start|stop|status|env" "${1:-}"
