//! The sweep of what killed runs leave: stale run directories under FF_TEMP_DIR, stale `.ff-tmp`
//! files of the filesystem storage, and job files without a record, on both storage backends.
//! Everything else (fresh run directories, other programs' files, real jobs, other keys) stays.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use common::{fs_backend, s3_backend, Backend};
use ff_service::jobs::{new_job_id, record_key, Job, JobInputs, JobStatus, JobStore};
use ff_service::storage::{ListRequest, Storage, WriteCondition};
use ff_service::sweep::{Sweep, SweepReport, SweepSettings};

const HOUR: Duration = Duration::from_secs(3600);
/// Older than `HOUR`: what a run killed long ago left.
const LONG_AGO: Duration = Duration::from_secs(2 * 3600);

fn settings(temp_dir: &Path, orphan_grace: Duration, max_deletions: usize) -> SweepSettings {
    SweepSettings { temp_dir: temp_dir.to_path_buf(), stale_after: HOUR, orphan_grace, max_deletions, result_ttl: None }
}

/// Sets a file's or a directory's modification time `ago` in the past.
fn backdate(path: &Path, ago: Duration) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.set_modified(SystemTime::now() - ago).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// A run directory holding one file, both last written `ago`.
fn run_dir(temp_dir: &Path, name: &str, ago: Duration) -> PathBuf {
    let dir = temp_dir.join(name);
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("target.mp4");
    std::fs::write(&target, b"video").unwrap();
    backdate(&target, ago);
    backdate(&dir, ago);
    dir
}

async fn put(storage: &dyn Storage, key: &str) {
    storage.put_bytes(key, Bytes::from_static(b"bytes"), WriteCondition::None).await.unwrap();
}

/// A job created the normal way: its inputs, then its record.
async fn real_job(storage: &Arc<dyn Storage>) -> Vec<String> {
    let id = new_job_id();
    let inputs = JobInputs {
        sources: vec![format!("jobs/{id}/inputs/source-0.jpg")],
        target: format!("jobs/{id}/inputs/target.png"),
    };
    put(storage.as_ref(), &inputs.sources[0]).await;
    put(storage.as_ref(), &inputs.target).await;
    JobStore::new(Arc::clone(storage))
        .create(&Job::new(id.clone(), inputs.clone(), serde_json::json!({}), None))
        .await
        .unwrap();
    vec![record_key(&id), inputs.sources[0].clone(), inputs.target]
}

/// The inputs a job creation killed before it wrote the record left.
async fn orphan(storage: &dyn Storage) -> Vec<String> {
    let id = new_job_id();
    let keys = vec![format!("jobs/{id}/inputs/source-0.jpg"), format!("jobs/{id}/inputs/target.png")];
    for key in &keys {
        put(storage, key).await;
    }
    keys
}

async fn all_keys(storage: &dyn Storage) -> Vec<String> {
    let mut keys = Vec::new();
    let mut start_after = None;
    loop {
        let page = storage.list("", ListRequest { start_after, limit: 1000, shallow: false }).await.unwrap();
        keys.extend(page.objects.into_iter().map(|object| object.key));
        match page.next_start_after {
            Some(next) => start_after = Some(next),
            None => return keys,
        }
    }
}

fn sorted(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys
}

async fn stale_run_directories_and_temporary_files_go(backend: Backend) {
    let temp = tempfile::tempdir().unwrap();
    let stale = run_dir(temp.path(), "ff-video-abc123", LONG_AGO);
    let fresh = run_dir(temp.path(), "ff-video-def456", Duration::ZERO);
    // An old directory whose video is still being written belongs to a live run.
    let encoding = run_dir(temp.path(), "ff-video-ghi789", LONG_AGO);
    std::fs::write(encoding.join("output.mp4"), b"frames").unwrap();
    backdate(&encoding, LONG_AGO);
    // Other programs' things in a shared temp directory, however old.
    let foreign = [
        run_dir(temp.path(), "other-tool-abc123", LONG_AGO),
        run_dir(temp.path(), "ff-video-abc1234", LONG_AGO),
        run_dir(temp.path(), "ff-video-", LONG_AGO),
    ];
    let lookalike_file = temp.path().join("ff-video-xyz987");
    std::fs::write(&lookalike_file, b"not a directory").unwrap();
    backdate(&lookalike_file, LONG_AGO);
    // The filesystem storage's temporary files: one a killed writer left, one being written.
    let temp_files = backend.fs_root().map(|root| {
        let dir = root.join(".ff-tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let (abandoned, writing) = (dir.join("0a1b2c"), dir.join("3d4e5f"));
        std::fs::write(&abandoned, b"half").unwrap();
        std::fs::write(&writing, b"half").unwrap();
        backdate(&abandoned, LONG_AGO);
        (abandoned, writing)
    });
    let job = real_job(&backend.storage).await;

    let report = Sweep::new(Arc::clone(&backend.storage), settings(temp.path(), HOUR, 100)).run().await;

    let expected_temp_files = usize::from(temp_files.is_some());
    assert_eq!(report, SweepReport { run_dirs: 1, temp_files: expected_temp_files, ..SweepReport::default() });
    assert!(!stale.exists());
    assert!(fresh.exists() && encoding.exists() && lookalike_file.exists());
    assert!(foreign.iter().all(|dir| dir.join("target.mp4").exists()));
    if let Some((abandoned, writing)) = temp_files {
        assert!(!abandoned.exists() && writing.exists());
    }
    assert_eq!(sorted(all_keys(backend.storage.as_ref()).await), sorted(job));
}

async fn job_files_without_a_record_go_after_the_grace_period(backend: Backend) {
    let temp = tempfile::tempdir().unwrap();
    let storage = &backend.storage;
    let job = real_job(storage).await;
    let orphans = [orphan(storage.as_ref()).await, orphan(storage.as_ref()).await].concat();
    // Keys under jobs/ that are not a job's, and keys elsewhere, are not the sweep's business.
    let others = vec!["jobs/not-a-job/inputs/target.png".to_string(), "inbox/photo.jpg".to_string()];
    for key in &others {
        put(storage.as_ref(), key).await;
    }
    let everything = sorted([job.clone(), orphans.clone(), others.clone()].concat());

    // Younger than the grace period: a job may be being created right now.
    let report = Sweep::new(Arc::clone(storage), settings(temp.path(), HOUR, 100)).run().await;
    assert_eq!(report, SweepReport::default());
    assert_eq!(sorted(all_keys(storage.as_ref()).await), everything);

    let report = Sweep::new(Arc::clone(storage), settings(temp.path(), Duration::ZERO, 100)).run().await;
    assert_eq!(report, SweepReport { orphan_objects: orphans.len(), ..SweepReport::default() });
    assert_eq!(sorted(all_keys(storage.as_ref()).await), sorted([job, others].concat()));
}

async fn a_sweep_deletes_at_most_its_budget_and_the_next_one_goes_on(backend: Backend) {
    let temp = tempfile::tempdir().unwrap();
    let storage = &backend.storage;
    let job = real_job(storage).await;
    let orphans = [orphan(storage.as_ref()).await, orphan(storage.as_ref()).await].concat();
    let mut sweep = Sweep::new(Arc::clone(storage), settings(temp.path(), Duration::ZERO, 3));

    let first = sweep.run().await;
    assert_eq!(first, SweepReport { orphan_objects: 3, budget_exhausted: true, ..SweepReport::default() });
    assert_eq!(all_keys(storage.as_ref()).await.len(), job.len() + 1);

    let second = sweep.run().await;
    assert_eq!(second, SweepReport { orphan_objects: 1, ..SweepReport::default() });
    assert_eq!(sorted(all_keys(storage.as_ref()).await), sorted(job));
    assert_eq!(orphans.len(), 4);
}

/// A finished job past its `expires_at` goes whole (record, inputs, result); one not yet expired,
/// a running one, and a recent Idempotency-Key entry stay.
async fn expired_jobs_go_with_their_files(backend: Backend) {
    let temp = tempfile::tempdir().unwrap();
    let storage = &backend.storage;
    let store = JobStore::new(Arc::clone(storage));
    let finished = |ttl_hours: u32, finished_ago: time::Duration| {
        let id = new_job_id();
        let inputs = JobInputs { sources: vec![], target: format!("jobs/{id}/inputs/target.png") };
        let mut job = Job::new(id, inputs, serde_json::json!({}), None);
        job.result_ttl_hours = Some(ttl_hours);
        job.updated_at = (time::OffsetDateTime::now_utc() - finished_ago)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        job.finish(JobStatus::Completed, None)
    };
    let expired = finished(1, time::Duration::hours(2));
    let fresh = finished(24, time::Duration::hours(2));
    assert!(expired.expires_at.is_some() && expired.is_expired(time::OffsetDateTime::now_utc()));
    assert!(!fresh.is_expired(time::OffsetDateTime::now_utc()));
    let running = real_job(storage).await;
    for job in [&expired, &fresh] {
        put(storage.as_ref(), &job.inputs.target).await;
        put(storage.as_ref(), &format!("jobs/{}/result.png", job.id)).await;
        store.create(job).await.unwrap();
    }
    put(storage.as_ref(), "idempotency/-/recent.json").await;

    let mut settings = settings(temp.path(), HOUR, 100);
    // Every record is old enough to be read (the real threshold is FF_RESULT_TTL_HOURS).
    settings.result_ttl = Some(Duration::ZERO);
    let report = Sweep::new(Arc::clone(storage), settings).run().await;
    assert_eq!(report, SweepReport { expired_jobs: 1, ..SweepReport::default() });
    let left = all_keys(storage.as_ref()).await;
    assert!(!left.iter().any(|key| key.contains(&expired.id)), "{left:?}");
    assert_eq!(left.iter().filter(|key| key.contains(&fresh.id)).count(), 3, "{left:?}");
    assert!(running.iter().all(|key| left.contains(key)));
    assert!(left.contains(&"idempotency/-/recent.json".to_string()));
}

on_both_backends!(
    stale_run_directories_and_temporary_files_go,
    job_files_without_a_record_go_after_the_grace_period,
    a_sweep_deletes_at_most_its_budget_and_the_next_one_goes_on,
    expired_jobs_go_with_their_files,
);

/// On the filesystem an object's age can be set: with the real grace period, an orphan killed
/// long ago goes and one from a job being created right now stays.
#[tokio::test]
async fn an_old_orphan_goes_while_one_being_created_stays() {
    let backend = fs_backend();
    let root = backend.fs_root().unwrap().to_path_buf();
    let temp = tempfile::tempdir().unwrap();
    let old = orphan(backend.storage.as_ref()).await;
    for key in &old {
        backdate(&root.join(key), LONG_AGO);
    }
    let being_created = orphan(backend.storage.as_ref()).await;

    let report = Sweep::new(Arc::clone(&backend.storage), settings(temp.path(), HOUR, 100)).run().await;

    assert_eq!(report, SweepReport { orphan_objects: old.len(), ..SweepReport::default() });
    assert_eq!(sorted(all_keys(backend.storage.as_ref()).await), sorted(being_created));
}

/// Uploads are inputs: one PUT longer ago than FF_RESULT_TTL_HOURS goes, a recent one stays, and
/// without a TTL (`0`, keep everything) both stay.
#[tokio::test]
async fn uploads_older_than_the_result_ttl_go() {
    let backend = fs_backend();
    let root = backend.fs_root().unwrap().to_path_buf();
    let temp = tempfile::tempdir().unwrap();
    let (old, recent) = ("uploads/0123456789abcdef0123456789abcdef", "uploads/fedcba9876543210fedcba9876543210");
    for key in [old, recent] {
        put(backend.storage.as_ref(), key).await;
    }
    backdate(&root.join(old), LONG_AGO);

    let kept = Sweep::new(Arc::clone(&backend.storage), settings(temp.path(), HOUR, 100)).run().await;
    assert_eq!(kept, SweepReport::default());
    let mut with_ttl = settings(temp.path(), HOUR, 100);
    with_ttl.result_ttl = Some(HOUR);
    let report = Sweep::new(Arc::clone(&backend.storage), with_ttl).run().await;
    assert_eq!(report, SweepReport { expired_uploads: 1, ..SweepReport::default() });
    assert_eq!(all_keys(backend.storage.as_ref()).await, [recent.to_string()]);
}
