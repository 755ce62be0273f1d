// SPDX-License-Identifier: MPL-2.0

//! The `audiotagger` element.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct AudioTagger(ObjectSubclass<imp::AudioTagger>)
        @extends gst_audio::AudioFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "audiotagger",
        gst::Rank::NONE,
        AudioTagger::static_type(),
    )
}
