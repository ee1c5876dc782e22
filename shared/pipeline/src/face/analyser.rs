//! Turns a frame into `Face` records, the way FaceFusion's `get_many_faces` does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::Result;
use crate::face::detector::{self, Detection};
use crate::face::{classifier, landmarker, recognizer, Face};
use crate::options::{DetectorOptions, LandmarkerOptions};
use crate::raster::Frame;
use crate::sessions::ModelRegistry;

/// Detects and describes faces with one set of options. Results are cached by the CRC32 of the
/// frame's bytes, as FaceFusion does, so chained processors analyse each frame once.
pub struct FaceAnalyser<'a> {
    registry: &'a ModelRegistry,
    detector: &'a DetectorOptions,
    landmarker: &'a LandmarkerOptions,
    cache: Mutex<HashMap<(u32, usize, usize), Vec<Face>>>,
}

impl<'a> FaceAnalyser<'a> {
    pub fn new(registry: &'a ModelRegistry, detector: &'a DetectorOptions, landmarker: &'a LandmarkerOptions) -> Self {
        Self { registry, detector, landmarker, cache: Mutex::new(HashMap::new()) }
    }

    /// Every face in the frame in detection order (descending score).
    pub fn faces(&self, frame: &Frame) -> Result<Vec<Face>> {
        let key = (crc32fast::hash(&frame.data), frame.width, frame.height);
        if let Some(faces) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(faces.clone());
        }
        let detections = detector::detect(self.registry, frame, self.detector)?;
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
        let (embedding, embedding_norm) = recognizer::embed(self.registry, frame, &landmark_5_68)?;
        let classification = classifier::classify(self.registry, frame, &landmark_5_68)?;
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
