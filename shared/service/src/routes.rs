//! The routes and the tower layers around them.

use std::any::Any;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, OriginalUri, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{BoxError, Json, Router};
use ff_pipeline::{Engine, ImageOutput, ImageRequest};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::form::{ProcessForm, ProcessJob};
use crate::limiter::{Admission, ProcessingSlot};
use crate::media::{check_video, mime_of, CancelOnDrop, DurationLimit, Route, VideoWorkspace};
use crate::state::AppState;

/// How many faces the processors changed; 0 means the target came back as it was.
pub const X_FACES_PROCESSED: &str = "x-faces-processed";

/// Video answers: how many frames were encoded.
pub const X_FRAMES_PROCESSED: &str = "x-frames-processed";

/// The whole API. Layers, outermost first: tracing, panic → JSON 500, timeout → JSON 503.
pub fn router(state: AppState) -> Router {
    let upload_limit = state.config().max_upload_bytes;
    let timeout = state.config().request_timeout;
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/process", post(process))
        .merge(crate::jobs::routes::router())
        .merge(crate::admin::routes())
        .merge(crate::events::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(upload_limit))
        .layer(
            ServiceBuilder::new()
                .layer(
                    // One span and one line per request at INFO: the access log of a server.
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(move |error: BoxError| async move { timeout_response(error, timeout) }))
                .timeout(timeout),
        )
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Read the form, validate it, wait for a slot, run the pipeline on a blocking thread.
async fn process(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let multipart = multipart?;
    let upload_limit = state.config().max_upload_bytes;
    reject_declared_oversize(&headers, upload_limit)?;
    let admission = state.limiter().try_admit()?;
    let job = ProcessForm::read(multipart, upload_limit).await?.into_job()?;
    match job.route()? {
        Route::Image { output_format } => {
            let slot = admission.wait_for_slot().await;
            let ProcessJob { sources, target, options, download_stem, .. } = job;
            let request = ImageRequest { sources, target, options, output_format };
            let output = run_on_cpu(Arc::clone(state.engine()), request, slot).await?;
            Ok(image_response(output, &download_stem))
        }
        Route::Video { target_extension, container } => {
            process_video(&state, admission, job, target_extension, container).await
        }
    }
}

/// A short video: written to a run directory, probed against FF_MAX_SYNC_VIDEO_SECS before it
/// waits for a slot, processed under FF_REQUEST_TIMEOUT_SECS, answered as one body. If the client
/// goes away or the request times out, the dropped guard cancels the run within one frame, and the
/// run directory goes with the blocking task that owns it.
async fn process_video(
    state: &AppState,
    admission: Admission,
    job: ProcessJob,
    target_extension: &'static str,
    container: &'static str,
) -> Result<Response, ApiError> {
    let config = state.config();
    let workspace = VideoWorkspace::create(&config.temp_dir, target_extension, container)?;
    workspace.write_target(&job.target).await?;
    let ProcessJob { sources, options, download_stem, .. } = job;
    let limit = DurationLimit::Sync(config.max_sync_video_seconds);
    let (workspace, options) = blocking(move || {
        // An image target (a photo lip_syncer makes speak) has no duration of its own to check.
        let checked = match workspace.target_is_video() {
            true => check_video(workspace.target(), &options, limit).map(|_| ()),
            false => Ok(()),
        };
        checked.map(|()| (workspace, options))
    })
    .await??;
    let slot = admission.wait_for_slot().await;
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_when_dropped = CancelOnDrop(Arc::clone(&cancel));
    let engine = Arc::clone(state.engine());
    let timeout = config.request_timeout;
    let (output, bytes) = blocking(move || {
        let _slot = slot;
        let request = workspace.request(sources, options, timeout, limit);
        let output = engine.process_video(request, |_| {}, &cancel)?;
        let bytes = std::fs::read(workspace.output())
            .map_err(|e| ApiError::internal(format!("reading the encoded video failed: {e}")))?;
        // The run directory is removed here, before the answer is sent.
        drop(workspace);
        Ok::<_, ApiError>((output, bytes))
    })
    .await??;
    tracing::info!(
        frames = output.frames,
        fps = output.processing_fps,
        faces = output.faces_processed,
        bytes = bytes.len(),
        "video processed"
    );
    let disposition = format!("inline; filename=\"{download_stem}.{container}\"");
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(mime_of(container))),
        (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("inline"))),
        (HeaderName::from_static(X_FACES_PROCESSED), HeaderValue::from(output.faces_processed)),
        (HeaderName::from_static(X_FRAMES_PROCESSED), HeaderValue::from(output.frames)),
    ];
    Ok((headers, bytes).into_response())
}

/// Runs `work` on the blocking pool; a panic becomes an internal error.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(join_error) if join_error.is_panic() => {
            Err(ApiError::internal(format!("pipeline panicked: {}", panic_message(&*join_error.into_panic()))))
        }
        Err(join_error) => Err(ApiError::internal(format!("pipeline task failed: {join_error}"))),
    }
}

/// Refuses a body whose declared length is already over the limit, before reading any of it.
/// Bodies without a length (chunked) are still cut off by `DefaultBodyLimit` while streaming.
fn reject_declared_oversize(headers: &HeaderMap, limit_bytes: usize) -> Result<(), ApiError> {
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit_bytes as u64 => Err(ApiError::PayloadTooLarge { limit_bytes }),
        _ => Ok(()),
    }
}

/// The pipeline is CPU-bound and synchronous, so it runs on the blocking pool. The slot moves
/// into the task: if the client gives up, the work still runs to its end and the slot stays
/// taken until then, so the CPU is never oversubscribed.
async fn run_on_cpu(engine: Arc<Engine>, request: ImageRequest, slot: ProcessingSlot) -> Result<ImageOutput, ApiError> {
    let task = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        engine.process_image(request)
    });
    match task.await {
        Ok(result) => Ok(result?),
        Err(join_error) if join_error.is_panic() => {
            Err(ApiError::internal(format!("pipeline panicked: {}", panic_message(&*join_error.into_panic()))))
        }
        Err(join_error) => Err(ApiError::internal(format!("pipeline task failed: {join_error}"))),
    }
}

fn image_response(output: ImageOutput, download_stem: &str) -> Response {
    let disposition = format!("inline; filename=\"{download_stem}.{}\"", output.format.extension());
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(output.format.mime())),
        // The stem is reduced to header-safe ASCII by `download_stem`, so this cannot fail.
        (CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("inline"))),
        (HeaderName::from_static(X_FACES_PROCESSED), HeaderValue::from(output.faces_processed)),
    ];
    (headers, output.bytes).into_response()
}

async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::NotFound { method: method.to_string(), path: uri.path().to_string() }
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::MethodNotAllowed { method: method.to_string(), path: uri.path().to_string() }
}

fn timeout_response(error: BoxError, limit: Duration) -> ApiError {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout { limit }
    } else {
        ApiError::internal(format!("middleware failed: {error}"))
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    ApiError::internal(format!("handler panicked: {}", panic_message(&*panic))).into_response()
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)")
}
