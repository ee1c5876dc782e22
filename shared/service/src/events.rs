//! S3 object events: what the Lambda worker receives from S3 and what POST /api/v1/events/s3
//! receives from a MinIO webhook, routed the same way: `jobs/<id>.json` runs the job,
//! `inbox/<name>` runs the batch, anything else is ignored with the reason.
//!
//! Both deliver at least once and sometimes late; `run_job` and `process_inbox_object` make
//! repeats no-ops, so this module only has to route.

use serde::Serialize;

use crate::batch::{decode_s3_key, inbox_name, process_inbox_object, strip_key_prefix, BatchOutcome};
use crate::jobs::worker::{run_job, RunOutcome};
use crate::jobs::{is_job_id, JOBS_PREFIX};
use crate::run::Failure;
use crate::state::AppState;

/// What was done with one record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    /// The object key, decoded and without FF_S3_PREFIX.
    pub key: String,
    /// `job`, `batch`, or `ignored` (with the reason in `outcome`).
    pub action: &'static str,
    /// `completed`, `failed: <code>`, `skipped: <why>`, ..., or why it was ignored.
    pub outcome: String,
}

/// A record that failed in a way a redelivery can fix (storage unreachable, a contended record).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    pub key: String,
    pub action: &'static str,
    pub detail: String,
}

/// Routes one object event. `event_name` may carry MinIO's `s3:` prefix.
pub async fn handle_object_event(
    state: &AppState,
    event_name: &str,
    bucket: &str,
    raw_key: &str,
) -> Result<RecordReport, RecordError> {
    let ignored = |key: &str, why: String| {
        tracing::info!(%key, reason = %why, "S3 record ignored");
        Ok(RecordReport { key: key.to_string(), action: "ignored", outcome: why })
    };
    if !event_name.trim_start_matches("s3:").starts_with("ObjectCreated:") {
        return ignored(raw_key, format!("event `{event_name}` is not an ObjectCreated event"));
    }
    let config = state.config();
    // A trigger on another bucket is a deployment mistake: its keys must not touch our jobs. With
    // filesystem storage (a local run replaying recorded events) FF_DATA_DIR stands for the bucket.
    if config.s3_bucket.as_deref().is_some_and(|ours| ours != bucket) {
        return ignored(raw_key, format!("bucket `{bucket}` is not FF_S3_BUCKET"));
    }
    let Some(decoded) = decode_s3_key(raw_key) else {
        return ignored(raw_key, "the key is not valid URL-encoded UTF-8".into());
    };
    let Some(key) = strip_key_prefix(&decoded, &config.s3_prefix) else {
        return ignored(&decoded, format!("the key is outside FF_S3_PREFIX `{}`", config.s3_prefix));
    };
    if let Some(job_id) = job_record_id(key) {
        let outcome = run_job(state, job_id).await.map(|outcome| describe_job(&outcome));
        return report(key, "job", outcome);
    }
    if inbox_name(key).is_some() {
        let outcome = process_inbox_object(state, key).await.map(|outcome| describe_batch(&outcome));
        return report(key, "batch", outcome);
    }
    ignored(key, "neither a job record (jobs/<id>.json) nor a batch input (inbox/<name>)".into())
}

/// A record's report; a failure a redelivery can fix is the caller's to retry, any other (a
/// damaged record stays damaged however often it is read) is reported and not retried.
fn report(key: &str, action: &'static str, outcome: Result<String, Failure>) -> Result<RecordReport, RecordError> {
    match outcome {
        Ok(outcome) => Ok(RecordReport { key: key.to_string(), action, outcome }),
        Err(Failure::Retry(error)) => Err(RecordError { key: key.to_string(), action, detail: error.to_string() }),
        Err(Failure::Abort(error)) => {
            tracing::error!(%key, %error, action, "S3 record cannot be processed");
            Ok(RecordReport { key: key.to_string(), action, outcome: format!("error: {error}") })
        }
    }
}

fn describe_job(outcome: &RunOutcome) -> String {
    match outcome {
        RunOutcome::Completed { .. } => "completed".into(),
        RunOutcome::Failed { code } => format!("failed: {code}"),
        RunOutcome::Cancelled => "cancelled".into(),
        RunOutcome::Skipped { status: Some(status) } => format!("skipped: {}", status.as_str()),
        RunOutcome::Skipped { status: None } => "skipped: no such job".into(),
        RunOutcome::Superseded { status } => format!("superseded: {}", status.as_str()),
    }
}

fn describe_batch(outcome: &BatchOutcome) -> String {
    match outcome {
        BatchOutcome::Completed { output } => format!("completed: {output}"),
        BatchOutcome::Failed { code, .. } => format!("failed: {code}"),
        BatchOutcome::Duplicate => "skipped: already processed".into(),
        BatchOutcome::Ignored { reason } => format!("skipped: {reason}"),
    }
}

/// The job id of a record key `jobs/<id>.json`; `None` for a job's files and anything else.
pub fn job_record_id(key: &str) -> Option<&str> {
    let id = key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json")?;
    is_job_id(id).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_job_records_name_a_job() {
        let id = "0192f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        assert_eq!(job_record_id(&format!("jobs/{id}.json")), Some(id));
        assert_eq!(job_record_id(&format!("jobs/{id}/inputs/target.png")), None);
        assert_eq!(job_record_id("jobs/not-an-id.json"), None);
        assert_eq!(job_record_id(&format!("inbox/{id}.json")), None);
    }
}
