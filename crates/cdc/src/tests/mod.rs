//! Tests against the private logical-replication cluster (`scripts/pg-logical.sh`, started by
//! `scripts/test.sh`), whose URL is in `PIPECTL_TEST_PG_LOGICAL_URL`.

mod pg_logical;
mod stream;

use sqlx::{Connection, Executor, PgConnection};

/// Marks the running test skipped, as the integration tests' `common::skip` does: a `SKIP`
/// line on stderr and in `PIPECTL_TEST_SKIP_LOG`, which `scripts/test.sh` summarises.
fn skip(reason: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let line = format!("SKIP {test}: {reason}");
    eprintln!("{line}");
    if let Ok(log) = std::env::var("PIPECTL_TEST_SKIP_LOG") {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = appended {
            eprintln!("cannot append to PIPECTL_TEST_SKIP_LOG {log}: {e}");
        }
    }
}

/// Whether a missing service fails the test instead of skipping it (CI).
fn services_required() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("PIPECTL_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

/// A connection to the logical cluster, or `None` after marking the test skipped; in CI a
/// missing cluster fails the test.
async fn logical_cluster() -> Option<PgConnection> {
    let Ok(url) = std::env::var("PIPECTL_TEST_PG_LOGICAL_URL") else {
        assert!(
            !services_required(),
            "PIPECTL_TEST_PG_LOGICAL_URL is not set: start the cluster with scripts/pg-logical.sh start and eval \"$(scripts/pg-logical.sh env)\""
        );
        skip("PIPECTL_TEST_PG_LOGICAL_URL not set (scripts/test.sh starts the logical cluster)");
        return None;
    };
    match PgConnection::connect(&url).await {
        Ok(mut conn) => {
            drop_stale(&mut conn).await;
            Some(conn)
        }
        Err(e) if !services_required() => {
            skip(&format!("no logical cluster at {url}: {e}"));
            None
        }
        Err(e) => panic!("the logical cluster at {url} is required: {e}"),
    }
}

/// A name unique to this test process and call, so tests sharing the cluster (two checkouts
/// at once) never meet each other's slots, publications or schemas.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos())
    )
}

/// Drops what tests of processes that are gone left behind (a failed test does not clean
/// up): an inactive slot keeps WAL on the shared cluster forever. Their names start with
/// [`unique`]'s `prefix_pid_`; a live pid may be another test run's, so it is kept.
async fn drop_stale(conn: &mut PgConnection) {
    let slots: Vec<(String,)> =
        sqlx::query_as("select slot_name::text from pg_replication_slots where not active")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    for (slot,) in slots {
        let mut parts = slot.split('_');
        let (Some("cdc" | "cdcs"), Some(pid)) = (parts.next(), parts.next()) else {
            continue;
        };
        if pid.parse::<u32>().is_err() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // Another run may drop it at the same moment: errors are fine here.
        let _ = sqlx::query("select pg_drop_replication_slot($1)")
            .bind(&slot)
            .execute(&mut *conn)
            .await;
        let _ = conn
            .execute(
                format!(
                    "drop publication if exists {slot}_pub; drop schema if exists {slot} cascade"
                )
                .as_str(),
            )
            .await;
    }
}
