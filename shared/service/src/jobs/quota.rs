//! FF_MAX_ACTIVE_JOBS_PER_KEY: how many jobs one key may have queued or running.
//!
//! Each job created under a key leaves a marker `owners/<key name>/active/<job id>`. Counting a
//! key's active jobs reads the records its markers name and removes the markers of jobs that are
//! final or gone, so the count needs no cooperation from workers, cancellation or deletion, holds
//! across processes (Lambda, several containers) and costs reads in proportion to the key's recent
//! jobs, not to every job in storage.
//!
//! The check and the marker are two steps, so two creations at the same instant may both pass
//! with one place left: the limit keeps a client from filling the queue, not a count to the job.

use bytes::Bytes;

use super::is_job_id;
use super::store::JobStore;
use crate::error::ApiError;
use crate::storage::{ListRequest, StorageError, WriteCondition};

const OWNERS_PREFIX: &str = "owners/";

fn active_prefix(owner: &str) -> String {
    format!("{OWNERS_PREFIX}{owner}/active/")
}

/// Refuses with `too_many_jobs` when `owner` has `limit` jobs queued or running already.
pub async fn admit(store: &JobStore, owner: &str, limit: usize) -> Result<(), ApiError> {
    if count_active(store, owner, limit).await? >= limit {
        return Err(ApiError::TooManyJobs { limit });
    }
    Ok(())
}

/// Marks `id` as one of `owner`'s active jobs.
pub async fn mark_active(store: &JobStore, owner: &str, id: &str) -> Result<(), ApiError> {
    let key = format!("{}{id}", active_prefix(owner));
    store.storage().put_bytes(&key, Bytes::new(), WriteCondition::None).await?;
    Ok(())
}

/// Active jobs of `owner`, counted up to `enough`; markers of finished or deleted jobs are removed
/// on the way.
async fn count_active(store: &JobStore, owner: &str, enough: usize) -> Result<usize, ApiError> {
    let prefix = active_prefix(owner);
    let mut active = 0;
    let mut start_after = None;
    loop {
        let request = ListRequest { start_after: start_after.take(), limit: 1000, shallow: true };
        let page = store.storage().list(&prefix, request).await?;
        for object in &page.objects {
            let Some(id) = object.key.strip_prefix(&prefix).filter(|id| is_job_id(id)) else { continue };
            let running = store.load(id).await?.is_some_and(|(job, _)| !job.status.is_final());
            if running {
                active += 1;
                if active >= enough {
                    return Ok(active);
                }
            } else {
                match store.storage().delete(&object.key).await {
                    Ok(()) | Err(StorageError::NotFound { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        match page.next_start_after {
            Some(next) => start_after = Some(next),
            None => return Ok(active),
        }
    }
}
