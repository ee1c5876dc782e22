//! Job records in storage: create, read, compare-and-swap update, list, delete.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{files_prefix, is_job_id, record_key, Job, JobStatus, JOBS_PREFIX};
use crate::error::ApiError;
use crate::storage::{ListPage, ListRequest, Storage, StorageError, WriteCondition};

/// A record is a few hundred bytes; anything much larger is not one of ours.
const MAX_RECORD_BYTES: u64 = 1024 * 1024;
/// Conflicting writers are rare (a worker and a cancel); a record still changing after this many
/// tries is being fought over, and the caller gets a conflict rather than a livelock.
const MAX_UPDATE_TRIES: usize = 16;
/// Records read at once while listing.
const LIST_READ_CONCURRENCY: usize = 8;
/// The most records one listing call reads while filtering by status, so a filter that matches
/// nothing cannot make one request read the whole bucket; the cursor lets the client continue.
const MAX_SCANNED_PER_LIST: usize = 1000;

/// What an update did.
#[derive(Debug)]
pub enum Update<T = Job> {
    /// The change was written; the record as stored now.
    Written(T),
    /// The decision function declined to change this version of the record.
    Unchanged(T),
    /// There is no such record.
    Missing,
}

/// A JSON document under one key that changes only by conditional writes: a job's record, or
/// one of its segments' (`segments::Segment`).
pub trait Record: Serialize + DeserializeOwned {
    /// Incremented by every write, so no two versions have the same bytes.
    fn revision(&self) -> u64;
    fn set_revision(&mut self, revision: u64);
}

impl Record for Job {
    fn revision(&self) -> u64 {
        self.revision
    }

    fn set_revision(&mut self, revision: u64) {
        self.revision = revision;
    }
}

/// One page of a job listing.
#[derive(Debug, Default)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    /// Id to pass as `cursor` for the next page; `None` when there is nothing more.
    pub next_cursor: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("job `{id}` kept changing while being updated")]
    Contended { id: String },
    #[error("job record `{key}` is not valid: {reason}")]
    Corrupt { key: String, reason: String },
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Storage(error) => Self::Storage(error),
            StoreError::Contended { id } => Self::Conflict { id },
            StoreError::Corrupt { .. } => Self::Corrupt { detail: error.to_string() },
        }
    }
}

#[derive(Clone, Debug)]
pub struct JobStore {
    storage: Arc<dyn Storage>,
}

impl JobStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Writes a new record; fails with `PreconditionFailed` if the id is taken.
    pub async fn create(&self, job: &Job) -> Result<(), StoreError> {
        self.create_record(&record_key(&job.id), job).await
    }

    /// The record and its etag; `None` for an unknown id.
    pub async fn load(&self, id: &str) -> Result<Option<(Job, String)>, StoreError> {
        self.load_record(&record_key(id)).await
    }

    /// Reads the record, asks `decide` for its next version (`None`: leave it), and writes that
    /// only if the record is still the version read. On a lost race it reads again and asks
    /// again, so `decide` always judges the newest record and no concurrent change is lost.
    pub async fn update(&self, id: &str, decide: impl FnMut(&Job) -> Option<Job>) -> Result<Update, StoreError> {
        self.update_record(&record_key(id), decide).await
    }

    /// Writes a new record at `key`; fails with `PreconditionFailed` if there is one.
    pub async fn create_record<T: Record>(&self, key: &str, record: &T) -> Result<(), StoreError> {
        self.storage.put_bytes(key, encode(key, record)?, WriteCondition::IfAbsent).await?;
        Ok(())
    }

    /// The record at `key` and its etag; `None` when there is none.
    pub async fn load_record<T: Record>(&self, key: &str) -> Result<Option<(T, String)>, StoreError> {
        match self.storage.get_bytes(key, MAX_RECORD_BYTES).await {
            Ok((bytes, meta)) => Ok(Some((decode(key, &bytes)?, meta.etag))),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// [`JobStore::update`] for the record at `key`.
    pub async fn update_record<T: Record>(
        &self,
        key: &str,
        mut decide: impl FnMut(&T) -> Option<T>,
    ) -> Result<Update<T>, StoreError> {
        for _ in 0..MAX_UPDATE_TRIES {
            let Some((current, etag)) = self.load_record::<T>(key).await? else {
                return Ok(Update::Missing);
            };
            let Some(mut next) = decide(&current) else {
                return Ok(Update::Unchanged(current));
            };
            // Every write moves the revision on, whatever `decide` built the new version from.
            next.set_revision(current.revision() + 1);
            match self.storage.put_bytes(key, encode(key, &next)?, WriteCondition::IfMatch(etag)).await {
                Ok(_) => return Ok(Update::Written(next)),
                // Someone wrote (or deleted) it since we read it: judge the new version.
                Err(StorageError::PreconditionFailed { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let id = key.strip_prefix(JOBS_PREFIX).and_then(|rest| rest.strip_suffix(".json")).unwrap_or(key);
        Err(StoreError::Contended { id: id.to_string() })
    }

    /// Jobs in creation order, optionally only those in `status` or of one `owner` (an API key's
    /// name), after the job `cursor`.
    pub async fn list(
        &self,
        status: Option<JobStatus>,
        owner: Option<&str>,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.max(1);
        let mut start_after = cursor.map(record_key);
        let mut page = JobPage::default();
        let mut scanned = 0;
        loop {
            let (listing, ids, records) = self.read_records(start_after.clone(), limit.max(100), |_| true).await?;
            for (id, record) in ids.iter().zip(records) {
                scanned += 1;
                let wanted = |job: &Job| {
                    status.is_none_or(|wanted| job.status == wanted)
                        && owner.is_none_or(|o| job.owner.as_deref() == Some(o))
                };
                if let Some(job) = record.filter(wanted) {
                    page.jobs.push(job);
                }
                if page.jobs.len() == limit || scanned == MAX_SCANNED_PER_LIST {
                    // More may follow: this id, or the listing's next page.
                    let is_last = listing.next_start_after.is_none() && ids.last() == Some(id);
                    page.next_cursor = (!is_last).then(|| id.clone());
                    return Ok(page);
                }
            }
            match listing.next_start_after {
                Some(next) => start_after = Some(next),
                None => return Ok(page),
            }
        }
    }

    /// One listing page of `jobs/` after `start_after` (at most `limit` keys), and the records of
    /// the job ids on it that `wanted` accepts, read in order a few at a time (`None` for a record
    /// deleted meanwhile). Also the listing, for its next page.
    pub(crate) async fn read_records(
        &self,
        start_after: Option<String>,
        limit: usize,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<(ListPage, Vec<String>, Vec<Option<Job>>), StoreError> {
        let request = ListRequest { start_after, limit, shallow: true };
        let listing = self.storage.list(JOBS_PREFIX, request).await?;
        let ids: Vec<String> = listing
            .objects
            .iter()
            .filter_map(|object| object.key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json"))
            .filter(|id| is_job_id(id) && wanted(id))
            .map(str::to_string)
            .collect();
        let reads = ids.clone().into_iter().map(|id| {
            let store = self.clone();
            async move { Ok::<_, StoreError>(store.load(&id).await?.map(|(job, _)| job)) }
        });
        let records = futures_util::stream::iter(reads).buffered(LIST_READ_CONCURRENCY).try_collect().await?;
        Ok((listing, ids, records))
    }

    /// Removes everything stored for a job except its record (inputs and result), and keeps
    /// going past failures so one bad object does not keep the rest; reports the first failure.
    pub async fn delete_files(&self, id: &str) -> Result<(), StoreError> {
        let prefix = files_prefix(id);
        let mut first_error = None;
        let mut start_after = None;
        loop {
            let request = ListRequest { start_after: start_after.clone(), limit: 1000, shallow: false };
            let listing = self.storage.list(&prefix, request).await?;
            for object in &listing.objects {
                if let Err(error) = self.storage.delete(&object.key).await {
                    tracing::warn!(key = %object.key, %error, "could not delete a job file");
                    first_error.get_or_insert(error);
                }
            }
            match listing.next_start_after {
                // The backend lists after a key, so deleted keys do not shift the next page.
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        match first_error {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }

    /// Removes a job's files, then its record.
    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.delete_files(id).await?;
        self.storage.delete(&record_key(id)).await?;
        Ok(())
    }
}

fn encode<T: Serialize>(key: &str, record: &T) -> Result<Bytes, StoreError> {
    serde_json::to_vec_pretty(record)
        .map(Bytes::from)
        .map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt { key: key.to_string(), reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_contended_record_is_a_conflict() {
        let contended = ApiError::from(StoreError::Contended { id: "x".into() });
        assert_eq!((contended.status(), contended.code()), (StatusCode::CONFLICT, "conflict"));
    }
}
