//! Where a table lives: a caller's object store and the table root inside it.
//!
//! pipectl builds its stores once, from connections (`file://`, `memory://`, `s3://` with the
//! endpoint and secrets of the spec), so this crate takes such a store instead of building its
//! own. delta-rs addresses files by URL; the table gets a URL of its own scheme whose host names
//! the store and whose path is the root inside it, so delta-rs, its kernel and DataFusion all
//! resolve every file through the caller's store, and tables of two stores never share a
//! DataFusion object-store registration.

use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use object_store::ObjectStore;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::store::{ListingStore, Sorted};

/// URL scheme of table roots handed to delta-rs; never written into the log (data file paths
/// in the log are relative to the root).
const SCHEME: &str = "pipectl-store";

/// A Delta table root: an object store and the path of the root inside it.
#[derive(Debug, Clone)]
pub struct TableLocation {
    store: Arc<dyn ObjectStore>,
    root: Path,
    store_url: String,
}

impl TableLocation {
    /// The table whose root is `root` in `store`. `store_url` identifies the store (the
    /// connection URL as the spec wrote it, e.g. `s3://bucket/lake`): it appears in messages,
    /// and two different stores must have different ones when their tables are read in one
    /// DataFusion session.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path, store_url: impl Into<String>) -> Self {
        TableLocation {
            store,
            root,
            store_url: store_url.into(),
        }
    }

    /// The store holding the table.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The table root inside the store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The table for messages: the store URL and the root, e.g. `s3://bucket/lake` + `sales/orders`.
    pub fn display(&self) -> String {
        let base = self.store_url.trim_end_matches('/');
        if self.root.as_ref().is_empty() {
            base.to_owned()
        } else {
            format!("{base}/{}", self.root)
        }
    }

    /// The store path of `relative` (a data file path as the log writes it) under the root.
    pub(crate) fn child(&self, relative: &str) -> Path {
        let mut parts: Vec<String> = self.root.parts().map(|p| p.as_ref().to_owned()).collect();
        parts.extend(
            relative
                .split('/')
                .filter(|s| !s.is_empty())
                .map(percent_decode),
        );
        Path::from_iter(parts)
    }

    /// The URL delta-rs knows the root by: `pipectl-store://s<hash of store_url>/<root>/`.
    pub(crate) fn url(&self) -> Url {
        let mut url = self.store_url_base();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("a URL with a host has path segments");
            segments.clear();
            for part in self.root.parts() {
                segments.push(part.as_ref());
            }
            segments.push("");
        }
        url
    }

    /// The URL of the store's root (`pipectl-store://s<hash>/`), which DataFusion sessions
    /// register the store under.
    pub(crate) fn store_url_base(&self) -> Url {
        let host = format!("s{:016x}", fnv1a(self.store_url.as_bytes()));
        Url::parse(&format!("{SCHEME}://{host}/")).expect("a valid URL")
    }

    /// The URL of an object of the store (for DataFusion reads of staged files).
    pub(crate) fn object_url(&self, path: &Path) -> String {
        let mut url = self.store_url_base();
        {
            let mut segments = url
                .path_segments_mut()
                .expect("a URL with a host has path segments");
            segments.clear();
            for part in path.parts() {
                segments.push(part.as_ref());
            }
        }
        url.to_string()
    }

    /// A DataFusion session that reads this table's store: strings as `Utf8` (not views),
    /// the type Delta tables and this crate's schemas use.
    pub(crate) fn session(&self) -> SessionContext {
        let config = SessionConfig::new().set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
        let ctx = SessionContext::new_with_config(config);
        ctx.register_object_store(&self.store_url_base(), self.store.clone());
        ctx
    }

    /// The log store delta-rs reads and commits through: the table root as a prefixed view of
    /// the caller's store, and the store itself for the kernel, which resolves URLs from the
    /// store's root.
    pub(crate) fn log_store(&self) -> LogStoreRef {
        let root: Arc<dyn ObjectStore> = Arc::new(ListingStore::new(self.store.clone(), Sorted));
        let prefixed: Arc<dyn ObjectStore> =
            Arc::new(PrefixStore::new(root.clone(), self.root.clone()));
        default_logstore(prefixed, root, &self.url(), &StorageConfig::default())
    }
}

/// Paths in Add actions are percent-encoded (`dt=2026-01-01%2000%3A00`): the store holds the
/// decoded names.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// FNV-1a: a stable hash (the std hasher may change between Rust releases), so a store keeps
/// its URL across processes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    #[test]
    fn the_url_path_is_the_root_and_the_host_names_the_store() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let a = TableLocation::new(store.clone(), Path::from("lake/sales orders"), "memory://a");
        let b = TableLocation::new(store, Path::from("lake/sales orders"), "memory://b");
        assert_eq!(a.url().path(), "/lake/sales%20orders/");
        assert_eq!(
            Path::from_url_path(a.url().path()).unwrap(),
            Path::from("lake/sales orders")
        );
        assert_ne!(a.url().host_str(), b.url().host_str());
        assert_eq!(a.display(), "memory://a/lake/sales orders");
        assert_eq!(
            a.child("dt=2026-01-01%2000%3A00/part-1.parquet"),
            Path::from_iter([
                "lake",
                "sales orders",
                "dt=2026-01-01 00:00",
                "part-1.parquet"
            ])
        );
    }
}
