//! `ff` started the way Lambda (or `cargo lambda watch`) starts it: with AWS_LAMBDA_RUNTIME_API
//! pointing at a Runtime API. A minimal Runtime API on 127.0.0.1 hands it the fixtures of
//! `events/` one by one and collects what it answers.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ff_pipeline::testing::assets_dir;
use serde_json::Value;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the function posted back for one invocation.
#[derive(Debug)]
enum Posted {
    Response(Value),
    Error(Value),
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// Serves `GET /invocation/next` from `events` in order (then never answers again, as a Runtime API
/// with nothing to do), and reports each `POST .../response` or `.../error`.
fn runtime_api(events: Vec<Value>, posted: mpsc::Sender<Posted>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the Runtime API");
    let address = listener.local_addr().expect("its address").to_string();
    // One queue for every connection: the runtime client may poll on any of them.
    let queue = Arc::new(Mutex::new(events.into_iter().enumerate().collect::<VecDeque<_>>()));
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (queue, posted) = (Arc::clone(&queue), posted.clone());
            std::thread::spawn(move || serve_connection(stream, &queue, &posted));
        }
    });
    address
}

fn serve_connection(stream: TcpStream, queue: &Mutex<VecDeque<(usize, Value)>>, posted: &mpsc::Sender<Posted>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
        if path.ends_with("/invocation/next") {
            let next = queue.lock().map(|mut queue| queue.pop_front()).unwrap_or(None);
            let Some((index, event)) = next else {
                // Nothing more to invoke: keep the function waiting until the test kills it.
                std::thread::sleep(Duration::from_secs(3600));
                return;
            };
            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).expect("after 1970").as_millis() + 60_000;
            let body = event.to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Lambda-Runtime-Aws-Request-Id: request-{index}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:eu-west-1:123456789012:function:ff\r\n\r\n",
                body.len()
            );
            let _ = writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(body.as_bytes()));
            continue;
        }
        let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let report = if path.ends_with("/response") { Posted::Response(value) } else { Posted::Error(value) };
        let _ = posted.send(report);
        let _ = writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    }
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
