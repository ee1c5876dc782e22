//! S3 object events: what the Lambda worker receives from S3 and what POST /api/v1/events/s3
//! receives from a MinIO webhook, routed the same way: `jobs/<id>.json` runs the job,
//! `jobs/<id>/segments/<n>.json` runs that segment of it, `inbox/<name>` runs the batch, anything
//! else is ignored with the reason.
//!
//! Both deliver at least once and sometimes late; `run_job` and `process_inbox_object` make
//! repeats no-ops, so this module only has to route.

use serde::Serialize;

use crate::batch::{decode_s3_key, inbox_name, process_inbox_object, strip_key_prefix, BatchOutcome};
use crate::jobs::segment_run::run_segment;
use crate::jobs::segments::segment_of_key;
use crate::jobs::worker::{run_job, RunOutcome};
use crate::jobs::{is_job_id, JOBS_PREFIX};
use crate::run::Failure;
use crate::state::AppState;

/// What was done with one record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RecordReport {
    /// The object key, decoded and without FF_S3_PREFIX.
    pub key: String,
    /// `job`, `segment`, `batch`, or `ignored` (with the reason in `outcome`).
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

/// Where one object event goes, decided from its name, bucket and key alone (no storage read), so
/// the routing can be tested and fuzzed on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `jobs/<id>.json`: run that job. `key` is decoded and relative to FF_S3_PREFIX.
    Job { key: String, id: String },
    /// `jobs/<id>/segments/<n>.json`: run that segment of the job.
    Segment { key: String, job: String, index: u32 },
    /// `inbox/<name>`: process that batch input.
    Batch { key: String },
    /// Anything else, with the reason; `key` is as far decoded as routing got.
    Ignored { key: String, reason: String },
}

/// Routes an event on `bucket` for `raw_key` (URL-encoded, as S3 and MinIO send it). `our_bucket`
/// is FF_S3_BUCKET (`None` with filesystem storage), `prefix` FF_S3_PREFIX.
pub fn route_object_event(
    event_name: &str,
    bucket: &str,
    raw_key: &str,
    our_bucket: Option<&str>,
    prefix: &str,
) -> Route {
    let ignored = |key: &str, reason: String| Route::Ignored { key: key.to_string(), reason };
    if !event_name.trim_start_matches("s3:").starts_with("ObjectCreated:") {
        return ignored(raw_key, format!("event `{event_name}` is not an ObjectCreated event"));
    }
    // A trigger on another bucket is a deployment mistake: its keys must not touch our jobs. With
    // filesystem storage (a local run replaying recorded events) FF_DATA_DIR stands for the bucket.
    if our_bucket.is_some_and(|ours| ours != bucket) {
        return ignored(raw_key, format!("bucket `{bucket}` is not FF_S3_BUCKET"));
    }
    let Some(decoded) = decode_s3_key(raw_key) else {
        return ignored(raw_key, "the key is not valid URL-encoded UTF-8".into());
    };
    let Some(key) = strip_key_prefix(&decoded, prefix) else {
        return ignored(&decoded, format!("the key is outside FF_S3_PREFIX `{prefix}`"));
    };
    if let Some(id) = job_record_id(key) {
        return Route::Job { key: key.to_string(), id: id.to_string() };
    }
    if let Some((job, index)) = segment_of_key(key) {
        return Route::Segment { key: key.to_string(), job: job.to_string(), index };
    }
    if inbox_name(key).is_some() {
        return Route::Batch { key: key.to_string() };
    }
    ignored(key, "neither a job record (jobs/<id>.json), a segment's (jobs/<id>/segments/<n>.json) nor a batch input (inbox/<name>)".into())
}

/// Routes one object event and runs what it names. `event_name` may carry MinIO's `s3:` prefix.
pub async fn handle_object_event(
    state: &AppState,
    event_name: &str,
    bucket: &str,
    raw_key: &str,
) -> Result<RecordReport, RecordError> {
    let config = state.config();
    match route_object_event(event_name, bucket, raw_key, config.s3_bucket.as_deref(), &config.s3_prefix) {
        Route::Job { key, id } => {
            let outcome = run_job(state, &id).await.map(|outcome| describe_job(&outcome));
            report(&key, "job", outcome)
        }
        Route::Segment { key, job, index } => {
            let outcome = run_segment(state, &job, index).await.map(|outcome| describe_job(&outcome));
            report(&key, "segment", outcome)
        }
        Route::Batch { key } => {
            let outcome = process_inbox_object(state, &key).await.map(|outcome| describe_batch(&outcome));
            report(&key, "batch", outcome)
        }
        Route::Ignored { key, reason } => {
            tracing::info!(%key, %reason, "S3 record ignored");
            Ok(RecordReport { key, action: "ignored", outcome: reason })
        }
    }
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
        RunOutcome::Cut { segments } => format!("cut into {segments} segments"),
        RunOutcome::SegmentDone { index } => format!("segment {index} completed"),
        RunOutcome::SegmentRetried { index, code } => format!("segment {index} failed ({code}), queued again"),
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

    #[test]
    fn events_route_by_name_bucket_prefix_and_key() {
        let id = "0192f1a2-3b4c-7d5e-8f60-718293a4b5c6";
        let route = |name: &str, bucket: &str, key: &str| route_object_event(name, bucket, key, Some("ff"), "pre");
        assert_eq!(
            route("s3:ObjectCreated:Put", "ff", &format!("pre/jobs%2F{id}.json")),
            Route::Job { key: format!("jobs/{id}.json"), id: id.into() }
        );
        assert_eq!(
            route("ObjectCreated:Copy", "ff", "pre/inbox/a+b.jpg"),
            Route::Batch { key: "inbox/a b.jpg".into() }
        );
        let ignored = |route: Route| matches!(route, Route::Ignored { .. });
        assert_eq!(
            route("ObjectCreated:Put", "ff", &format!("pre/jobs/{id}/segments/12.json")),
            Route::Segment { key: format!("jobs/{id}/segments/12.json"), job: id.into(), index: 12 }
        );
        assert!(ignored(route("ObjectCreated:Put", "ff", &format!("pre/jobs/{id}/segments/12.mp4"))));
        assert!(ignored(route("ObjectRemoved:Delete", "ff", "pre/inbox/a.jpg")));
        assert!(ignored(route("ObjectCreated:Put", "other", "pre/inbox/a.jpg")));
        assert!(ignored(route("ObjectCreated:Put", "ff", "inbox/a.jpg")));
        assert!(ignored(route("ObjectCreated:Put", "ff", "pre/inbox/a%ZZ.jpg")));
        assert!(ignored(route("ObjectCreated:Put", "ff", "pre/outbox/a.jpg")));
    }
}
