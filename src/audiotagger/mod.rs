// SPDX-License-Identifier: MPL-2.0

//! The `audiotagger` element.

use gst::glib;
use gst::prelude::*;

mod imp;
mod inflight;
pub mod input;
mod looks;
mod outbox;
mod reconfigure;
pub mod results;
mod settings;
mod timing;

glib::wrapper! {
    /**
     * SECTION:element-audiotagger
     * @see_also: level, ebur128level
     *
     * `audiotagger` listens to an audio stream and says what is in it (speech, music, a gunshot,
     * breaking glass, a siren, any of YAMNet's 521 AudioSet classes, or the classes of heads
     * trained on top of it) with an ONNX audio model run by ONNX Runtime. The audio passes through
     * untouched, bit for bit, with its timestamps.
     *
     * Internally it downmixes to mono, resamples to the model's rate, cuts windows of the model's
     * length (0.975 s for YAMNet) every `hop`, computes the model's log-mel features and runs the
     * model, batching windows of every element that shares the model. For each window it posts an
     * element message named `audiotagger` and attaches the same fields to a buffer as the custom
     * meta `AudioTaggerMeta`:
     *
     * - `window-index` (guint64), `timestamp`, `stream-time`, `running-time`, `duration`
     *   (GstClockTime): which window, exact to the nanosecond;
     * - `labels`, `class-ids`, `scores` (arrays): the window's top-k classes at or above
     *   `threshold`; `smoothed-labels`, `smoothed-class-ids`, `smoothed-scores`: the same over the
     *   last `smoothing-windows` windows;
     * - `partial`, `quiet` (booleans), `rms-db`, `peak-db`, `short-term-db` (doubles): padding at
     *   EOS, a window below `min-level` that skipped the model, the window's level;
     * - `full-scores`, `embedding` (arrays of doubles) with the properties of the same names.
     *
     * With `watch` (e.g. `watch=gunshot,glass`) it also posts `audiotagger-event` messages when a
     * watched group's sound starts and stops: `event` (`start` or `stop`), `group`, the onset's
     * `timestamp`, `stream-time` and `running-time`, on stop `end-timestamp`, `duration` and
     * `reason`, and `peak-score`, `labels`, `scores`, `peak-level-db`, `suppressed`.
     *
     * With `second-model` (e.g. `second-model=ced-tiny-heads.onnx`) the groups that have a
     * `look` in the preset start an event only when that stronger model, hearing `look-before` +
     * `look-after` of audio around the candidate's onset, confirms it (on its trained heads
     * where it has them and the preset names them); their messages add
     * `confirm-score`, `confirm-confuser-score`, `confirm-labels`, `confirm-scores` and
     * `decision-latency`, and `looks-rejected` counts the candidates it turned down.
     *
     * ## Example pipelines
     *
     * Tag a file and print every message:
     * |[
     * gst-launch-1.0 -m filesrc location=x.wav ! decodebin ! audioconvert ! audiotagger ! fakesink
     * ]|
     *
     * Watch a live camera's audio for gunshots and breaking glass with the trained heads (a live
     * source makes the element never wait for the model):
     * |[
     * gst-launch-1.0 -m uridecodebin uri=rtsp://camera/stream ! audioconvert \
     *     ! audiotagger model=yamnet-heads.onnx watch=gunshot,glass,scream \
     *     second-model=ced-tiny.onnx ! fakesink
     * ]|
     *
     * Log speech and music segments of a broadcast feed while it plays on:
     * |[
     * gst-launch-1.0 -m souphttpsrc location=http://radio/stream ! decodebin ! audioconvert \
     *     ! audiotagger watch=speech,music labels="Speech;Music" ! audioconvert ! autoaudiosink
     * ]|
     */
    pub struct AudioTagger(ObjectSubclass<imp::AudioTagger>)
        @extends gst_audio::AudioFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstAudioTaggerExecutionProvider")]
pub enum ExecutionProvider {
    #[enum_value(name = "CPU: ONNX Runtime's CPU provider", nick = "cpu")]
    Cpu = 0,
    #[enum_value(
        name = "CUDA on an NVIDIA GPU (falls back to the CPU with a warning)",
        nick = "cuda"
    )]
    Cuda = 1,
    #[enum_value(
        name = "TensorRT on an NVIDIA GPU (falls back to the CPU with a warning)",
        nick = "tensorrt"
    )]
    TensorRt = 2,
    #[enum_value(name = "Auto: TensorRT, then CUDA, then the CPU", nick = "auto")]
    Auto = 3,
}

impl ExecutionProvider {
    pub fn nick(self) -> &'static str {
        crate::model::Provider::from(self).name()
    }
}

impl From<ExecutionProvider> for crate::model::Provider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Cpu => Self::Cpu,
            ExecutionProvider::Cuda => Self::Cuda,
            ExecutionProvider::TensorRt => Self::TensorRt,
            ExecutionProvider::Auto => Self::Auto,
        }
    }
}

#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstAudioTaggerSmoothing")]
pub enum SmoothingMode {
    #[enum_value(name = "None: the window's own scores", nick = "none")]
    None = 0,
    #[enum_value(name = "Mean of the last smoothing-windows windows", nick = "mean")]
    Mean = 1,
    #[enum_value(name = "Maximum of the last smoothing-windows windows", nick = "max")]
    Max = 2,
    #[enum_value(
        name = "Exponential moving average, span smoothing-windows",
        nick = "ema"
    )]
    Ema = 3,
}

impl From<SmoothingMode> for crate::tags::Smoothing {
    fn from(m: SmoothingMode) -> Self {
        match m {
            SmoothingMode::None => Self::None,
            SmoothingMode::Mean => Self::Mean,
            SmoothingMode::Max => Self::Max,
            SmoothingMode::Ema => Self::Ema,
        }
    }
}

/// When the element waits for the model. In every mode windows go to the session's inference
/// thread and are batched with other elements' windows; the modes differ in what the streaming
/// thread does meanwhile.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstAudioTaggerMode")]
pub enum Mode {
    #[enum_value(
        name = "Blocking: each buffer waits for its windows' results, which it carries as meta",
        nick = "blocking"
    )]
    Blocking = 0,
    #[enum_value(
        name = "Queued: up to max-queue windows in flight; a full queue waits, nothing is lost (files, many streams)",
        nick = "queued"
    )]
    Queued = 1,
    #[enum_value(
        name = "Live: never waits for the model; when max-queue windows are in flight new ones are skipped, counted and warned about",
        nick = "live"
    )]
    Live = 2,
    #[enum_value(
        name = "Auto: live when upstream reports a live stream (latency query), else queued",
        nick = "auto"
    )]
    Auto = 3,
}

impl Mode {
    /// The mode `self` means for a stream upstream calls `live` (or not): `auto` becomes `live`
    /// or `queued`, any other mode stays.
    pub fn resolve(self, live: bool) -> Mode {
        match self {
            Mode::Auto if live => Mode::Live,
            Mode::Auto => Mode::Queued,
            chosen => chosen,
        }
    }

    pub fn nick(self) -> &'static str {
        match self {
            Mode::Blocking => "blocking",
            Mode::Queued => "queued",
            Mode::Live => "live",
            Mode::Auto => "auto",
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    results::register_meta();
    ExecutionProvider::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    SmoothingMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "audiotagger",
        gst::Rank::NONE,
        AudioTagger::static_type(),
    )
}
