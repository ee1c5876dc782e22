use std::path::PathBuf;

/// Everything the pipeline can fail with. The service maps each variant to a stable code and status.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ONNX Runtime library not found at {path}: run `scripts/setup` or set ORT_DYLIB_PATH")]
    RuntimeMissing { path: PathBuf },
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
    #[error("model `{name}` is not in the FaceFusion 3.5.3 catalogue")]
    UnknownModel { name: String },
    #[error("model `{name}` is missing from {dir} and downloads are disabled")]
    ModelMissing { name: String, dir: PathBuf },
    #[error("download of `{name}` failed: {reason}")]
    Download { name: String, reason: String },
    #[error("model `{name}` failed verification: {reason}")]
    ModelCorrupt { name: String, reason: String },
    #[error("model `{name}` does not have the expected inputs/outputs: {reason}")]
    ModelContract { name: String, reason: String },
    #[error("unsupported media: {0}")]
    UnsupportedMedia(String),
    #[error("image is too large: {width}x{height} exceeds the {limit} pixel limit")]
    ImageTooLarge { width: u32, height: u32, limit: u64 },
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption { option: String, reason: String },
    #[error("no face found in source image {index}")]
    NoSourceFace { index: usize },
    #[error("{0}")]
    MissingInput(String),
    /// The content analyser judged the target NSFW (two of its three models agreed); nothing was processed.
    #[error("the target was rejected by the content analyser")]
    ContentRejected,
    /// A video/ffmpeg failure that is not the input's fault. `code`: `ffmpeg_missing`, `ffmpeg_failed`,
    /// `ffmpeg_timeout`, `processing_panicked`, or `cancelled` (a job stopped on request).
    #[error("{message}")]
    Media { code: &'static str, message: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    pub fn invalid_option(option: &str, reason: impl Into<String>) -> Self {
        Self::InvalidOption { option: option.to_string(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

impl From<ort::Error> for PipelineError {
    fn from(error: ort::Error) -> Self {
        Self::Runtime(error.to_string())
    }
}
