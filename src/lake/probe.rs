//! The check a writer makes before it commits to a lake on an object store: every Delta commit
//! is a create-if-absent of the next log file (`If-None-Match: *` on S3), and some
//! S3-compatible servers accept that header and overwrite anyway. On such a store two writers can
//! both "win" one version and one commit silently replaces the other. So a writing command first
//! creates one probe object twice: the second create must be refused, or the command stops with
//! an error naming the store. `[storage] check_conditional_put = false` skips the probe (one
//! writer per table, or a store known to qualify).

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};

use super::{child_url, store_path, Lake};
use crate::error::{Error, Result};

/// Where probes are written, under the lake's root (never a table: no `_delta_log` in it).
const PROBES: &str = "_lake";

impl Lake {
    /// On an object store, proves that it refuses a second create of one key (see the module
    /// docs); a local folder needs nothing (Delta's local log store creates files exclusively).
    pub(crate) async fn check_conditional_put(&self) -> Result<()> {
        let Some(store) = self.remote_store() else {
            return Ok(());
        };
        let key = store_path(&child_url(
            &child_url(self.root_url(), PROBES)?,
            &format!("conditional-put-{}", uuid::Uuid::new_v4()),
        )?);
        let refused = second_create_refused(store.as_ref(), &key).await;
        // The probe is deleted whatever happened; a failed delete leaves a few bytes behind.
        let _ = store.delete(&key).await;
        match refused? {
            true => Ok(()),
            false => Err(Error::Config(format!(
                "the object store of {self} accepted a second create of {key} (it ignores \
                 If-None-Match: *): two writers could both commit one Delta version and one \
                 commit would be lost. Use a store with conditional writes (AWS S3, MinIO, \
                 SeaweedFS, R2, GCS, Azure), or set [storage] check_conditional_put = false if \
                 only one process ever writes each table"
            ))),
        }
    }
}

/// Creates `key` twice; true when the store refused the second create.
async fn second_create_refused(store: &dyn ObjectStore, key: &Path) -> Result<bool> {
    let create = || {
        store.put_opts(
            key,
            PutPayload::from_static(b"lake conditional-put probe"),
            PutMode::Create.into(),
        )
    };
    let failed = |e: object_store::Error| {
        Error::Other(format!(
            "checking that the object store refuses a second create ({key}): {e}"
        ))
    };
    create().await.map_err(failed)?;
    match create().await {
        Ok(_) => Ok(false),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(true),
        Err(e) => Err(failed(e)),
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult,
    };

    use super::*;

    #[tokio::test]
    async fn a_store_that_refuses_the_second_create_passes() {
        let store = InMemory::new();
        let key = Path::from("lake/_lake/p");
        assert!(second_create_refused(&store, &key).await.expect("probe"));
    }

    /// A store that turns every create into an overwrite, as servers that ignore
    /// `If-None-Match` do; the rest is the memory store's.
    #[derive(Debug)]
    struct IgnoresConditions(InMemory);

    impl std::fmt::Display for IgnoresConditions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "IgnoresConditions")
        }
    }

    #[async_trait]
    impl ObjectStore for IgnoresConditions {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            mut opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            opts.mode = PutMode::Overwrite;
            self.0.put_opts(location, payload, opts).await
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }

    #[tokio::test]
    async fn a_store_that_overwrites_on_create_is_found_out() {
        let store = IgnoresConditions(InMemory::new());
        let key = Path::from("lake/_lake/p");
        assert!(!second_create_refused(&store, &key).await.expect("probe"));
    }
}
