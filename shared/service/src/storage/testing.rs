//! For tests: a real S3-compatible server to run the S3 backend against. Not used by the product.
//!
//! `FF_TEST_S3_ENDPOINT` (with `FF_TEST_S3_ACCESS_KEY`, `FF_TEST_S3_SECRET_KEY`) names a running
//! server; without it the first caller starts one with `scripts/s3-test-server` (s3s-fs on
//! 127.0.0.1, installed into `.tools/` on first use), which stops when this test process ends.
//! A server that cannot be found or started fails the test: the S3 tests never skip.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{S3Settings, S3Storage};

/// The credentials `scripts/s3-test-server` starts its server with.
pub const DEFAULT_ACCESS_KEY: &str = "ff-test-access";
pub const DEFAULT_SECRET_KEY: &str = "ff-test-secret-key";
/// The bucket every test uses; each test works under its own prefix in it.
pub const TEST_BUCKET: &str = "ff-test";

#[derive(Clone, Debug)]
pub struct S3TestServer {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
}

/// The server of this test process, found or started once.
pub fn s3_test_server() -> &'static S3TestServer {
    static SERVER: OnceLock<S3TestServer> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("FF_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.trim().is_empty() => S3TestServer {
            endpoint: endpoint.trim().to_string(),
            access_key: std::env::var("FF_TEST_S3_ACCESS_KEY").unwrap_or_else(|_| DEFAULT_ACCESS_KEY.into()),
            secret_key: std::env::var("FF_TEST_S3_SECRET_KEY").unwrap_or_else(|_| DEFAULT_SECRET_KEY.into()),
        },
        _ => start_server(),
    })
}

fn start_server() -> S3TestServer {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/s3-test-server");
    let output = Command::new(&script)
        .arg("auto")
        .env("FF_TEST_S3_OWNER_PID", std::process::id().to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{} printed no {name}:\n{stdout}", script.display()))
    };
    S3TestServer {
        endpoint: value("FF_TEST_S3_ENDPOINT"),
        access_key: value("FF_TEST_S3_ACCESS_KEY"),
        secret_key: value("FF_TEST_S3_SECRET_KEY"),
    }
}

/// Settings for the test server's bucket under `prefix`.
pub fn s3_test_settings(prefix: &str) -> S3Settings {
    let server = s3_test_server();
    S3Settings {
        bucket: TEST_BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(server.endpoint.clone()),
        force_path_style: true,
        region: Some("us-east-1".into()),
        static_credentials: Some((server.access_key.clone(), server.secret_key.clone())),
        call_timeout: Duration::from_secs(30),
    }
}

/// An S3 backend on the test server under a prefix no other test uses, its bucket created.
pub async fn s3_test_storage() -> S3Storage {
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    let storage = S3Storage::new(s3_test_settings(&prefix));
    storage.create_bucket_if_missing().await.expect("the test bucket can be created");
    storage
}
