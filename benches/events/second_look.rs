// SPDX-License-Identifier: MPL-2.0
//! The first stage alone against first stage + second look (GL-AT), on the same sets as the
//! heads comparison.
//!
//! For each group with a `look` in the preset, each first stage (zero-shot AudioSet classes,
//! the trained head), each look length and candidate threshold, the first stage's events are
//! the candidates; the second model (`models/ced-tiny-heads.onnx` when set-up made it, else
//! `models/ced-tiny.onnx`, or `SECOND_MODEL`) scores the look around each candidate's onset,
//! exactly as the element cuts it, and each confirm threshold keeps the candidates it confirms.
//! A second model with trained heads is judged twice on the same scores: on its AudioSet
//! classes (the plain model's own) and on its heads (`[group.NAME.look.head]`). The setting with the best F1 at <= 1 false alarm
//! per hour on validation is then applied unchanged to the external set. Looks per hour count
//! the candidates over all the audio; the second model's time per look is measured here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstaudiotagger::model::{ModelSession, SessionOptions};
use gstaudiotagger::tags::groups::Preset;
use gstaudiotagger::tags::{EventDefaults, Phase, ResolvedGroup, ResolvedLook};

use super::heads::EvalSet;
use super::{Counts, RATE, Window, reports};

const LOOKS_S: [(f64, f64); 3] = [(1.5, 1.5), (2.0, 2.0), (2.5, 2.5)];
const CONFIRMS: [f32; 18] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.8, 0.9,
    0.95, 0.98,
];
/// The element's `look-before` and `look-after` defaults (`src/audiotagger/settings.rs`).
const SHIPPED_LOOK_S: (f64, f64) = (2.0, 2.0);

/// The second model with every look it has scored, by (set, item, first sample, length).
struct Looker {
    sessions: HashMap<usize, ModelSession>,
    path: PathBuf,
    cache: HashMap<(&'static str, usize, u64, usize), Vec<f32>>,
    /// Looks scored and the time they took, by look length in samples.
    runs: HashMap<usize, (usize, Duration)>,
}

impl Looker {
    fn session(&mut self, samples: usize) -> &mut ModelSession {
        let path = self.path.clone();
        self.sessions.entry(samples).or_insert_with(|| {
            ModelSession::load(
                &path,
                &SessionOptions {
                    threads: 1,
                    window_samples: Some(samples),
                    ..Default::default()
                },
            )
            .unwrap()
        })
    }

    /// The second model's scores of each look `from` (ns) of `length` samples in `audio`, as the
    /// element cuts it: a look past the end moves back to end with the audio.
    fn scores(
        &mut self,
        set: &'static str,
        item: usize,
        audio: &[f32],
        froms: &[u64],
        length: usize,
    ) -> Vec<Vec<f32>> {
        let first = |from: u64| {
            let s = (from as u128 * RATE as u128 / 1_000_000_000) as usize;
            s.min(audio.len().saturating_sub(length))
        };
        let missing: Vec<usize> = froms
            .iter()
            .map(|&f| first(f))
            .filter(|&s| !self.cache.contains_key(&(set, item, s as u64, length)))
            .collect();
        if !missing.is_empty() {
            let mut features = Vec::with_capacity(missing.len() * length);
            for &s in &missing {
                let end = (s + length).min(audio.len());
                features.extend_from_slice(&audio[s..end]);
                features.resize(features.len() + (s + length - end), 0.0);
            }
            let started = Instant::now();
            let out = self
                .session(length)
                .run(&features, missing.len(), false)
                .unwrap();
            let runs = self.runs.entry(length).or_default();
            runs.0 += missing.len();
            runs.1 += started.elapsed();
            let classes = out.scores.len() / missing.len();
            for (k, &s) in missing.iter().enumerate() {
                self.cache.insert(
                    (set, item, s as u64, length),
                    out.scores[k * classes..(k + 1) * classes].to_vec(),
                );
            }
        }
        froms
            .iter()
            .map(|&f| self.cache[&(set, item, first(f) as u64, length)].clone())
            .collect()
    }
}

/// A first-stage detection and the second model's scores around its onset.
struct Candidate {
    item: usize,
    start: u64,
    end: u64,
    /// The first stage's score when it started the event.
    peak: f32,
    scores: Vec<f32>,
}

/// (onset, end, first-stage score at the start) of every event of `group` in `windows`.
fn events(windows: &[Window], group: &ResolvedGroup) -> Vec<(u64, u64, f32)> {
    let mut found = Vec::new();
    let mut peak = 0.0;
    for e in reports(windows, vec![group.clone()]) {
        match e.phase {
            Phase::Start => peak = e.peak_score,
            Phase::Stop(_) => found.push((e.start, e.end.unwrap_or(e.start), peak)),
        }
    }
    found
}

/// Every event of `group` in `set` (mixtures first, then the backgrounds alone), with the second
/// model's scores around its onset when `look` gives the model and the look (before, after).
fn candidates(
    set: &EvalSet,
    group: &ResolvedGroup,
    mut look: Option<(&mut Looker, f64, f64)>,
) -> Vec<Candidate> {
    let items = set
        .mixtures
        .iter()
        .map(|m| (m.windows.as_slice(), m.audio.as_slice()))
        .chain(
            set.alone
                .iter()
                .zip(&set.alone_audio)
                .map(|(w, a)| (w.as_slice(), a.as_slice())),
        );
    let mut out = Vec::new();
    for (item, (windows, audio)) in items.enumerate() {
        let found = events(windows, group);
        let scores = match look.as_mut() {
            Some((looker, before, after)) if !found.is_empty() => {
                let length = ((*before + *after) * RATE as f64).round() as usize;
                let froms: Vec<u64> = found
                    .iter()
                    .map(|(s, _, _)| s.saturating_sub((*before * 1e9) as u64))
                    .collect();
                looker.scores(set.name, item, audio, &froms, length)
            }
            _ => vec![Vec::new(); found.len()],
        };
        for ((start, end, peak), scores) in found.into_iter().zip(scores) {
            out.push(Candidate {
                item,
                start,
                end,
                peak,
                scores,
            });
        }
    }
    out
}

struct Measured {
    per_snr: [Counts; 3],
    fa_per_hour: f64,
    looks_per_hour: f64,
}

impl Measured {
    fn all(&self) -> Counts {
        let mut all = Counts::default();
        self.per_snr.iter().for_each(|c| all.add(*c));
        all
    }
}

/// The confirmed candidates' figures, counted as the heads comparison counts detections.
fn measure(
    set: &EvalSet,
    group: &str,
    cands: &[Candidate],
    look: Option<&ResolvedLook>,
) -> Measured {
    let mut per_item: HashMap<usize, Vec<(String, u64, u64)>> = HashMap::new();
    for c in cands {
        let passes = |l: &ResolvedLook| {
            l.pass_threshold.is_some_and(|p| c.peak >= p) || l.judge(&c.scores).confirmed
        };
        if look.is_none_or(passes) {
            per_item
                .entry(c.item)
                .or_default()
                .push((group.to_string(), c.start, c.end));
        }
    }
    let (per_snr, fa_per_hour) =
        set.count(group, |i| per_item.get(&i).cloned().unwrap_or_default());
    let hours = (set
        .mixtures
        .iter()
        .map(|m| m.audio.len() as f64)
        .sum::<f64>()
        + set.alone_s * RATE as f64)
        / RATE as f64
        / 3600.0;
    Measured {
        per_snr,
        fa_per_hour,
        looks_per_hour: cands.len() as f64 / hours,
    }
}

fn line(name: &str, setting: &str, m: &Measured) -> String {
    let all = m.all();
    format!(
        "  {name:<30} {setting:<34} P {:.3}  R {:.2}/{:.2}/{:.2}  F1 {:.3}  onset {:>4.0} ms  FA/h {:>5.1}  looks/h {:>6.1}",
        all.precision(),
        m.per_snr[0].recall(),
        m.per_snr[1].recall(),
        m.per_snr[2].recall(),
        all.f1(),
        all.onset_ms(),
        m.fa_per_hour,
        m.looks_per_hour,
    )
}

/// Prints, per group with a look in the preset: each first stage alone at its best setting
/// with <= 1 FA/h, and with the second look at its best, on validation then external.
pub fn compare(labels: &[String], validation: &EvalSet, external: &EvalSet) {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let path = std::env::var_os("SECOND_MODEL")
        .map(PathBuf::from)
        .or_else(|| Some(models.join("ced-tiny-heads.onnx")).filter(|p| p.is_file()))
        .unwrap_or_else(|| models.join("ced-tiny.onnx"));
    if !path.is_file() {
        println!(
            "\nno second-look comparison: {} is missing (scripts/setup.sh makes it)",
            path.display()
        );
        return;
    }
    let mut looker = Looker {
        sessions: HashMap::new(),
        path,
        cache: HashMap::new(),
        runs: HashMap::new(),
    };
    let second_labels = looker.session(16000).descriptor().labels.clone();
    let preset = Preset::builtin();
    let started = Instant::now();
    println!(
        "\nfirst stage alone vs with a second look ({}), best F1 at <= 1 FA/h on validation:",
        looker.path.display()
    );
    for (name, spec) in &preset.groups {
        let Some(look_spec) = &spec.look else {
            continue;
        };
        println!("{name}:");
        // The look on the second model's AudioSet classes, and on its heads when it has them.
        let mut variants = vec![("look", look_spec)];
        let for_model = look_spec.for_labels(&second_labels);
        if !std::ptr::eq(for_model, look_spec) {
            variants.push(("look head", for_model));
        }
        let shipped_variant = variants.last().unwrap().0;
        for (stage, head) in [("zero-shot", false), ("head", true)] {
            let mut s = spec.clone();
            if !head {
                s.head = None;
            }
            let Ok(base) = ResolvedGroup::resolve(&s, labels, &EventDefaults::default()) else {
                continue;
            };
            if base.uses_head != head {
                continue;
            }
            let ons: &[f32] = if head {
                &[0.3, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99, 0.995]
            } else {
                &[0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7]
            };
            let with_on = |on: f32| {
                let mut g = base.clone();
                g.on_threshold = on;
                g.off_threshold = on / 2.0;
                g
            };
            // The first stage alone.
            let mut alone: Option<(f64, f32, Measured)> = None;
            for &on in ons {
                let cands = candidates(validation, &with_on(on), None);
                let m = measure(validation, name, &cands, None);
                if m.fa_per_hour <= 1.0 && alone.as_ref().is_none_or(|b| m.all().f1() > b.0) {
                    alone = Some((m.all().f1(), on, m));
                }
            }
            match alone {
                Some((_, on, m)) => {
                    println!(
                        "{}",
                        line(
                            &format!("{stage} alone, validation"),
                            &format!("on {on}"),
                            &m
                        )
                    );
                    let ext = measure(
                        external,
                        name,
                        &candidates(external, &with_on(on), None),
                        None,
                    );
                    println!(
                        "{}",
                        line(
                            &format!("{stage} alone, external"),
                            &format!("on {on}"),
                            &ext
                        )
                    );
                }
                None => println!("  {stage} alone: no setting reaches <= 1 FA/h on validation"),
            }
            // The shipped preset's look, as the element arms it.
            let mut shipped = [base.clone()];
            let looks =
                gstaudiotagger::tags::second_look::arm(&mut shipped, &second_labels).unwrap();
            let (before, after) = SHIPPED_LOOK_S;
            let setting = format!(
                "candidate {}, confirm {}, pass {:?}",
                shipped[0].on_threshold, looks[0].confirm_threshold, looks[0].pass_threshold
            );
            for set in [validation, external] {
                let cands = candidates(set, &shipped[0], Some((&mut looker, before, after)));
                let m = measure(set, name, &cands, Some(&looks[0]));
                println!(
                    "{}",
                    line(
                        &format!("{stage} + {shipped_variant}, shipped, {}", set.name),
                        &setting,
                        &m
                    )
                );
            }
            for ((variant, spec), (before, after)) in variants
                .iter()
                .flat_map(|v| LOOKS_S.iter().map(move |l| (*v, *l)))
            {
                let look = ResolvedLook::resolve(name, spec, &second_labels).unwrap();
                // Every candidate looked at, or only those the first stage is less sure of.
                for bypass in [false, true] {
                    let mut best: Option<(f64, f32, f32, Option<f32>, Measured)> = None;
                    for &on in ons {
                        let cands = candidates(
                            validation,
                            &with_on(on),
                            Some((&mut looker, before, after)),
                        );
                        let passes: Vec<Option<f32>> = if bypass {
                            ons.iter().filter(|&&p| p > on).map(|&p| Some(p)).collect()
                        } else {
                            vec![None]
                        };
                        for &pass in &passes {
                            for &confirm in &CONFIRMS {
                                let mut l = look.clone();
                                l.confirm_threshold = confirm;
                                l.pass_threshold = pass;
                                let m = measure(validation, name, &cands, Some(&l));
                                if m.fa_per_hour <= 1.0
                                    && best.as_ref().is_none_or(|b| m.all().f1() > b.0)
                                {
                                    best = Some((m.all().f1(), on, confirm, pass, m));
                                }
                            }
                        }
                    }
                    let look_name = format!(
                        "{stage} + {variant} {before:.1}+{after:.1} s{}",
                        if bypass { ", pass" } else { "" }
                    );
                    let Some((_, on, confirm, pass, m)) = best else {
                        println!("  {look_name}: no setting reaches <= 1 FA/h on validation");
                        continue;
                    };
                    let setting = match pass {
                        Some(p) => format!("candidate {on}, confirm {confirm}, pass {p}"),
                        None => format!("candidate {on}, confirm {confirm}"),
                    };
                    println!(
                        "{}",
                        line(&format!("{look_name}, validation"), &setting, &m)
                    );
                    let mut l = look.clone();
                    l.confirm_threshold = confirm;
                    l.pass_threshold = pass;
                    let cands =
                        candidates(external, &with_on(on), Some((&mut looker, before, after)));
                    let ext = measure(external, name, &cands, Some(&l));
                    println!(
                        "{}",
                        line(&format!("{look_name}, external"), &setting, &ext)
                    );
                }
            }
        }
    }
    let mut lengths: Vec<_> = looker.runs.iter().collect();
    lengths.sort();
    for (length, (runs, time)) in lengths {
        println!(
            "second model, {:.1} s looks: {runs} in {:.1} s, {:.1} ms per look (1 thread, batched per mixture)",
            *length as f64 / RATE as f64,
            time.as_secs_f64(),
            time.as_secs_f64() * 1e3 / (*runs).max(1) as f64,
        );
    }
    println!(
        "second-look comparison took {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
