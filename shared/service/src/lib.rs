//! The /api/v1 HTTP API over the FaceFusion pipeline.
//!
//! `router(state)` builds the whole API in one place; `serve` runs it on a listener. The domain work
//! lives in `ff_pipeline`: this crate only moves bytes in and out, limits how much runs at once and
//! turns failures into stable JSON errors.

mod admin;
pub mod batch;
pub mod config;
pub mod error;
pub mod events;
pub mod form;
pub mod jobs;
pub mod limiter;
pub mod media;
mod routes;
mod state;
pub mod storage;

use std::future::Future;

pub use config::{ConfigError, ServiceConfig};
pub use error::ApiError;
pub use limiter::ConcurrencyLimiter;
pub use routes::{router, X_FACES_PROCESSED, X_FRAMES_PROCESSED};
pub use state::AppState;

/// Serves the API on `listener`, with the FF_WORKERS job workers, until `shutdown` completes; then
/// lets in-flight requests finish and gives running jobs 30 s (later ones are recovered at start).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = jobs::Workers::start(&state);
    let served = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    workers.shutdown(std::time::Duration::from_secs(30)).await;
    served
}
