// SPDX-License-Identifier: MPL-2.0
//! Zero-shot AudioSet groups against the trained heads, event by event.
//!
//! Two sets, neither heard in training:
//! - validation: the recordings of ../shared/train that the training tool held out (whole source
//!   recordings, listed in `<model>.split.json`): every target clip mixed at 0, 10 and 20 dB into
//!   three backgrounds made of the held-out background recordings, every held-out look-alike
//!   (fireworks, slams, knocks, claps, coughs, …) mixed at 10 dB, and the backgrounds alone.
//!   The head's thresholds are chosen here: the best F1 with at most 1 false alarm per hour.
//! - external: the mixtures of ../shared/audio the rest of this bench builds (other sources
//!   altogether), with the thresholds chosen on validation, untouched.
//!
//! A false alarm is a detection of group G that matches no inserted G event; false alarms per
//! hour divide them by the hours of audio with no G event in it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gstaudiotagger::model::ModelSession;
use gstaudiotagger::tags::groups::{GroupSpec, Preset};
use gstaudiotagger::tags::{EventDefaults, ResolvedGroup};

use super::{Counts, Mixture, RATE, SNRS, Window, detect, evaluate, load, mix, score};

/// The groups the heads are measured on, and the training folders that are their events.
pub const GROUPS: [(&str, &[&str]); 7] = [
    ("gunshot", &["gunshot"]),
    ("glass", &["glass_breaking"]),
    ("scream", &["scream"]),
    ("siren", &["siren", "alarm_phone"]),
    ("dog", &["dog_bark"]),
    ("baby-cry", &["baby_cry"]),
    ("fireworks", &["fireworks"]),
];

fn group_of(label: &str) -> Option<&'static str> {
    GROUPS
        .iter()
        .find(|(_, labels)| labels.contains(&label))
        .map(|(g, _)| *g)
}

/// Mixtures and the audio with no event in it, scored by one model.
pub struct EvalSet {
    pub name: &'static str,
    pub mixtures: Vec<Mixture>,
    /// What was inserted in each mixture (its folder or manifest label).
    pub inserted: Vec<String>,
    /// Backgrounds alone.
    pub alone: Vec<Vec<Window>>,
    pub alone_audio: Vec<Vec<f32>>,
    pub alone_s: f64,
}

impl EvalSet {
    fn hours_without(&self, group: &str) -> f64 {
        let mixed: f64 = self
            .mixtures
            .iter()
            .filter(|m| m.truth.as_ref().is_none_or(|t| t.0 != group))
            .map(|m| m.windows.last().map_or(0.0, |w| w.end as f64 / 1e9))
            .sum();
        (mixed + self.alone_s) / 3600.0
    }

    /// False alarms of one group's settings by what was inserted ("background" alone).
    pub fn false_alarm_sources(&self, group: &ResolvedGroup) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (m, what) in self.mixtures.iter().zip(&self.inserted) {
            let d = detect(&m.windows, vec![group.clone()]);
            let c = evaluate(m, &d, &group.name);
            if c.detections > c.correct {
                *out.entry(what.clone()).or_default() += (c.detections - c.correct) as usize;
            }
        }
        let alone: usize = self
            .alone
            .iter()
            .map(|w| detect(w, vec![group.clone()]).len())
            .sum();
        if alone > 0 {
            out.insert("background".to_string(), alone);
        }
        out
    }

    /// Counts per SNR (index as SNRS) and false alarms per hour for one group's settings.
    pub fn measure(&self, group: &ResolvedGroup) -> ([Counts; 3], f64) {
        let windows = |i: usize| match self.mixtures.get(i) {
            Some(m) => &m.windows,
            None => &self.alone[i - self.mixtures.len()],
        };
        self.count(&group.name, |i| detect(windows(i), vec![group.clone()]))
    }

    /// Counts per SNR and false alarms per hour of `group`, given each item's detections
    /// (items: the mixtures, then the backgrounds alone).
    pub fn count(
        &self,
        group: &str,
        detections: impl Fn(usize) -> Vec<(String, u64, u64)>,
    ) -> ([Counts; 3], f64) {
        let mut per_snr = [Counts::default(); 3];
        let mut false_alarms = 0usize;
        for (i, m) in self.mixtures.iter().enumerate() {
            let c = evaluate(m, &detections(i), group);
            false_alarms += (c.detections - c.correct) as usize;
            if m.truth.as_ref().is_some_and(|t| t.0 == group)
                && let Some(k) = SNRS.iter().position(|s| *s == m.snr)
            {
                per_snr[k].add(c);
            }
        }
        for i in 0..self.alone.len() {
            false_alarms += detections(self.mixtures.len() + i).len();
        }
        (per_snr, false_alarms as f64 / self.hours_without(group))
    }
}

pub struct Split {
    /// (folder label, path) of every held-out clip.
    pub files: Vec<(String, PathBuf)>,
}

/// The held-out clips the training tool wrote beside the model, or why there are none.
pub fn read_split(model: &Path, train_root: &Path) -> Result<Split, String> {
    let path = model.with_extension("split.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (the training tool writes it: models/train_heads.py)",
            path.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let files = json["validation_files"]
        .as_array()
        .ok_or_else(|| format!("{}: no validation_files", path.display()))?
        .iter()
        .filter_map(|f| f.as_str())
        .map(|f| {
            let label = f.split('/').next().unwrap_or_default().to_string();
            (label, train_root.join(f))
        })
        .collect();
    Ok(Split { files })
}

/// Three background streams from the held-out background recordings: indoor (rooms, speech,
/// air conditioning), outdoor (street, engines, children, rain) and ambience (cafés, stations).
fn backgrounds(split: &Split) -> Vec<(&'static str, Vec<f32>)> {
    let kinds: [(&'static str, &[&str]); 3] = [
        (
            "indoor",
            &[
                "bg_indoor_noise",
                "bg_speech",
                "bg_speech_babble",
                "bg_air_conditioner",
            ],
        ),
        (
            "outdoor",
            &[
                "bg_street_music",
                "bg_engine_idling",
                "bg_children_playing",
                "bg_rain",
            ],
        ),
        ("ambience", &["bg_ambience"]),
    ];
    kinds
        .iter()
        .map(|(name, labels)| {
            let audio: Vec<f32> = split
                .files
                .iter()
                .filter(|(l, _)| labels.contains(&l.as_str()))
                .flat_map(|(_, p)| load(p))
                .collect();
            (*name, audio)
        })
        .filter(|(_, a)| a.len() > RATE as usize * 12)
        .collect()
}

/// The validation set: targets at every SNR, look-alikes at 10 dB, backgrounds alone.
pub fn validation_set(session: &mut ModelSession, split: &Split) -> EvalSet {
    let bgs = backgrounds(split);
    let mut set = EvalSet {
        name: "validation",
        mixtures: Vec::new(),
        inserted: Vec::new(),
        alone: Vec::new(),
        alone_audio: Vec::new(),
        alone_s: 0.0,
    };
    let mut k = 0usize;
    for (label, path) in &split.files {
        if label.starts_with("bg_") {
            continue;
        }
        let event = load(path);
        let group = group_of(label);
        let snrs: &[f32] = if group.is_some() { &SNRS } else { &[10.0] };
        for (bg_name, bg) in &bgs {
            for &snr in snrs {
                k += 1;
                let offset = (k * 7_919 * 160) % bg.len();
                let at = 4 * RATE as usize + (k % 6) * 1280;
                let (audio, a, b) = mix(bg, offset, &event, snr, at);
                let ns = |s: usize| s as u64 * 1_000_000_000 / RATE as u64;
                set.inserted.push(label.clone());
                set.mixtures.push(Mixture {
                    windows: score(session, &audio),
                    audio,
                    truth: group.map(|g| (g.to_string(), ns(a), ns(b))),
                    snr,
                    background: bg_name,
                });
            }
        }
    }
    for (_, bg) in &bgs {
        set.alone.push(score(session, bg));
        set.alone_audio.push(bg.clone());
        set.alone_s += bg.len() as f64 / RATE as f64;
    }
    set
}

fn line(name: &str, setting: &str, c: &[Counts; 3], fa: f64) -> String {
    let mut all = Counts::default();
    c.iter().for_each(|x| all.add(*x));
    format!(
        "  {name:<32} {setting:<16} P {:.3}  R {:.2}/{:.2}/{:.2}  F1 {:.3}  onset {:>4.0} ms  FA/h {:>5.1}",
        all.precision(),
        c[0].recall(),
        c[1].recall(),
        c[2].recall(),
        all.f1(),
        all.onset_ms(),
        fa
    )
}

/// The best F1 on `validation` with at most 1 false alarm per hour among the settings `make`
/// builds for each on-threshold (off = on / 2) and smoothing: (on, smoothing, group).
fn best_at_one_per_hour(
    validation: &EvalSet,
    labels: &[String],
    ons: &[f32],
    make: impl Fn(f32, &str) -> GroupSpec,
) -> Option<(f32, &'static str, ResolvedGroup)> {
    let mut best: Option<(f64, f32, &'static str, ResolvedGroup)> = None;
    for &on in ons {
        for smoothing in ["none", "mean"] {
            let r = ResolvedGroup::resolve(&make(on, smoothing), labels, &EventDefaults::default())
                .unwrap();
            let (c, fa) = validation.measure(&r);
            let mut all = Counts::default();
            c.iter().for_each(|x| all.add(*x));
            if fa <= 1.0 && best.as_ref().is_none_or(|b| all.f1() > b.0) {
                best = Some((all.f1(), on, smoothing, r));
            }
        }
    }
    best.map(|(_, on, sm, r)| (on, sm, r))
}

/// Zero-shot AudioSet groups against the model's heads, each at its shipped setting and at the
/// best setting with at most 1 false alarm per hour on `validation`, which is then applied
/// unchanged to `external`. Returns the heads' chosen settings.
pub fn compare(
    labels: &[String],
    validation: &EvalSet,
    external: &EvalSet,
) -> BTreeMap<String, (f32, &'static str)> {
    let preset = Preset::builtin();
    let mut chosen = BTreeMap::new();
    println!(
        "\nzero-shot AudioSet groups vs trained heads (P precision, R recall at 0/10/20 dB, FA/h on audio without the group's events):"
    );
    let smoothing = gstaudiotagger::tags::groups::parse_smoothing;
    for (group, _) in GROUPS {
        let Some(spec) = preset.groups.get(group) else {
            continue;
        };
        println!("{group}:");
        let mut zero_shot = spec.clone();
        zero_shot.head = None;
        let zero_shot_best = best_at_one_per_hour(
            validation,
            labels,
            &[0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
            |on, sm| {
                let mut s = zero_shot.clone();
                s.overrides.on_threshold = Some(on);
                s.overrides.off_threshold = Some(on / 2.0);
                s.overrides.smoothing = smoothing(sm);
                s
            },
        );
        let head = ResolvedGroup::resolve(spec, labels, &EventDefaults::default())
            .ok()
            .filter(|r| r.uses_head);
        let head_best = head.as_ref().and_then(|_| {
            best_at_one_per_hour(
                validation,
                labels,
                &[
                    0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999,
                ],
                |on, sm| {
                    let mut s = spec.clone();
                    if let Some(h) = s.head.as_mut() {
                        h.on_threshold = Some(on);
                        h.off_threshold = Some(on / 2.0);
                        h.smoothing = smoothing(sm);
                    }
                    s
                },
            )
        });
        if let Some((on, sm, _)) = &head_best {
            chosen.insert(group.to_string(), (*on, *sm));
        }
        let rows = [
            (
                "zero-shot, shipped",
                Some(
                    ResolvedGroup::resolve(&zero_shot, labels, &EventDefaults::default()).unwrap(),
                ),
            ),
            ("zero-shot, <=1 FA/h", zero_shot_best.map(|b| b.2)),
            ("head, shipped", head),
            ("head, <=1 FA/h", head_best.map(|b| b.2)),
        ];
        for (name, r) in rows {
            let Some(r) = r else {
                println!("  {name:<20} no setting reaches <= 1 FA/h on validation");
                continue;
            };
            let setting = format!("on {:.3} {:?}", r.on_threshold, r.smoothing);
            for set in [validation, external] {
                let (c, fa) = set.measure(&r);
                println!(
                    "{}",
                    line(&format!("{name}, {}", set.name), &setting, &c, fa)
                );
                let sources = set.false_alarm_sources(&r);
                if !sources.is_empty() {
                    println!("    false alarms on: {sources:?}");
                }
            }
        }
    }
    chosen
}
