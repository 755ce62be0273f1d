// SPDX-License-Identifier: MPL-2.0

//! From per-window scores to tags, free of GStreamer: smoothing over recent windows and the
//! selection of what to report (threshold, top-k, allow and deny lists).

pub mod select;
pub mod smoothing;

pub use select::{ClassFilter, Tag, top_k};
pub use smoothing::{Smoother, Smoothing};
