#!/usr/bin/env bash
# Independent readers of the Delta tables pipectl writes: the Python `deltalake` package and
# DuckDB with its delta extension, in a virtualenv the Delta tests run (crates/delta).
#
#   scripts/delta-readers.sh install   install them if needed (first run only)
#   scripts/delta-readers.sh env       print `export` lines for the tests (eval "$(... env)")
#
# DuckDB's `INSTALL delta` downloads the extension, which fails without the internet; the
# extension comes from its PyPI wheel instead, and the tests `LOAD` the file the wheel ships.
#
# Settings (environment):
#   PIPECTL_TOOLS_DIR   where the virtualenv lives (default ~/.cache/pipectl-tools)
#   PIPECTL_PYTHON      interpreter used to create the virtualenv (default: python3 on PATH)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" delta-readers

# Pins keep CI reproducible; the extension's version must be DuckDB's.
readonly DELTALAKE_VERSION="1.6.6"
readonly DUCKDB_VERSION="1.5.5"
readonly PYARROW_VERSION="26.0.1"
# DuckDB hands out zoned timestamps through pytz.
readonly PYTZ_VERSION="2026.6"
readonly VENV="${TOOLS_DIR}/delta-readers-venv"
readonly LOCK_FILE="${TOOLS_DIR}/delta-readers.lock"

# shellcheck source=scripts/python-venv.sh
source "$(dirname "${BASH_SOURCE[0]}")/python-venv.sh"


installed() {
    [[ -x "${VENV}/bin/python" ]] &&
        "${VENV}/bin/python" - "$DELTALAKE_VERSION" "$DUCKDB_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
import deltalake, duckdb, pyarrow, pytz, duckdb_extension_delta  # noqa: F401
sys.exit(0 if (version("deltalake"), version("duckdb")) == (sys.argv[1], sys.argv[2]) else 1)
PY
}

cmd_install() {
    mkdir -p "$TOOLS_DIR"
    # Two test runs at once must not install into the same virtualenv.
    take_lock "$LOCK_FILE"
    if installed; then
        return 0
    fi
    local python="${PIPECTL_PYTHON:-$(command -v python3 || echo /usr/bin/python3)}"
    local started=$SECONDS
    log "installing deltalake ${DELTALAKE_VERSION}, duckdb ${DUCKDB_VERSION} and its delta extension into ${VENV} (first run only)"
    new_venv "$python" "$VENV"
    "${VENV}/bin/python" -m pip install --no-input --quiet --disable-pip-version-check \
        "deltalake==${DELTALAKE_VERSION}" "duckdb==${DUCKDB_VERSION}" \
        "duckdb-extension-delta==${DUCKDB_VERSION}" "pyarrow==${PYARROW_VERSION}" "pytz==${PYTZ_VERSION}" >&2 ||
        die "pip install of the Delta readers failed (see above)"
    installed || die "the Delta readers installed but do not import; remove ${VENV} and retry"
    log "installed in $((SECONDS - started)) s"
}

cmd_env() {
    printf 'export PIPECTL_DELTA_PYTHON=%q\n' "${VENV}/bin/python"
}

dispatch "install|env" "${1:-}"
