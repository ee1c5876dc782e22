//! Batch processing (`inbox/` → `outbox/` or `failed/`) and the S3 event webhook, against both
//! storage backends (the S3 one on a real S3-compatible server, see `ff_service::storage::testing`).
//! Inputs are swapped for real on the stand-in models.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ff_service::batch::{process_inbox_object, BatchOutcome};
use ff_service::storage::{Storage, WriteCondition};
use ff_service::{router, AppState, ServiceConfig};
use tower::ServiceExt;

mod common;
use common::{asset, fs_backend, s3_backend, Backend};

const SECRET: &str = "batch-test-secret-0123456789";

fn test_config(overrides: &[(&str, &str)]) -> ServiceConfig {
    common::test_config(overrides, &[("FF_WORKERS", "0")])
}

on_both_backends!(
    an_inbox_upload_produces_an_outbox_result_once,
    a_bad_target_fails_to_a_report_with_its_code,
    the_webhook_needs_its_secret_and_routes_records,
);

fn state(backend: &Backend, overrides: &[(&str, &str)]) -> AppState {
    AppState::new(test_config(overrides)).expect("engine builds").with_storage(Arc::clone(&backend.storage))
}

async fn put(storage: &Arc<dyn Storage>, key: &str, bytes: Vec<u8>) {
    storage.put_bytes(key, bytes.into(), WriteCondition::None).await.expect("stored");
}

fn swaps(state: &AppState) -> u64 {
    state.engine().registry().get("inswapper_128").expect("swapper loads").run_stats().0
}

async fn an_inbox_upload_produces_an_outbox_result_once(backend: Backend) {
    let state = state(&backend, &[]);
    let storage = Arc::clone(&backend.storage);
    put(&storage, "sources/obama.jpg", asset("obama.jpg")).await;
    let sidecar = serde_json::json!({ "face_swapper_model": "inswapper_128", "sources": ["sources/obama.jpg"] });
    put(&storage, "inbox/biden.jpg.json", sidecar.to_string().into_bytes()).await;
    let target = asset("biden.jpg");
    put(&storage, "inbox/biden.jpg", target.clone()).await;

    let process = |key: &'static str| process_inbox_object(&state, key);
    let before = swaps(&state);
    let outcome = process("inbox/biden.jpg").await.expect("storage works");
    assert_eq!(outcome, BatchOutcome::Completed { output: "outbox/biden.jpg".into() });
    let (result, _) = storage.get_bytes("outbox/biden.jpg", 1 << 30).await.expect("the result exists");
    let (result, target) = (image::load_from_memory(&result).unwrap(), image::load_from_memory(&target).unwrap());
    assert_eq!((result.width(), result.height()), (target.width(), target.height()));
    let after_first = swaps(&state);
    assert!(after_first > before, "the swapper ran");

    // S3 delivers at least once: the second delivery of the same upload is a no-op.
    assert_eq!(process("inbox/biden.jpg").await.expect("storage works"), BatchOutcome::Duplicate);
    assert_eq!(swaps(&state), after_first, "the engine ran once");
    // The sidecar's own event is not an input.
    assert!(matches!(process("inbox/biden.jpg.json").await.expect("storage works"), BatchOutcome::Ignored { .. }));
    assert!(storage.head("failed/biden.jpg.json").await.is_err(), "no failure report");
}

async fn a_bad_target_fails_to_a_report_with_its_code(backend: Backend) {
    // No sidecar: FF_BATCH_OPTIONS applies.
    let defaults = r#"{"face_swapper_model": "inswapper_128", "sources": ["sources/obama.jpg"]}"#;
    let state = state(&backend, &[("FF_BATCH_OPTIONS", defaults)]);
    let storage = Arc::clone(&backend.storage);
    put(&storage, "sources/obama.jpg", asset("obama.jpg")).await;
    put(&storage, "inbox/broken.jpg", b"these bytes are not an image".to_vec()).await;

    let outcome = process_inbox_object(&state, "inbox/broken.jpg").await.expect("storage works");
    assert_eq!(
        outcome,
        BatchOutcome::Failed { code: "unsupported_media".into(), report: "failed/broken.jpg.json".into() }
    );
    let (report, _) = storage.get_bytes("failed/broken.jpg.json", 1 << 20).await.expect("the report exists");
    let report: serde_json::Value = serde_json::from_slice(&report).expect("JSON");
    assert_eq!(report["code"], "unsupported_media");
    assert!(report["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(storage.head("outbox/broken.jpg").await.is_err(), "no result");
    assert!(storage.head("inbox/broken.jpg").await.is_ok(), "the input stays to be fixed");
}

/// The body a MinIO webhook target sends for one upload.
fn minio_event(key: &str) -> String {
    serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": format!("ff/{key}"),
        "Records": [{
            "eventVersion": "2.0",
            "eventSource": "minio:s3",
            "eventName": "s3:ObjectCreated:Put",
            "s3": {
                "bucket": { "name": "ff", "arn": "arn:aws:s3:::ff" },
                "object": { "key": key.replace('/', "%2F"), "size": 28 }
            }
        }]
    })
    .to_string()
}

async fn post_event(state: &AppState, authorization: Option<&str>, body: String) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post("/api/v1/events/s3").header("content-type", "application/json");
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = router(state.clone()).oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

async fn the_webhook_needs_its_secret_and_routes_records(backend: Backend) {
    let storage = Arc::clone(&backend.storage);
    put(&storage, "sources/obama.jpg", asset("obama.jpg")).await;
    put(&storage, "inbox/junk.png", b"not a png".to_vec()).await;
    let body = minio_event("inbox/junk.png");

    let disabled = state(&backend, &[]);
    let (status, answer) = post_event(&disabled, Some(&format!("Bearer {SECRET}")), body.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));

    let defaults = r#"{"face_swapper_model": "inswapper_128", "sources": ["sources/obama.jpg"]}"#;
    let enabled = state(&backend, &[("FF_EVENTS_SECRET", SECRET), ("FF_BATCH_OPTIONS", defaults)]);
    for wrong in [None, Some("Bearer not-the-secret-at-all"), Some(SECRET)] {
        let (status, answer) = post_event(&enabled, wrong, body.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    }
    assert!(storage.head("failed/junk.png.json").await.is_err(), "nothing ran without the secret");

    let (status, answer) = post_event(&enabled, Some(&format!("Bearer {SECRET}")), body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["records"][0]["key"], "inbox/junk.png");
    assert_eq!(answer["records"][0]["action"], "batch");
    let report = storage.get_bytes("failed/junk.png.json", 1 << 20).await.map(|(b, _)| b);
    assert_eq!(answer["records"][0]["outcome"], "failed: unsupported_media", "{report:?}");
    assert!(storage.head("failed/junk.png.json").await.is_ok());

    let (status, answer) = post_event(&enabled, Some(&format!("Bearer {SECRET}")), body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(answer["records"][0]["outcome"], "skipped: already processed");
    let (status, answer) =
        post_event(&enabled, Some(&format!("Bearer {SECRET}")), minio_event("inbox/junk.png.json")).await;
    assert_eq!((status, answer["records"][0]["action"].as_str()), (StatusCode::ACCEPTED, Some("ignored")));
    let (status, _) = post_event(&enabled, Some(&format!("Bearer {SECRET}")), "{".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
