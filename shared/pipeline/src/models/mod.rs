//! FaceFusion 3.5.3's models: the catalogue of every file, and the store that finds, verifies and
//! downloads them.
//!
//! * [`catalogue()`] is the compiled-in `models/catalogue.json`: one [`ModelEntry`] per file, with
//!   its release, FaceFusion module, option value and pre-processing metadata.
//! * [`ModelStore`] maps names to files in a models directory, checks each file against its `.hash`
//!   sidecar (CRC32, as FaceFusion does) and downloads missing or corrupt files with resume.
//! * [`ModelSource`] is where the operator keeps copies (ff's bucket prefix), tried before the URLs.
//!
//! The models directory is chosen by the caller; [`default_models_dir`] gives the convention
//! (`FF_MODELS_DIR`, else `.models` in the working directory).

mod catalogue;
mod download;
mod source;
mod store;

use std::path::PathBuf;

pub use catalogue::{catalogue, Catalogue, DownloadScope, ModelEntry, Provider, Tile};
pub use download::Timeouts;
pub use source::{ModelSource, SourceError};
pub use store::{crc32_file, sha256_file, ModelStatus, ModelStore, CUSTOM_MODELS_DIR};

/// Environment variable naming the models directory.
pub const MODELS_DIR_ENV: &str = "FF_MODELS_DIR";

/// `FF_MODELS_DIR` when set and non-empty, else `.models` relative to the working directory.
pub fn default_models_dir() -> PathBuf {
    match std::env::var_os(MODELS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(".models"),
    }
}
