// SPDX-License-Identifier: MPL-2.0

//! Model side of the tagger, free of GStreamer: where ONNX Runtime comes from, the model
//! descriptor, labels and inference sessions.

pub mod runtime;
