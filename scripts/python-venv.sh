# Sourced by the scripts that install Python tools (scripts/s3-server.sh, scripts/delta-readers.sh):
# `new_venv PYTHON VENV` creates an empty virtualenv at VENV with PYTHON, installing Debian's
# python3-venv first when PYTHON lacks the venv module and we may (root with apt-get).
# Expects `log` and `die` (scripts/lib.sh).

new_venv() {
    local python="$1" venv="$2"
    if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        # Debian splits venv/ensurepip out of python3; install it when we may.
        if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "python3 lacks venv; installing python3-venv with apt-get"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
            python=/usr/bin/python3
        else
            die "${python} has no venv module; install python3-venv (Debian/Ubuntu) and retry"
        fi
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || die "could not create the virtualenv ${venv}"
}
