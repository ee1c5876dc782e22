//! Sending a job's webhook events: in the background, at least once, retried with growing delays
//! (about ten minutes over five attempts by default), each attempt recorded in the job's record.
//!
//! An event is queued when a worker starts a job, writes its progress (at most once a second per
//! job) or ends it, and when DELETE cancels it; the body is the record as it was then. Each
//! attempt is a fresh POST with the same `webhook-id`, a new `webhook-timestamp` and its
//! signature, through the [`GuardedResolver`] (public addresses only, unless allowed), without
//! following redirects, within 5 s. A 2xx ends the delivery.
//!
//! Deliveries live in the process: in `ff serve` they outlive the request that caused them; in a
//! Lambda function they go on only while its execution environment does (Lambda freezes it between
//! invocations and may end it), so there an attempt's retries are best-effort.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::guard::{AllowedHosts, GuardedResolver};
use super::signing::WebhookSecret;
use super::target::{WebhookDelivery, WebhookEvent};
use crate::jobs::store::{JobStore, Update};
use crate::jobs::{now_rfc3339, Job};
use crate::storage::Storage;

/// Delays before each attempt: at once, then 5 s, 30 s, 2 min and 7.5 min later (about ten
/// minutes from the first attempt to the last).
pub const RETRY_DELAYS: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(450),
];

/// The time one attempt has, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts in flight at once; more wait for a place.
const CONCURRENT_ATTEMPTS: usize = 16;
/// Deliveries a record keeps (the latest).
const RECORDED_DELIVERIES: usize = 50;
/// Progress events of one job are at least this far apart.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Sends webhook events; cheap to clone. Without FF_WEBHOOK_SECRET it sends nothing (and job
/// creation refuses webhooks, so there is nothing to send).
#[derive(Clone)]
pub struct WebhookSender {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    secret: WebhookSecret,
    allowed: AllowedHosts,
    storage: Arc<dyn Storage>,
    delays: Vec<Duration>,
    attempts: Semaphore,
    last_progress: Mutex<HashMap<String, Instant>>,
}

impl WebhookSender {
    pub fn new(secret: Option<WebhookSecret>, allowed: AllowedHosts, storage: Arc<dyn Storage>) -> Self {
        Self { inner: secret.map(|secret| Inner::new(secret, allowed, storage, RETRY_DELAYS.to_vec())) }
    }

    /// The same sender recording attempts in `storage` instead.
    pub fn with_storage(&self, storage: Arc<dyn Storage>) -> Self {
        let inner = self
            .inner
            .as_ref()
            .map(|inner| Inner::new(inner.secret.clone(), inner.allowed.clone(), storage, inner.delays.clone()));
        Self { inner }
    }

    /// The same sender with other delays between attempts (tests, embedding).
    pub fn with_retry_delays(&self, delays: Vec<Duration>) -> Self {
        let inner = self
            .inner
            .as_ref()
            .map(|inner| Inner::new(inner.secret.clone(), inner.allowed.clone(), Arc::clone(&inner.storage), delays));
        Self { inner }
    }

    /// Whether webhooks can be sent (FF_WEBHOOK_SECRET is set).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `event` for `job` if its webhook asks for it, and returns at once.
    pub fn notify(&self, job: &Job, event: WebhookEvent) {
        let (Some(inner), Some(webhook)) = (&self.inner, &job.webhook) else { return };
        if !webhook.wants(event) || !inner.progress_due(&job.id, event) {
            return;
        }
        let body = match serde_json::to_vec(job) {
            Ok(body) => Bytes::from(body),
            Err(error) => return tracing::error!(job = %job.id, %error, "a job record could not be encoded"),
        };
        let delivery = Delivery {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            job_id: job.id.clone(),
            url: webhook.url.clone(),
            event,
            body,
        };
        tokio::spawn(Arc::clone(inner).deliver(delivery));
    }
}

/// One event of one job, to be delivered.
struct Delivery {
    id: String,
    job_id: String,
    url: String,
    event: WebhookEvent,
    body: Bytes,
}

impl Inner {
    fn new(
        secret: WebhookSecret,
        allowed: AllowedHosts,
        storage: Arc<dyn Storage>,
        delays: Vec<Duration>,
    ) -> Arc<Self> {
        let attempts = Semaphore::new(CONCURRENT_ATTEMPTS);
        Arc::new(Self { secret, allowed, storage, delays, attempts, last_progress: Mutex::default() })
    }

    /// Progress events at most once a second per job; a job's end forgets it.
    fn progress_due(&self, job_id: &str, event: WebhookEvent) -> bool {
        let mut last = self.last_progress.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            WebhookEvent::Progress => {
                let now = Instant::now();
                let due = last.get(job_id).is_none_or(|sent| now.duration_since(*sent) >= PROGRESS_INTERVAL);
                if due {
                    last.insert(job_id.to_string(), now);
                }
                due
            }
            WebhookEvent::Completed => {
                last.remove(job_id);
                true
            }
            WebhookEvent::Start => true,
        }
    }

    async fn deliver(self: Arc<Self>, delivery: Delivery) {
        for (index, delay) in self.delays.iter().enumerate() {
            tokio::time::sleep(*delay).await;
            let outcome = self.attempt(&delivery).await;
            let delivered = matches!(outcome, Ok(status) if (200..300).contains(&status));
            let record = WebhookDelivery {
                id: delivery.id.clone(),
                event: delivery.event,
                attempt: index as u32 + 1,
                at: now_rfc3339(),
                status: outcome.as_ref().ok().copied(),
                error: outcome.err(),
            };
            if !self.record(&delivery.job_id, record).await || delivered {
                return;
            }
        }
        tracing::warn!(job = %delivery.job_id, event = delivery.event.as_str(), "a webhook was not delivered");
    }

    /// One POST; the receiver's status, or why there was none.
    async fn attempt(&self, delivery: &Delivery) -> Result<u16, String> {
        let _place = self.attempts.acquire().await.map_err(|e| e.to_string())?;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = self.secret.sign(&delivery.id, timestamp, &delivery.body);
        let (allowed, url, id, body) =
            (self.allowed.clone(), delivery.url.clone(), delivery.id.clone(), delivery.body.clone());
        let sent = tokio::task::spawn_blocking(move || post(allowed, &url, &id, timestamp, &signature, &body)).await;
        sent.map_err(|e| e.to_string())?
    }

    /// Appends the attempt to the job's record; false when the record is gone (stop trying).
    /// The update time stays: a delivery is not the job's progress.
    async fn record(&self, job_id: &str, delivery: WebhookDelivery) -> bool {
        let store = JobStore::new(Arc::clone(&self.storage));
        let update = store
            .update(job_id, |job| {
                let mut next = job.clone();
                next.webhook_deliveries.push(delivery.clone());
                let excess = next.webhook_deliveries.len().saturating_sub(RECORDED_DELIVERIES);
                next.webhook_deliveries.drain(..excess);
                Some(next)
            })
            .await;
        match update {
            Ok(Update::Missing) => false,
            Ok(_) => true,
            Err(error) => {
                tracing::warn!(job = %job_id, %error, "a webhook attempt could not be recorded");
                true
            }
        }
    }
}

/// The POST itself, blocking: ureq connects only to the addresses the guard let through, and
/// does not follow redirects (a 3xx counts as a failure).
fn post(
    allowed: AllowedHosts,
    url: &str,
    id: &str,
    timestamp: i64,
    signature: &str,
    body: &[u8],
) -> Result<u16, String> {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .max_redirects(0)
        .http_status_as_error(false)
        .build();
    let agent = ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        GuardedResolver { allowed },
    );
    let response = agent
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", &timestamp.to_string())
        .header("webhook-signature", signature)
        .send(body)
        .map_err(|error| match error {
            ureq::Error::HostNotFound => "no address of the host may be called".to_string(),
            other => other.to_string(),
        })?;
    Ok(response.status().as_u16())
}
