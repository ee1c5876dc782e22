//! `cv2.resize` with OpenCV 4.13's arithmetic, because FaceFusion's detector canvas, mask resizes
//! and model inputs are all produced by it and a port has to reproduce those pixels.
//!
//! What OpenCV does, and this module copies:
//! * opencv-python ships Intel IPP as a HAL, and `resize` asks it first. IPP takes float linear and
//!   8-bit cubic resizes of images with 1, 3 or 4 channels and at least two rows and columns; it
//!   declines 8-bit linear and INTER_AREA (not bit-exact with OpenCV), which OpenCV does itself.
//! * IPP's float linear interpolation is `a + (b − a)·t` with one rounding (a fused multiply-add),
//!   fractions computed in double, horizontal pass first.
//! * OpenCV's own 8-bit linear and cubic resizes run in fixed point: coefficients are scaled by
//!   2^11 and rounded, a horizontal pass keeps 32-bit sums and a vertical pass combines two (or four)
//!   of those rows.
//! * The 8-bit vertical linear pass rounds in three steps (`(S >> 4) · β >> 16`, summed, `+2 >> 2`)
//!   rather than once; the cubic one is vectorised in float with a fixed-point scalar tail, so which
//!   columns take which path depends on the SIMD block size, see [`VERTICAL_SIMD_BLOCK`].
//! * A linear resize by exactly one half in both directions is turned into INTER_AREA's 2×2 average.
//! * Equal sizes are a plain copy.
//!
//! Rasters are interleaved, so every table below is indexed by sample (pixel × channel).

use crate::raster::Raster;

/// OpenCV's `INTER_RESIZE_COEF_BITS`: 8-bit coefficients are fixed point with 11 fractional bits.
const COEF_BITS: u32 = 11;
const COEF_ONE: i32 = 1 << COEF_BITS;
/// Samples per iteration of OpenCV's vectorised vertical cubic pass (8 × i16 on the SSE baseline that
/// opencv-python's generic kernels are built for). Samples past the last whole block of a row go
/// through the scalar fixed-point code, whose rounding differs.
const VERTICAL_SIMD_BLOCK: usize = 8;

/// `cv2.resize(src, (width, height))` (INTER_LINEAR) on 8-bit data with any channel count.
///
/// An empty source gives a black raster of the requested size (OpenCV would raise instead).
pub fn resize_linear(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    if let Some(trivial) = trivial_resize(src, width, height) {
        return trivial;
    }
    if let Some((2, 2)) = integer_downscale(src, width, height) {
        return area_fast_u8(src, width, height, 2, 2);
    }
    let x = linear_axis(src.width, width, false);
    let y = linear_axis(src.height, height, false);
    let horizontal = FixedTaps::linear_horizontal(&x, src.width, src.channels);
    let vertical = FixedTaps::linear_vertical(&y, src.height);
    separable_u8(src, width, height, &horizontal, &vertical, vertical_linear_u8)
}

/// `cv2.resize(src, (width, height))` (INTER_LINEAR) on float data, e.g. masks.
pub fn resize_linear_f32(src: &Raster<f32>, width: usize, height: usize) -> Raster<f32> {
    if let Some(trivial) = trivial_resize(src, width, height) {
        return trivial;
    }
    if ipp_accepts(src) {
        return ipp::linear_f32(src, width, height);
    }
    if let Some((2, 2)) = integer_downscale(src, width, height) {
        return area_half_f32(src, width, height);
    }
    let x = linear_axis(src.width, width, false);
    let y = linear_axis(src.height, height, false);
    let horizontal = FloatTaps::linear_horizontal(&x, src.width, src.channels);
    let vertical = FloatTaps::linear_vertical(&y, src.height);
    separable_f32(src, width, height, &horizontal, &vertical)
}

/// `cv2.resize(src, (width, height), interpolation=cv2.INTER_AREA)` on 8-bit data.
///
/// Shrinking in both directions averages pixel areas (integer factors take OpenCV's fast path);
/// enlarging in either direction falls back to OpenCV's area-flavoured bilinear coefficients.
pub fn resize_area(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    if let Some(trivial) = trivial_resize(src, width, height) {
        return trivial;
    }
    let scale_x = inverse_scale(src.width, width);
    let scale_y = inverse_scale(src.height, height);
    if scale_x >= 1.0 && scale_y >= 1.0 {
        if let Some((fx, fy)) = integer_downscale(src, width, height) {
            return area_fast_u8(src, width, height, fx, fy);
        }
        return area_general_u8(src, width, height);
    }
    let x = linear_axis(src.width, width, true);
    let y = linear_axis(src.height, height, true);
    let horizontal = FixedTaps::linear_horizontal(&x, src.width, src.channels);
    let vertical = FixedTaps::linear_vertical(&y, src.height);
    separable_u8(src, width, height, &horizontal, &vertical, vertical_linear_u8)
}

/// `cv2.resize(src, (width, height), interpolation=cv2.INTER_CUBIC)` on 8-bit data (a = −0.75,
/// edge pixels replicated).
///
/// Images IPP handles follow its float algorithm; it is not public, and the model here (weights in
/// double rounded to float, taps summed in pairs, rounding half to even) leaves about 3 samples per
/// million one level away from OpenCV 4.13. Single rows or columns use OpenCV's own fixed point.
pub fn resize_cubic(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    if let Some(trivial) = trivial_resize(src, width, height) {
        return trivial;
    }
    if ipp_accepts(src) {
        return ipp::cubic_u8(src, width, height);
    }
    let x = linear_axis(src.width, width, false);
    let y = linear_axis(src.height, height, false);
    let horizontal = FixedTaps::cubic_horizontal(&x, src.width, src.channels);
    let vertical = FixedTaps::cubic_vertical(&y, src.height);
    separable_u8(src, width, height, &horizontal, &vertical, vertical_cubic_u8)
}

/// The result when there is nothing to interpolate: an empty destination, an empty source (black),
/// or equal sizes (OpenCV copies).
fn trivial_resize<T: Copy + Default>(src: &Raster<T>, width: usize, height: usize) -> Option<Raster<T>> {
    if width == 0 || height == 0 || src.width == 0 || src.height == 0 || src.channels == 0 {
        return Some(Raster::new(width, height, src.channels));
    }
    (src.width == width && src.height == height).then(|| src.clone())
}

/// Whether OpenCV 4.13's IPP HAL takes a float linear or 8-bit cubic resize of this image: it
/// fails on a single row or column and does not handle two channels.
fn ipp_accepts<T>(src: &Raster<T>) -> bool {
    src.width >= 2 && src.height >= 2 && matches!(src.channels, 1 | 3 | 4)
}

/// OpenCV's `scale_x = 1 / (dst / src)`, computed the same way so that integer tests agree.
fn inverse_scale(src_len: usize, dst_len: usize) -> f64 {
    1.0 / (dst_len as f64 / src_len as f64)
}

/// The integer shrink factors when OpenCV considers both scales integers (its `is_area_fast`).
fn integer_downscale<T>(src: &Raster<T>, width: usize, height: usize) -> Option<(usize, usize)> {
    let factor = |src_len, dst_len| {
        let scale = inverse_scale(src_len, dst_len);
        let rounded = scale.round_ties_even();
        ((scale - rounded).abs() < f64::EPSILON && rounded >= 1.0).then_some(rounded as usize)
    };
    Some((factor(src.width, width)?, factor(src.height, height)?))
}

/// Where each output sample reads from along one axis: the first source index (may be out of
/// range) and the fraction towards the next one, as OpenCV's `resize` computes them in float.
fn linear_axis(src_len: usize, dst_len: usize, area_mode: bool) -> Vec<(i64, f32)> {
    let inv_scale = dst_len as f64 / src_len as f64;
    let scale = 1.0 / inv_scale;
    (0..dst_len)
        .map(|d| {
            if area_mode {
                let s = (d as f64 * scale).floor() as i64;
                let f = ((d + 1) as f64 - (s + 1) as f64 * inv_scale) as f32;
                (s, if f <= 0.0 { 0.0 } else { f - f.floor() })
            } else {
                let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
                let s = f.floor();
                (s as i64, f - s)
            }
        })
        .collect()
}

/// OpenCV's `saturate_cast<short>(c * INTER_RESIZE_COEF_SCALE)`.
fn fixed_coefficient(c: f32) -> i32 {
    (c * COEF_ONE as f32).round_ties_even().clamp(i16::MIN as f32, i16::MAX as f32) as i32
}

/// OpenCV's `interpolateCubic` (A = −0.75), in float like the original.
fn cubic_coefficients(x: f32) -> [f32; 4] {
    const A: f32 = -0.75;
    let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
    let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
    [c0, c1, c2, 1.0 - c0 - c1 - c2]
}

fn clamp_index(i: i64, len: usize) -> usize {
    i.clamp(0, len as i64 - 1) as usize
}

/// Linear taps along x with OpenCV's border rule: a position left of the image reads pixel 0, and
/// from the first position whose right neighbour is missing on, the last pixel is copied whole.
fn linear_x_taps(axis: &[(i64, f32)], src_len: usize) -> Vec<(usize, usize, f32, f32)> {
    // OpenCV tests for the right border after moving positions left of the image to pixel 0.
    let xmax = axis.iter().position(|&(s, _)| s.max(0) + 1 >= src_len as i64).unwrap_or(axis.len());
    axis.iter()
        .enumerate()
        .map(|(d, &(s, f))| {
            if d >= xmax {
                let last = src_len - 1;
                (last, last, 1.0, 0.0)
            } else if s < 0 {
                (0, 1, 1.0, 0.0)
            } else {
                (s as usize, s as usize + 1, 1.0 - f, f)
            }
        })
        .collect()
}

/// Fixed-point taps of one separable pass: for every output index (sample along x, row along y)
/// `taps` source indices and coefficients, stored contiguously.
struct FixedTaps {
    taps: usize,
    index: Vec<usize>,
    coef: Vec<i32>,
}

impl FixedTaps {
    fn linear_horizontal(axis: &[(i64, f32)], src_len: usize, channels: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * channels * 2);
        let mut coef = Vec::with_capacity(axis.len() * channels * 2);
        for (p0, p1, c0, c1) in linear_x_taps(axis, src_len) {
            let (c0, c1) = (fixed_coefficient(c0), fixed_coefficient(c1));
            for c in 0..channels {
                index.extend([p0 * channels + c, p1 * channels + c]);
                coef.extend([c0, c1]);
            }
        }
        Self { taps: 2, index, coef }
    }

    /// Rows are clamped but the coefficients are not, exactly as OpenCV does along y.
    fn linear_vertical(axis: &[(i64, f32)], src_len: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * 2);
        let mut coef = Vec::with_capacity(axis.len() * 2);
        for &(s, f) in axis {
            index.extend([clamp_index(s, src_len), clamp_index(s + 1, src_len)]);
            coef.extend([fixed_coefficient(1.0 - f), fixed_coefficient(f)]);
        }
        Self { taps: 2, index, coef }
    }

    fn cubic_horizontal(axis: &[(i64, f32)], src_len: usize, channels: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * channels * 4);
        let mut coef = Vec::with_capacity(axis.len() * channels * 4);
        for &(s, f) in axis {
            let weights = cubic_coefficients(f).map(fixed_coefficient);
            for c in 0..channels {
                for (k, &w) in weights.iter().enumerate() {
                    index.push(clamp_index(s - 1 + k as i64, src_len) * channels + c);
                    coef.push(w);
                }
            }
        }
        Self { taps: 4, index, coef }
    }

    fn cubic_vertical(axis: &[(i64, f32)], src_len: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * 4);
        let mut coef = Vec::with_capacity(axis.len() * 4);
        for &(s, f) in axis {
            let weights = cubic_coefficients(f).map(fixed_coefficient);
            for (k, &w) in weights.iter().enumerate() {
                index.push(clamp_index(s - 1 + k as i64, src_len));
                coef.push(w);
            }
        }
        Self { taps: 4, index, coef }
    }

    fn of(&self, output: usize) -> (&[usize], &[i32]) {
        let range = output * self.taps..(output + 1) * self.taps;
        (&self.index[range.clone()], &self.coef[range])
    }
}

/// Float taps for the float pipeline (same geometry, coefficients kept as float).
struct FloatTaps {
    index: Vec<usize>,
    coef: Vec<f32>,
}

impl FloatTaps {
    fn linear_horizontal(axis: &[(i64, f32)], src_len: usize, channels: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * channels * 2);
        let mut coef = Vec::with_capacity(axis.len() * channels * 2);
        for (p0, p1, c0, c1) in linear_x_taps(axis, src_len) {
            for c in 0..channels {
                index.extend([p0 * channels + c, p1 * channels + c]);
                coef.extend([c0, c1]);
            }
        }
        Self { index, coef }
    }

    fn linear_vertical(axis: &[(i64, f32)], src_len: usize) -> Self {
        let mut index = Vec::with_capacity(axis.len() * 2);
        let mut coef = Vec::with_capacity(axis.len() * 2);
        for &(s, f) in axis {
            index.extend([clamp_index(s, src_len), clamp_index(s + 1, src_len)]);
            coef.extend([1.0 - f, f]);
        }
        Self { index, coef }
    }
}

/// Horizontally resampled source rows, kept between output rows because neighbouring output rows
/// mostly read the same source rows (OpenCV does the same).
struct RowCache<T> {
    rows: Vec<(Option<usize>, Vec<T>)>,
}

impl<T: Copy + Default> RowCache<T> {
    fn new(slots: usize, len: usize) -> Self {
        Self { rows: (0..slots).map(|_| (None, vec![T::default(); len])).collect() }
    }

    /// Makes slot `k` hold source row `wanted[k]`, reusing rows already computed.
    fn load(&mut self, wanted: &[usize], mut compute: impl FnMut(usize, &mut [T])) {
        for (k, &row) in wanted.iter().enumerate() {
            if self.rows[k].0 == Some(row) {
                continue;
            }
            if let Some(found) = (k + 1..self.rows.len()).find(|&j| self.rows[j].0 == Some(row)) {
                self.rows.swap(k, found);
                continue;
            }
            let slot = &mut self.rows[k];
            compute(row, &mut slot.1);
            slot.0 = Some(row);
        }
    }

    fn row(&self, k: usize) -> &[T] {
        &self.rows[k].1
    }
}

/// The vertical combination of horizontally resampled rows into one 8-bit output row.
type VerticalU8 = fn(&RowCache<i32>, &[i32], &mut [u8]);

fn separable_u8(
    src: &Raster<u8>,
    width: usize,
    height: usize,
    horizontal: &FixedTaps,
    vertical: &FixedTaps,
    combine: VerticalU8,
) -> Raster<u8> {
    let mut dst = Raster::new(width, height, src.channels);
    let samples = width * src.channels;
    let mut cache = RowCache::new(vertical.taps, samples);
    for y in 0..height {
        let (rows, coef) = vertical.of(y);
        cache.load(rows, |row, out| horizontal_u8(src.row(row), horizontal, out));
        combine(&cache, coef, dst.row_mut(y));
    }
    dst
}

fn horizontal_u8(row: &[u8], taps: &FixedTaps, out: &mut [i32]) {
    let chunks = taps.index.chunks_exact(taps.taps).zip(taps.coef.chunks_exact(taps.taps));
    for (o, (index, coef)) in out.iter_mut().zip(chunks) {
        *o = index.iter().zip(coef).map(|(&i, &c)| row[i] as i32 * c).sum();
    }
}

/// OpenCV's `VResizeLinearVec_32s8u`, whose rounding its scalar tail copies: each row is shifted
/// down by 4 bits, multiplied by its coefficient keeping the high 16 bits, and the sum is rounded
/// by 2 bits. This is not `(S0·β0 + S1·β1) >> 22`; the detector canvases differ by 1 without it.
fn vertical_linear_u8(cache: &RowCache<i32>, coef: &[i32], out: &mut [u8]) {
    let (r0, r1) = (cache.row(0), cache.row(1));
    let (b0, b1) = (coef[0], coef[1]);
    for ((o, &s0), &s1) in out.iter_mut().zip(r0).zip(r1) {
        *o = (((((s0 >> 4) * b0) >> 16) + (((s1 >> 4) * b1) >> 16) + 2) >> 2).clamp(0, 255) as u8;
    }
}

/// OpenCV's `VResizeCubicVec_32s8u` (float arithmetic) and the fixed-point scalar tail.
fn vertical_cubic_u8(cache: &RowCache<i32>, coef: &[i32], out: &mut [u8]) {
    let rows = [cache.row(0), cache.row(1), cache.row(2), cache.row(3)];
    let scale = 1.0f32 / (COEF_ONE * COEF_ONE) as f32;
    let b = [0, 1, 2, 3].map(|k| coef[k] as f32 * scale);
    let simd_end = out.len() / VERTICAL_SIMD_BLOCK * VERTICAL_SIMD_BLOCK;
    for (x, o) in out.iter_mut().enumerate() {
        let s = rows.map(|r| r[x]);
        *o = if x < simd_end {
            let sum = s[0] as f32 * b[0] + (s[1] as f32 * b[1] + (s[2] as f32 * b[2] + s[3] as f32 * b[3]));
            sum.round_ties_even().clamp(0.0, 255.0) as u8
        } else {
            descale_u8(s[0] * coef[0] + s[1] * coef[1] + s[2] * coef[2] + s[3] * coef[3])
        };
    }
}

/// OpenCV's `FixedPtCast<int, uchar, 2 · INTER_RESIZE_COEF_BITS>`.
fn descale_u8(v: i32) -> u8 {
    const SHIFT: u32 = 2 * COEF_BITS;
    ((v + (1 << (SHIFT - 1))) >> SHIFT).clamp(0, 255) as u8
}

fn separable_f32(
    src: &Raster<f32>,
    width: usize,
    height: usize,
    horizontal: &FloatTaps,
    vertical: &FloatTaps,
) -> Raster<f32> {
    let mut dst = Raster::new(width, height, src.channels);
    let samples = width * src.channels;
    let mut cache = RowCache::new(2, samples);
    for y in 0..height {
        let (rows, coef) = (&vertical.index[2 * y..2 * y + 2], &vertical.coef[2 * y..2 * y + 2]);
        cache.load(rows, |row, out| horizontal_f32(src.row(row), horizontal, out));
        let (b0, b1) = (coef[0], coef[1]);
        let out = dst.row_mut(y);
        for ((o, &s0), &s1) in out.iter_mut().zip(cache.row(0)).zip(cache.row(1)) {
            *o = s0 * b0 + s1 * b1;
        }
    }
    dst
}

fn horizontal_f32(row: &[f32], taps: &FloatTaps, out: &mut [f32]) {
    let pairs = taps.index.chunks_exact(2).zip(taps.coef.chunks_exact(2));
    for (o, (index, coef)) in out.iter_mut().zip(pairs) {
        *o = row[index[0]] * coef[0] + row[index[1]] * coef[1];
    }
}

/// OpenCV's `resizeAreaFast_` for 8-bit data: the mean of each `fx`×`fy` block. Its 2×2 kernels
/// (1, 3 or 4 channels) round half up in integers; every other case multiplies by a float 1/area.
fn area_fast_u8(src: &Raster<u8>, width: usize, height: usize, fx: usize, fy: usize) -> Raster<u8> {
    let cn = src.channels;
    let covered = width * fx <= src.width && height * fy <= src.height;
    if fx == 2 && fy == 2 && matches!(cn, 1 | 3 | 4) && covered {
        return area_half_u8(src, width, height);
    }
    let mut dst = Raster::new(width, height, cn);
    let scale = 1.0f32 / (fx * fy) as f32;
    let mut sums = vec![0u32; width * cn];
    let mut counts = vec![0u32; width];
    for y in 0..height {
        sums.fill(0);
        counts.fill(0);
        for sy in y * fy..((y + 1) * fy).min(src.height) {
            accumulate_blocks(src.row(sy), cn, fx, &mut sums, &mut counts);
        }
        for (out, (sum, &count)) in dst.row_mut(y).chunks_exact_mut(cn).zip(sums.chunks_exact(cn).zip(&counts)) {
            for (o, &s) in out.iter_mut().zip(sum) {
                *o = if count as usize == fx * fy {
                    (s as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8
                } else if count > 0 {
                    // A block cut by the image border (sizes that only round to an integer factor).
                    (s as f32 / count as f32).round_ties_even().clamp(0.0, 255.0) as u8
                } else {
                    0
                };
            }
        }
    }
    dst
}

/// Adds one source row to the per-block sums (and pixel counts) of an output row.
fn accumulate_blocks(row: &[u8], cn: usize, fx: usize, sums: &mut [u32], counts: &mut [u32]) {
    for (block, (sum, count)) in row.chunks(fx * cn).zip(sums.chunks_exact_mut(cn).zip(counts.iter_mut())) {
        for px in block.chunks_exact(cn) {
            for (s, &v) in sum.iter_mut().zip(px) {
                *s += v as u32;
            }
            *count += 1;
        }
    }
}

/// The 2×2 mean, `(a + b + c + d + 2) >> 2`, as OpenCV's vectorised kernel computes it.
fn area_half_u8(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    let cn = src.channels;
    let mut dst = Raster::new(width, height, cn);
    for y in 0..height {
        let (top, bottom) = (src.row(2 * y), src.row(2 * y + 1));
        let pairs = top.chunks_exact(2 * cn).zip(bottom.chunks_exact(2 * cn));
        for (out, (t, b)) in dst.row_mut(y).chunks_exact_mut(cn).zip(pairs) {
            for (c, o) in out.iter_mut().enumerate() {
                let sum = t[c] as u32 + t[c + cn] as u32 + b[c] as u32 + b[c + cn] as u32;
                *o = ((sum + 2) >> 2) as u8;
            }
        }
    }
    dst
}

/// OpenCV's 2×2 area path for float data: `((a + b) + (c + d)) · 0.25` as its SIMD kernel does.
fn area_half_f32(src: &Raster<f32>, width: usize, height: usize) -> Raster<f32> {
    let cn = src.channels;
    let mut dst = Raster::new(width, height, cn);
    for y in 0..height {
        let (top, bottom) = (src.row(2 * y), src.row((2 * y + 1).min(src.height - 1)));
        let out = dst.row_mut(y);
        for (i, o) in out.iter_mut().enumerate() {
            let (x, c) = (i / cn, i % cn);
            let (l, r) = ((2 * x) * cn + c, ((2 * x + 1).min(src.width - 1)) * cn + c);
            *o = ((top[l] + top[r]) + (bottom[l] + bottom[r])) * 0.25;
        }
    }
    dst
}

/// One entry of OpenCV's `DecimateAlpha` table: source index `src` contributes `alpha` to `dst`.
struct AreaTap {
    dst: usize,
    src: usize,
    alpha: f32,
}

/// OpenCV's `computeResizeAreaTab`: partial cells at both ends, whole cells in between.
fn area_taps(src_len: usize, dst_len: usize, scale: f64) -> Vec<AreaTap> {
    let mut taps = Vec::with_capacity(src_len * 2);
    for d in 0..dst_len {
        let fs1 = d as f64 * scale;
        let fs2 = fs1 + scale;
        let cell = scale.min(src_len as f64 - fs1);
        let s2 = (fs2.floor() as i64).min(src_len as i64 - 1);
        let s1 = (fs1.ceil() as i64).min(s2);
        if s1 as f64 - fs1 > 1e-3 && s1 >= 1 {
            let alpha = ((s1 as f64 - fs1) / cell) as f32;
            taps.push(AreaTap { dst: d, src: s1 as usize - 1, alpha });
        }
        for s in s1.max(0)..s2 {
            taps.push(AreaTap { dst: d, src: s as usize, alpha: (1.0 / cell) as f32 });
        }
        if fs2 - s2 as f64 > 1e-3 && s2 >= 0 {
            let alpha = ((fs2 - s2 as f64).min(1.0).min(cell) / cell) as f32;
            taps.push(AreaTap { dst: d, src: s2 as usize, alpha });
        }
    }
    taps
}

/// OpenCV's `ResizeArea_Invoker<uchar, float>`: rows are accumulated in float, in table order, and
/// each finished output row is rounded to 8 bits.
fn area_general_u8(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    let cn = src.channels;
    let x_taps = area_taps(src.width, width, inverse_scale(src.width, width));
    let y_taps = area_taps(src.height, height, inverse_scale(src.height, height));
    let mut dst = Raster::new(width, height, cn);
    let samples = width * cn;
    let mut buf = vec![0f32; samples];
    let mut sum = vec![0f32; samples];
    let mut current = y_taps.first().map_or(0, |t| t.dst);
    for tap in &y_taps {
        area_row(src.row(tap.src), &x_taps, cn, &mut buf);
        if tap.dst != current {
            store_saturated(&sum, dst.row_mut(current));
            sum.iter_mut().zip(&buf).for_each(|(s, &b)| *s = tap.alpha * b);
            current = tap.dst;
        } else {
            sum.iter_mut().zip(&buf).for_each(|(s, &b)| *s += tap.alpha * b);
        }
    }
    if height > 0 {
        store_saturated(&sum, dst.row_mut(current));
    }
    dst
}

fn area_row(row: &[u8], x_taps: &[AreaTap], cn: usize, buf: &mut [f32]) {
    buf.fill(0.0);
    for tap in x_taps {
        let (d, s) = (tap.dst * cn, tap.src * cn);
        for c in 0..cn {
            buf[d + c] += row[s + c] as f32 * tap.alpha;
        }
    }
}

fn store_saturated(sum: &[f32], out: &mut [u8]) {
    for (o, &s) in out.iter_mut().zip(sum) {
        *o = s.round_ties_even().clamp(0.0, 255.0) as u8;
    }
}

/// The resizes OpenCV hands to Intel IPP (see the module documentation).
mod ipp {
    use super::{clamp_index, inverse_scale};
    use crate::raster::Raster;

    /// Along one axis: the source position `s` of each output sample and its fraction, both from
    /// `(d + 0.5) · scale − 0.5` in double.
    fn positions(src_len: usize, dst_len: usize) -> impl Iterator<Item = (i64, f64)> {
        let scale = inverse_scale(src_len, dst_len);
        (0..dst_len).map(move |d| {
            let f = (d as f64 + 0.5) * scale - 0.5;
            let s = f.floor();
            (s as i64, f - s)
        })
    }

    /// Two clamped taps (replicated border) and the float fraction towards the second.
    fn linear_taps(src_len: usize, dst_len: usize) -> Vec<(usize, usize, f32)> {
        positions(src_len, dst_len)
            .map(|(s, t)| (clamp_index(s, src_len), clamp_index(s + 1, src_len), t as f32))
            .collect()
    }

    pub(super) fn linear_f32(src: &Raster<f32>, width: usize, height: usize) -> Raster<f32> {
        let cn = src.channels;
        let x_taps: Vec<(usize, usize, f32)> = linear_taps(src.width, width)
            .into_iter()
            .flat_map(|(a, b, t)| (0..cn).map(move |c| (a * cn + c, b * cn + c, t)))
            .collect();
        let y_taps = linear_taps(src.height, height);
        let mut rows = super::RowCache::new(2, width * cn);
        let mut dst = Raster::new(width, height, cn);
        for (y, &(r0, r1, t)) in y_taps.iter().enumerate() {
            rows.load(&[r0, r1], |row, out| lerp::horizontal(src.row(row), &x_taps, out));
            lerp::vertical(rows.row(0), rows.row(1), t, dst.row_mut(y));
        }
        dst
    }

    /// `a + (b − a)·t` rounded once, vectorised with FMA where the CPU has it.
    mod lerp {
        #[inline(always)]
        fn horizontal_body(row: &[f32], taps: &[(usize, usize, f32)], out: &mut [f32]) {
            for (o, &(a, b, t)) in out.iter_mut().zip(taps) {
                *o = (row[b] - row[a]).mul_add(t, row[a]);
            }
        }

        #[inline(always)]
        fn vertical_body(r0: &[f32], r1: &[f32], t: f32, out: &mut [f32]) {
            for ((o, &a), &b) in out.iter_mut().zip(r0).zip(r1) {
                *o = (b - a).mul_add(t, a);
            }
        }

        #[cfg(target_arch = "x86_64")]
        fn fma_available() -> bool {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn horizontal_fma(row: &[f32], taps: &[(usize, usize, f32)], out: &mut [f32]) {
            horizontal_body(row, taps, out)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        fn vertical_fma(r0: &[f32], r1: &[f32], t: f32, out: &mut [f32]) {
            vertical_body(r0, r1, t, out)
        }

        pub(super) fn horizontal(row: &[f32], taps: &[(usize, usize, f32)], out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            if fma_available() {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                unsafe { horizontal_fma(row, taps, out) };
                return;
            }
            horizontal_body(row, taps, out)
        }

        pub(super) fn vertical(r0: &[f32], r1: &[f32], t: f32, out: &mut [f32]) {
            #[cfg(target_arch = "x86_64")]
            if fma_available() {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                unsafe { vertical_fma(r0, r1, t, out) };
                return;
            }
            vertical_body(r0, r1, t, out)
        }
    }

    /// Four clamped taps with Keys (a = −0.75) weights computed in double, rounded to float.
    fn cubic_taps(src_len: usize, dst_len: usize) -> Vec<([usize; 4], [f32; 4])> {
        positions(src_len, dst_len)
            .map(|(s, t)| {
                let index = [-1, 0, 1, 2].map(|k| clamp_index(s + k, src_len));
                (index, cubic_weights(t).map(|w| w as f32))
            })
            .collect()
    }

    fn cubic_weights(x: f64) -> [f64; 4] {
        const A: f64 = -0.75;
        let c0 = ((A * (x + 1.0) - 5.0 * A) * (x + 1.0) + 8.0 * A) * (x + 1.0) - 4.0 * A;
        let c1 = ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
        let c2 = ((A + 2.0) * (1.0 - x) - (A + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0;
        [c0, c1, c2, 1.0 - c0 - c1 - c2]
    }

    fn dot4(v: [f32; 4], w: &[f32; 4]) -> f32 {
        (v[0] * w[0] + v[1] * w[1]) + (v[2] * w[2] + v[3] * w[3])
    }

    pub(super) fn cubic_u8(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
        let cn = src.channels;
        let x_taps = cubic_taps(src.width, width);
        let y_taps = cubic_taps(src.height, height);
        let samples = width * cn;
        let mut rows = super::RowCache::new(4, samples);
        let mut dst = Raster::new(width, height, cn);
        for (y, (index, weights)) in y_taps.iter().enumerate() {
            rows.load(index, |row, out| {
                let row = src.row(row);
                for (i, o) in out.iter_mut().enumerate() {
                    let (taps, w) = &x_taps[i / cn];
                    *o = dot4(taps.map(|x| row[x * cn + i % cn] as f32), w);
                }
            });
            for (i, o) in dst.row_mut(y).iter_mut().enumerate() {
                let v = [0, 1, 2, 3].map(|k| rows.row(k)[i]);
                *o = dot4(v, weights).round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
        dst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{parity_dir, read_bgr};
    use std::path::Path;

    /// FaceFusion's detector canvas: shrink to fit (size truncated to int), paste top-left.
    fn detector_canvas(frame: &Raster<u8>, size: usize) -> Raster<u8> {
        let scale = (size as f64 / frame.height as f64).min(size as f64 / frame.width as f64);
        let resized = if frame.width > size || frame.height > size {
            let width = (frame.width as f64 * scale) as usize;
            let height = (frame.height as f64 * scale) as usize;
            resize_linear(frame, width, height)
        } else {
            frame.clone()
        };
        let mut canvas = Raster::new(size, size, 3);
        for y in 0..resized.height {
            let stride = resized.stride();
            canvas.row_mut(y)[..stride].copy_from_slice(resized.row(y));
        }
        canvas
    }

    /// (max abs difference, differing samples) between two equally sized rasters.
    fn compare(a: &Raster<u8>, b: &Raster<u8>) -> (u8, usize) {
        assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
        a.data.iter().zip(&b.data).fold((0, 0), |(max, n), (&x, &y)| (max.max(x.abs_diff(y)), n + usize::from(x != y)))
    }

    fn check_canvas(input: &Path, golden: &Path) {
        let canvas = detector_canvas(&read_bgr(input), 640);
        let (max, count) = compare(&canvas, &read_bgr(golden));
        eprintln!("{}: max diff {max}, {count} samples differ", golden.display());
        assert_eq!((max, count), (0, 0), "{}", golden.display());
    }

    #[test]
    fn detector_canvases_match_facefusion() {
        let parity = parity_dir();
        let yolo = parity.join("detectors/yolo_face");
        // obama: 910×1136 → 512×640 (general fixed-point path); t1: 1280×886 → 640×443 (exact half,
        // OpenCV's 2×2 area path).
        check_canvas(&parity.join("inputs/obama.png"), &yolo.join("obama_input_bgr.png"));
        check_canvas(&parity.join("inputs/t1.png"), &yolo.join("t1_input_bgr.png"));
        // biden: 970×2204 → 281×640, 843 samples a row: the last 3 go through OpenCV's scalar tail.
        let case01 = parity.join("01_swap_obama_to_biden_hyperswap/dump");
        check_canvas(&parity.join("inputs/biden.png"), &case01.join("image_forward_with_yolo_face_0_input_bgr.png"));
        check_canvas(&parity.join("inputs/obama.png"), &case01.join("source0_forward_with_yolo_face_0_input_bgr.png"));
    }

    #[test]
    fn video_frame_canvas_matches_facefusion() {
        let dump = parity_dir().join("08_video_swap_hamilton_2s/dump");
        check_canvas(&dump.join("f00000_input_frame.png"), &dump.join("f00000_forward_with_yolo_face_0_input_bgr.png"));
    }

    fn gradient(width: usize, height: usize, channels: usize) -> Raster<u8> {
        let data = (0..width * height * channels).map(|i| ((i * 37 + i / 7 * 11) % 256) as u8).collect();
        Raster::from_vec(width, height, channels, data)
    }

    #[test]
    fn equal_size_is_a_copy_and_empty_sizes_do_not_panic() {
        let src = gradient(5, 4, 3);
        assert_eq!(resize_linear(&src, 5, 4), src);
        assert_eq!(resize_area(&src, 5, 4), src);
        assert_eq!(resize_linear(&src, 0, 3).data.len(), 0);
        let empty = Raster::<u8>::new(0, 0, 3);
        assert_eq!(resize_linear(&empty, 2, 2), Raster::new(2, 2, 3));
        assert_eq!(resize_cubic(&empty, 2, 2), Raster::new(2, 2, 3));
        let one = Raster::from_vec(1, 1, 1, vec![200u8]);
        assert_eq!(resize_linear(&one, 3, 2).data, vec![200; 6]);
        assert_eq!(resize_cubic(&one, 3, 2).data, vec![200; 6]);
        assert_eq!(resize_area(&one, 3, 2).data, vec![200; 6]);
        let column = Raster::from_vec(1, 3, 1, vec![0u8, 100, 200]);
        assert_eq!(resize_linear(&column, 2, 3).data, vec![0, 0, 100, 100, 200, 200]);
    }

    #[test]
    fn constant_images_stay_constant() {
        for (w, h) in [(7, 5), (16, 16), (33, 9)] {
            let src = Raster::filled(w, h, 3, 77u8);
            for (dw, dh) in [(3, 2), (20, 11), (64, 40), (w / 2, h / 2)] {
                let (dw, dh) = (dw.max(1), dh.max(1));
                assert!(resize_linear(&src, dw, dh).data.iter().all(|&v| v == 77));
                assert!(resize_area(&src, dw, dh).data.iter().all(|&v| v == 77));
                assert!(resize_cubic(&src, dw, dh).data.iter().all(|&v| v == 77));
            }
            let mask = Raster::filled(w, h, 1, 0.25f32);
            assert!(resize_linear_f32(&mask, 13, 6).data.iter().all(|&v| v == 0.25));
        }
    }

    #[test]
    fn linear_upscale_by_two_interpolates_quarter_steps() {
        // Output x = 1 sits at source 0.25: 0.75·0 + 0.25·100 = 25.
        let src = Raster::from_vec(2, 1, 1, vec![0u8, 100]);
        assert_eq!(resize_linear(&src, 4, 1).data, vec![0, 25, 75, 100]);
        let f = Raster::from_vec(2, 1, 1, vec![0f32, 1.0]);
        assert_eq!(resize_linear_f32(&f, 4, 1).data, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn exact_half_takes_the_rounded_2x2_mean() {
        // OpenCV turns a linear ½ resize into INTER_AREA: (1 + 2 + 3 + 4 + 2) >> 2 = 3.
        let src = Raster::from_vec(2, 2, 1, vec![1u8, 2, 3, 4]);
        assert_eq!(resize_linear(&src, 1, 1).data, vec![3]);
        assert_eq!(resize_area(&src, 1, 1).data, vec![3]);
        let f = Raster::from_vec(2, 2, 1, vec![0.0f32, 1.0, 0.5, 0.5]);
        assert_eq!(resize_linear_f32(&f, 1, 1).data, vec![0.5]);
    }

    #[test]
    fn area_averages_blocks_and_fractions() {
        // Integer factor 3: mean of nine values rounded half to even via float.
        let src = Raster::from_vec(3, 3, 1, vec![0u8, 0, 0, 0, 0, 0, 0, 0, 9]);
        assert_eq!(resize_area(&src, 1, 1).data, vec![1]);
        // 3 → 2: each output covers 1.5 pixels: [10, 20·0.5] / 1.5 and [20·0.5, 40] / 1.5.
        let src = Raster::from_vec(3, 1, 1, vec![10u8, 20, 40]);
        assert_eq!(resize_area(&src, 2, 1).data, vec![13, 33]);
    }

    #[test]
    fn cubic_halving_samples_ramp_midpoints() {
        // Shrinking by two puts every sample at a half position, where a = −0.75 is symmetric and
        // therefore exact on a ramp: output x reads source 2x + 0.5.
        let src = Raster::from_vec(16, 1, 1, (0..16).map(|v| v * 10).collect());
        let out = resize_cubic(&src, 8, 1);
        for x in 1..7 {
            assert_eq!(out.data[x], (20 * x + 5) as u8, "x={x}");
        }
    }
}
