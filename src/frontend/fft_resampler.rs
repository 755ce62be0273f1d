// SPDX-License-Identifier: MPL-2.0

//! One block of band-limited resampling by FFT and overlap-add.
//!
//! A block of `block_in` new samples is zero-padded to the transform length and transformed;
//! the bins below the lower Nyquist frequency are multiplied by the anti-aliasing filter's
//! spectrum and transformed back at the output rate, and the output beyond the block's own
//! `block_out` frames overlaps the next blocks. The filter is a Kaiser-windowed sinc only as
//! long as its specification needs (below), so most of each transform carries new samples:
//! rubato's `Fft` resampler, which this replaced, used a filter as long as the block, so half of
//! every transform was padding.
//!
//! Both real transforms are half-length complex ones; only the bins that pass are untangled
//! (a third of them for 48 kHz), and the untangling is built for AVX2 as well.

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::num_complex::{Complex32, Complex64};
use rustfft::{Fft, FftPlanner};

/// The filter's specification, relative to the lower of the two Nyquist frequencies: flat
/// (within 0.01 dB) up to 15/16 of it, which is 7.5 kHz for 16 kHz output, as high as
/// YAMNet's mel bands reach; at least [`STOPBAND_DB`] down from it on, so nothing aliases.
const PASSBAND_EDGE: f64 = 15.0 / 16.0;
/// 120 dB: an alias that far down is below 16-bit audio's noise floor and below the log-mel's
/// offset for any frame loud enough to matter.
const STOPBAND_DB: f64 = 120.0;

/// Output frames per transform, at least: transforms below this size cost more per frame.
const MIN_TRANSFORM_OUT: usize = 1024;

pub struct FftResampler {
    block_in: usize,
    block_out: usize,
    /// Complex points of the forward transform: half the real transform length.
    n_in: usize,
    /// Bins that pass: those below the lower of the two Nyquist frequencies.
    kept: usize,
    delay: usize,
    /// `n_in`-point complex FFT over the zero-padded block's sample pairs.
    forward: Arc<dyn Fft<f32>>,
    /// `n_out`-point complex inverse FFT giving the output's sample pairs.
    inverse: Arc<dyn Fft<f32>>,
    /// `exp(-iπk / n_in)`, k < kept.
    forward_twiddles: Vec<Complex32>,
    /// `exp(iπk / n_out)`, k < n_out.
    inverse_twiddles: Vec<Complex32>,
    /// The filter's spectrum over the kept bins, scaled so the round trip has unit gain.
    filter: Vec<Complex32>,
    time_in: Vec<Complex32>,
    spectrum: Vec<Complex32>,
    time_out: Vec<Complex32>,
    /// What earlier blocks add to the coming output frames: the filter's tail.
    overlap: Vec<f32>,
    scratch: Vec<Complex32>,
    avx2: bool,
}

/// The zeroth-order modified Bessel function of the first kind, by its power series.
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= (x / (2.0 * k)) * (x / (2.0 * k));
        sum += term;
        k += 1.0;
    }
    sum
}

/// Kaiser's β for a stopband `attenuation_db` down (Kaiser's empirical formula).
fn kaiser_beta(attenuation_db: f64) -> f64 {
    0.1102 * (attenuation_db - 8.7)
}

/// The filter's taps at continuous position `t` in 0..=span (tap `span / 2` is the centre):
/// a sinc cutting off at `cutoff` cycles per input sample under a Kaiser window, up to a
/// constant factor that every use normalises away (so `I0(β)` is not computed per tap). The
/// taps are its values at whole `t`; tests evaluate it between them too.
fn kernel(t: f64, span: f64, cutoff: f64, beta: f64) -> f64 {
    let r = 2.0 * t / span - 1.0;
    if !(-1.0..=1.0).contains(&r) {
        return 0.0;
    }
    let x = 2.0 * cutoff * (t - span / 2.0);
    let sinc = if x == 0.0 {
        1.0
    } else {
        (PI * x).sin() / (PI * x)
    };
    sinc * bessel_i0(beta * (1.0 - r * r).sqrt())
}

/// The anti-aliasing filter's design for a rate pair: where it cuts off, its window, and how
/// many input samples it spans (taps `span + 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct FilterDesign {
    /// Cycles per input sample.
    cutoff: f64,
    beta: f64,
    span: usize,
}

impl FilterDesign {
    /// Cuts off midway between the passband edge and the lower Nyquist frequency. Spans what
    /// Kaiser's length formula asks for with 6 % to spare (the formula is a little optimistic;
    /// `the_filter_meets_its_specification` checks the spare), rounded up to whole units of the
    /// rate ratio (`unit_in` input samples for `unit_out` output frames) whose half, the
    /// delay, is a whole number of output frames.
    fn new(input_rate: u32, output_rate: u32, unit_in: usize, unit_out: usize) -> Self {
        let nyquist = input_rate.min(output_rate) as f64 / 2.0 / input_rate as f64;
        let transition = nyquist * (1.0 - PASSBAND_EDGE);
        let span = 1.06 * (STOPBAND_DB - 7.95) / (14.36 * transition);
        let mut units = (span / unit_in as f64).ceil() as usize;
        units += units * unit_out % 2;
        Self {
            cutoff: nyquist * (1.0 + PASSBAND_EDGE) / 2.0,
            beta: kaiser_beta(STOPBAND_DB),
            span: units * unit_in,
        }
    }

    /// The taps, normalised to unit DC gain.
    fn taps(&self) -> Vec<f64> {
        let span = self.span as f64;
        let taps: Vec<f64> = (0..=self.span)
            .map(|n| kernel(n as f64, span, self.cutoff, self.beta))
            .collect();
        let sum: f64 = taps.iter().sum();
        taps.into_iter().map(|v| v / sum).collect()
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
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
    /// Resamples `input_rate` to `output_rate`, both positive.
    pub fn new(input_rate: u32, output_rate: u32) -> Self {
        let g = gcd(input_rate, output_rate);
        let (unit_in, unit_out) = ((input_rate / g) as usize, (output_rate / g) as usize);
        let design = FilterDesign::new(input_rate, output_rate, unit_in, unit_out);
        let filter_units = design.span / unit_in;
        // Transforms of a power-of-two number of whole-ratio units, so both sizes factor into
        // small primes (3·1024 in, 1024 out for 48 kHz; a size such as 3·683 makes rustfft fall
        // back to algorithms ten times slower), with room for at least one unit of new input.
        let mut units = MIN_TRANSFORM_OUT.div_ceil(unit_out).next_power_of_two();
        while units <= filter_units {
            units *= 2;
        }
        let (n_in, n_out) = (units * unit_in / 2, units * unit_out / 2);
        let block_units = units - filter_units;
        // Bins of the 2·n_in-point spectrum that survive: up to the output's Nyquist bin
        // (excluded) when decimating, all of the input's (Nyquist included) when interpolating.
        let kept = if n_in < n_out { n_in + 1 } else { n_out };
        let mut filter_t: Vec<Complex64> = design
            .taps()
            .into_iter()
            .map(|v| Complex64::new(v / (2 * n_in) as f64, 0.0))
            .collect();
        filter_t.resize(2 * n_in, Complex64::default());
        FftPlanner::<f64>::new()
            .plan_fft_forward(2 * n_in)
            .process(&mut filter_t);
        let filter = filter_t[..kept]
            .iter()
            .map(|c| Complex32::new(c.re as f32, c.im as f32))
            .collect();
        let mut planner = FftPlanner::<f32>::new();
        let forward = planner.plan_fft_forward(n_in);
        let inverse = planner.plan_fft_inverse(n_out);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        Self {
            block_in: block_units * unit_in,
            block_out: block_units * unit_out,
            n_in,
            kept,
            delay: filter_units * unit_out / 2,
            forward,
            inverse,
            forward_twiddles: twiddles(kept, -1.0, n_in),
            inverse_twiddles: twiddles(n_out, 1.0, n_out),
            filter,
            time_in: vec![Complex32::default(); n_in],
            spectrum: vec![Complex32::default(); n_out + 1],
            time_out: vec![Complex32::default(); n_out],
            overlap: vec![0.0; filter_units * unit_out],
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
        self.delay
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
        // The earlier blocks' tails reach `overlap.len()` frames into this block's output,
        // which may be more or fewer frames than the block has.
        let shared = self.block_out.min(self.overlap.len());
        for ((o, &v), &prev) in out.iter_mut().zip(head).zip(&self.overlap[..shared]) {
            *o = v + prev;
        }
        out[shared..].copy_from_slice(&head[shared..]);
        self.overlap.copy_within(shared.., 0);
        let carried = self.overlap.len() - shared;
        self.overlap[carried..].fill(0.0);
        for (o, &v) in self.overlap.iter_mut().zip(tail) {
            *o += v;
        }
    }

    /// The real input's spectrum X[k], k < kept, times the filter. With Z the pairs' FFT,
    /// X[k] = E + W^k O, E = (Z[k] + conj Z[n-k]) / 2, O = (Z[k] - conj Z[n-k]) / 2i,
    /// n = n_in, indices mod n.
    #[inline(always)]
    fn filtered_spectrum(&mut self) {
        let (z, n) = (&self.time_in, self.n_in);
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
    /// Z[k] = E + iO, m = n_out.
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

    const RATES: [u32; 9] = [8000, 11025, 12000, 22050, 24000, 32000, 44100, 48000, 96000];

    fn design(rate: u32) -> FilterDesign {
        let g = gcd(rate, 16000);
        FilterDesign::new(rate, 16000, (rate / g) as usize, (16000 / g) as usize)
    }

    #[test]
    fn the_filter_meets_its_specification() {
        // The taps' response, by the DTFT's definition in f64: flat within 0.01 dB to 15/16 of
        // the lower Nyquist frequency, 120 dB down from it on, sampled four times per sidelobe.
        for rate in RATES {
            let d = design(rate);
            let taps = d.taps();
            let gain_db = |f: f64| {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (n, &h) in taps.iter().enumerate() {
                    let ph = -2.0 * PI * f * n as f64;
                    re += h * ph.cos();
                    im += h * ph.sin();
                }
                10.0 * (re * re + im * im).log10()
            };
            let nyquist = rate.min(16000) as f64 / 2.0 / rate as f64;
            let step = 1.0 / (4.0 * d.span as f64);
            let mut f = 0.0;
            while f <= nyquist * PASSBAND_EDGE {
                let g = gain_db(f);
                assert!(
                    g.abs() < 0.01,
                    "{rate} Hz: {g:.4} dB at {:.0} Hz",
                    f * rate as f64
                );
                f += step;
            }
            let mut f = nyquist;
            while f <= 0.5 {
                let g = gain_db(f);
                assert!(
                    g < -STOPBAND_DB,
                    "{rate} Hz: {g:.1} dB at {:.0} Hz",
                    f * rate as f64
                );
                f += step;
            }
        }
    }

    #[test]
    fn matches_direct_band_limited_interpolation() {
        // The reference computes each output frame on its own, in f64, from the filter's
        // continuous kernel: frame m sits at input position m · in/out, so at fractional
        // positions (44.1 kHz, upsampling) the kernel is evaluated between its taps. Blocks,
        // transforms, untangling and overlap-add are all absent from it.
        for rate in RATES {
            let d = design(rate);
            let norm: f64 = (0..=d.span)
                .map(|n| kernel(n as f64, d.span as f64, d.cutoff, d.beta))
                .sum();
            let mut ours = FftResampler::new(rate, 16000);
            let input = noise(ours.block_in() * 4 + ours.block_in() / 3);
            let mut output = Vec::new();
            for chunk in input.chunks(ours.block_in()) {
                let mut block = vec![0.0; ours.block_out()];
                ours.process(chunk, &mut block);
                output.extend_from_slice(&block);
            }
            let ratio = rate as f64 / 16000.0;
            let mut worst = 0.0f64;
            for (m, &got) in output.iter().enumerate().step_by(7) {
                let t = m as f64 * ratio;
                let first = (t - d.span as f64).ceil().max(0.0) as usize;
                let last = (t.floor() as usize).min(input.len() - 1);
                let expected: f64 = (first..=last)
                    .map(|n| {
                        let k = kernel(t - n as f64, d.span as f64, d.cutoff, d.beta);
                        input[n] as f64 * k / norm
                    })
                    .sum();
                worst = worst.max((got as f64 - expected).abs());
            }
            assert!(
                worst < 1e-6,
                "{rate} Hz: differs from the reference by {worst:e}"
            );
        }
    }

    #[test]
    fn the_avx2_build_gives_the_same_bits_as_the_portable_one() {
        let mut fast = FftResampler::new(48000, 16000);
        let mut portable = FftResampler::new(48000, 16000);
        let input = noise(fast.block_in() * 4);
        for chunk in input.chunks(fast.block_in()) {
            let (mut a, mut b) = (vec![0.0; fast.block_out()], vec![0.0; fast.block_out()]);
            fast.process(chunk, &mut a);
            portable.process_portable(chunk, &mut b);
            assert_eq!(a, b);
        }
    }
}
