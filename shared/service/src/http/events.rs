//! POST /api/v1/events/s3: S3 event notifications over HTTP (a MinIO webhook target), routed
//! like the Lambda worker's S3 events (see `crate::events`).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::body::{read_small, refuse_unread, EVENTS_BODY_LIMIT};
use crate::error::ApiError;
use crate::events::{handle_object_event, RecordReport};
use crate::keys::{bearer_token, constant_time_eq};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events/s3", post(webhook))
}

/// The parts of an S3 event record this service reads; AWS and MinIO records share them.
#[derive(Debug, Deserialize)]
struct WebhookEvent {
    #[serde(rename = "Records", default)]
    records: Vec<WebhookRecord>,
}

#[derive(Debug, Deserialize)]
struct WebhookRecord {
    #[serde(rename = "eventName", default)]
    event_name: String,
    s3: WebhookS3,
}

#[derive(Debug, Deserialize)]
struct WebhookS3 {
    #[serde(default)]
    bucket: WebhookBucket,
    object: WebhookObject,
}

#[derive(Debug, Default, Deserialize)]
struct WebhookBucket {
    #[serde(default)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct WebhookObject {
    key: String,
}

/// POST /api/v1/events/s3: a MinIO webhook target (or anything sending S3 event JSON). 202 with
/// a report per record; 503 when a record failed in a way a redelivery can fix, which MinIO
/// answers by delivering the event again.
///
/// Whether the route is on and the caller holds the secret is decided from the headers alone;
/// only then is the body read, at most [`EVENTS_BODY_LIMIT`] of it within FF_UPLOAD_TIMEOUT_SECS.
async fn webhook(State(state): State<AppState>, request: Request) -> Response {
    // Unset secret: the endpoint does not exist, so an unconfigured server cannot be driven by it.
    let Some(secret) = state.config().events_secret.as_deref() else {
        let not_found = ApiError::NotFound { method: "POST".into(), path: "/api/v1/events/s3".into() };
        return refuse_unread(not_found, request).await;
    };
    if !presents_secret(request.headers(), secret) {
        return refuse_unread(ApiError::Unauthorized, request).await;
    }
    let body = match read_small(request, EVENTS_BODY_LIMIT, state.config().upload_timeout).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    let event: WebhookEvent = match serde_json::from_slice(&body) {
        Ok(event) => event,
        Err(error) => return ApiError::BadRequest(format!("not an S3 event: {error}")).into_response(),
    };
    // Records are processed here, in the request, so they share the processing slots with
    // /process: a burst of uploads waits for the CPU instead of oversubscribing it.
    let admission = match state.limiter().try_admit() {
        Ok(admission) => admission,
        Err(busy) => return ApiError::from(busy).into_response(),
    };
    let _slot = admission.wait_for_slot().await;
    let mut records = Vec::with_capacity(event.records.len());
    let mut retry = false;
    for record in &event.records {
        let handled =
            handle_object_event(&state, &record.event_name, &record.s3.bucket.name, &record.s3.object.key).await;
        match handled {
            Ok(report) => records.push(report),
            Err(error) => {
                tracing::error!(key = %error.key, detail = %error.detail, "S3 event record failed");
                retry = true;
                records.push(RecordReport { key: error.key, action: error.action, outcome: "error: retry".into() });
            }
        }
    }
    let status = if retry { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED };
    (status, Json(serde_json::json!({ "records": records }))).into_response()
}

/// Whether the `Authorization` header carries the bearer secret.
fn presents_secret(headers: &HeaderMap, secret: &str) -> bool {
    bearer_token(headers).is_some_and(|token| constant_time_eq(token.as_bytes(), secret.as_bytes()))
}
