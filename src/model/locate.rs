// SPDX-License-Identifier: MPL-2.0

//! Where the plugin finds the files it needs but does not hold: the default model and the ONNX
//! Runtime library.
//!
//! A plugin runs from three kinds of place: the checkout it was built in (`scripts/setup.sh`
//! fills `models/` and `.deps/`), a prefix `meson install` put it in (the models in
//! `$datadir/gstreamer-1.0/audiotagger`, ONNX Runtime in `$libdir/audiotagger`), or wherever a
//! user copied it. Each is tried in turn, so an installed plugin keeps working once the
//! checkout is gone, and a checkout's build keeps working before it is installed.

use std::path::{Path, PathBuf};

/// A folder holding the models, searched before any other: for a plugin copied by hand.
pub const DATA_DIR_VAR: &str = "AUDIOTAGGER_DATA_DIR";

/// The file name of the model used when `model` is not set.
pub const DEFAULT_MODEL: &str = "yamnet.onnx";

/// Where meson installs the models and ONNX Runtime: set at build time by meson.build, absent
/// from a plain `cargo build`.
const INSTALLED_DATA_DIR: Option<&str> = option_env!("AUDIOTAGGER_INSTALLED_DATA_DIR");
const INSTALLED_ORT: Option<&str> = option_env!("AUDIOTAGGER_INSTALLED_ORT");

fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The folders searched for models, in order: `$AUDIOTAGGER_DATA_DIR`, the install's data
/// directory, the checkout's `models/`.
pub fn model_dirs() -> Vec<PathBuf> {
    let env = std::env::var_os(DATA_DIR_VAR).filter(|d| !d.is_empty());
    env.map(PathBuf::from)
        .into_iter()
        .chain(
            INSTALLED_DATA_DIR
                .filter(|d| !d.is_empty())
                .map(PathBuf::from),
        )
        .chain([checkout().join("models")])
        .collect()
}

/// `name` in the first of `dirs` that has it; else in the first of them, the file an error
/// message should name.
fn first_existing(dirs: &[PathBuf], name: &str) -> PathBuf {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dirs[0].join(name))
}

/// The model `model` defaults to: [`DEFAULT_MODEL`] in the first of [`model_dirs`] that has it.
pub fn default_model() -> PathBuf {
    first_existing(&model_dirs(), DEFAULT_MODEL)
}

/// The ONNX Runtime library used when neither the property nor `ORT_DYLIB_PATH` names one:
/// the install's copy if it exists, else the checkout's.
pub fn default_ort_library() -> PathBuf {
    let checkout = checkout().join(".deps/onnxruntime/libonnxruntime.so");
    match INSTALLED_ORT.filter(|p| !p.is_empty()).map(PathBuf::from) {
        Some(installed) if installed.is_file() || !checkout.is_file() => installed,
        _ => checkout,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_folder_holding_the_file_wins_else_the_first_is_named() {
        let root = std::env::temp_dir().join(format!("audiotagger-locate-{}", std::process::id()));
        let dirs = [root.join("a"), root.join("b"), root.join("c")];
        for d in &dirs {
            std::fs::create_dir_all(d).unwrap();
        }
        assert_eq!(first_existing(&dirs, "m.onnx"), dirs[0].join("m.onnx"));
        std::fs::write(dirs[2].join("m.onnx"), b"x").unwrap();
        assert_eq!(first_existing(&dirs, "m.onnx"), dirs[2].join("m.onnx"));
        std::fs::write(dirs[1].join("m.onnx"), b"x").unwrap();
        assert_eq!(first_existing(&dirs, "m.onnx"), dirs[1].join("m.onnx"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
