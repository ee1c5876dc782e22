//! expression_restorer (spec §8.6): after earlier processors replaced a face, LivePortrait moves
//! the chosen areas of the new face back to the expression the target had in the original frame.

use crate::error::{PipelineError, Result};
use crate::face::Face;
use crate::geometry::{paste_back_u8, warp_face_by_landmark_5, WarpTemplate};
use crate::mask::{combine_masks_min, create_box_mask, create_occlusion_mask, occluder_models};
use crate::options::{ExpressionRestorerOptions, MaskOptions, MaskType, RestorerArea};
use crate::processors::live_portrait::{
    self, create_rotation, limit_expression, motion_points, numpy_interp, prepare_crop, Keypoints, LivePortrait,
    RenderedCrop, CROP_SIZE,
};
use crate::raster::{Frame, Mask};
use crate::sessions::ModelRegistry;

impl RestorerArea {
    pub const ALL: [Self; 2] = [Self::UpperFace, Self::LowerFace];

    /// FaceFusion's name for the area.
    pub fn name(self) -> &'static str {
        match self {
            Self::UpperFace => "upper-face",
            Self::LowerFace => "lower-face",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|area| area.name() == name)
    }

    /// The keypoints this area restores; when the area is not chosen they keep the running face's
    /// expression.
    fn keypoints(self) -> &'static [usize] {
        match self {
            Self::UpperFace => &[1, 2, 6, 10, 11, 12, 13, 15, 16],
            Self::LowerFace => &[3, 7, 14, 17, 18, 19, 20],
        }
    }
}

/// Keypoints that always keep the running face's expression, whatever the areas.
const KEPT_KEYPOINTS: [usize; 5] = [0, 4, 5, 8, 9];

impl Default for ExpressionRestorerOptions {
    fn default() -> Self {
        Self { model: live_portrait::MODEL.to_string(), factor: 80.0, areas: RestorerArea::ALL.to_vec() }
    }
}

/// Every model the restorer loads (the occluder only when the occlusion mask is on).
/// FaceFusion loads the same three models whatever the options.
pub fn required_models(_options: &ExpressionRestorerOptions, masks: &MaskOptions) -> Vec<String> {
    let mut models: Vec<String> =
        [live_portrait::FEATURE_EXTRACTOR, live_portrait::MOTION_EXTRACTOR, live_portrait::GENERATOR]
            .map(str::to_string)
            .to_vec();
    if masks.types.contains(&MaskType::Occlusion) {
        models.extend(occluder_models(&masks.occluder_model).into_iter().map(str::to_string));
    }
    models
}

pub struct ExpressionRestorer<'a> {
    /// For the occlusion mask's models, loaded on first use.
    registry: &'a ModelRegistry,
    models: LivePortrait,
    /// The blend weight of the original expression, a double as FaceFusion holds it.
    factor: f64,
    areas: Vec<RestorerArea>,
}

impl<'a> ExpressionRestorer<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &ExpressionRestorerOptions) -> Result<Self> {
        if !(0.0..=100.0).contains(&options.factor) {
            return Err(PipelineError::invalid_option(
                "expression_restorer_factor",
                format!("{} is outside 0..100", options.factor),
            ));
        }
        let models = LivePortrait::load(registry, "expression_restorer_model", &options.model)?;
        let factor = numpy_interp(options.factor as f64, [0.0, 100.0], [0.0, 1.2]);
        Ok(Self { registry, models, factor, areas: options.areas.clone() })
    }

    /// Restores one face (already scaled to `frame`): `original` is the unprocessed target frame at
    /// the running frame's size, `frame` the running one. Both are cropped with the same landmarks,
    /// as FaceFusion does. (After a frame enhancer FaceFusion crops its unscaled original at the
    /// scaled position, a misplaced crop; the chain hands this the original resized instead.)
    pub fn restore(&self, original: &Frame, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Frame> {
        let restored = self.restore_crop(original, frame, face, masks)?;
        Ok(paste_back_u8(frame, &restored.crop, &restored.mask, &restored.affine))
    }

    /// The restored crop, its mask and matrix, before paste-back.
    pub fn restore_crop(
        &self,
        original: &Frame,
        frame: &Frame,
        face: &Face,
        masks: &MaskOptions,
    ) -> Result<RenderedCrop> {
        let size = (CROP_SIZE, CROP_SIZE);
        let (original_crop, _) = warp_face_by_landmark_5(original, &face.landmark_5_68, WarpTemplate::Arcface128, size);
        let (crop, affine) = warp_face_by_landmark_5(frame, &face.landmark_5_68, WarpTemplate::Arcface128, size);
        // The padding option is ignored: the box always reaches the crop edge.
        let mut crop_masks: Vec<Mask> = vec![create_box_mask(CROP_SIZE, CROP_SIZE, masks.blur as f64, [0.0; 4])];
        if masks.types.contains(&MaskType::Occlusion) {
            crop_masks.push(create_occlusion_mask(self.registry, &crop, &masks.occluder_model)?);
        }
        let restored = self.apply(&prepare_crop(&original_crop), &prepare_crop(&crop))?;
        let mask = combine_masks_min(&crop_masks.iter().collect::<Vec<_>>());
        Ok(RenderedCrop { crop: restored, mask, affine })
    }

    /// Re-renders the running crop with the blended expression; both inputs are prepared crops.
    fn apply(&self, original: &[f32], running: &[f32]) -> Result<Frame> {
        let feature = self.models.extract_feature(running)?;
        let original_expression = self.models.extract_motion(original)?.expression;
        let running = self.models.extract_motion(running)?;
        let rotation = create_rotation(running.pitch, running.yaw, running.roll);
        let restricted = restrict_areas(&self.areas, &running.expression, original_expression);
        let mut expression = blend(&restricted, &running.expression, self.factor);
        limit_expression(&mut expression);
        let pose = |expression: &Keypoints| {
            motion_points(&running.motion_points, &rotation, expression, running.scale, running.translation)
        };
        // The generator moves what sits at its `target` points to its `source` points: from the
        // running expression to the restored one.
        self.models.generate(&feature, &pose(&expression), &pose(&running.expression))
    }
}

/// The original expression on the chosen areas, the running one elsewhere.
fn restrict_areas(areas: &[RestorerArea], running: &Keypoints, original: Keypoints) -> Keypoints {
    let mut restricted = original;
    let kept = RestorerArea::ALL.into_iter().filter(|area| !areas.contains(area)).flat_map(RestorerArea::keypoints);
    for &k in kept.chain(&KEPT_KEYPOINTS) {
        restricted[k] = running[k];
    }
    restricted
}

/// `original · f + running · (1 − f)` in float32. The weights are Python floats: 1 − f is taken in
/// double, and each weight is narrowed to float32 only where it meets the float32 expressions.
fn blend(original: &Keypoints, running: &Keypoints, factor: f64) -> Keypoints {
    let (weight, rest) = (factor as f32, (1.0 - factor) as f32);
    let mut out = *original;
    for ((out, original), running) in out.iter_mut().zip(original).zip(running) {
        for axis in 0..3 {
            out[axis] = original[axis] * weight + running[axis] * rest;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_names_round_trip() {
        for area in RestorerArea::ALL {
            assert_eq!(RestorerArea::from_name(area.name()), Some(area));
        }
        assert_eq!(RestorerArea::from_name("mouth"), None);
    }

    #[test]
    fn areas_and_kept_keypoints_cover_every_keypoint_once() {
        let mut all: Vec<usize> =
            RestorerArea::ALL.iter().flat_map(|a| a.keypoints().iter().copied()).chain(KEPT_KEYPOINTS).collect();
        all.sort();
        assert_eq!(all, (0..live_portrait::KEYPOINTS).collect::<Vec<_>>());
    }

    #[test]
    fn only_the_chosen_areas_take_the_original_expression() {
        let running = [[0.0f32; 3]; live_portrait::KEYPOINTS];
        let original = [[1.0f32; 3]; live_portrait::KEYPOINTS];
        let lower = restrict_areas(&[RestorerArea::LowerFace], &running, original);
        let restored: Vec<usize> = (0..live_portrait::KEYPOINTS).filter(|&k| lower[k] == original[k]).collect();
        assert_eq!(restored, RestorerArea::LowerFace.keypoints());
        let both = restrict_areas(&RestorerArea::ALL, &running, original);
        assert!(KEPT_KEYPOINTS.iter().all(|&k| both[k] == running[k]));
        assert_eq!(both.iter().filter(|p| **p == original[0]).count(), live_portrait::KEYPOINTS - KEPT_KEYPOINTS.len());
        assert_eq!(restrict_areas(&[], &running, original), running);
    }

    #[test]
    fn blend_weights_original_by_factor() {
        let original = [[1.0f32; 3]; live_portrait::KEYPOINTS];
        let running = [[0.0f32; 3]; live_portrait::KEYPOINTS];
        assert_eq!(blend(&original, &running, 1.0), original);
        assert_eq!(blend(&original, &running, 0.0), running);
        assert_eq!(blend(&running, &original, 0.25)[3], [0.75; 3]);
        // At factor 100 the running weight is 1 − 1.2 in double, then narrowed: −0.2 as float32,
        // not 1 − 1.2f32 (which is one float32 step further from zero).
        assert_eq!(blend(&running, &original, 1.2)[0], [-0.2f32; 3]);
    }

    /// Case 12's dumped motions through the area restriction, blend, limits and posing give
    /// exactly the keypoints FaceFusion fed the generator.
    #[test]
    fn keypoints_match_the_dump_of_case_12() {
        use crate::processors::live_portrait::dump;
        let case = "12_swap_then_expression_restorer_lower_face";
        let original = dump::motion(&dump::record(case, "restorer_forward_extract_motion", 0));
        let running = dump::motion(&dump::record(case, "restorer_forward_extract_motion", 1));
        let generate = dump::record(case, "restorer_forward_generate_frame", 0);
        let factor = numpy_interp(100.0, [0.0, 100.0], [0.0, 1.2]);
        let restricted = restrict_areas(&[RestorerArea::LowerFace], &running.expression, original.expression);
        let mut expression = blend(&restricted, &running.expression, factor);
        limit_expression(&mut expression);
        let rotation = create_rotation(running.pitch, running.yaw, running.roll);
        let pose = |expression: &Keypoints| {
            motion_points(&running.motion_points, &rotation, expression, running.scale, running.translation)
        };
        assert_eq!(pose(&expression), dump::points(&generate["source"]));
        assert_eq!(pose(&running.expression), dump::points(&generate["target"]));
    }
}
