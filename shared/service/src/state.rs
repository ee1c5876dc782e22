//! What every request shares: the engine, the settings, the concurrency limiter, storage and the
//! jobs of this process.

use std::sync::Arc;

use ff_pipeline::{Engine, PipelineError};

use crate::config::ServiceConfig;
use crate::jobs::cancel::JobCancels;
use crate::jobs::queue::JobQueue;
use crate::keys::RateLimits;
use crate::limiter::{BusyLog, ConcurrencyLimiter};
use crate::metrics::Metrics;
use crate::models_bucket::BucketModels;
use crate::storage::{FsStorage, Storage};
#[cfg(feature = "s3")]
use crate::storage::{S3Settings, S3Storage, DEFAULT_CALL_TIMEOUT};
use crate::uploads::UploadSigner;
use crate::webhooks::WebhookSender;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    engine: Arc<Engine>,
    config: Arc<ServiceConfig>,
    limiter: ConcurrencyLimiter,
    /// The `429` answers: counted for GET /api/v1/system, logged at most once a second.
    busy_log: Arc<BusyLog>,
    /// Jobs and their files: S3 when FF_S3_BUCKET is set, else FF_DATA_DIR.
    storage: Arc<dyn Storage>,
    /// Jobs waiting for this process's workers (FF_JOB_QUEUE_LENGTH).
    job_queue: JobQueue,
    /// Cancel flags of the jobs running in this process.
    job_cancels: JobCancels,
    /// Per-key token buckets of FF_RATE_LIMIT_PER_MINUTE, when it is set.
    rate_limits: Option<Arc<RateLimits>>,
    /// Job webhook deliveries (nothing without FF_WEBHOOK_SECRET).
    webhooks: WebhookSender,
    /// What GET /metrics answers.
    metrics: Arc<Metrics>,
    /// Signs the upload URLs ff serves itself (filesystem backend).
    upload_signer: Arc<UploadSigner>,
    /// FF_MODELS_S3_PREFIX: the models kept in storage, which the engine copies missing models from.
    models_bucket: Option<Arc<BucketModels>>,
}

impl AppState {
    /// Builds the engine the settings describe.
    /// With FF_MODELS_S3_PREFIX, the engine copies missing models from that prefix of the storage
    /// first; that needs the Tokio runtime this is called on (both servers and every Lambda
    /// function build their state inside one).
    pub fn new(config: ServiceConfig) -> Result<Self, PipelineError> {
        let storage = storage_from_config(&config);
        let models_bucket = match (&config.models_s3_prefix, tokio::runtime::Handle::try_current()) {
            (Some(prefix), Ok(runtime)) => Some(Arc::new(BucketModels::new(Arc::clone(&storage), prefix, runtime))),
            (Some(_), Err(_)) => {
                tracing::warn!("FF_MODELS_S3_PREFIX is ignored: the state was built outside a Tokio runtime");
                None
            }
            (None, _) => None,
        };
        let source = models_bucket.clone().map(|bucket| bucket as Arc<dyn ff_pipeline::models::ModelSource>);
        let engine = Engine::with_model_source(config.to_engine_config(), source)?;
        let mut state = Self::with_engine(Arc::new(engine), config).with_storage(storage);
        state.models_bucket = models_bucket;
        Ok(state)
    }

    /// Serves an engine built elsewhere (tests, or a host that shares one engine).
    pub fn with_engine(engine: Arc<Engine>, config: ServiceConfig) -> Self {
        let limiter = ConcurrencyLimiter::new(config.max_concurrent_requests, config.max_queued_requests);
        let storage = storage_from_config(&config);
        let job_queue = JobQueue::new(config.job_queue_length, config.workers > 0);
        let rate_limits = config.rate_limit_per_minute.map(|limit| Arc::new(RateLimits::per_minute(limit)));
        let webhooks = WebhookSender::new(
            config.webhook_secret.clone(),
            config.webhook_allowed_hosts.clone(),
            Arc::clone(&storage),
        );
        Self {
            engine,
            config: Arc::new(config),
            limiter,
            busy_log: Arc::default(),
            storage,
            job_queue,
            job_cancels: JobCancels::default(),
            rate_limits,
            webhooks,
            metrics: Arc::default(),
            // Linux's getrandom(2) does not fail once the kernel's pool is ready, long before any
            // server starts; without it there would be no safe key to sign with.
            upload_signer: Arc::new(UploadSigner::random().expect("the operating system's random source")),
            models_bucket: None,
        }
    }

    /// Serves an engine whose store copies models from `bucket` (tests; `new` does this from the
    /// settings).
    pub fn with_models_bucket(mut self, bucket: Arc<BucketModels>) -> Self {
        self.models_bucket = Some(bucket);
        self
    }

    /// The models kept in storage (FF_MODELS_S3_PREFIX), if configured.
    pub fn models_bucket(&self) -> Option<&Arc<BucketModels>> {
        self.models_bucket.as_ref()
    }

    /// Keeps jobs and files in `storage` instead of what the settings name (tests, embedding).
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.webhooks = self.webhooks.with_storage(Arc::clone(&storage));
        self.storage = storage;
        self
    }

    /// Other delays between webhook attempts than `webhooks::delivery::RETRY_DELAYS` (tests).
    pub fn with_webhook_retry_delays(mut self, delays: Vec<std::time::Duration>) -> Self {
        self.webhooks = self.webhooks.with_retry_delays(delays);
        self
    }

    pub fn webhooks(&self) -> &WebhookSender {
        &self.webhooks
    }

    pub fn upload_signer(&self) -> &UploadSigner {
        &self.upload_signer
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
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

    pub fn busy_log(&self) -> &BusyLog {
        &self.busy_log
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn job_queue(&self) -> &JobQueue {
        &self.job_queue
    }

    pub fn job_cancels(&self) -> &JobCancels {
        &self.job_cancels
    }

    pub fn rate_limits(&self) -> Option<&RateLimits> {
        self.rate_limits.as_deref()
    }
}

/// Where the service keeps its objects, as the settings say: S3 when a bucket is named, else the
/// directory `FF_DATA_DIR`. Nothing is created or contacted until the first call.
pub fn storage_from_config(config: &ServiceConfig) -> Arc<dyn Storage> {
    match &config.s3_bucket {
        #[cfg(feature = "s3")]
        Some(bucket) => Arc::new(S3Storage::new(S3Settings {
            bucket: bucket.clone(),
            prefix: config.s3_prefix.clone(),
            endpoint: config.s3_endpoint.clone(),
            force_path_style: config.s3_force_path_style,
            region: None,
            static_credentials: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
        })),
        // Without the `s3` feature the configuration refuses FF_S3_BUCKET, so a bucket never gets here.
        _ => Arc::new(FsStorage::new(&config.data_dir)),
    }
}
