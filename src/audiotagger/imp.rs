// SPDX-License-Identifier: MPL-2.0

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, mpsc};

use byte_slice_cast::{AsMutByteSlice, AsSliceOf, FromByteSlice, ToMutByteSlice};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_audio::subclass::prelude::*;
use gst_base::prelude::*;

use super::results::{self, WindowResult};
use super::{ExecutionProvider, Mode, SmoothingMode};
use crate::frontend::{Frontend, Sample, Window};
use crate::model::batcher::Job;
use crate::model::{self, BatchOutput, ModelError, SessionOptions, SharedModel, runtime};
use crate::tags::{
    ClassFilter, EventDefaults, EventDetector, EventReport, Observation, Preset, ResolvedGroup,
    Smoother, StopReason, Tag, top_k,
};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "audiotagger",
        gst::DebugColorFlags::empty(),
        Some("Audio tagging with ONNX audio models"),
    )
});

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
/// A timestamp further than this from where the samples say the stream is counts as a gap.
const GAP_TOLERANCE: gst::ClockTime = gst::ClockTime::from_mseconds(20);

#[derive(Debug, Clone)]
struct Settings {
    ort_library: Option<PathBuf>,
    model: PathBuf,
    provider: ExecutionProvider,
    device_id: u32,
    threads: u32,
    sessions: u32,
    hop: gst::ClockTime,
    threshold: f64,
    top_k: u32,
    labels: String,
    exclude: String,
    smoothing: SmoothingMode,
    smoothing_windows: u32,
    post_messages: bool,
    attach_meta: bool,
    embeddings: bool,
    full_scores: bool,
    watch: String,
    event_preset: Option<PathBuf>,
    on_threshold: f64,
    off_threshold: f64,
    min_duration: gst::ClockTime,
    hold: gst::ClockTime,
    refractory: gst::ClockTime,
    min_level: f64,
    loud_level: f64,
    mode: Mode,
    max_queue: u32,
}

impl Settings {
    /// Windows one element may have in the model. Unset, queued mode allows each session a
    /// full batch running and one waiting: with less, a stream that runs ahead of the model
    /// gets ever smaller batches (measured 2-4 % slower with one session, 15-36 % with two).
    fn max_queue(&self, mode: Mode, shared: &SharedModel) -> usize {
        match (self.max_queue, mode) {
            (0, Mode::Live) => LIVE_MAX_QUEUE,
            (0, _) => 2 * shared.sessions() * shared.max_batch(),
            (n, _) => n as usize,
        }
    }

    fn event_defaults(&self) -> EventDefaults {
        let base = EventDefaults::default();
        EventDefaults {
            on_threshold: self.on_threshold as f32,
            off_threshold: self.off_threshold.min(self.on_threshold) as f32,
            min_duration: self.min_duration.seconds_f64(),
            hold: self.hold.seconds_f64(),
            refractory: self.refractory.seconds_f64(),
            loud_level_db: self.loud_level as f32,
            ..base
        }
    }

    /// What the event trackers depend on; a change while playing reconfigures them.
    fn events_key(&self) -> EventsKey {
        (
            self.watch.clone(),
            self.event_preset.clone(),
            self.event_defaults(),
        )
    }
}

type EventsKey = (String, Option<PathBuf>, EventDefaults);

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
        }
    }
}

/// Where the stream is in time: model-rate sample 0 of the front-end is at `base`.
struct Timing {
    base: gst::ClockTime,
    input_rate: u32,
    input_frames: u64,
}

/// The time `samples` take at `rate`, rounded down to the nanosecond.
fn samples_to_time(samples: u64, rate: u32) -> gst::ClockTime {
    gst::ClockTime::SECOND
        .mul_div_floor(samples, rate.into())
        .unwrap_or(gst::ClockTime::MAX)
}

impl Timing {
    fn at_model_sample(&self, sample: u64, rate: u32) -> gst::ClockTime {
        self.base + samples_to_time(sample, rate)
    }

    fn expected_next(&self) -> gst::ClockTime {
        self.base + samples_to_time(self.input_frames, self.input_rate)
    }
}

/// Windows sent to the model whose results have not been reported yet, in stream order.
struct Pending {
    /// Their features were moved into the job.
    windows: Vec<Window>,
    /// `row[i]`: window i's row in the result; `None` for a quiet window, which skips the model.
    row: Vec<Option<usize>>,
    /// `None` when every window was quiet and nothing was sent.
    result: Option<mpsc::Receiver<Result<BatchOutput, ModelError>>>,
}

impl Pending {
    fn in_model(&self) -> usize {
        self.row.iter().flatten().count()
    }
}

/// How long [`AudioTagger::collect`] may wait for the model.
#[derive(Clone, Copy)]
enum Wait {
    /// Report what is ready; never wait.
    Ready,
    /// Wait until at most this many windows are in the model.
    AtMost(usize),
}

/// Per-stream state, created when caps are set and dropped on stop.
struct State {
    info: gst_audio::AudioInfo,
    frontend: Frontend,
    timing: Option<Timing>,
    smoother: Smoother,
    smoothing: (SmoothingMode, u32),
    filter: ClassFilter,
    filter_lists: (String, String),
    warned_non_finite: bool,
    events: EventDetector,
    /// The configuration `events` was built from; `None` until the first window.
    events_key: Option<EventsKey>,
    pending: VecDeque<Pending>,
    /// Windows of `pending` that are in the model.
    in_model: usize,
    /// Live mode skipped windows since the queue was last empty (warned about once).
    overloaded: bool,
    /// Meta of results the inference thread reported in live mode, for the next buffer.
    unattached: Vec<gst::Structure>,
    /// The segment as of the last buffer. Results are timed against this copy because the
    /// inference thread must not take the pad's stream lock (`segment()`) while it holds the
    /// state, which the streaming thread locks while holding the stream lock.
    segment: Option<gst::FormattedSegment<gst::format::Time>>,
}

pub struct AudioTagger {
    settings: Mutex<Settings>,
    model: Mutex<Option<Arc<SharedModel>>>,
    state: Mutex<Option<State>>,
    /// The groups `watch` can name: the shipped preset plus the user's, loaded at start and
    /// again when `event-preset` changes.
    preset: Mutex<(Option<PathBuf>, Arc<Preset>)>,
    /// Measured at start: the time one window's inference takes, reported as our latency.
    processing_latency: Mutex<gst::ClockTime>,
    /// The mode in force (`active-mode`): `mode`, or what `auto` chose at the first caps.
    active_mode: Mutex<Option<Mode>>,
    /// Windows live mode skipped since start (`windows-skipped`).
    skipped: AtomicU64,
    /// Live mode: a result came in while another thread held the state, so whoever held it
    /// must look again after letting go (see [`AudioTagger::report_ready`]).
    report_wanted: AtomicBool,
}

impl Default for AudioTagger {
    fn default() -> Self {
        Self {
            settings: Mutex::default(),
            model: Mutex::default(),
            state: Mutex::default(),
            preset: Mutex::new((None, Arc::new(Preset::builtin()))),
            processing_latency: Mutex::default(),
            active_mode: Mutex::default(),
            skipped: AtomicU64::new(0),
            report_wanted: AtomicBool::new(false),
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
        let mut s = self.settings.lock().unwrap();
        let path = |v: &glib::Value| {
            v.get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|p| !p.is_empty())
        };
        match pspec.name() {
            "model" => {
                s.model = path(value)
                    .map(PathBuf::from)
                    .unwrap_or_else(model::default_model_path)
            }
            "execution-provider" => s.provider = value.get().expect("type checked upstream"),
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "sessions" => s.sessions = value.get().expect("type checked upstream"),
            "hop" => {
                s.hop = gst::ClockTime::from_nseconds(value.get().expect("type checked upstream"))
            }
            "threshold" => s.threshold = value.get().expect("type checked upstream"),
            "top-k" => s.top_k = value.get().expect("type checked upstream"),
            "labels" => {
                s.labels = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "exclude" => {
                s.exclude = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "smoothing" => s.smoothing = value.get().expect("type checked upstream"),
            "mode" => s.mode = value.get().expect("type checked upstream"),
            "max-queue" => s.max_queue = value.get().expect("type checked upstream"),
            "smoothing-windows" => {
                s.smoothing_windows = value.get().expect("type checked upstream")
            }
            "post-messages" => s.post_messages = value.get().expect("type checked upstream"),
            "attach-meta" => s.attach_meta = value.get().expect("type checked upstream"),
            "embeddings" => s.embeddings = value.get().expect("type checked upstream"),
            "full-scores" => s.full_scores = value.get().expect("type checked upstream"),
            "ort-library" => s.ort_library = path(value).map(PathBuf::from),
            "watch" => {
                s.watch = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "event-preset" => s.event_preset = path(value).map(PathBuf::from),
            "on-threshold" => s.on_threshold = value.get().expect("type checked upstream"),
            "off-threshold" => s.off_threshold = value.get().expect("type checked upstream"),
            "min-duration" => {
                s.min_duration =
                    gst::ClockTime::from_nseconds(value.get().expect("type checked upstream"))
            }
            "hold" => {
                s.hold = gst::ClockTime::from_nseconds(value.get().expect("type checked upstream"))
            }
            "refractory" => {
                s.refractory =
                    gst::ClockTime::from_nseconds(value.get().expect("type checked upstream"))
            }
            "min-level" => s.min_level = value.get().expect("type checked upstream"),
            "loud-level" => s.loud_level = value.get().expect("type checked upstream"),
            _ => unimplemented!(),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => s.model.to_string_lossy().to_value(),
            "execution-provider" => s.provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "threads" => s.threads.to_value(),
            "sessions" => s.sessions.to_value(),
            "hop" => s.hop.nseconds().to_value(),
            "threshold" => s.threshold.to_value(),
            "top-k" => s.top_k.to_value(),
            "labels" => s.labels.to_value(),
            "exclude" => s.exclude.to_value(),
            "smoothing" => s.smoothing.to_value(),
            "mode" => s.mode.to_value(),
            "max-queue" => s.max_queue.to_value(),
            "windows-skipped" => self.skipped.load(Ordering::Relaxed).to_value(),
            "smoothing-windows" => s.smoothing_windows.to_value(),
            "post-messages" => s.post_messages.to_value(),
            "attach-meta" => s.attach_meta.to_value(),
            "embeddings" => s.embeddings.to_value(),
            "full-scores" => s.full_scores.to_value(),
            "active-mode" => self.active_mode.lock().unwrap().map(Mode::nick).to_value(),
            "active-execution-provider" => self
                .model
                .lock()
                .unwrap()
                .as_ref()
                .map(|m| m.provider().name())
                .to_value(),
            "ort-library" => s
                .ort_library
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "watch" => s.watch.to_value(),
            "event-preset" => s
                .event_preset
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "on-threshold" => s.on_threshold.to_value(),
            "off-threshold" => s.off_threshold.to_value(),
            "min-duration" => s.min_duration.nseconds().to_value(),
            "hold" => s.hold.nseconds().to_value(),
            "refractory" => s.refractory.nseconds().to_value(),
            "min-level" => s.min_level.to_value(),
            "loud-level" => s.loud_level.to_value(),
            _ => unimplemented!(),
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
        resolve_watch(&preset, &settings, &shared.descriptor().labels)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        *self.preset.lock().unwrap() = (settings.event_preset.clone(), Arc::new(preset));
        *self.processing_latency.lock().unwrap() = measure_processing_latency(&shared);
        self.skipped.store(0, Ordering::Relaxed);
        *self.active_mode.lock().unwrap() = None;
        *self.model.lock().unwrap() = Some(shared);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        if let Some(mut state) = self.state.lock().unwrap_or_else(|e| e.into_inner()).take() {
            self.close_events(&mut state, StopReason::Flush);
        }
        *self.model.lock().unwrap() = None;
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                // The tail that no complete window covered gets one padded window.
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(state) = state.as_mut() {
                    let mut windows = Vec::new();
                    state.frontend.finish(&mut windows);
                    self.handle_windows(state, windows, None);
                    self.collect(state, None, Wait::AtMost(0));
                    self.close_events(state, StopReason::Eos);
                }
            }
            gst::EventView::FlushStop(_) | gst::EventView::StreamStart(_) => {
                if let Some(state) = self
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    self.restart_stream(state);
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
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
        let flow = self
            .catch_panic(|| self.analyse(buf))
            .unwrap_or(Err(gst::FlowError::Error));
        if self.report_wanted.load(Ordering::SeqCst) {
            self.catch_panic(|| self.report_ready());
        }
        flow
    }
}

impl AudioTagger {
    /// A bug must not abort the host process: a panic in `f` becomes an element error.
    fn catch_panic<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
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
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["Buffer before caps"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        state.segment = segment;
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
                self.handle_windows(state, windows, None);
                // The run's results are timed from its own base: report them before it changes.
                self.collect(state, None, Wait::AtMost(0));
                self.restart_stream(state);
            }
            let base = buf.pts().unwrap_or_else(|| {
                self.obj()
                    .segment()
                    .downcast::<gst::format::Time>()
                    .ok()
                    .and_then(|s| s.start())
                    .unwrap_or_default()
            });
            state.timing = Some(Timing {
                base,
                input_rate: state.info.rate(),
                input_frames: 0,
            });
        }

        let mut windows = Vec::new();
        {
            let map = buf.map_readable().map_err(|_| {
                gst::element_imp_error!(self, gst::CoreError::Failed, ["Cannot read the buffer"]);
                gst::FlowError::Error
            })?;
            let bytes = map.as_slice();
            let frames = bytes.len() / state.info.bpf() as usize;
            match state.info.format() {
                gst_audio::AUDIO_FORMAT_S16 => {
                    push_samples::<i16>(&mut state.frontend, bytes, &mut windows)
                }
                gst_audio::AUDIO_FORMAT_S32 => {
                    push_samples::<i32>(&mut state.frontend, bytes, &mut windows)
                }
                gst_audio::AUDIO_FORMAT_F32 => {
                    push_samples::<f32>(&mut state.frontend, bytes, &mut windows)
                }
                gst_audio::AUDIO_FORMAT_F64 => {
                    push_samples::<f64>(&mut state.frontend, bytes, &mut windows)
                }
                other => unreachable!("caps allow no {other:?}"),
            }
            if let Some(t) = state.timing.as_mut() {
                t.input_frames += frames as u64;
            }
        }
        if state.frontend.non_finite_samples() > 0 && !state.warned_non_finite {
            state.warned_non_finite = true;
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ("Input contains NaN or infinite samples; they are tagged as silence"),
                ["the audio itself passes through unchanged"]
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
            self.handle_windows(state, windows, Some(buf));
        } else if !state.pending.is_empty() {
            self.collect(state, Some(buf), Wait::Ready);
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

/// Adds an `AudioTaggerMeta` to `buf`, filled by `fill`.
fn attach(buf: &mut gst::BufferRef, fill: impl FnOnce(&mut gst::StructureRef)) {
    if let Ok(mut meta) = gst::meta::CustomMeta::add(buf, results::META_NAME) {
        fill(meta.mut_structure());
    }
}

/// Feeds the buffer's samples, in the host's byte order as the caps ask for. Memory that is not
/// aligned for `S` is copied first.
fn push_samples<S>(frontend: &mut Frontend, bytes: &[u8], out: &mut Vec<Window>)
where
    S: Sample + Default + FromByteSlice + ToMutByteSlice,
{
    let whole = &bytes[..bytes.len() / size_of::<S>() * size_of::<S>()];
    match whole.as_slice_of::<S>() {
        Ok(samples) => frontend.push(samples, out),
        Err(_) => {
            let mut owned = vec![S::default(); whole.len() / size_of::<S>()];
            owned.as_mut_byte_slice().copy_from_slice(whole);
            frontend.push(&owned, out);
        }
    }
}

/// Times a warm-up run of one window, which also pays ONNX Runtime's first-run costs on every
/// session before the stream starts. Twice the measured time, rounded up to a millisecond, is
/// what we report.
fn measure_processing_latency(shared: &SharedModel) -> gst::ClockTime {
    let took = shared.warm_up();
    gst::ClockTime::from_mseconds((took * 2).as_millis() as u64 + 1)
}

impl AudioTagger {
    /// Forgets the stream's position and history: a flush, a new stream or a discontinuity.
    fn restart_stream(&self, state: &mut State) {
        self.close_events(state, StopReason::Flush);
        let config = state.frontend.config().clone();
        state.frontend = Frontend::new(config, state.info.rate(), state.info.channels() as usize)
            .expect("the same configuration was accepted before");
        state.smoother.reset();
        state.timing = None;
        // After a flush nothing of the old stream is reported; a discontinuity drained it first.
        state.pending.clear();
        state.in_model = 0;
        state.overloaded = false;
        state.unattached.clear();
    }

    /// The mode in force, decided once per start at the first caps. `auto` asks upstream with a
    /// latency query: a live source (a capture card, a camera, a network stream) gets `live`, so
    /// it never waits for the model; anything else, e.g. a file, gets `queued`, which keeps
    /// every session busy and loses nothing.
    fn mode(&self) -> Mode {
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
        mut windows: Vec<Window>,
        buf: Option<&mut gst::BufferRef>,
    ) {
        if windows.is_empty() {
            return;
        }
        let Some(shared) = self.model.lock().unwrap().clone() else {
            return;
        };
        let settings = self.settings.lock().unwrap().clone();
        let descriptor = shared.descriptor();
        if state.smoothing != (settings.smoothing, settings.smoothing_windows) {
            state.smoothing = (settings.smoothing, settings.smoothing_windows);
            state.smoother = Smoother::new(
                settings.smoothing.into(),
                settings.smoothing_windows as usize,
            );
        }
        if state.filter_lists.0 != settings.labels || state.filter_lists.1 != settings.exclude {
            let (filter, unknown) =
                ClassFilter::new(&descriptor.labels, &settings.labels, &settings.exclude);
            if !unknown.is_empty() {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::Settings,
                    (
                        "Unknown labels in `labels`/`exclude`: {}",
                        unknown.join("; ")
                    ),
                    [
                        "names must match the model's labels exactly, ignoring case; separate them with ';'"
                    ]
                );
            }
            state.filter = filter;
            state.filter_lists = (settings.labels.clone(), settings.exclude.clone());
        }

        let mut reports = Vec::new();
        if state.events_key.as_ref() != Some(&settings.events_key()) {
            self.reconfigure_events(state, &settings, &descriptor.labels, &mut reports);
        }
        self.post_events(reports, &descriptor.labels, state.segment.as_ref());

        // Quiet windows skip the model; `row[i]` is window i's row in the batch output.
        let min_level = settings.min_level as f32;
        let mut row = vec![None; windows.len()];
        let mut features = Vec::new();
        let mut batch = 0;
        for (i, w) in windows.iter_mut().enumerate() {
            if w.level.short_term_db >= min_level {
                row[i] = Some(batch);
                batch += 1;
                features.append(&mut w.features);
            }
        }
        let mode = self.mode();
        let max_queue = settings.max_queue(mode, &shared);
        if mode == Mode::Live && batch > 0 && state.in_model + batch > max_queue {
            self.skip(state, windows.len(), max_queue);
            self.collect(state, buf, Wait::Ready);
            return;
        }
        let result = (batch > 0).then(|| {
            let (tx, rx) = mpsc::sync_channel(1);
            // Live streams must not wait for their next buffer to hear of a gunshot: the
            // inference thread reports the results itself when the element is not busy.
            let element = (mode == Mode::Live).then(|| self.obj().downgrade());
            let job = Job {
                features,
                windows: batch,
                embeddings: settings.embeddings,
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
                Mode::Blocking => shared.run_here_or_submit(job),
                Mode::Queued | Mode::Live | Mode::Auto => shared.submit(job),
            }
            rx
        });
        state.in_model += batch;
        state.pending.push_back(Pending {
            windows,
            row,
            result,
        });
        let wait = match mode {
            Mode::Blocking => Wait::AtMost(0),
            Mode::Queued | Mode::Auto => Wait::AtMost(max_queue),
            Mode::Live => Wait::Ready,
        };
        self.collect(state, buf, wait);
    }

    /// Reports pending windows oldest first, as far as their results are in or `wait` allows
    /// waiting for them. Results of a later buffer's windows are carried by that later buffer.
    fn collect(&self, state: &mut State, mut buf: Option<&mut gst::BufferRef>, wait: Wait) {
        let gone = || Err(ModelError::Run("the inference thread ended".into()));
        while let Some(front) = state.pending.front() {
            let must_wait = matches!(wait, Wait::AtMost(n) if state.in_model > n);
            let output = match &front.result {
                None => Ok(BatchOutput::default()),
                Some(rx) if must_wait => rx.recv().unwrap_or_else(|_| gone()),
                Some(rx) => match rx.try_recv() {
                    Ok(r) => r,
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => gone(),
                },
            };
            let pending = state.pending.pop_front().expect("front exists");
            state.in_model -= pending.in_model();
            let draining = !matches!(wait, Wait::Ready);
            self.report(state, pending, output, buf.as_deref_mut(), draining);
        }
        if state.pending.is_empty() {
            state.overloaded = false;
        }
    }

    /// Live mode: reports what is ready, unless another thread holds the state. Never waits,
    /// so an inference thread cannot stall on an element. A result is sent before
    /// `report_wanted` is raised, and the streaming thread (after each buffer) and the inference
    /// threads look at the flag after letting go of the state. So a result that comes in while
    /// one of them holds it is reported as soon as it lets go, not at the next buffer, which a
    /// live source may not send for a long time.
    fn report_ready(&self) {
        loop {
            let Ok(mut guard) = self.state.try_lock() else {
                return;
            };
            self.report_wanted.store(false, Ordering::SeqCst);
            if let Some(state) = guard.as_mut() {
                self.collect(state, None, Wait::Ready);
            }
            drop(guard);
            if !self.report_wanted.load(Ordering::SeqCst) {
                return;
            }
        }
    }

    /// Live mode with a full queue: the windows are dropped, counted, and warned about once
    /// per overload (until the queue next empties).
    fn skip(&self, state: &mut State, windows: usize, max_queue: usize) {
        let total = self.skipped.fetch_add(windows as u64, Ordering::Relaxed) + windows as u64;
        gst::debug!(CAT, imp = self, "queue full: skipped {windows} windows");
        if !state.overloaded {
            state.overloaded = true;
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Busy,
                ("The model cannot keep up: {max_queue} windows are waiting, so new windows are \
                     skipped ({total} so far)"),
                [
                    "the audio passes on unaffected and `windows-skipped` counts them; run fewer \
                     streams per machine, the int8 model, more `sessions`, or a GPU"
                ]
            );
        }
    }

    /// Posts and attaches one pending batch's results and feeds them to smoothing and events.
    fn report(
        &self,
        state: &mut State,
        pending: Pending,
        output: Result<BatchOutput, ModelError>,
        mut buf: Option<&mut gst::BufferRef>,
        draining: bool,
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
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Failed,
                    ("{e}"),
                    ["windows skipped: {}", windows.len()]
                );
                return;
            }
        };
        let mut reports = Vec::new();
        let classes = descriptor.num_classes();
        let silence = vec![0.0f32; classes];
        let rate = descriptor.frontend.sample_rate;
        let duration = samples_to_time(descriptor.frontend.window_samples as u64, rate);
        let segment = state.segment.clone();
        let Some(timing) = state.timing.as_ref() else {
            return;
        };
        for (i, window) in windows.iter().enumerate() {
            let scores = match row[i] {
                Some(r) => &output.scores[r * classes..(r + 1) * classes],
                None => &silence[..],
            };
            // A quiet window lists nothing, even at threshold 0.
            let tags: Vec<Tag> = match row[i] {
                Some(_) => top_k(
                    scores,
                    settings.top_k as usize,
                    settings.threshold as f32,
                    &state.filter,
                ),
                None => Vec::new(),
            };
            let smoothed_scores = state.smoother.push(scores);
            let smoothed = top_k(
                smoothed_scores,
                settings.top_k as usize,
                settings.threshold as f32,
                &state.filter,
            );
            let timestamp = timing.at_model_sample(window.start, rate);
            let dim = output.embedding_dim;
            let embedding = row[i]
                .filter(|_| dim > 0)
                .map(|r| &output.embeddings[r * dim..(r + 1) * dim]);
            let result = WindowResult {
                index: window.index,
                timestamp,
                stream_time: segment.as_ref().and_then(|s| s.to_stream_time(timestamp)),
                running_time: segment.as_ref().and_then(|s| s.to_running_time(timestamp)),
                duration,
                partial: window.is_partial(&descriptor.frontend),
                quiet: row[i].is_none(),
                level: window.level,
                tags: &tags,
                smoothed: &smoothed,
                labels: &descriptor.labels,
                full_scores: (settings.full_scores && row[i].is_some()).then_some(scores),
                embedding,
            };
            if settings.post_messages {
                let msg = gst::message::Element::builder(result.to_structure())
                    .src(&*self.obj())
                    .build();
                let _ = self.obj().post_message(msg);
            }
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
            state.events.push(
                &Observation {
                    start: timestamp.nseconds(),
                    end: (timestamp + duration).nseconds(),
                    scores: row[i].is_some().then_some(scores),
                    level: window.level,
                },
                &mut reports,
            );
        }
        self.post_events(reports, &descriptor.labels, state.segment.as_ref());
    }

    /// (Re)builds the event trackers from the settings: a new preset file is read, the
    /// watched groups resolved. Called while streaming, so problems are warnings and the
    /// previous configuration stays; `start` has already rejected a bad initial one.
    fn reconfigure_events(
        &self,
        state: &mut State,
        settings: &Settings,
        labels: &[String],
        reports: &mut Vec<EventReport>,
    ) {
        state.events_key = Some(settings.events_key());
        let preset = {
            let mut current = self.preset.lock().unwrap();
            if current.0 != settings.event_preset {
                current.0 = settings.event_preset.clone();
                match Preset::with_user_file(settings.event_preset.as_deref()) {
                    Ok(p) => current.1 = Arc::new(p),
                    Err(e) => gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Settings,
                        ("{e}"),
                        ["keeping the event groups loaded before"]
                    ),
                }
            }
            current.1.clone()
        };
        match resolve_watch(&preset, settings, labels) {
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
                state.events.configure(groups, reports);
            }
            Err(e) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("{e}"),
                ["events keep their previous configuration"]
            ),
        }
    }

    /// Ends every open event (EOS, flush, discontinuity, stop) and posts the stops.
    fn close_events(&self, state: &mut State, reason: StopReason) {
        let mut reports = Vec::new();
        state.events.close(reason, &mut reports);
        if !reports.is_empty()
            && let Some(shared) = self.model.lock().unwrap().clone()
        {
            self.post_events(reports, &shared.descriptor().labels, state.segment.as_ref());
        }
    }

    fn post_events(
        &self,
        reports: Vec<EventReport>,
        labels: &[String],
        segment: Option<&gst::FormattedSegment<gst::format::Time>>,
    ) {
        if reports.is_empty() {
            return;
        }
        let times = |ns: u64| {
            let timestamp = gst::ClockTime::from_nseconds(ns);
            results::Times {
                timestamp,
                stream_time: segment.as_ref().and_then(|s| s.to_stream_time(timestamp)),
                running_time: segment.as_ref().and_then(|s| s.to_running_time(timestamp)),
            }
        };
        for report in &reports {
            gst::info!(
                CAT,
                imp = self,
                "event {:?} {} at {}",
                report.phase,
                report.group,
                gst::ClockTime::from_nseconds(report.start)
            );
            let msg =
                gst::message::Element::builder(results::event_structure(report, labels, times))
                    .src(&*self.obj())
                    .build();
            let _ = self.obj().post_message(msg);
        }
    }
}

/// The groups `watch` names, resolved against the model's labels with the element's defaults.
fn resolve_watch(
    preset: &Preset,
    settings: &Settings,
    labels: &[String],
) -> Result<Vec<ResolvedGroup>, String> {
    let specs = preset.select(&settings.watch).map_err(|unknown| {
        format!(
            "`watch` names unknown event groups: {}. Known: {}",
            unknown.join(", "),
            preset.groups.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    let defaults = settings.event_defaults();
    specs
        .iter()
        .map(|spec| ResolvedGroup::resolve(spec, labels, &defaults))
        .collect()
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
            let hop = (settings.hop.nseconds() as u128 * config.sample_rate as u128 / 1_000_000_000)
                as usize;
            config = config.with_hop_samples(hop);
        }
        let frontend =
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
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = guard.as_mut() {
            self.collect(old, None, Wait::AtMost(0));
        }
        // New caps mid-stream do not end what is being heard: open events carry over.
        let (events, events_key) = guard
            .take()
            .map(|old| (old.events, old.events_key))
            .unwrap_or_default();
        *guard = Some(State {
            info: info.clone(),
            frontend,
            timing: None,
            smoother: Smoother::new(
                settings.smoothing.into(),
                settings.smoothing_windows as usize,
            ),
            smoothing: (settings.smoothing, settings.smoothing_windows),
            filter: ClassFilter::default(),
            filter_lists: (String::new(), String::new()),
            warned_non_finite: false,
            events,
            events_key,
            pending: VecDeque::new(),
            in_model: 0,
            overloaded: false,
            unattached: Vec::new(),
            segment: self.obj().segment().downcast().ok(),
        });
        Ok(())
    }
}
