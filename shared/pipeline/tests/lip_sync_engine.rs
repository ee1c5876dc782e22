//! The lip syncer through the engine on the light stand-ins: parity case 09 (2 s of the lip-sync
//! target speaking the sample speech) against FaceFusion's golden output.mp4, a still photo made to
//! speak, a chain of three processors on video, and the audio source's errors. Needs ffmpeg/ffprobe
//! on PATH, espeak-ng for the synthetic speech, and FF_TEST_ASSETS.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ff_pipeline::audio::decode_audio;
use ff_pipeline::engine::{ImageRequest, VideoOutput, VideoRequest};
use ff_pipeline::image_io::ImageFormat;
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{
    assets_dir, changed_box, decode_video, diff_box, parity_dir, psnr, read_bgr, stand_in_config,
};
use ff_pipeline::video::{AudioOutcome, Parallelism, ReadOptions, Toolchain};
use ff_pipeline::{Engine, EngineConfig, PipelineError};

const CASE: &str = "09_lip_sync_2s";

/// Pixels whose channels differ by more than this between the golden and the unprocessed frame
/// belong to the lip sync; encoding noise at quality 80 stays below it.
const CHANGE_THRESHOLD: u8 = 24;

fn engine() -> Engine {
    Engine::new(EngineConfig { intra_threads: 1, sessions_per_model: 2, ..stand_in_config("light") }).unwrap()
}

fn speech() -> PathBuf {
    assets_dir().join("audio/wav2lip_sample_speech.wav")
}

fn lip_target() -> PathBuf {
    assets_dir().join("video/wav2lip_sample_target.mp4")
}

fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
    let pairs: Vec<(String, Vec<String>)> = pairs
        .iter()
        .map(|(name, values)| (name.to_string(), values.split_whitespace().map(str::to_string).collect()))
        .collect();
    ProcessOptions::from_pairs(&pairs).unwrap()
}

fn request(sources: &[&Path], target: &Path, output: &Path, options: ProcessOptions) -> VideoRequest {
    VideoRequest {
        sources: sources.iter().map(|p| std::fs::read(p).unwrap()).collect(),
        target: target.to_path_buf(),
        output: output.to_path_buf(),
        options,
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
        timeout: Duration::from_secs(900),
        probe: None,
        max_duration: None,
        segment: None,
    }
}

fn run(engine: &Engine, request: VideoRequest) -> Result<VideoOutput, PipelineError> {
    engine.process_video(request, |_| {}, &AtomicBool::new(false))
}

/// Speech synthesised by espeak-ng into `dir`.
fn espeak(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("speech.wav");
    let status = Command::new("espeak-ng").arg("-w").arg(&path).arg(text).status().expect("espeak-ng on PATH");
    assert!(status.success());
    path
}

#[test]
fn lip_sync_video_matches_facefusion_golden() {
    let dir = parity_dir().join(CASE);
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("output.mp4");
    let options = options(&[
        ("processors", "lip_syncer"),
        ("trim_frame_start", "0"),
        ("trim_frame_end", "60"),
        ("output_audio_encoder", "aac"),
    ]);
    let result = run(&engine(), request(&[&speech()], &lip_target(), &output, options)).unwrap();
    println!(
        "{CASE}: {} frames in {:.1} s ({:.2} fps), {} faces, audio {:?}, voice {:.0} ms",
        result.frames,
        result.elapsed.as_secs_f64(),
        result.processing_fps,
        result.faces_processed,
        result.video.audio,
        result.timings.audio.as_secs_f64() * 1000.0
    );
    assert_eq!(result.frames, 60);
    assert_eq!(result.faces_processed, 60);
    assert_eq!(result.video.audio, AudioOutcome::Replaced);

    let tools = Toolchain::from_env();
    let (ours_info, golden_info) = (tools.probe(&output).unwrap(), tools.probe(&dir.join("output.mp4")).unwrap());
    assert_eq!(ours_info.frame_count, 60);
    assert!(ours_info.has_audio, "the source speech is muxed in");
    assert!(
        (ours_info.duration - golden_info.duration).abs() < 0.1,
        "{} vs {}",
        ours_info.duration,
        golden_info.duration
    );

    let ours = decode_video(&output, &ReadOptions::default());
    let golden = decode_video(&dir.join("output.mp4"), &ReadOptions::default());
    let untouched = decode_video(&lip_target(), &ReadOptions { trim_frame_end: Some(60), ..ReadOptions::default() });
    assert_eq!((ours.len(), golden.len(), untouched.len()), (60, 60, 60));
    let mut worst = f64::INFINITY;
    let mut changed_frames = 0;
    for (index, ((ours, golden), untouched)) in ours.iter().zip(&golden).zip(&untouched).enumerate() {
        // Silent frames leave the mouth as it was; their whole face box is compared instead.
        let region = changed_box(golden, untouched, CHANGE_THRESHOLD);
        changed_frames += region.is_some() as usize;
        let region = region.unwrap_or((134, 97, 326, 363));
        let boxed = psnr(ours, golden, Some(region));
        println!("frame {index:2}: box {region:?} PSNR {boxed:.2} dB");
        worst = worst.min(boxed);
        assert!(boxed >= 35.0, "frame {index}: PSNR {boxed:.2} dB in the changed box");
    }
    println!("{CASE}: worst PSNR in the changed box {worst:.2} dB; {changed_frames} of 60 frames changed");
    assert!(changed_frames > 10, "the golden mouth moves on most frames");

    // FaceFusion's own lossless frames: the exact changed box against our encoded frame.
    for index in [0usize, 30, 59] {
        let processed = read_bgr(&dir.join(format!("dump/f{index:05}_output_frame.png")));
        let input = read_bgr(&dir.join(format!("dump/f{index:05}_input_frame.png")));
        if let Some(region) = diff_box(&processed, &input) {
            let value = psnr(&ours[index], &processed, Some(region));
            println!("frame {index} vs FaceFusion's PNG: box {region:?} PSNR {value:.2} dB");
            assert!(value >= 35.0);
        }
    }
}

#[test]
fn a_still_photo_speaks_for_the_length_of_the_audio() {
    let out_dir = tempfile::tempdir().unwrap();
    let speech = espeak(out_dir.path(), "Hello, this photo is talking now.");
    let audio = decode_audio(&Toolchain::from_env(), &speech, Duration::from_secs(60), Duration::from_secs(60))
        .unwrap()
        .duration()
        .as_secs_f64();
    let output = out_dir.path().join("talking.mp4");
    let target = assets_dir().join("images/obama.jpg");
    let result =
        run(&engine(), request(&[&speech], &target, &output, options(&[("processors", "lip_syncer")]))).unwrap();
    let info = Toolchain::from_env().probe(&output).unwrap();
    println!(
        "still photo: {} frames at {} fps for {audio:.2} s of speech, {} faces, {:.2} fps",
        result.frames, info.fps, result.faces_processed, result.processing_fps
    );
    assert_eq!(result.frames, (audio * 25.0).ceil() as u64);
    assert!((info.fps - 25.0).abs() < 1e-6);
    assert!(info.has_audio);
    assert!((info.duration - audio).abs() < 0.15, "{} vs {audio}", info.duration);
    assert!(result.faces_processed > 0);
    let frames = decode_video(&output, &ReadOptions::default());
    let moving = frames.windows(2).filter(|pair| psnr(&pair[0], &pair[1], None) < 60.0).count();
    assert!(moving > 0, "the mouth moves with the speech");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 2, "only the speech and the output");
}

#[test]
fn an_image_output_of_a_lip_sync_is_facefusions_silent_frame() {
    let engine = engine();
    let target = std::fs::read(assets_dir().join("images/obama.jpg")).unwrap();
    let image = |processors: &str| ImageRequest {
        sources: vec![std::fs::read(speech()).unwrap()],
        target: target.clone(),
        options: options(&[("processors", processors)]),
        output_format: Some(ImageFormat::Png),
    };
    let output = engine.process_image(image("lip_syncer")).unwrap();
    assert_eq!(output.faces_processed, 1);
    let error = engine
        .process_image(ImageRequest { sources: vec![], ..image("lip_syncer") })
        .err()
        .expect("lip_syncer without audio is refused");
    assert!(matches!(error, PipelineError::MissingInput(_)), "{error}");
}

#[test]
fn three_processors_chain_on_a_speaking_video() {
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("chain.mp4");
    let options = options(&[
        ("processors", "face_swapper lip_syncer face_enhancer"),
        ("face_swapper_model", "inswapper_128"),
        ("trim_frame_end", "8"),
    ]);
    let obama = assets_dir().join("images/obama.jpg");
    let result = run(&engine(), request(&[&obama, &speech()], &lip_target(), &output, options)).unwrap();
    let names: Vec<&str> = result.timings.processors.iter().map(|(name, _)| name.as_str()).collect();
    println!("chain: {} frames, {} faces, {:?}", result.frames, result.faces_processed, result.timings.processors);
    assert_eq!(names, ["face_swapper", "lip_syncer", "face_enhancer"]);
    assert_eq!(result.frames, 8);
    assert_eq!(result.faces_processed, 8);
    assert_eq!(result.video.audio, AudioOutcome::Replaced);
}

#[test]
fn bad_audio_sources_give_clear_errors() {
    let engine = engine();
    let out_dir = tempfile::tempdir().unwrap();
    let output = out_dir.path().join("out.mp4");
    let lip_sync = || options(&[("processors", "lip_syncer"), ("trim_frame_end", "4")]);
    let with_source =
        |bytes: Vec<u8>| VideoRequest { sources: vec![bytes], ..request(&[], &lip_target(), &output, lip_sync()) };
    let mut corrupt = b"RIFF\x24\x00\x00\x00WAVEfmt ".to_vec();
    corrupt.extend(std::iter::repeat_n(0x5a, 200));
    let cases: [(&str, Vec<u8>); 3] = [
        ("corrupt wav", corrupt),
        ("truncated mp3 header", b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec()),
        ("text", b"this is not audio at all".to_vec()),
    ];
    for (name, bytes) in cases {
        let error = run(&engine, with_source(bytes)).err().unwrap_or_else(|| panic!("{name}: accepted"));
        println!("{name}: {error}");
        assert!(matches!(error, PipelineError::Media { .. } | PipelineError::UnsupportedMedia(_)), "{name}: {error:?}");
    }
    let error = run(&engine, with_source(std::fs::read(lip_target()).unwrap())).err().unwrap();
    assert!(matches!(error, PipelineError::UnsupportedMedia(_)), "a video as a source: {error:?}");
    let error = run(&engine, request(&[], &lip_target(), &output, lip_sync())).err().unwrap();
    assert!(matches!(error, PipelineError::MissingInput(_)), "no audio at all: {error:?}");
    assert_eq!(std::fs::read_dir(out_dir.path()).unwrap().count(), 0, "nothing left behind");
}
