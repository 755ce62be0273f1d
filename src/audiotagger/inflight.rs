// SPDX-License-Identifier: MPL-2.0

//! Windows between the model and their report: what is in flight, how long the streaming thread
//! waits for it (the mode's choice), reporting in stream order, and live mode's skipping and
//! reporting from the inference thread.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::Mode;
use super::imp::{AudioTagger, CAT, State};
use super::outbox::Outbox;
use super::results::{WindowResult, attach};
use super::timing::samples_to_time;
use crate::frontend::Window;
use crate::model::{BatchOutput, ModelError};
use crate::tags::{Observation, Selection, WindowTags};

/// Windows sent to the model whose results have not been reported yet.
pub(super) struct Pending {
    /// Their features were moved into the job.
    windows: Vec<Window>,
    /// `row[i]`: window i's row in the result; `None` for a quiet window, which skips the model.
    row: Vec<Option<usize>>,
    /// `None` when every window was quiet and nothing was sent.
    result: Option<mpsc::Receiver<Result<BatchOutput, ModelError>>>,
}

/// A batch for the model: the loud windows' features, back to back.
pub(super) struct Batch {
    pub(super) features: Vec<f32>,
    pub(super) windows: usize,
}

impl Pending {
    /// Takes the features of the windows at least `min_level` dBFS loud (the loudest 25 ms)
    /// into a batch; the quiet ones are reported without the model.
    pub(super) fn split(mut windows: Vec<Window>, min_level: f32) -> (Self, Batch) {
        let mut row = vec![None; windows.len()];
        let mut batch = Batch {
            features: Vec::new(),
            windows: 0,
        };
        for (i, w) in windows.iter_mut().enumerate() {
            if w.level.short_term_db >= min_level {
                row[i] = Some(batch.windows);
                batch.windows += 1;
                batch.features.append(&mut w.features);
            }
        }
        let pending = Self {
            windows,
            row,
            result: None,
        };
        (pending, batch)
    }

    pub(super) fn len(&self) -> usize {
        self.windows.len()
    }

    /// The batch's result will come on `rx`.
    pub(super) fn awaiting(self, rx: mpsc::Receiver<Result<BatchOutput, ModelError>>) -> Self {
        Self {
            result: Some(rx),
            ..self
        }
    }

    fn in_model(&self) -> usize {
        self.row.iter().flatten().count()
    }
}

/// The model's output on `rx`: waited for if `wait`, else `None` while it is not in yet.
pub(super) fn receive(
    rx: &mpsc::Receiver<Result<BatchOutput, ModelError>>,
    wait: bool,
) -> Option<Result<BatchOutput, ModelError>> {
    let gone = || Err(ModelError::Run("the inference thread ended".into()));
    Some(if wait {
        rx.recv().unwrap_or_else(|_| gone())
    } else {
        match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return None,
            Err(mpsc::TryRecvError::Disconnected) => gone(),
        }
    })
}

/// How long [`AudioTagger::collect`] may wait for the model.
#[derive(Clone, Copy)]
pub(super) enum Wait {
    /// Report what is ready; never wait.
    Ready,
    /// Wait until at most this many windows are in the model.
    AtMost(usize),
}

/// The pending windows of one stream, oldest first.
#[derive(Default)]
pub(super) struct InFlight {
    pending: VecDeque<Pending>,
    /// Windows of `pending` that are in the model.
    in_model: usize,
    /// Live mode skipped windows since the queue was last empty (warned about once).
    overloaded: bool,
}

impl InFlight {
    pub(super) fn in_model(&self) -> usize {
        self.in_model
    }

    pub(super) fn push(&mut self, pending: Pending) {
        self.in_model += pending.in_model();
        self.pending.push_back(pending);
    }

    /// Forgets everything in flight (a flush); late results go nowhere.
    pub(super) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The oldest pending windows and their output, if it is in or `wait` says to wait for it.
    fn next(&mut self, wait: Wait) -> Option<(Pending, Result<BatchOutput, ModelError>)> {
        let Some(front) = self.pending.front() else {
            // Every caller asks again until it gets `None`, so an emptied queue ends here.
            self.overloaded = false;
            return None;
        };
        let must_wait = matches!(wait, Wait::AtMost(n) if self.in_model > n);
        let output = match &front.result {
            None => Ok(BatchOutput::default()),
            Some(rx) => receive(rx, must_wait)?,
        };
        let pending = self.pending.pop_front().expect("front exists");
        self.in_model -= pending.in_model();
        Some((pending, output))
    }

    /// Notes that windows were skipped; true for the first skip since the queue was last empty.
    fn overload(&mut self) -> bool {
        !std::mem::replace(&mut self.overloaded, true)
    }
}

impl AudioTagger {
    /// Reports pending windows oldest first, as far as their results are in or `wait` allows
    /// waiting for them. Results of a later buffer's windows are carried by that later buffer.
    pub(super) fn collect(
        &self,
        state: &mut State,
        mut buf: Option<&mut gst::BufferRef>,
        wait: Wait,
        out: &mut Outbox,
    ) {
        while let Some((pending, output)) = state.inflight.next(wait) {
            let draining = !matches!(wait, Wait::Ready);
            self.report(state, pending, output, buf.as_deref_mut(), draining, out);
        }
        self.look(state, wait, None, out);
    }

    /// Live mode: reports what is ready, unless another thread holds the state. Never waits,
    /// so an inference thread cannot stall on an element. A result is sent before
    /// `report_wanted` is raised, and the streaming thread (after each buffer) and the inference
    /// threads look at the flag after letting go of the state. So a result that comes in while
    /// one of them holds it is reported as soon as it lets go, not at the next buffer, which a
    /// live source may not send for a long time.
    pub(super) fn report_ready(&self) {
        loop {
            let Ok(mut guard) = self.state.try_lock() else {
                return;
            };
            self.report_wanted.store(false, Ordering::SeqCst);
            let mut out = Outbox::default();
            if let Some(state) = guard.as_mut() {
                self.collect(state, None, Wait::Ready, &mut out);
            }
            drop(guard);
            out.post(self.obj().upcast_ref(), &self.inband);
            if !self.report_wanted.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Live mode with a full queue: the windows are dropped, counted, and warned about once
    /// per overload (until the queue next empties).
    pub(super) fn skip(
        &self,
        state: &mut State,
        windows: usize,
        max_queue: usize,
        out: &mut Outbox,
    ) {
        let total = self.skipped.fetch_add(windows as u64, Ordering::Relaxed) + windows as u64;
        gst::debug!(CAT, imp = self, "queue full: skipped {windows} windows");
        if state.inflight.overload() {
            out.warning(
                self.obj().upcast_ref(),
                gst::ResourceError::Busy,
                &format!(
                    "The model cannot keep up: {max_queue} windows are waiting, so new windows \
                     are skipped ({total} so far)"
                ),
                "the audio passes on unaffected and `windows-skipped` counts them; run fewer \
                 streams per machine, the int8 model, more `sessions`, or a GPU",
            );
        }
    }

    /// Reports one pending batch: its windows' messages and meta, their smoothing and events.
    fn report(
        &self,
        state: &mut State,
        pending: Pending,
        output: Result<BatchOutput, ModelError>,
        mut buf: Option<&mut gst::BufferRef>,
        draining: bool,
        out: &mut Outbox,
    ) {
        let Some(shared) = self.model.lock().unwrap().clone() else {
            return;
        };
        let settings = self.settings.lock().unwrap().clone();
        let descriptor = shared.descriptor();
        let Pending { windows, row, .. } = pending;
        let output = match output {
            Ok(o) => o,
            Err(e) => {
                out.warning(
                    self.obj().upcast_ref(),
                    gst::LibraryError::Failed,
                    &e.to_string(),
                    &format!("windows skipped: {}", windows.len()),
                );
                return;
            }
        };
        let selection = Selection {
            top_k: settings.top_k as usize,
            threshold: settings.threshold as f32,
        };
        let mut reports = Vec::new();
        let classes = descriptor.num_classes();
        let rate = descriptor.frontend.sample_rate;
        let duration = samples_to_time(descriptor.frontend.window_samples as u64, rate);
        let Some(timing) = state.timing.as_ref() else {
            return;
        };
        let segment = state.segment.as_ref();
        for (window, row) in windows.iter().zip(row) {
            let scores = row.map(|r| &output.scores[r * classes..(r + 1) * classes]);
            let timestamp = timing.at_model_sample(window.start, rate);
            let WindowTags { tags, smoothed } = state.tagger.step(
                &Observation {
                    start: timestamp.nseconds(),
                    end: (timestamp + duration).nseconds(),
                    scores,
                    level: window.level,
                },
                selection,
                &mut reports,
            );
            let dim = output.embedding_dim;
            let result = WindowResult {
                index: window.index,
                timestamp,
                stream_time: segment.and_then(|s| s.to_stream_time(timestamp)),
                running_time: segment.and_then(|s| s.to_running_time(timestamp)),
                duration,
                partial: window.is_partial(&descriptor.frontend),
                quiet: row.is_none(),
                level: window.level,
                tags: &tags,
                smoothed: &smoothed,
                labels: &descriptor.labels,
                full_scores: scores.filter(|_| settings.full_scores),
                embedding: row
                    .filter(|_| dim > 0)
                    .map(|r| &output.embeddings[r * dim..(r + 1) * dim]),
            };
            // In-band always: `post-messages` is about the bus.
            out.result(
                self.obj().upcast_ref(),
                result.to_structure(),
                settings.post_messages,
            );
            if settings.attach_meta {
                match buf.as_deref_mut() {
                    Some(buf) => attach(buf, |s| result.fill(s)),
                    // Reported by the inference thread: the next buffer carries it.
                    None if self.mode() == Mode::Live && !draining => {
                        state.unattached.push(result.to_structure())
                    }
                    None => {}
                }
            }
            gst::log!(
                CAT,
                imp = self,
                "window {} at {timestamp}: {:?}",
                window.index,
                tags.iter()
                    .map(|t| (&descriptor.labels[t.class_id], t.score))
                    .collect::<Vec<_>>()
            );
        }
        self.route_events(state, reports, &descriptor.labels, out);
    }
}
