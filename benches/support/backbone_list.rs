// SPDX-License-Identifier: MPL-2.0
//! The backbones the comparison benches run (`backbones`, `EVENTS_BACKBONES=1 events`).

/// (model file in `models/`, window seconds every 0.5 s; None for the descriptor's own).
pub const BACKBONES: [(&str, Option<f64>); 7] = [
    ("yamnet.onnx", None),
    ("efficientat-mn04.onnx", Some(1.0)),
    ("efficientat-mn04.onnx", Some(2.0)),
    ("efficientat-mn04.onnx", Some(3.0)),
    ("ced-tiny.onnx", Some(1.0)),
    ("ced-tiny.onnx", Some(2.0)),
    ("ced-tiny.onnx", Some(3.0)),
];
