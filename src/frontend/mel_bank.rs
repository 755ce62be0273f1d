// SPDX-License-Identifier: MPL-2.0

//! Mel filterbanks as the reference implementations build them, computed in f64: which bins
//! exist, where the band edges fall and in which domain the triangles are straight decide a
//! model's features as much as the band count does.

use super::mel::{BandNorm, MelParams, MelScale};

fn htk_hz_to_mel(f: f64) -> f64 {
    1127.0 * (f / 700.0).ln_1p()
}

fn htk_mel_to_hz(m: f64) -> f64 {
    700.0 * (m / 1127.0).exp_m1()
}

/// Slaney's Auditory Toolbox scale as librosa computes it: linear below 1 kHz, logarithmic above.
const SLANEY_HZ_PER_MEL: f64 = 200.0 / 3.0;
const SLANEY_BREAK_HZ: f64 = 1000.0;
const SLANEY_BREAK_MEL: f64 = SLANEY_BREAK_HZ / SLANEY_HZ_PER_MEL;

fn slaney_log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn slaney_hz_to_mel(f: f64) -> f64 {
    if f >= SLANEY_BREAK_HZ {
        SLANEY_BREAK_MEL + (f / SLANEY_BREAK_HZ).ln() / slaney_log_step()
    } else {
        f / SLANEY_HZ_PER_MEL
    }
}

fn slaney_mel_to_hz(m: f64) -> f64 {
    if m >= SLANEY_BREAK_MEL {
        SLANEY_BREAK_HZ * (slaney_log_step() * (m - SLANEY_BREAK_MEL)).exp()
    } else {
        m * SLANEY_HZ_PER_MEL
    }
}

/// The dense [bands × bins] weights, bins `0..=fft_length/2`.
///
/// - `htk`: `tf.signal.linear_to_mel_weight_matrix`: bins at `linspace(0, sr/2, fft/2+1)`,
///   triangles straight in HTK mel, the DC bin zeroed.
/// - `kaldi`: `torchaudio.compliance.kaldi.get_mel_banks`: the same triangles over bins
///   `k·sr/fft` for k below fft/2; the Nyquist bin has no weight (EfficientAT pads it with 0).
/// - `htk_hz`: `torchaudio.functional.melscale_fbanks` (and librosa's `htk=True`): HTK mel
///   edges, triangles straight in Hz over bins at `linspace(0, sr/2, fft/2+1)`.
/// - `slaney`: `librosa.filters.mel(htk=False)`: Slaney mel edges, triangles straight in Hz.
///
/// `norm = slaney` divides each band by half its width in Hz (librosa's area normalisation).
pub fn weights(p: &MelParams) -> Vec<Vec<f64>> {
    let bins = p.fft_length / 2 + 1;
    let bin_hz = |k: usize| p.sample_rate as f64 * k as f64 / p.fft_length as f64;
    type Scale = fn(f64) -> f64;
    let (to_mel, to_hz): (Scale, Scale) = match p.scale {
        MelScale::Htk | MelScale::HtkHz | MelScale::Kaldi => (htk_hz_to_mel, htk_mel_to_hz),
        MelScale::Slaney => (slaney_hz_to_mel, slaney_mel_to_hz),
    };
    let (lo, hi) = (to_mel(p.fmin), to_mel(p.fmax));
    let edge_mel = |i: usize| lo + (hi - lo) * i as f64 / (p.bands + 1) as f64;
    let edge_hz: Vec<f64> = (0..p.bands + 2).map(|i| to_hz(edge_mel(i))).collect();
    let triangle =
        |x: f64, l: f64, c: f64, u: f64| ((x - l) / (c - l)).min((u - x) / (u - c)).max(0.0);
    // Each bin's position on the axis its triangles are straight on; None for a bin the
    // reference leaves out.
    let position: Vec<Option<f64>> = (0..bins)
        .map(|k| match p.scale {
            MelScale::Htk if k == 0 => None,
            MelScale::Htk => Some(htk_hz_to_mel(
                p.sample_rate as f64 / 2.0 * k as f64 / (bins - 1) as f64,
            )),
            MelScale::Kaldi if k == bins - 1 => None,
            MelScale::Kaldi => Some(htk_hz_to_mel(bin_hz(k))),
            MelScale::HtkHz | MelScale::Slaney => Some(bin_hz(k)),
        })
        .collect();
    let edges: Vec<f64> = match p.scale {
        MelScale::Htk | MelScale::Kaldi => (0..p.bands + 2).map(edge_mel).collect(),
        MelScale::HtkHz | MelScale::Slaney => edge_hz.clone(),
    };
    (0..p.bands)
        .map(|b| {
            let (l, c, u) = (edges[b], edges[b + 1], edges[b + 2]);
            let mut row: Vec<f64> = position
                .iter()
                .map(|x| x.map_or(0.0, |x| triangle(x, l, c, u)))
                .collect();
            if p.norm == BandNorm::Slaney {
                let scale = 2.0 / (edge_hz[b + 2] - edge_hz[b]);
                row.iter_mut().for_each(|w| *w *= scale);
            }
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_invert() {
        for f in [0.0, 50.0, 999.0, 1000.0, 1001.0, 7500.0, 15000.0] {
            assert!((htk_mel_to_hz(htk_hz_to_mel(f)) - f).abs() < 1e-9);
            assert!((slaney_mel_to_hz(slaney_hz_to_mel(f)) - f).abs() < 1e-9);
        }
        // Slaney's scale is 15 mel at its 1 kHz break and continuous there.
        assert!((slaney_hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((slaney_hz_to_mel(999.999_999) - 15.0).abs() < 1e-6);
    }

    #[test]
    fn kaldi_drops_only_the_nyquist_bin_of_the_htk_bank() {
        let htk = MelParams {
            sample_rate: 32000,
            fft_length: 1024,
            bands: 128,
            fmin: 0.0,
            fmax: 16000.0,
            ..MelParams::yamnet()
        };
        let kaldi = MelParams {
            scale: MelScale::Kaldi,
            ..htk.clone()
        };
        let (a, b) = (weights(&htk), weights(&kaldi));
        for (ra, rb) in a.iter().zip(&b) {
            for k in 0..512 {
                assert!((ra[k] - rb[k]).abs() < 1e-12, "bin {k}");
            }
            assert_eq!(rb[512], 0.0);
        }
    }

    #[test]
    fn slaney_norm_gives_every_band_the_same_area_in_hz() {
        let p = MelParams {
            sample_rate: 32000,
            fft_length: 8192,
            bands: 64,
            fmin: 50.0,
            fmax: 14000.0,
            scale: MelScale::Slaney,
            norm: BandNorm::Slaney,
            ..MelParams::yamnet()
        };
        let hz_per_bin = 32000.0 / 8192.0;
        for row in weights(&p) {
            let area: f64 = row.iter().sum::<f64>() * hz_per_bin;
            assert!((area - 1.0).abs() < 0.05, "area {area}");
        }
    }
}
