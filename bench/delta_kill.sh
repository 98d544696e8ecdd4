#!/usr/bin/env bash
# The Delta sink's kill -9 proof at the issue's size: the integration test
# `delta::kill_9_during_a_full_load_and_a_merge_then_rerun_commits_every_row_once` with
# ROWS rows (default 1,000,000) and KILLS kills (default 20) of the full load and of the merge
# (the test suite runs it with 200,000 rows and 5 kills). Needs PostgreSQL; installs the Delta
# readers (scripts/delta-readers.sh) when missing.
#
#   bench/delta_kill.sh   (builds the test binary with the whole workspace's features, as scripts/test.sh does)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/delta-readers.sh install
eval "$(bash scripts/delta-readers.sh env)"
# A missing service fails the run instead of skipping the test.
PIPECTL_TEST_REQUIRE_SERVICES=1 PIPECTL_DELTA_KILL_ROWS=${ROWS:-1000000} PIPECTL_DELTA_KILLS=${KILLS:-20} \
    cargo nextest run --workspace --test tests --no-capture \
    -E 'test(=delta::kill_9_during_a_full_load_and_a_merge_then_rerun_commits_every_row_once)'
