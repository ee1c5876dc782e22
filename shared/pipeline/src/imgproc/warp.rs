//! `cv2.warpAffine` with bilinear interpolation, reproducing the pixels of opencv-python 4.13.
//!
//! The numerics are those of OpenCV's `WarpAffineInvoker` + `remapBilinear` (imgwarp.cpp):
//!
//! * the source → destination matrix is inverted in `f64` (unless the caller already holds the
//!   destination → source map);
//! * each destination pixel's source position is computed in fixed point: per column
//!   `round(M0·x·1024)`, per row `round((M1·y + M2)·1024) + 16`, summed and shifted right by 5,
//!   giving the position in 1/32 pixel (`AB_BITS = 10`, `INTER_BITS = 5`);
//! * the four neighbours are weighted from the 32×32 bilinear table: for `u8` with integer weights
//!   summing to 2¹⁵ and rounding `(Σ + 2¹⁴) >> 15`; for `f32` and `f64` with the `f32` table
//!   weights, accumulated in the sample type.
//!
//! OpenCV 4.11+ sources also contain float-coordinate kernels (`warpAffineLinearInvoker_*`) for
//! 8U/32F, but FaceFusion's goldens (opencv-python 4.13.0.92) match this fixed-point path bit for
//! bit on every dumped crop and differ from the float kernels on 10–20 % of pixels, so this is the
//! only path here. `INTER_AREA` is executed as bilinear by `warpAffine`, so both flags map here.
//!
//! Large warps are split into row bands over the available cores, as OpenCV's `parallel_for_`
//! does; the result does not depend on the split.

use crate::affine::Affine;
use crate::raster::Raster;

/// How samples outside the source image are produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Border {
    /// `BORDER_REPLICATE`: each out-of-range neighbour is clamped to the nearest edge pixel.
    Replicate,
    /// `BORDER_CONSTANT`: each out-of-range neighbour takes this value in every channel, so a pixel
    /// straddling the edge blends image and constant.
    Constant(u8),
}

/// The sample depth of an image, which decides OpenCV's interpolation arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Depth {
    U8,
    F32,
    F64,
}

/// A pixel component type the warp supports: `u8`, `f32` or `f64`.
pub trait Sample: Copy + Default + PartialEq + Send + Sync + std::fmt::Debug + 'static + sealed::Sealed {
    const DEPTH: Depth;
    /// OpenCV's bilinear weight type for this depth: 15-bit fixed point for `u8`, else float.
    type Weight: Copy + Send + Sync + std::fmt::Debug + 'static;
    fn to_f32(self) -> f32;
    fn to_f64(self) -> f64;
    /// `saturate_cast` of a border value.
    fn from_border(value: u8) -> Self;
    /// The weights (top-left, top-right, bottom-left, bottom-right) for table index
    /// `fy · 32 + fx`, the fraction in 1/32 pixel.
    fn weights(index: usize) -> [Self::Weight; 4];
    /// The blend of the four neighbours in OpenCV's order of operations.
    fn blend(p: [Self; 4], w: [Self::Weight; 4]) -> Self;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

const INTER_BITS: u32 = 5;
const INTER_TAB_SIZE: i32 = 1 << INTER_BITS;
const TABLE_LEN: usize = (INTER_TAB_SIZE * INTER_TAB_SIZE) as usize;
const AB_BITS: u32 = 10;
const AB_SCALE: f64 = (1 << AB_BITS) as f64;
const INTER_REMAP_COEF_BITS: u32 = 15;

/// The bilinear table, scaled by 1024 so it is exact: entry `fy · 32 + fx` is
/// ((32−fy)(32−fx), (32−fy)·fx, fy·(32−fx), fy·fx). OpenCV's float table holds these values / 1024
/// (products of multiples of 1/32, so exact in `f32`) and its 15-bit table these values · 32, which
/// already sum to 2¹⁵, so OpenCV's rounding correction never applies.
const fn scaled_table() -> [[u32; 4]; TABLE_LEN] {
    let mut table = [[0; 4]; TABLE_LEN];
    let size = INTER_TAB_SIZE as u32;
    let mut i = 0;
    while i < TABLE_LEN {
        let (fx, fy) = (i as u32 % size, i as u32 / size);
        let (gx, gy) = (size - fx, size - fy);
        table[i] = [gy * gx, gy * fx, fy * gx, fy * fx];
        i += 1;
    }
    table
}

static FIXED_TABLE: [[u32; 4]; TABLE_LEN] = {
    let mut table = scaled_table();
    let scale = (1 << INTER_REMAP_COEF_BITS) / TABLE_LEN as u32;
    let mut i = 0;
    while i < TABLE_LEN {
        let w = table[i];
        table[i] = [w[0] * scale, w[1] * scale, w[2] * scale, w[3] * scale];
        i += 1;
    }
    table
};

static FLOAT_TABLE: [[f32; 4]; TABLE_LEN] = {
    let scaled = scaled_table();
    let mut table = [[0.0; 4]; TABLE_LEN];
    let mut i = 0;
    while i < TABLE_LEN {
        let w = scaled[i];
        let d = TABLE_LEN as f32;
        table[i] = [w[0] as f32 / d, w[1] as f32 / d, w[2] as f32 / d, w[3] as f32 / d];
        i += 1;
    }
    table
};

impl Sample for u8 {
    const DEPTH: Depth = Depth::U8;
    type Weight = u32;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_border(value: u8) -> Self {
        value
    }
    #[inline(always)]
    fn weights(index: usize) -> [u32; 4] {
        FIXED_TABLE[index]
    }
    #[inline(always)]
    fn blend(p: [Self; 4], w: [u32; 4]) -> Self {
        let sum = (p[0] as u32 * w[0] + p[1] as u32 * w[1]) + (p[2] as u32 * w[2] + p[3] as u32 * w[3]);
        // The weights sum to 2¹⁵, so the result never exceeds 255.
        ((sum + (1 << (INTER_REMAP_COEF_BITS - 1))) >> INTER_REMAP_COEF_BITS) as u8
    }
}

impl Sample for f32 {
    const DEPTH: Depth = Depth::F32;
    type Weight = f32;
    fn to_f32(self) -> f32 {
        self
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_border(value: u8) -> Self {
        value as f32
    }
    #[inline(always)]
    fn weights(index: usize) -> [f32; 4] {
        FLOAT_TABLE[index]
    }
    #[inline(always)]
    fn blend(p: [Self; 4], w: [f32; 4]) -> Self {
        p[0] * w[0] + p[1] * w[1] + p[2] * w[2] + p[3] * w[3]
    }
}

impl Sample for f64 {
    const DEPTH: Depth = Depth::F64;
    type Weight = f64;
    fn to_f32(self) -> f32 {
        self as f32
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_border(value: u8) -> Self {
        value as f64
    }
    #[inline(always)]
    fn weights(index: usize) -> [f64; 4] {
        // OpenCV keeps the float table for doubles; the products and sum are in double.
        FLOAT_TABLE[index].map(|w| w as f64)
    }
    #[inline(always)]
    fn blend(p: [Self; 4], w: [f64; 4]) -> Self {
        p[0] * w[0] + p[1] * w[1] + p[2] * w[2] + p[3] * w[3]
    }
}

/// Warps `src` into a new `width`×`height` image, like `cv2.warpAffine(src, matrix, (width, height),
/// flags=INTER_LINEAR, borderMode=…)`: `matrix` maps source to destination.
pub fn warp_affine<T: Sample>(
    src: &Raster<T>,
    matrix: &Affine,
    width: usize,
    height: usize,
    border: Border,
) -> Raster<T> {
    let mut dst = Raster::new(width, height, src.channels);
    warp_affine_into(src, matrix, &mut dst, border);
    dst
}

/// As [`warp_affine`], writing every pixel of `dst` (its size is the output size).
///
/// # Panics
/// If `dst` has a different channel count than `src`.
pub fn warp_affine_into<T: Sample>(src: &Raster<T>, matrix: &Affine, dst: &mut Raster<T>, border: Border) {
    assert_eq!(src.channels, dst.channels, "warp_affine: channel count mismatch");
    let sampler = AffineSampler::new(src, matrix, dst.width, border);
    let row_len = dst.stride();
    for_each_row_band(&mut dst.data, row_len, dst.width, |first_row, band| {
        for (i, row) in band.chunks_exact_mut(row_len).enumerate() {
            sampler.sample_row(first_row + i, row);
        }
    });
}

/// Below this many output pixels a warp runs on the calling thread; above it, rows are split
/// into bands over the available cores, as OpenCV's `parallel_for_` does for `warpAffine`.
const PARALLEL_MIN_PIXELS: usize = 1 << 16;
const MAX_THREADS: usize = 8;

/// Calls `work(first_row, band)` on consecutive bands of whole rows of `data` (rows of
/// `row_len` samples, `width` pixels), in parallel when the image is large enough to pay for it.
pub(crate) fn for_each_row_band<S: Send>(
    data: &mut [S],
    row_len: usize,
    width: usize,
    work: impl Fn(usize, &mut [S]) + Sync,
) {
    let rows = data.len().checked_div(row_len).unwrap_or(0);
    let threads = if rows * width < PARALLEL_MIN_PIXELS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS).min(rows)
    };
    if threads <= 1 {
        work(0, data);
        return;
    }
    let band_rows = rows.div_ceil(threads);
    std::thread::scope(|scope| {
        let mut bands = data.chunks_mut(band_rows * row_len).enumerate();
        // The calling thread takes the first band rather than idling.
        let first = bands.next();
        for (i, band) in bands {
            let work = &work;
            scope.spawn(move || work(i * band_rows, band));
        }
        if let Some((_, band)) = first {
            work(0, band);
        }
    });
}

/// The destination → source positions of an affine warp, in OpenCV's fixed point: computed once
/// per warp and shareable between images warped by the same matrix (a crop and its mask).
#[derive(Clone, Debug)]
pub struct AffineMap {
    /// Destination → source matrix `[M0, M1, M2, M3, M4, M5]`.
    inverse: [f64; 6],
    /// OpenCV's per-column offsets `round(M0·x·1024)` and `round(M3·x·1024)`.
    column_dx: Vec<i32>,
    column_dy: Vec<i32>,
}

impl AffineMap {
    /// For `matrix` mapping source to destination, inverted as `warpAffine` inverts it, over
    /// destination rows `width` pixels wide.
    pub fn new(matrix: &Affine, width: usize) -> Self {
        Self::from_inverse(opencv_invert(matrix), width)
    }

    /// For a matrix that already maps destination to source (`WARP_INVERSE_MAP`).
    pub fn from_inverse(inverse: [f64; 6], width: usize) -> Self {
        let column_dx = (0..width).map(|x| round_to_i32(inverse[0] * x as f64 * AB_SCALE)).collect();
        let column_dy = (0..width).map(|x| round_to_i32(inverse[3] * x as f64 * AB_SCALE)).collect();
        Self { inverse, column_dx, column_dy }
    }

    pub fn width(&self) -> usize {
        self.column_dx.len()
    }

    /// The source positions of destination row `y`, left to right.
    pub fn row(&self, y: usize) -> impl Iterator<Item = SourcePos> + '_ {
        let round_delta = (AB_SCALE as i32) / INTER_TAB_SIZE / 2;
        let m = &self.inverse;
        let x0 = round_to_i32((m[1] * y as f64 + m[2]) * AB_SCALE).wrapping_add(round_delta);
        let y0 = round_to_i32((m[4] * y as f64 + m[5]) * AB_SCALE).wrapping_add(round_delta);
        let columns = self.column_dx.iter().zip(&self.column_dy);
        columns.map(move |(&dx, &dy)| SourcePos::new(x0.wrapping_add(dx), y0.wrapping_add(dy)))
    }
}

/// A source position as OpenCV's remap sees it: integer pixel and a fraction in 1/32 pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePos {
    x: i32,
    y: i32,
    fx: u32,
    fy: u32,
}

impl SourcePos {
    /// From positions in 1/1024 pixel (`AB_BITS`), as `warpAffineBlockline` derives them.
    #[inline(always)]
    fn new(ab_x: i32, ab_y: i32) -> Self {
        let (x, y) = (ab_x >> (AB_BITS - INTER_BITS), ab_y >> (AB_BITS - INTER_BITS));
        let mask = INTER_TAB_SIZE - 1;
        Self { x: x >> INTER_BITS, y: y >> INTER_BITS, fx: (x & mask) as u32, fy: (y & mask) as u32 }
    }

    /// OpenCV stores the integer position as shorts (`saturate_cast<short>`).
    fn clamped_to_short(self) -> Self {
        let short = |v: i32| v.clamp(i16::MIN as i32, i16::MAX as i32);
        Self { x: short(self.x), y: short(self.y), ..self }
    }

    #[inline(always)]
    fn table_index(self) -> usize {
        (self.fy * INTER_TAB_SIZE as u32 + self.fx) as usize
    }
}

/// An image read by bilinear interpolation with a given border, with the per-image constants of
/// the sampling loop hoisted out of it.
#[derive(Clone, Copy, Debug)]
pub struct BilinearSource<'a, T: Sample> {
    src: &'a Raster<T>,
    border: Border,
    stride: usize,
    /// Positions with `x < last_x` and `y < last_y` have all four neighbours inside. OpenCV stores
    /// positions as shorts; below these limits that clamp is a no-op.
    last_x: u32,
    last_y: u32,
}

impl<'a, T: Sample> BilinearSource<'a, T> {
    pub fn new(src: &'a Raster<T>, border: Border) -> Self {
        let limit = |len: usize| len.saturating_sub(1).min(i16::MAX as usize) as u32;
        Self { src, border, stride: src.stride(), last_x: limit(src.width), last_y: limit(src.height) }
    }

    /// Writes the sample at `pos` into `px` (one value per channel).
    ///
    /// `cn` must equal the image's channel count; it is a parameter so that callers passing a
    /// constant get the per-channel loop unrolled.
    #[inline(always)]
    pub fn sample(&self, pos: SourcePos, cn: usize, px: &mut [T]) {
        if (pos.x as u32) < self.last_x && (pos.y as u32) < self.last_y {
            let w = T::weights(pos.table_index());
            let top = pos.y as usize * self.stride + pos.x as usize * cn;
            let block = &self.src.data[top..top + self.stride + 2 * cn];
            let (upper, lower) = (&block[..2 * cn], &block[self.stride..]);
            for (c, out) in px[..cn].iter_mut().enumerate() {
                *out = T::blend([upper[c], upper[cn + c], lower[c], lower[cn + c]], w);
            }
        } else {
            sample_border(self.src, pos.clamped_to_short(), self.border, px);
        }
    }
}

/// A pixel with some neighbour outside the image: replicated neighbours are clamped to the edge;
/// constant ones take the border value, and a pixel with no neighbour inside is the border value
/// outright (as OpenCV writes it, without interpolating).
#[cold]
fn sample_border<T: Sample>(src: &Raster<T>, pos: SourcePos, border: Border, px: &mut [T]) {
    if src.width == 0 || src.height == 0 {
        // OpenCV rejects an empty source; an empty image has nothing but border.
        px.fill(border_value(border));
        return;
    }
    let (w, h) = (src.width as i64, src.height as i64);
    let (x, y) = (pos.x as i64, pos.y as i64);
    let offset = |x: i64, y: i64| Some(y as usize * src.stride() + x as usize * src.channels);
    let corners = match border {
        Border::Replicate => {
            let (x0, x1) = (x.clamp(0, w - 1), (x + 1).clamp(0, w - 1));
            let (y0, y1) = (y.clamp(0, h - 1), (y + 1).clamp(0, h - 1));
            [offset(x0, y0), offset(x1, y0), offset(x0, y1), offset(x1, y1)]
        }
        Border::Constant(value) => {
            if x < -1 || x >= w || y < -1 || y >= h {
                px.fill(T::from_border(value));
                return;
            }
            let at = |x: i64, y: i64| if (0..w).contains(&x) && (0..h).contains(&y) { offset(x, y) } else { None };
            [at(x, y), at(x + 1, y), at(x, y + 1), at(x + 1, y + 1)]
        }
    };
    let fill = border_value(border);
    let weights = T::weights(pos.table_index());
    for (c, out) in px.iter_mut().enumerate() {
        let p = corners.map(|corner| corner.map_or(fill, |o| src.data[o + c]));
        *out = T::blend(p, weights);
    }
}

fn border_value<T: Sample>(border: Border) -> T {
    match border {
        Border::Constant(value) => T::from_border(value),
        Border::Replicate => T::default(),
    }
}

/// Produces destination rows of an affine warp of one image on demand, so a caller can consume
/// the warp row by row without materialising it.
#[derive(Clone, Debug)]
pub struct AffineSampler<'a, T: Sample> {
    src: &'a Raster<T>,
    map: AffineMap,
    border: Border,
}

impl<'a, T: Sample> AffineSampler<'a, T> {
    /// `matrix` maps source to destination (inverted as `warpAffine` inverts it); rows are
    /// `width` pixels wide.
    pub fn new(src: &'a Raster<T>, matrix: &Affine, width: usize, border: Border) -> Self {
        Self { src, map: AffineMap::new(matrix, width), border }
    }

    /// Fills `out` (at least `width × channels` samples) with destination row `y`.
    pub fn sample_row(&self, y: usize, out: &mut [T]) {
        match self.src.channels {
            1 => self.row_with(y, 1, out),
            3 => self.row_with(y, 3, out),
            4 => self.row_with(y, 4, out),
            cn => self.row_with(y, cn, out),
        }
    }

    #[inline(always)]
    fn row_with(&self, y: usize, cn: usize, out: &mut [T]) {
        let source = BilinearSource::new(self.src, self.border);
        let out = &mut out[..self.map.width() * cn];
        for (px, pos) in out.chunks_exact_mut(cn).zip(self.map.row(y)) {
            source.sample(pos, cn, px);
        }
    }
}

/// OpenCV's `saturate_cast<int>(double)` as the x86 conversion does it: round half to even, with
/// out-of-range values (and NaN) becoming `i32::MIN`.
fn round_to_i32(v: f64) -> i32 {
    let r = v.round_ties_even();
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32
    } else {
        i32::MIN
    }
}

/// The inversion `warpAffine` and `invertAffineTransform` apply, with OpenCV's operation order,
/// as `[M0, M1, M2, M3, M4, M5]`. A singular matrix inverts to zeros, as in OpenCV.
pub(crate) fn opencv_invert(m: &Affine) -> [f64; 6] {
    let [[m0, m1, m2], [m3, m4, m5]] = *m;
    let d = m0 * m4 - m1 * m3;
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let (a11, a22) = (m4 * d, m0 * d);
    let (a12, a21) = (m1 * -d, m3 * -d);
    let b1 = -a11 * m2 - a12 * m5;
    let b2 = -a21 * m2 - a22 * m5;
    [a11, a12, b1, a21, a22, b2]
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: Affine = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];

    fn gradient(width: usize, height: usize, channels: usize) -> Raster<u8> {
        let data = (0..width * height * channels).map(|i| ((i * 37) % 251) as u8).collect();
        Raster::from_vec(width, height, channels, data)
    }

    #[test]
    fn identity_copies_every_depth() {
        let src = gradient(37, 19, 3);
        assert_eq!(warp_affine(&src, &IDENTITY, 37, 19, Border::Replicate), src);
        let float = Raster::from_vec(37, 19, 3, src.data.iter().map(|&v| v as f32 * 0.5).collect());
        assert_eq!(warp_affine(&float, &IDENTITY, 37, 19, Border::Constant(0)), float);
        let double = Raster::from_vec(37, 19, 1, src.data[..37 * 19].iter().map(|&v| v as f64 * 0.25).collect());
        assert_eq!(warp_affine(&double, &IDENTITY, 37, 19, Border::Replicate), double);
        let two = gradient(5, 4, 2);
        assert_eq!(warp_affine(&two, &IDENTITY, 5, 4, Border::Replicate), two);
    }

    #[test]
    fn half_pixel_shift_rounds_half_up_in_fixed_point() {
        // (1 + 2)/2 = 1.5 → 2 and (2 + 3)/2 = 2.5 → 3: the 15-bit rounding adds half and shifts.
        let src = Raster::from_vec(3, 1, 1, vec![1u8, 2, 3]);
        let shift = [[1.0, 0.0, -0.5], [0.0, 1.0, 0.0]];
        let out = warp_affine(&src, &shift, 2, 1, Border::Replicate);
        assert_eq!(out.data, vec![2, 3]);
    }

    #[test]
    fn positions_are_quantised_to_a_32nd_of_a_pixel() {
        // A 0.3 px shift lands on fraction round(0.3·32)/32 = 10/32 (the +16/1024 half step
        // rounds the 1/1024 position to the nearest 1/32).
        let shift = [[1.0, 0.0, -0.3], [0.0, 1.0, 0.0]];
        let double = Raster::from_vec(2, 1, 1, vec![0.0f64, 32.0]);
        assert_eq!(warp_affine(&double, &shift, 1, 1, Border::Replicate).data, vec![10.0]);
        let float = Raster::from_vec(2, 1, 1, vec![0.0f32, 32.0]);
        assert_eq!(warp_affine(&float, &shift, 1, 1, Border::Replicate).data, vec![10.0]);
        let bytes = Raster::from_vec(2, 1, 1, vec![0u8, 32]);
        assert_eq!(warp_affine(&bytes, &shift, 1, 1, Border::Replicate).data, vec![10]);
    }

    #[test]
    fn u8_blend_uses_15_bit_weights() {
        // A quarter-pixel shift in x and y: weights (24·24, 24·8, 8·24, 8·8)·32 over 2¹⁵.
        for channels in [1, 2, 3, 4] {
            let src = gradient(40, 9, channels);
            let shift = [[1.0, 0.0, -0.25], [0.0, 1.0, -0.25]];
            let out = warp_affine(&src, &shift, 38, 7, Border::Replicate);
            for y in 0..7 {
                for x in 0..38 {
                    for c in 0..channels {
                        let p = |dx: usize, dy: usize| src.pixel(x + dx, y + dy)[c] as u32;
                        let sum = (p(0, 0) * 576 + p(1, 0) * 192 + p(0, 1) * 192 + p(1, 1) * 64) * 32;
                        assert_eq!(out.pixel(x, y)[c] as u32, (sum + (1 << 14)) >> 15, "({x},{y},{c})");
                    }
                }
            }
        }
    }

    #[test]
    fn constant_border_blends_partially_outside_pixels() {
        let shift = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.0]];
        // x=0 samples −0.5 (half outside), x=5 samples 4.5 (fully outside).
        let src = Raster::filled(4, 4, 1, 200u8);
        assert_eq!(warp_affine(&src, &shift, 6, 1, Border::Constant(0)).data, vec![100, 200, 200, 200, 100, 0]);
        assert_eq!(warp_affine(&src, &shift, 6, 1, Border::Constant(10)).data, vec![105, 200, 200, 200, 105, 10]);
        assert_eq!(warp_affine(&src, &shift, 6, 1, Border::Replicate).data, vec![200; 6]);
        let float = Raster::filled(4, 4, 3, 200.0f32);
        let out = warp_affine(&float, &shift, 6, 1, Border::Constant(0));
        assert_eq!(out.data.chunks(3).map(|p| p[0]).collect::<Vec<_>>(), vec![100.0, 200.0, 200.0, 200.0, 100.0, 0.0]);
    }

    #[test]
    fn far_outside_replicates_the_nearest_edge() {
        let src = gradient(6, 5, 3);
        let far = [[1.0, 0.0, 1000.0], [0.0, 1.0, -1000.0]];
        let out = warp_affine(&src, &far, 2, 2, Border::Replicate);
        // Source x ≈ −1000 → column 0; source y ≈ +1000 → row 4.
        assert_eq!(out.pixel(0, 0), src.pixel(0, 4));
        assert_eq!(out.pixel(1, 1), src.pixel(0, 4));
    }

    #[test]
    fn inverse_round_trips_and_singular_gives_zeros() {
        let m = [[0.3, 0.05, -131.0], [-0.05, 0.3, -18.9]];
        let inv = opencv_invert(&m);
        let back = opencv_invert(&[[inv[0], inv[1], inv[2]], [inv[3], inv[4], inv[5]]]);
        let flat = [m[0][0], m[0][1], m[0][2], m[1][0], m[1][1], m[1][2]];
        for (a, b) in back.iter().zip(flat) {
            assert!((a - b).abs() < 1e-9);
        }
        assert_eq!(opencv_invert(&[[0.0; 3]; 2]), [0.0; 6]);
    }

    #[test]
    fn empty_source_gives_border() {
        let src: Raster<u8> = Raster::new(0, 0, 3);
        let out = warp_affine(&src, &IDENTITY, 2, 2, Border::Constant(7));
        assert_eq!(out.data, vec![7; 12]);
    }
}
