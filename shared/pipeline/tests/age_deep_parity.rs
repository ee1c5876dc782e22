//! age_modifier and deep_swapper against FaceFusion 3.5.3's own outputs on the stand-in models
//! (../shared/parity/11_age_modifier_obama_older_60 and 14_deep_swapper_two_people_morph_80).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ff_pipeline::face::selector::select_faces;
use ff_pipeline::face::{Face, FaceAnalyser};
use ff_pipeline::geometry::{scale_face_landmark_5, warp_face_by_landmark_5, WarpTemplate};
use ff_pipeline::models::ModelStore;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::options::{AgeModifierOptions, DeepSwapperOptions};
use ff_pipeline::processors::age_modifier::AgeModifier;
use ff_pipeline::processors::deep_swapper::DeepSwapper;
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{assets_dir, diff_box, parity_dir, psnr, read_bgr};
use ff_pipeline::{Frame, PipelineError};
use serde_json::Value;

const AGE_CASE: &str = "11_age_modifier_obama_older_60";
const DEEP_CASE: &str = "14_deep_swapper_two_people_morph_80";

fn standins() -> PathBuf {
    assets_dir().join("standins/light")
}

fn registry_over(dir: &Path) -> ModelRegistry {
    let store = Arc::new(ModelStore::new(dir, false));
    ModelRegistry::new(Arc::new(move |name: &str| store.ensure(name)), 2, 1)
}

fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
    let pairs: Vec<(String, Vec<String>)> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.split_whitespace().map(str::to_string).collect()))
        .collect();
    ProcessOptions::from_pairs(&pairs).unwrap()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn dump(case: &str, file: &str) -> PathBuf {
    parity_dir().join(case).join("dump").join(file)
}

/// The dump record of `function`'s call `call` (the dump index is a list of records).
fn record(case: &str, function: &str, call: u64) -> Value {
    let index = read_json(&dump(case, "index.json"));
    index
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["fn"] == function && r["call"] == call)
        .unwrap_or_else(|| panic!("{case}: no {function} call {call} in the dump"))["items"]
        .clone()
}

/// The faces a processor works on, in FaceFusion's order, as the parity cases select them.
fn selected_faces(registry: &ModelRegistry, options: &ProcessOptions, frame: &Frame) -> Vec<Face> {
    let analyser = FaceAnalyser::new(registry, &options.detector, &options.landmarker);
    let faces = analyser.faces(frame).unwrap();
    select_faces(&faces, &faces, &options.selector)
}

/// PSNR inside the box where FaceFusion changed the target, and over the whole frame.
fn compare(case: &str, ours: &Frame) -> (f64, f64) {
    let summary = read_json(&parity_dir().join(case).join("case.json"));
    let target = summary["args"].as_array().unwrap().windows(2).find(|w| w[0] == "-t").unwrap()[1].clone();
    let untouched = read_bgr(&parity_dir().join("..").join(target.as_str().unwrap()));
    let golden = read_bgr(&parity_dir().join(case).join("output.png"));
    let region = diff_box(&golden, &untouched).expect("the golden output differs from its target");
    (psnr(ours, &golden, Some(region)), psnr(ours, &golden, None))
}

/// (max absolute difference, share of differing samples) between two 8-bit images.
fn difference(a: &Frame, b: &Frame) -> (u8, f64) {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    let max = a.data.iter().zip(&b.data).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let differing = a.data.iter().zip(&b.data).filter(|(x, y)| x != y).count();
    (max, differing as f64 / a.data.len() as f64)
}

#[test]
fn age_modifier_matches_facefusion() {
    let registry = registry_over(&standins());
    let opts = options(&[]);
    let target = read_bgr(&parity_dir().join("inputs/obama.png"));
    let faces = selected_faces(&registry, &opts, &target);
    assert_eq!(faces.len(), 1);

    // Both crops against the dump.
    let face = &faces[0];
    let (crop, _) = warp_face_by_landmark_5(&target, &face.landmark_5_68, WarpTemplate::Ffhq512, (256, 256));
    let extended = scale_face_landmark_5(&face.landmark_5_68, 0.875);
    let (extended_crop, _) = warp_face_by_landmark_5(&target, &extended, WarpTemplate::Styleganex384, (384, 384));
    for (ours, file) in [(&crop, "image_age_warp_0_crop.png"), (&extended_crop, "image_age_warp_1_crop.png")] {
        let (max, share) = difference(ours, &read_bgr(&dump(AGE_CASE, file)));
        println!("{file}: max diff {max}, {:.3} % samples differ", share * 100.0);
        // Our landmarks differ from FaceFusion's by float noise, which moves a few edge samples.
        assert!(max <= 4 && share < 0.005, "{file}");
    }
    assert_eq!(record(AGE_CASE, "age_forward", 0)["direction"].as_f64().unwrap() as f32, -1.5);

    let modifier = AgeModifier::new(&registry, &AgeModifierOptions { direction: 60.0, ..Default::default() }).unwrap();
    let mut frame = target.clone();
    for face in &faces {
        frame = modifier.modify(&frame, face, &opts.masks).unwrap();
    }
    let (in_box, whole) = compare(AGE_CASE, &frame);
    println!("{AGE_CASE}: PSNR {in_box:.2} dB in the changed box, {whole:.2} dB whole frame");
    assert!(in_box >= 40.0, "{AGE_CASE}: PSNR {in_box:.2} dB in the changed box");
}

#[test]
fn deep_swapper_matches_facefusion() {
    let registry = registry_over(&standins());
    let opts = options(&[("face_selector_mode", "many")]);
    let target = read_bgr(&parity_dir().join("inputs/two_people.png"));
    let faces = selected_faces(&registry, &opts, &target);
    let boxes: Vec<f64> = faces.iter().map(|f| f.bounding_box.x1).collect();
    // FaceFusion's order: large to small, the right-hand face first.
    assert_eq!(boxes.len(), 2);
    assert!((boxes[0] - 789.115).abs() < 1.0 && (boxes[1] - 240.925).abs() < 1.0, "{boxes:?}");

    let (crop, _) = warp_face_by_landmark_5(&target, &faces[0].landmark_5_68, WarpTemplate::DflWholeFace, (224, 224));
    let (max, share) = difference(&crop, &read_bgr(&dump(DEEP_CASE, "image_deep_warp_0_crop.png")));
    println!("deep warp crop: max diff {max}, {:.3} % samples differ", share * 100.0);
    assert!(max <= 2 && share < 0.01);

    let swapper = DeepSwapper::new(&registry, &DeepSwapperOptions { morph: 80.0, ..Default::default() }).unwrap();
    assert_eq!(swapper.size(), 224);
    let mut frame = target.clone();
    for face in &faces {
        frame = swapper.swap(&frame, face, &opts.masks).unwrap();
    }
    let (in_box, whole) = compare(DEEP_CASE, &frame);
    println!("{DEEP_CASE}: PSNR {in_box:.2} dB in the changed box, {whole:.2} dB whole frame");
    assert!(in_box >= 40.0, "{DEEP_CASE}: PSNR {in_box:.2} dB in the changed box");
}

/// A custom model is loaded from `<models>/custom/<stem>.dfm` without a hash; a file that is not a
/// DeepFaceLive face model is refused with a clear error instead of a panic.
#[test]
fn custom_models_load_without_a_hash_and_bad_ones_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("custom")).unwrap();
    std::fs::copy(standins().join("iperov/elon_musk_224.dfm"), dir.path().join("custom/elon.dfm")).unwrap();
    std::fs::copy(standins().join("xseg_1.onnx"), dir.path().join("custom/not_a_face_model.dfm")).unwrap();
    let store = ModelStore::new(dir.path(), false);
    assert_eq!(store.custom_deep_swapper_models().unwrap(), ["custom/elon", "custom/not_a_face_model"]);

    let registry = registry_over(dir.path());
    let swapper = DeepSwapper::new(&registry, &DeepSwapperOptions { model: "custom/elon".into(), morph: 80.0 });
    assert_eq!(swapper.unwrap().size(), 224);
    let error =
        DeepSwapper::new(&registry, &DeepSwapperOptions { model: "custom/not_a_face_model".into(), morph: 0.0 })
            .err()
            .unwrap();
    assert!(matches!(&error, PipelineError::ModelContract { reason, .. } if reason.contains("in_face:0")), "{error}");
    let missing = DeepSwapper::new(&registry, &DeepSwapperOptions { model: "custom/nobody".into(), morph: 0.0 });
    assert!(matches!(missing, Err(PipelineError::ModelMissing { .. })));
    let unknown = DeepSwapper::new(&registry, &DeepSwapperOptions { model: "nobody".into(), morph: 0.0 });
    assert!(matches!(unknown, Err(PipelineError::InvalidOption { .. })));
}

/// Every mask type on both processors: the occlusion mask (the age modifier warps it into its wide
/// crop), area and region (the deep swapper only) run, and change the result only around the face.
#[test]
fn all_mask_types_run_and_stay_on_the_face() {
    let registry = registry_over(&standins());
    let opts = options(&[("face_mask_types", "box occlusion area region")]);
    let target = read_bgr(&parity_dir().join("inputs/obama.png"));
    let faces = selected_faces(&registry, &opts, &target);
    let face_box = faces[0].bounding_box;
    let inside = |(x0, y0, x1, y1): (usize, usize, usize, usize)| {
        let margin = face_box.width().max(face_box.height());
        x0 as f64 >= face_box.x1 - margin
            && y0 as f64 >= face_box.y1 - margin
            && x1 as f64 <= face_box.x2 + margin
            && y1 as f64 <= face_box.y2 + margin
    };

    let modifier = AgeModifier::new(&registry, &AgeModifierOptions { direction: -50.0, ..Default::default() }).unwrap();
    let aged = modifier.modify(&target, &faces[0], &opts.masks).unwrap();
    let changed = diff_box(&aged, &target).expect("the age modifier changed nothing");
    assert!(inside(changed), "age modifier changed {changed:?} for a face at {face_box:?}");

    let swapper = DeepSwapper::new(&registry, &DeepSwapperOptions::default()).unwrap();
    let swapped = swapper.swap(&target, &faces[0], &opts.masks).unwrap();
    let changed = diff_box(&swapped, &target).expect("the deep swapper changed nothing");
    assert!(inside(changed), "deep swapper changed {changed:?} for a face at {face_box:?}");
}
