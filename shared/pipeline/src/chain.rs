//! The processors of one run behind one interface: each says which models it needs, builds its
//! per-run state once (sessions, the source identity, voice windows, a model's size) and then
//! processes frames given the original frame, the running frame and the faces selected for it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::audio::VoiceFrames;
use crate::content_analyser;
use crate::error::{check_cancelled, PipelineError, Result};
use crate::face::analyser::{self, FaceAnalyser, FaceNeeds};
use crate::face::selector::{select_faces, sort_and_filter};
use crate::face::source_cache::SourceFaceCache;
use crate::face::Face;
use crate::face_mapping;
use crate::imgproc::resize::{resize_cubic, resize_linear};
use crate::mask::occluder_models;
use crate::options::{MaskType, ProcessOptions};
use crate::processor::Processor;
use crate::processors::age_modifier::{required_models as age_models, AgeModifier};
use crate::processors::background_remover::{self, BackgroundRemover};
use crate::processors::deep_swapper::{required_models as deep_swapper_models, DeepSwapper};
use crate::processors::expression_restorer::{required_models as restorer_models, ExpressionRestorer};
use crate::processors::face_debugger::debug_face;
use crate::processors::face_editor::{required_models as editor_models, FaceEditor};
use crate::processors::face_enhancer::{self, FaceEnhancer};
use crate::processors::face_swapper::{self, FaceSwapper, SourceFace};
use crate::processors::frame_colorizer::{self, FrameColorizer};
use crate::processors::frame_enhancer::FrameEnhancer;
use crate::processors::lip_syncer::{self, LipSyncer};
use crate::raster::{Frame, Raster};
use crate::sessions::ModelRegistry;
use crate::timings::StageTimings;
use crate::video_faces::TrackedFaces;

/// What a processor works on: the running frame and its alpha channel, which the frame enhancer
/// enlarges and the background remover writes.
pub struct Canvas {
    pub frame: Frame,
    pub alpha: Option<Raster<u8>>,
}

/// What a processor reads besides the canvas.
pub struct FrameInput<'f> {
    /// The unprocessed frame at the canvas's size (the expression restorer reads it).
    pub original: &'f Frame,
    /// The selected faces, scaled to the canvas; empty for the frame processors.
    pub faces: &'f [Face],
    /// With face mappings, the mapping of each face in `faces` (the swapper's identity); empty
    /// without.
    pub identities: &'f [usize],
    /// 0-based among the processed frames of a video (picks the lip syncer's voice window); `None`
    /// for an image.
    pub frame_index: Option<usize>,
    /// Set when the run's caller went away (a timed-out request, a cancelled job): checked between
    /// faces, so a long chain over many faces stops within one face.
    pub cancel: &'f AtomicBool,
}

/// One processor, built for a run.
pub trait FrameProcessor: Send + Sync {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()>;
}

/// The processed frame with its alpha channel (resized along with the frame), and how many
/// faces the face processors changed.
pub struct ProcessedFrame {
    pub frame: Frame,
    pub alpha: Option<Raster<u8>>,
    pub faces_processed: usize,
}

/// What building a run's processors needs besides the options.
pub struct ChainInputs<'i> {
    /// The decoded source images (the swapper's identity).
    pub sources: &'i [Frame],
    /// The faces chosen in source images by earlier runs of this engine.
    pub source_faces: &'i SourceFaceCache,
    /// The voice mel windows per frame; `None` gives the lip syncer silence (images).
    pub voice: Option<VoiceFrames>,
    /// The reference frame's faces; `None` makes every frame its own reference (images).
    pub reference_faces: Option<Vec<Face>>,
    /// Where the target faces of each frame come from.
    pub target_faces: TargetFaces,
    /// The host's pixel limit, which an enlarged frame must stay under.
    pub max_image_pixels: u64,
    /// With face mappings, the embeddings that recognise each mapping's person
    /// (`face_mapping::resolve_references`); empty without.
    pub mapping_references: Vec<Vec<Vec<f32>>>,
}

/// The processors of one run in order, with what every frame shares.
pub struct FrameChain<'a> {
    registry: &'a ModelRegistry,
    options: &'a ProcessOptions,
    stages: Vec<(Processor, Box<dyn FrameProcessor + 'a>)>,
    reference_faces: Option<Vec<Face>>,
    target_faces: TargetFaces,
    mapping_references: Vec<Vec<Vec<f32>>>,
}

/// The faces a frame's processors choose from.
pub enum TargetFaces {
    /// Found in each frame as it is processed.
    PerFrame,
    /// Every frame is the same still image: its faces, analysed once.
    Still(Vec<Face>),
    /// Analysed in order beside the frame loop (the tracker, the detector interval), by frame index;
    /// a frame the analysis did not reach is analysed as it comes.
    Tracked(Arc<TrackedFaces>),
}

/// Every model a run with these options loads, without repeats; used to fetch them up front.
pub fn required_models(options: &ProcessOptions, content_analysis: bool) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    if content_analysis {
        models.extend(content_analyser::MODELS.iter().map(|m| m.to_string()));
    }
    if options.uses_faces() {
        models.extend(analyser::required_models(&options.detector, &options.landmarker).into_iter().map(String::from));
    }
    for &processor in &options.processors {
        models.extend(processor_models(processor, options));
    }
    let mut seen = std::collections::HashSet::new();
    models.retain(|m| seen.insert(m.clone()));
    models
}

/// The models one processor loads (the face analysers' models aside).
fn processor_models(processor: Processor, options: &ProcessOptions) -> Vec<String> {
    let masks = &options.masks;
    match processor {
        Processor::FaceSwapper => {
            let mut models: Vec<String> =
                face_swapper::required_models(&options.swapper).into_iter().map(String::from).collect();
            models.extend(region_and_occlusion_models(options));
            models
        }
        Processor::FaceDebugger => region_and_occlusion_models(options),
        Processor::FaceEnhancer => face_enhancer::required_models(&options.face_enhancer, masks),
        Processor::FrameEnhancer => vec![options.frame_enhancer.model.clone()],
        Processor::LipSyncer => {
            let mut models = lip_syncer::required_models(&options.lip_syncer, masks);
            models.push(options.lip_syncer.voice_extractor_model.clone());
            models
        }
        Processor::FrameColorizer => frame_colorizer::required_models(&options.frame_colorizer),
        Processor::BackgroundRemover => background_remover::required_models(&options.background_remover),
        Processor::ExpressionRestorer => restorer_models(&options.expression_restorer, masks),
        Processor::FaceEditor => editor_models(&options.face_editor, masks),
        Processor::AgeModifier => age_models(&options.age_modifier, masks),
        Processor::DeepSwapper => deep_swapper_models(&options.deep_swapper, masks),
    }
}

/// The occlusion and region mask models, which the swapper and the debugger read when asked.
fn region_and_occlusion_models(options: &ProcessOptions) -> Vec<String> {
    let masks = &options.masks;
    let mut models: Vec<String> = Vec::new();
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(String::from));
    }
    if masks.types.contains(&MaskType::Region) {
        models.push(masks.parser_model.clone());
    }
    models
}

impl<'a> FrameChain<'a> {
    /// Builds every processor of the run once, in order. The source identity is analysed only when
    /// the swapper runs (its time counts as analysis).
    pub fn build(
        registry: &'a ModelRegistry,
        options: &'a ProcessOptions,
        inputs: ChainInputs<'_>,
        timings: &mut StageTimings,
    ) -> Result<Self> {
        let ChainInputs {
            sources,
            source_faces,
            mut voice,
            reference_faces,
            target_faces,
            max_image_pixels,
            mapping_references,
        } = inputs;
        let mut stages: Vec<(Processor, Box<dyn FrameProcessor + 'a>)> = Vec::new();
        for &processor in &options.processors {
            let stage: Box<dyn FrameProcessor + 'a> = match processor {
                Processor::FaceSwapper => {
                    let started = Instant::now();
                    let identities = source_identities(registry, sources, source_faces, options)?;
                    timings.analyse += started.elapsed();
                    let swappers = identities
                        .iter()
                        .map(|source| FaceSwapper::new(registry, &options.swapper, source))
                        .collect::<Result<Vec<_>>>()?;
                    Box::new(SwapStage { swappers, options })
                }
                Processor::FaceEnhancer => Box::new(FaceEnhanceStage {
                    enhancer: FaceEnhancer::new(registry, &options.face_enhancer)?,
                    options,
                }),
                Processor::FrameEnhancer => Box::new(FrameEnhanceStage {
                    enhancer: FrameEnhancer::new(registry, &options.frame_enhancer)?,
                    max_image_pixels,
                }),
                Processor::LipSyncer => Box::new(LipSyncStage {
                    syncer: LipSyncer::new(registry, &options.lip_syncer)?,
                    voice: voice.take(),
                    options,
                }),
                Processor::FaceDebugger => Box::new(DebugStage { registry, options }),
                Processor::FrameColorizer => Box::new(FrameColorizer::new(registry, &options.frame_colorizer)?),
                Processor::BackgroundRemover => {
                    Box::new(BackgroundRemover::new(registry, &options.background_remover)?)
                }
                Processor::ExpressionRestorer => Box::new(RestoreStage {
                    restorer: ExpressionRestorer::new(registry, &options.expression_restorer)?,
                    options,
                }),
                Processor::FaceEditor => {
                    Box::new(EditStage { editor: FaceEditor::new(registry, &options.face_editor)?, options })
                }
                Processor::AgeModifier => {
                    Box::new(AgeStage { modifier: AgeModifier::new(registry, &options.age_modifier)?, options })
                }
                Processor::DeepSwapper => {
                    Box::new(DeepSwapStage { swapper: DeepSwapper::new(registry, &options.deep_swapper)?, options })
                }
            };
            stages.push((processor, stage));
        }
        Ok(Self { registry, options, stages, reference_faces, target_faces, mapping_references })
    }

    /// Runs the processors in order on one frame (spec §1.4-1.6). Faces are always found on the
    /// original frame and rescaled to the running frame, which a frame enhancer may have enlarged; so
    /// chained face processors all work on the faces of the unprocessed frame, as in FaceFusion.
    /// `cancel` is checked before every processor and every face: a cancelled run returns the
    /// `cancelled` error instead of finishing work nobody waits for.
    pub fn process(
        &self,
        original: &Frame,
        alpha: Option<Raster<u8>>,
        frame_index: Option<usize>,
        cancel: &AtomicBool,
        timings: &mut StageTimings,
    ) -> Result<ProcessedFrame> {
        let options = self.options;
        // One analyser per frame: its face cache lives as long as the frame does. Only what the
        // selector and the swapper read is computed.
        let needs = FaceNeeds::for_targets(options);
        let analyser = FaceAnalyser::with_needs(self.registry, &options.detector, &options.landmarker, needs);
        let mut canvas = Canvas { frame: original.clone(), alpha };
        let mut faces_processed = 0;
        // The original at the canvas's size, made again only when an enhancer changed the size.
        let mut resized_original: Option<Frame> = None;
        for (processor, stage) in &self.stages {
            check_cancelled(cancel)?;
            let (selected, identities) = if processor.works_on_faces() {
                let started = Instant::now();
                let selected = self.selected_faces(&analyser, original, frame_index, cancel)?;
                timings.analyse += started.elapsed();
                faces_processed = faces_processed.max(selected.0.len());
                selected
            } else {
                (Vec::new(), Vec::new())
            };
            let (width, height) = (canvas.frame.width, canvas.frame.height);
            let (sx, sy) = (width as f64 / original.width as f64, height as f64 / original.height as f64);
            let faces: Vec<Face> = selected.iter().map(|face| face.scaled(sx, sy)).collect();
            let original_here = if (width, height) == (original.width, original.height) {
                original
            } else {
                if resized_original.as_ref().is_none_or(|frame| (frame.width, frame.height) != (width, height)) {
                    resized_original = Some(resize_cubic(original, width, height));
                }
                resized_original.as_ref().unwrap_or(original)
            };
            let input =
                FrameInput { original: original_here, faces: &faces, identities: &identities, frame_index, cancel };
            let started = Instant::now();
            stage.process(&input, &mut canvas)?;
            timings.add_processor(processor.name(), started.elapsed());
        }
        Ok(ProcessedFrame { frame: canvas.frame, alpha: canvas.alpha, faces_processed })
    }

    /// The faces of the original frame the selector picks, against the run's reference faces; with
    /// face mappings, the faces of mapped people instead, each with its mapping.
    fn selected_faces(
        &self,
        analyser: &FaceAnalyser<'_>,
        original: &Frame,
        frame_index: Option<usize>,
        cancel: &AtomicBool,
    ) -> Result<(Vec<Face>, Vec<usize>)> {
        let known = match &self.target_faces {
            TargetFaces::PerFrame => None,
            TargetFaces::Still(faces) => Some(faces.clone()),
            TargetFaces::Tracked(tracked) => match frame_index {
                Some(index) => tracked.faces(index, cancel)?,
                None => None,
            },
        };
        let target_faces = match known {
            Some(faces) => faces,
            None => analyser.faces(original)?,
        };
        if !self.mapping_references.is_empty() {
            let distance = self.options.selector.reference_face_distance;
            return Ok(face_mapping::assign(&target_faces, &self.mapping_references, distance).into_iter().unzip());
        }
        let references = self.reference_faces.as_deref().unwrap_or(&target_faces);
        Ok((select_faces(&target_faces, references, &self.options.selector), Vec::new()))
    }
}

/// The identities the swapper swaps in: the averaged identity of all source images, or with face
/// mappings one per mapping. A source image's face is its first in selector order, analysed only
/// when no earlier run chose it with the same options.
fn source_identities(
    registry: &ModelRegistry,
    sources: &[Frame],
    cache: &SourceFaceCache,
    options: &ProcessOptions,
) -> Result<Vec<SourceFace>> {
    let analyser = FaceAnalyser::new(registry, &options.detector, &options.landmarker);
    let faces = sources
        .iter()
        .map(|frame| {
            cache.chosen_face(frame, options, || {
                Ok(sort_and_filter(analyser.faces(frame)?, &options.selector).into_iter().next())
            })
        })
        .collect::<Result<Vec<_>>>()?;
    match options.face_mappings.is_empty() {
        true => Ok(vec![SourceFace::average(sources, &faces)?]),
        false => face_mapping::identities(sources, &faces, &options.face_mappings),
    }
}

/// Applies `change` to the canvas once per selected face, in selection order.
fn each_face(
    input: &FrameInput<'_>,
    canvas: &mut Canvas,
    mut change: impl FnMut(&Frame, &Face) -> Result<Frame>,
) -> Result<()> {
    for face in input.faces {
        check_cancelled(input.cancel)?;
        canvas.frame = change(&canvas.frame, face)?;
    }
    Ok(())
}

/// One swapper per identity: the averaged source, or one per face mapping.
struct SwapStage<'a> {
    swappers: Vec<FaceSwapper<'a>>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for SwapStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        for (index, face) in input.faces.iter().enumerate() {
            check_cancelled(input.cancel)?;
            let identity = input.identities.get(index).copied().unwrap_or(0);
            let swapper =
                self.swappers.get(identity).ok_or_else(|| PipelineError::Runtime("no such identity".into()))?;
            canvas.frame = swapper.swap(&canvas.frame, face, &self.options.masks)?;
        }
        Ok(())
    }
}

struct FaceEnhanceStage<'a> {
    enhancer: FaceEnhancer<'a>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for FaceEnhanceStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        each_face(input, canvas, |frame, face| self.enhancer.enhance(frame, face, &self.options.masks))
    }
}

struct LipSyncStage<'a> {
    syncer: LipSyncer<'a>,
    voice: Option<VoiceFrames>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for LipSyncStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        let window = self.voice.as_ref().zip(input.frame_index).map(|(voice, index)| voice.window(index));
        each_face(input, canvas, |frame, face| self.syncer.sync(frame, face, &self.options.masks, window.as_deref()))
    }
}

struct DebugStage<'a> {
    registry: &'a ModelRegistry,
    options: &'a ProcessOptions,
}

impl FrameProcessor for DebugStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        let options = self.options;
        each_face(input, canvas, |frame, face| {
            debug_face(self.registry, frame, face, &options.debugger_items, &options.masks)
        })
    }
}

struct FrameEnhanceStage<'a> {
    enhancer: FrameEnhancer<'a>,
    max_image_pixels: u64,
}

impl FrameProcessor for FrameEnhanceStage<'_> {
    fn process(&self, _input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        let scale = self.enhancer.scale();
        // The upscaled frame is held in memory several times over (tiles, canvas, blend); past the
        // host's pixel limit it is refused instead of exhausting memory.
        let (width, height) = (canvas.frame.width * scale, canvas.frame.height * scale);
        if (width as u64) * (height as u64) > self.max_image_pixels {
            return Err(PipelineError::ImageTooLarge {
                width: width.min(u32::MAX as usize) as u32,
                height: height.min(u32::MAX as usize) as u32,
                limit: self.max_image_pixels,
            });
        }
        canvas.frame = self.enhancer.enhance(&canvas.frame)?;
        canvas.alpha = canvas.alpha.take().map(|a| resize_linear(&a, canvas.frame.width, canvas.frame.height));
        Ok(())
    }
}

impl FrameProcessor for FrameColorizer<'_> {
    fn process(&self, _input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        canvas.frame = self.colorize(&canvas.frame)?;
        Ok(())
    }
}

impl FrameProcessor for BackgroundRemover<'_> {
    fn process(&self, _input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        let (frame, alpha) = self.remove(&canvas.frame, canvas.alpha.as_ref())?;
        canvas.frame = frame;
        canvas.alpha = Some(alpha);
        Ok(())
    }
}

struct RestoreStage<'a> {
    restorer: ExpressionRestorer<'a>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for RestoreStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        each_face(input, canvas, |frame, face| self.restorer.restore(input.original, frame, face, &self.options.masks))
    }
}

struct EditStage<'a> {
    editor: FaceEditor<'a>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for EditStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        each_face(input, canvas, |frame, face| self.editor.edit(frame, face, &self.options.masks))
    }
}

struct AgeStage<'a> {
    modifier: AgeModifier<'a>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for AgeStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        each_face(input, canvas, |frame, face| self.modifier.modify(frame, face, &self.options.masks))
    }
}

struct DeepSwapStage<'a> {
    swapper: DeepSwapper<'a>,
    options: &'a ProcessOptions,
}

impl FrameProcessor for DeepSwapStage<'_> {
    fn process(&self, input: &FrameInput<'_>, canvas: &mut Canvas) -> Result<()> {
        each_face(input, canvas, |frame, face| self.swapper.swap(frame, face, &self.options.masks))
    }
}
