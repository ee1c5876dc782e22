//! Set-up shared by the service's integration tests: a configuration on the stand-in models, the
//! two storage backends, and the test assets.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

use ff_pipeline::testing::assets_dir;
use ff_service::storage::testing::s3_test_storage;
use ff_service::storage::{FsStorage, Storage};
use ff_service::ServiceConfig;

/// Stand-in models, never a download, one ORT thread per session so parallel tests do not fight
/// over cores. `overrides` win over `defaults`, which win over these.
pub fn test_config(overrides: &[(&str, &str)], defaults: &[(&str, &str)]) -> ServiceConfig {
    let models = assets_dir().join("standins/light").to_string_lossy().into_owned();
    let base = [
        ("FF_MODELS_DIR", models.as_str()),
        ("FF_ALLOW_MODEL_DOWNLOAD", "false"),
        ("FF_EXECUTION_THREAD_COUNT", "1"),
        ("FF_MAX_CONCURRENT_REQUESTS", "2"),
    ];
    ServiceConfig::from_lookup(|name| {
        let set = overrides.iter().chain(defaults).chain(base.iter()).find(|(key, _)| *key == name);
        set.map(|(_, value)| value.to_string())
    })
    .expect("test configuration is valid")
}

pub fn asset(name: &str) -> Vec<u8> {
    let path = assets_dir().join("images").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A storage backend and what keeps it alive (the filesystem one's directory).
pub struct Backend {
    pub storage: Arc<dyn Storage>,
    _dir: Option<tempfile::TempDir>,
}

pub fn fs_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    Backend { storage: Arc::new(FsStorage::new(dir.path())), _dir: Some(dir) }
}

pub async fn s3_backend() -> Backend {
    Backend { storage: Arc::new(s3_test_storage().await), _dir: None }
}

/// Runs each named `async fn(Backend)` once on the filesystem and once on the S3 server.
#[macro_export]
macro_rules! on_both_backends {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fs() {
                super::$behaviour(super::fs_backend()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                super::$behaviour(super::s3_backend().await).await;
            }
        }
    )*};
}
