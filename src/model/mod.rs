// SPDX-License-Identifier: MPL-2.0

//! Model side of the tagger, free of GStreamer: where ONNX Runtime comes from, the model
//! descriptor, execution providers and inference sessions.

pub mod batcher;
pub mod descriptor;
pub mod provider;
pub mod runtime;
pub mod session;
pub mod shared;

pub use descriptor::ModelDescriptor;
pub use provider::{Provider, SessionOptions};
pub use session::{BatchOutput, ModelError, ModelSession};
pub use shared::SharedModel;

/// The default model built by `scripts/setup.sh`. A build may bake in another location through
/// `AUDIOTAGGER_DEFAULT_MODEL` at compile time.
pub fn default_model_path() -> std::path::PathBuf {
    match option_env!("AUDIOTAGGER_DEFAULT_MODEL") {
        Some(p) if !p.is_empty() => p.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/yamnet.onnx"),
    }
}
