// SPDX-License-Identifier: MPL-2.0
//! The element in real pipelines on real recordings (../shared/audio).

mod common;

use std::collections::HashMap;

/// Mean window scores, the labels, the number of windows and of quiet ones.
fn clip_scores(file: &std::path::Path, props: &str) -> (Vec<f64>, Vec<String>, usize, usize) {
    let msgs = common::run_pipeline(&format!(
        "filesrc location=\"{}\" ! decodebin ! audioconvert ! audiotagger full-scores=true {props} ! fakesink sync=false",
        file.display()
    ));
    // Windows under `min-level` are quiet: the model did not run and every score is 0.
    let mut mean = vec![0.0; 521];
    for m in msgs.iter().filter(|m| !m.get::<bool>("quiet").unwrap()) {
        for (acc, s) in mean.iter_mut().zip(common::floats(m, "full-scores")) {
            *acc += s / msgs.len() as f64;
        }
    }
    let labels = common::yamnet_labels();
    let quiet = msgs
        .iter()
        .filter(|m| m.get::<bool>("quiet").unwrap())
        .count();
    (mean, labels, msgs.len(), quiet)
}

fn top3(mean: &[f64], labels: &[String]) -> Vec<String> {
    let mut idx: Vec<usize> = (0..mean.len()).collect();
    idx.sort_by(|&a, &b| mean[b].total_cmp(&mean[a]));
    idx[..3].iter().map(|&i| labels[i].clone()).collect()
}

/// Clip-level hit@3 over ../shared/audio with the element's `props`: the rate, and every label
/// whose clips all hit.
fn clip_hit_rate(props: &str) -> (f64, HashMap<String, (usize, usize)>) {
    common::init();
    let (mut hits, mut total) = (0, 0);
    let mut by_label: HashMap<String, (usize, usize)> = HashMap::new();
    let mut misses = Vec::new();
    for clip in common::manifest() {
        let (mean, labels, windows, quiet) = clip_scores(&clip.file, props);
        assert!(windows >= 1, "{}: no window", clip.file.display());
        // A clip the level gate found silent throughout is reported as silence.
        let top = if quiet == windows {
            vec!["Silence".to_string()]
        } else {
            top3(&mean, &labels)
        };
        let hit = top.iter().any(|t| clip.classes.contains(t));
        hits += hit as usize;
        total += 1;
        let e = by_label.entry(clip.label.clone()).or_default();
        e.0 += hit as usize;
        e.1 += 1;
        if !hit {
            misses.push(format!(
                "{} -> {:?}",
                clip.file.file_name().unwrap().to_string_lossy(),
                top
            ));
        }
    }
    let rate = hits as f64 / total as f64;
    eprintln!(
        "clip-level hit@3 ({props}): {hits}/{total} = {rate:.3}\nmisses:\n  {}",
        misses.join("\n  ")
    );
    (rate, by_label)
}

/// What users check first: speech says Speech, music says Music, a siren is a siren.
fn assert_every_clip_hits(by_label: &HashMap<String, (usize, usize)>, model: &str) {
    for label in ["speech", "music", "siren"] {
        let (h, n) = by_label[label];
        assert_eq!(
            h, n,
            "{label}: only {h} of {n} clips have an expected class in the top 3 ({model})"
        );
    }
}

#[test]
fn expected_class_in_top3_on_real_recordings() {
    let (rate, by_label) = clip_hit_rate("");
    assert_every_clip_hits(&by_label, "float model");
    // Measured 0.700 (56/80) with mean pooling of 0.48 s-hop windows, level gate on (quiet
    // windows count as zeros); most misses are a parent class ("Animal") beating the labelled
    // child ("Dog"), or long quiet stretches.
    assert!(rate >= 0.65, "hit@3 {rate}");
}

#[test]
fn the_int8_model_tags_real_recordings_almost_as_well() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet-int8.onnx");
    let (rate, by_label) = clip_hit_rate(&format!("model=\"{}\"", model.display()));
    assert_every_clip_hits(&by_label, "int8 model");
    // Measured 0.713 (57/80), the float model 0.700 (56/80).
    assert!(rate >= 0.65, "int8 hit@3 {rate}");
}
