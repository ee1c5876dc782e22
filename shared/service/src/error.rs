//! The one place where failures become HTTP answers, for every route: processing, jobs, storage.
//!
//! Every error leaves as `{"error": {"code": "...", "message": "..."}}` with a stable `code` clients
//! can branch on. Messages of server-side failures stay generic: the detail (paths, runtime errors,
//! panics) goes to the log, never to the client.

use std::time::Duration;

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ff_pipeline::{MediaFailure, PipelineError};

use crate::storage::StorageError;

/// How long a client told `busy` should wait; about one image's processing time on a CPU.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption { option: String, reason: String },
    /// More sources than FF_MAX_SOURCES.
    #[error("{0}")]
    TooManySources(String),
    /// A stored source key named twice in one job or batch document.
    #[error("{0}")]
    DuplicateSource(String),
    /// A multipart form with too many fields, or a text field over its size bound.
    #[error("{0}")]
    FormTooLarge(String),
    #[error("{0}")]
    UnsupportedMedia(String),
    #[error("{0}")]
    ImageTooLarge(String),
    /// A video longer than the route takes (FF_MAX_SYNC_VIDEO_SECS, FF_MAX_JOB_VIDEO_SECS).
    #[error("{0}")]
    VideoTooLong(String),
    /// Bytes that look like a video (or audio) container but that ffmpeg cannot read: damaged,
    /// truncated, or without a video stream.
    #[error("{0}")]
    InvalidMedia(String),
    #[error("request body exceeds the upload limit of {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{0}")]
    NoSourceFace(String),
    #[error("missing or wrong credentials")]
    Unauthorized,
    /// The caller's key spent its FF_RATE_LIMIT_PER_MINUTE; `retry_after` is when a request would pass.
    #[error("too many requests for this key; retry in {} seconds", retry_after_seconds(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// The caller's key has FF_MAX_ACTIVE_JOBS_PER_KEY jobs queued or running already.
    #[error("this key has {limit} jobs queued or running, the most it may; wait for one to finish")]
    TooManyJobs { limit: usize },
    /// An `Idempotency-Key` seen before with a different request.
    #[error("the Idempotency-Key was used for a different request; use a new key for a new request")]
    IdempotencyKeyReused,
    /// An upload URL ff did not sign for this request, or one past its time.
    #[error("{0}")]
    UploadUrlInvalid(String),
    #[error("{0}")]
    ContentRejected(String),
    #[error("model `{model}` is not available on this server")]
    ModelUnavailable { model: String, detail: String },
    #[error("the ONNX Runtime library is not available on this server")]
    RuntimeUnavailable { detail: String },
    #[error("all processing slots are busy and the queue is full; retry later")]
    Busy,
    /// The body did not arrive within FF_UPLOAD_TIMEOUT_SECS: a stalled or very slow upload.
    #[error("the request body did not arrive within {} seconds", .limit.as_secs())]
    UploadTimeout { limit: Duration },
    /// POST /api/v1/models/download on a server run with FF_ALLOW_MODEL_DOWNLOAD=false.
    #[error("model downloads are disabled on this server (FF_ALLOW_MODEL_DOWNLOAD=false)")]
    ModelDownloadDisabled,
    #[error("the request did not complete within {} seconds", .limit.as_secs())]
    Timeout { limit: Duration },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// ffmpeg missing, crashed or over its deadline, a frame that panicked, a cancelled run: the
    /// server's side, with the detail kept for the log.
    #[error("{}", media_message(*.kind))]
    Media { kind: MediaFailure, detail: String },
    /// The lip syncer's audio source is unreadable, empty, without an audio stream (422) or longer
    /// than the limit (413).
    #[error("{message}")]
    InvalidAudio { kind: MediaFailure, message: String },
    #[error("no job `{id}`")]
    JobNotFound { id: String },
    /// A job's input object was deleted before the job ran.
    #[error("{0}")]
    InputMissing(String),
    /// `status` is the job's (`queued` or `running`).
    #[error("job `{id}` is {status}; its result exists once it is completed")]
    JobNotFinished { id: String, status: &'static str },
    #[error("job `{id}` failed; it has no result")]
    JobFailed { id: String },
    #[error("job `{id}` was cancelled; it has no result")]
    JobCancelled { id: String },
    #[error("job `{id}` is being changed by someone else; retry")]
    Conflict { id: String },
    /// Storage failed; a back-end failure's detail (hosts, SDK errors) stays in the log.
    #[error("{}", storage_message(.0))]
    Storage(StorageError),
    #[error("a stored job record is damaged")]
    Corrupt { detail: String },
    #[error("internal error")]
    Internal { detail: String },
}

/// Whole seconds, rounded up: a client that waits `Retry-After` must not arrive early.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

fn storage_message(error: &StorageError) -> String {
    match error {
        StorageError::Backend { operation, .. } => format!("storage {operation} failed; retry later"),
        other => other.to_string(),
    }
}

/// The stable code of a storage failure, for answers and for failed job records.
pub(crate) fn storage_code(error: &StorageError) -> &'static str {
    match error {
        StorageError::NotFound { .. } => "object_not_found",
        StorageError::PreconditionFailed { .. } => "conflict",
        StorageError::Timeout { .. } => "storage_timeout",
        StorageError::TooLarge { .. } => "payload_too_large",
        StorageError::InvalidKey { .. } => "bad_request",
        StorageError::Backend { .. } => "storage_unavailable",
    }
}

fn media_message(kind: MediaFailure) -> String {
    match kind {
        MediaFailure::FfmpegTimeout => "the video processing did not finish within its time limit".into(),
        MediaFailure::FfmpegMissing => "video processing is not available on this server (ffmpeg is missing)".into(),
        MediaFailure::Cancelled => "the processing was cancelled".into(),
        other => format!("the video processing failed ({})", other.code()),
    }
}

impl ApiError {
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::Internal { detail: detail.into() }
    }

    /// What a server keeps for its log and out of the answer: the detail of a server-side failure.
    pub fn detail(&self) -> Option<String> {
        match self {
            Self::Internal { detail } | Self::Corrupt { detail } => Some(detail.clone()),
            Self::ModelUnavailable { detail, .. }
            | Self::RuntimeUnavailable { detail }
            | Self::Media { detail, .. } => Some(detail.clone()),
            Self::Storage(error @ (StorageError::Backend { .. } | StorageError::Timeout { .. })) => {
                Some(error.to_string())
            }
            _ => None,
        }
    }

    /// Whether this is the cancellation a run's cancel flag asked for.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Media { kind: MediaFailure::Cancelled, .. })
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_)
            | Self::InvalidOption { .. }
            | Self::TooManySources(_)
            | Self::DuplicateSource(_)
            | Self::FormTooLarge(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMedia(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ImageTooLarge(_) | Self::PayloadTooLarge { .. } | Self::VideoTooLong(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::NoSourceFace(_) | Self::ContentRejected(_) | Self::InvalidMedia(_) | Self::InputMissing(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Media {
                kind: MediaFailure::FfmpegMissing | MediaFailure::FfmpegTimeout | MediaFailure::Cancelled,
                ..
            } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Media { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::InvalidAudio { kind: MediaFailure::AudioTooLong, .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::InvalidAudio { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ModelUnavailable { .. } | Self::RuntimeUnavailable { .. } | Self::Timeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Busy | Self::RateLimited { .. } | Self::TooManyJobs { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UploadTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::ModelDownloadDisabled | Self::UploadUrlInvalid(_) => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::JobNotFound { .. } => StatusCode::NOT_FOUND,
            Self::JobNotFinished { .. }
            | Self::JobFailed { .. }
            | Self::JobCancelled { .. }
            | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Storage(error) => match error {
                StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
                StorageError::PreconditionFailed { .. } => StatusCode::CONFLICT,
                StorageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StorageError::InvalidKey { .. } => StatusCode::BAD_REQUEST,
                StorageError::Timeout { .. } | StorageError::Backend { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Corrupt { .. } | Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Every code [`ApiError::code`] gives besides the media failures' (`MediaFailure::code`),
    /// for the API's description; a test keeps the two in step.
    pub const OWN_CODES: &'static [&'static str] = &[
        "bad_request",
        "invalid_option",
        "too_many_sources",
        "duplicate_source",
        "form_too_large",
        "unsupported_media",
        "image_too_large",
        "payload_too_large",
        "video_too_long",
        "invalid_media",
        "no_source_face",
        "content_rejected",
        "model_unavailable",
        "runtime_unavailable",
        "busy",
        "upload_timeout",
        "model_download_disabled",
        "unauthorized",
        "rate_limited",
        "too_many_jobs",
        "idempotency_key_reused",
        "upload_url_invalid",
        "timeout",
        "not_found",
        "method_not_allowed",
        "job_not_found",
        "input_missing",
        "job_not_finished",
        "job_failed",
        "job_cancelled",
        "conflict",
        "object_not_found",
        "storage_timeout",
        "storage_unavailable",
        "internal",
    ];

    /// Every code an error answer may carry.
    pub fn codes() -> Vec<&'static str> {
        Self::OWN_CODES.iter().copied().chain(MediaFailure::ALL.iter().map(|kind| kind.code())).collect()
    }

    /// The stable, machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::InvalidOption { .. } => "invalid_option",
            Self::TooManySources(_) => "too_many_sources",
            Self::DuplicateSource(_) => "duplicate_source",
            Self::FormTooLarge(_) => "form_too_large",
            Self::UnsupportedMedia(_) => "unsupported_media",
            Self::ImageTooLarge(_) => "image_too_large",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::VideoTooLong(_) => "video_too_long",
            Self::InvalidMedia(_) => "invalid_media",
            Self::Media { kind, .. } | Self::InvalidAudio { kind, .. } => kind.code(),
            Self::NoSourceFace(_) => "no_source_face",
            Self::ContentRejected(_) => "content_rejected",
            Self::ModelUnavailable { .. } => "model_unavailable",
            Self::RuntimeUnavailable { .. } => "runtime_unavailable",
            Self::Busy => "busy",
            Self::UploadTimeout { .. } => "upload_timeout",
            Self::ModelDownloadDisabled => "model_download_disabled",
            Self::Unauthorized => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyJobs { .. } => "too_many_jobs",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::UploadUrlInvalid(_) => "upload_url_invalid",
            Self::Timeout { .. } => "timeout",
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::JobNotFound { .. } => "job_not_found",
            Self::InputMissing(_) => "input_missing",
            Self::JobNotFinished { .. } => "job_not_finished",
            Self::JobFailed { .. } => "job_failed",
            Self::JobCancelled { .. } => "job_cancelled",
            Self::Conflict { .. } => "conflict",
            Self::Storage(error) => storage_code(error),
            Self::Corrupt { .. } | Self::Internal { .. } => "internal",
        }
    }

    /// A multipart failure: the body limit surfaces here, as a read error part-way through the upload.
    pub fn from_multipart(error: MultipartError, limit_bytes: usize) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge { limit_bytes }
        } else {
            Self::BadRequest(format!("the multipart body could not be read: {}", error.body_text()))
        }
    }

    /// Server-side failures are logged with their detail; client mistakes only at debug level.
    fn log(&self) {
        match self {
            Self::Internal { detail } | Self::Corrupt { detail } => {
                tracing::error!(code = self.code(), %detail, "request failed")
            }
            Self::Storage(error @ (StorageError::Backend { .. } | StorageError::Timeout { .. })) => {
                tracing::error!(code = self.code(), detail = %error, "request failed")
            }
            Self::ModelUnavailable { detail, .. }
            | Self::RuntimeUnavailable { detail }
            | Self::Media { detail, .. } => {
                tracing::error!(code = self.code(), %detail, "request failed")
            }
            // Busy answers are counted and logged once a second by `limiter::BusyLog` instead:
            // under a flood, a line per 429 would be most of the log.
            Self::Busy | Self::RateLimited { .. } => {}
            Self::Timeout { .. } | Self::UploadTimeout { .. } => tracing::warn!(code = self.code(), "{self}"),
            _ => tracing::debug!(code = self.code(), "{self}"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log();
        let body = serde_json::json!({ "error": { "code": self.code(), "message": self.to_string() } });
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            Self::Busy => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(BUSY_RETRY_AFTER.as_secs()));
            }
            Self::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds(retry_after)));
            }
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}

impl From<PipelineError> for ApiError {
    fn from(error: PipelineError) -> Self {
        // Exhaustive on purpose: a new pipeline failure must get a deliberate status here.
        match error {
            PipelineError::InvalidOption { option, reason } => Self::InvalidOption { option, reason },
            PipelineError::MissingInput(message) => Self::BadRequest(message),
            PipelineError::UnsupportedMedia(_) => Self::UnsupportedMedia(error.to_string()),
            PipelineError::ImageTooLarge { .. } | PipelineError::OutputTooLarge { .. } => {
                Self::ImageTooLarge(error.to_string())
            }
            PipelineError::NoSourceFace { .. } => Self::NoSourceFace(error.to_string()),
            PipelineError::ContentRejected => Self::ContentRejected(error.to_string()),
            PipelineError::ModelMissing { ref name, .. }
            | PipelineError::Download { ref name, .. }
            | PipelineError::ModelCorrupt { ref name, .. } => {
                Self::ModelUnavailable { model: name.clone(), detail: error.to_string() }
            }
            PipelineError::RuntimeMissing { .. } => Self::RuntimeUnavailable { detail: error.to_string() },
            PipelineError::Runtime(_)
            | PipelineError::UnknownModel { .. }
            | PipelineError::ModelContract { .. }
            | PipelineError::Io { .. } => Self::internal(error.to_string()),
            PipelineError::Media { kind, message } => match kind {
                MediaFailure::VideoTooLong => Self::VideoTooLong(message),
                MediaFailure::AudioUnreadable
                | MediaFailure::AudioEmpty
                | MediaFailure::AudioNoStream
                | MediaFailure::AudioTooLong => Self::InvalidAudio { kind, message },
                // ffmpeg missing, crashed or over its deadline, or a cancelled run: the server's
                // side; an input that ffmpeg cannot read is UnsupportedMedia instead.
                MediaFailure::FfmpegMissing
                | MediaFailure::FfmpegFailed
                | MediaFailure::FfmpegTimeout
                | MediaFailure::ProcessingPanicked
                | MediaFailure::Cancelled
                | MediaFailure::AudioMissing => Self::Media { kind, detail: message },
            },
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

impl From<MultipartRejection> for ApiError {
    fn from(rejection: MultipartRejection) -> Self {
        Self::BadRequest(rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// One of each variant: the exhaustive `match` below fails to compile when a variant is added,
    /// which is the reminder to give it a sample here and its code to `OWN_CODES`.
    fn one_of_each() -> Vec<ApiError> {
        let key = || "k".to_string();
        let storage = [
            StorageError::NotFound { key: key() },
            StorageError::PreconditionFailed { key: key() },
            StorageError::Timeout { operation: "get", key: key(), limit: Duration::ZERO },
            StorageError::TooLarge { key: key(), limit: 1 },
            StorageError::InvalidKey { key: key(), reason: "r" },
            StorageError::backend("get", "k", "d"),
        ];
        let mut all = vec![
            ApiError::BadRequest(key()),
            ApiError::InvalidOption { option: key(), reason: key() },
            ApiError::TooManySources(key()),
            ApiError::DuplicateSource(key()),
            ApiError::FormTooLarge(key()),
            ApiError::UnsupportedMedia(key()),
            ApiError::ImageTooLarge(key()),
            ApiError::VideoTooLong(key()),
            ApiError::InvalidMedia(key()),
            ApiError::PayloadTooLarge { limit_bytes: 1 },
            ApiError::NoSourceFace(key()),
            ApiError::Unauthorized,
            ApiError::RateLimited { retry_after: Duration::from_millis(1500) },
            ApiError::TooManyJobs { limit: 1 },
            ApiError::IdempotencyKeyReused,
            ApiError::UploadUrlInvalid(String::new()),
            ApiError::ContentRejected(key()),
            ApiError::ModelUnavailable { model: key(), detail: key() },
            ApiError::RuntimeUnavailable { detail: key() },
            ApiError::Busy,
            ApiError::UploadTimeout { limit: Duration::ZERO },
            ApiError::ModelDownloadDisabled,
            ApiError::Timeout { limit: Duration::ZERO },
            ApiError::NotFound { method: key(), path: key() },
            ApiError::MethodNotAllowed { method: key(), path: key() },
            ApiError::JobNotFound { id: key() },
            ApiError::InputMissing(key()),
            ApiError::JobNotFinished { id: key(), status: "queued" },
            ApiError::JobFailed { id: key() },
            ApiError::JobCancelled { id: key() },
            ApiError::Conflict { id: key() },
            ApiError::Corrupt { detail: key() },
            ApiError::internal("d"),
        ];
        all.extend(MediaFailure::ALL.map(|kind| ApiError::Media { kind, detail: key() }));
        all.extend(MediaFailure::ALL.map(|kind| ApiError::InvalidAudio { kind, message: key() }));
        all.extend(storage.into_iter().map(ApiError::Storage));
        for error in &all {
            match error {
                ApiError::BadRequest(_)
                | ApiError::InvalidOption { .. }
                | ApiError::TooManySources(_)
                | ApiError::DuplicateSource(_)
                | ApiError::FormTooLarge(_)
                | ApiError::UnsupportedMedia(_)
                | ApiError::ImageTooLarge(_)
                | ApiError::VideoTooLong(_)
                | ApiError::InvalidMedia(_)
                | ApiError::PayloadTooLarge { .. }
                | ApiError::NoSourceFace(_)
                | ApiError::Unauthorized
                | ApiError::RateLimited { .. }
                | ApiError::TooManyJobs { .. }
                | ApiError::IdempotencyKeyReused
                | ApiError::UploadUrlInvalid(_)
                | ApiError::ContentRejected(_)
                | ApiError::ModelUnavailable { .. }
                | ApiError::RuntimeUnavailable { .. }
                | ApiError::Busy
                | ApiError::UploadTimeout { .. }
                | ApiError::ModelDownloadDisabled
                | ApiError::Timeout { .. }
                | ApiError::NotFound { .. }
                | ApiError::MethodNotAllowed { .. }
                | ApiError::Media { .. }
                | ApiError::InvalidAudio { .. }
                | ApiError::JobNotFound { .. }
                | ApiError::InputMissing(_)
                | ApiError::JobNotFinished { .. }
                | ApiError::JobFailed { .. }
                | ApiError::JobCancelled { .. }
                | ApiError::Conflict { .. }
                | ApiError::Storage(_)
                | ApiError::Corrupt { .. }
                | ApiError::Internal { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_code_given_is_listed_and_every_listed_code_is_given() {
        let listed = ApiError::codes();
        let given: std::collections::BTreeSet<&str> = one_of_each().iter().map(ApiError::code).collect();
        for code in &given {
            assert!(listed.contains(code), "`{code}` is missing from ApiError::OWN_CODES");
        }
        for code in &listed {
            assert!(given.contains(code), "`{code}` is listed but no error gives it");
        }
    }

    #[test]
    fn rate_limits_say_when_to_come_back_rounded_up_and_unauthorized_names_the_scheme() {
        let limited = ApiError::RateLimited { retry_after: Duration::from_millis(1500) }.into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "2");
        let unauthorized = ApiError::Unauthorized.into_response();
        assert_eq!(unauthorized.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }

    fn mapped(error: PipelineError) -> (StatusCode, &'static str) {
        let api = ApiError::from(error);
        (api.status(), api.code())
    }

    #[test]
    fn pipeline_errors_map_to_their_documented_status_and_code() {
        let cases = [
            (PipelineError::NoSourceFace { index: 0 }, StatusCode::UNPROCESSABLE_ENTITY, "no_source_face"),
            (PipelineError::ContentRejected, StatusCode::UNPROCESSABLE_ENTITY, "content_rejected"),
            (PipelineError::UnsupportedMedia("gif".into()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media"),
            (
                PipelineError::ImageTooLarge { width: 10, height: 10, limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
            ),
            (PipelineError::invalid_option("face_swapper_model", "no"), StatusCode::BAD_REQUEST, "invalid_option"),
            (PipelineError::MissingInput("no source".into()), StatusCode::BAD_REQUEST, "bad_request"),
            (
                PipelineError::ModelMissing { name: "inswapper_128".into(), dir: PathBuf::from("/m") },
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
            ),
            (
                PipelineError::Download { name: "x".into(), reason: "dns".into() },
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
            ),
            (
                PipelineError::ModelCorrupt { name: "x".into(), reason: "crc".into() },
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
            ),
            (
                PipelineError::RuntimeMissing { path: PathBuf::from("/lib") },
                StatusCode::SERVICE_UNAVAILABLE,
                "runtime_unavailable",
            ),
            (PipelineError::Runtime("boom".into()), StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            (PipelineError::UnknownModel { name: "x".into() }, StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            (
                PipelineError::media(MediaFailure::FfmpegTimeout, "killed"),
                StatusCode::SERVICE_UNAVAILABLE,
                "ffmpeg_timeout",
            ),
            (
                PipelineError::media(MediaFailure::FfmpegFailed, "exit 1"),
                StatusCode::INTERNAL_SERVER_ERROR,
                "ffmpeg_failed",
            ),
        ];
        for (error, status, code) in cases {
            let label = error.to_string();
            assert_eq!(mapped(error), (status, code), "{label}");
        }
    }

    #[test]
    fn every_media_failure_keeps_its_code_and_client_failures_are_4xx() {
        for kind in MediaFailure::ALL {
            let error = ApiError::from(PipelineError::media(kind, "detail"));
            assert_eq!(error.code(), kind.code());
            assert_eq!(error.status().is_client_error(), kind.is_client_error(), "{kind:?}");
        }
    }

    #[test]
    fn server_side_messages_do_not_leak_paths_or_internals() {
        let missing = ApiError::from(PipelineError::ModelMissing {
            name: "inswapper_128".into(),
            dir: PathBuf::from("/secret/models"),
        });
        assert!(!missing.to_string().contains("/secret"), "{missing}");
        assert!(missing.to_string().contains("inswapper_128"));
        let io = ApiError::from(PipelineError::io("/secret/file", std::io::Error::other("denied")));
        assert_eq!(io.to_string(), "internal error");
    }

    #[test]
    fn video_errors_have_their_codes_and_keep_ffmpeg_detail_out() {
        let long = ApiError::VideoTooLong("9.2 s".into());
        assert_eq!((long.status(), long.code()), (StatusCode::PAYLOAD_TOO_LARGE, "video_too_long"));
        let damaged = ApiError::InvalidMedia("no video stream".into());
        assert_eq!((damaged.status(), damaged.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_media"));
        let failed = ApiError::from(PipelineError::media(MediaFailure::FfmpegFailed, "/secret/x: boom"));
        assert!(!failed.to_string().contains("/secret"), "{failed}");
    }

    #[test]
    fn invalid_option_names_the_option() {
        let error = ApiError::from(PipelineError::invalid_option("face_mask_blur", "must be in 0.0..1.0"));
        assert_eq!(error.to_string(), "invalid option `face_mask_blur`: must be in 0.0..1.0");
    }

    #[test]
    fn busy_carries_retry_after() {
        let response = ApiError::Busy.into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], BUSY_RETRY_AFTER.as_secs().to_string().as_str());
    }

    #[test]
    fn upload_timeout_and_disabled_downloads_have_their_codes() {
        let late = ApiError::UploadTimeout { limit: Duration::from_secs(60) };
        assert_eq!((late.status(), late.code()), (StatusCode::REQUEST_TIMEOUT, "upload_timeout"));
        assert!(late.to_string().contains("60 seconds"), "{late}");
        let disabled = ApiError::ModelDownloadDisabled;
        assert_eq!((disabled.status(), disabled.code()), (StatusCode::FORBIDDEN, "model_download_disabled"));
    }

    #[test]
    fn unauthorized_is_a_401() {
        let error = ApiError::Unauthorized;
        assert_eq!((error.status(), error.code()), (StatusCode::UNAUTHORIZED, "unauthorized"));
    }

    #[test]
    fn storage_failures_map_to_404_409_503() {
        let cases = [
            (StorageError::NotFound { key: "k".into() }, StatusCode::NOT_FOUND, "object_not_found"),
            (StorageError::PreconditionFailed { key: "k".into() }, StatusCode::CONFLICT, "conflict"),
            (
                StorageError::Timeout { operation: "get", key: "k".into(), limit: Duration::from_secs(1) },
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_timeout",
            ),
            (StorageError::backend("get", "k", "down"), StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        ];
        for (error, status, code) in cases {
            let error = ApiError::from(error);
            assert_eq!((error.status(), error.code()), (status, code));
        }
    }

    #[test]
    fn backend_detail_stays_out_of_the_message() {
        let error = ApiError::from(StorageError::backend("put", "jobs/x.json", "http://10.0.0.1: refused"));
        assert!(!error.to_string().contains("10.0.0.1"), "{error}");
    }

    #[test]
    fn job_errors_have_their_documented_codes() {
        let id = "x".to_string();
        let not_found = ApiError::JobNotFound { id: id.clone() };
        assert_eq!((not_found.status(), not_found.code()), (StatusCode::NOT_FOUND, "job_not_found"));
        let running = ApiError::JobNotFinished { id: id.clone(), status: "running" };
        assert_eq!((running.status(), running.code()), (StatusCode::CONFLICT, "job_not_finished"));
        assert!(running.to_string().contains("running"));
        let failed = ApiError::JobFailed { id: id.clone() };
        assert_eq!(failed.code(), "job_failed");
        let cancelled = ApiError::JobCancelled { id: id.clone() };
        assert_eq!((cancelled.status(), cancelled.code()), (StatusCode::CONFLICT, "job_cancelled"));
        let contended = ApiError::Conflict { id };
        assert_eq!((contended.status(), contended.code()), (StatusCode::CONFLICT, "conflict"));
    }

    #[test]
    fn responses_are_json() {
        let response = ApiError::internal("secret detail").into_response();
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }
}
