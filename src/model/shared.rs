// SPDX-License-Identifier: MPL-2.0

//! One session per model file and options, shared by every element instance in the process.
//!
//! A YAMNet session holds ~15 MB of weights plus ONNX Runtime's arenas and thread pool; a
//! server with a hundred streams wants one, not a hundred. Elements hold an `Arc`; the cache
//! only holds `Weak`s, so a session is freed when its last element stops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use super::descriptor::ModelDescriptor;
use super::provider::{Provider, SessionOptions};
use super::session::{ModelError, ModelSession};

pub struct SharedModel {
    session: Mutex<ModelSession>,
    descriptor: ModelDescriptor,
    provider: Provider,
    fallback: Option<String>,
}

impl SharedModel {
    pub fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }

    pub fn provider(&self) -> Provider {
        self.provider
    }

    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Exclusive use of the session for one run (ONNX Runtime's `Run` takes `&mut` in `ort`).
    pub fn lock(&self) -> MutexGuard<'_, ModelSession> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Key = (PathBuf, SessionOptions);

static CACHE: LazyLock<Mutex<HashMap<Key, Weak<SharedModel>>>> = LazyLock::new(Default::default);

/// The shared session for `path` with `options`, loading it if no element holds it.
pub fn get(path: &Path, options: &SessionOptions) -> Result<Arc<SharedModel>, ModelError> {
    let canonical = path
        .canonicalize()
        .map_err(|_| ModelError::Missing(path.to_path_buf()))?;
    let key = (canonical.clone(), options.clone());
    // Held across the load so two elements starting together do not load the model twice.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|_, w| w.strong_count() > 0);
    if let Some(shared) = cache.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let session = ModelSession::load(&canonical, options)?;
    let shared = Arc::new(SharedModel {
        descriptor: session.descriptor().clone(),
        provider: session.provider(),
        fallback: session.fallback().map(String::from),
        session: Mutex::new(session),
    });
    cache.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}
