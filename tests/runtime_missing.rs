// SPDX-License-Identifier: MPL-2.0
//! A runtime library that is not there stops the pipeline with an error that names the file and
//! the fix. In its own test binary: once a process has loaded ONNX Runtime it keeps it.

mod common;

use gst::prelude::*;

#[test]
fn missing_runtime_is_a_clear_error_not_a_panic() {
    common::init();
    let pipeline = gst::parse::launch(
        "audiotestsrc num-buffers=5 ! audiotagger name=t ort-library=/nonexistent/libonnxruntime.so ! fakesink",
    )
    .unwrap();
    let _ = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = err.error().to_string();
    assert!(err.error().matches(gst::LibraryError::Init), "{text}");
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    assert!(
        text.contains("scripts/setup.sh") && text.contains("ORT_DYLIB_PATH"),
        "{text}"
    );
    assert_eq!(msg.src().unwrap().name(), "t");
    pipeline.set_state(gst::State::Null).unwrap();
}
