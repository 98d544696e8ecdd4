# Sourced by the scripts with their name: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" NAME`.
# Gives them `log` and `die`, which print on stderr after `NAME: `, `dispatch` for their
# commands, `take_lock` and `report_status`, and TOOLS_DIR, where the tools they install live (PIPECTL_TOOLS_DIR, default
# ~/.cache/pipectl-tools).

readonly SCRIPT_NAME="$1"
# shellcheck disable=SC2034  # used by the scripts that source this one
readonly TOOLS_DIR="${PIPECTL_TOOLS_DIR:-${HOME:-/root}/.cache/pipectl-tools}"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Runs `cmd_COMMAND` when COMMAND is one of COMMANDS (`start|stop|status|env`); otherwise
# prints the usage and exits 2.
dispatch() { # commands command
    local commands="$1" command="${2:-}"
    if [[ -n "$command" && "|${commands}|" == *"|${command}|"* ]]; then
        "cmd_${command}"
    else
        printf 'usage: %s %s\n' "$0" "$commands" >&2
        exit 2
    fi
}

# Holds an exclusive lock on FILE (on fd 9, where flock exists) until the script exits, so two
# test runs at once take turns. A server started later must close fd 9 (`9>&-`), else it
# holds the lock as long as it runs.
take_lock() { # file
    exec 9>"$1"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi
}

# `status`: logs UP and succeeds when the script's `answers` does, else logs DOWN and fails.
report_status() { # up down
    if answers; then
        log "$1"
        return 0
    fi
    log "$2"
    return 1
}
