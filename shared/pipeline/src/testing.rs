//! Fixtures for tests and benchmarks: where the shared assets are, and readers for FaceFusion's dumps.
//! Not used by the product.

use std::path::{Path, PathBuf};

use crate::raster::{Frame, Mask, Raster};

/// A file's first bytes, padded with zeros to the 64 a sniffer looks at.
pub fn padded(head: &[u8]) -> Vec<u8> {
    let mut bytes = head.to_vec();
    bytes.resize(64, 0);
    bytes
}

pub use crate::test_assets::{assets_dir, parity_dir, workspace_root};

/// An engine over the stand-in models of `set` (`light` for tests, `costed` for benchmarks), with the
/// NSFW gate on as in production; tests override fields with struct update syntax.
pub fn stand_in_config(set: &str) -> crate::engine::EngineConfig {
    crate::engine::EngineConfig {
        models_dir: assets_dir().join("standins").join(set),
        allow_download: false,
        intra_threads: 2,
        frame_workers: 2,
        sessions_per_model: 1,
        max_image_pixels: 50_000_000,
        content_analysis: true,
        video_memory_strategy: Default::default(),
    }
}

/// Every frame of a video (or its `options` range) as decoded for processing.
pub fn decode_video(path: &Path, options: &crate::video::ReadOptions) -> Vec<Frame> {
    let tools = crate::video::Toolchain::from_env();
    let info = tools.probe(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = crate::video::FrameReader::open(&tools, path, &info, options).expect("decoder");
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame().expect("frame") {
        frames.push(frame);
    }
    frames
}

/// The box (x0, y0, x1, y1) of pixels where some channel differs by more than `threshold`: where a
/// processor changed an encoded frame, above the encoder's noise.
pub fn changed_box(a: &Frame, b: &Frame, threshold: u8) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for y in 0..a.height {
        for x in 0..a.width {
            if a.pixel(x, y).iter().zip(b.pixel(x, y)).any(|(&u, &v)| u.abs_diff(v) > threshold) {
                let (x0, y0, x1, y1) = bounds.unwrap_or((x, y, x + 1, y + 1));
                bounds = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
            }
        }
    }
    bounds
}

/// Reads a PNG/JPEG written by OpenCV into a BGR frame (alpha dropped).
pub fn read_bgr(path: &Path) -> Frame {
    let rgb = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    let (width, height) = rgb.dimensions();
    let mut data = rgb.into_raw();
    data.chunks_exact_mut(3).for_each(|px| px.swap(0, 2));
    Raster::from_vec(width as usize, height as usize, 3, data)
}

/// Reads a `png16` float mask from the dumps (`float = uint16 / 65535`).
pub fn read_png16_mask(path: &Path) -> Mask {
    let gray = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_luma16();
    let (width, height) = gray.dimensions();
    let data = gray.into_raw().into_iter().map(|v| v as f32 / 65535.0).collect();
    Raster::from_vec(width as usize, height as usize, 1, data)
}

/// A numpy `.npy` array (little-endian f4, f8, i8 or u1), as f64 values plus its shape.
pub fn read_npy(path: &Path) -> (Vec<f64>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "not an npy file");
    let (header_len, header_start) = if bytes[6] == 1 {
        (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
    } else {
        (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
    };
    let header = std::str::from_utf8(&bytes[header_start..header_start + header_len]).unwrap();
    let body = &bytes[header_start + header_len..];
    let descr = header.split("'descr':").nth(1).unwrap().split('\'').nth(1).unwrap();
    let shape_text = header.split("'shape':").nth(1).unwrap();
    let shape_text = &shape_text[shape_text.find('(').unwrap() + 1..shape_text.find(')').unwrap()];
    let shape: Vec<usize> = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    assert!(header.contains("'fortran_order': False"), "fortran order not supported");
    let values = match descr {
        "<f4" => body.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "<f8" => body.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        "<i8" => body.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        "|u1" => body.iter().map(|&v| v as f64).collect(),
        other => panic!("npy dtype {other} not supported"),
    };
    (values, shape)
}

/// PSNR in dB between two same-sized 8-bit rasters, over the pixels where `region` is true
/// (all pixels when `None`).
pub fn psnr(a: &Frame, b: &Frame, region: Option<(usize, usize, usize, usize)>) -> f64 {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    let (x0, y0, x1, y1) = region.unwrap_or((0, 0, a.width, a.height));
    let mut sum = 0.0;
    let mut count = 0usize;
    for y in y0..y1 {
        let (ra, rb) = (a.row(y), b.row(y));
        for i in x0 * a.channels..x1 * a.channels {
            let d = ra[i] as f64 - rb[i] as f64;
            sum += d * d;
            count += 1;
        }
    }
    if sum == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 * count as f64 / sum).log10()
}

/// The bounding box (x0, y0, x1, y1), exclusive, of pixels where `a` and `b` differ.
pub fn diff_box(a: &Frame, b: &Frame) -> Option<(usize, usize, usize, usize)> {
    let mut bounds: Option<(usize, usize, usize, usize)> = None;
    for y in 0..a.height {
        for x in 0..a.width {
            if a.pixel(x, y) != b.pixel(x, y) {
                let (x0, y0, x1, y1) = bounds.unwrap_or((x, y, x + 1, y + 1));
                bounds = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
            }
        }
    }
    bounds
}

/// Per loaded model: its name, calls and time inside ONNX Runtime so far.
pub type InferenceSnapshot = Vec<(String, u64, std::time::Duration)>;

/// Calls and time inside ONNX Runtime per loaded model, to subtract two snapshots around a benchmark.
pub fn inference_snapshot(registry: &crate::sessions::ModelRegistry) -> InferenceSnapshot {
    registry
        .loaded_sessions()
        .into_iter()
        .map(|(name, session)| {
            let (runs, time) = session.run_stats();
            (name, runs, time)
        })
        .collect()
}

/// Milliseconds per run.
pub fn ms_per_run(duration: std::time::Duration, runs: usize) -> f64 {
    duration.as_secs_f64() * 1000.0 / runs.max(1) as f64
}

/// The benchmarks' common tail: inference time per model between two snapshots, the rest of the
/// wall time spent outside ONNX Runtime, and the process's peak RSS.
pub fn print_inference_summary(
    before: &[(String, u64, std::time::Duration)],
    after: &[(String, u64, std::time::Duration)],
    runs: usize,
    wall: std::time::Duration,
) {
    let ort_total = print_inference_table(before, after, runs);
    println!("{:<20} {:>6} {:>12.1}", "outside ORT", "", ms_per_run(wall.saturating_sub(ort_total), runs));
    println!();
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);
}

/// Calls and milliseconds per run inside ONNX Runtime for each model between two snapshots, and their
/// total, which it returns.
pub fn print_inference_table(
    before: &[(String, u64, std::time::Duration)],
    after: &[(String, u64, std::time::Duration)],
    runs: usize,
) -> std::time::Duration {
    use std::time::Duration;
    println!("{:<20} {:>6} {:>12}", "model (ORT only)", "calls", "ms per run");
    let mut ort_total = Duration::ZERO;
    for (name, runs_after, time_after) in after {
        let (runs_before, time_before) =
            before.iter().find(|(n, _, _)| n == name).map(|(_, r, t)| (*r, *t)).unwrap_or((0, Duration::ZERO));
        let time = time_after.saturating_sub(time_before);
        ort_total += time;
        println!("{name:<20} {:>6} {:>12.1}", (runs_after - runs_before) / runs.max(1) as u64, ms_per_run(time, runs));
    }
    println!("{:<20} {:>6} {:>12.1}", "ORT total", "", ms_per_run(ort_total, runs));
    ort_total
}

/// A benchmark setting from the environment, else `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Bytes this process and its reaped children (the ffmpeg decoder and encoder) caused to be written
/// to storage: Linux adds a reaped child's I/O counters to its parent's (0 where /proc is unavailable).
pub fn bytes_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|text| text.lines().find_map(|line| line.strip_prefix("write_bytes:"))?.trim().parse().ok())
        .unwrap_or(0)
}

/// A video benchmark: `sources` onto `target` (paths under the assets folder) with the option `pairs`
/// through `Engine::process_video` on the `costed` stand-ins, then the video report under `title`.
/// FF_BENCH_FRAMES (frames from the start; 0 = all, else `default_frames`), FF_BENCH_WORKERS (frames at
/// once, default the cores), FF_BENCH_INTRA (ONNX Runtime threads per session, default 1), FF_BENCH_KEEP
/// (copy the output there) and FF_BENCH_AGAINST (an earlier kept output to compare with).
pub fn run_video_benchmark(title: &str, sources: &[&str], target: &str, pairs: &[(&str, &str)], default_frames: usize) {
    use std::time::{Duration, Instant};
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let frames = env_number("FF_BENCH_FRAMES", default_frames);
    let start = env_number("FF_BENCH_START", 0);
    let workers = env_number("FF_BENCH_WORKERS", cores).max(1);
    let intra_threads = env_number("FF_BENCH_INTRA", 1).max(1);
    let config =
        crate::engine::EngineConfig { intra_threads, sessions_per_model: workers, ..stand_in_config("costed") };
    let engine = crate::engine::Engine::new(config).expect("engine");
    let mut pairs: Vec<(String, Vec<String>)> =
        pairs.iter().map(|(name, value)| (name.to_string(), vec![value.to_string()])).collect();
    // `FF_BENCH_OPTIONS="face_selector_mode=one face_swapper_model=hyperswap_1a_256"` replaces or adds
    // options, so one benchmark covers the variants compared with FaceFusion.
    for pair in std::env::var("FF_BENCH_OPTIONS").unwrap_or_default().split_whitespace() {
        let (name, value) = pair.split_once('=').expect("FF_BENCH_OPTIONS holds name=value pairs");
        pairs.retain(|(existing, _)| existing != name);
        pairs.push((name.to_string(), vec![value.to_string()]));
    }
    if start > 0 {
        pairs.push(("trim_frame_start".into(), vec![start.to_string()]));
    }
    if frames > 0 {
        pairs.push(("trim_frame_end".into(), vec![(start + frames).to_string()]));
    }
    let out_dir = tempfile::tempdir().expect("output dir");
    let output = out_dir.path().join("benchmark.mp4");
    let request = crate::engine::VideoRequest {
        sources: sources.iter().map(|s| std::fs::read(assets_dir().join(s)).expect("source")).collect(),
        target: assets_dir().join(target),
        output: output.clone(),
        options: crate::options::ProcessOptions::from_pairs(&pairs).expect("valid options"),
        parallelism: Some(crate::video::Parallelism { workers, max_in_flight: workers * 2 + 1 }),
        timeout: Duration::from_secs(3600),
        probe: None,
        max_duration: None,
        segment: None,
    };

    let written_before = bytes_written();
    let ort_before = inference_snapshot(engine.registry());
    let started = Instant::now();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let result = engine.process_video(request, |_| {}, &cancel).expect("video benchmark");
    let wall = started.elapsed();
    let ort_after = inference_snapshot(engine.registry());
    let output_bytes = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    let written = bytes_written().saturating_sub(written_before);
    println!(
        "{title} ({}x{}, {} frames), costed stand-ins, {workers} workers x {intra_threads} ORT threads, NSFW gate on",
        result.info.width, result.info.height, result.frames
    );
    if let Ok(extra) = std::env::var("FF_BENCH_OPTIONS") {
        println!("options replaced or added: {extra}");
    }
    print_video_summary(&result, wall, (&ort_before, &ort_after), output_bytes, written);
    // FF_BENCH_KEEP keeps the output; FF_BENCH_AGAINST compares it with a kept output of another run
    // (the exact mode against the tracker or the detector interval).
    if let Ok(keep) = std::env::var("FF_BENCH_KEEP") {
        std::fs::copy(&output, &keep).expect("FF_BENCH_KEEP is writable");
    }
    if let Ok(against) = std::env::var("FF_BENCH_AGAINST") {
        let trim = crate::video::ReadOptions {
            trim_frame_start: Some(result.trim.0),
            trim_frame_end: Some(result.trim.1),
            ..Default::default()
        };
        let target_frames = decode_video(&assets_dir().join(target), &trim);
        print_region_psnr(
            &against,
            &decode_video(Path::new(&against), &Default::default()),
            &decode_video(&output, &Default::default()),
            &target_frames,
        );
    }
}

/// PSNR of `ours` against `theirs` where `theirs` differs from the unprocessed target frames: the
/// worst frame and the mean over frames.
fn print_region_psnr(name: &str, theirs: &[Frame], ours: &[Frame], target: &[Frame]) {
    let values: Vec<f64> = theirs
        .iter()
        .zip(ours)
        .zip(target)
        .filter_map(|((theirs, ours), target)| diff_box(target, theirs).map(|region| psnr(theirs, ours, Some(region))))
        .collect();
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    let worst = values.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "against {name}, where it changed the target: worst frame {worst:.1} dB, mean {mean:.1} dB over {} frames ({} identical)",
        values.len(),
        values.len() - finite.len()
    );
}

/// The video benchmarks' report: per-stage time summed over frames, frames per second, time inside
/// ONNX Runtime per model (`ort` = snapshots before and after), peak RSS and the bytes written to disk
/// besides the output (FaceFusion writes every frame to disk twice).
fn print_video_summary(
    result: &crate::engine::VideoOutput,
    wall: std::time::Duration,
    ort: (&InferenceSnapshot, &InferenceSnapshot),
    output_bytes: u64,
    written: u64,
) {
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let timings = &result.timings;
    println!("{:<24} {:>10}", "stage (summed per frame)", "ms");
    let mut stages = vec![
        ("probe + source decode", timings.decode),
        ("content analyser", timings.content),
        ("audio + voice", timings.audio),
        ("face analysis", timings.analyse),
    ];
    stages.extend(timings.processors.iter().map(|(name, time)| (name.as_str(), *time)));
    for (stage, time) in stages {
        println!("{stage:<24} {:>10.1}", ms(time));
    }
    println!("{:<24} {:>10.1}", "wall", ms(wall));
    println!();
    println!(
        "frames per second: {:.2} ({:.1} ms per frame)",
        result.processing_fps,
        ms(wall) / result.frames.max(1) as f64
    );
    let ort_total = print_inference_table(ort.0, ort.1, 1);
    // Workers overlap, so ONNX Runtime's time is compared with the summed work that calls it.
    let work = timings.content + timings.audio + timings.analyse + timings.process;
    println!(
        "{:<20} {:>6} {:>12.1}  (of {:.1} ms summed model work: {:.1} % inside ONNX Runtime)",
        "outside ORT",
        "",
        ms(work.saturating_sub(ort_total)),
        ms(work),
        ort_total.as_secs_f64() / work.as_secs_f64().max(1e-9) * 100.0
    );
    println!();
    println!("peak RSS: {} MiB", peak_rss_kib() / 1024);
    let besides = written.saturating_sub(output_bytes);
    println!("output: {} KiB; written to disk besides the output: {} KiB", output_bytes / 1024, besides / 1024);
}

/// VmHWM of this process, in KiB (0 where /proc is unavailable).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// A parity case's FaceFusion command line: its sources and target (resolved inside ../shared) and
/// its options, a `--config-path` ini folded in first as FaceFusion does.
pub struct ParityCase {
    pub dir: PathBuf,
    pub sources: Vec<PathBuf>,
    pub target: PathBuf,
    pub pairs: Vec<(String, Vec<String>)>,
}

/// Reads `../shared/parity/<name>/case.json`.
pub fn parity_case(name: &str) -> ParityCase {
    let dir = parity_dir().join(name);
    let text = std::fs::read_to_string(dir.join("case.json")).expect("case.json");
    let summary: serde_json::Value = serde_json::from_str(&text).expect("case.json is JSON");
    let args: Vec<&str> = summary["args"].as_array().expect("args").iter().filter_map(|a| a.as_str()).collect();
    let shared = parity_dir().join("..");
    let (mut sources, mut target, mut pairs, mut config) = (Vec::new(), PathBuf::new(), Vec::new(), Vec::new());
    let mut i = 1;
    while i < args.len() {
        let name = args[i];
        let mut values = Vec::new();
        i += 1;
        // A negative number is a value, not a flag (`--face-editor-head-roll -0.3`).
        while i < args.len() && (!args[i].starts_with('-') || args[i].parse::<f64>().is_ok()) {
            values.push(args[i].to_string());
            i += 1;
        }
        match name {
            "-s" => sources = values.iter().map(|v| shared.join(v)).collect(),
            "-t" => target = shared.join(&values[0]),
            "-o" => {}
            "--config-path" => {
                let path = shared.join(&values[0]);
                let text = std::fs::read_to_string(&path).expect("ini");
                config = crate::config_file::ConfigFile::parse(&text, &values[0]).expect("ini parses").options;
            }
            _ => pairs.push((name.to_string(), values)),
        }
    }
    config.append(&mut pairs);
    ParityCase { dir, sources, target, pairs: config }
}

/// Reads a PNG with an alpha channel into a BGR frame and its alpha (255 where the file has none).
pub fn read_bgra(path: &Path) -> (Frame, Raster<u8>) {
    let rgba = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgba8();
    let (width, height) = (rgba.width() as usize, rgba.height() as usize);
    let raw = rgba.into_raw();
    let frame = raw.chunks_exact(4).flat_map(|px| [px[2], px[1], px[0]]).collect();
    let alpha = raw.chunks_exact(4).map(|px| px[3]).collect();
    (Raster::from_vec(width, height, 3, frame), Raster::from_vec(width, height, 1, alpha))
}

/// Writes `dir/sparse.mp4`: `frames` 64x64 frames at 25 fps whose last frame has its timestamp at
/// `last_pts_secs`, so the header's frame count is small while the stream lasts that long (the
/// decoder's fps filter fills the gap with repeated frames). Needs ffmpeg (FF_FFMPEG or PATH).
pub fn sparse_video(dir: &Path, frames: u64, last_pts_secs: u64) -> PathBuf {
    let path = dir.join("sparse.mp4");
    let last = frames - 1;
    let setpts = format!("setpts='if(eq(N,{last}),{last_pts_secs}/TB,N/(25*TB))'");
    let status = std::process::Command::new(crate::video::Toolchain::from_env().ffmpeg)
        .args(["-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-frames:v"])
        .arg(frames.to_string())
        .args(["-vf", &setpts, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"])
        .args(["-fps_mode", "passthrough"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not write the sparse video");
    path
}
