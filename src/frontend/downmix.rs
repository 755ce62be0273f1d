// SPDX-License-Identifier: MPL-2.0

//! Interleaved samples of any supported format to one mono float channel.

/// A sample format the element accepts, with its conversion to [-1, 1].
pub trait Sample: Copy {
    fn to_f32(self) -> f32;
}

impl Sample for i16 {
    #[inline]
    fn to_f32(self) -> f32 {
        self as f32 * (1.0 / 32768.0)
    }
}

impl Sample for i32 {
    #[inline]
    fn to_f32(self) -> f32 {
        (self as f64 * (1.0 / 2_147_483_648.0)) as f32
    }
}

impl Sample for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

impl Sample for f64 {
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
    let start = out.len();
    // Branch-free first pass (it vectorises); NaN, ±Inf and huge values survive a sum (NaN
    // fails every comparison), so one check of the results finds every frame that needs the
    // careful second pass.
    match channels {
        1 => out.extend(interleaved.iter().map(|s| s.to_f32())),
        2 => {
            // Written in place: `extend` over `chunks_exact(2)` stayed scalar for i16 input.
            out.resize(start + interleaved.len() / 2, 0.0);
            for (o, f) in out[start..].iter_mut().zip(interleaved.chunks_exact(2)) {
                *o = (f[0].to_f32() + f[1].to_f32()) * 0.5;
            }
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

    #[test]
    fn a_trailing_partial_frame_is_ignored() {
        let mut out = Vec::new();
        downmix_into(&[0.5f32, 0.5, 1.0], 2, &mut out);
        assert_eq!(out, vec![0.5]);
    }
}
