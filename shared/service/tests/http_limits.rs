//! Bodies under policy, as a hostile client meets them: small routes refuse from their headers
//! before reading a body, a stalled upload times out and frees its place without ever holding a
//! processing place, and a refused client reads its 429 instead of a connection reset.

mod common;

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{Request, StatusCode};
use axum::Router;
use common::{get, send, test_config, BOUNDARY};
use ff_service::{router, AppState};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "0123456789abcdef-events";

fn app(overrides: &[(&str, &str)]) -> (AppState, Router) {
    // Nothing here reaches storage; jobs refused or timed out store nothing.
    let data = std::env::temp_dir().join("ff-http-limits-tests-unused").to_string_lossy().into_owned();
    let defaults = [("FF_DATA_DIR", data.as_str()), ("FF_WORKERS", "0")];
    let state = AppState::new(test_config(overrides, &defaults)).expect("engine builds");
    (state.clone(), router(state))
}

/// A body that sends `first` and then nothing, never ending: a stalled upload.
fn stalled_after(first: &'static [u8]) -> Body {
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(first))]);
    Body::from_stream(chunks.chain(futures_util::stream::pending()))
}

fn post(path: &str, content_type: &str, declared: usize, body: Body) -> Request<Body> {
    Request::post(path).header(CONTENT_TYPE, content_type).header(CONTENT_LENGTH, declared).body(body).unwrap()
}

fn multipart() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Lets spawned requests run until `ready` holds (bounded: a test that waits forever proves nothing).
async fn until(ready: impl Fn() -> bool) {
    for _ in 0..10_000 {
        if ready() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_upload_is_a_408_and_gives_its_place_back() {
    let (state, router) = app(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]);
    let request = post("/api/v1/process", &multipart(), 95 << 20, stalled_after(&[b'x'; 1024]));
    let answer = send(&router, request).await;
    let message = answer.assert_error(StatusCode::REQUEST_TIMEOUT, "upload_timeout");
    assert!(message.contains("60 seconds"), "{message}");
    assert_eq!(state.limiter().free_upload_places(), 1);
    assert_eq!(state.limiter().free_places(), 1);
}

#[tokio::test(start_paused = true)]
async fn stalled_uploads_hold_no_processing_place() {
    let (state, router) = app(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]);
    let stalled = post("/api/v1/process", &multipart(), 95 << 20, stalled_after(&[b'x'; 1024]));
    let stalled = tokio::spawn({
        let router = router.clone();
        async move { send(&router, stalled).await }
    });
    until(|| state.limiter().free_upload_places() == 0).await;
    // Another upload must wait for an upload place, but processing is open to a body that is in.
    let refused = send(&router, post("/api/v1/process", &multipart(), 4, Body::from("abcd"))).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "busy");
    assert_eq!(state.limiter().free_places(), 1, "the stalled upload holds no processing place");
    drop(state.limiter().try_admit().expect("a processing place is free"));
    stalled.await.unwrap().assert_error(StatusCode::REQUEST_TIMEOUT, "upload_timeout");
    // Its place is back: the next upload is read (and found not to be a form).
    let next = send(&router, post("/api/v1/process", "text/plain", 4, Body::from("abcd"))).await;
    next.assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test(start_paused = true)]
async fn a_stalled_job_upload_is_a_408() {
    let (state, router) = app(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]);
    let request = post("/api/v1/jobs", &multipart(), 95 << 20, stalled_after(b"--"));
    send(&router, request).await.assert_error(StatusCode::REQUEST_TIMEOUT, "upload_timeout");
    assert_eq!(state.limiter().free_upload_places(), 1);
}

#[tokio::test(start_paused = true)]
async fn events_are_refused_from_their_headers_before_the_body_is_read() {
    // Stalled bodies: had any of these been read, the request would end only at its time limit.
    let (_, disabled) = app(&[]);
    let request = post("/api/v1/events/s3", "application/json", 95 << 20, stalled_after(b"{"));
    let answer = send(&disabled, request).await;
    answer.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(answer.headers[CONNECTION], "close", "a body over the drain limit is not read");

    let (_, enabled) = app(&[("FF_EVENTS_SECRET", SECRET)]);
    let request = post("/api/v1/events/s3", "application/json", 95 << 20, stalled_after(b"{"));
    send(&enabled, request).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let mut request = post("/api/v1/events/s3", "application/json", 300 << 10, stalled_after(b"{"));
    request.headers_mut().insert(AUTHORIZATION, format!("Bearer {SECRET}").parse().unwrap());
    let message = send(&enabled, request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(message.contains(&(256 * 1024).to_string()), "the events route has its own limit: {message}");

    let mut request = post("/api/v1/events/s3", "application/json", 100, stalled_after(b"{"));
    request.headers_mut().insert(AUTHORIZATION, format!("Bearer {SECRET}").parse().unwrap());
    send(&enabled, request).await.assert_error(StatusCode::REQUEST_TIMEOUT, "upload_timeout");
}

#[tokio::test]
async fn a_streamed_event_body_is_cut_off_at_its_limit() {
    let (_, router) = app(&[("FF_EVENTS_SECRET", SECRET)]);
    let chunks = (0..40).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 10_000])));
    let request = Request::post("/api/v1/events/s3")
        .header(CONTENT_TYPE, "application/json")
        .header(AUTHORIZATION, format!("Bearer {SECRET}"))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    send(&router, request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test(start_paused = true)]
async fn model_download_is_403_when_downloads_are_off_and_has_a_small_limit() {
    let (_, off) = app(&[]);
    let request = post("/api/v1/models/download", "application/json", 95 << 20, stalled_after(b"["));
    send(&off, request).await.assert_error(StatusCode::FORBIDDEN, "model_download_disabled");
    let request = post("/api/v1/models/download", "application/json", 8, Body::from(r#"["2dfan4"]"#));
    send(&off, request).await.assert_error(StatusCode::FORBIDDEN, "model_download_disabled");

    let (_, on) = app(&[("FF_ALLOW_MODEL_DOWNLOAD", "true")]);
    let request = post("/api/v1/models/download", "application/json", 20 << 10, stalled_after(b"["));
    let message = send(&on, request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(message.contains(&(16 * 1024).to_string()), "{message}");
    let request = post("/api/v1/models/download", "application/json", 100, stalled_after(b"["));
    send(&on, request).await.assert_error(StatusCode::REQUEST_TIMEOUT, "upload_timeout");
}

#[tokio::test]
async fn busy_answers_are_counted_in_system() {
    let (state, router) = app(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]);
    let _held = state.limiter().try_admit().unwrap();
    for _ in 0..3 {
        let request = post("/api/v1/process", &multipart(), 4, Body::from("abcd"));
        send(&router, request).await.assert_error(StatusCode::TOO_MANY_REQUESTS, "busy");
    }
    let system = send(&router, get("/api/v1/system")).await;
    assert_eq!(system.status, StatusCode::OK);
    assert_eq!(system.json()["rejected_busy"], 3);
}

/// A whole HTTP/1.1 answer read from a socket until the server closes it or its body is complete.
async fn read_answer(stream: &mut tokio::net::TcpStream) -> std::io::Result<String> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&received);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                })
                .and_then(|value| value.parse::<usize>().ok());
            if length.is_some_and(|length| body.len() >= length) {
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_while_uploading_reads_its_429() {
    let (state, router) = app(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]);
    let _every_place = state.limiter().try_admit().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let body = vec![b'x'; 200_000];
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/process HTTP/1.1\r\nHost: {address}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
        multipart(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // In pieces, as a client on a real network sends it: the answer is ready long before the end.
    for piece in body.chunks(10_000) {
        if stream.write_all(piece).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = read_answer(&mut stream).await.expect("the answer arrives, not a connection reset");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    let (_, json) = answer.split_once("\r\n\r\n").unwrap();
    let json: serde_json::Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(json["error"]["code"], "busy");
    server.abort();
}
