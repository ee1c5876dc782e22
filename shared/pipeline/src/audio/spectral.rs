//! The scipy/numpy pieces FaceFusion's audio path is built from, each matching the 3.5.3 pins
//! (numpy 2.2.1, scipy 1.17.0) in what it computes and in where it rounds: window functions,
//! `scipy.signal.resample`, numpy's pairwise sums.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::num_traits::Zero;
use realfft::{ComplexToReal, FftNum, RealFftPlanner, RealToComplex};

/// numpy's `linspace(start, stop, num)` value `i`: `i·step + start`, and exactly `stop` at the end.
pub(crate) fn linspace_at(start: f64, stop: f64, num: usize, i: usize) -> f64 {
    if num > 1 && i == num - 1 {
        return stop;
    }
    let step = (stop - start) / (num - 1) as f64;
    i as f64 * step + start
}

/// `scipy.signal.windows.hann(m, sym)`: `0.5 + 0.5·cos(linspace(-π, π, m'))`, with m' = m + 1 and the
/// last point dropped for the periodic (`sym = false`, `get_window('hann_periodic')`) variant.
pub(crate) fn hann(m: usize, symmetric: bool) -> Vec<f64> {
    if m <= 1 {
        return vec![1.0; m];
    }
    let extended = if symmetric { m } else { m + 1 };
    (0..m).map(|i| 0.5 + 0.5 * linspace_at(-std::f64::consts::PI, std::f64::consts::PI, extended, i).cos()).collect()
}

/// `scipy.signal.windows.triang(m)` (symmetric): no zero end points, unlike a Bartlett window.
pub(crate) fn triang(m: usize) -> Vec<f64> {
    if m <= 1 {
        return vec![1.0; m];
    }
    let half = m.div_ceil(2);
    let rising: Vec<f64> = (1..=half)
        .map(
            |n| if m.is_multiple_of(2) { (2.0 * n as f64 - 1.0) / m as f64 } else { 2.0 * n as f64 / (m as f64 + 1.0) },
        )
        .collect();
    let mirrored = if m.is_multiple_of(2) { &rising[..] } else { &rising[..half - 1] };
    rising.iter().copied().chain(mirrored.iter().rev().copied()).collect()
}

/// numpy's pairwise summation (`np.add.reduce` on a contiguous float array): 8 accumulators over
/// blocks of at most 128 values, halves split on multiples of 8. FaceFusion's STFT scales come from
/// such sums in float32, so the same order gives the same float32 value.
pub(crate) fn numpy_sum_f32(values: &[f32]) -> f32 {
    pairwise(values, 8, 128, 0.0f32)
}

/// [`numpy_sum_f32`] in float64.
pub(crate) fn numpy_sum_f64(values: &[f64]) -> f64 {
    pairwise(values, 8, 128, 0.0f64)
}

/// The real part of numpy's complex64 pairwise sum of values with zero imaginary parts: the complex
/// loop counts scalars (re and im), so it runs 4 real accumulators over blocks of 64 values.
pub(crate) fn numpy_sum_complex64_real(values: &[f32]) -> f32 {
    pairwise(values, 4, 64, -0.0f32)
}

fn pairwise<T: Copy + std::ops::Add<Output = T>>(values: &[T], lanes: usize, block: usize, empty: T) -> T {
    let n = values.len();
    if n < lanes {
        return values.iter().fold(empty, |sum, &v| sum + v);
    }
    if n <= block {
        let mut r: Vec<T> = values[..lanes].to_vec();
        let whole = n - n % lanes;
        let mut i = lanes;
        while i < whole {
            for (lane, acc) in r.iter_mut().enumerate() {
                *acc = *acc + values[i + lane];
            }
            i += lanes;
        }
        // numpy's fixed tree over the accumulators: ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)).
        while r.len() > 1 {
            r = r.chunks(2).map(|pair| pair[0] + pair[1]).collect();
        }
        return values[whole..].iter().fold(r[0], |sum, &v| sum + v);
    }
    let mut half = n / 2;
    half -= half % lanes;
    pairwise(&values[..half], lanes, block, empty) + pairwise(&values[half..], lanes, block, empty)
}

/// A forward and an inverse real FFT of one size, planned once; clones share the plans and have
/// their own scratch. In float64, or float32 where scipy transforms float32 data in single precision.
#[derive(Clone)]
pub(crate) struct RealFft<T: FftNum = f64> {
    pub len: usize,
    forward: Arc<dyn RealToComplex<T>>,
    inverse: Arc<dyn ComplexToReal<T>>,
    scratch: Vec<Complex<T>>,
}

impl<T: FftNum> RealFft<T> {
    pub fn new(planner: &mut RealFftPlanner<T>, len: usize) -> Self {
        let forward = planner.plan_fft_forward(len);
        let inverse = planner.plan_fft_inverse(len);
        let scratch_len = forward.get_scratch_len().max(inverse.get_scratch_len());
        Self { len, forward, inverse, scratch: vec![Complex::zero(); scratch_len] }
    }

    /// Unnormalised rfft of `input` (`len` values, used as scratch) into `len/2 + 1` bins.
    pub fn forward(&mut self, input: &mut [T], output: &mut [Complex<T>]) {
        // Only a length mismatch can fail, which is a bug here.
        self.forward.process_with_scratch(input, output, &mut self.scratch).expect("rfft buffer lengths");
    }

    /// Unnormalised irfft (numpy's `irfft` times `len`). Like pocketfft, the imaginary parts of the
    /// DC and (even lengths) Nyquist bins are ignored; `input` is used as scratch.
    pub fn inverse(&mut self, input: &mut [Complex<T>], output: &mut [T]) {
        input[0].im = T::zero();
        if self.len.is_multiple_of(2) {
            input[self.len / 2].im = T::zero();
        }
        self.inverse.process_with_scratch(input, output, &mut self.scratch).expect("irfft buffer lengths");
    }
}

/// `scipy.signal.resample(x, num)` (scipy 1.17) of one real channel, FFT method with no window:
/// rfft, keep the first `min(num, n)/2 + 1` bins, double (down-sampling) or halve (up-sampling) the
/// unpaired bin at `m/2` when `m = min(num, n)` is even, divide by `n/num`, irfft to `num` samples.
/// FaceFusion feeds float32 audio, which scipy transforms in single precision; this runs in float64,
/// so the two differ at float32 rounding level. `x` is consumed as the transform's buffer.
pub(crate) fn resample(planner: &mut RealFftPlanner<f64>, mut x: Vec<f64>, num: usize) -> Vec<f64> {
    let n = x.len();
    if n == 0 || num == 0 {
        return vec![0.0; num];
    }
    let forward = planner.plan_fft_forward(n);
    let mut spectrum = forward.make_output_vec();
    forward.process(&mut x, &mut spectrum).expect("rfft buffer lengths");
    drop(x);

    let m = num.min(n);
    let kept = m / 2 + 1;
    let inverse = planner.plan_fft_inverse(num);
    let mut resampled = inverse.make_input_vec();
    let s_fac = n as f64 / num as f64;
    for (out, bin) in resampled.iter_mut().zip(&spectrum[..kept]) {
        *out = bin / s_fac;
    }
    drop(spectrum);
    if m.is_multiple_of(2) && num != n {
        resampled[m / 2] *= if num < n { 2.0 } else { 0.5 };
    }
    resampled[0].im = 0.0;
    if num.is_multiple_of(2) {
        resampled[num / 2].im = 0.0;
    }
    let mut output = inverse.make_output_vec();
    inverse.process(&mut resampled, &mut output).expect("irfft buffer lengths");
    let norm = 1.0 / num as f64;
    output.iter_mut().for_each(|v| *v *= norm);
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_match_scipy() {
        // scipy.signal.windows.hann(5) / hann(4, sym=False) / triang(4) / triang(5)
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15) && a.len() == b.len();
        assert!(close(&hann(5, true), &[0.0, 0.5, 1.0, 0.5, 0.0]));
        assert!(close(&hann(4, false), &[0.0, 0.5, 1.0, 0.5]));
        assert!(close(&triang(4), &[0.25, 0.75, 0.75, 0.25]));
        assert!(close(&triang(5), &[1.0 / 3.0, 2.0 / 3.0, 1.0, 2.0 / 3.0, 1.0 / 3.0]));
        assert_eq!(triang(1), vec![1.0]);
        assert!(triang(0).is_empty());
        // The symmetric Hann window of FaceFusion's MDX-Net STFT sums to (m - 1) / 2.
        assert!((numpy_sum_f64(&hann(7680, true)) - 3839.5).abs() < 1e-9);
    }

    #[test]
    fn pairwise_sum_follows_numpy_blocks() {
        // Exactly representable values: every order gives the same sum, so this checks coverage.
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        assert_eq!(numpy_sum_f32(&values), 499_500.0);
        assert_eq!(numpy_sum_complex64_real(&values), 499_500.0);
        assert_eq!(numpy_sum_f32(&values[..5]), 10.0);
        assert_eq!(numpy_sum_f32(&[]), 0.0);
        // Rounding-sensitive: numpy 2.2.1 sums i·0.37f32 (i < 7680) to 10910324 both as float32 and as
        // complex64; a sequential float32 sum gives 10910309.
        let ramp: Vec<f32> = (0..7680).map(|i| i as f32 * 0.37f32).collect();
        assert_eq!(numpy_sum_f32(&ramp), 10_910_324.0);
        assert_eq!(numpy_sum_complex64_real(&ramp), 10_910_324.0);
        assert_eq!(ramp.iter().sum::<f32>(), 10_910_309.0);
    }

    #[test]
    fn resample_keeps_a_tone_and_its_amplitude() {
        let mut planner = RealFftPlanner::new();
        // 300 Hz at 48 kHz, whole periods over the signal: exactly representable after resampling.
        let n = 4800;
        let x: Vec<f64> = (0..n).map(|t| (2.0 * std::f64::consts::PI * 300.0 * t as f64 / 48000.0).sin()).collect();
        let y = resample(&mut planner, x, n / 3);
        assert_eq!(y.len(), 1600);
        for (t, v) in y.iter().enumerate() {
            let expected = (2.0 * std::f64::consts::PI * 300.0 * t as f64 / 16000.0).sin();
            assert!((v - expected).abs() < 1e-9, "sample {t}: {v} vs {expected}");
        }
    }

    #[test]
    fn resample_matches_scipy() {
        // scipy 1.17: resample([1..6], 4) doubles the kept unpaired bin at m/2 = 2; an odd input
        // length has none.
        let mut planner = RealFftPlanner::new();
        let cases: [(&[f64], [f64; 4]); 2] = [
            (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [1.5, 2.767949192431123, 3.5, 6.232050807568877]),
            (&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [2.0000000000000004, 2.9234786034276636, 4.0, 7.076521396572336]),
        ];
        for (x, expected) in cases {
            let y = resample(&mut planner, x.to_vec(), 4);
            for (v, e) in y.iter().zip(expected) {
                assert!((v - e).abs() < 1e-12, "{y:?} vs {expected:?}");
            }
        }
    }
}
