//! S3 object events: what the Lambda worker receives from S3 and what POST /api/v1/events/s3
//! receives from a MinIO webhook, routed the same way: `jobs/<id>.json` runs the job,
//! `inbox/<name>` runs the batch, anything else is ignored with the reason.
//!
//! Both deliver at least once and sometimes late; `run_job` and `process_inbox_object` make
//! repeats no-ops, so this module only has to route.

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::batch::{decode_s3_key, inbox_name, process_inbox_object, strip_key_prefix, BatchOutcome};
use crate::error::ApiError;
use crate::jobs::store::StoreError;
use crate::jobs::{is_job_id, run_job, RunOutcome, JOBS_PREFIX};
use crate::state::AppState;

/// What was done with one record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    /// The object key, decoded and without FF_S3_PREFIX.
    pub key: String,
    /// `job`, `batch`, or `ignored` (with the reason in `outcome`).
    pub action: &'static str,
    /// `completed`, `failed: <code>`, `skipped: <why>`, ..., or why it was ignored.
    pub outcome: String,
}

/// A record that failed in a way a redelivery can fix (storage unreachable, a contended record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub key: String,
    pub action: &'static str,
    pub detail: String,
}

/// Routes one object event. `event_name` may carry MinIO's `s3:` prefix.
pub async fn handle_object_event(
    state: &AppState,
    event_name: &str,
    bucket: &str,
    raw_key: &str,
) -> Result<RecordReport, RecordError> {
    let ignored = |key: &str, why: String| {
        tracing::info!(%key, reason = %why, "S3 record ignored");
        Ok(RecordReport { key: key.to_string(), action: "ignored", outcome: why })
    };
    if !event_name.trim_start_matches("s3:").starts_with("ObjectCreated:") {
        return ignored(raw_key, format!("event `{event_name}` is not an ObjectCreated event"));
    }
    let config = state.config();
    // A trigger on another bucket is a deployment mistake: its keys must not touch our jobs. With
    // filesystem storage (a local run replaying recorded events) FF_DATA_DIR stands for the bucket.
    if config.s3_bucket.as_deref().is_some_and(|ours| ours != bucket) {
        return ignored(raw_key, format!("bucket `{bucket}` is not FF_S3_BUCKET"));
    }
    let Some(decoded) = decode_s3_key(raw_key) else {
        return ignored(raw_key, "the key is not valid URL-encoded UTF-8".into());
    };
    let Some(key) = strip_key_prefix(&decoded, &config.s3_prefix) else {
        return ignored(&decoded, format!("the key is outside FF_S3_PREFIX `{}`", config.s3_prefix));
    };
    if let Some(job_id) = job_record_id(key) {
        return match run_job(state, job_id).await {
            Ok(outcome) => Ok(RecordReport { key: key.to_string(), action: "job", outcome: describe_job(&outcome) }),
            Err(error) if job_retry_can_help(&error) => {
                Err(RecordError { key: key.to_string(), action: "job", detail: error.to_string() })
            }
            Err(error) => {
                // A damaged record stays damaged however often it is read: report it, do not retry.
                tracing::error!(%key, %error, "job record cannot be processed");
                Ok(RecordReport { key: key.to_string(), action: "job", outcome: format!("error: {error}") })
            }
        };
    }
    if inbox_name(key).is_some() {
        return match process_inbox_object(state, key).await {
            Ok(outcome) => {
                Ok(RecordReport { key: key.to_string(), action: "batch", outcome: describe_batch(&outcome) })
            }
            Err(error) if error.is_transient() => {
                Err(RecordError { key: key.to_string(), action: "batch", detail: error.to_string() })
            }
            Err(error) => {
                tracing::error!(%key, %error, "batch input cannot be processed");
                Ok(RecordReport { key: key.to_string(), action: "batch", outcome: format!("error: {error}") })
            }
        };
    }
    ignored(key, "neither a job record (jobs/<id>.json) nor a batch input (inbox/<name>)".into())
}

fn job_retry_can_help(error: &StoreError) -> bool {
    match error {
        StoreError::Storage(error) => error.is_transient(),
        StoreError::Contended { .. } => true,
        StoreError::Corrupt { .. } => false,
    }
}

fn describe_job(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed { .. } => "completed".into(),
        RunOutcome::Failed { code } => format!("failed: {code}"),
        RunOutcome::Cancelled => "cancelled".into(),
        RunOutcome::Skipped { status: Some(status) } => format!("skipped: {}", status.as_str()),
        RunOutcome::Skipped { status: None } => "skipped: no such job".into(),
        RunOutcome::Superseded { status } => format!("superseded: {}", status.as_str()),
    }
}

fn describe_batch(outcome: &BatchOutcome) -> String {
    match outcome {
        BatchOutcome::Completed { output } => format!("completed: {output}"),
        BatchOutcome::Failed { code, .. } => format!("failed: {code}"),
        BatchOutcome::Duplicate => "skipped: already processed".into(),
        BatchOutcome::Ignored { reason } => format!("skipped: {reason}"),
    }
}

/// The job id of a record key `jobs/<id>.json`; `None` for a job's files and anything else.
pub fn job_record_id(key: &str) -> Option<&str> {
    let id = key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json")?;
    is_job_id(id).then_some(id)
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

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/events/s3", post(webhook))
}

/// POST /api/v1/events/s3: a MinIO webhook target (or anything sending S3 event JSON). 202 with
/// a report per record; 503 when a record failed in a way a redelivery can fix, which MinIO
/// answers by delivering the event again.
async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    // Unset secret: the endpoint does not exist, so an unconfigured server cannot be driven by it.
    let Some(secret) = state.config().events_secret.as_deref() else {
        return ApiError::NotFound { method: "POST".into(), path: "/api/v1/events/s3".into() }.into_response();
    };
    let presented = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| constant_time_eq(token.trim().as_bytes(), secret.as_bytes())) {
        return ApiError::Unauthorized.into_response();
    }
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

/// Compares without stopping at the first difference, so timing does not reveal the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_records_name_a_job() {
        let id = "0192f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        assert_eq!(job_record_id(&format!("jobs/{id}.json")), Some(id));
        assert_eq!(job_record_id(&format!("jobs/{id}/inputs/target.png")), None);
        assert_eq!(job_record_id("jobs/not-an-id.json"), None);
        assert_eq!(job_record_id(&format!("inbox/{id}.json")), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
