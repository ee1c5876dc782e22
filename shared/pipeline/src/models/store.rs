//! The models directory: where each catalogue file lives, whether it is intact, and fetching it.
//!
//! Integrity follows FaceFusion 3.5.3: each model `X.onnx` has a sidecar `X.hash` holding the CRC32
//! (zlib) of the whole file as 8 lowercase hex digits, and a model counts as present only when the
//! two agree. A directory laid out for FaceFusion (`.assets/models`) works here unchanged.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::catalogue::{catalogue, ModelEntry};
use super::download::{fetch_small, fetch_to_part, Timeouts, MAX_MODEL_BYTES, MAX_SIDECAR_BYTES};
use super::source::ModelSource;
use crate::error::{PipelineError, Result};
use crate::options::custom_model_stem;

/// The folder of the models directory where users drop their own DeepFaceLive models, which
/// FaceFusion offers as deep swapper models `custom/<file stem>`.
pub const CUSTOM_MODELS_DIR: &str = "custom";
/// The extension of a custom deep swapper model.
const CUSTOM_MODEL_EXTENSION: &str = "dfm";

/// Attempts per mirror URL for failures a retry can fix (truncation, stalls, resets); each
/// attempt resumes from the part file, so progress is kept.
const ATTEMPTS_PER_URL: u32 = 3;

/// What is on disk for one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelStatus {
    pub name: String,
    /// Where the model file is (or would be).
    pub file: PathBuf,
    /// The model file exists.
    pub downloaded: bool,
    /// Size of the model file in bytes, when it exists.
    pub size: Option<u64>,
    /// The `.hash` sidecar exists and matches the file's CRC32.
    pub verified: bool,
}

/// One download location: a URL template with `{base_name}` and `{file_name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mirror {
    /// The catalogue provider this template belongs to; `None` for caller-supplied mirrors, which
    /// are trusted to carry every model.
    provider: Option<String>,
    template: String,
}

impl Mirror {
    fn url(&self, base_name: &str, file_name: &str) -> String {
        self.template.replace("{base_name}", base_name).replace("{file_name}", file_name)
    }
}

/// File identity at the time it last verified, so repeated `ensure` calls do not re-read
/// hundreds of megabytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    crc: String,
}

/// The state of a model file against its sidecar.
#[derive(Debug)]
enum Check {
    Verified,
    MissingFile,
    MissingHash,
    /// The sidecar is not 8 hex digits.
    BadHash(String),
    Mismatch {
        actual: String,
        expected: String,
    },
}

/// A models directory plus the download policy. Cheap to share behind an `Arc`; all methods take
/// `&self` and are safe to call from many threads.
#[derive(Debug)]
pub struct ModelStore {
    dir: PathBuf,
    allow_download: bool,
    mirrors: Vec<Mirror>,
    timeouts: Timeouts,
    /// Tried before the mirrors, and even when downloads are off: the operator filled it.
    source: Option<Arc<dyn ModelSource>>,
    /// One mutex per model name, so concurrent `ensure` calls in this process download once.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    verified: Mutex<HashMap<String, Stamp>>,
}

impl ModelStore {
    /// A store over `dir` that downloads from the official providers (GitHub, then Hugging Face)
    /// when `allow_download` is set.
    pub fn new(dir: impl Into<PathBuf>, allow_download: bool) -> Self {
        let mirrors = catalogue()
            .providers
            .iter()
            .map(|provider| Mirror { provider: Some(provider.name.clone()), template: provider.url.clone() })
            .collect();
        Self {
            dir: dir.into(),
            allow_download,
            mirrors,
            timeouts: Timeouts::default(),
            source: None,
            locks: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces the official providers with mirrors, tried in order. Each is either a URL
    /// template containing `{file_name}` (and usually `{base_name}`), or a base URL to which
    /// `/{base_name}/{file_name}` is appended, e.g. `http://127.0.0.1:8080`.
    pub fn with_base_urls(mut self, base_urls: Vec<String>) -> Self {
        self.mirrors = base_urls
            .into_iter()
            .map(|base| {
                let template = if base.contains("{file_name}") {
                    base
                } else {
                    format!("{}/{{base_name}}/{{file_name}}", base.trim_end_matches('/'))
                };
                Mirror { provider: None, template }
            })
            .collect();
        self
    }

    /// Sets the connect timeout and the longest silence tolerated while receiving.
    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.timeouts = Timeouts { connect, read };
        self
    }

    /// Copies missing models from `source` before trying any mirror. The source is used even when
    /// downloads are off: it is the operator's own copy, not the internet.
    pub fn with_source(mut self, source: Arc<dyn ModelSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// Where missing models are copied from before the mirrors, if anywhere.
    pub fn source_location(&self) -> Option<String> {
        self.source.as_ref().map(|source| source.location())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn allow_download(&self) -> bool {
        self.allow_download
    }

    /// The URLs a model is fetched from, in the order they are tried.
    pub fn urls(&self, name: &str) -> Result<Vec<String>> {
        if custom_model_stem(name).is_some() {
            // A user's own file: nowhere to fetch it from.
            return Ok(Vec::new());
        }
        let entry = catalogue().entry(name)?;
        Ok(self.mirrors_for(entry).map(|mirror| mirror.url(&entry.base_name, entry.url_file_name())).collect())
    }

    /// Where the model file is or will be. Does not touch the disk.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        if let Some(stem) = custom_model_stem(name) {
            return Ok(self.custom_path(stem));
        }
        Ok(self.dir.join(&catalogue().entry(name)?.file))
    }

    /// What is on disk for `name`. Reads the whole file to check its CRC32 unless it verified
    /// before unchanged.
    /// A custom model has no sidecar (FaceFusion does not check it), so it counts as verified
    /// when its file exists.
    pub fn status(&self, name: &str) -> Result<ModelStatus> {
        if let Some(stem) = custom_model_stem(name) {
            let file = self.custom_path(stem);
            let size = file_size(&file)?;
            let present = size.is_some();
            return Ok(ModelStatus { name: name.to_string(), file, downloaded: present, size, verified: present });
        }
        let entry = catalogue().entry(name)?;
        let file = self.dir.join(&entry.file);
        let size = file_size(&file)?;
        let verified = size.is_some() && matches!(self.check(entry)?, Check::Verified);
        Ok(ModelStatus { name: entry.name.clone(), file, downloaded: size.is_some(), size, verified })
    }

    /// The path of a verified model file, downloading it first when it is missing or corrupt and
    /// downloads are allowed. Without downloads, a missing file or sidecar is
    /// [`PipelineError::ModelMissing`] and a CRC mismatch [`PipelineError::ModelCorrupt`].
    ///
    /// A custom deep swapper model (`custom/<stem>`) is used as it is, without a hash check, as
    /// FaceFusion does; it is [`PipelineError::ModelMissing`] when its file is not there.
    pub fn ensure(&self, name: &str) -> Result<PathBuf> {
        if let Some(stem) = custom_model_stem(name) {
            return self.custom_file(name, stem);
        }
        let entry = catalogue().entry(name)?;
        let path = self.dir.join(&entry.file);
        let check = self.check(entry)?;
        if matches!(check, Check::Verified) {
            return Ok(path);
        }
        if !self.allow_download && self.source.is_none() {
            return Err(self.offline_error(entry, check));
        }
        self.download_entry(entry, self.allow_download)
    }

    /// Like [`ModelStore::ensure`] but downloads even when the store was built without downloads:
    /// for explicit requests such as `ff models download`. A verified file is kept as it is.
    pub fn download(&self, name: &str) -> Result<PathBuf> {
        if let Some(stem) = custom_model_stem(name) {
            return self.custom_file(name, stem);
        }
        let entry = catalogue().entry(name)?;
        // Checked before locking so a verified file in a read-only directory needs no lock file.
        if matches!(self.check(entry)?, Check::Verified) {
            return Ok(self.dir.join(&entry.file));
        }
        self.download_entry(entry, true)
    }

    /// The deep swapper models a user dropped into `<models dir>/custom/`, as `custom/<stem>` names
    /// in name order: every `.dfm` file whose name FaceFusion would list. No folder means none.
    pub fn custom_deep_swapper_models(&self) -> Result<Vec<String>> {
        let dir = self.dir.join(CUSTOM_MODELS_DIR);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(PipelineError::io(&dir, error)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let path = entry.map_err(|error| PipelineError::io(&dir, error))?.path();
            let is_model = path.extension().is_some_and(|ext| ext == CUSTOM_MODEL_EXTENSION) && path.is_file();
            let name =
                path.file_stem().and_then(|stem| stem.to_str()).map(|stem| format!("{CUSTOM_MODELS_DIR}/{stem}"));
            if let Some(name) = name.filter(|name| is_model && custom_model_stem(name).is_some()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn custom_path(&self, stem: &str) -> PathBuf {
        self.dir.join(CUSTOM_MODELS_DIR).join(format!("{stem}.{CUSTOM_MODEL_EXTENSION}"))
    }

    fn custom_file(&self, name: &str, stem: &str) -> Result<PathBuf> {
        let path = self.custom_path(stem);
        match file_size(&path)? {
            Some(_) => Ok(path),
            None => Err(PipelineError::ModelMissing { name: name.to_string(), dir: self.dir.join(CUSTOM_MODELS_DIR) }),
        }
    }

    /// Fetches a model from the source, then (with `use_mirrors`) from the mirrors.
    fn download_entry(&self, entry: &ModelEntry, use_mirrors: bool) -> Result<PathBuf> {
        self.with_lock(entry, || {
            // Another thread or process may have finished while this one waited for the lock.
            if matches!(self.check(entry)?, Check::Verified) {
                return Ok(self.dir.join(&entry.file));
            }
            self.download_locked(entry, use_mirrors)
        })
    }

    fn download_locked(&self, entry: &ModelEntry, use_mirrors: bool) -> Result<PathBuf> {
        let path = self.dir.join(&entry.file);
        let hash_path = self.dir.join(&entry.hash_file);
        let expected = match read_hash(&hash_path)? {
            Some(Ok(crc)) => crc,
            found => {
                if let Some(Err(content)) = found {
                    tracing::warn!(model = %entry.name, path = %hash_path.display(), content, "hash sidecar is not 8 hex digits; fetching it again");
                }
                self.fetch_hash(entry, &hash_path, use_mirrors)?
            }
        };

        // A complete file that fails its check is removed first, as FaceFusion does, so the
        // download below starts clean instead of "resuming" past the end of a bad file.
        if path.exists() {
            match crc32_file(&path)? {
                actual if actual == expected => {
                    self.remember(entry, &path, &expected);
                    return Ok(path);
                }
                actual => {
                    tracing::warn!(model = %entry.name, actual, expected, "model fails its CRC32 check; downloading it again");
                    remove_if_exists(&path)?;
                }
            }
        }

        let part = part_path(&path);
        let mut failures: Vec<String> = Vec::new();
        let mut corrupt: Vec<String> = Vec::new();
        if let Some(source) = &self.source {
            match copy_from_source(source.as_ref(), entry, &part, &expected)? {
                SourceCopy::Verified => {
                    std::fs::rename(&part, &path).map_err(|error| PipelineError::io(&path, error))?;
                    self.remember(entry, &path, &expected);
                    tracing::info!(model = %entry.name, source = %source.location(), "model copied from the source and verified");
                    return Ok(path);
                }
                SourceCopy::Absent => failures.push(format!("{} does not have {}", source.location(), entry.file)),
                SourceCopy::Failed(reason) => {
                    tracing::warn!(model = %entry.name, source = %source.location(), "{reason}");
                    failures.push(reason);
                }
            }
        }
        let mirrors: Vec<&Mirror> = if use_mirrors { self.mirrors_for(entry).collect() } else { Vec::new() };
        if !use_mirrors {
            failures.push("downloads from FaceFusion's URLs are disabled".into());
        }
        for mirror in mirrors {
            let url = mirror.url(&entry.base_name, entry.url_file_name());
            let mut attempt = 0;
            let mut restarted = false;
            loop {
                attempt += 1;
                let fetched = match fetch_to_part(&entry.name, &url, &part, entry.bytes, self.timeouts) {
                    Ok(fetched) => fetched,
                    Err(error) if error.is_local() => {
                        return Err(PipelineError::Download {
                            name: entry.name.clone(),
                            reason: format!(
                                "cannot write the download: {error}; check that {} is writable and has space",
                                self.dir.display()
                            ),
                        })
                    }
                    Err(error) => {
                        tracing::warn!(model = %entry.name, attempt, "{error}");
                        let retry = error.retryable() && attempt < ATTEMPTS_PER_URL;
                        if !retry {
                            failures.push(error.to_string());
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                        continue;
                    }
                };
                match verify_part(entry, &part, &expected)? {
                    Ok(()) => {
                        std::fs::rename(&part, &path).map_err(|error| PipelineError::io(&path, error))?;
                        self.remember(entry, &path, &expected);
                        tracing::info!(model = %entry.name, path = %path.display(), bytes = fetched.total, "model downloaded and verified");
                        return Ok(path);
                    }
                    Err(reason) => {
                        remove_if_exists(&part)?;
                        tracing::warn!(model = %entry.name, url, "{reason}");
                        // Bytes kept from an earlier attempt may belong to another version of
                        // the file: retry once from zero before blaming the mirror.
                        if fetched.resumed_from > 0 && !restarted {
                            restarted = true;
                            continue;
                        }
                        corrupt.push(format!("{url}: {reason}"));
                        break;
                    }
                }
            }
        }

        let fix = format!(
            "check the network, or place {} and {} from the FaceFusion release `{}` in {} by hand",
            entry.file,
            entry.hash_file,
            entry.base_name,
            self.dir.display()
        );
        if !corrupt.is_empty() {
            return Err(PipelineError::ModelCorrupt {
                name: entry.name.clone(),
                reason: format!("every download failed verification and was deleted ({}); {fix}", corrupt.join("; ")),
            });
        }
        if failures.is_empty() {
            failures.push("no mirror serves this model".into());
        }
        Err(PipelineError::Download { name: entry.name.clone(), reason: format!("{}; {fix}", failures.join("; ")) })
    }

    /// Fetches the sidecar from the source, else (with `use_mirrors`) from the first mirror that
    /// has it, and stores it atomically.
    fn fetch_hash(&self, entry: &ModelEntry, hash_path: &Path, use_mirrors: bool) -> Result<String> {
        let mut failures = Vec::new();
        if let Some(source) = &self.source {
            match source.read_small(&entry.hash_file, MAX_SIDECAR_BYTES) {
                Ok(Some(body)) => match parse_hash(&body) {
                    Some(crc) => {
                        write_atomically(hash_path, crc.as_bytes())?;
                        tracing::debug!(model = %entry.name, crc, source = %source.location(), "hash sidecar copied");
                        return Ok(crc);
                    }
                    None => failures.push(format!(
                        "{}{}: not a CRC32 sidecar ({:?})",
                        source.location(),
                        entry.hash_file,
                        String::from_utf8_lossy(&body)
                    )),
                },
                Ok(None) => failures.push(format!("{} does not have {}", source.location(), entry.hash_file)),
                Err(error) => {
                    tracing::warn!(model = %entry.name, source = %source.location(), %error, "hash sidecar unreadable");
                    failures.push(format!("{}{}: {error}", source.location(), entry.hash_file));
                }
            }
        }
        let mirrors: Vec<&Mirror> = if use_mirrors { self.mirrors_for(entry).collect() } else { Vec::new() };
        if !use_mirrors {
            failures.push("downloads from FaceFusion's URLs are disabled".into());
        }
        for mirror in mirrors {
            let url = mirror.url(&entry.base_name, entry.hash_url_file_name());
            let body = match fetch_small(&url, self.timeouts) {
                Ok(body) => body,
                Err(error) => {
                    tracing::warn!(model = %entry.name, "{error}");
                    failures.push(error.to_string());
                    continue;
                }
            };
            match parse_hash(&body) {
                Some(crc) => {
                    write_atomically(hash_path, crc.as_bytes())?;
                    tracing::debug!(model = %entry.name, crc, "hash sidecar fetched");
                    return Ok(crc);
                }
                None => failures.push(format!("{url}: not a CRC32 sidecar ({:?})", String::from_utf8_lossy(&body))),
            }
        }
        if failures.is_empty() {
            failures.push("no mirror serves this model".into());
        }
        Err(PipelineError::Download {
            name: entry.name.clone(),
            reason: format!(
                "could not fetch the hash sidecar {} ({}); check the network or the mirror URLs",
                entry.hash_file,
                failures.join("; ")
            ),
        })
    }

    fn mirrors_for<'a>(&'a self, entry: &'a ModelEntry) -> impl Iterator<Item = &'a Mirror> + 'a {
        self.mirrors
            .iter()
            .filter(move |mirror| mirror.provider.as_deref().is_none_or(|provider| entry.served_by(provider)))
    }

    fn check(&self, entry: &ModelEntry) -> Result<Check> {
        let path = self.dir.join(&entry.file);
        let meta = match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return Ok(Check::MissingFile),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Check::MissingFile),
            Err(error) => return Err(PipelineError::io(&path, error)),
        };
        let expected = match read_hash(&self.dir.join(&entry.hash_file))? {
            None => return Ok(Check::MissingHash),
            Some(Err(content)) => return Ok(Check::BadHash(content)),
            Some(Ok(crc)) => crc,
        };
        let stamp = Stamp { len: meta.len(), modified: meta.modified().ok(), crc: expected.clone() };
        if self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(&entry.name) == Some(&stamp) {
            return Ok(Check::Verified);
        }
        let actual = crc32_file(&path)?;
        if actual == expected {
            self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(entry.name.clone(), stamp);
            Ok(Check::Verified)
        } else {
            Ok(Check::Mismatch { actual, expected })
        }
    }

    fn remember(&self, entry: &ModelEntry, path: &Path, crc: &str) {
        if let Ok(meta) = std::fs::metadata(path) {
            let stamp = Stamp { len: meta.len(), modified: meta.modified().ok(), crc: crc.to_string() };
            self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(entry.name.clone(), stamp);
        }
    }

    fn offline_error(&self, entry: &ModelEntry, check: Check) -> PipelineError {
        let hash_path = self.dir.join(&entry.hash_file);
        match check {
            Check::Mismatch { actual, expected } => PipelineError::ModelCorrupt {
                name: entry.name.clone(),
                reason: format!(
                    "CRC32 of {} is {actual} but {} says {expected}; replace the file or enable downloads to fetch it again",
                    self.dir.join(&entry.file).display(),
                    hash_path.display()
                ),
            },
            Check::BadHash(content) => PipelineError::ModelCorrupt {
                name: entry.name.clone(),
                reason: format!("{} holds {content:?}, not 8 lowercase hex digits; replace it", hash_path.display()),
            },
            Check::MissingFile | Check::MissingHash | Check::Verified => {
                PipelineError::ModelMissing { name: entry.name.clone(), dir: self.dir.clone() }
            }
        }
    }

    /// Runs `work` holding this model's in-process mutex and an exclusive lock on
    /// `<file>.lock` ([`LockFile`], removed afterwards), so neither another thread nor another
    /// `ff` process writes the same file.
    fn with_lock<T>(&self, entry: &ModelEntry, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let mutex =
            self.locks.lock().unwrap_or_else(PoisonError::into_inner).entry(entry.name.clone()).or_default().clone();
        let _guard = mutex.lock().unwrap_or_else(PoisonError::into_inner);

        let path = self.dir.join(&entry.file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|error| PipelineError::io(parent, error))?;
        }
        let _lock = LockFile::acquire(&with_suffix(&path, ".lock"))?;
        work()
    }
}

/// What copying a model from the source gave.
enum SourceCopy {
    /// The part file holds the model and matches its sidecar.
    Verified,
    /// The source does not have the file.
    Absent,
    /// The source failed or its copy did not verify (the part is removed); the mirrors may do better.
    Failed(String),
}

/// Copies `entry` from `source` into `part` and verifies it against `expected`.
fn copy_from_source(source: &dyn ModelSource, entry: &ModelEntry, part: &Path, expected: &str) -> Result<SourceCopy> {
    let limit = entry.bytes.unwrap_or(MAX_MODEL_BYTES);
    let copied = match source.copy_to(&entry.file, part, limit) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(SourceCopy::Absent),
        Err(error) => {
            remove_if_exists(part)?;
            return Ok(SourceCopy::Failed(format!("{}{}: {error}", source.location(), entry.file)));
        }
    };
    match verify_part(entry, part, expected)? {
        Ok(()) => Ok(SourceCopy::Verified),
        Err(reason) => {
            remove_if_exists(part)?;
            Ok(SourceCopy::Failed(format!("{}{} ({copied} bytes): {reason}", source.location(), entry.file)))
        }
    }
}

/// How many times a lock file is opened again after its holder removed it; each retry means another
/// download finished meanwhile, so running out means something keeps deleting the file.
const LOCK_ATTEMPTS: usize = 32;

/// An exclusive lock (`flock`) on `<file>.lock` that leaves nothing behind: the holder removes the
/// file while it still holds the lock, then closes it.
///
/// Removing a lock file others wait on is safe because a waiter, once it has the lock, checks that
/// the path still names the file it locked (same device and inode). If the holder removed it (and
/// perhaps a third process created a new one), the waiter's lock excludes no one, so it starts over
/// on whatever file is at the path now. Mutual exclusion holds among everyone who locked the file
/// currently at the path, which is everyone who passed the check.
#[derive(Debug)]
struct LockFile {
    path: PathBuf,
    _file: File,
}

impl LockFile {
    fn acquire(path: &Path) -> Result<Self> {
        for _ in 0..LOCK_ATTEMPTS {
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .map_err(|error| PipelineError::io(path, error))?;
            file.lock().map_err(|error| PipelineError::io(path, error))?;
            if is_file_at(&file, path)? {
                return Ok(Self { path: path.to_path_buf(), _file: file });
            }
        }
        Err(PipelineError::io(
            path,
            std::io::Error::other("the lock file keeps being replaced; is another program removing it?"),
        ))
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Removed before the lock is released (when `_file` closes, after this), so no one can
        // lock this file and find it still at the path.
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "could not remove a model lock file");
            }
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode).
#[cfg(unix)]
fn is_file_at(file: &File, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata().map_err(|error| PipelineError::io(path, error))?;
    match std::fs::metadata(path) {
        Ok(current) => Ok(current.dev() == held.dev() && current.ino() == held.ino()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(PipelineError::io(path, error)),
    }
}

/// Without inodes to compare, an open file cannot be removed either (Windows), so it is still there.
#[cfg(not(unix))]
fn is_file_at(_file: &File, _path: &Path) -> Result<bool> {
    Ok(true)
}

/// The size of a regular file, `None` when there is none at `path`.
fn file_size(path: &Path) -> Result<Option<u64>> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PipelineError::io(path, error)),
    }
}

/// `Ok(Ok(crc))` for a well-formed sidecar, `Ok(Some(Err(content)))` for a malformed one,
/// `Ok(None)` when it does not exist.
fn read_hash(path: &Path) -> Result<Option<std::result::Result<String, String>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(parse_hash(&bytes).ok_or_else(|| String::from_utf8_lossy(&bytes).into_owned()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(PipelineError::io(path, error)),
    }
}

/// FaceFusion compares the sidecar with `==`, so only 8 lowercase hex digits and nothing else
/// (not even a newline) is a valid sidecar.
fn parse_hash(bytes: &[u8]) -> Option<String> {
    let valid = bytes.len() == 8 && bytes.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    valid.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// CRC32 (zlib polynomial) of a whole file as FaceFusion writes it: 8 lowercase hex digits.
pub fn crc32_file(path: &Path) -> Result<String> {
    let mut hasher = crc32fast::Hasher::new();
    for_each_chunk(path, |chunk| hasher.update(chunk))?;
    Ok(format!("{:08x}", hasher.finalize()))
}

/// SHA-256 of a file, lowercase hex: the catalogue's check against tampering, which a CRC32
/// (made for transmission errors) cannot give.
pub fn sha256_file(path: &Path) -> Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for_each_chunk(path, |chunk| hasher.update(chunk))?;
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Feeds a file to `consume` in 1 MiB chunks.
fn for_each_chunk(path: &Path, mut consume: impl FnMut(&[u8])) -> Result<()> {
    let mut file = File::open(path).map_err(|error| PipelineError::io(path, error))?;
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => consume(&buffer[..read]),
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(PipelineError::io(path, error)),
        }
    }
}

/// Checks a finished part file; the inner error is why it is unusable.
fn verify_part(entry: &ModelEntry, part: &Path, expected: &str) -> Result<std::result::Result<(), String>> {
    if let Some(bytes) = entry.bytes {
        let len = std::fs::metadata(part).map_err(|error| PipelineError::io(part, error))?.len();
        if len != bytes {
            return Ok(Err(format!("downloaded {len} bytes but the release file has {bytes}")));
        }
    }
    let actual = crc32_file(part)?;
    if actual != expected {
        return Ok(Err(format!("CRC32 {actual} does not match the hash sidecar {expected}")));
    }
    // The sidecar comes from the same mirror as the file, so a CRC32 match proves no more than an
    // intact transfer; where the catalogue publishes a SHA-256, a swapped file is caught too.
    if let Some(published) = &entry.sha256 {
        let actual = sha256_file(part)?;
        if !actual.eq_ignore_ascii_case(published) {
            return Ok(Err(format!("SHA-256 {actual} does not match the catalogue's {published}")));
        }
    }
    Ok(Ok(()))
}

fn part_path(path: &Path) -> PathBuf {
    with_suffix(path, ".part")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(PipelineError::io(path, error)),
    }
}

/// Writes through a temporary file and a rename so a reader never sees half a sidecar.
fn write_atomically(path: &Path, content: &[u8]) -> Result<()> {
    let temporary = with_suffix(path, ".tmp");
    std::fs::write(&temporary, content).map_err(|error| PipelineError::io(&temporary, error))?;
    std::fs::rename(&temporary, path).map_err(|error| PipelineError::io(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_must_be_exactly_eight_lowercase_hex_digits() {
        assert_eq!(parse_hash(b"0123abcd"), Some("0123abcd".to_string()));
        assert_eq!(parse_hash(b"0123abcd\n"), None);
        assert_eq!(parse_hash(b"0123ABCD"), None);
        assert_eq!(parse_hash(b"0123abc"), None);
    }

    #[test]
    fn crc32_matches_zlib() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x");
        std::fs::write(&path, b"123456789").unwrap();
        // The standard CRC-32 check value, as zlib.crc32(b"123456789") gives.
        assert_eq!(crc32_file(&path).unwrap(), "cbf43926");
    }

    #[test]
    fn mirrors_expand_templates_and_respect_providers() {
        let store = ModelStore::new("/m", true);
        let urls = store.urls("inswapper_128").unwrap();
        assert_eq!(
            urls[0],
            "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/inswapper_128.onnx"
        );
        assert_eq!(urls[1], "https://huggingface.co/facefusion/models-3.0.0/resolve/main/inswapper_128.onnx");
        let deep = store.urls("iperov/elon_musk_224").unwrap();
        assert!(deep.iter().all(|url| !url.contains("github.com")));
        assert_eq!(
            deep[0],
            "https://huggingface.co/facefusion/deepfacelive-models-iperov/resolve/main/elon_musk_224.dfm"
        );

        let local = ModelStore::new("/m", true)
            .with_base_urls(vec!["http://127.0.0.1:9/".into(), "http://h/{file_name}".into()]);
        assert_eq!(
            local.urls("fan_68_5").unwrap(),
            ["http://127.0.0.1:9/models-3.0.0/fan_68_5.onnx", "http://h/fan_68_5.onnx"]
        );
        assert_eq!(local.path("iperov/elon_musk_224").unwrap(), Path::new("/m/iperov/elon_musk_224.dfm"));
        assert!(matches!(local.path("nope"), Err(PipelineError::UnknownModel { .. })));
    }

    #[test]
    fn custom_model_names_are_plain_stems() {
        assert_eq!(custom_model_stem("custom/my_face"), Some("my_face"));
        assert_eq!(custom_model_stem("custom/face.v2"), Some("face.v2"));
        assert_eq!(custom_model_stem("custom/"), None);
        assert_eq!(custom_model_stem("custom"), None);
        assert_eq!(custom_model_stem("customs/x"), None);
        assert_eq!(custom_model_stem("custom/a/b"), None);
        assert_eq!(custom_model_stem("custom/..\\x"), None);
        assert_eq!(custom_model_stem("custom/.."), None);
        assert_eq!(custom_model_stem("custom/.hidden"), None);
        assert_eq!(custom_model_stem("custom/__pycache__"), None);
        assert_eq!(custom_model_stem("iperov/elon_musk_224"), None);
    }

    #[test]
    fn custom_models_are_listed_and_found_without_a_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path(), false);
        assert_eq!(store.custom_deep_swapper_models().unwrap(), Vec::<String>::new());
        let custom = dir.path().join(CUSTOM_MODELS_DIR);
        std::fs::create_dir_all(custom.join("folder.dfm")).unwrap();
        for file in ["zed.dfm", "alice.dfm", "notes.txt", ".hidden.dfm", "__x.dfm"] {
            std::fs::write(custom.join(file), b"onnx").unwrap();
        }
        assert_eq!(store.custom_deep_swapper_models().unwrap(), ["custom/alice", "custom/zed"]);

        assert_eq!(store.ensure("custom/alice").unwrap(), custom.join("alice.dfm"));
        assert_eq!(store.download("custom/alice").unwrap(), custom.join("alice.dfm"));
        assert_eq!(store.path("custom/bob").unwrap(), custom.join("bob.dfm"));
        assert!(store.urls("custom/alice").unwrap().is_empty());
        assert!(matches!(store.ensure("custom/bob"), Err(PipelineError::ModelMissing { .. })));
        assert!(matches!(store.ensure("custom/folder"), Err(PipelineError::ModelMissing { .. })));
        let status = store.status("custom/alice").unwrap();
        assert!(status.downloaded && status.verified && status.size == Some(4));
        assert!(!store.status("custom/bob").unwrap().downloaded);
    }

    #[test]
    fn catalogue_deep_swapper_ids_resolve_to_their_dfm_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::new(dir.path(), false);
        let path = store.path("iperov/elon_musk_224").unwrap();
        assert_eq!(path, dir.path().join("iperov").join("elon_musk_224.dfm"));
        // Without its sidecar the file does not count, unlike a custom model.
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"123456789").unwrap();
        assert!(matches!(store.ensure("iperov/elon_musk_224"), Err(PipelineError::ModelMissing { .. })));
        std::fs::write(dir.path().join("iperov/elon_musk_224.hash"), b"cbf43926").unwrap();
        assert_eq!(store.ensure("iperov/elon_musk_224").unwrap(), path);
    }
}
