# Sourced by the scripts with their name: `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" NAME`.
# Gives them `log` and `die`, which print on stderr after `NAME: `, and TOOLS_DIR, where the
# tools they install live (PIPECTL_TOOLS_DIR, default ~/.cache/pipectl-tools).

readonly SCRIPT_NAME="$1"
# shellcheck disable=SC2034  # used by the scripts that source this one
readonly TOOLS_DIR="${PIPECTL_TOOLS_DIR:-${HOME:-/root}/.cache/pipectl-tools}"

log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
