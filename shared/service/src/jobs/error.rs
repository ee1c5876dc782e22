//! How job and storage failures answer over HTTP: the same `{"error": {"code", "message"}}` body
//! as `ApiError`, whose failures pass through unchanged, plus the job-specific codes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::store::StoreError;
use super::JobStatus;
use crate::error::ApiError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum JobApiError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("no job `{id}`")]
    JobNotFound { id: String },
    #[error("job `{id}` is {}; its result exists once it is completed", .status.as_str())]
    JobNotFinished { id: String, status: JobStatus },
    #[error("job `{id}` {}; it has no result", if *.status == JobStatus::Failed { "failed" } else { "was cancelled" })]
    NoResult { id: String, status: JobStatus },
    #[error("job `{id}` is being changed by someone else; retry")]
    Conflict { id: String },
    #[error("{0}")]
    Storage(StorageError),
    #[error("a stored job record is damaged")]
    Corrupt { detail: String },
}

impl JobApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(error) => error.status(),
            Self::JobNotFound { .. } => StatusCode::NOT_FOUND,
            Self::JobNotFinished { .. } | Self::NoResult { .. } | Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Storage(error) => match error {
                StorageError::NotFound { .. } => StatusCode::NOT_FOUND,
                StorageError::PreconditionFailed { .. } => StatusCode::CONFLICT,
                StorageError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StorageError::InvalidKey { .. } => StatusCode::BAD_REQUEST,
                StorageError::Timeout { .. } | StorageError::Backend { .. } => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Corrupt { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(error) => error.code(),
            Self::JobNotFound { .. } => "job_not_found",
            Self::JobNotFinished { .. } => "job_not_finished",
            Self::NoResult { status: JobStatus::Failed, .. } => "job_failed",
            Self::NoResult { .. } => "job_cancelled",
            Self::Conflict { .. } => "conflict",
            Self::Storage(error) => super::worker::storage_code(error),
            Self::Corrupt { .. } => "internal",
        }
    }

    /// What the client reads. Storage back-end failures keep their detail (hosts, SDK errors)
    /// for the log.
    fn public_message(&self) -> String {
        match self {
            Self::Storage(StorageError::Backend { operation, .. }) => {
                format!("storage {operation} failed; retry later")
            }
            _ => self.to_string(),
        }
    }
}

impl IntoResponse for JobApiError {
    fn into_response(self) -> Response {
        let Self::Api(error) = self else {
            match &self {
                Self::Storage(StorageError::Backend { .. } | StorageError::Timeout { .. }) | Self::Corrupt { .. } => {
                    tracing::error!(code = self.code(), detail = ?self, "job request failed")
                }
                _ => tracing::debug!(code = self.code(), "{self}"),
            }
            let body = serde_json::json!({ "error": { "code": self.code(), "message": self.public_message() } });
            return (self.status(), Json(body)).into_response();
        };
        error.into_response()
    }
}

impl From<StorageError> for JobApiError {
    fn from(error: StorageError) -> Self {
        Self::Storage(error)
    }
}

impl From<StoreError> for JobApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Storage(error) => Self::Storage(error),
            StoreError::Contended { id } => Self::Conflict { id },
            StoreError::Corrupt { .. } => Self::Corrupt { detail: error.to_string() },
        }
    }
}

impl From<crate::limiter::Busy> for JobApiError {
    fn from(busy: crate::limiter::Busy) -> Self {
        Self::Api(busy.into())
    }
}

impl From<ff_pipeline::PipelineError> for JobApiError {
    fn from(error: ff_pipeline::PipelineError) -> Self {
        Self::Api(error.into())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
            let error = JobApiError::from(error);
            assert_eq!((error.status(), error.code()), (status, code));
        }
    }

    #[test]
    fn backend_detail_stays_out_of_the_message() {
        let error = JobApiError::from(StorageError::backend("put", "jobs/x.json", "http://10.0.0.1: refused"));
        assert!(!error.public_message().contains("10.0.0.1"));
    }

    #[test]
    fn job_errors_have_their_documented_codes() {
        let id = "x".to_string();
        let not_found = JobApiError::JobNotFound { id: id.clone() };
        assert_eq!((not_found.status(), not_found.code()), (StatusCode::NOT_FOUND, "job_not_found"));
        let running = JobApiError::JobNotFinished { id: id.clone(), status: JobStatus::Running };
        assert_eq!((running.status(), running.code()), (StatusCode::CONFLICT, "job_not_finished"));
        assert!(running.to_string().contains("running"));
        let failed = JobApiError::NoResult { id, status: JobStatus::Failed };
        assert_eq!(failed.code(), "job_failed");
    }
}
