// SPDX-License-Identifier: MPL-2.0

//! One inference thread per session of a shared model, running the windows of every element as
//! batches.
//!
//! A convolutional model on the CPU runs a batch of 8 windows in far less than 8 times one
//! window's time, and a session serves one run at a time. So with many streams, instead of each
//! element taking a session's lock for its own window, elements queue their windows here; each
//! session's thread takes everything waiting (up to `max_batch` windows) as one batch whenever
//! it is free. No job waits for a batch to fill: the wait is bounded by the runs in progress,
//! and a single stream sees no extra delay beyond a thread hand-off, or none at all when its
//! caller runs an idle session itself (`run_here_or_submit`).
//!
//! Several sessions of one model run several batches at once. Results can then come back out of
//! order; every job has its own reply, and elements report in stream order.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;

use super::session::{BatchOutput, ModelError, ModelSession};

/// Called on the inference thread with the job's own rows of the batch output.
pub type Reply = Box<dyn FnOnce(Result<BatchOutput, ModelError>) + Send>;

/// Windows of one element (or one buffer), run together with whatever else is waiting.
pub struct Job {
    /// `windows` feature blocks, concatenated.
    pub features: Vec<f32>,
    pub windows: usize,
    pub embeddings: bool,
    pub reply: Reply,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    shutdown: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
    max_batch: usize,
}

impl Inner {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Batcher {
    inner: Arc<Inner>,
    sessions: Vec<Arc<Mutex<ModelSession>>>,
    workers: Vec<JoinHandle<()>>,
}

impl Batcher {
    /// Starts one inference thread for each of `sessions` (at least one), all fed from one
    /// queue. `max_batch` bounds one run's windows (a job larger than that still runs, alone).
    pub fn start(
        sessions: Vec<Arc<Mutex<ModelSession>>>,
        max_batch: usize,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            queue: Mutex::default(),
            wake: Condvar::new(),
            max_batch: max_batch.max(1),
        });
        let mut batcher = Self {
            inner,
            sessions,
            workers: Vec::new(),
        };
        for session in &batcher.sessions {
            let (inner, session) = (batcher.inner.clone(), session.clone());
            batcher.workers.push(
                std::thread::Builder::new()
                    .name("audiotagger-infer".into())
                    .spawn(move || run(&inner, &session))?,
            );
        }
        Ok(batcher)
    }

    pub fn submit(&self, job: Job) {
        self.inner.queue().jobs.push_back(job);
        self.inner.wake.notify_one();
    }

    /// Runs `job` on the calling thread, which is going to wait for it anyway, when nothing is
    /// queued and a session is free; otherwise queues it like [`Batcher::submit`]. There is
    /// then nothing to batch it with, and handing it to the inference thread would only cost
    /// two thread wake-ups per run. The queue stays locked until the session is, so a job
    /// queued meanwhile waits for this run as it would for an inference thread's.
    pub fn run_here_or_submit(&self, job: Job) {
        let queue = self.inner.queue();
        if queue.jobs.is_empty() {
            let idle = self.sessions.iter().find_map(|s| match s.try_lock() {
                Ok(session) => Some(session),
                Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            });
            if let Some(session) = idle {
                drop(queue);
                run_locked(session, vec![job]);
                return;
            }
        }
        drop(queue);
        self.submit(job);
    }
}

impl Drop for Batcher {
    /// Jobs already queued still run and get their replies; then the threads end.
    fn drop(&mut self) {
        self.inner.queue().shutdown = true;
        self.inner.wake.notify_all();
        // A reply can drop the last reference to an element, and with it this batcher, on an
        // inference thread itself; that thread then ends after the reply instead of joining.
        for worker in self.workers.drain(..) {
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
    }
}

fn run(inner: &Inner, session: &Mutex<ModelSession>) {
    loop {
        let jobs = {
            let mut q = inner.queue();
            while q.jobs.is_empty() && !q.shutdown {
                q = inner.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if q.jobs.is_empty() {
                return;
            }
            take_batch(&mut q.jobs, inner.max_batch)
        };
        run_batch(session, jobs);
    }
}

/// The oldest jobs whose windows fit in `max_batch`, and always at least one job.
fn take_batch(queue: &mut VecDeque<Job>, max_batch: usize) -> Vec<Job> {
    let mut taken = Vec::new();
    let mut windows = 0;
    while let Some(next) = queue.front() {
        if !taken.is_empty() && windows + next.windows > max_batch {
            break;
        }
        windows += next.windows;
        taken.extend(queue.pop_front());
    }
    taken
}

fn run_batch(session: &Mutex<ModelSession>, jobs: Vec<Job>) {
    run_locked(session.lock().unwrap_or_else(|e| e.into_inner()), jobs);
}

/// Runs `jobs` as one batch, then releases the session before handing out the results.
fn run_locked(mut session: MutexGuard<'_, ModelSession>, jobs: Vec<Job>) {
    let total: usize = jobs.iter().map(|j| j.windows).sum();
    let embeddings = jobs.iter().any(|j| j.embeddings);
    // A job alone (the usual case for one stream) runs on its own features, uncopied.
    let features: Cow<[f32]> = match jobs.as_slice() {
        [one] => Cow::Borrowed(&one.features),
        _ => jobs
            .iter()
            .flat_map(|j| j.features.iter().copied())
            .collect(),
    };
    let result = session.run(&features, total, embeddings);
    drop(session);
    match result {
        Ok(out) => {
            let classes = out.scores.len() / total.max(1);
            let dim = out.embedding_dim;
            let mut row = 0;
            for job in jobs {
                let rows = row..row + job.windows;
                let part = BatchOutput {
                    scores: out.scores[rows.start * classes..rows.end * classes].to_vec(),
                    embeddings: if job.embeddings && dim > 0 {
                        out.embeddings[rows.start * dim..rows.end * dim].to_vec()
                    } else {
                        Vec::new()
                    },
                    embedding_dim: if job.embeddings { dim } else { 0 },
                };
                row = rows.end;
                deliver(job.reply, Ok(part));
            }
        }
        Err(e) => {
            // Each job gets its own copy; a run error's own text, not "inference failed" twice.
            let reason = match e {
                ModelError::Run(reason) => reason,
                other => other.to_string(),
            };
            for job in jobs {
                deliver(job.reply, Err(ModelError::Run(reason.clone())));
            }
        }
    }
}

/// Hands a job its result. A reply that panics (a bug in the element that queued it) must not
/// end a thread every element sharing the session depends on, nor cost the other jobs of the
/// batch their results; the panic is reported by the default hook and goes no further.
fn deliver(reply: Reply, result: Result<BatchOutput, ModelError>) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || reply(result)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(windows: usize) -> Job {
        Job {
            features: vec![0.0; windows],
            windows,
            embeddings: false,
            reply: Box::new(|_| {}),
        }
    }

    #[test]
    fn takes_the_oldest_jobs_that_fit() {
        let mut q: VecDeque<Job> = [3, 4, 2, 1].into_iter().map(job).collect();
        let sizes = |b: &[Job]| b.iter().map(|j| j.windows).collect::<Vec<_>>();
        assert_eq!(sizes(&take_batch(&mut q, 8)), [3, 4]);
        assert_eq!(sizes(&take_batch(&mut q, 8)), [2, 1]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_oversized_job_runs_alone() {
        let mut q: VecDeque<Job> = [20, 1].into_iter().map(job).collect();
        assert_eq!(take_batch(&mut q, 8).len(), 1);
        assert_eq!(take_batch(&mut q, 8).len(), 1);
    }
}
