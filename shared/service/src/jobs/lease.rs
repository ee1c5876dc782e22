//! Leases: how several workers on one storage (servers, containers, Lambda invocations) share
//! jobs without a coordinator.
//!
//! A running job's record names its worker (`<FF_WORKER_ID>/<claim>`) and carries
//! `lease_expires_at`; every write of that worker (progress about once a second for a video, a
//! heartbeat a third of the lease apart otherwise) moves it FF_JOB_LEASE_SECS ahead. A worker that
//! dies stops writing, the lease passes, and any other worker takes the job over with a conditional
//! write (`worker::run_job`), so one job never has two owners. [`LeaseScanner`] is how the workers
//! of `ff serve` find such jobs, and queued ones nobody took, on storage they share with others.

use std::collections::HashSet;
use std::time::Duration;

use time::OffsetDateTime;

use super::queue::Work;
use super::segments;
use super::store::{JobStore, StoreError, Update};
use super::{Job, JobStatus};

/// For a `running` record without a lease (written before leases existed): taken to have lost its
/// worker after this long without a write, longer than a Lambda invocation may live.
pub const LEGACY_STALE_RUNNING: Duration = Duration::from_secs(20 * 60);

/// Final jobs remembered so a scan does not read them again (they never change); past this many
/// the memory starts over.
const MAX_KNOWN_FINAL: usize = 200_000;

/// Whether a running job's worker has lost it at `now`: its lease has passed (or, without a
/// lease, it has been silent for [`LEGACY_STALE_RUNNING`]).
pub fn lease_passed(job: &Job, now: OffsetDateTime) -> bool {
    job.lease_expired(now)
        .unwrap_or_else(|| job.idle_seconds().is_some_and(|idle| idle >= LEGACY_STALE_RUNNING.as_secs() as i64))
}

/// Finds the jobs this server's workers should try to claim.
#[derive(Debug)]
pub struct LeaseScanner {
    store: JobStore,
    /// How long a queued job (or segment) waits unclaimed before it is due: a lease by default.
    queued_after: Duration,
    known_final: HashSet<String>,
}

impl LeaseScanner {
    pub fn new(store: JobStore, lease: Duration) -> Self {
        Self { store, queued_after: lease, known_final: HashSet::new() }
    }

    /// Queued work is due only after `wait` unclaimed (on Lambda, the S3 event of a queued record
    /// may still wait in the function's own queue for up to an hour when its concurrency is used up).
    pub fn with_queued_after(mut self, wait: Duration) -> Self {
        self.queued_after = wait;
        self
    }

    /// Running jobs whose lease has passed, and queued jobs: all of them when `all_queued` (at
    /// start-up, when whoever queued them in memory may be gone), else those no one has claimed
    /// for a whole lease; the same for the segments of jobs running in segments. Nothing is
    /// written: claiming is `run_job`'s (`run_segment`'s) conditional write, so work found by
    /// several servers still runs once.
    pub async fn due(&mut self, all_queued: bool) -> Result<Vec<Work>, StoreError> {
        let mut due = Vec::new();
        let mut start_after = None;
        loop {
            let known_final = &self.known_final;
            let (listing, _, records) =
                self.store.read_records(start_after.clone(), 1000, |id| !known_final.contains(id)).await?;
            let now = OffsetDateTime::now_utc();
            for job in records.into_iter().flatten() {
                if self.is_due(&job, all_queued, now) {
                    due.push(Work::Job(job.id));
                } else if job.status == JobStatus::Running && job.segments.is_some() && job.worker.is_none() {
                    for segment in segments::records(&self.store, &job.id).await? {
                        if segment.is_due(all_queued, self.queued_after, now) {
                            due.push(Work::Segment { job: job.id.clone(), index: segment.index });
                        }
                    }
                } else if job.status.is_final() {
                    self.remember_final(job.id);
                }
            }
            match listing.next_start_after {
                Some(next) => start_after = Some(next),
                None => return Ok(due),
            }
        }
    }

    fn is_due(&self, job: &Job, all_queued: bool, now: OffsetDateTime) -> bool {
        match job.status {
            JobStatus::Queued => {
                all_queued || job.idle_seconds().is_some_and(|idle| idle >= self.queued_after.as_secs() as i64)
            }
            // Its segments carry the leases; once they are all done, it waits to be joined.
            JobStatus::Running if job.worker.is_none() && job.segments.is_some() => {
                job.segments.as_ref().is_some_and(super::segments::JobSegments::all_done)
            }
            JobStatus::Running => lease_passed(job, now),
            _ => false,
        }
    }

    /// Writes the record of due `work` again, unchanged but for its revision and update time, if
    /// it is still queued or running: on Lambda the write's S3 event invokes a worker, which then
    /// claims it (a passed lease is taken over). The key written, or `None` when the work ended
    /// meanwhile.
    pub async fn nudge(&self, work: &Work) -> Result<Option<String>, StoreError> {
        let key = match work {
            Work::Job(id) => {
                let update = self.store.update(id, |job| (!job.status.is_final()).then(|| job.next())).await?;
                matches!(update, Update::Written(_)).then(|| super::record_key(id))
            }
            Work::Segment { job, index } => {
                let key = segments::record_key(job, *index);
                let update = self
                    .store
                    .update_record(&key, |segment: &segments::Segment| {
                        // A failed one too: its run writes the job's failure (see `Segment::is_due`).
                        matches!(segment.status, JobStatus::Queued | JobStatus::Running | JobStatus::Failed)
                            .then(|| segment.next())
                    })
                    .await?;
                matches!(update, Update::Written(_)).then_some(key)
            }
        };
        Ok(key)
    }

    fn remember_final(&mut self, id: String) {
        if self.known_final.len() >= MAX_KNOWN_FINAL {
            self.known_final.clear();
        }
        self.known_final.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{new_job_id, JobInputs};

    fn job(status: JobStatus) -> Job {
        let inputs = JobInputs { sources: vec![], target: "t.png".into() };
        let mut job = Job::new(new_job_id(), inputs, serde_json::json!({}), None);
        job.status = status;
        job
    }

    #[test]
    fn a_lease_passes_at_its_time_and_a_legacy_record_after_twenty_minutes() {
        let now = OffsetDateTime::now_utc();
        let mut leased = job(JobStatus::Running);
        leased.renew_lease(Duration::from_secs(60));
        assert!(!lease_passed(&leased, now));
        assert!(lease_passed(&leased, now + time::Duration::seconds(61)));

        let mut legacy = job(JobStatus::Running);
        assert!(!lease_passed(&legacy, now));
        legacy.updated_at = "2000-01-01T00:00:00Z".into();
        assert!(lease_passed(&legacy, now));
    }
}
