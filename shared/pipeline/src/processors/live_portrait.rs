//! What expression_restorer and face_editor share (spec §8.6, §8.7): the LivePortrait models, the
//! 256-pixel model input, the motion extractor's pose and keypoints, the rotation from Euler angles,
//! the motion points the generator is driven by, and the expression limits.
//!
//! The arithmetic follows the dtypes numpy leaves FaceFusion with, so the generator sees the same
//! float32 keypoints: the motion extractor's outputs are float32 and stay float32 (Python floats
//! combined with them are narrowed first), while numpy float64 scalars widen a product to double.

use std::sync::Arc;

use crate::error::{PipelineError, Result};
use crate::geometry::Affine;
use crate::imgproc::resize::resize_area;
use crate::raster::{Frame, Mask};
use crate::runtime::{Input, ModelSession, Output};
use crate::sessions::ModelRegistry;

/// The one model choice FaceFusion offers for both processors.
pub const MODEL: &str = "live_portrait";
pub const FEATURE_EXTRACTOR: &str = "live_portrait_feature_extractor";
pub const MOTION_EXTRACTOR: &str = "live_portrait_motion_extractor";
pub const GENERATOR: &str = "live_portrait_generator";
pub const EYE_RETARGETER: &str = "live_portrait_eye_retargeter";
pub const LIP_RETARGETER: &str = "live_portrait_lip_retargeter";
pub const STITCHER: &str = "live_portrait_stitcher";

/// Both processors crop the face at 512 and feed the models half of that.
pub const CROP_SIZE: usize = 512;
const INPUT_SIZE: usize = CROP_SIZE / 2;

/// LivePortrait's implicit keypoints.
pub const KEYPOINTS: usize = 21;
/// Per keypoint (x, y, z): an expression, motion points, or the limits of an expression.
pub type Keypoints = [[f32; 3]; KEYPOINTS];
/// A 3×3 rotation, row-major.
pub type Rotation = [[f32; 3]; 3];

/// FaceFusion's published table is written in decimal and narrowed to float32 once, so the limits
/// are the decimals rounded to double and then to float (not straight to float).
const fn narrow(table: [[f64; 3]; KEYPOINTS]) -> Keypoints {
    let mut out = [[0.0f32; 3]; KEYPOINTS];
    let mut k = 0;
    while k < KEYPOINTS {
        let mut axis = 0;
        while axis < 3 {
            out[k][axis] = table[k][axis] as f32;
            axis += 1;
        }
        k += 1;
    }
    out
}

/// Lower bound of every expression value (spec §8.7).
pub const EXPRESSION_MIN: Keypoints = narrow([
    [-2.88067125e-02, -8.12731311e-02, -1.70541159e-03],
    [-4.88598682e-02, -3.32196616e-02, -1.67431499e-04],
    [-6.75425082e-02, -4.28681746e-02, -1.98950816e-04],
    [-7.23103955e-02, -3.28503326e-02, -7.31324719e-04],
    [-3.87073644e-02, -6.01546466e-02, -5.50269964e-04],
    [-6.38048723e-02, -2.23840728e-01, -7.13261834e-04],
    [-3.02710701e-02, -3.93195450e-02, -8.24086510e-06],
    [-2.95799859e-02, -5.39318882e-02, -1.74219604e-04],
    [-2.92359516e-02, -1.53050944e-02, -6.30460854e-05],
    [-5.56493877e-03, -2.34344602e-02, -1.26858242e-04],
    [-4.37593013e-02, -2.77768299e-02, -2.70503685e-02],
    [-1.76926646e-02, -1.91676542e-02, -1.15090821e-04],
    [-8.34268332e-03, -3.99775570e-03, -3.27481248e-05],
    [-3.40162888e-02, -2.81868968e-02, -1.96679524e-04],
    [-2.91855410e-02, -3.97511162e-02, -2.81230678e-05],
    [-1.50395725e-02, -2.49494594e-02, -9.42573533e-05],
    [-1.67938769e-02, -2.00953931e-02, -4.00750607e-04],
    [-1.86435618e-02, -2.48535164e-02, -2.74416432e-02],
    [-4.61211195e-03, -1.21660791e-02, -2.93173041e-04],
    [-4.10017073e-02, -7.43824020e-02, -4.42762971e-02],
    [-1.90370996e-02, -3.74363363e-02, -1.34740388e-02],
]);

/// Upper bound of every expression value (spec §8.7).
pub const EXPRESSION_MAX: Keypoints = narrow([
    [4.46682945e-02, 7.08772913e-02, 4.08344204e-04],
    [2.14308221e-02, 6.15894832e-02, 4.85319615e-05],
    [3.02363783e-02, 4.45043296e-02, 1.28298725e-05],
    [3.05869691e-02, 3.79812494e-02, 6.57040102e-04],
    [4.45670523e-02, 3.97259220e-02, 7.10966764e-04],
    [9.43699256e-02, 9.85926315e-02, 2.02551950e-04],
    [1.61131397e-02, 2.92906128e-02, 3.44733417e-06],
    [5.23825921e-02, 1.07065082e-01, 6.61510974e-04],
    [2.85718683e-03, 8.32320191e-03, 2.39314613e-04],
    [2.57947259e-02, 1.60935968e-02, 2.41853559e-05],
    [4.90833223e-02, 3.43903080e-02, 3.22353356e-02],
    [1.44766076e-02, 3.39248963e-02, 1.42291479e-04],
    [8.75749043e-04, 6.82212645e-03, 2.76097053e-05],
    [1.86958015e-02, 3.84016186e-02, 7.33085908e-05],
    [2.01714113e-02, 4.90544215e-02, 2.34028921e-05],
    [2.46518422e-02, 3.29151377e-02, 3.48571630e-05],
    [2.22457591e-02, 1.21796541e-02, 1.56396593e-04],
    [1.72109623e-02, 3.01626958e-02, 1.36556877e-02],
    [1.83460284e-02, 1.61141958e-02, 2.87440169e-04],
    [3.57594155e-02, 1.80554688e-01, 2.75554154e-02],
    [2.17450950e-02, 8.66811201e-02, 3.34241726e-02],
]);

/// Clips every value into [EXPRESSION_MIN, EXPRESSION_MAX], keeping edits within what the
/// generator was trained on.
pub fn limit_expression(expression: &mut Keypoints) {
    for ((point, min), max) in expression.iter_mut().zip(&EXPRESSION_MIN).zip(&EXPRESSION_MAX) {
        for axis in 0..3 {
            // max/min rather than clamp: clamp panics on NaN bounds, and these never are.
            point[axis] = point[axis].max(min[axis]).min(max[axis]);
        }
    }
}

/// `numpy.interp` at one point over a two-point table, with numpy's arithmetic (slope first), so
/// option values map to the very doubles FaceFusion adds.
pub fn numpy_interp(x: f64, xp: [f64; 2], fp: [f64; 2]) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x >= xp[1] {
        return fp[1];
    }
    if x <= xp[0] {
        return fp[0];
    }
    let slope = (fp[1] - fp[0]) / (xp[1] - xp[0]);
    slope * (x - xp[0]) + fp[0]
}

/// An option value as the double FaceFusion parsed from the command line. Our options hold
/// float32; their shortest decimal form is what the user typed (for up to 7 significant digits),
/// and parsing it again gives Python's double, e.g. -0.4 rather than -0.4000000059604645.
pub fn option_as_f64(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(value as f64)
}

/// The rotation of extrinsic "xyz" Euler angles in degrees, as scipy's
/// `Rotation.from_euler('xyz', [pitch, yaw, roll], degrees=True).as_matrix()` computes it (through
/// a quaternion, in double), narrowed to float32.
pub fn create_rotation(pitch: f32, yaw: f32, roll: f32) -> Rotation {
    let quaternion = [(0, pitch), (1, yaw), (2, roll)]
        .into_iter()
        .map(|(axis, degrees)| elementary_quaternion(axis, degrees as f64))
        .reduce(|composed, next| compose_quaternions(&next, &composed))
        .unwrap_or([0.0, 0.0, 0.0, 1.0]);
    quaternion_matrix(&quaternion).map(|row| row.map(|v| v as f32))
}

/// (x, y, z, w) of a rotation by `degrees` about one axis; numpy's deg2rad multiplies by π/180.
fn elementary_quaternion(axis: usize, degrees: f64) -> [f64; 4] {
    let half = degrees * (std::f64::consts::PI / 180.0) / 2.0;
    let mut quaternion = [0.0, 0.0, 0.0, half.cos()];
    quaternion[axis] = half.sin();
    quaternion
}

/// The Hamilton product p·q of (x, y, z, w) quaternions, in scipy's operation order. Extrinsic
/// angles compose each later rotation on the left.
fn compose_quaternions(p: &[f64; 4], q: &[f64; 4]) -> [f64; 4] {
    let cross = [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]];
    [
        p[3] * q[0] + q[3] * p[0] + cross[0],
        p[3] * q[1] + q[3] * p[1] + cross[1],
        p[3] * q[2] + q[3] * p[2] + cross[2],
        p[3] * q[3] - p[0] * q[0] - p[1] * q[1] - p[2] * q[2],
    ]
}

/// The rotation matrix of a unit (x, y, z, w) quaternion, in scipy's operation order.
fn quaternion_matrix(q: &[f64; 4]) -> [[f64; 3]; 3] {
    let [x, y, z, w] = *q;
    let (x2, y2, z2, w2) = (x * x, y * y, z * z, w * w);
    let (xy, zw, xz, yw, yz, xw) = (x * y, z * w, x * z, y * w, y * z, x * w);
    [
        [x2 - y2 - z2 + w2, 2.0 * (xy - zw), 2.0 * (xz + yw)],
        [2.0 * (xy + zw), -x2 + y2 - z2 + w2, 2.0 * (yz - xw)],
        [2.0 * (xz - yw), 2.0 * (yz + xw), -x2 - y2 + z2 + w2],
    ]
}

/// `scale · (points · Rᵀ + expression) + translation` in float32: the keypoints of a face posed
/// by `rotation` and showing `expression`. numpy hands the 3-term products to BLAS, whose kernels
/// accumulate with fused multiply-adds from the first term on.
pub fn motion_points(
    points: &Keypoints,
    rotation: &Rotation,
    expression: &Keypoints,
    scale: f32,
    translation: [f32; 3],
) -> Keypoints {
    let mut out = [[0.0f32; 3]; KEYPOINTS];
    for ((out, point), expression) in out.iter_mut().zip(points).zip(expression) {
        for (axis, value) in out.iter_mut().enumerate() {
            let row = &rotation[axis];
            let rotated = point[2].mul_add(row[2], point[1].mul_add(row[1], point[0] * row[0]));
            *value = scale * (rotated + expression[axis]) + translation[axis];
        }
    }
    out
}

/// The 512 crop as the extractors take it: INTER_AREA to 256, RGB planes in [0, 1] (numpy divides
/// in double before the float32 cast).
pub fn prepare_crop(crop: &Frame) -> Vec<f32> {
    let small = resize_area(crop, INPUT_SIZE, INPUT_SIZE);
    let plane = INPUT_SIZE * INPUT_SIZE;
    let mut tensor = vec![0.0f32; 3 * plane];
    for (i, px) in small.data.chunks_exact(3).enumerate() {
        for c in 0..3 {
            tensor[c * plane + i] = (px[2 - c] as f64 / 255.0) as f32;
        }
    }
    tensor
}

/// The motion extractor's reading of a face.
#[derive(Clone, Debug, PartialEq)]
pub struct Motion {
    /// Degrees.
    pub pitch: f32,
    pub yaw: f32,
    pub roll: f32,
    pub scale: f32,
    pub translation: [f32; 3],
    pub expression: Keypoints,
    /// The canonical keypoints, before pose and expression.
    pub motion_points: Keypoints,
}

/// A re-rendered face crop with its paste-back mask and frame → crop matrix, before paste-back.
pub struct RenderedCrop {
    pub crop: Frame,
    pub mask: Mask,
    pub affine: Affine,
}

/// The appearance features the generator warps; opaque outside the models.
pub struct FeatureVolume(Vec<f32>);

/// The feature volume's shape: 32 channels of a 16×64×64 volume.
const FEATURE_SHAPE: [usize; 5] = [1, 32, 16, 64, 64];

/// The three models both processors run.
pub struct LivePortrait {
    feature_extractor: Arc<ModelSession>,
    motion_extractor: Arc<ModelSession>,
    generator: Arc<ModelSession>,
}

impl LivePortrait {
    /// Loads the three models; `model` is the processor's model option, checked here.
    pub fn load(registry: &ModelRegistry, option: &str, model: &str) -> Result<Self> {
        check_model(option, model)?;
        Ok(Self {
            feature_extractor: registry.get(FEATURE_EXTRACTOR)?,
            motion_extractor: registry.get(MOTION_EXTRACTOR)?,
            generator: registry.get(GENERATOR)?,
        })
    }

    /// The feature volume of a prepared crop.
    pub fn extract_feature(&self, input: &[f32]) -> Result<FeatureVolume> {
        let outputs = self.feature_extractor.run(vec![model_input(input)])?;
        let volume = output(&outputs, 0, FEATURE_SHAPE.iter().product(), FEATURE_EXTRACTOR, "feature_volume")?;
        Ok(FeatureVolume(volume.to_vec()))
    }

    /// Pose, scale, translation, expression and keypoints of a prepared crop; the seven outputs
    /// come in this order.
    pub fn extract_motion(&self, input: &[f32]) -> Result<Motion> {
        let outputs = self.motion_extractor.run(vec![model_input(input)])?;
        let get = |index, len, what| output(&outputs, index, len, MOTION_EXTRACTOR, what);
        let translation = get(4, 3, "translation")?;
        Ok(Motion {
            pitch: get(0, 1, "pitch")?[0],
            yaw: get(1, 1, "yaw")?[0],
            roll: get(2, 1, "roll")?[0],
            scale: get(3, 1, "scale")?[0],
            translation: [translation[0], translation[1], translation[2]],
            expression: keypoints(get(5, 3 * KEYPOINTS, "expression")?),
            motion_points: keypoints(get(6, 3 * KEYPOINTS, "motion_points")?),
        })
    }

    /// The crop re-rendered so that what sits at the `target` keypoints moves to the `source`
    /// ones: BGR, 512², each value clipped to [0, 1], scaled in float32 and truncated to u8.
    pub fn generate(&self, feature: &FeatureVolume, source: &Keypoints, target: &Keypoints) -> Result<Frame> {
        let inputs = vec![
            Input::f32("feature_volume", &FEATURE_SHAPE, feature.0.clone()),
            Input::f32("source", &[1, KEYPOINTS, 3], flatten(source)),
            Input::f32("target", &[1, KEYPOINTS, 3], flatten(target)),
        ];
        let outputs = self.generator.run(inputs)?;
        let plane = CROP_SIZE * CROP_SIZE;
        let image = output(&outputs, 0, 3 * plane, GENERATOR, "output")?;
        let mut crop = Frame::new(CROP_SIZE, CROP_SIZE, 3);
        for (c, values) in image.chunks_exact(plane).enumerate() {
            for (i, &v) in values.iter().enumerate() {
                // RGB planes into BGR pixels; `as u8` truncates like numpy's cast.
                crop.data[i * 3 + 2 - c] = (v.clamp(0.0, 1.0) * 255.0) as u8;
            }
        }
        Ok(crop)
    }
}

/// Fails unless `model` is FaceFusion's only choice for these processors.
pub fn check_model(option: &str, model: &str) -> Result<()> {
    if model == MODEL {
        Ok(())
    } else {
        Err(PipelineError::invalid_option(option, format!("unknown model {model}, expected {MODEL}")))
    }
}

fn model_input(input: &[f32]) -> Input {
    Input::f32("input", &[1, 3, INPUT_SIZE, INPUT_SIZE], input.to_vec())
}

/// Output `index` of a run, which must hold exactly `len` values.
pub fn output<'o>(outputs: &'o [Output], index: usize, len: usize, model: &str, what: &str) -> Result<&'o [f32]> {
    outputs.get(index).filter(|o| o.data.len() == len).map(|o| o.data.as_slice()).ok_or_else(|| {
        PipelineError::ModelContract { name: model.to_string(), reason: format!("expected {len} values for {what}") }
    })
}

/// 63 values as 21 (x, y, z) keypoints; the caller checked the length.
pub fn keypoints(values: &[f32]) -> Keypoints {
    let mut out = [[0.0f32; 3]; KEYPOINTS];
    for (point, chunk) in out.iter_mut().zip(values.chunks_exact(3)) {
        point.copy_from_slice(chunk);
    }
    out
}

/// 21 keypoints as the 63 values of a (1, 21, 3) tensor.
pub fn flatten(points: &Keypoints) -> Vec<f32> {
    points.iter().flatten().copied().collect()
}

/// FaceFusion's dumped intermediate values of the parity cases, for unit tests of the arithmetic.
#[cfg(test)]
pub(crate) mod dump {
    use super::*;
    use serde_json::Value;

    /// The `items` of `function`'s `call`-th record in a parity case's dump.
    pub fn record(case: &str, function: &str, call: u64) -> Value {
        let path = crate::test_assets::parity_dir().join(case).join("dump/index.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let records: Vec<Value> = serde_json::from_str(&text).unwrap();
        let found = records.into_iter().find(|r| r["fn"] == function && r["call"] == call);
        found.map(|r| r["items"].clone()).unwrap_or_else(|| panic!("no dump record {function} #{call}"))
    }

    /// Every number of a nested array, as the float32 values FaceFusion held.
    pub fn values(value: &Value) -> Vec<f32> {
        match value {
            Value::Array(items) => items.iter().flat_map(values).collect(),
            Value::Number(n) => vec![n.as_f64().unwrap() as f32],
            other => panic!("not a number array: {other}"),
        }
    }

    pub fn points(value: &Value) -> Keypoints {
        keypoints(&values(value))
    }

    /// A `forward_extract_motion` record.
    pub fn motion(item: &Value) -> Motion {
        let translation = values(&item["translation"]);
        Motion {
            pitch: values(&item["pitch"])[0],
            yaw: values(&item["yaw"])[0],
            roll: values(&item["roll"])[0],
            scale: values(&item["scale"])[0],
            translation: [translation[0], translation[1], translation[2]],
            expression: points(&item["expression"]),
            motion_points: points(&item["motion_points"]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: &Rotation, b: &[[f64; 3]; 3], tolerance: f64) {
        for (ra, rb) in a.iter().zip(b) {
            for (x, y) in ra.iter().zip(rb) {
                assert!((*x as f64 - y).abs() <= tolerance, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn rotation_is_roll_after_yaw_after_pitch() {
        let (p, y, r) = (10.0f64.to_radians(), (-25.0f64).to_radians(), 40.0f64.to_radians());
        let rx = [[1.0, 0.0, 0.0], [0.0, p.cos(), -p.sin()], [0.0, p.sin(), p.cos()]];
        let ry = [[y.cos(), 0.0, y.sin()], [0.0, 1.0, 0.0], [-y.sin(), 0.0, y.cos()]];
        let rz = [[r.cos(), -r.sin(), 0.0], [r.sin(), r.cos(), 0.0], [0.0, 0.0, 1.0]];
        let product = |a: [[f64; 3]; 3], b: [[f64; 3]; 3]| {
            let mut out = [[0.0; 3]; 3];
            for i in 0..3 {
                for j in 0..3 {
                    out[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
                }
            }
            out
        };
        assert_close(&create_rotation(10.0, -25.0, 40.0), &product(rz, product(ry, rx)), 1e-6);
    }

    #[test]
    fn rotation_matches_scipy_in_the_golden_dump() {
        // Case 12's restorer_create_rotation record: angles and scipy's float32 matrix.
        let scipy = [
            [0.998_213_112_354_278_6, 0.022_215_906_530_618_668, 0.055_471_174_418_926_24],
            [-0.018_385_173_752_903_94, 0.997_472_226_619_720_5, -0.068_637_974_560_260_77],
            [-0.056_855_808_943_510_056, 0.067_495_480_179_786_68, 0.996_098_279_953_002_9],
        ];
        let rotation = create_rotation(3.876_428_6, 3.259_355_5, -1.055_159_2);
        assert_eq!(rotation, scipy.map(|row| row.map(|v| v as f32)));
    }

    #[test]
    fn identity_angles_give_the_identity() {
        assert_eq!(create_rotation(0.0, 0.0, 0.0), [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
    }

    #[test]
    fn motion_points_scale_rotate_and_shift() {
        let mut points = [[0.0f32; 3]; KEYPOINTS];
        points[0] = [1.0, 2.0, 3.0];
        let mut expression = [[0.0f32; 3]; KEYPOINTS];
        expression[0] = [0.5, 0.0, -0.5];
        // 90° of roll: (x, y) → (−y, x).
        let rotation = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]];
        let out = motion_points(&points, &rotation, &expression, 2.0, [0.1, 0.2, 0.3]);
        assert_eq!(out[0], [2.0 * (-2.0 + 0.5) + 0.1, 2.0 * 1.0 + 0.2, 2.0 * (3.0 - 0.5) + 0.3]);
        assert_eq!(out[1], [0.1, 0.2, 0.3]);
    }

    #[test]
    fn expression_limits_clip_each_value() {
        let mut expression = [[1.0f32; 3]; KEYPOINTS];
        limit_expression(&mut expression);
        assert_eq!(expression, EXPRESSION_MAX);
        let mut expression = [[-1.0f32; 3]; KEYPOINTS];
        limit_expression(&mut expression);
        assert_eq!(expression, EXPRESSION_MIN);
        let mut inside = [[0.0f32; 3]; KEYPOINTS];
        inside[19] = [0.01, -0.02, 0.001];
        let before = inside;
        limit_expression(&mut inside);
        assert_eq!(inside, before);
        for (min, max) in EXPRESSION_MIN.iter().flatten().zip(EXPRESSION_MAX.iter().flatten()) {
            assert!(min < max);
        }
    }

    #[test]
    fn interp_follows_numpy() {
        assert_eq!(numpy_interp(100.0, [0.0, 100.0], [0.0, 1.2]), 1.2);
        assert_eq!(numpy_interp(80.0, [0.0, 100.0], [0.0, 1.2]), 0.012 * 80.0);
        assert_eq!(numpy_interp(-3.0, [-1.0, 1.0], [20.0, -20.0]), 20.0);
        assert_eq!(numpy_interp(0.25, [-1.0, 1.0], [60.0, -60.0]), -15.0);
        assert_eq!(numpy_interp(-1.0, [-1.0, 1.0], [-0.015, 0.015]), -0.015);
    }

    #[test]
    fn option_values_come_back_as_the_typed_decimal() {
        assert_eq!(option_as_f64(-0.4), -0.4);
        assert_eq!(option_as_f64(0.05), 0.05);
        assert_eq!(option_as_f64(1.0), 1.0);
    }

    #[test]
    fn only_live_portrait_is_a_model() {
        assert!(check_model("face_editor_model", "live_portrait").is_ok());
        assert!(matches!(check_model("face_editor_model", "other"), Err(PipelineError::InvalidOption { .. })));
    }
}
