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
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use ff_pipeline::options::ProcessOptions;
use serde::Deserialize;

use super::store::{JobStore, Update};
use super::{files_prefix, is_job_id, new_job_id, Job, JobInputs, JobStatus};
use crate::error::ApiError;
use crate::form::{group_option_fields, ProcessForm, ProcessJob};
use crate::media::{check_video, input_extension, mime_of, DurationLimit, OutputFormat, Route, VideoWorkspace};
use crate::state::AppState;
use crate::storage::{validate_key, Storage, StorageError, WriteCondition};

/// How long a presigned result URL stays valid: enough to start a download, short enough that a
/// leaked URL is soon useless.
const RESULT_URL_LIFETIME: Duration = Duration::from_secs(15 * 60);
const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/jobs", post(create).get(list))
        .route("/api/v1/jobs/{id}", get(show).delete(remove))
        .route("/api/v1/jobs/{id}/result", get(result))
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

/// Takes a queue place first (429 before any upload is read), then the form or JSON, stores the
/// inputs and the record, and queues the job.
async fn create(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let limit = state.config().max_upload_bytes;
    let declared = request.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
    }
    let place = state.job_queue().reserve()?;
    let content_type = request.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let store = JobStore::new(Arc::clone(state.storage()));
    let job = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state).await.map_err(ApiError::from)?;
        create_from_form(&state, &store, multipart, limit).await?
    } else if content_type.starts_with("application/json") {
        let body = Json::<CreateFromKeys>::from_request(request, &state).await.map_err(|e| json_error(e, limit))?;
        create_from_keys(&store, body.0).await?
    } else {
        return Err(ApiError::BadRequest(
            "send the job as multipart/form-data (files like /process) or application/json (stored object keys)".into(),
        ));
    };
    if let Some(place) = place {
        place.enqueue(job.id.clone());
    }
    let location = HeaderValue::from_str(&format!("/api/v1/jobs/{}", job.id)).ok();
    let mut response = (StatusCode::ACCEPTED, Json(job)).into_response();
    if let Some(location) = location {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

fn json_error(rejection: JsonRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit_bytes: limit }
    } else {
        ApiError::BadRequest(rejection.body_text())
    }
}

/// The same form as /process, read and validated by `ProcessForm`; the option fields are also
/// kept as sent, because the record stores the options as the client gave them. A video target is
/// probed before anything is stored, so a damaged or too long one is refused now (422, 413) rather
/// than failing later in the worker.
async fn create_from_form(
    state: &AppState,
    store: &JobStore,
    mut multipart: Multipart,
    limit: usize,
) -> Result<Job, ApiError> {
    let mut form = ProcessForm::default();
    let mut options_json = None;
    let mut option_fields = Vec::new();
    while let Some(field) = multipart.next_field().await.map_err(|e| ApiError::from_multipart(e, limit))? {
        let name = field.name().map(str::to_owned);
        let file_name = field.file_name().map(str::to_owned);
        let bytes = field.bytes().await.map_err(|e| ApiError::from_multipart(e, limit))?;
        if let (Some(name), None, Ok(text)) = (&name, &file_name, std::str::from_utf8(&bytes)) {
            match name.as_str() {
                "options" => options_json = Some(text.to_string()),
                "source" | "target" | "output_format" => {}
                _ => option_fields.push((name.clone(), text.to_string())),
            }
        }
        form.accept(name, file_name, Vec::from(bytes))?;
    }
    let validated = form.into_job()?;
    require_sources(&validated.options, validated.sources.len())?;
    if let Route::Video { target_extension, container } = validated.route()? {
        check_job_video(state, &validated, target_extension, container).await?;
    }
    let ProcessJob { sources, target, output_format, .. } = validated;
    let options = match options_json {
        // `into_job` has parsed it already; this cannot fail, but stays an error rather than a panic.
        Some(text) => serde_json::from_str(&text).map_err(|e| ApiError::BadRequest(format!("`options`: {e}")))?,
        None => options_object(option_fields),
    };
    let id = new_job_id();
    let inputs_prefix = format!("{}inputs/", files_prefix(&id));
    let mut uploads = Vec::with_capacity(sources.len() + 1);
    for (index, bytes) in sources.into_iter().enumerate() {
        uploads.push((format!("{inputs_prefix}source-{index}.{}", input_extension("source", &bytes)?), bytes));
    }
    let target_key = format!("{inputs_prefix}target.{}", input_extension("target", &target)?);
    uploads.push((target_key.clone(), target));
    let inputs = JobInputs {
        sources: uploads[..uploads.len() - 1].iter().map(|(key, _)| key.clone()).collect(),
        target: target_key,
    };
    let job = Job::new(id, inputs, options, output_format.map(|f| f.extension().to_string()));
    let stored = async {
        for (key, bytes) in uploads {
            store.storage().put_bytes(&key, Bytes::from(bytes), WriteCondition::None).await?;
        }
        store.create(&job).await
    };
    if let Err(error) = stored.await {
        // Leave nothing behind for a job that was never created.
        if let Err(cleanup) = store.delete_files(&job.id).await {
            tracing::warn!(job = %job.id, error = %cleanup, "could not remove the inputs of a failed job creation");
        }
        return Err(error.into());
    }
    Ok(job)
}

/// Probes an uploaded video target against FF_MAX_JOB_VIDEO_SECS in a run directory of its own.
async fn check_job_video(
    state: &AppState,
    job: &ProcessJob,
    target_extension: &'static str,
    container: &'static str,
) -> Result<(), ApiError> {
    let config = state.config();
    let workspace = VideoWorkspace::create(&config.temp_dir, target_extension, container)?;
    if !workspace.target_is_video() {
        return Ok(());
    }
    workspace.write_target(&job.target).await?;
    let options = job.options.clone();
    let limit = DurationLimit::Job(config.max_job_video_seconds);
    let checked = tokio::task::spawn_blocking(move || check_video(workspace.target(), &options, limit).map(|_| ()));
    checked.await.map_err(|e| ApiError::internal(format!("probing the video failed: {e}")))?
}

async fn create_from_keys(store: &JobStore, body: CreateFromKeys) -> Result<Job, ApiError> {
    let options = body.options.unwrap_or_else(|| serde_json::json!({}));
    let parsed = ProcessOptions::from_json(&options)?;
    require_sources(&parsed, body.sources.len())?;
    let output_format = body.output_format.as_deref().map(OutputFormat::parse).transpose()?;
    for key in body.sources.iter().chain(std::iter::once(&body.target)) {
        validate_key(key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match store.storage().head(key).await {
            Ok(_) => {}
            Err(StorageError::NotFound { .. }) => {
                return Err(ApiError::BadRequest(format!("object `{key}` does not exist")))
            }
            Err(error) => return Err(error.into()),
        }
    }
    let inputs = JobInputs { sources: body.sources, target: body.target };
    let job = Job::new(new_job_id(), inputs, options, output_format.map(|f| f.extension().to_string()));
    store.create(&job).await?;
    Ok(job)
}

/// A swap without a source face cannot succeed; say so now rather than after queueing.
fn require_sources(options: &ProcessOptions, sources: usize) -> Result<(), ApiError> {
    if sources == 0 && options.processors.iter().any(|p| p == "face_swapper") {
        return Err(ApiError::BadRequest("face_swapper needs at least one `source` image".into()));
    }
    Ok(())
}

/// Option fields as one JSON object: a single value as a string, a repeated field as an array.
fn options_object(fields: Vec<(String, String)>) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    for (name, values) in group_option_fields(fields) {
        let value = match values.as_slice() {
            [one] => serde_json::Value::String(one.clone()),
            many => serde_json::Value::Array(many.iter().cloned().map(serde_json::Value::String).collect()),
        };
        object.insert(name, value);
    }
    serde_json::Value::Object(object)
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
            return Err(ApiError::JobNotFinished { id: job.id, status: job.status })
        }
        (status, _) => return Err(ApiError::NoResult { id: job.id, status }),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_fields_become_one_object_with_lists_for_repeats() {
        let object = options_object(vec![
            ("face_swapper_model".into(), "inswapper_128".into()),
            ("face_detector_margin".into(), "1 2".into()),
        ]);
        assert_eq!(
            object,
            serde_json::json!({"face_swapper_model": "inswapper_128", "face_detector_margin": ["1", "2"]})
        );
        assert!(ProcessOptions::from_json(&object).is_ok());
    }
}
