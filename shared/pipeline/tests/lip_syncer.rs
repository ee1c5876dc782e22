//! The lip syncer against FaceFusion 3.5.3's own dumps of case 09 (wav2lip_gan_96 stand-in, default
//! options, 60 frames of wav2lip_sample_target.mp4 with wav2lip_sample_speech.wav).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ff_pipeline::face::{Face, FaceAnalyser};
use ff_pipeline::models::ModelStore;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::processors::lip_syncer::{prepare_audio_frame, required_models, LipSyncer};
use ff_pipeline::raster::{Frame, Mask};
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{assets_dir, diff_box, parity_dir, psnr, read_bgr, read_npy, read_png16_mask};
use serde_json::Value;

/// Frames whose input, 512 crops, paste-back and output FaceFusion dumped.
const FULL_FRAMES: [usize; 3] = [0, 30, 59];
const FRAMES: usize = 60;

fn registry() -> ModelRegistry {
    let store = Arc::new(ModelStore::new(assets_dir().join("standins/light"), false));
    ModelRegistry::new(Arc::new(move |name: &str| store.ensure(name)), 2, 1)
}

fn default_options() -> ProcessOptions {
    ProcessOptions::from_pairs(&[]).unwrap()
}

fn dump(frame: usize, name: &str) -> PathBuf {
    parity_dir().join(format!("09_lip_sync_2s/dump/f{frame:05}_{name}"))
}

/// The raw mel window FaceFusion gave frame `frame`, as f32.
fn voice_window(frame: usize) -> Vec<f32> {
    let (values, shape) = read_npy(&dump(frame, "lipsync_prepare_audio_frame_0_raw_voice_frame.npy"));
    assert_eq!(shape, vec![80, 16]);
    values.into_iter().map(|v| v as f32).collect()
}

/// The dump index's records of one frame, by function name.
fn records(frame: usize) -> HashMap<String, Value> {
    static INDEX: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let path = parity_dir().join("09_lip_sync_2s/dump/index.json");
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    });
    let key = format!("f{frame:05}");
    index["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["frame"] == key.as_str())
        .map(|r| (r["fn"].as_str().unwrap().to_string(), r["items"].clone()))
        .collect()
}

fn points(value: &Value) -> Vec<[f64; 2]> {
    value.as_array().unwrap().iter().map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()]).collect()
}

fn floats(value: &Value) -> Vec<f64> {
    match value {
        Value::Array(items) => items.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number array: {other}"),
    }
}

/// The input frame and the face our analyser finds on it.
fn analysed(frame: usize, registry: &ModelRegistry) -> (Frame, Face) {
    let options = default_options();
    let input = read_bgr(&dump(frame, "input_frame.png"));
    let faces = FaceAnalyser::new(registry, &options.detector, &options.landmarker).faces(&input).unwrap();
    assert_eq!(faces.len(), 1, "frame {frame}: one face expected");
    (input, faces.into_iter().next().unwrap())
}

/// Our analysed face with FaceFusion's own landmarks, to check the lip syncer's steps alone.
fn with_golden_landmarks(mut face: Face, frame: usize) -> Face {
    let faces = &records(frame)["create_faces"]["faces"];
    let landmarks = &faces[0]["landmark_set"];
    let five = points(&landmarks["5/68"]);
    face.landmark_5_68 = [five[0], five[1], five[2], five[3], five[4]];
    face.landmark_68 = points(&landmarks["68"]);
    face
}

/// (pixels that differ, largest difference) between two 8-bit rasters.
fn frame_diff(ours: &Frame, golden: &Frame) -> (usize, u8) {
    assert_eq!((ours.width, ours.height, ours.channels), (golden.width, golden.height, golden.channels));
    let differing = ours.data.iter().zip(&golden.data).filter(|(a, b)| a != b).count();
    let max = ours.data.iter().zip(&golden.data).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
    (differing, max)
}

fn mask_diff(ours: &Mask, golden: &Mask) -> f32 {
    assert_eq!((ours.width, ours.height), (golden.width, golden.height));
    ours.data.iter().zip(&golden.data).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
}

/// PSNR of `ours` against FaceFusion's output inside the box where FaceFusion changed the input.
fn psnr_in_changed_box(input: &Frame, ours: &Frame, golden: &Frame) -> f64 {
    let region = diff_box(input, golden).expect("FaceFusion changed the frame");
    psnr(ours, golden, Some(region))
}

/// FaceFusion's mel windows are float64 (a float64 filter bank times a float32 magnitude) and the
/// dumps keep them as float32, so the raw window here is FaceFusion's rounded to float32. Our output
/// must equal FaceFusion's wherever that rounding cannot matter, and lie between the outputs for
/// the two ends of the float64 interval that rounds to the dumped value everywhere else.
#[test]
fn audio_frames_match_facefusion_on_every_frame() {
    let weight = default_options().lip_syncer.weight;
    let (mut exact, mut bracketed) = (0usize, 0usize);
    for frame in 0..FRAMES {
        let window = voice_window(frame);
        let ours = prepare_audio_frame(&window, true, weight);
        let (golden, shape) = read_npy(&dump(frame, "lipsync_prepare_audio_frame_0_output.npy"));
        assert_eq!(shape, vec![1, 1, 80, 16]);
        for (i, (&x, (&ours, &golden))) in window.iter().zip(ours.iter().zip(&golden)).enumerate() {
            if ours as f64 == golden {
                exact += 1;
                continue;
            }
            // Half an f32 ulp either side of x, evaluated as FaceFusion does in float64.
            let half_ulp = (f32::from_bits(x.to_bits() + 1) - x) as f64 / 2.0;
            let f = |x: f64| ((x.max(1e-5).log10() * 1.6 + 3.2).clamp(-4.0, 4.0) as f32 * weight * 2.0) as f64;
            let (lo, hi) = (f(x as f64 - half_ulp), f(x as f64 + half_ulp));
            assert!(
                (lo.min(hi)..=lo.max(hi)).contains(&golden),
                "frame {frame} value {i}: x {x:e}, ours {ours:e}, FaceFusion {golden:e}, interval [{lo:e}, {hi:e}]"
            );
            bracketed += 1;
        }
    }
    println!("prepared audio: {exact} values bit-exact, {bracketed} within the float32 rounding of the window");
}

/// Every step of `sync` on FaceFusion's own landmarks, against the dumps: bit-exact throughout.
#[test]
fn steps_match_facefusion_dumps() {
    let registry = registry();
    let options = default_options();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    for frame in FULL_FRAMES {
        let (input, face) = analysed(frame, &registry);
        let face = with_golden_landmarks(face, frame);
        let window = voice_window(frame);
        let synced = syncer.sync_crop(&input, &face, &options.masks, Some(&window)).unwrap();
        let wav2lip = synced.wav2lip.as_ref().unwrap();
        let records = records(frame);

        let warp = &records["lipsync_warp"];
        let matrix_diff = floats(&warp["matrix"])
            .iter()
            .zip(synced.affine.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let box_record = &records["lipsync_warp_by_bounding_box"];
        let box_diff = floats(&box_record["bounding_box"])
            .iter()
            .zip(&wav2lip.bounding_box)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        let (landmarks, _) = read_npy(&dump(frame, "lipsync_create_area_mask_0_landmarks_68_in_crop.npy"));
        let ours_landmarks: Vec<f64> =
            ff_pipeline::geometry::transform_points(&face.landmark_68, &synced.affine).into_iter().flatten().collect();
        let landmark_diff = landmarks.iter().zip(&ours_landmarks).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);

        let crop = frame_diff(&synced.target_crop, &read_bgr(&dump(frame, "lipsync_warp_0_crop.png")));
        let area_crop = frame_diff(&wav2lip.input, &read_bgr(&dump(frame, "lipsync_warp_by_bounding_box_0_crop.png")));
        let output = frame_diff(&wav2lip.output, &read_bgr(&dump(frame, "lipsync_forward_wav2lip_0_output_u8.png")));
        let pasted_crop = frame_diff(&synced.crop, &read_bgr(&dump(frame, "lipsync_paste_back_0_crop.png")));
        let area_mask = mask_diff(&synced.mask, &read_png16_mask(&dump(frame, "lipsync_create_area_mask_0_mask.png")));
        let paste_mask = mask_diff(&synced.mask, &read_png16_mask(&dump(frame, "lipsync_paste_back_0_mask.png")));

        let golden = read_bgr(&dump(frame, "output_frame.png"));
        let ours = syncer.sync(&input, &face, &options.masks, Some(&window)).unwrap();
        let result = frame_diff(&ours, &golden);
        let in_box = psnr_in_changed_box(&input, &ours, &golden);
        println!(
            "frame {frame}: matrix {matrix_diff:.1e}, 68 in crop {landmark_diff:.1e} px, box {box_diff:.1e} px; \
             (pixels differing, max) 512 crop {crop:?}, 96 crop {area_crop:?}, model output {output:?}, \
             pasted crop {pasted_crop:?}, output frame {result:?}; masks max |Δ| area {area_mask:.1e}, \
             paste {paste_mask:.1e}; PSNR in changed box {in_box:.2} dB"
        );
        assert!(matrix_diff < 1e-9 && landmark_diff < 1e-9 && box_diff < 1e-9, "frame {frame}: geometry");
        // png16 quantisation is 7.6e-6.
        assert!(area_mask <= 1e-5 && paste_mask <= 1e-5, "frame {frame}: masks");
        // Measured bit-exact on all three frames; the OpenCV ports are deterministic, so any
        // difference is a regression.
        for (name, (differing, max)) in [
            ("512 crop", crop),
            ("96 crop", area_crop),
            ("model output", output),
            ("pasted crop", pasted_crop),
            ("output frame", result),
        ] {
            assert_eq!(differing, 0, "frame {frame}: {name}: {differing} samples differ, by up to {max}");
        }
    }
}

/// End to end on our own face analysis (about 0.02 px from FaceFusion's landmarks).
#[test]
fn output_frames_match_facefusion() {
    let registry = registry();
    let options = default_options();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    for frame in FULL_FRAMES {
        let (input, face) = analysed(frame, &registry);
        let window = voice_window(frame);
        let ours = syncer.sync(&input, &face, &options.masks, Some(&window)).unwrap();
        let golden = read_bgr(&dump(frame, "output_frame.png"));
        let in_box = psnr_in_changed_box(&input, &ours, &golden);
        let whole = psnr(&ours, &golden, None);
        let (differing, max) = frame_diff(&ours, &golden);
        println!(
            "frame {frame}: PSNR {in_box:.2} dB in the changed box, {whole:.2} dB whole frame; \
             {differing} samples differ, max {max}"
        );
        // 40 dB is the requirement; measured 78.5-80.9 dB (24-41 samples one level off from the
        // 0.02 px landmark differences), so anything under 60 is a regression.
        assert!(in_box >= 60.0, "frame {frame}: PSNR {in_box:.2} dB in the changed box");
    }
    let (input, face) = analysed(0, &registry);
    let window = voice_window(0);
    let runs = 10;
    let start = std::time::Instant::now();
    for _ in 0..runs {
        syncer.sync(&input, &face, &options.masks, Some(&window)).unwrap();
    }
    println!(
        "sync: {:.1} ms per face (720×480 frame, light stand-in)",
        start.elapsed().as_secs_f64() * 1e3 / runs as f64
    );
}

/// The model on FaceFusion's own 96 crops of all 60 frames, with each frame's window.
#[test]
fn model_outputs_match_facefusion_on_every_frame() {
    let registry = registry();
    let options = default_options();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    let mut worst = (0usize, 0u8);
    for frame in 0..FRAMES {
        let crop = read_bgr(&dump(frame, "lipsync_warp_by_bounding_box_0_crop.png"));
        let ours = syncer.forward_wav2lip(Some(&voice_window(frame)), &crop).unwrap();
        let golden = read_bgr(&dump(frame, "lipsync_forward_wav2lip_0_output_u8.png"));
        let (differing, max) = frame_diff(&ours, &golden);
        worst = (worst.0.max(differing), worst.1.max(max));
    }
    println!("wav2lip output on 60 golden crops: at most {} samples differ per frame, by at most {}", worst.0, worst.1);
    // Measured bit-exact.
    assert_eq!(worst, (0, 0));
}

/// Silence (no window) keeps the stand-in's mouth closed: every speech window darkens the mouth
/// against silence, far more than it lightens anything, and the loudest window opens it most.
#[test]
fn silence_keeps_the_mouth_closed() {
    let registry = registry();
    let options = default_options();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    let crop = read_bgr(&dump(0, "lipsync_warp_by_bounding_box_0_crop.png"));
    let silent = syncer.forward_wav2lip(None, &crop).unwrap();
    let mut openings = Vec::new();
    for frame in 0..FRAMES {
        let speaking = syncer.forward_wav2lip(Some(&voice_window(frame)), &crop).unwrap();
        let darker: i64 = speaking.data.iter().zip(&silent.data).map(|(&s, &q)| (q as i64 - s as i64).max(0)).sum();
        let lighter: i64 = speaking.data.iter().zip(&silent.data).map(|(&s, &q)| (s as i64 - q as i64).max(0)).sum();
        // The stand-in's ellipse edge is soft: a closed mouth leaves a faint line speech partly covers.
        assert!(darker > 10 * lighter, "frame {frame}: darker by {darker}, lighter by {lighter}");
        openings.push(darker - lighter);
    }
    let loudest = (0..FRAMES)
        .max_by(|&a, &b| {
            let mean = |f: usize| voice_window(f).iter().map(|&v| v.max(1e-5).log10()).sum::<f32>();
            mean(a).total_cmp(&mean(b))
        })
        .unwrap();
    println!("mouth darkening against silence (sum of levels): {openings:?}; loudest window: frame {loudest}");
    assert_eq!(openings.iter().max(), Some(&openings[loudest]));

    // Through `sync`, silence and speech give different frames.
    let (input, face) = analysed(0, &registry);
    let silent = syncer.sync(&input, &face, &options.masks, None).unwrap();
    let speaking = syncer.sync(&input, &face, &options.masks, Some(&voice_window(30))).unwrap();
    assert_ne!(silent, speaking);
}

/// Faces too small, degenerate or outside the frame do not panic and keep the frame's size.
#[test]
fn tiny_and_degenerate_faces_do_not_panic() {
    let registry = registry();
    let options = default_options();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    let (input, face) = analysed(0, &registry);
    let mut collapsed = face.clone();
    collapsed.landmark_5_68 = [[100.0, 100.0]; 5];
    collapsed.landmark_68 = vec![[100.0, 100.0]; 68];
    let mut no_landmarks = face.clone();
    no_landmarks.landmark_68.clear();
    let faces = [
        face.scaled(0.01, 0.01),
        face.scaled(0.05, 0.05),
        face.scaled(10.0, 10.0),
        face.scaled(-1.0, -1.0),
        collapsed,
        no_landmarks,
    ];
    for (i, face) in faces.iter().enumerate() {
        let out = syncer.sync(&input, face, &options.masks, None).unwrap();
        assert_eq!((out.width, out.height, out.channels), (input.width, input.height, 3), "face {i}");
    }
    let tiny_frame = Frame::new(2, 2, 3);
    let out = syncer.sync(&tiny_frame, &face.scaled(0.005, 0.005), &options.masks, None).unwrap();
    assert_eq!(out.data.len(), 12);
    // A window of the wrong size is an error, not a panic.
    assert!(syncer.sync(&input, &face, &options.masks, Some(&[0.0; 10])).is_err());
}

#[test]
fn occlusion_adds_the_occluder_and_still_syncs() {
    let registry = registry();
    let options = ProcessOptions::from_pairs(&[("face_mask_types".into(), vec!["occlusion".into()])]).unwrap();
    assert_eq!(required_models(&options.lip_syncer, &options.masks), vec!["wav2lip_gan_96", "xseg_1"]);
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    let (input, face) = analysed(0, &registry);
    let window = voice_window(0);
    let occluded = syncer.sync_crop(&input, &face, &options.masks, Some(&window)).unwrap();
    let plain = syncer.sync_crop(&input, &face, &default_options().masks, Some(&window)).unwrap();
    // The combined mask never exceeds the area mask alone.
    assert!(occluded.mask.data.iter().zip(&plain.mask.data).all(|(o, p)| o <= p));
    assert_eq!(occluded.crop, plain.crop);
}

#[test]
fn unknown_and_absent_models_are_errors() {
    let registry = registry();
    let mut options = default_options().lip_syncer;
    options.model = "wav2lip_97".into();
    assert!(LipSyncer::new(&registry, &options).is_err());
    // edtalk_256 has no stand-in: loading it fails cleanly.
    options.model = "edtalk_256".into();
    assert!(LipSyncer::new(&registry, &options).is_err());
}

/// A hand-encoded ONNX graph with edtalk_256's inputs (`source` (1,1,80,16), `target`
/// (1,3,256,256), `weight` (1,), all float32) whose output is `target`: there is no edtalk stand-in,
/// so this exercises the plumbing around the model only.
fn identity_edtalk_model() -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn int(field: u64, v: u64, out: &mut Vec<u8>) {
        varint(field << 3, out);
        varint(v, out);
    }
    fn bytes(field: u64, data: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
    fn value_info(name: &str, dims: &[u64]) -> Vec<u8> {
        let mut shape = Vec::new();
        for &d in dims {
            let mut dim = Vec::new();
            int(1, d, &mut dim);
            bytes(1, &dim, &mut shape);
        }
        let mut tensor = Vec::new();
        int(1, 1, &mut tensor); // FLOAT
        bytes(2, &shape, &mut tensor);
        let mut kind = Vec::new();
        bytes(1, &tensor, &mut kind);
        let mut info = Vec::new();
        bytes(1, name.as_bytes(), &mut info);
        bytes(2, &kind, &mut info);
        info
    }
    let mut node = Vec::new();
    bytes(1, b"target", &mut node);
    bytes(2, b"output", &mut node);
    bytes(4, b"Identity", &mut node);
    let mut graph = Vec::new();
    bytes(1, &node, &mut graph);
    bytes(2, b"edtalk_identity", &mut graph);
    bytes(11, &value_info("source", &[1, 1, 80, 16]), &mut graph);
    bytes(11, &value_info("target", &[1, 3, 256, 256]), &mut graph);
    bytes(11, &value_info("weight", &[1]), &mut graph);
    bytes(12, &value_info("output", &[1, 3, 256, 256]), &mut graph);
    let mut opset = Vec::new();
    int(2, 17, &mut opset);
    let mut model = Vec::new();
    int(1, 8, &mut model);
    bytes(7, &graph, &mut model);
    bytes(8, &opset, &mut model);
    model
}

/// edtalk through `sync` with an identity model: the face comes back through the RGB round trip,
/// the 512 → 256 → 512 resizes and the padded box mask, close to the input and in the right colours.
#[test]
fn edtalk_plumbing_round_trips_the_face_with_an_identity_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edtalk_identity.onnx");
    std::fs::write(&path, identity_edtalk_model()).unwrap();
    let store = Arc::new(ModelStore::new(assets_dir().join("standins/light"), false));
    let registry = ModelRegistry::new(
        Arc::new(move |name: &str| if name == "edtalk_256" { Ok(path.clone()) } else { store.ensure(name) }),
        2,
        1,
    );
    let options = ProcessOptions::from_pairs(&[
        ("lip_syncer_model".into(), vec!["edtalk_256".into()]),
        ("face_mask_padding".into(), vec!["0".into(), "0".into(), "50".into(), "0".into()]),
    ])
    .unwrap();
    let syncer = LipSyncer::new(&registry, &options.lip_syncer).unwrap();
    let (input, face) = analysed(0, &registry);
    let synced = syncer.sync_crop(&input, &face, &options.masks, Some(&voice_window(0))).unwrap();
    assert!(synced.wav2lip.is_none());
    assert_eq!((synced.crop.width, synced.crop.height, synced.mask.width), (512, 512, 512));
    // Bottom padding 50 %: rows 256.. are zeroed before the blur (sigma 19, kernel radius 76), so
    // rows 332.. stay zero; the centre of the upper half is one.
    assert!(synced.mask.data[332 * 512..].iter().all(|&m| m == 0.0));
    assert!(synced.mask.data[300 * 512 + 256] > 0.0);
    assert!((synced.mask.data[128 * 512 + 256] - 1.0).abs() < 1e-6);

    let crop_psnr = psnr(&synced.crop, &synced.target_crop, None);
    let mut swapped = synced.crop.clone();
    swapped.data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
    let swapped_psnr = psnr(&swapped, &synced.target_crop, None);
    let out = syncer.sync(&input, &face, &options.masks, Some(&voice_window(0))).unwrap();
    let frame_psnr = psnr(&out, &input, diff_box(&out, &input));
    println!(
        "edtalk identity: crop PSNR {crop_psnr:.2} dB (channels swapped: {swapped_psnr:.2} dB), \
         frame PSNR {frame_psnr:.2} dB in the changed box"
    );
    assert!(crop_psnr >= 30.0 && crop_psnr > swapped_psnr + 5.0);
    assert!(frame_psnr >= 35.0);
}
