// SPDX-License-Identifier: MPL-2.0

//! The element's properties: their defaults, their specs, and the values the user set.

use std::path::PathBuf;
use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;

use super::{ExecutionProvider, Mode, SmoothingMode};
use crate::model::{self, SharedModel};
use crate::tags::EventDefaults;

const DEFAULT_THRESHOLD: f64 = 0.1;
const DEFAULT_TOP_K: u32 = 5;
const DEFAULT_SMOOTHING_WINDOWS: u32 = 3;
const DEFAULT_THREADS: u32 = 1;
/// `sessions` 0: one per core on the CPU, one on a GPU (see [`model::shared::layout`]).
const DEFAULT_SESSIONS: u32 = 0;
/// `max-queue` 0: chosen from the mode and the model's sessions (see [`Settings::max_queue`]).
const DEFAULT_MAX_QUEUE: u32 = 0;
/// Windows one live element may have waiting for the model: at YAMNet's 0.48 s hop, almost 8 s
/// of audio. An overloaded machine then skips windows rather than report ever later.
const LIVE_MAX_QUEUE: usize = 16;
/// Below this (the loudest 25 ms of a window, dBFS) a window is reported quiet without running
/// the model: 16-bit silence and a quiet room's hiss, far below any sound worth a tag.
const DEFAULT_MIN_LEVEL_DB: f64 = -70.0;
const DEFAULT_HOLD: gst::ClockTime = gst::ClockTime::from_mseconds(500);
/// The look `cargo bench --bench events` chose (its second-look comparison).
const DEFAULT_LOOK_BEFORE: gst::ClockTime = gst::ClockTime::from_seconds(2);
const DEFAULT_LOOK_AFTER: gst::ClockTime = gst::ClockTime::from_seconds(2);
/// Each side's limit: CED-Tiny takes at most 10.1 s at once.
const MAX_LOOK: gst::ClockTime = gst::ClockTime::from_seconds(5);
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) ort_library: Option<PathBuf>,
    pub(super) model: PathBuf,
    pub(super) provider: ExecutionProvider,
    pub(super) device_id: u32,
    pub(super) threads: u32,
    pub(super) sessions: u32,
    pub(super) hop: gst::ClockTime,
    pub(super) threshold: f64,
    pub(super) top_k: u32,
    pub(super) labels: String,
    pub(super) exclude: String,
    pub(super) smoothing: SmoothingMode,
    pub(super) smoothing_windows: u32,
    pub(super) post_messages: bool,
    pub(super) attach_meta: bool,
    pub(super) embeddings: bool,
    pub(super) full_scores: bool,
    pub(super) watch: String,
    pub(super) event_preset: Option<PathBuf>,
    pub(super) on_threshold: f64,
    pub(super) off_threshold: f64,
    pub(super) min_duration: gst::ClockTime,
    pub(super) hold: gst::ClockTime,
    pub(super) refractory: gst::ClockTime,
    pub(super) min_level: f64,
    pub(super) loud_level: f64,
    pub(super) mode: Mode,
    pub(super) max_queue: u32,
    /// The second look's model; `None`: no second look.
    pub(super) second_model: Option<PathBuf>,
    pub(super) look_before: gst::ClockTime,
    pub(super) look_after: gst::ClockTime,
    /// What changed since the streaming thread last applied the settings.
    pub(super) changed: Changed,
}

/// Settings the streaming thread applies to a running stream. `set` raises the flag of what a
/// property changes; the streaming thread takes the flags and rebuilds only what they name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Changed {
    /// `smoothing`, `smoothing-windows`.
    pub(super) smoothing: bool,
    /// `labels`, `exclude`.
    pub(super) filter: bool,
    /// `watch`, `event-preset` and the event parameters.
    pub(super) events: bool,
}

impl Changed {
    /// A stream that has not applied anything yet.
    pub(super) const ALL: Changed = Changed {
        smoothing: true,
        filter: true,
        events: true,
    };
}

impl Settings {
    /// Windows one element may have in the model. Unset, queued mode allows each session a
    /// full batch running and one waiting: with less, a stream that runs ahead of the model
    /// gets ever smaller batches (measured 2-4 % slower with one session, 15-36 % with two).
    pub(super) fn max_queue(&self, mode: Mode, shared: &SharedModel) -> usize {
        match (self.max_queue, mode) {
            (0, Mode::Live) => LIVE_MAX_QUEUE,
            (0, _) => 2 * shared.sessions() * shared.max_batch(),
            (n, _) => n as usize,
        }
    }

    pub(super) fn event_defaults(&self) -> EventDefaults {
        EventDefaults {
            on_threshold: self.on_threshold as f32,
            off_threshold: self.off_threshold.min(self.on_threshold) as f32,
            min_duration: self.min_duration.seconds_f64(),
            hold: self.hold.seconds_f64(),
            refractory: self.refractory.seconds_f64(),
            loud_level_db: self.loud_level as f32,
            ..EventDefaults::default()
        }
    }

    /// The settings with the change flags taken out of them.
    pub(super) fn take_changes(&mut self) -> (Settings, Changed) {
        let changed = std::mem::take(&mut self.changed);
        (self.clone(), changed)
    }

    /// Stores a property the user set. `pspec` has checked the value's type.
    pub(super) fn set(&mut self, name: &str, value: &glib::Value) {
        let string = || {
            value
                .get::<Option<String>>()
                .expect("type checked by the spec")
                .unwrap_or_default()
        };
        let path = || Some(PathBuf::from(string())).filter(|p| !p.as_os_str().is_empty());
        let time = || gst::ClockTime::from_nseconds(value.get().expect("type checked by the spec"));
        macro_rules! get {
            () => {
                value.get().expect("type checked by the spec")
            };
        }
        match name {
            "model" => self.model = path().unwrap_or_else(model::default_model_path),
            "execution-provider" => self.provider = get!(),
            "device-id" => self.device_id = get!(),
            "threads" => self.threads = get!(),
            "sessions" => self.sessions = get!(),
            "hop" => self.hop = time(),
            "threshold" => self.threshold = get!(),
            "top-k" => self.top_k = get!(),
            "labels" => self.labels = string(),
            "exclude" => self.exclude = string(),
            "smoothing" => self.smoothing = get!(),
            "smoothing-windows" => self.smoothing_windows = get!(),
            "post-messages" => self.post_messages = get!(),
            "attach-meta" => self.attach_meta = get!(),
            "embeddings" => self.embeddings = get!(),
            "full-scores" => self.full_scores = get!(),
            "watch" => self.watch = string(),
            "event-preset" => self.event_preset = path(),
            "on-threshold" => self.on_threshold = get!(),
            "off-threshold" => self.off_threshold = get!(),
            "min-duration" => self.min_duration = time(),
            "hold" => self.hold = time(),
            "refractory" => self.refractory = time(),
            "min-level" => self.min_level = get!(),
            "loud-level" => self.loud_level = get!(),
            "mode" => self.mode = get!(),
            "max-queue" => self.max_queue = get!(),
            "ort-library" => self.ort_library = path(),
            "second-model" => self.second_model = path(),
            "look-before" => self.look_before = time(),
            "look-after" => self.look_after = time(),
            other => unreachable!("no writable property {other}"),
        }
        match name {
            "smoothing" | "smoothing-windows" => self.changed.smoothing = true,
            "labels" | "exclude" => self.changed.filter = true,
            "watch" | "event-preset" | "on-threshold" | "off-threshold" | "min-duration"
            | "hold" | "refractory" | "loud-level" => self.changed.events = true,
            _ => {}
        }
    }

    /// The value of a property the user can set; `None` for the read-only ones, which the
    /// element knows.
    pub(super) fn get(&self, name: &str) -> Option<glib::Value> {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value()
        };
        Some(match name {
            "model" => self.model.to_string_lossy().to_value(),
            "execution-provider" => self.provider.to_value(),
            "device-id" => self.device_id.to_value(),
            "threads" => self.threads.to_value(),
            "sessions" => self.sessions.to_value(),
            "hop" => self.hop.nseconds().to_value(),
            "threshold" => self.threshold.to_value(),
            "top-k" => self.top_k.to_value(),
            "labels" => self.labels.to_value(),
            "exclude" => self.exclude.to_value(),
            "smoothing" => self.smoothing.to_value(),
            "smoothing-windows" => self.smoothing_windows.to_value(),
            "post-messages" => self.post_messages.to_value(),
            "attach-meta" => self.attach_meta.to_value(),
            "embeddings" => self.embeddings.to_value(),
            "full-scores" => self.full_scores.to_value(),
            "watch" => self.watch.to_value(),
            "event-preset" => path(&self.event_preset),
            "on-threshold" => self.on_threshold.to_value(),
            "off-threshold" => self.off_threshold.to_value(),
            "min-duration" => self.min_duration.nseconds().to_value(),
            "hold" => self.hold.nseconds().to_value(),
            "refractory" => self.refractory.nseconds().to_value(),
            "min-level" => self.min_level.to_value(),
            "loud-level" => self.loud_level.to_value(),
            "mode" => self.mode.to_value(),
            "max-queue" => self.max_queue.to_value(),
            "ort-library" => path(&self.ort_library),
            "second-model" => path(&self.second_model),
            "look-before" => self.look_before.nseconds().to_value(),
            "look-after" => self.look_after.nseconds().to_value(),
            _ => return None,
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            ort_library: None,
            model: model::default_model_path(),
            provider: ExecutionProvider::Cpu,
            device_id: 0,
            threads: DEFAULT_THREADS,
            sessions: DEFAULT_SESSIONS,
            hop: gst::ClockTime::ZERO,
            threshold: DEFAULT_THRESHOLD,
            top_k: DEFAULT_TOP_K,
            labels: String::new(),
            exclude: String::new(),
            smoothing: SmoothingMode::Mean,
            smoothing_windows: DEFAULT_SMOOTHING_WINDOWS,
            post_messages: true,
            attach_meta: true,
            embeddings: false,
            full_scores: false,
            watch: String::new(),
            event_preset: None,
            on_threshold: EventDefaults::default().on_threshold as f64,
            off_threshold: EventDefaults::default().off_threshold as f64,
            min_duration: gst::ClockTime::ZERO,
            hold: DEFAULT_HOLD,
            refractory: gst::ClockTime::ZERO,
            min_level: DEFAULT_MIN_LEVEL_DB,
            loud_level: EventDefaults::default().loud_level_db as f64,
            mode: Mode::Auto,
            max_queue: DEFAULT_MAX_QUEUE,
            second_model: None,
            look_before: DEFAULT_LOOK_BEFORE,
            look_after: DEFAULT_LOOK_AFTER,
            changed: Changed::default(),
        }
    }
}

/// The specs of every property, with their blurbs and when they may change.
pub(super) fn properties() -> &'static [glib::ParamSpec] {
    static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
        vec![
            glib::ParamSpecString::builder("model")
                .nick("Model")
                .blurb(
                    "ONNX audio model with an audiotagger descriptor (metadata_props or a \
                     sidecar <model>.json). Default: yamnet.onnx from $AUDIOTAGGER_DATA_DIR, \
                     else the data directory the plugin was installed with, else the models/ \
                     of the checkout it was built in",
                )
                .default_value(Some(model::default_model_path().to_string_lossy().as_ref()))
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default("execution-provider", ExecutionProvider::Cpu)
                .nick("Execution provider")
                .blurb(
                    "Where inference runs. cuda and tensorrt need onnxruntime-gpu and a GPU; \
                     if they cannot be used the element runs on the CPU and posts a warning. \
                     auto tries TensorRT, then CUDA, then the CPU",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("device-id")
                .nick("GPU device")
                .blurb("Index of the GPU used by the cuda and tensorrt providers")
                .maximum(64)
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Inference threads")
                .blurb(
                    "ONNX Runtime intra-op threads of each session; 0 = the cores divided \
                     among the sessions. Elements with the same model, provider, threads \
                     and sessions share their sessions",
                )
                .maximum(256)
                .default_value(DEFAULT_THREADS)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("sessions")
                .nick("Inference sessions")
                .blurb(
                    "ONNX Runtime sessions of the model, each running its own batches on \
                     its own thread (with `threads` intra-op threads). 0 = automatic: one \
                     per core on the CPU, one on a GPU; every element left at 0 shares \
                     them, so many elements do not oversubscribe the cores. On a busy CPU, \
                     sessions=N threads=1 gets more done than one session of N threads: \
                     a preempted thread then holds up only its own batch",
                )
                .maximum(64)
                .default_value(DEFAULT_SESSIONS)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("hop")
                .nick("Hop")
                .blurb(
                    "Time between the starts of consecutive windows, in nanoseconds; rounded \
                     to the model's frame hop (10 ms for YAMNet). 0 = the model's own hop \
                     (0.48 s for YAMNet: windows overlap by about half)",
                )
                .maximum(60 * gst::ClockTime::SECOND.nseconds())
                .default_value(0)
                .mutable_ready()
                .build(),
            glib::ParamSpecDouble::builder("threshold")
                .nick("Threshold")
                .blurb("Lowest score a class needs to be listed in the results")
                .minimum(0.0)
                .maximum(1.0)
                .default_value(DEFAULT_THRESHOLD)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("top-k")
                .nick("Top k")
                .blurb("How many classes to list per window, best first (after threshold and label filters)")
                .minimum(1)
                .maximum(1000)
                .default_value(DEFAULT_TOP_K)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("labels")
                .nick("Allowed labels")
                .blurb(
                    "Only list these classes: label names separated by ';' (AudioSet names \
                     contain commas), case-insensitive, e.g. \"Speech;Gunshot, gunfire\". \
                     Empty: every class",
                )
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("exclude")
                .nick("Excluded labels")
                .blurb("Never list these classes: label names separated by ';', case-insensitive")
                .mutable_playing()
                .build(),
            glib::ParamSpecEnum::builder_with_default("smoothing", SmoothingMode::Mean)
                .nick("Smoothing")
                .blurb("How the smoothed scores combine the last smoothing-windows windows")
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt::builder("smoothing-windows")
                .nick("Smoothing windows")
                .blurb("Windows the smoothed scores cover (the span for ema)")
                .minimum(1)
                .maximum(1000)
                .default_value(DEFAULT_SMOOTHING_WINDOWS)
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("post-messages")
                .nick("Post messages")
                .blurb("Post an 'audiotagger' element message on the bus for every window")
                .default_value(true)
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("attach-meta")
                .nick("Attach meta")
                .blurb("Attach each window's result as AudioTaggerMeta to the buffer that completes the window")
                .default_value(true)
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("embeddings")
                .nick("Embeddings")
                .blurb("Include the model's embedding (1024 values for YAMNet) in messages and meta")
                .default_value(false)
                .mutable_playing()
                .build(),
            glib::ParamSpecBoolean::builder("full-scores")
                .nick("Full scores")
                .blurb("Include every class's score (521 for YAMNet) in messages and meta, to tune thresholds")
                .default_value(false)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("watch")
                .nick("Watched events")
                .blurb(
                    "Event groups to post audiotagger-event start/stop messages for, separated \
                     by ',': gunshot, glass, explosion, scream, siren, dog, baby-cry, speech, \
                     music, loud (any sudden loud sound), or groups of your event-preset. \
                     Empty: no events",
                )
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("event-preset")
                .nick("Event preset")
                .blurb(
                    "TOML file of event groups read on top of the shipped ones (same names \
                     replace them); format as in models/event_groups.toml. Empty: the \
                     shipped groups only",
                )
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("on-threshold")
                .nick("Event on-threshold")
                .blurb(
                    "Group score (its best class, smoothed as the group says) that starts an \
                     event; groups whose preset entry sets their own value keep it",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(EventDefaults::default().on_threshold as f64)
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("off-threshold")
                .nick("Event off-threshold")
                .blurb(
                    "Group score below which an event may stop (hysteresis; at most the \
                     on-threshold); groups whose preset entry sets their own value keep it",
                )
                .minimum(0.0)
                .maximum(1.0)
                .default_value(EventDefaults::default().off_threshold as f64)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt64::builder("min-duration")
                .nick("Event minimum duration")
                .blurb(
                    "Nanoseconds an event must last before its start is posted; shorter ones \
                     are dropped. 0 lets a single shot fire",
                )
                .maximum(3600 * gst::ClockTime::SECOND.nseconds())
                .default_value(0)
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt64::builder("hold")
                .nick("Event hold")
                .blurb(
                    "Nanoseconds the score must stay below the off-threshold before an event \
                     stops, so short dips do not split it",
                )
                .maximum(3600 * gst::ClockTime::SECOND.nseconds())
                .default_value(DEFAULT_HOLD.nseconds())
                .mutable_playing()
                .build(),
            glib::ParamSpecUInt64::builder("refractory")
                .nick("Event refractory time")
                .blurb(
                    "Nanoseconds after an event of a group during which new onsets of that \
                     group are not posted but counted (`suppressed` in the next start), so a \
                     burst of shots is one alarm; each suppressed onset extends it",
                )
                .maximum(3600 * gst::ClockTime::SECOND.nseconds())
                .default_value(0)
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("min-level")
                .nick("Minimum level")
                .blurb(
                    "dBFS. Windows whose loudest 25 ms stays below this are reported quiet \
                     without running the model (saves the CPU on silent streams). -200 \
                     runs the model on every window",
                )
                .minimum(-200.0)
                .maximum(0.0)
                .default_value(DEFAULT_MIN_LEVEL_DB)
                .mutable_playing()
                .build(),
            glib::ParamSpecDouble::builder("loud-level")
                .nick("Loud level")
                .blurb(
                    "dBFS. The `loud` event group fires when the loudest 25 ms of a window \
                     reaches this, or rises 20 dB above the recent background, whatever the \
                     sound",
                )
                .minimum(-200.0)
                .maximum(0.0)
                .default_value(EventDefaults::default().loud_level_db as f64)
                .mutable_playing()
                .build(),
            glib::ParamSpecEnum::builder_with_default("mode", Mode::Auto)
                .nick("Mode")
                .blurb(
                    "When the streaming thread waits for the model. auto: live when upstream \
                     reports a live stream, else queued (active-mode says which). blocking: \
                     every buffer waits for the windows it completes and carries their \
                     results as meta; pick it only when a window's meta must ride on the \
                     buffer that completed it (it runs windows one at a time, at less than \
                     half the speed). queued: up to max-queue windows in flight, results \
                     come later (meta on a later buffer); a full queue waits, nothing is \
                     lost. live: never waits; when max-queue windows are in flight new \
                     windows are skipped, counted in windows-skipped and warned about. All \
                     modes batch windows across elements sharing a model",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("max-queue")
                .nick("Maximum queue")
                .blurb(
                    "Windows in flight to the model per element in the queued and live modes. \
                     0 = automatic: in queued mode enough for every session to run a full \
                     batch with another waiting (2 x sessions x 16 on the CPU, x 64 on a GPU; \
                     less lets a fast stream's batches shrink), in live mode 16 (about 8 s of \
                     YAMNet's windows)",
                )
                .maximum(10_000)
                .default_value(DEFAULT_MAX_QUEUE)
                .mutable_playing()
                .build(),
            glib::ParamSpecString::builder("second-model")
                .nick("Second-look model")
                .blurb(
                    "A stronger waveform model (e.g. ced-tiny.onnx, which set-up makes) that \
                     confirms each candidate of a watched group with a `look` in the preset on \
                     a few seconds of audio around it before the event starts; the first stage \
                     then proposes candidates at the look's lower threshold. A bare file name \
                     is looked up where the model is. Empty: no second look",
                )
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("look-before")
                .nick("Look before the onset")
                .blurb("Nanoseconds of audio before a candidate's onset that the second model hears")
                .maximum(MAX_LOOK.nseconds())
                .default_value(DEFAULT_LOOK_BEFORE.nseconds())
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("look-after")
                .nick("Look after the onset")
                .blurb(
                    "Nanoseconds of audio after a candidate's onset that the second model hears; \
                     the event's start waits for them",
                )
                .maximum(MAX_LOOK.nseconds())
                .default_value(DEFAULT_LOOK_AFTER.nseconds())
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt64::builder("looks-rejected")
                .nick("Candidates rejected")
                .blurb("Candidates the second model did not confirm since start")
                .read_only()
                .build(),
            glib::ParamSpecUInt64::builder("windows-skipped")
                .nick("Windows skipped")
                .blurb("Windows live mode skipped since start because the model could not keep up")
                .read_only()
                .build(),
            glib::ParamSpecString::builder("active-mode")
                .nick("Active mode")
                .blurb(
                    "The mode in force (blocking, queued or live): `mode`, or what auto chose \
                     from upstream's latency query at the first caps. Empty until then",
                )
                .read_only()
                .build(),
            glib::ParamSpecString::builder("active-execution-provider")
                .nick("Active execution provider")
                .blurb("The provider inference actually runs on (cpu, cuda or tensorrt), once started")
                .read_only()
                .build(),
            glib::ParamSpecString::builder("ort-library")
                .nick("ONNX Runtime library")
                .blurb(
                    "Path of libonnxruntime.so to load. Empty: ORT_DYLIB_PATH, else the copy \
                     installed by the project's scripts/setup.sh. The runtime is loaded once \
                     per process; the first element to start decides which file is used",
                )
                .mutable_ready()
                .build(),
        ]
    });
    PROPERTIES.as_ref()
}
