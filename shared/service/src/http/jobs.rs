//! `/api/v1/jobs`: create (multipart upload or JSON naming stored objects), list, show, fetch the
//! result, cancel or delete.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::body::{refuse_unread, within_upload_deadline};
use crate::document::OptionsDocument;
use crate::error::ApiError;
use crate::form::{FormLimits, ProcessForm};
use crate::format::mime_of;
use crate::jobs::create::{self, CreateSettings};
use crate::jobs::queue::QueuePlace;
use crate::jobs::store::{JobStore, Update};
use crate::jobs::{is_job_id, Job, JobStatus};
use crate::limiter::UploadPlace;
use crate::state::AppState;
use crate::storage::Storage;

/// How long a presigned result URL stays valid: enough to start a download, short enough that a
/// leaked URL is soon useless.
const RESULT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

/// POST /api/v1/jobs.
pub fn create_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs", post(create))
}

/// GET /api/v1/jobs and GET /api/v1/jobs/{id}.
pub fn status_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs", get(list)).route("/api/v1/jobs/{id}", get(show))
}

/// GET /api/v1/jobs/{id}/result.
pub fn result_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs/{id}/result", get(result))
}

/// DELETE /api/v1/jobs/{id}.
pub fn delete_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs/{id}", delete(remove))
}

/// A job over objects already in storage.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateFromKeys {
    #[serde(default)]
    sources: Vec<String>,
    target: String,
    #[serde(default)]
    options: Option<serde_json::Value>,
    #[serde(default)]
    output_format: Option<String>,
}

/// Takes a queue place and an upload place first (429 before any upload is read, with the body
/// drained so the client reads it), then reads the form or JSON within FF_UPLOAD_TIMEOUT_SECS (408
/// past it), stores the inputs and the record, and queues the job.
async fn create(State(state): State<AppState>, request: Request) -> Response {
    let places = state.job_queue().reserve().and_then(|place| Ok((place, state.limiter().try_start_upload()?)));
    let (place, upload) = match places {
        Ok(places) => places,
        Err(busy) => return refuse_unread(busy.into(), request).await,
    };
    create_job(&state, upload, request).await.map_or_else(IntoResponse::into_response, |job| accepted(job, place))
}

async fn create_job(state: &AppState, upload: UploadPlace, request: Request) -> Result<Job, ApiError> {
    let config = state.config();
    let limit = config.max_upload_bytes;
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let store = JobStore::new(Arc::clone(state.storage()));
    if content_type.starts_with("multipart/form-data") {
        let form_limits = FormLimits { body_bytes: limit, max_sources: config.max_sources };
        let submission = within_upload_deadline(config.upload_timeout, async {
            let multipart = Multipart::from_request(request, state).await.map_err(ApiError::from)?;
            ProcessForm::read(multipart, form_limits).await
        })
        .await?
        .into_submission()?;
        drop(upload);
        let settings = CreateSettings {
            temp_dir: &config.temp_dir,
            max_video_seconds: config.max_job_video_seconds,
            video_timeout: config.video_timeout,
            max_image_pixels: config.max_image_pixels,
        };
        create::from_submission(&store, submission, settings).await
    } else if content_type.starts_with("application/json") {
        let Json(body) = within_upload_deadline(config.upload_timeout, async {
            Json::<CreateFromKeys>::from_request(request, state).await.map_err(|e| json_error(e, limit))
        })
        .await?;
        drop(upload);
        let raw = body.options.unwrap_or_else(|| serde_json::json!({}));
        let document = OptionsDocument::from_json(raw, body.output_format.as_deref())?;
        create::from_keys(&store, body.sources, body.target, document, config.max_sources).await
    } else {
        Err(ApiError::BadRequest(
            "send the job as multipart/form-data (files like /process) or application/json (stored object keys)".into(),
        ))
    }
}

/// 202 with the job and its address, the job queued for this process's workers.
fn accepted(job: Job, place: Option<QueuePlace>) -> Response {
    if let Some(place) = place {
        place.enqueue(job.id.clone());
    }
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)).ok();
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn json_error(rejection: JsonRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes: limit }
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`status` must be queued, running, completed, failed or cancelled, not `{text}`"
            ))
        })?),
    };
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::BadRequest(format!("`limit` must be an integer in 1..={MAX_PAGE}")))?,
    };
    let cursor = query.cursor.filter(|c| !c.is_empty());
    if cursor.as_deref().is_some_and(|c| !is_job_id(c)) {
        return Err(ApiError::BadRequest("`cursor` must be a `next_cursor` from an earlier page".into()));
    }
    let page = JobStore::new(Arc::clone(state.storage())).list(status, limit, cursor.as_deref()).await?;
    Ok(Json(serde_json::json!({ "jobs": page.jobs, "next_cursor": page.next_cursor })).into_response())
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    Ok(Json(load(&state, &id).await?))
}

async fn load(state: &AppState, id: &str) -> Result<Job, ApiError> {
    // Anything that is not a job id cannot be a job: no storage call, no path to wander along.
    if !is_job_id(id) {
        return Err(ApiError::JobNotFound { id: id.chars().take(64).collect() });
    }
    let store = JobStore::new(Arc::clone(state.storage()));
    match store.load(id).await? {
        Some((job, _)) => Ok(job),
        None => Err(ApiError::JobNotFound { id: id.to_string() }),
    }
}

/// The result: a redirect to a short-lived presigned URL where storage offers one (S3: the bytes
/// never pass through this server, and no Lambda response limit applies), else the file streamed.
async fn result(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = load(&state, &id).await?;
    let key = match (job.status, job.output) {
        (JobStatus::Completed, Some(key)) => key,
        (JobStatus::Queued | JobStatus::Running, _) => {
            return Err(ApiError::JobNotFinished { id: job.id, status: job.status.as_str() })
        }
        (JobStatus::Failed, _) => return Err(ApiError::JobFailed { id: job.id }),
        (_, _) => return Err(ApiError::JobCancelled { id: job.id }),
    };
    let storage: &Arc<dyn Storage> = state.storage();
    if let Some(url) = storage.presign_get(&key, RESULT_URL_LIFETIME).await? {
        let location = HeaderValue::from_str(&url).map_err(|e| ApiError::internal(format!("presigned URL: {e}")))?;
        return Ok((StatusCode::FOUND, [(LOCATION, location)]).into_response());
    }
    let object = storage.get(&key).await?;
    let extension = key.rsplit_once('.').map_or("bin", |(_, extension)| extension);
    let mime = mime_of(extension);
    let disposition = format!("inline; filename=\"{id}.{extension}\"");
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(mime)),
        (CONTENT_LENGTH, HeaderValue::from(object.meta.size)),
        // The id is a validated UUID, so the header value is plain ASCII.
        (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("inline"))),
    ];
    Ok((headers, Body::from_stream(object.stream)).into_response())
}

/// Cancels a queued or running job (its record stays, `cancelled`; its files go), or deletes a
/// finished one entirely (record and files: 204).
async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    if !is_job_id(&id) {
        return Err(ApiError::JobNotFound { id: id.chars().take(64).collect() });
    }
    let store = JobStore::new(Arc::clone(state.storage()));
    let update = store
        .update(&id, |job| match job.status {
            JobStatus::Queued | JobStatus::Running => Some(job.next().finish(JobStatus::Cancelled, None)),
            _ => None,
        })
        .await?;
    match update {
        Update::Missing => Err(ApiError::JobNotFound { id }),
        Update::Written(job) => {
            // A worker of this process stops within a frame; one elsewhere notices at its next
            // progress write, and removes anything it writes after this.
            state.job_cancels().cancel(&id);
            store.delete_files(&id).await?;
            Ok((StatusCode::OK, Json(job)).into_response())
        }
        Update::Unchanged(_) => {
            store.delete(&id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}
