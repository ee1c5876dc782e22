//! Running jobs: `run_job` (one job, idempotent, shared by every kind of worker), the bounded
//! queue of `ff serve`, its in-process workers and their scan for orphaned jobs.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::claimed::{remove_segments, ClaimedRun};
pub use super::claimed::{RunOutcome, PROGRESS_INTERVAL};
use super::lease::{lease_passed, LeaseScanner};
use super::queue::Work;
use super::segment_run::run_segment;
use super::segments::JobSegments;
use super::store::{JobStore, Update};
use super::{Job, JobFailure, JobStatus, MAX_ATTEMPTS};
use crate::limiter::Busy;
use crate::run::Failure;
use crate::state::AppState;
use crate::webhooks::WebhookEvent;

/// How often a worker waiting for a processing slot (all taken by /process requests) looks again.
const SLOT_POLL: Duration = Duration::from_millis(100);

/// Runs one job if it is queued (or its worker's lease has passed), and does nothing otherwise, so
/// any number of duplicate or late triggers for one job run it once.
///
/// The job is claimed by a conditional write of `running` with a fresh claim id and a lease; of
/// workers racing for it, only one write succeeds. Between steps the worker writes its progress the same
/// way, which is also how it notices a cancellation: the write finds a record that is no longer
/// its own. A video run also stops within one frame when DELETE in this process sets its flag in
/// `AppState::job_cancels`. Everything about the job itself ends in its record as `failed` with a
/// stable code; what comes back as a [`Failure`] is storage trouble (`Retry`: a later trigger can
/// run it) or a record too damaged to write a failure into (`Abort`).
pub async fn run_job(state: &AppState, job_id: &str) -> Result<RunOutcome, Failure> {
    let store = JobStore::new(Arc::clone(state.storage()));
    let claim = format!("{}/{}", state.config().worker_id, uuid::Uuid::new_v4().simple());
    let lease = state.config().job_lease;
    let decide = |job: &Job| decide_claim(job, &claim, lease, OffsetDateTime::now_utc());
    let job = match store.update(job_id, decide).await.map_err(Failure::from)? {
        Update::Missing => return Ok(RunOutcome::Skipped { status: None }),
        Update::Unchanged(job) => return Ok(RunOutcome::Skipped { status: Some(job.status) }),
        Update::Written(job) if job.status == JobStatus::Failed => {
            if job.segments.is_some() {
                remove_segments(&store, &job.id).await;
            }
            return Ok(RunOutcome::Failed { code: failure_code(&job) });
        }
        Update::Written(job) => job,
    };
    tracing::info!(job = %job.id, attempt = job.attempts, "job started");
    state.webhooks().notify(&job, WebhookEvent::Start);
    let cancel = state.job_cancels().register(&job.id);
    let run = ClaimedRun { store, state: state.clone(), id: job.id.clone(), claim, lease, cancel };
    let outcome = run.execute(&job).await.map_err(Failure::from);
    match &outcome {
        Ok(outcome) => tracing::info!(job = %job_id, ?outcome, "job ended"),
        Err(error) => tracing::error!(job = %job_id, %error, "job interrupted by a storage failure"),
    }
    outcome
}

/// The claim decision for one version of the record at `now`.
fn decide_claim(job: &Job, claim: &str, lease: Duration, now: OffsetDateTime) -> Option<Job> {
    match job.status {
        JobStatus::Queued => Some(claimed(job, claim, lease)),
        // Its segments run under leases of their own; once all are done, any run takes it to join
        // them, without counting an attempt: the join is a step of the run that cut it.
        JobStatus::Running if job.worker.is_none() && job.segments.is_some() => {
            job.segments.as_ref().is_some_and(JobSegments::all_done).then(|| {
                let mut next = claimed(job, claim, lease);
                next.attempts = job.attempts;
                next
            })
        }
        JobStatus::Running if lease_passed(job, now) => Some(after_worker_lost(job, claim, lease)),
        _ => None,
    }
}

fn claimed(job: &Job, claim: &str, lease: Duration) -> Job {
    let mut next = job.next();
    next.status = JobStatus::Running;
    next.attempts += 1;
    next.worker = Some(claim.to_string());
    next.started_at = Some(next.updated_at.clone());
    next.renew_lease(lease);
    if next.segments.is_none() {
        next.reset_progress();
    }
    next.error = None;
    next
}

/// The next version of a job whose worker's lease passed: claimed by `claim` if it has attempts
/// left, else failed with `worker_lost`.
pub fn after_worker_lost(job: &Job, claim: &str, lease: Duration) -> Job {
    if job.attempts < MAX_ATTEMPTS {
        tracing::warn!(job = %job.id, lost = ?job.worker, attempts = job.attempts, "taking over a job whose lease passed");
        claimed(job, claim, lease)
    } else {
        let message = format!("the worker running this job stopped {} times; it is not retried again", job.attempts);
        job.next().finish(JobStatus::Failed, Some(JobFailure { code: "worker_lost".into(), message }))
    }
}

fn failure_code(job: &Job) -> String {
    job.error.as_ref().map_or_else(|| "internal".to_string(), |e| e.code.clone())
}

/// The in-process workers of `ff serve`.
#[derive(Debug)]
pub struct Workers {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts FF_WORKERS workers and the scan that feeds them what no one else is running: at
    /// start-up every queued job (whoever queued it in memory may be gone), then, about twice a
    /// lease while this server's queue is empty, jobs queued for a whole lease and running jobs
    /// whose lease passed, whichever server left them. With FF_WORKERS=0 it starts nothing: jobs
    /// then belong to an external worker.
    pub fn start(state: &AppState) -> Self {
        let stop = CancellationToken::new();
        let count = state.config().workers;
        if count == 0 {
            return Self { stop, tasks: Vec::new() };
        }
        let mut tasks: Vec<JoinHandle<()>> =
            (0..count).map(|index| tokio::spawn(work(state.clone(), stop.clone(), index))).collect();
        tasks.push(tokio::spawn(feed(state.clone(), stop.clone())));
        Self { stop, tasks }
    }

    /// Stops taking jobs and waits up to `grace` for the ones running; a job still running after
    /// that stays `running` in storage and is recovered at the next start.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.cancel();
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!("workers still busy at shutdown; their jobs go to whoever finds their lease passed");
        }
    }
}

/// The scan of [`Workers::start`]: queues what [`LeaseScanner::due`] finds while this server's
/// queue is empty, about twice a lease; storage trouble (a server starting before its MinIO) is
/// logged and tried again at the next round.
async fn feed(state: AppState, stop: CancellationToken) {
    let lease = state.config().job_lease;
    let mut scanner = LeaseScanner::new(JobStore::new(Arc::clone(state.storage())), lease);
    let mut started = false;
    loop {
        if state.job_queue().depth() == 0 {
            let scan = tokio::select! {
                () = stop.cancelled() => return,
                scan = scanner.due(!started) => scan,
            };
            match scan {
                Ok(due) => {
                    if !started || !due.is_empty() {
                        tracing::info!(found = due.len(), "jobs and segments to run found in storage");
                    }
                    started = true;
                    for work in due {
                        if !state.job_queue().try_push(work) {
                            break;
                        }
                    }
                }
                Err(error) => tracing::error!(%error, "scanning the jobs in storage failed"),
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(lease / 2) => {}
        }
    }
}

/// One worker: takes ids off the queue until told to stop; each job waits for a processing slot
/// shared with /process so jobs and requests together never oversubscribe the CPU.
async fn work(state: AppState, stop: CancellationToken, index: usize) {
    loop {
        let work = tokio::select! {
            () = stop.cancelled() => return,
            work = state.job_queue().next() => match work { Some(work) => work, None => return },
        };
        let slot = loop {
            match state.limiter().try_admit() {
                Ok(admission) => break admission.wait_for_slot().await,
                Err(Busy) => tokio::time::sleep(SLOT_POLL).await,
            }
        };
        let result = match &work {
            Work::Job(id) => run_job(&state, id).await,
            Work::Segment { job, index } => run_segment(&state, job, *index).await,
        };
        drop(slot);
        if let Err(error) = result {
            tracing::error!(worker = index, ?work, %error, "job run failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{new_job_id, JobInputs};

    fn job(status: JobStatus, attempts: u32) -> Job {
        let inputs = JobInputs { sources: vec![], target: "t.png".into() };
        let mut job = Job::new(new_job_id(), inputs, serde_json::json!({}), None);
        job.status = status;
        job.attempts = attempts;
        job
    }

    const LEASE: Duration = Duration::from_secs(60);

    #[test]
    fn only_queued_jobs_are_claimed_with_a_lease() {
        let now = OffsetDateTime::now_utc();
        let claimed = decide_claim(&job(JobStatus::Queued, 0), "c", LEASE, now).unwrap();
        assert_eq!((claimed.status, claimed.attempts, claimed.worker.as_deref()), (JobStatus::Running, 1, Some("c")));
        assert!(claimed.started_at.is_some());
        assert_eq!(claimed.lease_expired(now), Some(false));
        assert_eq!(claimed.lease_expired(now + time::Duration::seconds(61)), Some(true));
        for status in [JobStatus::Completed, JobStatus::Failed, JobStatus::Cancelled] {
            assert!(decide_claim(&job(status, 1), "c", LEASE, now).is_none(), "{status:?}");
        }
        // Another worker's running job is left alone while its lease holds.
        assert!(decide_claim(&claimed, "d", LEASE, now).is_none());
    }

    #[test]
    fn a_running_job_whose_lease_passed_is_taken_over() {
        let now = OffsetDateTime::now_utc();
        let running = decide_claim(&job(JobStatus::Queued, 0), "old", LEASE, now).unwrap();
        let later = now + time::Duration::seconds(61);
        let taken = decide_claim(&running, "new", LEASE, later).unwrap();
        assert_eq!((taken.status, taken.attempts, taken.worker.as_deref()), (JobStatus::Running, 2, Some("new")));
        let mut legacy = job(JobStatus::Running, 1);
        legacy.updated_at = "2000-01-01T00:00:00Z".into();
        assert!(decide_claim(&legacy, "new", LEASE, now).is_some(), "a silent record without a lease");
    }

    #[test]
    fn a_lost_job_is_retried_once_then_failed() {
        let retried = after_worker_lost(&job(JobStatus::Running, 1), "c", LEASE);
        assert_eq!((retried.status, retried.attempts, retried.worker.as_deref()), (JobStatus::Running, 2, Some("c")));
        let failed = after_worker_lost(&job(JobStatus::Running, MAX_ATTEMPTS), "c", LEASE);
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.error.unwrap().code, "worker_lost");
        assert!(failed.finished_at.is_some());
    }
}
