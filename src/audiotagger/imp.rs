// SPDX-License-Identifier: MPL-2.0

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_audio::subclass::prelude::*;

use crate::model::runtime;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "audiotagger",
        gst::DebugColorFlags::empty(),
        Some("Audio tagging with ONNX audio models"),
    )
});

#[derive(Debug, Clone, Default)]
struct Settings {
    ort_library: Option<PathBuf>,
}

/// Per-stream state, created when caps are set and dropped on stop.
struct State {
    info: gst_audio::AudioInfo,
    /// Frames (samples per channel) seen since the stream started, for sample-exact positions.
    frames_seen: u64,
}

#[derive(Default)]
pub struct AudioTagger {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
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
                glib::ParamSpecString::builder("ort-library")
                    .nick("ONNX Runtime library")
                    .blurb(
                        "Path of libonnxruntime.so to load. Empty: ORT_DYLIB_PATH, else the copy \
                         installed by the project's scripts/setup.sh. The runtime is loaded once \
                         per process; the first element to start decides which file is used",
                    )
                    .default_value(None)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "ort-library" => {
                let path: Option<String> = value.get().expect("type checked upstream");
                settings.ort_library = path.filter(|p| !p.is_empty()).map(PathBuf::from);
                gst::info!(
                    CAT,
                    imp = self,
                    "ort-library set to {:?}",
                    settings.ort_library
                );
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "ort-library" => settings
                .ort_library
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
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
        let explicit = self.settings.lock().unwrap().ort_library.clone();
        let loaded = runtime::ensure_loaded(explicit.as_deref())
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
        gst::debug!(
            CAT,
            imp = self,
            "ONNX Runtime in use: {}",
            loaded.path.display()
        );
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut state_guard = self.state.lock().unwrap();
        let Some(state) = state_guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["Buffer before caps"]);
            return Err(gst::FlowError::NotNegotiated);
        };
        let frames = buf.size() as u64 / state.info.bpf() as u64;
        state.frames_seen += frames;
        gst::trace!(
            CAT,
            imp = self,
            "{frames} frames, {} in total",
            state.frames_seen
        );
        Ok(gst::FlowSuccess::Ok)
    }
}

impl AudioFilterImpl for AudioTagger {
    fn allowed_caps() -> &'static gst::Caps {
        static CAPS: LazyLock<gst::Caps> = LazyLock::new(|| {
            gst_audio::AudioCapsBuilder::new_interleaved()
                .format_list([
                    gst_audio::AudioFormat::S16le,
                    gst_audio::AudioFormat::S32le,
                    gst_audio::AudioFormat::F32le,
                    gst_audio::AudioFormat::F64le,
                ])
                .build()
        });
        &CAPS
    }

    fn setup(&self, info: &gst_audio::AudioInfo) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "Configured for caps {:?}", info.to_caps());
        *self.state.lock().unwrap() = Some(State {
            info: info.clone(),
            frames_seen: 0,
        });
        Ok(())
    }
}
