//! The entry point callers use: one `Engine` per process, shared by every request.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::{decode_audio, Audio, VoiceFrames};
pub use crate::chain::ProcessedFrame;
use crate::chain::{self, ChainInputs, FrameChain, TargetFaces};
use crate::content_analyser;
use crate::error::{check_cancelled, MediaFailure, PipelineError, Result};
use crate::face::analyser::FaceAnalyser;
use crate::face::source_cache::SourceFaceCache;
use crate::face::tracker;
use crate::face::Face;
use crate::face_mapping::{resolve_references, MappedTarget};
use crate::frame_size::check_frame_sizes;
use crate::image_io::{self, DecodedImage, ImageFormat};
use crate::imgproc::resize::resize_cubic;
use crate::media::{self, MediaKind};
use crate::models::{ModelSource, ModelStore};
use crate::options::{ProcessOptions, SelectorMode, VideoOutputOptions};
use crate::processor::Processor;
use crate::raster::{Frame, Raster};
use crate::sessions::ModelRegistry;
pub use crate::timings::StageTimings;
use crate::video::{
    cancelled_error, process_video, AudioEncoder, AudioPlan, EncodeOptions, EncodedVideo, FrameReader, FrameSource,
    FrameWriter, Keyframe, Parallelism, Progress, Rational, ReadOptions, StillFrames, Toolchain, VideoEncoder,
    VideoInfo, VIDEO_FORMATS,
};
use crate::video_faces::TrackedFaces;

/// The longest audio source the lip syncer accepts; its voice extraction holds the whole file.
pub const MAX_AUDIO_DURATION: Duration = Duration::from_secs(600);

/// The frame rate of a video made from a still image when `--output-video-fps` is not given.
pub const STILL_IMAGE_FPS: f64 = 25.0;

/// What the engine needs from its host; the service fills it from FF_* variables, the CLI from flags.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// FF_MODELS_DIR: models under their FaceFusion file names.
    pub models_dir: PathBuf,
    /// Whether a missing model may be fetched from FaceFusion's official URLs.
    pub allow_download: bool,
    /// ONNX Runtime intra-op threads per session (FF_EXECUTION_THREAD_COUNT).
    pub intra_threads: usize,
    /// Video frames processed at once, at most the cores: FaceFusion's execution thread count
    /// (FF_EXECUTION_THREAD_COUNT).
    pub frame_workers: usize,
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

impl EngineConfig {
    /// Video frames processed at once: FaceFusion's execution thread count, at most the cores.
    pub fn video_workers(&self) -> usize {
        self.frame_workers.clamp(1, host_cores())
    }

    /// The thread plan of an engine that runs one video: a session per worker, and the cores shared
    /// out among the workers' sessions rather than each session given the execution thread count.
    /// On 2 cores, 2 workers x 1 ONNX Runtime thread beat 2 x 2 and 2 x 4 by 5-8 % on the talking
    /// clip (costed stand-ins, alternating runs); a remainder rounds up, since an idle core costs more
    /// than a thread too many (6 cores, 4 workers: 2 threads each).
    pub fn for_one_video(self) -> Self {
        let workers = self.video_workers();
        Self { sessions_per_model: workers, intra_threads: host_cores().div_ceil(workers), ..self }
    }
}

fn host_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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

/// One video job: encoded source images, the target video and output paths, validated options.
pub struct VideoRequest {
    pub sources: Vec<Vec<u8>>,
    pub target: PathBuf,
    /// The target as the caller probed it (`Toolchain::probe`), so the run does not probe it
    /// again; `None` when the caller has not looked: the engine then tells a still image (which the
    /// lip syncer makes speak) from a video and probes the video itself.
    pub probe: Option<VideoInfo>,
    /// Written atomically (a temp file beside it, renamed); its extension picks the container.
    pub output: PathBuf,
    pub options: ProcessOptions,
    /// `None`: from the host's thread count and FF_VIDEO_MEMORY_STRATEGY.
    pub parallelism: Option<Parallelism>,
    /// The whole run's time limit; ffmpeg is killed past it.
    pub timeout: Duration,
    /// The longest video a still image may become (the length of the audio it speaks): a longer audio
    /// is refused with `video_too_long`. `None`: up to [`MAX_AUDIO_DURATION`].
    pub max_duration: Option<Duration>,
    /// Only this piece of the run (see [`Engine::plan_segments`]); `None`: the whole trim range.
    pub segment: Option<VideoSegment>,
}

/// One piece of a video run cut by [`Engine::plan_segments`]: frames `frames` of the target (inside
/// the run's trim range), processed exactly as the whole run processes them, encoded without audio
/// for [`Engine::join_segments`]. The content analyser is not run on a piece: `plan_segments`
/// judged the whole range before cutting it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VideoSegment {
    pub frames: (u64, u64),
    /// Where its decoders start: the last keyframe before its frames (and the tracker's window),
    /// so a segment late in a long video does not decode everything before it. `None`: from the
    /// video's first frame.
    pub keyframe: Option<Keyframe>,
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

/// A run's sources by kind: images give the swapper its identity; the first audio file is what the
/// lip syncer speaks and what replaces a video's sound (FaceFusion uses only the first, spec §9).
struct RunSources {
    images: Vec<Frame>,
    /// Kept in a temp file for ffmpeg (decoding it, then muxing it into the output); removed on drop.
    audio: Option<tempfile::NamedTempFile>,
}

/// What a video run reads: a video file's trim range, or a still image repeated for the length of the
/// audio it is made to speak.
enum VideoTarget {
    File { info: VideoInfo, trim: (u64, u64) },
    Still { image: Frame, info: VideoInfo },
}

pub struct Engine {
    config: EngineConfig,
    store: Arc<ModelStore>,
    registry: ModelRegistry,
    /// The NSFW gate's verdicts by target content: a retried or repeated target is judged once.
    verdicts: content_analyser::VerdictCache,
    /// The faces chosen in source images: a source sent again is not analysed again.
    source_faces: SourceFaceCache,
}

/// Source images whose chosen face is remembered (a few KB each).
const SOURCE_FACE_CACHE_SIZE: usize = 1024;

/// Targets whose NSFW verdict is remembered.
const VERDICT_CACHE_SIZE: usize = 4096;

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
        Self::with_model_source(config, None)
    }

    /// An engine whose missing models are copied from `source` (when given) before FaceFusion's
    /// URLs are tried: the service's bucket prefix of models.
    pub fn with_model_source(config: EngineConfig, source: Option<Arc<dyn ModelSource>>) -> Result<Self> {
        let mut store = ModelStore::new(&config.models_dir, config.allow_download);
        if let Some(source) = source {
            store = store.with_source(source);
        }
        let store = Arc::new(store);
        let resolver_store = store.clone();
        let registry = ModelRegistry::new(
            Arc::new(move |name: &str| resolver_store.ensure(name)),
            config.intra_threads,
            config.sessions_per_model,
        );
        Ok(Self {
            config,
            store,
            registry,
            verdicts: content_analyser::VerdictCache::new(VERDICT_CACHE_SIZE),
            source_faces: SourceFaceCache::new(SOURCE_FACE_CACHE_SIZE),
        })
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

    /// The source-face cache's (hits, misses) since the engine started.
    pub fn source_face_cache_stats(&self) -> (u64, u64) {
        self.source_faces.stats()
    }

    /// Every model a run with these options loads; used to fetch them up front.
    pub fn required_models(&self, options: &ProcessOptions) -> Vec<String> {
        chain::required_models(options, self.config.content_analysis)
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
        self.process_image_with_cancel(request, &AtomicBool::new(false))
    }

    /// [`Engine::process_image`], stopped with the `cancelled` error once `cancel` is set: checked
    /// before each stage, each processor and each face, so a request that timed out or whose client
    /// left frees its processing slot within one face's work.
    pub fn process_image_with_cancel(&self, request: ImageRequest, cancel: &AtomicBool) -> Result<ImageOutput> {
        check_cancelled(cancel)?;
        let mut timings = StageTimings::default();
        let started = Instant::now();
        let prepared = self.decode(&request)?;
        timings.decode = started.elapsed();
        check_cancelled(cancel)?;
        self.prepare_models(&request.options)?;
        let format = request.output_format.unwrap_or(prepared.target.format);
        if self.config.content_analysis {
            let started = Instant::now();
            let key = content_analyser::content_key(&request.target, &[]);
            self.verdicts.judged(key, || content_analyser::check(&self.registry, &prepared.original))?;
            timings.content = started.elapsed();
        }
        let processed = self.process_frames(&prepared, &request.options, cancel, &mut timings)?;
        check_cancelled(cancel)?;
        let faces_processed = processed.faces_processed;
        let started = Instant::now();
        let output = scale_output(processed, &prepared, request.options.output.image_scale);
        let bytes = image_io::encode(&output.0, output.1.as_ref(), format, request.options.output.image_quality)?;
        timings.encode = started.elapsed();
        Ok(ImageOutput { bytes, format, faces_processed, timings })
    }

    pub fn decode(&self, request: &ImageRequest) -> Result<PreparedImage> {
        // An image target's lip sync is silent (FaceFusion's empty audio frame), so the audio itself is
        // only checked for presence, not decoded.
        let sources = self.sort_sources(&request.sources, &request.options)?;
        let scale = request.options.output.image_scale;
        let mut target = image_io::decode(&request.target, self.config.max_image_pixels)?;
        // Before the copy below and anything scaled is allocated.
        let size = (target.frame.width, target.frame.height);
        check_frame_sizes(size, scale, "output_image_scale", &request.options, self.config.max_image_pixels)?;
        let original = target.frame.clone();
        if scale < 1.0 {
            // FaceFusion copies the target at min(original, scaled) before processing.
            let (width, height) = image_io::scaled_resolution(target.frame.width, target.frame.height, scale);
            target.frame = resize_cubic(&target.frame, width, height);
            target.alpha = target.alpha.map(|a| resize_cubic(&a, width, height));
        }
        Ok(PreparedImage { target, original, sources: sources.images })
    }

    /// Decodes the image sources and keeps the first audio source, checking that the processors get
    /// what they need: the swapper a face image, the lip syncer an audio file (FaceFusion's pre-checks).
    fn sort_sources(&self, sources: &[Vec<u8>], options: &ProcessOptions) -> Result<RunSources> {
        let mut images = Vec::new();
        let mut audio = None;
        for bytes in sources {
            match media::sniff(bytes) {
                Some(MediaKind::Audio(_)) if audio.is_none() => audio = Some(write_temp_file(bytes)?),
                Some(MediaKind::Audio(_)) => {}
                Some(MediaKind::Video(_)) => {
                    return Err(PipelineError::UnsupportedMedia(
                        "a video cannot be a source: sources are face images or speech audio".into(),
                    ))
                }
                Some(MediaKind::Image(_)) => images.push(image_io::decode(bytes, self.config.max_image_pixels)?.frame),
                None => {
                    return Err(PipelineError::UnsupportedMedia(
                        "a source must be an image (JPEG, PNG, WebP, BMP) or audio (WAV, MP3, AAC/M4A, FLAC, OGG)"
                            .into(),
                    ))
                }
            }
        }
        if options.uses(Processor::FaceSwapper) && images.is_empty() {
            return Err(PipelineError::MissingInput("face_swapper needs at least one source image".into()));
        }
        if options.uses(Processor::LipSyncer) && audio.is_none() {
            return Err(PipelineError::MissingInput(
                "lip_syncer needs an audio source (the speech to lip-sync)".into(),
            ));
        }
        Ok(RunSources { images, audio })
    }

    /// The first audio source in a temp file (what replaces a video's sound), if there is one.
    fn source_audio(&self, sources: &[Vec<u8>]) -> Result<Option<tempfile::NamedTempFile>> {
        let first = sources.iter().find(|bytes| matches!(media::sniff(bytes), Some(MediaKind::Audio(_))));
        first.map(|bytes| write_temp_file(bytes)).transpose()
    }

    /// Runs the processors in order on a decoded target (spec §1.4-1.6); an image target is its own
    /// reference frame.
    pub fn process_frames(
        &self,
        prepared: &PreparedImage,
        options: &ProcessOptions,
        cancel: &AtomicBool,
        timings: &mut StageTimings,
    ) -> Result<ProcessedFrame> {
        let started = Instant::now();
        let mapping_references = match options.face_mappings.is_empty() {
            true => Vec::new(),
            false => resolve_references(&self.registry, &MappedTarget::Frame(&prepared.target.frame), options)?,
        };
        timings.analyse += started.elapsed();
        let inputs = ChainInputs {
            sources: &prepared.sources,
            source_faces: &self.source_faces,
            voice: None,
            reference_faces: None,
            target_faces: TargetFaces::PerFrame,
            max_image_pixels: self.config.max_image_pixels,
            mapping_references,
        };
        let chain = FrameChain::build(&self.registry, options, inputs, timings)?;
        chain.process(&prepared.target.frame, prepared.target.alpha.clone(), None, cancel, timings)
    }

    /// A video target through the processor chain (spec §11.2), streamed: ffmpeg decodes the trim
    /// range into memory, `workers` frames are processed at once, ffmpeg encodes them in order and the
    /// target's audio (or the source audio) is muxed in. A still image target with the lip syncer and
    /// an audio source becomes a video of the audio's length. CPU-bound and long: call from a blocking
    /// thread; `progress` is called after every frame written, `cancel` stops the run within one frame.
    pub fn process_video(
        &self,
        request: VideoRequest,
        progress: impl FnMut(Progress),
        cancel: &AtomicBool,
    ) -> Result<VideoOutput> {
        let options = &request.options;
        let video = &options.output.video;
        let mut timings = StageTimings::default();
        let output_format = extension_of(&request.output);
        if !VIDEO_FORMATS.contains(&output_format.as_str()) {
            return Err(PipelineError::invalid_option(
                "output_path",
                format!("a video output needs one of the extensions {}", VIDEO_FORMATS.join(", ")),
            ));
        }
        let toolchain = Toolchain::from_env();
        let started = Instant::now();
        let sources = self.sort_sources(&request.sources, options)?;
        timings.decode = started.elapsed();
        let started = Instant::now();
        let audio = match (&sources.audio, options.uses(Processor::LipSyncer)) {
            (Some(file), true) => Some(
                decode_audio(&toolchain, file.path(), MAX_AUDIO_DURATION, request.timeout)
                    .map_err(|error| without_temp_path(error, file.path()))?,
            ),
            _ => None,
        };
        timings.audio = started.elapsed();
        let started = Instant::now();
        let mut target = self.open_video_target(&toolchain, &request, audio.as_ref())?;
        let whole_trim = target.trim();
        if let Some(segment) = request.segment {
            target.narrow_to(segment)?;
        }
        timings.decode += started.elapsed();
        let info = target.info().clone();
        let (width, height) = (info.width as usize, info.height as usize);
        if (width as u64) * (height as u64) > self.config.max_image_pixels {
            return Err(PipelineError::ImageTooLarge {
                width: info.width,
                height: info.height,
                limit: self.config.max_image_pixels,
            });
        }
        check_frame_sizes(
            (width, height),
            video.video_scale,
            "output_video_scale",
            options,
            self.config.max_image_pixels,
        )?;
        let (encoder, audio_encoder) = choose_encoders(&toolchain, video)?;
        self.prepare_models(options)?;
        // A segment's range was judged whole by plan_segments.
        if self.config.content_analysis && request.segment.is_none() {
            let started = Instant::now();
            self.judge_content(&toolchain, &request, &target, cancel)?;
            timings.content = started.elapsed();
        }

        // FaceFusion's temp resolution is min(original, scaled), compared as (w, h) tuples.
        let scaled = image_io::scaled_resolution(width, height, video.video_scale);
        let temp_resolution = if (width, height) < scaled { (width, height) } else { scaled };
        let output_fps = video.video_fps.map_or(info.fps, |fps| fps.clamp(1.0, 60.0));
        let temp_fps = info.decode_fps(video.video_fps);

        let uses_faces = options.uses_faces();
        let started = Instant::now();
        let (reference_faces, still_faces) = match &target {
            VideoTarget::Still { image, .. } if uses_faces => {
                let faces = FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker).faces(image)?;
                (Some(faces.clone()), Some(faces))
            }
            VideoTarget::File { .. } if uses_faces && options.selector.mode == SelectorMode::Reference => {
                (Some(self.reference_faces(&toolchain, &request, &info)?), None)
            }
            _ => (None, None),
        };
        let parallelism =
            request.parallelism.unwrap_or_else(|| self.video_parallelism(self.config.video_memory_strategy));
        let tracking = match &target {
            VideoTarget::File { trim, .. } if uses_faces && still_faces.is_none() && options.tracker.active() => {
                let read = TrackedRead { trim: *trim, resolution: temp_resolution, fps: temp_fps };
                let in_flight = parallelism.max_in_flight.max(parallelism.workers);
                Some(self.open_tracking(&toolchain, &request, &info, read, in_flight)?)
            }
            _ => None,
        };
        let target_faces = match (still_faces, &tracking) {
            (Some(faces), _) => TargetFaces::Still(faces),
            (None, Some((tracked, _))) => TargetFaces::Tracked(Arc::clone(tracked)),
            (None, None) => TargetFaces::PerFrame,
        };
        timings.analyse += started.elapsed();
        let voice = match &audio {
            Some(audio) => {
                let started = Instant::now();
                let mut voice =
                    VoiceFrames::extract(&self.registry, &options.lip_syncer.voice_extractor_model, audio, temp_fps)?;
                // The voice windows follow the whole run's frame numbers; a segment starts later.
                voice.skip_frames((target.trim().0 - whole_trim.0) as usize);
                timings.audio += started.elapsed();
                Some(voice)
            }
            None => None,
        };
        let started = Instant::now();
        let mapping_references = match (&target, options.face_mappings.is_empty()) {
            (_, true) => Vec::new(),
            (VideoTarget::Still { image, .. }, false) => {
                resolve_references(&self.registry, &MappedTarget::Frame(image), options)?
            }
            (VideoTarget::File { .. }, false) => {
                let (path, timeout) = (request.target.as_path(), request.timeout);
                let mapped = MappedTarget::Video { toolchain: &toolchain, path, info: &info, timeout };
                resolve_references(&self.registry, &mapped, options)?
            }
        };
        timings.analyse += started.elapsed();
        let inputs = ChainInputs {
            sources: &sources.images,
            source_faces: &self.source_faces,
            voice,
            reference_faces,
            target_faces,
            max_image_pixels: self.config.max_image_pixels,
            mapping_references,
        };
        let chain = FrameChain::build(&self.registry, options, inputs, &mut timings)?;

        let trim = target.trim();
        let frames: Box<dyn FrameSource> = match target {
            VideoTarget::File { trim, .. } => Box::new(FrameReader::open(
                &toolchain,
                &request.target,
                &info,
                &ReadOptions {
                    trim_frame_start: Some(trim.0),
                    trim_frame_end: Some(trim.1),
                    resolution: Some((temp_resolution.0 as u32, temp_resolution.1 as u32)),
                    fps: Some(temp_fps),
                    sample_every: None,
                    timeout: request.timeout,
                    seek: request.segment.and_then(|segment| segment.keyframe),
                },
            )?),
            VideoTarget::Still { image, .. } => {
                let image = if (image.width, image.height) == temp_resolution {
                    image
                } else {
                    resize_cubic(&image, temp_resolution.0, temp_resolution.1)
                };
                Box::new(StillFrames::new(image, info.frame_count))
            }
        };
        let audio_plan = match request.segment {
            // The audio goes in once, over the joined segments.
            Some(_) => AudioPlan::None,
            None => audio_plan(
                sources.audio.as_ref().map(|file| file.path()),
                video.audio_volume,
                &request.target,
                &info,
                trim,
            ),
        };
        let encode = EncodeOptions {
            audio: audio_plan,
            ..encode_options(video, (encoder, audio_encoder), (temp_fps, output_fps), scaled, request.timeout)?
        };
        let writer = FrameWriter::create(&toolchain, &request.output, encode)?;

        // The background remover's matte goes into the video where the encoder keeps alpha (VP9 in
        // webm); other encoders get its colour composite only.
        let keep_alpha = options.uses(Processor::BackgroundRemover) && writer.encoder() == VideoEncoder::LibvpxVp9;
        let shared = Mutex::new((StageTimings::default(), 0usize));
        let process = |index: usize, frame: Frame| -> Result<Frame> {
            let mut frame_timings = StageTimings::default();
            let processed = chain.process(&frame, None, Some(index), cancel, &mut frame_timings)?;
            if let Ok(mut guard) = shared.lock() {
                guard.0.merge(&frame_timings);
                guard.1 += processed.faces_processed;
            }
            Ok(match processed.alpha {
                Some(alpha) if keep_alpha => with_alpha(&processed.frame, &alpha),
                _ => processed.frame,
            })
        };
        let started = Instant::now();
        let encoded = match tracking {
            None => process_video(frames, writer, parallelism, process, progress, cancel)?,
            Some((tracked, reader)) => std::thread::scope(|scope| -> Result<EncodedVideo> {
                let analysis = scope.spawn(|| {
                    let started = Instant::now();
                    (tracked.analyse(&self.registry, options, reader, cancel), started.elapsed())
                });
                let encoded = process_video(frames, writer, parallelism, process, progress, cancel);
                tracked.stop();
                let (analysed, analysis_time) =
                    analysis.join().unwrap_or_else(|_| (Err(face_analysis_panicked()), Duration::ZERO));
                timings.analyse += analysis_time;
                // The analysis's own error explains the workers' "analysis failed".
                analysed?;
                encoded
            })?,
        };
        let elapsed = started.elapsed();
        // The source audio's temp file is needed until the encoder muxed it in.
        drop(sources);
        let (frame_timings, faces_processed) = shared.into_inner().unwrap_or_else(|e| e.into_inner());
        timings.merge(&frame_timings);
        let fps = if elapsed.as_secs_f64() > 0.0 { encoded.frames as f64 / elapsed.as_secs_f64() } else { 0.0 };
        Ok(VideoOutput {
            frames: encoded.frames,
            video: encoded,
            info,
            trim,
            output_fps,
            resolution: scaled,
            faces_processed,
            processing_fps: fps,
            elapsed,
            timings,
        })
    }

    /// Cuts a video run into pieces of about `seconds` of the target for [`Engine::process_video`]
    /// with [`VideoRequest::segment`] and [`Engine::join_segments`], after deciding for the whole run
    /// what must be decided once: the content analyser's verdict over the whole trim range (an error
    /// when it rejects the target) and that the models are there. `None` when the run is not cut:
    /// it is not longer than a piece and a quarter, or its frames do not map one to one onto the
    /// target's (a still photo, a variable-rate target, a changed frame rate, timestamp gaps the
    /// decoder fills), or the detector interval counts frames from the run's start. Needs
    /// `request.probe`.
    pub fn plan_segments(
        &self,
        request: &VideoRequest,
        seconds: f64,
        cancel: &AtomicBool,
    ) -> Result<Option<Vec<VideoSegment>>> {
        let options = &request.options;
        let Some(info) = &request.probe else {
            return Ok(None);
        };
        let video = &options.output.video;
        let output_fps = video.video_fps.map_or(info.fps, |fps| fps.clamp(1.0, 60.0));
        let one_to_one = info.constant_rate && info.decode_fps(video.video_fps) == info.fps && output_fps == info.fps;
        let frames_per_segment = (seconds * info.fps).round() as u64;
        if !one_to_one || info.has_timestamp_gaps() || options.tracker.detector_interval > 1 || frames_per_segment == 0
        {
            return Ok(None);
        }
        let trim = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
        if trim.1 - trim.0 <= frames_per_segment + frames_per_segment / 4 {
            return Ok(None);
        }
        let toolchain = Toolchain::from_env();
        let keyframes = toolchain.keyframes(&request.target, info, request.timeout)?;
        let numbers: Vec<u64> = keyframes.iter().map(|keyframe| keyframe.frame).collect();
        let ranges = crate::video::segment_ranges(trim, &numbers, frames_per_segment);
        if ranges.len() < 2 {
            return Ok(None);
        }
        self.prepare_models(options)?;
        if self.config.content_analysis {
            let target = VideoTarget::File { info: info.clone(), trim };
            self.judge_content(&toolchain, request, &target, cancel)?;
        }
        // The tracker's reader starts its window before the segment's first frame.
        let lead = if options.tracker.score > 0.0 { tracker::WINDOW as u64 } else { 0 };
        let segments = ranges
            .into_iter()
            .map(|frames| VideoSegment { frames, keyframe: crate::video::seek_point(&keyframes, frames.0, lead) })
            .collect();
        Ok(Some(segments))
    }

    /// Joins the pieces of a run cut by [`Engine::plan_segments`] (in order, each made by
    /// [`Engine::process_video`] with its [`VideoSegment`]) into `request.output` by stream copy,
    /// and adds the audio the whole run would have: the target's over the trim range, or the
    /// source audio.
    pub fn join_segments(&self, request: &VideoRequest, parts: &[PathBuf]) -> Result<EncodedVideo> {
        let options = &request.options;
        let video = &options.output.video;
        let Some(info) = &request.probe else {
            return Err(PipelineError::MissingInput("joining segments needs the probed target".into()));
        };
        let toolchain = Toolchain::from_env();
        let audio_file = self.source_audio(&request.sources)?;
        let trim = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
        let scaled = image_io::scaled_resolution(info.width as usize, info.height as usize, video.video_scale);
        let output_fps = video.video_fps.map_or(info.fps, |fps| fps.clamp(1.0, 60.0));
        let rates = (info.decode_fps(video.video_fps), output_fps);
        let encode = EncodeOptions {
            audio: audio_plan(
                audio_file.as_ref().map(|file| file.path()),
                video.audio_volume,
                &request.target,
                info,
                trim,
            ),
            ..encode_options(video, choose_encoders(&toolchain, video)?, rates, scaled, request.timeout)?
        };
        crate::video::join_segments(&toolchain, parts, &request.output, &encode)
    }

    /// The NSFW gate for a video run (spec §10), its verdict remembered by the target's content and
    /// range.
    fn judge_content(
        &self,
        toolchain: &Toolchain,
        request: &VideoRequest,
        target: &VideoTarget,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let (start, end) = target.trim();
        let key = content_analyser::file_key(&request.target, &[start, end])?;
        self.verdicts.judged(key, || match target {
            VideoTarget::File { trim, info } => self.check_video_content(toolchain, request, info, *trim, cancel),
            VideoTarget::Still { image, .. } => content_analyser::check(&self.registry, image),
        })
    }

    /// Probes a video target and clamps its trim range, or turns a still image into the frames of a
    /// video as long as the lip syncer's audio.
    fn open_video_target(
        &self,
        toolchain: &Toolchain,
        request: &VideoRequest,
        audio: Option<&Audio>,
    ) -> Result<VideoTarget> {
        let video = &request.options.output.video;
        if let Some(info) = &request.probe {
            let trim = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
            return Ok(VideoTarget::File { info: info.clone(), trim });
        }
        if !sniff_file(&request.target)?.is_some_and(MediaKind::is_image) {
            let info = toolchain.probe(&request.target)?;
            let trim = info.trim_range(video.trim_frame_start, video.trim_frame_end)?;
            return Ok(VideoTarget::File { info, trim });
        }
        let Some(audio) = audio else {
            return Err(PipelineError::invalid_option(
                "output_path",
                "an image target becomes a video only with lip_syncer and an audio source; ask for an image output",
            ));
        };
        let bytes = std::fs::read(&request.target).map_err(|e| PipelineError::io(&request.target, e))?;
        let image = image_io::decode(&bytes, self.config.max_image_pixels)?.frame;
        let fps = video.video_fps.map_or(STILL_IMAGE_FPS, |fps| fps.clamp(1.0, 60.0));
        let duration = audio.duration().as_secs_f64();
        if let Some(max) = request.max_duration.filter(|max| audio.duration() > *max) {
            return Err(PipelineError::Media {
                kind: MediaFailure::VideoTooLong,
                message: format!(
                    "the audio is {duration:.1} s long, so the photo would become a {duration:.1} s video; at most {} s here",
                    max.as_secs()
                ),
            });
        }
        let frame_count = ((duration * fps).ceil() as u64).max(1);
        let info = VideoInfo {
            width: image.width as u32,
            height: image.height as u32,
            fps_rational: Rational { num: (fps * 1000.0).round() as u32, den: 1000 },
            fps,
            frame_count,
            duration,
            has_audio: false,
            codec: "image".into(),
            rotation: 0,
            constant_rate: true,
        };
        Ok(VideoTarget::Still { image, info })
    }

    /// Frames at once and frames in flight: FaceFusion's execution thread count (the host's
    /// FF_EXECUTION_THREAD_COUNT, at most the cores) and a bound set by the memory strategy.
    pub fn video_parallelism(&self, strategy: VideoMemoryStrategy) -> Parallelism {
        let workers = self.config.video_workers();
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
        if end.div_ceil(step) == start.div_ceil(step) {
            // No frame number in the range is a multiple of the step: nothing is judged, as in FaceFusion.
            return Ok(());
        }
        let reader = FrameReader::open(
            toolchain,
            &request.target,
            info,
            &ReadOptions {
                trim_frame_start: Some(start),
                trim_frame_end: Some(end),
                sample_every: Some(step),
                timeout: request.timeout,
                ..ReadOptions::default()
            },
        )?;
        // The sampled frames are judged on as many threads as the run has workers: the sessions run
        // single-threaded when the workers fill the cores, and one thread alone would leave the
        // others idle while the gate holds the run back.
        let workers = request.parallelism.unwrap_or_else(|| self.video_parallelism(self.config.video_memory_strategy));
        let reader = Mutex::new(reader);
        let tally = Mutex::new((0u64, 0u64));
        let judge = || -> Result<()> {
            loop {
                let frame = {
                    let mut reader = reader.lock().unwrap_or_else(|p| p.into_inner());
                    if cancel.load(Ordering::Relaxed) {
                        reader.abort();
                        return Err(cancelled_error());
                    }
                    match reader.next_frame()? {
                        Some(frame) => frame,
                        None => return Ok(()),
                    }
                };
                let nsfw = content_analyser::is_nsfw(&self.registry, &frame)?;
                let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.0 += 1;
                tally.1 += u64::from(nsfw);
            }
        };
        std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..workers.workers.max(1)).map(|_| scope.spawn(judge)).collect();
            let mine = judge();
            let theirs = helpers.into_iter().map(|helper| helper.join().unwrap_or_else(|_| Err(gate_panicked())));
            std::iter::once(mine).chain(theirs).collect::<Result<Vec<()>>>()
        })?;
        let (checked, positive) = tally.into_inner().unwrap_or_else(|p| p.into_inner());
        if checked > 0 && positive as f64 / checked as f64 * 100.0 > 10.0 {
            tracing::info!(checked, positive, "video target rejected by the content analyser");
            return Err(PipelineError::ContentRejected);
        }
        Ok(())
    }

    /// The analysis beside the frame loop for the tracker or the detector interval: its store of
    /// faces and a second decoder over the run's frames. The tracker's window reaches past the trim
    /// range into the video, as FaceFusion's reads the original video around each frame; when the
    /// frame rate changes, decoded frames no longer map one to one onto the video's, and the window
    /// stops at the range's ends.
    fn open_tracking(
        &self,
        toolchain: &Toolchain,
        request: &VideoRequest,
        info: &VideoInfo,
        read: TrackedRead,
        in_flight: usize,
    ) -> Result<(Arc<TrackedFaces>, FrameReader)> {
        let tracker = &request.options.tracker;
        let (start, end) = read.trim;
        let reach = if tracker.score > 0.0 && read.fps == info.fps { tracker::WINDOW as u64 } else { 0 };
        let lead = start.min(reach);
        let reader = FrameReader::open(
            toolchain,
            &request.target,
            info,
            &ReadOptions {
                trim_frame_start: Some(start - lead),
                trim_frame_end: Some(end + reach),
                resolution: Some((read.resolution.0 as u32, read.resolution.1 as u32)),
                fps: Some(read.fps),
                sample_every: None,
                timeout: request.timeout,
                // plan_segments chose it before the window's first frame; the reader ignores a
                // keyframe past the frames it starts at.
                seek: request.segment.and_then(|segment| segment.keyframe),
            },
        )?;
        Ok((Arc::new(TrackedFaces::new(lead as usize, tracker.score, in_flight)), reader))
    }

    /// The faces of the reference frame: frame `reference_frame_number` of the original video, which
    /// FaceFusion reads with OpenCV at index n − 1, clamped to the video.
    fn reference_faces(&self, toolchain: &Toolchain, request: &VideoRequest, info: &VideoInfo) -> Result<Vec<Face>> {
        let options = &request.options;
        let last = info.frame_count.saturating_sub(1);
        let index = (options.selector.reference_frame_number as u64).saturating_sub(1).min(last);
        let Some(frame) = FrameReader::read_one(toolchain, &request.target, info, index, request.timeout)? else {
            return Ok(Vec::new());
        };
        FaceAnalyser::new(&self.registry, &options.detector, &options.landmarker).faces(&frame)
    }
}

/// Which frames the tracker's pass decodes: the run's trim range at its resolution and rate.
#[derive(Clone, Copy)]
struct TrackedRead {
    trim: (u64, u64),
    resolution: (usize, usize),
    fps: f64,
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

impl VideoTarget {
    fn info(&self) -> &VideoInfo {
        match self {
            Self::File { info, .. } | Self::Still { info, .. } => info,
        }
    }

    /// Keeps only `segment`'s frames of a video file's trim range.
    fn narrow_to(&mut self, segment: VideoSegment) -> Result<()> {
        let (from, to) = segment.frames;
        match self {
            Self::File { trim, .. } if trim.0 <= from && from < to && to <= trim.1 => {
                *trim = (from, to);
                Ok(())
            }
            Self::File { trim, .. } => Err(PipelineError::invalid_option(
                "segment",
                format!("frames {from}..{to} are not inside the run's frames {}..{}", trim.0, trim.1),
            )),
            Self::Still { .. } => {
                Err(PipelineError::invalid_option("segment", "a photo target is not cut into segments"))
            }
        }
    }

    /// The frames processed, in the target's numbering.
    fn trim(&self) -> (u64, u64) {
        match self {
            Self::File { trim, .. } => *trim,
            Self::Still { info, .. } => (0, info.frame_count),
        }
    }
}

/// Where the output's audio comes from (spec §11.2): none at volume 0; the first source audio
/// whenever one is given (FaceFusion replaces the sound with it); else the target's over the trim
/// range, if it has any.
fn audio_plan(source_audio: Option<&Path>, volume: u8, target: &Path, info: &VideoInfo, trim: (u64, u64)) -> AudioPlan {
    match (source_audio, volume) {
        (_, 0) => AudioPlan::None,
        (Some(file), _) => AudioPlan::Replace { audio: file.to_path_buf() },
        (None, _) if info.has_audio => AudioPlan::Restore {
            target: target.to_path_buf(),
            trim_frame_start: trim.0,
            trim_frame_end: trim.1,
            target_fps: info.fps,
        },
        (None, _) => AudioPlan::None,
    }
}

/// The encoder settings of a run from its output options, without audio: frames come at
/// `rates.0` (the decoder's rate) and leave at `rates.1`, scaled to `scaled`.
fn encode_options(
    video: &VideoOutputOptions,
    (encoder, audio_encoder): (VideoEncoder, AudioEncoder),
    (input_fps, output_fps): (f64, f64),
    scaled: (usize, usize),
    timeout: Duration,
) -> Result<EncodeOptions> {
    Ok(EncodeOptions {
        encoder,
        preset: video.video_preset.parse()?,
        quality: video.video_quality,
        input_fps,
        output_fps,
        resolution: Some((scaled.0 as u32, scaled.1 as u32)),
        // FaceFusion encodes into a temp file with the target's container, which it requires to be
        // the output's; ff converts between containers, so the output's container picks the
        // encoder fixes (an H.264 stream in a .webm file would be broken).
        temp_format: None,
        audio: AudioPlan::None,
        audio_encoder,
        audio_quality: video.audio_quality,
        audio_volume: video.audio_volume,
        timeout,
    })
}

/// The video encoder asked for (it must be one the local ffmpeg offers) or the first of FaceFusion's
/// the local ffmpeg has, and the audio encoder: aac by default, where FaceFusion's own default (flac)
/// cannot go into MP4.
fn choose_encoders(toolchain: &Toolchain, video: &VideoOutputOptions) -> Result<(VideoEncoder, AudioEncoder)> {
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
    let audio_encoder = match &video.audio_encoder {
        Some(name) => name.parse()?,
        None => AudioEncoder::Aac,
    };
    Ok((encoder, audio_encoder))
}

/// A BGRA frame from a BGR frame and its alpha channel.
fn with_alpha(frame: &Frame, alpha: &Raster<u8>) -> Frame {
    let data = frame.data.chunks_exact(3).zip(&alpha.data).flat_map(|(px, &a)| [px[0], px[1], px[2], a]).collect();
    Frame::from_vec(frame.width, frame.height, 4, data)
}

/// An audio error names the temp file the upload was written to; the caller knows it as its source.
fn without_temp_path(error: PipelineError, temp: &Path) -> PipelineError {
    let PipelineError::Media { kind, message } = error else { return error };
    let name = temp.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let message =
        message.replace(&temp.to_string_lossy().into_owned(), "source audio").replace(&format!(" `{name}`"), "");
    PipelineError::Media { kind, message }
}

/// The kind of a target file from its first bytes.
fn sniff_file(path: &Path) -> Result<Option<MediaKind>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => {
            PipelineError::MissingInput(format!("target `{}` does not exist", file_name_of(path)))
        }
        _ => PipelineError::io(path, error),
    })?;
    let mut head = Vec::with_capacity(64);
    file.take(64).read_to_end(&mut head).map_err(|e| PipelineError::io(path, e))?;
    Ok(media::sniff(&head))
}

/// Audio bytes in a temp file ffmpeg can seek in (an M4A's index may sit at its end, which a pipe
/// cannot reach).
fn write_temp_file(bytes: &[u8]) -> Result<tempfile::NamedTempFile> {
    use std::io::Write;
    let dir = std::env::temp_dir();
    let mut file =
        tempfile::Builder::new().prefix("ff-audio-").tempfile_in(&dir).map_err(|e| PipelineError::io(&dir, e))?;
    file.write_all(bytes).and_then(|()| file.flush()).map_err(|e| PipelineError::io(file.path(), e))?;
    Ok(file)
}

fn extension_of(path: &Path) -> String {
    path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default()
}

/// A path's last component: what an error message names, since a full path would show the server's
/// directories to a client (the log keeps the full path).
fn file_name_of(path: &Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A face-analysis thread that panicked fails the run like a panicking frame does.
fn face_analysis_panicked() -> PipelineError {
    PipelineError::media(MediaFailure::ProcessingPanicked, "the face analysis ahead of the frames panicked")
}

/// A content-analyser thread that panicked fails the run like a panicking frame does.
fn gate_panicked() -> PipelineError {
    PipelineError::media(MediaFailure::ProcessingPanicked, "the content analyser panicked")
}
