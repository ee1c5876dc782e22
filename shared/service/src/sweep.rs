//! Removing what killed runs left behind, and what expired: finished jobs past their `expires_at`
//! (FF_RESULT_TTL_HOURS) and Idempotency-Key entries past their 24 hours. A run cleans up after itself when it ends, fails or is
//! cancelled, but not when its process is killed (`kill -9`, an out-of-memory kill, a power cut):
//! its run directory stays under FF_TEMP_DIR, a write in flight leaves its temporary file in the
//! filesystem storage's `.ff-tmp/`, and a job killed while being created leaves inputs under
//! `jobs/<id>/` with no record that would ever lead to them.
//!
//! `ff serve` sweeps these at start-up and then every FF_SWEEP_INTERVAL_SECS ([`Sweeper`]). Only
//! what is certainly abandoned goes: run directories and temporary files nobody has written for
//! longer than any run may last, and job files without a record older than a grace period of the
//! same length, so a job being created right now keeps its inputs. Each sweep deletes at most
//! [`MAX_DELETIONS_PER_SWEEP`] things and lists at most [`MAX_LISTED_PER_SWEEP`] objects (the next
//! sweep goes on from there); every storage call has the backend's timeout.
//!
//! Lambda functions do not sweep: an invocation should do its own work, not a bucket-wide listing,
//! and `/tmp` of a Lambda sandbox dies with it. Only `ff serve` runs a [`Sweeper`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ServiceConfig;
use crate::jobs::idempotency::{IDEMPOTENCY_PREFIX, RETENTION as IDEMPOTENCY_RETENTION};
use crate::jobs::store::{JobStore, StoreError};
use crate::jobs::{is_job_id, record_key, JOBS_PREFIX};
use crate::state::AppState;
use crate::storage::{ListRequest, Storage, StorageError};
use crate::uploads::UPLOADS_PREFIX;
use crate::workspace::is_run_dir_name;

/// Deletions per sweep (run directories, temporary files and objects together): a backlog goes
/// over several sweeps instead of one long burst of storage calls.
pub const MAX_DELETIONS_PER_SWEEP: usize = 1000;
/// Objects under `jobs/` listed per sweep; the next sweep resumes after the last one.
pub const MAX_LISTED_PER_SWEEP: usize = 100_000;
/// Added to a run's time limit before its leftovers count as abandoned: the limit is enforced by
/// timers, and the process needs a moment past it to kill ffmpeg and clean up.
const STALE_MARGIN: Duration = Duration::from_secs(600);
const LIST_PAGE: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SweepSettings {
    /// FF_TEMP_DIR, where run directories live.
    pub temp_dir: PathBuf,
    /// Run directories and temporary files last written longer ago than this are abandoned.
    pub stale_after: Duration,
    /// Files under `jobs/<id>/` without a record, older than this, are abandoned.
    pub orphan_grace: Duration,
    pub max_deletions: usize,
    /// FF_RESULT_TTL_HOURS: records untouched for this long are read to see whether they expired.
    pub result_ttl: Option<Duration>,
}

impl SweepSettings {
    /// No run outlives the longer of FF_REQUEST_TIMEOUT_SECS and FF_VIDEO_TIMEOUT_SECS (and
    /// creating a job, a probe and a few writes, stays within them too), so anything untouched
    /// for that long plus a margin belongs to a dead run.
    pub fn from_config(config: &ServiceConfig) -> Self {
        let stale_after = config.request_timeout.max(config.video_timeout) + STALE_MARGIN;
        Self {
            temp_dir: config.temp_dir.clone(),
            stale_after,
            orphan_grace: stale_after,
            max_deletions: MAX_DELETIONS_PER_SWEEP,
            result_ttl: config.result_ttl_hours.map(|hours| Duration::from_secs(u64::from(hours) * 3600)),
        }
    }
}

/// What one sweep removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub run_dirs: usize,
    pub temp_files: usize,
    pub orphan_objects: usize,
    /// Final jobs past their `expires_at`, removed with their files.
    pub expired_jobs: usize,
    /// Idempotency-Key entries older than their retention.
    pub expired_idempotency_keys: usize,
    /// Uploads (`uploads/`) older than FF_RESULT_TTL_HOURS.
    pub expired_uploads: usize,
    /// Calls that failed (each logged); what they would have removed is tried again next time.
    pub failures: usize,
    /// The deletion budget ran out: more may be left for the next sweep.
    pub budget_exhausted: bool,
}

impl SweepReport {
    fn removed(&self) -> usize {
        self.run_dirs
            + self.temp_files
            + self.orphan_objects
            + self.expired_jobs
            + self.expired_idempotency_keys
            + self.expired_uploads
    }

    fn log(&self) {
        tracing::info!(
            run_dirs = self.run_dirs,
            temp_files = self.temp_files,
            orphan_objects = self.orphan_objects,
            expired_jobs = self.expired_jobs,
            expired_idempotency_keys = self.expired_idempotency_keys,
            expired_uploads = self.expired_uploads,
            failures = self.failures,
            budget_exhausted = self.budget_exhausted,
            "sweep removed what killed runs left and what expired"
        );
    }
}

/// One storage's and one temp directory's sweeps, remembering where the listing of `jobs/` stopped.
#[derive(Debug)]
pub struct Sweep {
    storage: Arc<dyn Storage>,
    settings: SweepSettings,
    /// Key to resume the `jobs/` listing after; `None` starts from the beginning.
    resume_after: Option<String>,
}

impl Sweep {
    pub fn new(storage: Arc<dyn Storage>, settings: SweepSettings) -> Self {
        Self { storage, settings, resume_after: None }
    }

    /// Removes abandoned run directories, then temporary files, then orphan job files, within one
    /// deletion budget.
    pub async fn run(&mut self) -> SweepReport {
        let mut report = SweepReport::default();
        let budget = self.settings.max_deletions;
        let (run_dirs, failures) = self.remove_stale_run_dirs(budget).await;
        report.run_dirs = run_dirs;
        report.failures += failures;
        let left = budget.saturating_sub(report.removed());
        match self.storage.remove_stale_temp_files(self.settings.stale_after, left).await {
            Ok(removed) => report.temp_files = removed,
            Err(error) => {
                tracing::warn!(%error, "sweep: cannot remove stale temporary files of the storage");
                report.failures += 1;
            }
        }
        let left = budget.saturating_sub(report.removed());
        let (jobs, failures) = self.sweep_job_files(left).await;
        report.orphan_objects = jobs.orphans;
        report.expired_jobs = jobs.expired;
        report.failures += failures;
        let left = budget.saturating_sub(report.removed());
        let (entries, failures) = self.remove_aged_objects(IDEMPOTENCY_PREFIX, IDEMPOTENCY_RETENTION, left).await;
        report.expired_idempotency_keys = entries;
        report.failures += failures;
        // Uploads are inputs: they go when results do (FF_RESULT_TTL_HOURS after their PUT).
        if let Some(ttl) = self.settings.result_ttl {
            let left = budget.saturating_sub(report.removed());
            let (uploads, failures) = self.remove_aged_objects(UPLOADS_PREFIX, ttl, left).await;
            report.expired_uploads = uploads;
            report.failures += failures;
        }
        report.budget_exhausted = report.removed() >= budget;
        report
    }

    async fn remove_stale_run_dirs(&self, limit: usize) -> (usize, usize) {
        let temp_dir = self.settings.temp_dir.clone();
        let older_than = self.settings.stale_after;
        match tokio::task::spawn_blocking(move || remove_stale_run_dirs(&temp_dir, older_than, limit)).await {
            Ok(counts) => counts,
            Err(error) => {
                tracing::warn!(%error, "sweep: the run directory sweep did not finish");
                (0, 1)
            }
        }
    }

    /// Lists `jobs/` and deletes files under `jobs/<id>/` whose record does not exist and which
    /// are older than the grace period, and expired jobs whole. The record `jobs/<id>.json` sorts
    /// just before the files `jobs/<id>/...` ('.' < '/'), so a record seen in the listing spares
    /// its files a lookup; any other candidate is confirmed missing with a HEAD before it goes.
    /// A record untouched for FF_RESULT_TTL_HOURS is read, and its job removed if it expired.
    async fn sweep_job_files(&mut self, limit: usize) -> (JobRemovals, usize) {
        let now = SystemTime::now();
        let (mut removed, mut failures, mut listed) = (0, 0, 0);
        let mut expired = 0;
        let mut known = KnownRecords::default();
        let mut start_after = self.resume_after.take();
        while removed < limit && listed < MAX_LISTED_PER_SWEEP {
            let request = ListRequest { start_after: start_after.clone(), limit: LIST_PAGE, shallow: false };
            let page = match self.storage.list(JOBS_PREFIX, request).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "sweep: cannot list job files");
                    // Resume here next time rather than from the beginning.
                    self.resume_after = start_after;
                    return (JobRemovals { orphans: removed - expired, expired }, failures + 1);
                }
            };
            for object in &page.objects {
                listed += 1;
                start_after = Some(object.key.clone());
                if let Some(id) = self.expiry_candidate(&object.key, object.last_modified, now) {
                    match self.remove_if_expired(&id).await {
                        Ok(true) => {
                            expired += 1;
                            removed += 1;
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::warn!(job = %id, %error, "sweep: cannot remove an expired job");
                            failures += 1;
                        }
                    }
                }
                let Some(id) = self.orphan_candidate(&object.key, object.last_modified, now, &mut known) else {
                    continue;
                };
                if !self.record_is_missing(&id, &mut known).await {
                    continue;
                }
                match self.storage.delete(&object.key).await {
                    Ok(()) => removed += 1,
                    Err(error) => {
                        tracing::warn!(key = %object.key, %error, "sweep: cannot delete an orphan job file");
                        failures += 1;
                    }
                }
                if removed == limit {
                    break;
                }
            }
            if page.objects.is_empty() || (page.next_start_after.is_none() && removed < limit) {
                // The whole listing was seen: the next sweep starts over.
                return (JobRemovals { orphans: removed - expired, expired }, failures);
            }
        }
        self.resume_after = start_after;
        (JobRemovals { orphans: removed - expired, expired }, failures)
    }

    /// The id of a job record untouched for at least FF_RESULT_TTL_HOURS: a final job's last
    /// write is its finish, so only such records can have expired.
    fn expiry_candidate(&self, key: &str, last_modified: Option<SystemTime>, now: SystemTime) -> Option<String> {
        let ttl = self.settings.result_ttl?;
        let id = key.strip_prefix(JOBS_PREFIX)?.strip_suffix(".json").filter(|id| is_job_id(id))?;
        let age = now.duration_since(last_modified?).unwrap_or_default();
        (age >= ttl).then(|| id.to_string())
    }

    /// Removes the job's files and record if it is past its `expires_at`; the files first, so a
    /// failure part-way leaves a record that leads to what is left.
    async fn remove_if_expired(&self, id: &str) -> Result<bool, StoreError> {
        let store = JobStore::new(Arc::clone(&self.storage));
        let expired = store.load(id).await?.is_some_and(|(job, _)| job.is_expired(OffsetDateTime::now_utc()));
        if expired {
            store.delete_files(id).await?;
            store.delete(id).await?;
        }
        Ok(expired)
    }

    /// Deletes the objects under `prefix` last written more than `max_age` ago: Idempotency-Key
    /// entries (written once, at creation) and uploads (written once, by their PUT). Returns
    /// (removed, failures).
    async fn remove_aged_objects(&self, prefix: &str, max_age: Duration, limit: usize) -> (usize, usize) {
        let now = SystemTime::now();
        let (mut removed, mut failures) = (0, 0);
        let mut start_after = None;
        while removed < limit {
            let request = ListRequest { start_after: start_after.take(), limit: LIST_PAGE, shallow: false };
            let page = match self.storage.list(prefix, request).await {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(prefix, %error, "sweep: cannot list expiring objects");
                    return (removed, failures + 1);
                }
            };
            for object in &page.objects {
                let age = object.last_modified.map(|at| now.duration_since(at).unwrap_or_default());
                if age.is_none_or(|age| age < max_age) || removed == limit {
                    continue;
                }
                match self.storage.delete(&object.key).await {
                    Ok(()) | Err(StorageError::NotFound { .. }) => removed += 1,
                    Err(error) => {
                        tracing::warn!(key = %object.key, %error, "sweep: cannot delete an expired object");
                        failures += 1;
                    }
                }
            }
            match page.next_start_after {
                Some(next) => start_after = Some(next),
                None => break,
            }
        }
        (removed, failures)
    }

    /// The job id of `key` if it is a job's file (not its record) old enough to be an orphan and
    /// whose record was not seen in the listing; notes records as they pass.
    fn orphan_candidate(
        &self,
        key: &str,
        last_modified: Option<SystemTime>,
        now: SystemTime,
        known: &mut KnownRecords,
    ) -> Option<String> {
        let rest = key.strip_prefix(JOBS_PREFIX)?;
        let Some((id, _file)) = rest.split_once('/') else {
            if let Some(id) = rest.strip_suffix(".json").filter(|id| is_job_id(id)) {
                known.note(id, true);
            }
            return None;
        };
        if !is_job_id(id) || known.exists(id) == Some(true) {
            return None;
        }
        // A backend that cannot say how old a file is never has it swept.
        let age = now.duration_since(last_modified?).unwrap_or_default();
        (age >= self.settings.orphan_grace).then(|| id.to_string())
    }

    /// Whether `id` certainly has no record; a failed lookup counts as "it may have one".
    async fn record_is_missing(&self, id: &str, known: &mut KnownRecords) -> bool {
        if let Some(exists) = known.exists(id) {
            return !exists;
        }
        let exists = match self.storage.head(&record_key(id)).await {
            Ok(_) => true,
            Err(StorageError::NotFound { .. }) => false,
            Err(error) => {
                tracing::warn!(job = %id, %error, "sweep: cannot tell whether a job record exists");
                return false;
            }
        };
        known.note(id, exists);
        !exists
    }
}

/// What the `jobs/` listing removed.
struct JobRemovals {
    orphans: usize,
    expired: usize,
}

/// Whether the job whose keys the listing is passing has a record. Keys are listed in order, so
/// the files of one job are contiguous and one id at a time is enough.
#[derive(Debug, Default)]
struct KnownRecords {
    current: Option<(String, bool)>,
}

impl KnownRecords {
    fn note(&mut self, id: &str, exists: bool) {
        self.current = Some((id.to_string(), exists));
    }

    fn exists(&self, id: &str) -> Option<bool> {
        self.current.as_ref().filter(|(known, _)| known == id).map(|(_, exists)| *exists)
    }
}

/// Removes run directories in `temp_dir` (only names the workspace gives them, never a symlink)
/// whose newest entry is older than `older_than`, at most `limit`. Returns (removed, failures).
fn remove_stale_run_dirs(temp_dir: &Path, older_than: Duration, limit: usize) -> (usize, usize) {
    let entries = match std::fs::read_dir(temp_dir) {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(dir = %temp_dir.display(), %error, "sweep: cannot read the temp directory");
            return (0, 1);
        }
    };
    let now = SystemTime::now();
    let (mut removed, mut failures) = (0, 0);
    for entry in entries.flatten() {
        if removed == limit {
            break;
        }
        let is_run_dir = entry.file_name().to_str().is_some_and(is_run_dir_name)
            && entry.file_type().is_ok_and(|kind| kind.is_dir());
        if !is_run_dir {
            continue;
        }
        let path = entry.path();
        let Some(last_written) = last_written(&path) else { continue };
        if now.duration_since(last_written).unwrap_or_default() < older_than {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed += 1,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(dir = %path.display(), %error, "sweep: cannot remove a stale run directory");
                failures += 1;
            }
        }
    }
    (removed, failures)
}

/// The latest modification time of a run directory and the files directly in it (a run writes
/// only there): a long video still being encoded keeps its directory fresh.
fn last_written(dir: &Path) -> Option<SystemTime> {
    let own = std::fs::symlink_metadata(dir).and_then(|meta| meta.modified()).ok()?;
    let entries = std::fs::read_dir(dir).ok()?;
    let newest_entry =
        entries.flatten().filter_map(|entry| entry.metadata().and_then(|meta| meta.modified()).ok()).max();
    Some(newest_entry.map_or(own, |entry| entry.max(own)))
}

/// The sweep of `ff serve`: once at start-up, then every FF_SWEEP_INTERVAL_SECS, until shut down.
#[derive(Debug)]
pub struct Sweeper {
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Starts sweeping in a task of its own; with FF_SWEEP_INTERVAL_SECS=0 it does nothing.
    pub fn start(state: &AppState) -> Self {
        let stop = CancellationToken::new();
        let Some(interval) = state.config().sweep_interval else {
            return Self { stop, task: None };
        };
        let sweep = Sweep::new(Arc::clone(state.storage()), SweepSettings::from_config(state.config()));
        let task = tokio::spawn(sweep_until_stopped(sweep, interval, stop.clone()));
        Self { stop, task: Some(task) }
    }

    /// Stops sweeping; a sweep in progress is abandoned (whatever it had not removed yet is
    /// found again by the next start).
    pub async fn shutdown(self) {
        self.stop.cancel();
        if let Some(task) = self.task {
            let _ = task.await;
        }
    }
}

async fn sweep_until_stopped(mut sweep: Sweep, interval: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            report = sweep.run() => report.log(),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(config: &[(&str, &str)]) -> SweepSettings {
        let config = ServiceConfig::from_lookup(|name| {
            config.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string())
        })
        .unwrap();
        SweepSettings::from_config(&config)
    }

    #[test]
    fn leftovers_are_stale_past_the_longest_run_limit_plus_a_margin() {
        let video = settings(&[("FF_REQUEST_TIMEOUT_SECS", "60"), ("FF_VIDEO_TIMEOUT_SECS", "900")]);
        assert_eq!(video.stale_after, Duration::from_secs(900) + STALE_MARGIN);
        let request = settings(&[("FF_REQUEST_TIMEOUT_SECS", "1200"), ("FF_VIDEO_TIMEOUT_SECS", "30")]);
        assert_eq!(request.stale_after, Duration::from_secs(1200) + STALE_MARGIN);
        assert_eq!(request.orphan_grace, request.stale_after);
    }

    #[test]
    fn only_the_job_being_passed_is_remembered() {
        let mut known = KnownRecords::default();
        known.note("a", true);
        assert_eq!(known.exists("a"), Some(true));
        known.note("b", false);
        assert_eq!((known.exists("a"), known.exists("b")), (None, Some(false)));
    }
}
