//! Durable asynchronous jobs: a record per job in storage, workers that run them, and the
//! `/api/v1/jobs` routes.
//!
//! Layout in storage (either backend):
//!
//! ```text
//! jobs/<id>.json                 the job record (JSON, see `Job`)
//! jobs/<id>/inputs/source-0.jpg  uploaded inputs (jobs created from a multipart form)
//! jobs/<id>/inputs/target.png
//! jobs/<id>/result.<ext>         the output, once completed
//! jobs/<id>/segments/<n>.json    a segment's record, while a long video runs in segments
//! jobs/<id>/segments/<n>.<ext>   a segment's video, until the segments are joined
//! owners/<key>/active/<id>       a job created under an API key, until counted as finished (see `quota`)
//! ```
//!
//! The record is the only source of truth about a job. It changes only through conditional writes
//! (`If-Match` on its etag, see `store::JobStore::update`), so of two workers racing for a queued
//! job exactly one claims it, and a cancellation can never be overwritten by a worker's progress
//! report. Ids are UUIDv7: they sort by creation time, so a listing of `jobs/` is oldest first.

pub mod cancel;
pub mod claimed;
pub mod create;
pub mod idempotency;
pub mod lease;
pub mod queue;
pub mod quota;
pub mod segment_run;
pub mod segments;
pub mod store;
pub mod watch;
pub mod worker;

use ff_pipeline::video::VideoInfo;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::webhooks::target::{Webhook, WebhookDelivery};

pub use cancel::JobCancels;
pub use queue::{JobQueue, Work};
pub use store::JobStore;
pub use worker::{run_job, RunOutcome, Workers};

/// Where job records and files live.
pub const JOBS_PREFIX: &str = "jobs/";

/// How many times a job may be started. A job whose worker died is retried once, then failed
/// with `worker_lost`: a second death is more likely the job's fault than bad luck.
pub const MAX_ATTEMPTS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    /// No worker will touch a job in this state again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// Why a job failed, with the same stable codes as the synchronous API's errors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    pub code: String,
    pub message: String,
}

/// What a new job's record carries about who made it and how long it is kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewJobPolicy {
    /// The API key's name (see `Job::owner`).
    pub owner: Option<String>,
    /// FF_RESULT_TTL_HOURS (see `Job::result_ttl_hours`).
    pub result_ttl_hours: Option<u32>,
    pub webhook: Option<Webhook>,
}

impl NewJobPolicy {
    fn apply(&self, job: &mut Job) {
        job.owner = self.owner.clone();
        job.result_ttl_hours = self.result_ttl_hours;
        job.webhook = self.webhook.clone();
    }
}

/// The objects a job reads: uploaded ones under `jobs/<id>/inputs/`, or objects that were already
/// in storage when the job was created from JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobInputs {
    pub sources: Vec<String>,
    pub target: String,
}

/// The job record, stored as `jobs/<id>.json` and returned by the API as is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Job {
    pub id: String,
    pub status: JobStatus,
    /// 0-100.
    pub progress: u8,
    /// Video jobs, updated about once a second while frames are processed: frames encoded so far
    /// of `frames_total`, frames per second since the start, and the seconds left at that rate.
    /// `None` for image jobs and before the first frame.
    #[serde(default)]
    pub frames_done: Option<u64>,
    #[serde(default)]
    pub frames_total: Option<u64>,
    #[serde(default)]
    pub fps: Option<f64>,
    #[serde(default)]
    pub eta_seconds: Option<f64>,
    /// RFC 3339 UTC timestamps.
    pub created_at: String,
    pub updated_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// How many times a worker started it.
    pub attempts: u32,
    pub error: Option<JobFailure>,
    pub inputs: JobInputs,
    /// The processing options as the client gave them (FaceFusion names), validated at creation.
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
    /// `jpg`, `png`, `webp`, `bmp`, or a video container (`mp4`, `mov`, ...); `None` keeps the
    /// target's format (a video's container).
    pub output_format: Option<String>,
    /// Key of the result, once completed.
    pub output: Option<String>,
    /// An uploaded video target as probed when the job was created (size, frame rate, frame
    /// count, duration), so the worker does not probe it again. `None` for images and for targets
    /// named by a JSON job, which the worker probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub target_video: Option<VideoInfo>,
    /// The name of the API key that created it; `None` on an open API. Only that key sees the job.
    #[serde(default)]
    pub owner: Option<String>,
    /// How long the job is kept once final (FF_RESULT_TTL_HOURS when it was created); `None` keeps
    /// it until deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_ttl_hours: Option<u32>,
    /// When a final job, its result and inputs are removed (RFC 3339 UTC): the finish plus
    /// `result_ttl_hours`. `None` while the job runs, and when nothing expires.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Where and for which events the job's webhook goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// The latest delivery attempts of its webhook events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhook_deliveries: Vec<WebhookDelivery>,
    /// Incremented by every write, so no two versions of a record have the same bytes.
    pub revision: u64,
    /// The claim of the worker running it, `<FF_WORKER_ID>/<fresh id per attempt>`, so a worker
    /// that lost its claim (taken over, or cancelled) can tell the record is no longer its own.
    pub worker: Option<String>,
    /// While running: until when the job is its worker's (RFC 3339 UTC). Every write of the worker
    /// moves it FF_JOB_LEASE_SECS ahead; once it has passed, any worker may take the job over.
    #[serde(default)]
    pub lease_expires_at: Option<String>,
    /// A video cut into segments (FF_SEGMENT_SECONDS) that run as records of their own
    /// (`segments::Segment`): how many, and which are done. While they run, `worker` is `None`;
    /// once all are done, a run claims the job (`worker` and lease) to join them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<segments::JobSegments>,
}

impl Job {
    pub fn new(id: String, inputs: JobInputs, options: serde_json::Value, output_format: Option<String>) -> Self {
        let now = now_rfc3339();
        Self {
            id,
            status: JobStatus::Queued,
            progress: 0,
            frames_done: None,
            frames_total: None,
            fps: None,
            eta_seconds: None,
            created_at: now.clone(),
            updated_at: now,
            started_at: None,
            finished_at: None,
            attempts: 0,
            error: None,
            inputs,
            options,
            output_format,
            output: None,
            target_video: None,
            owner: None,
            result_ttl_hours: None,
            expires_at: None,
            webhook: None,
            webhook_deliveries: Vec::new(),
            revision: 0,
            worker: None,
            lease_expires_at: None,
            segments: None,
        }
    }

    /// The next version of this record: the revision and update time move on.
    pub fn next(&self) -> Self {
        let mut next = self.clone();
        next.revision += 1;
        next.updated_at = now_rfc3339();
        next
    }

    pub fn finish(mut self, status: JobStatus, error: Option<JobFailure>) -> Self {
        self.status = status;
        self.error = error;
        self.finished_at = Some(self.updated_at.clone());
        self.expires_at = self.result_ttl_hours.and_then(|hours| {
            let finished = OffsetDateTime::parse(&self.updated_at, &Rfc3339).ok()?;
            (finished + time::Duration::hours(i64::from(hours))).format(&Rfc3339).ok()
        });
        self.worker = None;
        self.lease_expires_at = None;
        if status == JobStatus::Completed {
            self.progress = 100;
        }
        self
    }

    /// Forgets the progress of an earlier attempt.
    pub fn reset_progress(&mut self) {
        self.progress = 0;
        self.frames_done = None;
        self.frames_total = None;
        self.fps = None;
        self.eta_seconds = None;
    }

    /// Whether the job is final and past its `expires_at`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        let expires = self.expires_at.as_deref().and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
        self.status.is_final() && expires.is_some_and(|expires| expires <= now)
    }

    /// Moves the lease `lease` past this version's update time.
    pub fn renew_lease(&mut self, lease: std::time::Duration) {
        self.lease_expires_at = lease_until(&self.updated_at, lease);
    }

    /// Whether the lease has passed at `now`; `None` for a record without one (written before
    /// leases existed), which the caller judges by its idle time instead.
    pub fn lease_expired(&self, now: OffsetDateTime) -> Option<bool> {
        lease_expired(self.lease_expires_at.as_deref(), now)
    }

    /// Seconds since the record was last written, if its timestamp parses.
    pub fn idle_seconds(&self) -> Option<i64> {
        idle_seconds(&self.updated_at)
    }
}

/// The end of a lease `lease` long from `updated_at` (RFC 3339; now if it does not parse).
pub fn lease_until(updated_at: &str, lease: std::time::Duration) -> Option<String> {
    let updated = OffsetDateTime::parse(updated_at, &Rfc3339).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let until = updated + time::Duration::seconds(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX / 2));
    until.format(&Rfc3339).ok()
}

/// Whether a lease ending at `until` has passed at `now`; `None` without one.
pub fn lease_expired(until: Option<&str>, now: OffsetDateTime) -> Option<bool> {
    let until = OffsetDateTime::parse(until?, &Rfc3339).ok()?;
    Some(until <= now)
}

/// Seconds since `updated_at`, if it parses.
pub fn idle_seconds(updated_at: &str) -> Option<i64> {
    let updated = OffsetDateTime::parse(updated_at, &Rfc3339).ok()?;
    Some((OffsetDateTime::now_utc() - updated).whole_seconds())
}

pub fn record_key(id: &str) -> String {
    format!("{JOBS_PREFIX}{id}.json")
}

/// Everything stored for a job besides its record.
pub fn files_prefix(id: &str) -> String {
    format!("{JOBS_PREFIX}{id}/")
}

/// A new, time-ordered job id.
pub fn new_job_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Whether `id` has the shape of a job id. Checked before any storage call, so a path parameter
/// can never name anything but a job record.
pub fn is_job_id(id: &str) -> bool {
    uuid::Uuid::try_parse(id).is_ok_and(|uuid| uuid.hyphenated().to_string() == id)
}

pub fn now_rfc3339() -> String {
    // Formatting a valid UTC time as RFC 3339 cannot fail; the fallback only keeps this panic-free.
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialise_as_their_lowercase_names() {
        for status in
            [JobStatus::Queued, JobStatus::Running, JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled]
        {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(JobStatus::parse("done"), None);
    }

    #[test]
    fn only_canonical_uuids_are_job_ids() {
        let id = new_job_id();
        assert!(is_job_id(&id));
        assert!(!is_job_id(&id.to_uppercase()));
        assert!(!is_job_id(&id.replace('-', "")));
        assert!(!is_job_id("../secrets"));
        assert!(!is_job_id(""));
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let first = new_job_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_job_id() > first);
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let inputs = JobInputs { sources: vec!["a.jpg".into()], target: "b.jpg".into() };
        let job = Job::new(new_job_id(), inputs, serde_json::json!({"face_swapper_model": "inswapper_128"}), None);
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
        assert!(job.idle_seconds().unwrap() <= 1);
    }

    #[test]
    fn finishing_completed_sets_full_progress_and_drops_the_claim() {
        let inputs = JobInputs { sources: vec![], target: "t.png".into() };
        let mut job = Job::new(new_job_id(), inputs, serde_json::json!({}), None);
        job.worker = Some("w".into());
        let done = job.next().finish(JobStatus::Completed, None);
        assert_eq!((done.progress, done.worker.as_deref(), done.revision), (100, None, 1));
        assert_eq!(done.finished_at.as_deref(), Some(done.updated_at.as_str()));
    }
}
