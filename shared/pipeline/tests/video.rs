//! Video over ffmpeg pipes against the shared clips and FaceFusion's case-08 goldens. Needs ffmpeg and
//! ffprobe on PATH (or FF_FFMPEG/FF_FFPROBE).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use ff_pipeline::engine::{Engine, EngineConfig, VideoRequest};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, parity_dir, read_bgr, stand_in_config};
use ff_pipeline::video::{
    process_video, AudioOutcome, AudioPlan, EncodeOptions, FrameReader, FrameWriter, Parallelism, ReadOptions,
    Toolchain, VideoEncoder, VideoInfo, VideoPreset,
};
use ff_pipeline::{Frame, PipelineError};

const PARALLEL: Parallelism = Parallelism { workers: 2, max_in_flight: 4 };

fn hamilton() -> PathBuf {
    assets_dir().join("video/short_hamilton_clip.mp4")
}

fn wav2lip_target() -> PathBuf {
    assets_dir().join("video/wav2lip_sample_target.mp4")
}

fn tools() -> Toolchain {
    Toolchain::from_env()
}

/// Files left in a test's temp dir (hidden temp files included).
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Our child processes whose command line mentions `needle` (a test's own temp dir): parallel tests
/// have their own ffmpeg children, which must not count.
fn children_mentioning(needle: &Path) -> Vec<String> {
    let me = std::process::id().to_string();
    let needle = needle.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else { continue };
        // Fields after the parenthesised command name: state, ppid, ...
        let Some(after) = stat.rsplit_once(") ").map(|(_, rest)| rest.to_string()) else { continue };
        let ppid = after.split_whitespace().nth(1).unwrap_or("");
        if ppid != me {
            continue;
        }
        let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(cmdline);
        }
    }
    found
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg").args(["-loglevel", "error", "-nostdin", "-y"]).args(args).status().unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

fn psnr(a: &Frame, b: &Frame) -> f64 {
    assert_eq!((a.width, a.height, a.channels), (b.width, b.height, b.channels));
    let mse =
        a.data.iter().zip(&b.data).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum::<f64>() / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn decode_all(path: &Path, options: &ReadOptions) -> (VideoInfo, Vec<Frame>) {
    let info = tools().probe(path).unwrap();
    let reader = FrameReader::open(&tools(), path, &info, options).unwrap();
    let frames = reader.collect::<Result<Vec<_>, _>>().unwrap();
    (info, frames)
}

fn media_code(error: &PipelineError) -> Option<&'static str> {
    match error {
        PipelineError::Media { kind, .. } => Some(kind.code()),
        _ => None,
    }
}

#[test]
fn probes_both_clips() {
    let info = tools().probe(&hamilton()).unwrap();
    assert_eq!((info.width, info.height, info.frame_count), (640, 360, 275));
    assert_eq!((info.fps_rational.num, info.fps_rational.den), (2997, 100));
    assert!((info.fps - 29.97).abs() < 1e-12);
    assert!(info.has_audio);
    assert_eq!(info.codec, "h264");
    assert!((info.duration - 275.0 / 29.97).abs() < 0.05, "{}", info.duration);

    let info = tools().probe(&wav2lip_target()).unwrap();
    assert_eq!((info.width, info.height, info.frame_count), (480, 720, 150));
    assert_eq!(info.fps, 30.0);
    assert!(!info.has_audio);
    assert!((info.duration - 5.0).abs() < 1e-6);
}

/// md5 of the raw BGR bytes of each decoded frame equals FaceFusion's `input_md5` (its rgb24 PNG
/// frames read back with OpenCV), and the dumped frame PNGs match exactly.
#[test]
fn trimmed_decode_matches_facefusion_extracted_frames() {
    let case = parity_dir().join("08_video_swap_hamilton_2s");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(case.join("case.json")).unwrap()).unwrap();
    let options = ReadOptions {
        trim_frame_start: Some(120),
        trim_frame_end: Some(180),
        // FaceFusion always passes -s with the temp resolution, here the original size.
        resolution: Some((640, 360)),
        ..ReadOptions::default()
    };
    let (_, frames) = decode_all(&hamilton(), &options);
    assert_eq!(frames.len(), 60);
    for (index, frame) in frames.iter().enumerate() {
        let golden = json["frame_md5"][index.to_string()]["input_md5"].as_str().unwrap();
        assert_eq!(md5_hex(&frame.data), golden, "frame {index}");
    }
    for index in [0, 30, 59] {
        let png = read_bgr(&case.join(format!("dump/f{index:05}_input_frame.png")));
        assert_eq!(psnr(&png, &frames[index]), f64::INFINITY, "frame {index}");
    }
    // Without -s the frames are the same: the scale filter at the same size is a no-op.
    let (_, unscaled) = decode_all(&hamilton(), &ReadOptions { resolution: None, ..options });
    assert!(unscaled == frames);
}

#[test]
fn identity_round_trip_keeps_frames_fps_duration_and_audio() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let info = tools().probe(&hamilton()).unwrap();
    let read = ReadOptions { trim_frame_start: Some(120), trim_frame_end: Some(180), ..ReadOptions::default() };
    let reader = FrameReader::open(&tools(), &hamilton(), &info, &read).unwrap();
    let (start, end) = reader.trim();
    let mut encode = EncodeOptions::new(info.fps);
    encode.audio =
        AudioPlan::Restore { target: hamilton(), trim_frame_start: start, trim_frame_end: end, target_fps: info.fps };
    let writer = FrameWriter::create(&tools(), &output, encode).unwrap();
    let mut reports = Vec::new();
    let calls = AtomicUsize::new(0);
    let encoded = process_video(
        reader,
        writer,
        PARALLEL,
        |_, frame| {
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(frame)
        },
        |p| reports.push(p),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!((encoded.frames, encoded.encoder, &encoded.audio), (60, VideoEncoder::Libx264, &AudioOutcome::Restored));
    assert_eq!(calls.load(Ordering::Relaxed), 60);
    assert_eq!(reports.len(), 60);
    assert_eq!(reports.iter().map(|p| p.frames_done).collect::<Vec<_>>(), (1..=60).collect::<Vec<_>>());
    assert!(reports.iter().all(|p| p.frames_total == 60));
    assert_eq!(reports.last().unwrap().eta, Some(std::time::Duration::ZERO));

    let out = tools().probe(&output).unwrap();
    assert_eq!((out.width, out.height, out.frame_count), (640, 360, 60));
    assert_eq!(out.fps_rational, info.fps_rational);
    assert!((out.duration - 60.0 / 29.97).abs() < 1.0 / 29.97, "{}", out.duration);
    assert!(out.has_audio);
    assert_eq!(entries(dir.path()), ["out.mp4"]);

    // Quality 80 is crf 10: the encoded frames stay close to the decoded input.
    let (_, decoded_in) = decode_all(&hamilton(), &read);
    let (_, decoded_out) = decode_all(&output, &ReadOptions::default());
    let worst = decoded_in.iter().zip(&decoded_out).map(|(a, b)| psnr(a, b)).fold(f64::INFINITY, f64::min);
    println!("identity round trip: worst frame PSNR {worst:.2} dB");
    assert!(worst >= 40.0, "{worst}");
}

/// The golden output.mp4 decodes to 60 frames close to FaceFusion's processed frames before encoding:
/// the reference the integration's video-swap parity test will hold its own output to.
#[test]
fn golden_output_decodes_close_to_facefusion_processed_frames() {
    let case = parity_dir().join("08_video_swap_hamilton_2s");
    let (info, frames) = decode_all(&case.join("output.mp4"), &ReadOptions::default());
    assert_eq!((info.frame_count, frames.len(), info.has_audio), (60, 60, true));
    for index in [0, 30, 59] {
        let processed = read_bgr(&case.join(format!("dump/f{index:05}_output_frame.png")));
        let db = psnr(&processed, &frames[index]);
        println!("golden output.mp4 frame {index}: {db:.2} dB against the processed frame");
        assert!(db >= 35.0, "frame {index}: {db}");
    }
}

/// The encoder side is FaceFusion's merge: the same frames written as rgb24 PNGs and merged with its
/// command decode to exactly the frames our pipe encoding decodes to.
#[test]
fn encoded_frames_equal_facefusion_merge_of_png_frames() {
    let dir = tempfile::tempdir().unwrap();
    let read = ReadOptions { trim_frame_start: Some(120), trim_frame_end: Some(180), ..ReadOptions::default() };
    let (info, frames) = decode_all(&hamilton(), &read);
    let frames_dir = dir.path().join("frames");
    std::fs::create_dir(&frames_dir).unwrap();
    for (index, frame) in frames.iter().enumerate() {
        let rgb: Vec<u8> = frame.data.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
        let image = image::RgbImage::from_raw(frame.width as u32, frame.height as u32, rgb).unwrap();
        image.save(frames_dir.join(format!("{:08}.png", index + 1))).unwrap();
    }
    let facefusion = dir.path().join("facefusion.mp4");
    let pattern = frames_dir.join("%08d.png");
    ffmpeg(&[
        "-r",
        "29.97",
        "-i",
        pattern.to_str().unwrap(),
        "-s",
        "640x360",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        "-preset",
        "veryfast",
        "-vf",
        "fps=29.97",
        "-pix_fmt",
        "yuv420p",
        facefusion.to_str().unwrap(),
    ]);

    let ours = dir.path().join("ours.mp4");
    let mut encode = EncodeOptions::new(info.fps);
    encode.resolution = Some((640, 360));
    let mut writer = FrameWriter::create(&tools(), &ours, encode).unwrap();
    for frame in &frames {
        writer.write_frame(frame).unwrap();
    }
    assert_eq!(writer.finish().unwrap().audio, AudioOutcome::None);

    let (_, theirs_decoded) = decode_all(&facefusion, &ReadOptions::default());
    let (_, ours_decoded) = decode_all(&ours, &ReadOptions::default());
    assert_eq!(ours_decoded.len(), 60);
    for (index, (a, b)) in theirs_decoded.iter().zip(&ours_decoded).enumerate() {
        assert_eq!(psnr(a, b), f64::INFINITY, "frame {index}");
    }
}

#[test]
fn replaces_the_audio_with_a_given_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mov");
    let info = tools().probe(&wav2lip_target()).unwrap();
    let read = ReadOptions { trim_frame_end: Some(60), ..ReadOptions::default() };
    let reader = FrameReader::open(&tools(), &wav2lip_target(), &info, &read).unwrap();
    let mut encode = EncodeOptions::new(info.fps);
    encode.preset = VideoPreset::Ultrafast;
    encode.audio = AudioPlan::Replace { audio: assets_dir().join("audio/wav2lip_sample_speech.wav") };
    encode.audio_volume = 50;
    let writer = FrameWriter::create(&tools(), &output, encode).unwrap();
    let encoded = process_video(reader, writer, PARALLEL, |_, f| Ok(f), |_| {}, &AtomicBool::new(false)).unwrap();
    assert_eq!((encoded.frames, &encoded.audio), (60, &AudioOutcome::Replaced));
    let out = tools().probe(&output).unwrap();
    assert!(out.has_audio);
    assert_eq!(out.frame_count, 60);
    assert_eq!(entries(dir.path()), ["out.mov"]);
}

#[test]
fn a_failed_audio_step_keeps_the_video_without_audio() {
    // The lip-sync target has no audio to restore: FaceFusion warns and keeps the video.
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let info = tools().probe(&wav2lip_target()).unwrap();
    let read = ReadOptions { trim_frame_end: Some(10), ..ReadOptions::default() };
    let reader = FrameReader::open(&tools(), &wav2lip_target(), &info, &read).unwrap();
    let mut encode = EncodeOptions::new(info.fps);
    encode.audio =
        AudioPlan::Restore { target: wav2lip_target(), trim_frame_start: 0, trim_frame_end: 10, target_fps: info.fps };
    let writer = FrameWriter::create(&tools(), &output, encode).unwrap();
    let encoded = process_video(reader, writer, PARALLEL, |_, f| Ok(f), |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(matches!(encoded.audio, AudioOutcome::Skipped { .. }), "{:?}", encoded.audio);
    let out = tools().probe(&output).unwrap();
    assert_eq!((out.frame_count, out.has_audio), (10, false));
    assert_eq!(entries(dir.path()), ["out.mp4"]);
}

/// The NSFW gate's sampling: only frames whose number is a multiple of the step come out of the
/// pipe, and they are exactly those frames of a full decode.
#[test]
fn sampled_decode_yields_every_nth_frame_of_the_range() {
    let full = ReadOptions { trim_frame_start: Some(7), trim_frame_end: Some(100), ..ReadOptions::default() };
    let (_, frames) = decode_all(&hamilton(), &full);
    let info = tools().probe(&hamilton()).unwrap();
    let sampled = ReadOptions { sample_every: Some(30), ..full };
    let mut reader = FrameReader::open(&tools(), &hamilton(), &info, &sampled).unwrap();
    assert_eq!(reader.expected_frames(), 3, "30, 60 and 90 lie in 7..100");
    let mut picked = Vec::new();
    while let Some(frame) = reader.next_frame().unwrap() {
        picked.push(frame);
    }
    assert_eq!(picked.len(), 3);
    for (frame, number) in picked.iter().zip([30usize, 60, 90]) {
        assert!(frame.data == frames[number - 7].data, "frame {number} differs from the full decode");
    }
}

/// The clip's video starts 0.85 s in, so its first 12 frames have no sound in FaceFusion's audio cut:
/// ffmpeg succeeds with no audio stream, which is reported as skipped, not restored.
#[test]
fn a_trim_range_without_sound_is_reported_as_skipped_audio() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    let info = tools().probe(&hamilton()).unwrap();
    let read = ReadOptions { trim_frame_end: Some(12), ..ReadOptions::default() };
    let reader = FrameReader::open(&tools(), &hamilton(), &info, &read).unwrap();
    let mut encode = EncodeOptions::new(info.fps);
    encode.audio =
        AudioPlan::Restore { target: hamilton(), trim_frame_start: 0, trim_frame_end: 12, target_fps: info.fps };
    let writer = FrameWriter::create(&tools(), &output, encode).unwrap();
    let encoded = process_video(reader, writer, PARALLEL, |_, f| Ok(f), |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(
        matches!(&encoded.audio, AudioOutcome::Skipped { reason } if reason.contains("no sound")),
        "{:?}",
        encoded.audio
    );
    assert_eq!(tools().probe(&output).unwrap().frame_count, 12);
    assert_eq!(entries(dir.path()), ["out.mp4"]);
}

#[test]
fn cancel_mid_video_stops_kills_ffmpeg_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The input is copied into the temp dir so this test's ffmpeg children can be told apart.
    let input = dir.path().join("in.mp4");
    std::fs::copy(hamilton(), &input).unwrap();
    let output = dir.path().join("out.mp4");
    let info = tools().probe(&input).unwrap();
    let reader = FrameReader::open(&tools(), &input, &info, &ReadOptions::default()).unwrap();
    let writer = FrameWriter::create(&tools(), &output, EncodeOptions::new(info.fps)).unwrap();
    let cancel = AtomicBool::new(false);
    let started_after_cancel = AtomicUsize::new(0);
    let children_while_running = Mutex::new(Vec::new());
    let mut last_done = 0;
    let error = process_video(
        reader,
        writer,
        PARALLEL,
        |_, frame| {
            if cancel.load(Ordering::SeqCst) {
                started_after_cancel.fetch_add(1, Ordering::SeqCst);
            }
            Ok(frame)
        },
        |p| {
            last_done = p.frames_done;
            if p.frames_done == 100 {
                *children_while_running.lock().unwrap() = children_mentioning(dir.path());
                cancel.store(true, Ordering::SeqCst);
            }
        },
        &cancel,
    )
    .unwrap_err();
    assert_eq!(media_code(&error), Some("cancelled"), "{error}");
    assert_eq!(last_done, 100, "no frame is written after the cancel");
    assert!(started_after_cancel.load(Ordering::SeqCst) <= PARALLEL.workers);
    assert_eq!(children_while_running.lock().unwrap().len(), 2, "decoder and encoder were running");
    assert!(children_mentioning(dir.path()).is_empty());
    assert_eq!(entries(dir.path()), ["in.mp4"]);
}

#[test]
fn a_processing_error_or_panic_propagates_and_cleans_up() {
    for panics in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.mp4");
        std::fs::copy(wav2lip_target(), &input).unwrap();
        let output = dir.path().join("out.mp4");
        let info = tools().probe(&input).unwrap();
        let reader = FrameReader::open(&tools(), &input, &info, &ReadOptions::default()).unwrap();
        let writer = FrameWriter::create(&tools(), &output, EncodeOptions::new(info.fps)).unwrap();
        let process = |index: usize, frame: Frame| {
            if index == 20 {
                if panics {
                    panic!("processor bug");
                }
                return Err(PipelineError::Runtime("model failed".into()));
            }
            Ok(frame)
        };
        let error = process_video(reader, writer, PARALLEL, process, |_| {}, &AtomicBool::new(false)).unwrap_err();
        if panics {
            assert_eq!(media_code(&error), Some("processing_panicked"), "{error}");
            assert!(error.to_string().contains("processor bug"));
        } else {
            assert!(matches!(error, PipelineError::Runtime(_)), "{error}");
        }
        assert!(children_mentioning(dir.path()).is_empty());
        assert_eq!(entries(dir.path()), ["in.mp4"]);
    }
}

#[test]
fn corrupt_and_videoless_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // moov at the end: a truncated copy has no index at all.
    let truncated = dir.path().join("truncated.mp4");
    let bytes = std::fs::read(hamilton()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let error = tools().probe(&truncated).unwrap_err();
    assert!(matches!(error, PipelineError::UnsupportedMedia(_)), "{error}");
    assert!(error.to_string().contains("not a readable video"), "{error}");

    // moov first: the index survives, the frames do not; ffmpeg exits 0 with "partial file".
    let cut = dir.path().join("cut.mp4");
    let bytes = std::fs::read(wav2lip_target()).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let info = tools().probe(&cut).unwrap();
    assert_eq!(info.frame_count, 150);
    let reader = FrameReader::open(&tools(), &cut, &info, &ReadOptions::default()).unwrap();
    let output = dir.path().join("out.mp4");
    let writer = FrameWriter::create(&tools(), &output, EncodeOptions::new(info.fps)).unwrap();
    let error = process_video(reader, writer, PARALLEL, |_, f| Ok(f), |_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(error, PipelineError::UnsupportedMedia(_)), "{error}");
    assert!(error.to_string().contains("truncated or corrupt"), "{error}");

    let audio_only = dir.path().join("audio_only.mp4");
    ffmpeg(&[
        "-i",
        assets_dir().join("audio/wav2lip_sample_speech.wav").to_str().unwrap(),
        "-c:a",
        "aac",
        audio_only.to_str().unwrap(),
    ]);
    let error = tools().probe(&audio_only).unwrap_err();
    assert!(error.to_string().contains("has no video stream"), "{error}");

    let error = tools().probe(&dir.path().join("missing.mp4")).unwrap_err();
    assert!(matches!(error, PipelineError::MissingInput(_)), "{error}");

    let missing_ffmpeg = Toolchain { ffmpeg: "/nonexistent/ffmpeg".into(), ffprobe: "/nonexistent/ffprobe".into() };
    let error = missing_ffmpeg.probe(&hamilton()).unwrap_err();
    assert_eq!(media_code(&error), Some("ffmpeg_missing"), "{error}");

    assert!(children_mentioning(dir.path()).is_empty());
    let mut left = entries(dir.path());
    left.sort();
    assert_eq!(left, ["audio_only.mp4", "cut.mp4", "truncated.mp4"]);
}

#[test]
fn a_decoder_over_its_time_limit_is_killed_with_a_timeout_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    std::fs::copy(hamilton(), &input).unwrap();
    let info = tools().probe(&input).unwrap();
    let options = ReadOptions { timeout: std::time::Duration::from_millis(200), ..ReadOptions::default() };
    let mut reader = FrameReader::open(&tools(), &input, &info, &options).unwrap();
    // The reader stalls (as behind a slow processor) while ffmpeg blocks on a full pipe, and the
    // watchdog ends ffmpeg at the deadline. Not even the first frame is awaited, so a loaded
    // machine cannot make the test depend on how fast ffmpeg starts.
    std::thread::sleep(std::time::Duration::from_millis(400));
    let error = reader.by_ref().find_map(|r| r.err()).expect("a timeout error");
    assert_eq!(media_code(&error), Some("ffmpeg_timeout"), "{error}");
    drop(reader);
    assert!(children_mentioning(dir.path()).is_empty());
}

#[test]
fn local_encoders_give_facefusion_defaults() {
    let available = tools().available_encoders().unwrap();
    assert_eq!(available.default_video(), Some(VideoEncoder::Libx264));
    assert_eq!(available.default_audio(), Some(ff_pipeline::video::AudioEncoder::Flac));
    assert!(available.video.contains(&VideoEncoder::LibvpxVp9));
}

/// What the RSS child runs on each frame.
#[derive(Clone, Copy)]
enum RssWork {
    /// The bare frame loop with a no-op.
    FrameLoop,
    /// `Engine::process_video` with the face swapper (light stand-ins): analysis, swap, paste-back.
    EngineSwap,
}

/// Peak RSS of a child run of [`rss_child`] on `input`, in KiB, and the frames it wrote.
fn peak_rss_kib(input: &Path, out_dir: &Path, work: RssWork) -> (u64, u64) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "rss_child", "--ignored", "--nocapture", "--test-threads", "1"])
        .env("FF_RSS_INPUT", input)
        .env("FF_RSS_OUTPUT", out_dir.join(format!("{}.mp4", input.file_stem().unwrap().to_string_lossy())))
        .env("FF_RSS_ENGINE", if matches!(work, RssWork::EngineSwap) { "1" } else { "0" })
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RSS_RESULT ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no result in {stdout}"));
    let mut numbers = line.split_whitespace().map(|n| n.parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

/// Memory does not grow with the video's length: the same clip, once and looped 10 times, processed
/// with a no-op in separate processes, reach the same peak RSS (VmHWM) within a generous bound.
#[test]
fn rss_stays_flat_on_a_10x_longer_video() {
    let dir = tempfile::tempdir().unwrap();
    let looped = dir.path().join("looped.mp4");
    ffmpeg(&["-stream_loop", "9", "-i", hamilton().to_str().unwrap(), "-c", "copy", looped.to_str().unwrap()]);
    let (hwm_1x, frames_1x) = peak_rss_kib(&hamilton(), dir.path(), RssWork::FrameLoop);
    let (hwm_10x, frames_10x) = peak_rss_kib(&looped, dir.path(), RssWork::FrameLoop);
    println!("VmHWM: 1x ({frames_1x} frames) {hwm_1x} KiB, 10x ({frames_10x} frames) {hwm_10x} KiB");
    assert_eq!(frames_1x, 275);
    assert!(frames_10x >= 2700, "{frames_10x}");
    // One 640x360 frame is 675 KiB; growth with length would add ~1.8 GiB over 2475 extra frames.
    assert!(hwm_10x < hwm_1x + 32 * 1024, "{hwm_1x} KiB vs {hwm_10x} KiB");
}

/// The same through the whole engine with the face swapper: a 30-frame cut of the clip and that cut
/// looped 10 times. Models, sessions and per-frame face analysis must not make memory follow length.
#[test]
fn engine_rss_stays_flat_on_a_10x_longer_video() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mp4");
    let looped = dir.path().join("looped_cut.mp4");
    ffmpeg(&["-i", hamilton().to_str().unwrap(), "-frames:v", "30", "-an", "-c:v", "libx264", cut.to_str().unwrap()]);
    ffmpeg(&["-stream_loop", "9", "-i", cut.to_str().unwrap(), "-c", "copy", looped.to_str().unwrap()]);
    let (hwm_1x, frames_1x) = peak_rss_kib(&cut, dir.path(), RssWork::EngineSwap);
    let (hwm_10x, frames_10x) = peak_rss_kib(&looped, dir.path(), RssWork::EngineSwap);
    println!("engine VmHWM: 1x ({frames_1x} frames) {hwm_1x} KiB, 10x ({frames_10x} frames) {hwm_10x} KiB");
    assert_eq!(frames_1x, 30);
    assert!(frames_10x >= 290, "{frames_10x}");
    // 270 more frames of 675 KiB each would add ~178 MiB if any per-frame state were kept.
    assert!(hwm_10x < hwm_1x + 32 * 1024, "{hwm_1x} KiB vs {hwm_10x} KiB");
}

/// Run by the RSS tests above in a child process; does nothing on its own.
#[test]
#[ignore = "child of the rss_stays_flat tests"]
fn rss_child() {
    let (Some(input), Some(output)) = (std::env::var_os("FF_RSS_INPUT"), std::env::var_os("FF_RSS_OUTPUT")) else {
        return;
    };
    let (input, output) = (PathBuf::from(input), PathBuf::from(output));
    let frames = if std::env::var("FF_RSS_ENGINE").as_deref() == Ok("1") {
        swap_with_engine(&input, &output)
    } else {
        let info = tools().probe(&input).unwrap();
        let reader = FrameReader::open(&tools(), &input, &info, &ReadOptions::default()).unwrap();
        let mut encode = EncodeOptions::new(info.fps);
        encode.preset = VideoPreset::Ultrafast;
        let writer = FrameWriter::create(&tools(), &output, encode).unwrap();
        process_video(reader, writer, PARALLEL, |_, f| Ok(f), |_| {}, &AtomicBool::new(false)).unwrap().frames
    };
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
    let kib: u64 = hwm.trim().trim_end_matches("kB").trim().parse().unwrap();
    // On a line of its own: the harness prints "test rss_child ... " before the test's output.
    println!("\nRSS_RESULT {kib} {frames}");
}

fn swap_with_engine(input: &Path, output: &Path) -> u64 {
    let engine = Engine::new(EngineConfig {
        intra_threads: 1,
        sessions_per_model: 2,
        content_analysis: false,
        ..stand_in_config("light")
    })
    .unwrap();
    let pairs = [("face_swapper_model", "inswapper_128"), ("output_video_preset", "ultrafast")]
        .map(|(name, value)| (name.to_string(), vec![value.to_string()]));
    let request = VideoRequest {
        sources: vec![std::fs::read(assets_dir().join("images/obama.jpg")).unwrap()],
        target: input.to_path_buf(),
        output: output.to_path_buf(),
        options: ProcessOptions::from_pairs(&pairs).unwrap(),
        parallelism: Some(PARALLEL),
        timeout: std::time::Duration::from_secs(600),
        probe: None,
        max_duration: None,
        segment: None,
    };
    let result = engine.process_video(request, |_| {}, &AtomicBool::new(false)).unwrap();
    assert!(result.faces_processed > 0, "the swapper changed no face");
    result.frames
}

/// MD5 (RFC 1321), for comparing frames with FaceFusion's recorded hashes.
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14,
        20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6,
        10, 15, 21,
    ];
    let k: Vec<u32> = (0..64).map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32).collect();
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64).wrapping_mul(8)).to_le_bytes());
    for block in message.chunks_exact(64) {
        let m: Vec<u32> = block.chunks_exact(4).map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]])).collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a.wrapping_add(f).wrapping_add(k[i]).wrapping_add(m[g]).rotate_left(S[i]);
            (a, d, c) = (d, c, b);
            b = b.wrapping_add(rotated);
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    state.iter().flat_map(|s| s.to_le_bytes()).map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn md5_known_answers() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"The quick brown fox jumps over the lazy dog"), "9e107d9d372bb6826bd81d3542a419d6");
}
