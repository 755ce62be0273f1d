// SPDX-License-Identifier: MPL-2.0
//! A runtime library that is not there stops the pipeline with an error that names the file and
//! the fix. In its own test binary: once a process has loaded ONNX Runtime it keeps it.

mod common;

#[test]
fn missing_runtime_is_a_clear_error_not_a_panic() {
    let (err, source) = common::expect_start_error(
        "audiotestsrc num-buffers=5 ! audiotagger name=t ort-library=/nonexistent/libonnxruntime.so ! fakesink",
    );
    let text = err.to_string();
    assert!(err.matches(gst::LibraryError::Init), "{text}");
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    assert!(
        text.contains("scripts/setup.sh") && text.contains("ORT_DYLIB_PATH"),
        "{text}"
    );
    assert_eq!(source, "t");
}
