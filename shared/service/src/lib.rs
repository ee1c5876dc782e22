//! The /api/v1 HTTP API over the FaceFusion pipeline.
//!
//! Read it top-down:
//!
//! * [`http`]: the handlers, one router per concern, composed under the same layers for `ff serve`
//!   and for each Lambda function. They only say where inputs come from and where results go.
//! * [`run`]: the one processing path every entry point shares: a typed run in ([`plan`],
//!   [`workspace`], [`probe`]), a typed product or [`run::Failure`] out.
//! * [`jobs`], [`batch`], [`events`]: durable jobs, `inbox/` batch processing, and the S3 events
//!   that drive both on Lambda and behind MinIO.
//! * At the bottom, knowing nothing of the above: [`config`], [`storage`], [`error`], [`format`],
//!   [`document`], [`limiter`], [`keys`] (and the [`auth`] layer over them).
//!
//! The domain work lives in `ff_pipeline`: this crate moves bytes in and out, limits how much runs
//! at once and turns failures into stable JSON errors.

pub mod auth;
pub mod batch;
pub mod config;
pub mod document;
pub mod error;
pub mod events;
pub mod faces;
pub mod form;
pub mod format;
pub mod http;
pub mod jobs;
pub mod keys;
pub mod limiter;
pub mod metrics;
pub mod models_bucket;
pub mod plan;
pub mod probe;
pub mod run;
pub mod server;
pub mod sources;
mod state;
pub mod storage;
pub mod sweep;
pub mod uploads;
pub mod webhooks;
pub mod workspace;

use std::future::Future;

pub use config::{ConfigError, ServiceConfig};
pub use error::ApiError;
pub use http::{router, X_FACES_PROCESSED, X_FRAMES_PROCESSED};
pub use limiter::ConcurrencyLimiter;
pub use state::{storage_from_config, AppState};

/// Serves the API on `listener`, with the FF_WORKERS job workers and the sweep of what killed runs
/// left (`sweep::Sweeper`), until `shutdown` completes; then lets in-flight requests finish and
/// gives running jobs 30 s (later ones are recovered at start).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let workers = jobs::Workers::start(&state);
    let sweeper = sweep::Sweeper::start(&state);
    let served = server::serve_router(listener, router(state), server::ServerLimits::default(), shutdown).await;
    sweeper.shutdown().await;
    workers.shutdown(std::time::Duration::from_secs(30)).await;
    served
}
