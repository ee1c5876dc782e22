//! The HTTP face of the service: one router per concern ([`Endpoints`]), composed under the same
//! layers into the whole API for `ff serve` ([`router`]) or into one Lambda function's API
//! ([`app`]), so both answer with the same handlers, limits, timeout and errors.
//!
//! Layers, outermost first: tracing (one line per answer, none per `429`), panic → JSON 500,
//! timeout → JSON 503, the `429` counter, the body limit (a declared or streamed body over
//! FF_MAX_UPLOAD_SIZE_MB → JSON 413), the caller's key and rate limit (401, 429; see [`crate::auth`]). Routes with small bodies (events, model download) read
//! theirs with their own, smaller limit after checking the headers (see [`body`]).

pub mod body;
pub mod catalog;
pub mod events;
pub mod faces;
pub mod job_create;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod process;
pub mod uploads;

use std::any::Any;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, OriginalUri, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tracing::{Level, Span};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::run::panic_message;
use crate::state::AppState;

pub use process::{X_FACES_PROCESSED, X_FRAMES_PROCESSED};

const HEALTH: &str = "/api/v1/health";

/// A group of routes that one deployment unit answers: `ff serve` answers all of them, each Lambda
/// function one (see `template.yaml`). Every group also answers GET /api/v1/health, the API's
/// description (GET /api/v1/openapi.json, GET /api/v1/docs) and its process's GET /metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoints {
    /// POST /api/v1/process, and POST /api/v1/faces (the same kind of work: CPU within the request).
    Process,
    /// POST /api/v1/jobs, and the direct uploads a JSON job names (POST /api/v1/uploads, and
    /// PUT /api/v1/uploads/{id} on the filesystem backend).
    JobCreate,
    /// GET /api/v1/jobs, GET /api/v1/jobs/{id}, GET /api/v1/jobs/{id}/events.
    JobStatus,
    /// GET /api/v1/jobs/{id}/result.
    JobResult,
    /// DELETE /api/v1/jobs/{id}.
    JobDelete,
    /// GET /api/v1/processors, GET /api/v1/models, POST /api/v1/models/download.
    Models,
    /// GET /api/v1/system.
    System,
    /// POST /api/v1/events/s3 (a MinIO webhook; Lambda gets S3 events directly instead).
    Events,
}

impl Endpoints {
    pub const ALL: [Endpoints; 8] = [
        Self::Process,
        Self::JobCreate,
        Self::JobStatus,
        Self::JobResult,
        Self::JobDelete,
        Self::Models,
        Self::System,
        Self::Events,
    ];

    /// The name of the group's Lambda function (its crate, binary and `events/` folder); the
    /// webhook group has none (Lambda's worker takes S3 events directly).
    pub fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::JobCreate => "job-create",
            Self::JobStatus => "job-status",
            Self::JobResult => "job-result",
            Self::JobDelete => "job-delete",
            Self::Models => "models",
            Self::System => "system",
            Self::Events => "events",
        }
    }

    /// The group's handlers.
    pub fn router(self) -> Router<AppState> {
        match self {
            Self::Process => process::router().merge(faces::router()),
            Self::JobCreate => job_create::create_router().merge(uploads::router()),
            Self::JobStatus => jobs::status_router(),
            Self::JobResult => jobs::result_router(),
            Self::JobDelete => jobs::delete_router(),
            Self::Models => catalog::models_router(),
            Self::System => catalog::system_router(),
            Self::Events => events::router(),
        }
    }

    /// The (method, path) pairs the group answers, health included, in axum's path syntax: what a
    /// deployment routes to it (function URLs, `template.yaml`).
    pub fn routes(self) -> &'static [(Method, &'static str)] {
        match self {
            Self::Process => {
                &[(Method::POST, "/api/v1/process"), (Method::POST, "/api/v1/faces"), (Method::GET, HEALTH)]
            }
            Self::JobCreate => &[
                (Method::POST, "/api/v1/jobs"),
                (Method::POST, "/api/v1/uploads"),
                (Method::PUT, "/api/v1/uploads/{id}"),
                (Method::GET, HEALTH),
            ],
            Self::JobStatus => &[
                (Method::GET, "/api/v1/jobs"),
                (Method::GET, "/api/v1/jobs/{id}"),
                (Method::GET, "/api/v1/jobs/{id}/events"),
                (Method::GET, HEALTH),
            ],
            Self::JobResult => &[(Method::GET, "/api/v1/jobs/{id}/result"), (Method::GET, HEALTH)],
            Self::JobDelete => &[(Method::DELETE, "/api/v1/jobs/{id}"), (Method::GET, HEALTH)],
            Self::Models => &[
                (Method::GET, "/api/v1/models"),
                (Method::POST, "/api/v1/models/download"),
                (Method::GET, "/api/v1/processors"),
                (Method::GET, HEALTH),
            ],
            Self::System => &[(Method::GET, "/api/v1/system"), (Method::GET, HEALTH)],
            Self::Events => &[(Method::POST, "/api/v1/events/s3"), (Method::GET, HEALTH)],
        }
    }
}

/// The whole API, as `ff serve` answers it.
pub fn router(state: AppState) -> Router {
    app(&Endpoints::ALL, state)
}

/// An API of some groups of routes under the common layers; another path is a JSON 404, another
/// method on a known path a JSON 405, as anywhere else.
pub fn app(endpoints: &[Endpoints], state: AppState) -> Router {
    let upload_limit = state.config().max_upload_bytes;
    let timeout = state.config().request_timeout;
    let cors = cors_layer(&state.config().cors_origins);
    let routes = endpoints.iter().fold(
        Router::new()
            .route(HEALTH, get(health))
            .merge(openapi::router())
            .merge(metrics::router())
            .merge(page::router()),
        |routes, endpoints| routes.merge(endpoints.router()),
    );
    let routes = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Who is calling decides what they may see, so it is known before any handler runs.
        .layer(axum::middleware::from_fn_with_state(state.clone(), authenticate))
        // Outside the key check, so refused requests are counted too.
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::record_request))
        // One limit for every route: tower-http refuses a declared length over it at once and cuts
        // a streamed body off there; axum's own per-extractor default would be a second limit.
        .layer(RequestBodyLimitLayer::new(upload_limit))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response_with_state(upload_limit, payload_too_large_as_json))
        .layer(axum::middleware::map_response_with_state(state.clone(), count_busy))
        .layer(
            ServiceBuilder::new()
                .layer(
                    // One span and one line per request at INFO: the access log of a server.
                    TraceLayer::new_for_http()
                        .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                        .on_response(log_response),
                )
                .layer(CatchPanicLayer::custom(panic_response))
                .layer(HandleErrorLayer::new(move |error: BoxError| async move { timeout_response(error, timeout) }))
                .timeout(timeout),
        )
        .with_state(state);
    // Outermost: a browser's preflight carries no key, and every answer, errors included, must
    // carry the headers that let the page read it.
    match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
}

/// FF_CORS_ORIGINS as a layer; `None` when unset (no CORS headers at all).
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allowed = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| HeaderValue::from_str(origin).ok()))
    };
    let exposed = [LOCATION, RETRY_AFTER, CONTENT_DISPOSITION]
        .into_iter()
        .chain(["preference-applied", X_FRAMES_PROCESSED, X_FACES_PROCESSED].map(HeaderName::from_static));
    Some(
        CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers(
                [AUTHORIZATION, CONTENT_TYPE]
                    .into_iter()
                    .chain(["idempotency-key", "prefer", "last-event-id"].map(HeaderName::from_static))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(exposed.collect::<Vec<_>>())
            .max_age(Duration::from_secs(600)),
    )
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// The body limit's own 413 (and an extractor's, for a body cut off while streaming) is plain
/// text; every error here is JSON with a code. The body limit answers a declared length over
/// FF_MAX_UPLOAD_SIZE_MB without reading the body, which is far too large to drain (see [`body`]):
/// the connection closes, and the answer says so.
async fn payload_too_large_as_json(State(limit_bytes): State<usize>, response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !body::declares_json(response.headers()) {
        let mut answer = ApiError::PayloadTooLarge { limit_bytes }.into_response();
        answer.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
        return answer;
    }
    response
}

/// Counts every `429`, whichever route or layer gave it; the count is logged at most once a second.
async fn count_busy(State(state): State<AppState>, response: Response) -> Response {
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        state.busy_log().record();
    }
    response
}

/// The access log line of an answer. `429`s have none of their own: under a flood they would be
/// most of the log, so they are counted and summed up once a second instead (`count_busy`).
fn log_response<B>(response: &axum::http::Response<B>, latency: Duration, _span: &Span) {
    let status = response.status();
    if status != StatusCode::TOO_MANY_REQUESTS {
        tracing::info!(status = status.as_u16(), latency_ms = latency.as_millis(), "finished processing request");
    }
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
