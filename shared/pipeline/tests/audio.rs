//! The lip syncer's audio side against FaceFusion 3.5.3's own dumps (parity case 09_lip_sync_2s, light
//! stand-in kim_vocal_2), bad inputs, and real speech made with espeak-ng.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ff_pipeline::audio::{decode_audio, extract_voice, mel_spectrogram, prepare_voice, Audio, VoiceFrames};
use ff_pipeline::models::ModelStore;
use ff_pipeline::sessions::ModelRegistry;
use ff_pipeline::testing::{assets_dir, parity_dir, read_npy};
use ff_pipeline::video::Toolchain;
use ff_pipeline::PipelineError;

const MAX_DURATION: Duration = Duration::from_secs(600);
const TIMEOUT: Duration = Duration::from_secs(60);

fn registry() -> ModelRegistry {
    let store = Arc::new(ModelStore::new(assets_dir().join("standins/light"), false));
    ModelRegistry::new(Arc::new(move |name: &str| store.ensure(name)), 2, 1)
}

fn dump(name: &str) -> PathBuf {
    parity_dir().join("09_lip_sync_2s/dump").join(name)
}

fn speech_sample() -> PathBuf {
    assets_dir().join("audio/wav2lip_sample_speech.wav")
}

/// An int16 `.npy` (the dumped decoded audio); `read_npy` covers the float dumps.
fn read_npy_i16(path: &Path) -> (Vec<i16>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    assert_eq!(bytes[6], 1, "npy version 1 header");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'descr': '<i2'") && header.contains("'fortran_order': False"), "{header}");
    let shape_text = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape_text.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    let values = bytes[10 + header_len..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    (values, shape)
}

fn media_code(error: &PipelineError) -> Option<&'static str> {
    match error {
        PipelineError::Media { kind, .. } => Some(kind.code()),
        _ => None,
    }
}

fn max_abs_diff(a: impl IntoIterator<Item = f64>, b: &[f64]) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

fn mean_abs_diff(a: impl IntoIterator<Item = f64>, b: &[f64]) -> f64 {
    a.into_iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / b.len() as f64
}

fn peak(values: &[f64]) -> f64 {
    values.iter().fold(0.0, |m, v| m.max(v.abs()))
}

fn ffmpeg(args: &[&str]) {
    let status = Command::new("ffmpeg").args(["-loglevel", "error", "-nostdin", "-y"]).args(args).status().unwrap();
    assert!(status.success(), "ffmpeg {args:?}");
}

fn decoded_sample() -> Audio {
    decode_audio(&Toolchain::from_env(), &speech_sample(), MAX_DURATION, TIMEOUT).unwrap()
}

#[test]
fn decode_equals_facefusion_decode() {
    let audio = decoded_sample();
    let (expected, shape) = read_npy_i16(&dump("voice_batch_extract_voice_input_0_audio_int16.npy"));
    assert_eq!(shape, vec![492_774, 2]);
    assert_eq!(audio.frames(), 492_774);
    assert!(audio.samples == expected, "decoded samples differ from FaceFusion's");
    assert_eq!(audio.duration().as_millis(), 10_266);
}

/// Each stage of the chain on FaceFusion's own input for that stage, then the whole chain, against
/// the dumps. The errors are printed (run with --nocapture to see them).
#[test]
fn voice_chain_matches_facefusion_dumps() {
    let registry = registry();
    let audio = decoded_sample();
    let session = registry.get("kim_vocal_2").unwrap();

    // Voice extractor (float32 output, values within about ±1).
    let voice = extract_voice(&session, &audio).unwrap();
    let (expected_voice, shape) = read_npy(&dump("voice_batch_extract_voice_0_voice.npy"));
    assert_eq!(shape, vec![492_774, 2]);
    let voice_error = max_abs_diff(voice.iter().map(|&v| v as f64), &expected_voice);
    println!(
        "voice extractor: max |Δ| {voice_error:.3e}, mean |Δ| {:.3e} (peak {:.3})",
        mean_abs_diff(voice.iter().map(|&v| v as f64), &expected_voice),
        peak(&expected_voice)
    );
    assert!(voice_error < 1e-6, "voice extractor max |Δ| {voice_error}");

    // prepare_voice on FaceFusion's extracted voice (normalised to peak 1).
    let dumped_voice: Vec<f32> = expected_voice.iter().map(|&v| v as f32).collect();
    let prepared = prepare_voice(&dumped_voice);
    let (expected_prepared, shape) = read_npy(&dump("voice_create_spectrogram_0_prepared_audio.npy"));
    assert_eq!(shape, vec![164_258]);
    assert_eq!(prepared.len(), expected_prepared.len());
    let prepared_error = max_abs_diff(prepared.iter().copied(), &expected_prepared);
    println!("prepared voice (from the dumped voice): max |Δ| {prepared_error:.3e} (peak 1)");
    assert!(prepared_error < 1e-5, "prepared voice max |Δ| {prepared_error}");

    // Mel spectrogram on FaceFusion's prepared audio.
    let (expected_spectrogram, shape) = read_npy(&dump("voice_create_spectrogram_0_spectrogram.npy"));
    assert_eq!(shape, vec![80, 823]);
    let spectrogram = mel_spectrogram(&expected_prepared);
    let spectrogram_peak = peak(&expected_spectrogram);
    let spectrogram_error = max_abs_diff(spectrogram.iter().copied(), &expected_spectrogram) / spectrogram_peak;
    println!("mel spectrogram (from the dumped prepared voice): max |Δ| / peak {spectrogram_error:.3e}");
    assert!(spectrogram_error < 1e-6, "spectrogram relative error {spectrogram_error}");

    // The whole chain from the decoded file; the fastest of three runs (the machine is shared).
    let mut timings = Vec::new();
    let mut extracted = None;
    for _ in 0..3 {
        let started = Instant::now();
        let (_, ort_before) = session.run_stats();
        let frames = VoiceFrames::extract(&registry, "kim_vocal_2", &audio, 30.0).unwrap();
        let wall = started.elapsed();
        let ort = session.run_stats().1 - ort_before;
        timings.push((wall, ort));
        extracted = Some(frames);
    }
    let frames = extracted.unwrap();
    let (wall, ort) = timings.into_iter().min().unwrap();
    println!(
        "VoiceFrames::extract on {:.2} s of audio: {:.1} ms wall, {:.1} ms in ORT, {:.1} ms outside ORT",
        audio.duration().as_secs_f64(),
        wall.as_secs_f64() * 1e3,
        ort.as_secs_f64() * 1e3,
        (wall - ort).as_secs_f64() * 1e3
    );
    let chain_error = max_abs_diff(frames.spectrogram().iter().copied(), &expected_spectrogram) / spectrogram_peak;
    println!("mel spectrogram (whole chain): max |Δ| / peak {chain_error:.3e}");
    assert!(chain_error < 1e-5, "whole-chain spectrogram relative error {chain_error}");

    let (all_windows, shape) = read_npy(&dump("voice_read_voice_0_frames.npy"));
    assert_eq!(shape, vec![303, 80, 16]);
    assert_eq!(frames.len(), 303);
    let mut worst = 0.0f64;
    for (index, expected) in all_windows.chunks_exact(1280).enumerate() {
        let window = frames.window(index);
        worst = worst.max(max_abs_diff(window.iter().map(|&v| v as f64), expected) / spectrogram_peak);
    }
    println!("all 303 windows: max |Δ| / spectrogram peak {worst:.3e}");
    assert!(worst < 1e-5);

    // The raw window the lip syncer received for each of the 60 processed frames.
    let mut worst_frame = (0.0f64, 0);
    for frame in 0..60 {
        let (expected, shape) =
            read_npy(&dump(&format!("f{frame:05}_lipsync_prepare_audio_frame_0_raw_voice_frame.npy")));
        assert_eq!(shape, vec![80, 16]);
        let window = frames.window(frame);
        let window_peak = peak(&expected).max(1e-12);
        let error = max_abs_diff(window.iter().map(|&v| v as f64), &expected) / window_peak;
        if error > worst_frame.0 {
            worst_frame = (error, frame);
        }
    }
    println!("60 frame windows: max |Δ| / window peak {:.3e} (frame {})", worst_frame.0, worst_frame.1);
    assert!(worst_frame.0 < 1e-4, "frame {} window relative error {}", worst_frame.1, worst_frame.0);
    assert!(frames.window(303).iter().all(|&v| v == 0.0));
}

#[test]
fn bad_audio_gives_clear_errors() {
    let tools = Toolchain::from_env();
    let dir = tempfile::tempdir().unwrap();
    let decode = |path: &Path| decode_audio(&tools, path, MAX_DURATION, TIMEOUT).unwrap_err();

    let corrupt = dir.path().join("corrupt.wav");
    std::fs::write(&corrupt, (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<_>>())
        .unwrap();
    let error = decode(&corrupt);
    assert_eq!(media_code(&error), Some("audio_unreadable"), "{error}");
    assert!(error.to_string().contains("corrupt.wav"), "{error}");

    let empty = dir.path().join("empty.mp3");
    std::fs::write(&empty, b"").unwrap();
    let error = decode(&empty);
    assert_eq!(media_code(&error), Some("audio_empty"), "{error}");

    let missing = dir.path().join("missing.wav");
    assert_eq!(media_code(&decode(&missing)), Some("audio_unreadable"));

    // A valid WAV header with no samples.
    let no_samples = dir.path().join("no_samples.wav");
    ffmpeg(&["-f", "lavfi", "-i", "anullsrc=r=48000:cl=stereo", "-t", "0", no_samples.to_str().unwrap()]);
    let error = decode(&no_samples);
    assert_eq!(media_code(&error), Some("audio_empty"), "{error}");

    // A video without an audio stream, and an image.
    let video = assets_dir().join("video/wav2lip_sample_target.mp4");
    let error = decode(&video);
    assert_eq!(media_code(&error), Some("audio_no_stream"), "{error}");
    let image = dir.path().join("still.png");
    ffmpeg(&["-f", "lavfi", "-i", "color=c=red:s=16x16", "-frames:v", "1", image.to_str().unwrap()]);
    assert_eq!(media_code(&decode(&image)), Some("audio_no_stream"));

    // Too long: stopped at the limit, not after decoding the whole file.
    let error = decode_audio(&tools, &speech_sample(), Duration::from_secs(2), TIMEOUT).unwrap_err();
    assert_eq!(media_code(&error), Some("audio_too_long"), "{error}");
    assert!(error.to_string().contains("2.0 s"), "{error}");
    let exact = decode_audio(&tools, &speech_sample(), Duration::from_secs_f64(492_774.0 / 48_000.0), TIMEOUT);
    assert_eq!(exact.unwrap().frames(), 492_774, "a limit equal to the duration is allowed");
}

#[test]
fn a_stalled_decode_is_killed_at_its_timeout() {
    // ffmpeg blocks opening a FIFO nobody writes to; the watchdog must end it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("stalled.wav");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let started = Instant::now();
    let error = decode_audio(&Toolchain::from_env(), &fifo, MAX_DURATION, Duration::from_millis(300)).unwrap_err();
    assert_eq!(media_code(&error), Some("ffmpeg_timeout"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn other_formats_decode_like_the_wav() {
    // FaceFusion accepts any audio ffmpeg reads; a lossless re-encode decodes to identical samples.
    let dir = tempfile::tempdir().unwrap();
    let flac = dir.path().join("speech.flac");
    ffmpeg(&["-i", speech_sample().to_str().unwrap(), flac.to_str().unwrap()]);
    let audio = decode_audio(&Toolchain::from_env(), &flac, MAX_DURATION, TIMEOUT).unwrap();
    assert_eq!(audio.frames(), 492_774);
    assert!(audio == decoded_sample(), "flac and wav decode differently");
}

/// Real speech (espeak-ng, installed by .ci/run) after a second of silence: the windows over the
/// silence carry far less energy than those over the speech.
#[test]
fn espeak_speech_windows_differ_from_silence() {
    let dir = tempfile::tempdir().unwrap();
    let speech = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en", "-s", "150", "-w"])
        .arg(&speech)
        .arg("Hello there. The quick brown fox jumps over the lazy dog.")
        .status()
        .expect("espeak-ng must be installed (apt-get install espeak-ng; .ci/run does it)");
    assert!(status.success());
    let delayed = dir.path().join("delayed.m4a");
    ffmpeg(&["-i", speech.to_str().unwrap(), "-af", "adelay=1000:all=1", "-c:a", "aac", delayed.to_str().unwrap()]);

    let audio = decode_audio(&Toolchain::from_env(), &delayed, MAX_DURATION, TIMEOUT).unwrap();
    assert!(audio.duration() > Duration::from_secs(3), "{:?}", audio.duration());
    let fps = 25.0;
    let frames = VoiceFrames::extract(&registry(), "kim_vocal_2", &audio, fps).unwrap();
    // Window j covers [j/25 s, j/25 + 0.2 s): windows 0..15 end by 0.8 s, inside the silence.
    let expected_windows = ((audio.duration().as_secs_f64() * 80.0 - 16.0) / (80.0 / fps)) as usize;
    assert!(
        frames.len().abs_diff(expected_windows) <= 2,
        "{} windows, expected about {expected_windows}",
        frames.len()
    );
    let energy = |j: usize| frames.window(j).iter().map(|&v| v as f64).sum::<f64>() / 1280.0;
    let silence = (0..15).map(energy).fold(0.0, f64::max);
    let speech_windows = 30..frames.len() - 5;
    let speech_mean = speech_windows.clone().map(energy).sum::<f64>() / speech_windows.len() as f64;
    let loud = speech_windows.clone().filter(|&j| energy(j) > 100.0 * silence).count();
    println!(
        "max silent-window energy {silence:.3e}, mean speech-window energy {speech_mean:.3e}, {loud} loud windows"
    );
    assert!(speech_mean > 100.0 * silence, "speech {speech_mean} vs silence {silence}");
    assert!(loud * 2 > speech_windows.len(), "most speech windows are loud: {loud} of {}", speech_windows.len());
    // After the §8.4 transform silence is near the −4 floor and speech well above it.
    let transformed = |j: usize| {
        frames.window(j).iter().map(|&v| ((v as f64).max(1e-5).log10() * 1.6 + 3.2).clamp(-4.0, 4.0)).sum::<f64>()
            / 1280.0
    };
    assert!(transformed(40) > transformed(5) + 1.0, "{} vs {}", transformed(40), transformed(5));
}

#[test]
fn unknown_voice_extractor_and_bad_fps_are_rejected() {
    let audio = Audio { samples: vec![0; 96_000] };
    let error = VoiceFrames::extract(&registry(), "gfpgan_1.4", &audio, 25.0).unwrap_err();
    assert!(matches!(error, PipelineError::InvalidOption { ref option, .. } if option == "voice_extractor_model"));
    let error = VoiceFrames::extract(&registry(), "kim_vocal_2", &audio, f64::NAN).unwrap_err();
    assert!(matches!(error, PipelineError::InvalidOption { .. }), "{error}");
    // Digital silence: windows exist and are all zero (FaceFusion would divide by zero).
    let frames = VoiceFrames::extract(&registry(), "kim_vocal_2", &audio, 25.0).unwrap();
    assert_eq!(frames.len(), 21);
    assert!((0..frames.len()).all(|j| frames.window(j).iter().all(|&v| v == 0.0)));
}
