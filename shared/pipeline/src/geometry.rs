//! Face alignment as FaceFusion 3.5.3 does it (`face_helper.py`): warp templates, the similarity
//! fit onto them, the crop warps, and pasting a processed crop back into the frame.
//!
//! Matrices are OpenCV 2×3 affines mapping frame → crop, in `f64` like the numpy arrays FaceFusion
//! passes around. Every warp goes through [`crate::imgproc::warp`], which reproduces OpenCV's pixels.

use crate::imgproc::warp::{
    for_each_row_band, opencv_invert, warp_affine, AffineMap, BilinearSource, Border, Depth, Sample, SourcePos,
};
use crate::raster::{Frame, Mask, Raster};

pub use crate::affine::Affine;

/// FaceFusion's five-point alignment templates (left eye, right eye, nose, left and right mouth
/// corners), normalised to a unit crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WarpTemplate {
    Arcface112V1,
    Arcface112V2,
    Arcface128,
    DflWholeFace,
    Ffhq512,
    Mtcnn512,
    Styleganex384,
}

impl WarpTemplate {
    pub const ALL: [Self; 7] = [
        Self::Arcface112V1,
        Self::Arcface112V2,
        Self::Arcface128,
        Self::DflWholeFace,
        Self::Ffhq512,
        Self::Mtcnn512,
        Self::Styleganex384,
    ];

    /// The template for FaceFusion's name of it (`arcface_128`, `ffhq_512`, …).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|template| template.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Arcface112V1 => "arcface_112_v1",
            Self::Arcface112V2 => "arcface_112_v2",
            Self::Arcface128 => "arcface_128",
            Self::DflWholeFace => "dfl_whole_face",
            Self::Ffhq512 => "ffhq_512",
            Self::Mtcnn512 => "mtcnn_512",
            Self::Styleganex384 => "styleganex_384",
        }
    }

    /// The five points in unit-crop coordinates, as in FaceFusion's `WARP_TEMPLATE_SET`.
    pub fn normalized_points(self) -> [[f64; 2]; 5] {
        match self {
            Self::Arcface112V1 => [
                [0.35473214, 0.45658929],
                [0.64526786, 0.45658929],
                [0.50000000, 0.61154464],
                [0.37913393, 0.77687500],
                [0.62086607, 0.77687500],
            ],
            Self::Arcface112V2 => [
                [0.34191607, 0.46157411],
                [0.65653393, 0.45983393],
                [0.50022500, 0.64050536],
                [0.37097589, 0.82469196],
                [0.63151696, 0.82325089],
            ],
            Self::Arcface128 => [
                [0.36167656, 0.40387734],
                [0.63696719, 0.40235469],
                [0.50019687, 0.56044219],
                [0.38710391, 0.72160547],
                [0.61507734, 0.72034453],
            ],
            Self::DflWholeFace => [
                [0.35342266, 0.39285716],
                [0.62797622, 0.39285716],
                [0.48660713, 0.54017860],
                [0.38839287, 0.68750011],
                [0.59821427, 0.68750011],
            ],
            Self::Ffhq512 => [
                [0.37691676, 0.46864664],
                [0.62285697, 0.46912813],
                [0.50123859, 0.61331904],
                [0.39308822, 0.72541100],
                [0.61150205, 0.72490465],
            ],
            Self::Mtcnn512 => [
                [0.36562865, 0.46733799],
                [0.63305391, 0.46585885],
                [0.50019127, 0.61942959],
                [0.39032951, 0.77598822],
                [0.61178945, 0.77476328],
            ],
            Self::Styleganex384 => [
                [0.42353745, 0.52289879],
                [0.57725008, 0.52319972],
                [0.50123859, 0.61331904],
                [0.43364461, 0.68337652],
                [0.57015325, 0.68306005],
            ],
        }
    }

    /// The template scaled to a `width`×`height` crop (x by width, y by height).
    pub fn points(self, width: usize, height: usize) -> [[f64; 2]; 5] {
        self.normalized_points().map(|[x, y]| [x * width as f64, y * height as f64])
    }
}

/// The least-squares similarity (rotation, uniform scale, translation) mapping `src` onto `dst`,
/// pairing points by index.
///
/// This is what `cv2.estimateAffinePartial2D(src, dst, method=RANSAC, ransacReprojThreshold=100)`
/// converges to when every point is an inlier, as with FaceFusion's five landmarks: its RANSAC
/// model is refined by Levenberg–Marquardt on all inliers, and the problem is linear, so the closed
/// form below is the same optimum. Like OpenCV, the points are first rounded to `f32`.
///
/// Degenerate input (no pairs, or all source points equal) has no unique fit; the result then maps
/// everything onto the centroid of `dst` (scale 0) rather than producing NaNs.
pub fn estimate_similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> Affine {
    let n = src.len().min(dst.len());
    if n == 0 {
        return [[0.0; 3]; 2];
    }
    let round = |p: &[f64; 2]| [p[0] as f32 as f64, p[1] as f32 as f64];
    let (src, dst): (Vec<_>, Vec<_>) = (src[..n].iter().map(round).collect(), dst[..n].iter().map(round).collect());
    let (sc, dc) = (centroid(&src), centroid(&dst));
    let (mut norm, mut dot, mut cross) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(&dst) {
        let (px, py) = (s[0] - sc[0], s[1] - sc[1]);
        let (qx, qy) = (d[0] - dc[0], d[1] - dc[1]);
        norm += px * px + py * py;
        dot += px * qx + py * qy;
        cross += px * qy - py * qx;
    }
    let (a, b) = if norm > 0.0 { (dot / norm, cross / norm) } else { (0.0, 0.0) };
    [[a, -b, dc[0] - (a * sc[0] - b * sc[1])], [b, a, dc[1] - (b * sc[0] + a * sc[1])]]
}

fn centroid(points: &[[f64; 2]]) -> [f64; 2] {
    let sum = points.iter().fold([0.0, 0.0], |acc, p| [acc[0] + p[0], acc[1] + p[1]]);
    let n = points.len() as f64;
    [sum[0] / n, sum[1] / n]
}

/// FaceFusion's `estimate_matrix_by_face_landmark_5`: the similarity from the five landmarks onto
/// `template` scaled to `size` (width, height).
pub fn estimate_matrix_by_face_landmark_5(
    landmarks: &[[f64; 2]; 5],
    template: WarpTemplate,
    size: (usize, usize),
) -> Affine {
    estimate_similarity(landmarks, &template.points(size.0, size.1))
}

/// `cv2.invertAffineTransform`, with OpenCV's operation order. A singular matrix inverts to zeros,
/// as in OpenCV.
pub fn invert_affine(matrix: &Affine) -> Affine {
    let m = opencv_invert(matrix);
    [[m[0], m[1], m[2]], [m[3], m[4], m[5]]]
}

/// Applies `matrix` to one point.
pub fn transform_point(point: [f64; 2], matrix: &Affine) -> [f64; 2] {
    let [[a, b, tx], [c, d, ty]] = *matrix;
    [a * point[0] + b * point[1] + tx, c * point[0] + d * point[1] + ty]
}

/// `cv2.transform` of float points: each point mapped by `matrix`.
pub fn transform_points(points: &[[f64; 2]], matrix: &Affine) -> Vec<[f64; 2]> {
    points.iter().map(|&p| transform_point(p, matrix)).collect()
}

/// FaceFusion's `warp_face_by_face_landmark_5`: aligns the face onto `template` at `size`
/// (width, height) with a replicated border. Returns the crop and the frame → crop matrix.
pub fn warp_face_by_landmark_5<T: Sample>(
    frame: &Raster<T>,
    landmarks: &[[f64; 2]; 5],
    template: WarpTemplate,
    size: (usize, usize),
) -> (Raster<T>, Affine) {
    let matrix = estimate_matrix_by_face_landmark_5(landmarks, template, size);
    let crop = warp_affine(frame, &matrix, size.0, size.1, Border::Replicate);
    (crop, matrix)
}

/// FaceFusion's `warp_face_by_translation` (the 2dfan4 crop): scale then translate, black border.
pub fn warp_face_by_translation<T: Sample>(
    frame: &Raster<T>,
    translation: [f64; 2],
    scale: f64,
    size: (usize, usize),
) -> (Raster<T>, Affine) {
    let matrix = [[scale, 0.0, translation[0]], [0.0, scale, translation[1]]];
    let crop = warp_affine(frame, &matrix, size.0, size.1, Border::Constant(0));
    (crop, matrix)
}

/// FaceFusion's `warp_face_by_bounding_box` (the wav2lip crop): the affine taking the box corners
/// (x1, y1), (x2, y1), (x1, y2) to (0, 0), (w, 0), (0, h), black border. `cv2.getAffineTransform`
/// takes the box as `f32`, so it is rounded first; the INTER_AREA/INTER_LINEAR choice FaceFusion
/// makes is moot since `warpAffine` runs both as bilinear. An empty box gives the zero matrix, as
/// OpenCV's singular solve does.
pub fn warp_face_by_bounding_box<T: Sample>(
    frame: &Raster<T>,
    bounding_box: [f64; 4],
    size: (usize, usize),
) -> (Raster<T>, Affine) {
    let [x1, y1, x2, y2] = bounding_box.map(|v| v as f32 as f64);
    let matrix = if x2 != x1 && y2 != y1 {
        let (sx, sy) = (size.0 as f64 / (x2 - x1), size.1 as f64 / (y2 - y1));
        [[sx, 0.0, -x1 * sx], [0.0, sy, -y1 * sy]]
    } else {
        [[0.0; 3]; 2]
    };
    let crop = warp_affine(frame, &matrix, size.0, size.1, Border::Constant(0));
    (crop, matrix)
}

/// FaceFusion's `scale_face_landmark_5`: the points scaled by `scale` about the nose (point 2).
pub fn scale_face_landmark_5(landmarks: &[[f64; 2]; 5], scale: f64) -> [[f64; 2]; 5] {
    let [nx, ny] = landmarks[2];
    landmarks.map(|[x, y]| [(x - nx) * scale + nx, (y - ny) * scale + ny])
}

/// Where a crop lands in the frame: the rectangle `x1..x2` × `y1..y2` (exclusive ends, clipped to
/// the frame) and the matrix mapping crop coordinates into that rectangle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PasteArea {
    pub x1: usize,
    pub y1: usize,
    pub x2: usize,
    pub y2: usize,
    pub matrix: Affine,
}

impl PasteArea {
    pub fn width(&self) -> usize {
        self.x2 - self.x1
    }

    pub fn height(&self) -> usize {
        self.y2 - self.y1
    }
}

/// FaceFusion's `calculate_paste_area`: the crop's corners mapped into the frame by the inverse
/// affine bound the rectangle. FaceFusion builds the corners as an integer array, which OpenCV's
/// bindings pass as int32, so `cv2.transform` rounds the mapped corners half to even; the
/// floor/ceil that follows is then a no-op and the rectangle spans the rounded corners.
pub fn calculate_paste_area(frame_size: (usize, usize), crop_size: (usize, usize), affine: &Affine) -> PasteArea {
    let inverse = invert_affine(affine);
    let (cw, ch) = (crop_size.0 as f64, crop_size.1 as f64);
    let corners = [[0.0, 0.0], [cw, 0.0], [cw, ch], [0.0, ch]].map(|p| {
        let [x, y] = transform_point(p, &inverse);
        [round_to_i64(x), round_to_i64(y)]
    });
    let clip = |v: i64, limit: usize| v.clamp(0, limit as i64) as usize;
    let min = |axis: usize| corners.iter().map(|c| c[axis]).min().unwrap_or(0);
    let max = |axis: usize| corners.iter().map(|c| c[axis]).max().unwrap_or(0);
    let (x1, y1) = (clip(min(0), frame_size.0), clip(min(1), frame_size.1));
    let (x2, y2) = (clip(max(0), frame_size.0).max(x1), clip(max(1), frame_size.1).max(y1));
    let mut matrix = inverse;
    matrix[0][2] -= x1 as f64;
    matrix[1][2] -= y1 as f64;
    PasteArea { x1, y1, x2, y2, matrix }
}

/// OpenCV's `saturate_cast<int>(double)`: round half to even, saturated to `i32`.
fn round_to_i64(v: f64) -> i64 {
    v.round_ties_even().clamp(i32::MIN as f64, i32::MAX as f64) as i64
}

/// FaceFusion's `paste_back`: blends `crop` (frame → crop by `affine`) into a copy of `frame`
/// through `mask` (crop-sized, 0..1).
///
/// Inside the paste rectangle the mask is warped (bilinear, border 0) and clipped to [0, 1], the
/// crop is warped (bilinear, replicated border), and `frame·(1 − m) + crop·m` is truncated to
/// `u8`; the rest of the frame is untouched. The arithmetic follows numpy's type promotion in
/// FaceFusion: `f32` for `u8` and `f32` crops, `f64` for `f64` crops (the frame term stays `f32`,
/// being `uint8 · float32`). Each depth is also warped with its own OpenCV arithmetic, so pass the
/// crop in the depth FaceFusion holds it in: `f64` for the swapper models FaceFusion denormalises
/// with numpy float64 mean/std (ghost, hififace, hyperswap, uniface), `f32` for the other swappers,
/// `u8` for the enhancers and the lip syncer. A rectangle entirely outside the frame pastes nothing.
///
/// # Panics
/// If the crop and frame channel counts differ or exceed 4, or the mask is not single-channel.
pub fn paste_back<T: Sample>(frame: &Frame, crop: &Raster<T>, mask: &Mask, affine: &Affine) -> Frame {
    let mut pasted = frame.clone();
    paste_back_into(&mut pasted, crop, mask, affine);
    pasted
}

/// [`paste_back`] for 8-bit crops (the face enhancer, the lip syncer).
pub fn paste_back_u8(frame: &Frame, crop: &Frame, mask: &Mask, affine: &Affine) -> Frame {
    paste_back(frame, crop, mask, affine)
}

/// [`paste_back`] in place: only the paste rectangle of `frame` is written.
///
/// # Panics
/// As [`paste_back`].
pub fn paste_back_into<T: Sample>(frame: &mut Frame, crop: &Raster<T>, mask: &Mask, affine: &Affine) {
    assert_eq!(crop.channels, frame.channels, "paste_back: crop and frame channel counts differ");
    assert!(crop.channels <= MAX_PASTE_CHANNELS, "paste_back: at most {MAX_PASTE_CHANNELS} channels");
    assert_eq!(mask.channels, 1, "paste_back: the mask must be single-channel");
    let area = calculate_paste_area((frame.width, frame.height), (crop.width, crop.height), affine);
    if area.width() == 0 || area.height() == 0 {
        // FaceFusion would hand OpenCV an empty size here; nothing of the crop is in the frame.
        return;
    }
    // The mask and the crop are warped by the same matrix into the same rectangle, so they share
    // one position map.
    let map = AffineMap::new(&area.matrix, area.width());
    let mask_source = BilinearSource::new(mask, Border::Constant(0));
    let crop_source = BilinearSource::new(crop, Border::Replicate);
    let stride = frame.stride();
    let rows = &mut frame.data[area.y1 * stride..area.y2 * stride];
    for_each_row_band(rows, stride, area.width(), |first_row, band| {
        for (i, frame_row) in band.chunks_exact_mut(stride).enumerate() {
            let target = &mut frame_row[area.x1 * crop.channels..area.x2 * crop.channels];
            match crop.channels {
                3 => paste_row(target, map.row(first_row + i), &crop_source, &mask_source, 3),
                cn => paste_row(target, map.row(first_row + i), &crop_source, &mask_source, cn),
            }
        }
    });
}

/// Channels a pasted pixel may have (BGR or BGRA frames).
const MAX_PASTE_CHANNELS: usize = 4;

/// Blends one row of the paste rectangle; `cn` is a parameter so a constant unrolls.
#[inline(always)]
fn paste_row<T: Sample>(
    target: &mut [u8],
    positions: impl Iterator<Item = SourcePos>,
    crop: &BilinearSource<T>,
    mask: &BilinearSource<f32>,
    cn: usize,
) {
    let mut m = [0.0f32];
    let mut warped = [T::default(); MAX_PASTE_CHANNELS];
    for (frame_px, pos) in target.chunks_exact_mut(cn).zip(positions) {
        mask.sample(pos, 1, &mut m);
        let m = m[0].clamp(0.0, 1.0);
        if m == 0.0 {
            // frame·1 + crop·0 is the frame exactly, so the crop need not be sampled.
            continue;
        }
        crop.sample(pos, cn, &mut warped[..cn]);
        let keep = 1.0 - m;
        for (f, &c) in frame_px.iter_mut().zip(&warped[..cn]) {
            let base = *f as f32 * keep;
            // `as u8` truncates like numpy's astype (and saturates rather than wrapping).
            *f = match T::DEPTH {
                Depth::F64 => (base as f64 + c.to_f64() * m as f64) as u8,
                Depth::U8 | Depth::F32 => (base + c.to_f32() * m) as u8,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{diff_box, parity_dir, psnr, read_bgr, read_npy, read_png16_mask};
    use serde_json::Value;
    use std::path::PathBuf;

    fn assert_close(a: &Affine, b: &Affine, linear: f64, translation: f64) {
        for r in 0..2 {
            for c in 0..2 {
                assert!((a[r][c] - b[r][c]).abs() <= linear, "{a:?} vs {b:?}");
            }
            assert!((a[r][2] - b[r][2]).abs() <= translation, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn templates_round_trip_their_names_and_scale_per_axis() {
        for template in WarpTemplate::ALL {
            assert_eq!(WarpTemplate::from_name(template.name()), Some(template));
        }
        assert_eq!(WarpTemplate::from_name("arcface_256"), None);
        let points = WarpTemplate::Arcface128.points(256, 128);
        assert_eq!(points[0], [0.36167656 * 256.0, 0.40387734 * 128.0]);
        assert_eq!(WarpTemplate::Ffhq512.points(1, 1), WarpTemplate::Ffhq512.normalized_points());
    }

    #[test]
    fn similarity_recovers_a_known_transform() {
        let (scale, angle, tx, ty) = (0.37f64, 0.3f64, -120.5, 42.25);
        let truth = [[scale * angle.cos(), -scale * angle.sin(), tx], [scale * angle.sin(), scale * angle.cos(), ty]];
        let src = [[530.0, 326.0], [651.0, 350.0], [594.0, 400.0], [524.0, 457.0], [627.0, 476.0]];
        let dst = transform_points(&src, &truth);
        // Inputs are rounded to f32 (as OpenCV does), so agreement is to f32 precision.
        assert_close(&estimate_similarity(&src, &dst), &truth, 1e-7, 1e-4);
    }

    #[test]
    fn similarity_is_the_least_squares_fit_for_noisy_points() {
        let src = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let dst = [[1.0, 1.0], [21.0, 1.0], [1.0, 21.0], [21.0, 22.0]];
        let m = estimate_similarity(&src, &dst);
        let residual = |m: &Affine| -> f64 {
            transform_points(&src, m).iter().zip(&dst).map(|(p, q)| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sum()
        };
        // Any perturbation of the four parameters increases the squared error.
        for (i, delta) in [(0, 1e-3), (1, 1e-3), (2, 1e-2), (3, 1e-2)] {
            for sign in [-1.0, 1.0] {
                let mut p = m;
                match i {
                    0 => (p[0][0], p[1][1]) = (m[0][0] + sign * delta, m[1][1] + sign * delta),
                    1 => (p[1][0], p[0][1]) = (m[1][0] + sign * delta, m[0][1] - sign * delta),
                    2 => p[0][2] += sign * delta,
                    _ => p[1][2] += sign * delta,
                }
                assert!(residual(&p) > residual(&m));
            }
        }
    }

    #[test]
    fn degenerate_similarity_input_stays_finite() {
        let m = estimate_similarity(&[[5.0, 5.0]; 5], &WarpTemplate::Arcface128.points(128, 128));
        assert!(m.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(estimate_similarity(&[], &[]), [[0.0; 3]; 2]);
    }

    #[test]
    fn inverse_undoes_the_transform() {
        let m = [
            [0.5972194493865289, 0.09973575925677673, -262.1606580718956],
            [-0.09973575925677673, 0.5972194493865289, -37.84954223117933],
        ];
        let points = [[10.0, 20.0], [500.0, -3.0]];
        let back = transform_points(&transform_points(&points, &m), &invert_affine(&m));
        for (p, q) in points.iter().zip(&back) {
            assert!((p[0] - q[0]).abs() < 1e-9 && (p[1] - q[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn landmark_scaling_is_about_the_nose() {
        let landmarks = [[10.0, 10.0], [30.0, 10.0], [20.0, 20.0], [12.0, 30.0], [28.0, 30.0]];
        let scaled = scale_face_landmark_5(&landmarks, 2.0);
        assert_eq!(scaled[2], [20.0, 20.0]);
        assert_eq!(scaled[0], [0.0, 0.0]);
        assert_eq!(scaled[4], [36.0, 40.0]);
    }

    #[test]
    fn bounding_box_warp_maps_the_box_onto_the_crop() {
        let frame = Frame::new(100, 100, 3);
        let (_, m) = warp_face_by_bounding_box(&frame, [10.0, 20.0, 58.0, 44.0], (96, 96));
        assert_eq!(
            transform_points(&[[10.0, 20.0], [58.0, 20.0], [10.0, 44.0]], &m),
            vec![[0.0, 0.0], [96.0, 0.0], [0.0, 96.0]]
        );
        let (crop, m) = warp_face_by_bounding_box(&frame, [10.0, 20.0, 10.0, 44.0], (96, 96));
        assert_eq!((m, crop.width), ([[0.0; 3]; 2], 96));
    }

    #[test]
    fn paste_area_spans_the_rounded_corners() {
        // The crop maps to x ∈ [100.4, 164.4], y ∈ [50.5, 114.5] in the frame: corners round
        // (half to even) to 100..164 and 50..114, where floor/ceil would give 100..165, 50..115.
        let affine = [[1.0, 0.0, -100.4], [0.0, 1.0, -50.5]];
        let area = calculate_paste_area((640, 480), (64, 64), &affine);
        assert_eq!((area.x1, area.y1, area.x2, area.y2), (100, 50, 164, 114));
        assert_close(&area.matrix, &[[1.0, 0.0, 0.4], [0.0, 1.0, 0.5]], 0.0, 1e-12);
        // Clipped to the frame, and empty when the crop lands outside it.
        let area = calculate_paste_area((120, 80), (64, 64), &affine);
        assert_eq!((area.x1, area.y1, area.x2, area.y2), (100, 50, 120, 80));
        let outside = calculate_paste_area((50, 40), (64, 64), &affine);
        assert_eq!((outside.width(), outside.height()), (0, 0));
    }

    #[test]
    fn paste_back_blends_through_the_mask_only_inside_the_area() {
        let frame = Frame::filled(40, 30, 3, 100);
        let crop = Raster::filled(8, 8, 3, 200.9f32);
        let affine = [[1.0, 0.0, -10.0], [0.0, 1.0, -5.0]];
        let full = paste_back(&frame, &crop, &Mask::filled(8, 8, 1, 1.0), &affine);
        assert_eq!(full.pixel(12, 7), &[200, 200, 200], "crop values are truncated");
        assert_eq!(full.pixel(9, 7), &[100, 100, 100]);
        assert_eq!(full.pixel(12, 14), &[100, 100, 100]);
        assert_eq!(paste_back(&frame, &crop, &Mask::filled(8, 8, 1, 0.0), &affine), frame);
        let half = paste_back(&frame, &crop, &Mask::filled(8, 8, 1, 0.5), &affine);
        assert_eq!(half.pixel(12, 7), &[150, 150, 150]);
        let over = paste_back(&frame, &crop, &Mask::filled(8, 8, 1, 7.0), &affine);
        assert_eq!(over, full, "the warped mask is clipped to [0, 1]");
        let bytes = Frame::filled(8, 8, 3, 201);
        assert_eq!(paste_back_u8(&frame, &bytes, &Mask::filled(8, 8, 1, 1.0), &affine).pixel(12, 7), &[201, 201, 201]);
        let doubles = Raster::filled(8, 8, 3, 200.9f64);
        assert_eq!(paste_back(&frame, &doubles, &Mask::filled(8, 8, 1, 1.0), &affine), full);
    }

    // ---- Parity with FaceFusion 3.5.3's dumps (see parity/README.md). ----

    struct Case {
        dir: PathBuf,
        args: Vec<String>,
        records: Vec<Value>,
    }

    impl Case {
        fn load(name: &str) -> Self {
            let dir = parity_dir().join(name);
            let text = std::fs::read_to_string(dir.join("dump/index.json")).unwrap();
            let index: Value = serde_json::from_str(&text).unwrap();
            let args = index["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
            Self { dir, args, records: index["records"].as_array().unwrap().clone() }
        }

        fn dump(&self, file: &str) -> PathBuf {
            self.dir.join("dump").join(file)
        }

        fn record(&self, frame: &str, function: &str) -> &Value {
            let found = self.records.iter().find(|r| r["frame"] == frame && r["fn"] == function);
            &found.unwrap_or_else(|| panic!("no {function} record for {frame}"))["items"]
        }

        /// The frame a record was computed on, when it is the unprocessed input.
        fn input_frame(&self, frame: &str) -> Option<Frame> {
            let arg = |flag: &str| self.args.iter().position(|a| a == flag).map(|i| self.args[i + 1].clone());
            let path = match frame {
                "image" => arg("-t").map(|p| parity_dir().join("..").join(p)),
                "source0" => arg("-s").map(|p| parity_dir().join("..").join(p)),
                _ => Some(self.dump(&format!("{frame}_input_frame.png"))),
            }?;
            (path.extension()? == "png" && path.exists()).then(|| read_bgr(&path))
        }
    }

    fn matrix(value: &Value) -> Affine {
        let row = |r: usize| std::array::from_fn(|c| value[r][c].as_f64().unwrap());
        [row(0), row(1)]
    }

    fn points<const N: usize>(value: &Value) -> [[f64; 2]; N] {
        std::array::from_fn(|i| [value[i][0].as_f64().unwrap(), value[i][1].as_f64().unwrap()])
    }

    fn mismatches(a: &Frame, b: &Frame) -> usize {
        assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
        a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count()
    }

    const CASES: [&str; 9] = [
        "01_swap_obama_to_biden_hyperswap",
        "02_swap_obama_to_biden_inswapper",
        "03_swap_biden_to_two_people_many",
        "04_swap_obama_to_t1_group_masks_boost",
        "05_reference_position_1_two_people",
        "06_swap_then_enhance_gfpgan",
        "07_enhance_codeformer_two_people",
        "08_video_swap_hamilton_2s",
        "09_lip_sync_2s",
    ];

    #[test]
    fn alignment_matrices_match_facefusion() {
        let mut compared = 0;
        for case in CASES.map(Case::load) {
            for record in &case.records {
                let items = &record["items"];
                let landmarks = items.get("landmarks_5").or(items.get("landmarks_5_68"));
                let (Some(landmarks), Some(template), Some(expected)) =
                    (landmarks, items.get("template"), items.get("matrix"))
                else {
                    continue;
                };
                let size = match (record["fn"].as_str().unwrap(), items.get("size")) {
                    (_, Some(size)) => size[0].as_u64().unwrap() as usize,
                    ("recognizer_warp", None) => 112,
                    ("enhancer_warp" | "lipsync_warp", None) => 512,
                    _ => continue,
                };
                let template = WarpTemplate::from_name(template.as_str().unwrap()).unwrap();
                let ours = estimate_matrix_by_face_landmark_5(&points(landmarks), template, (size, size));
                // Measured: 1.5e-14 on the linear part, 1.3e-11 px on the translation.
                assert_close(&ours, &matrix(expected), 1e-12, 1e-9);
                compared += 1;
            }
        }
        eprintln!("{compared} matrices within 1e-12 / 1e-9 px");
        assert!(compared > 200, "only {compared} matrices compared");
    }

    /// Every dumped crop taken from an unprocessed frame, re-warped with FaceFusion's matrix.
    #[test]
    fn crops_are_bit_exact_with_facefusion() {
        let mut compared = 0;
        for case in CASES.map(Case::load) {
            for record in &case.records {
                let (frame_name, function, items) =
                    (record["frame"].as_str().unwrap(), record["fn"].as_str().unwrap(), &record["items"]);
                let (Some(png), Some(expected_matrix)) = (items["crop"]["png"].as_str(), items.get("matrix")) else {
                    continue;
                };
                let source = match function {
                    // Warped from the 512 lip-sync crop, dumped on heavy frames only.
                    "lipsync_warp_by_bounding_box" => {
                        let path = case.dump(&format!("{frame_name}_lipsync_warp_0_crop.png"));
                        path.exists().then(|| read_bgr(&path))
                    }
                    "swapper_warp"
                    | "recognizer_warp"
                    | "classifier_warp"
                    | "landmarker_warp_by_translation"
                    | "lipsync_warp" => case.input_frame(frame_name),
                    _ => None,
                };
                // The swapper warps later faces of a frame from the partly swapped frame; skip those.
                let later_swap = function == "swapper_warp" && record["call"].as_u64() != Some(0);
                let Some(source) = source.filter(|_| !later_swap) else { continue };
                let expected = read_bgr(&case.dump(png));
                let border = match function {
                    "landmarker_warp_by_translation" | "lipsync_warp_by_bounding_box" => Border::Constant(0),
                    _ => Border::Replicate,
                };
                let crop = warp_affine(&source, &matrix(expected_matrix), expected.width, expected.height, border);
                assert_eq!(mismatches(&crop, &expected), 0, "{} {frame_name} {function}", case.dir.display());
                compared += 1;
            }
        }
        eprintln!("{compared} crops bit-exact");
        assert!(compared >= 85, "only {compared} crops compared");
    }

    #[test]
    fn face_warps_reproduce_facefusion_crops_end_to_end() {
        let case = Case::load("02_swap_obama_to_biden_inswapper");
        let frame = case.input_frame("image").unwrap();
        for (function, template, size) in
            [("swapper_warp", WarpTemplate::Arcface128, 128), ("recognizer_warp", WarpTemplate::Arcface112V2, 112)]
        {
            let items = case.record("image", function);
            let landmarks = items.get("landmarks_5").unwrap_or(&items["landmarks_5_68"]);
            let (crop, m) = warp_face_by_landmark_5(&frame, &points(landmarks), template, (size, size));
            assert_close(&m, &matrix(&items["matrix"]), 1e-12, 1e-9);
            assert_eq!(
                mismatches(&crop, &read_bgr(&case.dump(items["crop"]["png"].as_str().unwrap()))),
                0,
                "{function}"
            );
        }
        let items = case.record("image", "landmarker_warp_by_translation");
        let m = matrix(&items["matrix"]);
        let (crop, ours) = warp_face_by_translation(&frame, [m[0][2], m[1][2]], m[0][0], (256, 256));
        assert_eq!(ours, m);
        assert_eq!(mismatches(&crop, &read_bgr(&case.dump(items["crop"]["png"].as_str().unwrap()))), 0);

        let case = Case::load("09_lip_sync_2s");
        let items = case.record("f00000", "lipsync_warp_by_bounding_box");
        let source = read_bgr(&case.dump("f00000_lipsync_warp_0_crop.png"));
        let bounding_box = std::array::from_fn(|i| items["bounding_box"][i].as_f64().unwrap());
        let (crop, m) = warp_face_by_bounding_box(&source, bounding_box, (96, 96));
        assert_close(&m, &matrix(&items["matrix"]), 1e-12, 1e-9);
        assert_eq!(mismatches(&crop, &read_bgr(&case.dump(items["crop"]["png"].as_str().unwrap()))), 0);
    }

    /// A paste-back compared with FaceFusion's frame after it. The dumped masks are 16-bit
    /// quantised, which flips FaceFusion's truncation on a few samples, so the check is on PSNR,
    /// the size of those flips and the changed region rather than bit equality.
    fn check_paste(name: &str, pasted: &Frame, expected: &Frame, before: &Frame, max_flip_ratio: f64) {
        let changed = mismatches(before, expected);
        let flips = mismatches(pasted, expected);
        let worst = pasted.data.iter().zip(&expected.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        let region = diff_box(expected, before);
        let quality = psnr(pasted, expected, region);
        eprintln!("{name}: {flips} of {changed} changed samples differ (max {worst}), PSNR {quality:.1} dB over the pasted region");
        assert!(worst <= 1, "{name}: max difference {worst}");
        assert!((flips as f64) <= max_flip_ratio * changed as f64, "{name}: {flips} of {changed}");
        assert!(quality >= 50.0, "{name}: {quality:.1} dB");
        assert_eq!(diff_box(pasted, before), region, "{name}: changed region");
    }

    /// The swapper's float crop as FaceFusion builds it from the raw model output.
    fn swapper_crop<T: Sample>(case: &Case, convert: impl Fn(f32) -> T) -> Raster<T> {
        let (values, shape) = read_npy(&case.dump("image_swapper_forward_0_output.npy"));
        let n = shape[1];
        let mut crop = Raster::new(n, n, 3);
        for (c, plane) in values.chunks_exact(n * n).enumerate() {
            for (i, &v) in plane.iter().enumerate() {
                crop.data[i * 3 + 2 - c] = convert(v as f32);
            }
        }
        crop
    }

    fn dumped_mask(case: &Case, items: &Value) -> Mask {
        read_png16_mask(&case.dump(items["mask"]["png16"].as_str().unwrap()))
    }

    #[test]
    fn swapper_paste_back_matches_facefusion() {
        let case = Case::load("02_swap_obama_to_biden_inswapper");
        let items = case.record("image", "swapper_paste_back");
        let frame = case.input_frame("image").unwrap();
        // inswapper's output is not denormalised: float32 clip · 255.
        let crop = swapper_crop(&case, |v| v.clamp(0.0, 1.0) * 255.0);
        let pasted = paste_back(&frame, &crop, &dumped_mask(&case, items), &matrix(&items["matrix"]));
        check_paste("inswapper", &pasted, &read_bgr(&case.dir.join("output.png")), &frame, 1e-4);

        let case = Case::load("01_swap_obama_to_biden_hyperswap");
        let items = case.record("image", "swapper_paste_back");
        // hyperswap is denormalised with numpy float64 mean/std, so FaceFusion's crop is float64.
        let crop = swapper_crop(&case, |v| (v as f64 * 0.5 + 0.5).clamp(0.0, 1.0) * 255.0);
        let pasted = paste_back(&frame, &crop, &dumped_mask(&case, items), &matrix(&items["matrix"]));
        check_paste("hyperswap", &pasted, &read_bgr(&case.dir.join("output.png")), &frame, 1e-4);
    }

    #[test]
    fn byte_crop_paste_backs_match_facefusion() {
        let case = Case::load("06_swap_then_enhance_gfpgan");
        // The enhancer runs on the swapped frame, which is case 01's output.
        let frame = read_bgr(&parity_dir().join("01_swap_obama_to_biden_hyperswap/output.png"));
        let crop = read_bgr(&case.dump("image_enhancer_normalize_crop_frame_0_output.png"));
        let mask = dumped_mask(&case, case.record("image", "enhancer_create_box_mask"));
        let affine = matrix(&case.record("image", "enhancer_warp")["matrix"]);
        let pasted = paste_back_u8(&frame, &crop, &mask, &affine);
        // Where crop and frame agree the blend lands within float rounding of an integer, so the
        // mask quantisation flips more truncations here (~1.5 %).
        let expected = read_bgr(&case.dump("image_enhancer_blend_paste_frame_0_pasted.png"));
        check_paste("enhancer", &pasted, &expected, &frame, 0.02);

        let case = Case::load("09_lip_sync_2s");
        for frame_name in ["f00000", "f00030"] {
            let items = case.record(frame_name, "lipsync_paste_back");
            let frame = case.input_frame(frame_name).unwrap();
            let crop = read_bgr(&case.dump(items["crop"]["png"].as_str().unwrap()));
            let pasted = paste_back_u8(&frame, &crop, &dumped_mask(&case, items), &matrix(&items["matrix"]));
            let expected = read_bgr(&case.dump(&format!("{frame_name}_output_frame.png")));
            check_paste(frame_name, &pasted, &expected, &frame, 0.02);
        }
    }
}
