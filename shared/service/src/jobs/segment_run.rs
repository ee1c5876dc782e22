//! One segment's run (see `segments` for the whole design): claim its record, process its frames
//! exactly as the whole run would, store its video, mark it done in the job's record, and join
//! all of them when its mark was the last.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ff_pipeline::engine::VideoSegment;
use ff_pipeline::video::Progress;
use time::OffsetDateTime;

use super::cancel::Registration;
use super::claimed::{announce, drive, failure_of, prepare_run, Reporter, RunOutcome, Step, Watcher};
use super::queue::Work;
use super::segments::{delete_all, part_key, record_key, segments_percent, JobSegments, Segment};
use super::store::{JobStore, StoreError, Update};
use super::{lease_expired, lease_until, Job, JobFailure, JobStatus, MAX_ATTEMPTS};
use crate::error::{storage_code, ApiError};
use crate::run::{execute, Failure, Product, Target};
use crate::state::AppState;
use crate::storage::StorageError;

/// Runs segment `index` of job `job_id` if it is queued (or its lease passed) and the job still
/// runs; does nothing otherwise, so duplicate triggers run it once. See the module's description.
pub async fn run_segment(state: &AppState, job_id: &str, index: u32) -> Result<RunOutcome, Failure> {
    let store = JobStore::new(Arc::clone(state.storage()));
    let claim = format!("{}/{}", state.config().worker_id, uuid::Uuid::new_v4().simple());
    let lease = state.config().job_lease;
    let key = record_key(job_id, index);
    let decide = |segment: &Segment| decide_claim(segment, &claim, lease, OffsetDateTime::now_utc());
    let segment = match store.update_record(&key, decide).await.map_err(Failure::from)? {
        Update::Missing => return Ok(RunOutcome::Skipped { status: None }),
        // Failed for good: its job's failure may not have been written (storage trouble then), so
        // it is written now; a no-op when it was.
        Update::Written(segment) | Update::Unchanged(segment) if segment.status == JobStatus::Failed => {
            let failure = segment.error.clone().unwrap_or_else(|| lost_failure(&segment));
            fail_job(state, &store, job_id, index, &failure).await.map_err(Failure::from)?;
            return Ok(RunOutcome::Failed { code: failure.code });
        }
        Update::Unchanged(segment) => return Ok(RunOutcome::Skipped { status: Some(segment.status) }),
        Update::Written(segment) => segment,
    };
    tracing::info!(job = %job_id, segment = index, attempt = segment.attempts, "segment started");
    let cancel = state.job_cancels().register(&format!("{job_id}/segments/{index}"));
    let run = SegmentRun {
        store,
        state: state.clone(),
        job_id: job_id.to_string(),
        index,
        key,
        claim,
        lease,
        cancel,
        progress_written: Mutex::new(Instant::now()),
    };
    let job = match run.store.load(job_id).await.map_err(Failure::from)? {
        // Marked done in the job by a run that died before it could say so here: done.
        Some((job, _)) if job.segments.as_ref().is_some_and(|segments| segments.completed.contains(&index)) => {
            run.end(JobStatus::Completed).await.map_err(Failure::from)?;
            return Ok(RunOutcome::SegmentDone { index });
        }
        Some((job, _)) if job.status == JobStatus::Running && job.segments.is_some() => job,
        other => {
            // The job was cancelled, failed by another segment, or deleted: nothing to do.
            run.end(JobStatus::Cancelled).await.map_err(Failure::from)?;
            return Ok(match other {
                Some((job, _)) if job.status != JobStatus::Running => RunOutcome::Superseded { status: job.status },
                _ => RunOutcome::Cancelled,
            });
        }
    };
    let outcome = run.execute(&job, segment.video_segment()).await.map_err(Failure::from);
    match &outcome {
        Ok(outcome) => tracing::info!(job = %job_id, segment = index, ?outcome, "segment ended"),
        Err(error) => {
            tracing::error!(job = %job_id, segment = index, %error, "segment interrupted by a storage failure")
        }
    }
    outcome
}

/// The claim decision for one version of a segment's record at `now`, as a job's.
fn decide_claim(segment: &Segment, claim: &str, lease: Duration, now: OffsetDateTime) -> Option<Segment> {
    let passed = || lease_expired(segment.lease_expires_at.as_deref(), now).unwrap_or(true);
    match segment.status {
        JobStatus::Queued => Some(claimed(segment, claim, lease)),
        JobStatus::Running if passed() && segment.attempts < MAX_ATTEMPTS => {
            tracing::warn!(job = %segment.job, segment = segment.index, lost = ?segment.worker, "taking over a segment whose lease passed");
            Some(claimed(segment, claim, lease))
        }
        JobStatus::Running if passed() => {
            let mut failed = segment.next();
            failed.status = JobStatus::Failed;
            failed.error = Some(lost_failure(segment));
            failed.worker = None;
            failed.lease_expires_at = None;
            Some(failed)
        }
        _ => None,
    }
}

fn claimed(segment: &Segment, claim: &str, lease: Duration) -> Segment {
    let mut next = segment.next();
    next.status = JobStatus::Running;
    next.attempts += 1;
    next.frames_done = 0;
    next.worker = Some(claim.to_string());
    next.lease_expires_at = lease_until(&next.updated_at, lease);
    next
}

fn lost_failure(segment: &Segment) -> JobFailure {
    JobFailure {
        code: "worker_lost".into(),
        message: format!(
            "the worker running segment {} stopped {} times; it is not retried again",
            segment.index, segment.attempts
        ),
    }
}

/// Fails the job (if it still runs, and segment `index` is not among its finished ones) with a
/// segment's failure, and removes its segments; its other segments stop when they next look at it.
/// A record contended by the other segments' marks is tried again a few times, after a pause.
async fn fail_job(
    state: &AppState,
    store: &JobStore,
    job_id: &str,
    index: u32,
    failure: &JobFailure,
) -> Result<(), StoreError> {
    let decide = |job: &Job| {
        let done = job.segments.as_ref().is_some_and(|segments| segments.completed.contains(&index));
        (job.status == JobStatus::Running && !done).then(|| job.next().finish(JobStatus::Failed, Some(failure.clone())))
    };
    let mut pause = Duration::from_millis(200);
    let update = loop {
        match store.update(job_id, decide).await {
            Err(StoreError::Contended { .. }) if pause < Duration::from_secs(4) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => break other?,
        }
    };
    if let Update::Written(job) = update {
        announce(state, &job);
        if let Err(error) = delete_all(store, job_id).await {
            tracing::warn!(job = %job_id, %error, "could not remove the segments of a failed job");
        }
    }
    Ok(())
}

/// How often a segment writes its frame count at most (or a third of the lease, if shorter). Every
/// write of a record under `jobs/` is an S3 event that invokes the Lambda worker, for nothing
/// while the segment runs; with a long video's segments all running at once, once a second each
/// would be tens of invocations a second.
const SEGMENT_PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One claimed run of a segment.
struct SegmentRun {
    store: JobStore,
    state: AppState,
    job_id: String,
    index: u32,
    /// The segment's record.
    key: String,
    claim: String,
    lease: Duration,
    cancel: Registration,
    /// When the frame count was last written.
    progress_written: Mutex<Instant>,
}

/// What marking a finished segment in the job's record did.
enum Marked {
    /// Other segments are still running (or this one was already marked by an earlier run).
    More,
    /// This mark completed the set: the job is ready to be joined.
    Last,
    /// The job is no longer running (its status), or is gone (`None`).
    Ended(Option<JobStatus>),
}

impl SegmentRun {
    async fn execute(&self, job: &Job, segment: VideoSegment) -> Result<RunOutcome, StoreError> {
        let frames = segment.frames;
        let mut run = match prepare_run(&self.state, &self.store, job).await {
            Ok(run) => run,
            Err(Failure::Abort(error)) => return self.failed(failure_of(error)).await,
            Err(Failure::Retry(StoreError::Storage(error))) => return self.failed(storage_failure(&error)).await,
            Err(Failure::Retry(error)) => return Err(error),
        };
        let Target::Video(video) = &mut run.target else {
            return self.failed(failure_of(ApiError::internal("a segment of an image job"))).await;
        };
        video.segment = Some(segment);
        let expected = frames.1 - frames.0;
        let first = Progress { frames_done: 0, frames_total: expected, fps: 0.0, elapsed: Duration::ZERO, eta: None };
        let engine = Arc::clone(self.state.engine());
        let work =
            move |report: Reporter, cancel: Arc<std::sync::atomic::AtomicBool>| execute(&engine, run, report, &cancel);
        let product = match drive(self, Arc::clone(self.cancel.flag()), Some(first), work).await {
            Ok((product, _)) => product,
            Err(error) if error.is_cancelled() => return Ok(RunOutcome::Cancelled),
            Err(error) => return self.failed(failure_of(error)).await,
        };
        let Product::Video { workspace, output } = product else {
            return self.failed(failure_of(ApiError::internal("a segment made an image"))).await;
        };
        // The join must have exactly the frames of a run in one piece.
        if output.frames != expected {
            let message = format!("segment {} made {} frames where {expected} were planned", self.index, output.frames);
            return self.failed(failure_of(ApiError::internal(message))).await;
        }
        let part = part_key(&self.job_id, self.index, workspace.container().extension());
        if let Err(error) = self.store.storage().put_file(&part, workspace.output()).await {
            return self.failed(storage_failure(&error)).await;
        }
        let marked = self.mark_done(expected).await?;
        if !matches!(marked, Marked::Ended(_)) {
            self.end(JobStatus::Completed).await?;
        }
        match marked {
            Marked::More => Ok(RunOutcome::SegmentDone { index: self.index }),
            Marked::Last => {
                // In ff serve the join is queued here; on Lambda the job record's write just made
                // is the S3 event that invokes the worker that joins, in an invocation of its own.
                let _ = self.state.job_queue().try_push(Work::Job(self.job_id.clone()));
                Ok(RunOutcome::SegmentDone { index: self.index })
            }
            Marked::Ended(status) => {
                // Whoever ended the job removed its files before this video existed.
                let _ = self.store.storage().delete(&part).await;
                Ok(match status {
                    Some(status) if status != JobStatus::Cancelled => RunOutcome::Superseded { status },
                    _ => RunOutcome::Cancelled,
                })
            }
        }
    }

    /// Marks this segment finished in the job's record, with its frames. The job then waits, with
    /// no worker, for a run that claims it to join the segments (see `worker::decide_claim`).
    async fn mark_done(&self, frames: u64) -> Result<Marked, StoreError> {
        let update = self
            .store
            .update(&self.job_id, |job| {
                if job.status != JobStatus::Running {
                    return None;
                }
                let mut next = job.next();
                let segments = next.segments.as_mut()?;
                if !segments.mark(self.index) {
                    return None;
                }
                next.frames_done = Some(next.frames_done.unwrap_or(0) + frames);
                next.progress = segments_percent(next.frames_done.unwrap_or(0), next.frames_total.unwrap_or(0));
                Some(next)
            })
            .await?;
        Ok(match update {
            Update::Written(job) => {
                announce(&self.state, &job);
                match job.segments.as_ref().is_some_and(JobSegments::all_done) {
                    true => Marked::Last,
                    false => Marked::More,
                }
            }
            Update::Unchanged(job) if job.status == JobStatus::Running => Marked::More,
            Update::Unchanged(job) => Marked::Ended(Some(job.status)),
            Update::Missing => Marked::Ended(None),
        })
    }

    /// A run of this segment failed: back to `queued` for any worker after a first failure, the
    /// job failed with it after a second.
    async fn failed(&self, failure: JobFailure) -> Result<RunOutcome, StoreError> {
        tracing::warn!(job = %self.job_id, segment = self.index, code = %failure.code, "segment failed");
        let update = self
            .store
            .update_record(&self.key, |segment: &Segment| {
                self.owns(segment).then(|| {
                    let mut next = segment.next();
                    next.status = if segment.attempts < MAX_ATTEMPTS { JobStatus::Queued } else { JobStatus::Failed };
                    next.error = Some(failure.clone());
                    next.worker = None;
                    next.lease_expires_at = None;
                    next
                })
            })
            .await?;
        let code = failure.code.clone();
        match update {
            Update::Written(segment) if segment.status == JobStatus::Queued => {
                let _ = self.state.job_queue().try_push(Work::Segment { job: self.job_id.clone(), index: self.index });
                Ok(RunOutcome::SegmentRetried { index: self.index, code })
            }
            Update::Written(_) => {
                fail_job(&self.state, &self.store, &self.job_id, self.index, &failure).await?;
                Ok(RunOutcome::Failed { code })
            }
            Update::Unchanged(_) | Update::Missing => Ok(RunOutcome::Cancelled),
        }
    }

    /// Whether the frame count is due to be written again (and if so, counts this write).
    fn progress_due(&self) -> bool {
        let mut written = self.progress_written.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = written.elapsed() >= SEGMENT_PROGRESS_EVERY.min(self.lease / 3);
        if due {
            *written = Instant::now();
        }
        due
    }

    fn owns(&self, segment: &Segment) -> bool {
        segment.status == JobStatus::Running && segment.worker.as_deref() == Some(self.claim.as_str())
    }

    /// Ends the segment's record in `status` (its frame count complete when `Completed`), if it is
    /// still this run's.
    async fn end(&self, status: JobStatus) -> Result<Step, StoreError> {
        self.advance(|mut next| {
            if status == JobStatus::Completed {
                next.frames_done = next.frame_count();
            }
            next.status = status;
            next.worker = None;
            next.lease_expires_at = None;
            next
        })
        .await
    }

    /// Writes the next version of the segment's record if it is still this run's.
    async fn advance(&self, change: impl Fn(Segment) -> Segment) -> Result<Step, StoreError> {
        let update = self
            .store
            .update_record(&self.key, |segment: &Segment| {
                self.owns(segment).then(|| {
                    let mut next = change(segment.next());
                    if next.status == JobStatus::Running {
                        next.lease_expires_at = lease_until(&next.updated_at, self.lease);
                    }
                    next
                })
            })
            .await?;
        Ok(match update {
            Update::Written(_) => Step::Owned,
            Update::Unchanged(segment) => Step::Lost(Some(segment.status)),
            Update::Missing => Step::Lost(None),
        })
    }

    async fn still_owned(&self) -> Result<Step, StoreError> {
        Ok(match self.store.load_record::<Segment>(&self.key).await? {
            Some((segment, _)) if self.owns(&segment) => Step::Owned,
            Some((segment, _)) => Step::Lost(Some(segment.status)),
            None => Step::Lost(None),
        })
    }
}

impl Watcher for SegmentRun {
    fn label(&self) -> String {
        format!("{}/segments/{}", self.job_id, self.index)
    }

    fn lease(&self) -> Duration {
        self.lease
    }

    /// The segment's own record as a job's run treats its record (its frame count written at most
    /// every [`SEGMENT_PROGRESS_EVERY`]), then the job's: a job that no longer runs (cancelled,
    /// failed by another segment, deleted) stops the segment too.
    async fn tick(&self, moved: Option<Progress>, renew: bool) -> Result<Step, StoreError> {
        let own = match moved {
            Some(progress) if self.progress_due() => {
                self.advance(|mut next| {
                    next.frames_done = progress.frames_done;
                    next
                })
                .await?
            }
            // Frames moved since the last write, which is at most a third of a lease ago.
            Some(_) => self.still_owned().await?,
            None if renew => self.advance(|next| next).await?,
            None => self.still_owned().await?,
        };
        if let Step::Lost(_) = own {
            return Ok(own);
        }
        Ok(match self.store.load(&self.job_id).await? {
            Some((job, _)) if job.status == JobStatus::Running => Step::Owned,
            Some((job, _)) => Step::Lost(Some(job.status)),
            None => Step::Lost(None),
        })
    }
}

fn storage_failure(error: &StorageError) -> JobFailure {
    JobFailure { code: storage_code(error).into(), message: error.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::new_job_id;

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn segments_are_claimed_once_and_taken_over_once_their_lease_passed() {
        let now = OffsetDateTime::now_utc();
        let queued = Segment::new(&new_job_id(), 0, VideoSegment { frames: (0, 30), keyframe: None });
        let running = decide_claim(&queued, "a", LEASE, now).unwrap();
        assert_eq!((running.status, running.attempts, running.worker.as_deref()), (JobStatus::Running, 1, Some("a")));
        assert!(decide_claim(&running, "b", LEASE, now).is_none(), "its lease holds");
        let later = now + time::Duration::seconds(61);
        let taken = decide_claim(&running, "b", LEASE, later).unwrap();
        assert_eq!((taken.attempts, taken.worker.as_deref()), (2, Some("b")));
        let failed = decide_claim(&taken, "c", LEASE, later + time::Duration::seconds(61)).unwrap();
        assert_eq!((failed.status, failed.error.unwrap().code.as_str()), (JobStatus::Failed, "worker_lost"));
        let mut done = running.clone();
        done.status = JobStatus::Completed;
        assert!(decide_claim(&done, "b", LEASE, later).is_none());
    }
}
