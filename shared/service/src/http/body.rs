//! Request bodies under policy: small routes read theirs with their own limit and deadline, and a
//! request refused before its body was read is answered so that the client can read the answer.
//!
//! Why the drain: hyper closes a connection whose request body was not read to the end, and a
//! socket closed with unread bytes in it is reset by the kernel, which throws away the answer
//! still on its way to the client. A client refused with `429` while it is still uploading would
//! see "connection reset" instead of the `429` and its `Retry-After`. So a refused body of up to
//! [`DRAIN_LIMIT`] is read and thrown away (for at most [`DRAIN_TIME`]) before the answer; a larger
//! one is not worth the bandwidth, and its answer says `Connection: close`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use crate::error::ApiError;

/// The body limit of POST /api/v1/events/s3: S3 event JSON is a few KiB a record.
pub const EVENTS_BODY_LIMIT: usize = 256 * 1024;

/// The body limit of POST /api/v1/models/download: a JSON list of names.
pub const MODEL_DOWNLOAD_BODY_LIMIT: usize = 16 * 1024;

/// The body limit of POST /api/v1/uploads: a content type and a size.
pub const UPLOAD_REQUEST_BODY_LIMIT: usize = 4 * 1024;

/// The most of a refused request's body that is read and thrown away before answering.
pub const DRAIN_LIMIT: usize = 1024 * 1024;

/// The longest a refused request's body is waited for before answering anyway.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// The `Content-Length` the client declared; `None` when absent (chunked) or unreadable.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Whether the headers (of a request or an answer) say the body is JSON.
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// Answers `error` to a request whose body has not been read: drains a body of up to
/// [`DRAIN_LIMIT`] first, and says `Connection: close` when it could not.
pub async fn refuse_unread(error: ApiError, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let small_enough = declared_length(&parts.headers).is_none_or(|length| length <= DRAIN_LIMIT as u64);
    let drained = small_enough && drain(body).await;
    let mut response = error.into_response();
    if !drained {
        response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and drops the body; true when it ended within [`DRAIN_LIMIT`] bytes and [`DRAIN_TIME`].
async fn drain(body: Body) -> bool {
    let mut chunks = body.into_data_stream();
    let read_to_end = async {
        let mut read = 0usize;
        while let Some(chunk) = chunks.next().await {
            let Ok(chunk) = chunk else { return false };
            read += chunk.len();
            if read > DRAIN_LIMIT {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, read_to_end).await.unwrap_or(false)
}

/// Reads a small body whole: a declared length over `limit` is refused before a byte is read, a
/// streamed one is cut off at `limit`, and the whole body must arrive within `deadline`. The error
/// is the answer to send.
pub async fn read_small(request: Request, limit: usize, deadline: Duration) -> Result<Bytes, Response> {
    if declared_length(request.headers()).is_some_and(|length| length > limit as u64) {
        return Err(refuse_unread(ApiError::PayloadTooLarge { limit_bytes: limit }, request).await);
    }
    match tokio::time::timeout(deadline, collect_bounded(request.into_body(), limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => Err(error.into_response()),
        Err(_) => Err(ApiError::UploadTimeout { limit: deadline }.into_response()),
    }
}

/// The whole body, or `payload_too_large` as soon as it passes `limit`.
async fn collect_bounded(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let mut chunks = body.into_data_stream();
    let mut collected = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|error| ApiError::BadRequest(format!("the request body could not be read: {error}")))?;
        if collected.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit_bytes: limit });
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(collected))
}

/// Runs an upload's reading under FF_UPLOAD_TIMEOUT_SECS.
pub async fn within_upload_deadline<T>(
    deadline: Duration,
    read: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(deadline, read).await.unwrap_or(Err(ApiError::UploadTimeout { limit: deadline }))
}
