// SPDX-License-Identifier: MPL-2.0
//! The pipeline the examples run: `uridecodebin ! audioconvert ! audioresample ! audiotagger !
//! SINK`, with the user's `property=value` arguments on `audiotagger`.

use std::process::ExitCode;

use gst::glib;
use gst::prelude::*;

/// Why an example stops: a message for stderr and the exit code (2: wrong usage).
pub struct Failure(pub String, pub u8);

impl Failure {
    pub fn report(self) -> ExitCode {
        eprintln!("{}", self.0);
        ExitCode::from(self.1)
    }
}

/// GStreamer, with the plugin of this checkout registered: the examples run the code they were
/// built with, whatever GST_PLUGIN_PATH says.
pub fn init() -> Result<(), Failure> {
    gst::init().map_err(|e| Failure(format!("GStreamer: {e}"), 1))?;
    gstaudiotagger::plugin_register_static()
        .map_err(|e| Failure(format!("cannot register the plugin: {e}"), 1))
}

/// A file path or a URI, as a URI.
pub fn uri_of(input: &str) -> Result<String, Failure> {
    if input.contains("://") {
        return Ok(input.to_string());
    }
    std::fs::canonicalize(input)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            glib::filename_to_uri(&p, None)
                .map(|u| u.to_string())
                .map_err(|e| e.to_string())
        })
        .map_err(|e| Failure(format!("{input}: {e}"), 1))
}

/// The pipeline and its `audiotagger`, with `properties` (`name=value`) set on it. Call
/// [`init`] first.
pub fn build(
    uri: &str,
    properties: impl IntoIterator<Item = String>,
    sink: gst::Element,
) -> Result<(gst::Pipeline, gst::Element), Failure> {
    let make = |name: &str| {
        gst::ElementFactory::make(name)
            .build()
            .map_err(|e| Failure(format!("cannot make {name}: {e}"), 1))
    };
    let src = gst::ElementFactory::make("uridecodebin")
        .property("uri", uri)
        .build()
        .map_err(|e| Failure(format!("cannot make uridecodebin: {e}"), 1))?;
    let convert = make("audioconvert")?;
    let resample = make("audioresample")?;
    let tagger = make("audiotagger")?;
    for prop in properties {
        let Some((k, v)) = prop.split_once('=') else {
            return Err(Failure(format!("{prop}: expected property=value"), 2));
        };
        if tagger.find_property(k).is_none() {
            return Err(Failure(
                format!("audiotagger has no property {k:?} (see gst-inspect-1.0 audiotagger)"),
                2,
            ));
        }
        tagger.set_property_from_str(k, v);
    }
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&src, &convert, &resample, &tagger, &sink])
        .expect("new elements join an empty pipeline");
    gst::Element::link_many([&convert, &resample, &tagger, &sink])
        .map_err(|e| Failure(format!("cannot link the pipeline: {e}"), 1))?;
    let convert_sink = convert.static_pad("sink").expect("audioconvert has a sink");
    src.connect_pad_added(move |_, pad| {
        let is_audio = pad.current_caps().is_some_and(|c| {
            c.structure(0)
                .is_some_and(|s| s.name().starts_with("audio/"))
        });
        if is_audio && !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });
    Ok((pipeline, tagger))
}

/// Plays `pipeline` to the end, giving `on_result` each `audiotagger` and `audiotagger-event`
/// structure in order (it returns false to stop early). Warnings go to stderr; an error ends
/// the run.
pub fn run(
    pipeline: &gst::Pipeline,
    mut on_result: impl FnMut(&gst::StructureRef) -> bool,
) -> Result<(), Failure> {
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("the pipeline did not start; see the error below");
    }
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let mut result = Ok(());
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e
                    .structure()
                    .filter(|s| s.name().starts_with("audiotagger"))
                    && !on_result(s)
                {
                    break;
                }
            }
            gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
            gst::MessageView::Error(e) => {
                result = Err(Failure(format!("error: {}", e.error()), 1));
                break;
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    result
}
