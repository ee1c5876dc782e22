//! ff's fast mode for video (`face_detector_interval`, not in FaceFusion): between two detections a
//! face is followed rather than found again. The 68-point landmarker looks where the face was in the
//! previous frame; its points give the face's new place, and the identity and classification carry
//! over along the track, so a followed frame costs one landmarker call (and fan_68_5) per face
//! instead of the detector, landmarker, recognizer and classifier.

use crate::error::Result;
use crate::face::landmarker::{detect_68, estimate_68_from_5, estimate_face_angle, landmark_5_from_68};
use crate::face::{BoundingBox, Face, Point};
use crate::options::LandmarkerOptions;
use crate::raster::Frame;
use crate::sessions::ModelRegistry;

/// The faces of `frame` that continue `previous`: each face whose landmarker score is still above
/// the trusted score, moved with its points. A face the landmarker loses is dropped until the next
/// detection finds it again.
pub fn follow(
    registry: &ModelRegistry,
    frame: &Frame,
    previous: &[Face],
    landmarker: &LandmarkerOptions,
) -> Result<Vec<Face>> {
    let mut followed = Vec::with_capacity(previous.len());
    for face in previous {
        let (landmark_68, score) = detect_68(registry, frame, &face.bounding_box, face.angle, landmarker.model)?;
        if score <= landmarker.score {
            continue;
        }
        let landmark_5 = landmark_5_from_68(&landmark_68);
        let landmark_68_5 = estimate_68_from_5(registry, &landmark_5)?;
        let (dx, dy) = shift(&face.landmark_68, &landmark_68);
        let b = face.bounding_box;
        followed.push(Face {
            bounding_box: BoundingBox { x1: b.x1 + dx, y1: b.y1 + dy, x2: b.x2 + dx, y2: b.y2 + dy },
            landmarker_score: score,
            landmark_5,
            landmark_5_68: landmark_5,
            angle: estimate_face_angle(&landmark_68_5),
            landmark_68,
            landmark_68_5,
            ..face.clone()
        });
    }
    Ok(followed)
}

/// How far the points moved on average: the box moves with them, keeping the detector's framing.
fn shift(before: &[Point], after: &[Point]) -> (f64, f64) {
    let count = before.len().min(after.len());
    if count == 0 {
        return (0.0, 0.0);
    }
    let (dx, dy) = before.iter().zip(after).fold((0.0, 0.0), |(x, y), (a, b)| (x + b[0] - a[0], y + b[1] - a[1]));
    (dx / count as f64, dy / count as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_box_moves_with_the_mean_of_the_points() {
        let before = [[0.0, 0.0], [10.0, 10.0]];
        let after = [[3.0, -1.0], [11.0, 9.0]];
        assert_eq!(shift(&before, &after), (2.0, -1.0));
        assert_eq!(shift(&[], &after), (0.0, 0.0));
    }
}
