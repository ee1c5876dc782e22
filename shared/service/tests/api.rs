//! The /api/v1 API driven through its router with `oneshot`: every documented status and code,
//! and a real face swap on the stand-in FaceFusion models.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use ff_service::{router, AppState, ServiceConfig, X_FACES_PROCESSED};
use tower::ServiceExt;

mod common;
use common::{asset, blank_png, Form, BOUNDARY};

fn test_config(overrides: &[(&str, &str)]) -> ServiceConfig {
    common::test_config(overrides, &[])
}

fn app(config: ServiceConfig) -> (AppState, Router) {
    let state = AppState::new(config).expect("engine builds");
    (state.clone(), router(state))
}

fn swap_form(source: &[u8], target: &[u8]) -> Form {
    Form::default().file("source", "source.jpg", source).file("target", "target.jpg", target)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// The `code` and `message` of a JSON error body, checking its shape on the way.
    fn error(&self) -> (String, String) {
        assert_eq!(self.headers[CONTENT_TYPE], "application/json", "body: {:?}", self.body);
        let json: serde_json::Value = serde_json::from_slice(&self.body).expect("error body is JSON");
        let code = json["error"]["code"].as_str().expect("error.code").to_string();
        let message = json["error"]["message"].as_str().expect("error.message").to_string();
        (code, message)
    }

    fn assert_error(&self, status: StatusCode, code: &str) -> String {
        let (actual_code, message) = self.error();
        assert_eq!((self.status, actual_code.as_str()), (status, code), "message: {message}");
        message
    }
}

async fn send(router: Router, request: Request<Body>) -> Answer {
    let response = router.oneshot(request).await.expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.expect("body reads");
    Answer { status: parts.status, headers: parts.headers, body }
}

#[tokio::test]
async fn health_reports_ok_and_the_version() {
    let (_, router) = app(test_config(&[]));
    let answer = send(router, Request::get("/api/v1/health").body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let json: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(json["status"], "ok");
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let (_, router) = app(test_config(&[]));
    let answer = send(router, Request::get("/api/v2/nothing").body(Body::empty()).unwrap()).await;
    let message = answer.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("/api/v2/nothing"), "{message}");
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let (_, router) = app(test_config(&[]));
    let answer = send(router, Request::get("/api/v1/process").body(Body::empty()).unwrap()).await;
    answer.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_body_that_is_not_multipart_is_a_bad_request() {
    let (_, router) = app(test_config(&[]));
    let request =
        Request::post("/api/v1/process").header(CONTENT_TYPE, "application/json").body(Body::from("{}")).unwrap();
    send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn missing_target_is_a_bad_request() {
    let (_, router) = app(test_config(&[]));
    let request = Form::default().file("source", "obama.jpg", &asset("obama.jpg")).post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert!(message.contains("target"), "{message}");
}

#[tokio::test]
async fn an_unknown_file_field_is_named() {
    let (_, router) = app(test_config(&[]));
    let request =
        swap_form(&asset("obama.jpg"), &asset("biden.jpg")).file("mask", "mask.png", b"x").post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(message.contains("`mask`"), "{message}");
}

#[tokio::test]
async fn an_unsupported_output_format_is_an_invalid_option() {
    let (_, router) = app(test_config(&[]));
    let request =
        swap_form(&asset("obama.jpg"), &asset("biden.jpg")).text("output_format", "gif").post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(message.contains("output_format"), "{message}");
}

#[tokio::test]
async fn options_as_fields_and_as_json_together_are_rejected() {
    let (_, router) = app(test_config(&[]));
    let request = swap_form(&asset("obama.jpg"), &asset("biden.jpg"))
        .text("options", r#"{"face_swapper_model": "inswapper_128"}"#)
        .text("face_swapper_model", "inswapper_128")
        .post("/api/v1/process");
    send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn an_unknown_option_field_is_named() {
    let (_, router) = app(test_config(&[]));
    let request =
        swap_form(&asset("obama.jpg"), &asset("biden.jpg")).text("face_swapper_modle", "x").post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(message.contains("face_swapper_modle"), "{message}");
}

#[tokio::test]
async fn an_out_of_range_option_value_is_rejected() {
    let (_, router) = app(test_config(&[]));
    let request =
        swap_form(&asset("obama.jpg"), &asset("biden.jpg")).text("face_mask_blur", "1.5").post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(message.contains("face_mask_blur"), "{message}");
}

#[tokio::test]
async fn an_unknown_model_name_is_rejected() {
    let (_, router) = app(test_config(&[]));
    let request = swap_form(&asset("obama.jpg"), &asset("biden.jpg"))
        .text("face_swapper_model", "no_such")
        .post("/api/v1/process");
    let message = send(router, request).await.assert_error(StatusCode::BAD_REQUEST, "invalid_option");
    assert!(message.contains("face_swapper_model"), "{message}");
}

#[tokio::test]
async fn a_target_that_is_not_an_image_is_unsupported_media() {
    let (_, router) = app(test_config(&[]));
    let request = swap_form(&asset("obama.jpg"), b"this is plain text, not a picture").post("/api/v1/process");
    send(router, request).await.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media");
}

#[tokio::test]
async fn a_declared_oversized_body_is_a_json_413() {
    let mut config = test_config(&[]);
    config.max_upload_bytes = 1024;
    let (_, router) = app(config);
    let request = swap_form(&asset("obama.jpg"), &asset("biden.jpg")).post("/api/v1/process");
    send(router, request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn a_streamed_oversized_body_is_a_json_413() {
    let mut config = test_config(&[]);
    config.max_upload_bytes = 1024;
    let (_, router) = app(config);
    // No Content-Length: the limit can only bite while the body streams in.
    let body = swap_form(&asset("obama.jpg"), &asset("biden.jpg")).finish();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.chunks(512).map(|c| Ok(c.to_vec())).collect();
    let request = Request::post("/api/v1/process")
        .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    send(router, request).await.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn busy_when_every_slot_and_queue_place_is_taken() {
    let (state, router) = app(test_config(&[("FF_MAX_CONCURRENT_REQUESTS", "1"), ("FF_MAX_QUEUED_REQUESTS", "0")]));
    let _held = state.limiter().try_admit().expect("the only place is free");
    let answer = send(router, swap_form(&asset("obama.jpg"), &asset("biden.jpg")).post("/api/v1/process")).await;
    answer.assert_error(StatusCode::TOO_MANY_REQUESTS, "busy");
    assert!(answer.headers[RETRY_AFTER].to_str().unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn a_request_over_its_time_budget_is_a_json_503() {
    let mut config = test_config(&[]);
    config.request_timeout = Duration::from_millis(100);
    let (_, router) = app(config);
    // A body that never arrives: the handler waits on the upload until the timeout fires.
    let stalled = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
    let request = Request::post("/api/v1/process")
        .header(CONTENT_TYPE, format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(Body::from_stream(stalled))
        .unwrap();
    send(router, request).await.assert_error(StatusCode::SERVICE_UNAVAILABLE, "timeout");
}

#[tokio::test]
async fn a_source_without_a_face_is_unprocessable() {
    let (_, router) = app(test_config(&[]));
    let request = Form::default()
        .file("source", "sky.png", &blank_png(320, 240))
        .file("target", "biden.jpg", &asset("biden.jpg"))
        .text("face_swapper_model", "inswapper_128")
        .post("/api/v1/process");
    send(router, request).await.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "no_source_face");
}

fn assert_image_of_size(answer: &Answer, mime: &str, size: (u32, u32)) {
    assert_eq!(answer.status, StatusCode::OK, "body: {}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.headers[CONTENT_TYPE], mime);
    let disposition = answer.headers[CONTENT_DISPOSITION].to_str().unwrap();
    assert!(disposition.contains("filename=\""), "{disposition}");
    let decoded = image::load_from_memory(&answer.body).expect("the result decodes");
    assert_eq!((decoded.width(), decoded.height()), size);
}

fn faces_processed(answer: &Answer) -> usize {
    answer.headers[X_FACES_PROCESSED].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn swaps_the_face_with_options_as_fields() {
    let (_, router) = app(test_config(&[]));
    let target = asset("biden.jpg");
    let size = image::load_from_memory(&target).unwrap();
    let request =
        swap_form(&asset("obama.jpg"), &target).text("face_swapper_model", "inswapper_128").post("/api/v1/process");
    let answer = send(router, request).await;
    assert_image_of_size(&answer, "image/jpeg", (size.width(), size.height()));
    assert_eq!(faces_processed(&answer), 1);
    assert!(answer.headers[CONTENT_DISPOSITION].to_str().unwrap().contains("target.jpg"));
}

#[tokio::test]
async fn swaps_the_face_with_options_as_json_and_a_chosen_format() {
    let (_, router) = app(test_config(&[]));
    let target = asset("biden.jpg");
    let size = image::load_from_memory(&target).unwrap();
    let request = swap_form(&asset("obama.jpg"), &target)
        .text("options", r#"{"processors": ["face_swapper"], "face_swapper_model": "inswapper_128"}"#)
        .text("output_format", "png")
        .post("/api/v1/process");
    let answer = send(router, request).await;
    assert_image_of_size(&answer, "image/png", (size.width(), size.height()));
    assert_eq!(faces_processed(&answer), 1);
}

#[tokio::test]
async fn a_target_without_a_face_comes_back_unchanged() {
    let (_, router) = app(test_config(&[]));
    let target = blank_png(200, 150);
    let request = Form::default()
        .file("source", "obama.jpg", &asset("obama.jpg"))
        .file("target", "sky.png", &target)
        .text("face_swapper_model", "inswapper_128")
        .post("/api/v1/process");
    let answer = send(router, request).await;
    assert_image_of_size(&answer, "image/png", (200, 150));
    assert_eq!(faces_processed(&answer), 0);
    let returned = image::load_from_memory(&answer.body).unwrap().to_rgb8();
    assert_eq!(returned, image::load_from_memory(&target).unwrap().to_rgb8());
}
