// SPDX-License-Identifier: MPL-2.0
//! Any rate, channel count, hop, chunking and sample bytes through the front-end: no panic,
//! finite features, windows in order at their hop, and the sample count the rates promise.
#![no_main]

use gstaudiotagger::frontend::{Frontend, FrontendConfig, InputKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let rate = 1000 + u32::from(u16::from_le_bytes([data[0], data[1]])) * 3; // 1-197.6 kHz
    let channels = 1 + usize::from(data[2] % 8);
    let hop = 160 * (1 + usize::from(data[3] % 200));
    let chunk = 1 + usize::from(u16::from_le_bytes([data[4], data[5]]) % 4096);
    let waveform = data[6] & 1 == 1;
    let mut config = FrontendConfig::yamnet().with_hop_samples(hop);
    if waveform {
        config.input = InputKind::Waveform;
    }
    let payload: Vec<f32> = data[8..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    // Inputs stay short, but a stream needs 15600 samples per window: the payload is repeated to
    // up to 2 s at 16 kHz, so one input crosses many windows and hops.
    let frames = usize::from(data[7]) * 128 + 1;
    let samples: Vec<f32> = if payload.is_empty() {
        vec![0.0; frames * channels]
    } else {
        payload
            .iter()
            .copied()
            .cycle()
            .take(frames * channels)
            .collect()
    };
    let mut frontend = Frontend::new(config.clone(), rate, channels).unwrap();
    let mut windows = Vec::new();
    for c in samples.chunks(chunk * channels) {
        frontend.push(c, &mut windows);
    }
    frontend.finish(&mut windows);
    let frames = (samples.len() / channels) as u64;
    let expected = if rate == 16000 {
        frames
    } else {
        frames * 16000 / u64::from(rate)
    };
    assert_eq!(
        frontend.samples_total() - padding(&windows, &config),
        expected
    );
    for (i, w) in windows.iter().enumerate() {
        assert_eq!(w.index, i as u64);
        assert_eq!(w.start, i as u64 * config.hop_samples as u64);
        assert!(w.features.iter().all(|v| v.is_finite()), "window {i}");
        assert_eq!(
            w.features.len(),
            config.feature_shape().iter().product::<usize>()
        );
    }
});

/// Zeros the front-end appended to pad the last window.
fn padding(windows: &[gstaudiotagger::frontend::Window], config: &FrontendConfig) -> u64 {
    windows
        .last()
        .filter(|w| w.valid_samples < config.window_samples)
        .map_or(0, |w| (config.window_samples - w.valid_samples) as u64)
}
