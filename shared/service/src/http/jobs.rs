//! `/api/v1/jobs`: list, show, follow (events), fetch the result, cancel or delete. Creation is
//! in [`super::job_create`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::format::mime_of;
use crate::jobs::segments;
use crate::jobs::store::{JobStore, Update};
use crate::jobs::watch;
use crate::jobs::{is_job_id, Job, JobStatus};
use crate::keys::Caller;
use crate::state::AppState;
use crate::storage::Storage;
use crate::webhooks::WebhookEvent;

/// How long a presigned result URL stays valid: enough to start a download, short enough that a
/// leaked URL is soon useless.
const RESULT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);
const DEFAULT_PAGE: usize = 20;
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
const MAX_PAGE: usize = 100;

/// GET /api/v1/jobs, GET /api/v1/jobs/{id} and its event stream GET /api/v1/jobs/{id}/events.
pub fn status_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/jobs", get(list))
        .route("/api/v1/jobs/{id}", get(show))
        .route("/api/v1/jobs/{id}/events", get(events))
}

/// GET /api/v1/jobs/{id}/result.
pub fn result_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs/{id}/result", get(result))
}

/// DELETE /api/v1/jobs/{id}.
pub fn delete_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs/{id}", delete(remove))
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
    caller: Caller,
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
    let page =
        JobStore::new(Arc::clone(state.storage())).list(status, caller.key_name(), limit, cursor.as_deref()).await?;
    Ok(Json(serde_json::json!({ "jobs": page.jobs, "next_cursor": page.next_cursor })).into_response())
}

/// The record; while the job runs in segments, with the frames of its running segments counted.
async fn show(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<Job>, ApiError> {
    let job = load(&state, &id, &caller).await?;
    let store = JobStore::new(Arc::clone(state.storage()));
    Ok(Json(segments::with_live_progress(&store, job).await?))
}

/// Server-Sent Events of the job's record: an event whenever it changes (`status` when its status
/// did, else `progress`; the data is the record, the event id its revision), ending after the final
/// status. A stream lasts at most FF_REQUEST_TIMEOUT_SECS; a client reconnecting with
/// `Last-Event-ID` continues after the revision it saw.
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let job = load(&state, &id, &caller).await?;
    let seen = headers.get(LAST_EVENT_ID).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    let stream = JobEvents {
        store: JobStore::new(Arc::clone(state.storage())),
        id: job.id,
        revision: seen,
        status: None,
        deadline: Instant::now() + state.config().request_timeout,
        done: false,
    };
    let events = futures_util::stream::unfold(stream, |mut watcher| async move {
        let event = watcher.next().await?;
        Some((Ok(event), watcher))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Where an event stream of one job is.
struct JobEvents {
    store: JobStore,
    id: String,
    /// The last revision sent (or the client saw before reconnecting).
    revision: Option<u64>,
    /// The last status sent.
    status: Option<JobStatus>,
    deadline: Instant,
    done: bool,
}

impl JobEvents {
    /// The next event; `None` ends the stream (final status sent, record gone, time up, or
    /// storage failing: the client reconnects).
    async fn next(&mut self) -> Option<Event> {
        if self.done {
            return None;
        }
        match watch::next_change(&self.store, &self.id, self.revision, self.deadline).await {
            Ok(watch::Seen::Changed(job)) => {
                let kind = if self.status == Some(job.status) { "progress" } else { "status" };
                self.revision = Some(job.revision);
                self.status = Some(job.status);
                self.done = job.status.is_final();
                let event = Event::default().event(kind).id(job.revision.to_string());
                event.json_data(&job).ok()
            }
            Ok(watch::Seen::Gone) => {
                self.done = true;
                Some(Event::default().event("deleted").data(serde_json::json!({ "id": self.id }).to_string()))
            }
            Ok(watch::Seen::Unchanged) => None,
            Err(error) => {
                tracing::warn!(job = %self.id, %error, "a job's event stream could not read its record");
                None
            }
        }
    }
}

/// The job, if it exists and the caller may see it: another key's job is as absent as a missing one.
async fn load(state: &AppState, id: &str, caller: &Caller) -> Result<Job, ApiError> {
    // Anything that is not a job id cannot be a job: no storage call, no path to wander along.
    if !is_job_id(id) {
        return Err(ApiError::JobNotFound { id: id.chars().take(64).collect() });
    }
    let store = JobStore::new(Arc::clone(state.storage()));
    match store.load(id).await? {
        Some((job, _)) if caller.may_see(job.owner.as_deref()) => Ok(job),
        _ => Err(ApiError::JobNotFound { id: id.to_string() }),
    }
}

/// The result: a redirect to a short-lived presigned URL where storage offers one (S3: the bytes
/// never pass through this server, and no Lambda response limit applies), else the file streamed.
async fn result(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let job = load(&state, &id, &caller).await?;
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
async fn remove(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    // Only the owner may cancel or delete; a job's owner never changes, so one check suffices.
    load(&state, &id, &caller).await?;
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
            state.webhooks().notify(&job, WebhookEvent::Completed);
            state.metrics().job_ended(&job);
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
