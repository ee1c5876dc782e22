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
    /// A run would make a frame larger than the pixel limit: `cause` names what enlarges it (the
    /// output scale option or the frame enhancer). Refused before the frame is allocated.
    #[error("the run would make a {width}x{height} frame (from `{cause}`), over the {limit} pixel limit: ask for a smaller scale or a smaller target")]
    OutputTooLarge { width: u32, height: u32, cause: &'static str, limit: u64 },
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption { option: String, reason: String },
    #[error("no face found in source image {index}")]
    NoSourceFace { index: usize },
    #[error("{0}")]
    MissingInput(String),
    /// The content analyser judged the target NSFW (two of its three models agreed); nothing was processed.
    #[error("the target was rejected by the content analyser")]
    ContentRejected,
    /// A video, audio or ffmpeg failure; `kind` says which, and whose fault it is.
    #[error("{message}")]
    Media { kind: MediaFailure, message: String },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

/// The error of a run stopped through its cancel flag.
pub fn cancelled() -> PipelineError {
    PipelineError::media(MediaFailure::Cancelled, "the processing was cancelled")
}

/// Stops the run when its caller cancelled it.
pub fn check_cancelled(cancel: &std::sync::atomic::AtomicBool) -> Result<()> {
    match cancel.load(std::sync::atomic::Ordering::Relaxed) {
        true => Err(cancelled()),
        false => Ok(()),
    }
}

/// What went wrong with a video or audio run. Each has a stable code that the service answers
/// with and that a failed job records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaFailure {
    /// ffmpeg or ffprobe is not installed (or not where FF_FFMPEG/FF_FFPROBE say).
    FfmpegMissing,
    /// ffmpeg crashed, could not start, or produced something unusable.
    FfmpegFailed,
    /// ffmpeg ran past the run's time limit and was killed.
    FfmpegTimeout,
    /// Processing a frame panicked; the run stopped.
    ProcessingPanicked,
    /// The run was stopped on request (a job cancelled, a client gone).
    Cancelled,
    /// The video to process (or the one a photo becomes while speaking) is longer than allowed.
    VideoTooLong,
    /// The audio source could not be decoded.
    AudioUnreadable,
    /// The audio source decodes to no samples.
    AudioEmpty,
    /// The audio source has no audio stream.
    AudioNoStream,
    /// The audio source is longer than the limit.
    AudioTooLong,
    /// The audio to mux in has no sound in the processed range (a result kept without audio).
    AudioMissing,
}

impl MediaFailure {
    pub const ALL: [MediaFailure; 11] = [
        Self::FfmpegMissing,
        Self::FfmpegFailed,
        Self::FfmpegTimeout,
        Self::ProcessingPanicked,
        Self::Cancelled,
        Self::VideoTooLong,
        Self::AudioUnreadable,
        Self::AudioEmpty,
        Self::AudioNoStream,
        Self::AudioTooLong,
        Self::AudioMissing,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::FfmpegMissing => "ffmpeg_missing",
            Self::FfmpegFailed => "ffmpeg_failed",
            Self::FfmpegTimeout => "ffmpeg_timeout",
            Self::ProcessingPanicked => "processing_panicked",
            Self::Cancelled => "cancelled",
            Self::VideoTooLong => "video_too_long",
            Self::AudioUnreadable => "audio_unreadable",
            Self::AudioEmpty => "audio_empty",
            Self::AudioNoStream => "audio_no_stream",
            Self::AudioTooLong => "audio_too_long",
            Self::AudioMissing => "audio_missing",
        }
    }

    /// Whether the input is at fault (a bad or too long file), rather than the server.
    pub fn is_client_error(self) -> bool {
        match self {
            Self::VideoTooLong
            | Self::AudioUnreadable
            | Self::AudioEmpty
            | Self::AudioNoStream
            | Self::AudioTooLong => true,
            Self::FfmpegMissing
            | Self::FfmpegFailed
            | Self::FfmpegTimeout
            | Self::ProcessingPanicked
            | Self::Cancelled
            | Self::AudioMissing => false,
        }
    }
}

impl PipelineError {
    pub fn invalid_option(option: &str, reason: impl Into<String>) -> Self {
        Self::InvalidOption { option: option.to_string(), reason: reason.into() }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub fn media(kind: MediaFailure, message: impl Into<String>) -> Self {
        Self::Media { kind, message: message.into() }
    }
}

impl From<ort::Error> for PipelineError {
    fn from(error: ort::Error) -> Self {
        Self::Runtime(error.to_string())
    }
}
