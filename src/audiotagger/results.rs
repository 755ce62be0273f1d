// SPDX-License-Identifier: MPL-2.0

//! The one place that turns a window's result into GStreamer structures: the `audiotagger`
//! element message and the `AudioTaggerMeta` buffer meta carry the same fields (README,
//! "Messages and metadata").

use gst::prelude::*;

use crate::tags::Tag;

/// Name of the element message structure.
pub const MESSAGE_NAME: &str = "audiotagger";
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

pub fn register_meta() {
    if !gst::meta::CustomMeta::is_registered(META_NAME) {
        gst::meta::CustomMeta::register_simple(META_NAME);
    }
}
