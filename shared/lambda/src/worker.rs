//! The worker function: runs jobs when S3 says their record was written, and batch inputs when
//! an object is put under `inbox/` (see `ff_service::batch`; `.json` sidecars are no-ops).
//!
//! Job create writes `jobs/<id>.json`; S3 invokes this function with an ObjectCreated event for it.
//! Every later update of the record (running, progress, completed) raises the same event again, and
//! S3 may deliver any event twice or late: `run_job` claims a job only while it is queued, so all of
//! those are cheap no-ops and a job runs once.
//!
//! An invocation fails (and Lambda retries it, twice, for S3's asynchronous invocations) only when
//! storage could not be reached or a record was contended, where a retry can help. Everything about
//! a job itself ends in its record, so a retry never re-runs a job that already finished.
//!
//! An invocation that dies (its 900 s are up, out of memory) leaves its job or segment `running`
//! under a lease nobody renews, and nothing would invoke a worker for it again. So the function
//! also takes a scheduled event (EventBridge, every few minutes in the template): it looks through
//! `jobs/` for running work whose lease passed and queued work nobody claimed for an hour, and
//! writes each record again unchanged ([`scan_leases`]); that write's S3 event invokes a worker,
//! which takes the work over.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use ff_service::events::handle_object_event;
pub use ff_service::events::RecordReport;
use ff_service::jobs::lease::LeaseScanner;
use ff_service::jobs::store::JobStore;
use ff_service::AppState;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::Value;

/// Queued work is nudged only after this long unclaimed: its first S3 event may wait in the
/// worker's own event queue that long (the template's MaximumEventAgeInSeconds) when its
/// concurrency is used up, and a nudge would only queue a duplicate behind it.
pub const QUEUED_NUDGE_AFTER: Duration = Duration::from_secs(3600);

/// What a scheduled scan did: the records written again, so that their events invoke a worker.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ScanReport {
    pub nudged: Vec<String>,
}

/// What the worker did with each record; the function's answer, visible in `cargo lambda invoke`
/// and in the Lambda console's test results.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct WorkerReport {
    pub records: Vec<RecordReport>,
}

/// A failure a retry of the whole event can fix. Jobs that already ended are skipped on the retry.
#[derive(Debug)]
pub struct WorkerError {
    key: String,
    action: &'static str,
    detail: String,
}

impl fmt::Display for WorkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` could not be processed ({}); a retry can help", self.key, self.detail)
    }
}

impl std::error::Error for WorkerError {}

impl From<WorkerError> for Diagnostic {
    fn from(error: WorkerError) -> Self {
        // The type is what Lambda shows and what alarms can filter on.
        Diagnostic { error_type: "Retryable".into(), error_message: error.to_string() }
    }
}

/// Runs the worker function until the Lambda runtime stops it.
pub async fn run_worker() -> Result<(), crate::Error> {
    ff_pipeline::allocator::keep_large_buffers_out_of_the_heap();
    crate::init_tracing();
    let state = crate::state_from_env()?;
    tracing::info!(function = "worker", "function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let state = state.clone();
        async move { handle_worker_event(&state, event.payload).await }
    }))
    .await
}

/// One invocation of the worker: an S3 event (it has `Records`) or a scheduled event (EventBridge,
/// `source` `aws.events`); anything else is an `InvalidEvent` error.
pub async fn handle_worker_event(state: &AppState, payload: Value) -> Result<Value, Diagnostic> {
    let invalid = |message: String| Diagnostic { error_type: "InvalidEvent".into(), error_message: message };
    if is_scheduled(&payload) {
        let report = scan_leases(state).await?;
        return serde_json::to_value(report).map_err(|error| invalid(error.to_string()));
    }
    let event: S3Event = serde_json::from_value(payload)
        .map_err(|error| invalid(format!("neither an S3 event nor a scheduled event: {error}")))?;
    let report = handle_s3_event(state, event).await?;
    serde_json::to_value(report).map_err(|error| invalid(error.to_string()))
}

/// An EventBridge scheduled event.
pub fn is_scheduled(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
        && payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

/// Writes again the records of running work whose lease passed and of queued work unclaimed for
/// [`QUEUED_NUDGE_AFTER`], so their S3 events invoke workers that take them over.
pub async fn scan_leases(state: &AppState) -> Result<ScanReport, WorkerError> {
    let failed = |detail: String| WorkerError { key: "jobs/".into(), action: "scan", detail };
    let store = JobStore::new(Arc::clone(state.storage()));
    let mut scanner = LeaseScanner::new(store, state.config().job_lease).with_queued_after(QUEUED_NUDGE_AFTER);
    let due = scanner.due(false).await.map_err(|error| failed(error.to_string()))?;
    let mut report = ScanReport::default();
    // One record that cannot be written does not keep the others waiting.
    for work in &due {
        match scanner.nudge(work).await {
            Ok(Some(key)) => {
                tracing::warn!(%key, "nudged work whose worker is gone");
                report.nudged.push(key);
            }
            Ok(None) => {}
            Err(error) => tracing::error!(?work, %error, "could not nudge work whose worker is gone"),
        }
    }
    Ok(report)
}

/// Handles every record of one S3 event, in order. All records are attempted even when one fails,
/// so a retry has as little left to do as possible.
pub async fn handle_s3_event(state: &AppState, event: S3Event) -> Result<WorkerReport, WorkerError> {
    let mut report = WorkerReport::default();
    let mut retryable: Option<WorkerError> = None;
    for record in &event.records {
        match handle_record(state, record).await {
            Ok(line) => report.records.push(line),
            Err(error) => {
                tracing::error!(%error, "S3 record failed");
                report.records.push(RecordReport {
                    key: error.key.clone(),
                    action: error.action,
                    outcome: format!("error: {}", error.detail),
                });
                retryable.get_or_insert(error);
            }
        }
    }
    match retryable {
        Some(error) => Err(error),
        None => Ok(report),
    }
}

async fn handle_record(state: &AppState, record: &S3EventRecord) -> Result<RecordReport, WorkerError> {
    let raw_key = record.s3.object.key.as_deref().unwrap_or_default();
    let event_name = record.event_name.as_deref().unwrap_or_default();
    let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
    // The routing (job records, batch inputs, the rest ignored) is shared with the self-hosted
    // webhook, so both deployments treat the same event the same way.
    handle_object_event(state, event_name, bucket, raw_key).await.map_err(|error| WorkerError {
        key: error.key,
        action: error.action,
        detail: error.detail,
    })
}
