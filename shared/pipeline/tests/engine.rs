//! The engine end to end on the stand-in models: options that change the output's shape, inputs
//! without faces, alpha, several sources, pixel boost.

use std::io::Cursor;

use ff_pipeline::image_io::{self, ImageFormat};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, parity_dir, stand_in_config};
use ff_pipeline::{Engine, EngineConfig, ImageRequest, PipelineError};

fn engine() -> Engine {
    Engine::new(EngineConfig { sessions_per_model: 2, ..stand_in_config("light") }).unwrap()
}

fn image(name: &str) -> Vec<u8> {
    std::fs::read(assets_dir().join("images").join(name)).unwrap()
}

fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
    let pairs: Vec<(String, Vec<String>)> =
        pairs.iter().map(|(n, v)| (n.to_string(), v.split_whitespace().map(str::to_string).collect())).collect();
    ProcessOptions::from_pairs(&pairs).unwrap()
}

/// The light stand-ins without the NSFW gate, whose models would count among the calls.
fn ungated_engine() -> Engine {
    Engine::new(EngineConfig { content_analysis: false, ..stand_in_config("light") }).unwrap()
}

/// The options `base` and then `extra` name.
fn options_with(base: &[(&str, &str)], extra: &[(&str, &str)]) -> ProcessOptions {
    options(&[base, extra].concat())
}

fn request(sources: &[&str], target: Vec<u8>, options: ProcessOptions, format: ImageFormat) -> ImageRequest {
    ImageRequest { sources: sources.iter().map(|s| image(s)).collect(), target, options, output_format: Some(format) }
}

fn blank_png(width: u32, height: u32, alpha: Option<u8>) -> Vec<u8> {
    let picture = match alpha {
        Some(a) => {
            image::DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(width, height, image::Rgba([90, 120, 150, a])))
        }
        None => image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(width, height, image::Rgb([90, 120, 150]))),
    };
    let mut bytes = Vec::new();
    picture.write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png).unwrap();
    bytes
}

#[test]
fn output_image_scale_sets_the_output_size() {
    let engine = engine();
    // FaceFusion rounds each side to even, half to even: 970·0.5 = 485 → 484.
    for (scale, expected) in [("0.5", (484, 1102)), ("2.0", (1940, 4408))] {
        let opts = options(&[("face_swapper_model", "inswapper_128"), ("output_image_scale", scale)]);
        let output =
            engine.process_image(request(&["obama.jpg"], image("biden.jpg"), opts, ImageFormat::Jpeg)).unwrap();
        let decoded = image_io::decode(&output.bytes, u64::MAX).unwrap();
        assert_eq!((decoded.frame.width, decoded.frame.height), expected, "scale {scale}");
        assert_eq!(output.faces_processed, 1, "scale {scale}");
    }
}

#[test]
fn a_target_without_faces_comes_back_unchanged() {
    let engine = engine();
    let target = blank_png(64, 48, None);
    let opts = options(&[("face_swapper_model", "inswapper_128")]);
    let output = engine.process_image(request(&["obama.jpg"], target.clone(), opts, ImageFormat::Png)).unwrap();
    assert_eq!(output.faces_processed, 0);
    let (ours, original) =
        (image_io::decode(&output.bytes, u64::MAX).unwrap(), image_io::decode(&target, u64::MAX).unwrap());
    assert_eq!(ours.frame, original.frame);
}

#[test]
fn sources_without_faces_are_refused() {
    let engine = engine();
    let mut request =
        request(&[], image("biden.jpg"), options(&[("face_swapper_model", "inswapper_128")]), ImageFormat::Jpeg);
    request.sources = vec![blank_png(80, 80, None)];
    assert!(matches!(engine.process_image(request), Err(PipelineError::NoSourceFace { .. })));
}

#[test]
fn transparency_of_the_target_is_kept() {
    let engine = engine();
    let target = blank_png(40, 30, Some(100));
    let opts = options(&[("face_swapper_model", "inswapper_128")]);
    let output = engine.process_image(request(&["obama.jpg"], target, opts, ImageFormat::Png)).unwrap();
    let decoded = image_io::decode(&output.bytes, u64::MAX).unwrap();
    assert!(decoded.alpha.unwrap().data.iter().all(|&a| a == 100));
}

#[test]
fn several_sources_and_pixel_boost_swap_the_face() {
    let engine = engine();
    let target = image("biden.jpg");
    let plain = engine
        .process_image(request(
            &["obama.jpg"],
            target.clone(),
            options(&[("face_swapper_model", "inswapper_128")]),
            ImageFormat::Png,
        ))
        .unwrap();
    let averaged = engine
        .process_image(request(
            &["obama.jpg", "obama2.jpg"],
            target.clone(),
            options(&[("face_swapper_model", "inswapper_128")]),
            ImageFormat::Png,
        ))
        .unwrap();
    let boosted = engine
        .process_image(request(
            &["obama.jpg"],
            target,
            options(&[("face_swapper_model", "inswapper_128"), ("face_swapper_pixel_boost", "512x512")]),
            ImageFormat::Png,
        ))
        .unwrap();
    for output in [&plain, &averaged, &boosted] {
        assert_eq!(output.faces_processed, 1);
    }
    assert_ne!(plain.bytes, averaged.bytes, "a second source changes the identity");
    assert_ne!(plain.bytes, boosted.bytes, "pixel boost swaps at a higher resolution");
}

#[test]
fn a_missing_model_is_reported_by_name() {
    let empty = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineConfig {
        models_dir: empty.path().to_path_buf(),
        intra_threads: 1,
        ..stand_in_config("light")
    })
    .unwrap();
    let opts = options(&[("face_swapper_model", "inswapper_128")]);
    match engine.process_image(request(&["obama.jpg"], image("biden.jpg"), opts, ImageFormat::Jpeg)) {
        // The NSFW gate's models are checked first, as FaceFusion pre-checks the content analyser first.
        Err(PipelineError::ModelMissing { name, .. }) => assert_eq!(name, "nsfw_1"),
        Err(other) => panic!("expected ModelMissing, got {other}"),
        Ok(_) => panic!("expected ModelMissing"),
    }
}

/// One engine serves concurrent requests: each gets its own session of the same model, and the
/// results are the same as one at a time.
#[test]
fn concurrent_requests_share_one_engine() {
    let engine = engine();
    let run = || {
        let opts = options(&[("face_swapper_model", "inswapper_128")]);
        engine.process_image(request(&["obama.jpg"], image("biden.jpg"), opts, ImageFormat::Png)).unwrap().bytes
    };
    let alone = run();
    let together: Vec<Vec<u8>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3).map(|_| scope.spawn(run)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(together.iter().all(|bytes| *bytes == alone));
    let swapper = engine.registry().get("inswapper_128").unwrap();
    assert_eq!(swapper.run_stats().0, 4, "one swap per request, each through the shared pool");
}

fn decoded(output: &ff_pipeline::ImageOutput) -> ff_pipeline::Frame {
    image_io::decode(&output.bytes, u64::MAX).unwrap().frame
}

fn count_color(frame: &ff_pipeline::Frame, bgr: [u8; 3]) -> usize {
    frame.data.chunks_exact(3).filter(|px| *px == bgr).count()
}

/// swap → enhance → debug in one request: each stage changes the result, the debugger draws the
/// refined 5 points (green) and the mask outline on the faces found in the original frame.
#[test]
fn a_chain_of_three_processors_runs_in_order() {
    let engine = engine();
    let run = |processors: &str| {
        let opts = options(&[("face_swapper_model", "inswapper_128"), ("processors", processors)]);
        engine.process_image(request(&["obama.jpg"], image("biden.jpg"), opts, ImageFormat::Png)).unwrap()
    };
    let swapped = run("face_swapper");
    let enhanced = run("face_swapper face_enhancer");
    let debugged = run("face_swapper face_enhancer face_debugger");
    assert_eq!(debugged.faces_processed, 1);
    assert_ne!(decoded(&swapped), decoded(&enhanced), "the enhancer changes the swapped face");
    let (before, after) = (decoded(&enhanced), decoded(&debugged));
    let green = [0u8, 255, 0];
    assert!(count_color(&after, green) > count_color(&before, green) + 5 * 20, "5/68 points and mask outline");
    // The debugger only draws: pixels away from its marks keep the enhanced values.
    let unchanged = before.data.iter().zip(&after.data).filter(|(a, b)| a == b).count();
    assert!(unchanged as f64 > 0.95 * before.data.len() as f64);
}

/// A frame enhancer enlarges the running frame; a face enhancer after it gets the faces of the
/// original frame scaled up; the output follows --output-image-scale (FaceFusion's finalize).
#[test]
fn frame_enhancer_then_face_enhancer_follow_the_output_scale() {
    let engine = engine();
    let target = std::fs::read(parity_dir().join("inputs/obama_small.png")).unwrap();
    let run = |scale: &str, processors: &str| {
        let opts = options(&[
            ("processors", processors),
            ("frame_enhancer_model", "clear_reality_x4"),
            ("output_image_scale", scale),
        ]);
        engine.process_image(request(&[], target.clone(), opts, ImageFormat::Png)).unwrap()
    };
    let large = run("4", "frame_enhancer face_enhancer");
    let frame = decoded(&large);
    assert_eq!((frame.width, frame.height), (1280, 960));
    assert_eq!(large.faces_processed, 1);
    let only_frame = decoded(&run("4", "frame_enhancer"));
    assert_ne!(frame, only_frame, "the face enhancer worked on the upscaled frame");
    let same_size = decoded(&run("1", "frame_enhancer"));
    assert_eq!((same_size.width, same_size.height), (320, 240));
}

/// The NSFW gate runs by default and is the operator's switch, not the request's.
#[test]
fn content_analysis_runs_unless_the_operator_turns_it_off() {
    for enabled in [true, false] {
        let engine = Engine::new(EngineConfig { content_analysis: enabled, ..stand_in_config("light") }).unwrap();
        let opts = options(&[("processors", "face_enhancer")]);
        let output = engine.process_image(request(&[], image("biden.jpg"), opts, ImageFormat::Png)).unwrap();
        assert_eq!(output.faces_processed, 1);
        let loaded = engine.registry().loaded();
        assert_eq!(loaded.iter().any(|m| m == "nsfw_3"), enabled, "{loaded:?}");
        assert!(!loaded.iter().any(|m| m.starts_with("hyperswap")), "no swapper without face_swapper: {loaded:?}");
    }
}

/// Every mask type through every face processor, on a 128 model (the region mask then resizes
/// the swapped crop up to BiSeNet's 512): the mask models load and change the result.
#[test]
fn every_mask_type_works_in_every_face_processor() {
    let engine = engine();
    let run = |masks: &str| {
        let opts = options(&[
            ("face_swapper_model", "inswapper_128"),
            ("processors", "face_swapper face_enhancer face_debugger"),
            ("face_mask_types", masks),
            ("face_debugger_items", "bounding-box face-mask"),
        ]);
        engine.process_image(request(&["obama.jpg"], image("biden.jpg"), opts, ImageFormat::Png)).unwrap()
    };
    let boxed = run("box");
    let all = run("box occlusion area region");
    assert_eq!(all.faces_processed, 1);
    assert_ne!(decoded(&boxed), decoded(&all));
    let loaded = engine.registry().loaded();
    for model in ["xseg_1", "bisenet_resnet_34", "gfpgan_1.4", "inswapper_128"] {
        assert!(loaded.iter().any(|m| m == model), "{model} not loaded: {loaded:?}");
    }
}

/// A minimal ONNX model whose `output` is a constant, whatever its `input`: enough to make the
/// content analyser's models vote a chosen way. Hand-encoded protobuf (ModelProto, IR 8, opset 17).
mod constant_onnx {
    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn int_field(field: u32, value: u64, out: &mut Vec<u8>) {
        varint((field as u64) << 3, out);
        varint(value, out);
    }

    fn bytes_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
        varint(((field as u64) << 3) | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    /// ValueInfoProto of a float tensor with a fixed shape.
    fn value_info(name: &str, shape: &[usize]) -> Vec<u8> {
        let mut dims = Vec::new();
        for &d in shape {
            let mut dim = Vec::new();
            int_field(1, d as u64, &mut dim);
            bytes_field(1, &dim, &mut dims);
        }
        let mut tensor_type = Vec::new();
        int_field(1, 1, &mut tensor_type);
        bytes_field(2, &dims, &mut tensor_type);
        let mut type_proto = Vec::new();
        bytes_field(1, &tensor_type, &mut type_proto);
        let mut info = Vec::new();
        bytes_field(1, name.as_bytes(), &mut info);
        bytes_field(2, &type_proto, &mut info);
        info
    }

    pub fn model(input_size: usize, output_shape: &[usize], values: &[f32]) -> Vec<u8> {
        let count: usize = output_shape.iter().product();
        let mut tensor = Vec::new();
        for &d in output_shape {
            int_field(1, d as u64, &mut tensor);
        }
        int_field(2, 1, &mut tensor);
        let raw: Vec<u8> = (0..count).flat_map(|i| values[i % values.len()].to_le_bytes()).collect();
        bytes_field(9, &raw, &mut tensor);
        let mut attribute = Vec::new();
        bytes_field(1, b"value", &mut attribute);
        bytes_field(5, &tensor, &mut attribute);
        int_field(20, 4, &mut attribute);
        let mut node = Vec::new();
        bytes_field(2, b"output", &mut node);
        bytes_field(4, b"Constant", &mut node);
        bytes_field(5, &attribute, &mut node);
        let mut graph = Vec::new();
        bytes_field(1, &node, &mut graph);
        bytes_field(2, b"constant", &mut graph);
        bytes_field(11, &value_info("input", &[1, 3, input_size, input_size]), &mut graph);
        bytes_field(12, &value_info("output", output_shape), &mut graph);
        let mut opset = Vec::new();
        bytes_field(1, b"", &mut opset);
        int_field(2, 17, &mut opset);
        let mut model = Vec::new();
        int_field(1, 8, &mut model);
        bytes_field(7, &graph, &mut model);
        bytes_field(8, &opset, &mut model);
        model
    }
}

/// A models directory with the light stand-ins for face analysis and gfpgan, and NSFW models that
/// vote (nsfw_1, nsfw_2, nsfw_3) as given.
fn models_with_votes(votes: [bool; 3]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let light = assets_dir().join("standins/light");
    for name in ["yoloface_8n", "fan_68_5", "2dfan4", "arcface_w600k_r50", "fairface", "gfpgan_1.4"] {
        for ext in ["onnx", "hash"] {
            let file = format!("{name}.{ext}");
            std::os::unix::fs::symlink(light.join(&file), dir.path().join(&file)).unwrap();
        }
    }
    let models = [
        ("nsfw_1", 640, vec![1, 9, 8400], if votes[0] { vec![0.9f32] } else { vec![0.05] }),
        ("nsfw_2", 384, vec![1, 2], if votes[1] { vec![0.9, 0.1] } else { vec![0.1, 0.9] }),
        ("nsfw_3", 448, vec![1, 4], if votes[2] { vec![-3.0, -3.0, 3.0, 3.0] } else { vec![2.0, 2.0, -2.0, -2.0] }),
    ];
    for (name, size, shape, values) in models {
        let bytes = constant_onnx::model(size, &shape, &values);
        std::fs::write(dir.path().join(format!("{name}.hash")), format!("{:08x}", crc32fast::hash(&bytes))).unwrap();
        std::fs::write(dir.path().join(format!("{name}.onnx")), bytes).unwrap();
    }
    dir
}

/// Two yes votes of three reject the target before any processor runs; one is not enough; the
/// operator's switch turns the gate off.
#[test]
fn an_nsfw_target_is_rejected() {
    let run = |votes: [bool; 3], content_analysis: bool| {
        let dir = models_with_votes(votes);
        let engine = Engine::new(EngineConfig {
            models_dir: dir.path().to_path_buf(),
            content_analysis,
            intra_threads: 1,
            ..stand_in_config("light")
        })
        .unwrap();
        let opts = options(&[("processors", "face_enhancer")]);
        let result = engine.process_image(request(&[], image("biden.jpg"), opts, ImageFormat::Png));
        let runs = |model: &str| engine.registry().get(model).unwrap().run_stats().0;
        (result, runs("gfpgan_1.4"), runs("nsfw_3"))
    };
    let (rejected, enhancer_runs, third_runs) = run([true, true, false], true);
    assert!(matches!(rejected, Err(PipelineError::ContentRejected)), "{:?}", rejected.err());
    assert_eq!(enhancer_runs, 0, "nothing is processed once the target is rejected");
    assert_eq!(third_runs, 0, "two agreeing votes decide: the third model is not run");
    let (rejected, _, third_runs) = run([false, true, true], true);
    assert!(matches!(rejected, Err(PipelineError::ContentRejected)));
    assert_eq!(third_runs, 1, "the third model breaks a tie");
    assert_eq!(run([true, false, false], true).0.unwrap().faces_processed, 1, "one vote is not enough");
    let (passed, _, third_runs) = run([false, false, true], true);
    assert_eq!((passed.unwrap().faces_processed, third_runs), (1, 0), "the third vote cannot outweigh two");
    assert_eq!(run([true, true, true], false).0.unwrap().faces_processed, 1, "the operator turned the gate off");
}

/// On video the gate judges one frame a second of the trim range (frame numbers divisible by
/// int(fps)), and more than 10 % positive rejects the video before any frame is processed.
#[test]
fn an_nsfw_video_is_rejected_after_judging_one_frame_a_second() {
    let dir = models_with_votes([true, true, false]);
    let engine =
        Engine::new(EngineConfig { models_dir: dir.path().to_path_buf(), ..stand_in_config("light") }).unwrap();
    let out = tempfile::tempdir().unwrap();
    let request = || ff_pipeline::engine::VideoRequest {
        sources: vec![],
        target: assets_dir().join("video/short_hamilton_clip.mp4"),
        output: out.path().join("out.mp4"),
        options: options(&[("processors", "face_enhancer"), ("trim_frame_start", "10"), ("trim_frame_end", "70")]),
        parallelism: None,
        timeout: std::time::Duration::from_secs(300),
        probe: None,
        max_duration: None,
        segment: None,
    };
    let run = || engine.process_video(request(), |_| {}, &std::sync::atomic::AtomicBool::new(false));
    let result = run();
    assert!(matches!(result, Err(PipelineError::ContentRejected)), "{:?}", result.err());
    // 29.97 fps: frames 29 and 58 of 10..70.
    assert_eq!(engine.registry().get("nsfw_1").unwrap().run_stats().0, 2);
    assert_eq!(engine.registry().get("gfpgan_1.4").unwrap().run_stats().0, 0, "nothing was processed");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
    // The verdict is remembered for the same content and range: no model runs the second time.
    assert!(matches!(run(), Err(PipelineError::ContentRejected)));
    assert_eq!(engine.registry().get("nsfw_1").unwrap().run_stats().0, 2);
}

/// A target judged once is not judged again (FaceFusion caches verdicts per path; here per content).
#[test]
fn the_nsfw_verdict_of_a_target_is_reused() {
    let engine = engine();
    let opts = || options(&[("processors", "face_debugger")]);
    for _ in 0..2 {
        engine.process_image(request(&[], image("biden.jpg"), opts(), ImageFormat::Png)).unwrap();
    }
    assert_eq!(engine.registry().get("nsfw_2").unwrap().run_stats().0, 1, "judged once");
    engine.process_image(request(&[], image("obama.jpg"), opts(), ImageFormat::Png)).unwrap();
    assert_eq!(engine.registry().get("nsfw_2").unwrap().run_stats().0, 2, "another target is judged");
}

/// Target faces get only what the selector reads: the embedding in reference mode, age/gender/race
/// with a filter; the output is the same either way.
#[test]
fn target_analysis_runs_only_the_models_the_selector_reads() {
    let runs = |pairs: &[(&str, &str)]| {
        let engine = ungated_engine();
        let output = engine
            .process_image(request(
                &[],
                image("biden.jpg"),
                options_with(&[("processors", "face_enhancer")], pairs),
                ImageFormat::Png,
            ))
            .unwrap();
        let count = |model: &str| engine.registry().get(model).unwrap().run_stats().0;
        (count("arcface_w600k_r50"), count("fairface"), output.bytes)
    };
    let (embeds, classifies, reference) = runs(&[]);
    assert_eq!((embeds, classifies), (1, 0), "reference mode compares embeddings only");
    let (embeds, classifies, many) = runs(&[("face_selector_mode", "many")]);
    assert_eq!((embeds, classifies), (0, 0));
    let (embeds, classifies, _) = runs(&[("face_selector_mode", "many"), ("face_selector_gender", "male")]);
    assert_eq!((embeds, classifies), (0, 1), "a gender filter needs the classifier");
    assert_eq!(reference, many, "one face either way: the same output");
}

/// The swapper reads a target face's embedding only when its weight gives the target's identity a
/// share: at the default weight the mix is the source identity exactly, so target faces get no
/// recognizer call and the output is the one reference mode (which embeds them) gives.
#[test]
fn a_swap_at_the_default_weight_does_not_embed_target_faces() {
    let runs = |pairs: &[(&str, &str)]| {
        let engine = ungated_engine();
        let output = engine
            .process_image(request(
                &["obama.jpg"],
                image("biden.jpg"),
                options_with(&[("processors", "face_swapper"), ("face_swapper_model", "inswapper_128")], pairs),
                ImageFormat::Png,
            ))
            .unwrap();
        (engine.registry().get("arcface_w600k_r50").unwrap().run_stats().0, output.bytes)
    };
    let (embeds, one) = runs(&[("face_selector_mode", "one")]);
    assert_eq!(embeds, 1, "the source only");
    let (embeds, reference) = runs(&[]);
    assert_eq!(embeds, 2, "reference mode embeds the target face");
    assert!(one == reference, "one face either way: the same output");
    let (embeds, _) = runs(&[("face_selector_mode", "one"), ("face_swapper_weight", "0.7")]);
    assert_eq!(embeds, 2, "a weight off the default mixes in the target's identity");
}

/// A source image sent again is not analysed again: its chosen face is remembered by content and
/// analysis options, and the output is the same. Other options mean another analysis.
#[test]
fn a_repeated_source_skips_its_analysis() {
    let engine = ungated_engine();
    let swap = |extra: &[(&str, &str)]| {
        engine
            .process_image(request(
                &["obama.jpg"],
                image("biden.jpg"),
                options_with(&[("processors", "face_swapper"), ("face_swapper_model", "inswapper_128")], extra),
                ImageFormat::Png,
            ))
            .unwrap()
            .bytes
    };
    let detections = || engine.registry().get("yoloface_8n").unwrap().run_stats().0;
    let first = swap(&[]);
    assert_eq!(detections(), 2, "the source and the target");
    let second = swap(&[]);
    assert_eq!(detections(), 3, "the target only");
    assert!(first == second, "the remembered face gives the same output");
    assert_eq!(engine.source_face_cache_stats(), (1, 1));
    swap(&[("face_detector_score", "0.6")]);
    assert_eq!(detections(), 5, "another detector score analyses the source again");
    assert_eq!(engine.source_face_cache_stats(), (1, 2));
}

/// The `one` selector's face is decided by its detection (box and score), so the other faces get no
/// landmarks: two people, one 68-point landmarker call. A filter (here one every face passes) needs
/// every face described first; the output is the same.
#[test]
fn the_one_selector_describes_only_the_face_it_picks() {
    let runs = |pairs: &[(&str, &str)]| {
        let engine = ungated_engine();
        let target = image("two_people.jpg");
        let output = engine
            .process_image(request(
                &[],
                target,
                options_with(&[("processors", "face_enhancer"), ("face_selector_mode", "one")], pairs),
                ImageFormat::Png,
            ))
            .unwrap();
        (engine.registry().get("2dfan4").unwrap().run_stats().0, output.bytes)
    };
    for order in ["large-small", "left-right", "best-worst"] {
        let (landmarks, picked) = runs(&[("face_selector_order", order)]);
        assert_eq!(landmarks, 1, "{order}");
        let everyone =
            [("face_selector_order", order), ("face_selector_age_start", "0"), ("face_selector_age_end", "100")];
        let (landmarks, filtered) = runs(&everyone);
        assert_eq!(landmarks, 2, "{order}: a filter describes every face");
        assert!(picked == filtered, "{order}: the same face either way");
    }
}
