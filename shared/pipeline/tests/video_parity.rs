//! Parity case 08 (a 2 s video swap) through the engine's `process_video` on the light stand-ins:
//! our encoded output, decoded, against FaceFusion's golden output.mp4, decoded the same way. Needs
//! ffmpeg and ffprobe on PATH (or FF_FFMPEG/FF_FFPROBE) and FF_TEST_ASSETS.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ff_pipeline::engine::VideoRequest;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{
    changed_box, decode_video, diff_box, parity_case, parity_dir, psnr, read_bgr, stand_in_config, ParityCase,
};
use ff_pipeline::video::{AudioOutcome, Parallelism, ReadOptions, Toolchain};
use ff_pipeline::{Engine, PipelineError};

const CASE: &str = "08_video_swap_hamilton_2s";

/// Pixels whose channels differ by more than this between the golden and the unprocessed frame
/// belong to the swap; encoding noise at quality 80 stays well below it.
const CHANGE_THRESHOLD: u8 = 24;

fn engine() -> Engine {
    Engine::new(stand_in_config("light")).unwrap()
}

fn summary(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    (min, mean)
}

#[test]
fn video_swap_matches_facefusion_golden() {
    let dir = parity_dir().join(CASE);
    let ParityCase { sources, target, pairs, .. } = parity_case(CASE);
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("output.mp4");
    let request = VideoRequest {
        sources: sources.iter().map(|p| std::fs::read(p).unwrap()).collect(),
        target: target.clone(),
        output: output.clone(),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
        timeout: Duration::from_secs(900),
        probe: None,
        max_duration: None,
        segment: None,
    };
    let mut updates = Vec::new();
    let result = engine().process_video(request, |p| updates.push(p.frames_done), &AtomicBool::new(false)).unwrap();
    println!(
        "{CASE}: {} frames in {:.1} s ({:.2} fps), {} faces, audio {:?}",
        result.frames,
        result.elapsed.as_secs_f64(),
        result.processing_fps,
        result.faces_processed,
        result.video.audio
    );
    assert_eq!(result.frames, 60);
    assert_eq!(updates, (1..=60).collect::<Vec<u64>>(), "progress after every frame, in order");
    assert_eq!(result.faces_processed, 60, "one face swapped per frame, as FaceFusion's 60/60");
    assert_eq!(result.video.audio, AudioOutcome::Restored);

    let tools = Toolchain::from_env();
    let ours_info = tools.probe(&output).unwrap();
    let golden_info = tools.probe(&dir.join("output.mp4")).unwrap();
    assert_eq!(ours_info.frame_count, 60);
    assert_eq!((ours_info.width, ours_info.height), (golden_info.width, golden_info.height));
    assert!((ours_info.fps - golden_info.fps).abs() < 1e-6, "fps {} vs {}", ours_info.fps, golden_info.fps);
    assert!(ours_info.has_audio, "the target's audio is kept");
    assert!((ours_info.duration - golden_info.duration).abs() < 0.1);
    // Nothing but the output is left beside it.
    let names: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("output.mp4")]);

    let ours = decode_video(&output, &ReadOptions::default());
    let golden = decode_video(&dir.join("output.mp4"), &ReadOptions::default());
    let untouched = decode_video(
        &target,
        &ReadOptions { trim_frame_start: Some(120), trim_frame_end: Some(180), ..ReadOptions::default() },
    );
    assert_eq!((ours.len(), golden.len(), untouched.len()), (60, 60, 60));

    let (mut in_box, mut whole) = (Vec::new(), Vec::new());
    for (index, ((ours, golden), untouched)) in ours.iter().zip(&golden).zip(&untouched).enumerate() {
        let region = changed_box(golden, untouched, CHANGE_THRESHOLD).expect("the golden frame shows a swap");
        let (boxed, full) = (psnr(ours, golden, Some(region)), psnr(ours, golden, None));
        println!("frame {index:2}: box {region:?} PSNR {boxed:.2} dB, whole frame {full:.2} dB");
        in_box.push(boxed);
        whole.push(full);
    }
    let ((box_min, box_mean), (whole_min, whole_mean)) = (summary(&in_box), summary(&whole));
    println!("{CASE}: PSNR in the changed box min {box_min:.2} / mean {box_mean:.2} dB");
    println!("{CASE}: PSNR whole frame min {whole_min:.2} / mean {whole_mean:.2} dB");

    // FaceFusion's own processed frames (lossless PNGs): the swap's exact box, against our encoded frame.
    for index in [0usize, 30, 59] {
        let processed = read_bgr(&dir.join(format!("dump/f{index:05}_output_frame.png")));
        let input = read_bgr(&dir.join(format!("dump/f{index:05}_input_frame.png")));
        let region = diff_box(&processed, &input).expect("FaceFusion changed the frame");
        println!(
            "frame {index:2} vs FaceFusion's PNG: box {region:?} PSNR {:.2} dB (golden mp4 {:.2} dB)",
            psnr(&ours[index], &processed, Some(region)),
            psnr(&golden[index], &processed, Some(region)),
        );
    }

    for (index, (&boxed, &full)) in in_box.iter().zip(&whole).enumerate() {
        assert!(boxed >= 35.0, "frame {index}: PSNR {boxed:.2} dB in the changed box");
        assert!(full >= 35.0, "frame {index}: PSNR {full:.2} dB over the whole frame");
    }
}

fn case_request(output: &Path, extra: &[(&str, &str)]) -> VideoRequest {
    let ParityCase { sources, target, mut pairs, .. } = parity_case(CASE);
    pairs.extend(extra.iter().map(|(n, v)| (n.to_string(), v.split_whitespace().map(str::to_string).collect())));
    VideoRequest {
        sources: sources.iter().map(|p| std::fs::read(p).unwrap()).collect(),
        target,
        output: output.to_path_buf(),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 3 }),
        timeout: Duration::from_secs(900),
        probe: None,
        max_duration: None,
        segment: None,
    }
}

#[test]
fn cancelling_a_video_stops_it_and_leaves_nothing() {
    let out_dir = tempfile::tempdir().unwrap();
    let request = case_request(&out_dir.path().join("output.mp4"), &[]);
    let cancel = AtomicBool::new(false);
    let mut done = 0;
    let result = engine().process_video(
        request,
        |p| {
            done = p.frames_done;
            if p.frames_done == 5 {
                cancel.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        },
        &cancel,
    );
    match result {
        Err(PipelineError::Media { kind, .. }) => assert_eq!(kind.code(), "cancelled"),
        Err(other) => panic!("expected a cancellation, got {other}"),
        Ok(_) => panic!("expected a cancellation, the video finished"),
    }
    assert_eq!(done, 5, "no frame is written after the cancel");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0, "no partial output is left");
}

#[test]
fn video_requests_are_checked_before_any_work() {
    let out_dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let run = |request: VideoRequest| engine.process_video(request, |_| {}, &AtomicBool::new(false)).err().unwrap();

    let error = run(case_request(&out_dir.path().join("output.png"), &[]));
    assert!(matches!(error, PipelineError::InvalidOption { .. }), "{error}");

    let mut request = case_request(&out_dir.path().join("output.mp4"), &[]);
    request.sources.clear();
    let error = run(request);
    assert!(matches!(error, PipelineError::MissingInput(_)), "{error}");

    let error = run(case_request(&out_dir.path().join("output.mp4"), &[("trim_frame_start", "100000")]));
    assert!(matches!(error, PipelineError::InvalidOption { .. }), "{error}");

    let error = run(case_request(&out_dir.path().join("output.mp4"), &[("output_video_encoder", "hevc_videotoolbox")]));
    assert!(matches!(error, PipelineError::InvalidOption { .. }), "{error}");

    let mut request = case_request(&out_dir.path().join("output.mp4"), &[]);
    request.target = out_dir.path().join("missing.mp4");
    let error = run(request);
    assert!(matches!(error, PipelineError::MissingInput(_)), "{error}");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0);
}

/// FaceFusion's default selector mode on video: the reference face comes from frame
/// `reference_frame_number` of the original video; here frame 150 lies inside the trim range, so its
/// own face matches. A smaller output scale and fps go through the reader and the encoder.
#[test]
fn reference_mode_scale_and_fps_on_video() {
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("output.mkv");
    let request = case_request(
        &output,
        &[
            ("face_selector_mode", "reference"),
            ("reference_frame_number", "151"),
            ("trim_frame_start", "140"),
            ("trim_frame_end", "160"),
            ("output_video_scale", "0.5"),
            ("output_video_fps", "15"),
            ("output_audio_volume", "0"),
        ],
    );
    let result = engine().process_video(request, |_| {}, &AtomicBool::new(false)).unwrap();
    let tools = Toolchain::from_env();
    let target = tools.probe(&parity_dir().join("..").join("assets/video/short_hamilton_clip.mp4")).unwrap();
    let info = tools.probe(&output).unwrap();
    println!(
        "reference mode: {} frames, {} faces, {}x{}",
        result.frames, result.faces_processed, info.width, info.height
    );
    assert!(result.faces_processed > 0, "the reference frame's face is found again");
    assert_eq!(result.video.audio, AudioOutcome::None);
    assert!(!info.has_audio);
    assert_eq!((info.width as usize, info.height as usize), result.resolution);
    let half = |side: u32| ((side / 2) as f64 / 2.0).round_ties_even() as u32 * 2;
    assert_eq!((info.width, info.height), (half(target.width), half(target.height)));
    assert!((info.fps - 15.0).abs() < 1e-6, "fps {}", info.fps);
    assert!((info.duration - 20.0 / target.fps).abs() < 0.15, "duration {}", info.duration);
}
