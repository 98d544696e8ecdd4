//! Stores the lake is read through: [`S3Settings`] builds an S3 client from a connection's or a
//! catalogued table's settings, and [`ListingStore`] changes what listings return, passing
//! everything else through.
//!
//! [`ListingStore`] wraps any store and runs its listings through a [`ListingFilter`]. Delta
//! tables read through [`Sorted`]: the kernel reads a log listing as sorted (object_store
//! promises no order, but S3 and most stores list in key order) and sorts it itself only for
//! `file://` URLs. Tables here have URLs of their own scheme over any store, a local disk's
//! unordered listing included, so the store the kernel reads through sorts its listings.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, BoxStream};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// How to reach an S3 bucket: the settings of a connection or of a catalogued table's storage.
#[derive(Debug, Clone, Default)]
pub struct S3Settings<'a> {
    /// The bucket.
    pub bucket: &'a str,
    /// An S3-compatible server's URL (MinIO, moto); addressed path-style when set.
    pub endpoint: Option<&'a str>,
    /// The region (`us-east-1` when neither set nor in `AWS_REGION`).
    pub region: Option<String>,
    /// The access key; else the environment's.
    pub access_key_id: Option<String>,
    /// The secret key; else the environment's.
    pub secret_access_key: Option<String>,
    /// Whether plain `http://` endpoints are allowed (else as the environment says).
    pub allow_http: bool,
}

impl S3Settings<'_> {
    /// A builder of the bucket's client: these settings over what the environment says
    /// (`AWS_*` variables), with `env_region` (the environment's `AWS_REGION`) before the
    /// `us-east-1` default.
    pub fn builder(&self, env_region: Option<String>) -> AmazonS3Builder {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(self.bucket);
        if let Some(endpoint) = self.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        builder = builder.with_region(
            self.region
                .clone()
                .or(env_region)
                .unwrap_or_else(|| "us-east-1".to_owned()),
        );
        if let Some(key) = &self.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if self.allow_http {
            builder = builder.with_allow_http(true);
        }
        builder
    }
}

/// A listing of objects, as [`ObjectStore::list`] returns it.
pub type Listing = BoxStream<'static, Result<ObjectMeta>>;

/// What a [`ListingStore`] does to the listings of the store it wraps.
pub trait ListingFilter: fmt::Debug + Send + Sync + 'static {
    /// The store's name in its `Display` form (`Name(inner)`).
    const NAME: &'static str;

    /// The objects of `listing` that `list` and `list_with_offset` return.
    fn listing(&self, listing: Listing) -> Listing;

    /// What `list_with_delimiter` returns of `result`; by default all of it.
    fn delimited(&self, result: ListResult) -> ListResult {
        result
    }
}

/// `inner` with its listings run through `filter`; every other call goes to `inner`.
#[derive(Debug)]
pub struct ListingStore<F> {
    inner: Arc<dyn ObjectStore>,
    filter: F,
}

impl<F: ListingFilter> ListingStore<F> {
    /// `inner` with its listings run through `filter`.
    pub fn new(inner: Arc<dyn ObjectStore>, filter: F) -> Self {
        ListingStore { inner, filter }
    }

    /// The filter the listings go through.
    pub fn filter(&self) -> &F {
        &self.filter
    }
}

impl<F: ListingFilter> fmt::Display for ListingStore<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", F::NAME, self.inner)
    }
}

/// Listings in key order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sorted;

impl ListingFilter for Sorted {
    const NAME: &'static str = "SortedListing";

    /// The objects of `listing`, collected and sorted by key.
    fn listing(&self, listing: Listing) -> Listing {
        stream::once(async move {
            let mut objects: Vec<ObjectMeta> = listing.try_collect().await?;
            objects.sort_unstable_by(|a, b| a.location.cmp(&b.location));
            Ok::<_, object_store::Error>(stream::iter(objects.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }
}

#[async_trait::async_trait]
impl<F: ListingFilter> ObjectStore for ListingStore<F> {
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

    fn list(&self, prefix: Option<&Path>) -> Listing {
        self.filter.listing(self.inner.list(prefix))
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> Listing {
        self.filter
            .listing(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let result = self.inner.list_with_delimiter(prefix).await?;
        Ok(self.filter.delimited(result))
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
