#!/usr/bin/env bash
# Local S3-compatible server (moto) on loopback for the S3 tests.
#
#   scripts/s3-server.sh start    install moto if needed, start it, create the test bucket
#   scripts/s3-server.sh stop     stop the server this script started (by its pid file)
#   scripts/s3-server.sh status   exit 0 when a server answers on the endpoint
#   scripts/s3-server.sh env      print `export` lines for the tests (eval "$(scripts/s3-server.sh env)")
#
# moto lives in a virtualenv under the tools dir so it survives between runs on a warm machine and
# never touches the system's or pyenv's site-packages. moto keeps buckets in memory: a restart
# empties them, so tests must not rely on objects left by an earlier run.
#
# Settings (environment):
#   PIPECTL_TOOLS_DIR   where the virtualenv, pid file and log live (default ~/.cache/pipectl-tools)
#   PIPECTL_S3_PORT     port on 127.0.0.1 (default 5000)
#   PIPECTL_S3_BUCKET   bucket created at start (default pipectl-test)
#   PIPECTL_PYTHON      interpreter used to create the virtualenv (default: python3 on PATH)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" s3-server

# The pin keeps CI reproducible: a new moto release cannot change behaviour under the tests.
readonly MOTO_VERSION="5.2.5"
readonly HOST="127.0.0.1"
readonly PORT="${PIPECTL_S3_PORT:-5000}"
readonly BUCKET="${PIPECTL_S3_BUCKET:-pipectl-test}"
readonly ENDPOINT="http://${HOST}:${PORT}"
readonly VENV="${TOOLS_DIR}/moto-venv"
readonly PID_FILE="${TOOLS_DIR}/moto-${PORT}.pid"
readonly LOG_FILE="${TOOLS_DIR}/moto-${PORT}.log"
readonly LOCK_FILE="${TOOLS_DIR}/moto.lock"
readonly START_TIMEOUT_SECS=60

# shellcheck source=scripts/python-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/python-venv.sh"

# Prints the HTTP status of a request (000 when nothing answers). curl when present, else Python,
# because a contributor's machine may lack either.
http_status() {
    local method="$1" url="$2"
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X "$method" "$url" || true
    else
        "$(pick_python)" - "$method" "$url" <<'EOF' || echo 000
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[2], method=sys.argv[1])
try:
    with urllib.request.urlopen(req, timeout=5) as resp:
        print(resp.status)
except urllib.error.HTTPError as err:
    print(err.code)
except Exception:
    print("000")
EOF
    fi
}

answers() {
    local code
    code="$(http_status GET "${ENDPOINT}/")"
    [[ "$code" != "000" ]]
}

# The virtualenv's own python is preferred once it exists; before that, any python3 with venv.
pick_python() {
    if [[ -n "${PIPECTL_PYTHON:-}" ]]; then
        printf '%s\n' "$PIPECTL_PYTHON"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        printf '%s\n' /usr/bin/python3
    fi
}

moto_installed() {
    [[ -x "${VENV}/bin/moto_server" ]] &&
        "${VENV}/bin/python" - "$MOTO_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
import moto, boto3, flask  # noqa: F401  (the server needs all three)
sys.exit(0 if version("moto") == sys.argv[1] else 1)
EOF
}

install_moto() {
    if moto_installed; then
        return 0
    fi
    local python started
    python="$(pick_python)"
    started=$SECONDS
    log "installing moto ${MOTO_VERSION} into ${VENV} (first run only)"
    new_venv "$python" "$VENV"
    "${VENV}/bin/python" -m pip install --no-input --quiet --disable-pip-version-check \
        "moto[server]==${MOTO_VERSION}" >&2 ||
        die "pip install 'moto[server]==${MOTO_VERSION}' failed (see above)"
    moto_installed || die "moto installed but does not import; remove ${VENV} and retry"
    log "moto installed in $((SECONDS - started)) s"
}

create_bucket() {
    local code
    code="$(http_status PUT "${ENDPOINT}/${BUCKET}")"
    case "$code" in
        # 409 BucketAlreadyOwnedByYou: an earlier start made it.
        200 | 409) ;;
        *) die "creating bucket ${BUCKET} at ${ENDPOINT} answered HTTP ${code}" ;;
    esac
}

# A pid file may outlive its process and the pid be reused: only a moto_server counts as ours.
running_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    [[ -r "/proc/${pid}/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -q 'moto_server' || return 1
    printf '%s\n' "$pid"
}

cmd_start() {
    mkdir -p "$TOOLS_DIR"
    # Two test runs at once must not install into the same venv or race for the port.
    take_lock "$LOCK_FILE"
    if answers; then
        log "a server already answers on ${ENDPOINT}; reusing it"
        create_bucket
        return 0
    fi
    install_moto
    log "starting moto on ${ENDPOINT} (log: ${LOG_FILE})"
    # Closing fd 9 in the child keeps the lock from living as long as the server; the log is
    # truncated so it holds only the latest server's output instead of growing run after run.
    nohup "${VENV}/bin/moto_server" -H "$HOST" -p "$PORT" >"$LOG_FILE" 2>&1 9>&- </dev/null &
    local pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    local deadline=$((SECONDS + START_TIMEOUT_SECS))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "moto exited during start-up (log above: ${LOG_FILE})"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$LOG_FILE" >&2 || true
            kill "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            die "moto did not answer on ${ENDPOINT} within ${START_TIMEOUT_SECS} s"
        fi
        sleep 0.2
    done
    create_bucket
    log "ready: ${ENDPOINT}, bucket ${BUCKET}, pid ${pid}"
}

cmd_stop() {
    local pid
    if ! pid="$(running_pid)"; then
        rm -f "$PID_FILE"
        log "no server started by this script is running"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            log "moto (pid ${pid}) ignored SIGTERM for 10 s; sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    rm -f "$PID_FILE"
    log "stopped moto (pid ${pid})"
}

cmd_status() { report_status "answering on ${ENDPOINT}" "nothing answers on ${ENDPOINT}"; }

cmd_env() {
    printf 'export PIPECTL_TEST_S3_ENDPOINT=%q\n' "$ENDPOINT"
    printf 'export PIPECTL_TEST_S3_BUCKET=%q\n' "$BUCKET"
    printf 'export AWS_ACCESS_KEY_ID=%q\n' testing
    printf 'export AWS_SECRET_ACCESS_KEY=%q\n' testing
    printf 'export AWS_REGION=%q\n' us-east-1
}

dispatch "start|stop|status|env" "${1:-}"
