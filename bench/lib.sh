# Sourced first by the benchmarks that run pipectl. Sets ROOT (the repository), BIN (the
# fast-profile pipectl, PIPECTL_BIN overrides it; exits 2 saying how to build it when it is
# missing), WORK (a fresh temporary folder, removed at exit: a script with more to clean up sets
# its own EXIT trap, removing WORK too), PG_URL (PIPECTL_TEST_POSTGRES_URL, this machine's
# server by default) and `pg` (psql against PG_URL, stopping at the first error).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${PIPECTL_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/fast/pipectl}
[[ -x "$BIN" ]] || { echo "no pipectl at $BIN; run: cargo build --profile fast" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PG_URL=${PIPECTL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

pg() { psql -q -X -v ON_ERROR_STOP=1 "$PG_URL" "$@"; }
