//! Long videos in pieces: where to cut a trim range (at the target's keyframes, about every
//! `frames_per_segment` frames), and joining the pieces, encoded with identical settings, back into
//! one video by stream copy, the audio added once over the whole.
//!
//! Each piece is decoded with the same `trim` filter as a whole run (see [`super::FrameReader`]), so a
//! piece's frames are exactly the whole run's frames of that range whatever the cut; cutting at
//! keyframes keeps the pieces' decoders from reading across a GOP they do not need once they seek.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{media_error, run_capture, Supervised, Toolchain};
use super::reader::Keyframe;
use super::writer::{extension_of, mux_audio, sibling_temp, TempFile};
use super::{EncodeOptions, EncodedVideo, VideoInfo};
use crate::error::{MediaFailure, PipelineError, Result};

/// The most segments a run is cut into: a longer run gets longer segments (see [`segment_ranges`]).
pub const MAX_SEGMENTS: usize = 1000;

/// Keyframe lists are a few numbers a second; this bounds a runaway answer (hours of 1-frame GOPs).
const KEYFRAME_OUTPUT_LIMIT: usize = 64 * 1024 * 1024;

impl Toolchain {
    /// The video stream's keyframes (frame numbers from 0 at the first frame, and timestamps), from
    /// one ffprobe that decodes nothing but keyframes. The numbers follow from the timestamps, so
    /// they are the decoder's only for a constant-rate stream ([`VideoInfo::constant_rate`]).
    pub fn keyframes(&self, path: &Path, info: &VideoInfo, timeout: Duration) -> Result<Vec<Keyframe>> {
        let args: Vec<String> = [
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=best_effort_timestamp_time",
            "-of",
            "csv=p=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([path.to_string_lossy().into_owned()])
        .collect();
        let (status, stdout, stderr) =
            run_capture("ffprobe keyframes", &self.ffprobe, &args, timeout, KEYFRAME_OUTPUT_LIMIT)?;
        if !status.success() {
            let detail = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no detail").trim().to_string();
            return Err(media_error(MediaFailure::FfmpegFailed, format!("reading the keyframes failed: {detail}")));
        }
        Ok(parse_keyframes(&String::from_utf8_lossy(&stdout), info.fps))
    }
}

/// Keyframe times (one per line, seconds) with their frame numbers counted from the first
/// keyframe's time (a stream may start late: FaceFusion's MP4s start 23 ms in).
fn parse_keyframes(text: &str, fps: f64) -> Vec<Keyframe> {
    let times: Vec<f64> =
        text.lines().filter_map(|line| line.trim().trim_end_matches(',').parse::<f64>().ok()).collect();
    let Some(first) = times.iter().copied().reduce(f64::min) else {
        return Vec::new();
    };
    let mut keyframes: Vec<Keyframe> = times
        .iter()
        .map(|&seconds| Keyframe { frame: ((seconds - first) * fps).round().max(0.0) as u64, seconds })
        .collect();
    keyframes.sort_by_key(|keyframe| keyframe.frame);
    keyframes.dedup_by_key(|keyframe| keyframe.frame);
    keyframes
}

/// The keyframe a decode of frames from `start` seeks to: the last one at or before `start` less
/// `lead` frames read ahead (the tracker's window), if it is past the first frame.
pub fn seek_point(keyframes: &[Keyframe], start: u64, lead: u64) -> Option<Keyframe> {
    let limit = start.checked_sub(lead)?;
    keyframes.iter().rev().find(|keyframe| keyframe.frame <= limit).filter(|keyframe| keyframe.frame > 0).copied()
}

/// Cuts `trim` into ranges of about `frames_per_segment` frames: each cut goes at the keyframe
/// nearest to where the segment would end, if one lies within half a segment of it, else exactly
/// there (the pieces are re-encoded, so any cut is exact). A last piece shorter than a quarter
/// segment joins the one before. One range when the trim range is not longer than a segment. At
/// most [`MAX_SEGMENTS`]: past that the segments are made twice as long, as often as needed.
pub fn segment_ranges(trim: (u64, u64), keyframes: &[u64], frames_per_segment: u64) -> Vec<(u64, u64)> {
    let mut length = frames_per_segment.max(1);
    loop {
        let ranges = ranges_of(trim, keyframes, length);
        if ranges.len() <= MAX_SEGMENTS {
            return ranges;
        }
        length *= 2;
    }
}

fn ranges_of((start, end): (u64, u64), keyframes: &[u64], length: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    let mut from = start;
    while end.saturating_sub(from) > length + length / 4 {
        let nominal = from + length;
        let reach = length / 2;
        let nearest = keyframes
            .iter()
            .copied()
            .filter(|&frame| frame > from + length / 2 && frame + length / 4 < end && frame.abs_diff(nominal) <= reach)
            .min_by_key(|&frame| frame.abs_diff(nominal));
        let cut = nearest.unwrap_or(nominal);
        ranges.push((from, cut));
        from = cut;
    }
    ranges.push((from, end));
    ranges
}

/// Joins `parts` (videos made with identical encoder settings, each starting with a keyframe, no
/// audio) by stream copy into `output`, then adds the audio of `options.audio` once over the whole,
/// exactly as [`super::FrameWriter::finish`] does for a video made in one piece.
pub fn join_segments(
    toolchain: &Toolchain,
    parts: &[PathBuf],
    output: &Path,
    options: &EncodeOptions,
) -> Result<EncodedVideo> {
    if parts.is_empty() {
        return Err(media_error(MediaFailure::FfmpegFailed, "no segment to join"));
    }
    let format = extension_of(output);
    let list = TempFile(Some(sibling_temp(output, "segments", "txt")));
    write_concat_list(list.path(), parts)?;
    let joined = TempFile(Some(sibling_temp(output, "joined", &format)));
    let mut args: Vec<String> =
        ["-loglevel", "error", "-nostdin", "-f", "concat", "-safe", "0", "-i"].map(String::from).to_vec();
    args.push(list.path().to_string_lossy().into_owned());
    args.extend(["-map", "0:v:0", "-c", "copy", "-y"].map(String::from));
    args.push(joined.path().to_string_lossy().into_owned());
    Supervised::spawn("ffmpeg join", &toolchain.ffmpeg, &args, false, false, options.timeout)?.wait_success()?;
    drop(list);
    let frames = toolchain.probe(joined.path())?.frame_count;
    let encoder = super::fix_video_encoder(&format, options.encoder);
    let audio = mux_audio(toolchain, joined, output, options, &format)?;
    Ok(EncodedVideo { path: output.to_path_buf(), frames, encoder, audio })
}

/// The concat demuxer's list: one `file '<path>'` line per part, quotes escaped as it reads them.
fn write_concat_list(path: &Path, parts: &[PathBuf]) -> Result<()> {
    let mut text = String::from("ffconcat version 1.0\n");
    for part in parts {
        let absolute = std::path::absolute(part).map_err(|e| PipelineError::io(part, e))?;
        let quoted = absolute.to_string_lossy().replace('\'', r"'\''");
        text.push_str(&format!("file '{quoted}'\n"));
    }
    let mut file = std::fs::File::create(path).map_err(|e| PipelineError::io(path, e))?;
    file.write_all(text.as_bytes()).map_err(|e| PipelineError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyframe_times_become_frame_numbers_from_the_first() {
        let keyframes = parse_keyframes("0.023000\n8.356333,\n\n16.689667\nN/A\n", 30.0);
        assert_eq!(keyframes.iter().map(|k| k.frame).collect::<Vec<_>>(), vec![0, 250, 500]);
        assert_eq!(keyframes[1].seconds, 8.356333);
        assert!(parse_keyframes("", 30.0).is_empty());
    }

    #[test]
    fn a_decode_seeks_to_the_last_keyframe_before_its_window() {
        let keyframes = parse_keyframes("0.0\n2.0\n4.0\n", 30.0);
        assert_eq!(seek_point(&keyframes, 130, 2).map(|k| k.frame), Some(120));
        assert_eq!(seek_point(&keyframes, 121, 2).map(|k| k.frame), Some(60));
        assert_eq!(seek_point(&keyframes, 30, 2), None, "the first frame is where a decode starts anyway");
        assert_eq!(seek_point(&keyframes, 1, 2), None);
    }

    #[test]
    fn cuts_go_to_the_nearest_keyframe_within_half_a_segment() {
        assert_eq!(
            segment_ranges((0, 1000), &[0, 250, 500, 750], 300),
            vec![(0, 250), (250, 500), (500, 750), (750, 1000)]
        );
        // No keyframe near: cut exactly at the segment length.
        assert_eq!(segment_ranges((0, 100), &[0], 30), vec![(0, 30), (30, 60), (60, 90), (90, 100)]);
        // A short tail joins the segment before it.
        assert_eq!(segment_ranges((10, 75), &[], 30), vec![(10, 40), (40, 75)]);
        assert_eq!(segment_ranges((0, 37), &[], 30), vec![(0, 37)]);
    }

    #[test]
    fn a_long_run_gets_longer_segments_rather_than_too_many() {
        // Keyframes two thirds of a segment apart pull every cut early.
        let keyframes: Vec<u64> = (0..200_000).step_by(20).collect();
        let ranges = segment_ranges((0, 100_000), &keyframes, 30);
        assert!(ranges.len() <= MAX_SEGMENTS, "{}", ranges.len());
        assert_eq!((ranges[0].0, ranges.last().unwrap().1), (0, 100_000));
        assert!(ranges.windows(2).all(|pair| pair[0].1 == pair[1].0));
    }

    #[test]
    fn ranges_cover_the_trim_range_without_gaps() {
        for (trim, keyframes, length) in
            [((5, 997), vec![0, 11, 250, 251, 600, 990], 100), ((0, 1), vec![], 1), ((3, 400), vec![399], 7)]
        {
            let ranges = segment_ranges(trim, &keyframes, length);
            assert_eq!(ranges.first().unwrap().0, trim.0);
            assert_eq!(ranges.last().unwrap().1, trim.1);
            assert!(ranges.windows(2).all(|pair| pair[0].1 == pair[1].0));
            assert!(ranges.iter().all(|(from, to)| from < to), "{ranges:?}");
        }
    }

    #[test]
    fn the_concat_list_quotes_paths() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("list.txt");
        write_concat_list(&list, &[dir.path().join("a'b.mp4")]).unwrap();
        let text = std::fs::read_to_string(&list).unwrap();
        assert!(text.ends_with("a'\\''b.mp4'\n"), "{text}");
    }
}
