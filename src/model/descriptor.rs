// SPDX-License-Identifier: MPL-2.0

//! The model descriptor: what a model needs from the front-end and what its outputs mean.
//!
//! A model describes itself in its ONNX `metadata_props` under `audiotagger.*` keys (written by
//! `models/convert_yamnet.py`). A sidecar JSON object with the same keys, next to the model as
//! `<model>.json`, overrides them, so ONNX files made elsewhere can be used as they are.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::frontend::mel::{BandNorm, Centre, LogKind, MelScale, Spectrum, WindowKind};
use crate::frontend::{FrontendConfig, InputKind, MelParams};

pub const PREFIX: &str = "audiotagger.";

#[derive(Debug, Clone, PartialEq)]
pub struct ModelDescriptor {
    pub name: String,
    pub frontend: FrontendConfig,
    pub input_name: String,
    pub scores_output: String,
    pub embedding_output: Option<String>,
    /// False when the scores are logits and need a sigmoid.
    pub scores_are_probabilities: bool,
    pub labels: Vec<String>,
    /// AudioSet ids (e.g. `/m/09x0r`), when the model has them.
    pub label_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorError(pub String);

impl std::fmt::Display for DescriptorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DescriptorError {}

fn err<T>(msg: impl Into<String>) -> Result<T, DescriptorError> {
    Err(DescriptorError(msg.into()))
}

struct Props<'a>(&'a HashMap<String, String>);

impl Props<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&format!("{PREFIX}{key}")).map(|s| s.trim())
    }

    fn required(&self, key: &str) -> Result<&str, DescriptorError> {
        self.get(key)
            .ok_or_else(|| DescriptorError(format!("descriptor key `{PREFIX}{key}` is missing")))
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T, DescriptorError> {
        let v = self.required(key)?;
        v.parse().map_err(|_| {
            DescriptorError(format!(
                "descriptor key `{PREFIX}{key}` = {v:?} is not a valid value"
            ))
        })
    }

    fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, DescriptorError> {
        match self.get(key) {
            None => Ok(default),
            Some(_) => self.parse(key),
        }
    }

    /// One of a fixed set of names; the error lists them.
    fn named<T: std::str::FromStr>(
        &self,
        key: &str,
        names: &[&str],
        default: T,
    ) -> Result<T, DescriptorError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| {
                DescriptorError(format!(
                    "descriptor key `{PREFIX}{key}` = {v:?}: not one of {}",
                    names.join(", ")
                ))
            }),
        }
    }

    fn json_list(&self, key: &str) -> Result<Vec<String>, DescriptorError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_str(v).map_err(|e| {
                DescriptorError(format!(
                    "descriptor key `{PREFIX}{key}` is not a JSON list of strings: {e}"
                ))
            }),
        }
    }
}

impl ModelDescriptor {
    /// Reads and validates a descriptor from `audiotagger.*` key/value pairs.
    pub fn from_props(props: &HashMap<String, String>) -> Result<Self, DescriptorError> {
        let p = Props(props);
        let version: u32 = p.parse("descriptor_version")?;
        if version != 1 {
            return err(format!(
                "descriptor version {version} is not supported (this build reads version 1)"
            ));
        }
        let sample_rate: u32 = p.parse("sample_rate")?;
        let input = match p.required("input_kind")? {
            "log_mel" => InputKind::LogMel(MelParams {
                sample_rate,
                preemphasis: p.parse_or("mel.preemphasis", 0.0)?,
                centre: p.named("mel.center", Centre::NAMES, Centre::None)?,
                window: p.named("mel.window", WindowKind::NAMES, WindowKind::HannPeriodic)?,
                frame_length: p.parse("mel.frame_length")?,
                frame_hop: p.parse("mel.frame_hop")?,
                fft_length: p.parse("mel.fft_length")?,
                spectrum: p.named("mel.spectrum", Spectrum::NAMES, Spectrum::Magnitude)?,
                scale: p.named("mel.scale", MelScale::NAMES, MelScale::Htk)?,
                norm: p.named("mel.norm", BandNorm::NAMES, BandNorm::None)?,
                bands: p.parse("mel.bands")?,
                fmin: p.parse("mel.fmin")?,
                fmax: p.parse("mel.fmax")?,
                log: p.named("mel.log", LogKind::NAMES, LogKind::Ln)?,
                log_offset: p.parse_or("mel.log_offset", 0.0)?,
                log_floor: p.parse_or("mel.log_floor", 0.0)?,
                top_db: match p.get("mel.top_db") {
                    None => None,
                    Some(_) => Some(p.parse("mel.top_db")?),
                },
                mean: p.parse_or("mel.normalize_mean", 0.0)?,
                std: p.parse_or("mel.normalize_std", 1.0)?,
                layout: match p.get("mel.layout") {
                    None => crate::frontend::mel::Layout::frames_bands(),
                    Some(v) => v.parse().map_err(|e| {
                        DescriptorError(format!("descriptor key `{PREFIX}mel.layout` = {v:?}: {e}"))
                    })?,
                },
            }),
            "waveform" => InputKind::Waveform,
            other => {
                return err(format!(
                    "input kind {other:?} is not supported (log_mel or waveform)"
                ));
            }
        };
        let frontend = FrontendConfig {
            sample_rate,
            window_samples: p.parse("window_samples")?,
            hop_samples: p.parse("hop_samples")?,
            input,
        };
        frontend
            .validate()
            .map_err(|e| DescriptorError(format!("model descriptor: {e}")))?;
        if let (InputKind::LogMel(m), Some(frames)) = (&frontend.input, p.get("mel.frames")) {
            let declared: usize = frames
                .parse()
                .map_err(|_| DescriptorError(format!("mel.frames = {frames:?}")))?;
            if Some(declared) != frontend.frames_per_window() {
                return err(format!(
                    "descriptor says {declared} frames per window, but {} samples make {:?} frames of {} every {}",
                    frontend.window_samples,
                    frontend.frames_per_window(),
                    m.frame_length,
                    m.frame_hop
                ));
            }
        }
        let labels = p.json_list("labels")?;
        let num_classes: usize = match p.get("num_classes") {
            Some(_) => p.parse("num_classes")?,
            None => labels.len(),
        };
        if num_classes == 0 {
            return err(
                "the descriptor names no classes (set `audiotagger.labels` or `audiotagger.num_classes`)",
            );
        }
        if !labels.is_empty() && labels.len() != num_classes {
            return err(format!("{} labels for {num_classes} classes", labels.len()));
        }
        let label_ids = p.json_list("label_ids")?;
        if !label_ids.is_empty() && label_ids.len() != num_classes {
            return err(format!(
                "{} label ids for {num_classes} classes",
                label_ids.len()
            ));
        }
        let labels = if labels.is_empty() {
            (0..num_classes).map(|i| format!("class {i}")).collect()
        } else {
            labels
        };
        Ok(Self {
            name: p.get("model_name").unwrap_or("unnamed").to_string(),
            frontend,
            input_name: p.get("input_name").unwrap_or("input").to_string(),
            scores_output: p.get("output.scores").unwrap_or("scores").to_string(),
            embedding_output: p
                .get("output.embedding")
                .filter(|s| !s.is_empty())
                .map(String::from),
            scores_are_probabilities: match p.get("scores_are_probabilities").unwrap_or("true") {
                "true" | "1" => true,
                "false" | "0" => false,
                v => return err(format!("scores_are_probabilities = {v:?} (true or false)")),
            },
            labels,
            label_ids,
        })
    }

    pub fn num_classes(&self) -> usize {
        self.labels.len()
    }

    /// Where a sidecar descriptor for `model` would be: `<model>.json`.
    pub fn sidecar_path(model: &Path) -> PathBuf {
        let mut s = model.as_os_str().to_owned();
        s.push(".json");
        PathBuf::from(s)
    }

    /// Merges a sidecar JSON object (flat `audiotagger.*` keys; numbers, booleans, lists
    /// allowed) over the model's own properties.
    pub fn apply_sidecar(
        props: &mut HashMap<String, String>,
        json: &str,
    ) -> Result<(), DescriptorError> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| DescriptorError(format!("sidecar descriptor is not valid JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return err("sidecar descriptor must be a JSON object of `audiotagger.*` keys");
        };
        for (k, v) in map {
            if !k.starts_with(PREFIX) {
                return err(format!("sidecar key {k:?} does not start with `{PREFIX}`"));
            }
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            props.insert(k, v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn yamnet_props() -> HashMap<String, String> {
        let labels: Vec<String> = (0..521).map(|i| format!("c{i}")).collect();
        [
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
            ("mel.window", "hann_periodic".into()),
            ("mel.bands", "64".into()),
            ("mel.fmin", "125.0".into()),
            ("mel.fmax", "7500.0".into()),
            ("mel.log_offset", "0.001".into()),
            ("output.scores", "scores".into()),
            ("output.embedding", "embedding".into()),
            ("num_classes", "521".into()),
            ("labels", serde_json::to_string(&labels).unwrap()),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v))
        .collect()
    }

    #[test]
    fn yamnet_descriptor_gives_the_yamnet_frontend() {
        let d = ModelDescriptor::from_props(&yamnet_props()).unwrap();
        assert_eq!(d.frontend, FrontendConfig::yamnet());
        assert_eq!(d.num_classes(), 521);
        assert_eq!(d.embedding_output.as_deref(), Some("embedding"));
        assert!(d.scores_are_probabilities);
    }

    #[test]
    fn missing_and_bad_keys_are_named() {
        let mut p = yamnet_props();
        p.remove("audiotagger.mel.bands");
        assert!(
            ModelDescriptor::from_props(&p)
                .unwrap_err()
                .0
                .contains("audiotagger.mel.bands")
        );
        let mut p = yamnet_props();
        p.insert("audiotagger.mel.frames".into(), "95".into());
        assert!(
            ModelDescriptor::from_props(&p)
                .unwrap_err()
                .0
                .contains("95 frames")
        );
        let mut p = yamnet_props();
        p.insert("audiotagger.input_kind".into(), "cqt".into());
        assert!(
            ModelDescriptor::from_props(&p)
                .unwrap_err()
                .0
                .contains("cqt")
        );
        let mut p = yamnet_props();
        p.insert("audiotagger.num_classes".into(), "520".into());
        assert!(
            ModelDescriptor::from_props(&p)
                .unwrap_err()
                .0
                .contains("521 labels for 520")
        );
        assert!(
            ModelDescriptor::from_props(&HashMap::new())
                .unwrap_err()
                .0
                .contains("descriptor_version")
        );
    }

    #[test]
    fn front_end_kinds_are_descriptor_values() {
        let mut p = yamnet_props();
        for (k, v) in [
            ("sample_rate", "32000"),
            ("window_samples", "32000"),
            ("hop_samples", "16000"),
            ("mel.frames", "100"),
            ("mel.preemphasis", "0.97"),
            ("mel.center", "reflect"),
            ("mel.window", "hann_symmetric"),
            ("mel.frame_length", "800"),
            ("mel.frame_hop", "320"),
            ("mel.fft_length", "1024"),
            ("mel.spectrum", "power"),
            ("mel.scale", "kaldi"),
            ("mel.bands", "128"),
            ("mel.fmin", "0"),
            ("mel.fmax", "15000"),
            ("mel.log", "ln"),
            ("mel.log_offset", "1e-5"),
            ("mel.normalize_mean", "-4.5"),
            ("mel.normalize_std", "5"),
            ("mel.layout", "1,bands,frames"),
        ] {
            p.insert(format!("{PREFIX}{k}"), v.into());
        }
        let d = ModelDescriptor::from_props(&p).unwrap();
        assert_eq!(
            d.frontend.input,
            InputKind::LogMel(MelParams::efficientat())
        );
        assert_eq!(d.frontend.feature_shape(), vec![1, 128, 100]);
        for (key, value, named) in [
            ("mel.scale", "mel", "htk, htk_hz, kaldi, slaney"),
            ("mel.window", "blackman", "hann_periodic"),
            ("mel.center", "yes", "reflect"),
            ("mel.layout", "frames,frames", "once each"),
            ("mel.log", "log2", "ln, log10, db"),
        ] {
            let mut bad = p.clone();
            bad.insert(format!("{PREFIX}{key}"), value.into());
            let e = ModelDescriptor::from_props(&bad).unwrap_err().0;
            assert!(e.contains(key) && e.contains(named), "{e}");
        }
    }

    #[test]
    fn sidecar_overrides_model_keys() {
        let mut p = yamnet_props();
        ModelDescriptor::apply_sidecar(
            &mut p,
            r#"{"audiotagger.hop_samples": 15360, "audiotagger.model_name": "x"}"#,
        )
        .unwrap();
        let d = ModelDescriptor::from_props(&p).unwrap();
        assert_eq!((d.frontend.hop_samples, d.name.as_str()), (15360, "x"));
        assert!(ModelDescriptor::apply_sidecar(&mut p, "[1]").is_err());
        assert!(ModelDescriptor::apply_sidecar(&mut p, r#"{"hop": 1}"#).is_err());
        assert!(ModelDescriptor::apply_sidecar(&mut p, "{").is_err());
    }

    #[test]
    fn waveform_models_need_no_mel_keys() {
        let p: HashMap<String, String> = [
            ("descriptor_version", "1"),
            ("sample_rate", "16000"),
            ("window_samples", "16000"),
            ("hop_samples", "8000"),
            ("input_kind", "waveform"),
            ("num_classes", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
        .collect();
        let d = ModelDescriptor::from_props(&p).unwrap();
        assert_eq!(d.frontend.input, InputKind::Waveform);
        assert_eq!(d.labels[9], "class 9");
    }
}
