//! A catch-up run of a `postgres_cdc` source: the initial copy inside the slot's exported
//! snapshot when one is due, then the slot's changes up to the server's WAL position at the
//! start of the run, as change records; the LSN reached goes back to the executor as the
//! source's bookmark.
//!
//! Where the run stops: right after the slot exists, the run writes a non-transactional
//! logical message (prefix [`STOP_PREFIX`], content the run id) and streams until that
//! message arrives. Every transaction committed before it arrives first; one committed after
//! it is left for the next run. An idle database still ends the run at once.
//!
//! Positions: nothing is confirmed to the slot during the run. The next run starts the stream
//! at the stored bookmark, which the executor saved only after the sinks committed, and the
//! replication client reports that start as applied, so the slot's `confirmed_flush_lsn`
//! follows the committed bookmark, one run behind and never ahead of it. A failed run leaves
//! the bookmark where it was, and the next run reads the same changes again.
//!
//! The snapshot/stream handoff: table rows copied in the exported snapshot carry the slot's
//! consistent point as their LSN; every streamed transaction commits after it, so ordering by
//! (LSN, position) puts each change after the copied row it changes, and no transaction is in
//! both.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::Utc;
use pipectl_cdc::types::{Infinity, Unmapped};
use pipectl_cdc::{
    ChangeColumns, Event, Lsn, ReplicationStream, StreamSettings, TypeOptions, to_record_batches,
};
use pipectl_spec::types::{CdcSnapshot, InfinityPolicy, PostgresCdcSource, UnmappedTypes};
use pipectl_state::{Bookmark, ReplicationLag};
use sqlx::{Executor, PgConnection};
use tokio::sync::mpsc;

use super::checks::{self, TableIdentity};
use super::{as_database_source, merge_metadata};
use crate::context::{CHANNEL_CAPACITY, Output, StepContext, StepMetrics};
use crate::error::{Error, Result};
use crate::source::database::read::plan_tables;
use crate::source::database::{Server, TablePlan, TableWriter};
use crate::source::postgres::{self, Postgres};
use crate::source::{Running, Source};
use crate::table::{Message, TableId};

/// The prefix of the logical message that marks where a catch-up run stops.
pub const STOP_PREFIX: &str = "pipectl.cdc.stop";

/// The bookmark key of a CDC source's position.
pub const LSN_KEY: &str = "lsn";

/// A `postgres_cdc` source step.
pub struct CdcStep {
    /// The step's name.
    pub name: String,
    /// Its spec.
    pub spec: PostgresCdcSource,
}

impl Source for CdcStep {
    fn run(self: Box<Self>, ctx: StepContext, out: Output) -> Running {
        Box::pin(async move {
            let run = catch_up(&self.name, &self.spec, &ctx, &out);
            tokio::select! {
                biased;
                _ = out.cancel_token().cancelled() => Err(Error::cancelled()),
                r = run => r.map_err(|e| if e.is_cancelled() { e } else { e.context(format!("source `{}`", self.name)) }),
            }
        })
    }
}

/// One selected table: its plan (columns, types), its identity and the change records'
/// schema.
struct Table {
    plan: TablePlan,
    id: Arc<TableId>,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
}

/// The names of the change columns: the cdc crate's, with the spec's commit timestamp name.
fn change_columns(spec: &PostgresCdcSource) -> ChangeColumns {
    ChangeColumns {
        commit_time: spec.timestamp_column_name.clone(),
        ..ChangeColumns::default()
    }
}

/// The change records' schema of a table: its columns as the full load types them (all
/// nullable), then `Op` (NULL for copied rows without `include_op_for_full_load`), the commit
/// time, the commit LSN, the position and the columns an update left unchanged (a JSON array
/// of names, NULL when none); with the merge settings a Delta sink takes when it has none of
/// its own.
fn output_schema(plan: &TablePlan, names: &ChangeColumns, identity: &TableIdentity) -> SchemaRef {
    let mut fields: Vec<Field> = plan
        .schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    fields.push(Field::new(&names.op, DataType::Utf8, true));
    fields.push(Field::new(
        &names.commit_time,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    ));
    fields.push(Field::new(&names.commit_lsn, DataType::Int64, false));
    fields.push(Field::new(&names.position, DataType::Int32, false));
    fields.push(Field::new(&names.unchanged, DataType::Utf8, true));
    // Values the server can store out of line: variable-length types.
    let toastable: Vec<String> = plan
        .schema
        .fields()
        .iter()
        .filter(|f| {
            let t = f.data_type();
            t.is_nested()
                || matches!(
                    t,
                    DataType::Utf8
                        | DataType::LargeUtf8
                        | DataType::Utf8View
                        | DataType::Binary
                        | DataType::LargeBinary
                        | DataType::BinaryView
                        | DataType::Decimal128(..)
                        | DataType::Decimal256(..)
                )
        })
        .map(|f| f.name().clone())
        .collect();
    let metadata = merge_metadata(&identity.primary_key, &toastable, names);
    Arc::new(Schema::new_with_metadata(fields, metadata))
}

fn type_options(spec: &PostgresCdcSource) -> TypeOptions {
    TypeOptions {
        unmapped: match spec.unmapped_types {
            UnmappedTypes::Fail => Unmapped::Fail,
            UnmappedTypes::Text => Unmapped::Text,
        },
        infinity: match spec.infinity {
            InfinityPolicy::Fail => Infinity::Fail,
            InfinityPolicy::SetNull => Infinity::SetNull,
            InfinityPolicy::Clamp => Infinity::Clamp,
        },
    }
}

fn lsn_int(lsn: Lsn) -> Result<i64> {
    i64::try_from(lsn.0)
        .map_err(|_| Error::internal(format!("LSN {lsn} does not fit a signed 64-bit column")))
}

async fn catch_up(
    name: &str,
    spec: &PostgresCdcSource,
    ctx: &StepContext,
    out: &Output,
) -> Result<Vec<Bookmark>> {
    let url = ctx
        .run
        .connections
        .database_url(&spec.connection, "postgres")?;
    let db = as_database_source(spec);
    let listing = plan_tables::<Postgres>(name, &db, &url, &|_| None, false).await?;
    ctx.report_unmatched_rules(&listing.unmatched_rules)?;
    if listing.plans.is_empty() {
        return Err(Error::user(
            "the selection rules match no table; change `include`/`exclude` so that they select the tables to replicate",
        ));
    }
    let selected: Vec<(String, String)> = listing
        .plans
        .iter()
        .map(|p| (p.source.schema.clone(), p.source.name.clone()))
        .collect();
    let report = checks::inspect(&url, spec, &selected).await?;
    if !report.problems.is_empty() {
        return Err(Error::user(format!(
            "the server is not ready for change data capture (`pipectl plan` lists the same):\n  - {}",
            report.problems.join("\n  - ")
        )));
    }
    for warning in &report.warnings {
        tracing::warn!("source `{name}`: {warning}");
    }
    let names = change_columns(spec);
    let mut tables: BTreeMap<(String, String), Table> = BTreeMap::new();
    for plan in listing.plans {
        let key = (plan.source.schema.clone(), plan.source.name.clone());
        let identity = report
            .tables
            .iter()
            .find(|t| t.schema == key.0 && t.name == key.1)
            .ok_or_else(|| {
                Error::internal(format!("table {}.{} was not inspected", key.0, key.1))
            })?;
        for c in [
            &names.op,
            &names.commit_time,
            &names.commit_lsn,
            &names.position,
            &names.unchanged,
        ] {
            if plan.columns.iter().any(|col| &col.name == c) {
                return Err(Error::user(format!(
                    "table {}, column `{c}`: the name is taken by a change column; rename the change column (`timestamp_column_name`) or the table's column",
                    plan.table
                )));
            }
        }
        let schema = output_schema(&plan, &names, identity);
        tables.insert(
            key,
            Table {
                id: Arc::new(plan.table.clone()),
                plan,
                schema,
                pending: Vec::new(),
                pending_rows: 0,
            },
        );
    }

    // Where the last committed run stopped, and what to do about the slot.
    let stored = ctx
        .run
        .state
        .bookmarks(Some(&ctx.run.pipeline))
        .map_err(|e| Error::external("cannot read the stored bookmarks", e))?
        .into_iter()
        .find(|b| b.stream == name);
    let stored_lsn = match &stored {
        None => None,
        Some(b) => Some(bookmark_lsn(b)?),
    };
    let mut conn = postgres::connect(&url).await?;
    let (copy, start_lsn) = match (stored_lsn, &report.slot, spec.snapshot) {
        (Some(lsn), Some(slot), _) => {
            let confirmed = slot
                .confirmed_flush
                .as_deref()
                .and_then(|t| t.parse::<Lsn>().ok());
            if let Some(confirmed) = confirmed.filter(|c| c.0 > lsn.0) {
                // The server would start at its confirmed position and skip what lies between.
                return Err(Error::user(format!(
                    "replication slot {} is at LSN {confirmed}, past LSN {lsn} where this pipeline's last committed run stopped: the changes between were consumed elsewhere (another pipeline or client on the same slot?) or the position was set back, and the server cannot send them again; give each pipeline its own slot, and re-snapshot with `pipectl state reset {} {name}`",
                    spec.slot, ctx.run.pipeline
                )));
            }
            (false, Some(lsn))
        }
        (Some(lsn), None, CdcSnapshot::Initial) => {
            return Err(Error::user(format!(
                "replication slot {} is gone (dropped, or removed by the server), so the changes after LSN {lsn}, where the last run stopped, cannot be read; re-snapshot: reset the position with `pipectl state reset {} {name}` (the next run copies the tables again), or set `snapshot: when_needed`",
                spec.slot, ctx.run.pipeline
            )));
        }
        (Some(lsn), None, CdcSnapshot::Never) => {
            tracing::warn!(
                slot = %spec.slot,
                "replication slot {} is gone: changes after LSN {lsn} are lost; creating it again and streaming from its new position (`snapshot: never`)",
                spec.slot
            );
            (false, None)
        }
        (Some(_), None, CdcSnapshot::WhenNeeded) => (true, None),
        (None, Some(slot), CdcSnapshot::Initial | CdcSnapshot::WhenNeeded) => {
            // A slot but no committed position: an earlier first run created it and failed
            // before its copy was committed. Its exported snapshot is gone with that run, so
            // the copy starts over with a new slot.
            if slot.active {
                return Err(Error::user(format!(
                    "replication slot {} is in use by another connection; is another run of this pipeline going on? (see pg_stat_replication)",
                    spec.slot
                )));
            }
            tracing::info!(slot = %spec.slot, "the slot has no committed position: dropping it so that the initial copy starts over in a new snapshot");
            super::drop::drop_replication_slot(&mut conn, &spec.slot).await?;
            (true, None)
        }
        (None, Some(_), CdcSnapshot::Never) => (false, None),
        (None, None, CdcSnapshot::Never) => (false, None),
        (None, None, _) => (true, None),
    };

    let settings = stream_settings(&url, spec, &selected, start_lsn, &ctx.run.run_id)?;
    let (mut stream, snapshot) = ReplicationStream::open(&settings)
        .await
        .map_err(|e| Error::external("cannot open the replication stream", e))?;
    // The marker the stream stops at, written once the slot exists, with the server's clock
    // then (UTC microseconds), which the commit times of the changes come from too.
    let marker: (String, i64) = sqlx::query_as(
        "select pg_logical_emit_message(false, $1, $2)::text, (extract(epoch from clock_timestamp()) * 1000000)::int8",
    )
        .bind(STOP_PREFIX)
        .bind(&ctx.run.run_id)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| {
            Error::external(
                "cannot write the run's stop marker (pg_logical_emit_message)",
                e,
            )
        })?;
    let marker_lsn: Lsn = marker
        .0
        .parse()
        .map_err(|e: String| Error::internal(format!("the stop marker's LSN: {e}")))?;
    let marker_micros = marker.1;
    // The commit time of the oldest change waiting for this run: the first one streamed.
    let mut oldest_commit: Option<i64> = None;
    drop(conn);

    if copy {
        let snapshot = snapshot.ok_or_else(|| {
            Error::internal(
                "the slot was to be created with an exported snapshot, but it already existed",
            )
        })?;
        let consistent = lsn_int(snapshot.consistent_point)?;
        for table in tables.values() {
            copy_table(&url, &snapshot.name, table, spec, consistent, ctx, out)
                .await
                .map_err(|e| {
                    if e.is_cancelled() {
                        e
                    } else {
                        e.context(format!("initial copy of table {}", table.plan.table))
                    }
                })?;
        }
    }

    stream
        .start()
        .await
        .map_err(|e| Error::external("cannot start the replication stream", e))?;
    let options = type_options(spec);
    let mut added: HashMap<(u32, String), bool> = HashMap::new();
    let mut check_conn: Option<PgConnection> = None;
    let batch_rows = spec.batch_rows.max(1);
    loop {
        let event = stream
            .next()
            .await
            .map_err(|e| Error::external("the replication stream failed", e))?;
        let transaction = match event {
            None => {
                return Err(Error::external(
                    format!(
                        "the replication stream ended before it reached this run's stop marker at LSN {marker_lsn}"
                    ),
                    "the server closed the stream",
                ));
            }
            Some(Event::Message {
                prefix, content, ..
            }) => {
                if prefix == STOP_PREFIX && content == ctx.run.run_id.as_bytes() {
                    // Behind by the WAL since the committed position, and by the age of the
                    // oldest change that was waiting; nothing to say without a position.
                    ctx.metrics
                        .set_replication_lag(stored_lsn.map(|from| ReplicationLag {
                            bytes: marker_lsn.0.saturating_sub(from.0),
                            seconds: oldest_commit.map_or(0.0, |t| {
                                (marker_micros.saturating_sub(t)).max(0) as f64 / 1e6
                            }),
                        }));
                    break;
                }
                continue;
            }
            Some(Event::Commit(t)) => t,
        };
        let changes: Vec<_> = transaction
            .changes
            .into_iter()
            .filter(|c| tables.contains_key(&(c.relation.schema.clone(), c.relation.name.clone())))
            .collect();
        if changes.is_empty() {
            continue;
        }
        if oldest_commit.is_none() {
            oldest_commit = changes.first().map(|c| c.commit_time_micros);
        }
        let batches = to_record_batches(&changes, &names, options)
            .map_err(|e| Error::user(format!("a change does not convert: {e}")))?;
        for (relation, batch) in batches {
            let key = (relation.schema.clone(), relation.name.clone());
            let Some(table) = tables.get_mut(&key) else {
                continue;
            };
            // A column the run's plan lacks: dropped since (ignore it) or added while the
            // run streams (stop: the next run's plan has it).
            for column in &relation.columns {
                if table.plan.columns.iter().any(|c| c.source == column.name) {
                    continue;
                }
                let cached = added.get(&(relation.oid, column.name.clone())).copied();
                let exists = match cached {
                    Some(v) => v,
                    None => {
                        if check_conn.is_none() {
                            check_conn = Some(postgres::connect(&url).await?);
                        }
                        let conn = check_conn
                            .as_mut()
                            .ok_or_else(|| Error::internal("no connection"))?;
                        let found: Option<(i32,)> = sqlx::query_as(
                            "select 1 from pg_attribute where attrelid = $1::int8::oid and attname = $2 and not attisdropped and attnum > 0",
                        )
                        .bind(i64::from(relation.oid))
                        .bind(&column.name)
                        .fetch_optional(&mut *conn)
                        .await
                        .map_err(|e| Error::external("cannot look up a column", e))?;
                        added.insert((relation.oid, column.name.clone()), found.is_some());
                        found.is_some()
                    }
                };
                if exists {
                    return Err(Error::user(format!(
                        "table {}, column `{}`: added while this run was streaming; schema changes are picked up by the next run's plan: run again",
                        table.plan.table, column.name
                    )));
                }
            }
            let conformed = conform(table, &batch, &names)?;
            table.pending_rows += conformed.num_rows();
            table.pending.push(conformed);
            if table.pending_rows >= batch_rows {
                flush(table, out).await?;
            }
        }
    }
    for table in tables.values_mut() {
        flush(table, out).await?;
        out.send(Message::EndOfTable(table.id.clone())).await?;
    }
    if let Err(e) = stream.close().await {
        tracing::debug!(error = %e, "closing the replication connection");
    }
    Ok(vec![Bookmark {
        pipeline: ctx.run.pipeline.clone(),
        stream: name.to_owned(),
        keys: vec![LSN_KEY.to_owned()],
        values: vec![serde_json::Value::String(marker_lsn.to_string())],
        key_types: vec!["pg_lsn".to_owned()],
        run_id: ctx.run.run_id.clone(),
        updated_at: Utc::now(),
    }])
}

/// The LSN a stored bookmark holds.
fn bookmark_lsn(b: &Bookmark) -> Result<Lsn> {
    match b.values.first() {
        Some(serde_json::Value::String(text)) => text.parse().map_err(|e: String| {
            Error::user(format!(
                "bookmark {} holds `{text}`, which is not an LSN ({e}); reset it with `pipectl state reset {} {}`",
                b.stream, b.pipeline, b.stream
            ))
        }),
        other => Err(Error::user(format!(
            "bookmark {} holds {other:?}, not an LSN; reset it with `pipectl state reset {} {}`",
            b.stream, b.pipeline, b.stream
        ))),
    }
}

/// Sends a table's pending change records as one batch.
async fn flush(table: &mut Table, out: &Output) -> Result<()> {
    if table.pending.is_empty() {
        return Ok(());
    }
    let batch = arrow::compute::concat_batches(&table.schema, &table.pending)
        .map_err(|e| Error::internal(format!("cannot join change records: {e}")))?;
    table.pending.clear();
    table.pending_rows = 0;
    out.send(Message::Batch(table.id.clone(), batch)).await
}

/// A change batch in the table's output schema: columns by name (cast to the full load's
/// types, NULL for columns dropped since), the change columns, and the unchanged columns'
/// names as a JSON array.
fn conform(table: &Table, batch: &RecordBatch, names: &ChangeColumns) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(table.schema.fields().len());
    for (field, column) in table.schema.fields().iter().zip(&table.plan.columns) {
        let array = match batch.column_by_name(&column.source) {
            None => new_null_array(field.data_type(), rows),
            Some(a) if a.data_type() == field.data_type() => a.clone(),
            Some(a) => arrow::compute::cast(a, field.data_type()).map_err(|e| {
                Error::user(format!(
                    "table {}, column `{}`: the change records' type {} does not convert to the full load's {} ({e})",
                    table.plan.table,
                    column.name,
                    a.data_type(),
                    field.data_type()
                ))
            })?,
        };
        columns.push(array);
    }
    for name in [
        &names.op,
        &names.commit_time,
        &names.commit_lsn,
        &names.position,
    ] {
        let array = batch
            .column_by_name(name)
            .ok_or_else(|| Error::internal(format!("change records lack column `{name}`")))?;
        columns.push(array.clone());
    }
    let unchanged = batch
        .column_by_name(&names.unchanged)
        .ok_or_else(|| Error::internal("change records lack the unchanged column"))?;
    columns.push(Arc::new(unchanged_names(unchanged)?));
    RecordBatch::try_new(table.schema.clone(), columns)
        .map_err(|e| Error::internal(format!("table {}: change records: {e}", table.plan.table)))
}

/// The lists of unchanged column names as JSON arrays without spaces (`["body"]`), NULL where
/// the list is: the form the merge's conditions read ([`super::unchanged_condition`]).
fn unchanged_names(lists: &ArrayRef) -> Result<StringArray> {
    let lists = lists
        .as_list_opt::<i32>()
        .ok_or_else(|| Error::internal("the unchanged column is not a list"))?;
    let mut out = arrow::array::StringBuilder::new();
    for i in 0..lists.len() {
        if lists.is_null(i) {
            out.append_null();
            continue;
        }
        let names = lists.value(i);
        let names = names
            .as_string_opt::<i32>()
            .ok_or_else(|| Error::internal("the unchanged column's names are not text"))?;
        let names: Vec<&str> = names.iter().flatten().collect();
        out.append_value(
            serde_json::to_string(&names)
                .map_err(|e| Error::internal(format!("unchanged column names: {e}")))?,
        );
    }
    Ok(out.finish())
}

/// Copies one table inside the exported snapshot `snapshot` with the full load's read path,
/// adding the change columns: `Op` `I` with `include_op_for_full_load` (else NULL), the run's
/// start as the commit time, the consistent point as the LSN, position 0.
async fn copy_table(
    url: &str,
    snapshot: &str,
    table: &Table,
    spec: &PostgresCdcSource,
    consistent: i64,
    ctx: &StepContext,
    out: &Output,
) -> Result<()> {
    let mut conn = postgres::connect(url).await?;
    conn.execute("begin isolation level repeatable read read only")
        .await
        .map_err(|e| Error::external("cannot start the copy's transaction", e))?;
    // The snapshot name comes from the server (`CREATE_REPLICATION_SLOT`), never from the spec.
    conn.execute(
        format!(
            "set transaction snapshot '{}'",
            snapshot.replace('\'', "''")
        )
        .as_str(),
    )
    .await
    .map_err(|e| Error::external("cannot use the slot's exported snapshot", e))?;
    let (tx, mut rx) = mpsc::channel::<Message>(CHANNEL_CAPACITY);
    let inner = Output::new(
        vec![tx],
        Arc::new(StepMetrics::default()),
        out.cancel_token().clone(),
    );
    let started = ctx.run.started_at.timestamp_micros();
    let op = spec.include_op_for_full_load;
    let forward = async {
        while let Some(message) = rx.recv().await {
            // The table stays open: its changes follow the copy.
            let Message::Batch(_, batch) = message else {
                continue;
            };
            let rows = batch.num_rows();
            let mut columns: Vec<ArrayRef> = batch
                .columns()
                .iter()
                .zip(table.schema.fields())
                .map(|(a, f)| {
                    if a.data_type() == f.data_type() {
                        Ok(a.clone())
                    } else {
                        arrow::compute::cast(a, f.data_type())
                            .map_err(|e| Error::internal(format!("column `{}`: {e}", f.name())))
                    }
                })
                .collect::<Result<_>>()?;
            columns.push(Arc::new(if op {
                StringArray::from(vec!["I"; rows])
            } else {
                StringArray::new_null(rows)
            }));
            columns.push(Arc::new(
                TimestampMicrosecondArray::from(vec![started; rows]).with_timezone("UTC"),
            ));
            columns.push(Arc::new(Int64Array::from(vec![consistent; rows])));
            columns.push(Arc::new(Int32Array::from(vec![0; rows])));
            columns.push(Arc::new(StringArray::new_null(rows)));
            let batch = RecordBatch::try_new(table.schema.clone(), columns)
                .map_err(|e| Error::internal(format!("copied rows: {e}")))?;
            out.send(Message::Batch(table.id.clone(), batch)).await?;
        }
        Ok::<(), Error>(())
    };
    let read = async {
        let statement = table.plan.read_statement::<Postgres>();
        let mut writer = TableWriter::new(&table.plan, spec.batch_rows, &inner)?;
        Postgres::read_rows(&mut conn, &table.plan, &statement, &mut writer).await?;
        writer.finish().await?;
        drop(inner);
        Ok::<(), Error>(())
    };
    let (read, forward) = tokio::join!(read, forward);
    read?;
    forward?;
    let _ = conn.execute("commit").await;
    Ok(())
}

/// The replication connection's settings from the source's URL.
fn stream_settings(
    url: &str,
    spec: &PostgresCdcSource,
    tables: &[(String, String)],
    start_lsn: Option<Lsn>,
    run_id: &str,
) -> Result<StreamSettings> {
    let parsed = ConnectionUrl::parse(url)?;
    Ok(StreamSettings {
        host: parsed.host,
        port: parsed.port,
        user: parsed.user,
        password: parsed.password,
        database: parsed.database,
        slot: spec.slot.clone(),
        publication: spec.publication.clone(),
        tables: tables.to_vec(),
        start_lsn,
        status_interval: Duration::from_secs(1),
        application_name: format!("pipectl {run_id}"),
        types: type_options(spec),
    })
}

/// The parts of a `postgres://` URL the replication connection takes.
struct ConnectionUrl {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
}

impl ConnectionUrl {
    fn parse(url: &str) -> Result<Self> {
        let bad = |why: &str| Error::user(format!("the PostgreSQL URL does not parse: {why}"));
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .ok_or_else(|| bad("no `postgres://`"))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "sslmode" && !matches!(v, "disable" | "prefer" | "allow") {
                return Err(Error::user(format!(
                    "`sslmode={v}`: TLS on the replication connection is not supported by this version yet; use `tls: {{mode: disable}}` or `prefer` on a trusted network"
                )));
            }
        }
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, hostport) = match authority.rsplit_once('@') {
            Some((c, h)) => (c, h),
            None => ("", authority),
        };
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = match hostport.strip_prefix('[') {
            // An IPv6 address: `[::1]:5432`.
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed `[`"))?;
                (host, after.strip_prefix(':'))
            }
            None => match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            },
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => 5432,
        };
        let user = percent_decode(user);
        Ok(ConnectionUrl {
            host: percent_decode(host),
            port,
            user: if user.is_empty() {
                "postgres".to_owned()
            } else {
                user
            },
            password: percent_decode(password),
            database: percent_decode(database),
        })
    }
}

/// `%XX` sequences decoded (URL user names, passwords and database names).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_the_replication_connection_its_parts() {
        let u = ConnectionUrl::parse(
            "postgres://rep%40x:p%3Aw@db.example:6543/shop?application_name=a",
        )
        .unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_str(),
                u.password.as_str(),
                u.database.as_str()
            ),
            ("db.example", 6543, "rep@x", "p:w", "shop")
        );
        let u = ConnectionUrl::parse("postgresql://127.0.0.1/test").unwrap();
        assert_eq!(
            (u.port, u.user.as_str(), u.password.as_str()),
            (5432, "postgres", "")
        );
        let err = ConnectionUrl::parse("postgres://u@h/db?sslmode=require")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("TLS on the replication connection"), "{err}");
    }
}
