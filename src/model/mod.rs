// SPDX-License-Identifier: MPL-2.0

//! Model side of the tagger, free of GStreamer: where ONNX Runtime comes from, the model
//! descriptor, execution providers and inference sessions.

pub mod batcher;
pub mod descriptor;
pub mod locate;
pub mod provider;
pub mod runtime;
pub mod session;
pub mod shared;

pub use descriptor::ModelDescriptor;
pub use provider::{Provider, SessionOptions};
pub use session::{BatchOutput, ModelError, ModelSession};
pub use shared::SharedModel;

/// The model `model` defaults to (see [`locate`]).
pub fn default_model_path() -> std::path::PathBuf {
    locate::default_model()
}
