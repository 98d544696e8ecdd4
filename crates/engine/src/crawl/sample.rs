//! Reading the schema of every file found, a few dozen at once.

use std::collections::BTreeSet;

use futures::StreamExt;
use object_store::path::Path as StorePath;

use super::infer;
use super::layout::Leaf;
use super::{CrawlReport, CrawlTarget};

/// Files whose schema is read at once.
const SAMPLE_CONCURRENCY: usize = 32;

/// Reads the schema of every file (a Parquet footer, a text file's first 256 KiB), except in
/// folders `known` to the catalog. A file no classifier accepts is reported by key (Glue would
/// classify it `UNKNOWN`) and left out of its table.
pub(super) async fn sample(
    target: &CrawlTarget,
    leaves: &mut [Leaf],
    known: &BTreeSet<String>,
    report: &mut CrawlReport,
) {
    let base: Vec<String> = target.base.parts().map(|p| p.as_ref().to_owned()).collect();
    let jobs = leaves
        .iter()
        .enumerate()
        .filter(|(_, l)| !known.contains(&format!("{}{}/", target.base_url, l.dir)))
        .flat_map(|(i, leaf)| {
            leaf.files
                .iter()
                .enumerate()
                .map(move |(j, file)| (i, j, file.key.clone(), file.size))
        })
        .map(|(i, j, key, size)| {
            let store = target.store.clone();
            let mut parts = base.clone();
            parts.extend(key.split('/').map(str::to_owned));
            let null_value = target.csv_null_value.clone();
            async move {
                let path = StorePath::from_iter(parts);
                (
                    i,
                    j,
                    infer::infer_file(&store, &path, size, &null_value).await,
                )
            }
        })
        // Collected first: a lazy iterator of closures held across the await below would make
        // the crawl future not `Send` for every lifetime.
        .collect::<Vec<_>>();
    let mut results: Vec<_> = futures::stream::iter(jobs)
        .buffer_unordered(SAMPLE_CONCURRENCY)
        .collect()
        .await;
    results.sort_by_key(|(i, j, _)| (*i, *j));
    report.files_read += results.len() as u64;
    for (i, _, result) in results {
        if let Err(e) = &result {
            let key = &leaves[i].files[leaves[i].reads.len()].key;
            report.warnings.push(format!(
                "{key}: no classifier recognises it (Glue: UNKNOWN): {e}; left out of its table"
            ));
        }
        leaves[i].reads.push(result);
    }
}
