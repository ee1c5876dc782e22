//! Face analysis as FaceFusion 3.5.3 does it (spec §4-§5): detect, landmark, embed, classify, select.

pub mod analyser;
pub mod classifier;
pub mod detector;
pub mod follower;
pub mod landmarker;
pub mod recognizer;
pub mod selector;
pub mod source_cache;
pub mod tracker;

pub use analyser::FaceAnalyser;

pub use crate::options::{Gender, Race};

pub type Point = [f64; 2];

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundingBox {
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl BoundingBox {
    pub fn width(&self) -> f64 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f64 {
        self.y2 - self.y1
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    /// Intersection over union; 0 for boxes without area.
    pub fn iou(&self, other: &BoundingBox) -> f64 {
        let width = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let height = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let intersection = width * height;
        let union = self.area() + other.area() - intersection;
        if union <= 0.0 {
            return 0.0;
        }
        intersection / union
    }
}

/// A detected face with everything FaceFusion records for it.
#[derive(Clone, Debug)]
pub struct Face {
    pub bounding_box: BoundingBox,
    pub detector_score: f32,
    pub landmarker_score: f32,
    /// The detector's five points.
    pub landmark_5: [Point; 5],
    /// Five points derived from the 68-point landmarker when it is trusted, else `landmark_5`.
    /// All alignment downstream uses these.
    pub landmark_5_68: [Point; 5],
    /// The landmarker's 68 points, or `landmark_68_5` when it did not run.
    pub landmark_68: Vec<Point>,
    /// 68 points estimated from the detector's five (fan_68_5).
    pub landmark_68_5: Vec<Point>,
    /// 0, 90, 180 or 270: which way is up.
    pub angle: u32,
    pub embedding: Vec<f32>,
    pub embedding_norm: Vec<f32>,
    pub gender: Gender,
    /// [start, end) in years.
    pub age: (u32, u32),
    pub race: Race,
}

impl Face {
    /// Box and landmarks scaled by (sx, sy), as FaceFusion rescales faces found on the original frame
    /// to a frame enlarged by an earlier processor.
    pub fn scaled(&self, sx: f64, sy: f64) -> Face {
        let scale = |p: &Point| [p[0] * sx, p[1] * sy];
        let mut face = self.clone();
        let b = self.bounding_box;
        face.bounding_box = BoundingBox { x1: b.x1 * sx, y1: b.y1 * sy, x2: b.x2 * sx, y2: b.y2 * sy };
        face.landmark_5 = self.landmark_5.map(|p| scale(&p));
        face.landmark_5_68 = self.landmark_5_68.map(|p| scale(&p));
        face.landmark_68 = self.landmark_68.iter().map(scale).collect();
        face.landmark_68_5 = self.landmark_68_5.iter().map(scale).collect();
        face
    }
}

/// L2-normalised copy; a zero vector stays zero.
pub fn normalize(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
    if norm == 0.0 {
        return vector.to_vec();
    }
    vector.iter().map(|v| (*v as f64 / norm) as f32).collect()
}

/// FaceFusion's face distance: interp(1 − dot(a, b), [0, 2], [0, 1]).
pub fn face_distance(a: &Face, b: &Face) -> f32 {
    embedding_distance(&a.embedding_norm, &b.embedding_norm)
}

/// [`face_distance`] between two normalised embeddings.
pub fn embedding_distance(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    ((1.0 - dot) / 2.0).clamp(0.0, 1.0) as f32
}

/// A face for tests of selection and matching: a square box at `x1`, a 2-value embedding.
#[cfg(test)]
pub(crate) fn test_face(x1: f64, size: f64, score: f32, embedding: [f32; 2], age: (u32, u32)) -> Face {
    Face {
        bounding_box: BoundingBox { x1, y1: 0.0, x2: x1 + size, y2: size },
        detector_score: score,
        landmarker_score: 0.9,
        landmark_5: [[0.0; 2]; 5],
        landmark_5_68: [[0.0; 2]; 5],
        landmark_68: Vec::new(),
        landmark_68_5: Vec::new(),
        angle: 0,
        embedding: embedding.to_vec(),
        embedding_norm: embedding.to_vec(),
        gender: Gender::Male,
        age,
        race: Race::White,
    }
}

/// numpy.interp for increasing `from`: linear, clamped to the end values.
pub fn interp(value: f64, from: [f64; 2], to: [f64; 2]) -> f64 {
    if value <= from[0] {
        return to[0];
    }
    if value >= from[1] {
        return to[1];
    }
    to[0] + (value - from[0]) * (to[1] - to[0]) / (from[1] - from[0])
}
