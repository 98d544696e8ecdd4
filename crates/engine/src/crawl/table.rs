//! Building a catalog table from what the crawl found: partitions and their keys, the format
//! most files have, and the columns merged over the files read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use pipectl_state::{
    CatalogColumn, CatalogFormat, CatalogPartition, CatalogTable, SkippedFile, TableStatus,
};

use super::infer::{self, FileKind, FileSchema};
use super::layout::{FoundTable, Leaf};
use super::list::Object;
use super::types::{HiveType, merge_fields};
use super::{CrawlOptions, CrawlReport, CrawlTarget};

/// The type of a partition key from its values: integers, dates, else text. Values with
/// leading zeros (`month=02`) stay text: the folder names are the values queries prune by.
fn partition_type(values: &[&str]) -> HiveType {
    let mut t = HiveType::Unknown;
    for v in values {
        let this = match infer::classify(v) {
            x @ (HiveType::Int | HiveType::BigInt | HiveType::Date) => x,
            _ => HiveType::String,
        };
        t = t.widen(&this);
    }
    if t == HiveType::Unknown {
        HiveType::String
    } else {
        t
    }
}

/// A table as the crawl found it, with what [`apply`](super::policy::apply) needs to check it
/// against the catalog.
pub(super) struct BuiltTable {
    /// The table (its columns merged over the files read).
    pub(super) table: CatalogTable,
    /// The folders whose files were read, by partition location.
    pub(super) folders_read: BTreeMap<String, FolderRead>,
    /// Partition locations whose files were not read (known under `recrawl: new_folders`).
    pub(super) unread_folders: BTreeSet<String>,
    /// CSV files with a header row, checked against the table's final columns.
    pub(super) csv_headers: Vec<CsvHeader>,
}

/// What the files of one partition folder hold.
pub(super) struct FolderRead {
    /// Their columns, merged.
    pub(super) columns: Vec<(String, HiveType)>,
    /// Their keys, relative to the table's location.
    pub(super) keys: Vec<String>,
}

/// A CSV file's header: CSV is read by position (as Athena reads it), so it must name the
/// table's first columns in order.
pub(super) struct CsvHeader {
    /// Key relative to the table's location.
    pub(super) key: String,
    /// Its partition's location.
    pub(super) partition: String,
    pub(super) size: u64,
    pub(super) names: Vec<String>,
}

/// The table-relative key of an object below `root`.
fn relative_key(root: &str, key: &str) -> String {
    if root.is_empty() {
        key.to_owned()
    } else {
        key.strip_prefix(root)
            .map(|k| k.trim_start_matches('/'))
            .unwrap_or(key)
            .to_owned()
    }
}

/// A catalog table from what the crawl found (columns merged over its files), or `None` when
/// no file could be read and no folder is catalogued already.
pub(super) fn build_table(
    name: &str,
    found: FoundTable,
    target: &CrawlTarget,
    options: &CrawlOptions,
    now: DateTime<Utc>,
    report: &mut CrawlReport,
) -> Option<BuiltTable> {
    let location = if found.root.is_empty() {
        target.base_url.clone()
    } else {
        format!("{}{}/", target.base_url, found.root)
    };
    // Partition folders below the root; all must be equally deep.
    let relative = |leaf: &Leaf| -> Vec<String> {
        relative_key(&found.root, &leaf.dir)
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut depths: BTreeMap<usize, usize> = BTreeMap::new();
    for leaf in &found.leaves {
        *depths.entry(relative(leaf).len()).or_default() += leaf.files.len();
    }
    let depth = depths
        .iter()
        .max_by_key(|(d, n)| (**n, **d))
        .map(|(d, _)| *d)
        .unwrap_or(0);
    // The format most files have (CSV with its delimiter and header) decides; files in
    // another one are left out.
    let mut formats: BTreeMap<(FileKind, bool), usize> = BTreeMap::new();
    for schema in found.leaves.iter().flat_map(|l| l.reads.iter().flatten()) {
        *formats
            .entry((schema.kind.clone(), schema.gzip))
            .or_default() += 1;
    }
    let format_key = formats
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(k, _)| k.clone());
    let table_format = format_key
        .as_ref()
        .map(|(kind, gzip)| describe_kind(kind, *gzip))
        .unwrap_or_default();
    let mut skipped: Vec<SkippedFile> = Vec::new();
    let mut skip = |key: &str, reason: String| {
        skipped.push(SkippedFile {
            key: relative_key(&found.root, key),
            reason,
        });
    };
    let mut file_schemas: Vec<(String, &FileSchema)> = Vec::new();
    let mut folders_read = BTreeMap::new();
    let mut unread_folders = BTreeSet::new();
    let mut csv_headers = Vec::new();
    let mut partitions: Vec<(Vec<String>, CatalogPartition)> = Vec::new();
    let mut hive = true;
    let mut keys: Vec<String> = found.keys.clone().unwrap_or_default();
    let mut extensions: BTreeSet<String> = BTreeSet::new();
    for leaf in &found.leaves {
        let rel = relative(leaf);
        let partition_location: String = rel.iter().map(|s| format!("{s}/")).collect();
        if rel.len() != depth {
            let why = format!(
                "{} folder levels below table `{name}` where its other files have {depth}",
                rel.len()
            );
            report
                .warnings
                .push(format!("{}/: {why}; left out", leaf.dir));
            for f in &leaf.files {
                skip(&f.key, why.clone());
            }
            continue;
        }
        // The files that belong to the table: all of them in a folder not read.
        let mut included: Vec<&Object> = Vec::new();
        let mut columns: Vec<(String, HiveType)> = Vec::new();
        let mut other_format: Option<&'static str> = None;
        if leaf.reads.is_empty() {
            included.extend(&leaf.files);
            unread_folders.insert(partition_location.clone());
        }
        for (file, read) in leaf.files.iter().zip(&leaf.reads) {
            match read {
                Err(e) => skip(&file.key, format!("no classifier recognises it: {e}")),
                Ok(s) if Some((s.kind.clone(), s.gzip)) != format_key => {
                    other_format = Some(s.kind.name());
                    let reason = format!(
                        "{} where the table has {table_format}",
                        describe_kind(&s.kind, s.gzip)
                    );
                    skip(&file.key, reason);
                }
                Ok(s) => {
                    included.push(file);
                    columns = merge_fields(&columns, &s.columns);
                    file_schemas.push((file.key.clone(), s));
                    if let FileKind::Csv { header: true, .. } = s.kind {
                        csv_headers.push(CsvHeader {
                            key: relative_key(&found.root, &file.key),
                            partition: partition_location.clone(),
                            size: file.size,
                            names: s.columns.iter().map(|(n, _)| n.clone()).collect(),
                        });
                    }
                }
            }
        }
        if included.is_empty() {
            let why = match other_format {
                Some(kind) => format!("holds {kind} files where table `{name}` has {table_format}"),
                None => format!("holds no file readable as table `{name}`'s format"),
            };
            report
                .warnings
                .push(format!("{}/ {why}; left out", leaf.dir));
            continue;
        }
        if !leaf.reads.is_empty() {
            let keys = included
                .iter()
                .map(|f| relative_key(&found.root, &f.key))
                .collect();
            folders_read.insert(partition_location.clone(), FolderRead { columns, keys });
        }
        let mut values = Vec::new();
        for (n, segment) in rel.iter().enumerate() {
            match segment.split_once('=') {
                Some((k, v)) if found.keys.is_none() => {
                    if keys.len() <= n {
                        keys.push(k.to_owned());
                    }
                    values.push(v.to_owned());
                }
                Some((_, v)) if found.keys.is_some() => values.push(v.to_owned()),
                _ => {
                    hive = false;
                    if keys.len() <= n {
                        keys.push(format!("partition_{n}"));
                    }
                    values.push(segment.clone());
                }
            }
        }
        for f in &included {
            let file = f.key.rsplit('/').next().unwrap_or("");
            extensions.insert(extension_of(file));
        }
        partitions.push((
            rel.clone(),
            CatalogPartition {
                values,
                location: partition_location,
                files: included.len() as u64,
                bytes: included.iter().map(|f| f.size).sum(),
                last_modified: included.iter().map(|f| f.modified).max(),
            },
        ));
    }
    // Template keys: Hive only when every partition folder is `key=value`.
    if let Some(template_keys) = &found.keys {
        keys = template_keys.clone();
        hive = partitions.iter().all(|(rel, _)| {
            rel.iter()
                .zip(&keys)
                .all(|(s, k)| s.starts_with(&format!("{k}=")))
        });
    }
    if depth == 0 {
        hive = false;
        keys.clear();
    }
    keys.truncate(depth);
    if partitions.is_empty() {
        return None;
    }
    // CSV is read by position: the longest header gives the order, shorter ones (older files)
    // end early and read the columns after theirs as NULL.
    file_schemas.sort_by_key(|(_, s)| std::cmp::Reverse(s.columns.len()));
    let columns = file_schemas
        .iter()
        .fold(Vec::new(), |all, (_, s)| merge_fields(&all, &s.columns));
    // No file read: every folder was known (new_folders); nothing new to learn.
    let (format, schema_version) = match &format_key {
        Some((kind, gzip)) => {
            let (delimiter, header) = match kind {
                FileKind::Csv { delimiter, header } => (Some(*delimiter as char), Some(*header)),
                _ => (None, None),
            };
            let format = CatalogFormat {
                kind: kind.name().to_owned(),
                compression: gzip.then(|| "gzip".to_owned()),
                delimiter,
                header,
                extension: (extensions.len() == 1)
                    .then(|| extensions.into_iter().next())
                    .flatten()
                    .filter(|e| !e.is_empty()),
            };
            (format, 1)
        }
        None => (
            CatalogFormat {
                kind: String::new(),
                compression: None,
                delimiter: None,
                header: None,
                extension: None,
            },
            0,
        ),
    };
    let table = CatalogTable {
        database: options.database.clone(),
        name: name.to_owned(),
        location,
        storage: target.storage.clone(),
        format,
        columns: columns
            .into_iter()
            .map(|(name, t)| CatalogColumn::new(name, t.to_string()))
            .collect(),
        partition_keys: key_columns(&keys, &partitions),
        hive_partitions: hive,
        partitions: partitions.into_iter().map(|(_, p)| p).collect(),
        skipped_files: skipped,
        schema_version,
        status: TableStatus::Active,
        created_at: now,
        updated_at: now,
        last_crawl: None,
        delta: None,
    };
    Some(BuiltTable {
        table,
        folders_read,
        unread_folders,
        csv_headers,
    })
}

/// A file format as people name it: `csv (delimiter ';', header)`, `json (gzip)`.
fn describe_kind(kind: &FileKind, gzip: bool) -> String {
    let mut out = match kind {
        FileKind::Csv { delimiter, header } => format!(
            "csv (delimiter {:?}, {})",
            *delimiter as char,
            if *header { "header" } else { "no header" }
        ),
        other => other.name().to_owned(),
    };
    if gzip {
        out.push_str(" gzip");
    }
    out
}

fn key_columns(
    keys: &[String],
    partitions: &[(Vec<String>, CatalogPartition)],
) -> Vec<CatalogColumn> {
    keys.iter()
        .enumerate()
        .map(|(i, k)| {
            let values: Vec<&str> = partitions
                .iter()
                .filter_map(|(_, p)| p.values.get(i).map(String::as_str))
                .collect();
            CatalogColumn::new(k.clone(), partition_type(&values).to_string())
        })
        .collect()
}

/// `.csv.gz` for `part-1.csv.gz`: the last extension, with the one before it when the last is
/// a compression suffix.
fn extension_of(file: &str) -> String {
    let mut parts = file.rsplitn(3, '.');
    let last = parts.next().unwrap_or("");
    let before = parts.next();
    match (before, parts.next()) {
        (Some(b), Some(_)) if matches!(last, "gz" | "gzip") => format!(".{b}.{last}"),
        (Some(_), _) => format!(".{last}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension_of("part-1.csv.gz"), ".csv.gz");
        assert_eq!(extension_of("part-1.parquet"), ".parquet");
        assert_eq!(extension_of("noext"), "");
        assert_eq!(extension_of("a.gz"), ".gz");
    }
}
