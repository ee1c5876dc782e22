//! POST /api/v1/jobs: a job from a multipart upload (files like /process) or from JSON naming
//! stored objects; with `Idempotency-Key` (a retried creation answers the job it created) and
//! `Prefer: wait=N` (the answer waits up to N seconds for the job to finish).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::time::Instant;

use super::body::{refuse_unread, within_upload_deadline};
use crate::document::OptionsDocument;
use crate::error::ApiError;
use crate::form::{FormLimits, ProcessForm, Submission};
use crate::jobs::create::{self, CreateSettings};
use crate::jobs::idempotency::{self, Fingerprint, IdempotencyKey};
use crate::jobs::store::JobStore;
use crate::jobs::{quota, watch, Job, NewJobPolicy};
use crate::keys::Caller;
use crate::limiter::UploadPlace;
use crate::state::AppState;
use crate::webhooks::target::WebhookRequest;
use crate::webhooks::Webhook;

const PREFER: HeaderName = HeaderName::from_static("prefer");
const PREFERENCE_APPLIED: HeaderName = HeaderName::from_static("preference-applied");

/// The longest `Prefer: wait=N` honoured: a client wanting longer should follow the event stream.
const MAX_PREFERRED_WAIT: Duration = Duration::from_secs(60);

/// POST /api/v1/jobs.
pub fn create_router() -> Router<AppState> {
    Router::new().route("/api/v1/jobs", post(create))
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
    #[serde(default)]
    webhook: Option<String>,
    #[serde(default)]
    webhook_events_filter: Option<Vec<String>>,
}

/// A creation request as read, before anything is stored.
enum JobRequest {
    Form(Box<Submission>),
    Keys(CreateFromKeys),
}

impl JobRequest {
    fn webhook(&self) -> Option<WebhookRequest> {
        match self {
            Self::Form(form) => form.webhook.clone(),
            Self::Keys(keys) => {
                keys.webhook.clone().map(|url| WebhookRequest { url, events: keys.webhook_events_filter.clone() })
            }
        }
    }

    /// Everything that makes the request what it is: its files, keys, options and format.
    fn fingerprint(&self) -> Fingerprint {
        match self {
            Self::Form(form) => {
                let options = format!("{}{:?}", form.document.raw, form.webhook);
                let format = form.document.output_format.map_or("", |format| format.extension());
                let count = form.sources.len().to_le_bytes();
                let head: [&[u8]; 2] = [b"form", &count];
                let target: [&[u8]; 4] = [
                    &form.target,
                    form.target_name.as_deref().unwrap_or_default().as_bytes(),
                    options.as_bytes(),
                    format.as_bytes(),
                ];
                Fingerprint::of(head.into_iter().chain(form.sources.iter().map(Vec::as_slice)).chain(target))
            }
            Self::Keys(keys) => {
                let options = format!("{:?}{:?}{:?}", keys.options, keys.webhook, keys.webhook_events_filter);
                let count = keys.sources.len().to_le_bytes();
                let head: [&[u8]; 2] = [b"keys", &count];
                let rest: [&[u8]; 3] = [
                    keys.target.as_bytes(),
                    options.as_bytes(),
                    keys.output_format.as_deref().unwrap_or_default().as_bytes(),
                ];
                Fingerprint::of(head.into_iter().chain(keys.sources.iter().map(String::as_bytes)).chain(rest))
            }
        }
    }
}

/// How a creation ended.
enum Created {
    New(Job),
    /// An earlier request with the same Idempotency-Key created this job.
    Replayed(Job),
}

/// Takes a queue place and an upload place first (429 before any upload is read, with the body
/// drained so the client reads it), then reads the form or JSON within FF_UPLOAD_TIMEOUT_SECS (408
/// past it), stores the inputs and the record, and queues the job.
async fn create(State(state): State<AppState>, caller: Caller, request: Request) -> Response {
    let wait = preferred_wait(request.headers(), state.config().request_timeout);
    let key = match IdempotencyKey::from_headers(request.headers()) {
        Ok(key) => key,
        Err(error) => return refuse_unread(error, request).await,
    };
    let places = state.job_queue().reserve().and_then(|place| Ok((place, state.limiter().try_start_upload()?)));
    let (place, upload) = match places {
        Ok(places) => places,
        Err(busy) => return refuse_unread(busy.into(), request).await,
    };
    if let Err(refused) = admit_owner(&state, &caller).await {
        return refuse_unread(refused, request).await;
    }
    let created = async {
        let incoming = read_request(&state, upload, request).await?;
        create_once(&state, &caller, key.as_ref(), incoming).await
    };
    let (status, job) = match created.await {
        Ok(Created::New(job)) => {
            if let Some(place) = place {
                place.enqueue(job.id.clone());
            }
            (StatusCode::ACCEPTED, job)
        }
        Ok(Created::Replayed(job)) => (if job.status.is_final() { StatusCode::OK } else { StatusCode::ACCEPTED }, job),
        Err(error) => return error.into_response(),
    };
    match wait {
        None => answer_job(status, job, None),
        Some(wait) => answer_after_waiting(&state, job, wait).await,
    }
}

/// Creates the job, unless an earlier request with the same Idempotency-Key did.
async fn create_once(
    state: &AppState,
    caller: &Caller,
    key: Option<&IdempotencyKey>,
    incoming: JobRequest,
) -> Result<Created, ApiError> {
    let store = JobStore::new(Arc::clone(state.storage()));
    let owner = caller.key_name();
    let Some(key) = key else {
        let job = create_job(state, incoming, owner).await?;
        mark_owner(state, &job).await?;
        return Ok(Created::New(job));
    };
    let fingerprint = incoming.fingerprint();
    if let Some(job) = idempotency::look_up(&store, owner, key, &fingerprint).await? {
        return Ok(Created::Replayed(job));
    }
    let job = create_job(state, incoming, owner).await?;
    match idempotency::remember(&store, owner, key, &fingerprint, &job.id).await {
        Ok(None) => {
            mark_owner(state, &job).await?;
            Ok(Created::New(job))
        }
        // A concurrent request with the same key won: its job is the answer, ours goes.
        Ok(Some(winner)) => {
            discard(&store, &job).await;
            match store.load(&winner).await? {
                Some((winner, _)) => Ok(Created::Replayed(winner)),
                None => Err(ApiError::Conflict { id: winner }),
            }
        }
        Err(error) => {
            discard(&store, &job).await;
            Err(error)
        }
    }
}

/// Removes a job nobody will be told about (never queued).
async fn discard(store: &JobStore, job: &Job) {
    let removed = async {
        store.delete_files(&job.id).await?;
        store.delete(&job.id).await
    };
    if let Err(error) = removed.await {
        tracing::warn!(job = %job.id, %error, "could not remove a surplus job; the sweep will not run it");
    }
}

/// FF_MAX_ACTIVE_JOBS_PER_KEY, for callers with a key.
async fn admit_owner(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    match (caller.key_name(), state.config().max_active_jobs_per_key) {
        (Some(owner), Some(limit)) => quota::admit(&JobStore::new(Arc::clone(state.storage())), owner, limit).await,
        _ => Ok(()),
    }
}

/// Counts a new job against its key's FF_MAX_ACTIVE_JOBS_PER_KEY.
async fn mark_owner(state: &AppState, job: &Job) -> Result<(), ApiError> {
    match (job.owner.as_deref(), state.config().max_active_jobs_per_key) {
        (Some(owner), Some(_)) => quota::mark_active(&JobStore::new(Arc::clone(state.storage())), owner, &job.id).await,
        _ => Ok(()),
    }
}

/// Reads the form or the JSON body within FF_UPLOAD_TIMEOUT_SECS; the upload place is given back
/// once the body is in.
async fn read_request(state: &AppState, upload: UploadPlace, request: Request) -> Result<JobRequest, ApiError> {
    let config = state.config();
    let limit = config.max_upload_bytes;
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let incoming = if content_type.starts_with("multipart/form-data") {
        let form_limits = FormLimits { body_bytes: limit, max_sources: config.max_sources };
        let form = within_upload_deadline(config.upload_timeout, async {
            let multipart = Multipart::from_request(request, state).await.map_err(ApiError::from)?;
            ProcessForm::read(multipart, form_limits).await
        })
        .await?;
        JobRequest::Form(Box::new(form.into_submission()?))
    } else if content_type.starts_with("application/json") {
        let Json(body) = within_upload_deadline(config.upload_timeout, async {
            Json::<CreateFromKeys>::from_request(request, state).await.map_err(|e| json_error(e, limit))
        })
        .await?;
        JobRequest::Keys(body)
    } else {
        return Err(ApiError::BadRequest(
            "send the job as multipart/form-data (files like /process) or application/json (stored object keys)".into(),
        ));
    };
    drop(upload);
    Ok(incoming)
}

/// Checks and stores the job: its inputs (for a form) and its record.
async fn create_job(state: &AppState, incoming: JobRequest, owner: Option<&str>) -> Result<Job, ApiError> {
    let config = state.config();
    let store = JobStore::new(Arc::clone(state.storage()));
    let webhook = incoming.webhook().map(|request| checked_webhook(state, &request)).transpose()?;
    let policy = NewJobPolicy { owner: owner.map(str::to_string), result_ttl_hours: config.result_ttl_hours, webhook };
    match incoming {
        JobRequest::Form(submission) => {
            let settings = CreateSettings {
                temp_dir: &config.temp_dir,
                max_video_seconds: config.max_job_video_seconds,
                video_timeout: config.video_timeout,
                max_image_pixels: config.max_image_pixels,
            };
            create::from_submission(&store, *submission, settings, &policy).await
        }
        JobRequest::Keys(body) => {
            let raw = body.options.unwrap_or_else(|| serde_json::json!({}));
            let document = OptionsDocument::from_json(raw, body.output_format.as_deref())?;
            create::from_keys(&store, body.sources, body.target, document, config.max_sources, &policy).await
        }
    }
}

/// The webhook a job asks for, if this server can send it and it may go there.
fn checked_webhook(state: &AppState, request: &WebhookRequest) -> Result<Webhook, ApiError> {
    if !state.webhooks().is_enabled() {
        return Err(ApiError::BadRequest("this server sends no webhooks (FF_WEBHOOK_SECRET is not set)".into()));
    }
    Webhook::parse(&request.url, request.events.as_deref(), &state.config().webhook_allowed_hosts)
}

/// `Prefer: wait=N` (RFC 7240), at most [`MAX_PREFERRED_WAIT`] and a second less than the
/// request timeout, so the answer always beats the timeout.
fn preferred_wait(headers: &HeaderMap, request_timeout: Duration) -> Option<Duration> {
    let seconds = headers
        .get_all(PREFER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([',', ';']))
        .find_map(|preference| preference.trim().strip_prefix("wait=")?.trim().parse::<u64>().ok())?;
    let ceiling = MAX_PREFERRED_WAIT.min(request_timeout.saturating_sub(Duration::from_secs(1)));
    Some(Duration::from_secs(seconds).min(ceiling))
}

/// 200 with the record once the job is final within `wait`, else 202 with it as it is then.
async fn answer_after_waiting(state: &AppState, job: Job, wait: Duration) -> Response {
    let store = JobStore::new(Arc::clone(state.storage()));
    let id = job.id.clone();
    match watch::until_final(&store, job, Instant::now() + wait).await {
        Ok(job) if job.status.is_final() => answer_job(StatusCode::OK, job, Some(wait)),
        Ok(job) => answer_job(StatusCode::ACCEPTED, job, Some(wait)),
        // The job exists and runs; only reading it back failed. Say where it is.
        Err(error) => {
            tracing::warn!(job = %id, %error, "could not read a job back while waiting for it");
            let mut response = error.into_response();
            insert_location(&mut response, &id);
            response
        }
    }
}

/// The job and its address; `Preference-Applied` when the answer waited as `Prefer: wait` asked.
fn answer_job(status: StatusCode, job: Job, waited: Option<Duration>) -> Response {
    let id = job.id.clone();
    let mut response = (status, Json(job)).into_response();
    insert_location(&mut response, &id);
    if let Some(waited) = waited {
        // Digits only, so always a valid header value.
        if let Ok(applied) = HeaderValue::from_str(&format!("wait={}", waited.as_secs())) {
            response.headers_mut().insert(PREFERENCE_APPLIED, applied);
        }
    }
    response
}

fn insert_location(response: &mut Response, id: &str) {
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/jobs/{id}")) {
        response.headers_mut().insert(LOCATION, location);
    }
}

fn json_error(rejection: JsonRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes: limit }
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefer_wait_is_read_among_other_preferences_and_capped() {
        let timeout = Duration::from_secs(300);
        let mut headers = HeaderMap::new();
        assert_eq!(preferred_wait(&headers, timeout), None);
        headers.insert(PREFER, "respond-async, wait=10".parse().unwrap());
        assert_eq!(preferred_wait(&headers, timeout), Some(Duration::from_secs(10)));
        headers.insert(PREFER, "wait=600".parse().unwrap());
        assert_eq!(preferred_wait(&headers, timeout), Some(MAX_PREFERRED_WAIT));
        assert_eq!(preferred_wait(&headers, Duration::from_secs(20)), Some(Duration::from_secs(19)));
        headers.insert(PREFER, "wait=soon".parse().unwrap());
        assert_eq!(preferred_wait(&headers, timeout), None);
    }
}
