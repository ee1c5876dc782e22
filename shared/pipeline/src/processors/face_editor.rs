//! face_editor (spec §8.7): LivePortrait re-renders a face with its expression, gaze, eye and lip
//! opening and head pose moved by fourteen sliders.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::face::{Face, Point};
use crate::geometry::{paste_back_u8, scale_face_landmark_5, warp_face_by_landmark_5, WarpTemplate};
use crate::mask::create_box_mask;
use crate::options::{FaceEditorOptions, MaskOptions};
use crate::processors::live_portrait::{
    self, create_rotation, flatten, keypoints, limit_expression, motion_points, numpy_interp, option_as_f64, output,
    prepare_crop, Keypoints, LivePortrait, RenderedCrop, CROP_SIZE, KEYPOINTS,
};
use crate::raster::Frame;
use crate::runtime::{Input, ModelSession};
use crate::sessions::ModelRegistry;

impl Default for FaceEditorOptions {
    fn default() -> Self {
        Self {
            model: live_portrait::MODEL.to_string(),
            eyebrow_direction: 0.0,
            eye_gaze_horizontal: 0.0,
            eye_gaze_vertical: 0.0,
            eye_open_ratio: 0.0,
            lip_open_ratio: 0.0,
            mouth_grim: 0.0,
            mouth_pout: 0.0,
            mouth_purse: 0.0,
            mouth_smile: 0.0,
            mouth_position_horizontal: 0.0,
            mouth_position_vertical: 0.0,
            head_pitch: 0.0,
            head_yaw: 0.0,
            head_roll: 0.0,
        }
    }
}

impl FaceEditorOptions {
    /// Each slider with its FaceFusion option name.
    fn sliders(&self) -> [(&'static str, f32); 14] {
        [
            ("face_editor_eyebrow_direction", self.eyebrow_direction),
            ("face_editor_eye_gaze_horizontal", self.eye_gaze_horizontal),
            ("face_editor_eye_gaze_vertical", self.eye_gaze_vertical),
            ("face_editor_eye_open_ratio", self.eye_open_ratio),
            ("face_editor_lip_open_ratio", self.lip_open_ratio),
            ("face_editor_mouth_grim", self.mouth_grim),
            ("face_editor_mouth_pout", self.mouth_pout),
            ("face_editor_mouth_purse", self.mouth_purse),
            ("face_editor_mouth_smile", self.mouth_smile),
            ("face_editor_mouth_position_horizontal", self.mouth_position_horizontal),
            ("face_editor_mouth_position_vertical", self.mouth_position_vertical),
            ("face_editor_head_pitch", self.head_pitch),
            ("face_editor_head_yaw", self.head_yaw),
            ("face_editor_head_roll", self.head_roll),
        ]
    }
}

/// FaceFusion loads all six models whatever the sliders; the editor uses the box mask only.
pub fn required_models(_options: &FaceEditorOptions, _masks: &MaskOptions) -> Vec<String> {
    [
        live_portrait::FEATURE_EXTRACTOR,
        live_portrait::MOTION_EXTRACTOR,
        live_portrait::GENERATOR,
        live_portrait::EYE_RETARGETER,
        live_portrait::LIP_RETARGETER,
        live_portrait::STITCHER,
    ]
    .map(str::to_string)
    .to_vec()
}

/// The sliders as the doubles FaceFusion parsed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sliders {
    eyebrow_direction: f64,
    eye_gaze_horizontal: f64,
    eye_gaze_vertical: f64,
    eye_open_ratio: f64,
    lip_open_ratio: f64,
    mouth_grim: f64,
    mouth_pout: f64,
    mouth_purse: f64,
    mouth_smile: f64,
    mouth_position_horizontal: f64,
    mouth_position_vertical: f64,
    head_pitch: f64,
    head_yaw: f64,
    head_roll: f64,
}

impl Sliders {
    fn from_options(options: &FaceEditorOptions) -> Result<Self> {
        for (name, value) in options.sliders() {
            if !(-1.0..=1.0).contains(&value) {
                return Err(PipelineError::invalid_option(name, format!("{value} is outside -1..1")));
            }
        }
        let v = option_as_f64;
        Ok(Self {
            eyebrow_direction: v(options.eyebrow_direction),
            eye_gaze_horizontal: v(options.eye_gaze_horizontal),
            eye_gaze_vertical: v(options.eye_gaze_vertical),
            eye_open_ratio: v(options.eye_open_ratio),
            lip_open_ratio: v(options.lip_open_ratio),
            mouth_grim: v(options.mouth_grim),
            mouth_pout: v(options.mouth_pout),
            mouth_purse: v(options.mouth_purse),
            mouth_smile: v(options.mouth_smile),
            mouth_position_horizontal: v(options.mouth_position_horizontal),
            mouth_position_vertical: v(options.mouth_position_vertical),
            head_pitch: v(options.head_pitch),
            head_yaw: v(options.head_yaw),
            head_roll: v(options.head_roll),
        })
    }
}

pub struct FaceEditor<'a> {
    models: LivePortrait,
    eye_retargeter: Arc<ModelSession>,
    lip_retargeter: Arc<ModelSession>,
    stitcher: Arc<ModelSession>,
    sliders: Sliders,
    /// Every model is loaded up front; the lifetime keeps the shape of the other processors.
    _registry: PhantomData<&'a ModelRegistry>,
}

impl<'a> FaceEditor<'a> {
    pub fn new(registry: &'a ModelRegistry, options: &FaceEditorOptions) -> Result<Self> {
        let sliders = Sliders::from_options(options)?;
        Ok(Self {
            models: LivePortrait::load(registry, "face_editor_model", &options.model)?,
            eye_retargeter: registry.get(live_portrait::EYE_RETARGETER)?,
            lip_retargeter: registry.get(live_portrait::LIP_RETARGETER)?,
            stitcher: registry.get(live_portrait::STITCHER)?,
            sliders,
            _registry: PhantomData,
        })
    }

    /// Edits one face (already scaled to `frame`) and pastes it back through the box mask.
    pub fn edit(&self, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<Frame> {
        let edited = self.edit_crop(frame, face, masks)?;
        Ok(paste_back_u8(frame, &edited.crop, &edited.mask, &edited.affine))
    }

    /// The edited crop, its mask and matrix, before paste-back.
    pub fn edit_crop(&self, frame: &Frame, face: &Face, masks: &MaskOptions) -> Result<RenderedCrop> {
        let size = (CROP_SIZE, CROP_SIZE);
        // A wider crop than the template's: the head may turn, and the hair and chin come along.
        let landmark_5 = scale_face_landmark_5(&face.landmark_5_68, 1.5);
        let (crop, affine) = warp_face_by_landmark_5(frame, &landmark_5, WarpTemplate::Ffhq512, size);
        // The padding option is ignored, as in FaceFusion.
        let mask = create_box_mask(CROP_SIZE, CROP_SIZE, masks.blur as f64, [0.0; 4]);
        let edited = self.apply(&prepare_crop(&crop), &face.landmark_68)?;
        Ok(RenderedCrop { crop: edited, mask, affine })
    }

    /// Re-renders a prepared crop from its posed keypoints to the edited ones.
    fn apply(&self, input: &[f32], landmark_68: &[Point]) -> Result<Frame> {
        let feature = self.models.extract_feature(input)?;
        let motion = self.models.extract_motion(input)?;
        let pose = |rotation, expression: &Keypoints| {
            motion_points(&motion.motion_points, &rotation, expression, motion.scale, motion.translation)
        };
        let target = pose(create_rotation(motion.pitch, motion.yaw, motion.roll), &motion.expression);
        let mut expression = edit_expression(motion.expression, &self.sliders);
        limit_expression(&mut expression);
        let [pitch, yaw, roll] = edit_angles([motion.pitch, motion.yaw, motion.roll], &self.sliders);
        let mut source = pose(create_rotation(pitch, yaw, roll), &expression);
        self.open_eyes_and_lips(&mut source, &target, landmark_68)?;
        let source = self.stitch(&source, &target)?;
        // The generator moves what sits at `target` (the face as it is) to `source` (as edited).
        self.models.generate(&feature, &source, &target)
    }

    /// Adds the eye and lip retargeters' offsets for the opening sliders. Each retargeter reads
    /// how open the face's eyes (or lips) are and a goal: 0 for a closing slider, fully open
    /// (0.6 for eyes, 1 for lips) otherwise, FaceFusion's switch.
    fn open_eyes_and_lips(&self, source: &mut Keypoints, target: &Keypoints, landmark_68: &[Point]) -> Result<()> {
        let goal = |slider: f64, open: f64| if slider < 0.0 { 0.0 } else { open };
        let (eye, lip) = (self.sliders.eye_open_ratio, self.sliders.lip_open_ratio);
        let eyes = [opening_ratio(landmark_68, LEFT_EYE)?, opening_ratio(landmark_68, RIGHT_EYE)?, goal(eye, 0.6)];
        self.retarget(&self.eye_retargeter, source, target, &eyes, eye)?;
        let lips = [opening_ratio(landmark_68, LIPS)?, goal(lip, 1.0)];
        self.retarget(&self.lip_retargeter, source, target, &lips, lip)
    }

    /// Adds a retargeter's keypoint offsets, weighted by |slider|, to `source`. The retargeter
    /// reads the unedited keypoints followed by `extra` (opening ratios and the goal).
    fn retarget(
        &self,
        model: &ModelSession,
        source: &mut Keypoints,
        target: &Keypoints,
        extra: &[f64],
        slider: f64,
    ) -> Result<()> {
        // FaceFusion runs the model and multiplies by 0, which adds nothing.
        if slider == 0.0 {
            return Ok(());
        }
        let mut input = flatten(target);
        input.extend(extra.iter().map(|&v| v as f32));
        let outputs = model.run(vec![Input::f32("input", &[1, input.len()], input)])?;
        let offsets = output(&outputs, 0, 3 * KEYPOINTS, model.name(), "output")?;
        // numpy.abs of the Python float is a float64 scalar, so the offsets are added in double.
        let weight = slider.abs();
        for (value, &offset) in source.iter_mut().flatten().zip(offsets) {
            *value = (*value as f64 + offset as f64 * weight) as f32;
        }
        Ok(())
    }

    /// The stitcher's correction of the edited keypoints, so the re-rendered crop still fits the
    /// frame around it.
    fn stitch(&self, source: &Keypoints, target: &Keypoints) -> Result<Keypoints> {
        let shape = [1, KEYPOINTS, 3];
        let inputs = vec![Input::f32("source", &shape, flatten(source)), Input::f32("target", &shape, flatten(target))];
        let outputs = self.stitcher.run(inputs)?;
        Ok(keypoints(output(&outputs, 0, 3 * KEYPOINTS, live_portrait::STITCHER, "output")?))
    }
}

/// Keypoint axes.
const X: usize = 0;
const Y: usize = 1;
const Z: usize = 2;

/// One expression edit: (keypoint, axis, a). It adds `interp(v, [−1, 1], [−|a|, |a|])`, negated
/// when a < 0, so it moves by |a| at v = ±1.
type Shift = (usize, usize, f64);

/// One slider's shifts for v > 0 and for v ≤ 0 (FaceFusion's two branches).
struct SliderEdit {
    raise: &'static [Shift],
    lower: &'static [Shift],
}

const fn both(shifts: &'static [Shift]) -> SliderEdit {
    SliderEdit { raise: shifts, lower: shifts }
}

const EYEBROW: SliderEdit = SliderEdit {
    raise: &[(1, Y, 0.015), (2, Y, -0.020)],
    lower: &[(1, X, -0.015), (2, X, 0.020), (1, Y, 0.005), (2, Y, -0.005)],
};
const GAZE_HORIZONTAL: SliderEdit =
    SliderEdit { raise: &[(11, X, 0.015), (15, X, 0.020)], lower: &[(11, X, 0.020), (15, X, 0.015)] };
const GAZE_VERTICAL: SliderEdit =
    both(&[(1, Y, 0.0025), (2, Y, -0.0025), (11, Y, -0.010), (13, Y, -0.005), (15, Y, -0.010), (16, Y, -0.005)]);
const MOUTH_GRIM: SliderEdit = SliderEdit {
    raise: &[(17, Z, -0.005), (19, Z, 0.01), (20, Y, -0.06), (20, Z, -0.03)],
    lower: &[(19, Y, -0.05), (19, Z, -0.02), (20, Z, -0.03)],
};
const MOUTH_POSITION_HORIZONTAL: SliderEdit = both(&[(19, X, 0.05), (20, X, 0.04)]);
const MOUTH_POSITION_VERTICAL: SliderEdit =
    SliderEdit { raise: &[(19, Y, -0.04), (20, Y, -0.02)], lower: &[(19, Y, -0.05), (20, Y, -0.04)] };
const MOUTH_POUT: SliderEdit = SliderEdit {
    raise: &[(19, Y, -0.022), (19, Z, 0.025), (20, Z, -0.002)],
    lower: &[(19, Y, 0.022), (19, Z, 0.025), (20, Z, -0.002)],
};
const MOUTH_PURSE: SliderEdit = SliderEdit {
    raise: &[(19, Y, -0.04), (19, Z, -0.02)],
    lower: &[(14, Y, -0.02), (17, Z, 0.01), (19, Z, -0.015), (20, Z, -0.002)],
};
const MOUTH_SMILE: SliderEdit = SliderEdit {
    raise: &[(20, Y, -0.015), (14, Y, -0.025), (17, Y, 0.01), (17, Z, 0.004), (3, Y, -0.0045), (7, Y, -0.0045)],
    lower: &[
        (14, Y, -0.02),
        (17, Y, 0.003),
        (19, Y, 0.02),
        (19, Z, -0.005),
        (20, Z, 0.01),
        (3, Y, 0.0045),
        (7, Y, 0.0045),
    ],
};

/// The slider edits in FaceFusion's order; an element moved twice is rounded to float32 in between.
fn edit_expression(mut expression: Keypoints, sliders: &Sliders) -> Keypoints {
    let edits = [
        (&GAZE_HORIZONTAL, sliders.eye_gaze_horizontal),
        (&GAZE_VERTICAL, sliders.eye_gaze_vertical),
        (&MOUTH_GRIM, sliders.mouth_grim),
        (&MOUTH_POSITION_HORIZONTAL, sliders.mouth_position_horizontal),
        (&MOUTH_POSITION_VERTICAL, sliders.mouth_position_vertical),
        (&MOUTH_POUT, sliders.mouth_pout),
        (&MOUTH_PURSE, sliders.mouth_purse),
        (&MOUTH_SMILE, sliders.mouth_smile),
        (&EYEBROW, sliders.eyebrow_direction),
    ];
    for (edit, v) in edits {
        let shifts = if v > 0.0 { edit.raise } else { edit.lower };
        for &(keypoint, axis, a) in shifts {
            let shift = numpy_interp(v, [-1.0, 1.0], [-a.abs(), a.abs()]);
            let shift = if a < 0.0 { -shift } else { shift };
            // The float32 element meets a numpy float64: added in double, stored back as float32.
            let value = &mut expression[keypoint][axis];
            *value = (*value as f64 + shift) as f32;
        }
    }
    expression
}

/// How far each head slider turns at v = 1, in degrees, and the range FaceFusion keeps the
/// result in (widened to include the face's own angle): pitch, yaw, roll.
const HEAD_TURN: [f64; 3] = [-20.0, -60.0, 15.0];
const HEAD_LIMIT: [f32; 3] = [30.0, 60.0, 20.0];

/// The face's pitch, yaw and roll turned by the head sliders, in float32 as numpy adds a Python
/// float to the extractor's float32 angles.
fn edit_angles(angles: [f32; 3], sliders: &Sliders) -> [f32; 3] {
    let sliders = [sliders.head_pitch, sliders.head_yaw, sliders.head_roll];
    let mut edited = angles;
    for axis in 0..3 {
        let turn = numpy_interp(sliders[axis], [-1.0, 1.0], [-HEAD_TURN[axis], HEAD_TURN[axis]]);
        let angle = angles[axis];
        let (mut low, mut high) = (-HEAD_LIMIT[axis], HEAD_LIMIT[axis]);
        if angle < 0.0 {
            low = low.min(angle);
        } else {
            high = high.max(angle);
        }
        edited[axis] = (angle + turn as f32).max(low).min(high);
    }
    edited
}

/// 68-landmark indices (top, bottom, left, right) of an opening: its height over its width.
const LEFT_EYE: [usize; 4] = [37, 40, 39, 36];
const RIGHT_EYE: [usize; 4] = [43, 46, 45, 42];
const LIPS: [usize; 4] = [62, 66, 54, 48];

/// ‖top − bottom‖ / (‖left − right‖ + 1e-6), in double like FaceFusion's scaled landmarks.
fn opening_ratio(landmark_68: &[Point], [top, bottom, left, right]: [usize; 4]) -> Result<f64> {
    let point = |i: usize| {
        landmark_68.get(i).copied().ok_or_else(|| {
            PipelineError::MissingInput(format!("the face has {} landmarks; the editor needs 68", landmark_68.len()))
        })
    };
    let distance = |a: Point, b: Point| ((a[0] - b[0]) * (a[0] - b[0]) + (a[1] - b[1]) * (a[1] - b[1])).sqrt();
    Ok(distance(point(top)?, point(bottom)?) / (distance(point(left)?, point(right)?) + 1e-6))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sliders(edit: impl FnOnce(&mut FaceEditorOptions)) -> Sliders {
        let mut options = FaceEditorOptions::default();
        edit(&mut options);
        Sliders::from_options(&options).unwrap()
    }

    const NEUTRAL: Keypoints = [[0.0; 3]; KEYPOINTS];

    /// Every (keypoint, axis) an edit moved, with the amount.
    fn moved(expression: &Keypoints) -> Vec<(usize, usize, f32)> {
        let mut out = Vec::new();
        for (k, point) in expression.iter().enumerate() {
            for (axis, &v) in point.iter().enumerate() {
                if v != 0.0 {
                    out.push((k, axis, v));
                }
            }
        }
        out
    }

    #[test]
    fn neutral_sliders_change_nothing() {
        let mut expression = NEUTRAL;
        expression[19] = [0.01, -0.02, 0.003];
        assert_eq!(edit_expression(expression, &Sliders::default()), expression);
        assert_eq!(edit_angles([4.5, -2.0, 25.0], &Sliders::default()), [4.5, -2.0, 25.0]);
    }

    #[test]
    fn smile_and_eyebrow_take_their_branch() {
        let smile = edit_expression(NEUTRAL, &sliders(|o| o.mouth_smile = 1.0));
        let expected =
            [(3, Y, -0.0045), (7, Y, -0.0045), (14, Y, -0.025), (17, Y, 0.01), (17, Z, 0.004), (20, Y, -0.015)];
        assert_eq!(moved(&smile), expected.map(|(k, a, v)| (k, a, v as f32)));
        let frown = edit_expression(NEUTRAL, &sliders(|o| o.mouth_smile = -0.5));
        assert_eq!(frown[19][Y], -0.01);
        assert_eq!(frown[14][Y], 0.01);
        let raised = edit_expression(NEUTRAL, &sliders(|o| o.eyebrow_direction = 0.5));
        let raised = moved(&raised);
        assert_eq!(raised.iter().map(|&(k, a, _)| (k, a)).collect::<Vec<_>>(), [(1, Y), (2, Y)]);
        assert!((raised[0].2 - 0.0075).abs() < 1e-9 && (raised[1].2 + 0.01).abs() < 1e-9, "{raised:?}");
        let lowered = edit_expression(NEUTRAL, &sliders(|o| o.eyebrow_direction = -1.0));
        assert_eq!(moved(&lowered), vec![(1, X, 0.015), (1, Y, -0.005), (2, X, -0.02), (2, Y, 0.005)]);
    }

    #[test]
    fn edits_accumulate_in_order_then_clip() {
        // Position, pout and purse all move keypoint 19; each step is rounded to float32, and the
        // limits then clip the sum.
        let all = sliders(|o| {
            o.mouth_position_vertical = 1.0;
            o.mouth_pout = 1.0;
            o.mouth_purse = 1.0;
        });
        let mut expression = edit_expression(NEUTRAL, &all);
        let step = |value: f32, shift: f64| (value as f64 + shift) as f32;
        assert_eq!(expression[19][Y], step(step(step(0.0, -0.04), -0.022), -0.04));
        assert_eq!(expression[19][Z], step(step(0.0, 0.025), -0.02));
        limit_expression(&mut expression);
        assert_eq!(expression[19][Y], live_portrait::EXPRESSION_MIN[19][Y]);
        assert_eq!(expression[19][Z], step(step(0.0, 0.025), -0.02));
    }

    #[test]
    fn head_turns_are_limited_unless_the_face_is_already_beyond() {
        let turned = edit_angles([0.0, -2.0, 1.0], &sliders(|o| o.head_yaw = 0.25));
        assert_eq!(turned, [0.0, -17.0, 1.0]);
        let far = edit_angles(
            [10.0, -50.0, 5.0],
            &sliders(|o| {
                o.head_pitch = -1.0;
                o.head_yaw = 1.0;
                o.head_roll = 1.0;
            }),
        );
        assert_eq!(far, [30.0, -60.0, 20.0]);
        // A face already turned 70° keeps its own angle as the limit.
        let beyond = edit_angles([0.0, -70.0, 0.0], &sliders(|o| o.head_yaw = 0.5));
        assert_eq!(beyond, [0.0, -70.0, 0.0]);
    }

    #[test]
    fn opening_ratio_is_height_over_width() {
        let mut landmarks = vec![[0.0, 0.0]; 68];
        landmarks[37] = [5.0, 0.0];
        landmarks[40] = [5.0, 3.0];
        landmarks[39] = [10.0, 0.0];
        landmarks[36] = [0.0, 0.0];
        let ratio = opening_ratio(&landmarks, LEFT_EYE).unwrap();
        assert_eq!(ratio, 3.0 / (10.0 + 1e-6));
        assert!(opening_ratio(&landmarks[..5], LEFT_EYE).is_err());
    }

    #[test]
    fn sliders_outside_the_range_are_rejected() {
        let options = FaceEditorOptions { head_roll: 1.5, ..Default::default() };
        let error = Sliders::from_options(&options).unwrap_err();
        assert!(matches!(error, PipelineError::InvalidOption { ref option, .. } if option == "face_editor_head_roll"));
        assert!(Sliders::from_options(&FaceEditorOptions { mouth_pout: f32::NAN, ..Default::default() }).is_err());
    }

    /// Case 13's dumped motion through the slider edits, limits, head turn, posing and the
    /// weighted retargeter outputs gives exactly the keypoints FaceFusion fed the stitcher.
    #[test]
    fn keypoints_match_the_dump_of_case_13() {
        use crate::processors::live_portrait::dump;
        let case = "13_face_editor_obama_sliders";
        let motion = dump::motion(&dump::record(case, "editor_forward_extract_motion", 0));
        let eye = dump::record(case, "editor_forward_retarget_eye", 0);
        let lip = dump::record(case, "editor_forward_retarget_lip", 0);
        let stitch = dump::record(case, "editor_forward_stitch", 0);
        let options = FaceEditorOptions {
            eyebrow_direction: -0.4,
            eye_gaze_horizontal: 0.5,
            eye_gaze_vertical: -0.3,
            eye_open_ratio: 0.6,
            lip_open_ratio: -0.5,
            mouth_smile: 0.5,
            mouth_position_horizontal: 0.3,
            head_yaw: 0.25,
            head_roll: -0.3,
            ..Default::default()
        };
        let sliders = Sliders::from_options(&options).unwrap();
        let pose = |rotation, expression: &Keypoints| {
            motion_points(&motion.motion_points, &rotation, expression, motion.scale, motion.translation)
        };
        let target = pose(create_rotation(motion.pitch, motion.yaw, motion.roll), &motion.expression);
        assert_eq!(flatten(&target), dump::values(&eye["input"])[..63]);
        assert_eq!(flatten(&target), dump::values(&lip["input"])[..63]);
        assert_eq!(dump::values(&eye["input"])[65], 0.6);
        assert_eq!(dump::values(&lip["input"])[64], 0.0);

        let mut expression = edit_expression(motion.expression, &sliders);
        limit_expression(&mut expression);
        let angles = edit_angles([motion.pitch, motion.yaw, motion.roll], &sliders);
        assert_eq!(angles.to_vec(), dump::values(&dump::record(case, "editor_create_rotation", 1)["angles"]));
        let mut source = pose(create_rotation(angles[0], angles[1], angles[2]), &expression);
        for (record, slider) in [(&eye, sliders.eye_open_ratio), (&lip, sliders.lip_open_ratio)] {
            let offsets = dump::values(&record["output"]);
            for (value, offset) in source.iter_mut().flatten().zip(offsets) {
                *value = (*value as f64 + offset as f64 * slider.abs()) as f32;
            }
        }
        assert_eq!(source, dump::points(&stitch["source"]));
        assert_eq!(target, dump::points(&stitch["target"]));
    }
}
