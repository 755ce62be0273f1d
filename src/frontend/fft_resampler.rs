// SPDX-License-Identifier: MPL-2.0

//! One block of band-limited resampling by FFT and overlap-add, the method (and the filter) of
//! rubato's `Fft` resampler, which this replaces.
//!
//! A block of `block_in` samples is zero-padded to twice its length and transformed; the bins
//! below the lower Nyquist frequency are multiplied by the anti-aliasing filter's spectrum and
//! transformed back at twice `block_out`, and the second half overlaps the next block's first.
//! rubato computes every bin of the forward transform with realfft, whose untangling pass
//! compiled to scalar code and was a sixth of the front-end's time; here both real transforms
//! are half-length complex ones, only the bins that pass are untangled (a third of them for
//! 48 kHz), and the untangling is built for AVX2 as well.

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::{Complex32, Complex64};
use rustfft::{Fft, FftPlanner};

pub struct FftResampler {
    block_in: usize,
    block_out: usize,
    /// Bins that pass: those below the lower of the two Nyquist frequencies.
    kept: usize,
    /// `block_in`-point complex FFT over the zero-padded block's sample pairs.
    forward: Arc<dyn Fft<f32>>,
    /// `block_out`-point complex inverse FFT giving the output's sample pairs.
    inverse: Arc<dyn Fft<f32>>,
    /// `exp(-iπk / block_in)`, k < kept.
    forward_twiddles: Vec<Complex32>,
    /// `exp(iπk / block_out)`, k < block_out.
    inverse_twiddles: Vec<Complex32>,
    /// The filter's spectrum over the kept bins, scaled so the round trip has unit gain.
    filter: Vec<Complex32>,
    time_in: Vec<Complex32>,
    spectrum: Vec<Complex32>,
    time_out: Vec<Complex32>,
    overlap: Vec<f32>,
    scratch: Vec<Complex32>,
    avx2: bool,
}

/// rubato's fitted cutoff (relative to the lower Nyquist frequency) for a squared
/// Blackman-Harris windowed sinc of `points` taps.
fn cutoff(points: usize) -> f64 {
    let (k1, k2, k3) = (13.745202940783823, 121.73532586374934, 5964.163279612051);
    let n = points as f64;
    1.0 / (k1 / n + k2 / (n * n) + k3 / (n * n * n) + 1.0)
}

/// The anti-aliasing filter: a `points`-tap sinc under a squared periodic Blackman-Harris
/// window, normalised to unit DC gain.
fn windowed_sinc(points: usize, cutoff: f64) -> Vec<f64> {
    let centre = (points / 2) as f64;
    let taps: Vec<f64> = (0..points)
        .map(|n| {
            let t = 2.0 * PI * n as f64 / points as f64;
            let bh =
                0.35875 - 0.48829 * t.cos() + 0.14128 * (2.0 * t).cos() - 0.01168 * (3.0 * t).cos();
            let x = (n as f64 - centre) * cutoff;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (PI * x).sin() / (PI * x)
            };
            bh * bh * sinc
        })
        .collect();
    let sum: f64 = taps.iter().sum();
    taps.into_iter().map(|v| v / sum).collect()
}

fn twiddles(n: usize, sign: f64, half_period: usize) -> Vec<Complex32> {
    (0..n)
        .map(|k| {
            let phase = sign * PI * k as f64 / half_period as f64;
            Complex32::new(phase.cos() as f32, phase.sin() as f32)
        })
        .collect()
}

/// The samples of complex pairs, in order: `Complex` is `repr(C)` `{ re, im }`.
fn as_samples(v: &[Complex32]) -> &[f32] {
    // SAFETY: Complex32 is repr(C) with two f32 fields and no padding.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast(), v.len() * 2) }
}

fn as_samples_mut(v: &mut [Complex32]) -> &mut [f32] {
    // SAFETY: as in `as_samples`; the borrow is exclusive.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), v.len() * 2) }
}

impl FftResampler {
    /// Resamples blocks of `block_in` samples into blocks of `block_out`.
    pub fn new(block_in: usize, block_out: usize) -> Self {
        let lower = block_in.min(block_out);
        let relative_cutoff = cutoff(lower) * lower as f64 / block_in as f64;
        // Bins of the 2·block_in-point spectrum that survive: up to the output's Nyquist bin
        // (excluded) when decimating, all of the input's (Nyquist included) when interpolating.
        let kept = if block_in < block_out {
            block_in + 1
        } else {
            block_out
        };
        let mut filter_t: Vec<Complex64> = windowed_sinc(block_in, relative_cutoff)
            .into_iter()
            .map(|v| Complex64::new(v / (2 * block_in) as f64, 0.0))
            .collect();
        filter_t.resize(2 * block_in, Complex64::default());
        FftPlanner::<f64>::new()
            .plan_fft_forward(2 * block_in)
            .process(&mut filter_t);
        let filter = filter_t[..kept]
            .iter()
            .map(|c| Complex32::new(c.re as f32, c.im as f32))
            .collect();
        let mut planner = FftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(block_in);
        let inverse = planner.plan_fft_inverse(block_out);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        Self {
            block_in,
            block_out,
            kept,
            forward,
            inverse,
            forward_twiddles: twiddles(kept, -1.0, block_in),
            inverse_twiddles: twiddles(block_out, 1.0, block_out),
            filter,
            time_in: vec![Complex32::default(); block_in],
            spectrum: vec![Complex32::default(); block_out + 1],
            time_out: vec![Complex32::default(); block_out],
            overlap: vec![0.0; block_out],
            scratch: vec![Complex32::default(); scratch_len],
            avx2: super::has_avx2_fma(),
        }
    }

    pub fn block_in(&self) -> usize {
        self.block_in
    }

    pub fn block_out(&self) -> usize {
        self.block_out
    }

    /// Output frames by which the output lags the input: the filter is centred on its middle.
    pub fn delay(&self) -> usize {
        self.block_out / 2
    }

    /// Resamples one block; `input` shorter than `block_in` is padded with silence. Writes
    /// `block_out` frames to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut [f32]) {
        assert!(input.len() <= self.block_in && out.len() == self.block_out);
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is true only where the CPU has AVX2 and FMA.
            unsafe { self.process_avx2(input, out) };
            return;
        }
        self.process_portable(input, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn process_avx2(&mut self, input: &[f32], out: &mut [f32]) {
        self.process_portable(input, out);
    }

    #[inline(always)]
    fn process_portable(&mut self, input: &[f32], out: &mut [f32]) {
        // The zero-padded block as sample pairs (even samples real, odd imaginary).
        let samples = as_samples_mut(&mut self.time_in);
        samples[..input.len()].copy_from_slice(input);
        samples[input.len()..].fill(0.0);
        self.forward
            .process_with_scratch(&mut self.time_in, &mut self.scratch);
        self.filtered_spectrum();
        self.pack_inverse();
        self.inverse
            .process_with_scratch(&mut self.time_out, &mut self.scratch);
        let y = as_samples(&self.time_out);
        let (head, tail) = y.split_at(self.block_out);
        for ((o, &v), &prev) in out.iter_mut().zip(head).zip(&self.overlap) {
            *o = v + prev;
        }
        self.overlap.copy_from_slice(tail);
    }

    /// The real input's spectrum X[k], k < kept, times the filter. With Z the pairs' FFT,
    /// X[k] = E + W^k O, E = (Z[k] + conj Z[n-k]) / 2, O = (Z[k] - conj Z[n-k]) / 2i,
    /// n = block_in, indices mod n.
    #[inline(always)]
    fn filtered_spectrum(&mut self) {
        let (z, n) = (&self.time_in, self.block_in);
        let untangle = |a: Complex32, b: Complex32, w: Complex32| {
            let b = b.conj();
            let e = Complex32::new((a.re + b.re) * 0.5, (a.im + b.im) * 0.5);
            let o = Complex32::new((a.im - b.im) * 0.5, (b.re - a.re) * 0.5);
            e + w * o
        };
        let middle = self.kept.min(n);
        self.spectrum[0] = Complex32::new(z[0].re + z[0].im, 0.0) * self.filter[0];
        for ((((s, &a), &b), &w), &h) in self.spectrum[1..middle]
            .iter_mut()
            .zip(&z[1..])
            .zip(z[n - middle + 1..].iter().rev())
            .zip(&self.forward_twiddles[1..])
            .zip(&self.filter[1..])
        {
            *s = untangle(a, b, w) * h;
        }
        if self.kept > n {
            self.spectrum[n] = Complex32::new(z[0].re - z[0].im, 0.0) * self.filter[n];
        }
        self.spectrum[self.kept..].fill(Complex32::default());
    }

    /// The pairs' spectrum whose inverse FFT gives the real output y (even samples real, odd
    /// imaginary): E[k] = Y[k] + conj Y[m-k], O[k] = (Y[k] - conj Y[m-k]) e^{iπk/m},
    /// Z[k] = E + iO, m = block_out.
    #[inline(always)]
    fn pack_inverse(&mut self) {
        let y = &self.spectrum;
        for (((z, &a), &b), &w) in self
            .time_out
            .iter_mut()
            .zip(y)
            .zip(y[1..].iter().rev())
            .zip(&self.inverse_twiddles)
        {
            let b = b.conj();
            let e = a + b;
            let o = (a - b) * w;
            *z = Complex32::new(e.re - o.im, e.im + o.re);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rubato::audioadapter_buffers::direct::InterleavedSlice;
    use rubato::{FixedSync, Resampler};

    fn noise(n: usize) -> Vec<f32> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.8
            })
            .collect()
    }

    #[test]
    fn matches_rubato_block_for_block() {
        // rubato's Fft resampler with the same blocks and window is the reference: the same
        // method, computed by realfft over every bin.
        for (rate_in, rate_out, block_in, block_out) in [
            (48000, 16000, 1536, 512),
            (44100, 16000, 1764, 640),
            (11025, 16000, 441, 640),
            (8000, 16000, 256, 512),
            (96000, 16000, 3072, 512),
        ] {
            let mut ours = FftResampler::new(block_in, block_out);
            let mut theirs = rubato::Fft::<f32>::new_custom(
                rate_in,
                rate_out,
                block_in,
                1,
                1,
                rubato::WindowFunction::BlackmanHarris2,
                FixedSync::Input,
            )
            .unwrap();
            assert_eq!(theirs.output_delay(), ours.delay());
            let input = noise(block_in * 6 + block_in / 3);
            let mut worst = 0.0f32;
            for chunk in input.chunks(block_in) {
                let mut a = vec![0.0; block_out];
                ours.process(chunk, &mut a);
                let mut b = vec![0.0; theirs.output_frames_max()];
                let partial = rubato::Indexing::new().partial_len(chunk.len());
                let (_, n) = theirs
                    .process_into_buffer(
                        &InterleavedSlice::new(chunk, 1, chunk.len()).unwrap(),
                        &mut InterleavedSlice::new_mut(&mut b, 1, block_out).unwrap(),
                        (chunk.len() < block_in).then_some(&partial),
                    )
                    .unwrap();
                assert_eq!(n, block_out);
                for (x, y) in a.iter().zip(&b) {
                    worst = worst.max((x - y).abs());
                }
            }
            assert!(worst < 2e-6, "{rate_in} Hz: differs from rubato by {worst}");
        }
    }

    #[test]
    fn the_avx2_build_gives_the_same_bits_as_the_portable_one() {
        let input = noise(1536 * 4);
        let mut fast = FftResampler::new(1536, 512);
        let mut portable = FftResampler::new(1536, 512);
        for chunk in input.chunks(1536) {
            let (mut a, mut b) = (vec![0.0; 512], vec![0.0; 512]);
            fast.process(chunk, &mut a);
            portable.process_portable(chunk, &mut b);
            assert_eq!(a, b);
        }
    }
}
