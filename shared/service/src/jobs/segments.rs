//! Long videos in segments (FF_SEGMENT_SECONDS): a video job's run cuts the target at its
//! keyframes into segments (`Engine::plan_segments`, which also judges the whole video with the
//! NSFW gate, once) and hands the job over to them:
//!
//! ```text
//! jobs/<id>.json               running, `segments: { total, completed }`, no worker while they run
//! jobs/<id>/segments/<n>.json  a `Segment` record: queued -> running (own lease) -> completed
//! jobs/<id>/segments/<n>.mp4   its video (no audio), until the segments are joined
//! ```
//!
//! Any worker runs a segment: on Lambda the creation of each segment record is an S3 event that
//! invokes a worker, so segments run in parallel invocations; in `ff serve` the cut queues them
//! for the in-process workers, and the lease scan finds those left behind. A segment run
//! processes its frames exactly as the whole run would (`VideoRequest::segment`), stores its
//! video, and marks itself in the job's `completed` by a conditional write. The mark that
//! completes the set leaves the job all done with no worker; a run of the job (its record's S3
//! event, the local queue, the lease scan) then claims it under a lease of its own, joins the
//! videos by stream copy with the audio added once, and completes the job.
//!
//! Progress: the job's record counts the frames of finished segments; GET /jobs/{id} adds the
//! running segments' frames ([`with_live_progress`]). A cancelled, failed or deleted job stops its
//! segments at their next look at it (about once a second). A failed segment goes back to
//! `queued` once, for any worker; its second failure fails the job with its code.

use std::time::Duration;

use ff_pipeline::engine::VideoSegment;
use ff_pipeline::video::Keyframe;
use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::store::{JobStore, Record, StoreError};
use super::{files_prefix, idle_seconds, is_job_id, lease_expired, now_rfc3339, Job, JobFailure, JobStatus};
use crate::storage::{ListRequest, StorageError};

/// The most segments one job is cut into: a longer video gets longer segments.
pub const MAX_SEGMENTS: u32 = ff_pipeline::video::MAX_SEGMENTS as u32;

/// Segment records read at once.
const READ_CONCURRENCY: usize = 8;

/// What the job's record keeps about its segments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSegments {
    /// How many segments the video was cut into.
    pub total: u32,
    /// The segments finished, by index, in order.
    pub completed: Vec<u32>,
}

impl JobSegments {
    pub fn new(total: u32) -> Self {
        Self { total, completed: Vec::new() }
    }

    pub fn all_done(&self) -> bool {
        self.completed.len() as u32 >= self.total
    }

    /// Marks segment `index` finished; `false` if it already was (a repeated run of it).
    pub(super) fn mark(&mut self, index: u32) -> bool {
        match self.completed.binary_search(&index) {
            Ok(_) => false,
            Err(at) => {
                self.completed.insert(at, index);
                true
            }
        }
    }
}

/// A segment's record, `jobs/<id>/segments/<index>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub job: String,
    pub index: u32,
    /// Frames of the target, inside the job's trim range.
    pub frames: (u64, u64),
    /// Where its decoding starts (see `VideoSegment::keyframe`).
    #[serde(default)]
    pub keyframe: Option<Keyframe>,
    /// `queued`, `running`, `completed` or `failed` (after its second failure).
    pub status: JobStatus,
    /// How many times a worker started it.
    pub attempts: u32,
    /// Frames encoded by the run in progress.
    pub frames_done: u64,
    /// Why its last run failed.
    pub error: Option<JobFailure>,
    pub updated_at: String,
    pub revision: u64,
    /// As a job's: `<FF_WORKER_ID>/<claim>` of the run that has it, and until when.
    pub worker: Option<String>,
    pub lease_expires_at: Option<String>,
}

impl Record for Segment {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }
}

impl Segment {
    pub fn new(job: &str, index: u32, segment: VideoSegment) -> Self {
        Self {
            job: job.to_string(),
            index,
            frames: segment.frames,
            keyframe: segment.keyframe,
            status: JobStatus::Queued,
            attempts: 0,
            frames_done: 0,
            error: None,
            updated_at: now_rfc3339(),
            revision: 0,
            worker: None,
            lease_expires_at: None,
        }
    }

    pub fn next(&self) -> Self {
        Self { updated_at: now_rfc3339(), ..self.clone() }
    }

    /// What the pipeline is asked to make of it.
    pub fn video_segment(&self) -> VideoSegment {
        VideoSegment { frames: self.frames, keyframe: self.keyframe }
    }

    pub(super) fn frame_count(&self) -> u64 {
        self.frames.1.saturating_sub(self.frames.0)
    }

    /// Whether a worker should try to claim it at `now`: queued (for `queued_after` unless
    /// `all_queued`), running with its lease passed, or failed (its job still runs).
    pub fn is_due(&self, all_queued: bool, queued_after: Duration, now: OffsetDateTime) -> bool {
        match self.status {
            JobStatus::Queued => {
                all_queued || idle_seconds(&self.updated_at).is_some_and(|idle| idle >= queued_after.as_secs() as i64)
            }
            JobStatus::Running => lease_expired(self.lease_expires_at.as_deref(), now).unwrap_or(true),
            // Of a job still running (the only ones scanned): its run died before the job's
            // failure was written, and a run of it writes that now.
            JobStatus::Failed => true,
            _ => false,
        }
    }
}

pub fn segments_prefix(job: &str) -> String {
    format!("{}segments/", files_prefix(job))
}

pub fn record_key(job: &str, index: u32) -> String {
    format!("{}{index}.json", segments_prefix(job))
}

/// Where segment `index`'s video is kept until the join.
pub fn part_key(job: &str, index: u32, extension: &str) -> String {
    format!("{}{index}.{extension}", segments_prefix(job))
}

/// The job id and index of a segment record key `jobs/<id>/segments/<n>.json`.
pub fn segment_of_key(key: &str) -> Option<(&str, u32)> {
    let (id, rest) = key.strip_prefix(super::JOBS_PREFIX)?.split_once("/segments/")?;
    let digits = rest.strip_suffix(".json")?;
    let canonical =
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    let index = digits.parse::<u32>().ok().filter(|index| canonical && *index < MAX_SEGMENTS)?;
    is_job_id(id).then_some((id, index))
}

/// Writes a queued record for each segment, keeping records already there (an earlier cut of the
/// same job made the same segments); how many segments there are.
pub async fn create_records(store: &JobStore, job: &str, segments: &[VideoSegment]) -> Result<u32, StoreError> {
    for (index, &segment) in (0u32..).zip(segments) {
        match store.create_record(&record_key(job, index), &Segment::new(job, index, segment)).await {
            Ok(()) | Err(StoreError::Storage(StorageError::PreconditionFailed { .. })) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(segments.len() as u32)
}

/// Whether the segment records already made for the job (an earlier, interrupted cut) have the
/// frames of `segments`.
pub async fn records_match(store: &JobStore, job: &str, segments: &[VideoSegment]) -> Result<bool, StoreError> {
    let existing = records(store, job).await?;
    Ok(existing
        .iter()
        .all(|record| segments.get(record.index as usize).is_some_and(|segment| segment.frames == record.frames)))
}

/// The job's segment records, in order of index.
pub async fn records(store: &JobStore, job: &str) -> Result<Vec<Segment>, StoreError> {
    let keys = keys_under(store, job).await?;
    let keys: Vec<String> = keys.into_iter().filter(|key| segment_of_key(key).is_some()).collect();
    let reads = keys.into_iter().map(|key| {
        let store = store.clone();
        async move { Ok::<_, StoreError>(store.load_record::<Segment>(&key).await?.map(|(segment, _)| segment)) }
    });
    let mut segments: Vec<Segment> = futures_util::stream::iter(reads)
        .buffered(READ_CONCURRENCY)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    segments.sort_by_key(|segment| segment.index);
    Ok(segments)
}

/// Removes the job's segment records and videos (once joined).
pub async fn delete_all(store: &JobStore, job: &str) -> Result<(), StoreError> {
    for key in keys_under(store, job).await? {
        store.storage().delete(&key).await?;
    }
    Ok(())
}

async fn keys_under(store: &JobStore, job: &str) -> Result<Vec<String>, StoreError> {
    let prefix = segments_prefix(job);
    let mut keys = Vec::new();
    let mut start_after = None;
    loop {
        let request = ListRequest { start_after: start_after.clone(), limit: 1000, shallow: true };
        let listing = store.storage().list(&prefix, request).await?;
        keys.extend(listing.objects.into_iter().map(|object| object.key));
        match listing.next_start_after {
            Some(next) => start_after = Some(next),
            None => return Ok(keys),
        }
    }
}

/// The job with the frames of its running segments counted in: what GET /jobs/{id} shows while a
/// job runs in segments (the record itself counts finished segments only).
pub async fn with_live_progress(store: &JobStore, mut job: Job) -> Result<Job, StoreError> {
    let Some(segments) = job.segments.clone() else {
        return Ok(job);
    };
    if job.status != JobStatus::Running || segments.all_done() {
        return Ok(job);
    }
    let records = records(store, &job.id).await?;
    let done: u64 = records
        .iter()
        .map(|segment| match segments.completed.binary_search(&segment.index).is_ok() {
            true => segment.frame_count(),
            false => segment.frames_done.min(segment.frame_count()),
        })
        .sum();
    let total = records.iter().map(Segment::frame_count).sum::<u64>().max(job.frames_total.unwrap_or(0));
    job.frames_done = Some(done);
    job.frames_total = Some(total);
    job.progress = segments_percent(done, total);
    Ok(job)
}

/// 10 % when the segments start, 90 % when the last frame of the last is encoded.
pub(super) fn segments_percent(done: u64, total: u64) -> u8 {
    (10.0 + 80.0 * (done as f64 / total.max(1) as f64).clamp(0.0, 1.0)).round() as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::new_job_id;

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn segment_keys_name_their_job_and_index() {
        let id = new_job_id();
        assert_eq!(segment_of_key(&record_key(&id, 7)), Some((id.as_str(), 7)));
        assert_eq!(segment_of_key(&format!("jobs/{id}/segments/0.json")), Some((id.as_str(), 0)));
        for bad in [
            format!("jobs/{id}/segments/07.json"),
            format!("jobs/{id}/segments/x.json"),
            format!("jobs/{id}/segments/.json"),
            format!("jobs/{id}/segments/3.mp4"),
            format!("jobs/{id}/segments/{MAX_SEGMENTS}.json"),
            format!("jobs/{id}.json"),
            "jobs/not-an-id/segments/1.json".to_string(),
        ] {
            assert_eq!(segment_of_key(&bad), None, "{bad}");
        }
        assert!(part_key(&id, 2, "mp4").ends_with("/segments/2.mp4"));
    }

    #[test]
    fn marks_are_counted_once() {
        let mut segments = JobSegments::new(3);
        assert!(segments.mark(2) && segments.mark(0));
        assert!(!segments.mark(2));
        assert!(!segments.all_done());
        assert!(segments.mark(1));
        assert!(segments.all_done());
        assert_eq!(segments.completed, vec![0, 1, 2]);
    }

    #[test]
    fn due_segments_are_queued_ones_left_for_a_lease_and_running_ones_past_theirs() {
        let now = OffsetDateTime::now_utc();
        let mut queued = Segment::new(&new_job_id(), 0, VideoSegment { frames: (0, 30), keyframe: None });
        assert!(queued.is_due(true, LEASE, now));
        assert!(!queued.is_due(false, LEASE, now));
        queued.updated_at = "2000-01-01T00:00:00Z".into();
        assert!(queued.is_due(false, LEASE, now));
        let mut running = queued.next();
        running.status = JobStatus::Running;
        running.lease_expires_at = crate::jobs::lease_until(&running.updated_at, LEASE);
        assert!(!running.is_due(false, LEASE, now));
        assert!(running.is_due(false, LEASE, now + time::Duration::seconds(61)));
    }
}
