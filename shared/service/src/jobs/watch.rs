//! Watching a job record change: for `Prefer: wait=N` on job creation and for the job's event
//! stream. The record in storage is the one source of truth, wherever the job runs (this process,
//! another container, a Lambda worker), so watching is reading it again at a short interval.

use std::time::Duration;

use tokio::time::Instant;

use super::store::JobStore;
use super::Job;
use crate::error::ApiError;

/// How often a watched record is read again: progress is written about once a second.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// What a read of a watched record found.
pub enum Seen {
    /// The record as it is now, changed since the last revision seen.
    Changed(Box<Job>),
    /// Not changed before the deadline.
    Unchanged,
    /// The record was deleted.
    Gone,
}

/// Waits for the record of `id` to differ from `revision` (any record when `None`), until `deadline`.
pub async fn next_change(
    store: &JobStore,
    id: &str,
    revision: Option<u64>,
    deadline: Instant,
) -> Result<Seen, ApiError> {
    loop {
        match store.load(id).await? {
            None => return Ok(Seen::Gone),
            Some((job, _)) if Some(job.revision) != revision => return Ok(Seen::Changed(Box::new(job))),
            Some(_) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Seen::Unchanged);
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

/// Waits until `job` is final or `deadline` passes; the record as last read.
pub async fn until_final(store: &JobStore, mut job: Job, deadline: Instant) -> Result<Job, ApiError> {
    while !job.status.is_final() {
        match next_change(store, &job.id, Some(job.revision), deadline).await? {
            Seen::Changed(newer) => job = *newer,
            Seen::Unchanged | Seen::Gone => break,
        }
    }
    Ok(job)
}
