//! A table in S3 (the local server scripts/test.sh starts): commits rely on S3's conditional
//! put (`If-None-Match`) through the store pipectl builds, with no locking service.

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutPayload};

use super::*;
use crate::{Compression, MergeOptions, MergeSpec};

#[tokio::test]
async fn appends_merges_and_txn_checks_work_on_s3() {
    let Some((endpoint, bucket)) = s3_server() else {
        return;
    };
    let store: Arc<dyn ObjectStore> = Arc::new(s3_store(&endpoint, &bucket));
    let root = format!("delta-{}-{}/orders", std::process::id(), fastrand::u32(..));
    let location = TableLocation::new(store, Path::from(root), format!("s3://{bucket}"));

    let (intent, outcome) = write_and_apply(
        &location,
        options(WriteMode::Append, 1),
        &[rows(&[1, 2, 3])],
    )
    .await;
    assert_eq!(outcome, ApplyOutcome::Committed { version: 0 });
    let mut table = DeltaTable::open(location.clone()).await.unwrap();
    assert_eq!(
        table.apply(&intent).await.unwrap(),
        ApplyOutcome::AlreadyApplied { txn_version: 1 }
    );

    let mut writer = table.merge_writer(MergeOptions {
        spec: MergeSpec {
            keys: vec!["id".into()],
            ..MergeSpec::default()
        },
        schema: SchemaPolicy::Evolve,
        partition_by: Vec::new(),
        staging: Path::from(format!("{}/_staging", location.root())),
        txn: txn(2),
        compression: Compression::Zstd,
    });
    writer.write(&rows(&[3, 4])).await.unwrap();
    let intent = writer.finish().await.unwrap();
    assert!(matches!(
        table.apply(&intent).await.unwrap(),
        ApplyOutcome::Committed { version: 1 }
    ));
    assert_eq!(ids(&read_sorted(&table).await), vec![1, 2, 3, 4]);
    assert_eq!(txns_in_log(&location).await.len(), 2);

    // What makes a commit exclusive: a second create of the same log entry is refused.
    let entry = location.child("_delta_log/00000000000000000001.json");
    let again = location
        .store()
        .put_opts(
            &entry,
            PutPayload::from_static(b"{}"),
            PutMode::Create.into(),
        )
        .await;
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "{again:?}"
    );
}
