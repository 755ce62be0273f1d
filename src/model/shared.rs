// SPDX-License-Identifier: MPL-2.0

//! One set of sessions per model file and options, shared by every element instance in the
//! process.
//!
//! A YAMNet session holds ~15 MB of weights plus ONNX Runtime's arenas and thread pool; a
//! server with a hundred streams wants one per core it gives to inference, not a hundred.
//! Elements hold an `Arc`; the cache only holds `Weak`s, so the sessions are freed when their
//! last element stops.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use super::batcher::{Batcher, Job};
use super::descriptor::ModelDescriptor;
use super::provider::{Provider, SessionOptions};
use super::session::{ModelError, ModelSession};

/// Windows per run on the CPU: past ~8 a bigger batch gains little and only delays results.
/// A GPU keeps gaining from larger batches and runs [`super::session::GPU_BATCH`].
const CPU_MAX_BATCH: usize = 16;

pub struct SharedModel {
    sessions: Vec<Arc<Mutex<ModelSession>>>,
    max_batch: usize,
    /// Dropping it lets the queued jobs finish, then ends its threads.
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

    /// Sessions running batches side by side.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The most windows one run takes from the queue.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Runs a silent window on every session, as ONNX Runtime's first run of a session pays for
    /// its allocations; returns how long the first session took.
    pub fn warm_up(&self) -> Duration {
        let shape = self.descriptor.frontend.feature_shape();
        let features = vec![0.0f32; shape.iter().product()];
        let mut first = None;
        for session in &self.sessions {
            let started = Instant::now();
            let mut session = session.lock().unwrap_or_else(|e| e.into_inner());
            // A session with one batch size (a GPU, a fixed-batch model) pads this to it, so
            // the warm-up already runs the shape the stream will.
            let _ = session.run(&features, 1, false);
            first.get_or_insert(started.elapsed());
        }
        first.unwrap_or_default()
    }

    /// Queues windows for the sessions' inference threads, batched with every other element's.
    pub fn submit(&self, job: Job) {
        self.batcher.submit(job);
    }

    /// For a caller that waits for the result: runs it at once on the calling thread if the
    /// session is idle, else queues it (see [`Batcher::run_here_or_submit`]).
    pub fn run_here_or_submit(&self, job: Job) {
        self.batcher.run_here_or_submit(job);
    }
}

/// How many sessions to run and how many intra-op threads each, from what the user set (0 for
/// "choose") and the cores this process may use.
///
/// `sessions` 0: one per core on the CPU, where sessions of one thread each get the most done
/// beside the streaming threads (see [`get`]); one on a GPU, where a single session already
/// runs batches faster than the streams fill them. Every element that leaves both at 0 asks for
/// the same layout, so they share one set of sessions and a hundred elements start no more
/// threads than one. `threads` 0: the cores divided among the sessions.
pub fn layout(provider: Provider, sessions: u32, threads: u32, cores: usize) -> (usize, u32) {
    let cores = cores.max(1);
    let sessions = match (sessions, provider) {
        (0, Provider::Cpu) => cores,
        (0, Provider::Cuda | Provider::TensorRt | Provider::Auto) => 1,
        (n, _) => n as usize,
    };
    let threads = match threads {
        0 => (cores / sessions).max(1) as u32,
        n => n,
    };
    (sessions, threads)
}

/// The cores this process may run on (its CPU affinity and cgroup quota), at least one.
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

type Key = (PathBuf, SessionOptions, usize);

static CACHE: LazyLock<Mutex<HashMap<Key, Weak<SharedModel>>>> = LazyLock::new(Default::default);

/// The shared model for `path` with `sessions` sessions (at least one) made with `options`,
/// loading it if no element holds it.
///
/// Two sessions of one thread each beat one session of two threads in a pipeline on two cores:
/// a thread that the streaming thread preempts holds up only its own batch, where one session's
/// threads wait for each other at every operator (measured in the README).
pub fn get(
    path: &Path,
    options: &SessionOptions,
    sessions: usize,
) -> Result<Arc<SharedModel>, ModelError> {
    let canonical = path
        .canonicalize()
        .map_err(|_| ModelError::Missing(path.to_path_buf()))?;
    let sessions = sessions.max(1);
    let key = (canonical.clone(), options.clone(), sessions);
    // Held across the load so two elements starting together do not load the model twice.
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|_, w| w.strong_count() > 0);
    if let Some(shared) = cache.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    let first = ModelSession::load(&canonical, options)?;
    let descriptor = first.descriptor().clone();
    let provider = first.provider();
    let fallback = first.fallback().map(String::from);
    // A session that runs one batch size (a GPU's, or a model's fixed one) takes at most that
    // many windows at a time: no batch is split, and padding fills only what the queue lacked.
    let max_batch = first.batch_size().unwrap_or(CPU_MAX_BATCH);
    let mut loaded = vec![Arc::new(Mutex::new(first))];
    // The rest go straight to the provider the first one got, without retrying a failed GPU.
    let options = SessionOptions {
        provider,
        ..options.clone()
    };
    for _ in 1..sessions {
        loaded.push(Arc::new(Mutex::new(ModelSession::load(
            &canonical, &options,
        )?)));
    }
    let batcher = Batcher::start(loaded.clone(), max_batch)
        .map_err(|e| ModelError::Run(format!("cannot start an inference thread: {e}")))?;
    let shared = Arc::new(SharedModel {
        descriptor,
        provider,
        fallback,
        sessions: loaded,
        max_batch,
        batcher,
    });
    cache.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_layout_uses_every_core_once() {
        // One single-threaded session per core on the CPU; the cores split when threads is 0.
        assert_eq!(layout(Provider::Cpu, 0, 1, 2), (2, 1));
        assert_eq!(layout(Provider::Cpu, 0, 0, 16), (16, 1));
        assert_eq!(layout(Provider::Cpu, 2, 0, 16), (2, 8));
        assert_eq!(layout(Provider::Cpu, 3, 0, 2), (3, 1));
        // What the user set is kept.
        assert_eq!(layout(Provider::Cpu, 4, 4, 2), (4, 4));
        // One GPU session, whatever the cores.
        assert_eq!(layout(Provider::Cuda, 0, 1, 16), (1, 1));
        assert_eq!(layout(Provider::TensorRt, 0, 0, 16), (1, 16));
        assert_eq!(layout(Provider::Cpu, 0, 0, 0), (1, 1));
    }
}
