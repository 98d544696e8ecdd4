# Sourced by the benchmarks that read PostgreSQL (db_load.sh, delta_sink.sh): the shared
# `pipectl_bench.events` table of $ROWS rows, created once and kept while its count matches.
# Needs a `pg` function (psql against the server) and ROWS.

setup_pg_events() {
    local have
    have=$(pg -tA -c "select count(*) from pipectl_bench.events" 2>/dev/null || echo 0)
    if [[ "$have" != "$ROWS" ]]; then
        echo "creating PostgreSQL pipectl_bench.events with $ROWS rows..."
        pg <<SQL
drop schema if exists pipectl_bench cascade;
create schema pipectl_bench;
create table pipectl_bench.events(id bigserial primary key, ts timestamptz, event_type text, film_id int,
  distributor text, platform text, state text, amount numeric(8,2), note text null);
insert into pipectl_bench.events (ts, event_type, film_id, distributor, platform, state, amount, note)
select timestamptz '2026-01-01' + g * interval '1 second',
       (array['rent','buy','trailer'])[1 + g % 3], 1 + g % 1000,
       (array['Warner','Universal','Disney','Paramount'])[1 + g % 4],
       (array['web','ios','android','tv'])[1 + g % 4],
       (array['CA','NY','TX','WA','FL'])[1 + g % 5], (g % 100000) / 100.0,
       case when g % 2 = 0 then 'note ' || g end
from generate_series(1, $ROWS) g;
vacuum analyze pipectl_bench.events;
SQL
    fi
}
