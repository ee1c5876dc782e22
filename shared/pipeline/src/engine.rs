//! The entry point callers use: one `Engine` per process, shared by every request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
use crate::options::{MaskType, ProcessOptions, SelectorMode, FACE_PROCESSORS};
use crate::processors::face_debugger::debug_face;
use crate::processors::face_enhancer::{self, FaceEnhancer};
use crate::processors::face_swapper::{self, FaceSwapper, SourceFace};
use crate::processors::frame_enhancer::FrameEnhancer;
use crate::raster::{Frame, Raster};
use crate::sessions::ModelRegistry;
use crate::video::{
    cancelled_error, process_video, AudioEncoder, AudioPlan, EncodeOptions, EncodedVideo, FrameReader, FrameWriter,
    Parallelism, Progress, ReadOptions, Toolchain, VideoEncoder, VideoInfo, VIDEO_FORMATS,
};

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
    /// FF_VIDEO_MEMORY_STRATEGY: how many video frames may be held per worker.
    pub video_memory_strategy: VideoMemoryStrategy,
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
    /// Adds another run's times (a video's frames, from several workers).
    pub fn merge(&mut self, other: &StageTimings) {
        self.decode += other.decode;
        self.content += other.content;
        self.analyse += other.analyse;
        self.encode += other.encode;
        for (name, elapsed) in &other.processors {
            self.add_processor(name, *elapsed);
        }
    }

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

/// One video job: encoded source images, the target video and output paths, validated options.
pub struct VideoRequest {
    pub sources: Vec<Vec<u8>>,
    pub target: PathBuf,
    /// Written atomically (a temp file beside it, renamed); its extension picks the container.
    pub output: PathBuf,
    pub options: ProcessOptions,
    /// `None`: from the host's thread count and FF_VIDEO_MEMORY_STRATEGY.
    pub parallelism: Option<Parallelism>,
    /// The whole run's time limit; ffmpeg is killed past it.
    pub timeout: Duration,
}

/// A finished video and what happened.
pub struct VideoOutput {
    pub video: EncodedVideo,
    /// The target as probed.
    pub info: VideoInfo,
    /// The trim range processed, in the target's frame numbers.
    pub trim: (u64, u64),
    pub frames: u64,
    pub output_fps: f64,
    pub resolution: (usize, usize),
    /// Faces changed, summed over the frames.
    pub faces_processed: usize,
    /// Frames processed per second of wall time.
    pub processing_fps: f64,
    pub elapsed: Duration,
    /// Per stage, summed over the frames (so across workers it can exceed the wall time).
    pub timings: StageTimings,
}

/// FF_VIDEO_MEMORY_STRATEGY: how many frames may wait between decoder and encoder per worker.
/// FaceFusion's strategy decides which sessions it drops between processors; here sessions are kept
/// and the strategy bounds the frames held in memory instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VideoMemoryStrategy {
    #[default]
    Strict,
    Moderate,
    Tolerant,
}

impl std::str::FromStr for VideoMemoryStrategy {
    type Err = PipelineError;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "strict" => Ok(Self::Strict),
            "moderate" => Ok(Self::Moderate),
            "tolerant" => Ok(Self::Tolerant),
            other => Err(PipelineError::invalid_option(
                "video_memory_strategy",
                format!("`{other}` is not one of: strict, moderate, tolerant"),
            )),
        }
    }
}

/// The per-frame state built once per run: processors with their sessions and the source identity.
struct FrameChain<'a> {
    options: &'a ProcessOptions,
    swapper: Option<FaceSwapper<'a>>,
    face_enhancer: Option<FaceEnhancer<'a>>,
    frame_enhancer: Option<FrameEnhancer<'a>>,
    /// The reference frame's faces; `None` makes every frame its own reference (images).
    reference_faces: Option<Vec<Face>>,
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
        // An image target is its own reference frame.
        let chain = self.frame_chain(&prepared.sources, options, None, timings)?;
        self.process_frame(&chain, &prepared.target.frame, prepared.target.alpha.clone(), timings)
    }

    /// Everything the processors need that does not depend on the frame: the source identity and the
    /// processors' sessions, built once per image or video.
    fn frame_chain<'a>(
        &'a self,
        sources: &[Frame],
        options: &'a ProcessOptions,
        reference_faces: Option<Vec<Face>>,
        timings: &mut StageTimings,
    ) -> Result<FrameChain<'a>> {
        let uses = |name: &str| options.processors.iter().any(|p| p == name);
        let swapper = if uses("face_swapper") {
            let started = Instant::now();
            let analyser = FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker);
            let source = self.source_face(&analyser, sources, options)?;
            timings.analyse += started.elapsed();
            Some(FaceSwapper::new(&self.registry, &options.swapper, &source)?)
        } else {
            None
        };
        let face_enhancer =
            if uses("face_enhancer") { Some(FaceEnhancer::new(&self.registry, &options.face_enhancer)?) } else { None };
        let frame_enhancer = if uses("frame_enhancer") {
            Some(FrameEnhancer::new(&self.registry, &options.frame_enhancer)?)
        } else {
            None
        };
        Ok(FrameChain { options, swapper, face_enhancer, frame_enhancer, reference_faces })
    }

    /// The per-frame processor chain, shared by images and video frames.
    fn process_frame(
        &self,
        chain: &FrameChain<'_>,
        original: &Frame,
        alpha: Option<Raster<u8>>,
        timings: &mut StageTimings,
    ) -> Result<ProcessedFrame> {
        let options = chain.options;
        // One analyser per frame: its face cache lives as long as the frame does.
        let analyser = FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker);
        let mut frame = original.clone();
        let mut alpha = alpha;
        let mut faces_processed = 0;
        for processor in &options.processors {
            let name = processor.as_str();
            let selected = if FACE_PROCESSORS.contains(&name) {
                let started = Instant::now();
                let target_faces = analyser.faces(original)?;
                let references = chain.reference_faces.as_deref().unwrap_or(&target_faces);
                let selected = select_faces(&target_faces, references, &options.selector);
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
            match (name, &chain.swapper, &chain.face_enhancer, &chain.frame_enhancer) {
                ("face_swapper", Some(swapper), _, _) => {
                    for face in &selected {
                        frame = swapper.swap(&frame, &scale_to_frame(face, &frame), &options.masks)?;
                    }
                }
                ("face_enhancer", _, Some(enhancer), _) => {
                    for face in &selected {
                        frame = enhancer.enhance(&frame, &scale_to_frame(face, &frame), &options.masks)?;
                    }
                }
                ("face_debugger", _, _, _) => {
                    for face in &selected {
                        let face = scale_to_frame(face, &frame);
                        frame = debug_face(&self.registry, &frame, &face, &options.debugger_items, &options.masks)?;
                    }
                }
                ("frame_enhancer", _, _, Some(enhancer)) => {
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
                (other, _, _, _) => {
                    return Err(PipelineError::invalid_option("processors", format!("`{other}` is not available")));
                }
            }
            timings.add_processor(name, started.elapsed());
        }
        Ok(ProcessedFrame { frame, alpha, faces_processed })
    }

    /// A video target through the processor chain (spec §11.2), streamed: ffmpeg decodes the trim
    /// range into memory, `workers` frames are processed at once, ffmpeg encodes them in order and the
    /// target's audio is muxed back. CPU-bound and long: call from a blocking thread; `progress` is
    /// called after every frame written, `cancel` stops the run within one frame.
    pub fn process_video(
        &self,
        request: VideoRequest,
        progress: impl FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<VideoOutput> {
        let options = &request.options;
        let video = &options.output.video;
        let mut timings = StageTimings::default();
        if options.processors.iter().any(|p| p == "face_swapper") && request.sources.is_empty() {
            return Err(PipelineError::MissingInput("face_swapper needs at least one source image".into()));
        }
        let output_format = extension_of(&request.output);
        if !VIDEO_FORMATS.contains(&output_format.as_str()) {
            return Err(PipelineError::invalid_option(
                "output_path",
                format!("a video output needs one of the extensions {}", VIDEO_FORMATS.join(", ")),
            ));
        }
        let toolchain = Toolchain::from_env();
        let started = Instant::now();
        let info = toolchain.probe(&request.target)?;
        let (trim_start, trim_end) = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
        let sources = request
            .sources
            .iter()
            .map(|bytes| image_io::decode(bytes, self.config.max_image_pixels).map(|d| d.frame))
            .collect::<Result<Vec<_>>>()?;
        timings.decode = started.elapsed();
        let (width, height) = (info.width as usize, info.height as usize);
        if (width as u64) * (height as u64) > self.config.max_image_pixels {
            return Err(PipelineError::ImageTooLarge {
                width: info.width,
                height: info.height,
                limit: self.config.max_image_pixels,
            });
        }
        let encoders = toolchain.available_encoders()?;
        let encoder = match &video.video_encoder {
            Some(name) => {
                let encoder: VideoEncoder = name.parse()?;
                if !encoders.video.contains(&encoder) {
                    return Err(PipelineError::invalid_option(
                        "output_video_encoder",
                        format!("`{name}` is not offered by the local ffmpeg"),
                    ));
                }
                encoder
            }
            None => encoders.default_video().ok_or_else(|| {
                PipelineError::invalid_option("output_video_encoder", "the local ffmpeg offers none of FaceFusion's")
            })?,
        };
        // Keep the target's audio by default: aac where FaceFusion's own default (flac) cannot go.
        let audio_encoder = match &video.audio_encoder {
            Some(name) => name.parse()?,
            None => AudioEncoder::Aac,
        };
        self.prepare_models(options)?;
        if self.config.content_analysis {
            let started = Instant::now();
            self.check_video_content(&toolchain, &request, &info, (trim_start, trim_end), cancel)?;
            timings.content = started.elapsed();
        }

        // FaceFusion's temp resolution is min(original, scaled), compared as (w, h) tuples.
        let scaled = image_io::scaled_resolution(width, height, video.video_scale);
        let temp_resolution = if (width, height) < scaled { (width, height) } else { scaled };
        let output_fps = video.video_fps.map_or(info.fps, |fps| fps.clamp(1.0, 60.0));
        let temp_fps = info.fps.min(output_fps);

        let reference_faces = if options.selector.mode == SelectorMode::Reference
            && options.processors.iter().any(|p| FACE_PROCESSORS.contains(&p.as_str()))
        {
            let started = Instant::now();
            let faces = self.reference_faces(&toolchain, &request, &info)?;
            timings.analyse += started.elapsed();
            Some(faces)
        } else {
            None
        };
        let chain = self.frame_chain(&sources, options, reference_faces, &mut timings)?;

        let reader = FrameReader::open(
            &toolchain,
            &request.target,
            &info,
            &ReadOptions {
                trim_frame_start: Some(trim_start),
                trim_frame_end: Some(trim_end),
                resolution: Some((temp_resolution.0 as u32, temp_resolution.1 as u32)),
                fps: Some(temp_fps),
                timeout: request.timeout,
            },
        )?;
        let audio = if info.has_audio && video.audio_volume > 0 {
            AudioPlan::Restore {
                target: request.target.clone(),
                trim_frame_start: trim_start,
                trim_frame_end: trim_end,
                target_fps: info.fps,
            }
        } else {
            AudioPlan::None
        };
        let encode = EncodeOptions {
            encoder,
            preset: video.video_preset.parse()?,
            quality: video.video_quality,
            input_fps: temp_fps,
            output_fps,
            resolution: Some((scaled.0 as u32, scaled.1 as u32)),
            temp_format: Some(extension_of(&request.target)).filter(|e| !e.is_empty()),
            audio,
            audio_encoder,
            audio_quality: video.audio_quality,
            audio_volume: video.audio_volume,
            timeout: request.timeout,
        };
        let writer = FrameWriter::create(&toolchain, &request.output, encode)?;
        let parallelism =
            request.parallelism.unwrap_or_else(|| self.video_parallelism(self.config.video_memory_strategy));

        let shared = Mutex::new((StageTimings::default(), 0usize));
        let process = |_index: usize, frame: Frame| -> Result<Frame> {
            let mut frame_timings = StageTimings::default();
            let processed = self.process_frame(&chain, &frame, None, &mut frame_timings)?;
            if let Ok(mut guard) = shared.lock() {
                guard.0.merge(&frame_timings);
                guard.1 += processed.faces_processed;
            }
            Ok(processed.frame)
        };
        let started = Instant::now();
        let encoded = process_video(reader, writer, parallelism, process, progress, cancel)?;
        let elapsed = started.elapsed();
        let (frame_timings, faces_processed) = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        timings.merge(&frame_timings);
        let fps = if elapsed.as_secs_f64() > 0.0 { encoded.frames as f64 / elapsed.as_secs_f64() } else { 0.0 };
        Ok(VideoOutput {
            frames: encoded.frames,
            video: encoded,
            info,
            trim: (trim_start, trim_end),
            output_fps,
            resolution: scaled,
            faces_processed,
            processing_fps: fps,
            elapsed,
            timings,
        })
    }

    /// Frames at once and frames in flight: FaceFusion's execution thread count (the host's
    /// FF_EXECUTION_THREAD_COUNT, at most the cores) and a bound set by the memory strategy.
    pub fn video_parallelism(&self, strategy: VideoMemoryStrategy) -> Parallelism {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let workers = self.config.intra_threads.clamp(1, cores);
        let per_worker = match strategy {
            VideoMemoryStrategy::Strict => 1,
            VideoMemoryStrategy::Moderate => 2,
            VideoMemoryStrategy::Tolerant => 4,
        };
        Parallelism { workers, max_in_flight: workers * per_worker + 1 }
    }

    /// FaceFusion's video NSFW gate (spec §10): within the trim range, the frames whose number is
    /// divisible by int(fps) are judged at the original size; more than 10 % positive rejects.
    fn check_video_content(
        &self,
        toolchain: &Toolchain,
        request: &VideoRequest,
        info: &VideoInfo,
        (start, end): (u64, u64),
        cancel: &AtomicBool,
    ) -> Result<()> {
        let step = (info.fps as u64).max(1);
        let mut reader = FrameReader::open(
            toolchain,
            &request.target,
            info,
            &ReadOptions {
                trim_frame_start: Some(start),
                trim_frame_end: Some(end),
                resolution: None,
                fps: None,
                timeout: request.timeout,
            },
        )?;
        let (mut checked, mut positive) = (0u64, 0u64);
        let mut number = start;
        while let Some(frame) = reader.next_frame()? {
            if cancel.load(Ordering::Relaxed) {
                reader.abort();
                return Err(cancelled_error());
            }
            if number % step == 0 {
                checked += 1;
                if content_analyser::analyse(&self.registry, &frame)?.is_nsfw() {
                    positive += 1;
                }
            }
            number += 1;
        }
        if checked > 0 && positive as f64 / checked as f64 * 100.0 > 10.0 {
            tracing::info!(checked, positive, "video target rejected by the content analyser");
            return Err(PipelineError::ContentRejected);
        }
        Ok(())
    }

    /// The faces of the reference frame: frame `reference_frame_number` of the original video, which
    /// FaceFusion reads with OpenCV at index n − 1, clamped to the video.
    fn reference_faces(&self, toolchain: &Toolchain, request: &VideoRequest, info: &VideoInfo) -> Result<Vec<Face>> {
        let options = &request.options;
        let last = info.frame_count.saturating_sub(1);
        let index = (options.selector.reference_frame_number as u64).saturating_sub(1).min(last);
        let mut reader = FrameReader::open(
            toolchain,
            &request.target,
            info,
            &ReadOptions {
                trim_frame_start: Some(index),
                trim_frame_end: Some(index + 1),
                resolution: None,
                fps: None,
                timeout: request.timeout,
            },
        )?;
        let Some(frame) = reader.next_frame()? else {
            return Ok(Vec::new());
        };
        reader.abort();
        FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker).faces(&frame)
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

fn extension_of(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
}
