//! Video swap benchmark: obama.jpg onto the talking clip (short_hamilton_clip.mp4) with the `costed`
//! stand-ins, through `Engine::process_video` (ffmpeg decode → processors → ffmpeg encode + audio).
//! Prints frames per second, per-stage time, the time inside ONNX Runtime for the same calls, peak
//! RSS, and the bytes this run wrote to disk besides the output (FaceFusion writes every frame twice).
//!
//! `cargo bench -p ff-pipeline --bench video_swap` (FF_TEST_ASSETS points at ../shared/assets).
//! FF_BENCH_FRAMES: frames from the start (default 60; 0 = the whole clip, 275 frames);
//! FF_BENCH_WORKERS: frames processed at once (default: the cores); FF_BENCH_INTRA: ONNX Runtime
//! threads per session (default 1: the workers already fill the cores).

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ff_pipeline::engine::{Engine, EngineConfig, VideoRequest};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{
    assets_dir, bytes_written, env_number, inference_snapshot, print_video_summary, stand_in_config,
};
use ff_pipeline::video::Parallelism;

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let frames = env_number("FF_BENCH_FRAMES", 60);
    let workers = env_number("FF_BENCH_WORKERS", cores).max(1);
    let intra_threads = env_number("FF_BENCH_INTRA", 1).max(1);
    let engine = Engine::new(EngineConfig { intra_threads, sessions_per_model: workers, ..stand_in_config("costed") })
        .expect("engine");
    let options = options(frames);
    let out_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("output dir");
    let output = out_dir.path().join("swapped.mp4");
    let source = std::fs::read(assets_dir().join("images/obama.jpg")).expect("obama.jpg");

    let written_before = bytes_written();
    let ort_before = inference_snapshot(engine.registry());
    let started = Instant::now();
    let result = engine
        .process_video(
            VideoRequest {
                sources: vec![source],
                target: assets_dir().join("video/short_hamilton_clip.mp4"),
                output: output.clone(),
                options,
                parallelism: Some(Parallelism { workers, max_in_flight: workers * 2 + 1 }),
                timeout: Duration::from_secs(3600),
            },
            |_| {},
            &AtomicBool::new(false),
        )
        .expect("video swap");
    let wall = started.elapsed();
    let ort_after = inference_snapshot(engine.registry());
    let output_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let written = bytes_written().saturating_sub(written_before);

    println!(
        "video swap obama.jpg -> short_hamilton_clip.mp4 ({}x{}, {} frames), inswapper_128, costed stand-ins, \
         {workers} workers x {intra_threads} ORT threads, NSFW gate on",
        result.info.width, result.info.height, result.frames
    );
    print_video_summary(&result, wall, (&ort_before, &ort_after), output_bytes, written);
    drop(out_dir);
}

fn options(frames: usize) -> ProcessOptions {
    let mut pairs = vec![
        ("face_swapper_model".to_string(), vec!["inswapper_128".to_string()]),
        ("output_video_preset".to_string(), vec!["veryfast".to_string()]),
    ];
    if frames > 0 {
        pairs.push(("trim_frame_end".to_string(), vec![frames.to_string()]));
    }
    ProcessOptions::from_pairs(&pairs).expect("valid options")
}
