//! FaceFusion 3.5.3's colour matching of a generated face crop to the crop it replaces
//! (`vision.py`): the age modifier always pulls the model output's low frequencies back to the input
//! crop, and the deep swapper does so in proportion to how alike the two crops' hue/saturation
//! histograms already are.
//!
//! `match_frame_color` works coarse to fine: at three sizes (16 px and two more spaced evenly up to
//! the crop size, each rounded to an even number) it shrinks both images with INTER_AREA, takes the
//! difference, enlarges it with INTER_CUBIC and adds it to the *target*, clipping and truncating to
//! 8 bits. Each step's result becomes the next step's source, so the last step's result is what is
//! returned (the final full-size step FaceFusion adds is an identity).
//!
//! The histogram gate converts both crops to 8-bit HSV with OpenCV's fixed-point tables, bins H
//! (0..180) into 50 and S (0..256) into 60 bins, and maps the Pearson correlation of the two 2-D
//! histograms from [−1, 1] to a blend factor in [0, 1].

use crate::imgproc::resize::resize_area;
use crate::processors::add_weighted;
use crate::raster::{Frame, Raster};

/// Hue and saturation bins of FaceFusion's histogram comparison.
const HUE_BINS: usize = 50;
const SATURATION_BINS: usize = 60;
/// OpenCV's 8-bit hue range (degrees / 2) and the saturation range.
const HUE_RANGE: usize = 180;
const SATURATION_RANGE: usize = 256;

/// FaceFusion's `match_frame_color(source, target)`: `target` with the colour (low frequencies) of
/// `source`, at `target`'s size. Both must have the same channel count.
pub fn match_frame_color(source: &Frame, target: &Frame) -> Frame {
    let mut matched = source.clone();
    for size in color_difference_sizes(target.height) {
        matched = equalize_frame_color(&matched, target, size, size);
    }
    equalize_frame_color(&matched, target, target.width, target.height)
}

/// FaceFusion's `conditional_match_frame_color(source, target)`: `target` blended towards
/// `match_frame_color(source, target)` by [`histogram_similarity`], so a model output whose colours
/// already resemble the input keeps more of its own.
pub fn conditional_match_frame_color(source: &Frame, target: &Frame) -> Frame {
    let factor = histogram_similarity(source, target);
    let matched = match_frame_color(source, target);
    add_weighted(target, 1.0 - factor, &matched, factor)
}

/// The working sizes of `match_frame_color` for an image `height` pixels tall:
/// `numpy.linspace(16, height, 3, endpoint=False)`, each rounded to an even size as FaceFusion's
/// `normalize_resolution` does (Python's round, half to even). Sizes that round to 0 are left out
/// (FaceFusion would fail on them; crops are never that small).
pub fn color_difference_sizes(height: usize) -> Vec<usize> {
    const START: f64 = 16.0;
    const STEPS: usize = 3;
    let step = (height as f64 - START) / STEPS as f64;
    (0..STEPS)
        .map(|i| i as f64 * step + START)
        .map(|size| ((size / 2.0).round_ties_even() * 2.0).max(0.0) as usize)
        .filter(|&size| size > 0)
        .collect()
}

/// FaceFusion's `equalize_frame_color`: `target + cubic_up(area(source) − area(target))` at
/// `width`×`height`, clipped to 0..255 and truncated as numpy's `astype(uint8)` does.
fn equalize_frame_color(source: &Frame, target: &Frame, width: usize, height: usize) -> Frame {
    let source_small = resize_area(source, width, height);
    let target_small = resize_area(target, width, height);
    let difference: Vec<f32> =
        source_small.data.iter().zip(&target_small.data).map(|(&s, &t)| s as f32 - t as f32).collect();
    let difference = Raster::from_vec(width, height, target.channels, difference);
    let difference = resize_cubic_f32(&difference, target.width, target.height);
    let data =
        target.data.iter().zip(&difference.data).map(|(&t, &d)| (t as f32 + d).clamp(0.0, 255.0) as u8).collect();
    Frame::from_vec(target.width, target.height, target.channels, data)
}

/// `cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)` on float data.
///
/// opencv-python hands float cubic resizes to Intel IPP, whose arithmetic is not public. This models
/// it the way [`crate::imgproc::resize::resize_cubic`] models IPP's 8-bit cubic resize: positions
/// `(d + 0.5)·scale − 0.5` and Keys (a = −0.75) weights in double, weights rounded to float, edge
/// pixels replicated, rows first, taps summed in pairs. The result feeds an 8-bit truncation, so a
/// last-bit difference rarely shows.
fn resize_cubic_f32(src: &Raster<f32>, width: usize, height: usize) -> Raster<f32> {
    if (src.width, src.height) == (width, height) || src.data.is_empty() {
        return if src.data.is_empty() { Raster::new(width, height, src.channels) } else { src.clone() };
    }
    let cn = src.channels;
    let columns = cubic_taps(src.width, width);
    let rows = cubic_taps(src.height, height);
    // Every source row resampled horizontally once; the vertical pass then reads four of them.
    let horizontal: Vec<Vec<f32>> = (0..src.height)
        .map(|y| {
            let row = src.row(y);
            (0..width * cn)
                .map(|i| {
                    let (index, weights) = &columns[i / cn];
                    dot4(index.map(|x| row[x * cn + i % cn]), weights)
                })
                .collect()
        })
        .collect();
    let mut dst = Raster::new(width, height, cn);
    for (y, (index, weights)) in rows.iter().enumerate() {
        for (i, out) in dst.row_mut(y).iter_mut().enumerate() {
            *out = dot4(index.map(|r| horizontal[r][i]), weights);
        }
    }
    dst
}

/// For each output index along one axis: four clamped source indices and their float weights.
fn cubic_taps(src_len: usize, dst_len: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = 1.0 / (dst_len as f64 / src_len as f64);
    let last = src_len as i64 - 1;
    (0..dst_len)
        .map(|d| {
            let position = (d as f64 + 0.5) * scale - 0.5;
            let start = position.floor();
            let index = [-1, 0, 1, 2].map(|k| (start as i64 + k).clamp(0, last) as usize);
            (index, keys_weights(position - start).map(|w| w as f32))
        })
        .collect()
}

/// Keys' cubic convolution weights (a = −0.75, OpenCV's choice) for the four taps around a sample
/// `x` (0..1) past the second tap.
fn keys_weights(x: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let w1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let w2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [w0, w1, w2, 1.0 - w0 - w1 - w2]
}

fn dot4(v: [f32; 4], w: &[f32; 4]) -> f32 {
    (v[0] * w[0] + v[1] * w[1]) + (v[2] * w[2] + v[3] * w[3])
}

/// FaceFusion's `calculate_histogram_difference`, despite its name a similarity: the correlation of
/// the two crops' H-S histograms mapped from [−1, 1] to [0, 1] (1 = identical colour distribution).
pub fn histogram_similarity(a: &Frame, b: &Frame) -> f64 {
    let correlation = histogram_correlation(&hue_saturation_histogram(a), &hue_saturation_histogram(b));
    ((correlation + 1.0) / 2.0).clamp(0.0, 1.0)
}

/// `cv2.calcHist([cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)], [0, 1], None, [50, 60], [0, 180, 0, 256])`:
/// pixel counts, hue bins major. OpenCV bins a value v as `floor(v · bins / range)`, computed in
/// double, and leaves out values outside the range (a hue of exactly 180, which its fixed-point
/// conversion can produce).
pub fn hue_saturation_histogram(frame: &Frame) -> Vec<f32> {
    let hue_bin = bin_table(HUE_BINS, HUE_RANGE);
    let saturation_bin = bin_table(SATURATION_BINS, SATURATION_RANGE);
    let mut histogram = vec![0.0f32; HUE_BINS * SATURATION_BINS];
    for hsv in bgr_to_hsv_u8(frame).data.chunks_exact(3) {
        if let (Some(h), Some(s)) = (hue_bin[hsv[0] as usize], saturation_bin[hsv[1] as usize]) {
            histogram[h * SATURATION_BINS + s] += 1.0;
        }
    }
    histogram
}

/// OpenCV's `calcHistLookupTables_8u` for one uniform dimension: the bin of every 8-bit value.
fn bin_table(bins: usize, range: usize) -> [Option<usize>; 256] {
    let scale = bins as f64 / range as f64;
    std::array::from_fn(|v| (v < range).then(|| ((v as f64 * scale).floor() as usize).min(bins - 1)))
}

/// `cv2.compareHist(a, b, cv2.HISTCMP_CORREL)`: Pearson's correlation over the bins, in double. Two
/// flat histograms (zero variance) correlate 1, as in OpenCV.
pub fn histogram_correlation(a: &[f32], b: &[f32]) -> f64 {
    let (mut s1, mut s2, mut s11, mut s22, mut s12) = (0.0f64, 0.0, 0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        s1 += x;
        s2 += y;
        s11 += x * x;
        s22 += y * y;
        s12 += x * y;
    }
    let scale = 1.0 / a.len().min(b.len()).max(1) as f64;
    let numerator = s12 - s1 * s2 * scale;
    let denominator = (s11 - s1 * s1 * scale) * (s22 - s2 * s2 * scale);
    if denominator.abs() > f64::EPSILON {
        numerator / denominator.sqrt()
    } else {
        1.0
    }
}

/// `cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)` on 8-bit data, with OpenCV's 12-bit fixed-point
/// divisions: H in 0..180 (degrees / 2), S and V in 0..255. Uses the first three channels (frames
/// with fewer give an empty result).
pub fn bgr_to_hsv_u8(frame: &Frame) -> Raster<u8> {
    if frame.channels < 3 {
        return Raster::new(0, 0, 3);
    }
    let tables = HsvTables::new();
    let mut hsv = Raster::new(frame.width, frame.height, 3);
    for (px, out) in frame.data.chunks_exact(frame.channels).zip(hsv.data.chunks_exact_mut(3)) {
        out.copy_from_slice(&tables.convert(px[0], px[1], px[2]));
    }
    hsv
}

/// OpenCV's `RGB2HSV_b` tables: 255·2¹²/v for saturation and 180·2¹²/(6·diff) for hue, rounded.
struct HsvTables {
    saturation: [i32; 256],
    hue: [i32; 256],
}

const HSV_SHIFT: u32 = 12;

impl HsvTables {
    fn new() -> Self {
        let table = |numerator: f64, per: f64| {
            std::array::from_fn(|i| if i == 0 { 0 } else { (numerator / (per * i as f64)).round_ties_even() as i32 })
        };
        Self {
            saturation: table((255 << HSV_SHIFT) as f64, 1.0),
            hue: table(((HUE_RANGE as i32) << HSV_SHIFT) as f64, 6.0),
        }
    }

    fn convert(&self, b: u8, g: u8, r: u8) -> [u8; 3] {
        let (b, g, r) = (b as i32, g as i32, r as i32);
        let v = b.max(g).max(r);
        let diff = v - b.min(g).min(r);
        let half = 1 << (HSV_SHIFT - 1);
        let s = (diff * self.saturation[v as usize] + half) >> HSV_SHIFT;
        // The hue sector is chosen by which channel is the maximum, red first, then green.
        let sector = if v == r {
            g - b
        } else if v == g {
            b - r + 2 * diff
        } else {
            r - g + 4 * diff
        };
        let mut h = (sector * self.hue[diff as usize] + half) >> HSV_SHIFT;
        if h < 0 {
            h += HUE_RANGE as i32;
        }
        [h.clamp(0, 255) as u8, s as u8, v as u8]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(width: usize, height: usize, pixel: impl Fn(usize, usize) -> [u8; 3]) -> Frame {
        let data = (0..height).flat_map(|y| (0..width).map(move |x| (x, y))).flat_map(|(x, y)| pixel(x, y)).collect();
        Frame::from_vec(width, height, 3, data)
    }

    #[test]
    fn working_sizes_follow_linspace_and_even_rounding() {
        // linspace(16, 1024, 3, endpoint=False) = 16, 352, 688.
        assert_eq!(color_difference_sizes(1024), vec![16, 352, 688]);
        // 16, 85.33, 154.67 → halves 8, 42.67, 77.33 → 16, 86, 154.
        assert_eq!(color_difference_sizes(224), vec![16, 86, 154]);
        // 16, 18, 20 exactly: halves 8, 9, 10.
        assert_eq!(color_difference_sizes(22), vec![16, 18, 20]);
        // Python rounds 0.5 to 0 and 1.5 to 2: 16, 17, 18 → 16, 16, 18.
        assert_eq!(color_difference_sizes(19), vec![16, 16, 18]);
    }

    #[test]
    fn hsv_matches_opencv_on_primaries_and_greys() {
        let tables = HsvTables::new();
        // BGR order in, (H/2, S, V) out.
        assert_eq!(tables.convert(0, 0, 255), [0, 255, 255]); // red
        assert_eq!(tables.convert(0, 255, 0), [60, 255, 255]); // green
        assert_eq!(tables.convert(255, 0, 0), [120, 255, 255]); // blue
        assert_eq!(tables.convert(128, 128, 128), [0, 0, 128]); // grey: no hue, no saturation
        assert_eq!(tables.convert(0, 0, 0), [0, 0, 0]);
        // Red leaning to blue (r max, g < b): −3° wraps to 357°, and the fixed-point division
        // (−10·614 + 2048) >> 12 = −1 gives 179 where float would round 178.5.
        assert_eq!(tables.convert(10, 0, 200), [179, 255, 200]);
        // Orange: r 255, g 128, b 0 → 30.1° → 15 in OpenCV's half degrees; s = 255.
        assert_eq!(tables.convert(0, 128, 255), [15, 255, 255]);
    }

    #[test]
    fn histogram_bins_hue_and_saturation_and_skips_hue_180() {
        let tables = bin_table(HUE_BINS, HUE_RANGE);
        assert_eq!(tables[0], Some(0));
        assert_eq!(tables[3], Some(0)); // 3·50/180 = 0.83
        assert_eq!(tables[4], Some(1)); // 1.11
        assert_eq!(tables[179], Some(49));
        assert_eq!(tables[180], None);
        let saturation = bin_table(SATURATION_BINS, SATURATION_RANGE);
        assert_eq!(saturation[255], Some(59));
        assert_eq!(saturation[5], Some(1)); // 5·60/256 = 1.17

        // Two pixels: pure red (h 0, s 255) and grey (h 0, s 0).
        let image = frame(2, 1, |x, _| if x == 0 { [0, 0, 255] } else { [90, 90, 90] });
        let histogram = hue_saturation_histogram(&image);
        assert_eq!(histogram.iter().sum::<f32>(), 2.0);
        assert_eq!(histogram[59], 1.0);
        assert_eq!(histogram[0], 1.0);
    }

    #[test]
    fn correlation_matches_a_hand_computed_case() {
        // x = (1, 2, 3, 4), y = (2, 4, 5, 9): means 2.5 and 5; Σdxdy = 1.5·3 + 0.5·1 + 0 + 1.5·4 = 11,
        // Σdx² = 5, Σdy² = 9 + 1 + 0 + 16 = 26 → r = 11 / √130 = 0.964764.
        let r = histogram_correlation(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 5.0, 9.0]);
        assert!((r - 11.0 / 130f64.sqrt()).abs() < 1e-12, "{r}");
        assert!((histogram_correlation(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-12);
        // Flat histograms have no variance: OpenCV answers 1.
        assert_eq!(histogram_correlation(&[2.0, 2.0], &[5.0, 5.0]), 1.0);
    }

    #[test]
    fn identical_frames_are_fully_similar_and_match_to_themselves() {
        let image = frame(40, 40, |x, y| [(x * 6) as u8, (y * 6) as u8, 100]);
        assert_eq!(histogram_similarity(&image, &image), 1.0);
        assert_eq!(match_frame_color(&image, &image), image);
        assert_eq!(conditional_match_frame_color(&image, &image), image);
    }

    #[test]
    fn match_frame_color_moves_a_flat_offset_to_the_source_colour() {
        // A constant colour difference survives every area average and cubic enlargement, so the
        // target takes the source's colour, up to rounding of the averages and truncation.
        let source = frame(32, 32, |_, _| [60, 120, 180]);
        let target = frame(48, 48, |x, y| [(100 + x % 3) as u8, 100, (100 + y % 2) as u8]);
        let matched = match_frame_color(&source, &target);
        assert_eq!((matched.width, matched.height), (48, 48));
        let mean = |c: usize| matched.data.iter().skip(c).step_by(3).map(|&v| v as f64).sum::<f64>() / (48.0 * 48.0);
        assert!([60.0, 120.0, 180.0].iter().enumerate().all(|(c, want)| (mean(c) - want).abs() < 1.5));
    }

    #[test]
    fn equalize_truncates_and_clips_like_numpy() {
        let target = frame(4, 4, |_, _| [250, 5, 100]);
        let source = frame(4, 4, |_, _| [255, 0, 100]);
        // At full size the difference is exact: +5 clips at 255, −5 clips at 0.
        let out = equalize_frame_color(&source, &target, 4, 4);
        assert!(out.data.chunks_exact(3).all(|px| px == [255, 0, 100]));
    }

    #[test]
    fn cubic_float_resize_keeps_constants_and_interpolates_ramps() {
        let flat = Raster::filled(5, 4, 3, -7.5f32);
        assert!(resize_cubic_f32(&flat, 13, 9).data.iter().all(|&v| (v + 7.5).abs() < 1e-5));
        // Halving puts every sample midway between two source pixels, where Keys' weights are
        // symmetric and so exact on a ramp (a = −0.75 is not exact elsewhere): x reads 2x + 0.5.
        let ramp = Raster::from_vec(16, 1, 1, (0..16).map(|v| v as f32 * 4.0).collect());
        let out = resize_cubic_f32(&ramp, 8, 1);
        for x in 1..7 {
            assert!((out.data[x] - (8.0 * x as f32 + 2.0)).abs() < 1e-4, "x={x}: {}", out.data[x]);
        }
    }
}
