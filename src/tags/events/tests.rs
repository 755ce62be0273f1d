// SPDX-License-Identifier: MPL-2.0

//! The hysteresis logic on synthetic score sequences: YAMNet's geometry (0.96 s windows every
//! 0.48 s), one class group and its confuser.

use super::*;
use crate::tags::groups::Preset;

const HOP: u64 = 480_000_000;
const WIN: u64 = 960_000_000;

fn labels() -> Vec<String> {
    ["Speech", "Gunshot, gunfire", "Fireworks", "Glass"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn group(toml: &str, d: &EventDefaults) -> ResolvedGroup {
    let preset = Preset::parse(toml).unwrap();
    let spec = preset.groups.values().next().unwrap();
    ResolvedGroup::resolve(spec, &labels(), d).unwrap()
}

fn gunshot(d: &EventDefaults) -> ResolvedGroup {
    group(
        "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\nconfusers = [\"Fireworks\"]\n",
        d,
    )
}

fn level(db: f32) -> Level {
    Level {
        rms_db: db,
        peak_db: db + 3.0,
        short_term_db: db,
    }
}

/// Feeds windows whose gunshot score is `shot[i]` and fireworks score `fireworks[i]`.
fn run(det: &mut EventDetector, shot: &[f32], fireworks: &[f32]) -> Vec<EventReport> {
    let mut out = Vec::new();
    for (i, &g) in shot.iter().enumerate() {
        let scores = [0.0, g, fireworks.get(i).copied().unwrap_or(0.0), 0.0];
        let start = i as u64 * HOP;
        det.push(
            &Observation {
                start,
                end: start + WIN,
                scores: Some(&scores),
                level: level(-30.0),
            },
            &mut out,
        );
    }
    out
}

fn detector(g: ResolvedGroup) -> EventDetector {
    let mut d = EventDetector::new();
    let mut out = Vec::new();
    d.configure(vec![g], &mut out);
    assert!(out.is_empty());
    d
}

fn phases(events: &[EventReport]) -> Vec<(Phase, u64, Option<u64>)> {
    events.iter().map(|e| (e.phase, e.start, e.end)).collect()
}

#[test]
fn a_single_window_shot_fires_with_onset_and_end_from_the_windows() {
    let d = EventDefaults {
        hold: 0.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    // Windows 0-3 quiet, window 4 = [1.92, 2.88] s hears the shot, window 5 does not.
    let ev = run(&mut det, &[0.0, 0.0, 0.0, 0.0, 0.8, 0.0, 0.0], &[]);
    // Onset: the part of window 4 that window 3 ([1.44, 2.40]) did not cover; end: where
    // window 5 starts.
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, 3 * HOP + WIN, None),
            (Phase::Stop(StopReason::Ended), 3 * HOP + WIN, Some(5 * HOP))
        ]
    );
    assert_eq!(ev[0].peak_score, 0.8);
    assert_eq!(ev[0].peak_at, 4 * HOP);
    assert_eq!(ev[1].classes, [(1, 0.8)]);
}

#[test]
fn the_first_window_of_the_stream_starts_at_its_own_start() {
    let mut det = detector(gunshot(&EventDefaults::default()));
    let ev = run(&mut det, &[0.9], &[]);
    assert_eq!(phases(&ev), [(Phase::Start, 0, None)]);
}

#[test]
fn hysteresis_keeps_an_event_between_the_thresholds_and_onset_precedes_the_decision() {
    let d = EventDefaults {
        on_threshold: 0.5,
        off_threshold: 0.2,
        hold: 0.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    // Rises through the off-threshold at window 2, passes on at window 3, stays above off
    // until window 6.
    let ev = run(&mut det, &[0.0, 0.1, 0.3, 0.6, 0.25, 0.3, 0.1, 0.0], &[]);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, HOP + WIN, None),
            (Phase::Stop(StopReason::Ended), HOP + WIN, Some(6 * HOP))
        ]
    );
}

#[test]
fn a_dip_shorter_than_hold_does_not_split_the_event() {
    let d = EventDefaults {
        hold: 1.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    let ev = run(&mut det, &[0.9, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0], &[]);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, 0, None),
            (Phase::Stop(StopReason::Ended), 0, Some(4 * HOP))
        ]
    );
    // Decided only once the score stayed below off for `hold`: window 7 ends 1.44 s after
    // the end of window 4, the first one below.
    let mut det = detector(gunshot(&d));
    let ev = run(&mut det, &[0.9, 0.0, 0.0, 0.0], &[]);
    assert_eq!(ev.len(), 1, "still held at window 3: {ev:?}");
}

#[test]
fn min_duration_drops_blips_and_keeps_the_onset_of_longer_sounds() {
    let d = EventDefaults {
        min_duration: 1.5,
        hold: 0.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    assert!(run(&mut det, &[0.0, 0.9, 0.0, 0.0], &[]).is_empty());
    // Onset 0.96 s; four active windows reach the start of window 5, 2.40 s: 1.44 s, short.
    let mut det = detector(gunshot(&d));
    let ev = run(&mut det, &[0.0, 0.9, 0.9, 0.9, 0.9, 0.0], &[]);
    assert!(ev.is_empty(), "{ev:?}");
    // Five reach 2.88 s: announced at window 5 with the onset of window 1.
    let mut det = detector(gunshot(&d));
    let ev = run(&mut det, &[0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.0], &[]);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, WIN, None),
            (Phase::Stop(StopReason::Ended), WIN, Some(6 * HOP))
        ]
    );
}

#[test]
fn refractory_turns_a_burst_into_one_alarm_and_counts_the_rest() {
    let d = EventDefaults {
        hold: 0.0,
        refractory: 5.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    // Shots in windows 0, 4, 8 (1.92 s apart, each inside 5 s of the previous one's end),
    // then one in window 24, 7.5 s after the last.
    let mut shot = vec![0.0; 26];
    for i in [0, 4, 8, 24] {
        shot[i] = 0.9;
    }
    let ev = run(&mut det, &shot, &[]);
    let starts: Vec<_> = ev.iter().filter(|e| e.phase == Phase::Start).collect();
    assert_eq!(starts.len(), 2, "{ev:?}");
    assert_eq!(starts[1].start, 23 * HOP + WIN);
    assert_eq!(starts[1].suppressed, 2);
    // Without refractory every shot is an event.
    let mut det = detector(gunshot(&EventDefaults {
        hold: 0.0,
        ..Default::default()
    }));
    let ev = run(&mut det, &shot, &[]);
    assert_eq!(ev.iter().filter(|e| e.phase == Phase::Start).count(), 4);
}

#[test]
fn confusers_veto_the_onset_but_not_the_continuation() {
    let d = EventDefaults {
        hold: 0.0,
        ..Default::default()
    };
    let mut det = detector(gunshot(&d));
    // Fireworks beat the gunshot class: no event.
    assert!(run(&mut det, &[0.0, 0.5, 0.5, 0.0], &[0.0, 0.7, 0.6, 0.0]).is_empty());
    // The gunshot wins at onset, then fireworks rise: one event over both windows.
    let mut det = detector(gunshot(&d));
    let ev = run(&mut det, &[0.0, 0.6, 0.5, 0.0], &[0.0, 0.2, 0.7, 0.0]);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, WIN, None),
            (Phase::Stop(StopReason::Ended), WIN, Some(3 * HOP))
        ]
    );
    // A margin of 0 switches the veto off.
    let mut det = detector(group(
        "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\nconfusers = [\"Fireworks\"]\n\
         confuser-margin = 0.0\n",
        &d,
    ));
    assert_eq!(
        run(&mut det, &[0.0, 0.5, 0.5, 0.0], &[0.0, 0.7, 0.6, 0.0]).len(),
        2
    );
}

#[test]
fn smoothing_mean_needs_two_windows_of_evidence() {
    let d = EventDefaults {
        hold: 0.0,
        ..Default::default()
    };
    let g = group(
        "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\nsmoothing = \"mean\"\n",
        &d,
    );
    let mut det = detector(g.clone());
    // 0.5 alone averages to 0.25 < 0.3.
    assert!(run(&mut det, &[0.0, 0.5, 0.0, 0.0], &[]).is_empty());
    let mut det = detector(g);
    let ev = run(&mut det, &[0.0, 0.5, 0.5, 0.0, 0.0, 0.0], &[]);
    // Decided at window 2, onset from window 1.
    assert_eq!(ev[0].start, WIN);
}

#[test]
fn close_ends_open_events_and_skips_unannounced_ones() {
    let mut det = detector(gunshot(&EventDefaults::default()));
    let mut ev = run(&mut det, &[0.0, 0.9, 0.9], &[]);
    det.close(StopReason::Eos, &mut ev);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, WIN, None),
            (Phase::Stop(StopReason::Eos), WIN, Some(2 * HOP + WIN))
        ]
    );
    let mut det = detector(gunshot(&EventDefaults {
        min_duration: 10.0,
        ..Default::default()
    }));
    let mut ev = run(&mut det, &[0.9, 0.9], &[]);
    det.close(StopReason::Flush, &mut ev);
    assert!(ev.is_empty());
}

#[test]
fn reconfiguring_keeps_open_events_and_closes_removed_groups() {
    let d = EventDefaults::default();
    let mut det = detector(gunshot(&d));
    let mut ev = run(&mut det, &[0.9, 0.9], &[]);
    assert_eq!(ev.len(), 1);
    // New thresholds: the open event goes on without a second start.
    det.configure(
        vec![gunshot(&EventDefaults {
            on_threshold: 0.95,
            off_threshold: 0.5,
            ..d.clone()
        })],
        &mut ev,
    );
    assert_eq!(ev.len(), 1);
    // Gone from watch: closed.
    det.configure(vec![], &mut ev);
    assert_eq!(ev[1].phase, Phase::Stop(StopReason::Unwatched));
    assert!(det.is_empty());
}

#[test]
fn gated_windows_score_zero() {
    let mut det = detector(gunshot(&EventDefaults {
        hold: 0.0,
        ..Default::default()
    }));
    let mut out = Vec::new();
    for (i, scores) in [Some([0.0, 0.9, 0.0, 0.0]), None].iter().enumerate() {
        let start = i as u64 * HOP;
        det.push(
            &Observation {
                start,
                end: start + WIN,
                scores: scores.as_ref().map(|s| &s[..]),
                level: level(-90.0),
            },
            &mut out,
        );
    }
    assert_eq!(out.len(), 2);
}

#[test]
fn the_loud_group_fires_on_an_absolute_level_or_a_rise_over_the_background() {
    let d = EventDefaults {
        hold: 0.0,
        loud_level_db: -10.0,
        loud_rise_db: 20.0,
        ..Default::default()
    };
    let loud = group("[group.loud]\nkind = \"level\"\n", &d);
    let feed = |levels: &[f32]| {
        let mut det = detector(loud.clone());
        let mut out = Vec::new();
        for (i, &db) in levels.iter().enumerate() {
            let start = i as u64 * HOP;
            det.push(
                &Observation {
                    start,
                    end: start + WIN,
                    scores: None,
                    level: level(db),
                },
                &mut out,
            );
        }
        out
    };
    // A quiet room at -60 dBFS, then a bang at -35: a 25 dB rise.
    let ev = feed(&[-60.0, -61.0, -60.0, -35.0, -60.0, -60.0]);
    assert_eq!(
        phases(&ev),
        [
            (Phase::Start, 2 * HOP + WIN, None),
            (Phase::Stop(StopReason::Ended), 2 * HOP + WIN, Some(4 * HOP))
        ]
    );
    assert_eq!(ev[0].peak_level_db, -35.0);
    // Loud music all along: no rise, but over the absolute level.
    let ev = feed(&[-8.0, -8.0, -8.0]);
    assert_eq!(phases(&ev), [(Phase::Start, 0, None)]);
    // Steady speech at -25: nothing.
    assert!(feed(&[-25.0; 20]).is_empty());
    // A slow fade-in is no sudden rise: the background follows it.
    let fade: Vec<f32> = (0..40).map(|i| -70.0 + i as f32).collect();
    assert!(feed(&fade).is_empty());
}

#[test]
fn unknown_classes_in_a_group_name_the_group() {
    let preset = Preset::parse("[group.cat]\nclasses = [\"Meow\"]\n").unwrap();
    let err = ResolvedGroup::resolve(&preset.groups["cat"], &labels(), &EventDefaults::default())
        .unwrap_err();
    assert!(err.contains("'cat'") && err.contains("Meow"), "{err}");
}

#[test]
fn every_shipped_group_resolves_against_yamnet() {
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/models/yamnet_class_map.csv");
    let text = std::fs::read_to_string(&map).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (../shared must sit beside the repo)",
            map.display()
        )
    });
    let yamnet: Vec<String> = text
        .lines()
        .skip(1)
        .map(|l| {
            let name = l.splitn(3, ',').nth(2).unwrap_or_default();
            name.trim_matches('"').to_string()
        })
        .collect();
    assert_eq!(yamnet.len(), 521);
    for spec in Preset::builtin().groups.values() {
        ResolvedGroup::resolve(spec, &yamnet, &EventDefaults::default())
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_group_scores_on_its_head_classes_when_the_model_has_them() {
    let preset = Preset::parse(
        "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\non-threshold = 0.15\n\
         [group.gunshot.head]\nclasses = [\"head/gunshot\"]\nconfusers = [\"head/fireworks\"]\n\
         on-threshold = 0.8\n",
    )
    .unwrap();
    let spec = &preset.groups["gunshot"];
    let d = EventDefaults::default();
    // A model without heads: the AudioSet classes and their threshold.
    let plain = ResolvedGroup::resolve(spec, &labels(), &d).unwrap();
    assert!(!plain.uses_head);
    assert_eq!(plain.on_threshold, 0.15);
    // With heads: the head's classes, confusers and threshold; the AudioSet threshold is not
    // carried over, the element's off-threshold is.
    let mut with_heads = labels();
    with_heads.extend(["head/gunshot".to_string(), "head/fireworks".to_string()]);
    let head = ResolvedGroup::resolve(spec, &with_heads, &d).unwrap();
    assert!(head.uses_head);
    assert_eq!(
        (head.on_threshold, head.off_threshold),
        (0.8, d.off_threshold)
    );
    let mut det = EventDetector::new();
    let mut out = Vec::new();
    det.configure(vec![head], &mut out);
    let window = |i: u64, shot: f32, fireworks: f32, audioset: f32| {
        let mut s = vec![0.0; with_heads.len()];
        s[1] = audioset;
        s[4] = shot;
        s[5] = fireworks;
        (i * HOP, s)
    };
    // AudioSet's gunshot score alone starts nothing; the head beating fireworks does; the head
    // below its fireworks class does not.
    for (i, (shot, fw, audioset)) in [
        (0.0, 0.0, 0.9),
        (0.0, 0.0, 0.0),
        (0.9, 0.95, 0.0),
        (0.0, 0.0, 0.0),
        (0.9, 0.1, 0.0),
    ]
    .into_iter()
    .enumerate()
    {
        let (start, scores) = window(i as u64, shot, fw, audioset);
        det.push(
            &Observation {
                start,
                end: start + WIN,
                scores: Some(&scores),
                level: level(-20.0),
            },
            &mut out,
        );
    }
    let starts: Vec<u64> = out
        .iter()
        .filter(|e| e.phase == Phase::Start)
        .map(|e| e.peak_at)
        .collect();
    assert_eq!(starts, [4 * HOP]);
}
