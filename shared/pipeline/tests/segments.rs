//! A video run cut into segments (`Engine::plan_segments`), each processed on its own and joined
//! (`Engine::join_segments`), against the same run made in one piece: the same frames (>= 40 dB
//! where the processors changed them), the same audio, on the talking clip (face swap with the
//! tracker, target audio restored) and on the lip-sync target (voice windows by global frame).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ff_pipeline::engine::{Engine, EngineConfig, VideoRequest, VideoSegment};
use ff_pipeline::options::ProcessOptions;
use ff_pipeline::testing::{assets_dir, changed_box, decode_video, psnr, stand_in_config};
use ff_pipeline::video::{Parallelism, ReadOptions, Toolchain};

fn engine() -> Engine {
    Engine::new(EngineConfig { sessions_per_model: 2, ..stand_in_config("light") }).unwrap()
}

fn options(pairs: &[(&str, &str)]) -> ProcessOptions {
    let pairs: Vec<(String, Vec<String>)> = pairs.iter().map(|(n, v)| (n.to_string(), vec![v.to_string()])).collect();
    ProcessOptions::from_pairs(&pairs).unwrap()
}

fn request(sources: &[PathBuf], target: &Path, output: &Path, options: &ProcessOptions) -> VideoRequest {
    let probe = Toolchain::from_env().probe(target).unwrap();
    VideoRequest {
        sources: sources.iter().map(|p| std::fs::read(p).unwrap()).collect(),
        target: target.to_path_buf(),
        probe: Some(probe),
        output: output.to_path_buf(),
        options: options.clone(),
        parallelism: Some(Parallelism { workers: 2, max_in_flight: 4 }),
        timeout: Duration::from_secs(900),
        max_duration: None,
        segment: None,
    }
}

/// The run in one piece into `whole.mp4`, and cut into `seconds` pieces into `joined.mp4`; the
/// segments cut.
fn both_ways(
    dir: &Path,
    sources: &[PathBuf],
    target: &Path,
    options: &ProcessOptions,
    seconds: f64,
) -> Vec<VideoSegment> {
    let engine = engine();
    let cancel = AtomicBool::new(false);
    let whole = request(sources, target, &dir.join("whole.mp4"), options);
    let segments = engine.plan_segments(&whole, seconds, &cancel).unwrap().expect("the run is cut");
    engine.process_video(whole, |_| {}, &cancel).unwrap();
    // A fresh engine per piece, as pieces run in other processes: nothing is shared but the inputs.
    let parts: Vec<PathBuf> = segments
        .iter()
        .enumerate()
        .map(|(index, &segment)| {
            let part = dir.join(format!("part-{index}.mp4"));
            let request = VideoRequest { segment: Some(segment), ..request(sources, target, &part, options) };
            let output = self::engine().process_video(request, |_| {}, &cancel).unwrap();
            assert_eq!(output.frames, segment.frames.1 - segment.frames.0, "segment {index}");
            assert!(!Toolchain::from_env().probe(&part).unwrap().has_audio, "a segment carries no audio");
            part
        })
        .collect();
    let joined = request(sources, target, &dir.join("joined.mp4"), options);
    let encoded = engine.join_segments(&joined, &parts).unwrap();
    let total: u64 = segments.iter().map(|segment| segment.frames.1 - segment.frames.0).sum();
    assert_eq!(encoded.frames, total);
    segments
}

fn ranges(segments: &[VideoSegment]) -> Vec<(u64, u64)> {
    segments.iter().map(|segment| segment.frames).collect()
}

fn seeks(segments: &[VideoSegment]) -> Vec<Option<u64>> {
    segments.iter().map(|segment| segment.keyframe.map(|keyframe| keyframe.frame)).collect()
}

/// Every frame of `joined` matches `whole` within the region the run changed against `target`'s
/// frames of the trim range.
fn assert_same_frames(dir: &Path, target: &Path, trim: (u64, u64)) {
    let whole = decode_video(&dir.join("whole.mp4"), &ReadOptions::default());
    let joined = decode_video(&dir.join("joined.mp4"), &ReadOptions::default());
    let read = ReadOptions { trim_frame_start: Some(trim.0), trim_frame_end: Some(trim.1), ..Default::default() };
    let original = decode_video(target, &read);
    assert_eq!(joined.len(), whole.len(), "frame count");
    assert_eq!(whole.len() as u64, trim.1 - trim.0);
    let mut changed = 0;
    for (index, ((ours, theirs), before)) in joined.iter().zip(&whole).zip(&original).enumerate() {
        let Some(region) = changed_box(theirs, before, 12) else { continue };
        changed += 1;
        let db = psnr(ours, theirs, Some(region));
        assert!(db >= 40.0, "frame {index}: {db:.1} dB in the changed region {region:?}");
    }
    assert!(changed * 2 > whole.len(), "the run changed only {changed} of {} frames", whole.len());
}

/// The decoded audio's MD5 and duration.
fn audio_of(path: &Path) -> (String, f64) {
    let md5 = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:a:0", "-f", "md5", "-"])
        .output()
        .unwrap();
    assert!(md5.status.success(), "{}", String::from_utf8_lossy(&md5.stderr));
    let duration = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries", "stream=duration", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    let duration = String::from_utf8_lossy(&duration.stdout).trim().parse().unwrap();
    (String::from_utf8_lossy(&md5.stdout).trim().to_string(), duration)
}

#[test]
fn a_cut_swap_with_the_tracker_matches_the_whole_run_and_its_audio() {
    let dir = tempfile::tempdir().unwrap();
    let target = assets_dir().join("video/short_hamilton_clip.mp4");
    let options = options(&[
        ("processors", "face_swapper"),
        ("face_swapper_model", "inswapper_128"),
        ("face_tracker_score", "0.5"),
        ("trim_frame_start", "40"),
        ("trim_frame_end", "160"),
        ("output_video_preset", "ultrafast"),
    ]);
    let segments = both_ways(dir.path(), &[assets_dir().join("images/obama.jpg")], &target, &options, 1.0);
    // The clip's keyframes fall at its frames 60 and 120: the cuts go there, and the segments
    // after them decode from there (the tracker's window starts 2 frames before a segment).
    assert_eq!(ranges(&segments), vec![(40, 60), (60, 90), (90, 120), (120, 150), (150, 160)]);
    assert_eq!(seeks(&segments), vec![None, None, Some(60), Some(60), Some(120)]);
    assert_same_frames(dir.path(), &target, (40, 160));
    let (whole, joined) = (audio_of(&dir.path().join("whole.mp4")), audio_of(&dir.path().join("joined.mp4")));
    assert_eq!(joined, whole, "the audio is restored once over the joined video, as over the whole one");
}

#[test]
fn cut_lip_sync_reads_its_voice_by_the_global_frame_number() {
    let dir = tempfile::tempdir().unwrap();
    let target = assets_dir().join("video/wav2lip_sample_target.mp4");
    let speech = assets_dir().join("audio/wav2lip_sample_speech.wav");
    let options =
        options(&[("processors", "lip_syncer"), ("trim_frame_end", "96"), ("output_video_preset", "ultrafast")]);
    let segments = both_ways(dir.path(), &[speech], &target, &options, 1.0);
    assert_eq!(ranges(&segments), vec![(0, 30), (30, 60), (60, 96)]);
    assert_eq!(seeks(&segments), vec![None, Some(30), Some(60)]);
    assert_same_frames(dir.path(), &target, (0, 96));
    let (whole, joined) = (audio_of(&dir.path().join("whole.mp4")), audio_of(&dir.path().join("joined.mp4")));
    assert_eq!(joined, whole, "the speech replaces the sound once");
}

#[test]
fn runs_whose_frames_do_not_map_one_to_one_are_not_cut() {
    let engine = engine();
    let target = assets_dir().join("video/wav2lip_sample_target.mp4");
    let cancel = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.mp4");
    for pairs in [
        vec![("processors", "frame_colorizer"), ("output_video_fps", "25")],
        vec![("processors", "face_debugger"), ("face_detector_interval", "3")],
        // Not longer than a segment and a quarter.
        vec![("processors", "frame_colorizer"), ("trim_frame_end", "37")],
    ] {
        let request = request(&[], &target, &output, &options(&pairs));
        assert_eq!(engine.plan_segments(&request, 1.0, &cancel).unwrap(), None, "{pairs:?}");
    }
}

#[test]
fn a_segment_outside_the_trim_range_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = assets_dir().join("video/wav2lip_sample_target.mp4");
    let options = options(&[("processors", "frame_colorizer"), ("trim_frame_end", "50")]);
    let request = VideoRequest {
        segment: Some(VideoSegment { frames: (40, 60), keyframe: None }),
        ..request(&[], &target, &dir.path().join("out.mp4"), &options)
    };
    let error = engine().process_video(request, |_| {}, &AtomicBool::new(false)).err().unwrap();
    assert!(error.to_string().contains("not inside"), "{error}");
}

/// A decode that seeks to a keyframe gives exactly the frames of a decode from the video's start,
/// on both clips (the talking clip's stream starts 0.85 s in), at the keyframe and past it.
#[test]
fn a_seeking_decode_gives_the_same_frames_as_one_from_the_start() {
    let tools = Toolchain::from_env();
    for (clip, ranges) in [
        ("video/short_hamilton_clip.mp4", vec![(60, 75), (130, 170), (211, 230)]),
        ("video/wav2lip_sample_target.mp4", vec![(30, 45), (95, 150)]),
    ] {
        let path = assets_dir().join(clip);
        let info = tools.probe(&path).unwrap();
        assert!(info.constant_rate, "{clip}");
        let keyframes = tools.keyframes(&path, &info, Duration::from_secs(60)).unwrap();
        for (start, end) in ranges {
            let seek = ff_pipeline::video::seek_point(&keyframes, start, 0).expect("a keyframe before the range");
            let read = ReadOptions { trim_frame_start: Some(start), trim_frame_end: Some(end), ..Default::default() };
            let from_start = decode_video(&path, &read);
            let seeking = decode_video(&path, &ReadOptions { seek: Some(seek), ..read.clone() });
            assert_eq!(seeking.len(), from_start.len(), "{clip} {start}..{end}");
            for (index, (a, b)) in seeking.iter().zip(&from_start).enumerate() {
                assert!(a.data == b.data, "{clip} {start}..{end}: frame {index} differs (seek to {seek:?})");
            }
        }
    }
}
