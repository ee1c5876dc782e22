//! `cv2.GaussianBlur(src, (0, 0), sigma)` on float images, with OpenCV 4.13's kernel and order of
//! operations, because FaceFusion blurs every face mask this way and pastes with the result.
//!
//! OpenCV derives the kernel size from sigma, builds the kernel in double precision and rounds it to
//! float, then filters rows and columns separately with BORDER_REFLECT_101. On CPUs with AVX2 (which
//! opencv-python dispatches to) its float row filter accumulates the taps left to right with fused
//! multiply-adds, and its symmetric column filter starts from the centre tap and adds each mirrored
//! pair of rows, again fused. This module keeps that order, which makes widths that are multiples of
//! 16 bit-identical to OpenCV 4.13; OpenCV's leftover columns go through narrower or scalar code
//! that differs by an ulp. With AVX2+FMA available at run time the loops are compiled for it,
//! otherwise they compute the same values more slowly.

use crate::raster::{Mask, Raster};

/// Kernels longer than this are refused: a sigma that large is not a mask blur, and the kernel
/// alone would need gigabytes.
const MAX_KERNEL_SIZE: usize = 1 << 16;

/// OpenCV's kernel size for `ksize = (0, 0)`: `round(sigma · 8 + 1) | 1` for float images,
/// `round(sigma · 6 + 1) | 1` for 8-bit ones (rounding half to even, as `cvRound` does).
/// `None` when sigma is not positive and finite, or the kernel would be absurdly long.
pub fn gaussian_kernel_size(sigma: f64, eight_bit: bool) -> Option<usize> {
    if !(sigma > 0.0 && sigma.is_finite()) {
        return None;
    }
    let radius_factor = if eight_bit { 3.0 } else { 4.0 };
    let size = (sigma * radius_factor * 2.0 + 1.0).round_ties_even();
    (size <= MAX_KERNEL_SIZE as f64).then_some(size as usize | 1)
}

/// `cv2.getGaussianKernel(size, sigma, CV_32F)`: OpenCV's bit-exact double-precision kernel
/// (normalised by the sum of its halves), rounded to float. A non-positive sigma takes OpenCV's
/// default for the size, or its fixed binomial tables for sizes 1, 3, 5 and 7.
pub fn gaussian_kernel(size: usize, sigma: f64) -> Vec<f32> {
    if sigma.is_nan() || sigma <= 0.0 {
        if let Some(table) = small_gaussian_table(size) {
            return table.to_vec();
        }
    }
    let sigma = if sigma > 0.0 { sigma } else { (size as f64).mul_add(0.15, 0.35) };
    let scale = -0.125 / (sigma * sigma);
    let half = size.saturating_sub(1) / 2;
    // OpenCV evaluates at x = 1 − n, 3 − n, …: twice the distance from the centre.
    let values: Vec<f64> = (0..half)
        .map(|i| {
            let x = 2 * i as i64 + 1 - size as i64;
            ((x * x) as f64 * scale).exp()
        })
        .collect();
    let mut sum = values.iter().fold(0.0, |acc, &v| acc + v) * 2.0 + 1.0;
    if size.is_multiple_of(2) {
        sum += 1.0;
    }
    let inv = 1.0 / sum;
    let mut kernel = vec![(inv) as f32; size];
    for (i, &v) in values.iter().enumerate() {
        let t = (v * inv) as f32;
        kernel[i] = t;
        kernel[size - 1 - i] = t;
    }
    kernel
}

fn small_gaussian_table(size: usize) -> Option<&'static [f32]> {
    match size {
        1 => Some(&[1.0]),
        3 => Some(&[0.25, 0.5, 0.25]),
        5 => Some(&[0.0625, 0.25, 0.375, 0.25, 0.0625]),
        7 => Some(&[0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125]),
        _ => None,
    }
}

/// `cv2.GaussianBlur(src, (0, 0), sigma)` for float rasters of any channel count (BORDER_DEFAULT,
/// i.e. REFLECT_101).
///
/// A sigma that is not positive and finite (OpenCV raises) or absurdly large returns the input
/// unchanged.
pub fn gaussian_blur_f32(src: &Mask, sigma: f64) -> Mask {
    let Some(size) = gaussian_kernel_size(sigma, false) else {
        return src.clone();
    };
    // OpenCV drops the blur along an axis the image has only one pixel in.
    let size_x = if src.width == 1 { 1 } else { size };
    let size_y = if src.height == 1 { 1 } else { size };
    if (size_x == 1 && size_y == 1) || src.data.is_empty() {
        return src.clone();
    }
    let kernel_x = gaussian_kernel(size_x, sigma);
    let kernel_y = if size_y == size_x { kernel_x.clone() } else { gaussian_kernel(size_y, sigma) };
    separable_filter_f32(src, &kernel_x, &kernel_y)
}

/// OpenCV's `borderInterpolate` for BORDER_REFLECT_101 (`gfedcb|abcdefgh|gfedcba`), repeated for
/// kernels wider than the image (the mirrored sequence has period 2·(len − 1)).
pub(crate) fn reflect_101(p: i64, len: usize) -> usize {
    if len <= 1 {
        return 0;
    }
    let period = 2 * (len as i64 - 1);
    let p = p.rem_euclid(period);
    (if p < len as i64 { p } else { period - p }) as usize
}

/// Separable filtering with symmetric odd kernels, rows first, as OpenCV's `sepFilter2D`.
///
/// Masks are full of repeated rows (a box mask has only two kinds), so identical inputs are
/// filtered once: a row equal to the previous one reuses its result, and an output row whose
/// kernel window covers only identical rows repeats the previous output. Both are exact.
fn separable_filter_f32(src: &Mask, kernel_x: &[f32], kernel_y: &[f32]) -> Mask {
    let rows = filter_rows(src, kernel_x);
    filter_columns(&rows, kernel_y)
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn filter_rows(src: &Mask, kernel: &[f32]) -> Mask {
    let (width, cn) = (src.width, src.channels);
    let radius = kernel.len() / 2;
    let source_x: Vec<usize> = (0..width + 2 * radius).map(|i| reflect_101(i as i64 - radius as i64, width)).collect();
    let mut padded = vec![0f32; source_x.len() * cn];
    let mut out = Raster::new(width, src.height, cn);
    let stride = src.stride();
    for y in 0..src.height {
        let row = src.row(y);
        if y > 0 && same_bits(row, src.row(y - 1)) {
            out.data.copy_within((y - 1) * stride..y * stride, y * stride);
            continue;
        }
        for (dst, &sx) in padded.chunks_exact_mut(cn).zip(&source_x) {
            dst.copy_from_slice(&row[sx * cn..(sx + 1) * cn]);
        }
        kernels::row(&padded, kernel, cn, out.row_mut(y));
    }
    out
}

/// Samples per column strip: the column pass walks a strip top to bottom so that the rows it keeps
/// re-reading (the whole kernel height) stay in cache, instead of streaming full rows.
const COLUMN_STRIP: usize = 128;

fn filter_columns(src: &Mask, kernel: &[f32]) -> Mask {
    let mut out = Raster::new(src.width, src.height, src.channels);
    let stride = src.stride();
    let repeats = repeated_outputs(src, kernel.len() / 2);
    for start in (0..stride).step_by(COLUMN_STRIP) {
        let strip = start..(start + COLUMN_STRIP).min(stride);
        kernels::columns(&src.data, stride, &repeats, kernel, strip, &mut out.data);
    }
    out
}

/// For each output row, whether it equals the previous one: true when every source row the two
/// kernel windows cover (mirrored at the borders) is identical.
fn repeated_outputs(src: &Mask, radius: usize) -> Vec<bool> {
    let height = src.height;
    let mut class = vec![0usize; height];
    for y in 1..height {
        let changed = !same_bits(src.row(y), src.row(y - 1));
        class[y] = class[y - 1] + usize::from(changed);
    }
    // Runs of equal rows along the mirrored sequence of rows y − radius − 1 … y + radius.
    let mut run = Vec::with_capacity(height + 2 * radius + 1);
    let mut previous = None;
    for i in -(radius as i64) - 1..(height + radius) as i64 {
        let c = class[reflect_101(i, height)];
        let id = run.last().copied().unwrap_or(0) + usize::from(previous.is_some_and(|p| p != c));
        run.push(id);
        previous = Some(c);
    }
    (0..height).map(|y| y > 0 && run[y] == run[y + 2 * radius + 1]).collect()
}

/// The inner loops, compiled once generically and, on x86-64, once more for AVX2+FMA so that
/// `mul_add` becomes a vector instruction instead of a library call.
mod kernels {
    use std::ops::Range;

    use super::reflect_101;

    /// Outputs accumulated in registers while the whole kernel runs over them (four AVX vectors).
    const BLOCK: usize = 128;

    /// `out[x] = Σ_k kernel[k] · padded[x + k]`, fused, in tap order. Whole blocks keep their sums
    /// in registers; the remainder accumulates in place. Both orders are the same per sample.
    #[inline(always)]
    fn row_body(padded: &[f32], kernel: &[f32], cn: usize, out: &mut [f32]) {
        let whole = out.len() / BLOCK * BLOCK;
        let (blocks, rest) = out.split_at_mut(whole);
        for (b, block) in blocks.chunks_exact_mut(BLOCK).enumerate() {
            let x = b * BLOCK;
            let mut acc = [0f32; BLOCK];
            for (k, &weight) in kernel.iter().enumerate() {
                let taps = &padded[x + k * cn..x + k * cn + BLOCK];
                for (a, &s) in acc.iter_mut().zip(taps) {
                    *a = s.mul_add(weight, *a);
                }
            }
            block.copy_from_slice(&acc);
        }
        rest.fill(0.0);
        for (k, &weight) in kernel.iter().enumerate() {
            let taps = &padded[whole + k * cn..whole + k * cn + rest.len()];
            for (o, &s) in rest.iter_mut().zip(taps) {
                *o = s.mul_add(weight, *o);
            }
        }
    }

    /// One strip of the column pass: each output starts from the centre row (a fused
    /// multiply-add onto zero is a plain product) and adds `(below + above) · weight` per mirrored
    /// pair of rows, fused, nearest pair first. Rows flagged in `repeats` copy the previous one.
    #[inline(always)]
    fn columns_body(
        src: &[f32],
        stride: usize,
        repeats: &[bool],
        kernel: &[f32],
        strip: Range<usize>,
        out: &mut [f32],
    ) {
        let radius = kernel.len() / 2;
        let height = repeats.len() as i64;
        let mut pairs = Vec::with_capacity(radius);
        for (y, &repeat) in repeats.iter().enumerate() {
            let row = y * stride;
            if repeat {
                out.copy_within(row - stride + strip.start..row - stride + strip.end, row + strip.start);
                continue;
            }
            pairs.clear();
            pairs.extend((1..=radius as i64).map(|k| {
                let below = reflect_101(y as i64 + k, height as usize) * stride;
                let above = reflect_101(y as i64 - k, height as usize) * stride;
                (below, above)
            }));
            let mut x = strip.start;
            while x + BLOCK <= strip.end {
                column_block::<BLOCK>(src, row, x, &pairs, kernel, &mut out[row + x..row + x + BLOCK]);
                x += BLOCK;
            }
            column_rest(src, row, x, &pairs, kernel, &mut out[row + x..row + strip.end]);
        }
    }

    /// One block of a column output row with its sums in registers.
    #[inline(always)]
    fn column_block<const N: usize>(
        src: &[f32],
        row: usize,
        x: usize,
        pairs: &[(usize, usize)],
        kernel: &[f32],
        out: &mut [f32],
    ) {
        let radius = kernel.len() / 2;
        let mut acc = [0f32; N];
        for (a, &c) in acc.iter_mut().zip(&src[row + x..row + x + N]) {
            *a = c * kernel[radius];
        }
        for (&(below, above), &weight) in pairs.iter().zip(&kernel[radius + 1..]) {
            let below = &src[below + x..below + x + N];
            let above = &src[above + x..above + x + N];
            for ((a, &b), &t) in acc.iter_mut().zip(below).zip(above) {
                *a = (b + t).mul_add(weight, *a);
            }
        }
        out.copy_from_slice(&acc);
    }

    /// The samples of a strip past its last whole block, accumulated in place.
    #[inline(always)]
    fn column_rest(src: &[f32], row: usize, x: usize, pairs: &[(usize, usize)], kernel: &[f32], out: &mut [f32]) {
        let radius = kernel.len() / 2;
        let n = out.len();
        for (o, &c) in out.iter_mut().zip(&src[row + x..row + x + n]) {
            *o = c * kernel[radius];
        }
        for (&(below, above), &weight) in pairs.iter().zip(&kernel[radius + 1..]) {
            let below = &src[below + x..below + x + n];
            let above = &src[above + x..above + x + n];
            for ((o, &b), &t) in out.iter_mut().zip(below).zip(above) {
                *o = (b + t).mul_add(weight, *o);
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn fma_available() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn row_fma(padded: &[f32], kernel: &[f32], cn: usize, out: &mut [f32]) {
        row_body(padded, kernel, cn, out)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn columns_fma(src: &[f32], stride: usize, repeats: &[bool], kernel: &[f32], strip: Range<usize>, out: &mut [f32]) {
        columns_body(src, stride, repeats, kernel, strip, out)
    }

    /// `out[x] = Σ_k kernel[k] · padded[x + k]`, accumulated in tap order with fused steps.
    pub(super) fn row(padded: &[f32], kernel: &[f32], cn: usize, out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if fma_available() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { row_fma(padded, kernel, cn, out) };
            return;
        }
        row_body(padded, kernel, cn, out)
    }

    /// The column pass for samples `strip` of every row of `src` (rows `stride` samples apart,
    /// one flag in `repeats` per row).
    pub(super) fn columns(
        src: &[f32],
        stride: usize,
        repeats: &[bool],
        kernel: &[f32],
        strip: Range<usize>,
        out: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if fma_available() {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { columns_fma(src, stride, repeats, kernel, strip, out) };
            return;
        }
        columns_body(src, stride, repeats, kernel, strip, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_size_follows_opencv() {
        assert_eq!(gaussian_kernel_size(9.5, false), Some(77));
        assert_eq!(gaussian_kernel_size(4.75, false), Some(39));
        assert_eq!(gaussian_kernel_size(5.0, false), Some(41));
        assert_eq!(gaussian_kernel_size(2.0, true), Some(13));
        // 0.3125 · 8 + 1 = 3.5 rounds half to even (4), then | 1.
        assert_eq!(gaussian_kernel_size(0.3125, false), Some(5));
        assert_eq!(gaussian_kernel_size(0.0, false), None);
        assert_eq!(gaussian_kernel_size(f64::NAN, false), None);
        assert_eq!(gaussian_kernel_size(1e12, false), None);
    }

    #[test]
    fn kernel_is_symmetric_normalised_and_gaussian() {
        let k = gaussian_kernel(77, 9.5);
        assert_eq!(k.len(), 77);
        assert!(k.iter().zip(k.iter().rev()).all(|(a, b)| a == b));
        let sum: f64 = k.iter().map(|&v| v as f64).sum();
        assert!((sum - 1.0).abs() < 1e-6);
        let ratio = k[38 + 10] as f64 / k[38] as f64;
        assert!((ratio - (-100.0 / (2.0 * 9.5 * 9.5f64)).exp()).abs() < 1e-6);
        assert_eq!(gaussian_kernel(5, 0.0), vec![0.0625, 0.25, 0.375, 0.25, 0.0625]);
        assert_eq!(gaussian_kernel(1, 3.0), vec![1.0]);
    }

    #[test]
    fn reflect_101_mirrors_without_repeating_the_edge() {
        let mapped: Vec<usize> = (-3..8).map(|p| reflect_101(p, 5)).collect();
        assert_eq!(mapped, vec![3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1]);
        // Kernels wider than the image keep bouncing.
        assert_eq!(reflect_101(-9, 5), 1);
        assert_eq!(reflect_101(13, 5), 3);
        assert_eq!(reflect_101(-4, 1), 0);
    }

    #[test]
    fn blur_preserves_constants_and_mass() {
        let flat = Raster::filled(40, 30, 1, 0.5f32);
        let out = gaussian_blur_f32(&flat, 3.0);
        assert!(out.data.iter().all(|&v| (v - 0.5).abs() < 1e-6));

        let mut dot = Raster::new(64, 64, 1);
        dot.data[32 * 64 + 32] = 1.0f32;
        let out = gaussian_blur_f32(&dot, 2.0);
        let sum: f64 = out.data.iter().map(|&v| v as f64).sum();
        assert!((sum - 1.0).abs() < 1e-5);
        // The peak is the square of the kernel's centre tap.
        let k = gaussian_kernel(17, 2.0);
        assert!((out.data[32 * 64 + 32] - k[8] * k[8]).abs() < 1e-7);
    }

    #[test]
    fn blur_matches_a_direct_double_precision_convolution() {
        let (w, h) = (23, 17);
        let data: Vec<f32> = (0..w * h).map(|i| ((i * 7919) % 101) as f32 / 100.0).collect();
        let src = Raster::from_vec(w, h, 1, data);
        let sigma = 1.7;
        let out = gaussian_blur_f32(&src, sigma);
        let k = gaussian_kernel(gaussian_kernel_size(sigma, false).unwrap(), sigma);
        let r = (k.len() / 2) as i64;
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0f64;
                for j in -r..=r {
                    for i in -r..=r {
                        let v = src.data[reflect_101(y as i64 + j, h) * w + reflect_101(x as i64 + i, w)];
                        acc += k[(j + r) as usize] as f64 * k[(i + r) as usize] as f64 * v as f64;
                    }
                }
                assert!((out.data[y * w + x] as f64 - acc).abs() < 1e-6, "({x}, {y})");
            }
        }
    }

    #[test]
    fn degenerate_inputs_are_returned_unchanged() {
        let src = Raster::from_vec(3, 1, 1, vec![0.0f32, 1.0, 0.0]);
        // A single row is only blurred along x.
        let out = gaussian_blur_f32(&src, 1.0);
        assert!(out.data[1] < 1.0 && out.data[0] > 0.0);
        let one = Raster::from_vec(1, 1, 1, vec![0.7f32]);
        assert_eq!(gaussian_blur_f32(&one, 5.0), one);
        assert_eq!(gaussian_blur_f32(&src, -1.0), src);
        let empty = Raster::<f32>::new(0, 0, 1);
        assert_eq!(gaussian_blur_f32(&empty, 2.0), empty);
    }

    #[test]
    fn multichannel_rasters_blur_each_channel_alike() {
        let single: Vec<f32> = (0..20 * 12).map(|i| (i % 13) as f32 / 13.0).collect();
        let mono = Raster::from_vec(20, 12, 1, single.clone());
        let pair = Raster::from_vec(20, 12, 2, single.iter().flat_map(|&v| [v, 1.0 - v]).collect());
        let (a, b) = (gaussian_blur_f32(&mono, 1.5), gaussian_blur_f32(&pair, 1.5));
        for (i, &v) in a.data.iter().enumerate() {
            assert_eq!(b.data[2 * i], v);
        }
    }
}
