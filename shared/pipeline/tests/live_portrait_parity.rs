//! Parity of expression_restorer and face_editor with FaceFusion 3.5.3 on the light stand-ins:
//! case 12 (hyperswap, then the restorer on the lower face at factor 100) and case 13 (face editor
//! sliders), step by step against the dumps and at the end against FaceFusion's output.

use std::path::PathBuf;
use std::sync::Arc;

use ff_pipeline::face::selector::{select_faces, sort_and_filter};
use ff_pipeline::face::{Face, FaceAnalyser};
use ff_pipeline::geometry::{scale_face_landmark_5, warp_face_by_landmark_5, WarpTemplate};
use ff_pipeline::models::ModelStore;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::options::{ExpressionRestorerOptions, FaceEditorOptions, RestorerArea};
use ff_pipeline::processors::expression_restorer::ExpressionRestorer;
use ff_pipeline::processors::face_editor::FaceEditor;
use ff_pipeline::processors::face_swapper::{FaceSwapper, SourceFace};
use ff_pipeline::processors::live_portrait::{
    create_rotation, keypoints, motion_points, prepare_crop, Keypoints, LivePortrait, Motion, Rotation,
};
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{assets_dir, diff_box, parity_dir, psnr, read_bgr, read_png16_mask};
use ff_pipeline::{Frame, Mask};
use serde_json::Value;

const RESTORER_CASE: &str = "12_swap_then_expression_restorer_lower_face";
const EDITOR_CASE: &str = "13_face_editor_obama_sliders";

fn registry() -> ModelRegistry {
    let store = Arc::new(ModelStore::new(assets_dir().join("standins/light"), false));
    ModelRegistry::new(Arc::new(move |name: &str| store.ensure(name)), 2, 1)
}

fn case_dir(case: &str) -> PathBuf {
    parity_dir().join(case)
}

fn read_json(case: &str, file: &str) -> Value {
    let path = case_dir(case).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn floats(value: &Value) -> Vec<f64> {
    match value {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number array: {other}"),
    }
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// The `items` of the dump record of `function`'s `call`-th call.
fn record<'a>(dump: &'a Value, function: &str, call: u64) -> &'a Value {
    dump.as_array()
        .unwrap()
        .iter()
        .find(|r| r["fn"] == function && r["call"] == call)
        .map(|r| &r["items"])
        .unwrap_or_else(|| panic!("no dump record {function} #{call}"))
}

fn dump_keypoints(value: &Value) -> Keypoints {
    keypoints(&floats(value).into_iter().map(|v| v as f32).collect::<Vec<_>>())
}

fn flat_keypoints(points: &Keypoints) -> Vec<f64> {
    points.iter().flatten().map(|&v| v as f64).collect()
}

fn read_dump_crop(case: &str, file: &str) -> Frame {
    read_bgr(&case_dir(case).join("dump").join(file))
}

/// The one face of `frame`, as the engine selects it with default options.
fn target_face(registry: &ModelRegistry, options: &ProcessOptions, frame: &Frame, want_box: &Value) -> Face {
    let analyser = FaceAnalyser::new(registry, &options.detector, &options.landmarker);
    let faces = analyser.faces(frame).unwrap();
    let face = select_faces(&faces, &faces, &options.selector).into_iter().next().expect("a target face");
    let b = face.bounding_box;
    let diff = max_abs_diff(&[b.x1, b.y1, b.x2, b.y2], &floats(want_box));
    assert!(diff <= 1.0, "selected face box off by {diff} px");
    face
}

/// Our motion extraction of a prepared crop against a `forward_extract_motion` record.
fn compare_motion(name: &str, ours: &Motion, want: &Value) -> f64 {
    let angles = [ours.pitch, ours.yaw, ours.roll, ours.scale].map(|v| v as f64);
    let want_angles = [&want["pitch"], &want["yaw"], &want["roll"], &want["scale"]].map(|v| floats(v)[0]);
    let mut ours_values: Vec<f64> = ours.translation.iter().map(|&v| v as f64).collect();
    ours_values.extend(flat_keypoints(&ours.expression));
    ours_values.extend(flat_keypoints(&ours.motion_points));
    let mut want_values = floats(&want["translation"]);
    want_values.extend(floats(&want["expression"]));
    want_values.extend(floats(&want["motion_points"]));
    let angle_diff = max_abs_diff(&angles, &want_angles);
    let value_diff = max_abs_diff(&ours_values, &want_values);
    println!("{name}: angles/scale off by {angle_diff:.2e}, translation/expression/keypoints by {value_diff:.2e}");
    angle_diff.max(value_diff)
}

/// Our rotation for a `create_rotation` record's angles against scipy's float32 matrix there.
fn compare_rotation(want: &Value) -> f32 {
    let angles = floats(&want["angles"]);
    let rotation: Rotation = create_rotation(angles[0] as f32, angles[1] as f32, angles[2] as f32);
    let want = floats(&want["rotation"]);
    rotation.iter().flatten().zip(want).map(|(&ours, want)| (ours - want as f32).abs()).fold(0.0, f32::max)
}

fn mask_diff(ours: &Mask, golden: &Mask) -> f32 {
    assert_eq!((ours.width, ours.height), (golden.width, golden.height));
    ours.data.iter().zip(&golden.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// PSNR inside the box where FaceFusion's output differs from the unprocessed target.
fn final_psnr(ours: &Frame, case: &str, untouched: &Frame) -> f64 {
    let golden = read_bgr(&case_dir(case).join("output.png"));
    let region = diff_box(&golden, untouched).expect("the golden output differs from its target");
    let (in_box, whole) = (psnr(ours, &golden, Some(region)), psnr(ours, &golden, None));
    println!("{case}: PSNR {in_box:.2} dB in the changed box {region:?}, {whole:.2} dB whole frame");
    in_box
}

/// `--face-editor-<name> <value>` pairs of the case's command line.
fn editor_options(case: &Value) -> FaceEditorOptions {
    let args: Vec<&str> = case["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let mut options = FaceEditorOptions::default();
    for pair in args.windows(2) {
        let Some(name) = pair[0].strip_prefix("--face-editor-") else { continue };
        let value: f32 = pair[1].parse().unwrap();
        let slot = match name {
            "eyebrow-direction" => &mut options.eyebrow_direction,
            "eye-gaze-horizontal" => &mut options.eye_gaze_horizontal,
            "eye-gaze-vertical" => &mut options.eye_gaze_vertical,
            "eye-open-ratio" => &mut options.eye_open_ratio,
            "lip-open-ratio" => &mut options.lip_open_ratio,
            "mouth-grim" => &mut options.mouth_grim,
            "mouth-pout" => &mut options.mouth_pout,
            "mouth-purse" => &mut options.mouth_purse,
            "mouth-smile" => &mut options.mouth_smile,
            "mouth-position-horizontal" => &mut options.mouth_position_horizontal,
            "mouth-position-vertical" => &mut options.mouth_position_vertical,
            "head-pitch" => &mut options.head_pitch,
            "head-yaw" => &mut options.head_yaw,
            "head-roll" => &mut options.head_roll,
            other => panic!("unknown face editor option {other}"),
        };
        *slot = value;
    }
    options
}

#[test]
fn expression_restorer_matches_facefusion() {
    let registry = registry();
    let options = ProcessOptions::default();
    let case = read_json(RESTORER_CASE, "case.json");
    let dump = read_json(RESTORER_CASE, "dump/index.json");
    let source_frame = read_bgr(&parity_dir().join("inputs/obama.png"));
    let target = read_bgr(&parity_dir().join("inputs/biden.png"));

    // face_swapper first, exactly as the engine runs it.
    let analyser = FaceAnalyser::new(&registry, &options.detector, &options.landmarker);
    let source_face = sort_and_filter(analyser.faces(&source_frame).unwrap(), &options.selector).into_iter().next();
    let source = SourceFace::average(std::slice::from_ref(&source_frame), &[source_face]).unwrap();
    let face = target_face(&registry, &options, &target, &case["selected_faces"]["expression_restorer"]["image"][0]);
    let swapped =
        FaceSwapper::new(&registry, &options.swapper, &source).unwrap().swap(&target, &face, &options.masks).unwrap();

    // The two crops: the original target and the swapped frame, same landmarks.
    let warp = record(&dump, "restorer_warp", 0);
    let (original_crop, affine) =
        warp_face_by_landmark_5(&target, &face.landmark_5_68, WarpTemplate::Arcface128, (512, 512));
    let (swapped_crop, _) =
        warp_face_by_landmark_5(&swapped, &face.landmark_5_68, WarpTemplate::Arcface128, (512, 512));
    let matrix_diff = max_abs_diff(&affine.iter().flatten().copied().collect::<Vec<_>>(), &floats(&warp["matrix"]));
    let original_psnr = psnr(&original_crop, &read_dump_crop(RESTORER_CASE, "image_restorer_warp_0_crop.png"), None);
    let swapped_psnr = psnr(&swapped_crop, &read_dump_crop(RESTORER_CASE, "image_restorer_warp_1_crop.png"), None);
    println!(
        "crop matrix off by {matrix_diff:.2e}; original crop {original_psnr:.2} dB, swapped crop {swapped_psnr:.2} dB"
    );
    assert!(matrix_diff <= 1e-3, "matrix off by {matrix_diff}");
    assert!(original_psnr >= 50.0 && swapped_psnr >= 40.0);

    // Motion of both crops, then the rotation.
    let models = LivePortrait::load(&registry, "expression_restorer_model", "live_portrait").unwrap();
    let original_motion = models.extract_motion(&prepare_crop(&original_crop)).unwrap();
    let swapped_input = prepare_crop(&swapped_crop);
    let swapped_motion = models.extract_motion(&swapped_input).unwrap();
    let original_diff =
        compare_motion("original motion", &original_motion, record(&dump, "restorer_forward_extract_motion", 0));
    let swapped_diff =
        compare_motion("swapped motion", &swapped_motion, record(&dump, "restorer_forward_extract_motion", 1));
    assert!(original_diff <= 1e-4 && swapped_diff <= 1e-2, "motion off by {original_diff}, {swapped_diff}");
    let rotation_diff = compare_rotation(record(&dump, "restorer_create_rotation", 0));
    println!("rotation off by {rotation_diff:.2e}");
    assert_eq!(rotation_diff, 0.0);

    // The generator on FaceFusion's own keypoints isolates it from everything before.
    let generate = record(&dump, "restorer_forward_generate_frame", 0);
    let golden_crop = read_dump_crop(RESTORER_CASE, "image_restorer_paste_back_0_crop.png");
    let feature = models.extract_feature(&swapped_input).unwrap();
    let generated =
        models.generate(&feature, &dump_keypoints(&generate["source"]), &dump_keypoints(&generate["target"])).unwrap();
    let generator_psnr = psnr(&generated, &golden_crop, None);
    // The running face's own keypoints, which the generator's `target` gets.
    let rotation = create_rotation(swapped_motion.pitch, swapped_motion.yaw, swapped_motion.roll);
    let posed = motion_points(
        &swapped_motion.motion_points,
        &rotation,
        &swapped_motion.expression,
        swapped_motion.scale,
        swapped_motion.translation,
    );
    let posed_diff = max_abs_diff(&flat_keypoints(&posed), &floats(&generate["target"]));
    println!("generator target keypoints off by {posed_diff:.2e}");

    // The whole processor: the restored crop, its mask, and the frame.
    let restorer_options =
        ExpressionRestorerOptions { factor: 100.0, areas: vec![RestorerArea::LowerFace], ..Default::default() };
    let restorer = ExpressionRestorer::new(&registry, &restorer_options).unwrap();
    let restored = restorer.restore_crop(&target, &swapped, &face, &options.masks).unwrap();
    let crop_psnr = psnr(&restored.crop, &golden_crop, None);
    let golden_mask = read_png16_mask(&case_dir(RESTORER_CASE).join("dump/image_restorer_paste_back_0_mask.png"));
    let mask_max = mask_diff(&restored.mask, &golden_mask);
    println!("generator on FaceFusion's keypoints {generator_psnr:.2} dB; restored crop {crop_psnr:.2} dB; mask max diff {mask_max:.2e}");
    // Measured 72.5 and 72.4 dB (the swapped crop already differs at 72 dB); mask max 7.6e-6.
    assert!(generator_psnr >= 60.0 && crop_psnr >= 60.0 && mask_max <= 1e-3);

    let output = restorer.restore(&target, &swapped, &face, &options.masks).unwrap();
    let in_box = final_psnr(&output, RESTORER_CASE, &target);
    // The brief asks for 40 dB; measured 73.4, so anything under 60 is a regression.
    assert!(in_box >= 60.0, "{RESTORER_CASE}: PSNR {in_box:.2} dB in the changed box");
}

#[test]
fn face_editor_matches_facefusion() {
    let registry = registry();
    let options = ProcessOptions::default();
    let case = read_json(EDITOR_CASE, "case.json");
    let dump = read_json(EDITOR_CASE, "dump/index.json");
    let frame = read_bgr(&parity_dir().join("inputs/obama.png"));
    let face = target_face(&registry, &options, &frame, &case["selected_faces"]["face_editor"]["image"][0]);

    // The crop: the five points widened 1.5× about the nose, on the ffhq template.
    let warp = record(&dump, "editor_warp", 0);
    let landmark_5 = scale_face_landmark_5(&face.landmark_5_68, 1.5);
    let (crop, affine) = warp_face_by_landmark_5(&frame, &landmark_5, WarpTemplate::Ffhq512, (512, 512));
    let matrix_diff = max_abs_diff(&affine.iter().flatten().copied().collect::<Vec<_>>(), &floats(&warp["matrix"]));
    let crop_psnr = psnr(&crop, &read_dump_crop(EDITOR_CASE, "image_editor_warp_0_crop.png"), None);
    println!("crop matrix off by {matrix_diff:.2e}; crop {crop_psnr:.2} dB");
    assert!(matrix_diff <= 1e-3 && crop_psnr >= 50.0);

    let models = LivePortrait::load(&registry, "face_editor_model", "live_portrait").unwrap();
    let input = prepare_crop(&crop);
    let motion = models.extract_motion(&input).unwrap();
    let motion_diff = compare_motion("motion", &motion, record(&dump, "editor_forward_extract_motion", 0));
    assert!(motion_diff <= 1e-4, "motion off by {motion_diff}");
    let rotation_diff = compare_rotation(record(&dump, "editor_create_rotation", 0)).max(compare_rotation(record(
        &dump,
        "editor_create_rotation",
        1,
    )));
    println!("rotations off by {rotation_diff:.2e}");
    assert_eq!(rotation_diff, 0.0);

    let generate = record(&dump, "editor_forward_generate_frame", 0);
    let golden_crop = read_dump_crop(EDITOR_CASE, "image_editor_paste_back_0_crop.png");
    let feature = models.extract_feature(&input).unwrap();
    let generated =
        models.generate(&feature, &dump_keypoints(&generate["source"]), &dump_keypoints(&generate["target"])).unwrap();
    let generator_psnr = psnr(&generated, &golden_crop, None);
    let rotation = create_rotation(motion.pitch, motion.yaw, motion.roll);
    let posed = motion_points(&motion.motion_points, &rotation, &motion.expression, motion.scale, motion.translation);
    let posed_diff = max_abs_diff(&flat_keypoints(&posed), &floats(&generate["target"]));
    println!("generator target keypoints off by {posed_diff:.2e}");

    let editor = FaceEditor::new(&registry, &editor_options(&case)).unwrap();
    let edited = editor.edit_crop(&frame, &face, &options.masks).unwrap();
    let edited_psnr = psnr(&edited.crop, &golden_crop, None);
    println!("generator on FaceFusion's keypoints {generator_psnr:.2} dB; edited crop {edited_psnr:.2} dB");
    // Measured 80.2 and 79.3 dB.
    assert!(generator_psnr >= 60.0 && edited_psnr >= 60.0);

    let output = editor.edit(&frame, &face, &options.masks).unwrap();
    let in_box = final_psnr(&output, EDITOR_CASE, &frame);
    // The brief asks for 40 dB; measured 77.6, so anything under 60 is a regression.
    assert!(in_box >= 60.0, "{EDITOR_CASE}: PSNR {in_box:.2} dB in the changed box");
}
