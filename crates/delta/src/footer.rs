//! Reading a Parquet file's schema from its footer, checked against the file's size before it
//! is decoded (a corrupt footer length would otherwise make the reader panic).
//!
//! Not Delta-specific: it lives here because this is the lowest crate that both the crawler
//! (pipectl-engine) and `pipectl query` (pipectl-query) depend on that has Parquet, so that
//! query does not depend on the engine for it.

use std::sync::Arc;

use arrow::datatypes::Schema;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::parquet_to_arrow_schema;
use parquet::file::metadata::ParquetMetaDataReader;

/// Bytes read from the end of a Parquet file in the first request: the footer usually fits.
const FOOTER_GUESS_BYTES: u64 = 64 * 1024;

/// The Arrow schema of the Parquet file at `path` (`size` bytes), from its footer; the error
/// says why the file is not a readable Parquet file.
pub async fn parquet_footer_schema(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    size: u64,
) -> Result<Schema, String> {
    // The footer: metadata, its 4-byte little-endian length, then `PAR1`.
    let not_parquet = |why: String| format!("not a readable Parquet file: {why}");
    if size < 12 {
        return Err(not_parquet(format!("only {size} bytes")));
    }
    let tail_start = size.saturating_sub(FOOTER_GUESS_BYTES);
    let mut tail = store
        .get_range(path, tail_start..size)
        .await
        .map_err(|e| format!("cannot read: {e}"))?
        .to_vec();
    let n = tail.len();
    if n < 8 || &tail[n - 4..] != b"PAR1" {
        return Err(not_parquet("no PAR1 magic at its end".to_owned()));
    }
    let len = u64::from(u32::from_le_bytes([
        tail[n - 8],
        tail[n - 7],
        tail[n - 6],
        tail[n - 5],
    ]));
    let metadata_start = size
        .checked_sub(8 + len)
        .ok_or_else(|| not_parquet("its footer length exceeds its size".to_owned()))?;
    if metadata_start < tail_start {
        let mut head = store
            .get_range(path, metadata_start..tail_start)
            .await
            .map_err(|e| format!("cannot read: {e}"))?
            .to_vec();
        head.extend_from_slice(&tail);
        tail = head;
    }
    let start = tail.len() - 8 - len as usize;
    let metadata = ParquetMetaDataReader::decode_metadata(&tail[start..tail.len() - 8])
        .map_err(|e| not_parquet(e.to_string()))?;
    let file = metadata.file_metadata();
    parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
        .map_err(|e| not_parquet(e.to_string()))
}
