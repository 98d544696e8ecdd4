//! Listing a prefix: the objects that count as data (hidden and empty ones skipped, the
//! include/exclude globs applied), keyed from a crawl target's base.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;

use super::glob::KeyFilter;
use super::{CrawlOptions, CrawlTarget};
use crate::error::{Error, Result};

/// The folder that makes its parent a Delta table root.
const DELTA_LOG: &str = "_delta_log";

/// One listed object, relative to its target's base.
#[derive(Debug, Clone)]
pub(super) struct Object {
    pub(super) key: String,
    pub(super) size: u64,
    pub(super) modified: DateTime<Utc>,
}

/// An object holding data, found by [`list_data_objects`].
pub struct DataObject {
    /// Its path below the listed folder, one entry per level.
    pub relative: Vec<String>,
    /// The same, joined with `/`.
    pub key: String,
    /// Its location, size and time.
    pub meta: object_store::ObjectMeta,
}

/// Lists the data objects under `folder`, by relative key: hidden ones (a `_` or `.` folder or
/// file below `folder`, like `_pipectl/` staging or `_SUCCESS`) and empty ones are skipped, and
/// the `include`/`exclude` globs apply to the key relative to `folder`. The lake's one rule for
/// what counts as data, shared by crawlers and the `files` source.
pub async fn list_data_objects(
    store: &dyn object_store::ObjectStore,
    folder: &StorePath,
    include: &[String],
    exclude: &[String],
) -> object_store::Result<Vec<DataObject>> {
    let (mut objects, _) = list_objects(store, folder, include, exclude).await?;
    objects.retain(|o| o.meta.size > 0);
    Ok(objects)
}

/// [`list_data_objects`] with the empty objects kept, and the Delta table roots found: the
/// folders (relative to `folder`, one entry per level) holding a `_delta_log/`. Objects under
/// such a root are the table's (its log says which are data), so they are not listed.
async fn list_objects(
    store: &dyn object_store::ObjectStore,
    folder: &StorePath,
    include: &[String],
    exclude: &[String],
) -> object_store::Result<(Vec<DataObject>, BTreeSet<Vec<String>>)> {
    let filter = KeyFilter::new(include, exclude).map_err(|e| object_store::Error::Generic {
        store: "include/exclude globs",
        source: Box::new(e),
    })?;
    let skip = folder.parts().count();
    let metas: Vec<object_store::ObjectMeta> = store.list(Some(folder)).try_collect().await?;
    let relative_of = |meta: &object_store::ObjectMeta| -> Vec<String> {
        meta.location
            .parts()
            .skip(skip)
            .map(|p| p.as_ref().to_owned())
            .collect()
    };
    let delta_roots: BTreeSet<Vec<String>> = metas
        .iter()
        .filter_map(|meta| {
            let relative = relative_of(meta);
            let at = relative.iter().position(|p| p == DELTA_LOG)?;
            Some(relative[..at].to_vec())
        })
        .collect();
    let mut objects: Vec<DataObject> = metas
        .into_iter()
        .filter_map(|meta| {
            let relative = relative_of(&meta);
            if delta_roots
                .iter()
                .any(|root| relative.starts_with(root.as_slice()))
            {
                return None;
            }
            if relative.is_empty()
                || relative
                    .iter()
                    .any(|p| p.starts_with('_') || p.starts_with('.'))
            {
                return None;
            }
            let key = relative.join("/");
            if !filter.admits(&key) {
                return None;
            }
            Some(DataObject {
                relative,
                key,
                meta,
            })
        })
        .collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((objects, delta_roots))
}

/// What a crawl's listing found under a prefix, keyed from the target's base.
pub(super) struct Listing {
    /// The data objects (outside Delta tables).
    pub(super) objects: Vec<Object>,
    /// The keys of empty objects.
    pub(super) empty: Vec<String>,
    /// Folders holding a `_delta_log/` (empty: the base itself).
    pub(super) delta_roots: Vec<String>,
}

/// Lists objects under `prefix` (see [`list_data_objects`]), keyed from the target's base: the
/// data objects, the keys of the empty ones, and the Delta table roots.
pub(super) async fn list(
    target: &CrawlTarget,
    prefix: &str,
    options: &CrawlOptions,
) -> Result<Listing> {
    let prefix_parts: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    let folder = StorePath::from_iter(
        target
            .base
            .parts()
            .map(|p| p.as_ref().to_owned())
            .chain(prefix_parts.iter().map(|p| (*p).to_owned())),
    );
    let (found, roots) = list_objects(
        target.store.as_ref(),
        &folder,
        &options.include,
        &options.exclude,
    )
    .await
    .map_err(|e| Error::external(format!("cannot list {}{prefix}", target.base_url), e))?;
    let mut objects = Vec::new();
    let mut empty = Vec::new();
    for o in found {
        let key = if prefix_parts.is_empty() {
            o.key
        } else {
            format!("{}/{}", prefix_parts.join("/"), o.key)
        };
        if o.meta.size == 0 {
            empty.push(key);
        } else {
            objects.push(Object {
                key,
                size: o.meta.size,
                modified: o.meta.last_modified,
            });
        }
    }
    let delta_roots = roots
        .into_iter()
        .map(|root| {
            prefix_parts
                .iter()
                .map(|p| (*p).to_owned())
                .chain(root)
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    Ok(Listing {
        objects,
        empty,
        delta_roots,
    })
}
