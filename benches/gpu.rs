// SPDX-License-Identifier: MPL-2.0
//! The CUDA provider at scale, on a machine with an NVIDIA GPU, from one run:
//! `ORT_DYLIB_PATH=…/onnxruntime-gpu/…/libonnxruntime.so.* cargo bench --bench gpu`.
//!
//! 1. Parity: CUDA's scores against the CPU's on every window of ../shared/audio/long.
//! 2. Batch sizes: what a fresh session's runs cost when the batch size changes from run to
//!    run (ONNX Runtime's CUDA provider pays for every change), unpadded and padded to 64.
//!    Bare ONNX Runtime on those windows: CUDA at batch 1, 16, 64 and 256, against the CPU with
//!    one thread per core at batch 16, in the same run.
//! 3. End to end: the long recordings as 16 kHz mono and 48 kHz stereo WAVs through
//!    `filesrc ! decodebin ! audioconvert ! audiotagger ! fakesink sync=false`, on CUDA and on
//!    the CPU.
//! 4. Many streams: N pipelines reading the 16 kHz file at once, sharing one CUDA session.
//! 5. N live streams at real-time pace (appsrc, 20 ms buffers), `mode=live
//!    execution-provider=cuda`: CPU use, skipped windows, latency from a window's last sample
//!    to its bus message.
//!
//! Names after `--bench` (parity, bare, e2e, many, live) run only those parts; `cuda-only`
//! leaves out the CPU rows of e2e and many. Without a CUDA-capable ONNX Runtime and GPU it says
//! so and stops. The checkout may be elsewhere than where it was built: CARGO_MANIFEST_DIR (at
//! run time) names the checkout, AUDIOTAGGER_SHARED the folder holding audio/long.

use std::path::{Path, PathBuf};
use std::time::Instant;

use gstaudiotagger::model::{ModelSession, Provider, SessionOptions};

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use support::{ROUNDS, bare_ort, bare_ort_loaded, features_of, files_at_once, median, write_wav};

const LIVE_SECONDS: u64 = 20;

fn main() {
    if !support::benching() {
        return;
    }
    let parts = support::parts();
    let want =
        |part: &str| parts.iter().all(|p| p == "cuda-only") || parts.iter().any(|p| p == part);
    let cuda_only = parts.iter().any(|p| p == "cuda-only");
    common::init();
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let float = root.join("models/yamnet.onnx");
    let int8 = root.join("models/yamnet-int8.onnx");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let cuda = SessionOptions {
        provider: Provider::Cuda,
        ..SessionOptions::default()
    };
    let cpu_all = SessionOptions {
        threads: cores,
        spinning: true,
        ..SessionOptions::default()
    };

    let mut probe = ModelSession::load(&float, &cuda).unwrap();
    if probe.provider() != Provider::Cuda {
        println!(
            "no CUDA here, nothing to measure: {}",
            probe.fallback().unwrap_or("")
        );
        return;
    }
    println!("{}", gpu_name());
    println!("CPU: {cores} cores");

    let long = common::long_recordings(16000);
    let seconds = long.len() as f64 / 16000.0;
    let features = features_of(&long);
    let windows = features.len();
    println!("audio: ../shared/audio/long concatenated, {seconds:.0} s, {windows} windows");

    if want("parity") {
        parity(&float, &cpu_all, &mut probe, &features);
    }
    if want("bare") {
        bare(&float, &int8, &cuda, &cpu_all, &features);
    }
    if want("e2e") || want("many") {
        let dir = root.join("target/bench-gpu");
        std::fs::create_dir_all(&dir).unwrap();
        let mono16 = dir.join("long-16k-mono.wav");
        write_wav(&mono16, &long, 16000, 1);
        if want("e2e") {
            let stereo48 = dir.join("long-48k-stereo.wav");
            support::write_long_48k_stereo(&stereo48);
            end_to_end(
                &[&mono16, &stereo48],
                &float,
                &int8,
                &cuda,
                &features,
                seconds,
                cuda_only,
            );
        }
        if want("many") {
            many(&mono16, &float, windows, seconds, cuda_only);
        }
    }
    if want("live") {
        live(&float, &long);
    }
}

fn parity(float: &Path, cpu_all: &SessionOptions, probe: &mut ModelSession, features: &[Vec<f32>]) {
    let windows = features.len();
    println!("\n== Parity: CUDA against the CPU, float model, every window");
    let mut cpu_session = ModelSession::load(float, cpu_all).unwrap();
    let (mut max_diff, mut same_top1) = (0f32, 0usize);
    for chunk in features.chunks(64) {
        let flat = chunk.concat();
        let a = cpu_session.run(&flat, chunk.len(), false).unwrap().scores;
        let b = probe.run(&flat, chunk.len(), false).unwrap().scores;
        let classes = a.len() / chunk.len();
        for (ra, rb) in a.chunks(classes).zip(b.chunks(classes)) {
            for (x, y) in ra.iter().zip(rb) {
                max_diff = max_diff.max((x - y).abs());
            }
            same_top1 += usize::from(argmax(ra) == argmax(rb));
        }
    }
    println!(
        "max |CUDA − CPU| score {max_diff:.2e}; same top-1 class on {same_top1}/{windows} windows"
    );
}

fn bare(
    float: &Path,
    int8: &Path,
    cuda: &SessionOptions,
    cpu_all: &SessionOptions,
    features: &[Vec<f32>],
) {
    let windows = features.len();
    println!(
        "\n== Batch sizes: a fresh session run at the sizes listed, round and round; ms per run"
    );
    println!(
        "{:<34} {:>14} {:>16}",
        "sizes", "first round", "later rounds"
    );
    let all: Vec<usize> = (1..=64).collect();
    for sizes in [&[64][..], &[1, 64], &[1, 8, 64], &[1, 4, 16, 64], &all] {
        let mut fresh = ModelSession::load(float, cuda).unwrap();
        let mut round = || {
            let started = Instant::now();
            for &batch in sizes {
                fresh
                    .run_exact(&features[..batch].concat(), batch, false)
                    .unwrap();
            }
            started.elapsed().as_secs_f64() * 1000.0 / sizes.len() as f64
        };
        let first = round();
        // Every size of 1..=64 again costs as much as the first time: one more round says so.
        let later = if sizes.len() > 8 { 1 } else { 5 };
        let rest: Vec<f64> = (0..later).map(|_| round()).collect();
        let label = if sizes.len() > 8 {
            "1, 2, …, 64".to_string()
        } else {
            format!("{sizes:?}")
        };
        println!(
            "{label:<34} {first:>14.1} {:>16.2}",
            rest.iter().sum::<f64>() / rest.len() as f64
        );
    }
    let mut fresh = ModelSession::load(float, cuda).unwrap();
    let mut pass = || {
        let started = Instant::now();
        for batch in 1..=64 {
            fresh
                .run(&features[..batch].concat(), batch, false)
                .unwrap();
        }
        started.elapsed().as_secs_f64() * 1000.0 / 64.0
    };
    let (first, second) = (pass(), pass());
    println!(
        "{:<34} {first:>14.1} {second:>16.2}",
        "1, 2, …, 64 padded to 64"
    );

    println!("\n== Bare ONNX Runtime on the {windows} windows, medians of {ROUNDS}");
    println!("{:<40} {:>12}", "configuration", "windows/s");
    let rows: [(&str, &Path, &SessionOptions, usize); 7] = [
        ("CPU float, all cores, batch 16", float, cpu_all, 16),
        ("CPU int8, all cores, batch 16", int8, cpu_all, 16),
        ("CUDA float, batch 1", float, cuda, 1),
        ("CUDA float, batch 16", float, cuda, 16),
        ("CUDA float, batch 64", float, cuda, 64),
        ("CUDA float, batch 256", float, cuda, 256),
        ("CUDA int8, batch 64", int8, cuda, 64),
    ];
    for (label, model, options, batch) in rows {
        let mut session = ModelSession::load(model, options).unwrap();
        let rates: Vec<f64> = (0..ROUNDS)
            .map(|_| bare_ort(&mut session, batch, features))
            .collect();
        println!("{label:<40} {:>12.0}", median(&rates));
    }
}

fn end_to_end(
    inputs: &[&Path; 2],
    float: &Path,
    int8: &Path,
    cuda: &SessionOptions,
    features: &[Vec<f32>],
    seconds: f64,
    cuda_only: bool,
) {
    let windows = features.len();
    println!(
        "\n== End to end (filesrc ! decodebin ! audioconvert ! audiotagger ! fakesink \
         sync=false), medians of {ROUNDS}; bare CUDA float at batch 64 run before each"
    );
    println!(
        "{:<58} {:>10} {:>10} {:>10}",
        "configuration", "bare ORT", "windows/s", "× realtime"
    );
    for (input, label) in inputs.iter().zip(["16k mono", "48k stereo"]) {
        for (name, model, properties) in [
            ("float", float, "execution-provider=cuda mode=queued"),
            ("float", float, "execution-provider=cuda mode=blocking"),
            ("int8", int8, "execution-provider=cuda mode=queued"),
            ("float", float, "mode=queued sessions=4 threads=4"),
            ("int8", int8, "mode=queued sessions=4 threads=4"),
        ]
        .into_iter()
        .filter(|row| !cuda_only || row.2.contains("cuda"))
        {
            let (mut bare, mut rates) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                bare.push(bare_ort_loaded(float, cuda, 64, features));
                let (count, wall) = files_at_once(input, Some(model), properties, 1);
                assert!(count >= windows, "{count} windows, expected {windows}");
                rates.push(count as f64 / wall);
            }
            let rate = median(&rates);
            println!(
                "{:<58} {:>10.0} {rate:>10.0} {:>10.0}",
                format!("{label}, {name}, {properties}"),
                median(&bare),
                rate * seconds / windows as f64
            );
        }
    }
}

fn many(mono16: &Path, float: &Path, windows: usize, seconds: f64, cuda_only: bool) {
    println!(
        "\n== Many streams: N pipelines reading the 16 kHz mono file at once, one shared session"
    );
    println!(
        "{:<50} {:>8} {:>12} {:>12}",
        "configuration", "streams", "windows/s", "× realtime"
    );
    for (properties, counts) in [
        (
            "execution-provider=cuda mode=queued",
            &[1usize, 8, 32, 128][..],
        ),
        ("mode=queued sessions=4 threads=4", &[8, 32][..]),
    ]
    .into_iter()
    .filter(|row| !cuda_only || row.0.contains("cuda"))
    {
        for &n in counts {
            let (count, wall) = files_at_once(mono16, Some(float), properties, n);
            assert!(count >= n * windows, "{count} windows from {n} streams");
            let rate = count as f64 / wall;
            println!(
                "{properties:<50} {n:>8} {rate:>12.0} {:>12.0}",
                rate * seconds / windows as f64
            );
        }
    }
}

fn live(float: &Path, long: &[f32]) {
    println!(
        "\n== Live streams: appsrc at real time (20 ms buffers, {LIVE_SECONDS} s) ! audiotagger \
         mode=live execution-provider=cuda ! fakesink, float model"
    );
    support::live_table(float, "execution-provider=cuda", LIVE_SECONDS, long);
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// The GPU as nvidia-smi names it, when it is there to ask.
fn gpu_name() -> String {
    std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .output()
        .ok()
        .map(|o| format!("GPU: {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "GPU: (nvidia-smi not found)".into())
}
