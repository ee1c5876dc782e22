//! The worker function: runs jobs when S3 says their record was written.
//!
//! Job create writes `jobs/<id>.json`; S3 invokes this function with an ObjectCreated event for it.
//! Every later update of the record (running, progress, completed) raises the same event again, and
//! S3 may deliver any event twice or late: `run_job` claims a job only while it is queued, so all of
//! those are cheap no-ops and a job runs once.
//!
//! An invocation fails (and Lambda retries it, twice, for S3's asynchronous invocations) only when
//! storage could not be reached or a record was contended, where a retry can help. Everything about
//! a job itself ends in its record, so a retry never re-runs a job that already finished.

use std::fmt;
use std::sync::Arc;

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use ff_service::jobs::store::StoreError;
use ff_service::jobs::{is_job_id, run_job, RunOutcome, JOBS_PREFIX};
use ff_service::AppState;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::Serialize;

/// What the worker did with each record; the function's answer, visible in `cargo lambda invoke`
/// and in the Lambda console's test results.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct WorkerReport {
    pub records: Vec<RecordReport>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    /// The object key, decoded and without FF_S3_PREFIX.
    pub key: String,
    /// `job` (a job record) or `ignored` (anything else, with the reason in `outcome`).
    pub action: &'static str,
    /// `completed`, `failed: <code>`, `cancelled`, `skipped: <status>`, `superseded: <status>`, or why
    /// it was ignored.
    pub outcome: String,
}

/// A failure a retry of the whole event can fix. Jobs that already ended are skipped on the retry.
#[derive(Debug)]
pub struct WorkerError {
    key: String,
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
    crate::init_tracing();
    let state = crate::state_from_env()?;
    tracing::info!(function = "worker", "function ready");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| {
        let state = state.clone();
        async move { handle_s3_event(&state, event.payload).await }
    }))
    .await
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
                    action: "job",
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
    let raw_key = record.s3.object.key.clone().unwrap_or_default();
    let ignored = |key: String, why: String| {
        tracing::info!(%key, reason = %why, "S3 record ignored");
        Ok(RecordReport { key, action: "ignored", outcome: why })
    };
    let event_name = record.event_name.as_deref().unwrap_or_default();
    if !event_name.starts_with("ObjectCreated:") {
        return ignored(raw_key, format!("event `{event_name}` is not an ObjectCreated event"));
    }
    let config = state.config();
    let bucket = record.s3.bucket.name.as_deref().unwrap_or_default();
    // A trigger on another bucket is a deployment mistake: its keys must not touch our jobs. With
    // filesystem storage (a local run replaying recorded events) FF_DATA_DIR stands for the bucket.
    if config.s3_bucket.as_deref().is_some_and(|ours| ours != bucket) {
        return ignored(raw_key, format!("bucket `{bucket}` is not FF_S3_BUCKET"));
    }
    let Some(decoded) = decode_s3_key(&raw_key) else {
        return ignored(raw_key, "the key is not valid URL-encoded UTF-8".into());
    };
    let Some(key) = strip_prefix(&decoded, &config.s3_prefix) else {
        return ignored(decoded, format!("the key is outside FF_S3_PREFIX `{}`", config.s3_prefix));
    };
    let Some(job_id) = job_record_id(key) else {
        return ignored(key.to_string(), "neither a job record (jobs/<id>.json) nor a batch upload".into());
    };
    let outcome = run_job(Arc::clone(state.storage()), Arc::clone(state.engine()), job_id).await;
    match outcome {
        Ok(outcome) => Ok(RecordReport { key: key.to_string(), action: "job", outcome: describe(&outcome) }),
        Err(error) if retry_can_help(&error) => Err(WorkerError { key: key.to_string(), detail: error.to_string() }),
        Err(error) => {
            // A damaged record stays damaged however often it is read: report it, do not retry.
            tracing::error!(%key, %error, "job record cannot be processed");
            Ok(RecordReport { key: key.to_string(), action: "job", outcome: format!("error: {error}") })
        }
    }
}

fn retry_can_help(error: &StoreError) -> bool {
    match error {
        StoreError::Storage(error) => error.is_transient(),
        StoreError::Contended { .. } => true,
        StoreError::Corrupt { .. } => false,
    }
}

fn describe(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed { .. } => "completed".into(),
        RunOutcome::Failed { code } => format!("failed: {code}"),
        RunOutcome::Cancelled => "cancelled".into(),
        RunOutcome::Skipped { status: Some(status) } => format!("skipped: {}", status.as_str()),
        RunOutcome::Skipped { status: None } => "skipped: no such job".into(),
        RunOutcome::Superseded { status } => format!("superseded: {}", status.as_str()),
    }
}

/// The job id of a record key `jobs/<id>.json`; `None` for a job's files (`jobs/<id>/...`) and
/// anything else.
fn job_record_id(key: &str) -> Option<&str> {
    let id = key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json")?;
    is_job_id(id).then_some(id)
}

/// The key relative to FF_S3_PREFIX, or `None` when it lies outside it.
fn strip_prefix<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    if prefix.is_empty() {
        return Some(key);
    }
    key.strip_prefix(prefix)?.strip_prefix('/')
}

/// S3 event keys are URL-encoded the way HTML forms are: `+` for a space, `%XX` for other bytes.
fn decode_s3_key(key: &str) -> Option<String> {
    let bytes = key.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = key.get(index + 1..index + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            byte => decoded.push(byte),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_url_decoded() {
        assert_eq!(decode_s3_key("inbox/a+b%C3%A9.png").as_deref(), Some("inbox/a bé.png"));
        assert_eq!(decode_s3_key("jobs/x.json").as_deref(), Some("jobs/x.json"));
        assert_eq!(decode_s3_key("a%2Bb").as_deref(), Some("a+b"));
        assert_eq!(decode_s3_key("bad%2"), None);
        assert_eq!(decode_s3_key("bad%zz"), None);
        assert_eq!(decode_s3_key("%FF"), None);
    }

    #[test]
    fn only_job_records_name_a_job() {
        let id = "0192f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        assert_eq!(job_record_id(&format!("jobs/{id}.json")), Some(id));
        assert_eq!(job_record_id(&format!("jobs/{id}/inputs/target.png")), None);
        assert_eq!(job_record_id(&format!("jobs/{id}/result.json")), None);
        assert_eq!(job_record_id("jobs/not-an-id.json"), None);
        assert_eq!(job_record_id(&format!("inbox/{id}.json")), None);
    }

    #[test]
    fn the_prefix_is_a_whole_path_segment() {
        assert_eq!(strip_prefix("jobs/a.json", ""), Some("jobs/a.json"));
        assert_eq!(strip_prefix("ff/jobs/a.json", "ff"), Some("jobs/a.json"));
        assert_eq!(strip_prefix("ffx/jobs/a.json", "ff"), None);
        assert_eq!(strip_prefix("jobs/a.json", "ff"), None);
    }
}
