//! The layer in front of every route: who is calling (API keys) and whether they may call now
//! (per-key rate limit). What keys, callers and limits are lives in [`crate::keys`].

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::http::body::refuse_unread;
use crate::keys::{bearer_token, Caller};
use crate::state::AppState;

/// Routes anyone may call, keys or not: liveness, the API's own description, the try-it page
/// (which asks for a key and sends it with its calls), and the S3 webhook (which has its own
/// secret, FF_EVENTS_SECRET).
const OPEN_PATHS: [&str; 5] = ["/", "/api/v1/health", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/events/s3"];

/// ff's own upload URLs carry their authorisation in a signed query, as a presigned S3 URL does:
/// whoever was given the URL may PUT, without the API key.
const SIGNED_UPLOAD_PREFIX: &str = "/api/v1/uploads/";

fn is_open(method: &Method, path: &str) -> bool {
    OPEN_PATHS.contains(&path) || (method == Method::PUT && path.starts_with(SIGNED_UPLOAD_PREFIX))
}

/// The layer in front of every route: identifies the caller by their key (401 without a valid one
/// when keys are configured), applies their rate limit (429), and hands the [`Caller`] on. A
/// refused request's body is drained, not processed.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if is_open(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let keys = &state.config().api_keys;
    let caller = if keys.is_empty() {
        Caller::anonymous()
    } else {
        match bearer_token(request.headers()).and_then(|token| keys.identify(token)) {
            Some(name) => Caller::named(name),
            None => return refuse_unread(ApiError::Unauthorized, request).await,
        }
    };
    if let Some(limits) = state.rate_limits() {
        if let Err(wait) = limits.check(&caller) {
            return refuse_unread(ApiError::RateLimited { retry_after: wait }, request).await;
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}
