// SPDX-License-Identifier: MPL-2.0

//! From per-window scores to tags, free of GStreamer: smoothing over recent windows, the
//! selection of what to report (threshold, top-k, allow and deny lists), and start/stop events
//! for watched groups of classes.

pub mod events;
pub mod groups;
pub mod second_look;
pub mod select;
pub mod smoothing;
pub mod step;

pub use events::{
    Confirmation, EventDefaults, EventDetector, EventReport, Observation, Phase, ResolvedGroup,
    StopReason,
};
pub use groups::Preset;
pub use second_look::{LookRequest, ResolvedLook, SecondLook, Verdict};
pub use select::{ClassFilter, Tag, top_k};
pub use smoothing::{Smoother, Smoothing};
pub use step::{Selection, StreamTagger, WindowTags, resolve_watch};
