//! Cold start of `ff` as a Lambda function: from process start to the first answer of a
//! `POST /api/v1/process` invocation served by a local Runtime API, with the costed stand-ins
//!
//! * on local disk (FF_MODELS_DIR holds them, as in an image with baked models), and
//! * in the bucket (FF_MODELS_S3_PREFIX on the S3 test server, s3s-fs, an empty FF_MODELS_DIR, as
//!   in a fresh Lambda environment of the template),
//!
//! alternating, several times each. The run removes biden.jpg's background with modnet behind the
//! NSFW gate (four models): a copy from the bucket is checked against the catalogue's published size
//! and SHA-256, which the stand-ins of the real detector, landmarker and recognizer cannot match, so
//! a face swap's models cannot come through the bucket here. Then the transfer alone: a 256 MiB
//! object copied into a file by ranged GETs in parallel (what a model copy does) and by one GET.
//!
//! A timing table, not a test: nothing is asserted but that every run answers 200.
//!
//!     set -a; eval "$(scripts/s3-test-server auto)"; set +a
//!     cargo bench -p ff-api --bench cold_start [-- RUNS]

// The benchmark reads only the answers it needs of the shared Runtime API.
#[allow(dead_code)]
#[path = "../tests/support/runtime_api.rs"]
mod runtime_api;

use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use ff_pipeline::models::catalogue;
use ff_pipeline::models::ModelSource;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, stand_in_config};
use ff_service::models_bucket::BucketModels;
use ff_service::storage::testing::{s3_test_server, s3_test_settings};
use ff_service::storage::{download_to_file, S3Storage, Storage, WriteCondition};
use runtime_api::{runtime_api, Posted, Running};
use serde_json::{json, Value};

const BOUNDARY: &str = "ff-cold-start-bench";
/// The form fields of the run besides the target.
const RUN_FIELDS: [(&str, &str); 2] = [("processors", "background_remover"), ("background_remover_model", "modnet")];
/// The object of the transfer comparison.
const TRANSFER_BYTES: u64 = 256 << 20;

/// Where the function finds its models.
#[derive(Clone, Copy, Debug)]
enum Models {
    LocalDisk,
    Bucket,
}

/// A function URL event carrying the run's multipart request.
fn process_event() -> Value {
    let target = std::fs::read(assets_dir().join("images/biden.jpg")).expect("image asset");
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"target\"; filename=\"biden.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&target);
    body.extend_from_slice(b"\r\n");
    for (field, value) in RUN_FIELDS {
        let text = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n");
        body.extend_from_slice(text.as_bytes());
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/api/v1/process",
        "rawQueryString": "",
        "headers": {
            "host": "bench.lambda-url.eu-west-1.on.aws",
            "content-type": format!("multipart/form-data; boundary={BOUNDARY}"),
            "content-length": body.len().to_string(),
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "bench.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "bench",
            "http": { "method": "POST", "path": "/api/v1/process", "protocol": "HTTP/1.1",
                      "sourceIp": "127.0.0.1", "userAgent": "bench" },
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "05/Dec/2026:12:00:00 +0000",
            "timeEpoch": 1_796_472_000_000u64,
        },
        "body": base64::engine::general_purpose::STANDARD.encode(&body),
        "isBase64Encoded": true,
    })
}

/// Puts the models of the run into `models/` under the storage's prefix; returns their bytes.
fn fill_bucket(prefix: &str) -> u64 {
    let costed = assets_dir().join("standins/costed");
    let engine = ff_pipeline::Engine::new(stand_in_config("costed")).expect("engine");
    let options = ProcessOptions::from_json(
        &json!({ "processors": ["background_remover"], "background_remover_model": "modnet" }),
    )
    .expect("options");
    let names = engine.required_models(&options);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let storage = S3Storage::new(s3_test_settings(prefix));
        storage.create_bucket_if_missing().await.expect("the test bucket");
        let storage: Arc<dyn Storage> = Arc::new(storage);
        let bucket = BucketModels::new(storage, "models/", tokio::runtime::Handle::current());
        let mut bytes = 0;
        for name in &names {
            bucket.publish(&costed, name).await.expect("publish a stand-in");
            bytes += std::fs::metadata(costed.join(&catalogue().entry(name).unwrap().file)).unwrap().len();
        }
        bytes
    })
}

/// One cold start: a new `ff` process, one invocation; the time to its answer.
fn cold_start(models: Models, s3_prefix: &str) -> Duration {
    let (sender, posted) = mpsc::channel();
    let api = runtime_api(vec![process_event()], sender);
    let scratch = tempfile::tempdir().expect("scratch");
    let server = s3_test_server();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ff"));
    command
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "ff-process")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "10240")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/ff")
        .env("FF_ALLOW_MODEL_DOWNLOAD", "false")
        .env("FF_EXECUTION_THREAD_COUNT", "2")
        .env("FF_MAX_CONCURRENT_REQUESTS", "1")
        .env("FF_WORKERS", "0")
        .env("FF_TEMP_DIR", scratch.path())
        .env("FF_S3_BUCKET", s3_test_settings(s3_prefix).bucket)
        .env("FF_S3_PREFIX", s3_prefix)
        .env("FF_S3_ENDPOINT", &server.endpoint)
        .env("AWS_ACCESS_KEY_ID", &server.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &server.secret_key)
        .env("AWS_REGION", "us-east-1")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match models {
        Models::LocalDisk => {
            command.env("FF_MODELS_DIR", assets_dir().join("standins/costed")).env_remove("FF_MODELS_S3_PREFIX");
        }
        Models::Bucket => {
            command.env("FF_MODELS_DIR", scratch.path().join("models")).env("FF_MODELS_S3_PREFIX", "models/");
        }
    }
    let started = Instant::now();
    let _function = Running(command.spawn().expect("ff starts"));
    match posted.recv_timeout(Duration::from_secs(300)) {
        Ok(Posted::Response(answer)) if answer["statusCode"] == 200 => started.elapsed(),
        other => panic!("{models:?}: the invocation did not answer 200: {other:?}"),
    }
}

/// Seconds to copy a [`TRANSFER_BYTES`] object into a file: by ranged GETs in parallel (a model
/// copy), then by one streamed GET.
fn transfer(prefix: &str) -> (f64, f64) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let storage: Arc<dyn Storage> = Arc::new(S3Storage::new(s3_test_settings(prefix)));
    let body: Vec<u8> = (0..TRANSFER_BYTES).map(|i| (i % 251) as u8).collect();
    runtime
        .block_on(storage.put_bytes("models/big.onnx", body.into(), WriteCondition::None))
        .expect("put the transfer object");
    let scratch = tempfile::tempdir().expect("scratch");
    let bucket = BucketModels::new(Arc::clone(&storage), "models/", runtime.handle().clone());
    let started = Instant::now();
    bucket.copy_to("big.onnx", &scratch.path().join("ranged"), u64::MAX).expect("ranged copy");
    let ranged = started.elapsed().as_secs_f64();
    let started = Instant::now();
    runtime
        .block_on(download_to_file(storage.as_ref(), "models/big.onnx", &scratch.path().join("single"), u64::MAX))
        .expect("single GET");
    let single = started.elapsed().as_secs_f64();
    runtime.block_on(storage.delete("models/big.onnx")).expect("delete the transfer object");
    (ranged, single)
}

fn summary(samples: &mut [Duration]) -> (f64, f64, f64) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (ms(samples[samples.len() / 2]), ms(samples[0]), ms(samples[samples.len() - 1]))
}

fn main() {
    let runs: usize = std::env::args().skip(1).find_map(|arg| arg.parse().ok()).unwrap_or(3);
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let bytes = fill_bucket(&prefix);
    println!("cold start of ff as a Lambda function, first POST /api/v1/process answered (background removal, costed stand-ins, {:.1} MB of models)", bytes as f64 / 1e6);
    let mut local = Vec::new();
    let mut bucket = Vec::new();
    for _ in 0..runs {
        local.push(cold_start(Models::LocalDisk, &prefix));
        bucket.push(cold_start(Models::Bucket, &prefix));
    }
    println!("| models | runs | median ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    for (label, samples) in [("local disk", &mut local), ("bucket (s3s-fs, ranged GETs)", &mut bucket)] {
        let (median, min, max) = summary(samples);
        println!("| {label} | {runs} | {median:.0} | {min:.0} | {max:.0} |");
    }
    let (ranged, single) = transfer(&prefix);
    let mib = TRANSFER_BYTES as f64 / f64::from(1 << 20);
    println!();
    println!("| {mib:.0} MiB object into a file | seconds | MiB/s |");
    println!("|---|---|---|");
    println!("| ranged GETs, 6 in parallel (model copy) | {ranged:.2} | {:.0} |", mib / ranged);
    println!("| one GET | {single:.2} | {:.0} |", mib / single);
}
