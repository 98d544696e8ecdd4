//! Applying catalog policy: recording a found table by the schema-change and recrawl policies,
//! and deprecating the tables a crawler no longer finds.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use pipectl_spec::diag::comma_list;
use pipectl_spec::types::{RecrawlPolicy, SchemaChangePolicy};
use pipectl_state::{
    CatalogColumn, CatalogFormat, CatalogStore, CatalogTable, CrawlRecord, SkippedFile, TableStatus,
};

use super::layout::parent_of;
use super::table::{BuiltTable, CsvHeader, FolderRead};
use super::types::HiveType;
use super::{CrawlOptions, CrawlReport, TableReport};
use crate::error::{Error, Result};

/// Tables this crawler catalogued earlier that it did not find now: deprecated, as Glue's
/// default delete behaviour (DEPRECATE_IN_DATABASE) does, unless changes are only logged.
pub(super) fn deprecate_missing(
    existing: &[CatalogTable],
    seen_tables: &BTreeSet<String>,
    options: &CrawlOptions,
    now: DateTime<Utc>,
    catalog: &dyn CatalogStore,
    report: &mut CrawlReport,
) -> Result<()> {
    for old in existing {
        let ours = old
            .last_crawl
            .as_ref()
            .is_some_and(|c| c.crawler == options.crawler);
        if !ours || seen_tables.contains(&old.name) || old.status == TableStatus::Deprecated {
            continue;
        }
        let (action, change) = match effective_policy(options) {
            SchemaChangePolicy::Update | SchemaChangePolicy::Deprecate => {
                let change = "data no longer found; marked deprecated".to_owned();
                let mut t = old.clone();
                t.status = TableStatus::Deprecated;
                t.updated_at = now;
                t.last_crawl = Some(crawl_record(options, now, vec![change.clone()]));
                catalog
                    .save_table(&t)
                    .map_err(|e| Error::user(e.to_string()))?;
                ("deprecated", change)
            }
            SchemaChangePolicy::Log => (
                "unchanged",
                format!("data no longer found; kept ({})", log_reason(options)),
            ),
        };
        report.tables.push(TableReport {
            table: old.name.clone(),
            action: action.to_owned(),
            partitions: partition_count(old),
            files: old.files(),
            bytes: old.bytes(),
            changes: vec![change],
        });
    }
    Ok(())
}

/// The schema-change policy a crawl applies: `recrawl: new_folders` forces `log`, as Glue's
/// incremental crawls force the update and delete behaviours to LOG.
pub(super) fn effective_policy(options: &CrawlOptions) -> SchemaChangePolicy {
    match options.recrawl {
        RecrawlPolicy::NewFolders => SchemaChangePolicy::Log,
        RecrawlPolicy::All => options.schema_change,
    }
}

/// Why changes are only logged, for the notes that say so.
pub(super) fn log_reason(options: &CrawlOptions) -> &'static str {
    match options.recrawl {
        RecrawlPolicy::NewFolders => "schema_change: log, forced by recrawl: new_folders",
        RecrawlPolicy::All => "schema_change: log",
    }
}

pub(super) fn crawl_record(
    options: &CrawlOptions,
    at: DateTime<Utc>,
    changes: Vec<String>,
) -> CrawlRecord {
    CrawlRecord {
        crawler: options.crawler.clone(),
        run_id: options.run_id.clone(),
        at,
        changes,
    }
}

/// Records a found table in the catalog by the schema-change policy.
pub(super) fn apply(
    built: BuiltTable,
    old: Option<&CatalogTable>,
    options: &CrawlOptions,
    catalog: &dyn CatalogStore,
) -> Result<TableReport> {
    let BuiltTable {
        table: mut found,
        folders_read,
        unread_folders,
        csv_headers,
    } = built;
    let now = found.updated_at;
    let save = |t: &CatalogTable| {
        catalog
            .save_table(t)
            .map_err(|e| Error::user(e.to_string()))
    };
    let Some(old) = old else {
        if found.schema_version == 0 {
            return Ok(TableReport {
                table: found.name.clone(),
                action: "unchanged".to_owned(),
                partitions: 0,
                files: 0,
                bytes: 0,
                changes: vec!["no readable files; not catalogued".to_owned()],
            });
        }
        let mut changes = vec![format!(
            "created: {} columns, {} partition keys, {} partitions",
            found.columns.len(),
            found.partition_keys.len(),
            partition_count(&found)
        )];
        let columns = found.columns.clone();
        changes.extend(skip_misplaced_csv(&mut found, &columns, &csv_headers));
        found.last_crawl = Some(crawl_record(options, now, changes.clone()));
        save(&found)?;
        return Ok(TableReport {
            table: found.name.clone(),
            action: "created".to_owned(),
            partitions: partition_count(&found),
            files: found.files(),
            bytes: found.bytes(),
            changes,
        });
    };
    let policy = effective_policy(options);
    let mut changes = Vec::new();
    // Columns: old ones first (vanished ones stay), widened; new ones appended.
    let mut merged: Vec<(String, HiveType)> = old
        .columns
        .iter()
        .map(|c| (c.name.clone(), parse_type(&c.data_type)))
        .collect();
    if found.schema_version > 0 {
        for c in &found.columns {
            let t = parse_type(&c.data_type);
            match merged.iter_mut().find(|(n, _)| *n == c.name) {
                Some((_, existing)) => {
                    let widened = existing.widen(&t);
                    if widened != *existing {
                        changes.push(format!(
                            "column {} changed type {existing} -> {widened}",
                            c.name
                        ));
                        *existing = widened;
                    }
                }
                None => {
                    changes.push(format!("added column {} {t}", c.name));
                    merged.push((c.name.clone(), t));
                }
            }
        }
        for c in &old.columns {
            if !found.columns.iter().any(|f| f.name == c.name)
                && options.recrawl == RecrawlPolicy::All
            {
                changes.push(format!("column {} no longer found; kept", c.name));
            }
        }
        if found.format != old.format && !old.format.kind.is_empty() {
            changes.push(format!(
                "format changed {} -> {}",
                describe_format(&old.format),
                describe_format(&found.format)
            ));
        }
    }
    if found
        .partition_keys
        .iter()
        .map(|k| &k.name)
        .ne(old.partition_keys.iter().map(|k| &k.name))
    {
        changes.push(format!(
            "partition keys changed ({}) -> ({})",
            comma_list(old.partition_keys.iter().map(|k| k.name.as_str())),
            comma_list(found.partition_keys.iter().map(|k| k.name.as_str()))
        ));
    } else {
        // Widen partition key types too (a new partition `x` turns int keys into strings).
        for (f, o) in found.partition_keys.iter_mut().zip(&old.partition_keys) {
            let widened = parse_type(&o.data_type).widen(&parse_type(&f.data_type));
            if widened.to_string() != o.data_type {
                changes.push(format!(
                    "partition key {} changed type {} -> {widened}",
                    f.name, o.data_type
                ));
            }
            f.data_type = widened.to_string();
        }
    }
    let schema_changed = !changes.is_empty();
    let apply_changes = schema_changed && policy != SchemaChangePolicy::Log;
    let mut table = old.clone();
    table.partitions = found.partitions.clone();
    table.updated_at = now;
    table.status = TableStatus::Active;
    table.location = found.location.clone();
    table.storage = found.storage.clone();
    // Files in folders not read this time keep the reasons they were skipped for.
    table.skipped_files = old
        .skipped_files
        .iter()
        .filter(|s| unread_folders.contains(&folder_location(&s.key)))
        .cloned()
        .chain(found.skipped_files.iter().cloned())
        .collect();
    let mut notes = Vec::new();
    if apply_changes {
        table.columns = merged
            .into_iter()
            .map(|(name, t)| CatalogColumn::new(name, t.to_string()))
            .collect();
        if found.schema_version > 0 {
            table.format = found.format.clone();
        }
        table.partition_keys = found.partition_keys.clone();
        table.hive_partitions = found.hive_partitions;
        table.schema_version = old.schema_version + 1;
    } else {
        changes = changes
            .into_iter()
            .map(|c| format!("not applied ({}): {c}", log_reason(options)))
            .collect();
        // A new folder whose files the old columns cannot hold is not added: its rows would not
        // read (Glue's incremental crawls leave such objects out and log them).
        notes.extend(leave_out_incompatible_folders(
            &mut table,
            old,
            &folders_read,
        ));
    }
    let columns = table.columns.clone();
    notes.extend(skip_misplaced_csv(&mut table, &columns, &csv_headers));
    let added_partitions = table
        .partitions
        .iter()
        .filter(|p| !old.partitions.iter().any(|o| o.location == p.location))
        .count();
    let removed_partitions = old
        .partitions
        .iter()
        .filter(|p| !table.partitions.iter().any(|o| o.location == p.location))
        .count();
    if added_partitions > 0 {
        notes.insert(0, format!("added {added_partitions} partitions"));
    }
    if removed_partitions > 0 {
        notes.push(format!(
            "{removed_partitions} partitions no longer found; removed"
        ));
    }
    if old.status == TableStatus::Deprecated {
        notes.push("data found again; no longer deprecated".to_owned());
    }
    let action = if apply_changes || !notes.is_empty() {
        "updated"
    } else {
        "unchanged"
    };
    changes.extend(notes);
    table.last_crawl = Some(crawl_record(options, now, changes.clone()));
    save(&table)?;
    Ok(TableReport {
        table: table.name.clone(),
        action: action.to_owned(),
        partitions: partition_count(&table),
        files: table.files(),
        bytes: table.bytes(),
        changes,
    })
}

/// The partition location (`dt=1/`, or empty at the table's root) of a table-relative key.
fn folder_location(key: &str) -> String {
    match parent_of(key) {
        "" => String::new(),
        dir => format!("{dir}/"),
    }
}

fn parse_type(name: &str) -> HiveType {
    HiveType::parse(name).unwrap_or(HiveType::String)
}

/// Removes the new partitions of `table` whose columns have a type its columns cannot hold
/// (`id` string where the table has `int`); their files become skipped files. Returns a note
/// for each.
fn leave_out_incompatible_folders(
    table: &mut CatalogTable,
    old: &CatalogTable,
    folders_read: &BTreeMap<String, FolderRead>,
) -> Vec<String> {
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    for partition in std::mem::take(&mut table.partitions) {
        let is_new = !old
            .partitions
            .iter()
            .any(|o| o.location == partition.location);
        let read = folders_read.get(&partition.location).filter(|_| is_new);
        let conflict = read.and_then(|read| {
            read.columns.iter().find_map(|(name, t)| {
                let column = old.columns.iter().find(|c| &c.name == name)?;
                let existing = parse_type(&column.data_type);
                (existing.widen(t) != existing)
                    .then(|| format!("column {name} is {t} where the table has {existing}"))
            })
        });
        match (conflict, read) {
            (Some(why), Some(read)) => {
                notes.push(format!(
                    "folder {} not added: {why} (the schema is only logged)",
                    partition.location
                ));
                table
                    .skipped_files
                    .extend(read.keys.iter().map(|key| SkippedFile {
                        key: key.clone(),
                        reason: why.clone(),
                    }));
            }
            _ => kept.push(partition),
        }
    }
    table.partitions = kept;
    notes
}

/// Skips the CSV files whose header does not name `columns`' first columns in order: CSV is
/// read by position, as Athena reads it, so such a file would put values under the wrong
/// names. Their partitions' counts go down; returns a note for each.
fn skip_misplaced_csv(
    table: &mut CatalogTable,
    columns: &[CatalogColumn],
    headers: &[CsvHeader],
) -> Vec<String> {
    let mut notes = Vec::new();
    for header in headers {
        let in_order = header.names.len() <= columns.len()
            && header.names.iter().zip(columns).all(|(n, c)| *n == c.name);
        if in_order {
            continue;
        }
        let Some(partition) = table
            .partitions
            .iter_mut()
            .find(|p| p.location == header.partition)
        else {
            continue;
        };
        partition.files = partition.files.saturating_sub(1);
        partition.bytes = partition.bytes.saturating_sub(header.size);
        let reason = format!(
            "its header ({}) is not the table's first columns in order ({}); CSV is read by position",
            header.names.join(", "),
            comma_list(columns.iter().map(|c| c.name.as_str()))
        );
        notes.push(format!("{}: left out: {reason}", header.key));
        table.skipped_files.push(SkippedFile {
            key: header.key.clone(),
            reason,
        });
    }
    table.partitions.retain(|p| p.files > 0);
    notes
}

/// Partitions as users count them: an unpartitioned table has none (its one folder is kept
/// as a partition without values, for its file count and size).
pub fn partition_count(t: &CatalogTable) -> usize {
    if t.partition_keys.is_empty() {
        0
    } else {
        t.partitions.len()
    }
}

fn describe_format(f: &CatalogFormat) -> String {
    match &f.compression {
        Some(c) => format!("{} ({c})", f.kind),
        None => f.kind.clone(),
    }
}
