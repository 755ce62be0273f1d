// SPDX-License-Identifier: MPL-2.0

//! Getting results out of the process, GStreamer-free: an MQTT 3.1.1 or 5 publisher that loses
//! nothing while the broker is away ([`mqtt`], [`outbox`]), a JSON-lines file ([`jsonl`]) and topic
//! templates ([`topic`]). The `audiotagpublish` element feeds them.

pub mod jsonl;
pub mod mqtt;
pub mod outbox;
mod protocol;
pub mod topic;

pub use outbox::Message;
