//! A store that hides some objects from listings, so a query leaves those files out: the ones
//! the crawler skipped and, with `--skip-unreadable`, the ones found unreadable.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// `inner` with the `hidden` paths left out of its listings.
#[derive(Debug)]
pub(crate) struct HidingStore {
    inner: Arc<dyn ObjectStore>,
    hidden: Arc<RwLock<BTreeSet<Path>>>,
}

impl HidingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        HidingStore {
            inner,
            hidden: Arc::default(),
        }
    }

    /// Leaves `path` out of later listings.
    pub(crate) fn hide(&self, path: Path) {
        self.hidden
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(path);
    }

    fn visible(
        &self,
        listing: BoxStream<'static, Result<ObjectMeta>>,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let hidden = self.hidden.clone();
        listing
            .filter(move |meta| {
                let shown = match meta {
                    Ok(meta) => !hidden
                        .read()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .contains(&meta.location),
                    Err(_) => true,
                };
                std::future::ready(shown)
            })
            .boxed()
    }
}

impl fmt::Display for HidingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HidingStore({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for HidingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.visible(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.visible(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        let hidden = self
            .hidden
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        result
            .objects
            .retain(|meta| !hidden.contains(&meta.location));
        Ok(result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
