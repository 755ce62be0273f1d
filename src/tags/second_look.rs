// SPDX-License-Identifier: MPL-2.0

//! The second look (GL-AT, `../shared/docs/seeds.md` §2.6), free of GStreamer: a group's event
//! starts only when a second, stronger model confirms it on a few seconds of audio around the
//! first stage's onset.
//!
//! The first stage runs at a low threshold and proposes candidates; their starts (and stops, if
//! they come first) are held here until the audio of the look has arrived and the second model
//! has scored it. A confirmed candidate's start goes out with the first stage's onset and both
//! stages' scores; a rejected one's start and stop are dropped. Groups without a look pass
//! through untouched. A group's candidates go out in the order the first stage proposed them,
//! whatever order their verdicts come back in.
//!
//! Times are nanoseconds on the caller's clock, as the first stage's reports.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::events::{Confirmation, EventReport, Phase, ResolvedGroup, find_labels};
use super::groups::LookSpec;

/// A group's second look resolved against the second model's labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLook {
    pub group: String,
    classes: Vec<usize>,
    names: Vec<String>,
    confusers: Vec<usize>,
    margin: f32,
    pub confirm_threshold: f32,
    /// A candidate whose first-stage score reaches this needs no look.
    pub pass_threshold: Option<f32>,
}

/// The second model's view of one look.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub score: f32,
    pub confuser_score: f32,
    pub confirmed: bool,
    /// The group's classes (the second model's label names) with their scores, best first.
    pub classes: Vec<(String, f32)>,
}

impl ResolvedLook {
    pub fn resolve(group: &str, spec: &LookSpec, labels: &[String]) -> Result<Self, String> {
        let name = format!("{group}.look");
        let classes = find_labels(&name, &spec.classes, labels, "the second model")?;
        Ok(Self {
            group: group.to_string(),
            names: classes.iter().map(|&c| labels[c].clone()).collect(),
            classes,
            confusers: find_labels(&name, &spec.confusers, labels, "the second model")?,
            margin: spec.confuser_margin,
            confirm_threshold: spec.confirm_threshold,
            pass_threshold: None,
        })
    }

    /// Confirmed when the group's best class reaches the threshold and beats `margin` times its
    /// best confuser (fireworks for a gunshot: the look hears enough of a burst to tell).
    pub fn judge(&self, scores: &[f32]) -> Judgement {
        let best = |ids: &[usize]| {
            ids.iter()
                .filter_map(|&i| scores.get(i).copied())
                .fold(0.0f32, f32::max)
        };
        let (score, confuser_score) = (best(&self.classes), best(&self.confusers));
        let mut classes: Vec<(String, f32)> = self
            .classes
            .iter()
            .zip(&self.names)
            .filter_map(|(&c, name)| scores.get(c).map(|&s| (name.clone(), s)))
            .collect();
        classes.sort_by(|a, b| b.1.total_cmp(&a.1));
        Judgement {
            score,
            confuser_score,
            confirmed: score >= self.confirm_threshold && score >= self.margin * confuser_score,
            classes,
        }
    }
}

/// The first stage's settings for the groups that get a second look: their candidate threshold
/// replaces their on-threshold (the off-threshold stays at most half of it). Returns the looks.
pub fn arm(
    groups: &mut [ResolvedGroup],
    second_labels: &[String],
) -> Result<Vec<ResolvedLook>, String> {
    let mut looks = Vec::new();
    for g in groups.iter_mut() {
        let Some(spec) = g.look.as_ref().map(|l| l.for_labels(second_labels).clone()) else {
            continue;
        };
        let (candidate, pass) = if g.uses_head {
            (spec.head_candidate_threshold, spec.head_pass_threshold)
        } else {
            (spec.candidate_threshold, spec.pass_threshold)
        };
        if let Some(on) = candidate {
            g.on_threshold = on;
            g.off_threshold = g.off_threshold.min(on / 2.0);
        }
        let mut look = ResolvedLook::resolve(&g.name, &spec, second_labels)?;
        look.pass_threshold = pass;
        if g.uses_head
            && let Some(confirm) = spec.head_confirm_threshold
        {
            look.confirm_threshold = confirm;
        }
        looks.push(look);
    }
    Ok(looks)
}

/// Audio the second model must score: `from..to`, nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LookRequest {
    pub id: u64,
    pub group: String,
    pub from: u64,
    pub to: u64,
}

/// How a look ended, for the caller's counters and debug log.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub group: String,
    pub onset: u64,
    pub judgement: Judgement,
}

/// A candidate of one group, in the order the first stage proposed them.
struct Candidate {
    id: u64,
    start: EventReport,
    /// The first stage's stop, once it came.
    stop: Option<EventReport>,
    from: u64,
    to: u64,
    requested: bool,
    since: Instant,
    verdict: Option<Decision>,
}

enum Decision {
    /// By the second model (with its scores), or by the first stage alone (a pass, or a look
    /// that could not run).
    Confirmed(Option<Confirmation>),
    Rejected,
}

/// What became of a group's latest decided candidate whose stop has not come yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    /// Its start went out: its stop goes out too.
    Confirmed,
    /// Its start was dropped: so is its stop.
    Rejected,
}

struct Track {
    /// Undecided candidates, and decided ones behind an undecided one: a group's events go out
    /// in the order the first stage proposed them.
    waiting: VecDeque<Candidate>,
    open: Open,
}

/// One stream's second looks.
pub struct SecondLook {
    looks: HashMap<String, ResolvedLook>,
    tracks: HashMap<String, Track>,
    before: u64,
    after: u64,
    next_id: u64,
}

impl SecondLook {
    /// Looks of `before` + `after` nanoseconds around each candidate's onset.
    pub fn new(looks: Vec<ResolvedLook>, before: u64, after: u64) -> Self {
        Self {
            looks: looks.into_iter().map(|l| (l.group.clone(), l)).collect(),
            tracks: HashMap::new(),
            before,
            after,
            next_id: 0,
        }
    }

    /// The nanoseconds of audio one look takes.
    pub fn length(&self) -> u64 {
        self.before + self.after
    }

    /// Takes the first stage's reports; what may go out now is appended to `out`.
    pub fn filter(&mut self, reports: Vec<EventReport>, out: &mut Vec<EventReport>) {
        for report in reports {
            let Some(look) = self.looks.get(&report.group) else {
                out.push(report);
                continue;
            };
            let passes = look.pass_threshold.is_some_and(|p| report.peak_score >= p);
            let track = self.tracks.entry(report.group.clone()).or_insert(Track {
                waiting: VecDeque::new(),
                open: Open::None,
            });
            match report.phase {
                Phase::Start => {
                    let from = report.start.saturating_sub(self.before);
                    track.waiting.push_back(Candidate {
                        id: self.next_id,
                        from,
                        to: from + self.before + self.after,
                        start: report,
                        stop: None,
                        requested: passes,
                        since: Instant::now(),
                        verdict: passes.then_some(Decision::Confirmed(None)),
                    });
                    self.next_id += 1;
                }
                Phase::Stop(_) => match track.waiting.back_mut() {
                    Some(c) if c.stop.is_none() => c.stop = Some(report),
                    _ => {
                        if track.open != Open::Rejected {
                            out.push(report);
                        }
                        track.open = Open::None;
                    }
                },
            }
            release(track, out);
        }
    }

    /// The looks whose audio has all arrived, given the audio received up to `until`; at the
    /// end of the stream (`eos`) every waiting look, moved back to end where the audio does
    /// (never before 0) so that it still hears a whole look's length where there is one.
    pub fn due(&mut self, until: u64, eos: bool) -> Vec<LookRequest> {
        let length = self.length();
        let mut due = Vec::new();
        for (group, track) in &mut self.tracks {
            for c in &mut track.waiting {
                if c.requested || (c.to > until && !eos) {
                    continue;
                }
                if c.to > until {
                    c.to = until.max(length);
                    c.from = c.to - length;
                }
                c.requested = true;
                due.push(LookRequest {
                    id: c.id,
                    group: group.clone(),
                    from: c.from,
                    to: c.to,
                });
            }
        }
        due.sort_by_key(|r| r.id);
        due
    }

    /// The second model's scores for look `id`: its held reports go out if it confirms them
    /// (after those of the group's earlier candidates). `None` when the look is no longer
    /// wanted (a flush or reconfiguration dropped it).
    pub fn decide(
        &mut self,
        id: u64,
        scores: &[f32],
        out: &mut Vec<EventReport>,
    ) -> Option<Verdict> {
        let (group, c) = undecided(&mut self.tracks, id)?;
        let judgement = self.looks.get(group)?.judge(scores);
        c.verdict = Some(if judgement.confirmed {
            Decision::Confirmed(Some(Confirmation {
                score: judgement.score,
                confuser_score: judgement.confuser_score,
                classes: judgement.classes.clone(),
                latency: c.since.elapsed(),
            }))
        } else {
            Decision::Rejected
        });
        let verdict = Verdict {
            group: group.clone(),
            onset: c.start.start,
            judgement,
        };
        let group = group.clone();
        release(self.tracks.get_mut(&group).expect("found above"), out);
        Some(verdict)
    }

    /// The first stage's own verdict stands for look `id`, which the second model could not
    /// score: its held reports go out unconfirmed. Returns its group, or `None` when the look
    /// is no longer wanted.
    pub fn pass_unjudged(&mut self, id: u64, out: &mut Vec<EventReport>) -> Option<String> {
        let (group, c) = undecided(&mut self.tracks, id)?;
        c.verdict = Some(Decision::Confirmed(None));
        let group = group.clone();
        release(self.tracks.get_mut(&group).expect("found above"), out);
        Some(group)
    }

    /// Looks at the groups of `looks` from now on. Candidates of groups that lose their look
    /// are dropped (returned: how many); the others carry on.
    pub fn set_looks(&mut self, looks: Vec<ResolvedLook>) -> usize {
        self.looks = looks.into_iter().map(|l| (l.group.clone(), l)).collect();
        let waiting = self.waiting();
        self.tracks.retain(|g, _| self.looks.contains_key(g));
        waiting - self.waiting()
    }

    /// Candidates still waiting for a look or a verdict.
    pub fn waiting(&self) -> usize {
        self.tracks
            .values()
            .flat_map(|t| &t.waiting)
            .filter(|c| c.verdict.is_none())
            .count()
    }

    /// Forgets every candidate (a flush, a new stream, a discontinuity); returns how many were
    /// waiting. Confirmed events are closed by the first stage's own stops,
    /// which the caller passes through `filter` first.
    pub fn drop_waiting(&mut self) -> usize {
        let n = self.waiting();
        self.tracks.clear();
        n
    }
}

/// The candidate of look `id`, if it still waits for its verdict, and its group.
fn undecided(tracks: &mut HashMap<String, Track>, id: u64) -> Option<(&String, &mut Candidate)> {
    tracks.iter_mut().find_map(|(g, t)| {
        t.waiting
            .iter_mut()
            .find(|c| c.id == id && c.verdict.is_none())
            .map(|c| (g, c))
    })
}

/// Sends out the decided candidates at the front of a group's queue.
fn release(track: &mut Track, out: &mut Vec<EventReport>) {
    while track.waiting.front().is_some_and(|c| c.verdict.is_some()) {
        let c = track.waiting.pop_front().expect("checked");
        match c.verdict.expect("checked") {
            Decision::Confirmed(confirmation) => {
                let mut start = c.start;
                start.confirmation = confirmation.clone();
                out.push(start);
                match c.stop {
                    Some(mut stop) => {
                        stop.confirmation = confirmation;
                        out.push(stop);
                        track.open = Open::None;
                    }
                    None => track.open = Open::Confirmed,
                }
            }
            Decision::Rejected => {
                track.open = if c.stop.is_some() {
                    Open::None
                } else {
                    Open::Rejected
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::StopReason;

    const S: u64 = 1_000_000_000;

    fn report(group: &str, phase: Phase, start: u64) -> EventReport {
        EventReport {
            phase,
            group: group.into(),
            start,
            end: matches!(phase, Phase::Stop(_)).then_some(start + S),
            peak_score: 0.5,
            peak_at: start,
            classes: Vec::new(),
            peak_level_db: -10.0,
            suppressed: 0,
            confirmation: None,
        }
    }

    fn labels() -> Vec<String> {
        [
            "Glass",
            "Shatter",
            "Chink, clink",
            "Gunshot, gunfire",
            "Fireworks",
        ]
        .map(String::from)
        .to_vec()
    }

    fn spec(classes: &[&str], confusers: &[&str]) -> LookSpec {
        LookSpec {
            classes: classes.iter().map(|s| s.to_string()).collect(),
            confusers: confusers.iter().map(|s| s.to_string()).collect(),
            confuser_margin: 1.0,
            confirm_threshold: 0.3,
            head_confirm_threshold: None,
            candidate_threshold: Some(0.1),
            head_candidate_threshold: Some(0.5),
            pass_threshold: None,
            head_pass_threshold: None,
            head: None,
        }
    }

    fn second_look() -> SecondLook {
        let looks = vec![
            ResolvedLook::resolve(
                "glass",
                &spec(&["Glass", "Shatter"], &["Chink, clink"]),
                &labels(),
            )
            .unwrap(),
            ResolvedLook::resolve(
                "gunshot",
                &spec(&["Gunshot, gunfire"], &["Fireworks"]),
                &labels(),
            )
            .unwrap(),
        ];
        SecondLook::new(looks, 3 * S, 2 * S)
    }

    #[test]
    fn a_candidate_waits_for_its_audio_and_goes_out_only_if_confirmed() {
        let mut sl = second_look();
        let mut out = Vec::new();
        sl.filter(
            vec![
                report("speech", Phase::Start, S),
                report("glass", Phase::Start, 10 * S),
            ],
            &mut out,
        );
        assert_eq!(out.len(), 1, "a group without a look passes: {out:?}");
        assert!(
            sl.due(11 * S, false).is_empty(),
            "the look needs audio to 12 s"
        );
        let due = sl.due(12 * S, false);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].from, due[0].to), (7 * S, 12 * S));
        assert!(sl.due(13 * S, false).is_empty(), "requested once");
        // The first stage ends the event before the verdict: the stop waits with the start.
        sl.filter(
            vec![report("glass", Phase::Stop(StopReason::Ended), 10 * S)],
            &mut out,
        );
        assert_eq!(out.len(), 1);
        let verdict = sl
            .decide(due[0].id, &[0.6, 0.2, 0.1, 0.0, 0.0], &mut out)
            .unwrap();
        assert!(verdict.judgement.confirmed);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].phase, Phase::Start);
        assert_eq!(out[1].start, 10 * S, "the first stage's onset is kept");
        let c = out[1].confirmation.as_ref().unwrap();
        assert_eq!((c.score, c.confuser_score), (0.6, 0.1));
        assert_eq!(c.classes[0], ("Glass".to_string(), 0.6));
        assert!(matches!(out[2].phase, Phase::Stop(_)));
        assert_eq!(sl.waiting(), 0);
    }

    #[test]
    fn a_rejected_candidate_and_its_later_stop_are_dropped() {
        let mut sl = second_look();
        let mut out = Vec::new();
        sl.filter(vec![report("gunshot", Phase::Start, 4 * S)], &mut out);
        let due = sl.due(6 * S, false);
        // Fireworks beat the gunshot in the look: no event.
        let v = sl
            .decide(due[0].id, &[0.0, 0.0, 0.0, 0.5, 0.7], &mut out)
            .unwrap();
        assert!(!v.judgement.confirmed);
        sl.filter(
            vec![report("gunshot", Phase::Stop(StopReason::Ended), 4 * S)],
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // The next candidate gets its own look, and a confirmed one's stop passes later.
        sl.filter(vec![report("gunshot", Phase::Start, 20 * S)], &mut out);
        let due = sl.due(30 * S, false);
        sl.decide(due[0].id, &[0.0, 0.0, 0.0, 0.9, 0.1], &mut out)
            .unwrap();
        assert_eq!(out.len(), 1);
        sl.filter(
            vec![report("gunshot", Phase::Stop(StopReason::Eos), 20 * S)],
            &mut out,
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn at_the_end_a_look_moves_back_to_the_audio_there_is() {
        let mut sl = second_look();
        let mut out = Vec::new();
        sl.filter(vec![report("glass", Phase::Start, 9 * S)], &mut out);
        assert!(sl.due(10 * S, false).is_empty());
        let due = sl.due(10 * S, true);
        assert_eq!((due[0].from, due[0].to), (5 * S, 10 * S));
        // A stream shorter than a look: from its start.
        let mut sl = second_look();
        sl.filter(vec![report("glass", Phase::Start, S)], &mut out);
        let due = sl.due(2 * S, true);
        assert_eq!((due[0].from, due[0].to), (0, 5 * S));
    }

    #[test]
    fn a_candidate_the_first_stage_is_sure_of_needs_no_look() {
        let mut sl = second_look();
        sl.looks.get_mut("glass").unwrap().pass_threshold = Some(0.9);
        let mut out = Vec::new();
        let mut sure = report("glass", Phase::Start, 9 * S);
        sure.peak_score = 0.95;
        sl.filter(vec![sure], &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].confirmation.is_none());
        assert!(sl.due(20 * S, true).is_empty());
        sl.filter(
            vec![report("glass", Phase::Stop(StopReason::Ended), 9 * S)],
            &mut out,
        );
        assert_eq!(out.len(), 2);
        // Below it, the look decides.
        sl.filter(vec![report("glass", Phase::Start, 30 * S)], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(sl.due(40 * S, false).len(), 1);
    }

    #[test]
    fn a_burst_goes_out_in_order_whatever_order_its_verdicts_come_in() {
        let mut sl = second_look();
        let mut out = Vec::new();
        let stop = |at| report("gunshot", Phase::Stop(StopReason::Ended), at);
        sl.filter(
            vec![
                report("gunshot", Phase::Start, 10 * S),
                stop(10 * S),
                report("gunshot", Phase::Start, 11 * S),
                stop(11 * S),
                report("gunshot", Phase::Start, 12 * S),
            ],
            &mut out,
        );
        let due = sl.due(20 * S, false);
        assert_eq!(due.len(), 3);
        let shot = [0.0, 0.0, 0.0, 0.9, 0.1];
        let fireworks = [0.0, 0.0, 0.0, 0.2, 0.8];
        // The last and the middle come back first: nothing goes out before the first's verdict.
        sl.decide(due[2].id, &shot, &mut out).unwrap();
        sl.decide(due[1].id, &fireworks, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        sl.decide(due[0].id, &shot, &mut out).unwrap();
        let got: Vec<_> = out.iter().map(|r| (r.phase, r.start / S)).collect();
        assert_eq!(
            got,
            [
                (Phase::Start, 10),
                (Phase::Stop(StopReason::Ended), 10),
                (Phase::Start, 12)
            ]
        );
        // The open third event's stop passes; nothing waits any more.
        sl.filter(vec![stop(12 * S)], &mut out);
        assert_eq!(out.len(), 4);
        assert_eq!(sl.waiting(), 0);
    }

    #[test]
    fn dropped_candidates_ignore_late_verdicts() {
        let mut sl = second_look();
        let mut out = Vec::new();
        sl.filter(vec![report("glass", Phase::Start, 9 * S)], &mut out);
        let due = sl.due(20 * S, false);
        assert_eq!(sl.drop_waiting(), 1);
        assert!(sl.decide(due[0].id, &[1.0; 5], &mut out).is_none());
        assert!(out.is_empty());
    }

    #[test]
    fn a_second_model_with_trained_heads_takes_the_head_look() {
        let preset = crate::tags::groups::Preset::parse(
            "[group.gunshot]\nclasses = [\"Gunshot, gunfire\"]\n\
             [group.gunshot.look]\nclasses = [\"Gunshot, gunfire\"]\nconfusers = [\"Fireworks\"]\n\
             confirm-threshold = 0.3\ncandidate-threshold = 0.1\n\
             [group.gunshot.look.head]\nclasses = [\"head/gunshot\"]\nconfusers = [\"head/fireworks\"]\n\
             confirm-threshold = 0.8\ncandidate-threshold = 0.05\npass-threshold = 0.6\n",
        )
        .unwrap();
        let first: Vec<String> = labels();
        let group = || {
            ResolvedGroup::resolve(
                &preset.groups["gunshot"],
                &first,
                &crate::tags::EventDefaults::default(),
            )
            .unwrap()
        };
        // A plain second model: the AudioSet look.
        let mut groups = [group()];
        let looks = arm(&mut groups, &labels()).unwrap();
        assert_eq!(groups[0].on_threshold, 0.1);
        assert_eq!(
            (looks[0].confirm_threshold, looks[0].pass_threshold),
            (0.3, None)
        );
        // One with heads: its head classes, thresholds and confusers.
        let mut with_heads = labels();
        with_heads.extend(["head/gunshot", "head/fireworks"].map(String::from));
        let mut groups = [group()];
        let looks = arm(&mut groups, &with_heads).unwrap();
        assert_eq!(groups[0].on_threshold, 0.05);
        assert_eq!(
            (looks[0].confirm_threshold, looks[0].pass_threshold),
            (0.8, Some(0.6))
        );
        let mut scores = vec![0.0; with_heads.len()];
        scores[3] = 0.95; // the AudioSet gunshot class no longer decides
        assert!(!looks[0].judge(&scores).confirmed);
        scores[5] = 0.9;
        scores[6] = 0.2;
        assert!(looks[0].judge(&scores).confirmed);
        scores[6] = 0.95; // the head's fireworks outscore its gunshot
        assert!(!looks[0].judge(&scores).confirmed);
    }
}
