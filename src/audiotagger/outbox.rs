// SPDX-License-Identifier: MPL-2.0

//! Messages built while the element's state is locked and posted once it is not, as `level` and
//! `ebur128level` do: a synchronous bus handler runs in the posting thread and may call back
//! into the element (a property, a seek), which must not find the state held.

use gst::prelude::*;

#[derive(Default)]
#[must_use = "the messages are only posted by `post`"]
pub struct Outbox {
    messages: Vec<gst::Message>,
}

impl Outbox {
    pub fn push(&mut self, message: gst::Message) {
        self.messages.push(message);
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

    /// Posts everything, in the order it was pushed. Call with no lock of the element held.
    pub fn post(self, element: &gst::Element) {
        for message in self.messages {
            // Posting fails only without a bus (an element outside any pipeline): nobody listens.
            let _ = element.post_message(message);
        }
    }
}
