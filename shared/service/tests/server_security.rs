//! What a hostile client tries against `ff serve`, over real TCP where the transport matters (in
//! the spirit of truss's server_security suite, itself ported from imgproxy and imagor): slow and
//! oversized headers, connection floods, path traversal in job ids and object keys.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use ff_service::server::{serve_router, ServerLimits};
use ff_service::{router, AppState};
use tokio::sync::oneshot;

mod common;
use common::{fs_backend, get, send, Backend};

/// A running server on loopback; dropping it shuts the server down.
struct Server {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
    _backend: Backend,
}

async fn start(limits: ServerLimits) -> Server {
    let backend = fs_backend();
    let config = common::test_config(&[("FF_WORKERS", "0")], &[]);
    let state = AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve_router(listener, router(state), limits, async {
        let _ = stopped.await;
    }));
    Server { address, _stop: stop, _backend: backend }
}

fn limits(header_read_timeout: Duration, max_connections: usize) -> ServerLimits {
    ServerLimits { header_read_timeout, max_connections, drain_timeout: Duration::from_secs(5) }
}

/// Sends `request` on a fresh connection and reads until the server closes it or `wait` passes;
/// blocking I/O, so it runs off the runtime.
async fn exchange(address: SocketAddr, request: Vec<u8>, wait: Duration) -> (Vec<u8>, Duration) {
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(wait)).unwrap();
        let started = Instant::now();
        // The server may close before the whole request is written (that is the point of some tests).
        let _ = stream.write_all(&request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (answer, started.elapsed())
    })
    .await
    .unwrap()
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn health_request() -> Vec<u8> {
    b"GET /api/v1/health HTTP/1.1\r\nHost: ff\r\nConnection: close\r\n\r\n".to_vec()
}

/// A client that sends half a request line and then nothing is disconnected at the header
/// timeout; before, axum's server (no hyper timer) kept the connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_at_the_header_timeout() {
    let server = start(limits(Duration::from_secs(1), 64)).await;
    let (answer, elapsed) =
        exchange(server.address, b"POST /api/v1/process HTTP/1.1\r\nHost: ff\r\n".to_vec(), Duration::from_secs(20))
            .await;
    assert!(elapsed < Duration::from_secs(10), "the connection was held for {elapsed:?}");
    assert!(status_of(&answer).is_none_or(|status| status == 408), "{:?}", String::from_utf8_lossy(&answer));
    let (health, _) = exchange(server.address, health_request(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&health), Some(200));
}

/// Headers far past hyper's buffer are refused (431) or the connection closed, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let server = start(ServerLimits::default()).await;
    let mut request = b"GET /api/v1/health HTTP/1.1\r\nHost: ff\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    request.extend_from_slice(b"\r\n\r\n");
    let (answer, _) = exchange(server.address, request, Duration::from_secs(10)).await;
    assert!(status_of(&answer).is_none_or(|status| status == 431), "{:?}", String::from_utf8_lossy(&answer));

    let mut many = b"GET /api/v1/health HTTP/1.1\r\nHost: ff\r\n".to_vec();
    for index in 0..500 {
        many.extend_from_slice(format!("X-H{index}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let (answer, _) = exchange(server.address, many, Duration::from_secs(10)).await;
    assert!(status_of(&answer).is_none_or(|status| status == 431), "{:?}", String::from_utf8_lossy(&answer));

    let (health, _) = exchange(server.address, health_request(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&health), Some(200));
}

/// Past the connection cap a new connection is closed at once; when one closes, the next is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_until_one_frees() {
    let server = start(limits(Duration::from_secs(30), 2)).await;
    let address = server.address;
    let idle: Vec<TcpStream> = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(address).unwrap()).collect();
        // Let the server accept both before the next one arrives.
        std::thread::sleep(Duration::from_millis(300));
        idle
    })
    .await
    .unwrap();
    let (refused, elapsed) = exchange(address, health_request(), Duration::from_secs(10)).await;
    assert!(refused.is_empty() && elapsed < Duration::from_secs(5), "{:?}", String::from_utf8_lossy(&refused));
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (health, _) = exchange(address, health_request(), Duration::from_secs(10)).await;
    assert_eq!(status_of(&health), Some(200));
}

/// Job ids and object keys that climb out of their place are refused before storage is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_in_job_ids_and_object_keys_is_refused() {
    let backend = fs_backend();
    let config = common::test_config(&[("FF_WORKERS", "0")], &[]);
    let state = AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    let router = router(state);
    for path in [
        "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd",
        "/api/v1/jobs/%2e%2e",
        "/api/v1/jobs/..%2Fjobs/result",
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000%00/result",
    ] {
        let answer = send(&router, get(path)).await;
        assert!(
            matches!(answer.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {} {:?}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
        assert!(answer.json()["error"]["code"].is_string(), "{path}");
    }
    for key in ["../../etc/passwd", "/etc/passwd", "inbox/../../x.jpg", "inbox/./x.jpg", "inbox\\..\\x.jpg"] {
        let body = serde_json::json!({ "sources": [key], "target": key });
        let request = axum::http::Request::post("/api/v1/jobs")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let answer = send(&router, request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{key}: {:?}", String::from_utf8_lossy(&answer.body));
        let message = answer.json()["error"]["message"].as_str().unwrap_or_default().to_string();
        assert!(!message.contains("/tmp/"), "{key}: the message shows a server path: {message}");
    }
}
