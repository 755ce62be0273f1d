// SPDX-License-Identifier: MPL-2.0

//! Messages built while the element's state is locked and posted once it is not, as `level` and
//! `ebur128level` do: a synchronous bus handler runs in the posting thread and may call back
//! into the element (a property, a seek), which must not find the state held.
//!
//! Results also travel downstream in-band, as serialized custom events carrying the message's
//! structure, so that elements after this one (`audiotagpublish`) see them in stream order.
//! Only the streaming thread may push those, so they wait in [`InBand`] until it comes by.

use std::sync::Mutex;

use gst::prelude::*;

#[derive(Default)]
#[must_use = "the messages are only posted by `post`"]
pub struct Outbox {
    messages: Vec<gst::Message>,
    inband: Vec<gst::Event>,
}

/// In-band results waiting for the streaming thread, in the order their messages were posted.
#[derive(Default)]
pub struct InBand(Mutex<Vec<gst::Event>>);

impl InBand {
    /// Pushes what waits downstream, in order. Streaming thread only.
    pub fn push_downstream(&self, pad: &gst::Pad) {
        let events = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        for event in events {
            // Refused only while flushing or not linked: the results were for flushed audio.
            pad.push_event(event);
        }
    }

    /// Forgets what waits (a flush, or the element stopping).
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Outbox {
    pub fn push(&mut self, message: gst::Message) {
        self.messages.push(message);
    }

    /// A window result or an event: sent downstream in-band with `src`'s name in its
    /// `element` field and, with `post`, posted as an element message from `src`.
    pub fn result(&mut self, src: &gst::Element, structure: gst::Structure, post: bool) {
        let mut inband = structure.clone();
        inband.set("element", src.name().as_str());
        self.inband
            .push(gst::event::CustomDownstream::builder(inband).build());
        if post {
            self.push(gst::message::Element::builder(structure).src(src).build());
        }
    }

    /// A warning from `src`, as `gst::element_warning!` would post it.
    pub fn warning<T: gst::MessageErrorDomain>(
        &mut self,
        src: &gst::Element,
        error: T,
        text: &str,
        debug: &str,
    ) {
        gst::warning!(super::imp::CAT, obj = src, "{text}: {debug}");
        self.push(
            gst::message::Warning::builder(error, text)
                .debug(debug)
                .src(src)
                .build(),
        );
    }

    /// Posts everything, in the order it was pushed, and queues the in-band results on
    /// `inband`. Call with no lock of the element held.
    pub fn post(self, element: &gst::Element, inband: &InBand) {
        if !self.inband.is_empty() {
            inband
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(self.inband);
        }
        for message in self.messages {
            // Posting fails only without a bus (an element outside any pipeline): nobody listens.
            let _ = element.post_message(message);
        }
    }
}
