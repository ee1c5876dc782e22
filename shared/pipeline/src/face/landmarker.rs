//! Landmarkers (spec §4.4): fan_68_5 from the detector's five points, and the 68-point 2dfan4 /
//! peppa_wutz on a 256² crop, with FaceFusion's score and `many` rules.

use crate::error::Result;
use crate::face::detector::rotation_matrix_and_size;
use crate::face::{interp, BoundingBox, Point};
use crate::geometry::{estimate_similarity, invert_affine, transform_points, warp_face_by_translation, WarpTemplate};
use crate::imgproc::color::conditional_optimize_contrast;
use crate::imgproc::warp::{warp_affine, Border};
use crate::options::LandmarkerModel;
use crate::raster::Frame;
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

const CROP: usize = 256;

/// 68 points estimated from five: the five are mapped onto the unit ffhq_512 template, fed to
/// fan_68_5, and the result mapped back.
pub fn estimate_68_from_5(registry: &ModelRegistry, landmark_5: &[Point; 5]) -> Result<Vec<Point>> {
    let template = WarpTemplate::Ffhq512.points(1, 1);
    let matrix = estimate_similarity(landmark_5, &template);
    let normalized = transform_points(landmark_5, &matrix);
    let input: Vec<f32> = normalized.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
    let outputs = registry.get("fan_68_5")?.run(vec![Input::f32("input", &[1, 5, 2], input)])?;
    let points: Vec<Point> = output_points(&outputs[0].data, 2, 68).collect();
    Ok(transform_points(&points, &invert_affine(&matrix)))
}

/// Snaps the direction from jaw point 0 to jaw point 16 to 0, 90, 180 or 270 degrees.
pub fn estimate_face_angle(landmark_68: &[Point]) -> u32 {
    let (Some(a), Some(b)) = (landmark_68.first(), landmark_68.get(16)) else { return 0 };
    let theta = (b[1] - a[1]).atan2(b[0] - a[0]).to_degrees().rem_euclid(360.0);
    let candidates = [0.0, 90.0, 180.0, 270.0, 360.0];
    let nearest =
        candidates.iter().min_by(|x, y| (*x - theta).abs().total_cmp(&(*y - theta).abs())).copied().unwrap_or(0.0);
    (nearest as u32) % 360
}

/// Names of the models `detect_68` will load.
pub fn required_models(model: LandmarkerModel) -> Vec<&'static str> {
    match model {
        LandmarkerModel::Fan2d4 => vec!["2dfan4"],
        LandmarkerModel::PeppaWutz => vec!["peppa_wutz"],
        LandmarkerModel::Many => vec!["2dfan4", "peppa_wutz"],
    }
}

/// The 68-point landmarker's points and score (already mapped through FaceFusion's interp).
pub fn detect_68(
    registry: &ModelRegistry,
    frame: &Frame,
    bounding_box: &BoundingBox,
    angle: u32,
    model: LandmarkerModel,
) -> Result<(Vec<Point>, f32)> {
    let crop = LandmarkerCrop::new(frame, bounding_box, angle);
    match model {
        LandmarkerModel::Fan2d4 => run_2dfan4(registry, &crop),
        LandmarkerModel::PeppaWutz => run_peppa_wutz(registry, &crop),
        LandmarkerModel::Many => {
            let fan = run_2dfan4(registry, &crop)?;
            let peppa = run_peppa_wutz(registry, &crop)?;
            Ok(if fan.1 > peppa.1 - 0.2 { fan } else { peppa })
        }
    }
}

/// The 256² crop both landmarkers see, and how to map their points back to the frame.
struct LandmarkerCrop {
    tensor: Vec<f32>,
    crop_matrix: [[f64; 3]; 2],
    rotation: [[f64; 3]; 2],
}

impl LandmarkerCrop {
    fn new(frame: &Frame, b: &BoundingBox, angle: u32) -> Self {
        let scale = 195.0 / b.width().max(b.height()).max(1.0);
        let translation = [(CROP as f64 - (b.x1 + b.x2) * scale) * 0.5, (CROP as f64 - (b.y1 + b.y2) * scale) * 0.5];
        let (crop, crop_matrix) = warp_face_by_translation(frame, translation, scale, (CROP, CROP));
        let (rotation, width, height) = rotation_matrix_and_size(angle as f64, CROP, CROP);
        // An upright face needs no rotation; warping by the identity would copy the crop unchanged.
        let rotated = if angle == 0 { crop } else { warp_affine(&crop, &rotation, width, height, Border::Constant(0)) };
        let prepared = conditional_optimize_contrast(&rotated);
        Self { tensor: planar_bgr(&prepared), crop_matrix, rotation }
    }

    fn to_frame(&self, points: Vec<Point>) -> Vec<Point> {
        let unrotated = transform_points(&points, &invert_affine(&self.rotation));
        transform_points(&unrotated, &invert_affine(&self.crop_matrix))
    }
}

/// NCHW float in [0, 1], channels kept in BGR order as FaceFusion feeds its landmarkers.
fn planar_bgr(frame: &Frame) -> Vec<f32> {
    let plane = frame.width * frame.height;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in frame.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = px[c] as f32 / 255.0;
        }
    }
    tensor
}

fn run_2dfan4(registry: &ModelRegistry, crop: &LandmarkerCrop) -> Result<(Vec<Point>, f32)> {
    let outputs = registry.get("2dfan4")?.run(vec![Input::f32("input", &[1, 3, CROP, CROP], crop.tensor.clone())])?;
    let landmarks = &outputs[0];
    let stride = landmarks.shape.last().copied().unwrap_or(3).max(2);
    let points: Vec<Point> = output_points(&landmarks.data, stride, 68)
        .map(|p| [p[0] / 64.0 * CROP as f64, p[1] / 64.0 * CROP as f64])
        .collect();
    let heatmaps = outputs.get(1).map(|o| o.data.as_slice()).unwrap_or_default();
    let per_point = heatmaps.len() / 68;
    let mean_max = if per_point == 0 {
        0.0
    } else {
        heatmaps.chunks_exact(per_point).map(|h| h.iter().copied().fold(f32::MIN, f32::max) as f64).sum::<f64>() / 68.0
    };
    Ok((crop.to_frame(points), interp(mean_max, [0.0, 0.9], [0.0, 1.0]) as f32))
}

fn run_peppa_wutz(registry: &ModelRegistry, crop: &LandmarkerCrop) -> Result<(Vec<Point>, f32)> {
    let outputs =
        registry.get("peppa_wutz")?.run(vec![Input::f32("input", &[1, 3, CROP, CROP], crop.tensor.clone())])?;
    let data = &outputs[0].data;
    let points: Vec<Point> =
        output_points(data, 3, 68).map(|p| [p[0] / 64.0 * CROP as f64, p[1] / 64.0 * CROP as f64]).collect();
    let score = data.chunks_exact(3).take(68).map(|p| p[2] as f64).sum::<f64>() / 68.0;
    Ok((crop.to_frame(points), interp(score, [0.0, 0.95], [0.0, 1.0]) as f32))
}

/// The first two values of each `stride`-sized record, for `count` records.
fn output_points(data: &[f32], stride: usize, count: usize) -> impl Iterator<Item = Point> + '_ {
    data.chunks_exact(stride).take(count).map(|p| [p[0] as f64, p[1] as f64])
}

/// FaceFusion's five points from 68: eye centres, nose tip, mouth corners.
pub fn landmark_5_from_68(landmark_68: &[Point]) -> [Point; 5] {
    let mean = |range: std::ops::Range<usize>| {
        let n = range.len() as f64;
        let (sx, sy) = range.map(|i| landmark_68[i]).fold((0.0, 0.0), |(sx, sy), p| (sx + p[0], sy + p[1]));
        [sx / n, sy / n]
    };
    [mean(36..42), mean(42..48), landmark_68[30], landmark_68[48], landmark_68[54]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_angle_snaps_to_quarter_turns() {
        let mut points = vec![[0.0, 0.0]; 68];
        points[16] = [10.0, 1.0];
        assert_eq!(estimate_face_angle(&points), 0);
        points[16] = [0.0, 10.0];
        assert_eq!(estimate_face_angle(&points), 90);
        points[16] = [-10.0, 0.5];
        assert_eq!(estimate_face_angle(&points), 180);
        points[16] = [1.0, -10.0];
        assert_eq!(estimate_face_angle(&points), 270);
        points[16] = [10.0, -1.0];
        assert_eq!(estimate_face_angle(&points), 0);
    }

    #[test]
    fn five_from_68_uses_eye_centres_nose_and_mouth_corners() {
        let points: Vec<Point> = (0..68).map(|i| [i as f64, 2.0 * i as f64]).collect();
        let five = landmark_5_from_68(&points);
        assert_eq!(five[0], [38.5, 77.0]);
        assert_eq!(five[1], [44.5, 89.0]);
        assert_eq!(five[2], [30.0, 60.0]);
        assert_eq!(five[3], [48.0, 96.0]);
        assert_eq!(five[4], [54.0, 108.0]);
    }
}
