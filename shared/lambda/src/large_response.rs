//! Answers too large for a Lambda response go through the bucket instead.
//!
//! A function URL returns at most 6 MB of payload, and a binary body travels base64-encoded in it
//! (4/3 of its size). Lambda turns a larger answer into a bare 502 after the work is done, so a big
//! result is not attempted inline: it is stored under `lambda-results/` and the client gets
//! `303 See Other` to a presigned GET URL (curl `-L` and browsers follow it), with the same facts in
//! a JSON body for clients that do not follow redirects.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ff_service::storage::{Storage, WriteCondition};
use ff_service::{ApiError, X_FACES_PROCESSED, X_FRAMES_PROCESSED};

/// The largest body answered inline: (6 MiB − 16 KiB for headers and the JSON envelope) × 3/4.
pub const MAX_INLINE_BODY: usize = 4_700_000;

/// Where offloaded answers are stored; template.yaml expires the prefix after a day.
pub const RESULTS_PREFIX: &str = "lambda-results/";

/// How long the presigned URL works: long enough to start the download, short enough that a
/// leaked URL soon stops working.
pub const URL_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// The largest answer buffered for offloading; the API's answers are single images and short
/// videos (bounded by FF_MAX_SYNC_VIDEO_SECS), far below.
const MAX_BUFFERED_BODY: usize = 1024 * 1024 * 1024;

/// Middleware: passes small answers through untouched and offloads large ones.
pub async fn offload_large_responses(
    State(storage): State<Arc<dyn Storage>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let known_small = response.body().size_hint().upper().is_some_and(|size| size <= MAX_INLINE_BODY as u64);
    if known_small {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = match to_bytes(body, MAX_BUFFERED_BODY).await {
        Ok(bytes) => bytes,
        Err(error) => return ApiError::internal(format!("reading a large answer failed: {error}")).into_response(),
    };
    if bytes.len() <= MAX_INLINE_BODY {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let key = format!("{RESULTS_PREFIX}{}.{}", uuid::Uuid::now_v7().simple(), extension(&content_type));
    let size = bytes.len();
    if let Err(error) = storage.put_bytes(&key, bytes.clone(), WriteCondition::IfAbsent).await {
        return ApiError::from(error).into_response();
    }
    let url = match storage.presign_get(&key, URL_LIFETIME).await {
        Ok(Some(url)) => url,
        Ok(None) => {
            // The filesystem backend (a local emulator without a bucket) has no URLs to hand out;
            // such an emulator has no payload limit either, so the answer goes out as it is.
            tracing::warn!(size, "large answer sent inline: the storage backend cannot presign");
            return Response::from_parts(parts, Body::from(bytes));
        }
        Err(error) => return ApiError::from(error).into_response(),
    };
    tracing::info!(size, %key, "answer offloaded to storage");
    let Ok(location) = HeaderValue::from_str(&url) else {
        return ApiError::internal("the presigned URL is not a valid header value").into_response();
    };
    let body = serde_json::json!({
        "url": url,
        "expires_in_secs": URL_LIFETIME.as_secs(),
        "size": size,
        "content_type": content_type,
    });
    let mut redirect = (StatusCode::SEE_OTHER, [(LOCATION, location)], Json(body)).into_response();
    for name in [X_FACES_PROCESSED, X_FRAMES_PROCESSED] {
        if let Some(value) = parts.headers.get(name) {
            redirect.headers_mut().insert(HeaderName::from_static(name), value.clone());
        }
    }
    redirect
}

/// The stored object has no content type of its own, so the key's extension says what it is.
fn extension(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/json" => "json",
        other => ff_service::format::extension_of_mime(other).unwrap_or("bin"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use axum::routing::get;
    use axum::Router;
    use bytes::Bytes;
    use ff_service::storage::{
        ByteStream, FsStorage, ListPage, ListRequest, ObjectBody, ObjectMeta, PutContent, Result,
    };
    use tower::ServiceExt;

    use super::*;

    /// The filesystem backend plus the one thing it lacks here: URLs. Everything else is the real
    /// storage, so the test sees what was really stored.
    #[derive(Debug)]
    struct Presigning(FsStorage);

    #[async_trait::async_trait]
    impl Storage for Presigning {
        fn kind(&self) -> &'static str {
            "fs"
        }
        async fn put_bytes(&self, key: &str, bytes: Bytes, condition: WriteCondition) -> Result<ObjectMeta> {
            self.0.put_bytes(key, bytes, condition).await
        }
        async fn put_stream(&self, key: &str, body: ByteStream, condition: WriteCondition) -> Result<ObjectMeta> {
            self.0.put_stream(key, body, condition).await
        }
        async fn get(&self, key: &str) -> Result<ObjectBody> {
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<ObjectBody> {
            self.0.get_range(key, range).await
        }
        async fn head(&self, key: &str) -> Result<ObjectMeta> {
            self.0.head(key).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.delete(key).await
        }
        async fn list(&self, prefix: &str, request: ListRequest) -> Result<ListPage> {
            self.0.list(prefix, request).await
        }
        async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>> {
            Ok(Some(format!("https://bucket.example/{key}?expires={}", expires_in.as_secs())))
        }
        async fn presign_put(&self, _: &str, _: Duration, _: &PutContent) -> Result<Option<String>> {
            Ok(None)
        }
        async fn put_file(&self, key: &str, path: &Path) -> Result<ObjectMeta> {
            self.0.put_file(key, path).await
        }
    }

    /// A route answering `size` bytes of JPEG, behind the middleware.
    async fn answer_of(size: usize, storage: Arc<dyn Storage>) -> Response {
        let handler = move || async move {
            let faces = HeaderName::from_static(X_FACES_PROCESSED);
            ([(CONTENT_TYPE, "image/jpeg"), (faces, "1")], vec![7u8; size]).into_response()
        };
        let router = Router::new()
            .route("/big", get(handler))
            .layer(axum::middleware::from_fn_with_state(storage, offload_large_responses));
        router.oneshot(Request::builder().uri("/big").body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn large_answers_are_stored_and_redirected() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(Presigning(FsStorage::new(dir.path())));
        let response = answer_of(MAX_INLINE_BODY + 1, Arc::clone(&storage)).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[X_FACES_PROCESSED], "1");
        let location = response.headers()[LOCATION].to_str().unwrap().to_string();
        let key = location.trim_start_matches("https://bucket.example/").split('?').next().unwrap().to_string();
        assert!(key.starts_with(RESULTS_PREFIX) && key.ends_with(".jpg"), "{key}");
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (body["url"].as_str(), body["size"].as_u64()),
            (Some(location.as_str()), Some(MAX_INLINE_BODY as u64 + 1))
        );
        assert_eq!(storage.head(&key).await.unwrap().size, MAX_INLINE_BODY as u64 + 1);
    }

    #[tokio::test]
    async fn small_answers_and_unpresignable_storage_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let presigning: Arc<dyn Storage> = Arc::new(Presigning(FsStorage::new(dir.path())));
        let small = answer_of(MAX_INLINE_BODY, presigning).await;
        assert_eq!(small.status(), StatusCode::OK);
        assert_eq!(to_bytes(small.into_body(), usize::MAX).await.unwrap().len(), MAX_INLINE_BODY);
        let plain: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path()));
        let large = answer_of(MAX_INLINE_BODY + 1, plain).await;
        assert_eq!(large.status(), StatusCode::OK);
        assert_eq!(to_bytes(large.into_body(), usize::MAX).await.unwrap().len(), MAX_INLINE_BODY + 1);
    }

    /// A video answer of /process (headers as the service sends them) goes the same way, stored
    /// under its container's extension with both count headers kept.
    #[tokio::test]
    async fn large_video_answers_keep_their_container_and_headers() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(Presigning(FsStorage::new(dir.path())));
        let handler = || async {
            let headers = [
                (CONTENT_TYPE, "video/mp4"),
                (HeaderName::from_static(X_FACES_PROCESSED), "12"),
                (HeaderName::from_static(X_FRAMES_PROCESSED), "30"),
            ];
            (headers, vec![1u8; MAX_INLINE_BODY + 1]).into_response()
        };
        let router = Router::new()
            .route("/video", get(handler))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&storage), offload_large_responses));
        let response = router.oneshot(Request::builder().uri("/video").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let header = |name: &str| response.headers()[name].to_str().unwrap().to_string();
        assert_eq!((header(X_FACES_PROCESSED), header(X_FRAMES_PROCESSED)), ("12".into(), "30".into()));
        let location = response.headers()[LOCATION].to_str().unwrap();
        let key = location.trim_start_matches("https://bucket.example/").split('?').next().unwrap();
        assert!(key.starts_with(RESULTS_PREFIX) && key.ends_with(".mp4"), "{key}");
        assert_eq!(storage.head(key).await.unwrap().size, MAX_INLINE_BODY as u64 + 1);
    }

    #[test]
    fn the_inline_limit_fits_a_function_url_response() {
        let base64_len = MAX_INLINE_BODY.div_ceil(3) * 4;
        assert!(base64_len + 16 * 1024 <= 6 * 1024 * 1024, "{base64_len}");
    }

    #[test]
    fn extensions_follow_the_content_type() {
        assert_eq!(extension("image/jpeg"), "jpg");
        assert_eq!(extension("image/png; charset=binary"), "png");
        assert_eq!(extension("video/mp4"), "mp4");
        assert_eq!(extension("video/quicktime"), "mov");
        assert_eq!(extension(""), "bin");
    }
}
