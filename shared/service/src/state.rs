//! What every request shares: the engine, the settings and the concurrency limiter.

use std::sync::Arc;

use ff_pipeline::{Engine, PipelineError};

use crate::config::ServiceConfig;
use crate::limiter::ConcurrencyLimiter;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    config: Arc<ServiceConfig>,
    limiter: ConcurrencyLimiter,
}

impl AppState {
    /// Builds the engine the settings describe.
    pub fn new(config: ServiceConfig) -> Result<Self, PipelineError> {
        let engine = Engine::new(config.to_engine_config())?;
        Ok(Self::with_engine(Arc::new(engine), config))
    }

    /// Serves an engine built elsewhere (tests, or a host that shares one engine).
    pub fn with_engine(engine: Arc<Engine>, config: ServiceConfig) -> Self {
        let limiter = ConcurrencyLimiter::new(config.max_concurrent_requests, config.max_queued_requests);
        Self { engine, config: Arc::new(config), limiter }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn limiter(&self) -> &ConcurrencyLimiter {
        &self.limiter
    }
}
