//! Face detectors (spec §4.1-§4.3): yolo_face, scrfd, retinaface, yunet and `many`, with detector
//! size, margin, angles and FaceFusion's NMS.

use crate::error::Result;
use crate::face::{interp, BoundingBox, Point};
use crate::geometry::{invert_affine, transform_points, Affine};
use crate::imgproc::resize::resize_linear;
use crate::imgproc::warp::{warp_affine, Border};
use crate::options::{DetectorModel, DetectorOptions};
use crate::raster::Frame;
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

/// One detector hit in frame coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    pub bounding_box: BoundingBox,
    pub score: f32,
    pub landmark_5: [Point; 5],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decoder {
    Yolo,
    Scrfd,
    Yunet,
}

impl Decoder {
    /// The catalogue model a detector option runs.
    fn model_name(self, retinaface: bool) -> &'static str {
        match self {
            Self::Yolo => "yoloface_8n",
            Self::Scrfd if retinaface => "retinaface_10g",
            Self::Scrfd => "scrfd_2.5g",
            Self::Yunet => "yunet_2023_mar",
        }
    }

    /// FaceFusion's input normalisation per detector; every detector is fed BGR.
    fn normalize(self, value: u8) -> f32 {
        match self {
            Self::Yolo => value as f32 / 255.0,
            Self::Scrfd => (value as f32 - 127.5) / 128.0,
            Self::Yunet => value as f32,
        }
    }
}

/// The detector models an option runs: `many` is retinaface, scrfd and yolo_face (not yunet).
fn detector_runs(model: DetectorModel) -> Vec<(Decoder, &'static str)> {
    match model {
        DetectorModel::YoloFace => vec![(Decoder::Yolo, Decoder::Yolo.model_name(false))],
        DetectorModel::Scrfd => vec![(Decoder::Scrfd, Decoder::Scrfd.model_name(false))],
        DetectorModel::Retinaface => vec![(Decoder::Scrfd, Decoder::Scrfd.model_name(true))],
        DetectorModel::Yunet => vec![(Decoder::Yunet, Decoder::Yunet.model_name(false))],
        DetectorModel::Many => vec![
            (Decoder::Scrfd, Decoder::Scrfd.model_name(true)),
            (Decoder::Scrfd, Decoder::Scrfd.model_name(false)),
            (Decoder::Yolo, Decoder::Yolo.model_name(false)),
        ],
    }
}

/// Names of the models `detect` will load for these options.
pub fn required_models(options: &DetectorOptions) -> Vec<&'static str> {
    detector_runs(options.model).into_iter().map(|(_, name)| name).collect()
}

/// Every face in `frame` after NMS, in descending score order.
pub fn detect(registry: &ModelRegistry, frame: &Frame, options: &DetectorOptions) -> Result<Vec<Detection>> {
    if options.score <= 0.0 {
        return Ok(Vec::new());
    }
    let margin = margin_pixels(frame, options.margin);
    let padded = pad_frame(frame, margin);
    let mut candidates = Vec::new();
    for &angle in &options.angles {
        candidates.extend(detect_at_angle(registry, &padded, options, angle)?);
    }
    for detection in &mut candidates {
        shift(detection, -(margin[3] as f64), -(margin[0] as f64));
    }
    let threshold = nms_threshold(options.model, options.angles.len());
    Ok(non_max_suppression(candidates, options.score, threshold))
}

/// All candidates before NMS, for one rotation of the frame.
pub fn detect_at_angle(
    registry: &ModelRegistry,
    frame: &Frame,
    options: &DetectorOptions,
    angle: u32,
) -> Result<Vec<Detection>> {
    if angle == 0 {
        return detect_unrotated(registry, frame, options);
    }
    let (matrix, width, height) = rotation_matrix_and_size(angle as f64, frame.width, frame.height);
    let rotated = warp_affine(frame, &matrix, width, height, Border::Constant(0));
    let inverse = invert_affine(&matrix);
    let detections = detect_unrotated(registry, &rotated, options)?;
    Ok(detections.into_iter().map(|d| unrotate(d, &inverse)).collect())
}

fn detect_unrotated(registry: &ModelRegistry, frame: &Frame, options: &DetectorOptions) -> Result<Vec<Detection>> {
    let mut detections = Vec::new();
    for (decoder, model) in detector_runs(options.model) {
        let size = if decoder == Decoder::Scrfd { options.size } else { 640 };
        let canvas = DetectorCanvas::new(frame, size, decoder);
        let session = registry.get(model)?;
        let outputs = session.run(vec![Input::f32("input", &[1, 3, size, size], canvas.tensor)])?;
        let data: Vec<&[f32]> = outputs.iter().map(|o| o.data.as_slice()).collect();
        let ratio = (canvas.ratio_width, canvas.ratio_height);
        let decoded = match decoder {
            Decoder::Yolo => decode_yolo(&data, options.score, ratio),
            Decoder::Scrfd => decode_scrfd(&data, size, options.score, ratio),
            Decoder::Yunet => decode_yunet(&data, size, options.score, ratio),
        };
        detections.extend(decoded);
    }
    Ok(detections)
}

/// The frame shrunk to fit `size`×`size` (never enlarged), at the top-left of a black square canvas.
pub struct DetectorCanvas {
    pub tensor: Vec<f32>,
    pub ratio_width: f64,
    pub ratio_height: f64,
}

impl DetectorCanvas {
    fn new(frame: &Frame, size: usize, decoder: Decoder) -> Self {
        let resized;
        let source = if frame.width > size || frame.height > size {
            let scale = (size as f64 / frame.height as f64).min(size as f64 / frame.width as f64);
            let width = (frame.width as f64 * scale) as usize;
            let height = (frame.height as f64 * scale) as usize;
            resized = resize_linear(frame, width.max(1), height.max(1));
            &resized
        } else {
            frame
        };
        let plane = size * size;
        let mut tensor = vec![decoder.normalize(0); 3 * plane];
        for y in 0..source.height {
            let row = source.row(y);
            for x in 0..source.width {
                for c in 0..3 {
                    tensor[c * plane + y * size + x] = decoder.normalize(row[x * 3 + c]);
                }
            }
        }
        Self {
            tensor,
            ratio_width: frame.width as f64 / source.width as f64,
            ratio_height: frame.height as f64 / source.height as f64,
        }
    }
}

fn decode_yolo(outputs: &[&[f32]], threshold: f32, (rw, rh): (f64, f64)) -> Vec<Detection> {
    let Some(data) = outputs.first() else { return Vec::new() };
    let anchors = data.len() / 20;
    let at = |row: usize, i: usize| data[row * anchors + i] as f64;
    (0..anchors)
        .filter(|&i| data[4 * anchors + i] > threshold)
        .map(|i| {
            let (cx, cy, w, h) = (at(0, i), at(1, i), at(2, i), at(3, i));
            let landmark_5 = std::array::from_fn(|k| [at(5 + k * 3, i) * rw, at(6 + k * 3, i) * rh]);
            Detection {
                bounding_box: ordered_box(
                    (cx - w / 2.0) * rw,
                    (cy - h / 2.0) * rh,
                    (cx + w / 2.0) * rw,
                    (cy + h / 2.0) * rh,
                ),
                score: data[4 * anchors + i],
                landmark_5,
            }
        })
        .collect()
}

const STRIDES: [usize; 3] = [8, 16, 32];

fn decode_scrfd(outputs: &[&[f32]], size: usize, threshold: f32, (rw, rh): (f64, f64)) -> Vec<Detection> {
    let mut detections = Vec::new();
    if outputs.len() < 9 {
        return detections;
    }
    for (index, &stride) in STRIDES.iter().enumerate() {
        let (scores, boxes, points) = (outputs[index], outputs[index + 3], outputs[index + 6]);
        let s = stride as f64;
        for (i, &score) in scores.iter().enumerate() {
            if score < threshold || boxes.len() < (i + 1) * 4 || points.len() < (i + 1) * 10 {
                continue;
            }
            let (cx, cy) = anchor_centre(i, size / stride, 2, s);
            let d = &boxes[i * 4..i * 4 + 4];
            let k = &points[i * 10..i * 10 + 10];
            detections.push(Detection {
                bounding_box: ordered_box(
                    (cx - d[0] as f64 * s) * rw,
                    (cy - d[1] as f64 * s) * rh,
                    (cx + d[2] as f64 * s) * rw,
                    (cy + d[3] as f64 * s) * rh,
                ),
                score,
                landmark_5: std::array::from_fn(|j| {
                    [(cx + k[j * 2] as f64 * s) * rw, (cy + k[j * 2 + 1] as f64 * s) * rh]
                }),
            });
        }
    }
    detections
}

fn decode_yunet(outputs: &[&[f32]], size: usize, threshold: f32, (rw, rh): (f64, f64)) -> Vec<Detection> {
    let mut detections = Vec::new();
    if outputs.len() < 12 {
        return detections;
    }
    for (index, &stride) in STRIDES.iter().enumerate() {
        let (cls, obj, boxes, points) = (outputs[index], outputs[index + 3], outputs[index + 6], outputs[index + 9]);
        let s = stride as f64;
        for (i, (&c, &o)) in cls.iter().zip(obj.iter()).enumerate() {
            let score = c * o;
            if score < threshold || boxes.len() < (i + 1) * 4 || points.len() < (i + 1) * 10 {
                continue;
            }
            let (ax, ay) = anchor_centre(i, size / stride, 1, s);
            let b = &boxes[i * 4..i * 4 + 4];
            let k = &points[i * 10..i * 10 + 10];
            let (cx, cy) = (b[0] as f64 * s + ax, b[1] as f64 * s + ay);
            let (w, h) = ((b[2] as f64).exp() * s, (b[3] as f64).exp() * s);
            detections.push(Detection {
                bounding_box: ordered_box(
                    (cx - w / 2.0) * rw,
                    (cy - h / 2.0) * rh,
                    (cx + w / 2.0) * rw,
                    (cy + h / 2.0) * rh,
                ),
                score,
                landmark_5: std::array::from_fn(|j| {
                    [(k[j * 2] as f64 * s + ax) * rw, (k[j * 2 + 1] as f64 * s + ay) * rh]
                }),
            });
        }
    }
    detections
}

/// Anchor `index` of a `grid`×`grid` map with `per_cell` anchors per cell, row-major.
fn anchor_centre(index: usize, grid: usize, per_cell: usize, stride: f64) -> (f64, f64) {
    let cell = index / per_cell;
    ((cell % grid) as f64 * stride, (cell / grid) as f64 * stride)
}

fn ordered_box(x1: f64, y1: f64, x2: f64, y2: f64) -> BoundingBox {
    BoundingBox { x1: x1.min(x2), y1: y1.min(y2), x2: x1.max(x2), y2: y1.max(y2) }
}

/// Margin in pixels (top, right, bottom, left): percent 0..100 maps to 0..0.5 of the side.
fn margin_pixels(frame: &Frame, margin: [u32; 4]) -> [usize; 4] {
    let part = |percent: u32, side: usize| (side as f64 * interp(percent as f64, [0.0, 100.0], [0.0, 0.5])) as usize;
    [
        part(margin[0], frame.height),
        part(margin[1], frame.width),
        part(margin[2], frame.height),
        part(margin[3], frame.width),
    ]
}

fn pad_frame(frame: &Frame, [top, right, bottom, left]: [usize; 4]) -> std::borrow::Cow<'_, Frame> {
    if top + right + bottom + left == 0 {
        return std::borrow::Cow::Borrowed(frame);
    }
    let mut padded = Frame::new(frame.width + left + right, frame.height + top + bottom, frame.channels);
    for y in 0..frame.height {
        let start = left * frame.channels;
        padded.row_mut(y + top)[start..start + frame.stride()].copy_from_slice(frame.row(y));
    }
    std::borrow::Cow::Owned(padded)
}

fn shift(detection: &mut Detection, dx: f64, dy: f64) {
    let b = &mut detection.bounding_box;
    (b.x1, b.y1, b.x2, b.y2) = (b.x1 + dx, b.y1 + dy, b.x2 + dx, b.y2 + dy);
    for point in &mut detection.landmark_5 {
        point[0] += dx;
        point[1] += dy;
    }
}

/// cv2.getRotationMatrix2D about the centre, with the canvas grown to hold the rotated frame.
pub fn rotation_matrix_and_size(angle: f64, width: usize, height: usize) -> (Affine, usize, usize) {
    let (sin, cos) = angle.to_radians().sin_cos();
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let mut matrix = [[cos, sin, (1.0 - cos) * cx - sin * cy], [-sin, cos, sin * cx + (1.0 - cos) * cy]];
    let new_width = cos.abs() * width as f64 + sin.abs() * height as f64;
    let new_height = sin.abs() * width as f64 + cos.abs() * height as f64;
    matrix[0][2] += (new_width - width as f64) * 0.5;
    matrix[1][2] += (new_height - height as f64) * 0.5;
    (matrix, new_width as usize, new_height as usize)
}

fn unrotate(detection: Detection, inverse: &Affine) -> Detection {
    let b = detection.bounding_box;
    let corners = transform_points(&[[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]], inverse);
    let xs = corners.iter().map(|p| p[0]);
    let ys = corners.iter().map(|p| p[1]);
    let bounding_box = BoundingBox {
        x1: xs.clone().fold(f64::INFINITY, f64::min),
        y1: ys.clone().fold(f64::INFINITY, f64::min),
        x2: xs.fold(f64::NEG_INFINITY, f64::max),
        y2: ys.fold(f64::NEG_INFINITY, f64::max),
    };
    let points = transform_points(&detection.landmark_5, inverse);
    Detection { bounding_box, score: detection.score, landmark_5: std::array::from_fn(|i| points[i]) }
}

fn nms_threshold(model: DetectorModel, angles: usize) -> f64 {
    match (model, angles) {
        (DetectorModel::Many, _) => 0.1,
        (_, 2) => 0.3,
        (_, 3) => 0.2,
        (_, 4) => 0.1,
        _ => 0.4,
    }
}

/// cv2.dnn.NMSBoxes: keep scores strictly above `score_threshold`, visit in descending score order
/// (stable for ties), drop any box whose IoU with a kept box exceeds `iou_threshold`.
pub fn non_max_suppression(candidates: Vec<Detection>, score_threshold: f32, iou_threshold: f64) -> Vec<Detection> {
    let mut order: Vec<usize> = (0..candidates.len()).filter(|&i| candidates[i].score > score_threshold).collect();
    order.sort_by(|&a, &b| candidates[b].score.total_cmp(&candidates[a].score));
    let mut kept: Vec<usize> = Vec::new();
    for index in order {
        let overlaps =
            kept.iter().any(|&k| candidates[k].bounding_box.iou(&candidates[index].bounding_box) > iou_threshold);
        if !overlaps {
            kept.push(index);
        }
    }
    kept.into_iter().map(|i| candidates[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(x1: f64, y1: f64, x2: f64, y2: f64, score: f32) -> Detection {
        Detection { bounding_box: BoundingBox { x1, y1, x2, y2 }, score, landmark_5: [[0.0; 2]; 5] }
    }

    #[test]
    fn nms_keeps_best_of_overlapping_boxes_in_score_order() {
        let kept = non_max_suppression(
            vec![
                detection(0.0, 0.0, 10.0, 10.0, 0.6),
                detection(1.0, 1.0, 11.0, 11.0, 0.9),
                detection(50.0, 50.0, 60.0, 60.0, 0.7),
                detection(80.0, 80.0, 90.0, 90.0, 0.5),
            ],
            0.5,
            0.4,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, [0.9, 0.7]);
    }

    #[test]
    fn anchors_are_row_major_with_repeats() {
        assert_eq!(anchor_centre(0, 80, 2, 8.0), (0.0, 0.0));
        assert_eq!(anchor_centre(1, 80, 2, 8.0), (0.0, 0.0));
        assert_eq!(anchor_centre(2, 80, 2, 8.0), (8.0, 0.0));
        assert_eq!(anchor_centre(160, 80, 2, 8.0), (0.0, 8.0));
    }

    #[test]
    fn rotation_grows_canvas_and_round_trips() {
        let (matrix, width, height) = rotation_matrix_and_size(90.0, 200, 100);
        assert_eq!((width, height), (100, 200));
        let inverse = invert_affine(&matrix);
        let back = transform_points(&transform_points(&[[10.0, 20.0]], &matrix), &inverse);
        assert!((back[0][0] - 10.0).abs() < 1e-9 && (back[0][1] - 20.0).abs() < 1e-9);
    }

    #[test]
    fn margin_maps_percent_to_half_side() {
        let frame = Frame::new(200, 100, 3);
        assert_eq!(margin_pixels(&frame, [100, 50, 0, 10]), [50, 50, 0, 10]);
    }
}
