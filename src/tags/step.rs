// SPDX-License-Identifier: MPL-2.0

//! One stream's way from each window's scores to what is reported: the window's own tags, the
//! smoothed tags, and the start/stop events of the watched groups.

use super::{
    ClassFilter, EventDefaults, EventDetector, EventReport, Observation, Preset, ResolvedGroup,
    Smoother, Smoothing, StopReason, Tag, top_k,
};

/// What to list of a window's scores.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub top_k: usize,
    pub threshold: f32,
}

/// What one window is reported as.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowTags {
    /// The window's own classes; none for a quiet window, whatever the threshold.
    pub tags: Vec<Tag>,
    /// The classes of the smoothed scores.
    pub smoothed: Vec<Tag>,
}

/// The per-stream history behind the reports: smoothing, the class filter, event trackers.
pub struct StreamTagger {
    classes: usize,
    smoother: Smoother,
    filter: ClassFilter,
    events: EventDetector,
    silence: Vec<f32>,
}

impl StreamTagger {
    /// A stream of windows scoring `classes` classes, listing every class until
    /// [`StreamTagger::set_filter`] and watching nothing until [`StreamTagger::watch`].
    pub fn new(classes: usize, smoothing: Smoothing, windows: usize) -> Self {
        Self {
            classes,
            smoother: Smoother::new(smoothing, windows),
            filter: ClassFilter::default(),
            events: EventDetector::new(),
            silence: vec![0.0; classes],
        }
    }

    /// Smooths over `windows` windows from now on, forgetting the history.
    pub fn set_smoothing(&mut self, smoothing: Smoothing, windows: usize) {
        self.smoother = Smoother::new(smoothing, windows);
    }

    /// Lists only the classes `allow` names and none `exclude` names (see [`ClassFilter::new`]);
    /// returns the names that match no label.
    pub fn set_filter(&mut self, labels: &[String], allow: &str, exclude: &str) -> Vec<String> {
        let (filter, unknown) = ClassFilter::new(labels, allow, exclude);
        self.filter = filter;
        unknown
    }

    /// Watches `groups` from now on; groups no longer watched stop into `reports`.
    pub fn watch(&mut self, groups: Vec<ResolvedGroup>, reports: &mut Vec<EventReport>) {
        self.events.configure(groups, reports);
    }

    /// One window, in stream order. `window.scores` is `None` for a quiet window, which the
    /// smoothing and the events hear as silence.
    pub fn step(
        &mut self,
        window: &Observation,
        selection: Selection,
        reports: &mut Vec<EventReport>,
    ) -> WindowTags {
        let scores = window.scores.unwrap_or(&self.silence);
        debug_assert_eq!(scores.len(), self.classes);
        let tags = match window.scores {
            Some(scores) => top_k(scores, selection.top_k, selection.threshold, &self.filter),
            None => Vec::new(),
        };
        let smoothed = top_k(
            self.smoother.push(scores),
            selection.top_k,
            selection.threshold,
            &self.filter,
        );
        self.events.push(window, reports);
        WindowTags { tags, smoothed }
    }

    /// Ends every open event: the stream ended, flushed, or broke.
    pub fn close(&mut self, reason: StopReason, reports: &mut Vec<EventReport>) {
        self.events.close(reason, reports);
    }

    /// Forgets the smoothing history, as for a new stream. Events are closed separately.
    pub fn reset_smoothing(&mut self) {
        self.smoother.reset();
    }
}

/// The groups `watch` (comma-separated names) selects from `preset`, resolved against the
/// model's labels with the element's defaults.
pub fn resolve_watch(
    preset: &Preset,
    watch: &str,
    defaults: &EventDefaults,
    labels: &[String],
) -> Result<Vec<ResolvedGroup>, String> {
    let specs = preset.select(watch).map_err(|unknown| {
        format!(
            "`watch` names unknown event groups: {}. Known: {}",
            unknown.join(", "),
            preset.groups.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    specs
        .iter()
        .map(|spec| ResolvedGroup::resolve(spec, labels, defaults))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::Level;
    use crate::tags::Phase;

    fn labels() -> Vec<String> {
        ["Speech", "Gunshot, gunfire", "Music"]
            .map(String::from)
            .to_vec()
    }

    fn window(i: u64, scores: Option<&[f32]>) -> Observation<'_> {
        Observation {
            start: i * 480_000_000,
            end: i * 480_000_000 + 960_000_000,
            scores,
            level: Level {
                rms_db: -20.0,
                peak_db: -20.0,
                short_term_db: -20.0,
            },
        }
    }

    const ALL: Selection = Selection {
        top_k: 3,
        threshold: 0.0,
    };

    #[test]
    fn a_quiet_window_lists_nothing_and_is_smoothed_as_silence() {
        let mut t = StreamTagger::new(3, Smoothing::Mean, 2);
        let mut reports = Vec::new();
        let loud = [0.2, 0.8, 0.4];
        t.step(&window(0, Some(&loud)), ALL, &mut reports);
        let quiet = t.step(&window(1, None), ALL, &mut reports);
        assert!(quiet.tags.is_empty());
        // Mean of [0.2, 0.8, 0.4] and zeros, worked by hand.
        let expected = [(1, 0.4), (2, 0.2), (0, 0.1)];
        let got: Vec<_> = quiet
            .smoothed
            .iter()
            .map(|t| (t.class_id, t.score))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn the_filter_and_threshold_apply_to_both_lists() {
        let mut t = StreamTagger::new(3, Smoothing::None, 1);
        let unknown = t.set_filter(&labels(), "", "speech;Trumpet");
        assert_eq!(unknown, ["Trumpet"]);
        let scores = [0.9, 0.5, 0.05];
        let got = t.step(
            &window(0, Some(&scores)),
            Selection {
                top_k: 5,
                threshold: 0.1,
            },
            &mut Vec::new(),
        );
        let only_gunshot = vec![Tag {
            class_id: 1,
            score: 0.5,
        }];
        assert_eq!(got.tags, only_gunshot);
        assert_eq!(got.smoothed, only_gunshot);
    }

    #[test]
    fn watched_groups_start_on_the_window_and_stop_when_closed() {
        let preset = Preset::parse(
            r#"
            [group.shot]
            classes = ["Gunshot, gunfire"]
            on-threshold = 0.5
            "#,
        )
        .unwrap();
        let groups = resolve_watch(&preset, "shot", &EventDefaults::default(), &labels()).unwrap();
        let mut t = StreamTagger::new(3, Smoothing::Mean, 3);
        let mut reports = Vec::new();
        t.watch(groups, &mut reports);
        t.step(&window(0, Some(&[0.1, 0.0, 0.0])), ALL, &mut reports);
        assert!(reports.is_empty());
        t.step(&window(1, Some(&[0.1, 0.9, 0.0])), ALL, &mut reports);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].phase, Phase::Start);
        // The onset: where window 1 stops overlapping window 0 (0.96 s).
        assert_eq!(reports[0].start, 960_000_000);
        t.close(StopReason::Eos, &mut reports);
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[1].phase, Phase::Stop(StopReason::Eos));

        let err = resolve_watch(
            &preset,
            "shot,thunder",
            &EventDefaults::default(),
            &labels(),
        )
        .unwrap_err();
        assert!(
            err.contains("thunder") && err.contains("Known: shot"),
            "{err}"
        );
    }
}
