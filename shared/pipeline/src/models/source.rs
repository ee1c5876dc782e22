//! A place the operator filled with models, tried before FaceFusion's URLs: in ff, a prefix of the
//! service's bucket (`FF_MODELS_S3_PREFIX`), so a cold Lambda environment copies its models from S3
//! in the same region instead of GitHub or Hugging Face.
//!
//! A source holds files under the models directory's own layout (`inswapper_128.onnx` beside
//! `inswapper_128.hash`, `iperov/elon_musk_224.dfm`, ...). The store treats what it copies exactly
//! like a download: the file lands in a `.part`, must match its sidecar's CRC32 (and the
//! catalogue's SHA-256 where one is published), and only then takes the model's name.

use std::fmt;
use std::path::Path;

/// Why a source could not answer; its text ends up in the model's download error.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Models kept somewhere other than the models directory. Called from blocking threads, never from
/// an async task: implementations may block.
pub trait ModelSource: Send + Sync + fmt::Debug {
    /// Where the files are, for logs and errors (`s3://bucket/models/`).
    fn location(&self) -> String;

    /// The bytes of a small file (a `.hash` sidecar) at `relative`, `None` when the source does
    /// not have it. More than `max_bytes` is an error.
    fn read_small(&self, relative: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, SourceError>;

    /// Writes the file at `relative` to `destination` (created or replaced) and returns its size,
    /// `None` when the source does not have it. More than `max_bytes` is an error.
    fn copy_to(&self, relative: &str, destination: &Path, max_bytes: u64) -> Result<Option<u64>, SourceError>;
}
