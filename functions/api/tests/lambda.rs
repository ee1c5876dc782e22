//! `ff` started the way Lambda (or `cargo lambda watch`) starts it: with AWS_LAMBDA_RUNTIME_API
//! pointing at a Runtime API. A minimal Runtime API on 127.0.0.1 hands it the fixtures of
//! `events/` one by one and collects what it answers.

#[path = "support/runtime_api.rs"]
mod runtime_api;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ff_pipeline::testing::assets_dir;
use runtime_api::{runtime_api, Posted, Running};
use serde_json::Value;

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn fixture(file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(events_dir().join(file)).expect("fixture")).expect("JSON")
}

#[test]
fn ff_answers_function_url_requests_and_s3_events_as_a_lambda_function() {
    let events = vec![fixture("system/system.json"), fixture("worker/job-record-created.json")];
    let (sender, posted) = mpsc::channel();
    let api = runtime_api(events, sender);
    let data = tempfile::tempdir().expect("a data directory");
    let _function = Running(
        Command::new(env!("CARGO_BIN_EXE_ff"))
            // Lambda starts the bootstrap without arguments; `ff` must not need any there.
            .env("AWS_LAMBDA_RUNTIME_API", &api)
            .env("AWS_LAMBDA_FUNCTION_NAME", "ff")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "2048")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ff")
            .env("FF_MODELS_DIR", assets_dir().join("standins/light"))
            .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
            .env("FF_S3_BUCKET", "ff-data-123456789012-eu-west-1")
            // The S3 endpoint is never contacted: the event names no existing job, and looking it
            // up fails fast against a closed port, which the worker reports as retryable.
            .env("FF_S3_ENDPOINT", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "eu-west-1")
            .env("FF_WORKERS", "0")
            .env("FF_DATA_DIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ff starts"),
    );
    let wait = |what: &str| posted.recv_timeout(Duration::from_secs(120)).unwrap_or_else(|_| panic!("no {what}"));

    let Posted::Response(http) = wait("HTTP answer") else { panic!("the HTTP invocation failed") };
    assert_eq!(http["statusCode"], 200, "{http}");
    let body: Value = serde_json::from_str(http["body"].as_str().expect("a text body")).expect("JSON body");
    assert_eq!(body["execution_providers"], serde_json::json!(["cpu"]));

    let Posted::Error(error) = wait("worker answer") else { panic!("an unreachable bucket must fail the invocation") };
    assert_eq!(error["errorType"], "Retryable", "{error}");
}
