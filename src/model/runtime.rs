// SPDX-License-Identifier: MPL-2.0

//! Locating and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at build time, and the
//! library is opened once per process. The first successful load wins for the whole process,
//! because ONNX Runtime keeps one global environment; a later request for a different file is
//! reported, not honoured.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Environment variable that `ort` itself also honours.
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The ONNX Runtime version the set-up installs and the `ort` API level is chosen for.
pub const PINNED_VERSION: &str = "1.31.1";

/// Where a library path came from, so error messages can say which setting to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Property,
    Environment,
    ProjectDefault,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Property => "the `ort-library` property",
            Origin::Environment => "the ORT_DYLIB_PATH environment variable",
            Origin::ProjectDefault => "the project-local default",
        })
    }
}

#[derive(Debug)]
pub enum RuntimeError {
    Missing {
        path: PathBuf,
        origin: Origin,
    },
    Unloadable {
        path: PathBuf,
        origin: Origin,
        reason: String,
    },
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Missing { path, origin } => write!(
                f,
                "ONNX Runtime library not found at {} (from {origin}). Run `bash scripts/setup.sh` \
                 in the audiotagger checkout to install it, or point the `ort-library` property or \
                 {ENV_VAR} at a libonnxruntime.so.1.* (the PyPI wheel onnxruntime=={PINNED_VERSION} \
                 ships one in onnxruntime/capi/)",
                path.display()
            ),
            RuntimeError::Unloadable {
                path,
                origin,
                reason,
            } => write!(
                f,
                "ONNX Runtime library at {} (from {origin}) could not be loaded: {reason}. \
                 Install onnxruntime {PINNED_VERSION} or newer (`bash scripts/setup.sh`) and point \
                 the `ort-library` property or {ENV_VAR} at its libonnxruntime.so",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RuntimeError {}

/// The copy `meson install` put beside the plugin, else the checkout's from `scripts/setup.sh`
/// (see [`super::locate`]).
pub fn project_default_path() -> PathBuf {
    super::locate::default_ort_library()
}

/// Chooses the library: an explicit setting first, then the environment, then the project copy.
pub fn resolve(explicit: Option<&Path>) -> (PathBuf, Origin) {
    if let Some(p) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        return (p.to_path_buf(), Origin::Property);
    }
    match std::env::var_os(ENV_VAR) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), Origin::Environment),
        _ => (project_default_path(), Origin::ProjectDefault),
    }
}

/// What a successful [`ensure_loaded`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The library actually in use by this process.
    pub path: PathBuf,
    /// Set when the caller asked for a different file than the one already loaded.
    pub requested_other: Option<PathBuf>,
}

static LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);
static ENVIRONMENT: OnceLock<ort::environment::Environment> = OnceLock::new();

/// Loads ONNX Runtime once per process. Safe to call from every element's `start`.
pub fn ensure_loaded(explicit: Option<&Path>) -> Result<Loaded, RuntimeError> {
    let (path, origin) = resolve(explicit);
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(current) = loaded.as_ref() {
        let requested_other = (current != &path).then_some(path);
        return Ok(Loaded {
            path: current.clone(),
            requested_other,
        });
    }
    // dlopen searches the library path for bare names; a configured path must exist as given.
    if !path.is_file() {
        return Err(RuntimeError::Missing { path, origin });
    }
    let unloadable = |reason: String| RuntimeError::Unloadable {
        path: path.clone(),
        origin,
        reason,
    };
    let builder = ort::init_from(&path).map_err(|e| unloadable(e.to_string()))?;
    let env = builder
        .with_name("audiotagger")
        .with_telemetry(false)
        .build()
        .map_err(|e| unloadable(e.to_string()))?;
    // Sessions find the environment through a weak reference; keep it alive for the process.
    let _ = ENVIRONMENT.set(env);
    *loaded = Some(path.clone());
    Ok(Loaded {
        path,
        requested_other: None,
    })
}

/// The process-wide ONNX Runtime environment, once [`ensure_loaded`] succeeded.
pub fn environment() -> Option<&'static ort::environment::Environment> {
    ENVIRONMENT.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_wins_over_environment() {
        let (p, o) = resolve(Some(Path::new("/x/libonnxruntime.so")));
        assert_eq!(p, Path::new("/x/libonnxruntime.so"));
        assert_eq!(o, Origin::Property);
    }

    #[test]
    fn empty_explicit_path_falls_through() {
        let (_, o) = resolve(Some(Path::new("")));
        assert_ne!(o, Origin::Property);
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        // Only meaningful before any load in this process; a loaded runtime is reused instead.
        if LOADED.lock().unwrap().is_some() {
            return;
        }
        let err = ensure_loaded(Some(Path::new("/nonexistent/libonnxruntime.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libonnxruntime.so"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
        assert!(msg.contains("ort-library"), "{msg}");
    }
}
