// SPDX-License-Identifier: MPL-2.0

//! YAMNet/VGGish log-mel frames: periodic-Hann frames, real FFT magnitude, HTK mel, log.

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

/// The log-mel parameters a model declares in its descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct MelParams {
    pub sample_rate: u32,
    pub frame_length: usize,
    pub frame_hop: usize,
    pub fft_length: usize,
    pub bands: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub log_offset: f64,
}

impl MelParams {
    /// YAMNet's published front-end.
    pub fn yamnet() -> Self {
        Self {
            sample_rate: 16000,
            frame_length: 400,
            frame_hop: 160,
            fft_length: 512,
            bands: 64,
            fmin: 125.0,
            fmax: 7500.0,
            log_offset: 0.001,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let nyquist = self.sample_rate as f64 / 2.0;
        if self.frame_length == 0 || self.frame_hop == 0 || self.bands == 0 {
            return Err("frame length, frame hop and bands must be positive".into());
        }
        if self.fft_length < self.frame_length {
            return Err(format!(
                "FFT length {} is shorter than the frame length {}",
                self.fft_length, self.frame_length
            ));
        }
        if !self.fft_length.is_multiple_of(2) {
            return Err(format!("FFT length {} must be even", self.fft_length));
        }
        if !(0.0 <= self.fmin && self.fmin < self.fmax && self.fmax <= nyquist) {
            return Err(format!(
                "mel range {}-{} Hz must satisfy 0 <= fmin < fmax <= {nyquist}",
                self.fmin, self.fmax
            ));
        }
        if !(self.log_offset > 0.0 && self.log_offset.is_finite()) {
            return Err(format!("log offset {} must be positive", self.log_offset));
        }
        Ok(())
    }
}

fn hz_to_mel(f: f64) -> f64 {
    1127.0 * (f / 700.0).ln_1p()
}

/// One mel band: the weights of a contiguous run of FFT bins (the rest are zero).
#[derive(Debug, Clone)]
struct Band {
    first_bin: usize,
    weights: Vec<f32>,
}

/// `tf.signal.linear_to_mel_weight_matrix`: HTK triangles in the mel domain over bin centres
/// `linspace(0, sr/2, fft/2+1)`, DC bin zeroed, no area normalisation. Computed in f64.
fn mel_bands(p: &MelParams) -> Vec<Band> {
    let bins = p.fft_length / 2 + 1;
    let nyquist = p.sample_rate as f64 / 2.0;
    let bin_mel: Vec<f64> = (0..bins)
        .map(|k| hz_to_mel(nyquist * k as f64 / (bins - 1) as f64))
        .collect();
    let (lo, hi) = (hz_to_mel(p.fmin), hz_to_mel(p.fmax));
    let edge = |i: usize| lo + (hi - lo) * i as f64 / (p.bands + 1) as f64;
    (0..p.bands)
        .map(|b| {
            let (l, c, u) = (edge(b), edge(b + 1), edge(b + 2));
            let w: Vec<f64> = bin_mel
                .iter()
                .enumerate()
                .map(|(k, &m)| {
                    if k == 0 {
                        0.0
                    } else {
                        ((m - l) / (c - l)).min((u - m) / (u - c)).max(0.0)
                    }
                })
                .collect();
            let first = w.iter().position(|&x| x > 0.0).unwrap_or(0);
            let last = w.iter().rposition(|&x| x > 0.0).map_or(first, |i| i + 1);
            Band {
                first_bin: first,
                weights: w[first..last].iter().map(|&x| x as f32).collect(),
            }
        })
        .collect()
}

/// Eight neighbouring bands' weights, dense over the bins any of them covers: each bin is in
/// at most two bands, so the block is barely larger than the bands themselves, and it is
/// applied as one 8-lane multiply-add per bin instead of 64 short dot products (whose serial
/// sums left the CPU waiting on its adders).
#[derive(Debug, Clone)]
struct MelBlock {
    first_bin: usize,
    weights: Vec<[f32; MEL_LANES]>,
}

const MEL_LANES: usize = 8;

fn mel_blocks(bands: &[Band]) -> Vec<MelBlock> {
    bands
        .chunks(MEL_LANES)
        .map(|group| {
            let first_bin = group.iter().map(|b| b.first_bin).min().unwrap_or(0);
            let end = group
                .iter()
                .map(|b| b.first_bin + b.weights.len())
                .max()
                .unwrap_or(first_bin);
            let mut weights = vec![[0.0f32; MEL_LANES]; end - first_bin];
            for (lane, band) in group.iter().enumerate() {
                for (i, &w) in band.weights.iter().enumerate() {
                    weights[band.first_bin - first_bin + i][lane] = w;
                }
            }
            MelBlock { first_bin, weights }
        })
        .collect()
}

/// The dense [bins × bands] mel matrix, for checks against other implementations.
pub fn mel_matrix(p: &MelParams) -> Vec<Vec<f32>> {
    let bins = p.fft_length / 2 + 1;
    let mut m = vec![vec![0.0f32; p.bands]; bins];
    for (b, band) in mel_bands(p).iter().enumerate() {
        for (i, &w) in band.weights.iter().enumerate() {
            m[band.first_bin + i][b] = w;
        }
    }
    m
}

/// Computes one log-mel frame at a time; owns its FFT plan and scratch space.
///
/// The spectrum is computed in f64: a frame with loud low bands and quiet high ones needs more
/// than f32's dynamic range before the log magnifies the quiet bands' rounding (measured: f32
/// gives up to 5e-3 log-mel error against a float64 reference on real recordings).
///
/// The real FFT is a complex FFT of half the length over the even and odd samples, untangled
/// in the same loop that takes the magnitudes (realfft's separate pass compiled to scalar
/// code and cost as much as the FFT itself).
pub struct LogMel {
    params: MelParams,
    window: Vec<f64>,
    mel: Vec<MelBlock>,
    fft: Arc<dyn Fft<f64>>,
    /// `exp(-2πik/N)` for k in 0..N/2, N the FFT length.
    twiddles: Vec<Complex64>,
    packed: Vec<Complex64>,
    magnitude: Vec<f32>,
    scratch: Vec<Complex64>,
    avx2: bool,
}

impl LogMel {
    pub fn new(params: MelParams) -> Result<Self, String> {
        params.validate()?;
        let n = params.frame_length;
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let half = params.fft_length / 2;
        let fft = FftPlanner::<f64>::new().plan_fft_forward(half);
        let twiddles = (0..half)
            .map(|k| {
                let phase = -2.0 * std::f64::consts::PI * k as f64 / params.fft_length as f64;
                Complex64::new(phase.cos(), phase.sin())
            })
            .collect();
        Ok(Self {
            window,
            mel: mel_blocks(&mel_bands(&params)),
            twiddles,
            packed: vec![Complex64::default(); half],
            magnitude: vec![0.0; half + 1],
            scratch: vec![Complex64::default(); fft.get_inplace_scratch_len()],
            fft,
            params,
            avx2: super::has_avx2_fma(),
        })
    }

    pub fn params(&self) -> &MelParams {
        &self.params
    }

    /// Writes the `bands` log-mel values of the frame starting at `samples[0]` into `out`.
    pub fn frame(&mut self, samples: &[f32], out: &mut [f32]) {
        let samples = &samples[..self.params.frame_length];
        let out = &mut out[..self.params.bands];
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is true only where the CPU has AVX2 and FMA.
            unsafe { self.frame_avx2(samples, out) };
            return;
        }
        self.frame_portable(samples, out);
    }

    /// The same code as [`frame_portable`](Self::frame_portable) built for AVX2: twice the
    /// lanes for the magnitudes and square roots. No `mul_add` is written anywhere, so both
    /// builds give bit-identical results.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn frame_avx2(&mut self, samples: &[f32], out: &mut [f32]) {
        self.frame_portable(samples, out);
    }

    #[inline(always)]
    fn frame_portable(&mut self, samples: &[f32], out: &mut [f32]) {
        // Even samples into the real parts, odd into the imaginary; the zero padding up to the
        // FFT length goes at the end, as in the reference.
        let pairs = samples.len() / 2;
        for ((z, s), w) in self.packed[..pairs]
            .iter_mut()
            .zip(samples.chunks_exact(2))
            .zip(self.window.chunks_exact(2))
        {
            *z = Complex64::new(s[0] as f64 * w[0], s[1] as f64 * w[1]);
        }
        if samples.len() % 2 == 1 {
            let last = samples.len() - 1;
            self.packed[pairs] = Complex64::new(samples[last] as f64 * self.window[last], 0.0);
            self.packed[pairs + 1..].fill(Complex64::default());
        } else {
            self.packed[pairs..].fill(Complex64::default());
        }
        self.fft
            .process_with_scratch(&mut self.packed, &mut self.scratch);
        untangle_magnitudes(&self.packed, &self.twiddles, &mut self.magnitude);
        let offset = self.params.log_offset as f32;
        for (o, block) in out.chunks_mut(MEL_LANES).zip(&self.mel) {
            // Two sums over alternate bins halve the chain of dependent additions.
            let (mut even, mut odd) = ([0.0f32; MEL_LANES], [0.0f32; MEL_LANES]);
            let bins = &self.magnitude[block.first_bin..block.first_bin + block.weights.len()];
            let (pairs, ws) = (bins.chunks_exact(2), block.weights.chunks_exact(2));
            if let (&[m], &[w]) = (pairs.remainder(), ws.remainder()) {
                for lane in 0..MEL_LANES {
                    odd[lane] += m * w[lane];
                }
            }
            for (m, w) in pairs.zip(ws) {
                for lane in 0..MEL_LANES {
                    even[lane] += m[0] * w[0][lane];
                    odd[lane] += m[1] * w[1][lane];
                }
            }
            for (lane, o) in o.iter_mut().enumerate() {
                *o = (even[lane] + odd[lane]) + offset;
            }
        }
        for o in out.iter_mut() {
            *o = ln(*o);
        }
    }
}

/// Magnitudes |X[k]|, k in 0..=N/2, of the real N-point FFT X whose even and odd samples were
/// packed into `z`, the N/2-point complex FFT: with E and O the even and odd samples' FFTs,
/// E[k] = (Z[k] + conj Z[N/2-k]) / 2, O[k] = (Z[k] - conj Z[N/2-k]) / 2i, X[k] = E[k] + W^k O[k].
#[inline(always)]
fn untangle_magnitudes(z: &[Complex64], twiddles: &[Complex64], magnitude: &mut [f32]) {
    let half = z.len();
    // Not `norm()`: its overflow-safe hypot took two thirds of the front-end's time, and
    // squares of an f64 spectrum of [-1, 1] samples cannot overflow. The power is exact
    // enough in f32 once the FFT's cancellations are behind it (relative error 6e-8, which
    // the log turns into at most 6e-8 absolute), and f32 square roots run twice as wide.
    let power_of = |re: f64, im: f64| (re * re + im * im) as f32;
    magnitude[0] = power_of(z[0].re + z[0].im, 0.0);
    magnitude[half] = power_of(z[0].re - z[0].im, 0.0);
    // k from 1 to N/2 - 1, with Z[N/2 - k] read backwards.
    for (((m, w), a), b) in magnitude[1..half]
        .iter_mut()
        .zip(&twiddles[1..])
        .zip(&z[1..])
        .zip(z[1..].iter().rev())
    {
        let (a, b) = (*a, b.conj());
        let (er, ei) = ((a.re + b.re) * 0.5, (a.im + b.im) * 0.5);
        // O = (a - b) / 2i = ((a - b).im, -(a - b).re) / 2.
        let (or, oi) = ((a.im - b.im) * 0.5, (b.re - a.re) * 0.5);
        *m = power_of(er + w.re * or - w.im * oi, ei + w.re * oi + w.im * or);
    }
    // Square roots in a pass of their own: inside the loop above they ran four lanes wide
    // (the f64 width) and the loop waited on them; here they run eight wide.
    for m in magnitude.iter_mut() {
        *m = m.sqrt();
    }
}

/// Natural log of a positive normal float (band energies are at least the log offset), branch-free
/// so a frame's bands vectorise: libm's `log` was a quarter of the front-end's time. Cephes'
/// `logf` polynomial, within about 1 ulp; subnormals, zero and NaN are not handled.
#[inline]
fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    // x = m · 2^e with m in [0.5, 1).
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    // Fold m into [√½, √2) so the polynomial works around 1.
    let small = m < SQRT_HALF;
    e -= small as i32;
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let e = e as f32;
    let z = m * m;
    let mut y = 7.037_683_6e-2;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_5e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y *= m * z;
    y += -2.121_944_4e-4 * e;
    y += -0.5 * z;
    m + y + 0.693_359_4 * e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_matrix_shape_and_zero_dc() {
        let m = mel_matrix(&MelParams::yamnet());
        assert_eq!((m.len(), m[0].len()), (257, 64));
        assert!(m[0].iter().all(|&w| w == 0.0));
        // Every band has support and peaks close to 1 (no area normalisation).
        for b in 0..64 {
            let peak = m.iter().map(|row| row[b]).fold(0.0f32, f32::max);
            assert!(peak > 0.5 && peak <= 1.0, "band {b} peak {peak}");
        }
    }

    #[test]
    fn fast_ln_matches_the_library_log() {
        // Every power of two and the values between, from the log offset's range up to huge
        // band energies: within 2 ulp-sized steps of f64's ln.
        let mut x = 1e-6f32;
        while x < 1e6 {
            let exact = (x as f64).ln();
            let err = (ln(x) as f64 - exact).abs();
            assert!(err <= 2.5e-7 * exact.abs().max(1.0), "ln({x}) off by {err}");
            x *= 1.0137;
        }
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn silence_gives_the_log_offset() {
        let mut lm = LogMel::new(MelParams::yamnet()).unwrap();
        let mut out = vec![0.0; 64];
        lm.frame(&[0.0; 400], &mut out);
        assert!(out.iter().all(|&v| (v - 0.001f32.ln()).abs() < 1e-6));
    }

    #[test]
    fn a_tone_lights_up_its_own_band() {
        let mut lm = LogMel::new(MelParams::yamnet()).unwrap();
        let tone: Vec<f32> = (0..400)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
            .collect();
        let mut out = vec![0.0; 64];
        lm.frame(&tone, &mut out);
        let loudest = (0..64).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        // Band centres are linspace(mel(125), mel(7500), 66)[1..65]; 1 kHz falls in band ~17.
        let centre = |b: usize| {
            let (lo, hi) = (hz_to_mel(125.0), hz_to_mel(7500.0));
            700.0 * (((lo + (hi - lo) * (b + 1) as f64 / 65.0) / 1127.0).exp() - 1.0)
        };
        assert!(
            (centre(loudest) - 1000.0).abs() < 80.0,
            "band {loudest} centre {}",
            centre(loudest)
        );
    }

    fn noise(n: usize) -> Vec<f32> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    #[test]
    fn magnitudes_match_a_direct_dft() {
        // The half-length complex FFT and its untangling against the DFT's definition, for the
        // even and odd frame lengths a descriptor may give.
        for (frame_length, fft_length) in [(400, 512), (401, 512), (25, 32)] {
            let p = MelParams {
                frame_length,
                fft_length,
                ..MelParams::yamnet()
            };
            let mut lm = LogMel::new(p).unwrap();
            let x = noise(frame_length);
            lm.frame(&x, &mut [0.0; 64]);
            for k in 0..=fft_length / 2 {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                for (n, &v) in x.iter().enumerate() {
                    let v = v as f64 * lm.window[n];
                    let ph = -2.0 * std::f64::consts::PI * (k * n) as f64 / fft_length as f64;
                    re += v * ph.cos();
                    im += v * ph.sin();
                }
                let exact = (re * re + im * im).sqrt();
                let got = lm.magnitude[k] as f64;
                assert!(
                    (got - exact).abs() <= 1e-6 * exact.max(1.0),
                    "{frame_length}/{fft_length} bin {k}: {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn the_avx2_build_gives_the_same_bits_as_the_portable_one() {
        let x = noise(16000);
        let mut lm = LogMel::new(MelParams::yamnet()).unwrap();
        let (mut fast, mut portable) = (vec![0.0; 64], vec![0.0; 64]);
        for start in (0..15600).step_by(160) {
            lm.frame(&x[start..start + 400], &mut fast);
            lm.frame_portable(&x[start..start + 400], &mut portable);
            assert_eq!(fast, portable, "frame at {start}");
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let mut p = MelParams::yamnet();
        p.fmax = 9000.0;
        assert!(LogMel::new(p).is_err());
        let mut p = MelParams::yamnet();
        p.fft_length = 256;
        assert!(LogMel::new(p).is_err());
        let mut p = MelParams::yamnet();
        p.fft_length = 511;
        assert!(LogMel::new(p).is_err());
        let mut p = MelParams::yamnet();
        p.log_offset = 0.0;
        assert!(LogMel::new(p).is_err());
    }
}
