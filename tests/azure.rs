//! The lake on Azure Blob Storage: Azurite, Microsoft's emulator, on loopback, installed from the
//! npm registry and started by scripts/test.sh, which exports the variables that reach it
//! (`scripts/azurite.sh env`). Ingest, the daily job, maintenance and the server work on
//! `az://lake/<prefix>` as on a folder, and two writers can never both win one Delta version.

mod common;

use std::sync::Arc;

use common::flight::{client, first_i64, query, serve_at};
use common::*;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::ObjectStore;

/// The container scripts/azurite.sh creates.
const CONTAINER: &str = "lake";

/// Fails the test when no Azure server is configured.
fn require_azure() {
    std::env::var("AZURITE_BLOB_STORAGE_URL").expect(
        "AZURITE_BLOB_STORAGE_URL is not set: run the suite with scripts/test.sh, which starts \
         Azurite",
    );
}

/// A lake of its own in the test container.
fn az_lake(name: &str) -> String {
    require_azure();
    format!("az://{CONTAINER}/{}", topic(name))
}

/// The container itself, for the conformance checks.
fn container() -> Arc<dyn ObjectStore> {
    require_azure();
    Arc::new(
        MicrosoftAzureBuilder::from_env()
            .with_url(format!("az://{CONTAINER}"))
            .build()
            .expect("Azure store from the AZURE*/AZURITE* variables"),
    )
}

#[tokio::test]
async fn ingest_daily_maintain_and_serve_work_on_azure() {
    let location = az_lake("az_lake");
    // Small flushes, so that maintenance has files to merge.
    let small = ["--max-rows", "400", "--no-maintain"];
    let (topic, events, lake) =
        common::remote::ingest_with_a_dead_letter(&location, "az_events", 2000, &small).await;
    common::remote::daily_of_the_date(&location, &topic, events);

    let maintained = run_ok(&[
        "maintain",
        "--lake",
        &location,
        "--table",
        "raw.user_events",
    ]);
    let report = stdout(&maintained);
    assert!(report.contains("raw.user_events: compacted"), "{report}");
    assert!(!report.contains("compacted 0 files"), "{report}");
    assert_exactly_once_in(&lake, events).await;

    let server = serve_at(&location, &[]);
    let mut c = client(&server.url).await;
    let served = query(&mut c, "SELECT count(*) FROM raw.user_events")
        .await
        .unwrap();
    assert_eq!(first_i64(&served), events);
    // Nothing of it landed on the local disk.
    assert!(!std::path::Path::new("az:").exists());
}

#[tokio::test]
async fn the_server_lets_only_one_of_two_writers_create_an_object() {
    common::remote::only_the_first_create_of_a_key_wins(container()).await;
}

#[tokio::test]
async fn two_writers_of_one_delta_version_cannot_both_win() {
    common::remote::one_delta_version_has_one_writer(&az_lake("az_race"), container()).await;
}
