//! Turns a frame into `Face` records, the way FaceFusion's `get_many_faces` does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::face::detector::{self, Detection};
use crate::face::selector::order_key;
use crate::face::{classifier, landmarker, recognizer, Face};
use crate::options::{DetectorOptions, FaceOrder, Gender, LandmarkerOptions, ProcessOptions, Race, SelectorMode};
use crate::processors::face_swapper;
use crate::raster::Frame;
use crate::sessions::ModelRegistry;

/// Detects and describes faces with one set of options. Results are cached by the CRC32 of the
/// frame's bytes, as FaceFusion does, so chained processors analyse each frame once.
pub struct FaceAnalyser<'a> {
    registry: &'a ModelRegistry,
    detector: &'a DetectorOptions,
    landmarker: &'a LandmarkerOptions,
    needs: FaceNeeds,
    cache: Mutex<HashMap<(u32, usize, usize), Vec<Face>>>,
}

/// Which of the per-face models a caller reads. FaceFusion runs the recognizer and the classifier on
/// every face it finds; a target face needs its embedding only for reference faces and the swapper,
/// and its age, gender and race only for the selector's filters, so per video frame these models
/// (about a seventh of the analysis time) often need not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaceNeeds {
    pub embedding: bool,
    pub classification: bool,
    /// Only the face the selector's `one` mode picks, first in this order: its detection (box and
    /// score) decides, so the other faces need no landmarks, embedding or classification.
    pub only_first: Option<FaceOrder>,
}

impl FaceNeeds {
    pub const ALL: Self = Self { embedding: true, classification: true, only_first: None };

    /// What a run reads of a target frame's faces: the selector compares embeddings in reference mode
    /// and filters by age, gender and race; the swapper weighs the source identity against the
    /// target face's embedding unless its weight leaves the target's share at zero (the default).
    pub fn for_targets(options: &ProcessOptions) -> Self {
        let selector = &options.selector;
        let filtered = selector.gender.is_some()
            || selector.race.is_some()
            || selector.age_start.is_some()
            || selector.age_end.is_some();
        let swap_reads_embedding = options.uses(crate::processor::Processor::FaceSwapper)
            && face_swapper::reads_target_embedding(&options.swapper);
        // Face mappings recognise people by their embeddings, in every face of every frame.
        let mapped = !options.face_mappings.is_empty();
        Self {
            embedding: selector.mode == SelectorMode::Reference || swap_reads_embedding || mapped,
            classification: filtered,
            // With a filter every face must be classified before the first survivor is known.
            only_first: (selector.mode == SelectorMode::One && !filtered && !mapped).then_some(selector.order),
        }
    }
}

impl<'a> FaceAnalyser<'a> {
    /// Describes every face completely (embedding and classification included), as FaceFusion does.
    pub fn new(registry: &'a ModelRegistry, detector: &'a DetectorOptions, landmarker: &'a LandmarkerOptions) -> Self {
        Self::with_needs(registry, detector, landmarker, FaceNeeds::ALL)
    }

    /// Skips the recognizer and/or the classifier where `needs` says they are not read: the faces then
    /// carry an empty embedding and placeholder age, gender and race.
    pub fn with_needs(
        registry: &'a ModelRegistry,
        detector: &'a DetectorOptions,
        landmarker: &'a LandmarkerOptions,
        needs: FaceNeeds,
    ) -> Self {
        Self { registry, detector, landmarker, needs, cache: Mutex::new(HashMap::new()) }
    }

    /// Every face in the frame in detection order (descending score), or only the one the `one`
    /// selector picks when the needs say so.
    pub fn faces(&self, frame: &Frame) -> Result<Vec<Face>> {
        let key = (crc32fast::hash(&frame.data), frame.width, frame.height);
        if let Some(faces) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(faces.clone());
        }
        let mut detections = detector::detect(self.registry, frame, self.detector)?;
        if let Some(order) = self.needs.only_first {
            // `min_by` keeps the first of equal keys, as the selector's stable sort does.
            let key = |d: &Detection| order_key(order, &d.bounding_box, d.score);
            detections = detections.into_iter().min_by(|a, b| key(a).total_cmp(&key(b))).into_iter().collect();
        }
        let faces = detections.into_iter().map(|d| self.describe(frame, d)).collect::<Result<Vec<_>>>()?;
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, faces.clone());
        Ok(faces)
    }

    fn describe(&self, frame: &Frame, detection: Detection) -> Result<Face> {
        let landmark_68_5 = landmarker::estimate_68_from_5(self.registry, &detection.landmark_5)?;
        let angle = landmarker::estimate_face_angle(&landmark_68_5);
        let (landmark_68, landmarker_score) = if self.landmarker.score > 0.0 {
            landmarker::detect_68(self.registry, frame, &detection.bounding_box, angle, self.landmarker.model)?
        } else {
            (landmark_68_5.clone(), 0.0)
        };
        let landmark_5_68 = if landmarker_score > self.landmarker.score {
            landmarker::landmark_5_from_68(&landmark_68)
        } else {
            detection.landmark_5
        };
        let (embedding, embedding_norm) = match self.needs.embedding {
            true => recognizer::embed(self.registry, frame, &landmark_5_68)?,
            false => (Vec::new(), Vec::new()),
        };
        let classification = match self.needs.classification {
            true => classifier::classify(self.registry, frame, &landmark_5_68)?,
            false => classifier::Classification { gender: Gender::Male, age: (0, 0), race: Race::White },
        };
        Ok(Face {
            bounding_box: detection.bounding_box,
            detector_score: detection.score,
            landmarker_score,
            landmark_5: detection.landmark_5,
            landmark_5_68,
            landmark_68,
            landmark_68_5,
            angle,
            embedding,
            embedding_norm,
            gender: classification.gender,
            age: classification.age,
            race: classification.race,
        })
    }
}

/// Every model face analysis loads for these options.
pub fn required_models(detector: &DetectorOptions, landmarker: &LandmarkerOptions) -> Vec<&'static str> {
    let mut models = detector::required_models(detector);
    models.push("fan_68_5");
    if landmarker.score > 0.0 {
        models.extend(landmarker::required_models(landmarker.model));
    }
    models.extend([recognizer::MODEL, classifier::MODEL]);
    models
}
