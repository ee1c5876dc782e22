//! The audio side of FaceFusion's lip syncer (spec §9): decode the source audio, isolate the voice with
//! an MDX-Net model, and cut its mel spectrogram into one (80, 16) window per video frame.
//!
//! | FaceFusion 3.5.3 | here |
//! |---|---|
//! | `ffmpeg.read_audio_buffer(path, 48000, 16, 2)` | [`decode_audio`], with a duration limit and a timeout |
//! | `voice_extractor.batch_extract_voice` | [`extract_voice`] / [`VoiceExtractor`] |
//! | `audio.prepare_voice` | [`prepare_voice`] |
//! | `audio.create_spectrogram` | [`mel_spectrogram`] |
//! | `audio.extract_audio_frames` + `get_voice_frame` | [`VoiceFrames`] |
//!
//! Everything runs once per source audio, before any frame is processed; the lip syncer then reads
//! its frame's window with [`VoiceFrames::window`] and applies the §8.4 transform itself.
//!
//! Numerics follow numpy/scipy: float64 where FaceFusion computes in float64 (the STFT of the voice
//! extractor's input, pre-emphasis, the mel spectrogram), float32 roundings where it stores float32.
//! scipy runs the resampling FFTs and the extractor's inverse STFT in float32; those run in float64
//! here, so results differ from FaceFusion's at float32 rounding level (see `tests/audio.rs`).
//!
//! FaceFusion's non-voice `read_audio` path (no extractor, 48 kHz mel frames) is not built: no processor
//! of 3.5.3 consumes it.

mod decode;
mod mel;
mod spectral;
mod voice_extractor;

use ndarray::Array2;
use realfft::RealFftPlanner;

pub use decode::{decode_audio, Audio};
pub use mel::{mel_spectrogram, prepare_voice, MEL_BANDS, MEL_SAMPLE_RATE};
pub use voice_extractor::{extract_voice, VoiceExtractor};

use crate::error::{PipelineError, Result};
use crate::options::VOICE_EXTRACTOR_MODELS;
use crate::sessions::ModelRegistry;

/// The sample rate FaceFusion decodes to and the voice extractor works at.
pub const VOICE_SAMPLE_RATE: u32 = 48_000;
/// Spectrogram columns per window (0.2 s).
pub const WINDOW_COLUMNS: usize = 16;
/// Values in one window: 80 mel bands × 16 columns.
pub const WINDOW_LEN: usize = MEL_BANDS * WINDOW_COLUMNS;

/// The voice mel windows of one audio for a video at a given fps (spec §9.5).
#[derive(Clone, Debug)]
pub struct VoiceFrames {
    /// (80, columns), float64 as numpy computes it.
    spectrogram: Array2<f64>,
    /// The exclusive end column of each window.
    ends: Vec<usize>,
}

impl VoiceFrames {
    /// Decoded audio → voice extractor (`voice_extractor_model`: kim_vocal_1, kim_vocal_2 or
    /// uvr_mdxnet, loaded through `registry`) → 16 kHz prepared voice → mel spectrogram → windows for
    /// a video at `fps` (FaceFusion's temp video fps, the rate frames are extracted at).
    ///
    /// Audio so short that no window fits (about 0.19 s) gives no windows rather than FaceFusion's
    /// crash on empty input; every frame then gets the silent window.
    pub fn extract(registry: &ModelRegistry, voice_extractor_model: &str, audio: &Audio, fps: f64) -> Result<Self> {
        if !VOICE_EXTRACTOR_MODELS.contains(&voice_extractor_model) {
            return Err(PipelineError::invalid_option(
                "voice_extractor_model",
                format!("`{voice_extractor_model}` is not one of {}", VOICE_EXTRACTOR_MODELS.join(", ")),
            ));
        }
        check_fps(fps)?;
        if audio.frames() == 0 {
            return Ok(Self { spectrogram: Array2::zeros((MEL_BANDS, 0)), ends: Vec::new() });
        }
        let session = registry.get(voice_extractor_model)?;
        let voice = VoiceExtractor::new(&session)?.extract(audio)?;
        let mut planner = RealFftPlanner::new();
        let prepared = mel::prepare_voice_with(&mut planner, voice);
        let spectrogram = mel::mel_spectrogram_with(&mut planner, &prepared);
        Self::from_spectrogram(spectrogram, fps)
    }

    /// The windows of an (80, columns) mel spectrogram for a video at `fps`: FaceFusion's
    /// `extract_audio_frames`. Candidate end columns are `int(k·80/fps)` for k = 0, 1, … below the
    /// column count (numpy's `arange` with a float step); those below 16 are dropped; window j covers
    /// columns `[end_j − 16, end_j)`.
    ///
    /// FaceFusion casts the candidates to int16, so past 32767 columns (about 409 s of audio) its
    /// indices wrap to negative values and it drops or misplaces every later window. This keeps
    /// the true column instead: long audio stays in sync here where FaceFusion's would not.
    pub fn from_spectrogram(spectrogram: Array2<f64>, fps: f64) -> Result<Self> {
        check_fps(fps)?;
        if spectrogram.nrows() != MEL_BANDS {
            return Err(PipelineError::invalid_option(
                "spectrogram",
                format!("has {} rows, expected {MEL_BANDS}", spectrogram.nrows()),
            ));
        }
        let columns = spectrogram.ncols();
        let step = MEL_BANDS as f64 / fps;
        let candidates = (columns as f64 / step).ceil() as usize;
        let ends = (0..candidates)
            .map(|k| (k as f64 * step) as usize)
            .filter(|&end| end >= WINDOW_COLUMNS && end <= columns)
            .collect();
        Ok(Self { spectrogram, ends })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The (80, columns) mel spectrogram the windows are cut from.
    pub fn spectrogram(&self) -> &Array2<f64> {
        &self.spectrogram
    }

    /// Drops the windows of the first `frames` frames: window 0 is then frame `frames`'s, for a
    /// piece of a video that starts there.
    pub fn skip_frames(&mut self, frames: usize) {
        self.ends.drain(..frames.min(self.ends.len()));
    }

    /// The raw (80, 16) mel window of the 0-based extracted frame `frame_index`, row-major, 1280
    /// values; all zeros past the last window (FaceFusion's empty audio frame, §9.5 step 5).
    pub fn window(&self, frame_index: usize) -> Vec<f32> {
        let mut window = vec![0.0f32; WINDOW_LEN];
        self.window_into(frame_index, &mut window);
        window
    }

    /// [`VoiceFrames::window`] into a caller's buffer of [`WINDOW_LEN`] values.
    pub fn window_into(&self, frame_index: usize, out: &mut [f32]) {
        let out = &mut out[..WINDOW_LEN];
        match self.ends.get(frame_index) {
            Some(&end) => {
                for (band, row) in out.chunks_exact_mut(WINDOW_COLUMNS).enumerate() {
                    let values = self.spectrogram.row(band);
                    for (o, &v) in row.iter_mut().zip(values.slice(ndarray::s![end - WINDOW_COLUMNS..end])) {
                        *o = v as f32;
                    }
                }
            }
            None => out.fill(0.0),
        }
    }
}

fn check_fps(fps: f64) -> Result<()> {
    if fps.is_finite() && fps > 0.0 {
        Ok(())
    } else {
        Err(PipelineError::invalid_option("fps", format!("{fps} is not a frame rate")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered(columns: usize) -> Array2<f64> {
        Array2::from_shape_fn((MEL_BANDS, columns), |(band, column)| (band * 1000 + column) as f64)
    }

    #[test]
    fn windows_follow_facefusion_indices() {
        // 823 columns at 30 fps: arange(0, 823, 80/30) has 309 candidates, 303 of them ≥ 16.
        let frames = VoiceFrames::from_spectrogram(numbered(823), 30.0).unwrap();
        assert_eq!(frames.len(), 303);
        // k = 6: int(16.0) = 16 → columns 0..16; k = 7: int(18.67) = 18 → columns 2..18.
        let first = frames.window(0);
        assert_eq!(&first[..3], &[0.0, 1.0, 2.0]);
        assert_eq!(first[WINDOW_COLUMNS], 1000.0);
        assert_eq!(frames.window(1)[0], 2.0);
        // k = 308: int(821.33) = 821 → columns 805..821.
        assert_eq!(frames.window(302)[0], 805.0);
        assert!(frames.window(303).iter().all(|&v| v == 0.0));
        // 25 fps: a step of 3.2 columns, window j starts at column int(3.2·(j+5)) − 16.
        let frames = VoiceFrames::from_spectrogram(numbered(100), 25.0).unwrap();
        assert_eq!(frames.window(0)[0], 0.0);
        assert_eq!(frames.window(1)[0], 3.0);
        assert_eq!(frames.window(2)[0], 6.0);
        assert_eq!(frames.len(), 27);
    }

    #[test]
    fn short_spectrograms_have_no_windows() {
        let frames = VoiceFrames::from_spectrogram(numbered(16), 30.0).unwrap();
        assert!(frames.is_empty());
        assert!(frames.window(0).iter().all(|&v| v == 0.0));
        assert!(VoiceFrames::from_spectrogram(numbered(16), 0.0).is_err());
    }
}
