// SPDX-License-Identifier: MPL-2.0

//! Log-mel frames as a model's descriptor declares them: the window, spectrum, filterbank, log
//! and normalisation of YAMNet, EfficientAT, PANNs and the like are values here, not code paths.

use std::sync::Arc;

use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

use super::mel_bank;

macro_rules! named_values {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok(Self::$variant),)+ _ => Err(()) }
            }
        }
    };
}

named_values! {
    /// The analysis window, `frame_length` samples long.
    WindowKind {
        /// `0.5 - 0.5 cos(2πn/N)`: TensorFlow's and scipy's `hann`, torch's default.
        HannPeriodic = "hann_periodic",
        /// `0.5 - 0.5 cos(2πn/(N-1))`: torch's `periodic=False`.
        HannSymmetric = "hann_symmetric",
        HammingPeriodic = "hamming_periodic",
        HammingSymmetric = "hamming_symmetric",
    }
}

named_values! {
    /// What each FFT bin contributes to the bands.
    Spectrum { Magnitude = "magnitude", Power = "power" }
}

named_values! {
    /// Which filterbank: see [`mel_bank::weights`].
    MelScale { Htk = "htk", HtkHz = "htk_hz", Kaldi = "kaldi", Slaney = "slaney" }
}

named_values! {
    /// Band weights as computed, or divided by half the band's width in Hz (librosa's default).
    BandNorm { None = "none", Slaney = "slaney" }
}

named_values! {
    /// The log taken of `max(band + log_offset, log_floor)`; `db` is `10·log10`.
    LogKind { Ln = "ln", Log10 = "log10", Db = "db" }
}

named_values! {
    /// Where frames sit: starting at multiples of the frame hop, or centred on them with the
    /// stream's start and end padded by reflection or silence (librosa's and torch's `center`).
    Centre { None = "none", Reflect = "reflect", Zeros = "zeros" }
}

/// The axes of one window's input tensor after the batch axis: `frames` and `bands` once each,
/// and any number of axes of size 1, written `"1,bands,frames"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout(Vec<Axis>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Frames,
    Bands,
    One,
}

impl Layout {
    pub fn frames_bands() -> Self {
        Self(vec![Axis::Frames, Axis::Bands])
    }

    /// Whether bands vary slowest, so features are stored band after band.
    pub fn bands_first(&self) -> bool {
        let at = |a| self.0.iter().position(|&x| x == a);
        at(Axis::Bands) < at(Axis::Frames)
    }

    pub fn shape(&self, frames: usize, bands: usize) -> Vec<usize> {
        self.0
            .iter()
            .map(|a| match a {
                Axis::Frames => frames,
                Axis::Bands => bands,
                Axis::One => 1,
            })
            .collect()
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let axes = s
            .split(',')
            .map(|t| match t.trim() {
                "frames" => Ok(Axis::Frames),
                "bands" => Ok(Axis::Bands),
                "1" => Ok(Axis::One),
                other => Err(format!("axis {other:?} (frames, bands or 1)")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let count = |a| axes.iter().filter(|&&x| x == a).count();
        if count(Axis::Frames) != 1 || count(Axis::Bands) != 1 {
            return Err("the layout must name `frames` and `bands` once each".into());
        }
        Ok(Self(axes))
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .0
            .iter()
            .map(|a| match a {
                Axis::Frames => "frames",
                Axis::Bands => "bands",
                Axis::One => "1",
            })
            .collect();
        f.write_str(&names.join(","))
    }
}

/// The log-mel front-end a model declares in its descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct MelParams {
    pub sample_rate: u32,
    /// `y[n] = x[n+1] - c·x[n]` before framing (EfficientAT's, one sample shorter); 0 for none.
    pub preemphasis: f64,
    pub centre: Centre,
    pub window: WindowKind,
    /// The window's length; the frame is zero-padded to `fft_length`.
    pub frame_length: usize,
    pub frame_hop: usize,
    pub fft_length: usize,
    pub spectrum: Spectrum,
    pub scale: MelScale,
    pub norm: BandNorm,
    pub bands: usize,
    pub fmin: f64,
    pub fmax: f64,
    pub log: LogKind,
    pub log_offset: f64,
    pub log_floor: f64,
    /// Per window, values more than this below the window's largest are raised to it, in the
    /// log's own units (torchaudio's and librosa's `top_db`).
    pub top_db: Option<f64>,
    /// Features are `(log - mean) / std`.
    pub mean: f64,
    pub std: f64,
    pub layout: Layout,
}

impl MelParams {
    /// YAMNet's published front-end.
    pub fn yamnet() -> Self {
        Self {
            sample_rate: 16000,
            preemphasis: 0.0,
            centre: Centre::None,
            window: WindowKind::HannPeriodic,
            frame_length: 400,
            frame_hop: 160,
            fft_length: 512,
            spectrum: Spectrum::Magnitude,
            scale: MelScale::Htk,
            norm: BandNorm::None,
            bands: 64,
            fmin: 125.0,
            fmax: 7500.0,
            log: LogKind::Ln,
            log_offset: 0.001,
            log_floor: 0.0,
            top_db: None,
            mean: 0.0,
            std: 1.0,
            layout: Layout::frames_bands(),
        }
    }

    /// EfficientAT's `AugmentMelSTFT` in eval mode (`models/preprocess.py`), 128 bands.
    pub fn efficientat() -> Self {
        Self {
            sample_rate: 32000,
            preemphasis: 0.97,
            centre: Centre::Reflect,
            window: WindowKind::HannSymmetric,
            frame_length: 800,
            frame_hop: 320,
            fft_length: 1024,
            spectrum: Spectrum::Power,
            scale: MelScale::Kaldi,
            norm: BandNorm::None,
            bands: 128,
            fmin: 0.0,
            fmax: 15000.0,
            log: LogKind::Ln,
            log_offset: 1e-5,
            log_floor: 0.0,
            top_db: None,
            mean: -4.5,
            std: 5.0,
            layout: "1,bands,frames".parse().expect("a valid layout"),
        }
    }

    /// Samples the pre-emphasis takes off the signal's end.
    pub fn preemphasis_delay(&self) -> usize {
        usize::from(self.preemphasis != 0.0)
    }

    /// Samples of the signal before a frame's centre that its window covers.
    pub fn samples_before_centre(&self) -> usize {
        match self.centre {
            Centre::None => 0,
            // torch centres the window in the FFT frame and the FFT frame on the hop.
            _ => self.fft_length / 2 - (self.fft_length - self.frame_length) / 2,
        }
    }

    /// Frames in a clip of `samples` samples, as the reference computes them for the clip alone.
    pub fn frames_in(&self, samples: usize) -> usize {
        let signal = samples.saturating_sub(self.preemphasis_delay());
        match self.centre {
            Centre::None if signal < self.frame_length => 0,
            Centre::None => (signal - self.frame_length) / self.frame_hop + 1,
            _ => signal / self.frame_hop + 1,
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
        // The values are applied in f32, where the features must stay finite.
        let finite_non_negative = |v: f64| (0.0..=1e30).contains(&v);
        if !(finite_non_negative(self.log_offset)
            && finite_non_negative(self.log_floor)
            && self.log_offset.max(self.log_floor) >= f32::MIN_POSITIVE as f64)
        {
            return Err(format!(
                "log offset {} and log floor {}: one must be positive (the log of a silent band \
                 would be minus infinity)",
                self.log_offset, self.log_floor
            ));
        }
        if !(self.preemphasis.is_finite() && self.preemphasis.abs() < 1.0) {
            return Err(format!(
                "pre-emphasis {} must be in (-1, 1)",
                self.preemphasis
            ));
        }
        if !((1e-6..=1e6).contains(&self.std) && (-1e6..=1e6).contains(&self.mean)) {
            return Err(format!(
                "normalisation mean {} and std {}: the mean must be within ±10⁶, the std \
                 from 10⁻⁶ to 10⁶",
                self.mean, self.std
            ));
        }
        if self.top_db.is_some_and(|t| !(t > 0.0 && t <= 1e30)) {
            return Err(format!("top_db {:?} must be positive", self.top_db));
        }
        Ok(())
    }

    /// The shape of one window's input, without the batch axis.
    pub fn shape(&self, frames: usize) -> Vec<usize> {
        self.layout.shape(frames, self.bands)
    }

    /// Appends one window's features, made from its log-mel `frames` (frame after frame,
    /// `bands` values each): the per-window floor, the normalisation and the model's axis order.
    pub fn window_features(&self, frames: &[f32], out: &mut Vec<f32>) {
        let start = out.len();
        if self.layout.bands_first() {
            let count = frames.len() / self.bands;
            out.reserve(frames.len());
            for band in 0..self.bands {
                out.extend((0..count).map(|f| frames[f * self.bands + band]));
            }
        } else {
            out.extend_from_slice(frames);
        }
        let values = &mut out[start..];
        if let Some(top_db) = self.top_db {
            let floor = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) - top_db as f32;
            values.iter_mut().for_each(|v| *v = v.max(floor));
        }
        if self.mean != 0.0 || self.std != 1.0 {
            let (mean, std) = (self.mean as f32, self.std as f32);
            values.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
    }
}

/// One mel band: the weights of a contiguous run of FFT bins (the rest are zero).
#[derive(Debug, Clone)]
struct Band {
    first_bin: usize,
    weights: Vec<f32>,
}

fn mel_bands(p: &MelParams) -> Vec<Band> {
    mel_bank::weights(p)
        .into_iter()
        .map(|w| {
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
        let (a0, period) = match params.window {
            WindowKind::HannPeriodic => (0.5, n),
            WindowKind::HannSymmetric => (0.5, n - 1),
            WindowKind::HammingPeriodic => (0.54, n),
            WindowKind::HammingSymmetric => (0.54, n - 1),
        };
        let window = (0..n)
            .map(|i| {
                let phase = 2.0 * std::f64::consts::PI * i as f64 / period.max(1) as f64;
                a0 - (1.0 - a0) * phase.cos()
            })
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
        let power = self.params.spectrum == Spectrum::Power;
        untangle_spectrum(&self.packed, &self.twiddles, power, &mut self.magnitude);
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
        let floor = self.params.log_floor as f32;
        let scale = match self.params.log {
            LogKind::Ln => 1.0,
            LogKind::Log10 => std::f32::consts::LOG10_E,
            LogKind::Db => 10.0 * std::f32::consts::LOG10_E,
        };
        // One loop for every log kind: the floor (0 where none) and the scale (1 for ln) leave
        // the other kinds' values bit for bit as they are.
        for o in out.iter_mut() {
            *o = ln(o.max(floor)) * scale;
        }
    }
}

/// Magnitudes |X[k]| (or powers |X[k]|²), k in 0..=N/2, of the real N-point FFT X whose even
/// and odd samples were packed into `z`, the N/2-point complex FFT: with E and O the even and
/// odd samples' FFTs, E[k] = (Z[k] + conj Z[N/2-k]) / 2, O[k] = (Z[k] - conj Z[N/2-k]) / 2i,
/// X[k] = E[k] + W^k O[k].
#[inline(always)]
fn untangle_spectrum(z: &[Complex64], twiddles: &[Complex64], power: bool, magnitude: &mut [f32]) {
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
    if power {
        return;
    }
    for m in magnitude.iter_mut() {
        *m = m.sqrt();
    }
}

/// Natural log of a positive normal float (band energies are at least the log offset or floor), branch-free
/// so a frame's bands vectorise: libm's `log` was a quarter of the front-end's time. Cephes'
/// `logf` polynomial, within about 1 ulp; subnormals, zero and NaN are not handled.
#[inline(always)]
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
            let hz_to_mel = |f: f64| 1127.0 * (f / 700.0).ln_1p();
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
