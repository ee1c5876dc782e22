//! Object storage behind one trait: S3 (or any S3-compatible server) and the local filesystem.
//!
//! Jobs, their inputs and results live here, so the same handlers run in a container on a local
//! disk, in a container next to MinIO, and as Lambda functions on S3. Keys are '/'-separated
//! strings (`jobs/<id>.json`); each backend maps them onto its own namespace (a bucket plus an
//! optional prefix, or a directory).
//!
//! Every call is bounded by a timeout, and bodies move as streams of chunks, so a video is never
//! held in memory whole. Compare-and-swap writes (`WriteCondition`) are what make the job records
//! safe to update from several workers at once.

mod fs;
#[cfg(feature = "s3")]
mod s3;
/// The S3 test server for tests; not in release builds.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

pub use fs::FsStorage;
#[cfg(feature = "s3")]
pub use s3::{S3Settings, S3Storage};

/// How long one storage call may take before it fails with `Timeout`. Generous because a part of a
/// multipart upload is 8 MiB and slow links exist; a healthy S3 answers small calls in milliseconds.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// S3 keys are at most 1024 bytes of UTF-8; the filesystem backend keeps the same limit so a key
/// that works on one backend works on the other.
pub const MAX_KEY_BYTES: usize = 1024;

/// A body moving in chunks; an error ends it.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StorageError>> + Send>>;

/// What a stored object is, without its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key as the caller named it (without the backend's prefix).
    pub key: String,
    pub size: u64,
    /// Opaque version tag: changes whenever the object is written. Pass it back in
    /// `WriteCondition::IfMatch` to replace exactly this version.
    pub etag: String,
    /// `None` where the backend does not report it (S3's answer to a put).
    pub last_modified: Option<SystemTime>,
}

/// A write's precondition, checked atomically with the write by the backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteCondition {
    /// Write whatever is there.
    None,
    /// Create only: fail with `PreconditionFailed` if the key exists (`If-None-Match: *`).
    IfAbsent,
    /// Replace only this version: fail with `PreconditionFailed` if the key is missing or its etag
    /// differs (`If-Match: <etag>`).
    IfMatch(String),
}

/// A stored object's metadata and its body.
pub struct ObjectBody {
    pub meta: ObjectMeta,
    pub stream: ByteStream,
}

impl fmt::Debug for ObjectBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectBody").field("meta", &self.meta).finish_non_exhaustive()
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in ascending key order (UTF-8 byte order, as S3 lists).
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` on the last page.
    pub next_start_after: Option<String>,
}

/// Which part of a prefix to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListRequest {
    /// List keys strictly after this one (a key from an earlier page).
    pub start_after: Option<String>,
    /// At most this many objects (1..=1000; 0 counts as 1000).
    pub limit: usize,
    /// Only objects directly under the prefix's last '/', not in deeper "directories" (S3's
    /// `delimiter=/`). `jobs/` then lists the job records without their inputs.
    pub shallow: bool,
}

/// Why a storage call failed; the HTTP mapping lives with the routes that call storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object `{key}` not found")]
    NotFound { key: String },
    #[error("object `{key}` changed or exists: the write's precondition failed")]
    PreconditionFailed { key: String },
    #[error("storage {operation} of `{key}` did not finish within {} s", .limit.as_secs())]
    Timeout { operation: &'static str, key: String, limit: Duration },
    #[error("object `{key}` is larger than the {limit} bytes allowed here")]
    TooLarge { key: String, limit: u64 },
    #[error("invalid object key `{key}`: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("storage {operation} of `{key}` failed: {detail}")]
    Backend { operation: &'static str, key: String, detail: String },
}

impl StorageError {
    pub fn backend(operation: &'static str, key: &str, detail: impl fmt::Display) -> Self {
        Self::Backend { operation, key: key.to_string(), detail: detail.to_string() }
    }

    /// Whether trying again later can help (the store was slow or down, not the request wrong).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Backend { .. })
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// What a presigned PUT must carry: its `Content-Type` and `Content-Length`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutContent {
    pub content_type: String,
    pub length: u64,
}

/// Object storage. Implementations are cheap to share behind an `Arc`.
#[async_trait]
pub trait Storage: Send + Sync + fmt::Debug {
    /// `"fs"` or `"s3"`: for logs and for callers that pick a response style (redirect or stream).
    fn kind(&self) -> &'static str;

    /// Writes a small body in one call.
    async fn put_bytes(&self, key: &str, bytes: Bytes, condition: WriteCondition) -> Result<ObjectMeta>;

    /// Writes a body of any size without holding it whole (S3: multipart above 8 MiB).
    async fn put_stream(&self, key: &str, body: ByteStream, condition: WriteCondition) -> Result<ObjectMeta>;

    /// Opens an object for reading in chunks.
    async fn get(&self, key: &str) -> Result<ObjectBody>;

    /// Bytes `range` (end exclusive) of an object whose size the caller knows from `head`: one
    /// part of a ranged parallel download. The meta's `size` is the length of the part.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<ObjectBody>;

    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Removes an object; removing a missing one succeeds (S3 semantics), so retries are safe.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Lists objects whose keys start with `prefix`, one page at a time.
    async fn list(&self, prefix: &str, request: ListRequest) -> Result<ListPage>;

    /// A URL that lets its holder GET the object until it expires; `None` where the backend has no
    /// such thing (the filesystem), so the caller streams the object itself.
    async fn presign_get(&self, key: &str, expires_in: Duration) -> Result<Option<String>>;

    /// A URL that lets its holder PUT the object until it expires, with exactly `content`'s type and
    /// length (both signed, so the store refuses any other); `None` on the filesystem.
    async fn presign_put(&self, key: &str, expires_in: Duration, content: &PutContent) -> Result<Option<String>>;

    /// Removes this backend's own temporary files last written more than `older_than` ago, at
    /// most `limit` of them, and says how many went: the `.ff-tmp/` files of the filesystem
    /// backend that a killed writer left (see `sweep.rs`). S3 has none: a failed multipart
    /// upload is aborted, and a bucket lifecycle rule catches one a killed process left.
    async fn remove_stale_temp_files(&self, _older_than: Duration, _limit: usize) -> Result<usize> {
        Ok(0)
    }

    /// Uploads a local file, streaming it.
    async fn put_file(&self, key: &str, path: &Path) -> Result<ObjectMeta> {
        let file = tokio::fs::File::open(path).await.map_err(|e| StorageError::backend("put_file", key, e))?;
        let key_for_errors = key.to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(move |chunk| chunk.map_err(|e| StorageError::backend("put_file", &key_for_errors, e)));
        self.put_stream(key, Box::pin(stream), WriteCondition::None).await
    }

    /// Reads a whole object, refusing one over `max_bytes` before or while reading it.
    async fn get_bytes(&self, key: &str, max_bytes: u64) -> Result<(Bytes, ObjectMeta)> {
        let ObjectBody { meta, mut stream } = self.get(key).await?;
        if meta.size > max_bytes {
            return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
        }
        let mut buffer = BytesMut::with_capacity(meta.size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            // The size was announced up front, but the object may be replaced while we read.
            if (buffer.len() + chunk.len()) as u64 > max_bytes {
                return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
            }
            buffer.extend_from_slice(&chunk);
        }
        Ok((buffer.freeze(), meta))
    }
}

/// Streams `key` into the file at `path`, refusing more than `max_bytes`; the object is never held
/// in memory whole.
pub async fn download_to_file(storage: &dyn Storage, key: &str, path: &Path, max_bytes: u64) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let body = storage.get(key).await?;
    if body.meta.size > max_bytes {
        return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
    }
    let local = |e: std::io::Error| StorageError::backend("download", key, format!("{}: {e}", path.display()));
    let mut file = tokio::fs::File::create(path).await.map_err(local)?;
    let mut stream = body.stream;
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    file.flush().await.map_err(local)
}

/// Checks that `key` names an object the same way on every backend and cannot leave the
/// filesystem backend's directory: no empty, `.` or `..` segments, no leading '/', no
/// backslashes or control characters, and not one of the filesystem backend's own folders.
pub fn validate_key(key: &str) -> Result<()> {
    let invalid = |reason| Err(StorageError::InvalidKey { key: key.chars().take(200).collect(), reason });
    if key.is_empty() {
        return invalid("empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return invalid("longer than 1024 bytes");
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return invalid("control characters and backslashes are not allowed");
    }
    if key.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return invalid("empty, `.` and `..` path segments are not allowed");
    }
    if fs::is_reserved(key) {
        return invalid("the name is reserved for the storage's own files");
    }
    Ok(())
}

/// A prefix to list under: like a key, but may be empty or end with '/'.
pub fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() {
        return Ok(());
    }
    validate_key(prefix.strip_suffix('/').unwrap_or(prefix))
}

/// Wraps a chunk stream so that each chunk must arrive within `limit`: a stalled download ends
/// with `Timeout` instead of holding a connection and a worker forever.
pub(crate) fn with_idle_timeout(stream: ByteStream, operation: &'static str, key: &str, limit: Duration) -> ByteStream {
    let key = key.to_string();
    let state = (stream, false);
    Box::pin(futures_util::stream::unfold(state, move |(mut stream, done)| {
        let key = key.clone();
        async move {
            if done {
                return None;
            }
            match tokio::time::timeout(limit, stream.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (stream, false))),
                Ok(Some(Err(error))) => Some((Err(error), (stream, true))),
                Ok(None) => None,
                Err(_) => Some((Err(StorageError::Timeout { operation, key, limit }), (stream, true))),
            }
        }
    }))
}

/// Runs one storage call under `limit`.
pub(crate) async fn timed<T>(
    operation: &'static str,
    key: &str,
    limit: Duration,
    call: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(StorageError::Timeout { operation, key: key.to_string(), limit }),
    }
}

/// A one-chunk stream, for callers that have the body in memory.
pub fn stream_of(bytes: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(bytes) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_the_data_directory_are_rejected() {
        for key in ["", "/abs", "a//b", "a/./b", "../x", "a/..", "a\\b", "tab\there", "a/"] {
            assert!(matches!(validate_key(key), Err(StorageError::InvalidKey { .. })), "{key:?}");
        }
        assert!(validate_key(&"k".repeat(MAX_KEY_BYTES + 1)).is_err());
    }

    #[test]
    fn ordinary_keys_are_accepted() {
        for key in ["jobs/0192.json", "jobs/x/inputs/source-0.jpg", "inbox/a b.png", "été/..hidden", "a.b"] {
            validate_key(key).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
    }

    #[test]
    fn the_filesystem_backends_own_folders_are_not_keys() {
        assert!(validate_key(".ff-tmp/x").is_err());
        assert!(validate_key(".ff-locks/3.lock").is_err());
        assert!(validate_key("jobs/.ff-tmp").is_ok());
    }

    #[test]
    fn prefixes_may_be_empty_or_end_with_a_slash() {
        for prefix in ["", "jobs/", "jobs", "jobs/abc"] {
            assert!(validate_prefix(prefix).is_ok(), "{prefix:?}");
        }
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("../").is_err());
        assert!(validate_prefix("a//").is_err());
    }

    #[tokio::test]
    async fn a_stalled_stream_times_out() {
        let stalled: ByteStream = Box::pin(futures_util::stream::pending());
        let mut stream = with_idle_timeout(stalled, "get", "k", Duration::from_millis(20));
        assert!(matches!(stream.next().await, Some(Err(StorageError::Timeout { .. }))));
        assert!(stream.next().await.is_none());
    }
}
