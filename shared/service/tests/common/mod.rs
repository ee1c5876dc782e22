//! Set-up shared by the service's integration tests: a configuration on the stand-in models, the
//! two storage backends, and the test assets.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use ff_service::jobs::Job;
use tower::ServiceExt;

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

impl Backend {
    /// The filesystem backend's directory; `None` on S3.
    pub fn fs_root(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|dir| dir.path())
    }
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

/// The boundary of every test multipart body.
pub const BOUNDARY: &str = "ff-test-boundary-7MA4YWxkTrZu0gW";

/// A featureless sky-blue picture: nothing a face detector could find.
pub fn blank_png(width: u32, height: u32) -> Vec<u8> {
    let sky = image::RgbImage::from_pixel(width, height, image::Rgb([135, 190, 235]));
    let mut bytes = Vec::new();
    sky.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

/// A hand-built multipart/form-data body, so the tests control every byte the server sees.
#[derive(Default)]
pub struct Form {
    body: Vec<u8>,
}

impl Form {
    pub fn file(mut self, name: &str, file_name: &str, bytes: &[u8]) -> Self {
        let head = format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        );
        self.body.extend_from_slice(head.as_bytes());
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
        self
    }

    pub fn text(mut self, name: &str, value: &str) -> Self {
        let part = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n");
        self.body.extend_from_slice(part.as_bytes());
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        self.body
    }

    /// The finished body as a POST to `path` with its content type and length.
    pub fn post(self, path: &str) -> axum::http::Request<axum::body::Body> {
        let body = self.finish();
        axum::http::Request::post(path)
            .header(axum::http::header::CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
            .header(axum::http::header::CONTENT_LENGTH, body.len())
            .body(axum::body::Body::from(body))
            .unwrap()
    }
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

/// A router's answer, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn job(&self) -> Job {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Checks the status and the JSON error code; returns the message.
    pub fn assert_error(&self, status: StatusCode, code: &str) -> String {
        let json = self.json();
        assert_eq!((self.status, json["error"]["code"].as_str()), (status, Some(code)), "{json}");
        json["error"]["message"].as_str().expect("error.message").to_string()
    }
}

/// Sends one request through the router, as a client would.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body reads");
    Answer { status: parts.status, headers: parts.headers, body }
}
