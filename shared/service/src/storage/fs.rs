//! The filesystem backend: one file per object under a root directory (`FF_DATA_DIR`).
//!
//! Writes go to a temporary file in `<root>/.ff-tmp/` and are renamed into place, so a reader (or
//! a crash) never sees half an object. Conditional writes check their precondition and rename
//! while holding an advisory lock (`flock`) on one of 256 lock files in `<root>/.ff-locks/`,
//! chosen by the key's hash: the check and the rename are then one step for every writer, in
//! this process or another one sharing the directory, so a compare-and-swap cannot lose an update.
//! Striping keeps the number of lock files fixed; deleting a lock file would break the exclusion.
//!
//! The etag is the file's modification time, size and inode. Every write happens under the lock
//! and makes the new file's mtime later than the one it replaces, so a key never shows the same
//! etag twice, even when the same bytes are written again.

use std::fs::TryLockError;
use std::io::ErrorKind;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::{
    timed, validate_key, validate_prefix, with_idle_timeout, ByteStream, ListPage, ListRequest, ObjectBody, ObjectMeta,
    PutContent, Result, Storage, StorageError, WriteCondition, DEFAULT_CALL_TIMEOUT,
};

const TMP_DIR: &str = ".ff-tmp";
const LOCK_DIR: &str = ".ff-locks";
const LOCK_STRIPES: u32 = 256;
/// How often a writer waiting for a lock held by someone else looks again.
const LOCK_POLL: Duration = Duration::from_millis(2);
/// Chunk size of reads: large enough for throughput, small enough to bound memory per reader.
const READ_CHUNK: usize = 256 * 1024;
const MAX_LIST_LIMIT: usize = 1000;

/// The backend's own folders at the root; keys may not start with them.
pub(crate) fn is_reserved(key: &str) -> bool {
    let first = key.split('/').next().unwrap_or_default();
    first == TMP_DIR || first == LOCK_DIR
}

#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
    call_timeout: Duration,
}

/// Held while a key's stripe is locked; closing the file releases the lock.
struct StripeLock {
    _file: std::fs::File,
}

impl FsStorage {
    /// Objects under `root`; the directory is created on the first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), call_timeout: DEFAULT_CALL_TIMEOUT }
    }

    pub fn with_call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        // Validated keys contain no empty, `.` or `..` segments, so this stays under the root.
        self.root.join(key)
    }

    /// Waits for the stripe lock of `key`, polling, within the call timeout.
    async fn lock(&self, operation: &'static str, key: &str) -> Result<StripeLock> {
        let stripe = stripe_of(key);
        let dir = self.root.join(LOCK_DIR);
        let path = dir.join(format!("{stripe:03}.lock"));
        let key_owned = key.to_string();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)
        })
        .await
        .map_err(|e| StorageError::backend(operation, key, e))?
        .map_err(|e| StorageError::backend(operation, key, format!("lock file: {e}")))?;
        let wait = async {
            loop {
                // `try_lock` never blocks, so it is fine on the async thread.
                match file.try_lock() {
                    Ok(()) => return Ok(()),
                    Err(TryLockError::WouldBlock) => tokio::time::sleep(LOCK_POLL).await,
                    Err(TryLockError::Error(e)) => return Err(StorageError::backend(operation, &key_owned, e)),
                }
            }
        };
        timed(operation, key, self.call_timeout, wait).await?;
        Ok(StripeLock { _file: file })
    }

    async fn current_meta(&self, key: &str, path: &Path) -> Result<Option<ObjectMeta>> {
        match tokio::fs::metadata(path).await {
            Ok(meta) if meta.is_file() => Ok(Some(object_meta(key, &meta))),
            Ok(_) => Ok(None),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(StorageError::backend("stat", key, e)),
        }
    }

    /// Streams `body` into a new temporary file and makes it durable; returns its path.
    async fn write_temp(&self, key: &str, mut body: ByteStream) -> Result<PathBuf> {
        let dir = self.root.join(TMP_DIR);
        let io = |e: std::io::Error| StorageError::backend("put", key, e);
        timed("put", key, self.call_timeout, async { tokio::fs::create_dir_all(&dir).await.map_err(io) }).await?;
        let path = dir.join(uuid::Uuid::new_v4().simple().to_string());
        let written = async {
            let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                timed("put", key, self.call_timeout, async { file.write_all(&chunk).await.map_err(io) }).await?;
            }
            timed("put", key, self.call_timeout, async {
                file.flush().await.map_err(io)?;
                file.sync_all().await.map_err(io)
            })
            .await
        };
        match written.await {
            Ok(()) => Ok(path),
            Err(error) => {
                let _ = tokio::fs::remove_file(&path).await;
                Err(error)
            }
        }
    }

    /// Moves a finished temporary file into place under the key's lock, if `condition` holds.
    async fn commit(&self, key: &str, temp: &Path, condition: &WriteCondition) -> Result<ObjectMeta> {
        let target = self.path_of(key);
        let _lock = self.lock("put", key).await?;
        let current = self.current_meta(key, &target).await?;
        let allowed = match (condition, &current) {
            (WriteCondition::None, _) => true,
            (WriteCondition::IfAbsent, existing) => existing.is_none(),
            (WriteCondition::IfMatch(expected), Some(existing)) => existing.etag == *expected,
            (WriteCondition::IfMatch(_), None) => false,
        };
        if !allowed {
            return Err(StorageError::PreconditionFailed { key: key.to_string() });
        }
        if let Some(existing) = current {
            self.make_mtime_later(key, temp, existing.last_modified).await?;
        }
        let io = |e: std::io::Error| StorageError::backend("put", key, e);
        timed("put", key, self.call_timeout, async {
            // A concurrent delete may prune the parent directory between the two steps; try again.
            let mut attempts = 0;
            loop {
                if let Some(parent) = target.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(io)?;
                }
                match tokio::fs::rename(temp, &target).await {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == ErrorKind::NotFound && attempts < 3 => attempts += 1,
                    Err(e) if e.kind() == ErrorKind::IsADirectory || e.kind() == ErrorKind::DirectoryNotEmpty => {
                        return Err(StorageError::InvalidKey {
                            key: key.to_string(),
                            reason: "the key is a folder of other objects here",
                        })
                    }
                    Err(e) => return Err(io(e)),
                }
            }
        })
        .await?;
        self.current_meta(key, &target).await?.ok_or_else(|| StorageError::backend("put", key, "vanished after write"))
    }

    /// Sets the new file's mtime past the replaced one's when the clock has not moved on (coarse
    /// timestamps, or a clock step back), so the etag changes with every write.
    async fn make_mtime_later(&self, key: &str, temp: &Path, previous: Option<SystemTime>) -> Result<()> {
        let Some(previous) = previous else {
            return Ok(());
        };
        let temp = temp.to_path_buf();
        let key_owned = key.to_string();
        let task = tokio::task::spawn_blocking(move || -> Result<()> {
            let io = |e: std::io::Error| StorageError::backend("put", &key_owned, e);
            let file = std::fs::OpenOptions::new().write(true).open(&temp).map_err(io)?;
            let modified = file.metadata().and_then(|m| m.modified()).map_err(io)?;
            if modified <= previous {
                file.set_modified(previous + Duration::from_micros(1)).map_err(io)?;
            }
            Ok(())
        });
        timed("put", key, self.call_timeout, async { task.await.map_err(|e| StorageError::backend("put", key, e))? })
            .await
    }

    /// Removes now-empty folders between a deleted object and the root, so listings and the
    /// directory do not fill with empty folders. A folder someone just wrote into stays.
    async fn prune_empty_parents(&self, path: &Path) {
        let mut current = path.parent();
        while let Some(dir) = current {
            if dir == self.root || !dir.starts_with(&self.root) {
                break;
            }
            if tokio::fs::remove_dir(dir).await.is_err() {
                break;
            }
            current = dir.parent();
        }
    }
}

#[async_trait]
impl Storage for FsStorage {
    fn kind(&self) -> &'static str {
        "fs"
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes, condition: WriteCondition) -> Result<ObjectMeta> {
        self.put_stream(key, super::stream_of(bytes), condition).await
    }

    async fn put_stream(&self, key: &str, body: ByteStream, condition: WriteCondition) -> Result<ObjectMeta> {
        validate_key(key)?;
        let body = with_idle_timeout(body, "put", key, self.call_timeout);
        let temp = self.write_temp(key, body).await?;
        let result = self.commit(key, &temp, &condition).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        result
    }

    async fn get(&self, key: &str) -> Result<ObjectBody> {
        validate_key(key)?;
        let path = self.path_of(key);
        let opened = timed("get", key, self.call_timeout, async {
            let file = tokio::fs::File::open(&path).await.map_err(|e| map_io("get", key, e))?;
            let meta = file.metadata().await.map_err(|e| map_io("get", key, e))?;
            if !meta.is_file() {
                return Err(StorageError::NotFound { key: key.to_string() });
            }
            Ok((file, object_meta(key, &meta)))
        })
        .await?;
        let (file, meta) = opened;
        let key_owned = key.to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, READ_CHUNK)
            .map(move |chunk| chunk.map_err(|e| StorageError::backend("get", &key_owned, e)));
        Ok(ObjectBody { meta, stream: with_idle_timeout(Box::pin(stream), "get", key, self.call_timeout) })
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBody> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        validate_key(key)?;
        let path = self.path_of(key);
        let opened = timed("get", key, self.call_timeout, async {
            let mut file = tokio::fs::File::open(&path).await.map_err(|e| map_io("get", key, e))?;
            let meta = file.metadata().await.map_err(|e| map_io("get", key, e))?;
            if !meta.is_file() {
                return Err(StorageError::NotFound { key: key.to_string() });
            }
            if range.start > range.end || range.end > meta.len() {
                let detail = format!("range {range:?} outside the object's {} bytes", meta.len());
                return Err(StorageError::backend("get", key, detail));
            }
            file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(|e| map_io("get", key, e))?;
            Ok((file, ObjectMeta { size: range.end - range.start, ..object_meta(key, &meta) }))
        })
        .await?;
        let (file, meta) = opened;
        let key_owned = key.to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(meta.size), READ_CHUNK)
            .map(move |chunk| chunk.map_err(|e| StorageError::backend("get", &key_owned, e)));
        Ok(ObjectBody { meta, stream: with_idle_timeout(Box::pin(stream), "get", key, self.call_timeout) })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let path = self.path_of(key);
        timed("head", key, self.call_timeout, async {
            self.current_meta(key, &path).await?.ok_or_else(|| StorageError::NotFound { key: key.to_string() })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let path = self.path_of(key);
        let _lock = self.lock("delete", key).await?;
        timed("delete", key, self.call_timeout, async {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => Ok(()),
                Err(e) if is_missing(&e) || e.kind() == ErrorKind::IsADirectory => return Ok(()),
                Err(e) => Err(StorageError::backend("delete", key, e)),
            }?;
            self.prune_empty_parents(&path).await;
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str, request: ListRequest) -> Result<ListPage> {
        validate_prefix(prefix)?;
        let root = self.root.clone();
        let prefix_owned = prefix.to_string();
        let task = tokio::task::spawn_blocking(move || list_blocking(&root, &prefix_owned, &request));
        timed("list", prefix, self.call_timeout, async {
            task.await.map_err(|e| StorageError::backend("list", prefix, e))?
        })
        .await
    }

    async fn presign_get(&self, key: &str, _expires_in: Duration) -> Result<Option<String>> {
        validate_key(key)?;
        Ok(None)
    }

    async fn remove_stale_temp_files(&self, older_than: Duration, limit: usize) -> Result<usize> {
        let dir = self.root.join(TMP_DIR);
        let task = tokio::task::spawn_blocking(move || remove_stale_files(&dir, older_than, limit));
        timed("sweep", TMP_DIR, self.call_timeout, async {
            task.await.map_err(|e| StorageError::backend("sweep", TMP_DIR, e))?
        })
        .await
    }

    async fn presign_put(&self, key: &str, _expires_in: Duration, _content: &PutContent) -> Result<Option<String>> {
        validate_key(key)?;
        Ok(None)
    }
}

/// Removes files in `dir` (not folders) last modified more than `older_than` ago, at most
/// `limit`. A writer streaming into its temporary file keeps moving its mtime, so only files
/// nobody has written for that long go; one that vanishes meanwhile was committed or cleaned up.
fn remove_stale_files(dir: &Path, older_than: Duration, limit: usize) -> Result<usize> {
    let io = |e: std::io::Error| StorageError::backend("sweep", TMP_DIR, e);
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries {
        if removed == limit {
            break;
        }
        let entry = entry.map_err(io)?;
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta.modified().ok().and_then(|modified| now.duration_since(modified).ok());
        if !meta.is_file() || age.is_none_or(|age| age < older_than) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(removed)
}

fn list_blocking(root: &Path, prefix: &str, request: &ListRequest) -> Result<ListPage> {
    let limit = match request.limit {
        0 => MAX_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    // The folder the prefix points into, and what names in it must start with.
    let (dir_key, name_prefix) = match prefix.rfind('/') {
        Some(slash) => (&prefix[..slash], &prefix[slash + 1..]),
        None => ("", prefix),
    };
    let dir = if dir_key.is_empty() { root.to_path_buf() } else { root.join(dir_key) };
    let mut keys = Vec::new();
    let base = if dir_key.is_empty() { String::new() } else { format!("{dir_key}/") };
    collect_keys(&dir, &base, name_prefix, !request.shallow, &mut keys)
        .map_err(|e| StorageError::backend("list", prefix, e))?;
    keys.sort_unstable();
    let after = request.start_after.as_deref().unwrap_or_default();
    let mut page: Vec<String> = keys.into_iter().filter(|key| key.as_str() > after).take(limit + 1).collect();
    let truncated = page.len() > limit;
    page.truncate(limit);
    let mut objects = Vec::with_capacity(page.len());
    for key in page {
        // An object deleted since the walk is simply left out.
        match std::fs::metadata(root.join(&key)) {
            Ok(meta) if meta.is_file() => objects.push(object_meta(&key, &meta)),
            Ok(_) => {}
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(StorageError::backend("list", &key, e)),
        }
    }
    let next_start_after = if truncated { objects.last().map(|o| o.key.clone()) } else { None };
    Ok(ListPage { objects, next_start_after })
}

/// Adds the keys of files under `dir` (whose key prefix is `base`) whose names at this level start
/// with `name_prefix`; descends into folders when `recursive`.
fn collect_keys(
    dir: &Path,
    base: &str,
    name_prefix: &str,
    recursive: bool,
    keys: &mut Vec<String>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        // Names that are not UTF-8 cannot be keys; they were not written through this backend.
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with(name_prefix) || (base.is_empty() && (name == TMP_DIR || name == LOCK_DIR)) {
            continue;
        }
        let file_type = entry.file_type()?;
        let key = format!("{base}{name}");
        if file_type.is_file() {
            keys.push(key);
        } else if file_type.is_dir() && recursive {
            collect_keys(&entry.path(), &format!("{key}/"), "", true, keys)?;
        }
    }
    Ok(())
}

fn object_meta(key: &str, meta: &std::fs::Metadata) -> ObjectMeta {
    let modified = meta.modified().ok();
    let nanos = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    ObjectMeta {
        key: key.to_string(),
        size: meta.len(),
        etag: format!("\"{nanos:x}-{:x}-{:x}\"", meta.len(), inode(meta)),
        last_modified: modified,
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.ino()
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> u64 {
    0
}

fn stripe_of(key: &str) -> u32 {
    let digest = Md5::digest(key.as_bytes());
    u32::from_le_bytes([digest[0], digest[1], digest[2], digest[3]]) % LOCK_STRIPES
}

fn is_missing(error: &std::io::Error) -> bool {
    // NotADirectory: a path segment of the key is a file, so the key cannot exist.
    matches!(error.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}

fn map_io(operation: &'static str, key: &str, error: std::io::Error) -> StorageError {
    if is_missing(&error) {
        StorageError::NotFound { key: key.to_string() }
    } else {
        StorageError::backend(operation, key, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_spread_keys_and_stay_in_range() {
        let stripes: std::collections::HashSet<u32> = (0..1000).map(|i| stripe_of(&format!("jobs/{i}.json"))).collect();
        assert!(stripes.iter().all(|s| *s < LOCK_STRIPES));
        assert!(stripes.len() > 200, "{}", stripes.len());
    }

    #[tokio::test]
    async fn a_rewrite_of_the_same_bytes_changes_the_etag() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        let first = storage.put_bytes("a/b", Bytes::from_static(b"same"), WriteCondition::None).await.unwrap();
        let second = storage.put_bytes("a/b", Bytes::from_static(b"same"), WriteCondition::None).await.unwrap();
        assert_ne!(first.etag, second.etag);
        let stale = storage.put_bytes("a/b", Bytes::from_static(b"x"), WriteCondition::IfMatch(first.etag)).await;
        assert!(matches!(stale, Err(StorageError::PreconditionFailed { .. })));
    }

    #[tokio::test]
    async fn internal_folders_are_not_listed() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FsStorage::new(dir.path());
        storage.put_bytes("k", Bytes::from_static(b"v"), WriteCondition::IfAbsent).await.unwrap();
        let page = storage.list("", ListRequest::default()).await.unwrap();
        assert_eq!(page.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["k"]);
    }
}
