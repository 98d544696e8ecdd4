//! Dropping a `postgres_cdc` source's replication slot, and its publication when pipectl
//! created it (`pipectl cdc drop-slot`). The source's bookmark is the caller's to reset.

use pipectl_cdc::stream::CREATED_BY_PIPECTL;
use pipectl_spec::types::PostgresCdcSource;

use crate::error::{Error, Result};
use crate::source::postgres;

/// What [`drop_slot`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The slot existed and is dropped now.
    pub slot: bool,
    /// The publication: `None` when it does not exist; `Some(true)` when pipectl had created
    /// it and it is dropped now; `Some(false)` when someone else created it and it stays.
    pub publication: Option<bool>,
}

/// What dropping would do, without changing anything: whether the slot exists (an error when
/// a connection is using it) and whether the publication exists and was created by pipectl.
pub async fn inspect_slot(url: &str, spec: &PostgresCdcSource) -> Result<Dropped> {
    let mut conn = postgres::connect(url).await?;
    let slot: Option<(bool, Option<i32>)> =
        sqlx::query_as("select active, active_pid from pg_replication_slots where slot_name = $1")
            .bind(&spec.slot)
            .fetch_optional(&mut conn)
            .await
            .map_err(|e| Error::external("cannot list replication slots", e))?;
    if let Some((true, pid)) = slot {
        return Err(Error::user(format!(
            "replication slot {} is in use by the connection of process {}: stop the run that streams from it (or `select pg_terminate_backend({0})`) and try again",
            spec.slot,
            pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
        )));
    }
    let publication: Option<(Option<String>,)> = sqlx::query_as(
        "select obj_description(oid, 'pg_publication') from pg_publication where pubname = $1",
    )
    .bind(&spec.publication)
    .fetch_optional(&mut conn)
    .await
    .map_err(|e| Error::external("cannot list publications", e))?;
    Ok(Dropped {
        slot: slot.is_some(),
        publication: publication.map(|(c,)| c.as_deref() == Some(CREATED_BY_PIPECTL)),
    })
}

/// Drops replication slot `slot`.
pub(crate) async fn drop_replication_slot(conn: &mut sqlx::PgConnection, slot: &str) -> Result<()> {
    sqlx::query("select pg_drop_replication_slot($1)")
        .bind(slot)
        .execute(conn)
        .await
        .map_err(|e| Error::external(format!("cannot drop replication slot {slot}"), e))?;
    Ok(())
}

/// Drops the source's slot (refused while a connection uses it) and its publication when
/// pipectl created it (its comment says so).
pub async fn drop_slot(url: &str, spec: &PostgresCdcSource) -> Result<Dropped> {
    let found = inspect_slot(url, spec).await?;
    let mut conn = postgres::connect(url).await?;
    if found.slot {
        drop_replication_slot(&mut conn, &spec.slot).await?;
    }
    if found.publication == Some(true) {
        let sql = format!(
            "drop publication if exists \"{}\"",
            spec.publication.replace('"', "\"\"")
        );
        sqlx::raw_sql(&sql).execute(&mut conn).await.map_err(|e| {
            Error::external(format!("cannot drop publication {}", spec.publication), e)
        })?;
    }
    Ok(found)
}
