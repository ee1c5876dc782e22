//! FaceFusion's MDX-Net voice extractor (spec §9.2): the audio is cut into overlapping windows, each
//! window into model-sized chunks; each chunk goes through an STFT, the model, and an inverse STFT;
//! the windows' outputs are averaged where they overlap.
//!
//! FaceFusion's numerics, and what is kept of them here:
//! * int16 → float32 by `/ 32767` in float32: same.
//! * `scipy.signal.stft` upcasts the padded chunk to float64 but casts the window to complex64, so it
//!   multiplies by float32-rounded window values and runs a float64 FFT; the 'spectrum' scale comes
//!   from a float32 sum of that window, and FaceFusion then divides by the float64 scale and stores
//!   float32 model input. Here the window, its sums (in numpy's pairwise order), the scales and the
//!   two float32 roundings are the same, but the products and the FFT are float32: the model input is
//!   float32 anyway, a float32 FFT is about 4× faster than a float64 one, and the measured difference
//!   to FaceFusion's dumps does not change at the voice output (max |Δ| 8.9e-8 either way) and goes
//!   from 2.4e-7 to 2.6e-7 of the peak on the mel spectrogram.
//! * `scipy.signal.istft` gets complex64, so its inverse FFT, window sum, overlap-add and
//!   normalisation all run in float32: the same here, in scipy's order; only the FFT algorithm (rustfft
//!   rather than pocketfft) rounds differently.
//!
//! Per 5.12 s window this is 512 forward and 512 inverse float32 FFTs of 7680 points; the two channels
//! of a chunk run on two threads.

use realfft::num_complex::Complex;
use realfft::RealFftPlanner;

use super::spectral::{hann, numpy_sum_complex64_real, numpy_sum_f32, numpy_sum_f64, RealFft};
use super::Audio;
use crate::error::{PipelineError, Result};
use crate::runtime::{Input, ModelSession};

/// Outer windows: 240·1024 samples every 180·1024 (a quarter overlap), averaged where they overlap.
const WINDOW_LEN: usize = 240 * 1024;
const WINDOW_STEP: usize = 180 * 1024;
/// Samples dropped at each end of a chunk after the inverse STFT.
const TRIM: usize = 3840;
/// STFT segment (and FFT) length and hop.
const NPERSEG: usize = 7680;
const HOP: usize = 1024;
const BINS: usize = NPERSEG / 2 + 1;
/// Frequency bins the model sees; the top 769 are dropped on the way in and zero on the way out.
const MODEL_BINS: usize = 3072;
/// Real and imaginary planes of two channels.
const MODEL_CHANNELS: usize = 4;
/// STFT frames processed together, so that writes into the (bin, frame) planes fill cache lines.
const FRAME_BLOCK: usize = 16;

/// One loaded voice extractor with its STFT set up for the model's chunk size.
pub struct VoiceExtractor<'a> {
    session: &'a ModelSession,
    /// STFT frames per chunk: the model input's last dimension (256 for FaceFusion's models).
    frames: usize,
    /// Chunk length in samples, (frames − 1)·1024.
    chunk_len: usize,
    fft: RealFft<f32>,
    inverse_fft: RealFft<f32>,
    /// The symmetric Hann window rounded to float32 (scipy casts it to complex64 in stft, to float32 in
    /// istft).
    window32: Vec<f32>,
    /// stft: the float32 'spectrum' scale FaceFusion multiplies by, and the float64 one it divides by
    /// (and multiplies the istft result by).
    stft_scale32: f64,
    scale64: f64,
    /// istft: the float32 window sum it multiplies the inverse FFTs by.
    istft_sum32: f32,
    /// istft: Σ window² (float32) over the overlapping segments in chunk coordinates after the boundary
    /// trim; values not above 1e-10 replaced by 1 as scipy does.
    norm: Vec<f32>,
}

/// The per-thread FFTs and buffers of one worker.
#[derive(Clone)]
struct Worker {
    forward: RealFft<f32>,
    inverse: RealFft<f32>,
}

impl<'a> VoiceExtractor<'a> {
    /// Checks the model's input against FaceFusion's contract, (batch, 4, 3072, frames), and sets up
    /// the transforms for its chunk length.
    pub fn new(session: &'a ModelSession) -> Result<Self> {
        let contract = |reason: String| PipelineError::ModelContract { name: session.name().to_string(), reason };
        let input = session.inputs.first().ok_or_else(|| contract("the model has no input".into()))?;
        let shape = &input.shape;
        let fits = |dim: usize, value: i64| shape[dim] == value || shape[dim] < 0;
        if input.name != "input" || shape.len() != 4 || !fits(1, 4) || !fits(2, MODEL_BINS as i64) || shape[3] < 2 {
            return Err(contract(format!(
                "expected an input `input` of shape (batch, 4, 3072, frames) with a fixed frame count, found `{}` {:?}",
                input.name, shape
            )));
        }
        let frames = shape[3] as usize;
        let chunk_len = (frames - 1) * HOP;
        if chunk_len <= 2 * TRIM {
            return Err(contract(format!("{frames} frames make a chunk no longer than its trimmed ends")));
        }

        let symmetric = hann(NPERSEG, true);
        let window32: Vec<f32> = symmetric.iter().map(|&w| w as f32).collect();
        // scipy: scale = sqrt(1 / sum(win)**2) on the complex64 window, every step in float32.
        let sum32 = numpy_sum_complex64_real(&window32);
        let stft_scale32 = (1.0f32 / (sum32 * sum32)).sqrt() as f64;
        let sum64 = numpy_sum_f64(&symmetric);
        let scale64 = (1.0 / (sum64 * sum64)).sqrt();
        let istft_sum32 = numpy_sum_f32(&window32);

        // scipy adds win**2 frame by frame in float32.
        let mut norm = vec![0.0f32; chunk_len + NPERSEG];
        for frame in 0..frames {
            for (j, w) in window32.iter().enumerate() {
                norm[frame * HOP + j] += w * w;
            }
        }
        let norm =
            norm[NPERSEG / 2..NPERSEG / 2 + chunk_len].iter().map(|&v| if v > 1e-10 { v } else { 1.0 }).collect();

        let mut planner = RealFftPlanner::new();
        Ok(Self {
            session,
            frames,
            chunk_len,
            fft: RealFft::new(&mut planner, NPERSEG),
            inverse_fft: RealFft::new(&mut planner, NPERSEG),
            window32,
            stft_scale32,
            scale64,
            istft_sum32,
            norm,
        })
    }

    /// FaceFusion's `batch_extract_voice`: the voice of the whole audio, interleaved stereo float32
    /// at 48 kHz, as long as the input.
    pub fn extract(&self, audio: &Audio) -> Result<Vec<f32>> {
        let frames = audio.frames();
        let mut voice = vec![0.0f32; frames * 2];
        let mut covered = vec![0u8; frames];
        for start in (0..frames).step_by(WINDOW_STEP) {
            let end = (start + WINDOW_LEN).min(frames);
            let extracted = self.extract_window(&audio.samples[start * 2..end * 2])?;
            for (sum, value) in voice[start * 2..end * 2].iter_mut().zip(&extracted) {
                *sum += value;
            }
            covered[start..end].iter_mut().for_each(|c| *c += 1);
        }
        for (pair, &count) in voice.chunks_exact_mut(2).zip(&covered) {
            let count = count as f32;
            pair[0] /= count;
            pair[1] /= count;
        }
        Ok(voice)
    }

    /// FaceFusion's `extract_voice` on one window (interleaved int16): padded, chunked, through the
    /// model, reassembled to the window's length.
    fn extract_window(&self, samples: &[i16]) -> Result<Vec<f32>> {
        let len = samples.len() / 2;
        let step = self.chunk_len - 2 * TRIM;
        // FaceFusion always pads, by a whole step when the length is a multiple of it.
        let pad = step - len % step;
        let chunks = (len + pad) / step;
        let plane = MODEL_BINS * self.frames;
        let block = 2 * plane;

        let mut tensor = vec![0.0f32; chunks * MODEL_CHANNELS * plane];
        self.for_each_block(&mut tensor, block, |worker, index, planes| {
            self.analyse(&mut worker.forward, samples, len, index / 2, index % 2, planes)
        });
        let shape = [chunks, MODEL_CHANNELS, MODEL_BINS, self.frames];
        let outputs = self.session.run(vec![Input::f32("input", &shape, tensor)])?;
        let mut output = outputs.into_iter().next().map(|o| o.data).unwrap_or_default();
        if output.len() != chunks * MODEL_CHANNELS * plane {
            return Err(PipelineError::ModelContract {
                name: self.session.name().to_string(),
                reason: format!("expected an output of shape {shape:?}, got {} values", output.len()),
            });
        }
        // Each (chunk, channel) block of the output becomes that channel's untrimmed chunk signal,
        // written back over the block (chunk_len ≤ 2·3072·frames values).
        self.for_each_block(&mut output, block, |worker, _, planes| self.synthesise(&mut worker.inverse, planes));

        let mut voice = vec![0.0f32; len * 2];
        for (t, pair) in voice.chunks_exact_mut(2).enumerate() {
            let (chunk, offset) = (t / step, TRIM + t % step);
            for (channel, value) in pair.iter_mut().enumerate() {
                *value = output[(chunk * 2 + channel) * block + offset];
            }
        }
        Ok(voice)
    }

    /// Runs `work` on each `block`-sized piece of `data` (one per chunk and channel), spread over the
    /// available cores; each worker has its own FFT scratch.
    fn for_each_block(&self, data: &mut [f32], block: usize, work: impl Fn(&mut Worker, usize, &mut [f32]) + Sync) {
        let blocks = data.len() / block;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(blocks).max(1);
        let worker = Worker { forward: self.fft.clone(), inverse: self.inverse_fft.clone() };
        if workers == 1 {
            let mut worker = worker;
            for (index, piece) in data.chunks_exact_mut(block).enumerate() {
                work(&mut worker, index, piece);
            }
            return;
        }
        let mut assigned: Vec<Vec<(usize, &mut [f32])>> = (0..workers).map(|_| Vec::new()).collect();
        for (index, piece) in data.chunks_exact_mut(block).enumerate() {
            assigned[index % workers].push((index, piece));
        }
        std::thread::scope(|scope| {
            for pieces in assigned {
                let work = &work;
                let mut worker = worker.clone();
                scope.spawn(move || {
                    for (index, piece) in pieces {
                        work(&mut worker, index, piece);
                    }
                });
            }
        });
    }

    /// The STFT of one channel of one chunk into its real and imaginary (3072, frames) planes.
    fn analyse(
        &self,
        fft: &mut RealFft<f32>,
        samples: &[i16],
        len: usize,
        chunk: usize,
        channel: usize,
        planes: &mut [f32],
    ) {
        let step = self.chunk_len - 2 * TRIM;
        let frames = self.frames;
        // The chunk as scipy's STFT sees it: 3840 boundary zeros, the chunk, 3840 zeros. Chunk sample p
        // is padded sample chunk·step + p, and padded sample q is audio sample q − 3840 (zero outside:
        // FaceFusion's padding).
        let mut signal = vec![0.0f32; self.chunk_len + NPERSEG];
        for (p, value) in signal[NPERSEG / 2..NPERSEG / 2 + self.chunk_len].iter_mut().enumerate() {
            let audio = (chunk * step + p).wrapping_sub(TRIM);
            if audio < len {
                *value = samples[audio * 2 + channel] as f32 / i16::MAX as f32;
            }
        }
        let (real, imag) = planes.split_at_mut(MODEL_BINS * frames);
        let mut segment = vec![0.0f32; NPERSEG];
        let mut spectra = vec![Complex::<f32>::default(); FRAME_BLOCK * BINS];
        for first in (0..frames).step_by(FRAME_BLOCK) {
            let count = FRAME_BLOCK.min(frames - first);
            for (i, spectrum) in spectra.chunks_exact_mut(BINS).take(count).enumerate() {
                let start = (first + i) * HOP;
                for ((out, &x), &w) in segment.iter_mut().zip(&signal[start..start + NPERSEG]).zip(&self.window32) {
                    *out = w * x;
                }
                fft.forward(&mut segment, spectrum);
            }
            for bin in 0..MODEL_BINS {
                let row = bin * frames + first;
                for i in 0..count {
                    let value = spectra[i * BINS + bin];
                    real[row + i] = self.model_value(value.re as f64);
                    imag[row + i] = self.model_value(value.im as f64);
                }
            }
        }
    }

    /// stft's float32 result (scaled by the float32 scale), then FaceFusion's division by the float64
    /// scale, stored as float32.
    fn model_value(&self, value: f64) -> f32 {
        let stft = (value * self.stft_scale32) as f32;
        (stft as f64 / self.scale64) as f32
    }

    /// The inverse STFT of one channel of one chunk from its (3072, frames) planes, overlap-added,
    /// normalised and trimmed of the boundary: `chunk_len` samples written to the start of `planes`.
    /// Float32 throughout, in scipy's order of operations.
    fn synthesise(&self, fft: &mut RealFft<f32>, planes: &mut [f32]) {
        let frames = self.frames;
        // pocketfft's irfft scales by 1/n in the transform's precision.
        let inverse_scale = 1.0f32 / NPERSEG as f32;
        let mut signal = vec![0.0f32; self.chunk_len + NPERSEG];
        let mut spectra = vec![Complex::<f32>::default(); FRAME_BLOCK * BINS];
        let mut segment = vec![0.0f32; NPERSEG];
        {
            let (real, imag) = planes.split_at(MODEL_BINS * frames);
            for first in (0..frames).step_by(FRAME_BLOCK) {
                let count = FRAME_BLOCK.min(frames - first);
                for bin in 0..MODEL_BINS {
                    let row = bin * frames + first;
                    for i in 0..count {
                        spectra[i * BINS + bin] = Complex::new(real[row + i], imag[row + i]);
                    }
                }
                for (i, spectrum) in spectra.chunks_exact_mut(BINS).take(count).enumerate() {
                    // The bins above the model's are zero (the transform uses the buffer as scratch).
                    spectrum[MODEL_BINS..].fill(Complex::default());
                    fft.inverse(spectrum, &mut segment);
                    let offset = (first + i) * HOP;
                    for ((out, &x), &w) in signal[offset..offset + NPERSEG].iter_mut().zip(&segment).zip(&self.window32)
                    {
                        // xsubs = irfft(Z) · sum(win); x += xsubs · win.
                        *out += (x * inverse_scale) * self.istft_sum32 * w;
                    }
                }
            }
        }
        let kept = &signal[NPERSEG / 2..NPERSEG / 2 + self.chunk_len];
        for ((out, &x), &norm) in planes.iter_mut().zip(kept).zip(&self.norm) {
            // istft's x / norm, then FaceFusion's float32 multiplication by the float64 scale.
            *out = ((x / norm) as f64 * self.scale64) as f32;
        }
    }
}

/// The voice of `audio` through `session` (see [`VoiceExtractor::extract`]).
pub fn extract_voice(session: &ModelSession, audio: &Audio) -> Result<Vec<f32>> {
    VoiceExtractor::new(session)?.extract(audio)
}
