// SPDX-License-Identifier: MPL-2.0
//! Front-end throughput, single thread: `cargo bench --bench frontend`.
//!
//! Each benchmark processes 10 s of audio, so the real-time factor is 10 s / the reported time
//! (criterion's "thrpt" is in input frames per second). Inputs: a real LibriSpeech recording
//! from ../shared/audio at its native 16 kHz when present, else noise; 48 kHz stereo is a
//! noisy tone mix, since the resampler's cost does not depend on content. The 32 kHz front-ends
//! (EfficientAT's, PANNs') hear the same speech read as 32 kHz, 10 s of it: their cost does not
//! depend on content either.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gstaudiotagger::frontend::mel::{BandNorm, LogKind, MelScale, WindowKind};
use gstaudiotagger::frontend::{
    Frontend, FrontendConfig, InputKind, MelParams, Sample, StreamResampler, downmix,
};

const SECONDS: usize = 10;

fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let t = i as f32 / 48000.0;
            0.3 * (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

fn speech_16k() -> Vec<f32> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio/speech__librispeech__1.wav");
    let real: Vec<f32> = hound::WavReader::open(path)
        .map(|r| {
            r.into_samples::<i16>()
                .map(|s| s.unwrap() as f32 / 32768.0)
                .collect()
        })
        .unwrap_or_default();
    if real.is_empty() {
        return noise(16000 * SECONDS, 1);
    }
    real.iter().copied().cycle().take(16000 * SECONDS).collect()
}

/// 1 s windows every 0.5 s at 32 kHz with the given log-mel.
fn config_32k(mel: MelParams) -> FrontendConfig {
    FrontendConfig {
        sample_rate: 32000,
        window_samples: 32000,
        hop_samples: 16000,
        input: InputKind::LogMel(mel),
    }
}

/// PANNs' CNN14 front-end (librosa: periodic Hann 1024, power, Slaney mel 64 bands 50-14000 Hz
/// with Slaney norm, `power_to_db`).
fn panns() -> MelParams {
    MelParams {
        window: WindowKind::HannPeriodic,
        frame_length: 1024,
        spectrum: gstaudiotagger::frontend::mel::Spectrum::Power,
        scale: MelScale::Slaney,
        norm: BandNorm::Slaney,
        bands: 64,
        fmin: 50.0,
        fmax: 14000.0,
        log: LogKind::Db,
        log_offset: 0.0,
        log_floor: 1e-10,
        preemphasis: 0.0,
        mean: 0.0,
        std: 1.0,
        layout: "frames,bands".parse().unwrap(),
        ..MelParams::efficientat()
    }
}

fn run_frontend<S: Sample>(input: &[S], rate: u32, channels: usize) -> usize {
    run_config(FrontendConfig::yamnet(), input, rate, channels)
}

fn run_config<S: Sample>(config: FrontendConfig, input: &[S], rate: u32, channels: usize) -> usize {
    let mut f = Frontend::new(config, rate, channels).unwrap();
    let mut out = Vec::new();
    for chunk in input.chunks(1024 * channels) {
        f.push(chunk, &mut out);
    }
    f.finish(&mut out);
    out.len()
}

fn benches(c: &mut Criterion) {
    let speech = speech_16k();
    let stereo_48k = noise(48000 * 2 * SECONDS, 2);
    let stereo_44k1 = noise(44100 * 2 * SECONDS, 3);
    // What a WAV file or a broadcast chain delivers.
    let stereo_48k_s16: Vec<i16> = stereo_48k.iter().map(|&v| (v * 32767.0) as i16).collect();

    let mut g = c.benchmark_group("frontend_10s");
    g.sample_size(20);
    g.throughput(Throughput::Elements((16000 * SECONDS) as u64));
    g.bench_function("log_mel_16k_mono", |b| {
        b.iter(|| black_box(run_frontend(&speech, 16000, 1)))
    });
    let speech_32k: Vec<f32> = speech.iter().chain(&speech).copied().collect();
    g.throughput(Throughput::Elements((32000 * SECONDS) as u64));
    g.bench_function("log_mel_efficientat_32k_mono", |b| {
        let config = config_32k(MelParams::efficientat());
        b.iter(|| black_box(run_config(config.clone(), &speech_32k, 32000, 1)))
    });
    g.bench_function("log_mel_panns_32k_mono", |b| {
        let config = config_32k(panns());
        b.iter(|| black_box(run_config(config.clone(), &speech_32k, 32000, 1)))
    });
    g.throughput(Throughput::Elements((48000 * SECONDS) as u64));
    g.bench_function("resample_48k_stereo", |b| {
        b.iter(|| {
            let mut r = StreamResampler::new(48000, 16000).unwrap();
            let (mut mono, mut out) = (Vec::new(), Vec::new());
            for chunk in stereo_48k.chunks(2048) {
                mono.clear();
                downmix::downmix_into(chunk, 2, &mut mono);
                r.process(&mono, &mut out);
            }
            r.flush(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("downmix_48k_stereo_s16", |b| {
        let mut mono = Vec::with_capacity(1024);
        b.iter(|| {
            for chunk in stereo_48k_s16.chunks(2048) {
                mono.clear();
                downmix::downmix_into(chunk, 2, &mut mono);
            }
            black_box(mono.len())
        })
    });
    g.bench_function("whole_48k_stereo", |b| {
        b.iter(|| black_box(run_frontend(&stereo_48k, 48000, 2)))
    });
    g.bench_function("whole_48k_stereo_s16", |b| {
        b.iter(|| black_box(run_frontend(&stereo_48k_s16, 48000, 2)))
    });
    g.throughput(Throughput::Elements((44100 * SECONDS) as u64));
    g.bench_function("whole_44k1_stereo", |b| {
        b.iter(|| black_box(run_frontend(&stereo_44k1, 44100, 2)))
    });
    g.finish();
}

criterion_group!(frontend, benches);
criterion_main!(frontend);
