#!/usr/bin/env bash
# Runs the whole test suite: checks (and starts) the local services, starts a local S3 server
# (moto) for the S3 tests, a private PostgreSQL cluster with wal_level=logical for the CDC
# tests (scripts/pg-logical.sh) and a private MariaDB with a row-based binlog for the MySQL CDC
# tests (scripts/mariadb-binlog.sh), installs the independent Delta readers (Python deltalake,
# DuckDB) for the Delta tests, then runs every test with cargo-nextest. Extra arguments go to
# `cargo nextest run`, e.g. `bash scripts/test.sh s3::` to run the S3 tests only.
#
# Under CI (CI=true) a missing service is an error and the tests are told to fail rather than
# skip (PIPECTL_TEST_REQUIRE_SERVICES=1); elsewhere the tests that need a missing service skip.
# Exits with the status of the test run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
cd "$ROOT"

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" test.sh

in_ci=false
if [[ "${CI:-}" == "true" ]]; then
    in_ci=true
    # Outside the clone, so dependencies built by an earlier CI run on this machine are reused.
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/pipectl-target}"
    export PIPECTL_TEST_REQUIRE_SERVICES=1
fi

if ! bash "$ROOT/scripts/check-services.sh"; then
    if [[ "$in_ci" == true ]]; then
        log "error: a service the tests need is missing (see above)"
        exit 1
    fi
    log "warning: a service is missing; the tests that need it will skip"
fi

# Runs `scripts/SCRIPT.sh ACTION` and takes the variables its `env` prints. When the action
# fails: an error (FAILED) under CI, otherwise a warning (WITHOUT) and the tests that need it skip.
provide() { # script action failed without
    if bash "$ROOT/scripts/$1.sh" "$2"; then
        eval "$(bash "$ROOT/scripts/$1.sh" env)"
    elif [[ "$in_ci" == true ]]; then
        log "error: $3 (see above)"
        exit 1
    else
        log "warning: $4"
    fi
}

# Each run gets its own S3 server on a free port unless one is named, so two test runs at once
# (two checkouts on one machine) never stop each other's server.
if [[ -z "${PIPECTL_S3_PORT:-}" ]]; then
    PIPECTL_S3_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    export PIPECTL_S3_PORT
fi

# Only a server this run started is stopped at exit: one that already answered belongs to
# someone else (another terminal, a developer's long-running server).
started_s3=false
# shellcheck disable=SC2317  # called through the EXIT trap
stop_s3() {
    if [[ "$started_s3" == true ]]; then
        bash "$ROOT/scripts/s3-server.sh" stop || true
    fi
}
trap stop_s3 EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ! bash "$ROOT/scripts/s3-server.sh" status 2>/dev/null; then
    started_s3=true
fi
provide s3-server start "the local S3 server did not start" \
    "no local S3 server; the S3 tests will skip"

# The change data capture tests need wal_level=logical, which the machine's server does not
# have: they get a private cluster. It is left running at exit (a later run reuses it in 0.1 s),
# because two test runs at once share it and one must not stop the other's.
provide pg-logical start "the logical-replication PostgreSQL cluster did not start" \
    "no logical-replication PostgreSQL cluster; the CDC tests will skip"
# The MySQL/MariaDB change data capture tests need a row-based binlog, which the machine's
# MariaDB does not write (log_bin=OFF): they get a private server, left running at exit like the
# logical cluster.
provide mariadb-binlog start "the binlog MariaDB server did not start" \
    "no binlog MariaDB server; the MySQL CDC tests will skip"

# The Delta tests read what pipectl writes with other implementations too.
provide delta-readers install "installing the Delta readers failed" \
    "no Delta readers; the test reading Delta tables with them will skip"

runner=(cargo nextest run --workspace --all-targets --no-fail-fast)
if ! cargo nextest --version >/dev/null 2>&1; then
    log "cargo-nextest is missing; installing it (cargo install cargo-nextest --locked)"
    install_started=$SECONDS
    # Its own target dir: the install must not leave its build in the project's.
    if env -u CARGO_TARGET_DIR cargo install cargo-nextest --locked; then
        log "cargo-nextest installed in $((SECONDS - install_started)) s"
    else
        log "warning: installing cargo-nextest failed; falling back to cargo test"
        runner=(cargo test --workspace --all-targets --no-fail-fast)
    fi
fi

status=0
# nextest does not run doctests. They run first so the runner's summary stays the last lines.
# A filter given on the command line selects tests by nextest's rules, so it skips them.
if (($# == 0)); then
    log "running: cargo test --workspace --doc"
    cargo test --workspace --doc || status=$?
fi

# Tests that find no service return early, and nextest counts them as passed: each one writes
# a SKIP line here, listed after the run so a local run says what it did not test.
PIPECTL_TEST_SKIP_LOG="$(mktemp -t pipectl-skipped.XXXXXX)"
export PIPECTL_TEST_SKIP_LOG
trap 'rm -f "$PIPECTL_TEST_SKIP_LOG"; stop_s3' EXIT

log "running: ${runner[*]} $*"
test_status=0
"${runner[@]}" "$@" || test_status=$?
if [[ -s "$PIPECTL_TEST_SKIP_LOG" ]]; then
    log "warning: $(wc -l <"$PIPECTL_TEST_SKIP_LOG") tests were skipped (counted as passed above) because a service is missing:"
    sort "$PIPECTL_TEST_SKIP_LOG" >&2
else
    log "no test was skipped for a missing service"
fi
if ((test_status != 0)); then
    status=$test_status
elif ((status != 0)); then
    log "error: the doctests failed (see above)"
fi
exit "$status"
