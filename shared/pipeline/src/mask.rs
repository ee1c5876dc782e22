//! FaceFusion 3.5.3's crop masks (`face_masker.py`) that need no model: the blurred box, and the
//! element-wise minimum that combines a processor's masks.

use crate::imgproc::blur::gaussian_blur_f32;
use crate::raster::{Mask, Raster};

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
