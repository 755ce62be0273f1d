// SPDX-License-Identifier: MPL-2.0

//! One session per model file and options, shared by every element instance in the process.
//!
//! A YAMNet session holds ~15 MB of weights plus ONNX Runtime's arenas and thread pool; a
//! server with a hundred streams wants one, not a hundred. Elements hold an `Arc`; the cache
//! only holds `Weak`s, so a session is freed when its last element stops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use super::batcher::{Batcher, Job};
use super::descriptor::ModelDescriptor;
use super::provider::{Provider, SessionOptions};
use super::session::{ModelError, ModelSession};

/// Windows per run on the CPU: past ~8 a bigger batch gains little and only delays results.
const CPU_MAX_BATCH: usize = 16;
/// A GPU keeps gaining from larger batches.
const GPU_MAX_BATCH: usize = 64;

pub struct SharedModel {
    session: Arc<Mutex<ModelSession>>,
    /// Dropping it lets the queued jobs finish, then ends its thread.
    batcher: Batcher,
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

    /// Queues windows for the session's inference thread, batched with every other element's.
    pub fn submit(&self, job: Job) {
        self.batcher.submit(job);
    }

    /// For a caller that waits for the result: runs it at once on the calling thread if the
    /// session is idle, else queues it (see [`Batcher::run_here_or_submit`]).
    pub fn run_here_or_submit(&self, job: Job) {
        self.batcher.run_here_or_submit(job);
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
    let descriptor = session.descriptor().clone();
    let provider = session.provider();
    let fallback = session.fallback().map(String::from);
    let max_batch = if provider == Provider::Cpu {
        CPU_MAX_BATCH
    } else {
        GPU_MAX_BATCH
    };
    let session = Arc::new(Mutex::new(session));
    let batcher = Batcher::start(session.clone(), max_batch)
        .map_err(|e| ModelError::Run(format!("cannot start the inference thread: {e}")))?;
    let shared = Arc::new(SharedModel {
        descriptor,
        provider,
        fallback,
        session,
        batcher,
    });
    cache.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}
