//! Lip sync benchmark: the sample speech onto the 5 s lip-sync target (wav2lip_sample_target.mp4)
//! with the `costed` stand-ins (wav2lip_gan_96, kim_vocal_2), through `Engine::process_video`.
//! Prints frames per second, per-stage time (voice extraction included), the time inside ONNX Runtime
//! for the same calls, peak RSS, and the bytes written to disk besides the output.
//!
//! `cargo bench -p ff-pipeline --bench lip_sync` (FF_TEST_ASSETS points at ../shared/assets).
//! FF_BENCH_FRAMES: frames from the start (default 0 = the whole 5 s, 150 frames);
//! FF_BENCH_WORKERS / FF_BENCH_INTRA as in the video_swap benchmark.

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
    let frames = env_number("FF_BENCH_FRAMES", 0);
    let workers = env_number("FF_BENCH_WORKERS", cores).max(1);
    let intra_threads = env_number("FF_BENCH_INTRA", 1).max(1);
    let engine = Engine::new(EngineConfig { intra_threads, sessions_per_model: workers, ..stand_in_config("costed") })
        .expect("engine");
    let mut pairs = vec![("processors".to_string(), vec!["lip_syncer".to_string()])];
    if frames > 0 {
        pairs.push(("trim_frame_end".to_string(), vec![frames.to_string()]));
    }
    let options = ProcessOptions::from_pairs(&pairs).expect("valid options");
    let out_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("output dir");
    let output = out_dir.path().join("lip_synced.mp4");
    let speech = std::fs::read(assets_dir().join("audio/wav2lip_sample_speech.wav")).expect("speech");

    let written_before = bytes_written();
    let ort_before = inference_snapshot(engine.registry());
    let started = Instant::now();
    let result = engine
        .process_video(
            VideoRequest {
                sources: vec![speech],
                target: assets_dir().join("video/wav2lip_sample_target.mp4"),
                output: output.clone(),
                options,
                parallelism: Some(Parallelism { workers, max_in_flight: workers * 2 + 1 }),
                timeout: Duration::from_secs(3600),
            },
            |_| {},
            &AtomicBool::new(false),
        )
        .expect("lip sync");
    let wall = started.elapsed();
    let ort_after = inference_snapshot(engine.registry());
    let output_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let written = bytes_written().saturating_sub(written_before);

    println!(
        "lip sync wav2lip_sample_speech.wav -> wav2lip_sample_target.mp4 ({}x{}, {} frames), wav2lip_gan_96 + \
         kim_vocal_2, costed stand-ins, {workers} workers x {intra_threads} ORT threads, NSFW gate on",
        result.info.width, result.info.height, result.frames
    );
    print_video_summary(&result, wall, (&ort_before, &ort_after), output_bytes, written);
    drop(out_dir);
}
