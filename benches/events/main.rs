// SPDX-License-Identifier: MPL-2.0
//! Event detection evaluation on real recordings: `cargo bench --bench events`.
//!
//! Builds labelled mixtures from ../shared/audio: each event clip (gunshot, glass, dog, baby cry,
//! siren) and each non-target clip (door slams, knocks, thunder, keyboards, … the confusers a
//! camera hears) is inserted 4 s into a 12 s stretch of a long background (speech, music,
//! street: rain + train + engine) at 0, 10 and 20 dB SNR (the event's RMS over its active part
//! against the background's over the same span). It runs YAMNet once per mixture and then sweeps
//! the event settings over the stored scores, printing event precision, recall, F1, mean onset
//! error, and false alarms per hour on the background recordings alone (16 min of
//! ../shared/audio/long plus the street loop). Not a test: it measures, it does not assert.
//!
//! `HEADS_MODEL=models/efficientat-mn04.onnx EVENTS_WINDOW_S=1` measures another backbone, with
//! windows of that many seconds every 0.5 s.
//!
//! Those figures are for the preset's AudioSet classes (zero-shot). When set-up has built
//! `models/yamnet-heads.onnx` (or `HEADS_MODEL` names another model with heads), it scores with
//! that model, whose AudioSet scores are the plain model's, and ends with `heads::compare`:
//! zero-shot against the trained heads on the held-out training recordings and on these mixtures,
//! then `second_look::compare`: each first stage alone against first stage + CED-Tiny's second
//! look (`models/ced-tiny.onnx`), on the same two sets.
//!
//! Matching: a detection of group G counts when it overlaps an inserted event of group G within
//! a 1 s collar; a truth event is found when any detection matches it. Onset error is
//! |first matching detection's start − the event's first active 10 ms frame|.

#[path = "../support/backbone_list.rs"]
mod backbone_list;
mod heads;
mod second_look;

use backbone_list::BACKBONES;

use std::path::{Path, PathBuf};
use std::time::Instant;

use gstaudiotagger::frontend::{Frontend, Level, StreamResampler};
use gstaudiotagger::model::{self, ModelSession, SessionOptions};
use gstaudiotagger::tags::groups::Preset;
use gstaudiotagger::tags::{
    EventDefaults, EventDetector, EventReport, Observation, Phase, ResolvedGroup, StopReason,
};

const RATE: u32 = 16000;
const SNRS: [f32; 3] = [0.0, 10.0, 20.0];
const SEGMENT_S: f32 = 12.0;
const INSERT_AT_S: f32 = 4.0;
const COLLAR_NS: u64 = 1_000_000_000;
const MIN_LEVEL_DB: f32 = -70.0;

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audio")
}

/// Any WAV as 16 kHz mono.
fn load(path: &Path) -> Vec<f32> {
    let reader = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = reader.spec();
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().map(Result::unwrap).collect(),
        hound::SampleFormat::Int => {
            let scale = (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.unwrap() as f32 / scale)
                .collect()
        }
    };
    let ch = spec.channels as usize;
    let mono: Vec<f32> = interleaved
        .chunks(ch)
        .map(|f| f.iter().sum::<f32>() / ch as f32)
        .collect();
    if spec.sample_rate == RATE {
        return mono;
    }
    let mut r = StreamResampler::new(spec.sample_rate, RATE).unwrap();
    let mut out = Vec::new();
    r.process(&mono, &mut out);
    r.flush(&mut out);
    out
}

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

/// First and last 10 ms frame within 25 dB of the loudest one, in samples.
fn active_region(x: &[f32]) -> (usize, usize) {
    let frame = (RATE / 100) as usize;
    let levels: Vec<f32> = x.chunks(frame).map(rms).collect();
    let max = levels.iter().copied().fold(0.0, f32::max);
    let floor = max * 10f32.powf(-25.0 / 20.0);
    let first = levels.iter().position(|&l| l >= floor).unwrap_or(0);
    let last = levels.iter().rposition(|&l| l >= floor).unwrap_or(0);
    (first * frame, ((last + 1) * frame).min(x.len()))
}

struct Window {
    start: u64,
    end: u64,
    /// None when the level gate skipped the model.
    scores: Option<Vec<f32>>,
    level: Level,
}

fn score(session: &mut ModelSession, audio: &[f32]) -> Vec<Window> {
    let config = session.descriptor().frontend.clone();
    let model_rate = config.sample_rate as u64;
    let duration = config.window_samples as u64 * 1_000_000_000 / model_rate;
    let mut f = Frontend::new(config, RATE, 1).unwrap();
    let mut windows = Vec::new();
    for chunk in audio.chunks(4096) {
        f.push(chunk, &mut windows);
    }
    f.finish(&mut windows);
    let classes = session.descriptor().num_classes();
    let ungated: Vec<usize> = (0..windows.len())
        .filter(|&i| windows[i].level.short_term_db >= MIN_LEVEL_DB)
        .collect();
    let mut scores: Vec<Option<Vec<f32>>> = vec![None; windows.len()];
    for batch in ungated.chunks(64) {
        let features: Vec<f32> = batch
            .iter()
            .flat_map(|&i| windows[i].features.iter().copied())
            .collect();
        let out = session.run(&features, batch.len(), false).unwrap();
        for (k, &i) in batch.iter().enumerate() {
            scores[i] = Some(out.scores[k * classes..(k + 1) * classes].to_vec());
        }
    }
    windows
        .iter()
        .zip(scores)
        .map(|(w, scores)| {
            let start = w.start * 1_000_000_000 / model_rate;
            Window {
                start,
                end: start + duration,
                scores,
                level: w.level,
            }
        })
        .collect()
}

/// A mixture and what was put in it.
struct Mixture {
    windows: Vec<Window>,
    /// The mixture itself, 16 kHz, for the second look.
    audio: Vec<f32>,
    /// (group, onset ns, end ns); empty for non-target events and backgrounds.
    truth: Option<(String, u64, u64)>,
    snr: f32,
    background: &'static str,
}

fn target_group(label: &str) -> Option<&'static str> {
    Some(match label {
        "gunshot" | "gunshot_distant" => "gunshot",
        "glass_breaking" => "glass",
        "dog" => "dog",
        "crying_baby" => "baby-cry",
        "siren" => "siren",
        _ => return None,
    })
}

/// Labels that are neither watched events nor backgrounds: the look-alikes a camera hears.
fn is_non_target(label: &str) -> bool {
    target_group(label).is_none() && !matches!(label, "speech" | "music" | "silence")
}

fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(shared().join("manifest.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let mut it = l.splitn(3, ',');
            (
                it.next().unwrap().to_string(),
                it.next().unwrap().to_string(),
            )
        })
        .collect()
}

fn concat(files: &[&str]) -> Vec<f32> {
    files.iter().flat_map(|f| load(&shared().join(f))).collect()
}

fn mix(
    background: &[f32],
    offset: usize,
    event: &[f32],
    snr: f32,
    at: usize,
) -> (Vec<f32>, usize, usize) {
    let n = (SEGMENT_S * RATE as f32) as usize;
    let mut out: Vec<f32> = (0..n)
        .map(|i| background[(offset + i) % background.len()])
        .collect();
    let (a, b) = active_region(event);
    let event = &event[..event.len().min(n - at)];
    let b = b.min(event.len());
    let bg = rms(&out[at + a..at + b]).max(1e-6);
    let gain = bg * 10f32.powf(snr / 20.0) / rms(&event[a..b]).max(1e-9);
    for (o, e) in out[at..].iter_mut().zip(event) {
        *o += gain * e;
    }
    // Keep the mixture in range the way a recorder's limiter would: scale, never clip.
    let peak = out.iter().fold(0.0f32, |p, x| p.max(x.abs()));
    if peak > 0.99 {
        out.iter_mut().for_each(|x| *x *= 0.99 / peak);
    }
    (out, at + a, at + b)
}

#[derive(Clone, Debug)]
struct Setting {
    defaults: EventDefaults,
    smoothing: Option<&'static str>,
    confusers: bool,
}

fn groups(
    preset: &Preset,
    setting: &Setting,
    labels: &[String],
    watch: &[&str],
) -> Vec<ResolvedGroup> {
    watch
        .iter()
        .map(|name| {
            // The AudioSet classes: the heads are compared at the end, in `heads`.
            let mut spec = preset.groups[*name].clone();
            spec.head = None;
            if let Some(s) = setting.smoothing {
                spec.overrides.smoothing = gstaudiotagger::tags::groups::parse_smoothing(s);
            }
            if !setting.confusers
                && let gstaudiotagger::tags::groups::GroupKind::Classes {
                    confuser_margin, ..
                } = &mut spec.kind
            {
                *confuser_margin = 0.0;
            }
            ResolvedGroup::resolve(&spec, labels, &setting.defaults).unwrap()
        })
        .collect()
}

/// (group, start, end) of every event detected in the windows.
fn detect(windows: &[Window], groups: Vec<ResolvedGroup>) -> Vec<(String, u64, u64)> {
    reports(windows, groups)
        .into_iter()
        .filter(|e| matches!(e.phase, Phase::Stop(_)))
        .map(|e| (e.group, e.start, e.end.unwrap_or(e.start)))
        .collect()
}

/// Every start and stop of the groups over the windows, ending at the last one.
fn reports(windows: &[Window], groups: Vec<ResolvedGroup>) -> Vec<EventReport> {
    let mut det = EventDetector::new();
    let mut out: Vec<EventReport> = Vec::new();
    det.configure(groups, &mut out);
    for w in windows {
        det.push(
            &Observation {
                start: w.start,
                end: w.end,
                scores: w.scores.as_deref(),
                level: w.level,
            },
            &mut out,
        );
    }
    det.close(StopReason::Eos, &mut out);
    out
}

#[derive(Default, Clone, Copy)]
struct Counts {
    truths: u32,
    found: u32,
    detections: u32,
    correct: u32,
    onset_err_sum: f64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.truths += o.truths;
        self.found += o.found;
        self.detections += o.detections;
        self.correct += o.correct;
        self.onset_err_sum += o.onset_err_sum;
    }
    fn precision(&self) -> f64 {
        self.correct as f64 / self.detections.max(1) as f64
    }
    fn recall(&self) -> f64 {
        self.found as f64 / self.truths.max(1) as f64
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    fn onset_ms(&self) -> f64 {
        self.onset_err_sum / self.found.max(1) as f64 / 1e6
    }
}

fn evaluate(mix: &Mixture, detections: &[(String, u64, u64)], group: &str) -> Counts {
    let mut c = Counts::default();
    let truth = mix.truth.as_ref().filter(|t| t.0 == group);
    if truth.is_some() {
        c.truths = 1;
    }
    let mut first: Option<u64> = None;
    for (g, s, e) in detections.iter().filter(|d| d.0 == group) {
        c.detections += 1;
        if let Some((_, ts, te)) = truth
            && *s <= te + COLLAR_NS
            && *e + COLLAR_NS >= *ts
        {
            c.correct += 1;
            first.get_or_insert(*s);
        }
        let _ = g;
    }
    if let (Some(s), Some((_, ts, _))) = (first, truth) {
        c.found = 1;
        c.onset_err_sum = s.abs_diff(*ts) as f64;
    }
    c
}

/// What one model scored, for the comparison of backbones.
struct Summary {
    model: String,
    /// Per watched group: the best F1 with at most 2 false alarms per hour.
    best_f1: Vec<(String, f64)>,
    shipped: Counts,
    shipped_fa_per_hour: f64,
    model_seconds: f64,
}

fn main() {
    // `cargo test --all-targets` runs bench binaries too; the evaluation is for `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("event evaluation: run it with `cargo bench --bench events`");
        return;
    }
    // Another backbone's windows: `EVENTS_WINDOW_S` seconds every 0.5 s.
    let window_s: Option<f64> = std::env::var("EVENTS_WINDOW_S")
        .ok()
        .map(|v| v.parse().expect("EVENTS_WINDOW_S is seconds"));
    if std::env::var_os("EVENTS_BACKBONES").is_none() {
        // The model with the trained heads when set-up built it: its AudioSet scores are the
        // backbone's own, so the zero-shot figures below are the plain model's.
        let model_path = std::env::var_os("HEADS_MODEL")
            .map(PathBuf::from)
            .or_else(|| {
                let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet-heads.onnx");
                p.exists().then_some(p)
            })
            .unwrap_or_else(model::default_model_path);
        evaluate_model(&model_path, window_s);
        return;
    }
    let summaries: Vec<Summary> = BACKBONES
        .iter()
        .map(|(file, window_s)| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("models")
                .join(file);
            evaluate_model(&path, *window_s)
        })
        .collect();
    println!(
        "\nbackbones, zero-shot AudioSet groups (best F1 per group at <= 2 FA/h on the background; shipped preset, tuned on YAMNet):"
    );
    let groups: Vec<&str> = summaries[0]
        .best_f1
        .iter()
        .map(|(g, _)| g.as_str())
        .collect();
    println!(
        "| model | {} | mean | shipped P | shipped R | shipped F1 | onset ms | FA/h | model s |",
        groups.join(" | ")
    );
    for s in &summaries {
        let f1: Vec<String> = s.best_f1.iter().map(|(_, f)| format!("{f:.2}")).collect();
        let mean = s.best_f1.iter().map(|(_, f)| f).sum::<f64>() / s.best_f1.len() as f64;
        println!(
            "| {} | {} | {mean:.3} | {:.3} | {:.3} | {:.3} | {:.0} | {:.1} | {:.0} |",
            s.model,
            f1.join(" | "),
            s.shipped.precision(),
            s.shipped.recall(),
            s.shipped.f1(),
            s.shipped.onset_ms(),
            s.shipped_fa_per_hour,
            s.model_seconds
        );
    }
}

/// The whole evaluation of one model, printed; returns its summary.
fn evaluate_model(model_path: &Path, window_s: Option<f64>) -> Summary {
    let started = Instant::now();
    println!(
        "model: {}{}",
        model_path.display(),
        window_s.map_or(String::new(), |s| format!(", {s} s windows every 0.5 s"))
    );
    let rate = ModelSession::load(model_path, &SessionOptions::default())
        .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"))
        .descriptor()
        .frontend
        .sample_rate as f64;
    let mut session = ModelSession::load(
        model_path,
        &SessionOptions {
            threads: 0,
            window_samples: window_s.map(|s| (s * rate).round() as usize),
            hop_samples: window_s.map(|_| (rate / 2.0) as usize),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{e}: run scripts/setup.sh first"));
    let labels = session.descriptor().labels.clone();
    let preset = Preset::builtin();

    let backgrounds: Vec<(&'static str, Vec<f32>)> = vec![
        (
            "speech",
            concat(&[
                "long/speech__asterisk__1.wav",
                "long/speech__asterisk__2.wav",
                "long/speech__asterisk__3.wav",
            ]),
        ),
        (
            "music",
            concat(&[
                "long/music__librosa__1.wav",
                "long/music__librosa__2.wav",
                "long/music__asteriskmoh__1.wav",
            ]),
        ),
        (
            "street",
            concat(&[
                "rain__freesound__1.wav",
                "train__freesound__1.wav",
                "engine__freesound__1.wav",
            ]),
        ),
    ];

    let clips: Vec<(String, String, Vec<f32>)> = manifest()
        .into_iter()
        .filter(|(_, label)| target_group(label).is_some() || is_non_target(label))
        .map(|(file, label)| {
            let audio = load(&shared().join(&file));
            (file, label, audio)
        })
        .collect();

    let mut mixtures = Vec::new();
    let mut mixture_labels: Vec<String> = Vec::new();
    let mut k = 0usize;
    let mut audio_s = 0.0f64;
    for (bg_name, bg) in &backgrounds {
        for (_, label, audio) in &clips {
            let snrs: &[f32] = if target_group(label).is_some() {
                &SNRS
            } else {
                &[10.0]
            };
            for &snr in snrs {
                k += 1;
                // Spread offsets over the background and the insertion over the window grid.
                let offset = (k * 7_919 * 160) % bg.len();
                let at = (INSERT_AT_S * RATE as f32) as usize + (k % 6) * 1280;
                let (audio, a, b) = mix(bg, offset, audio, snr, at);
                audio_s += audio.len() as f64 / RATE as f64;
                let ns = |s: usize| s as u64 * 1_000_000_000 / RATE as u64;
                mixture_labels.push(label.clone());
                if std::env::var("EVAL_DEBUG").is_ok_and(|d| d == *label) {
                    let windows = score(&mut session, &audio);
                    println!(
                        "{label} in {bg_name} at {snr} dB, event {:.2}-{:.2} s:",
                        a as f32 / 16000.0,
                        b as f32 / 16000.0
                    );
                    for w in &windows {
                        let s = w.scores.as_ref().unwrap();
                        let mut top: Vec<usize> = (0..s.len()).collect();
                        top.sort_by(|&x, &y| s[y].total_cmp(&s[x]));
                        println!(
                            "  {:.2}: {:?}",
                            w.start as f64 / 1e9,
                            top[..3]
                                .iter()
                                .map(|&i| (&labels[i], (s[i] * 100.0).round() / 100.0))
                                .collect::<Vec<_>>()
                        );
                    }
                }
                mixtures.push(Mixture {
                    windows: score(&mut session, &audio),
                    audio,
                    truth: target_group(label).map(|g| (g.to_string(), ns(a), ns(b))),
                    snr,
                    background: bg_name,
                });
            }
        }
    }
    // Backgrounds alone, for false alarms per hour.
    let mut background_only = Vec::new();
    let mut background_audio = Vec::new();
    let mut background_s = 0.0f64;
    let long_files: Vec<String> = std::fs::read_dir(shared().join("long"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for f in &long_files {
        let audio = load(Path::new(f));
        background_s += audio.len() as f64 / RATE as f64;
        background_only.push(score(&mut session, &audio));
        background_audio.push(audio);
    }
    let street: Vec<f32> = backgrounds[2]
        .1
        .iter()
        .copied()
        .cycle()
        .take(RATE as usize * 120)
        .collect();
    background_s += street.len() as f64 / RATE as f64;
    background_only.push(score(&mut session, &street));
    background_audio.push(street);
    let windows: usize = mixtures.iter().map(|m| m.windows.len()).sum::<usize>()
        + background_only.iter().map(Vec::len).sum::<usize>();
    let scored_in = started.elapsed().as_secs_f64();
    println!(
        "{} mixtures ({:.0} min) + {:.0} min of background alone, {windows} windows scored in {scored_in:.0} s",
        mixtures.len(),
        audio_s / 60.0,
        background_s / 60.0,
    );

    let watch = ["gunshot", "glass", "dog", "baby-cry", "siren"];
    let base = EventDefaults::default();
    let shipped = Setting {
        defaults: base.clone(),
        smoothing: None,
        confusers: true,
    };
    let fa_per_hour = |gs: &[ResolvedGroup]| {
        background_only
            .iter()
            .map(|w| detect(w, gs.to_vec()).len())
            .sum::<usize>() as f64
            / (background_s / 3600.0)
    };
    let counts = |gs: &[ResolvedGroup], only: &str| {
        let mut c = Counts::default();
        for m in &mixtures {
            let d = detect(&m.windows, gs.to_vec());
            for g in watch.iter().filter(|g| only.is_empty() || **g == only) {
                c.add(evaluate(m, &d, g));
            }
        }
        c
    };

    // Per group: the on-threshold (off = half of it) and smoothing with the best F1 among the
    // settings with at most 2 false alarms per hour of background; the basis of the preset.
    println!(
        "\nper group, best F1 with FA/h <= 2 (hold 0.5 s, min-duration 0, off = on / 2), and the shipped preset:"
    );
    println!(
        "{:<9} {:<28} {:>6} {:>6} {:>6} {:>9} {:>6} | {:>20}",
        "group",
        "best setting",
        "prec",
        "recall",
        "F1",
        "onset ms",
        "FA/h",
        "confusers off: F1 FA/h"
    );
    let mut best_f1 = Vec::new();
    for g in watch {
        // (F1, setting, counts, FA/h, F1 and FA/h without confusers)
        let mut best: Option<(f64, String, Counts, f64, f64, f64)> = None;
        let mut unset = preset.clone();
        for spec in unset.groups.values_mut() {
            spec.overrides.on_threshold = None;
            spec.overrides.off_threshold = None;
            spec.overrides.smoothing = None;
        }
        for on in [0.1f32, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9] {
            for smoothing in ["none", "mean"] {
                let mut s = Setting {
                    defaults: EventDefaults {
                        on_threshold: on,
                        off_threshold: on / 2.0,
                        ..base.clone()
                    },
                    smoothing: Some(smoothing),
                    confusers: true,
                };
                let gs = groups(&unset, &s, &labels, &[g]);
                let (c, fa) = (counts(&gs, g), fa_per_hour(&gs));
                if fa <= 2.0 && best.as_ref().is_none_or(|b| c.f1() > b.0) {
                    s.confusers = false;
                    let gs_off = groups(&unset, &s, &labels, &[g]);
                    best = Some((
                        c.f1(),
                        format!("on {on:.2} smoothing {smoothing}"),
                        c,
                        fa,
                        counts(&gs_off, g).f1(),
                        fa_per_hour(&gs_off),
                    ));
                }
            }
        }
        best_f1.push((g.to_string(), best.as_ref().map_or(0.0, |b| b.0)));
        if let Some((_, name, c, fa, f1_off, fa_off)) = best {
            println!(
                "{g:<9} {name:<28} {:>6.3} {:>6.3} {:>6.3} {:>9.0} {:>6.1} | {:>13.3} {:>6.1}",
                c.precision(),
                c.recall(),
                c.f1(),
                c.onset_ms(),
                fa,
                f1_off,
                fa_off
            );
        }
        let gs = groups(&preset, &shipped, &labels, &[g]);
        let c = counts(&gs, g);
        println!(
            "{:<9} {:<28} {:>6.3} {:>6.3} {:>6.3} {:>9.0} {:>6.1}",
            "",
            "shipped preset",
            c.precision(),
            c.recall(),
            c.f1(),
            c.onset_ms(),
            fa_per_hour(&gs)
        );
    }
    let gs = groups(&preset, &shipped, &labels, &watch);
    let c = counts(&gs, "");
    let summary = Summary {
        model: format!(
            "{}{}",
            model_path.file_stem().unwrap_or_default().to_string_lossy(),
            window_s.map_or(String::new(), |s| format!(" {s} s"))
        ),
        best_f1,
        shipped: c,
        shipped_fa_per_hour: fa_per_hour(&gs),
        model_seconds: scored_in,
    };
    println!(
        "all five groups, shipped preset: precision {:.3}, recall {:.3}, F1 {:.3}, onset error {:.0} ms, FA/h {:.1}",
        c.precision(),
        c.recall(),
        c.f1(),
        c.onset_ms(),
        fa_per_hour(&gs)
    );

    // Per group: how high the group's score gets on its own events (the best window touching
    // the event) against the background alone, the basis for per-group thresholds.
    println!(
        "\ngroup score: peak on its events (median, 25th pct per SNR) vs background windows (99.9th pct, max)"
    );
    for g in watch {
        let ids: Vec<usize> = match &preset.groups[g].kind {
            gstaudiotagger::tags::groups::GroupKind::Classes { classes, .. } => classes
                .iter()
                .map(|c| labels.iter().position(|l| l == c).unwrap())
                .collect(),
            _ => continue,
        };
        let group_score = |w: &Window| {
            w.scores
                .as_ref()
                .map_or(0.0, |s| ids.iter().map(|&i| s[i]).fold(0.0f32, f32::max))
        };
        let mut line = format!("{g:<9}");
        for snr in SNRS {
            let mut peaks: Vec<f32> = mixtures
                .iter()
                .filter(|m| m.snr == snr && m.truth.as_ref().is_some_and(|t| t.0 == g))
                .map(|m| {
                    let (_, ts, te) = m.truth.as_ref().unwrap();
                    m.windows
                        .iter()
                        .filter(|w| w.start <= *te && w.end >= *ts)
                        .map(group_score)
                        .fold(0.0, f32::max)
                })
                .collect();
            peaks.sort_by(f32::total_cmp);
            line += &format!(
                "  {snr:>2} dB: {:.2} {:.2}",
                peaks[peaks.len() / 2],
                peaks[peaks.len() / 4]
            );
        }
        let mut bg: Vec<f32> = background_only.iter().flatten().map(group_score).collect();
        bg.sort_by(f32::total_cmp);
        line += &format!(
            "  | background {:.2} {:.2}",
            bg[bg.len() * 999 / 1000],
            bg[bg.len() - 1]
        );
        println!("{line}");
    }
    // Where the shipped defaults' false detections come from: (group, inserted label).
    let mut wrong: std::collections::BTreeMap<(String, String), u32> = Default::default();
    {
        let gs = groups(&preset, &shipped, &labels, &watch);
        for (m, label) in mixtures.iter().zip(&mixture_labels) {
            for (g, s, e) in detect(&m.windows, gs.clone()) {
                let ok = m.truth.as_ref().is_some_and(|(tg, ts, te)| {
                    *tg == g && s <= te + COLLAR_NS && e + COLLAR_NS >= *ts
                });
                if !ok {
                    *wrong
                        .entry((g, format!("{label} in {}", m.background)))
                        .or_default() += 1;
                }
            }
        }
    }
    println!("\nfalse detections of the shipped defaults (group <- inserted sound in background):");
    for ((g, what), n) in &wrong {
        println!("  {g:<9} <- {what}: {n}");
    }

    // The shipped defaults in detail.
    let gs = groups(&preset, &shipped, &labels, &watch);
    println!("\nshipped defaults, per group and SNR (recall / precision, onset error):");
    let detections: Vec<_> = mixtures
        .iter()
        .map(|m| detect(&m.windows, gs.clone()))
        .collect();
    for g in watch {
        let mut line = format!("{g:<9}");
        let mut all = Counts::default();
        for snr in SNRS {
            let mut c = Counts::default();
            for (m, d) in mixtures.iter().zip(&detections) {
                if m.snr == snr {
                    c.add(evaluate(m, d, g));
                }
            }
            all.add(c);
            line += &format!("  {snr:>2} dB: R {:.2} P {:.2}", c.recall(), c.precision());
        }
        let fa: usize = background_only
            .iter()
            .map(|w| detect(w, gs.clone()).iter().filter(|d| d.0 == g).count())
            .sum();
        line += &format!(
            "  | all: F1 {:.2}, onset {:.0} ms, FA/h {:.1}",
            all.f1(),
            all.onset_ms(),
            fa as f64 / (background_s / 3600.0)
        );
        println!("{line}");
    }
    for bg in ["speech", "music", "street"] {
        let mut c = Counts::default();
        for (m, d) in mixtures.iter().zip(&detections) {
            if m.background == bg {
                for g in watch {
                    c.add(evaluate(m, d, g));
                }
            }
        }
        println!(
            "on {bg:<7}: precision {:.3}, recall {:.3}, F1 {:.3}",
            c.precision(),
            c.recall(),
            c.f1()
        );
    }

    // The loud group: every inserted sound (target or not) is a truth.
    println!("\nloud group (a rise over the background, whatever the sound):");
    let loud_settings = [
        (15.0f32, 0.0f32),
        (20.0, 0.0),
        (25.0, 0.0),
        (30.0, 0.0),
        (200.0, -20.0),
        (200.0, -10.0),
        (200.0, -6.0),
    ];
    for (rise, level) in loud_settings {
        let d = EventDefaults {
            loud_rise_db: rise,
            loud_level_db: level,
            ..base.clone()
        };
        let mut spec = preset.groups["loud"].clone();
        if let gstaudiotagger::tags::groups::GroupKind::Level { rise_db, level_db } = &mut spec.kind
        {
            *rise_db = None;
            *level_db = None;
        }
        let g = ResolvedGroup::resolve(&spec, &labels, &d).unwrap();
        let mut line = if rise < 100.0 {
            format!("rise {rise:>2} dB, no level:   ")
        } else {
            format!("level {level:>3} dBFS, no rise:")
        };
        for snr in SNRS {
            let (mut hit, mut n) = (0, 0);
            for m in mixtures
                .iter()
                .filter(|m| m.snr == snr && m.truth.is_some())
            {
                let (_, ts, te) = m.truth.as_ref().unwrap();
                n += 1;
                if detect(&m.windows, vec![g.clone()])
                    .iter()
                    .any(|(_, s, e)| *s <= te + COLLAR_NS && *e + COLLAR_NS >= *ts)
                {
                    hit += 1;
                }
            }
            line += &format!("  {snr:>2} dB recall {:.2}", hit as f64 / n.max(1) as f64);
        }
        let fa: usize = background_only
            .iter()
            .map(|w| detect(w, vec![g.clone()]).len())
            .sum();
        line += &format!("  FA/h {:.1}", fa as f64 / (background_s / 3600.0));
        println!("{line}");
    }
    let gated = mixtures
        .iter()
        .flat_map(|m| &m.windows)
        .chain(background_only.iter().flatten())
        .filter(|w| w.scores.is_none())
        .count();
    println!(
        "\nlevel gate at {MIN_LEVEL_DB} dBFS skipped {gated} of {windows} windows in {:.0} s",
        started.elapsed().as_secs_f64()
    );

    if labels.iter().any(|l| l.starts_with("head/")) {
        let train_root = shared().join("../train");
        match heads::read_split(model_path, &train_root) {
            Ok(split) => {
                let validation = heads::validation_set(&mut session, &split);
                let windows: usize = validation
                    .mixtures
                    .iter()
                    .map(|m| m.windows.len())
                    .sum::<usize>()
                    + validation.alone.iter().map(Vec::len).sum::<usize>();
                println!(
                    "\nvalidation set: {} mixtures and {:.0} min of held-out backgrounds, {windows} windows",
                    validation.mixtures.len(),
                    validation.alone_s / 60.0
                );
                let external = heads::EvalSet {
                    name: "external",
                    mixtures,
                    inserted: mixture_labels,
                    alone: background_only,
                    alone_audio: background_audio,
                    alone_s: background_s,
                };
                let chosen = heads::compare(&labels, &validation, &external);
                println!("\nhead settings chosen on validation (best F1 at <= 1 FA/h): {chosen:?}");
                second_look::compare(&labels, &validation, &external);
            }
            Err(e) => println!("\nno head comparison: {e}"),
        }
    }
    println!("done in {:.0} s", started.elapsed().as_secs_f64());
    summary
}
