// SPDX-License-Identifier: MPL-2.0
//! Tags any file or URI and prints one JSON object per window.
//!
//!     cargo run --release --example tag -- FILE_OR_URI [audiotagger property=value ...]
//!
//! e.g. `cargo run --release --example tag -- talk.ogg top-k=3 smoothing=max`.

use std::io::Write;
use std::process::ExitCode;

use gst::glib;
use gst::prelude::*;
use serde_json::{Value, json};

fn array<T: for<'a> glib::value::FromValue<'a> + Into<Value>>(
    s: &gst::StructureRef,
    field: &str,
) -> Value {
    s.get::<gst::Array>(field)
        .map(|a| {
            Value::Array(
                a.iter()
                    .filter_map(|v| v.get::<T>().ok())
                    .map(Into::into)
                    .collect(),
            )
        })
        .unwrap_or(Value::Null)
}

fn seconds(s: &gst::StructureRef, field: &str) -> Value {
    match s.get::<Option<gst::ClockTime>>(field).ok().flatten() {
        Some(t) => json!((t.nseconds() as f64 / 1e9 * 1e6).round() / 1e6),
        None => Value::Null,
    }
}

fn to_json(s: &gst::StructureRef) -> Value {
    let mut v = json!({
        "window": s.get::<u64>("window-index").unwrap_or_default(),
        "start": seconds(s, "timestamp"),
        "duration": seconds(s, "duration"),
        "stream_time": seconds(s, "stream-time"),
        "partial": s.get::<bool>("partial").unwrap_or(false),
        "labels": array::<String>(s, "labels"),
        "scores": array::<f64>(s, "scores"),
        "class_ids": array::<i32>(s, "class-ids"),
        "smoothed_labels": array::<String>(s, "smoothed-labels"),
        "smoothed_scores": array::<f64>(s, "smoothed-scores"),
    });
    for field in ["full-scores", "embedding"] {
        if s.has_field(field) {
            v[field.replace('-', "_")] = array::<f64>(s, field);
        }
    }
    v
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(input) = args.next() else {
        eprintln!("usage: tag FILE_OR_URI [audiotagger property=value ...]");
        return ExitCode::from(2);
    };
    gst::init().expect("GStreamer initialises");
    gstaudiotagger::plugin_register_static().expect("the plugin registers");
    let uri = if input.contains("://") {
        input
    } else {
        match std::fs::canonicalize(&input)
            .map_err(|e| e.to_string())
            .and_then(|p| {
                glib::filename_to_uri(&p, None)
                    .map(|u| u.to_string())
                    .map_err(|e| e.to_string())
            }) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("{input}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let pipeline = gst::Pipeline::new();
    let elements = (|| -> Result<_, glib::BoolError> {
        let src = gst::ElementFactory::make("uridecodebin")
            .property("uri", &uri)
            .build()?;
        let convert = gst::ElementFactory::make("audioconvert").build()?;
        let resample = gst::ElementFactory::make("audioresample").build()?;
        let tagger = gst::ElementFactory::make("audiotagger").build()?;
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()?;
        Ok((src, convert, resample, tagger, sink))
    })();
    let (src, convert, resample, tagger, sink) = match elements {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot build the pipeline: {e}");
            return ExitCode::FAILURE;
        }
    };
    for prop in args {
        let Some((k, v)) = prop.split_once('=') else {
            eprintln!("{prop}: expected property=value");
            return ExitCode::from(2);
        };
        if tagger.find_property(k).is_none() {
            eprintln!("audiotagger has no property {k:?} (see gst-inspect-1.0 audiotagger)");
            return ExitCode::from(2);
        }
        tagger.set_property_from_str(k, v);
    }
    pipeline
        .add_many([&src, &convert, &resample, &tagger, &sink])
        .unwrap();
    gst::Element::link_many([&convert, &resample, &tagger, &sink]).unwrap();
    let convert_sink = convert.static_pad("sink").unwrap();
    src.connect_pad_added(move |_, pad| {
        let is_audio = pad.current_caps().is_some_and(|c| {
            c.structure(0)
                .is_some_and(|s| s.name().starts_with("audio/"))
        });
        if is_audio && !convert_sink.is_linked() {
            let _ = pad.link(&convert_sink);
        }
    });
    if pipeline.set_state(gst::State::Playing).is_err() {
        eprintln!("the pipeline did not start; see the error below");
    }
    let bus = pipeline.bus().unwrap();
    let mut status = ExitCode::SUCCESS;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "audiotagger") {
                    // A closed stdout (`| head`) ends the run quietly.
                    if writeln!(std::io::stdout(), "{}", to_json(s)).is_err() {
                        break;
                    }
                }
            }
            gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
            gst::MessageView::Error(e) => {
                eprintln!("error: {}", e.error());
                status = ExitCode::FAILURE;
                break;
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    status
}
