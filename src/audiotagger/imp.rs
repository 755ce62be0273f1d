// SPDX-License-Identifier: MPL-2.0

//! The element's life: start (the model), caps (the stream's front-end), buffers (windows to
//! the model, results back), events (EOS, flushes), stop.
//!
//! Locks, in the order they may be taken, never the reverse: the pad's stream lock (held by
//! GStreamer around `transform_ip`, `sink_event` and `setup`), then `state`, then any one of
//! `model`, `second`, `settings`, `preset`, `active_mode` and `processing_latency`, each held
//! only while it is read or written. The inference threads never block on `state`: they `try_lock` it
//! (live mode's reporting). Messages are built under `state` and posted after it is dropped
//! (see [`Outbox`]).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_audio::subclass::prelude::*;
use gst_base::prelude::*;

use super::Mode;
use super::inflight::{InFlight, Pending, Wait};
use super::input;
use super::looks::Looks;
use super::outbox::{InBand, Outbox};
use super::results::attach;
use super::settings::{self, Changed, Settings};
use super::timing::Timing;
use crate::frontend::{Frontend, Window};
use crate::model::batcher::Job;
use crate::model::{self, BatchOutput, ModelError, SessionOptions, SharedModel, runtime};
use crate::tags::{Preset, StopReason, StreamTagger, resolve_watch, second_look};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "audiotagger",
        gst::DebugColorFlags::empty(),
        Some("Audio tagging with ONNX audio models"),
    )
});

/// A timestamp further than this from where the samples say the stream is counts as a gap.
const GAP_TOLERANCE: gst::ClockTime = gst::ClockTime::from_mseconds(20);

/// Per-stream state, created when caps are set and dropped on stop.
pub(super) struct State {
    info: gst_audio::AudioInfo,
    pub(super) frontend: Frontend,
    pub(super) timing: Option<Timing>,
    /// Smoothing, class filter and event trackers, carried over when the caps change.
    pub(super) tagger: StreamTagger,
    warned_non_finite: bool,
    pub(super) inflight: InFlight,
    /// Meta of results the inference thread reported in live mode, for the next buffer.
    pub(super) unattached: Vec<gst::Structure>,
    /// The segment as of the last buffer. Results are timed against this copy because the
    /// inference thread must not take the pad's stream lock (`segment()`) while it holds the
    /// state, which the streaming thread locks while holding the stream lock.
    pub(super) segment: Option<gst::FormattedSegment<gst::format::Time>>,
    /// Candidates waiting for the second model, and its looks in flight.
    pub(super) looks: Looks,
}

/// The event groups `watch` can name: the shipped preset plus the user's file.
pub(super) struct LoadedPreset {
    /// `event-preset` as it was when `groups` was read.
    pub(super) file: Option<PathBuf>,
    pub(super) groups: Arc<Preset>,
}

pub struct AudioTagger {
    pub(super) settings: Mutex<Settings>,
    pub(super) model: Mutex<Option<Arc<SharedModel>>>,
    /// The second look's model (`second-model`), loaded at start.
    pub(super) second: Mutex<Option<Arc<SharedModel>>>,
    pub(super) state: Mutex<Option<State>>,
    /// Loaded at start and again when `event-preset` changes.
    pub(super) preset: Mutex<LoadedPreset>,
    /// Measured at start: the time one window's inference takes, reported as our latency.
    processing_latency: Mutex<gst::ClockTime>,
    /// The mode in force (`active-mode`): `mode`, or what `auto` chose at the first caps.
    active_mode: Mutex<Option<Mode>>,
    /// Windows live mode skipped since start (`windows-skipped`).
    pub(super) skipped: AtomicU64,
    /// Candidates the second model rejected since start (`looks-rejected`).
    pub(super) looks_rejected: AtomicU64,
    /// Live mode: a result came in while another thread held the state, so whoever held it
    /// must look again after letting go (see [`AudioTagger::report_ready`]).
    pub(super) report_wanted: AtomicBool,
    /// Results waiting to go downstream in-band.
    pub(super) inband: InBand,
}

impl Default for AudioTagger {
    fn default() -> Self {
        Self {
            settings: Mutex::default(),
            model: Mutex::default(),
            second: Mutex::default(),
            state: Mutex::default(),
            preset: Mutex::new(LoadedPreset {
                file: None,
                groups: Arc::new(Preset::builtin()),
            }),
            processing_latency: Mutex::default(),
            active_mode: Mutex::default(),
            skipped: AtomicU64::new(0),
            looks_rejected: AtomicU64::new(0),
            report_wanted: AtomicBool::new(false),
            inband: InBand::default(),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for AudioTagger {
    const NAME: &'static str = "GstAudioTagger";
    type Type = super::AudioTagger;
    type ParentType = gst_audio::AudioFilter;
}

impl ObjectImpl for AudioTagger {
    fn properties() -> &'static [glib::ParamSpec] {
        settings::properties()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        // Read when the element starts (the model and its sessions are loaded then, and the
        // mode, hop and provider shape what is in flight): a change while it runs is refused
        // rather than left to take effect at some later point.
        if pspec.flags().contains(gst::PARAM_FLAG_MUTABLE_READY)
            && self.model.lock().unwrap().is_some()
        {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                (
                    "Property {} cannot change while the element runs",
                    pspec.name()
                ),
                [
                    "it is read when the element starts: set it in the NULL or READY state; it \
                     stays {:?}",
                    self.property(0, pspec)
                ]
            );
            return;
        }
        self.settings.lock().unwrap().set(pspec.name(), value);
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(value) = self.settings.lock().unwrap().get(pspec.name()) {
            return value;
        }
        match pspec.name() {
            "windows-skipped" => self.skipped.load(Ordering::Relaxed).to_value(),
            "looks-rejected" => self.looks_rejected.load(Ordering::Relaxed).to_value(),
            "active-mode" => self.active_mode.lock().unwrap().map(Mode::nick).to_value(),
            "active-execution-provider" => self
                .model
                .lock()
                .unwrap()
                .as_ref()
                .map(|m| m.provider().name())
                .to_value(),
            other => unreachable!("no property {other}"),
        }
    }
}

impl GstObjectImpl for AudioTagger {}

impl ElementImpl for AudioTagger {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Audio tagger",
                "Filter/Analyzer/Audio",
                "Tags what an audio stream contains (speech, music, sound events such as \
                 gunshots or breaking glass) with an ONNX audio model such as YAMNet, posting \
                 the results as element messages and buffer metadata. Audio passes through \
                 unchanged",
                "audiotagger developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }
}

impl BaseTransformImpl for AudioTagger {
    // Always in place and never passthrough: the samples are only read, but the buffer that
    // completes a window must be writable to carry the result as metadata.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let loaded = runtime::ensure_loaded(settings.ort_library.as_deref())
            .map_err(|e| gst::error_msg!(gst::LibraryError::Init, ("{e}")))?;
        if let Some(other) = loaded.requested_other {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                [
                    "ONNX Runtime is already loaded from {}; ignoring {}. It can be loaded only \
                     once per process: give `ort-library` the same value on every element, or \
                     leave it empty",
                    loaded.path.display(),
                    other.display()
                ]
            );
        }
        let (sessions, threads) = model::shared::layout(
            settings.provider.into(),
            settings.sessions,
            settings.threads,
            model::shared::available_cores(),
        );
        let options = SessionOptions {
            provider: settings.provider.into(),
            device_id: settings.device_id,
            threads,
            ..Default::default()
        };
        let shared = model::shared::get(&settings.model, &options, sessions)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ("{e}")))?;
        if let Some(reason) = shared.fallback() {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Init,
                (
                    "Execution provider {} is not usable here; running on the CPU",
                    settings.provider.nick()
                ),
                ["{reason}"]
            );
        }
        gst::info!(
            CAT,
            imp = self,
            "model {} ({} classes) on {}, {} sessions of {threads} threads, batches of up to \
             {} windows",
            settings.model.display(),
            shared.descriptor().num_classes(),
            shared.provider(),
            shared.sessions(),
            shared.max_batch()
        );
        // A bad preset or watch list is a configuration error: say so now, not at the first shot.
        let preset = Preset::with_user_file(settings.event_preset.as_deref()).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("{e}"),
                ["fix the file (format: models/event_groups.toml) or clear `event-preset`"]
            )
        })?;
        let mut groups = resolve_watch(
            &preset,
            &settings.watch,
            &settings.event_defaults(),
            &shared.descriptor().labels,
        )
        .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        let second = match &settings.second_model {
            Some(path) => {
                let second = load_second_model(path, &settings, &shared, sessions)?;
                second_look::arm(&mut groups, &second.descriptor().labels).map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::Settings,
                        ("{e}"),
                        ["name the second model's own labels in the preset's `look` tables"]
                    )
                })?;
                Some(second)
            }
            None => None,
        };
        *self.preset.lock().unwrap() = LoadedPreset {
            file: settings.event_preset.clone(),
            groups: Arc::new(preset),
        };
        // The first stream applies every setting.
        self.settings.lock().unwrap().changed = Changed::ALL;
        *self.processing_latency.lock().unwrap() = measure_processing_latency(&shared);
        self.skipped.store(0, Ordering::Relaxed);
        self.looks_rejected.store(0, Ordering::Relaxed);
        *self.active_mode.lock().unwrap() = None;
        *self.second.lock().unwrap() = second;
        *self.model.lock().unwrap() = Some(shared);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut out = Outbox::default();
        if let Some(mut state) = state {
            self.close_events(&mut state, StopReason::Flush, &mut out);
        }
        out.post(self.obj().upcast_ref(), &self.inband);
        // Nothing flows any more: what waited to go downstream has nowhere to go.
        self.inband.clear();
        *self.model.lock().unwrap() = None;
        *self.second.lock().unwrap() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        let mut out = Outbox::default();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (event.view(), guard.as_mut()) {
            (gst::EventView::Eos(_), Some(state)) => {
                // The tail that no complete window covered gets one padded window.
                let received = state.frontend.samples_total();
                let mut windows = Vec::new();
                state.frontend.finish(&mut windows);
                self.handle_windows(state, windows, None, &mut out);
                self.collect(state, None, Wait::AtMost(0), &mut out);
                // Candidates near the end get their look from the audio there is.
                self.look(state, Wait::AtMost(0), Some(received), &mut out);
                self.close_events(state, StopReason::Eos, &mut out);
            }
            (gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_), Some(state)) => {
                self.restart_stream(state, &mut out);
            }
            _ => {}
        }
        drop(guard);
        out.post(self.obj().upcast_ref(), &self.inband);
        let src = self.obj().src_pad().clone();
        match event.type_() {
            gst::EventType::FlushStart => {
                self.inband.clear();
                self.parent_sink_event(event)
            }
            // The stops a flush closes follow it, when downstream takes events again.
            gst::EventType::FlushStop => {
                let forwarded = self.parent_sink_event(event);
                self.inband.push_downstream(&src);
                forwarded
            }
            // Out-of-band events may come from any thread, which must not push serialized ones.
            _ if !event.is_serialized() => self.parent_sink_event(event),
            _ => {
                self.inband.push_downstream(&src);
                self.parent_sink_event(event)
            }
        }
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            if !self.obj().sink_pad().peer_query(q.query_mut()) {
                return false;
            }
            let (live, min, max) = q.result();
            // Audio is never held back; what the element adds is the inference that runs in the
            // streaming thread when a buffer completes a window. In live mode the streaming
            // thread never waits for the model, so a sink need not wait for it either. Queued
            // mode waits when its queue is full, so it keeps the blocking figure.
            let mode = self
                .active_mode
                .lock()
                .unwrap()
                .unwrap_or_else(|| self.settings.lock().unwrap().mode.resolve(live));
            let ours = match mode {
                Mode::Live => gst::ClockTime::ZERO,
                Mode::Blocking | Mode::Queued | Mode::Auto => {
                    *self.processing_latency.lock().unwrap()
                }
            };
            gst::debug!(
                CAT,
                imp = self,
                "adding {ours} of processing latency to {min}"
            );
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let flow = self.analyse(buf);
        if self.report_wanted.load(Ordering::SeqCst) {
            self.report_ready();
        }
        // Ahead of this buffer: the windows it completed end at or before its end.
        self.inband.push_downstream(self.obj().src_pad());
        flow
    }
}

impl AudioTagger {
    /// A bug must not abort the host process: a panic in `f` becomes an element error. Only
    /// for the inference threads' replies: GStreamer's calls into the element (`transform_ip`
    /// and the rest) already turn a panic into an element error in the bindings.
    pub(super) fn catch_panic<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .map_err(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    ("Internal error while tagging: {what}"),
                    ["please report it with the input that caused it"]
                );
            })
            .ok()
    }
}

impl AudioTagger {
    fn analyse(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let segment = self.obj().segment().downcast().ok();
        let mut out = Outbox::default();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let fed = guard.as_mut().map(|state| {
            state.segment = segment;
            self.feed(state, buf, &mut out)
        });
        drop(guard);
        out.post(self.obj().upcast_ref(), &self.inband);
        match fed {
            Some(Ok(())) => Ok(gst::FlowSuccess::Ok),
            Some(Err(e)) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Failed,
                    ["Cannot read the buffer: {e}"]
                );
                Err(gst::FlowError::Error)
            }
            None => {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ["Buffer before caps"]);
                Err(gst::FlowError::NotNegotiated)
            }
        }
    }

    /// Runs the buffer's samples through the front-end, sends the windows they complete to the
    /// model and attaches what results the mode lets this buffer carry.
    fn feed(
        &self,
        state: &mut State,
        buf: &mut gst::BufferRef,
        out: &mut Outbox,
    ) -> Result<(), glib::BoolError> {
        let discont = buf.flags().contains(gst::BufferFlags::DISCONT);
        let gap = match (&state.timing, buf.pts()) {
            (Some(t), Some(pts)) => pts.absdiff(t.expected_next()) > GAP_TOLERANCE,
            _ => false,
        };
        if state.timing.is_none() || discont || gap {
            if state.frontend.samples_total() > 0 {
                gst::debug!(
                    CAT,
                    imp = self,
                    "discontinuity at {:?}: closing the current run",
                    buf.pts()
                );
                let mut windows = Vec::new();
                state.frontend.finish(&mut windows);
                self.handle_windows(state, windows, None, out);
                // The run's results are timed from its own base: report them before it changes.
                self.collect(state, None, Wait::AtMost(0), out);
                self.restart_stream(state, out);
            }
            let base = buf.pts().unwrap_or_else(|| {
                self.obj()
                    .segment()
                    .downcast::<gst::format::Time>()
                    .ok()
                    .and_then(|s| s.start())
                    .unwrap_or_default()
            });
            state.timing = Some(Timing::new(base, state.info.rate()));
        }

        let mut windows = Vec::new();
        {
            let map = buf.map_readable()?;
            let bytes = map.as_slice();
            let frames = bytes.len() / state.info.bpf() as usize;
            input::push(
                &mut state.frontend,
                state.info.format(),
                bytes,
                &mut windows,
            )
            .unwrap_or_else(|other| unreachable!("caps allow no {other:?}"));
            if let Some(t) = state.timing.as_mut() {
                t.advance(frames as u64);
            }
        }
        if state.frontend.non_finite_samples() > 0 && !state.warned_non_finite {
            state.warned_non_finite = true;
            out.warning(
                self.obj().upcast_ref(),
                gst::StreamError::Format,
                "Input contains NaN or infinite samples; they are tagged as silence",
                "the audio itself passes through unchanged",
            );
        }
        for s in state.unattached.drain(..) {
            attach(buf, |meta| {
                for (field, value) in s.iter() {
                    meta.set_value(field, value.clone());
                }
            });
        }
        if !windows.is_empty() {
            self.handle_windows(state, windows, Some(buf), out);
        } else {
            // Earlier windows' results, and looks whose audio this buffer completed.
            self.collect(state, Some(buf), Wait::Ready, out);
        }
        Ok(())
    }
}

/// The second model for `path` (a bare file name is looked for where models are), running
/// looks of `look-before` + `look-after` at the first model's rate, which it must share: the
/// looks are cut from the first model's front-end. It runs on the CPU whatever the first model
/// runs on: a few looks an hour per stream would not fill a GPU batch.
fn load_second_model(
    path: &std::path::Path,
    settings: &Settings,
    first: &SharedModel,
    sessions: usize,
) -> Result<Arc<SharedModel>, gst::ErrorMessage> {
    let path = if path.components().count() == 1 && !path.exists() {
        model::locate::model_dirs()
            .into_iter()
            .map(|d| d.join(path))
            .find(|p| p.is_file())
            .unwrap_or_else(|| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let rate = first.descriptor().frontend.sample_rate;
    let look = settings.look_before + settings.look_after;
    let samples =
        look.nseconds() as u128 * rate as u128 / gst::ClockTime::SECOND.nseconds() as u128;
    let options = SessionOptions {
        threads: 1,
        window_samples: Some(samples as usize),
        ..Default::default()
    };
    let second = model::shared::get(&path, &options, sessions).map_err(|e| {
        gst::error_msg!(
            gst::ResourceError::OpenRead,
            ("Cannot use the second-look model: {e}"),
            ["`second-model` must be a waveform model with a descriptor, e.g. ced-tiny.onnx made by scripts/setup.sh"]
        )
    })?;
    if !matches!(
        second.descriptor().frontend.input,
        crate::frontend::InputKind::Waveform
    ) {
        return Err(gst::error_msg!(
            gst::ResourceError::Settings,
            (
                "The second-look model {} takes log-mel features, not audio",
                path.display()
            ),
            [
                "`second-model` must be a waveform model (input_kind = waveform), e.g. ced-tiny.onnx made by scripts/setup.sh"
            ]
        ));
    }
    let second_rate = second.descriptor().frontend.sample_rate;
    if second_rate != rate {
        return Err(gst::error_msg!(
            gst::ResourceError::Settings,
            ("The second-look model runs at {second_rate} Hz but the model at {rate} Hz",),
            ["the looks are cut from the first model's audio: pick models of one rate"]
        ));
    }
    Ok(second)
}

/// Times a warm-up run of one window, which also pays ONNX Runtime's first-run costs on every
/// session before the stream starts. Twice the measured time, rounded up to a millisecond, is
/// what we report.
fn measure_processing_latency(shared: &SharedModel) -> gst::ClockTime {
    let took = shared.warm_up();
    gst::ClockTime::from_mseconds((took * 2).as_millis() as u64 + 1)
}

impl AudioTagger {
    /// Model-rate samples the front-end keeps for the second look: a look, plus the audio of
    /// the windows that may be in the model when a candidate comes out of it (the first
    /// stage's report lags the audio by them).
    fn history_samples(&self, config: &crate::frontend::FrontendConfig) -> usize {
        let Some(second) = self.second.lock().unwrap().clone() else {
            return 0;
        };
        let Some(first) = self.model.lock().unwrap().clone() else {
            return 0;
        };
        let mode = self.mode();
        let in_model = self.settings.lock().unwrap().max_queue(mode, &first);
        second.descriptor().frontend.window_samples
            + (in_model + 1) * config.hop_samples
            + config.window_samples
    }

    /// Forgets the stream's position and history: a flush, a new stream or a discontinuity.
    fn restart_stream(&self, state: &mut State, out: &mut Outbox) {
        self.close_events(state, StopReason::Flush, out);
        let dropped = state.looks.drop_waiting();
        if dropped > 0 {
            gst::debug!(
                CAT,
                imp = self,
                "{dropped} candidates dropped before their second look: the stream broke off"
            );
        }
        let config = state.frontend.config().clone();
        state.frontend = Frontend::new(config, state.info.rate(), state.info.channels() as usize)
            .expect("the same configuration was accepted before");
        let history = self.history_samples(state.frontend.config());
        state.frontend.keep_history(history);
        state.tagger.reset_smoothing();
        state.timing = None;
        // After a flush nothing of the old stream is reported; a discontinuity drained it first.
        state.inflight.clear();
        state.unattached.clear();
    }

    /// The mode in force, decided once per start at the first caps. `auto` asks upstream with a
    /// latency query: a live source (a capture card, a camera, a network stream) gets `live`, so
    /// it never waits for the model; anything else, e.g. a file, gets `queued`, which keeps
    /// every session busy and loses nothing.
    pub(super) fn mode(&self) -> Mode {
        if let Some(mode) = *self.active_mode.lock().unwrap() {
            return mode;
        }
        let asked = self.settings.lock().unwrap().mode;
        let live = asked == Mode::Auto && {
            let mut q = gst::query::Latency::new();
            self.obj().sink_pad().peer_query(&mut q) && q.result().0
        };
        let mode = asked.resolve(live);
        gst::info!(
            CAT,
            imp = self,
            "mode {} ({} asked for)",
            mode.nick(),
            asked.nick()
        );
        *self.active_mode.lock().unwrap().get_or_insert(mode)
    }

    /// Sends `windows` to the model (quiet ones skip it) and reports the results the mode lets
    /// this buffer wait for.
    fn handle_windows(
        &self,
        state: &mut State,
        windows: Vec<Window>,
        buf: Option<&mut gst::BufferRef>,
        out: &mut Outbox,
    ) {
        if windows.is_empty() {
            return;
        }
        let Some(shared) = self.model.lock().unwrap().clone() else {
            return;
        };
        let (settings, changed) = self.settings.lock().unwrap().take_changes();
        self.apply(state, &settings, changed, &shared.descriptor().labels, out);

        let (pending, batch) = Pending::split(windows, settings.min_level as f32);
        let mode = self.mode();
        let max_queue = settings.max_queue(mode, &shared);
        if mode == Mode::Live
            && batch.windows > 0
            && state.inflight.in_model() + batch.windows > max_queue
        {
            self.skip(state, pending.len(), max_queue, out);
            self.collect(state, buf, Wait::Ready, out);
            return;
        }
        let pending = if batch.windows == 0 {
            pending
        } else {
            let rx = self.send(
                &shared,
                batch.features,
                batch.windows,
                settings.embeddings,
                mode,
            );
            pending.awaiting(rx)
        };
        state.inflight.push(pending);
        let wait = match mode {
            Mode::Blocking => Wait::AtMost(0),
            Mode::Queued | Mode::Auto => Wait::AtMost(max_queue),
            Mode::Live => Wait::Ready,
        };
        self.collect(state, buf, wait, out);
    }
}

impl AudioTagger {
    /// Hands `windows` windows of features to `model`'s inference threads (in blocking mode,
    /// runs them here if a session is idle); their output will come on the returned channel.
    pub(super) fn send(
        &self,
        model: &SharedModel,
        features: Vec<f32>,
        windows: usize,
        embeddings: bool,
        mode: Mode,
    ) -> mpsc::Receiver<Result<BatchOutput, ModelError>> {
        let (tx, rx) = mpsc::sync_channel(1);
        // Live streams must not wait for their next buffer to hear of a gunshot: the
        // inference thread reports the results itself when the element is not busy.
        let element = (mode == Mode::Live).then(|| self.obj().downgrade());
        let job = Job {
            features,
            windows,
            embeddings,
            reply: Box::new(move |r| {
                // The element may have flushed or stopped meanwhile; then nobody waits.
                let _ = tx.send(r);
                if let Some(element) = element.and_then(|e| e.upgrade()) {
                    let imp = element.imp();
                    imp.report_wanted.store(true, Ordering::SeqCst);
                    imp.catch_panic(|| imp.report_ready());
                }
            }),
        };
        match mode {
            Mode::Blocking => model.run_here_or_submit(job),
            Mode::Queued | Mode::Live | Mode::Auto => model.submit(job),
        }
        rx
    }
}

impl AudioFilterImpl for AudioTagger {
    fn allowed_caps() -> &'static gst::Caps {
        static CAPS: LazyLock<gst::Caps> = LazyLock::new(|| {
            gst_audio::AudioCapsBuilder::new_interleaved()
                .format_list([
                    gst_audio::AUDIO_FORMAT_S16,
                    gst_audio::AUDIO_FORMAT_S32,
                    gst_audio::AUDIO_FORMAT_F32,
                    gst_audio::AUDIO_FORMAT_F64,
                ])
                .rate_range(1..=crate::frontend::MAX_INPUT_RATE as i32)
                .build()
        });
        &CAPS
    }

    fn setup(&self, info: &gst_audio::AudioInfo) -> Result<(), gst::LoggableError> {
        let Some(shared) = self.model.lock().unwrap().clone() else {
            return Err(gst::loggable_error!(
                CAT,
                "caps before the model was loaded"
            ));
        };
        self.mode();
        let settings = self.settings.lock().unwrap().clone();
        let mut config = shared.descriptor().frontend.clone();
        if settings.hop > gst::ClockTime::ZERO {
            config = config.with_hop_ns(settings.hop.nseconds());
        }
        let mut frontend =
            Frontend::new(config, info.rate(), info.channels() as usize).map_err(|e| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Cannot analyse {:?}: {e}", info.to_caps())
                );
                gst::loggable_error!(CAT, "{e}")
            })?;
        gst::debug!(
            CAT,
            imp = self,
            "configured for {:?}, hop {} samples",
            info.to_caps(),
            frontend.config().hop_samples
        );
        frontend.keep_history(self.history_samples(frontend.config()));
        let mut out = Outbox::default();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // New caps mid-stream do not end what is being heard: the old format's windows are
        // reported, open events and the class filter carry over, the smoothing starts afresh.
        // Candidates carry over too; their looks hear the new format's audio from its start.
        let (tagger, looks) = match guard.take() {
            Some(mut old) => {
                self.collect(&mut old, None, Wait::AtMost(0), &mut out);
                old.tagger.reset_smoothing();
                (old.tagger, old.looks)
            }
            None => (
                StreamTagger::new(
                    shared.descriptor().num_classes(),
                    settings.smoothing.into(),
                    settings.smoothing_windows as usize,
                ),
                Looks::default(),
            ),
        };
        *guard = Some(State {
            info: info.clone(),
            frontend,
            timing: None,
            tagger,
            warned_non_finite: false,
            inflight: InFlight::default(),
            unattached: Vec::new(),
            segment: self.obj().segment().downcast().ok(),
            looks,
        });
        drop(guard);
        out.post(self.obj().upcast_ref(), &self.inband);
        Ok(())
    }
}
