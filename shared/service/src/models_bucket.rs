//! The service's own copy of the models (FF_MODELS_S3_PREFIX): a prefix of its storage holding
//! model files and `.hash` sidecars under their FaceFusion names, filled once by `ff models
//! upload` or `POST /api/v1/models/download` and read by every function and container.
//!
//! On Lambda this is what keeps cold starts inside AWS: a missing model is copied from S3 in the
//! same region (ranged GETs in parallel, straight into FF_MODELS_DIR) instead of GitHub or Hugging
//! Face. The model store verifies the copy against its sidecar exactly as it verifies a download.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use ff_pipeline::models::{catalogue, ModelSource, SourceError};
use futures_util::{StreamExt, TryStreamExt};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio::runtime::Handle;

use crate::storage::{Storage, StorageError, WriteCondition};

/// One ranged GET: big enough to amortise a request, small enough that several run at once even
/// for the smaller models.
const RANGE_BYTES: u64 = 8 << 20;
/// Ranged GETs in flight per model file. S3 serves each connection at tens of MB/s, so a few in
/// parallel fill a Lambda's network link.
const PARALLEL_RANGES: usize = 6;

/// The models prefix of a storage, as a [`ModelSource`] for the engine's model store.
#[derive(Debug)]
pub struct BucketModels {
    storage: Arc<dyn Storage>,
    /// Ends with '/' (the configuration makes sure).
    prefix: String,
    /// The runtime the storage client lives on; the model store calls from blocking threads.
    runtime: Handle,
}

/// What publishing one model did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The bucket already had this file with this sidecar.
    Present,
    /// File and sidecar were uploaded.
    Uploaded { bytes: u64 },
}

impl BucketModels {
    pub fn new(storage: Arc<dyn Storage>, prefix: impl Into<String>, runtime: Handle) -> Self {
        Self { storage, prefix: prefix.into(), runtime }
    }

    /// The key of a file of the models directory's layout (`inswapper_128.onnx`).
    pub fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }

    /// Uploads the verified local copy of catalogue model `name` from `models_dir` unless the
    /// bucket already has the same file (size and sidecar). The file goes first and the sidecar
    /// last, so a reader never finds a sidecar for a file that is not there yet.
    pub async fn publish(&self, models_dir: &Path, name: &str) -> Result<Published, StorageError> {
        let entry = catalogue().entry(name).map_err(|error| StorageError::backend("publish", name, error))?;
        let (file, hash) = (models_dir.join(&entry.file), models_dir.join(&entry.hash_file));
        let local = |error: std::io::Error, path: &Path| {
            StorageError::backend("publish", name, format!("{}: {error}", path.display()))
        };
        let sidecar = tokio::fs::read(&hash).await.map_err(|error| local(error, &hash))?;
        let size = tokio::fs::metadata(&file).await.map_err(|error| local(error, &file))?.len();
        let (file_key, hash_key) = (self.key(&entry.file), self.key(&entry.hash_file));
        if self.holds(&file_key, size, &hash_key, &sidecar).await? {
            return Ok(Published::Present);
        }
        self.storage.put_file(&file_key, &file).await?;
        self.storage.put_bytes(&hash_key, sidecar.into(), WriteCondition::None).await?;
        tracing::info!(model = name, key = file_key, bytes = size, "model published to the bucket");
        Ok(Published::Uploaded { bytes: size })
    }

    /// Whether the bucket has a file of `size` bytes at `file_key` and exactly `sidecar` beside it.
    async fn holds(&self, file_key: &str, size: u64, hash_key: &str, sidecar: &[u8]) -> Result<bool, StorageError> {
        match self.storage.head(file_key).await {
            Ok(meta) if meta.size == size => {}
            Ok(_) | Err(StorageError::NotFound { .. }) => return Ok(false),
            Err(error) => return Err(error),
        }
        match self.storage.get_bytes(hash_key, sidecar.len() as u64 + 1).await {
            Ok((stored, _)) => Ok(stored == sidecar),
            Err(StorageError::NotFound { .. } | StorageError::TooLarge { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Runs `work` on the storage's runtime and waits for it on this (blocking) thread.
    fn wait<T: Send + 'static>(&self, work: impl Future<Output = T> + Send + 'static) -> Result<T, SourceError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            // The receiver only goes away if the waiting thread did, and then no one wants it.
            let _ = sender.send(work.await);
        });
        receiver.recv().map_err(|_| "the runtime stopped before the storage call finished".into())
    }
}

impl ModelSource for BucketModels {
    fn location(&self) -> String {
        format!("{}://{}", self.storage.kind(), self.prefix)
    }

    fn read_small(&self, relative: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError> {
        let (storage, key) = (Arc::clone(&self.storage), self.key(relative));
        match self.wait(async move { storage.get_bytes(&key, max_bytes).await })? {
            Ok((bytes, _)) => Ok(Some(bytes.to_vec())),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn copy_to(&self, relative: &str, destination: &Path, max_bytes: u64) -> Result<Option<u64>, SourceError> {
        let (storage, key, destination) = (Arc::clone(&self.storage), self.key(relative), destination.to_path_buf());
        match self.wait(async move { copy_in_ranges(storage.as_ref(), &key, &destination, max_bytes).await })? {
            Ok(size) => Ok(Some(size)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}

/// Copies object `key` into `destination` with up to [`PARALLEL_RANGES`] ranged GETs at a time,
/// each writing its own part of the file; returns the object's size.
async fn copy_in_ranges(
    storage: &dyn Storage,
    key: &str,
    destination: &Path,
    max_bytes: u64,
) -> Result<u64, StorageError> {
    let size = storage.head(key).await?.size;
    if size > max_bytes {
        return Err(StorageError::TooLarge { key: key.to_string(), limit: max_bytes });
    }
    let local =
        |error: std::io::Error| StorageError::backend("get", key, format!("{}: {error}", destination.display()));
    let file = tokio::fs::File::create(destination).await.map_err(local)?;
    file.set_len(size).await.map_err(local)?;
    let ranges = (0..size).step_by(RANGE_BYTES as usize).map(|start| start..(start + RANGE_BYTES).min(size));
    futures_util::stream::iter(ranges)
        .map(|range| copy_range(storage, key, destination, range))
        .buffer_unordered(PARALLEL_RANGES)
        .try_collect::<()>()
        .await?;
    file.sync_all().await.map_err(local)?;
    Ok(size)
}

/// One ranged GET written at its offset of `destination`.
async fn copy_range(
    storage: &dyn Storage,
    key: &str,
    destination: &Path,
    range: std::ops::Range<u64>,
) -> Result<(), StorageError> {
    let local =
        |error: std::io::Error| StorageError::backend("get", key, format!("{}: {error}", destination.display()));
    let mut file = tokio::fs::OpenOptions::new().write(true).open(destination).await.map_err(local)?;
    file.seek(std::io::SeekFrom::Start(range.start)).await.map_err(local)?;
    let mut body = storage.get_range(key, range.clone()).await?.stream;
    let mut written = 0u64;
    let wanted = range.end - range.start;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        if written > wanted {
            break;
        }
        file.write_all(&chunk).await.map_err(local)?;
    }
    if written != wanted {
        // The object changed or the store misbehaved; the CRC check would catch it, but saying so
        // here names the cause.
        let detail = format!("range {range:?} gave {written} bytes instead of {wanted}");
        return Err(StorageError::backend("get", key, detail));
    }
    file.flush().await.map_err(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SERVICE_PREFIXES;
    use crate::storage::FsStorage;

    #[test]
    fn the_reserved_prefixes_are_the_services_own() {
        let owned = [
            crate::jobs::JOBS_PREFIX,
            crate::uploads::UPLOADS_PREFIX,
            crate::batch::INBOX_PREFIX,
            crate::batch::OUTBOX_PREFIX,
            crate::batch::FAILED_PREFIX,
            crate::batch::CLAIM_PREFIX,
            crate::jobs::idempotency::IDEMPOTENCY_PREFIX,
        ];
        for prefix in owned {
            assert!(SERVICE_PREFIXES.contains(&prefix), "{prefix} is missing from SERVICE_PREFIXES");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_of_several_ranges_arrives_whole() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(FsStorage::new(dir.path().join("data")));
        // Three ranges and a short tail, with content that shows a misplaced range.
        let body: Vec<u8> = (0..(2 * RANGE_BYTES + 12_345)).map(|i| (i % 251) as u8).collect();
        storage.put_bytes("models/x.onnx", body.clone().into(), WriteCondition::None).await.unwrap();
        storage.put_bytes("models/x.hash", "01234567".into(), WriteCondition::None).await.unwrap();
        let source = BucketModels::new(Arc::clone(&storage), "models/", Handle::current());
        assert_eq!(source.location(), "fs://models/");

        let destination = dir.path().join("x.onnx");
        let target = destination.clone();
        let copied = tokio::task::spawn_blocking(move || {
            let size = source.copy_to("x.onnx", &target, u64::MAX).unwrap();
            let sidecar = source.read_small("x.hash", 64).unwrap();
            let missing = source.copy_to("y.onnx", &target.with_extension("y"), u64::MAX).unwrap();
            let too_small = source.copy_to("x.onnx", &target.with_extension("z"), 10).is_err();
            (size, sidecar, missing, too_small)
        })
        .await
        .unwrap();
        assert_eq!(copied, (Some(body.len() as u64), Some(b"01234567".to_vec()), None, true));
        assert!(std::fs::read(&destination).unwrap() == body, "the copy differs");
    }
}
