// SPDX-License-Identifier: MPL-2.0

use super::*;

/// Uniform in [-0.5, 0.5).
pub(super) fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

fn run(
    config: FrontendConfig,
    rate: u32,
    channels: usize,
    input: &[f32],
    block: usize,
) -> Vec<Window> {
    let mut f = Frontend::new(config, rate, channels).unwrap();
    let mut out = Vec::new();
    for chunk in input.chunks(block * channels) {
        f.push(chunk, &mut out);
    }
    f.finish(&mut out);
    out
}

#[test]
fn windows_start_at_zero_and_step_by_the_hop() {
    let x = noise(16000 * 3, 1);
    let w = run(FrontendConfig::yamnet(), 16000, 1, &x, 1000);
    // Full windows at 0, 7680, …, 30720 (ends 46320 <= 48000); then 38400 is partial.
    assert_eq!(
        w.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![0, 7680, 15360, 23040, 30720, 38400]
    );
    assert!(
        w[..5]
            .iter()
            .all(|w| w.valid_samples == 15600 && w.features.len() == 96 * 64)
    );
    assert_eq!(w[5].valid_samples, 48000 - 38400);
    assert_eq!(
        w.iter().map(|w| w.index).collect::<Vec<_>>(),
        (0..6).collect::<Vec<_>>()
    );
}

#[test]
fn overlapping_windows_share_frames_bit_for_bit() {
    let x = noise(16000 * 2, 2);
    let w = run(FrontendConfig::yamnet(), 16000, 1, &x, 333);
    // Window 1 starts 48 frames into window 0: its first half is window 0's second half.
    assert_eq!(w[0].features[48 * 64..], w[1].features[..48 * 64]);
}

#[test]
fn the_result_does_not_depend_on_buffer_sizes() {
    let x = noise(44100 * 2 * 3, 3);
    let a = run(FrontendConfig::yamnet(), 44100, 2, &x, 1);
    let b = run(FrontendConfig::yamnet(), 44100, 2, &x, 4410);
    let c = run(FrontendConfig::yamnet(), 44100, 2, &x, 1 << 20);
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[test]
fn a_clip_shorter_than_a_window_still_gives_one_padded_window() {
    let x = noise(8000, 4); // 0.5 s
    let w = run(FrontendConfig::yamnet(), 16000, 1, &x, 8000);
    assert_eq!(w.len(), 1);
    assert_eq!((w[0].start, w[0].valid_samples), (0, 8000));
    // The padded part is silence: the last frames equal ln(0.001).
    let last = &w[0].features[95 * 64..];
    assert!(last.iter().all(|&v| (v - 0.001f32.ln()).abs() < 1e-6));
}

#[test]
fn an_exact_number_of_windows_needs_no_padding() {
    let x = noise(15600 + 7680, 5);
    let w = run(FrontendConfig::yamnet(), 16000, 1, &x, 500);
    assert_eq!(w.len(), 2);
    assert!(w.iter().all(|w| w.valid_samples == 15600));
}

#[test]
fn empty_stream_gives_nothing() {
    assert!(run(FrontendConfig::yamnet(), 48000, 2, &[], 10).is_empty());
}

#[test]
fn buffered_samples_stay_bounded_on_a_long_stream() {
    // Log-mel and waveform, a hop shorter and one longer than the window, 20 ms buffers.
    let x = noise(16000 * 60, 8);
    for config in [
        FrontendConfig::yamnet(),
        FrontendConfig::yamnet().with_hop_samples(32000),
        FrontendConfig {
            input: InputKind::Waveform,
            ..FrontendConfig::yamnet()
        },
    ] {
        let bound = 2 * (config.window_samples.max(config.hop_samples) + 320);
        let mut f = Frontend::new(config, 16000, 1).unwrap();
        let (mut out, mut largest) = (Vec::new(), 0);
        for chunk in x.chunks(320) {
            f.push(chunk, &mut out);
            largest = largest.max(f.samples.len());
        }
        assert!(
            largest <= bound,
            "{largest} samples buffered, bound {bound}"
        );
        assert!(out.len() >= 29, "{} windows", out.len());
    }
}

#[test]
fn hop_longer_than_the_window_skips_audio_in_between() {
    let cfg = FrontendConfig::yamnet().with_hop_samples(32000);
    assert_eq!(cfg.hop_samples, 32000);
    let x = noise(16000 * 5, 6);
    let w = run(cfg.clone(), 16000, 1, &x, 700);
    assert_eq!(
        w.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![0, 32000, 64000]
    );
    // Same features as a window cut directly at that position.
    let direct = run(
        FrontendConfig::yamnet(),
        16000,
        1,
        &x[64000..64000 + 15600],
        15600,
    );
    assert_eq!(w[2].features, direct[0].features);
}

#[test]
fn hop_is_rounded_to_whole_frames() {
    assert_eq!(
        FrontendConfig::yamnet().with_hop_samples(8000).hop_samples,
        8000
    );
    assert_eq!(
        FrontendConfig::yamnet().with_hop_samples(8079).hop_samples,
        8000
    );
    assert_eq!(
        FrontendConfig::yamnet().with_hop_samples(8081).hop_samples,
        8160
    );
    assert_eq!(
        FrontendConfig::yamnet().with_hop_samples(1).hop_samples,
        160
    );
}

#[test]
fn waveform_models_get_the_samples() {
    let cfg = FrontendConfig {
        sample_rate: 16000,
        window_samples: 16000,
        hop_samples: 8000,
        input: InputKind::Waveform,
    };
    let x = noise(40000, 7);
    let w = run(cfg, 16000, 1, &x, 999);
    assert_eq!(
        w.iter().map(|w| w.start).collect::<Vec<_>>(),
        vec![0, 8000, 16000, 24000]
    );
    assert_eq!(w[1].features, x[8000..24000]);
    assert_eq!(w[3].valid_samples, 16000);
    assert_eq!(&w[3].features[..16000], &x[24000..40000]);
}

#[test]
fn stereo_is_the_mean_of_its_channels() {
    let mono = noise(20000, 8);
    let stereo: Vec<f32> = mono.iter().flat_map(|&s| [s, s]).collect();
    assert_eq!(
        run(FrontendConfig::yamnet(), 16000, 2, &stereo, 512),
        run(FrontendConfig::yamnet(), 16000, 1, &mono, 512)
    );
}

#[test]
fn windows_of_resampled_input_line_up_with_time() {
    // A click at 1.5 s in 48 kHz stereo lands in the frames at 1.5 s of the 16 kHz stream.
    let mut x = vec![0.0f32; 48000 * 3 * 2];
    x[48000 * 3 / 2 * 2] = 1.0;
    x[48000 * 3 / 2 * 2 + 1] = 1.0;
    let w = run(FrontendConfig::yamnet(), 48000, 2, &x, 1024);
    // Window 2 starts at 15360 samples (0.96 s); 1.5 s is frame (24000-15360)/160 = 54 of it.
    // The click falls in frames whose 400 samples contain it: frames 52..=54.
    let energy = |f: usize| w[2].features[f * 64..(f + 1) * 64].iter().sum::<f32>();
    let loudest = (0..96)
        .max_by(|&a, &b| energy(a).total_cmp(&energy(b)))
        .unwrap();
    assert!((52..=54).contains(&loudest), "loudest frame {loudest}");
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = FrontendConfig::yamnet();
    c.window_samples = 15601;
    assert!(c.validate().is_err());
    let mut c = FrontendConfig::yamnet();
    c.hop_samples = 7681;
    assert!(c.validate().is_err());
    assert!(Frontend::new(FrontendConfig::yamnet(), 0, 1).is_err());
    assert!(Frontend::new(FrontendConfig::yamnet(), 16000, 0).is_err());
}

#[test]
fn input_rates_above_the_bound_are_refused_naming_the_fix() {
    let too_high = super::MAX_INPUT_RATE + 1;
    let err = Frontend::new(FrontendConfig::yamnet(), too_high, 1)
        .err()
        .expect("a rate above the bound is refused");
    assert!(
        err.contains(&too_high.to_string()) && err.contains("audioresample"),
        "{err}"
    );
    assert!(Frontend::new(FrontendConfig::yamnet(), super::MAX_INPUT_RATE, 2).is_ok());
}

#[test]
fn nan_input_is_counted_and_silenced() {
    let mut f = Frontend::new(FrontendConfig::yamnet(), 16000, 1).unwrap();
    let mut x = noise(16000, 9);
    x[100] = f32::NAN;
    x[200] = f32::NEG_INFINITY;
    let mut out = Vec::new();
    f.push(&x, &mut out);
    f.finish(&mut out);
    assert_eq!(f.non_finite_samples(), 2);
    assert!(out.iter().all(|w| w.features.iter().all(|v| v.is_finite())));
}

#[test]
fn random_float_bit_patterns_never_break_the_pipeline() {
    // Every f32 bit pattern a broken source could send: NaN, ±Inf, denormals, ±f32::MAX.
    let mut x = 0x9e37_79b9_u32;
    let samples: Vec<f32> = (0..48000 * 2 * 3)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from_bits(x)
        })
        .collect();
    let w = run(FrontendConfig::yamnet(), 48000, 2, &samples, 4096);
    assert!(!w.is_empty());
    assert!(w.iter().all(|w| w.features.iter().all(|v| v.is_finite())));
}

#[test]
fn the_history_keeps_the_newest_samples_and_no_more_than_twice_that() {
    // 16 kHz in, so model-rate sample i is input sample i.
    let x = noise(16000 * 30, 11);
    let keep = 16000 * 5;
    let mut f = Frontend::new(FrontendConfig::yamnet(), 16000, 1).unwrap();
    f.keep_history(keep);
    let (mut out, mut largest) = (Vec::new(), 0);
    for (k, chunk) in x.chunks(320).enumerate() {
        f.push(chunk, &mut out);
        largest = largest.max(f.samples.len());
        let received = (k + 1) * 320;
        if received >= keep {
            let mut got = Vec::new();
            f.recent((received - keep) as u64, keep, &mut got);
            assert_eq!(
                got,
                x[received - keep..received],
                "after {received} samples"
            );
        }
    }
    assert!(
        largest <= 2 * (keep + 320),
        "{largest} samples kept for {keep}"
    );
    // Beyond what arrived, and before what is kept: silence.
    let mut got = Vec::new();
    f.recent(x.len() as u64 - 10, 20, &mut got);
    assert_eq!(got[..10], x[x.len() - 10..]);
    assert!(got[10..].iter().all(|&v| v == 0.0));
    got.clear();
    f.recent(0, 5, &mut got);
    assert_eq!(got, [0.0; 5]);
}
