//! The /api/v1 API and the job worker as AWS Lambda functions.
//!
//! Every HTTP function runs the same handlers as `ff serve`: [`function_router`] composes the
//! service's router for one [`Function`]'s group of routes under the service's layers, so each
//! function URL answers its own endpoints and a JSON 404 for the others. The worker function
//! ([`worker::run_worker`]) runs jobs on S3 events. `ff` itself is all of them in one function
//! ([`run_all_in_one`]).
//!
//! The function-URL payload (API Gateway v2 format, which `cargo lambda watch` also sends) is turned
//! into an `http::Request` by `lambda_http`; nothing here parses HTTP events by hand.

mod function;
pub mod large_response;
pub mod worker;

use std::sync::Arc;

use axum::Router;
use ff_service::{AppState, ServiceConfig};
use lambda_http::request::LambdaRequest;
use lambda_http::Adapter;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;
use tower::ServiceExt;

pub use function::{function_router, Function};
pub use lambda_http::Error;

/// Runs one HTTP function until the Lambda runtime stops it: JSON logs, FF_* settings from the
/// environment, then the function's routes. A bad setting fails the init phase with the variable
/// named in the log, and Lambda reports the function as failing to start.
pub async fn run_function(function: Function) -> Result<(), Error> {
    // Before any frame is handled (the function binaries' `main` is only this call).
    ff_pipeline::allocator::keep_large_buffers_out_of_the_heap();
    init_tracing();
    let state = state_from_env()?;
    tracing::info!(function = function.name(), "function ready");
    lambda_http::run(function_router(function, state)).await
}

/// `ff` as one Lambda function: function-URL requests go to the whole API, S3 events to the worker.
pub async fn run_all_in_one(state: AppState) -> Result<(), Error> {
    let router = with_large_response_offload(ff_service::router(state.clone()), &state);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (state, router) = (state.clone(), router.clone());
        async move { dispatch(&state, router, event).await }
    }))
    .await
}

/// One invocation of the all-in-one function: an S3 event (it has `Records`), a scheduled event
/// (the worker's lease scan) or an HTTP request.
pub async fn dispatch(state: &AppState, router: Router, event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let (payload, context) = event.into_parts();
    let invalid = |error: serde_json::Error| Diagnostic {
        error_type: "InvalidEvent".into(),
        error_message: format!("neither an S3 event, a scheduled event nor a function-URL request: {error}"),
    };
    if payload.get("Records").is_some() || worker::is_scheduled(&payload) {
        return worker::handle_worker_event(state, payload).await;
    }
    let request: LambdaRequest = serde_json::from_value(payload).map_err(invalid)?;
    // `Adapter` is what `lambda_http::run` wraps a router in; calling it here gives the same
    // request and response conversion for a function that also takes other events.
    let response = match Adapter::from(router).oneshot(LambdaEvent::new(request, context)).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    serde_json::to_value(response).map_err(invalid)
}

/// The shared state from FF_* variables, as `ff serve` builds it.
pub fn state_from_env() -> Result<AppState, Error> {
    let config = ServiceConfig::from_env().inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    tracing::info!(?config, "service configuration");
    let state = AppState::new(config).inspect_err(|error| tracing::error!(%error, "the engine failed to start"))?;
    Ok(state)
}

/// Answers over Lambda's payload limit go through the bucket (see [`large_response`]).
pub fn with_large_response_offload(router: Router, state: &AppState) -> Router {
    let storage = Arc::clone(state.storage());
    router.layer(axum::middleware::from_fn_with_state(storage, large_response::offload_large_responses))
}

/// JSON lines on stdout, which Lambda forwards to CloudWatch as structured records. The level comes
/// from `RUST_LOG`, else from the function's log-level setting (`AWS_LAMBDA_LOG_LEVEL`), else info.
/// ONNX Runtime's own chatter stays at warn either way.
pub fn init_tracing() {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().map(|level| format!("{},ort=warn", level.to_lowercase()))
        })
        .unwrap_or_else(|| "info,ort=warn".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    // `try_init`: a second call (tests, or `ff` having set up logging) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_ansi(false)
        .with_writer(std::io::stdout)
        .try_init();
}
