// SPDX-License-Identifier: MPL-2.0
//! Tags any file or URI and prints one JSON object per window.
//!
//!     cargo run --release --example tag -- FILE_OR_URI [audiotagger property=value ...]
//!
//! e.g. `cargo run --release --example tag -- talk.ogg top-k=3 smoothing=max`.

use std::io::Write;
use std::process::ExitCode;

use gst::glib;
use serde_json::{Value, json};

#[path = "support/pipeline.rs"]
mod pipeline;
use pipeline::Failure;

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
    let run = || -> Result<(), Failure> {
        pipeline::init()?;
        let uri = pipeline::uri_of(&input)?;
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .map_err(|e| Failure(format!("cannot make fakesink: {e}"), 1))?;
        let (pipeline, _) = pipeline::build(&uri, args, sink)?;
        pipeline::run(&pipeline, |s| {
            // A closed stdout (`| head`) ends the run quietly.
            s.name() != "audiotagger" || writeln!(std::io::stdout(), "{}", to_json(s)).is_ok()
        })
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
