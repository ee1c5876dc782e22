//! The entry point callers use: one `Engine` per process, shared by every request.

use std::path::PathBuf;

use crate::error::Result;
use crate::image_io::ImageFormat;
use crate::options::ProcessOptions;

/// What the engine needs from its host; the service fills it from FF_* variables, the CLI from flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// FF_MODELS_DIR: models under their FaceFusion file names.
    pub models_dir: PathBuf,
    /// Whether a missing model may be fetched from FaceFusion's official URLs.
    pub allow_download: bool,
    /// ONNX Runtime intra-op threads per session (FF_EXECUTION_THREAD_COUNT).
    pub intra_threads: usize,
    /// Sessions per model; this many requests can run the same model at once.
    pub sessions_per_model: usize,
    /// Largest accepted image, in pixels.
    pub max_image_pixels: u64,
}

/// One image job: encoded source images, an encoded target, validated options.
pub struct ImageRequest {
    pub sources: Vec<Vec<u8>>,
    pub target: Vec<u8>,
    pub options: ProcessOptions,
    /// Output encoding; `None` keeps the target's format.
    pub output_format: Option<ImageFormat>,
}

/// The encoded result and what happened.
pub struct ImageOutput {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    pub faces_processed: usize,
}

pub struct Engine {
    config: EngineConfig,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self> {
        Ok(Self { config })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Decodes, runs the processors in order and encodes. CPU-bound: call from a blocking thread.
    pub fn process_image(&self, _request: ImageRequest) -> Result<ImageOutput> {
        todo!("being written")
    }
}
