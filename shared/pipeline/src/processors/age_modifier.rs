//! age_modifier (spec §8.5): StyleGANEX ages or rejuvenates a face, seen through two crops.
//!
//! The model takes a tight `ffhq_512` crop at 256 and a wider `styleganex_384` crop at 384 (its
//! landmarks pulled 12.5 % towards the nose, so more background shows) and renders the wide crop at
//! 4× resolution. FaceFusion shrinks that to 1024 (4 × the tight crop size), pulls its colours back
//! to the wide input crop with `match_frame_color`, and pastes it with the wide crop's matrix scaled
//! by 1024/384.

use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::face::Face;
use crate::geometry::{
    invert_affine, paste_back_u8, scale_face_landmark_5, warp_face_by_landmark_5, Affine, WarpTemplate,
};
use crate::imgproc::color_match::match_frame_color;
use crate::imgproc::resize::{resize_area, resize_linear_f32};
use crate::imgproc::warp::{warp_affine, Border};
use crate::mask::{combine_masks_min, create_box_mask, create_occlusion_mask, occluder_models};
use crate::models::catalogue;
use crate::options::{AgeModifierOptions, MaskOptions, MaskType};
use crate::raster::{Frame, Mask};
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

/// The FaceFusion processor name, which is also the catalogue module of its models.
const MODULE: &str = "age_modifier";
/// How far the wide crop's landmarks are pulled towards the nose.
const EXTEND_LANDMARK_SCALE: f64 = 0.875;
/// The pasted crop is this many times the tight crop's size.
const OUTPUT_SCALE: usize = 4;

impl Default for AgeModifierOptions {
    fn default() -> Self {
        Self { model: "styleganex_age".to_string(), direction: 0.0 }
    }
}

/// Every model the age modifier loads: its own, and the occluder when the occlusion mask is on (it
/// ignores the area and region masks, as FaceFusion does).
pub fn required_models(options: &AgeModifierOptions, masks: &MaskOptions) -> Vec<String> {
    let mut models = vec![options.model.clone()];
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(str::to_string));
    }
    models
}

/// The model's `direction` input: the option mapped linearly from [−100, 100] onto [2.5, −2.5]
/// (positive ages), clamped at the ends, as `numpy.interp` does, then narrowed to `f32`.
pub fn direction_input(direction: f32) -> f32 {
    const FROM: [f64; 2] = [-100.0, 100.0];
    const TO: [f64; 2] = [2.5, -2.5];
    let x = direction as f64;
    if x.is_nan() {
        return TO[0] as f32;
    }
    if x <= FROM[0] {
        return TO[0] as f32;
    }
    if x >= FROM[1] {
        return TO[1] as f32;
    }
    let slope = (TO[1] - TO[0]) / (FROM[1] - FROM[0]);
    (slope * (x - FROM[0]) + TO[0]) as f32
}

/// One crop the model sees: its template and square size.
#[derive(Clone, Copy, Debug, PartialEq)]
struct CropLayout {
    template: WarpTemplate,
    size: usize,
}

/// The two crops of an age model, from the catalogue's FaceFusion metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
struct AgeModelLayout {
    target: CropLayout,
    extended: CropLayout,
}

impl AgeModelLayout {
    fn of(model: &str) -> Result<Self> {
        let entry = catalogue()
            .get(model)
            .filter(|entry| entry.modules.iter().any(|m| m == MODULE))
            .ok_or_else(|| PipelineError::invalid_option("age_modifier_model", format!("unknown model {model}")))?;
        let crop = |input: &str| {
            let template = entry.templates.get(input).and_then(|name| WarpTemplate::from_name(name));
            let size = entry.sizes.get(input).map(|[width, _]| *width as usize);
            template.zip(size).map(|(template, size)| CropLayout { template, size }).ok_or_else(|| {
                PipelineError::ModelContract {
                    name: model.to_string(),
                    reason: format!("the catalogue gives no template and size for input `{input}`"),
                }
            })
        };
        Ok(Self { target: crop("target")?, extended: crop("target_with_background")? })
    }

    /// The side of the crop that is pasted back (1024 for styleganex_age).
    fn output_size(&self) -> usize {
        self.target.size * OUTPUT_SCALE
    }
}

pub struct AgeModifier<'a> {
    /// For the occlusion model, loaded on first use.
    registry: &'a ModelRegistry,
    session: Arc<ModelSession>,
    layout: AgeModelLayout,
    direction: f32,
}

impl<'a> AgeModifier<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &AgeModifierOptions) -> Result<Self> {
        let layout = AgeModelLayout::of(&options.model)?;
        let session = registry.get(&options.model)?;
        Ok(Self { registry, session, layout, direction: direction_input(options.direction) })
    }

    /// Ages one face (already scaled to `frame`) and pastes it into a copy of `frame`.
    pub fn modify(&self, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Frame> {
        let (target, extended) = (self.layout.target, self.layout.extended);
        let landmarks = &face.landmark_5_68;
        let (crop, affine) = warp_face_by_landmark_5(frame, landmarks, target.template, (target.size, target.size));
        let extended_landmarks = scale_face_landmark_5(landmarks, EXTEND_LANDMARK_SCALE);
        let (extended_crop, extended_affine) =
            warp_face_by_landmark_5(frame, &extended_landmarks, extended.template, (extended.size, extended.size));
        let mask = self.crop_mask(&crop, &affine, &extended_affine, masks)?;
        let output = self.forward(&crop, &extended_crop)?;
        let output = match_frame_color(&extended_crop, &output);
        let scale = self.layout.output_size() as f64 / extended.size as f64;
        let paste_affine = extended_affine.map(|row| row.map(|v| v * scale));
        let mask = resize_linear_f32(&mask, output.width, output.height);
        Ok(paste_back_u8(frame, &output, &mask, &paste_affine))
    }

    /// The mask in the wide crop: always the box (padding 0, as FaceFusion forces), plus the
    /// occlusion mask when enabled.
    fn crop_mask(&self, crop: &Frame, affine: &Affine, extended_affine: &Affine, masks: &MaskOptions) -> Result<Mask> {
        let size = self.layout.extended.size;
        let mut crop_masks = vec![create_box_mask(size, size, masks.blur as f64, [0.0; 4])];
        if masks.types.contains(&MaskType::Occlusion) {
            let occlusion = create_occlusion_mask(self.registry, crop, &masks.occluder_model)?;
            let matrix = occlusion_transfer_matrix(affine, extended_affine);
            crop_masks.push(warp_affine(&occlusion, &matrix, size, size, Border::Constant(0)));
        }
        Ok(combine_masks_min(&crop_masks.iter().collect::<Vec<_>>()))
    }

    /// One model call: both crops and the direction in, the wide crop re-rendered out as a BGR
    /// frame at the output size.
    fn forward(&self, crop: &Frame, extended_crop: &Frame) -> Result<Frame> {
        let mut inputs = Vec::new();
        // FaceFusion feeds only the inputs the graph declares.
        if self.session.has_input("target") {
            inputs.push(Input::f32("target", &[1, 3, crop.height, crop.width], planar_rgb_signed(crop)));
        }
        if self.session.has_input("target_with_background") {
            let shape = [1, 3, extended_crop.height, extended_crop.width];
            inputs.push(Input::f32("target_with_background", &shape, planar_rgb_signed(extended_crop)));
        }
        if self.session.has_input("direction") {
            // A 0-d tensor, as FaceFusion passes `numpy.array(value)`.
            inputs.push(Input::f32("direction", &[], vec![self.direction]));
        }
        let outputs = self.session.run(inputs)?;
        let output = outputs
            .into_iter()
            .next()
            .filter(|o| o.shape.len() == 4 && o.shape[0] == 1 && o.shape[1] == 3 && o.shape[2] > 0 && o.shape[3] > 0)
            .ok_or_else(|| PipelineError::ModelContract {
                name: self.session.name().to_string(),
                reason: "expected a (1,3,H,W) image output".to_string(),
            })?;
        let rendered = denormalize_rgb_planes(&output.data, output.shape[3], output.shape[2]);
        let size = self.layout.output_size();
        Ok(resize_area(&rendered, size, size))
    }
}

/// The matrix FaceFusion warps the occlusion mask with, from the tight crop into the wide one:
/// `merge_matrix([extended, invert(affine)])`, which multiplies `invert(affine) · extended`. That
/// is the reverse of the composition that maps the tight crop onto the wide one
/// (`extended · invert(affine)`): both are similarities with the same rotation and scale, but the
/// translations differ, so FaceFusion's occlusion mask lands shifted in the wide crop. Kept, so
/// the pixels match.
fn occlusion_transfer_matrix(affine: &Affine, extended_affine: &Affine) -> Affine {
    multiply(&invert_affine(affine), extended_affine)
}

/// The product `a · b` of two affines as 3×3 matrices with the row (0, 0, 1).
fn multiply(a: &Affine, b: &Affine) -> Affine {
    std::array::from_fn(|r| {
        std::array::from_fn(|c| {
            let translation = if c == 2 { a[r][2] } else { 0.0 };
            a[r][0] * b[0][c] + a[r][1] * b[1][c] + translation
        })
    })
}

/// A BGR crop as planar RGB in [−1, 1]: `(x / 255 − 0.5) / 0.5`, computed in double as numpy does
/// before the float cast.
fn planar_rgb_signed(crop: &Frame) -> Vec<f32> {
    let plane = crop.width * crop.height;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in crop.data.chunks_exact(crop.channels).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = ((px[2 - c] as f64 / 255.0 - 0.5) / 0.5) as f32;
        }
    }
    tensor
}

/// FaceFusion's `normalize_extend_frame` before the resize: planar RGB in [−1, 1] to a BGR frame,
/// `((clip(x, −1, 1) + 1) / 2) · 255` in float32 and truncated, as numpy's `astype(uint8)` does.
fn denormalize_rgb_planes(planes: &[f32], width: usize, height: usize) -> Frame {
    let plane = width * height;
    let mut frame = Frame::new(width, height, 3);
    for (c, values) in planes.chunks_exact(plane).take(3).enumerate() {
        for (i, &v) in values.iter().enumerate() {
            frame.data[i * 3 + 2 - c] = ((v.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0) as u8;
        }
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_maps_onto_the_model_range_reversed_and_clamped() {
        assert_eq!(direction_input(0.0), 0.0);
        assert_eq!(direction_input(60.0), -1.5); // case 11's dumped value
        assert_eq!(direction_input(-100.0), 2.5);
        assert_eq!(direction_input(100.0), -2.5);
        assert_eq!(direction_input(-40.0), 1.0);
        assert_eq!(direction_input(250.0), -2.5);
        assert_eq!(direction_input(-1e9), 2.5);
        assert_eq!(direction_input(f32::NAN), 2.5);
    }

    #[test]
    fn layout_comes_from_the_catalogue() {
        let layout = AgeModelLayout::of("styleganex_age").unwrap();
        assert_eq!(layout.target, CropLayout { template: WarpTemplate::Ffhq512, size: 256 });
        assert_eq!(layout.extended, CropLayout { template: WarpTemplate::Styleganex384, size: 384 });
        assert_eq!(layout.output_size(), 1024);
        assert!(AgeModelLayout::of("gfpgan_1.4").is_err());
        assert!(AgeModelLayout::of("nonsense").is_err());
    }

    #[test]
    fn occlusion_matrix_multiplies_in_facefusions_order() {
        // affine: scale 2, shift (10, 0); extended: scale 1, shift (0, 5).
        let affine = [[2.0, 0.0, 10.0], [0.0, 2.0, 0.0]];
        let extended = [[1.0, 0.0, 0.0], [0.0, 1.0, 5.0]];
        // invert(affine) = scale 0.5, shift (−5, 0); times extended: scale 0.5, shift (−5, 2.5).
        assert_eq!(occlusion_transfer_matrix(&affine, &extended), [[0.5, 0.0, -5.0], [0.0, 0.5, 2.5]]);
        // The geometric composition extended · invert(affine) would shift by (−5, 5) instead.
        assert_eq!(multiply(&extended, &invert_affine(&affine)), [[0.5, 0.0, -5.0], [0.0, 0.5, 5.0]]);
    }

    #[test]
    fn normalisation_round_trips_within_a_level() {
        let mut crop = Frame::new(4, 2, 3);
        crop.data.iter_mut().enumerate().for_each(|(i, v)| *v = (i * 11) as u8);
        let back = denormalize_rgb_planes(&planar_rgb_signed(&crop), 4, 2);
        // Truncation after the float round trip may lose one level, never more.
        assert!(
            crop.data.iter().zip(&back.data).all(|(a, b)| a.abs_diff(*b) <= 1),
            "{:?} vs {:?}",
            crop.data,
            back.data
        );
        // Out-of-range model values are clipped.
        let clipped = denormalize_rgb_planes(&[-3.0, 3.0, 0.0], 1, 1);
        assert_eq!(clipped.data, vec![127, 255, 0]);
    }

    #[test]
    fn required_models_add_the_occluder_only_with_occlusion() {
        let options = AgeModifierOptions::default();
        let mut masks = crate::options::ProcessOptions::default().masks;
        masks.types = vec![MaskType::Box, MaskType::Region, MaskType::Area];
        assert_eq!(required_models(&options, &masks), vec!["styleganex_age"]);
        masks.types.push(MaskType::Occlusion);
        assert_eq!(required_models(&options, &masks), vec!["styleganex_age", masks.occluder_model.as_str()]);
    }

    /// FaceFusion's dumped stages of parity case 11, fed FaceFusion's own crops: the box mask of the
    /// wide crop and the model output brought to 1024.
    #[test]
    fn stages_match_facefusion_dump() {
        use crate::testing::{assets_dir, parity_dir, read_bgr, read_png16_mask};
        let dump = parity_dir().join("11_age_modifier_obama_older_60/dump");
        let store = std::sync::Arc::new(crate::models::ModelStore::new(assets_dir().join("standins/light"), false));
        let registry = ModelRegistry::new(std::sync::Arc::new(move |name: &str| store.ensure(name)), 2, 1);
        let options = AgeModifierOptions { direction: 60.0, ..Default::default() };
        let modifier = AgeModifier::new(&registry, &options).unwrap();
        let crop = read_bgr(&dump.join("image_age_warp_0_crop.png"));
        let extended_crop = read_bgr(&dump.join("image_age_warp_1_crop.png"));

        let masks = crate::options::ProcessOptions::default().masks;
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let mask = modifier.crop_mask(&crop, &identity, &identity, &masks).unwrap();
        let golden = read_png16_mask(&dump.join("image_age_create_box_mask_0_mask.png"));
        let worst = mask.data.iter().zip(&golden.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "box mask off by {worst}");

        let rendered = modifier.forward(&crop, &extended_crop).unwrap();
        let golden = read_bgr(&dump.join("image_age_normalize_extend_frame_0_frame.png"));
        let worst = rendered.data.iter().zip(&golden.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap();
        let differing = rendered.data.iter().zip(&golden.data).filter(|(a, b)| a != b).count();
        eprintln!("age model output vs FaceFusion: max {worst}, {differing} samples differ");
        assert!(worst <= 1 && differing * 1000 < rendered.data.len());
    }
}
