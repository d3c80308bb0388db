//! What every object store a lake lives on must do, checked against a real server of each kind
//! (tests/s3.rs: SeaweedFS; tests/azure.rs: Azurite): create an object only once when two
//! writers race for it, which is what keeps two writers of one Delta version from both winning.

use std::future::IntoFuture;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::DeltaTableBuilder;
use lake::testing::{Lake, StorageOptions};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use super::topic;

/// A create of a key that exists fails as AlreadyExists, and the first object stays.
pub async fn only_the_first_create_of_a_key_wins(store: Arc<dyn ObjectStore>) {
    let key = ObjectPath::from(format!("conformance/{}", topic("once")));
    let create = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store
        .put_opts(&key, b"first".to_vec().into(), create.clone())
        .await
        .expect("the first create");
    let second = store
        .put_opts(&key, b"second".to_vec().into(), create)
        .await
        .expect_err("a second create of the same key must fail");
    assert!(
        matches!(second, object_store::Error::AlreadyExists { .. }),
        "{second}"
    );
    let kept = store.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(kept.as_ref(), b"first");
}

/// Two writers that both read version 0 of a table at `location` (in the bucket or container
/// `store` is rooted at) and commit without retrying: exactly one commit of version 1 wins.
pub async fn one_delta_version_has_one_writer(location: &str, store: Arc<dyn ObjectStore>) {
    // Lake::at registers delta-rs' log store for the location's scheme.
    Lake::at(location, &StorageOptions::default()).expect("remote lake");
    let url = url::Url::parse(&format!("{location}/race/")).unwrap();
    let open = || {
        DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .with_storage_backend(store.clone(), url.clone())
    };
    let n = Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef;
    let rows = RecordBatch::try_from_iter([("n", n)]).unwrap();
    open()
        .build()
        .unwrap()
        .write(vec![rows.clone()])
        .await
        .unwrap();
    let (a, b) = (open().load().await.unwrap(), open().load().await.unwrap());
    assert_eq!((a.version(), b.version()), (Some(0), Some(0)));
    let once = || CommitProperties::default().with_max_retries(0);
    let (ra, rb) = tokio::join!(
        a.write(vec![rows.clone()])
            .with_commit_properties(once())
            .into_future(),
        b.write(vec![rows.clone()])
            .with_commit_properties(once())
            .into_future(),
    );
    assert_eq!(
        ra.is_ok() as u8 + rb.is_ok() as u8,
        1,
        "exactly one commit of version 1 wins: {:?} / {:?}",
        ra.as_ref().err(),
        rb.as_ref().err()
    );
    let table = open().load().await.unwrap();
    assert_eq!(table.version(), Some(1));
    assert_eq!(table.snapshot().unwrap().log_data().num_files(), 2);
}
