// SPDX-License-Identifier: MPL-2.0

//! Start/stop events for watched groups, free of GStreamer: a hysteresis tracker per group over
//! the windows' scores (or levels), with onset times taken from the windows, not from the moment
//! of decision.
//!
//! Times are nanoseconds on the caller's clock (the element uses buffer timestamps). Windows must
//! arrive in order; after a discontinuity the caller closes the detector.
//!
//! Onset and end estimates: a window that scores above the threshold right after one that did
//! not most likely holds the sound in the part the previous window did not cover, so the onset
//! is the later of the window's start and the previous window's end; likewise the end is the
//! earlier of the last active window's end and the next window's start. With YAMNet's 0.96 s
//! windows every 0.48 s this halves the uncertainty of "somewhere in this window".

use super::groups::{GroupKind, GroupSpec, LookSpec};
use super::{Smoother, Smoothing};
use crate::frontend::Level;

/// Element-wide settings a group uses unless its preset entry overrides them.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDefaults {
    pub on_threshold: f32,
    pub off_threshold: f32,
    /// Seconds.
    pub min_duration: f64,
    pub hold: f64,
    pub refractory: f64,
    /// For `kind = "level"` groups without their own `level-db`.
    pub loud_level_db: f32,
    pub loud_rise_db: f32,
}

impl Default for EventDefaults {
    fn default() -> Self {
        Self {
            on_threshold: 0.3,
            off_threshold: 0.15,
            min_duration: 0.0,
            hold: 0.5,
            refractory: 0.0,
            loud_level_db: -6.0,
            loud_rise_db: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Scorer {
    Classes {
        classes: Vec<usize>,
        confusers: Vec<usize>,
        margin: f32,
    },
    Level {
        level_db: f32,
        rise_db: f32,
    },
}

/// A group with its classes found in the model's labels and every parameter decided.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedGroup {
    pub name: String,
    scorer: Scorer,
    pub on_threshold: f32,
    pub off_threshold: f32,
    pub min_duration_ns: u64,
    pub hold_ns: u64,
    pub refractory_ns: u64,
    pub smoothing: Smoothing,
    pub smoothing_windows: u32,
    /// Scored by the model's trained head classes (the preset's `head` table), not AudioSet's.
    pub uses_head: bool,
    /// The preset's second look for the group, used when the element has a second model.
    pub look: Option<LookSpec>,
}

/// The indices of `names` in `labels` (ignoring case); an error names the first one missing,
/// the group and the model (`which`: "this model", "the second model").
pub(super) fn find_labels(
    group: &str,
    names: &[String],
    labels: &[String],
    which: &str,
) -> Result<Vec<usize>, String> {
    names
        .iter()
        .map(|n| {
            labels
                .iter()
                .position(|l| l.eq_ignore_ascii_case(n.trim()))
                .ok_or_else(|| format!("event group '{group}': '{n}' is not a class of {which}"))
        })
        .collect()
}

fn ns(seconds: f64) -> u64 {
    (seconds * 1e9).round() as u64
}

impl ResolvedGroup {
    pub fn resolve(spec: &GroupSpec, labels: &[String], d: &EventDefaults) -> Result<Self, String> {
        let o = &spec.overrides;
        let head = spec.head.as_ref().filter(|h| {
            h.classes
                .iter()
                .all(|c| labels.iter().any(|l| l.eq_ignore_ascii_case(c.trim())))
        });
        let (scorer, on, off, smoothing) = match (&spec.kind, head) {
            (GroupKind::Classes { .. }, Some(h)) => {
                // The group's own thresholds are for AudioSet scores: never carried over.
                let on = h.on_threshold.unwrap_or(d.on_threshold);
                let off = h.off_threshold.unwrap_or(d.off_threshold).min(on);
                (
                    Scorer::Classes {
                        classes: find_labels(&spec.name, &h.classes, labels, "this model")?,
                        confusers: find_labels(&spec.name, &h.confusers, labels, "this model")?,
                        margin: h.confuser_margin,
                    },
                    on,
                    off,
                    h.smoothing.unwrap_or(Smoothing::None),
                )
            }
            (
                GroupKind::Classes {
                    classes,
                    confusers,
                    confuser_margin,
                },
                None,
            ) => {
                let on = o.on_threshold.unwrap_or(d.on_threshold);
                // A group that raises only its onset keeps the element's offset below it.
                let off = o.off_threshold.unwrap_or(d.off_threshold).min(on);
                (
                    Scorer::Classes {
                        classes: find_labels(&spec.name, classes, labels, "this model")?,
                        confusers: find_labels(&spec.name, confusers, labels, "this model")?,
                        margin: *confuser_margin,
                    },
                    on,
                    off,
                    o.smoothing.unwrap_or(Smoothing::None),
                )
            }
            // A level group's score is 1 in a loud window and 0 otherwise.
            (GroupKind::Level { level_db, rise_db }, _) => (
                Scorer::Level {
                    level_db: level_db.unwrap_or(d.loud_level_db),
                    rise_db: rise_db.unwrap_or(d.loud_rise_db),
                },
                0.5,
                0.5,
                Smoothing::None,
            ),
        };
        Ok(Self {
            name: spec.name.clone(),
            scorer,
            on_threshold: on,
            off_threshold: off,
            min_duration_ns: ns(o.min_duration.unwrap_or(d.min_duration)),
            hold_ns: ns(o.hold.unwrap_or(d.hold)),
            refractory_ns: ns(o.refractory.unwrap_or(d.refractory)),
            smoothing,
            smoothing_windows: o.smoothing_windows.unwrap_or(2),
            uses_head: head.is_some(),
            look: spec.look.clone(),
        })
    }
}

/// What the detector needs to know about one window.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub start: u64,
    pub end: u64,
    /// `None` for a window the level gate kept from the model: every class scores 0.
    pub scores: Option<&'a [f32]>,
    pub level: Level,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The score stayed below the off-threshold for `hold`.
    Ended,
    /// End of stream.
    Eos,
    /// A flush, a new stream or a discontinuity.
    Flush,
    /// The group was taken off `watch` or its preset entry changed.
    Unwatched,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Ended => "ended",
            StopReason::Eos => "eos",
            StopReason::Flush => "flush",
            StopReason::Unwatched => "unwatched",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Start,
    Stop(StopReason),
}

/// A start or stop of one group's event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventReport {
    pub phase: Phase,
    pub group: String,
    /// Estimated onset.
    pub start: u64,
    /// Estimated end, on stop.
    pub end: Option<u64>,
    /// Highest group score so far (for level groups: 1).
    pub peak_score: f32,
    /// Start of the window that had the peak.
    pub peak_at: u64,
    /// The group's classes that reached the off-threshold, with their highest scores, best
    /// first. Empty for level groups.
    pub classes: Vec<(usize, f32)>,
    /// Loudest 25 ms of the event, dBFS.
    pub peak_level_db: f32,
    /// Onsets ignored since the previous start because they fell in the refractory time.
    pub suppressed: u32,
    /// The second look's verdict, for a group a second model confirms.
    pub confirmation: Option<Confirmation>,
}

/// What the second model heard around a candidate it confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmation {
    /// The group's best class in the second model, and its confusers' best.
    pub score: f32,
    pub confuser_score: f32,
    /// The second model's classes of the group (its label names), with their scores, best
    /// first.
    pub classes: Vec<(String, f32)>,
    /// From the moment the first stage proposed the candidate to the verdict, wall clock.
    pub latency: std::time::Duration,
}

#[derive(Debug, Clone)]
struct Ongoing {
    onset: u64,
    last_active_start: u64,
    last_active_end: u64,
    /// Start and end of the first window below the off-threshold after the last active one.
    first_below: Option<(u64, u64)>,
    peak: f32,
    peak_at: u64,
    peak_level_db: f32,
    class_peaks: Vec<f32>,
    announced: bool,
}

impl Ongoing {
    /// The estimated end: the last active window's end, or where the first quiet window after
    /// it starts if that is earlier; never before the onset.
    fn end(&self) -> u64 {
        match self.first_below {
            Some((below_start, _)) => self.last_active_end.min(below_start),
            None => self.last_active_end,
        }
        .max(self.onset)
    }
}

#[derive(Debug, Clone)]
enum TrackState {
    Idle,
    Open(Ongoing),
    /// An onset inside the refractory time: followed to its end so a burst counts once.
    Suppressed {
        last_active_end: u64,
        first_below: Option<(u64, u64)>,
    },
}

struct Tracker {
    group: ResolvedGroup,
    smoother: Smoother,
    state: TrackState,
    /// (end, raw score was at least off) of the previous window.
    prev: Option<(u64, bool)>,
    prev_start: Option<u64>,
    /// Distance between window starts, as last seen (until then: unbounded).
    hop: u64,
    /// Onset estimate of the current run of windows at or above the off-threshold.
    run_onset: Option<u64>,
    last_end: Option<u64>,
    suppressed: u32,
    background_db: Option<f32>,
}

/// Window RMS the level groups treat as "nothing here" when tracking the background.
const BACKGROUND_FLOOR_DB: f32 = -90.0;
/// Weight of a new, louder window in the background level: about 10 windows (5 s with YAMNet's
/// hop) to follow a scene that gets louder, so a slow fade-in is no sudden rise.
const BACKGROUND_ALPHA_UP: f32 = 0.1;
/// Weight of a quieter window: the background falls back within a few windows after a loud
/// stretch, or the next bang would not count as a rise.
const BACKGROUND_ALPHA_DOWN: f32 = 0.5;

impl Tracker {
    fn new(group: ResolvedGroup) -> Self {
        let smoother = Smoother::new(group.smoothing, group.smoothing_windows as usize);
        Self {
            group,
            smoother,
            state: TrackState::Idle,
            prev: None,
            prev_start: None,
            hop: u64::MAX,
            run_onset: None,
            last_end: None,
            suppressed: 0,
            background_db: None,
        }
    }

    /// The window's raw group score and whether the confusers allow an onset in it.
    fn score(&mut self, obs: &Observation) -> (f32, bool) {
        match &self.group.scorer {
            Scorer::Classes {
                classes,
                confusers,
                margin,
            } => {
                let Some(scores) = obs.scores else {
                    return (0.0, false);
                };
                let best = |ids: &[usize]| {
                    ids.iter()
                        .filter_map(|&i| scores.get(i).copied())
                        .fold(0.0f32, f32::max)
                };
                let own = best(classes);
                (own, own >= margin * best(confusers))
            }
            Scorer::Level { level_db, rise_db } => {
                let loudest = obs.level.short_term_db;
                let background = *self.background_db.get_or_insert(obs.level.rms_db);
                let loud = loudest >= *level_db || loudest - background >= *rise_db;
                if !loud {
                    let rms = obs.level.rms_db.max(BACKGROUND_FLOOR_DB);
                    let background = background.max(BACKGROUND_FLOOR_DB);
                    let alpha = if rms < background {
                        BACKGROUND_ALPHA_DOWN
                    } else {
                        BACKGROUND_ALPHA_UP
                    };
                    self.background_db = Some(background + alpha * (rms - background));
                }
                (if loud { 1.0 } else { 0.0 }, true)
            }
        }
    }

    fn report(&self, ev: &Ongoing, phase: Phase, end: Option<u64>) -> EventReport {
        let mut classes: Vec<(usize, f32)> = match &self.group.scorer {
            Scorer::Classes { classes, .. } => classes
                .iter()
                .zip(&ev.class_peaks)
                .filter(|&(_, &p)| p >= self.group.off_threshold)
                .map(|(&c, &p)| (c, p))
                .collect(),
            Scorer::Level { .. } => Vec::new(),
        };
        classes.sort_by(|a, b| b.1.total_cmp(&a.1));
        EventReport {
            phase,
            group: self.group.name.clone(),
            start: ev.onset,
            end,
            peak_score: ev.peak,
            peak_at: ev.peak_at,
            classes,
            peak_level_db: ev.peak_level_db,
            suppressed: self.suppressed,
            confirmation: None,
        }
    }

    fn note_active(&self, ev: &mut Ongoing, obs: &Observation, raw: f32) {
        ev.last_active_start = obs.start;
        ev.last_active_end = obs.end;
        ev.first_below = None;
        if raw > ev.peak {
            ev.peak = raw;
            ev.peak_at = obs.start;
        }
        ev.peak_level_db = ev.peak_level_db.max(obs.level.short_term_db);
        if let (Scorer::Classes { classes, .. }, Some(scores)) = (&self.group.scorer, obs.scores) {
            for (p, &c) in ev.class_peaks.iter_mut().zip(classes) {
                *p = p.max(scores.get(c).copied().unwrap_or(0.0));
            }
        }
    }

    fn push(&mut self, obs: &Observation, out: &mut Vec<EventReport>) {
        let (raw, onset_allowed) = self.score(obs);
        let smoothed = self.smoother.push(&[raw])[0];
        let (on, off) = (self.group.on_threshold, self.group.off_threshold);
        if let Some(prev_start) = self.prev_start
            && obs.start > prev_start
        {
            self.hop = obs.start - prev_start;
        }
        self.prev_start = Some(obs.start);
        if raw >= off {
            if self.run_onset.is_none() {
                self.run_onset = Some(match self.prev {
                    Some((prev_end, false)) if prev_end <= obs.end => prev_end.max(obs.start),
                    _ => obs.start,
                });
            }
        } else {
            self.run_onset = None;
        }
        let run_onset = self.run_onset.unwrap_or(obs.start);
        self.prev = Some((obs.end, raw >= off));

        let mut state = std::mem::replace(&mut self.state, TrackState::Idle);
        if let TrackState::Idle = state
            && smoothed >= on
            && onset_allowed
        {
            let in_refractory = self
                .last_end
                .is_some_and(|end| run_onset < end.saturating_add(self.group.refractory_ns));
            if in_refractory {
                self.suppressed += 1;
                state = TrackState::Suppressed {
                    last_active_end: obs.end,
                    first_below: None,
                };
            } else {
                let classes = match &self.group.scorer {
                    Scorer::Classes { classes, .. } => classes.len(),
                    Scorer::Level { .. } => 0,
                };
                state = TrackState::Open(Ongoing {
                    onset: run_onset,
                    last_active_start: obs.start,
                    last_active_end: obs.end,
                    first_below: None,
                    peak: f32::MIN,
                    peak_at: obs.start,
                    peak_level_db: f32::MIN,
                    class_peaks: vec![0.0; classes],
                    announced: false,
                });
            }
        }
        let hold = self.group.hold_ns;
        self.state = match state {
            TrackState::Idle => TrackState::Idle,
            TrackState::Suppressed {
                mut last_active_end,
                first_below,
            } => {
                let first_below = if smoothed >= off {
                    last_active_end = obs.end;
                    None
                } else {
                    Some(first_below.unwrap_or((obs.start, obs.end)))
                };
                match first_below {
                    Some((below_start, below_end)) if obs.end.saturating_sub(below_end) >= hold => {
                        // A burst inside the refractory time extends it.
                        self.last_end = Some(last_active_end.min(below_start));
                        TrackState::Idle
                    }
                    _ => TrackState::Suppressed {
                        last_active_end,
                        first_below,
                    },
                }
            }
            TrackState::Open(mut ev) => {
                if smoothed >= off {
                    self.note_active(&mut ev, obs, raw);
                } else if ev.first_below.is_none() {
                    ev.first_below = Some((obs.start, obs.end));
                }
                // The end it would get if the next window were quiet: where that window starts.
                let end_so_far = ev
                    .last_active_end
                    .min(ev.last_active_start.saturating_add(self.hop));
                if !ev.announced
                    && ev.first_below.is_none()
                    && end_so_far.saturating_sub(ev.onset) >= self.group.min_duration_ns
                {
                    ev.announced = true;
                    out.push(self.report(&ev, Phase::Start, None));
                    self.suppressed = 0;
                }
                match ev.first_below {
                    Some((_, below_end)) if obs.end.saturating_sub(below_end) >= hold => {
                        if ev.announced {
                            let end = ev.end();
                            out.push(self.report(&ev, Phase::Stop(StopReason::Ended), Some(end)));
                            self.last_end = Some(end);
                        }
                        TrackState::Idle
                    }
                    _ => TrackState::Open(ev),
                }
            }
        };
    }

    /// Ends whatever is open (an announced event gets its stop) and forgets the history.
    fn close(&mut self, reason: StopReason, out: &mut Vec<EventReport>) {
        if let TrackState::Open(ev) = std::mem::replace(&mut self.state, TrackState::Idle)
            && ev.announced
        {
            out.push(self.report(&ev, Phase::Stop(reason), Some(ev.end())));
        }
        self.smoother.reset();
        self.prev = None;
        self.prev_start = None;
        self.run_onset = None;
        if reason != StopReason::Unwatched {
            self.last_end = None;
            self.background_db = None;
        }
    }
}

/// The trackers of the watched groups.
#[derive(Default)]
pub struct EventDetector {
    trackers: Vec<Tracker>,
}

impl EventDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `groups` from now on. A group that stays keeps its state (an open event goes on
    /// under the new thresholds) unless its classes changed; a group that goes is closed.
    pub fn configure(&mut self, groups: Vec<ResolvedGroup>, out: &mut Vec<EventReport>) {
        let mut old = std::mem::take(&mut self.trackers);
        for group in groups {
            match old.iter().position(|t| t.group.name == group.name) {
                Some(i) if old[i].group.scorer == group.scorer => {
                    let mut t = old.remove(i);
                    if (t.group.smoothing, t.group.smoothing_windows)
                        != (group.smoothing, group.smoothing_windows)
                    {
                        t.smoother =
                            Smoother::new(group.smoothing, group.smoothing_windows as usize);
                    }
                    t.group = group;
                    self.trackers.push(t);
                }
                _ => self.trackers.push(Tracker::new(group)),
            }
        }
        for mut t in old {
            t.close(StopReason::Unwatched, out);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.trackers.is_empty()
    }

    pub fn push(&mut self, obs: &Observation, out: &mut Vec<EventReport>) {
        for t in &mut self.trackers {
            t.push(obs, out);
        }
    }

    pub fn close(&mut self, reason: StopReason, out: &mut Vec<EventReport>) {
        for t in &mut self.trackers {
            t.close(reason, out);
        }
    }
}

#[cfg(test)]
mod tests;
