//! FaceFusion 3.5.3's crop masks (`face_masker.py`, spec §7): the blurred box, the occlusion
//! (XSeg), region (BiSeNet) and area (landmark hull) masks, and the element-wise minimum that
//! combines a processor's masks.

use crate::error::{PipelineError, Result};
use crate::imgproc::blur::gaussian_blur_f32;
use crate::imgproc::resize::{resize_linear, resize_linear_f32};
use crate::models::catalogue;
use crate::raster::{Frame, Mask, Raster};
use crate::runtime::Input;
use crate::sessions::ModelRegistry;

/// The occluder models `--face-occluder-model many` runs; their masks are combined by minimum.
pub const OCCLUDER_MODELS: &[&str] = &["xseg_1", "xseg_2", "xseg_3"];

/// BiSeNet class ids of FaceFusion's `face_mask_region_set` (CelebAMask-HQ labels).
pub fn region_id(region: &str) -> Option<usize> {
    Some(match region {
        "skin" => 1,
        "left-eyebrow" => 2,
        "right-eyebrow" => 3,
        "left-eye" => 4,
        "right-eye" => 5,
        "glasses" => 6,
        "nose" => 10,
        "mouth" => 11,
        "upper-lip" => 12,
        "lower-lip" => 13,
        _ => return None,
    })
}

/// Landmark-68 indices of FaceFusion's `face_mask_area_set`, in its order.
pub fn area_points(area: &str) -> &'static [usize] {
    match area {
        "upper-face" => &[0, 1, 2, 31, 32, 33, 34, 35, 14, 15, 16, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17],
        "lower-face" => &[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 35, 34, 33, 32, 31],
        "mouth" => &[48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67],
        _ => &[],
    }
}

/// The models an occluder choice loads.
pub fn occluder_models(choice: &str) -> Vec<&'static str> {
    match choice {
        "many" => OCCLUDER_MODELS.to_vec(),
        other => OCCLUDER_MODELS.iter().copied().filter(|m| *m == other).collect(),
    }
}

/// A model's square input size from the catalogue, or `fallback` (FaceFusion's value) when absent.
fn model_size(name: &str, fallback: usize) -> usize {
    catalogue().get(name).and_then(|entry| entry.size).map(|[w, _]| w as usize).unwrap_or(fallback)
}

/// The shared finish of the model and area masks: `(GaussianBlur(m.clip(0, 1), σ 5).clip(0.5, 1) − 0.5) · 2`.
/// It pulls the soft edge inwards so the mask reaches 0 at the edge of what the model marked.
pub fn soften_mask(mut mask: Mask) -> Mask {
    mask.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    let mut mask = gaussian_blur_f32(&mask, 5.0);
    mask.data.iter_mut().for_each(|v| *v = (v.clamp(0.5, 1.0) - 0.5) * 2.0);
    mask
}

/// FaceFusion's `create_occlusion_mask` on a BGR crop: each XSeg model sees the crop resized
/// (bilinear) to its input, NHWC BGR / 255; its output is clipped and resized back; `many` takes
/// the minimum of the three before the shared blur/clip/remap.
pub fn create_occlusion_mask(registry: &ModelRegistry, crop: &Frame, occluder: &str) -> Result<Mask> {
    let mut combined: Option<Mask> = None;
    for name in occluder_models(occluder) {
        let size = model_size(name, 256);
        let resized = resize_linear(crop, size, size);
        let tensor: Vec<f32> = resized.data.iter().map(|&v| v as f32 / 255.0).collect();
        let outputs = registry.get(name)?.run(vec![Input::f32("input", &[1, size, size, 3], tensor)])?;
        let output = outputs.into_iter().next().filter(|o| o.data.len() == size * size).ok_or_else(|| {
            PipelineError::ModelContract {
                name: name.to_string(),
                reason: format!("expected a (1,{size},{size},1) output"),
            }
        })?;
        let mut mask = Raster::from_vec(size, size, 1, output.data);
        mask.data.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        let mask = resize_linear_f32(&mask, crop.width, crop.height);
        combined = Some(match combined {
            Some(previous) => combine_min_unclipped(previous, &mask),
            None => mask,
        });
    }
    let mask = combined
        .ok_or_else(|| PipelineError::invalid_option("face_occluder_model", format!("unknown model {occluder}")))?;
    Ok(soften_mask(mask))
}

fn combine_min_unclipped(mut a: Mask, b: &Mask) -> Mask {
    a.data.iter_mut().zip(&b.data).for_each(|(x, y)| *x = x.min(*y));
    a
}

/// FaceFusion's `create_region_mask` on a BGR crop: BiSeNet on the crop resized to 512², RGB with
/// ImageNet normalisation; pixels whose arg-max class is one of `regions` become 1, the map is
/// resized back to the crop and softened.
///
/// The crop is the swapped crop FaceFusion holds in float (0..255, BGR), resized in float.
pub fn create_region_mask(
    registry: &ModelRegistry,
    crop: &Raster<f32>,
    parser: &str,
    regions: &[String],
) -> Result<Mask> {
    const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
    const STD: [f32; 3] = [0.229, 0.224, 0.225];
    let size = model_size(parser, 512);
    let plane = size * size;
    let resized = resize_linear_f32(crop, size, size);
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in resized.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            // Channel c of the RGB tensor is BGR index 2 − c; float32 arithmetic as numpy does it.
            tensor[c * plane + i] = (px[2 - c] / 255.0 - MEAN[c]) / STD[c];
        }
    }
    let outputs = registry.get(parser)?.run(vec![Input::f32("input", &[1, 3, size, size], tensor)])?;
    let output =
        outputs.into_iter().next().filter(|o| o.data.len() >= plane && o.data.len() % plane == 0).ok_or_else(|| {
            PipelineError::ModelContract {
                name: parser.to_string(),
                reason: format!("expected a (1,19,{size},{size}) output"),
            }
        })?;
    let classes = output.data.len() / plane;
    let mut keep = vec![false; classes];
    regions.iter().filter_map(|r| region_id(r)).filter(|&id| id < classes).for_each(|id| keep[id] = true);
    let mut mask = Raster::<f32>::new(size, size, 1);
    for (i, value) in mask.data.iter_mut().enumerate() {
        // numpy's argmax: the first of equal maxima wins.
        let mut best = 0;
        for class in 1..classes {
            if output.data[class * plane + i] > output.data[best * plane + i] {
                best = class;
            }
        }
        *value = if keep[best] { 1.0 } else { 0.0 };
    }
    Ok(soften_mask(resize_linear_f32(&mask, crop.width, crop.height)))
}

/// FaceFusion's `create_area_mask`: the convex hull of the chosen 68-point landmarks (in crop
/// coordinates, truncated to int32 as numpy's astype does) filled with 1, then softened.
pub fn create_area_mask(width: usize, height: usize, landmark_68: &[[f64; 2]], areas: &[String]) -> Mask {
    let points: Vec<[i64; 2]> = areas
        .iter()
        .flat_map(|area| area_points(area))
        .filter_map(|&i| landmark_68.get(i))
        .map(|p| {
            [
                p[0].trunc().clamp(i32::MIN as f64, i32::MAX as f64) as i64,
                p[1].trunc().clamp(i32::MIN as f64, i32::MAX as f64) as i64,
            ]
        })
        .collect();
    let mut mask = Raster::<f32>::new(width, height, 1);
    let hull = convex_hull(&points);
    fill_convex_polygon(&mut mask, &hull);
    soften_mask(mask)
}

/// Andrew's monotone chain; collinear points are dropped, as `cv2.convexHull` drops them.
fn convex_hull(points: &[[i64; 2]]) -> Vec<[i64; 2]> {
    let mut sorted = points.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() < 3 {
        return sorted;
    }
    let cross = |o: [i64; 2], a: [i64; 2], b: [i64; 2]| (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
    let mut hull: Vec<[i64; 2]> = Vec::with_capacity(sorted.len() * 2);
    for pass in 0..2 {
        let start = hull.len();
        let iter: Box<dyn Iterator<Item = &[i64; 2]>> =
            if pass == 0 { Box::new(sorted.iter()) } else { Box::new(sorted.iter().rev()) };
        for &p in iter {
            while hull.len() >= start + 2 && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0 {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// `cv2.fillConvexPoly(mask, hull, 1.0)` (8-connected, no sub-pixel shift), following OpenCV's
/// own scan so the filled pixels match: the outline is drawn as lines first; then from the top
/// vertex two edges walk down the polygon in opposite directions in 16.16 fixed point, the step
/// per row rounded as OpenCV rounds it, and each row is filled between the rounded edge positions.
fn fill_convex_polygon(mask: &mut Mask, polygon: &[[i64; 2]]) {
    const SHIFT: u32 = 16;
    const ONE: i64 = 1 << SHIFT;
    const HALF: i64 = ONE >> 1;
    if polygon.is_empty() || mask.width == 0 || mask.height == 0 {
        return;
    }
    let (width, height) = (mask.width as i64, mask.height as i64);
    let set_row = |mask: &mut Mask, y: i64, from: i64, to: i64| {
        if !(0..height).contains(&y) || to < 0 || from >= width {
            return;
        }
        let (from, to) = (from.max(0) as usize, to.min(width - 1) as usize);
        let row = y as usize * mask.width;
        mask.data[row + from..=row + to].fill(1.0);
    };
    let n = polygon.len();
    for i in 0..n {
        for [x, y] in bresenham(polygon[(i + n - 1) % n], polygon[i]) {
            set_row(mask, y, x, x);
        }
    }
    if n < 3 {
        return;
    }
    let mut top = 0;
    for (i, p) in polygon.iter().enumerate() {
        if p[1] < polygon[top][1] {
            top = i;
        }
    }
    let y_min = polygon[top][1];
    let y_max = polygon.iter().map(|p| p[1]).max().unwrap_or(y_min);
    let x_min = polygon.iter().map(|p| p[0]).min().unwrap_or(0);
    let x_max = polygon.iter().map(|p| p[0]).max().unwrap_or(0);
    if x_max < 0 || y_max < 0 || x_min >= width || y_min >= height {
        return;
    }
    let y_max = y_max.min(height - 1);
    struct Edge {
        idx: usize,
        step: usize,
        x: i64,
        dx: i64,
        y_end: i64,
    }
    let mut edges = [
        Edge { idx: top, step: 1, x: -ONE, dx: 0, y_end: y_min },
        Edge { idx: top, step: n - 1, x: -ONE, dx: 0, y_end: y_min },
    ];
    // Vertices left to visit over both walks; running out ends the scan.
    let mut remaining = n as i64;
    let mut y = y_min;
    loop {
        for edge in &mut edges {
            if y < edge.y_end {
                continue;
            }
            let mut from = edge.idx;
            let mut to = (from + edge.step) % n;
            loop {
                let more = remaining > 0;
                remaining -= 1;
                if !more {
                    break;
                }
                let to_y = polygon[to][1];
                if to_y > y {
                    let (xs, xe) = (polygon[from][0] << SHIFT, polygon[to][0] << SHIFT);
                    edge.y_end = to_y;
                    edge.dx = ((xe - xs) * 2 + (to_y - y)) / (2 * (to_y - y));
                    edge.x = xs;
                    edge.idx = to;
                    break;
                }
                from = to;
                to = (to + edge.step) % n;
            }
        }
        if remaining < 0 {
            break;
        }
        if y >= 0 {
            let (left, right) = if edges[0].x > edges[1].x { (1, 0) } else { (0, 1) };
            set_row(mask, y, (edges[left].x + HALF) >> SHIFT, (edges[right].x + HALF) >> SHIFT);
        }
        edges[0].x += edges[0].dx;
        edges[1].x += edges[1].dx;
        y += 1;
        if y > y_max {
            break;
        }
    }
}

/// The pixels of OpenCV's 8-connected line from `a` to `b` (its `LineIterator`, left to right):
/// the major axis advances every pixel; the minor one when the error term, started at
/// `major − 2·minor`, is negative before the step. The tie-breaking matters for which outline
/// pixels `fillConvexPoly` adds beyond its scanlines.
fn bresenham(a: [i64; 2], b: [i64; 2]) -> Vec<[i64; 2]> {
    let (a, b) = if a[0] > b[0] { (b, a) } else { (a, b) };
    let (dx, dy) = (b[0] - a[0], (b[1] - a[1]).abs());
    let y_step = if b[1] < a[1] { -1 } else { 1 };
    let (major, minor, x_major) = if dy > dx { (dy, dx, false) } else { (dx, dy, true) };
    let (mut x, mut y) = (a[0], a[1]);
    let mut error = major - 2 * minor;
    let mut pixels = Vec::with_capacity(major as usize + 1);
    for _ in 0..=major {
        pixels.push([x, y]);
        let minor_step = error < 0;
        error += -2 * minor + if minor_step { 2 * major } else { 0 };
        if x_major {
            x += 1;
            if minor_step {
                y += y_step;
            }
        } else {
            y += y_step;
            if minor_step {
                x += 1;
            }
        }
    }
    pixels
}

/// FaceFusion's `create_box_mask` for a `width`×`height` crop: ones with a zeroed border, blurred.
///
/// `blur` is `--face-mask-blur` (0..1) and `padding` is `--face-mask-padding` as percentages of
/// the crop in the order top, right, bottom, left. The border is at least half the blur width on
/// every side, so the blurred edge fades out inside the crop:
/// `blur_amount = int(width · 0.5 · blur)`, `blur_area = max(blur_amount // 2, 1)`, each side
/// zeroes `max(blur_area, int(side · padding / 100))` lines, then a Gaussian with sigma
/// `blur_amount / 4` is applied when `blur_amount > 0`.
///
/// FaceFusion builds the array with shape (width, height); every crop it masks is square, so this
/// uses the intended height × width layout.
pub fn create_box_mask(width: usize, height: usize, blur: f64, padding: [f64; 4]) -> Mask {
    let blur_amount = python_int(width as f64 * 0.5 * blur);
    let blur_area = blur_amount.div_euclid(2).max(1);
    let border = |side: usize, percent: f64| {
        let lines = blur_area.max(python_int(side as f64 * percent / 100.0));
        lines.clamp(0, side as i64) as usize
    };
    let [top, right, bottom, left] = padding;
    let (top, bottom) = (border(height, top), border(height, bottom));
    let (left, right) = (border(width, left), border(width, right));

    let mut mask = Raster::new(width, height, 1);
    let columns = left..width.saturating_sub(right);
    for y in top..height.saturating_sub(bottom) {
        if let Some(row) = mask.row_mut(y).get_mut(columns.clone()) {
            row.fill(1.0);
        }
    }
    if blur_amount > 0 {
        mask = gaussian_blur_f32(&mask, blur_amount as f64 * 0.25);
    }
    mask
}

/// Python's `int(x)` for the sizes involved: truncation toward zero (NaN becomes 0 instead of
/// raising, and huge values saturate).
fn python_int(x: f64) -> i64 {
    x.trunc() as i64
}

/// `numpy.minimum.reduce(masks).clip(0, 1)`, FaceFusion's way of combining a processor's masks.
///
/// The result has the first mask's size. Masks of another size cannot be combined element-wise
/// (numpy would raise); they are left out and logged. No masks at all give an empty mask.
pub fn combine_masks_min(masks: &[&Mask]) -> Mask {
    let Some((first, rest)) = masks.split_first() else {
        return Raster::new(0, 0, 1);
    };
    let mut combined = (*first).clone();
    for mask in rest {
        if !same_shape(first, mask) {
            tracing::warn!(
                expected = ?(first.width, first.height, first.channels),
                found = ?(mask.width, mask.height, mask.channels),
                "mask of a different size left out of the combination"
            );
            continue;
        }
        for (c, &m) in combined.data.iter_mut().zip(&mask.data) {
            *c = c.min(m);
        }
    }
    for v in &mut combined.data {
        *v = v.clamp(0.0, 1.0);
    }
    combined
}

fn same_shape(a: &Mask, b: &Mask) -> bool {
    (a.width, a.height, a.channels) == (b.width, b.height, b.channels)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{parity_dir, read_png16_mask};

    /// Max and mean absolute difference against a `png16` mask from the dumps, and how many
    /// samples would not quantise to the dumped 16-bit code (the dumps round `mask · 65535` in
    /// float32, half to even).
    fn compare_with_dump(mask: &Mask, dump: &str) -> (f32, f32, usize) {
        let golden = read_png16_mask(&parity_dir().join(dump));
        assert_eq!((mask.width, mask.height), (golden.width, golden.height), "{dump}");
        let pairs = || mask.data.iter().zip(&golden.data);
        let max = pairs().fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        let mean = pairs().map(|(a, b)| (a - b).abs()).sum::<f32>() / mask.data.len() as f32;
        let code = |v: f32| (v * 65535.0).round_ties_even() as i64;
        let other_codes = pairs().filter(|&(&a, &b)| code(a) != code(b)).count();
        (max, mean, other_codes)
    }

    #[test]
    fn box_masks_match_facefusion_dumps() {
        // (dump, crop size): default blur 0.3 and padding 0 in every case.
        let cases = [
            ("01_swap_obama_to_biden_hyperswap/dump/image_swapper_create_box_mask_0_mask.png", 256),
            ("02_swap_obama_to_biden_inswapper/dump/image_swapper_create_box_mask_0_mask.png", 128),
            ("03_swap_biden_to_two_people_many/dump/image_swapper_create_box_mask_0_mask.png", 256),
            ("04_swap_obama_to_t1_group_masks_boost/dump/image_swapper_create_box_mask_0_mask.png", 512),
            ("06_swap_then_enhance_gfpgan/dump/image_enhancer_create_box_mask_0_mask.png", 512),
            ("07_enhance_codeformer_two_people/dump/image_enhancer_create_box_mask_0_mask.png", 512),
            ("08_video_swap_hamilton_2s/dump/f00000_swapper_create_box_mask_0_mask.png", 256),
        ];
        for (dump, size) in cases {
            let mask = create_box_mask(size, size, 0.3, [0.0; 4]);
            let (max, mean, other_codes) = compare_with_dump(&mask, dump);
            eprintln!("{dump}: max {max:.3e}, mean {mean:.3e}, {other_codes} other 16-bit codes");
            // png16 quantisation alone is up to 7.6e-6; every sample lands on the dumped code.
            assert!(max <= 2e-5, "{dump}: max abs difference {max}");
            assert_eq!(other_codes, 0, "{dump}");
        }
    }

    #[test]
    fn box_border_follows_blur_and_padding() {
        // No blur: blur_area = 1 line on each side, then padding takes over where larger.
        let mask = create_box_mask(10, 10, 0.0, [0.0; 4]);
        let ones = mask.data.iter().filter(|&&v| v == 1.0).count();
        assert_eq!(ones, 8 * 8);
        assert_eq!(mask.data[0], 0.0);
        assert_eq!(mask.data[11], 1.0);

        // top 20 % = 2 rows, right 30 % = 3 columns, bottom 10 % = 1, left 40 % = 4.
        let mask = create_box_mask(10, 10, 0.0, [20.0, 30.0, 10.0, 40.0]);
        for y in 0..10 {
            for x in 0..10 {
                let inside = (2..9).contains(&y) && (4..7).contains(&x);
                assert_eq!(mask.data[y * 10 + x], if inside { 1.0 } else { 0.0 }, "({x}, {y})");
            }
        }
    }

    #[test]
    fn box_mask_blur_is_symmetric_and_bounded() {
        let mask = create_box_mask(256, 256, 0.3, [0.0; 4]);
        assert!(mask.data.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Edge 19 px = 2 sigma: the centre is untouched by the fade; the corner keeps about
        // (2 · 2.3 %)² from the Gaussian tails on both sides of the mirrored border.
        assert!((mask.data[128 * 256 + 128] - 1.0).abs() < 1e-6);
        assert!(mask.data[0] > 1e-3 && mask.data[0] < 3e-3);
        let mirrored = mask.data[100 * 256 + 10] - mask.data[100 * 256 + 245];
        assert!(mirrored.abs() < 1e-6);
    }

    #[test]
    fn box_mask_handles_degenerate_options() {
        assert_eq!(create_box_mask(0, 0, 0.3, [0.0; 4]).data.len(), 0);
        // Padding past the crop zeroes everything instead of panicking.
        let mask = create_box_mask(8, 8, 0.0, [80.0, 90.0, 80.0, 90.0]);
        assert!(mask.data.iter().all(|&v| v == 0.0));
        let mask = create_box_mask(8, 8, f64::NAN, [f64::NAN, -5.0, 1e300, 0.0]);
        assert_eq!(mask.data.len(), 64);
        let mask = create_box_mask(3, 3, 1.0, [0.0; 4]);
        assert!(mask.data.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }

    #[test]
    fn convex_fill_covers_the_hull_inclusively() {
        // Interior points are dropped by the hull; the rectangle's edges are part of the fill.
        let points = [[2, 2], [6, 2], [4, 3], [6, 5], [2, 5], [3, 4]];
        let hull = convex_hull(&points);
        assert_eq!(hull.len(), 4);
        let mut mask = Raster::new(9, 8, 1);
        fill_convex_polygon(&mut mask, &hull);
        for y in 0..8 {
            for x in 0..9 {
                let inside = (2..=6).contains(&x) && (2..=5).contains(&y);
                assert_eq!(mask.data[y * 9 + x], if inside { 1.0 } else { 0.0 }, "({x}, {y})");
            }
        }
        // A triangle: each row spans the rounded edge positions.
        let mut mask = Raster::new(9, 8, 1);
        fill_convex_polygon(&mut mask, &convex_hull(&[[0, 0], [8, 0], [0, 7]]));
        assert_eq!(mask.data[0..9].iter().filter(|&&v| v == 1.0).count(), 9);
        assert_eq!(mask.data[7 * 9], 1.0);
        assert_eq!(mask.data[7 * 9 + 2], 0.0);
        // Polygons partly or wholly outside the mask are clipped, not a panic.
        let mut mask = Raster::new(4, 4, 1);
        fill_convex_polygon(&mut mask, &convex_hull(&[[-10, -10], [20, -5], [2, 30]]));
        fill_convex_polygon(&mut mask, &convex_hull(&[[100, 100], [120, 100], [110, 130]]));
        assert!(mask.data.contains(&1.0));
    }

    #[test]
    fn area_and_soften_stay_in_range() {
        let landmarks: Vec<[f64; 2]> =
            (0..68).map(|i| [20.0 + (i % 10) as f64 * 8.0, 20.0 + (i / 10) as f64 * 10.0]).collect();
        let mask = create_area_mask(128, 128, &landmarks, &["upper-face".into(), "mouth".into()]);
        assert!(mask.data.iter().all(|&v| (0.0..=1.0).contains(&v)));
        assert_eq!(mask.data[60 * 128 + 60], 1.0);
        assert_eq!(mask.data[0], 0.0);
        // No landmarks or unknown areas give an empty mask instead of a panic.
        assert!(create_area_mask(16, 16, &[], &["mouth".into()]).data.iter().all(|&v| v == 0.0));
        assert!(create_area_mask(16, 16, &landmarks, &["nose".into()]).data.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn combining_takes_the_minimum_and_clips() {
        let a = Raster::from_vec(2, 1, 1, vec![0.2f32, 1.5]);
        let b = Raster::from_vec(2, 1, 1, vec![0.6f32, 1.2]);
        assert_eq!(combine_masks_min(&[&a, &b]).data, vec![0.2, 1.0]);
        let negative = Raster::from_vec(2, 1, 1, vec![-0.5f32, 0.5]);
        assert_eq!(combine_masks_min(&[&negative]).data, vec![0.0, 0.5]);
        let other = Raster::from_vec(1, 1, 1, vec![0.0f32]);
        assert_eq!(combine_masks_min(&[&a, &other]).data, vec![0.2, 1.0]);
        assert_eq!(combine_masks_min(&[]).data.len(), 0);
    }
}
