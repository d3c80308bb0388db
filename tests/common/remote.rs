//! What every object store a lake lives on must do, checked against a real server of each kind
//! (tests/s3.rs: SeaweedFS; tests/azure.rs: Azurite): create an object only once when two
//! writers race for it, which is what keeps two writers of one Delta version from both winning;
//! and the steps both suites start from: ingest with a dead letter, the daily job.

use std::future::IntoFuture;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch};
use deltalake::kernel::transaction::CommitProperties;
use deltalake::DeltaTableBuilder;
use lake::testing::{Lake, StorageOptions};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions};

use super::{
    assert_exactly_once_in, ingest_args_at, ints_in, produce_events, run_ok, send_raw, stdout,
    strs, topic,
};

/// The date of the events [`ingest_with_a_dead_letter`] produces.
pub const DATE: &str = "2025-01-10";

/// `events` seed events of [`DATE`] and one message that is not JSON on a new topic `name`,
/// ingested into the lake at `location` until caught up (`extra`: more ingest flags): every event
/// is in raw.user_events once, the bad message a dead letter. Returns the topic, the events
/// delivered and the lake.
pub async fn ingest_with_a_dead_letter(
    location: &str,
    name: &str,
    events: u64,
    extra: &[&str],
) -> (String, i64, Lake) {
    let topic = topic(name);
    let produced = produce_events(&topic, events, &["--days", "1", "--start-date", DATE]);
    let events = produced["delivered"].as_i64().expect("delivered");
    send_raw(&topic, 0, &[(None, Some(b"{not json".as_slice()))]);
    let flags: Vec<&str> = ["--until-caught-up"]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    run_ok(&strs(&ingest_args_at(location, &topic, &flags)));
    let lake = Lake::at(location, &StorageOptions::default()).expect("remote lake");
    assert_exactly_once_in(&lake, events).await;
    let dead = ints_in(&lake, "SELECT count(*) FROM dead_letters").await[0];
    assert_eq!(dead, 1, "the bad message is a dead letter");
    (topic, events, lake)
}

/// `query` run by `lake sql` over the lake at `location`, its answer as CSV.
pub fn csv(location: &str, query: &str) -> String {
    stdout(&run_ok(&[
        "sql", "--lake", location, "-q", "--format", "csv", "-c", query,
    ]))
}

/// `lake daily` for [`DATE`] over the lake at `location` (the shipped SQL, no sensor): one row of
/// processed.daily_metrics counting `events`.
pub fn daily_of_the_date(location: &str, topic: &str, events: i64) {
    let sql = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let out = run_ok(&[
        "daily",
        "--lake",
        location,
        "--sql",
        sql.to_str().expect("utf-8"),
        "--topic",
        topic,
        "--no-sensor",
        "--date",
        DATE,
    ]);
    assert!(
        stdout(&out).contains("processed.daily_metrics: wrote 1 rows"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        csv(location, "SELECT total_events FROM processed.daily_metrics").trim(),
        format!("total_events\n{events}")
    );
}

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
