//! 8-bit CIE L*a*b* conversions and CLAHE with OpenCV 4.13's integer arithmetic, for FaceFusion's
//! 2dfan4 pre-processing: its crop always makes an 8-bit Lab round trip, which is lossy, so the
//! network input depends on OpenCV's exact tables.
//!
//! OpenCV's 8-bit `RGB2Lab` looks the sRGB gamma up in a 256-entry table (scaled by 2040), applies a
//! 12-bit fixed-point XYZ matrix pre-divided by the D65 white point, and looks the cube root up in a
//! 15-bit table. `Lab2RGB` is fully integer too: L maps to y and f(y) through a table, a and b are
//! divided by 500 and 200 with multiply-shift approximations, f⁻¹ is another table, a 14-bit matrix
//! gives linear RGB on a 12-bit scale, and the inverse gamma is a 4096-entry table. The tables are
//! built the way OpenCV builds them, in IEEE single and double precision.

use std::sync::OnceLock;

use crate::imgproc::blur::reflect_101;
use crate::raster::{Frame, Raster};

/// FaceFusion's `conditional_optimize_contrast` (2dfan4 landmarker): convert the crop with
/// `COLOR_RGB2Lab` although it is BGR, equalise L with CLAHE (clip limit 2, 8×8 tiles) when its
/// mean is below 30, and convert back with `COLOR_Lab2RGB`. The round trip always happens.
///
/// Rasters with fewer than three channels are returned unchanged; extra channels are dropped.
pub fn conditional_optimize_contrast(crop: &Frame) -> Frame {
    if crop.channels < 3 {
        return crop.clone();
    }
    let mut lab = rgb_to_lab_u8(crop);
    let lightness = extract_channel(&lab, 0);
    // numpy's mean < 30, compared exactly on the integer sum.
    let sum: u64 = lightness.data.iter().map(|&v| v as u64).sum();
    if !lightness.data.is_empty() && sum < 30 * lightness.data.len() as u64 {
        let equalised = clahe_u8(&lightness, 2.0, 8, 8);
        for (px, &l) in lab.data.chunks_exact_mut(3).zip(&equalised.data) {
            px[0] = l;
        }
    }
    lab_to_rgb_u8(&lab)
}

/// `cv2.cvtColor(src, cv2.COLOR_RGB2Lab)` on 8-bit data: channel 0 is taken as R. Output is L·255/100
/// and a, b offset by 128, as OpenCV stores them. Uses the first three channels; rasters with fewer
/// are returned unchanged.
pub fn rgb_to_lab_u8(src: &Raster<u8>) -> Raster<u8> {
    if src.channels < 3 {
        return src.clone();
    }
    let tables = lab_tables();
    let mut out = Raster::new(src.width, src.height, 3);
    for (px, lab) in src.data.chunks_exact(src.channels).zip(out.data.chunks_exact_mut(3)) {
        lab.copy_from_slice(&tables.forward.convert([px[0], px[1], px[2]]));
    }
    out
}

/// `cv2.cvtColor(src, cv2.COLOR_Lab2RGB)` on 8-bit data: output channel 0 is R. Uses the first
/// three channels; rasters with fewer are returned unchanged.
pub fn lab_to_rgb_u8(src: &Raster<u8>) -> Raster<u8> {
    if src.channels < 3 {
        return src.clone();
    }
    let tables = lab_tables();
    let mut out = Raster::new(src.width, src.height, 3);
    for (lab, px) in src.data.chunks_exact(src.channels).zip(out.data.chunks_exact_mut(3)) {
        px.copy_from_slice(&tables.inverse.convert([lab[0], lab[1], lab[2]]));
    }
    out
}

/// `cv2.cvtColor(src, cv2.COLOR_BGR2GRAY)` on 8-bit BGR: OpenCV's 14-bit fixed-point luma.
pub fn bgr_to_gray_u8(src: &Raster<u8>) -> Raster<u8> {
    const B: i32 = 1868;
    const G: i32 = 9617;
    const R: i32 = 4899;
    let data = src
        .data
        .chunks_exact(src.channels)
        .map(|px| descale(px[0] as i32 * B + px[1] as i32 * G + px[2] as i32 * R, 14) as u8)
        .collect();
    Raster::from_vec(src.width, src.height, 1, data)
}

/// OpenCV's float `RGB2Lab` (sRGB, D65) of one pixel in 0..1: L in 0..100. The gamma curve is
/// evaluated directly where OpenCV interpolates a 1024-entry spline, a difference far below one
/// 8-bit level.
pub fn rgb_to_lab_f32(rgb: [f32; 3]) -> [f32; 3] {
    let linear = rgb.map(|v| apply_gamma(v.clamp(0.0, 1.0)));
    let row = |r: usize| {
        let m = RGB_TO_XYZ[r * 3..r * 3 + 3].iter().map(|&bits| (f64::from_bits(bits) / D65[r]) as f32);
        m.zip(linear).fold(0.0f32, |sum, (c, v)| sum + c * v)
    };
    let (x, y, z) = (row(0), row(1), row(2));
    let f = |t: f32| if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 };
    let (fx, fy, fz) = (f(x), f(y), f(z));
    let l = if y > 0.008856 { 116.0 * fy - 16.0 } else { 903.3 * y };
    [l, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// OpenCV's float `Lab2RGB` (sRGB, D65) of one pixel: RGB clipped to 0..1.
pub fn lab_to_rgb_f32([l, a, b]: [f32; 3]) -> [f32; 3] {
    let l_threshold = 0.008856f32 * 903.3;
    let f_threshold = 7.787f32 * 0.008856 + 16.0 / 116.0;
    let (y, fy) = if l <= l_threshold {
        let y = l / 903.3;
        (y, 7.787 * y + 16.0 / 116.0)
    } else {
        let fy = (l + 16.0) / 116.0;
        (fy * fy * fy, fy)
    };
    let inverse = |f: f32| if f <= f_threshold { (f - 16.0 / 116.0) / 7.787 } else { f * f * f };
    let xyz = [inverse(a / 500.0 + fy), y, inverse(fy - b / 200.0)];
    let row =
        |r: usize| (0..3).fold(0.0f32, |sum, c| sum + (f64::from_bits(XYZ_TO_RGB[r * 3 + c]) * D65[c]) as f32 * xyz[c]);
    [row(0), row(1), row(2)].map(|v| apply_inv_gamma(v.clamp(0.0, 1.0)))
}

fn extract_channel(src: &Raster<u8>, channel: usize) -> Raster<u8> {
    let data = src.data.chunks_exact(src.channels).map(|px| px[channel]).collect();
    Raster::from_vec(src.width, src.height, 1, data)
}

/// OpenCV's `CV_DESCALE`: shift right by `n` bits, rounding half up.
fn descale(x: i32, n: u32) -> i32 {
    (x + (1 << (n - 1))) >> n
}

/// `cvRound` of a float or double: nearest, ties to even.
fn round_i32(x: f64) -> i32 {
    x.round_ties_even() as i32
}

// OpenCV's constants, given there as raw IEEE doubles.
/// D65 white point (0.950456, 1, 1.088754).
const D65: [f64; 3] = [f64::from_bits(0x3fee6a22b3892ee8), 1.0, f64::from_bits(0x3ff16b8950763a19)];
/// sRGB → XYZ, rows X, Y, Z; columns R, G, B.
const RGB_TO_XYZ: [u64; 9] = [
    0x3fda65a14488c60d,
    0x3fd6e297396d0918,
    0x3fc71819d2391d58,
    0x3fcb38cda6e75ff6,
    0x3fe6e297396d0918,
    0x3fb279aae6c8f755,
    0x3f93cc4ac6cdaf4b,
    0x3fbe836eb4e98138,
    0x3fee68427418d691,
];
/// XYZ → sRGB, rows R, G, B; columns X, Y, Z.
const XYZ_TO_RGB: [u64; 9] = [
    0x4009ec804102ff8f,
    0xbff8982a9930be0e,
    0xbfdfe7ff583a53b9,
    0xbfef042528ae74f3,
    0x3ffe040f23897204,
    0x3fa546d3f9e7b80b,
    0x3fac7de5082cf52c,
    0xbfca1e14bdfd2631,
    0x3ff0eabef06b3786,
];

/// Fixed-point scales: XYZ coefficients (12 bits), the gamma table (×8 over 255), f(t) (15 bits),
/// Lab2RGB's base (14 bits) and its linear-RGB index (12 bits).
const LAB_SHIFT: u32 = 12;
const GAMMA_SHIFT: u32 = 3;
const LAB_SHIFT2: u32 = LAB_SHIFT + GAMMA_SHIFT;
const CBRT_TABLE_SIZE: usize = 256 * 3 / 2 * (1 << GAMMA_SHIFT);
const BASE_SHIFT: u32 = 14;
const BASE: i32 = 1 << BASE_SHIFT;
const INV_GAMMA_SHIFT: u32 = 12;
const INV_GAMMA_TABLE_SIZE: usize = 1 << INV_GAMMA_SHIFT;
/// The smallest `f(y) ± a/500, b/200` value Lab2RGB can index, and the table length from there.
const MIN_AB_VALUE: i32 = -8145;
const AB_TABLE_SIZE: usize = (BASE as usize) * 9 / 4;

struct LabTables {
    forward: ForwardLab,
    inverse: InverseLab,
}

fn lab_tables() -> &'static LabTables {
    static TABLES: OnceLock<LabTables> = OnceLock::new();
    TABLES.get_or_init(|| LabTables { forward: ForwardLab::new(), inverse: InverseLab::new() })
}

// The gamma curve with OpenCV's constants, each an exact ratio of integers evaluated in double.
fn gamma_threshold() -> f64 {
    809.0 / 20000.0
}
fn gamma_inv_threshold() -> f64 {
    7827.0 / 2500000.0
}
fn gamma_low_scale() -> f64 {
    323.0 / 25.0
}
fn gamma_power() -> f64 {
    12.0 / 5.0
}
fn gamma_x_shift() -> f64 {
    11.0 / 200.0
}

/// OpenCV's `applyGamma`: sRGB to linear, evaluated in double and returned as float.
fn apply_gamma(x: f32) -> f32 {
    let x = x as f64;
    let linear = if x <= gamma_threshold() {
        x / gamma_low_scale()
    } else {
        ((x + gamma_x_shift()) / (1.0 + gamma_x_shift())).powf(gamma_power())
    };
    linear as f32
}

/// OpenCV's `applyInvGamma`: linear to sRGB, evaluated in double and returned as float.
fn apply_inv_gamma(x: f32) -> f32 {
    let x = x as f64;
    let encoded = if x <= gamma_inv_threshold() {
        x * gamma_low_scale()
    } else {
        x.powf(1.0 / gamma_power()) * (1.0 + gamma_x_shift()) - gamma_x_shift()
    };
    encoded as f32
}

/// f(t) of the Lab definition in float: the cube root above (6/29)³, the linear toe below, with
/// OpenCV's single-precision constants and fused multiply-add.
fn lab_f(t: f32) -> f32 {
    let threshold = 216.0f32 / 24389.0;
    let slope = 841.0f32 / 108.0;
    let bias = 16.0f32 / 116.0;
    if t < threshold {
        t.mul_add(slope, bias)
    } else {
        opencv_cbrt(t)
    }
}

/// OpenCV's softfloat `cbrt` (Turkowski's rational approximation in double, mantissa truncated to
/// float). It is not correctly rounded, and one cube-root table entry (324/2040) sits on a rounding
/// tie, so a library cube root moves L by one for a band of colours.
fn opencv_cbrt(x: f32) -> f32 {
    if x.is_nan() || x.is_infinite() {
        return x;
    }
    let bits = x.to_bits();
    if bits & 0x7fff_ffff == 0 {
        return 0.0;
    }
    let sign = bits >> 31;
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    // The exponent split into a multiple of 3 and a remainder in −3..=−1 that goes to the mantissa.
    let mut shift = exponent % 3;
    if shift >= 0 {
        shift -= 3;
    }
    let root_exponent = (exponent - shift) / 3 - 1;
    let mantissa = ((bits & 0x7f_ffff) as u64) << 29;
    let fr = f64::from_bits((((shift + 1023) as u64) << 52) | mantissa);
    let a = [
        0x4046a09e6653ba70u64,
        0x406808f46c6116e0,
        0x405dca97439cae14,
        0x402add70d2827500,
        0x3fc4f15f83f55d2d,
        0x402d9e20660edb21,
        0x4062ff15c0285815,
        0x406510d06a8112ce,
        0x4040fecbc9e2c375,
    ]
    .map(f64::from_bits);
    let numerator = (((a[0] * fr + a[1]) * fr + a[2]) * fr + a[3]) * fr + a[4];
    let denominator = (((a[5] * fr + a[6]) * fr + a[7]) * fr + a[8]) * fr + 1.0;
    let root = numerator / denominator;
    let fraction = ((root.to_bits() & ((1u64 << 52) - 1)) >> 29) as u32;
    let biased = (root_exponent + 127) as u32 & 0xff;
    f32::from_bits((sign << 31) | (biased << 23) | fraction)
}

/// `RGB2Lab_b`: tables and coefficients for the 8-bit forward conversion.
struct ForwardLab {
    gamma: [u16; 256],
    cbrt: Vec<u16>,
    /// Rows X, Y, Z over columns for channels 0, 1, 2 (R, G, B), divided by the white point.
    coeffs: [i32; 9],
}

impl ForwardLab {
    fn new() -> Self {
        let scale = (255 << GAMMA_SHIFT) as f32;
        let gamma = std::array::from_fn(|i| round_i32((scale * apply_gamma(i as f32 / 255.0)) as f64) as u16);
        let step = 1.0f32 / scale;
        let lshift2 = (1 << LAB_SHIFT2) as f32;
        let cbrt = (0..CBRT_TABLE_SIZE).map(|i| round_i32((lshift2 * lab_f(step * i as f32)) as f64) as u16).collect();
        let lshift = (1 << LAB_SHIFT) as f64;
        let coeffs = std::array::from_fn(|k| {
            let (row, column) = (k / 3, k % 3);
            round_i32(lshift * f64::from_bits(RGB_TO_XYZ[row * 3 + column]) / D65[row])
        });
        Self { gamma, cbrt, coeffs }
    }

    fn convert(&self, rgb: [u8; 3]) -> [u8; 3] {
        let linear = rgb.map(|v| self.gamma[v as usize] as i32);
        let f = [0, 1, 2].map(|row| {
            let c = &self.coeffs[row * 3..row * 3 + 3];
            let t = descale(linear[0] * c[0] + linear[1] * c[1] + linear[2] * c[2], LAB_SHIFT);
            self.cbrt[(t.max(0) as usize).min(CBRT_TABLE_SIZE - 1)] as i32
        });
        const L_SCALE: i32 = (116 * 255 + 50) / 100;
        const L_SHIFT: i32 = -((16 * 255 * (1 << LAB_SHIFT2) + 50) / 100);
        const AB_OFFSET: i32 = 128 << LAB_SHIFT2;
        let l = descale(L_SCALE * f[1] + L_SHIFT, LAB_SHIFT2);
        let a = descale(500 * (f[0] - f[1]) + AB_OFFSET, LAB_SHIFT2);
        let b = descale(200 * (f[1] - f[2]) + AB_OFFSET, LAB_SHIFT2);
        [l, a, b].map(|v| v.clamp(0, 255) as u8)
    }
}

/// `Lab2RGBinteger`: tables and coefficients for the 8-bit inverse conversion.
struct InverseLab {
    /// Per 8-bit L: y and f(y), both scaled by [`BASE`].
    y_fy: [(i32, i32); 256],
    /// f⁻¹ scaled by [`BASE`], indexed from [`MIN_AB_VALUE`].
    ab_to_xz: Vec<i32>,
    inv_gamma: Vec<u16>,
    /// Rows for output channels 0, 1, 2 (R, G, B) over X, Y, Z, multiplied by the white point.
    coeffs: [i32; 9],
}

impl InverseLab {
    fn new() -> Self {
        let y_fy = std::array::from_fn(Self::y_and_fy);
        let ab_to_xz = (MIN_AB_VALUE..MIN_AB_VALUE + AB_TABLE_SIZE as i32).map(Self::inverse_f).collect();
        let inv_gamma = (0..INV_GAMMA_TABLE_SIZE)
            .map(|i| {
                let x = (1.0f32 / INV_GAMMA_TABLE_SIZE as f32) * i as f32;
                round_i32((255.0f32 * apply_inv_gamma(x)) as f64) as u16
            })
            .collect();
        let lshift = (1 << LAB_SHIFT) as f64;
        let coeffs = std::array::from_fn(|k| {
            let (row, column) = (k / 3, k % 3);
            round_i32(lshift * f64::from_bits(XYZ_TO_RGB[row * 3 + column]) * D65[column])
        });
        Self { y_fy, ab_to_xz, inv_gamma, coeffs }
    }

    /// OpenCV's `LabToYF_b` entry for an 8-bit L, computed in float as OpenCV does.
    fn y_and_fy(l: usize) -> (i32, i32) {
        let l = l as i32;
        let base = BASE as f32;
        if l <= 20 {
            // Below the toe: y = L / 903.3, f(y) = 7.787·y + 16/116, with 255 = 3·5·17.
            let y = (l * BASE * 20 * 9) as f32 / (17 * 29 * 29 * 29) as f32;
            let fy = base * (16.0f32 / 116.0 + (l * 5) as f32 / (3 * 17 * 29) as f32);
            (round_i32(y as f64), round_i32(fy as f64))
        } else {
            let fy = (l * 100 * BASE) as f32 / (255 * 116) as f32 + (16 * BASE) as f32 / 116.0;
            let y = fy * fy * fy / (BASE as f32 * BASE as f32);
            (round_i32(y as f64), round_i32(fy as f64))
        }
    }

    /// OpenCV's `abToXZ_b` entry: f⁻¹ in integers, linear below 6/29 and cubic above.
    fn inverse_f(i: i32) -> i32 {
        let i = i as i64;
        let base = BASE as i64;
        let v = if i <= 3390 { i * 108 / 841 - base * 16 / 116 * 108 / 841 } else { i * i / base * i / base };
        v as i32
    }

    fn xz_lookup(&self, index: i32) -> i32 {
        // Every 8-bit L, a, b lands inside the table; the clamp only guards the arithmetic.
        let i = (index - MIN_AB_VALUE).clamp(0, AB_TABLE_SIZE as i32 - 1) as usize;
        self.ab_to_xz[i]
    }

    fn convert(&self, lab: [u8; 3]) -> [u8; 3] {
        let [l, a, b] = lab.map(|v| v as i32);
        let (y, fy) = self.y_fy[l as usize];
        // a/500 and b/200 on the BASE scale by multiply-shift, as OpenCV approximates them.
        let a_div = ((5 * a * 53687 + (1 << 7)) >> 13) - 128 * BASE / 500;
        let b_div = ((b * 41943 + (1 << 4)) >> 9) - 128 * BASE / 200 + 1;
        let x = self.xz_lookup(fy + a_div);
        let z = self.xz_lookup(fy - b_div);
        const SHIFT: u32 = LAB_SHIFT + (BASE_SHIFT - INV_GAMMA_SHIFT);
        [0, 1, 2].map(|row| {
            let c = &self.coeffs[row * 3..row * 3 + 3];
            let linear = descale(c[0] * x + c[1] * y + c[2] * z, SHIFT);
            let index = linear.clamp(0, INV_GAMMA_TABLE_SIZE as i32 - 1) as usize;
            self.inv_gamma[index] as u8
        })
    }
}

/// `cv2.createCLAHE(clip_limit, (tiles_x, tiles_y)).apply(src)` on an 8-bit single-channel raster
/// (other channel counts are returned unchanged, as are empty rasters or a zero tile count).
///
/// Like OpenCV, an image that does not divide into the tiles is extended by reflection on the
/// bottom and right (by a whole tile when one side already divides) to build the histograms.
pub fn clahe_u8(src: &Raster<u8>, clip_limit: f64, tiles_x: usize, tiles_y: usize) -> Raster<u8> {
    if src.channels != 1 || src.data.is_empty() || tiles_x == 0 || tiles_y == 0 {
        return src.clone();
    }
    let grid = TileGrid::new(src, tiles_x, tiles_y);
    let luts = grid.lookup_tables(clip_limit);
    grid.interpolate(src, &luts)
}

const HIST_SIZE: usize = 256;

struct TileGrid {
    /// The image the histograms are taken from (the source, or its reflected extension).
    source: Raster<u8>,
    tiles_x: usize,
    tiles_y: usize,
    tile_width: usize,
    tile_height: usize,
}

impl TileGrid {
    fn new(src: &Raster<u8>, tiles_x: usize, tiles_y: usize) -> Self {
        let divides = src.width.is_multiple_of(tiles_x) && src.height.is_multiple_of(tiles_y);
        let source = if divides {
            src.clone()
        } else {
            let (w, h) = (src.width, src.height);
            reflect_extend(src, w + tiles_x - w % tiles_x, h + tiles_y - h % tiles_y)
        };
        let (tile_width, tile_height) = (source.width / tiles_x, source.height / tiles_y);
        Self { source, tiles_x, tiles_y, tile_width, tile_height }
    }

    /// One 256-entry mapping per tile, row-major over the tiles.
    fn lookup_tables(&self, clip_limit: f64) -> Vec<[u8; HIST_SIZE]> {
        let area = self.tile_width * self.tile_height;
        let lut_scale = (HIST_SIZE - 1) as f32 / area as f32;
        let limit =
            if clip_limit > 0.0 { Some(((clip_limit * area as f64 / HIST_SIZE as f64) as i64).max(1)) } else { None };
        (0..self.tiles_x * self.tiles_y)
            .map(|tile| {
                let mut hist = self.histogram(tile % self.tiles_x, tile / self.tiles_x);
                if let Some(limit) = limit {
                    clip_histogram(&mut hist, limit);
                }
                cumulative_lut(&hist, lut_scale)
            })
            .collect()
    }

    fn histogram(&self, tx: usize, ty: usize) -> [i64; HIST_SIZE] {
        let mut hist = [0i64; HIST_SIZE];
        let x0 = tx * self.tile_width;
        for y in ty * self.tile_height..(ty + 1) * self.tile_height {
            for &v in &self.source.row(y)[x0..x0 + self.tile_width] {
                hist[v as usize] += 1;
            }
        }
        hist
    }

    /// OpenCV's `CLAHE_Interpolation_Body`: bilinear blend of the four nearest tiles' mappings,
    /// in float, rounded to nearest.
    fn interpolate(&self, src: &Raster<u8>, luts: &[[u8; HIST_SIZE]]) -> Raster<u8> {
        let columns = tile_weights(src.width, self.tile_width, self.tiles_x);
        let mut out = Raster::new(src.width, src.height, 1);
        for y in 0..src.height {
            let (ty1, ty2, ya) = tile_weight(y, self.tile_height, self.tiles_y);
            let ya1 = 1.0 - ya;
            let (top, bottom) = (ty1 * self.tiles_x, ty2 * self.tiles_x);
            let row = src.row(y);
            for ((o, &v), &(tx1, tx2, xa)) in out.row_mut(y).iter_mut().zip(row).zip(&columns) {
                let v = v as usize;
                let xa1 = 1.0 - xa;
                let upper = luts[top + tx1][v] as f32 * xa1 + luts[top + tx2][v] as f32 * xa;
                let lower = luts[bottom + tx1][v] as f32 * xa1 + luts[bottom + tx2][v] as f32 * xa;
                *o = (upper * ya1 + lower * ya).round_ties_even().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }
}

/// The two tiles around a position and the weight of the second, as OpenCV computes them in float.
fn tile_weight(p: usize, tile_size: usize, tiles: usize) -> (usize, usize, f32) {
    let inv = 1.0f32 / tile_size as f32;
    let t = p as f32 * inv - 0.5;
    let t1 = t.floor();
    let weight = t - t1;
    let t1 = t1 as i64;
    let first = t1.max(0) as usize;
    let second = ((t1 + 1) as usize).min(tiles - 1);
    (first, second, weight)
}

fn tile_weights(len: usize, tile_size: usize, tiles: usize) -> Vec<(usize, usize, f32)> {
    (0..len).map(|p| tile_weight(p, tile_size, tiles)).collect()
}

/// Clips bins at `limit` and hands the excess back: evenly, then one by one at a stride.
fn clip_histogram(hist: &mut [i64; HIST_SIZE], limit: i64) {
    let mut clipped = 0;
    for bin in hist.iter_mut() {
        if *bin > limit {
            clipped += *bin - limit;
            *bin = limit;
        }
    }
    let batch = clipped / HIST_SIZE as i64;
    let mut residual = clipped - batch * HIST_SIZE as i64;
    for bin in hist.iter_mut() {
        *bin += batch;
    }
    if residual > 0 {
        let step = (HIST_SIZE as i64 / residual).max(1) as usize;
        for bin in hist.iter_mut().step_by(step) {
            if residual == 0 {
                break;
            }
            *bin += 1;
            residual -= 1;
        }
    }
}

fn cumulative_lut(hist: &[i64; HIST_SIZE], scale: f32) -> [u8; HIST_SIZE] {
    let mut lut = [0u8; HIST_SIZE];
    let mut sum = 0i64;
    for (entry, &count) in lut.iter_mut().zip(hist) {
        sum += count;
        *entry = (sum as f32 * scale).round_ties_even().clamp(0.0, 255.0) as u8;
    }
    lut
}

/// The raster enlarged to `width`×`height` by BORDER_REFLECT_101 on the right and bottom.
fn reflect_extend(src: &Raster<u8>, width: usize, height: usize) -> Raster<u8> {
    let mut out = Raster::new(width, height, 1);
    for y in 0..height {
        let row = src.row(reflect_101(y as i64, src.height));
        for (x, o) in out.row_mut(y).iter_mut().enumerate() {
            *o = row[reflect_101(x as i64, src.width)];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{parity_dir, read_bgr};
    use std::path::Path;

    /// Every (crop before, network input after) pair of the 2dfan4 landmarker in the dumps.
    fn landmarker_pairs(case: &Path) -> Vec<(String, String)> {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("dump/index.json")).unwrap()).unwrap();
        // Cases 01-10 wrap their records in an object; the later ones are a bare list.
        let records = index["records"].as_array().or_else(|| index.as_array()).unwrap();
        let png = |r: &serde_json::Value, item: &str| r["items"][item]["png"].as_str().map(String::from);
        let mut crops = std::collections::HashMap::new();
        let mut pairs = Vec::new();
        for r in records {
            let key = (r["frame"].as_str().unwrap().to_string(), r["call"].as_u64().unwrap());
            match r["fn"].as_str() {
                Some("landmarker_warp_by_translation") => {
                    if let Some(crop) = png(r, "crop") {
                        crops.insert(key, crop);
                    }
                }
                Some("forward_with_2dfan4") => {
                    if let (Some(crop), Some(input)) = (crops.get(&key), png(r, "input_bgr")) {
                        pairs.push((crop.clone(), input));
                    }
                }
                _ => {}
            }
        }
        pairs
    }

    #[test]
    fn round_trip_matches_facefusion_2dfan4_inputs() {
        let mut cases: Vec<_> = std::fs::read_dir(parity_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("dump/index.json").is_file())
            .collect();
        cases.sort();
        let (mut crops, mut differing, mut max) = (0, 0, 0u8);
        for case in &cases {
            for (crop, input) in landmarker_pairs(case) {
                let dump = case.join("dump");
                let ours = conditional_optimize_contrast(&read_bgr(&dump.join(&crop)));
                let theirs = read_bgr(&dump.join(&input));
                let diff = ours.data.iter().zip(&theirs.data).map(|(a, b)| a.abs_diff(*b));
                let (case_max, count) = diff.fold((0, 0), |(m, n), d| (m.max(d), n + usize::from(d > 0)));
                eprintln!("{}/{crop}: max {case_max}, {count} samples differ", case.display());
                crops += 1;
                differing += count;
                max = max.max(case_max);
            }
        }
        eprintln!("{crops} crops: max diff {max}, {differing} samples differ");
        assert!(crops >= 20, "only {crops} crops found");
        assert_eq!((max, differing), (0, 0));
    }

    #[test]
    fn lab_of_primaries_is_close_to_the_cie_values() {
        // CIE Lab of sRGB black, white and primaries as OpenCV stores it (L·255/100, a + 128,
        // b + 128); the fixed-point path may land one level away.
        let cases = [
            ([0, 0, 0], [0.0, 128.0, 128.0]),
            ([255, 255, 255], [255.0, 128.0, 128.0]),
            ([255, 0, 0], [53.24 * 2.55, 80.09 + 128.0, 67.20 + 128.0]),
            ([0, 255, 0], [87.73 * 2.55, -86.18 + 128.0, 83.18 + 128.0]),
            ([0, 0, 255], [32.30 * 2.55, 79.19 + 128.0, -107.86 + 128.0]),
        ];
        for (rgb, expected) in cases {
            let lab = lab_tables().forward.convert(rgb);
            for (v, e) in lab.iter().zip(expected) {
                assert!((*v as f64 - e).abs() <= 1.0, "{rgb:?}: {lab:?} vs {expected:?}");
            }
        }
    }

    #[test]
    fn opencv_cube_root_is_close_to_the_true_one() {
        for i in 1..3072 {
            let x = i as f32 / 2040.0;
            let exact = (x as f64).cbrt();
            assert!((opencv_cbrt(x) as f64 - exact).abs() < 2.0 * f32::EPSILON as f64 * exact);
        }
        assert_eq!(opencv_cbrt(8.0), 2.0);
        assert_eq!(opencv_cbrt(0.0), 0.0);
        // The tie that matters: the truncated root stays below 17745.5 / 32768.
        let t = opencv_cbrt((1.0f32 / 2040.0) * 324.0) * 32768.0;
        assert!(t < 17745.5, "{t}");
    }

    #[test]
    fn round_trip_is_close_to_identity() {
        let tables = lab_tables();
        let worst = |range: std::ops::RangeInclusive<u8>, step: usize| {
            let mut worst = 0;
            for r in range.clone().step_by(step) {
                for g in range.clone().step_by(step) {
                    for b in range.clone().step_by(step) {
                        let back = tables.inverse.convert(tables.forward.convert([r, g, b]));
                        let d = back.iter().zip([r, g, b]).map(|(x, y)| x.abs_diff(y));
                        worst = worst.max(d.max().unwrap_or(0));
                    }
                }
            }
            worst
        };
        // 8-bit a and b are coarse: a channel near 0 next to bright ones (steep inverse gamma)
        // moves by up to ~23 levels in OpenCV too; mid-range colours stay within a few.
        assert!(worst(0..=255, 5) <= 25);
        assert!(worst(50..=200, 3) <= 8);
    }

    #[test]
    fn clahe_stretches_a_dark_low_contrast_image() {
        let data: Vec<u8> = (0..64 * 64).map(|i| 10 + ((i % 64) / 8) as u8).collect();
        let src = Raster::from_vec(64, 64, 1, data);
        let out = clahe_u8(&src, 2.0, 8, 8);
        let range = |r: &Raster<u8>| r.data.iter().max().unwrap() - r.data.iter().min().unwrap();
        assert!(range(&out) > range(&src));
        // Same value in the same column band gives the same output along a row band.
        assert_eq!(out.row(5)[..], out.row(6)[..]);
    }

    #[test]
    fn clahe_of_a_constant_image_is_constant_and_sizes_that_do_not_divide_work() {
        let src = Raster::filled(30, 21, 1, 100u8);
        let out = clahe_u8(&src, 2.0, 8, 8);
        let first = out.data[0];
        assert!(out.data.iter().all(|&v| v == first));
        assert_eq!(clahe_u8(&Raster::new(0, 0, 1), 2.0, 8, 8).data.len(), 0);
        assert_eq!(clahe_u8(&src, 2.0, 0, 8), src);
    }

    #[test]
    fn clip_histogram_redistributes_the_excess() {
        let mut hist = [0i64; HIST_SIZE];
        hist[0] = 300;
        clip_histogram(&mut hist, 10);
        // 290 clipped: 1 to every bin, then the remaining 34 at a stride of 256 / 34 = 7.
        assert_eq!(hist.iter().sum::<i64>(), 300);
        assert_eq!(hist[0], 12);
        assert_eq!(hist[7], 2);
        assert_eq!(hist[1], 1);
    }

    #[test]
    fn dark_crops_get_equalised_and_bright_ones_do_not() {
        let dark = Raster::from_vec(32, 32, 3, (0..32 * 32 * 3).map(|i| (i % 7 * 3) as u8).collect());
        let bright = Raster::filled(16, 16, 3, 180u8);
        let plain = lab_to_rgb_u8(&rgb_to_lab_u8(&dark));
        assert_ne!(conditional_optimize_contrast(&dark), plain);
        assert_eq!(conditional_optimize_contrast(&bright), lab_to_rgb_u8(&rgb_to_lab_u8(&bright)));
        let gray = Raster::filled(4, 4, 1, 9u8);
        assert_eq!(conditional_optimize_contrast(&gray), gray);
    }
}
