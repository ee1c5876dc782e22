//! /processors, /models, /models/download and /system through the router: the answers clients
//! branch on, and every bad input as a JSON 400 with a stable code.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use ff_pipeline::testing::assets_dir;
use ff_service::{router, AppState, ServiceConfig};
use serde_json::Value;
use tower::ServiceExt;

fn state() -> AppState {
    state_with_models(&assets_dir().join("standins/light"))
}

fn state_with_models(models: &std::path::Path) -> AppState {
    state_with(models, "false")
}

/// Downloads allowed, for the download route; the tests ask only for present models or bad names,
/// so nothing is fetched.
fn state_allowing_downloads() -> AppState {
    state_with(&assets_dir().join("standins/light"), "true")
}

fn state_with(models: &std::path::Path, allow_download: &str) -> AppState {
    let models = models.to_string_lossy().into_owned();
    let data = std::env::temp_dir().join("ff-admin-tests-unused");
    let data = data.to_string_lossy().into_owned();
    let vars = [
        ("FF_MODELS_DIR", models.as_str()),
        ("FF_ALLOW_MODEL_DOWNLOAD", allow_download),
        ("FF_EXECUTION_THREAD_COUNT", "1"),
        ("FF_MAX_CONCURRENT_REQUESTS", "2"),
        ("FF_MAX_QUEUED_REQUESTS", "1"),
        ("FF_DATA_DIR", data.as_str()),
    ];
    let config =
        ServiceConfig::from_lookup(|name| vars.iter().find(|(key, _)| *key == name).map(|(_, v)| v.to_string()))
            .expect("test configuration is valid");
    AppState::new(config).expect("engine builds")
}

async fn call(state: &AppState, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(body.map_or_else(Body::empty, |text| Body::from(text.to_string()))).unwrap();
    let response = router(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn models_are_filtered_by_processor_and_presence() {
    let state = state();
    let (status, body) =
        call(&state, Method::GET, "/api/v1/models?processor=face_detector&downloaded=true", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"yoloface_8n") && names.contains(&"scrfd_2.5g"), "{names:?}");
    assert_eq!(body["count"], names.len());
    assert_eq!(body["download_allowed"], false);
    let (_, missing) = call(&state, Method::GET, "/api/v1/models?processor=face_detector&downloaded=false", None).await;
    assert!(missing["models"].as_array().unwrap().iter().all(|m| m["downloaded"] == false && m["size"].is_null()));
    let (_, all) = call(&state, Method::GET, "/api/v1/models", None).await;
    assert_eq!(all["count"], ff_pipeline::models::catalogue().models().len());
}

#[tokio::test]
async fn custom_deep_swapper_models_are_listed_without_a_hash() {
    let models = tempfile::tempdir().unwrap();
    std::fs::create_dir(models.path().join("custom")).unwrap();
    std::fs::write(models.path().join("custom/mine.dfm"), b"not checked").unwrap();
    std::fs::write(models.path().join("custom/notes.txt"), b"not a model").unwrap();
    let state = state_with_models(models.path());

    let (status, body) = call(&state, Method::GET, "/api/v1/models?processor=deep_swapper", None).await;
    assert_eq!(status, StatusCode::OK);
    let rows = body["models"].as_array().unwrap();
    let custom: Vec<&Value> = rows.iter().filter(|row| row["custom"] == true).collect();
    assert_eq!(custom.len(), 1, "{custom:?}");
    let row = custom[0];
    assert_eq!(row["name"], "custom/mine");
    assert_eq!(row["file"], "custom/mine.dfm");
    assert_eq!(row["modules"], serde_json::json!(["deep_swapper"]));
    assert_eq!((row["downloaded"].clone(), row["size"].clone()), (Value::Bool(true), Value::from(11)));
    assert!(row["download_scope"].is_null());
    assert!(rows.iter().any(|row| row["name"] == "iperov/elon_musk_224" && row["custom"] == false));

    let (_, missing) = call(&state, Method::GET, "/api/v1/models?downloaded=false", None).await;
    assert!(missing["models"].as_array().unwrap().iter().all(|row| row["custom"] == false));
    let (_, detectors) = call(&state, Method::GET, "/api/v1/models?processor=face_detector", None).await;
    assert!(detectors["models"].as_array().unwrap().iter().all(|row| row["custom"] == false));
}

#[tokio::test]
async fn bad_model_queries_and_download_bodies_are_json_400s() {
    let state = state_allowing_downloads();
    for (method, uri, body) in [
        (Method::GET, "/api/v1/models?processor=nope", None),
        (Method::GET, "/api/v1/models?downloaded=maybe", None),
        (Method::POST, "/api/v1/models/download", Some(r#"{"names": ["inswapper_128"]}"#)),
        (Method::POST, "/api/v1/models/download", Some("[]")),
        (Method::POST, "/api/v1/models/download", Some(r#"["inswapper_128", "nope"]"#)),
        (Method::POST, "/api/v1/models/download", Some("not json")),
    ] {
        let (status, answer) = call(&state, method.clone(), uri, body).await;
        assert_eq!((status, code(&answer)), (StatusCode::BAD_REQUEST, "bad_request"), "{method} {uri} {body:?}");
    }
}

#[tokio::test]
async fn present_models_are_reported_without_a_download() {
    let state = state_allowing_downloads();
    let (status, body) =
        call(&state, Method::POST, "/api/v1/models/download", Some(r#"["2dfan4", "yolo_face"]"#)).await;
    assert_eq!(status, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    let fan = results.iter().find(|r| r["name"] == "2dfan4").expect("2dfan4 listed");
    assert_eq!((fan["status"].as_str(), fan["verified"].as_bool()), (Some("present"), Some(true)));
    assert!(results.iter().any(|r| r["name"] == "yoloface_8n"), "an option value expands to its files");
}

#[tokio::test]
async fn system_counts_busy_slots_and_waiting_requests() {
    let state = state();
    let running = state.limiter().try_admit().unwrap().wait_for_slot().await;
    let waiting = state.limiter().try_admit().unwrap();
    let (status, body) = call(&state, Method::GET, "/api/v1/system", None).await;
    assert_eq!(status, StatusCode::OK);
    let processing = &body["processing"];
    assert_eq!((processing["slots"].as_u64(), processing["slots_busy"].as_u64()), (Some(2), Some(1)));
    assert_eq!((processing["queue_capacity"].as_u64(), processing["queued"].as_u64()), (Some(1), Some(1)));
    drop(waiting);
    drop(running);
    let (_, idle) = call(&state, Method::GET, "/api/v1/system", None).await;
    assert_eq!(idle["processing"]["slots_busy"], 0);
    assert!(idle["memory"]["total_bytes"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn processors_list_every_option_with_its_flag() {
    let (status, body) = call(&state(), Method::GET, "/api/v1/processors", None).await;
    assert_eq!(status, StatusCode::OK);
    let common = body["common_options"].as_array().unwrap();
    let blur = common.iter().find(|o| o["name"] == "face_mask_blur").unwrap();
    assert_eq!(blur["flag"], "--face-mask-blur");
    assert_eq!(
        (blur["type"].as_str(), blur["min"].as_f64(), blur["max"].as_f64()),
        (Some("float"), Some(0.0), Some(1.0))
    );
}
