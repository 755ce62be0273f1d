// SPDX-License-Identifier: MPL-2.0

//! The second look in the element: the first stage's event reports pass through the stream's
//! [`SecondLook`], the audio around each candidate goes from the front-end's history to the
//! second model on the shared inference machinery, and its verdicts come back in order.
//!
//! The streaming thread never waits for a look except where it waits for windows too: in
//! blocking mode and when it drains (EOS, new caps, a discontinuity). In live mode the
//! inference thread reports the verdict itself, as it does windows.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{AudioTagger, CAT, State};
use super::inflight::{Wait, receive};
use super::outbox::Outbox;
use super::results;
use crate::model::{BatchOutput, ModelError};
use crate::tags::{EventReport, ResolvedGroup, SecondLook, second_look};

/// One stream's candidates and the looks the second model is running for them.
#[derive(Default)]
pub(super) struct Looks {
    /// `None` without a second model.
    candidates: Option<SecondLook>,
    in_flight: VecDeque<(u64, mpsc::Receiver<Result<BatchOutput, ModelError>>)>,
}

impl Looks {
    /// Forgets every candidate and look of the stream (a flush or a discontinuity); returns
    /// how many candidates were waiting.
    pub(super) fn drop_waiting(&mut self) -> usize {
        self.in_flight.clear();
        self.candidates.as_mut().map_or(0, SecondLook::drop_waiting)
    }
}

impl AudioTagger {
    /// Gives the groups that have a look in the preset their candidate thresholds and the
    /// stream its looks, when the element has a second model. Called before the first stage
    /// watches `groups`.
    pub(super) fn arm_looks(
        &self,
        state: &mut State,
        groups: &mut [ResolvedGroup],
    ) -> Result<(), String> {
        let Some(second) = self.second.lock().unwrap().clone() else {
            return Ok(());
        };
        let looks = second_look::arm(groups, &second.descriptor().labels)?;
        let settings = self.settings.lock().unwrap();
        let (before, after) = (
            settings.look_before.nseconds(),
            settings.look_after.nseconds(),
        );
        drop(settings);
        match state.looks.candidates.as_mut() {
            Some(candidates) => {
                let dropped = candidates.set_looks(looks);
                if dropped > 0 {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "{dropped} candidates dropped: their group's look is gone"
                    );
                }
            }
            None => state.looks.candidates = Some(SecondLook::new(looks, before, after)),
        }
        Ok(())
    }

    /// Posts the first stage's event reports, those of groups with a look once the second
    /// model has confirmed them.
    pub(super) fn route_events(
        &self,
        state: &mut State,
        reports: Vec<EventReport>,
        labels: &[String],
        out: &mut Outbox,
    ) {
        let reports = match state.looks.candidates.as_mut() {
            Some(candidates) => {
                let mut passed = Vec::new();
                candidates.filter(reports, &mut passed);
                passed
            }
            None => reports,
        };
        if !reports.is_empty() {
            results::queue_events(
                self.obj().upcast_ref(),
                reports,
                labels,
                state.segment.as_ref(),
                out,
            );
        }
    }

    /// Sends the looks whose audio is in to the second model and reports the verdicts `wait`
    /// lets this call wait for (all of them for `AtMost(0)`). `end`: the stream ended after
    /// this many model-rate samples, and every candidate gets its look now.
    pub(super) fn look(&self, state: &mut State, wait: Wait, end: Option<u64>, out: &mut Outbox) {
        // Called after every buffer and every batch of results: nothing to do is the usual case.
        let idle = state.looks.in_flight.is_empty()
            && state
                .looks
                .candidates
                .as_ref()
                .is_none_or(|c| c.waiting() == 0);
        if idle {
            return;
        }
        let Some(second) = self.second.lock().unwrap().clone() else {
            return;
        };
        let Some(timing) = state.timing.as_ref() else {
            return;
        };
        let rate = state.frontend.config().sample_rate;
        let received = end.unwrap_or_else(|| state.frontend.samples_total());
        let until = timing.at_model_sample(received, rate).nseconds();
        let length = second.descriptor().frontend.window_samples;
        let candidates = state.looks.candidates.as_mut().expect("checked above");
        let mode = self.mode();
        for request in candidates.due(until, end.is_some()) {
            let from = timing.model_sample_at(gst::ClockTime::from_nseconds(request.from), rate);
            let mut clip = Vec::with_capacity(length);
            state.frontend.recent(from, length, &mut clip);
            gst::debug!(
                CAT,
                imp = self,
                "second look {} at {} for {}",
                request.id,
                gst::ClockTime::from_nseconds(request.from),
                request.group
            );
            let rx = self.send(&second, clip, 1, false, mode);
            state.looks.in_flight.push_back((request.id, rx));
        }
        let wait_all = matches!(wait, Wait::AtMost(0));
        while let Some((id, rx)) = state.looks.in_flight.front() {
            let id = *id;
            let Some(result) = receive(rx, wait_all) else {
                break;
            };
            state.looks.in_flight.pop_front();
            let candidates = state.looks.candidates.as_mut().expect("checked above");
            let mut passed = Vec::new();
            match result {
                Ok(output) => {
                    if let Some(v) = candidates.decide(id, &output.scores, &mut passed) {
                        let j = &v.judgement;
                        gst::debug!(
                            CAT,
                            imp = self,
                            "second look {id}: {} at {} {} (score {:.3}, confusers {:.3})",
                            v.group,
                            gst::ClockTime::from_nseconds(v.onset),
                            if j.confirmed { "confirmed" } else { "rejected" },
                            j.score,
                            j.confuser_score
                        );
                        if !j.confirmed {
                            self.looks_rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                Err(e) => {
                    if let Some(group) = candidates.pass_unjudged(id, &mut passed) {
                        out.warning(
                            self.obj().upcast_ref(),
                            gst::LibraryError::Failed,
                            &format!("The second model could not score a {group} candidate: {e}"),
                            "the first stage's event is posted unconfirmed",
                        );
                    }
                }
            }
            if !passed.is_empty()
                && let Some(first) = self.model.lock().unwrap().clone()
            {
                results::queue_events(
                    self.obj().upcast_ref(),
                    passed,
                    &first.descriptor().labels,
                    state.segment.as_ref(),
                    out,
                );
            }
        }
    }
}
