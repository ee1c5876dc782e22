//! deep_swapper (spec §8.8): DeepFaceLive `.dfm` models, each trained on one celebrity, replace the
//! face with theirs. No source image: the identity is in the model.
//!
//! The crop (`dfl_whole_face`, at the size the model's `in_face:0` declares) is sharpened, fed NHWC
//! BGR in 0..1 with an optional morph amount, and the model answers the new face plus two masks
//! (where it found the target's face and where it drew the celebrity's). The face is colour-matched
//! to the crop in proportion to how alike their hue/saturation histograms are; the two masks are
//! intersected, eroded and blurred, and join the usual box/occlusion/area/region masks.

use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::face::Face;
use crate::geometry::{paste_back_u8, transform_points, warp_face_by_landmark_5, WarpTemplate};
use crate::imgproc::blur::{gaussian_blur_f32, gaussian_kernel_size, reflect_101};
use crate::imgproc::color_match::conditional_match_frame_color;
use crate::mask::{
    combine_masks_min, create_area_mask, create_box_mask, create_occlusion_mask, create_region_mask, occluder_models,
};
use crate::models::catalogue;
use crate::options::{custom_model_stem, DeepSwapperOptions, MaskOptions, MaskType};
use crate::processors::add_weighted;
use crate::raster::{Frame, Mask, Raster};
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

/// The FaceFusion processor name, which is also the catalogue module of its models.
const MODULE: &str = "deep_swapper";
/// DeepFaceLab's graph names.
const FACE_INPUT: &str = "in_face:0";
const MORPH_INPUT: &str = "morph_value:0";
/// The unsharp mask FaceFusion applies before the model: 1.75·crop − 0.75·blur(σ 2).
const SHARPEN_SIGMA: f64 = 2.0;
const SHARPEN_AMOUNT: f64 = 0.75;
/// The model mask's clean-up: two erosions with a 3×3 cross, then a Gaussian of this sigma.
const MASK_ERODE_ITERATIONS: usize = 2;
const MASK_BLUR_SIGMA: f64 = 6.25;

impl Default for DeepSwapperOptions {
    fn default() -> Self {
        Self { model: "iperov/elon_musk_224".to_string(), morph: 100.0 }
    }
}

/// Whether `name` can be a deep swapper model: a catalogue id of the processor, or `custom/<stem>`
/// (which need not exist yet; loading it says so).
pub fn is_deep_swapper_model(name: &str) -> bool {
    custom_model_stem(name).is_some()
        || catalogue().get(name).is_some_and(|entry| entry.modules.iter().any(|m| m == MODULE))
}

/// Every model the deep swapper loads: its own, the occluder with the occlusion mask, the face
/// parser with the region mask.
pub fn required_models(options: &DeepSwapperOptions, masks: &MaskOptions) -> Vec<String> {
    let mut models = vec![options.model.clone()];
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(str::to_string));
    }
    if masks.types.contains(&MaskType::Region) {
        models.push(masks.parser_model.clone());
    }
    models
}

/// The `morph_value:0` input: the option mapped from [0, 100] onto [0, 1], clamped.
pub fn morph_input(morph: f32) -> f32 {
    if morph.is_nan() {
        return 0.0;
    }
    (morph as f64 / 100.0).clamp(0.0, 1.0) as f32
}

pub struct DeepSwapper<'a> {
    /// For the occlusion and region mask models, loaded on first use.
    registry: &'a ModelRegistry,
    session: Arc<ModelSession>,
    /// The square crop side the model takes.
    size: usize,
    morph: f32,
}

impl<'a> DeepSwapper<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &DeepSwapperOptions) -> Result<Self> {
        if !is_deep_swapper_model(&options.model) {
            return Err(PipelineError::invalid_option(
                "deep_swapper_model",
                format!("unknown model {}", options.model),
            ));
        }
        let session = registry.get(&options.model)?;
        let size = model_size(&session)?;
        Ok(Self { registry, session, size, morph: morph_input(options.morph) })
    }

    /// The square crop side the model takes, read from `in_face:0`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Swaps one face (already scaled to `frame`) and pastes it into a copy of `frame`.
    pub fn swap(&self, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Frame> {
        let size = self.size;
        let (crop, affine) =
            warp_face_by_landmark_5(frame, &face.landmark_5_68, WarpTemplate::DflWholeFace, (size, size));
        // Unlike the face swapper, the box is always on, with the padding option.
        let padding = masks.padding.map(|p| p as f64);
        let mut crop_masks = vec![create_box_mask(size, size, masks.blur as f64, padding)];
        if masks.types.contains(&MaskType::Occlusion) {
            crop_masks.push(create_occlusion_mask(self.registry, &crop, &masks.occluder_model)?);
        }
        let forward = self.forward(&crop)?;
        let swapped = conditional_match_frame_color(&crop, &forward.face);
        crop_masks.push(prepare_crop_mask(&forward.source_mask, &forward.target_mask));
        if masks.types.contains(&MaskType::Area) {
            let landmark_68 = transform_points(&face.landmark_68, &affine);
            crop_masks.push(create_area_mask(size, size, &landmark_68, &masks.areas));
        }
        if masks.types.contains(&MaskType::Region) {
            let swapped_f32 = Raster::from_vec(size, size, 3, swapped.data.iter().map(|&v| v as f32).collect());
            crop_masks.push(create_region_mask(self.registry, &swapped_f32, &masks.parser_model, &masks.regions)?);
        }
        let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
        Ok(paste_back_u8(frame, &swapped, &mask, &affine))
    }

    /// One model call on the crop.
    fn forward(&self, crop: &Frame) -> Result<DeepSwapOutput> {
        let n = self.size;
        let mut inputs = vec![Input::f32(FACE_INPUT, &[1, n, n, 3], prepare_crop_frame(crop))];
        if self.session.has_input(MORPH_INPUT) {
            inputs.push(Input::f32(MORPH_INPUT, &[1], vec![self.morph]));
        }
        let outputs = self.session.run(inputs)?;
        let contract = |reason: &str| PipelineError::ModelContract {
            name: self.session.name().to_string(),
            reason: reason.to_string(),
        };
        // DeepFaceLab's export order: target mask, face, source mask.
        let [target_mask, face, source_mask] = <[_; 3]>::try_from(outputs)
            .map_err(|_| contract("expected three outputs (target mask, face, source mask)"))?;
        if face.data.len() != n * n * 3 || target_mask.data.len() != n * n || source_mask.data.len() != n * n {
            return Err(contract(&format!("expected outputs of (1,{n},{n},1), (1,{n},{n},3), (1,{n},{n},1)")));
        }
        Ok(DeepSwapOutput {
            face: normalize_crop_frame(&face.data, n),
            source_mask: Raster::from_vec(n, n, 1, source_mask.data),
            target_mask: Raster::from_vec(n, n, 1, target_mask.data),
        })
    }
}

/// What the model returns for one crop.
struct DeepSwapOutput {
    /// BGR, 8-bit.
    face: Frame,
    /// Where the model drew the celebrity's face.
    source_mask: Mask,
    /// Where the model found the target's face.
    target_mask: Mask,
}

/// The square crop side from `in_face:0`'s dims 1..2 (NHWC). FaceFusion reads (H, W) from there
/// and warps to (W = H, H = W); only square inputs survive that, so others are refused here.
fn model_size(session: &ModelSession) -> Result<usize> {
    let contract = |reason: String| PipelineError::ModelContract { name: session.name().to_string(), reason };
    let port = session.inputs.iter().find(|port| port.name == FACE_INPUT).ok_or_else(|| {
        contract(format!("no `{FACE_INPUT}` input: not a DeepFaceLive face model (inputs: {})", input_names(session)))
    })?;
    match port.shape.as_slice() {
        [_, height, width, 3] if height == width && *height > 0 => Ok(*height as usize),
        shape => Err(contract(format!("`{FACE_INPUT}` should be a fixed square (1,N,N,3) image, found {shape:?}"))),
    }
}

fn input_names(session: &ModelSession) -> String {
    session.inputs.iter().map(|port| port.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// FaceFusion's `prepare_crop_frame`: an unsharp mask `addWeighted(crop, 1.75, blur, −0.75)` on
/// 8-bit values (rounded and saturated), then / 255 in double before the float cast, kept NHWC BGR.
fn prepare_crop_frame(crop: &Frame) -> Vec<f32> {
    let sharpened = add_weighted(crop, 1.0 + SHARPEN_AMOUNT, &gaussian_blur_u8(crop, SHARPEN_SIGMA), -SHARPEN_AMOUNT);
    sharpened.data.iter().map(|&v| (v as f64 / 255.0) as f32).collect()
}

/// FaceFusion's `normalize_crop_frame`: `(x · 255).clip(0, 255)` in float32, truncated to 8 bits.
fn normalize_crop_frame(face: &[f32], size: usize) -> Frame {
    let data = face.iter().map(|&v| (v * 255.0).clamp(0.0, 255.0) as u8).collect();
    Frame::from_vec(size, size, 3, data)
}

/// FaceFusion's `prepare_crop_mask`: where both model masks agree (their minimum, clipped to 0..1),
/// eroded twice with a 3×3 cross and blurred with σ 6.25, so the paste fades in well inside the face.
fn prepare_crop_mask(source_mask: &Mask, target_mask: &Mask) -> Mask {
    let mut mask = source_mask.clone();
    mask.data.iter_mut().zip(&target_mask.data).for_each(|(s, &t)| *s = s.min(t).clamp(0.0, 1.0));
    for _ in 0..MASK_ERODE_ITERATIONS {
        mask = erode_cross(&mask);
    }
    gaussian_blur_f32(&mask, MASK_BLUR_SIGMA)
}

/// `cv2.erode` with `getStructuringElement(MORPH_ELLIPSE, (3, 3))`, which is a plus-shaped cross:
/// each pixel becomes the minimum of itself and its four neighbours. OpenCV's default border for
/// erosion is +∞, so neighbours outside the image are ignored.
fn erode_cross(mask: &Mask) -> Mask {
    let (width, height) = (mask.width, mask.height);
    let at = |x: usize, y: usize| mask.data[y * width + x];
    let mut out = mask.clone();
    for y in 0..height {
        for x in 0..width {
            let mut m = at(x, y);
            if x > 0 {
                m = m.min(at(x - 1, y));
            }
            if x + 1 < width {
                m = m.min(at(x + 1, y));
            }
            if y > 0 {
                m = m.min(at(x, y - 1));
            }
            if y + 1 < height {
                m = m.min(at(x, y + 1));
            }
            out.data[y * width + x] = m;
        }
    }
    out
}

/// `cv2.GaussianBlur(src, (0, 0), sigma)` on 8-bit images, which OpenCV computes exactly in fixed
/// point: the kernel is quantised to 8 fractional bits (see [`fixed_point_gaussian_kernel`]), rows
/// are filtered into 16-bit sums, columns into 32-bit sums with 16 fractional bits, rounded half up
/// to 8 bits. The border is BORDER_REFLECT_101. A sigma that is not positive and finite returns
/// the input.
fn gaussian_blur_u8(src: &Frame, sigma: f64) -> Frame {
    let Some(size) = gaussian_kernel_size(sigma, true) else {
        return src.clone();
    };
    if src.data.is_empty() {
        return src.clone();
    }
    let kernel = fixed_point_gaussian_kernel(size, sigma);
    let (width, height, cn) = (src.width, src.height, src.channels);
    let radius = size / 2;
    let offsets = |len: usize, i: usize| (0..size).map(move |k| reflect_101(i as i64 + k as i64 - radius as i64, len));
    // Rows: Σ k·pixel with the kernel in 1/256 units.
    let mut rows = vec![0u32; width * height * cn];
    for y in 0..height {
        let row = src.row(y);
        for x in 0..width {
            for (k, sx) in offsets(width, x).enumerate() {
                for c in 0..cn {
                    rows[(y * width + x) * cn + c] += kernel[k] * row[sx * cn + c] as u32;
                }
            }
        }
    }
    // Columns: Σ k·row in 1/65536 units, rounded to 8 bits.
    let stride = width * cn;
    let mut out = Frame::new(width, height, cn);
    for y in 0..height {
        let taps: Vec<(u32, usize)> = offsets(height, y).enumerate().map(|(k, sy)| (kernel[k], sy)).collect();
        for (i, o) in out.row_mut(y).iter_mut().enumerate() {
            let sum: u32 = taps.iter().map(|&(k, sy)| k * rows[sy * stride + i]).sum();
            *o = ((sum + (1 << 15)) >> 16).min(255) as u8;
        }
    }
    out
}

/// OpenCV's 8-bit Gaussian kernel (`getGaussianKernelFixedPoint_ED` with 8 fractional bits): the
/// double-precision kernel of `getGaussianKernelBitExact`, quantised from the outside in with the
/// rounding error carried to the next tap, the centre taking whatever makes the sum exactly 256.
fn fixed_point_gaussian_kernel(size: usize, sigma: f64) -> Vec<u32> {
    const ONE: f64 = 256.0;
    let half = (size - 1) / 2;
    let scale = -0.125 / (sigma * sigma);
    // OpenCV evaluates at x = 1 − n, 3 − n, …: twice the distance from the centre.
    let values: Vec<f64> = (0..half)
        .map(|i| {
            let x = 2 * i as i64 + 1 - size as i64;
            ((x * x) as f64 * scale).exp()
        })
        .collect();
    let sum = values.iter().fold(0.0, |acc, &v| acc + v) * 2.0 + 1.0;
    let inverse = 1.0 / sum;
    let mut kernel = vec![0u32; size];
    let (mut error, mut total) = (0.0f64, 0u32);
    for (i, &v) in values.iter().enumerate() {
        let adjusted = v * inverse * ONE + error;
        let quantised = adjusted.round_ties_even();
        error = adjusted - quantised;
        kernel[i] = quantised as u32;
        kernel[size - 1 - i] = quantised as u32;
        total += 2 * quantised as u32;
    }
    kernel[half] = ONE as u32 - total;
    kernel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn morph_maps_percent_to_a_fraction() {
        assert_eq!(morph_input(80.0), 0.8);
        assert_eq!(morph_input(100.0), 1.0);
        assert_eq!(morph_input(0.0), 0.0);
        assert_eq!(morph_input(150.0), 1.0);
        assert_eq!(morph_input(-5.0), 0.0);
        assert_eq!(morph_input(f32::NAN), 0.0);
    }

    #[test]
    fn model_names_are_catalogue_ids_or_custom_stems() {
        assert!(is_deep_swapper_model("iperov/elon_musk_224"));
        assert!(is_deep_swapper_model("druuzil/henry_cavill_448"));
        assert!(is_deep_swapper_model("custom/my_face"));
        assert!(!is_deep_swapper_model("custom/"));
        assert!(!is_deep_swapper_model("custom/../inswapper_128"));
        assert!(!is_deep_swapper_model("iperov/nobody_224"));
        assert!(!is_deep_swapper_model("inswapper_128"));
        assert!(!is_deep_swapper_model("elon_musk_224"));
    }

    #[test]
    fn required_models_follow_the_mask_types() {
        let options = DeepSwapperOptions::default();
        let mut masks = crate::options::ProcessOptions::default().masks;
        masks.types = vec![MaskType::Box];
        assert_eq!(required_models(&options, &masks), vec!["iperov/elon_musk_224"]);
        masks.types = vec![MaskType::Occlusion, MaskType::Region];
        let models = required_models(&options, &masks);
        assert_eq!(models[0], "iperov/elon_musk_224");
        assert!(models.contains(&masks.occluder_model) && models.contains(&masks.parser_model), "{models:?}");
    }

    #[test]
    fn fixed_point_kernel_sums_to_one_and_is_symmetric() {
        let kernel = fixed_point_gaussian_kernel(13, 2.0);
        assert_eq!(kernel.iter().sum::<u32>(), 256);
        assert!(kernel.iter().zip(kernel.iter().rev()).all(|(a, b)| a == b));
        // The float kernel's taps × 256 are 1.1, 3.4, 8.6, 17.4, 28.2, 36.7, 39.9 (outside in); the
        // quantised taps stay within a level of them.
        let float = crate::imgproc::blur::gaussian_kernel(13, 2.0);
        for (fixed, exact) in kernel.iter().zip(&float) {
            assert!((*fixed as f32 - exact * 256.0).abs() <= 1.0, "{kernel:?}");
        }
    }

    #[test]
    fn blur_u8_keeps_constants_and_spreads_a_dot() {
        let flat = Frame::filled(9, 7, 3, 123);
        assert_eq!(gaussian_blur_u8(&flat, 2.0), flat);
        let mut dot = Frame::new(15, 15, 1);
        dot.data[7 * 15 + 7] = 255;
        let out = gaussian_blur_u8(&dot, 2.0);
        let kernel = fixed_point_gaussian_kernel(13, 2.0);
        // The centre is 255 · k₆² / 2¹⁶, rounded.
        assert_eq!(out.data[7 * 15 + 7] as u32, (255 * kernel[6] * kernel[6] + (1 << 15)) >> 16);
        assert_eq!(out.data[7 * 15 + 6], out.data[7 * 15 + 8]);
        assert_eq!(gaussian_blur_u8(&dot, 0.0), dot);
    }

    #[test]
    fn erosion_takes_the_cross_minimum_and_ignores_the_border() {
        let mut mask = Mask::filled(5, 5, 1, 1.0);
        mask.data[2 * 5 + 2] = 0.0;
        let once = erode_cross(&mask);
        let zeros: Vec<usize> = once.data.iter().enumerate().filter(|(_, &v)| v == 0.0).map(|(i, _)| i).collect();
        assert_eq!(zeros, vec![7, 11, 12, 13, 17]);
        // Diagonal neighbours stay; the image edge does not erode.
        assert_eq!(once.data[6], 1.0);
        assert_eq!(erode_cross(&Mask::filled(3, 3, 1, 0.5)).data, vec![0.5; 9]);
    }

    #[test]
    fn crop_mask_intersects_clips_erodes_and_blurs() {
        let source = Mask::filled(96, 8, 1, 2.0);
        let mut target = Mask::filled(96, 8, 1, 1.0);
        // The left third is outside the target mask (negative, clipped to 0).
        for y in 0..8 {
            target.data[y * 96..y * 96 + 32].fill(-1.0);
        }
        let mask = prepare_crop_mask(&source, &target);
        // The float blur may overshoot 1 by an ulp; the mask combination clips it.
        assert!(mask.data.iter().all(|&v| (0.0..=1.000001).contains(&v)));
        // Erosion grows the zeros to 34 columns, more than the blur's radius of 25 from the left edge.
        assert_eq!(mask.data[0], 0.0);
        assert!(mask.data[95] > 0.999, "{}", mask.data[95]);
        // The blurred edge sits further right than the clipped one: 0.5 is crossed after column 33.
        let row = &mask.data[..96];
        assert!(row[33] < 0.5 && row[35] > 0.5, "{:?}", &row[30..40]);
    }

    #[test]
    fn normalisation_clips_and_truncates() {
        let face = normalize_crop_frame(&[-0.5, 0.5, 1.5], 1);
        assert_eq!(face.data, vec![0, 127, 255]);
        let two = normalize_crop_frame(&[0.999, 0.0, 0.004, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 2);
        assert_eq!(&two.data[..3], &[254, 0, 1]);
    }

    /// FaceFusion's dumped stages for the first face of parity case 14, fed FaceFusion's own crop:
    /// the sharpened input, the model outputs, the histogram-gated colour match and the mask.
    #[test]
    fn stages_match_facefusion_dump() {
        use crate::testing::{assets_dir, parity_dir, read_bgr, read_png16_mask};
        let dump = parity_dir().join("14_deep_swapper_two_people_morph_80/dump");
        let store = std::sync::Arc::new(crate::models::ModelStore::new(assets_dir().join("standins/light"), false));
        let registry = ModelRegistry::new(std::sync::Arc::new(move |name: &str| store.ensure(name)), 2, 1);
        let swapper = DeepSwapper::new(&registry, &DeepSwapperOptions { morph: 80.0, ..Default::default() }).unwrap();
        let crop = read_bgr(&dump.join("image_deep_warp_0_crop.png"));

        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        let input = prepare_crop_frame(&crop);
        let golden_input = read_png16_rgb(&dump.join("image_deep_prepare_crop_frame_0_input.png"));
        // png16 quantisation is 0.5 / 65535.
        assert!(max_diff(&input, &golden_input) < 1e-5, "input off by {}", max_diff(&input, &golden_input));

        let output = swapper.forward(&crop).unwrap();
        let golden_face = read_png16_rgb(&dump.join("image_deep_forward_0_face.png"));
        let face: Vec<f32> = output.face.data.iter().map(|&v| v as f32 / 255.0).collect();
        // Our face is truncated to 8 bits; the dump is the float output.
        assert!(max_diff(&face, &golden_face) <= 1.0 / 255.0 + 1e-5);
        for (ours, file) in [(&output.source_mask, "source_mask"), (&output.target_mask, "target_mask")] {
            let golden = read_png16_mask(&dump.join(format!("image_deep_forward_0_{file}.png")));
            assert!(max_diff(&ours.data, &golden.data) < 1e-4, "{file}");
        }

        let factor = crate::imgproc::color_match::histogram_similarity(&crop, &output.face);
        assert!((factor - 0.9548771292731082).abs() < 1e-12, "histogram factor {factor}");
        let matched = conditional_match_frame_color(&crop, &output.face);
        let golden = read_bgr(&dump.join("image_deep_conditional_match_frame_color_0_result.png"));
        let worst = matched.data.iter().zip(&golden.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        let differing = matched.data.iter().zip(&golden.data).filter(|(a, b)| a != b).count();
        eprintln!("conditional match vs FaceFusion: max {worst}, {differing} samples differ");
        assert!(worst <= 1 && differing * 1000 < matched.data.len());

        let mask = prepare_crop_mask(&output.source_mask, &output.target_mask);
        let golden = read_png16_mask(&dump.join("image_deep_prepare_crop_mask_0_mask.png"));
        assert!(max_diff(&mask.data, &golden.data) < 1e-4, "mask off by {}", max_diff(&mask.data, &golden.data));
    }

    /// A 3-channel `png16` dump as floats in OpenCV's channel order (BGR), interleaved.
    fn read_png16_rgb(path: &std::path::Path) -> Vec<f32> {
        let rgb = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb16();
        let mut data: Vec<f32> = rgb.into_raw().into_iter().map(|v| v as f32 / 65535.0).collect();
        data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
        data
    }
}
