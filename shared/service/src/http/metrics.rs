//! GET /metrics, and the layer that counts every answer (see [`crate::metrics`]).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::process::X_FRAMES_PROCESSED;
use crate::state::AppState;

pub const METRICS_PATH: &str = "/metrics";

/// GET /metrics.
pub fn router() -> Router<AppState> {
    Router::new().route(METRICS_PATH, get(scrape))
}

async fn scrape(State(state): State<AppState>) -> Response {
    let models = state.engine().registry().loaded_sessions();
    match state.metrics().render(state.job_queue().depth(), state.job_cancels().running(), models) {
        Ok(text) => {
            let mut response = text.into_response();
            let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(kind));
            response
        }
        Err(error) => error.into_response(),
    }
}

/// The layer that counts every answer under its route's pattern (`/api/v1/jobs/{id}`, not the
/// id: one series per route, however many jobs), `unmatched` for paths no route has.
pub async fn record_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_string();
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let frames = response
        .headers()
        .get(X_FRAMES_PROCESSED)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    state.metrics().record(route, method, response.status().as_u16(), started.elapsed().as_secs_f64(), frames);
    response
}
