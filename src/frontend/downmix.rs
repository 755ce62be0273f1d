// SPDX-License-Identifier: MPL-2.0

//! Interleaved samples of any supported format to one mono float channel.

/// A sample format the element accepts, with its conversion to [-1, 1].
pub trait Sample: Copy {
    /// Every value converts to a finite float within ±1: no frame needs checking.
    const ALWAYS_IN_RANGE: bool;
    fn to_f32(self) -> f32;
    /// The mean of a stereo frame.
    #[inline]
    fn mean_of_pair(a: Self, b: Self) -> f32 {
        (a.to_f32() + b.to_f32()) * 0.5
    }
}

impl Sample for i16 {
    const ALWAYS_IN_RANGE: bool = true;
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32 * (1.0 / 32768.0)
    }
    /// Summed as integers: the same bits as the default (every step there is exact, the
    /// scaling being by powers of two), one conversion instead of two.
    #[inline]
    fn mean_of_pair(a: Self, b: Self) -> f32 {
        (a as i32 + b as i32) as f32 * (1.0 / 65536.0)
    }
}

impl Sample for i32 {
    const ALWAYS_IN_RANGE: bool = true;
    #[inline]
    fn to_f32(self) -> f32 {
        (self as f64 * (1.0 / 2_147_483_648.0)) as f32
    }
}

impl Sample for f32 {
    const ALWAYS_IN_RANGE: bool = false;
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Sample for f64 {
    const ALWAYS_IN_RANGE: bool = false;
    #[inline]
    fn to_f32(self) -> f32 {
        // `as` saturates beyond f32's range to ±Inf; keep finite samples finite.
        if self.is_finite() {
            self.clamp(-1e9, 1e9) as f32
        } else {
            self as f32
        }
    }
}

/// Largest magnitude passed on. Float audio may exceed ±1 (headroom), but values far beyond it
/// are a broken source, and near f32::MAX they overflow the resampler's FFT into NaN.
pub const SAMPLE_LIMIT: f32 = 64.0;

/// Appends the channel mean of each interleaved frame to `out`, as YAMNet's reference does.
///
/// Non-finite samples (NaN, ±Inf from a broken source) count as silence and samples beyond
/// ±[`SAMPLE_LIMIT`] are clamped to it: one bad sample must not poison a whole window's
/// spectrum. Returns how many non-finite samples were replaced.
pub fn downmix_into<S: Sample>(interleaved: &[S], channels: usize, out: &mut Vec<f32>) -> usize {
    assert!(channels > 0, "at least one channel");
    #[cfg(target_arch = "x86_64")]
    if super::has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { downmix_avx2(interleaved, channels, out) };
    }
    downmix_portable(interleaved, channels, out)
}

/// The same code built for AVX2: eight frames per instruction instead of four. No `mul_add`
/// is written, so both builds give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn downmix_avx2<S: Sample>(interleaved: &[S], channels: usize, out: &mut Vec<f32>) -> usize {
    downmix_portable(interleaved, channels, out)
}

#[inline(always)]
fn downmix_portable<S: Sample>(interleaved: &[S], channels: usize, out: &mut Vec<f32>) -> usize {
    let start = out.len();
    // Branch-free first pass (it vectorises); NaN, ±Inf and huge values survive a sum (NaN
    // fails every comparison), so one check of the results finds every frame that needs the
    // careful second pass.
    match channels {
        1 => out.extend(interleaved.iter().map(|s| s.to_f32())),
        2 => {
            // Written in place: `extend` over `chunks_exact(2)` stayed scalar for i16 input.
            // Into the spare capacity: zeroing it first took a quarter of the time.
            let frames = interleaved.len() / 2;
            out.reserve(frames);
            let spare = &mut out.spare_capacity_mut()[..frames];
            for (o, f) in spare.iter_mut().zip(interleaved.chunks_exact(2)) {
                o.write(S::mean_of_pair(f[0], f[1]));
            }
            // SAFETY: `spare` and the frames have the same length, so the loop wrote all
            // `frames` values after `start`.
            unsafe { out.set_len(start + frames) };
        }
        n => {
            let scale = 1.0 / n as f32;
            out.extend(
                interleaved
                    .chunks_exact(n)
                    .map(|f| f.iter().map(|s| s.to_f32()).sum::<f32>() * scale),
            )
        }
    }
    if S::ALWAYS_IN_RANGE {
        return 0;
    }
    let in_range = |v: f32| v.abs() <= SAMPLE_LIMIT;
    // Not `all()`: its early exit keeps the check from vectorising (it was half the downmix).
    if out[start..].iter().fold(true, |ok, &v| ok & in_range(v)) {
        return 0;
    }
    let mut replaced = 0;
    for (o, frame) in out[start..]
        .iter_mut()
        .zip(interleaved.chunks_exact(channels))
    {
        if in_range(*o) {
            continue;
        }
        let mut sum = 0.0f32;
        for s in frame {
            let v = s.to_f32();
            if v.is_finite() {
                sum += v.clamp(-SAMPLE_LIMIT, SAMPLE_LIMIT);
            } else {
                replaced += 1;
            }
        }
        *o = sum / channels as f32;
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_integers_map_to_unit_range() {
        let mut out = Vec::new();
        downmix_into(&[i16::MIN, i16::MAX, 0], 1, &mut out);
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 32767.0 / 32768.0).abs() < 1e-7);
        out.clear();
        downmix_into(&[i32::MIN, i32::MAX], 1, &mut out);
        assert_eq!(out[0], -1.0);
        assert!((out[1] - 1.0).abs() < 1e-7);
    }

    #[test]
    fn channels_are_averaged() {
        let mut out = Vec::new();
        downmix_into(&[1.0f32, 0.0, -0.5, 0.5, 0.25, 0.25], 2, &mut out);
        assert_eq!(out, vec![0.5, 0.0, 0.25]);
        out.clear();
        downmix_into(&[0.3f64, 0.6, 0.9], 3, &mut out);
        assert!((out[0] - 0.6).abs() < 1e-7);
    }

    #[test]
    fn non_finite_samples_become_silence() {
        let mut out = Vec::new();
        let replaced = downmix_into(&[f32::NAN, 1.0, f32::INFINITY, 0.5], 2, &mut out);
        assert_eq!(replaced, 2);
        assert_eq!(out, vec![0.5, 0.25]);
    }

    #[test]
    fn huge_finite_samples_are_clamped() {
        let mut out = Vec::new();
        assert_eq!(
            downmix_into(&[f32::MAX, f32::MAX, 1.0, 3.0, -1e30, 0.0], 2, &mut out),
            0
        );
        assert_eq!(out, vec![SAMPLE_LIMIT, 2.0, -SAMPLE_LIMIT / 2.0]);
        out.clear();
        downmix_into(&[f64::MAX], 1, &mut out);
        assert_eq!(out, vec![SAMPLE_LIMIT]);
    }

    /// Uniform over the whole i16 range.
    fn random_i16(n: usize, seed: u64) -> Vec<i16> {
        crate::frontend::tests::noise(n, seed)
            .into_iter()
            .map(|v| (v * 65536.0).clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    #[test]
    fn integer_stereo_means_match_the_float_formula_bit_for_bit() {
        let mut pairs = random_i16(1 << 20, 1);
        pairs.extend([
            i16::MIN,
            i16::MIN,
            i16::MAX,
            i16::MAX,
            i16::MIN,
            i16::MAX,
            -1,
            0,
            1,
            0,
        ]);
        for f in pairs.chunks_exact(2) {
            let float = (f[0].to_f32() + f[1].to_f32()) * 0.5;
            assert_eq!(
                i16::mean_of_pair(f[0], f[1]).to_bits(),
                float.to_bits(),
                "{f:?}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_build_gives_the_same_bits() {
        if !crate::frontend::has_avx2_fma() {
            return;
        }
        let ints = random_i16(6 * 1001, 2);
        let floats: Vec<f32> = ints.iter().map(|&v| v as f32 / 3000.0).collect();
        let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
        for channels in [1, 2, 3] {
            let (mut a, mut b) = (vec![7.0], vec![7.0]);
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            unsafe { downmix_avx2(&ints, channels, &mut a) };
            downmix_portable(&ints, channels, &mut b);
            assert_eq!(bits(a), bits(b));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            // SAFETY: as above.
            let na = unsafe { downmix_avx2(&floats, channels, &mut a) };
            let nb = downmix_portable(&floats, channels, &mut b);
            assert_eq!((na, bits(a)), (nb, bits(b)));
        }
    }

    #[test]
    fn a_trailing_partial_frame_is_ignored() {
        let mut out = Vec::new();
        downmix_into(&[0.5f32, 0.5, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5]);
    }
}
