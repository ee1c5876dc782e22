//! The face tracker (FaceFusion 3.7's `--face-tracker-score`) and ff's detector interval on the
//! talking clip: 20 frames around its camera cut (between its frames 107 and 108, where the face
//! jumps), one of them with the face blacked out so the detector misses it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ff_pipeline::engine::{Engine, EngineConfig, VideoOutput, VideoRequest};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, decode_video, diff_box, psnr, stand_in_config};
use ff_pipeline::video::{Parallelism, ReadOptions};

/// The clip's frames 98..118; the cut falls between frames 9 and 10 of this range.
const FIRST: u32 = 98;
const FRAMES: usize = 20;
const DEBUGGER: &str = "face_debugger";
/// The frame whose face is blacked out, and the box blacked out (x, y, width, height).
const BLANKED: usize = 3;
const BLACK_BOX: (usize, usize, usize, usize) = (160, 0, 220, 230);

/// The clip's range, re-encoded near-losslessly, with the face of frame `blank` (if any) covered.
fn clip(dir: &Path, blank: Option<usize>) -> PathBuf {
    let output = dir.join(format!("clip-{blank:?}.mp4"));
    let mut filter = format!("trim=start_frame={FIRST}:end_frame={},setpts=PTS-STARTPTS", FIRST as usize + FRAMES);
    if let Some(frame) = blank {
        let (x, y, w, h) = BLACK_BOX;
        filter.push_str(&format!(",drawbox=x={x}:y={y}:w={w}:h={h}:color=black:t=fill:enable='eq(n,{frame})'"));
    }
    let clip = assets_dir().join("video/short_hamilton_clip.mp4");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-y", "-i"])
        .arg(&clip)
        .args(["-vf", &filter, "-an", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p"])
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg could not cut the clip");
    output
}

fn engine() -> Engine {
    Engine::new(EngineConfig { content_analysis: false, sessions_per_model: 2, ..stand_in_config("light") }).unwrap()
}

/// The swapper, or the face debugger where a face on a black patch must show (a swap of black
/// stays dark), over every face the selector finds.
fn run(engine: &Engine, target: &Path, output: &Path, processor: &str, pairs: &[(&str, &str)]) -> VideoOutput {
    let mut all = vec![
        ("processors", processor),
        ("face_swapper_model", "inswapper_128"),
        ("face_selector_mode", "many"),
        ("output_video_preset", "ultrafast"),
        ("output_video_quality", "100"),
    ];
    all.extend_from_slice(pairs);
    let pairs: Vec<(String, Vec<String>)> = all.iter().map(|(n, v)| (n.to_string(), vec![v.to_string()])).collect();
    let request = VideoRequest {
        sources: vec![std::fs::read(assets_dir().join("images/obama.jpg")).unwrap()],
        target: target.to_path_buf(),
        probe: None,
        output: output.to_path_buf(),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
        timeout: Duration::from_secs(600),
        max_duration: None,
        segment: None,
    };
    engine.process_video(request, |_| {}, &AtomicBool::new(false)).unwrap()
}

/// Without the tracker the blacked-out frame has no face; with it, that frame gets the face
/// interpolated from its neighbours, which the debugger draws. Across the cut nothing is linked or
/// extrapolated: every frame still has exactly one face.
#[test]
fn the_tracker_refills_a_missed_face_and_adds_none_across_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let target = clip(dir.path(), Some(BLANKED));
    let engine = engine();
    let plain = run(&engine, &target, &dir.path().join("plain.mp4"), DEBUGGER, &[]);
    assert_eq!(plain.frames, FRAMES as u64);
    assert_eq!(plain.faces_processed, FRAMES - 1, "the detector misses the blacked-out face");

    for score in ["0.05", "0.3", "0.5"] {
        let tracked =
            run(&engine, &target, &dir.path().join("tracked.mp4"), DEBUGGER, &[("face_tracker_score", score)]);
        assert_eq!(tracked.frames, FRAMES as u64);
        assert_eq!(tracked.faces_processed, FRAMES, "score {score}: one face a frame, the missed one refilled");
    }
    let frames = |name: &str| decode_video(&dir.path().join(name), &ReadOptions::default());
    let (plain, tracked, target) =
        (frames("plain.mp4"), frames("tracked.mp4"), decode_video(&target, &ReadOptions::default()));
    // Compared where the face would be: a whole-frame figure hides a swapped face.
    let (x, y, w, h) = BLACK_BOX;
    let region = Some((x, y, x + w, y + h));
    assert!(psnr(&plain[BLANKED], &target[BLANKED], region) > 40.0, "untouched without the tracker");
    let swapped = psnr(&tracked[BLANKED], &target[BLANKED], region);
    println!("blacked-out frame with the tracker against the target: {swapped:.1} dB");
    assert!(swapped < 30.0, "drawn with the tracker");
    for index in (0..FRAMES).filter(|&index| index != BLANKED) {
        assert!(psnr(&plain[index], &tracked[index], None) > 40.0, "frame {index}: its own detection either way");
    }
}

/// Detecting every fifth frame and following the face between: a fifth of the detector calls, the
/// same faces, and output close to detecting every frame.
#[test]
fn the_detector_interval_follows_faces_between_detections() {
    let dir = tempfile::tempdir().unwrap();
    let target = clip(dir.path(), None);
    let detections = |engine: &Engine| engine.registry().get("yoloface_8n").unwrap().run_stats().0;

    let engine_exact = engine();
    let exact = run(&engine_exact, &target, &dir.path().join("exact.mp4"), "face_swapper", &[]);
    assert_eq!(detections(&engine_exact), FRAMES as u64 + 1, "every frame and the source");

    let engine_fast = engine();
    let fast =
        run(&engine_fast, &target, &dir.path().join("fast.mp4"), "face_swapper", &[("face_detector_interval", "5")]);
    assert_eq!(detections(&engine_fast), FRAMES as u64 / 5 + 1);
    assert_eq!((fast.frames, fast.faces_processed), (exact.frames, exact.faces_processed));

    let frames = |path: &Path| decode_video(path, &ReadOptions::default());
    let (exact, fast) = (frames(&dir.path().join("exact.mp4")), frames(&dir.path().join("fast.mp4")));
    let target = frames(&target);
    // Compared where the exact swap changed the frame: a whole-frame figure hides a face.
    let worst = (0..FRAMES)
        .map(|i| psnr(&exact[i], &fast[i], Some(diff_box(&target[i], &exact[i]).expect("a swapped face"))))
        .fold(f64::INFINITY, f64::min);
    println!("detector interval 5 against every frame, in the face region: worst frame {worst:.1} dB");
    assert!(worst > 30.0, "worst frame {worst:.1} dB");
}

/// A cancelled tracked run stops both the frame loop and the analysis beside it.
#[test]
fn a_cancelled_tracked_run_stops_with_its_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let target = clip(dir.path(), None);
    let cancel = AtomicBool::new(false);
    let pairs: Vec<(String, Vec<String>)> = [("processors", "face_debugger"), ("face_tracker_score", "0.3")]
        .iter()
        .map(|(n, v)| (n.to_string(), vec![v.to_string()]))
        .collect();
    let request = VideoRequest {
        sources: Vec::new(),
        target,
        probe: None,
        output: dir.path().join("cancelled.mp4"),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
        timeout: Duration::from_secs(600),
        max_duration: None,
        segment: None,
    };
    let progress = |p: ff_pipeline::video::Progress| {
        if p.frames_done >= 3 {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let error = engine().process_video(request, progress, &cancel).err().expect("a cancelled run fails");
    assert!(
        matches!(&error, ff_pipeline::PipelineError::Media { kind: ff_pipeline::MediaFailure::Cancelled, .. }),
        "{error}"
    );
    assert!(!dir.path().join("cancelled.mp4").exists());
}
