// SPDX-License-Identifier: MPL-2.0
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

//! GStreamer plugin `audiotagger`: tags what an audio stream contains (speech, music, sound
//! events) with an ONNX audio model, passing the audio through untouched.
//!
//! The DSP and model code live in GStreamer-free modules so they can be tested and benchmarked
//! alone; the element in [`audiotagger`] glues them to the pipeline, and [`audiotagpublish`]
//! sends its results to an MQTT broker or a file ([`publish`]).

use gst::glib;

pub mod audiotagger;
pub mod audiotagpublish;
pub mod frontend;
pub mod model;
pub mod publish;
pub mod tags;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    audiotagger::register(plugin)?;
    audiotagpublish::register(plugin)
}

gst::plugin_define!(
    audiotagger,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // The license is MPL-2.0, which GStreamer's registry only knows as "MPL".
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
