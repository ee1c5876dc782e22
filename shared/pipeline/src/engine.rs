//! The entry point callers use: one `Engine` per process, shared by every request.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::content_analyser;
use crate::error::{PipelineError, Result};
use crate::face::analyser::{self, FaceAnalyser};
use crate::face::selector::{select_faces, sort_and_filter};
use crate::face::Face;
use crate::image_io::{self, DecodedImage, ImageFormat};
use crate::imgproc::resize::{resize_cubic, resize_linear};
use crate::mask::occluder_models;
use crate::models::ModelStore;
use crate::options::{MaskType, ProcessOptions, FACE_PROCESSORS};
use crate::processors::face_debugger::debug_face;
use crate::processors::face_enhancer::{self, FaceEnhancer};
use crate::processors::face_swapper::{self, FaceSwapper, SourceFace};
use crate::processors::frame_enhancer::FrameEnhancer;
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
    /// Run FaceFusion's NSFW gate on every target (FF_CONTENT_ANALYSIS). On by default, as in
    /// FaceFusion; only the operator can turn it off, never a request.
    pub content_analysis: bool,
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
    /// The content analyser's three models.
    pub content: Duration,
    /// Face analysis of sources and target (detect, landmark, embed, classify).
    pub analyse: Duration,
    pub process: Duration,
    /// Per processor name, the part of `process` it took.
    pub processors: Vec<(String, Duration)>,
    pub encode: Duration,
}

impl StageTimings {
    fn add_processor(&mut self, name: &str, elapsed: Duration) {
        self.process += elapsed;
        match self.processors.iter_mut().find(|(n, _)| n == name) {
            Some((_, total)) => *total += elapsed,
            None => self.processors.push((name.to_string(), elapsed)),
        }
    }
}

/// The processed frame with its alpha channel (resized along with the frame), and how many
/// faces the face processors changed.
pub struct ProcessedFrame {
    pub frame: Frame,
    pub alpha: Option<Raster<u8>>,
    pub faces_processed: usize,
}

pub struct Engine {
    config: EngineConfig,
    store: Arc<ModelStore>,
    registry: ModelRegistry,
}

/// A decoded image job, before any processor ran.
pub struct PreparedImage {
    /// The target at its processing size (FaceFusion's temp copy: shrunk when the output scale is < 1).
    pub target: DecodedImage,
    /// The target as decoded, which the content analyser judges (FaceFusion reads the target path).
    pub original: Frame,
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
    pub fn required_models(&self, options: &ProcessOptions) -> Vec<String> {
        let uses = |name: &str| options.processors.iter().any(|p| p == name);
        let mut models: Vec<String> = Vec::new();
        if self.config.content_analysis {
            models.extend(content_analyser::MODELS.iter().map(|m| m.to_string()));
        }
        if FACE_PROCESSORS.iter().any(|p| uses(p)) {
            models.extend(
                analyser::required_models(&options.detector, &options.landmarker).into_iter().map(String::from),
            );
            // Every face processor may compute the occlusion mask; the region mask only the
            // swapper and the debugger.
            if options.masks.types.contains(&MaskType::Occlusion) {
                models.extend(occluder_models(&options.masks.occluder_model).into_iter().map(String::from));
            }
            if options.masks.types.contains(&MaskType::Region) && (uses("face_swapper") || uses("face_debugger")) {
                models.push(options.masks.parser_model.clone());
            }
        }
        if uses("face_swapper") {
            models.extend(face_swapper::required_models(&options.swapper).into_iter().map(String::from));
        }
        if uses("face_enhancer") {
            models.extend(face_enhancer::required_models(&options.face_enhancer, &options.masks));
        }
        if uses("frame_enhancer") {
            models.push(options.frame_enhancer.model.clone());
        }
        let mut seen = std::collections::HashSet::new();
        models.retain(|m| seen.insert(m.clone()));
        models
    }

    /// Makes sure every model of the run is present and verified before any work starts, so a
    /// missing model fails fast with its name instead of midway.
    pub fn prepare_models(&self, options: &ProcessOptions) -> Result<()> {
        for name in self.required_models(options) {
            self.registry.get(&name)?;
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
        if self.config.content_analysis {
            let started = Instant::now();
            content_analyser::check(&self.registry, &prepared.original)?;
            timings.content = started.elapsed();
        }
        let processed = self.process_frames(&prepared, &request.options, &mut timings)?;
        let faces_processed = processed.faces_processed;
        let started = Instant::now();
        let output = scale_output(processed, &prepared, request.options.output.image_scale);
        let bytes = image_io::encode(&output.0, output.1.as_ref(), format, request.options.output.image_quality)?;
        timings.encode = started.elapsed();
        Ok(ImageOutput { bytes, format, faces_processed, timings })
    }

    pub fn decode(&self, request: &ImageRequest) -> Result<PreparedImage> {
        if request.options.processors.iter().any(|p| p == "face_swapper") && request.sources.is_empty() {
            return Err(PipelineError::MissingInput("face_swapper needs at least one source image".into()));
        }
        let mut target = image_io::decode(&request.target, self.config.max_image_pixels)?;
        let original = target.frame.clone();
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
        Ok(PreparedImage { target, original, sources })
    }

    /// Runs the processors in order on a decoded target (spec §1.4-1.6).
    ///
    /// Faces are always found on the original target frame and rescaled to the running frame,
    /// which a frame enhancer may have enlarged; so chained face processors all work on the faces
    /// of the unprocessed frame, as in FaceFusion.
    pub fn process_frames(
        &self,
        prepared: &PreparedImage,
        options: &ProcessOptions,
        timings: &mut StageTimings,
    ) -> Result<ProcessedFrame> {
        let analyser = FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker);
        let original = &prepared.target.frame;
        let mut frame = original.clone();
        let mut alpha = prepared.target.alpha.clone();
        let mut faces_processed = 0;
        for processor in &options.processors {
            let name = processor.as_str();
            let selected = if FACE_PROCESSORS.contains(&name) {
                let started = Instant::now();
                let target_faces = analyser.faces(original)?;
                // An image target is its own reference frame.
                let selected = select_faces(&target_faces, &target_faces, &options.selector);
                timings.analyse += started.elapsed();
                faces_processed = faces_processed.max(selected.len());
                selected
            } else {
                Vec::new()
            };
            let scale_to_frame = |face: &Face, frame: &Frame| {
                face.scaled(frame.width as f64 / original.width as f64, frame.height as f64 / original.height as f64)
            };
            let started = Instant::now();
            match name {
                "face_swapper" => {
                    let analysis = Instant::now();
                    let source = self.source_face(&analyser, &prepared.sources, options)?;
                    let analysis = analysis.elapsed();
                    timings.analyse += analysis;
                    let swapper = FaceSwapper::new(&self.registry, &options.swapper, &source)?;
                    for face in &selected {
                        frame = swapper.swap(&frame, &scale_to_frame(face, &frame), &options.masks)?;
                    }
                    timings.add_processor(name, started.elapsed().saturating_sub(analysis));
                    continue;
                }
                "face_enhancer" => {
                    let enhancer = FaceEnhancer::new(&self.registry, &options.face_enhancer)?;
                    for face in &selected {
                        frame = enhancer.enhance(&frame, &scale_to_frame(face, &frame), &options.masks)?;
                    }
                }
                "face_debugger" => {
                    for face in &selected {
                        let face = scale_to_frame(face, &frame);
                        frame = debug_face(&self.registry, &frame, &face, &options.debugger_items, &options.masks)?;
                    }
                }
                "frame_enhancer" => {
                    let enhancer = FrameEnhancer::new(&self.registry, &options.frame_enhancer)?;
                    // The upscaled frame is held in memory several times over (tiles, canvas,
                    // blend); past the host's pixel limit it is refused instead of exhausting memory.
                    let (width, height) = (frame.width * enhancer.scale(), frame.height * enhancer.scale());
                    if (width as u64) * (height as u64) > self.config.max_image_pixels {
                        return Err(PipelineError::ImageTooLarge {
                            width: width.min(u32::MAX as usize) as u32,
                            height: height.min(u32::MAX as usize) as u32,
                            limit: self.config.max_image_pixels,
                        });
                    }
                    frame = enhancer.enhance(&frame)?;
                    alpha = alpha.map(|a| resize_linear(&a, frame.width, frame.height));
                }
                other => {
                    return Err(PipelineError::invalid_option("processors", format!("`{other}` is not available")));
                }
            }
            timings.add_processor(name, started.elapsed());
        }
        Ok(ProcessedFrame { frame, alpha, faces_processed })
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

/// FaceFusion's finalize step: the output is the target at `--output-image-scale` (each side
/// rounded to even), whatever size the processors left the frame at; a frame enhancer's larger
/// frame is scaled back unless the scale asks for that size. FaceFusion rescales with ffmpeg's
/// bicubic scaler; OpenCV's bicubic is the closest here. A frame already at the output size is
/// passed through untouched, as ffmpeg's copy of a same-size PNG is lossless.
fn scale_output(processed: ProcessedFrame, prepared: &PreparedImage, scale: f32) -> (Frame, Option<Raster<u8>>) {
    let target = &prepared.target.frame;
    let (width, height) = if scale <= 1.0 {
        // Below 1 the target was already shrunk to the scaled size before processing; at 1 the
        // target keeps its exact size (see the README on odd sizes).
        (target.width, target.height)
    } else {
        image_io::scaled_resolution(target.width, target.height, scale)
    };
    let ProcessedFrame { frame, alpha, .. } = processed;
    if (frame.width, frame.height) == (width, height) {
        return (frame, alpha);
    }
    let alpha = alpha.map(|a| resize_cubic(&a, width, height));
    (resize_cubic(&frame, width, height), alpha)
}
