//! From the extracted voice to FaceFusion's mel spectrogram (spec §9.3, §9.4): resampling to 16 kHz,
//! mono, peak normalisation, pre-emphasis, then an 800-point STFT through an 80-band mel filter bank.

use ndarray::Array2;
use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

use super::spectral::{hann, linspace_at, numpy_sum_f64, resample, triang, RealFft};
use super::VOICE_SAMPLE_RATE;

/// The spectrogram's sample rate.
pub const MEL_SAMPLE_RATE: u32 = 16_000;
/// Mel bands (rows of the spectrogram).
pub const MEL_BANDS: usize = 80;
/// STFT segment and FFT length at 16 kHz.
const MEL_NPERSEG: usize = 800;
/// STFT hop: 200 samples, 80 columns per second.
const MEL_HOP: usize = 200;
const MEL_BINS: usize = MEL_NPERSEG / 2 + 1;
const MEL_FREQUENCY_MIN: f64 = 55.0;
const MEL_FREQUENCY_MAX: f64 = 7600.0;
const PRE_EMPHASIS: f64 = 0.97;

/// FaceFusion's `prepare_voice` on the extractor's output (interleaved stereo float32 at 48 kHz):
///
/// 1. `scipy.signal.resample` of each channel to `round(n/3)` samples (16 kHz);
/// 2. the mean of the two channels;
/// 3. division by the peak magnitude (float32);
/// 4. pre-emphasis `y[t] = x[t] − 0.97·x[t−1]` (`scipy.signal.lfilter`, which works in float64).
///
/// Resampling is linear, so this resamples the channels' mean once instead of each channel (half the
/// FFT work). FaceFusion resamples each channel with float32 FFTs and averages in float32; this runs
/// the FFTs in float64 and rounds the mean to float32, which differs from it at float32 rounding level.
///
/// Silence (peak 0) stays all zeros where FaceFusion divides by zero and gets NaN.
pub fn prepare_voice(voice: &[f32]) -> Vec<f64> {
    prepare_voice_with(&mut RealFftPlanner::new(), voice.to_vec())
}

/// [`prepare_voice`], releasing the voice as soon as its channel mean is taken (long audio: every
/// full-length buffer here is hundreds of MB at 10 minutes).
pub(crate) fn prepare_voice_with(planner: &mut RealFftPlanner<f64>, voice: Vec<f32>) -> Vec<f64> {
    let frames = voice.len() / 2;
    // Python's round(n·16000/48000), half to even.
    let resampled_len = (frames as f64 * MEL_SAMPLE_RATE as f64 / VOICE_SAMPLE_RATE as f64).round_ties_even() as usize;
    let mean: Vec<f64> = voice.chunks_exact(2).map(|pair| (pair[0] as f64 + pair[1] as f64) / 2.0).collect();
    drop(voice);
    let resampled = resample(planner, mean, resampled_len);
    let mut mono: Vec<f32> = resampled.iter().map(|&v| v as f32).collect();
    drop(resampled);
    let peak = mono.iter().fold(0.0f32, |peak, v| peak.max(v.abs()));
    if peak > 0.0 {
        mono.iter_mut().for_each(|v| *v /= peak);
    }
    let mut previous = 0.0f64;
    mono.iter()
        .map(|&v| {
            let v = v as f64;
            let filtered = v - PRE_EMPHASIS * previous;
            previous = v;
            filtered
        })
        .collect()
}

fn hertz_to_mel(hertz: f64) -> f64 {
    2595.0 * (1.0 + hertz / 700.0).log10()
}

fn mel_to_hertz(mel: f64) -> f64 {
    700.0 * (10f64.powf(mel / 2595.0) - 1.0)
}

/// The filter bank as (first bin, weights) per band. FaceFusion's filters each span the bins from one
/// mel point to the next (a "two-point" triangle made by `scipy.signal.windows.triang`), so a bin
/// belongs to at most one band and the (80 × 401) product reduces to these short runs.
fn mel_filter_bank() -> Vec<(usize, Vec<f64>)> {
    let (low, high) = (hertz_to_mel(MEL_FREQUENCY_MIN), hertz_to_mel(MEL_FREQUENCY_MAX));
    let points = MEL_BANDS + 2;
    let indices: Vec<usize> = (0..points)
        .map(|i| {
            let hertz = mel_to_hertz(linspace_at(low, high, points, i));
            // floor(801·hz / 16000) cast to int16: always within 0..=380 here.
            ((MEL_NPERSEG + 1) as f64 * hertz / MEL_SAMPLE_RATE as f64).floor() as usize
        })
        .collect();
    (0..MEL_BANDS)
        .map(|band| {
            let (start, end) = (indices[band], indices[band + 1]);
            (start, triang(end.saturating_sub(start)))
        })
        .collect()
}

/// FaceFusion's `create_spectrogram` on prepared 16 kHz mono audio: `|scipy.signal.stft(x, nperseg=800,
/// noverlap=600, nfft=800)|` (periodic Hann window, zero boundary padding of 400, padded to whole
/// segments, 'spectrum' scaling) through the mel filter bank. Returns (80, columns), float64 like numpy;
/// columns = ceil(n/200) + 1.
///
/// For fewer than 800 samples scipy shortens the segment to the input length (and fails below 601);
/// this keeps 800. Such audio (< 50 ms) has fewer than 16 columns and so no voice window either way.
pub fn mel_spectrogram(prepared: &[f64]) -> Array2<f64> {
    let mut planner = RealFftPlanner::new();
    mel_spectrogram_with(&mut planner, prepared)
}

pub(crate) fn mel_spectrogram_with(planner: &mut RealFftPlanner<f64>, prepared: &[f64]) -> Array2<f64> {
    let n = prepared.len();
    let boundary = MEL_NPERSEG / 2;
    // Boundary zeros on both sides, then zeros up to a whole number of hops.
    let padding = (MEL_HOP - n % MEL_HOP) % MEL_HOP;
    let columns = if n == 0 { 0 } else { (n + padding) / MEL_HOP + 1 };
    let window = hann(MEL_NPERSEG, false);
    let scale = (1.0 / numpy_sum_f64(&window).powi(2)).sqrt();
    let bank = mel_filter_bank();
    let mut fft = RealFft::new(planner, MEL_NPERSEG);
    let mut segment = vec![0.0f64; MEL_NPERSEG];
    let mut spectrum = vec![Complex::<f64>::default(); MEL_BINS];
    let mut magnitude = vec![0.0f64; MEL_BINS];
    let mut spectrogram = Array2::<f64>::zeros((MEL_BANDS, columns));
    for column in 0..columns {
        // Segment sample j is extended-signal sample column·200 + j, i.e. input sample column·200 + j − 400.
        for (j, value) in segment.iter_mut().enumerate() {
            let t = (column * MEL_HOP + j).wrapping_sub(boundary);
            *value = if t < n { prepared[t] * window[j] } else { 0.0 };
        }
        fft.forward(&mut segment, &mut spectrum);
        for (m, bin) in magnitude.iter_mut().zip(&spectrum) {
            *m = (bin.re * scale).hypot(bin.im * scale);
        }
        for (band, (start, weights)) in bank.iter().enumerate() {
            let energy: f64 = weights.iter().zip(&magnitude[*start..]).map(|(w, m)| w * m).sum();
            spectrogram[[band, column]] = energy;
        }
    }
    spectrogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_bank_spans_adjacent_mel_points() {
        let bank = mel_filter_bank();
        assert_eq!(bank.len(), MEL_BANDS);
        for pair in bank.windows(2) {
            assert_eq!(pair[0].0 + pair[0].1.len(), pair[1].0, "bands tile the bins without overlap");
        }
        // numpy: floor(801 · mel_to_hertz(linspace(mel(55), mel(7600), 82)) / 16000).astype(int16);
        // the 82nd point (380) only closes the range and starts no band.
        let expected = [
            2, 3, 5, 6, 7, 8, 10, 11, 12, 14, 15, 17, 18, 20, 22, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 44, 46, 48,
            51, 54, 56, 59, 62, 65, 68, 71, 74, 77, 81, 84, 88, 92, 95, 99, 103, 108, 112, 116, 121, 126, 130, 135,
            141, 146, 151, 157, 163, 169, 175, 181, 188, 194, 201, 208, 216, 223, 231, 239, 247, 256, 265, 274, 283,
            292, 302, 312, 323, 334, 345, 356, 368,
        ];
        let starts: Vec<usize> = bank.iter().map(|(start, _)| *start).collect();
        assert_eq!(starts, expected[..80]);
        let (last_start, last_weights) = bank.last().unwrap();
        assert_eq!(last_start + last_weights.len(), 368);
    }

    #[test]
    fn pure_tone_lands_in_its_mel_band() {
        // 1 kHz at 16 kHz for one second: bin 1000/20 = 50, whichever band holds bin 50 is loudest.
        let tone: Vec<f64> =
            (0..16000).map(|t| (2.0 * std::f64::consts::PI * 1000.0 * t as f64 / 16000.0).sin()).collect();
        let spectrogram = mel_spectrogram(&tone);
        assert_eq!(spectrogram.dim(), (80, 81));
        let bank = mel_filter_bank();
        let expected = bank.iter().position(|(start, w)| (*start..start + w.len()).contains(&50)).unwrap();
        for column in 4..77 {
            let loudest =
                (0..MEL_BANDS).max_by(|&a, &b| spectrogram[[a, column]].total_cmp(&spectrogram[[b, column]])).unwrap();
            assert_eq!(loudest, expected, "column {column}");
        }
        // A whole-bin sine of amplitude 1 under a periodic Hann window, 'spectrum' scaled: 0.5 at its
        // bin and 0.25 at each neighbour.
        let (start, weights) = &bank[expected];
        let magnitude = |bin: usize| match bin {
            50 => 0.5,
            49 | 51 => 0.25,
            _ => 0.0,
        };
        let energy: f64 = weights.iter().enumerate().map(|(i, w)| w * magnitude(start + i)).sum();
        assert!((spectrogram[[expected, 40]] - energy).abs() < 1e-9, "{} vs {energy}", spectrogram[[expected, 40]]);
    }

    #[test]
    fn silence_gives_zero_columns() {
        let spectrogram = mel_spectrogram(&[0.0; 1000]);
        assert_eq!(spectrogram.dim(), (80, 6));
        assert!(spectrogram.iter().all(|&v| v == 0.0));
        assert_eq!(mel_spectrogram(&[]).dim(), (80, 0));
    }

    #[test]
    fn prepare_voice_normalises_and_pre_emphasises() {
        // A constant (DC) stereo signal resamples to the same constant; after normalisation every
        // sample is 1, and pre-emphasis leaves 1 then 0.03.
        let voice = vec![0.25f32; 2 * 300];
        let prepared = prepare_voice(&voice);
        assert_eq!(prepared.len(), 100);
        assert!((prepared[0] - 1.0).abs() < 1e-6);
        assert!(prepared[1..].iter().all(|v| (v - 0.03).abs() < 1e-6), "{:?}", &prepared[..4]);
        // Silence stays silent instead of NaN.
        assert!(prepare_voice(&[0.0; 600]).iter().all(|&v| v == 0.0));
    }

    #[test]
    fn mel_spectrogram_matches_facefusion_dump() {
        let dump = crate::testing::parity_dir().join("09_lip_sync_2s/dump");
        let (prepared, _) = crate::testing::read_npy(&dump.join("voice_create_spectrogram_0_prepared_audio.npy"));
        let (expected, shape) = crate::testing::read_npy(&dump.join("voice_create_spectrogram_0_spectrogram.npy"));
        assert_eq!(shape, vec![80, 823]);
        // The dump's prepared audio is float32-rounded, so compare at float32 precision.
        let spectrogram = mel_spectrogram(&prepared);
        assert_eq!(spectrogram.dim(), (80, 823));
        let peak = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = spectrogram.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(worst / peak < 1e-6, "max |Δ| {worst} of peak {peak}");
    }
}
