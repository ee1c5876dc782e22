//! Decoding an audio source the way FaceFusion does (spec §9.1): ffmpeg resamples to 48 kHz stereo
//! signed 16-bit and writes it to a pipe.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use super::VOICE_SAMPLE_RATE;
use crate::error::{MediaFailure, PipelineError, Result};
use crate::video::{media_error, Supervised, Toolchain};

/// 48 kHz interleaved stereo i16, as FaceFusion's ffmpeg decode (§9.1) gives it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Audio {
    /// Interleaved L, R.
    pub samples: Vec<i16>,
}

impl Audio {
    /// Stereo sample pairs.
    pub fn frames(&self) -> usize {
        self.samples.len() / 2
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.frames() as f64 / VOICE_SAMPLE_RATE as f64)
    }
}

/// FaceFusion's `read_audio_buffer(path, 48000, 16, 2)`: `ffmpeg -loglevel error -i <path> -vn -ar 48000
/// -f s16le -ac 2 -`.
fn decode_args(path: &Path) -> Vec<String> {
    let mut args: Vec<String> = vec!["-loglevel".into(), "error".into(), "-i".into()];
    args.push(path.to_string_lossy().into_owned());
    args.extend(["-vn", "-ar", "48000", "-f", "s16le", "-ac", "2", "-"].map(String::from));
    args
}

/// Decodes any audio file ffmpeg reads (wav, mp3, aac/m4a, flac, ogg, or the audio of a video).
///
/// Errors (`PipelineError::Media` codes): `audio_too_long` as soon as more than `max_duration` has
/// been decoded (ffmpeg is killed then, so a long input costs no more than the limit);
/// `audio_no_stream` for an input without an audio stream; `audio_unreadable` for anything ffmpeg
/// cannot decode (not media, corrupt, missing); `audio_empty` for an empty file or a stream without
/// samples;
/// `ffmpeg_timeout` past `timeout` (ffmpeg killed), and `ffmpeg_missing` / `ffmpeg_failed` as for video.
pub fn decode_audio(toolchain: &Toolchain, path: &Path, max_duration: Duration, timeout: Duration) -> Result<Audio> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0) {
        return Err(empty(&name));
    }
    let mut child =
        Supervised::spawn("ffmpeg audio decoding", &toolchain.ffmpeg, &decode_args(path), false, true, timeout)?;
    let mut stdout = child
        .take_stdout()
        .ok_or_else(|| media_error(MediaFailure::FfmpegFailed, "ffmpeg audio decoding: no stdout pipe"))?;
    let max_frames = (max_duration.as_secs_f64() * VOICE_SAMPLE_RATE as f64).floor() as usize;

    // Samples are converted as they arrive: no byte buffer of the whole stream is kept.
    let mut samples: Vec<i16> = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut carried = 0usize;
    loop {
        let n = match stdout.read(&mut buffer[carried..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                child.kill();
                return Err(child.failure(&format!("could not be read: {e}")));
            }
        };
        let filled = carried + n;
        let whole = filled - filled % 2;
        samples.extend(buffer[..whole].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        buffer.copy_within(whole..filled, 0);
        carried = filled - whole;
        if samples.len() / 2 > max_frames {
            child.kill();
            return Err(too_long(&name, max_duration));
        }
    }
    drop(stdout);
    let status = child.wait()?;
    if !status.success() {
        return Err(unreadable(&name, &child.stderr_text()));
    }
    // A trailing partial sample or pair (never seen from ffmpeg) is dropped.
    samples.truncate(samples.len() - samples.len() % 2);
    if samples.is_empty() {
        return Err(empty(&name));
    }
    Ok(Audio { samples })
}

fn empty(name: &str) -> PipelineError {
    PipelineError::Media {
        kind: MediaFailure::AudioEmpty,
        message: format!("the audio source `{name}` has no samples"),
    }
}

fn too_long(name: &str, max_duration: Duration) -> PipelineError {
    PipelineError::Media {
        kind: MediaFailure::AudioTooLong,
        message: format!("the audio source `{name}` is longer than the {:.1} s limit", max_duration.as_secs_f64()),
    }
}

fn unreadable(name: &str, stderr: &str) -> PipelineError {
    let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no detail").trim();
    // ffmpeg 5-7: "Output file #0 does not contain any stream"; 7.1+: "... does not contain any stream".
    if stderr.contains("does not contain any stream") || stderr.contains("matches no streams") {
        return PipelineError::Media {
            kind: MediaFailure::AudioNoStream,
            message: format!("the audio source `{name}` has no audio stream"),
        };
    }
    PipelineError::Media {
        kind: MediaFailure::AudioUnreadable,
        message: format!("the audio source `{name}` could not be decoded: {last}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_command_matches_facefusion() {
        assert_eq!(
            decode_args(Path::new("/a/speech.mp3")).join(" "),
            "-loglevel error -i /a/speech.mp3 -vn -ar 48000 -f s16le -ac 2 -"
        );
    }

    #[test]
    fn stderr_with_no_stream_is_its_own_error() {
        let no_stream = unreadable("v.mp4", "Output file #0 does not contain any stream\n");
        assert!(matches!(no_stream, PipelineError::Media { kind: MediaFailure::AudioNoStream, .. }));
        let corrupt = unreadable("x.wav", "x.wav: Invalid data found when processing input\n");
        match corrupt {
            PipelineError::Media { kind, message } => {
                assert_eq!(kind.code(), "audio_unreadable");
                assert!(message.ends_with("Invalid data found when processing input"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
