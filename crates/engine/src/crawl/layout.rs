//! Layout: which folders are tables and which are their partitions, from a sink's key template
//! or guessed from the folder structure (see [the crawler's docs](super)), and what the tables
//! are called.

use std::collections::{BTreeMap, BTreeSet};

use pipectl_state::CatalogTable;

use super::infer::FileSchema;
use super::list::Object;
use super::{CrawlReport, CrawlTarget};

/// Most different schemas sibling folders may have and still be one table (Glue's "clusters").
const MAX_SCHEMA_CLUSTERS: usize = 5;

/// A folder holding data files.
#[derive(Debug)]
pub(super) struct Leaf {
    /// Folder path relative to the base, without a trailing `/` (empty for the base).
    pub(super) dir: String,
    pub(super) files: Vec<Object>,
    /// What reading each file's schema gave, in `files` order; empty when the folder was not
    /// read (known to the catalog under `recrawl: new_folders`).
    pub(super) reads: Vec<std::result::Result<FileSchema, String>>,
}

/// A table found by the crawl, before it meets the catalog.
#[derive(Debug)]
pub(super) struct FoundTable {
    pub(super) name: String,
    /// Folder relative to the base, without a trailing `/`.
    pub(super) root: String,
    /// Partition keys, when they come from a template or Hive folders.
    pub(super) keys: Option<Vec<String>>,
    pub(super) leaves: Vec<Leaf>,
}

/// The template up to its first folder with a placeholder, without a trailing `/`.
pub fn static_prefix(template: &str) -> String {
    template
        .split('/')
        .filter(|s| !s.is_empty())
        .take_while(|s| !s.contains('{'))
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn group_leaves(objects: Vec<Object>) -> Vec<Leaf> {
    let mut by_dir: BTreeMap<String, Vec<Object>> = BTreeMap::new();
    for o in objects {
        by_dir
            .entry(parent_of(&o.key).to_owned())
            .or_default()
            .push(o);
    }
    by_dir
        .into_iter()
        .map(|(dir, files)| Leaf {
            dir,
            files,
            reads: Vec::new(),
        })
        .collect()
}

/// The folder of a key, without a trailing `/` (empty for a key at the base).
pub(super) fn parent_of(key: &str) -> &str {
    key.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Warns about folders that hold only empty objects (no data, also not in subfolders): they
/// make no table and no partition. Folder markers (`dt=1/` objects, `dt=1_$folder$`) are not
/// files.
pub(super) fn warn_empty_folders(leaves: &[Leaf], empty: &[String], report: &mut CrawlReport) {
    let holds_data = |dir: &str| {
        leaves
            .iter()
            .any(|l| dir.is_empty() || l.dir == dir || l.dir.starts_with(&format!("{dir}/")))
    };
    let mut by_dir: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in empty {
        if key.ends_with("_$folder$") || holds_data(key) {
            continue;
        }
        let dir = parent_of(key);
        by_dir
            .entry(dir)
            .or_default()
            .push(key.rsplit('/').next().unwrap_or(key));
    }
    for (dir, files) in by_dir {
        if holds_data(dir) {
            continue;
        }
        report.warnings.push(format!(
            "{dir}/ holds only empty files ({}); no table or partition is made from it",
            files.join(", ")
        ));
    }
}

/// One template folder: literal text and placeholders.
fn segment_match(pattern: &str, text: &str) -> Option<Vec<(String, String)>> {
    // Split into literal runs and `{name}` placeholders.
    let mut parts: Vec<(bool, &str)> = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push((false, &rest[..open]));
        }
        let close = rest[open..].find('}').map(|c| open + c)?;
        parts.push((true, &rest[open + 1..close]));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push((false, rest));
    }
    fn go(parts: &[(bool, &str)], text: &str, out: &mut Vec<(String, String)>) -> bool {
        match parts.split_first() {
            None => text.is_empty(),
            Some(((false, lit), more)) => {
                text.starts_with(lit) && go(more, &text[lit.len()..], out)
            }
            Some(((true, name), more)) => {
                for end in (1..=text.len()).filter(|&e| text.is_char_boundary(e)) {
                    out.push(((*name).to_owned(), text[..end].to_owned()));
                    if go(more, &text[end..], out) {
                        return true;
                    }
                    out.pop();
                }
                false
            }
        }
    }
    let mut out = Vec::new();
    go(&parts, text, &mut out).then_some(out)
}

/// The partition key a template folder stands for: `dt={date}` -> `dt` (Hive-style), `{date}`
/// -> `date`, anything else -> `partition_<n>`.
fn template_key(segment: &str, n: usize) -> (String, bool) {
    if let Some((k, v)) = segment.split_once('=')
        && !k.contains('{')
        && v.starts_with('{')
        && v.ends_with('}')
    {
        return (k.to_owned(), true);
    }
    if segment.starts_with('{') && segment.ends_with('}') && segment.matches('{').count() == 1 {
        return (segment[1..segment.len() - 1].to_owned(), false);
    }
    (format!("partition_{n}"), false)
}

/// Groups leaf folders into tables by a sink's key template; folders it does not match are
/// left out.
pub(super) fn by_template(
    template: &str,
    leaves: Vec<Leaf>,
    report: &mut CrawlReport,
) -> Vec<FoundTable> {
    let segments: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let table_at = segments
        .iter()
        .position(|s| s.contains("{table}"))
        .unwrap_or_else(|| {
            segments
                .iter()
                .position(|s| s.contains('{'))
                .unwrap_or(segments.len())
                .saturating_sub(1)
        });
    let keys: Vec<String> = segments[table_at + 1..]
        .iter()
        .enumerate()
        .map(|(n, s)| template_key(s, n).0)
        .collect();
    let mut tables: BTreeMap<String, FoundTable> = BTreeMap::new();
    for leaf in leaves {
        let parts: Vec<&str> = leaf.dir.split('/').filter(|s| !s.is_empty()).collect();
        let mut captures = Vec::new();
        let matched = parts.len() == segments.len()
            && segments
                .iter()
                .zip(&parts)
                .all(|(s, p)| match segment_match(s, p) {
                    Some(c) => {
                        captures.extend(c);
                        true
                    }
                    None => false,
                });
        if !matched {
            report.warnings.push(format!(
                "{}/ does not match the sink's key template `{template}`; left out",
                leaf.dir
            ));
            continue;
        }
        let root = parts[..=table_at.min(parts.len() - 1)].join("/");
        let name = captures
            .iter()
            .find(|(n, _)| n == "table")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| parts[table_at.min(parts.len() - 1)].to_owned());
        tables
            .entry(root.clone())
            .or_insert_with(|| FoundTable {
                name,
                root,
                keys: Some(keys.clone()),
                leaves: Vec::new(),
            })
            .leaves
            .push(leaf);
    }
    tables.into_values().collect()
}

/// A folder name that reads as a partition value rather than a table name.
fn value_like(name: &str) -> bool {
    name.contains('=') || name.starts_with(|c: char| c.is_ascii_digit())
}

/// The format (name, gzip) and column names of a group of sibling folders' readable files, or
/// `None` when none was read; a group whose files disagree on the format has no single schema.
fn group_schema<'a>(
    leaves: &[&'a Leaf],
) -> Option<Option<(&'static str, bool, BTreeSet<&'a str>)>> {
    let mut format: Option<(&'static str, bool)> = None;
    let mut names = BTreeSet::new();
    for schema in leaves.iter().flat_map(|l| l.reads.iter().flatten()) {
        let this = (schema.kind.name(), schema.gzip);
        if format.is_some_and(|f| f != this) {
            return Some(None);
        }
        format = Some(this);
        names.extend(schema.columns.iter().map(|(n, _)| n.as_str()));
    }
    format.map(|(kind, gzip)| Some((kind, gzip, names)))
}

/// Glue's schema similarity, for sibling folders to be partitions of one table: the same format
/// and compression, each folder sharing more than 70% of its columns with the first (counted
/// against the folder with more columns: 8 shared of 10 and 10 is 80%), and no more than
/// [`MAX_SCHEMA_CLUSTERS`] different schemas among them.
fn compatible(groups: &[Vec<&Leaf>]) -> bool {
    let mut schemas = Vec::new();
    for group in groups {
        match group_schema(group) {
            None => {}
            Some(None) => return false,
            Some(Some(schema)) => schemas.push(schema),
        }
    }
    let Some((kind, gzip, first)) = schemas.first() else {
        return true;
    };
    let distinct: BTreeSet<&BTreeSet<&str>> = schemas.iter().map(|(_, _, names)| names).collect();
    distinct.len() <= MAX_SCHEMA_CLUSTERS
        && schemas.iter().skip(1).all(|(k, g, names)| {
            let shared = first.intersection(names).count();
            let larger = first.len().max(names.len()).max(1);
            k == kind && g == gzip && shared * 10 > larger * 7
        })
}

/// Decides where tables start below `root` (see [the crawler's docs](super)).
pub(super) fn split(
    root: &str,
    leaves: Vec<Leaf>,
    table_level: Option<usize>,
    depth: usize,
    out: &mut Vec<FoundTable>,
) {
    if leaves.is_empty() {
        return;
    }
    let child_of = |leaf: &Leaf| -> Option<String> {
        let rest = if root.is_empty() {
            leaf.dir.as_str()
        } else {
            leaf.dir.strip_prefix(root)?.strip_prefix('/').unwrap_or("")
        };
        rest.split('/').find(|s| !s.is_empty()).map(str::to_owned)
    };
    let mut children: BTreeMap<String, Vec<&Leaf>> = BTreeMap::new();
    let mut here = false;
    for leaf in &leaves {
        match child_of(leaf) {
            Some(c) => children.entry(c).or_default().push(leaf),
            None => here = true,
        }
    }
    let is_table = match table_level {
        Some(level) => depth >= level,
        None => {
            here || children.keys().all(|c| value_like(c))
                || (children.len() >= 2
                    && compatible(&children.values().cloned().collect::<Vec<_>>()))
        }
    };
    if is_table || children.is_empty() {
        let name = root
            .rsplit('/')
            .find(|s| !s.is_empty())
            .unwrap_or("table")
            .to_owned();
        out.push(FoundTable {
            name,
            root: root.to_owned(),
            keys: None,
            leaves,
        });
        return;
    }
    let mut grouped: BTreeMap<String, Vec<Leaf>> = BTreeMap::new();
    for leaf in leaves {
        if let Some(c) = child_of(&leaf) {
            grouped.entry(c).or_default().push(leaf);
        }
    }
    for (child, leaves) in grouped {
        let path = if root.is_empty() {
            child
        } else {
            format!("{root}/{child}")
        };
        split(&path, leaves, table_level, depth + 1, out);
    }
}

/// Table names as Glue writes them: lowercase letters, digits and `_`.
pub fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "table".to_owned() } else { s }
}

/// The table's name, suffixed with a hash of its location when another table in the database
/// (catalogued earlier, or found in this crawl) has the name for another location.
pub(super) fn unique_name(
    name: &str,
    root: &str,
    target: &CrawlTarget,
    existing: &[CatalogTable],
    seen: &BTreeSet<String>,
) -> String {
    let location = format!("{}{root}/", target.base_url);
    let taken_elsewhere = existing
        .iter()
        .any(|t| t.name == name && t.location != location);
    if !taken_elsewhere && !seen.contains(name) {
        return name.to_owned();
    }
    let hash = location.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{name}_{:08x}", hash as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crawl::infer::FileKind;
    use crate::crawl::types::HiveType;

    #[test]
    fn template_segments() {
        assert_eq!(
            segment_match("dt={date}", "dt=2026-11-26"),
            Some(vec![("date".to_owned(), "2026-11-26".to_owned())])
        );
        assert_eq!(segment_match("dt={date}", "x=1"), None);
        assert_eq!(
            segment_match("{schema}_{table}", "main_film"),
            Some(vec![
                ("schema".to_owned(), "main".to_owned()),
                ("table".to_owned(), "film".to_owned())
            ])
        );
        assert_eq!(template_key("dt={date}", 0), ("dt".to_owned(), true));
        assert_eq!(template_key("{date}", 0), ("date".to_owned(), false));
        assert_eq!(
            template_key("v{run_id}", 1),
            ("partition_1".to_owned(), false)
        );
        assert_eq!(static_prefix("landing/{schema}/{table}/"), "landing");
    }

    fn leaf(dir: &str, columns: &[&str]) -> Leaf {
        Leaf {
            dir: dir.to_owned(),
            files: Vec::new(),
            reads: vec![Ok(FileSchema {
                kind: FileKind::Json,
                gzip: false,
                columns: columns
                    .iter()
                    .map(|c| ((*c).to_owned(), HiveType::Int))
                    .collect(),
            })],
        }
    }

    #[test]
    fn similarity_is_glues_measure() {
        let ten = |extra: [&'static str; 2]| {
            let mut c = vec!["a", "b", "c", "d", "e", "f", "g", "h"];
            c.extend(extra);
            c
        };
        let eu = leaf("eu", &ten(["i", "j"]));
        let us = leaf("us", &ten(["k", "l"]));
        assert!(compatible(&[vec![&eu], vec![&us]]), "8 of 10 and 10 is 80%");
        let seven = leaf("x", &["a", "b", "c", "d", "e", "f", "g", "x", "y", "z"]);
        assert!(
            !compatible(&[vec![&eu], vec![&seven]]),
            "7 of 10 is not more than 70%"
        );
        // Six slightly different schemas are more than Glue's five clusters.
        let leaves: Vec<Leaf> = (0..6)
            .map(|i| {
                let mut c: Vec<String> = (0..20).map(|n| format!("c{n}")).collect();
                c.push(format!("only{i}"));
                let names: Vec<&str> = c.iter().map(String::as_str).collect();
                leaf(&format!("p{i}"), &names)
            })
            .collect();
        let groups: Vec<Vec<&Leaf>> = leaves.iter().map(|l| vec![l]).collect();
        assert!(!compatible(&groups));
        assert!(compatible(&groups[..5]));
    }
}
