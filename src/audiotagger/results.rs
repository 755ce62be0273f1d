// SPDX-License-Identifier: MPL-2.0

//! The one place that turns a window's result into GStreamer structures: the `audiotagger`
//! element message and the `AudioTaggerMeta` buffer meta carry the same fields (README,
//! "Messages and metadata").

use gst::prelude::*;

use super::imp::CAT;
use super::outbox::Outbox;
use crate::frontend::Level;
use crate::tags::{EventReport, Phase, Tag};

/// Name of the element message structure.
pub const MESSAGE_NAME: &str = "audiotagger";
/// Name of the element message for a watched group's start or stop.
pub const EVENT_MESSAGE_NAME: &str = "audiotagger-event";
/// Name the custom meta is registered under (no tags: audio elements keep it).
pub const META_NAME: &str = "AudioTaggerMeta";

/// Everything reported about one window.
pub struct WindowResult<'a> {
    pub index: u64,
    pub timestamp: gst::ClockTime,
    pub stream_time: Option<gst::ClockTime>,
    pub running_time: Option<gst::ClockTime>,
    pub duration: gst::ClockTime,
    /// The window was padded with silence at the end of the stream.
    pub partial: bool,
    /// Below `min-level`: the model did not run and every score is 0.
    pub quiet: bool,
    pub level: Level,
    pub tags: &'a [Tag],
    pub smoothed: &'a [Tag],
    pub labels: &'a [String],
    pub full_scores: Option<&'a [f32]>,
    pub embedding: Option<&'a [f32]>,
}

fn float_array(values: impl IntoIterator<Item = f32>) -> gst::Array {
    values
        .into_iter()
        .map(|v| (v as f64).to_send_value())
        .collect()
}

fn tag_arrays(tags: &[Tag], labels: &[String]) -> (gst::Array, gst::Array, gst::Array) {
    (
        tags.iter()
            .map(|t| labels[t.class_id].to_send_value())
            .collect(),
        tags.iter()
            .map(|t| (t.class_id as i32).to_send_value())
            .collect(),
        float_array(tags.iter().map(|t| t.score)),
    )
}

impl WindowResult<'_> {
    /// Writes the fields into `s` (a message structure or the meta's own structure).
    pub fn fill(&self, s: &mut gst::StructureRef) {
        s.set("window-index", self.index);
        s.set("timestamp", self.timestamp);
        s.set("stream-time", self.stream_time);
        s.set("running-time", self.running_time);
        s.set("duration", self.duration);
        s.set("partial", self.partial);
        s.set("quiet", self.quiet);
        s.set("rms-db", self.level.rms_db as f64);
        s.set("peak-db", self.level.peak_db as f64);
        s.set("short-term-db", self.level.short_term_db as f64);
        let (labels, ids, scores) = tag_arrays(self.tags, self.labels);
        s.set("labels", labels);
        s.set("class-ids", ids);
        s.set("scores", scores);
        let (labels, ids, scores) = tag_arrays(self.smoothed, self.labels);
        s.set("smoothed-labels", labels);
        s.set("smoothed-class-ids", ids);
        s.set("smoothed-scores", scores);
        if let Some(all) = self.full_scores {
            s.set("full-scores", float_array(all.iter().copied()));
        }
        if let Some(e) = self.embedding {
            s.set("embedding", float_array(e.iter().copied()));
        }
    }

    pub fn to_structure(&self) -> gst::Structure {
        let mut s = gst::Structure::new_empty(MESSAGE_NAME);
        self.fill(&mut s);
        s
    }
}

/// A position as buffer timestamp, stream time and running time.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub timestamp: gst::ClockTime,
    pub stream_time: Option<gst::ClockTime>,
    pub running_time: Option<gst::ClockTime>,
}

/// The `audiotagger-event` structure of a start or stop; `times` maps the report's
/// nanoseconds (buffer time) to the three clocks.
pub fn event_structure(
    report: &EventReport,
    labels: &[String],
    times: impl Fn(u64) -> Times,
) -> gst::Structure {
    let mut s = gst::Structure::new_empty(EVENT_MESSAGE_NAME);
    let start = times(report.start);
    s.set(
        "event",
        match report.phase {
            Phase::Start => "start",
            Phase::Stop(_) => "stop",
        },
    );
    s.set("group", report.group.as_str());
    s.set("timestamp", start.timestamp);
    s.set("stream-time", start.stream_time);
    s.set("running-time", start.running_time);
    if let (Phase::Stop(reason), Some(end_ns)) = (report.phase, report.end) {
        let end = times(end_ns);
        s.set("end-timestamp", end.timestamp);
        s.set("end-stream-time", end.stream_time);
        s.set("end-running-time", end.running_time);
        s.set(
            "duration",
            gst::ClockTime::from_nseconds(end_ns.saturating_sub(report.start)),
        );
        s.set("reason", reason.as_str());
    }
    s.set("peak-score", report.peak_score as f64);
    s.set("peak-timestamp", times(report.peak_at).timestamp);
    s.set("peak-level-db", report.peak_level_db as f64);
    let tags: Vec<Tag> = report
        .classes
        .iter()
        .map(|&(class_id, score)| Tag { class_id, score })
        .collect();
    let (names, ids, scores) = tag_arrays(&tags, labels);
    s.set("labels", names);
    s.set("class-ids", ids);
    s.set("scores", scores);
    s.set("suppressed", report.suppressed);
    if let Some(c) = &report.confirmation {
        s.set("confirm-score", c.score as f64);
        s.set("confirm-confuser-score", c.confuser_score as f64);
        s.set(
            "confirm-labels",
            gst::Array::new(c.classes.iter().map(|(name, _)| name.as_str())),
        );
        s.set(
            "confirm-scores",
            gst::Array::new(c.classes.iter().map(|&(_, score)| score as f64)),
        );
        s.set(
            "decision-latency",
            gst::ClockTime::from_nseconds(c.latency.as_nanos() as u64),
        );
    }
    s
}

pub fn register_meta() {
    if !gst::meta::CustomMeta::is_registered(META_NAME) {
        gst::meta::CustomMeta::register_simple(META_NAME);
    }
}

/// Adds an `AudioTaggerMeta` to `buf`, filled by `fill`.
pub fn attach(buf: &mut gst::BufferRef, fill: impl FnOnce(&mut gst::StructureRef)) {
    if let Ok(mut meta) = gst::meta::CustomMeta::add(buf, META_NAME) {
        fill(meta.mut_structure());
    }
}

/// The `audiotagger-event` messages of `reports`, from `src`.
pub(super) fn queue_events(
    src: &gst::Element,
    reports: Vec<EventReport>,
    labels: &[String],
    segment: Option<&gst::FormattedSegment<gst::format::Time>>,
    out: &mut Outbox,
) {
    let times = |ns: u64| {
        let timestamp = gst::ClockTime::from_nseconds(ns);
        Times {
            timestamp,
            stream_time: segment.and_then(|s| s.to_stream_time(timestamp)),
            running_time: segment.and_then(|s| s.to_running_time(timestamp)),
        }
    };
    for report in &reports {
        gst::info!(
            CAT,
            obj = src,
            "event {:?} {} at {}",
            report.phase,
            report.group,
            gst::ClockTime::from_nseconds(report.start)
        );
        out.result(src, event_structure(report, labels, times), true);
    }
}
