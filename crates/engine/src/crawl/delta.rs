//! Cataloguing a Delta table from its log: the columns (with nullability, decimal precision and
//! scale) and partition columns its metadata declares, the files and bytes of its newest
//! version by partition, and its recent commits. Nothing is read from the data files.

use chrono::{DateTime, Utc};
use object_store::path::Path as StorePath;
use pipectl_delta::{DeltaTable, TableInfo, TableLocation};
use pipectl_spec::types::SchemaChangePolicy;
use pipectl_state::{
    CatalogColumn, CatalogFormat, CatalogPartition, CatalogStore, CatalogTable, DeltaCommit,
    DeltaLog, TableStatus,
};

use super::policy::{crawl_record, effective_policy, log_reason, partition_count};
use super::types::HiveType;
use super::{CrawlOptions, CrawlTarget, TableReport};
use crate::error::{Error, Result};

/// Commits of a table's history the catalog keeps.
const HISTORY_COMMITS: usize = 50;

/// The folder name Delta writes for a NULL partition value (as Hive does).
const NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Catalogues the Delta table at `root` (relative to the target's base) as `name`.
pub(super) async fn catalogue(
    name: &str,
    root: &str,
    target: &CrawlTarget,
    options: &CrawlOptions,
    old: Option<&CatalogTable>,
    now: DateTime<Utc>,
    catalog: &dyn CatalogStore,
) -> Result<TableReport> {
    let location = table_location(target, root);
    let display = location.display();
    let table = DeltaTable::open(location)
        .await
        .map_err(|e| Error::user(format!("Delta table {display} left out: {e}")))?;
    let info = table
        .info(HISTORY_COMMITS)
        .await
        .map_err(|e| Error::user(format!("Delta table {display} left out: {e}")))?;
    let url = if root.is_empty() {
        target.base_url.clone()
    } else {
        format!("{}{root}/", target.base_url)
    };
    let found = from_info(name, url, target, options, &info, now);
    record(found, old, options, catalog)
}

/// Where a table root (relative to the target's base) is, for pipectl-delta.
pub(super) fn table_location(target: &CrawlTarget, root: &str) -> TableLocation {
    let path = StorePath::from_iter(
        target
            .base
            .parts()
            .map(|p| p.as_ref().to_owned())
            .chain(root.split('/').filter(|s| !s.is_empty()).map(str::to_owned)),
    );
    TableLocation::new(target.store.clone(), path, target.base_url.clone())
}

/// A catalog table from what the log says.
fn from_info(
    name: &str,
    location: String,
    target: &CrawlTarget,
    options: &CrawlOptions,
    info: &TableInfo,
    now: DateTime<Utc>,
) -> CatalogTable {
    let column = |f: &arrow::datatypes::Field| CatalogColumn {
        name: f.name().clone(),
        data_type: HiveType::from_arrow(f.data_type())
            .unwrap_or(HiveType::String)
            .to_string(),
        nullable: f.is_nullable(),
    };
    let fields = info.schema.fields();
    let columns = fields
        .iter()
        .filter(|f| !info.partition_columns.contains(f.name()))
        .map(|f| column(f))
        .collect();
    let partition_keys = info
        .partition_columns
        .iter()
        .filter_map(|c| fields.iter().find(|f| f.name() == c).map(|f| column(f)))
        .collect();
    let partitions = info
        .partitions
        .iter()
        .map(|p| {
            let values: Vec<String> = p
                .values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| NULL_PARTITION.to_owned()))
                .collect();
            let folder: String = info
                .partition_columns
                .iter()
                .zip(&values)
                .map(|(k, v)| format!("{k}={v}/"))
                .collect();
            CatalogPartition {
                values,
                location: folder,
                files: p.files,
                bytes: p.bytes,
                last_modified: p.last_modified,
            }
        })
        .collect();
    CatalogTable {
        database: options.database.clone(),
        name: name.to_owned(),
        location,
        storage: target.storage.clone(),
        format: CatalogFormat {
            kind: "delta".to_owned(),
            compression: None,
            delimiter: None,
            header: None,
            extension: None,
        },
        columns,
        partition_keys,
        hive_partitions: true,
        partitions,
        skipped_files: Vec::new(),
        schema_version: 1,
        status: TableStatus::Active,
        created_at: now,
        updated_at: now,
        last_crawl: None,
        delta: Some(DeltaLog {
            version: info.version,
            commits: info
                .history
                .iter()
                .map(|h| DeltaCommit {
                    version: h.version,
                    at: h.timestamp,
                    operation: h.operation.clone(),
                    parameters: h.parameters.clone(),
                })
                .collect(),
        }),
    }
}

/// Saves `found` over `old`: the log is the truth, so columns are taken as they are (no
/// widening, no columns kept after the table dropped them). Under `schema_change: log` a
/// changed schema is reported and not applied; the version, files and partitions are.
fn record(
    mut found: CatalogTable,
    old: Option<&CatalogTable>,
    options: &CrawlOptions,
    catalog: &dyn CatalogStore,
) -> Result<TableReport> {
    let version = found.delta.as_ref().map_or(0, |d| d.version);
    let mut changes = Vec::new();
    match old {
        None => changes.push(format!(
            "created from the Delta log at version {version}: {} columns, {} partition keys, {} partitions",
            found.columns.len(),
            found.partition_keys.len(),
            partition_count(&found)
        )),
        Some(old) => {
            found.created_at = old.created_at;
            found.schema_version = old.schema_version.max(1);
            let old_version = old.delta.as_ref().map(|d| d.version);
            if old_version != Some(version) {
                changes.push(match old_version {
                    Some(v) => format!("Delta version {v} -> {version}"),
                    None => format!("now a Delta table (version {version})"),
                });
            }
            let schema_changes = diff(old, &found);
            if !schema_changes.is_empty() {
                if effective_policy(options) == SchemaChangePolicy::Log {
                    found.columns = old.columns.clone();
                    found.partition_keys = old.partition_keys.clone();
                    found.format = old.format.clone();
                    changes.extend(
                        schema_changes
                            .into_iter()
                            .map(|c| format!("{c} (not applied: {})", log_reason(options))),
                    );
                } else {
                    found.schema_version = old.schema_version + 1;
                    changes.extend(schema_changes);
                }
            }
        }
    }
    let action = match old {
        None => "created",
        Some(_) if changes.is_empty() => "unchanged",
        Some(_) => "updated",
    };
    found.last_crawl = Some(crawl_record(options, found.updated_at, changes.clone()));
    catalog
        .save_table(&found)
        .map_err(|e| Error::user(e.to_string()))?;
    Ok(TableReport {
        table: found.name.clone(),
        action: action.to_owned(),
        partitions: partition_count(&found),
        files: found.files(),
        bytes: found.bytes(),
        changes,
    })
}

/// What differs between the columns, partition keys and format of `old` and `new`, one line
/// each.
fn diff(old: &CatalogTable, new: &CatalogTable) -> Vec<String> {
    let mut changes = Vec::new();
    if old.format.kind != new.format.kind {
        changes.push(format!(
            "format changed {} -> {}",
            old.format.kind, new.format.kind
        ));
    }
    let describe = |c: &CatalogColumn| {
        format!(
            "{}{}",
            c.data_type,
            if c.nullable { "" } else { " not null" }
        )
    };
    for c in &new.columns {
        match old.columns.iter().find(|o| o.name == c.name) {
            None => changes.push(format!("added column {} {}", c.name, describe(c))),
            Some(o) if o != c => changes.push(format!(
                "column {} changed {} -> {}",
                c.name,
                describe(o),
                describe(c)
            )),
            Some(_) => {}
        }
    }
    for o in &old.columns {
        if !new.columns.iter().any(|c| c.name == o.name) {
            changes.push(format!("column {} dropped", o.name));
        }
    }
    let names = |t: &CatalogTable| {
        t.partition_keys
            .iter()
            .map(|k| k.name.clone())
            .collect::<Vec<_>>()
    };
    if names(old) != names(new) {
        changes.push(format!(
            "partition keys changed ({}) -> ({})",
            names(old).join(", "),
            names(new).join(", ")
        ));
    }
    changes
}
