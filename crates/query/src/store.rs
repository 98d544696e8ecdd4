//! A store that hides some objects from listings, so a query leaves those files out: the ones
//! the crawler skipped and, with `--skip-unreadable`, the ones found unreadable.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use object_store::ListResult;
use object_store::path::Path;
use pipectl_delta::store::{Listing, ListingFilter, ListingStore};

/// A store with the [`Hidden`] paths left out of its listings.
pub(crate) type HidingStore = ListingStore<Hidden>;

/// A store with nothing hidden yet.
pub(crate) fn hiding_store(inner: Arc<dyn object_store::ObjectStore>) -> HidingStore {
    ListingStore::new(inner, Hidden::default())
}

/// The paths left out of a store's listings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hidden {
    paths: Arc<RwLock<BTreeSet<Path>>>,
}

impl Hidden {
    /// Leaves `path` out of later listings.
    pub(crate) fn hide(&self, path: Path) {
        self.paths
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(path);
    }

    fn contains(&self, path: &Path) -> bool {
        self.paths
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(path)
    }
}

impl ListingFilter for Hidden {
    const NAME: &'static str = "HidingStore";

    fn listing(&self, listing: Listing) -> Listing {
        let hidden = self.clone();
        listing
            .filter(move |meta| {
                let shown = match meta {
                    Ok(meta) => !hidden.contains(&meta.location),
                    Err(_) => true,
                };
                std::future::ready(shown)
            })
            .boxed()
    }

    fn delimited(&self, mut result: ListResult) -> ListResult {
        result.objects.retain(|meta| !self.contains(&meta.location));
        result
    }
}
