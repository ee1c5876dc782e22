//! POST /api/v1/uploads (a place to put one input) and PUT /api/v1/uploads/{id} (the upload URL ff
//! serves itself on the filesystem backend). What a grant is and how URLs are signed lives in
//! [`crate::uploads`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::{Json, Router};
use futures_util::StreamExt;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::body::{declared_length, read_small, refuse_unread, within_upload_deadline, UPLOAD_REQUEST_BODY_LIMIT};
use crate::error::ApiError;
use crate::run::MAX_INPUT_BYTES;
use crate::state::AppState;
use crate::storage::{PutContent, StorageError, WriteCondition};
use crate::uploads::{
    is_upload_id, upload_key, SignedQuery, UploadGrant, UploadReceipt, UploadRequest, UploadTicket, UPLOAD_URL_LIFETIME,
};

/// POST /api/v1/uploads and PUT /api/v1/uploads/{id}.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/uploads", post(create_upload)).route("/api/v1/uploads/{id}", put(receive_upload))
}

/// Grants one upload: 201 with where to PUT it.
async fn create_upload(State(state): State<AppState>, request: Request) -> Response {
    let headers = request.headers().clone();
    let body = match read_small(request, UPLOAD_REQUEST_BODY_LIMIT, state.config().upload_timeout).await {
        Ok(body) => body,
        Err(answer) => return answer,
    };
    match ticket_for(&state, &headers, &body).await {
        Ok(ticket) => (StatusCode::CREATED, Json(ticket)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn ticket_for(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<UploadTicket, ApiError> {
    let request: UploadRequest = serde_json::from_slice(body).map_err(|error| {
        ApiError::BadRequest(format!("expected {{\"content_type\": \"...\", \"size\": N}}: {error}"))
    })?;
    let storage = state.storage();
    // A presigned PUT goes straight to the bucket, bounded only by what a job reads; ff's own
    // route takes the body through the server, under FF_MAX_UPLOAD_SIZE_MB like any upload.
    let presigns = storage.kind() == "s3";
    let max_bytes =
        if presigns { MAX_INPUT_BYTES } else { MAX_INPUT_BYTES.min(state.config().max_upload_bytes as u64) };
    let grant = request.grant(max_bytes, SystemTime::now())?;
    let key = grant.key();
    let content = PutContent { content_type: grant.content_type.clone(), length: grant.size };
    let url = match storage.presign_put(&key, UPLOAD_URL_LIFETIME, &content).await? {
        Some(url) => url,
        None => own_upload_url(state, headers, &grant)?,
    };
    let headers = BTreeMap::from([
        ("Content-Type".to_string(), grant.content_type.clone()),
        ("Content-Length".to_string(), grant.size.to_string()),
    ]);
    let expires_at =
        OffsetDateTime::from(grant.expires_at()).format(&Rfc3339).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(UploadTicket { key, url, method: "PUT".into(), headers, expires_at })
}

/// `FF_PUBLIC_URL` (or `http://` and the request's `Host`) + `/api/v1/uploads/{id}?<signed query>`.
fn own_upload_url(state: &AppState, headers: &HeaderMap, grant: &UploadGrant) -> Result<String, ApiError> {
    let base = match &state.config().public_url {
        Some(base) => base.clone(),
        None => format!("http://{}", request_authority(headers)?),
    };
    let query = serde_urlencoded::to_string(state.upload_signer().query(grant))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(format!("{base}/api/v1/uploads/{}?{query}", grant.id))
}

/// The `Host` the client reached us by, if it is a plain `host[:port]`.
fn request_authority(headers: &HeaderMap) -> Result<Authority, ApiError> {
    let invalid = || ApiError::BadRequest("the request needs a valid Host header (or set FF_PUBLIC_URL)".into());
    let host = headers.get(HOST).and_then(|value| value.to_str().ok()).ok_or_else(invalid)?;
    let authority: Authority = host.parse().map_err(|_| invalid())?;
    // An authority may carry `user@`; a host a client names for itself must not.
    if authority.as_str().contains('@') {
        return Err(invalid());
    }
    Ok(authority)
}

/// ff's own upload URL: checks the signature, the time, the type and the length before reading a
/// byte, then streams the body into the store, once (a second PUT is a 409).
async fn receive_upload(State(state): State<AppState>, Path(id): Path<String>, request: Request) -> Response {
    let grant = match checked_grant(&state, &id, &request) {
        Ok(grant) => grant,
        Err(error) => return refuse_unread(error, request).await,
    };
    let place = match state.limiter().try_start_upload() {
        Ok(place) => place,
        Err(busy) => return refuse_unread(busy.into(), request).await,
    };
    let stored = within_upload_deadline(state.config().upload_timeout, store_body(&state, &grant, request)).await;
    drop(place);
    match stored {
        Ok(receipt) => (StatusCode::OK, Json(receipt)).into_response(),
        Err(error) => error.into_response(),
    }
}

fn checked_grant(state: &AppState, id: &str, request: &Request) -> Result<UploadGrant, ApiError> {
    let unsigned =
        || ApiError::UploadUrlInvalid("this is not an upload URL ff signed; ask POST /api/v1/uploads for one".into());
    if !is_upload_id(id) {
        return Err(unsigned());
    }
    let query: SignedQuery =
        serde_urlencoded::from_str(request.uri().query().unwrap_or_default()).map_err(|_| unsigned())?;
    let grant = state.upload_signer().verify(id, query, SystemTime::now())?;
    let headers = request.headers();
    let content_type = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::trim);
    if !content_type.is_some_and(|sent| sent.eq_ignore_ascii_case(&grant.content_type)) {
        return Err(ApiError::BadRequest(format!(
            "the upload must be sent with `Content-Type: {}`, as it was granted",
            grant.content_type
        )));
    }
    match declared_length(headers) {
        Some(length) if length == grant.size => Ok(grant),
        Some(length) if length > grant.size => {
            Err(ApiError::PayloadTooLarge { limit_bytes: usize::try_from(grant.size).unwrap_or(usize::MAX) })
        }
        _ => Err(ApiError::BadRequest(format!(
            "the upload must be sent with `{CONTENT_LENGTH}: {}`, the size it was granted",
            grant.size
        ))),
    }
}

/// Streams the body into `uploads/<id>` if nothing is there yet. hyper holds the body to its
/// declared length, which was checked to be the granted size.
async fn store_body(state: &AppState, grant: &UploadGrant, request: Request) -> Result<UploadReceipt, ApiError> {
    let key = upload_key(&grant.id);
    let key_for_errors = key.clone();
    let body = request
        .into_body()
        .into_data_stream()
        .map(move |chunk| chunk.map_err(|error| StorageError::backend("upload", &key_for_errors, error)));
    let stored = state.storage().put_stream(&key, Box::pin(body), WriteCondition::IfAbsent).await;
    match stored {
        Ok(meta) => Ok(UploadReceipt { key, size: meta.size }),
        Err(StorageError::PreconditionFailed { .. }) => Err(ApiError::UploadUrlInvalid(
            "this upload URL was used already; ask POST /api/v1/uploads for a new one".into(),
        )),
        // A body cut short or past FF_MAX_UPLOAD_SIZE_MB fails the stream: the client's doing.
        Err(StorageError::Backend { operation: "upload", .. }) => {
            Err(ApiError::BadRequest("the upload's body could not be read to its declared length".into()))
        }
        Err(error) => Err(error.into()),
    }
}
