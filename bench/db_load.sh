#!/usr/bin/env bash
# Database load benchmark: PostgreSQL and MariaDB `events` tables of $ROWS rows (default 2,000,000)
# loaded by pipectl to Parquet and CSV, a +100,000-row incremental and a no-op incremental, next to
# the baselines measured in the same run (binary COPY to /dev/null, psql \copy CSV to a file,
# `mariadb --quick` to /dev/null). Prints wall time, rows/s and peak RSS for each.
#
#   cargo build --profile fast && bench/db_load.sh
#
# Full loads and baselines run REPEAT times (default 5), interleaved; the medians are compared
# with the targets at the end.
#
# Servers: PIPECTL_TEST_POSTGRES_URL and PIPECTL_TEST_MYSQL_URL (this machine's defaults). The tables
# live in schema/database `pipectl_bench` and are kept between runs (recreated when ROWS changes).
set -euo pipefail

ROWS=${ROWS:-2000000}
REPEAT=${REPEAT:-5}
INCREMENT=100000
MY_URL=${PIPECTL_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# mysql://user[:password]@host:port/db -> mariadb client flags
my_user=$(sed -E 's#^[a-z]+://([^:@/]+).*#\1#' <<<"$MY_URL")
my_host=$(sed -E 's#^[a-z]+://[^@]*@([^:/]+).*#\1#' <<<"$MY_URL")
my_port=$(sed -E 's#^[a-z]+://[^@]*@[^:/]+:?([0-9]*)/.*#\1#' <<<"$MY_URL")
mariadb_cmd=(mariadb -u "$my_user" -h "$my_host" -P "${my_port:-3306}")

# shellcheck source=bench/pg_events.sh
source "$(dirname "$0")/pg_events.sh"

setup_mariadb() {
    local have
    have=$("${mariadb_cmd[@]}" -N -e "select count(*) from pipectl_bench.events" 2>/dev/null || echo 0)
    if [[ "$have" != "$ROWS" ]]; then
        echo "creating MariaDB pipectl_bench.events with $ROWS rows..."
        "${mariadb_cmd[@]}" <<SQL
drop database if exists pipectl_bench;
create database pipectl_bench;
use pipectl_bench;
create table pipectl_bench.events(id bigint unsigned auto_increment primary key, ts timestamp(6) null,
  event_type text, film_id int, distributor text, platform text, state text, amount decimal(8,2), note text null);
insert into pipectl_bench.events (ts, event_type, film_id, distributor, platform, state, amount, note)
select timestamp'2026-01-01 00:00:00' + interval seq second, elt(1 + seq % 3, 'rent','buy','trailer'),
       1 + seq % 1000, elt(1 + seq % 4, 'Warner','Universal','Disney','Paramount'),
       elt(1 + seq % 4, 'web','ios','android','tv'), elt(1 + seq % 5, 'CA','NY','TX','WA','FL'),
       (seq % 100000) / 100.0, if(seq % 2 = 0, concat('note ', seq), null)
from seq_1_to_$ROWS;
SQL
    fi
}

# Drops rows added by earlier incremental runs so every run starts from $ROWS.
reset_tables() {
    pg -c "delete from pipectl_bench.events where id > $ROWS"
    "${mariadb_cmd[@]}" -e "delete from pipectl_bench.events where id > $ROWS"
}

add_rows() {
    pg -c "insert into pipectl_bench.events (ts, event_type, film_id, distributor, platform, state, amount, note)
      select now(), 'rent', 1, 'Disney', 'web', 'CA', 1.5, null from generate_series(1, $INCREMENT)"
    "${mariadb_cmd[@]}" pipectl_bench -e "insert into pipectl_bench.events (ts, event_type, film_id, distributor, platform, state, amount, note)
      select now(), 'rent', 1, 'Disney', 'web', 'CA', 1.5, null from seq_1_to_$INCREMENT"
}

spec() { # name kind url format bookmark
    local bookmark=""
    [[ "$5" == yes ]] && bookmark=$'    tables:\n      events: { bookmark: { keys: [id] } }\n'
    cat >"$WORK/$1.yaml" <<YAML
version: 1
name: bench-$1
connections:
  db: { url: "$3" }
  lake: { url: "file://lake-$1" }
sources:
  src:
    type: $2
    connection: db
    include: [{ schema: pipectl_bench, table: events }]
$bookmark
sinks:
  out:
    type: object_store
    inputs: [src]
    connection: lake
    key: "{table}/"
    format: { type: $4 }
YAML
    echo "$WORK/$1.yaml"
}

# shellcheck source=bench/measure.sh
source "$(dirname "$0")/measure.sh"

# A full load from scratch: no bookmark, no earlier files.
full_load() { # label spec-name
    rm -rf "$WORK/state" "$WORK/lake-$2"
    measure "$1" "$ROWS" "$BIN" run -q "$WORK/$2.yaml"
}

setup_pg_events
setup_mariadb
reset_tables
cd "$WORK"
export PIPECTL_STATE_DIR="$WORK/state"
spec pg-parquet postgres "$PG_URL" parquet yes >/dev/null
spec pg-csv postgres "$PG_URL" csv no >/dev/null
spec my-parquet mysql "$MY_URL" parquet yes >/dev/null
spec my-csv mysql "$MY_URL" csv no >/dev/null

# This machine's timings drift by ±30% from one run to the next (shared virtual CPUs), so every
# full load and baseline runs REPEAT times, interleaved, and the median is reported.
for _ in $(seq "$REPEAT"); do
    measure "baseline: COPY (select * from events) binary > /dev/null" "$ROWS" \
        sh -c "psql -X '$PG_URL' -c 'copy (select * from pipectl_bench.events) to stdout (format binary)' >/dev/null"
    full_load "pipectl: PostgreSQL full load -> Parquet" pg-parquet
    measure "baseline: psql \\copy ... csv to a file" "$ROWS" \
        psql -X "$PG_URL" -c "\\copy (select * from pipectl_bench.events) to '$WORK/psql.csv' with (format csv, header)"
    full_load "pipectl: PostgreSQL full load -> CSV" pg-csv
    measure "baseline: mariadb --quick -e 'select * from events'" "$ROWS" \
        sh -c "$(printf '%q ' "${mariadb_cmd[@]}") --quick -e 'select * from pipectl_bench.events' >/dev/null"
    full_load "pipectl: MariaDB full load -> Parquet" my-parquet
    full_load "pipectl: MariaDB full load -> CSV" my-csv
done
# The last Parquet full loads left their bookmarks: now the incremental runs.
rm -rf "$WORK/state"
measure "pipectl: PostgreSQL full load (before incrementals)" "$ROWS" "$BIN" run -q "$WORK/pg-parquet.yaml"
measure "pipectl: MariaDB full load (before incrementals)" "$ROWS" "$BIN" run -q "$WORK/my-parquet.yaml"
add_rows
measure "pipectl: PostgreSQL +$INCREMENT incremental -> Parquet" "$INCREMENT" "$BIN" run -q "$WORK/pg-parquet.yaml"
measure "pipectl: MariaDB +$INCREMENT incremental -> Parquet" "$INCREMENT" "$BIN" run -q "$WORK/my-parquet.yaml"
measure "pipectl: PostgreSQL no-op incremental" 0 "$BIN" run -q "$WORK/pg-parquet.yaml"
measure "pipectl: MariaDB no-op incremental" 0 "$BIN" run -q "$WORK/my-parquet.yaml"
reset_tables

report "$REPEAT" \
    --wall "pipectl: PostgreSQL full load -> Parquet" "baseline: COPY (select * from events) binary > /dev/null" 1.15 \
    --wall "pipectl: PostgreSQL full load -> CSV" "baseline: psql \\copy ... csv to a file" 1.0 \
    --wall "pipectl: MariaDB full load -> Parquet" "baseline: mariadb --quick -e 'select * from events'" 1.15
