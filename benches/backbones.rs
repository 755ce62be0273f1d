// SPDX-License-Identifier: MPL-2.0
//! Backbones compared, in one run: `cargo bench --bench backbones`.
//!
//! YAMNet (its own 0.975 s windows every 0.48 s), EfficientAT mn04 and CED-Tiny with 1, 2 and
//! 3 s windows every 0.5 s, each through its own descriptor and front-end:
//!
//! - clip hit@3 on the 80 clips of ../shared/audio: the mean of a clip's window probabilities,
//!   a hit when one of the manifest's expected classes is among the top three (no level gate:
//!   `tests/pipeline.rs` gates quiet windows, so its YAMNet figure differs a little);
//! - time per second of audio: the element (`filesrc ! decodebin ! audioconvert ! audiotagger
//!   model=… ! fakesink sync=false`, no other property, 2 min of ../shared/audio/long as a 16 kHz
//!   mono WAV, median of three rounds) against bare ONNX Runtime on the same windows' features
//!   right before it (batch 16, two threads, the element's thread count on this machine).
//!
//! The window lengths reach the element as a sidecar descriptor (`<model>.json`) beside a copy
//! of the model, as a user would set them. The event figures for the same backbones come from
//! `EVENTS_BACKBONES=1 cargo bench --bench events`.

use std::path::{Path, PathBuf};

use gstaudiotagger::frontend::Frontend;
use gstaudiotagger::model::{ModelSession, SessionOptions};

#[path = "support/backbone_list.rs"]
mod backbone_list;
#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use backbone_list::BACKBONES;
use support::{ROUNDS, bare_ort, files_at_once, median, write_wav};

const HOP_S: f64 = 0.5;
const TIMED_SECONDS: usize = 120;

/// A copy of `model` in `dir` with a sidecar descriptor giving it `window_s` windows every
/// [`HOP_S`], or `model` itself for `None`; and the session options that give the same.
fn configured(model: &Path, window_s: Option<f64>, dir: &Path) -> (PathBuf, SessionOptions) {
    let Some(window_s) = window_s else {
        return (model.to_path_buf(), SessionOptions::default());
    };
    let rate = ModelSession::load(model, &SessionOptions::default())
        .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"))
        .descriptor()
        .frontend
        .sample_rate as f64;
    let (window, hop) = (
        (window_s * rate).round() as usize,
        (HOP_S * rate).round() as usize,
    );
    let stem = model.file_stem().unwrap().to_string_lossy();
    let copy = dir.join(format!("{stem}-{window_s}s.onnx"));
    std::fs::copy(model, &copy).unwrap();
    std::fs::write(
        gstaudiotagger::model::ModelDescriptor::sidecar_path(&copy),
        format!(r#"{{"audiotagger.window_samples": {window}, "audiotagger.hop_samples": {hop}}}"#),
    )
    .unwrap();
    let options = SessionOptions {
        window_samples: Some(window),
        hop_samples: Some(hop),
        ..Default::default()
    };
    (copy, options)
}

/// Every window's features of `audio` (mono at the model rate).
fn features(session: &ModelSession, audio: &[f32]) -> Vec<Vec<f32>> {
    let config = session.descriptor().frontend.clone();
    let mut f = Frontend::new(config.clone(), config.sample_rate, 1).unwrap();
    let mut windows = Vec::new();
    for chunk in audio.chunks(4096) {
        f.push(chunk, &mut windows);
    }
    f.finish(&mut windows);
    windows.into_iter().map(|w| w.features).collect()
}

fn hit_at_3(session: &mut ModelSession, clips: &[common::Clip]) -> (usize, usize) {
    let rate = session.descriptor().frontend.sample_rate as i32;
    let labels = session.descriptor().labels.clone();
    let classes = labels.len();
    let mut hits = 0;
    for clip in clips {
        let audio = common::decode_f32(&clip.file, rate, 1);
        let windows = features(session, &audio);
        let mut mean = vec![0.0f64; classes];
        for batch in windows.chunks(16) {
            let out = session.run(&batch.concat(), batch.len(), false).unwrap();
            for row in out.scores.chunks(classes) {
                for (acc, &v) in mean.iter_mut().zip(row) {
                    *acc += v as f64 / windows.len() as f64;
                }
            }
        }
        hits += common::top3(&mean, &labels)
            .iter()
            .any(|t| clip.classes.contains(t)) as usize;
    }
    (hits, clips.len())
}

fn main() {
    if !support::benching() {
        println!("backbone comparison: run it with `cargo bench --bench backbones`");
        return;
    }
    common::init();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let dir = std::env::temp_dir().join(format!("audiotagger-backbones-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clips = common::manifest();
    let timed_16k: Vec<f32> = common::long_recordings(16000)
        .into_iter()
        .take(16000 * TIMED_SECONDS)
        .collect();
    let timed_wav = dir.join("timed.wav");
    write_wav(&timed_wav, &timed_16k, 16000, 1);

    println!(
        "| model | window | clip hit@3 | element, ms per s of audio | bare ORT, ms per s | element / bare |"
    );
    println!("|---|---|---|---|---|---|");
    for (file, window_s) in BACKBONES {
        let (path, options) = configured(&models.join(file), window_s, &dir);
        let mut session = ModelSession::load(&models.join(file), &options)
            .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"));
        let (hits, total) = hit_at_3(&mut session, &clips);

        let rate = session.descriptor().frontend.sample_rate as i32;
        let timed = common::decode_f32(&timed_wav, rate, 1);
        let feats = features(&session, &timed);
        let mut bare_session = ModelSession::load(
            &models.join(file),
            &SessionOptions {
                threads: 2,
                ..options.clone()
            },
        )
        .unwrap();
        let (mut bare, mut element) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let per_s = bare_ort(&mut bare_session, 16, &feats);
            bare.push(1000.0 * feats.len() as f64 / per_s / TIMED_SECONDS as f64);
            let (windows, wall) = files_at_once(&timed_wav, Some(&path), "", 1);
            assert!(
                windows + 1 >= feats.len(),
                "{windows} windows of {}",
                feats.len()
            );
            element.push(1000.0 * wall / TIMED_SECONDS as f64);
        }
        let (bare, element) = (median(&bare), median(&element));
        println!(
            "| {} | {} | {hits}/{total} = {:.3} | {element:.2} | {bare:.2} | {:.2} |",
            session.descriptor().name,
            window_s.map_or("0.975 s".to_string(), |s| format!("{s} s")),
            hits as f64 / total as f64,
            element / bare
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
