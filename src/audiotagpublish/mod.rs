// SPDX-License-Identifier: MPL-2.0

//! The `audiotagpublish` element.

use gst::glib;
use gst::prelude::*;

mod imp;
pub mod payload;

glib::wrapper! {
    /**
     * SECTION:element-audiotagpublish
     * @see_also: audiotagger
     *
     * `audiotagpublish` sends what an `audiotagger` before it found (its watched groups' starts
     * and stops, and optionally every window's tags) out of the process: to an MQTT 3.1.1 or 5
     * broker, to a JSON-lines file, or both. Audio passes through untouched.
     *
     * It reads the results `audiotagger` sends downstream in-band (custom downstream events
     * named `audiotagger` and `audiotagger-event`), so it may sit anywhere after it, behind
     * queues and tees. Each result becomes one JSON object (schema `audiotagger/1`, see the
     * README): the message's fields under their own names, times in nanoseconds, with a
     * sequence number, the wall-clock time and the element's and pipeline's names.
     *
     * Nothing is lost while the broker is away: messages wait in a bounded outbox (QoS 1 by
     * default) and go out in order when it is back; a full outbox drops the oldest window
     * results, never an event, and says so. Publishing never holds up the stream; at EOS and
     * on stop the element waits up to `flush-timeout` for the broker's acknowledgements. A
     * broker that refuses the credentials or the TLS certificate is an element error.
     *
     * ## Example pipeline
     * |[
     * gst-launch-1.0 uridecodebin uri=rtsp://camera/stream ! audioconvert \
     *     ! audiotagger watch=gunshot,glass \
     *     ! audiotagpublish broker=mqtt://127.0.0.1:1883 topic=site1/cam3/audio/{kind}/{group} \
     *     ! fakesink
     * ]|
     */
    pub struct AudioTagPublish(ObjectSubclass<imp::AudioTagPublish>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// Which results `audiotagpublish` sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstAudioTagPublishWhat")]
pub enum What {
    #[enum_value(name = "Events: the watched groups' starts and stops", nick = "events")]
    Events = 0,
    #[enum_value(
        name = "All: events and every window's tags (at most one per window-interval)",
        nick = "all"
    )]
    All = 1,
}

/// The MQTT version `audiotagpublish` speaks; the values are the protocol levels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstAudioTagPublishProtocol")]
pub enum Protocol {
    #[enum_value(name = "MQTT 3.1.1, which every broker speaks", nick = "3.1.1")]
    V311 = 4,
    #[enum_value(name = "MQTT 5", nick = "5")]
    V5 = 5,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    What::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Protocol::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "audiotagpublish",
        gst::Rank::NONE,
        AudioTagPublish::static_type(),
    )
}
