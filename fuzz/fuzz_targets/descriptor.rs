// SPDX-License-Identifier: MPL-2.0
//! Sidecar JSON over YAMNet's own descriptor keys: any text either parses into a descriptor whose
//! front-end validates, or is refused with a message; a front-end of a reasonable size that it
//! declares (pre-emphasis, centring, any window, filterbank, log and layout) then takes a short
//! stream in uneven pieces and gives windows of the declared shape. Never a panic.
#![no_main]

use std::collections::HashMap;

use gstaudiotagger::frontend::{Frontend, InputKind};
use gstaudiotagger::model::ModelDescriptor;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let labels: Vec<String> = (0..521).map(|i| format!("c{i}")).collect();
    let mut props: HashMap<String, String> = [
        ("descriptor_version", "1".to_string()),
        ("model_name", "yamnet".into()),
        ("sample_rate", "16000".into()),
        ("window_samples", "15600".into()),
        ("hop_samples", "7680".into()),
        ("input_kind", "log_mel".into()),
        ("input_name", "log_mel".into()),
        ("mel.frames", "96".into()),
        ("mel.frame_length", "400".into()),
        ("mel.frame_hop", "160".into()),
        ("mel.fft_length", "512".into()),
        ("mel.bands", "64".into()),
        ("mel.fmin", "125".into()),
        ("mel.fmax", "7500".into()),
        ("mel.log_offset", "0.001".into()),
        ("mel.window", "hann_periodic".into()),
        ("mel.spectrum", "magnitude".into()),
        ("mel.scale", "htk".into()),
        ("output.scores", "scores".into()),
        ("labels", serde_json::to_string(&labels).unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("audiotagger.{k}"), v))
    .collect();
    if ModelDescriptor::apply_sidecar(&mut props, text).is_err() {
        return;
    }
    if let Ok(d) = ModelDescriptor::from_props(&props) {
        d.frontend
            .validate()
            .expect("a parsed descriptor has a valid front-end");
        assert!(d.num_classes() > 0);
        let f = &d.frontend;
        let small = f.window_samples <= 1 << 16
            && f.hop_samples <= 1 << 16
            && match &f.input {
                InputKind::LogMel(p) => p.fft_length <= 1 << 13 && p.bands <= 512,
                InputKind::Waveform => true,
            };
        if small && let Ok(mut frontend) = Frontend::new(f.clone(), 16000, 1) {
            let per_window: usize = f.feature_shape().iter().product();
            let samples: Vec<f32> = (0..40000)
                .map(|i| ((i * 7919 % 2000) as f32 / 1000.0 - 1.0) * 0.5)
                .collect();
            let mut windows = Vec::new();
            let mut at = 0;
            for piece in [1usize, 313, 4096, 20000, 40000] {
                let end = (at + piece).min(samples.len());
                frontend.push(&samples[at..end], &mut windows);
                at = end;
            }
            frontend.finish(&mut windows);
            for w in &windows {
                assert_eq!(w.features.len(), per_window);
                assert!(w.features.iter().all(|v| v.is_finite()));
            }
        }
    }
});
