//! The entry point callers use: one `Engine` per process, shared by every request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{PipelineError, Result};
use crate::face::analyser::{self, FaceAnalyser};
use crate::face::selector::{select_faces, sort_and_filter};
use crate::image_io::{self, DecodedImage, ImageFormat};
use crate::imgproc::resize::resize_cubic;
use crate::models::ModelStore;
use crate::options::ProcessOptions;
use crate::processors::face_swapper::{self, FaceSwapper, SourceFace};
use crate::raster::{Frame, Raster};
use crate::sessions::ModelRegistry;

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
    pub timings: StageTimings,
}

/// Wall time per stage of one image job, for logs and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct StageTimings {
    pub decode: Duration,
    /// Face analysis of sources and target (detect, landmark, embed, classify).
    pub analyse: Duration,
    pub process: Duration,
    pub encode: Duration,
}

pub struct Engine {
    config: EngineConfig,
    store: Arc<ModelStore>,
    registry: ModelRegistry,
}

/// A decoded image job, before any processor ran.
pub struct PreparedImage {
    pub target: DecodedImage,
    pub sources: Vec<Frame>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Result<Self> {
        let store = Arc::new(ModelStore::new(&config.models_dir, config.allow_download));
        let resolver_store = store.clone();
        let registry = ModelRegistry::new(
            Arc::new(move |name: &str| resolver_store.ensure(name)),
            config.intra_threads,
            config.sessions_per_model,
        );
        Ok(Self { config, store, registry })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn store(&self) -> &ModelStore {
        &self.store
    }

    pub fn registry(&self) -> &ModelRegistry {
        &self.registry
    }

    /// Every model a run with these options loads; used to fetch them up front.
    pub fn required_models(&self, options: &ProcessOptions) -> Vec<&'static str> {
        let mut models = analyser::required_models(&options.detector, &options.landmarker);
        if options.processors.iter().any(|p| p == "face_swapper") {
            models.extend(face_swapper::required_models(&options.swapper));
        }
        models.dedup();
        models
    }

    /// Makes sure every model of the run is present and verified before any work starts, so a
    /// missing model fails fast with its name instead of midway.
    pub fn prepare_models(&self, options: &ProcessOptions) -> Result<()> {
        for name in self.required_models(options) {
            self.registry.get(name)?;
        }
        Ok(())
    }

    /// Decodes, runs the processors in order and encodes. CPU-bound: call from a blocking thread.
    pub fn process_image(&self, request: ImageRequest) -> Result<ImageOutput> {
        let mut timings = StageTimings::default();
        let started = Instant::now();
        let prepared = self.decode(&request)?;
        timings.decode = started.elapsed();
        self.prepare_models(&request.options)?;
        let format = request.output_format.unwrap_or(prepared.target.format);
        let (frame, faces_processed) = self.process_frames(&prepared, &request.options, &mut timings)?;
        let started = Instant::now();
        let output = scale_output(&frame, &prepared.target, request.options.output.image_scale);
        let bytes = image_io::encode(&output.0, output.1.as_ref(), format, request.options.output.image_quality)?;
        timings.encode = started.elapsed();
        Ok(ImageOutput { bytes, format, faces_processed, timings })
    }

    pub fn decode(&self, request: &ImageRequest) -> Result<PreparedImage> {
        if request.options.processors.iter().any(|p| p == "face_swapper") && request.sources.is_empty() {
            return Err(PipelineError::MissingInput("face_swapper needs at least one source image".into()));
        }
        let mut target = image_io::decode(&request.target, self.config.max_image_pixels)?;
        let scale = request.options.output.image_scale;
        if scale < 1.0 {
            // FaceFusion copies the target at min(original, scaled) before processing.
            let (width, height) = image_io::scaled_resolution(target.frame.width, target.frame.height, scale);
            target.frame = resize_cubic(&target.frame, width, height);
            target.alpha = target.alpha.map(|a| resize_cubic(&a, width, height));
        }
        let sources = request
            .sources
            .iter()
            .map(|bytes| image_io::decode(bytes, self.config.max_image_pixels).map(|d| d.frame))
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedImage { target, sources })
    }

    /// Runs the processors on a decoded target; returns the frame and how many faces were changed.
    pub fn process_frames(
        &self,
        prepared: &PreparedImage,
        options: &ProcessOptions,
        timings: &mut StageTimings,
    ) -> Result<(Frame, usize)> {
        let analyser = FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker);
        let original = &prepared.target.frame;
        let mut frame = original.clone();
        let mut faces_processed = 0;
        for processor in &options.processors {
            match processor.as_str() {
                "face_swapper" => {
                    let started = Instant::now();
                    let source = self.source_face(&analyser, &prepared.sources, options)?;
                    let target_faces = analyser.faces(original)?;
                    // An image target is its own reference frame.
                    let selected = select_faces(&target_faces, &target_faces, &options.selector);
                    timings.analyse += started.elapsed();
                    let started = Instant::now();
                    let swapper = FaceSwapper::new(&self.registry, &options.swapper, &source)?;
                    for face in &selected {
                        let face = face.scaled(
                            frame.width as f64 / original.width as f64,
                            frame.height as f64 / original.height as f64,
                        );
                        frame = swapper.swap(&frame, &face, &options.masks)?;
                    }
                    faces_processed = faces_processed.max(selected.len());
                    timings.process += started.elapsed();
                }
                other => {
                    return Err(PipelineError::invalid_option("processors", format!("`{other}` is not available")));
                }
            }
        }
        Ok((frame, faces_processed))
    }

    /// The averaged identity of the source images: each image's first face in selector order.
    fn source_face(&self, analyser: &FaceAnalyser, sources: &[Frame], options: &ProcessOptions) -> Result<SourceFace> {
        let faces = sources
            .iter()
            .map(|frame| Ok(sort_and_filter(analyser.faces(frame)?, &options.selector).into_iter().next()))
            .collect::<Result<Vec<_>>>()?;
        SourceFace::average(sources, &faces)
    }
}

/// FaceFusion's finalize step: the output has the scaled resolution when the scale enlarges it.
/// (FaceFusion rescales with ffmpeg's bicubic scaler; OpenCV's bicubic is the closest we have.)
fn scale_output(frame: &Frame, target: &DecodedImage, scale: f32) -> (Frame, Option<Raster<u8>>) {
    if scale <= 1.0 {
        return (frame.clone(), target.alpha.clone());
    }
    let (width, height) = image_io::scaled_resolution(frame.width, frame.height, scale);
    let alpha = target.alpha.as_ref().map(|a| resize_cubic(a, width, height));
    (resize_cubic(frame, width, height), alpha)
}
