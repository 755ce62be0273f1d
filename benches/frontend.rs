// SPDX-License-Identifier: MPL-2.0
//! Front-end throughput, single thread: `cargo bench --bench frontend`.
//!
//! Each benchmark processes 10 s of audio, so the real-time factor is 10 s / the reported time
//! (criterion's "thrpt" is in input frames per second). Inputs: a real LibriSpeech recording
//! from ../shared/audio at its native 16 kHz when present, else noise; 48 kHz stereo is a
//! noisy tone mix, since the resampler's cost does not depend on content.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gstaudiotagger::frontend::{Frontend, FrontendConfig, Sample, StreamResampler, downmix};

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

fn run_frontend<S: Sample>(input: &[S], rate: u32, channels: usize) -> usize {
    let mut f = Frontend::new(FrontendConfig::yamnet(), rate, channels).unwrap();
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
