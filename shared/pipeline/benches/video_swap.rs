//! Video swap benchmark: obama.jpg onto the talking clip (short_hamilton_clip.mp4) with the `costed`
//! stand-ins, through `Engine::process_video` (ffmpeg decode → processors → ffmpeg encode + audio).
//! Prints frames per second, per-stage time, the time inside ONNX Runtime for the same calls, peak
//! RSS, and the bytes this run wrote to disk besides the output (FaceFusion writes every frame twice).
//!
//! `cargo bench -p ff-pipeline --bench video_swap` (FF_TEST_ASSETS points at ../shared/assets).
//! FF_BENCH_FRAMES: frames from the start (default 60; 0 = the whole clip, 275 frames);
//! FF_BENCH_WORKERS: frames processed at once (default: the cores); FF_BENCH_INTRA: ONNX Runtime
//! threads per session (default 1: the workers already fill the cores).

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ff_pipeline::engine::{Engine, EngineConfig, VideoRequest};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, inference_snapshot, peak_rss_kib, print_inference_table};
use ff_pipeline::video::Parallelism;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let frames = env_number("FF_BENCH_FRAMES", 60);
    let workers = env_number("FF_BENCH_WORKERS", cores).max(1);
    let intra_threads = env_number("FF_BENCH_INTRA", 1).max(1);
    let engine = Engine::new(EngineConfig {
        models_dir: assets_dir().join("standins/costed"),
        allow_download: false,
        intra_threads,
        sessions_per_model: workers,
        max_image_pixels: 50_000_000,
        content_analysis: true,
        video_memory_strategy: Default::default(),
    })
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
    println!("{:<24} {:>10}", "stage (summed per frame)", "ms");
    let timings = &result.timings;
    let mut stages = vec![
        ("probe + source decode", timings.decode),
        ("content analyser", timings.content),
        ("face analysis", timings.analyse),
    ];
    stages.extend(timings.processors.iter().map(|(name, time)| (name.as_str(), *time)));
    for (stage, time) in stages {
        println!("{stage:<24} {:>10.1}", time.as_secs_f64() * 1000.0);
    }
    println!("{:<24} {:>10.1}", "wall", wall.as_secs_f64() * 1000.0);
    println!();
    println!("frames per second: {:.2} ({:.1} ms per frame)", result.processing_fps, per_frame_ms(wall, result.frames));
    let ort = print_inference_table(&ort_before, &ort_after, 1);
    // Workers overlap, so ONNX Runtime's time is compared with the summed work that calls it.
    let frame_work = timings.content + timings.analyse + timings.process;
    println!(
        "{:<20} {:>6} {:>12.1}  (of {:.1} ms summed model work: {:.1} % inside ONNX Runtime)",
        "outside ORT",
        "",
        frame_work.saturating_sub(ort).as_secs_f64() * 1000.0,
        frame_work.as_secs_f64() * 1000.0,
        ort.as_secs_f64() / frame_work.as_secs_f64().max(1e-9) * 100.0
    );
    println!();
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);
    let besides = written.saturating_sub(output_bytes);
    println!("output: {} KiB; written to disk besides the output: {} KiB", output_bytes / 1024, besides / 1024);
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

fn per_frame_ms(wall: Duration, frames: u64) -> f64 {
    wall.as_secs_f64() * 1000.0 / frames.max(1) as f64
}

/// Bytes this process and its reaped children (the ffmpeg decoder and encoder) caused to be written
/// to storage: Linux adds a reaped child's I/O counters to its parent's.
fn bytes_written() -> u64 {
    read_io_counter(Path::new("/proc/self/io"), "write_bytes:").unwrap_or(0)
}

fn read_io_counter(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| line.strip_prefix(key))?.trim().parse().ok()
}
