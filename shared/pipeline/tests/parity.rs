//! Parity with FaceFusion 3.5.3's own outputs (../shared/parity) on the stand-in models, and with
//! the reference detections of the real detector models (../shared/assets/expected_detections.json).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ff_pipeline::face::{Face, FaceAnalyser};
use ff_pipeline::models::ModelStore;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{
    assets_dir, diff_box, parity_case, parity_dir, psnr, read_bgr, stand_in_config, ParityCase,
};
use ff_pipeline::{Engine, EngineConfig, ImageRequest};
use serde_json::Value;

fn standins() -> PathBuf {
    assets_dir().join("standins/light")
}

fn registry() -> ModelRegistry {
    let store = Arc::new(ModelStore::new(standins(), false));
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

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn face_box(face: &Face) -> Vec<f64> {
    let b = face.bounding_box;
    vec![b.x1, b.y1, b.x2, b.y2]
}

fn points(points: &[[f64; 2]]) -> Vec<f64> {
    points.iter().flat_map(|p| [p[0], p[1]]).collect()
}

/// Every detector FaceFusion could run here, on every parity input: same faces, same order, boxes
/// and landmarks within 1 px, embeddings cosine ≥ 0.999, same attributes.
#[test]
fn face_analysis_matches_facefusion() {
    let registry = registry();
    let mut worst = (0.0f64, 0.0f64, 1.0f64);
    for detector in ["yolo_face", "scrfd", "yunet"] {
        let options = options(&[("face_detector_model", detector)]);
        for image in ["obama", "obama2", "biden", "two_people", "t1"] {
            let golden = read_json(&parity_dir().join(format!("detectors/{detector}/{image}.json")));
            let frame = read_bgr(&parity_dir().join(format!("inputs/{image}.png")));
            let analyser = FaceAnalyser::new(&registry, &options.detector, &options.landmarker);
            let faces = analyser.faces(&frame).unwrap();
            let expected = golden["faces"].as_array().unwrap();
            assert_eq!(faces.len(), expected.len(), "{detector}/{image}: face count");
            for (face, want) in faces.iter().zip(expected) {
                let context = format!("{detector}/{image} face at {:?}", face.bounding_box);
                let box_diff = max_abs_diff(&face_box(face), &floats(&want["bounding_box"]));
                let landmarks = &want["landmark_set"];
                let lm_diff = [
                    max_abs_diff(&points(&face.landmark_5), &floats(&landmarks["5"])),
                    max_abs_diff(&points(&face.landmark_5_68), &floats(&landmarks["5/68"])),
                    max_abs_diff(&points(&face.landmark_68), &floats(&landmarks["68"])),
                    max_abs_diff(&points(&face.landmark_68_5), &floats(&landmarks["68/5"])),
                ]
                .into_iter()
                .fold(0.0, f64::max);
                let embedding: Vec<f64> = face.embedding.iter().map(|&v| v as f64).collect();
                let similarity = cosine(&embedding, &floats(&want["embedding"]));
                assert!(box_diff <= 1.0, "{context}: box off by {box_diff}");
                assert!(lm_diff <= 1.0, "{context}: landmarks off by {lm_diff}");
                assert!(similarity >= 0.999, "{context}: embedding cosine {similarity}");
                let score = want["score_set"]["detector"].as_f64().unwrap();
                assert!(
                    (face.detector_score as f64 - score).abs() <= 0.005,
                    "{context}: score {}",
                    face.detector_score
                );
                assert_eq!(face.angle as i64, want["angle"].as_i64().unwrap(), "{context}: angle");
                worst = (worst.0.max(box_diff), worst.1.max(lm_diff), worst.2.min(similarity));
            }
        }
    }
    println!(
        "face analysis vs FaceFusion: max box diff {:.3} px, max landmark diff {:.3} px, min cosine {:.5}",
        worst.0, worst.1, worst.2
    );
}

/// The real detector weights against the reference decoders of the assets README. Those decoders
/// feed SCRFD and YOLO RGB where FaceFusion feeds BGR (so the test swaps channels for them), take YuNet's score as sqrt(cls·obj) and letterbox small
/// images by enlarging them to the canvas, which FaceFusion never does; so small images are enlarged
/// here first, boxes are compared within a few pixels and YuNet scores through the square root.
#[test]
fn detectors_match_expected_detections() {
    let expected = read_json(&assets_dir().join("expected_detections.json"));
    let registry = registry();
    let cases =
        [("face_detection_yunet_2023mar", "yunet"), ("scrfd_2.5g_bnkps", "scrfd"), ("yoloface_lite_t_ff", "yolo_face")];
    for (asset_model, detector) in cases {
        let results = &expected["results"][asset_model];
        let threshold = results["score_threshold"].as_f64().unwrap();
        let ff_threshold = if detector == "yunet" { threshold * threshold } else { threshold };
        let options =
            options(&[("face_detector_model", detector), ("face_detector_score", &format!("{ff_threshold}"))]);
        let options_detector = ff_pipeline::options::DetectorOptions { score: ff_threshold as f32, ..options.detector };
        let mut worst = 0.0f64;
        for (image, want) in results["images"].as_object().unwrap() {
            let mut frame = decoded_like_opencv(image);
            if detector != "yunet" {
                // The reference decoders feed these two RGB; FaceFusion feeds BGR.
                frame.data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
            }
            let found = detect_letterboxed(&registry, &frame, &options_detector);
            let want = want.as_array().unwrap();
            assert_eq!(found.len(), want.len(), "{detector} on {image}: face count");
            // Scores differ with the channel order, so close scores may swap places: pair each
            // reference face with the nearest detection.
            for want in want {
                let reference = floats(&want["box"]);
                let face = found
                    .iter()
                    .min_by(|a, b| {
                        let distance = |d: &ff_pipeline::face::detector::Detection| {
                            let b = d.bounding_box;
                            max_abs_diff(&[b.x1, b.y1, b.x2, b.y2], &reference)
                        };
                        distance(a).total_cmp(&distance(b))
                    })
                    .unwrap();
                let b = face.bounding_box;
                let diff = max_abs_diff(&[b.x1, b.y1, b.x2, b.y2], &floats(&want["box"]));
                let keypoints = max_abs_diff(&points(&face.landmark_5), &floats(&want["kps5"]));
                let score = if detector == "yunet" { (face.score as f64).sqrt() } else { face.score as f64 };
                // Compared at the detector's resolution: a large photo is shrunk to 640 px before detection.
                let to_canvas = (640.0 / frame.width.max(frame.height) as f64).min(1.0);
                let (diff, keypoints) = (diff * to_canvas, keypoints * to_canvas);
                assert!(
                    diff <= 3.0 && keypoints <= 2.0,
                    "{detector} on {image}: box {diff} px, keypoints {keypoints} px"
                );
                assert!(
                    (score - want["score"].as_f64().unwrap()).abs() <= 0.05,
                    "{detector} on {image}: score {score}"
                );
                worst = worst.max(diff).max(keypoints);
            }
        }
        println!("{detector} vs expected_detections: max diff {worst:.2} px");
    }
}

/// The reference decoders read JPEGs with OpenCV's libjpeg; the parity inputs are those very pixels
/// saved losslessly (cropped to even sizes), so they stand in where they match the photo's size.
fn decoded_like_opencv(image: &str) -> ff_pipeline::Frame {
    let photo = read_bgr(&assets_dir().join("images").join(image));
    let stem = image.rsplit_once('.').map(|(stem, _)| stem).unwrap_or(image);
    let lossless = parity_dir().join(format!("inputs/{stem}.png"));
    match lossless.exists().then(|| read_bgr(&lossless)) {
        Some(frame) if (frame.width, frame.height) == (photo.width, photo.height) => frame,
        _ => photo,
    }
}

/// Detection on the frame enlarged to fill the 640² canvas when it is smaller, mapped back.
fn detect_letterboxed(
    registry: &ModelRegistry,
    frame: &ff_pipeline::Frame,
    options: &ff_pipeline::options::DetectorOptions,
) -> Vec<ff_pipeline::face::detector::Detection> {
    let scale = (640.0 / frame.width as f64).min(640.0 / frame.height as f64);
    if scale <= 1.0 {
        return ff_pipeline::face::detector::detect(registry, frame, options).unwrap();
    }
    let (width, height) = ((frame.width as f64 * scale) as usize, (frame.height as f64 * scale) as usize);
    let enlarged = ff_pipeline::imgproc::resize::resize_linear(frame, width, height);
    let (sx, sy) = (frame.width as f64 / width as f64, frame.height as f64 / height as f64);
    let mut found = ff_pipeline::face::detector::detect(registry, &enlarged, options).unwrap();
    for face in &mut found {
        let b = &mut face.bounding_box;
        (b.x1, b.y1, b.x2, b.y2) = (b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy);
        face.landmark_5.iter_mut().for_each(|p| *p = [p[0] * sx, p[1] * sy]);
    }
    found
}

/// Runs a parity case through the engine and returns (PSNR inside the changed box, whole-frame PSNR).
fn run_case(engine: &Engine, case: &str) -> (f64, f64) {
    let dir = parity_dir().join(case);
    let ParityCase { sources, target, pairs, .. } = parity_case(case);
    let request = ImageRequest {
        sources: sources.iter().map(|p| std::fs::read(p).unwrap()).collect(),
        target: std::fs::read(&target).unwrap(),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        output_format: Some(ff_pipeline::image_io::ImageFormat::Png),
    };
    let output = engine.process_image(request).unwrap();
    let ours = ff_pipeline::image_io::decode(&output.bytes, u64::MAX).unwrap().frame;
    let golden = read_bgr(&dir.join("output.png"));
    let untouched = read_bgr(&target);
    assert_eq!((ours.width, ours.height), (golden.width, golden.height), "{case}: output size");
    // A frame enhancer changes every pixel and the size: then the "changed box" is the whole frame.
    let region = if (golden.width, golden.height) == (untouched.width, untouched.height) {
        diff_box(&golden, &untouched).expect("the golden output differs from its target")
    } else {
        (0, 0, golden.width, golden.height)
    };
    (psnr(&ours, &golden, Some(region)), psnr(&ours, &golden, None))
}

fn engine() -> Engine {
    Engine::new(EngineConfig { models_dir: standins(), ..stand_in_config("light") }).unwrap()
}

#[test]
fn image_swaps_match_facefusion() {
    let engine = engine();
    for case in [
        "01_swap_obama_to_biden_hyperswap",
        "02_swap_obama_to_biden_inswapper",
        "03_swap_biden_to_two_people_many",
        "05_reference_position_1_two_people",
    ] {
        let (in_box, whole) = run_case(&engine, case);
        println!("{case}: PSNR {in_box:.2} dB in the changed box, {whole:.2} dB whole frame");
        // The issue asks for 40 dB; the port reaches 70+, so anything under 60 is a regression.
        assert!(in_box >= 60.0, "{case}: PSNR {in_box:.2} dB in the changed box");
    }
}

/// Masks (occlusion, area, region; pixel boost 512 with a 256 model), swap + gfpgan, codeformer
/// alone (no source: a chain without face_swapper needs none), and the real x4 frame enhancer.
#[test]
fn masks_enhancers_and_chains_match_facefusion() {
    let engine = engine();
    for case in [
        "04_swap_obama_to_t1_group_masks_boost",
        "06_swap_then_enhance_gfpgan",
        "07_enhance_codeformer_two_people",
        "10_frame_enhance_clear_reality_x4",
    ] {
        let (in_box, whole) = run_case(&engine, case);
        println!("{case}: PSNR {in_box:.2} dB in the changed box, {whole:.2} dB whole frame");
        // The issue asks for 40 dB; measured 73.9-94.7, so anything under 60 is a regression.
        assert!(in_box >= 60.0, "{case}: PSNR {in_box:.2} dB in the changed box");
    }
}

/// The first face's occlusion, area and region masks of case 04 against FaceFusion's dumps.
#[test]
fn swapper_masks_match_facefusion_dumps() {
    use ff_pipeline::face::selector::{select_faces, sort_and_filter};
    use ff_pipeline::geometry::{transform_points, warp_face_by_landmark_5, WarpTemplate};
    use ff_pipeline::mask::{create_area_mask, create_occlusion_mask, create_region_mask};
    use ff_pipeline::processors::face_swapper::{FaceSwapper, SourceFace};
    use ff_pipeline::testing::read_png16_mask;

    let case = "04_swap_obama_to_t1_group_masks_boost";
    let registry = registry();
    let opts = options(&[
        ("face_selector_mode", "many"),
        ("face_mask_types", "box occlusion area region"),
        ("face_swapper_pixel_boost", "512x512"),
    ]);
    let analyser = FaceAnalyser::new(&registry, &opts.detector, &opts.landmarker);
    let source_frame = read_bgr(&parity_dir().join("inputs/obama.png"));
    let target = read_bgr(&parity_dir().join("inputs/t1.png"));
    let source_face = sort_and_filter(analyser.faces(&source_frame).unwrap(), &opts.selector).into_iter().next();
    let faces = analyser.faces(&target).unwrap();
    let face = select_faces(&faces, &faces, &opts.selector).into_iter().next().unwrap();
    let (crop, affine) = warp_face_by_landmark_5(&target, &face.landmark_5_68, WarpTemplate::Arcface128, (512, 512));
    let source = SourceFace::average(std::slice::from_ref(&source_frame), &[source_face]).unwrap();
    let swapper = FaceSwapper::new(&registry, &opts.swapper, &source).unwrap();
    let swapped = swapper.swap_crop(&target, &face, &options(&[("face_mask_types", "box")]).masks).unwrap();

    let occlusion = create_occlusion_mask(&registry, &crop, "xseg_1").unwrap();
    let area = create_area_mask(512, 512, &transform_points(&face.landmark_68, &affine), &opts.masks.areas);
    let region = create_region_mask(&registry, &swapped.crop, "bisenet_resnet_34", &opts.masks.regions).unwrap();
    for (name, ours) in [("occlusion", occlusion), ("area", area), ("region", region)] {
        let golden =
            read_png16_mask(&parity_dir().join(format!("{case}/dump/image_swapper_create_{name}_mask_0_mask.png")));
        assert_eq!((ours.width, ours.height), (golden.width, golden.height));
        let diffs: Vec<f32> = ours.data.iter().zip(&golden.data).map(|(a, b)| (a - b).abs()).collect();
        let max = diffs.iter().fold(0.0f32, |m, &d| m.max(d));
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        println!("{name} mask vs FaceFusion: max {max:.2e}, mean {mean:.2e}");
        if std::env::var_os("FF_DEBUG_MASKS").is_some() {
            let at = diffs.iter().position(|&d| d == max).unwrap();
            let signed: f32 = ours.data.iter().zip(&golden.data).map(|(a, b)| a - b).sum();
            println!("  worst at ({}, {}), ours − golden summed {signed:.3}", at % 512, at / 512);
        }
        // The README allows 1e-2 (mean 1e-3) for blurred masks; measured max 1.3e-4 (occlusion,
        // ONNX Runtime float noise) and png16 quantisation alone for area and region.
        assert!(max <= 1e-3 && mean <= 1e-5, "{name}: max {max}, mean {mean}");
    }
}

/// Our three NSFW model outputs on case 01's target match FaceFusion's within 1e-3, and vote safe.
#[test]
fn content_analyser_matches_facefusion() {
    let case = parity_dir().join("01_swap_obama_to_biden_hyperswap");
    let summary = read_json(&case.join("case.json"));
    let registry = registry();
    let frame = read_bgr(&parity_dir().join("inputs/biden.png"));
    let scores = ff_pipeline::content_analyser::analyse(&registry, &frame).unwrap();
    for entry in summary["nsfw"].as_array().unwrap() {
        let want = floats(&entry["result"]);
        let ours: Vec<f64> = match entry["model"].as_str().unwrap() {
            "nsfw_1" => vec![scores.nsfw_1 as f64],
            "nsfw_2" => scores.nsfw_2.iter().map(|&v| v as f64).collect(),
            _ => scores.nsfw_3.iter().map(|&v| v as f64).collect(),
        };
        let diff = max_abs_diff(&ours, &want);
        println!("{}: max abs difference {diff:.2e}", entry["model"]);
        assert!(diff <= 1e-3, "{}: {ours:?} vs {want:?}", entry["model"]);
    }
    assert!(!scores.is_nsfw());
}
