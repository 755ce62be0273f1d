// SPDX-License-Identifier: MPL-2.0

//! The messages a publisher holds until the broker has acknowledged them.
//!
//! Messages leave in the order they came in. The oldest ones are handed to the connection (at
//! most a window of them at a time) and stay here until their acknowledgement; when the
//! connection drops, those not yet acknowledged are sent again on the next one. A full outbox
//! drops its oldest droppable message (a window result) that is not on the wire; events are
//! never dropped, so an outbox full of events grows past its capacity rather than lose one.

use std::collections::VecDeque;

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    /// May be dropped when the outbox is full (window results); events may not.
    pub droppable: bool,
}

#[derive(Debug)]
struct Entry {
    message: Message,
    /// The packet id the connection gave it, once it was written.
    pkid: Option<u16>,
}

/// What [`Outbox::push`] had to give up to make room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    /// A window result was dropped (the oldest one waiting, or the new one).
    pub dropped: bool,
    /// The outbox is past its capacity (events only, which are never dropped).
    pub over_capacity: bool,
}

#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    capacity: usize,
    /// The first `sent` entries have been handed to the current connection.
    sent: usize,
    dropped: u64,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
            sent: 0,
            dropped: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Window results dropped so far because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn push(&mut self, message: Message) -> Pushed {
        let mut pushed = Pushed::default();
        if self.entries.len() >= self.capacity {
            let oldest = self
                .entries
                .iter()
                .skip(self.sent)
                .position(|e| e.message.droppable);
            match oldest {
                Some(i) => {
                    self.entries.remove(self.sent + i);
                    self.dropped += 1;
                    pushed.dropped = true;
                }
                None if message.droppable => {
                    self.dropped += 1;
                    pushed.dropped = true;
                    return pushed;
                }
                None => pushed.over_capacity = true,
            }
        }
        self.entries.push_back(Entry {
            message,
            pkid: None,
        });
        pushed
    }

    /// The next message to hand to the connection, if fewer than `window` are on the wire.
    pub fn next_to_send(&mut self, window: usize) -> Option<&Message> {
        if self.sent >= window || self.sent >= self.entries.len() {
            return None;
        }
        self.sent += 1;
        Some(&self.entries[self.sent - 1].message)
    }

    /// The connection wrote the next handed-over message as packet `pkid` (it writes them in
    /// the order they were handed over). With `acked` (QoS 0) that is all it will get.
    pub fn written(&mut self, pkid: u16, acked: bool) {
        let Some(i) = self
            .entries
            .iter()
            .take(self.sent)
            .position(|e| e.pkid.is_none())
        else {
            return;
        };
        if acked {
            self.entries.remove(i);
            self.sent -= 1;
        } else {
            self.entries[i].pkid = Some(pkid);
        }
    }

    /// The broker acknowledged packet `pkid`: its message is delivered.
    pub fn acknowledged(&mut self, pkid: u16) -> bool {
        let found = self
            .entries
            .iter()
            .take(self.sent)
            .position(|e| e.pkid == Some(pkid));
        if let Some(i) = found {
            self.entries.remove(i);
            self.sent -= 1;
        }
        found.is_some()
    }

    /// The connection is gone: what it did not acknowledge goes out again, first, on the next.
    pub fn disconnected(&mut self) {
        for e in self.entries.iter_mut().take(self.sent) {
            e.pkid = None;
        }
        self.sent = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(name: &str, droppable: bool) -> Message {
        Message {
            topic: name.to_string(),
            payload: name.as_bytes().to_vec(),
            droppable,
        }
    }

    fn send_all(o: &mut Outbox, window: usize) -> Vec<String> {
        std::iter::from_fn(|| o.next_to_send(window).map(|m| m.topic.clone())).collect()
    }

    #[test]
    fn unacknowledged_messages_go_out_again_in_order_after_a_disconnect() {
        let mut o = Outbox::new(10);
        for n in ["a", "b", "c", "d"] {
            o.push(msg(n, false));
        }
        assert_eq!(send_all(&mut o, 3), ["a", "b", "c"]);
        o.written(1, false);
        o.written(2, false);
        assert!(o.acknowledged(1));
        assert!(!o.acknowledged(9));
        o.disconnected();
        assert_eq!(send_all(&mut o, 10), ["b", "c", "d"]);
        for pkid in 1..=3 {
            o.written(pkid, false);
        }
        // The broker may acknowledge out of order.
        assert!(o.acknowledged(2));
        assert!(o.acknowledged(1));
        assert!(o.acknowledged(3));
        assert!(o.is_empty());
    }

    #[test]
    fn a_full_outbox_drops_the_oldest_waiting_window_result_never_an_event() {
        let mut o = Outbox::new(3);
        o.push(msg("w1", true));
        o.push(msg("e1", false));
        o.push(msg("w2", true));
        // w1 is on the wire: it is not the one dropped.
        assert_eq!(send_all(&mut o, 1), ["w1"]);
        assert!(o.push(msg("e2", false)).dropped);
        assert_eq!(o.dropped(), 1);
        // Only events wait now: a window result is refused, an event is kept past capacity.
        let p = o.push(msg("w3", true));
        assert!(p.dropped && !p.over_capacity);
        assert!(o.push(msg("e3", false)).over_capacity);
        assert_eq!(o.dropped(), 2);
        o.disconnected();
        assert_eq!(send_all(&mut o, 10), ["w1", "e1", "e2", "e3"]);
    }

    #[test]
    fn qos0_messages_leave_when_written() {
        let mut o = Outbox::new(4);
        o.push(msg("a", true));
        o.push(msg("b", true));
        assert_eq!(send_all(&mut o, 4), ["a", "b"]);
        o.written(0, true);
        o.written(0, true);
        assert!(o.is_empty());
    }
}
