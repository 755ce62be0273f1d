// SPDX-License-Identifier: MPL-2.0

//! Settings that change while the element runs, brought to the stream between windows: the
//! smoothing, the class filter and the watched event groups.

use std::sync::Arc;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{AudioTagger, CAT, State};
use super::outbox::Outbox;
use super::settings::{Changed, Settings};
use crate::tags::{Preset, StopReason, resolve_watch};

impl AudioTagger {
    /// Brings the stream's tagger up to the settings `changed` names. Called while streaming,
    /// so problems are warnings and the previous configuration stays; `start` has already
    /// rejected a bad initial one.
    pub(super) fn apply(
        &self,
        state: &mut State,
        settings: &Settings,
        changed: Changed,
        labels: &[String],
        out: &mut Outbox,
    ) {
        if changed.smoothing {
            state.tagger.set_smoothing(
                settings.smoothing.into(),
                settings.smoothing_windows as usize,
            );
        }
        if changed.filter {
            let unknown = state
                .tagger
                .set_filter(labels, &settings.labels, &settings.exclude);
            if !unknown.is_empty() {
                out.warning(
                    self.obj().upcast_ref(),
                    gst::ResourceError::Settings,
                    &format!(
                        "Unknown labels in `labels`/`exclude`: {}",
                        unknown.join("; ")
                    ),
                    "names must match the model's labels exactly, ignoring case; separate them \
                     with ';'",
                );
            }
        }
        if changed.events {
            self.reconfigure_events(state, settings, labels, out);
        }
    }

    /// Rebuilds the event trackers: a new preset file is read, the watched groups resolved.
    fn reconfigure_events(
        &self,
        state: &mut State,
        settings: &Settings,
        labels: &[String],
        out: &mut Outbox,
    ) {
        let preset = {
            let mut current = self.preset.lock().unwrap();
            if current.file != settings.event_preset {
                current.file = settings.event_preset.clone();
                match Preset::with_user_file(settings.event_preset.as_deref()) {
                    Ok(p) => current.groups = Arc::new(p),
                    Err(e) => out.warning(
                        self.obj().upcast_ref(),
                        gst::ResourceError::Settings,
                        &e,
                        "keeping the event groups loaded before",
                    ),
                }
            }
            current.groups.clone()
        };
        let resolved = resolve_watch(&preset, &settings.watch, &settings.event_defaults(), labels)
            .and_then(|mut groups| {
                self.arm_looks(state, &mut groups)?;
                Ok(groups)
            });
        match resolved {
            Ok(groups) => {
                gst::info!(
                    CAT,
                    imp = self,
                    "watching {:?}; scored by the model's trained heads: {:?}",
                    groups.iter().map(|g| &g.name).collect::<Vec<_>>(),
                    groups
                        .iter()
                        .filter(|g| g.uses_head)
                        .map(|g| &g.name)
                        .collect::<Vec<_>>()
                );
                let mut reports = Vec::new();
                state.tagger.watch(groups, &mut reports);
                self.route_events(state, reports, labels, out);
            }
            Err(e) => out.warning(
                self.obj().upcast_ref(),
                gst::ResourceError::Settings,
                &e,
                "events keep their previous configuration",
            ),
        }
    }

    /// Ends every open event (EOS, flush, discontinuity, stop).
    pub(super) fn close_events(&self, state: &mut State, reason: StopReason, out: &mut Outbox) {
        let mut reports = Vec::new();
        state.tagger.close(reason, &mut reports);
        if !reports.is_empty()
            && let Some(shared) = self.model.lock().unwrap().clone()
        {
            self.route_events(state, reports, &shared.descriptor().labels, out);
        }
    }
}
