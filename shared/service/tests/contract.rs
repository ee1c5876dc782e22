//! The API contract around the routes: API keys and what each key sees, per-key rate and job
//! limits, Idempotency-Key, `Prefer: wait`, the job event stream, direct uploads and CORS.

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{Request, StatusCode};
use axum::Router;
use ff_service::jobs::{Job, JobStatus, Workers};
use ff_service::{router, AppState};
use sha2::{Digest, Sha256};

mod common;
use common::{asset, fs_backend, s3_backend, send, Backend, Form};

const ALICE: &str = "alice-secret-key-1";
const BOB: &str = "bob-secret-key-2";

fn digest(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn keys() -> String {
    format!("alice:{},bob:{}", digest(ALICE), digest(BOB))
}

fn app(backend: &Backend, overrides: &[(&str, &str)]) -> (AppState, Router) {
    let config = common::test_config(overrides, &[("FF_WORKERS", "0")]);
    let state = AppState::new(config).expect("engine builds").with_storage(Arc::clone(&backend.storage));
    (state.clone(), router(state))
}

/// `request` sent with `key` as its bearer token.
fn with_key(mut request: Request<Body>, key: &str) -> Request<Body> {
    request.headers_mut().insert(AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
    request
}

fn get(uri: &str, key: Option<&str>) -> Request<Body> {
    let request = common::get(uri);
    match key {
        Some(key) => with_key(request, key),
        None => request,
    }
}

fn swap_form() -> Form {
    Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "biden.jpg", &asset("biden.jpg"))
        .text("face_swapper_model", "inswapper_128")
}

async fn create_as(router: &Router, key: &str) -> Job {
    let answer = send(router, with_key(swap_form().post("/api/v1/jobs"), key)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&answer.body));
    answer.job()
}

#[tokio::test]
async fn keys_guard_every_route_but_the_open_ones() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys())]);
    assert_eq!(send(&router, get("/api/v1/health", None)).await.status, StatusCode::OK);
    for (key, what) in [(None, "no key"), (Some("not-a-key"), "a wrong key"), (Some(""), "an empty key")] {
        let answer = send(&router, get("/api/v1/jobs", key)).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer", "{what}");
    }
    // Processing and unknown routes are behind the key too: nothing answers before it is checked.
    let answer = send(&router, swap_form().post("/api/v1/process")).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    send(&router, get("/api/v1/nothing-here", None)).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(send(&router, get("/api/v1/jobs", Some(ALICE))).await.status, StatusCode::OK);
    assert_eq!(send(&router, get("/api/v1/models", Some(BOB))).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_sees_and_deletes_only_its_own_jobs() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys())]);
    let job = create_as(&router, ALICE).await;
    assert_eq!(job.owner.as_deref(), Some("alice"));
    let path = format!("/api/v1/jobs/{}", job.id);

    for uri in [path.clone(), format!("{path}/result"), format!("{path}/events")] {
        send(&router, get(&uri, Some(BOB))).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
    }
    let delete = with_key(common::delete(&path), BOB);
    send(&router, delete).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
    let listed = send(&router, get("/api/v1/jobs", Some(BOB))).await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(0), "{listed}");

    let mine = send(&router, get(&path, Some(ALICE))).await;
    assert_eq!((mine.status, mine.job().status), (StatusCode::OK, JobStatus::Queued));
    let listed = send(&router, get("/api/v1/jobs", Some(ALICE))).await.json();
    assert_eq!(listed["jobs"][0]["id"], job.id.as_str(), "{listed}");
    assert_eq!(send(&router, with_key(common::delete(&path), ALICE)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_over_its_rate_waits_as_told_and_others_do_not() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys()), ("FF_RATE_LIMIT_PER_MINUTE", "2")]);
    for _ in 0..2 {
        assert_eq!(send(&router, get("/api/v1/jobs", Some(ALICE))).await.status, StatusCode::OK);
    }
    let refused = send(&router, get("/api/v1/jobs", Some(ALICE))).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = refused.headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After: {wait}");
    assert_eq!(send(&router, get("/api/v1/jobs", Some(BOB))).await.status, StatusCode::OK);
    // Health is not counted: a load balancer's checks must not spend a client's budget.
    assert_eq!(send(&router, get("/api/v1/health", None)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_with_its_most_active_jobs_waits_for_one_to_end() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys()), ("FF_MAX_ACTIVE_JOBS_PER_KEY", "1")]);
    let first = create_as(&router, ALICE).await;
    let refused = send(&router, with_key(swap_form().post("/api/v1/jobs"), ALICE)).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_jobs");
    create_as(&router, BOB).await;
    // Cancelled, it no longer counts.
    let cancel = with_key(common::delete(&format!("/api/v1/jobs/{}", first.id)), ALICE);
    assert_eq!(send(&router, cancel).await.status, StatusCode::OK);
    create_as(&router, ALICE).await;
}

fn with_idempotency_key(request: Request<Body>, key: &str) -> Request<Body> {
    let mut request = request;
    request.headers_mut().insert("idempotency-key", key.parse().unwrap());
    request
}

async fn a_retried_creation_answers_the_job_it_created(backend: Backend) {
    let (_, router) = app(&backend, &[]);
    let first = send(&router, with_idempotency_key(swap_form().post("/api/v1/jobs"), "order-17")).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = send(&router, with_idempotency_key(swap_form().post("/api/v1/jobs"), "order-17")).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.job().id, first.job().id);

    let other_request = swap_form().text("face_swapper_pixel_boost", "256x256").post("/api/v1/jobs");
    let reused = send(&router, with_idempotency_key(other_request, "order-17")).await;
    reused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused");
    let listed = send(&router, get("/api/v1/jobs", None)).await.json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1), "one job for three requests: {listed}");

    let fresh = send(&router, with_idempotency_key(swap_form().post("/api/v1/jobs"), "order-18")).await;
    assert_ne!(fresh.job().id, first.job().id);
    let bad = send(&router, with_idempotency_key(swap_form().post("/api/v1/jobs"), &"k".repeat(300))).await;
    bad.assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

on_both_backends!(a_retried_creation_answers_the_job_it_created);

/// Asks for an upload as `key` would; the answer's status and JSON.
async fn ask_upload(router: &Router, key: &str, content_type: &str, size: usize) -> common::Answer {
    let body = serde_json::json!({ "content_type": content_type, "size": size });
    let request = Request::post("/api/v1/uploads")
        .header("host", "ff.test:8080")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, with_key(request, key)).await
}

/// PUTs `bytes` to a ticket's URL as a client would: ff's own URL through the router (no API
/// key: the query authorises it), a presigned S3 URL to the S3 server itself.
async fn put_upload(router: &Router, ticket: &serde_json::Value, content_type: &str, bytes: &[u8]) -> (u16, String) {
    let url = ticket["url"].as_str().unwrap().to_string();
    match url.strip_prefix("http://ff.test:8080") {
        Some(path_and_query) => {
            let request = Request::put(path_and_query)
                .header(CONTENT_TYPE, content_type)
                .header("content-length", bytes.len())
                .body(Body::from(bytes.to_vec()))
                .unwrap();
            let answer = send(router, request).await;
            (answer.status.as_u16(), String::from_utf8_lossy(&answer.body).into_owned())
        }
        None => {
            let (content_type, bytes) = (content_type.to_string(), bytes.to_vec());
            tokio::task::spawn_blocking(move || {
                let answer = ureq::put(&url)
                    .header("Content-Type", &content_type)
                    .config()
                    .http_status_as_error(false)
                    .build()
                    .send(&bytes[..])
                    .expect("the S3 server answers");
                (answer.status().as_u16(), String::new())
            })
            .await
            .unwrap()
        }
    }
}

/// Direct uploads on both backends: a ticket, the PUT through the URL it names (presigned S3, or
/// ff's own signed route), a job over the two uploads run to completion; and the URL's limits
/// (type, size, once only, signature) on ff's own route.
async fn uploads_go_straight_to_storage_and_feed_json_jobs(backend: Backend) {
    let (state, router) = app(&backend, &[("FF_API_KEYS", &keys()), ("FF_WORKERS", "1")]);
    let workers = Workers::start(&state);
    let (source, target) = (asset("obama.jpg"), asset("biden.jpg"));
    let mut keys_put = Vec::new();
    for bytes in [&source, &target] {
        let answer = ask_upload(&router, ALICE, "image/jpeg", bytes.len()).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{:?}", String::from_utf8_lossy(&answer.body));
        let ticket = answer.json();
        assert_eq!(
            (ticket["method"].as_str(), ticket["headers"]["Content-Type"].as_str()),
            (Some("PUT"), Some("image/jpeg"))
        );
        assert_eq!(ticket["headers"]["Content-Length"].as_str(), Some(bytes.len().to_string().as_str()));
        assert!(ticket["expires_at"].as_str().is_some_and(|at| at.ends_with('Z')), "{ticket}");
        let (status, body) = put_upload(&router, &ticket, "image/jpeg", bytes).await;
        assert_eq!(status, 200, "{body}");
        let key = ticket["key"].as_str().unwrap().to_string();
        assert!(key.starts_with("uploads/"), "{key}");
        assert_eq!(backend.storage.get_bytes(&key, 1 << 30).await.unwrap().0, &bytes[..]);
        keys_put.push(key);
    }
    let body = serde_json::json!({
        "sources": [keys_put[0]], "target": keys_put[1], "options": {"face_swapper_model": "inswapper_128"},
    });
    let mut request = Request::post("/api/v1/jobs")
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    request.headers_mut().insert("prefer", "wait=60".parse().unwrap());
    let answer = send(&router, with_key(request, ALICE)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.job().status, JobStatus::Completed, "{:?}", answer.job().error);

    // What the URL allows and nothing else. Anonymous callers get no ticket.
    send(&router, Request::post("/api/v1/uploads").body(Body::from("{}")).unwrap())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    ask_upload(&router, ALICE, "text/html", 10)
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
    ask_upload(&router, ALICE, "video/mp4", 2 << 30)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let ticket = ask_upload(&router, BOB, "image/png", 4).await.json();
    if backend.fs_root().is_some() {
        assert_eq!(put_upload(&router, &ticket, "image/jpeg", b"1234").await.0, 400, "another type");
        assert_eq!(put_upload(&router, &ticket, "image/png", b"12345").await.0, 413, "a longer body");
        assert_eq!(put_upload(&router, &ticket, "image/png", b"123").await.0, 400, "a shorter body");
        let mut forged = ticket.clone();
        forged["url"] = ticket["url"].as_str().unwrap().replace("size=4", "size=5").into();
        assert_eq!(put_upload(&router, &forged, "image/png", b"12345").await.0, 403, "a changed size");
        assert_eq!(put_upload(&router, &ticket, "image/png", b"1234").await.0, 200);
        let (status, body) = put_upload(&router, &ticket, "image/png", b"4321").await;
        assert_eq!(status, 403, "a second PUT: {body}");
        assert!(body.contains("upload_url_invalid"), "{body}");
        assert_eq!(backend.storage.get_bytes(ticket["key"].as_str().unwrap(), 10).await.unwrap().0, &b"1234"[..]);
    } else {
        assert!(put_upload(&router, &ticket, "image/png", b"12345").await.0 >= 400, "S3 holds the signed length");
        assert!(put_upload(&router, &ticket, "image/jpeg", b"1234").await.0 >= 400, "and the signed type");
    }
    workers.shutdown(std::time::Duration::from_secs(10)).await;
}

on_both_backends!(uploads_go_straight_to_storage_and_feed_json_jobs);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefer_wait_answers_the_finished_job_and_events_follow_one_to_its_end() {
    let backend = fs_backend();
    let (state, router) = app(&backend, &[("FF_WORKERS", "1")]);
    let workers = Workers::start(&state);

    let mut waiting = swap_form().post("/api/v1/jobs");
    waiting.headers_mut().insert("prefer", "wait=60".parse().unwrap());
    let answer = send(&router, waiting).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.headers["preference-applied"], "wait=60");
    let done = answer.job();
    assert_eq!(done.status, JobStatus::Completed);
    assert!(done.expires_at.is_some(), "a finished job says when it goes");

    let job = send(&router, swap_form().post("/api/v1/jobs")).await.job();
    let stream = send(&router, get(&format!("/api/v1/jobs/{}/events", job.id), None)).await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(stream.headers[CONTENT_TYPE], "text/event-stream");
    let text = String::from_utf8(stream.body.to_vec()).unwrap();
    let events: Vec<(&str, Job)> = text
        .split("\n\n")
        .filter_map(|block| {
            let kind = block.lines().find_map(|line| line.strip_prefix("event: "))?;
            let data = block.lines().find_map(|line| line.strip_prefix("data: "))?;
            Some((kind, serde_json::from_str(data).unwrap()))
        })
        .collect();
    let (last_kind, last) = events.last().expect("at least one event");
    assert_eq!((*last_kind, last.status), ("status", JobStatus::Completed), "{text}");
    let revisions: Vec<u64> = events.iter().map(|(_, job)| job.revision).collect();
    assert!(revisions.windows(2).all(|pair| pair[0] < pair[1]), "one event per change: {revisions:?}");
    workers.shutdown(std::time::Duration::from_secs(10)).await;
}

#[tokio::test]
async fn browsers_of_the_allowed_origin_get_cors_headers_and_preflights_need_no_key() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys()), ("FF_CORS_ORIGINS", "https://app.example.com")]);
    let preflight = Request::options("/api/v1/jobs")
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, idempotency-key")
        .body(Body::empty())
        .unwrap();
    let answer = send(&router, preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["access-control-allow-origin"], "https://app.example.com");
    let mut refused = get("/api/v1/jobs", None);
    refused.headers_mut().insert("origin", "https://app.example.com".parse().unwrap());
    let answer = send(&router, refused).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(answer.headers["access-control-allow-origin"], "https://app.example.com");
    let mut elsewhere = get("/api/v1/jobs", Some(ALICE));
    elsewhere.headers_mut().insert("origin", "https://evil.example.com".parse().unwrap());
    assert!(send(&router, elsewhere).await.headers.get("access-control-allow-origin").is_none());
}

/// One call a webhook receiver took: its headers and body.
type Call = (axum::http::HeaderMap, Vec<u8>);

/// What a webhook receiver saw.
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<std::sync::Mutex<Vec<Call>>>,
}

/// A receiver on 127.0.0.1 that fails its first call with a 500 and takes the later ones.
async fn start_receiver() -> (Receiver, u16) {
    let receiver = Receiver::default();
    let seen = receiver.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let mut calls = seen.calls.lock().unwrap();
                calls.push((headers, body.to_vec()));
                if calls.len() == 1 {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, port)
}

/// The Standard Webhooks check a receiver makes: HMAC-SHA256 over id, timestamp and body.
fn signature_is_valid(secret: &[u8], headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature") == expected
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_webhook_is_retried_after_a_500_and_its_attempts_are_recorded() {
    use base64::Engine;
    let secret = [7u8; 32];
    let secret_text = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(secret));
    let (receiver, port) = start_receiver().await;
    let allowed = format!("127.0.0.1:{port}");
    let backend = fs_backend();
    let config = common::test_config(
        &[("FF_WEBHOOK_SECRET", &secret_text), ("FF_WEBHOOK_ALLOWED_HOSTS", &allowed), ("FF_WORKERS", "1")],
        &[],
    );
    let state = AppState::new(config)
        .expect("engine builds")
        .with_storage(Arc::clone(&backend.storage))
        .with_webhook_retry_delays(vec![std::time::Duration::ZERO, std::time::Duration::from_millis(300)]);
    let router = router(state.clone());
    let workers = Workers::start(&state);

    // Plain http and private addresses are refused unless allowed.
    let refused = swap_form().text("webhook", "http://example.com/hook").post("/api/v1/jobs");
    send(&router, refused).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let unknown_event = swap_form()
        .text("webhook", &format!("http://{allowed}/hook"))
        .text("webhook_events_filter", "finished")
        .post("/api/v1/jobs");
    send(&router, unknown_event).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");

    let hooked = swap_form().text("webhook", &format!("http://{allowed}/hook")).post("/api/v1/jobs");
    let created = send(&router, hooked).await;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{:?}", String::from_utf8_lossy(&created.body));
    let id = created.job().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let job = loop {
        let job = send(&router, get(&format!("/api/v1/jobs/{id}"), None)).await.job();
        if job.webhook_deliveries.len() >= 2 || std::time::Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let attempts: Vec<(u32, Option<u16>)> = job.webhook_deliveries.iter().map(|d| (d.attempt, d.status)).collect();
    assert_eq!(attempts, vec![(1, Some(500)), (2, Some(204))], "{:?}", job.webhook_deliveries);
    let calls = receiver.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    for (headers, body) in &calls {
        assert!(signature_is_valid(&secret, headers, body), "the signature verifies");
        let delivered: Job = serde_json::from_slice(body).unwrap();
        assert_eq!((delivered.id.as_str(), delivered.status), (id.as_str(), JobStatus::Completed));
    }
    assert_eq!(calls[0].0["webhook-id"], calls[1].0["webhook-id"], "one message id over its attempts");
    workers.shutdown(std::time::Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_to_the_servers_own_network_is_never_called() {
    use base64::Engine;
    let secret_text = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([9u8; 32]));
    let (receiver, port) = start_receiver().await;
    let backend = fs_backend();
    let config = common::test_config(&[("FF_WEBHOOK_SECRET", &secret_text), ("FF_WORKERS", "1")], &[]);
    let state = AppState::new(config)
        .expect("engine builds")
        .with_storage(Arc::clone(&backend.storage))
        .with_webhook_retry_delays(vec![std::time::Duration::ZERO]);
    let router = router(state.clone());
    let workers = Workers::start(&state);
    // https, so creation takes it; the address check at delivery refuses loopback.
    let hooked = swap_form().text("webhook", &format!("https://localhost:{port}/hook")).post("/api/v1/jobs");
    let id = send(&router, hooked).await.job().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let job = loop {
        let job = send(&router, get(&format!("/api/v1/jobs/{id}"), None)).await.job();
        if !job.webhook_deliveries.is_empty() || std::time::Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let delivery = job.webhook_deliveries.first().expect("the attempt is recorded");
    assert_eq!(delivery.status, None);
    assert!(delivery.error.as_deref().is_some_and(|e| e.contains("may be called")), "{delivery:?}");
    assert!(receiver.calls.lock().unwrap().is_empty());
    workers.shutdown(std::time::Duration::from_secs(10)).await;
}

#[tokio::test]
async fn metrics_count_answers_by_route_and_need_a_key() {
    let backend = fs_backend();
    let (_, router) = app(&backend, &[("FF_API_KEYS", &keys())]);
    send(&router, get("/metrics", None)).await.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let missing = "/api/v1/jobs/01900000-0000-7000-8000-000000000000";
    send(&router, get(missing, Some(ALICE))).await.assert_error(StatusCode::NOT_FOUND, "job_not_found");
    let answer = send(&router, get("/metrics", Some(ALICE))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let text = String::from_utf8(answer.body.to_vec()).unwrap();
    for expected in [
        r#"ff_http_requests_total{route="/api/v1/jobs/{id}",method="GET",status="404"} 1"#,
        r#"ff_http_requests_total{route="/metrics",method="GET",status="401"} 1"#,
        "ff_job_queue_depth 0",
        "# EOF",
    ] {
        assert!(text.contains(expected), "`{expected}` missing from:\n{text}");
    }
}
