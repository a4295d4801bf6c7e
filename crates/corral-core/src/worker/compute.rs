//! A worker's compute thread: loads the backend, takes batches out of the
//! bounded mailbox by token budget, runs them, answers each request on its
//! own reply port.
//!
//! This is the only place the backend is touched. It is a plain OS thread so
//! that a forward pass that never returns blocks nothing but itself: the
//! supervisor sees the heartbeat go stale, takes the running batch back out
//! of [`WorkerShared::running`] and abandons the thread. If the thread ever
//! comes back it finds its batch gone and exits without answering anyone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ractor::ActorRef;

use crate::backend::{Backend, LoadContext};
use crate::error::PoolError;
use crate::job::Job;
use crate::mailbox::{Heartbeat, WorkerShared};
use crate::msg::{InternalMsg, PoolMsg};

/// Lifecycle of a compute thread, shared with the supervisor so that the
/// abandoned-thread count is exact: the supervisor moves `ALIVE` to
/// `ABANDONED` (and counts it) only if the thread has not exited; the thread
/// swaps in `EXITED` and uncounts itself only if it had been abandoned.
pub(crate) const ALIVE: u8 = 0;
pub(crate) const ABANDONED: u8 = 1;
pub(crate) const EXITED: u8 = 2;

pub(crate) struct Compute<B: Backend> {
    pub(crate) shared: Arc<WorkerShared<B>>,
    pub(crate) supervisor: ActorRef<PoolMsg<B>>,
    pub(crate) spec: Arc<B::Spec>,
    pub(crate) load_ctx: LoadContext,
    pub(crate) max_batch_tokens: usize,
    pub(crate) max_batch_requests: usize,
    /// Callers in the supervisor's waiting line; when non-zero, freed slots
    /// are announced.
    pub(crate) waiting: Arc<AtomicUsize>,
    pub(crate) thread_state: Arc<AtomicU8>,
    pub(crate) abandoned_threads: Arc<AtomicUsize>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// A request's cost: the sum of its inputs' costs, each at least 1.
fn cost_of<B: Backend>(backend: &B, inputs: &[B::Input]) -> usize {
    inputs.iter().map(|i| backend.cost(i).max(1)).sum()
}

impl<B: Backend> Compute<B> {
    fn tell(&self, m: InternalMsg<B>) {
        // The supervisor being gone means the pool is gone; nothing to do.
        let _ = self.supervisor.send_message(m.into());
    }

    pub(crate) fn run(self) {
        let worker = self.shared.id;
        let loaded = catch_unwind(AssertUnwindSafe(|| B::load(&self.spec, &self.load_ctx)));
        match loaded {
            Ok(Ok(mut backend)) => {
                if !self.shared.retired.load(Ordering::Acquire) {
                    self.tell(InternalMsg::Loaded { worker });
                    self.serve(&mut backend);
                }
            }
            Ok(Err(e)) => self.tell(InternalMsg::LoadFailed {
                worker,
                error: e.to_string(),
            }),
            Err(p) => self.tell(InternalMsg::LoadFailed {
                worker,
                error: format!("load panicked: {}", panic_message(p.as_ref())),
            }),
        }
        if self.thread_state.swap(EXITED, Ordering::AcqRel) == ABANDONED {
            self.abandoned_threads.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Takes the next batch: the front request always, then more while the
    /// token budget and request cap allow. Costs are computed outside the
    /// mailbox lock. Cancelled requests are skipped here, before compute.
    /// Returns `None` when the mailbox is closed.
    fn take_batch(&self, backend: &B) -> Option<(Vec<Job<B>>, usize)> {
        loop {
            let mut next = Some(self.shared.wait_front()?);
            let mut jobs: Vec<Job<B>> = Vec::new();
            let mut cost = 0usize;
            while let Some((inputs, suspect)) = next {
                let c = cost_of(backend, &inputs);
                let full =
                    cost + c > self.max_batch_tokens || jobs.len() >= self.max_batch_requests;
                // A request that was in a batch that killed its worker runs
                // alone: if it fails again, it fails nobody else.
                let isolate = suspect || jobs.first().is_some_and(|j| j.failed_attempts > 0);
                if !jobs.is_empty() && (full || isolate) {
                    break;
                }
                if let Some(job) = self.shared.pop_if(&inputs) {
                    if job.is_cancelled() {
                        self.shared.release(job.class, 1);
                        self.shared.cancelled.fetch_add(1, Ordering::Relaxed);
                    } else {
                        cost += c;
                        jobs.push(job);
                    }
                }
                next = self.shared.peek_front();
            }
            if !jobs.is_empty() {
                return Some((jobs, cost));
            }
            if self.shared.is_closed() {
                return None;
            }
        }
    }

    fn serve(&self, backend: &mut B) {
        while let Some((jobs, cost)) = self.take_batch(backend) {
            if !self.run_batch(backend, jobs, cost) {
                return;
            }
        }
    }

    /// Runs one batch and answers it. Returns `false` when the thread must
    /// exit (it was given up on, or the backend panicked).
    fn run_batch(&self, backend: &mut B, jobs: Vec<Job<B>>, cost: usize) -> bool {
        let inputs: Vec<Arc<Vec<B::Input>>> = jobs.iter().map(|j| j.inputs.clone()).collect();
        let refs: Vec<&B::Input> = inputs.iter().flat_map(|v| v.iter()).collect();
        *self.shared.running.lock() = jobs;
        *self.shared.heartbeat.lock() = Heartbeat {
            busy_since: Some(Instant::now()),
            batch_cost: cost,
            batch_len: refs.len(),
        };
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| backend.run(&refs)));
        let took = started.elapsed();
        *self.shared.heartbeat.lock() = Heartbeat::default();
        let jobs = self.shared.take_running();
        if jobs.is_empty() {
            // The supervisor took the batch back: we were given up on.
            return false;
        }
        match result {
            Ok(Ok(outputs)) if outputs.len() == refs.len() => {
                drop(refs);
                let per_request = took.as_micros() / jobs.len() as u128;
                self.shared
                    .record_service(u64::try_from(per_request).unwrap_or(u64::MAX));
                self.answer_all(jobs, outputs);
                true
            }
            Ok(Ok(outputs)) => {
                let msg = format!(
                    "backend returned {} outputs for {} inputs",
                    outputs.len(),
                    refs.len()
                );
                self.fail_all(jobs, &PoolError::Backend(msg));
                true
            }
            Ok(Err(e)) if jobs.len() > 1 => {
                // Find the culprit: run each request alone so that one bad
                // input fails only its own request.
                drop(refs);
                tracing::debug!(
                    worker = self.shared.id,
                    requests = jobs.len(),
                    "batch failed ({e}); rerunning its requests one by one"
                );
                for job in jobs {
                    let c = cost_of(backend, &job.inputs);
                    if !self.run_batch(backend, vec![job], c) {
                        return false;
                    }
                }
                true
            }
            Ok(Err(e)) => {
                self.fail_all(jobs, &PoolError::from(e));
                true
            }
            Err(p) => {
                self.tell(InternalMsg::Crashed {
                    worker: self.shared.id,
                    jobs,
                    reason: panic_message(p.as_ref()),
                });
                false
            }
        }
    }

    fn after_batch(&self, n: u64) {
        self.shared.processed.fetch_add(n, Ordering::Relaxed);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.tell(InternalMsg::Freed);
        }
    }

    fn answer_all(&self, jobs: Vec<Job<B>>, outputs: Vec<B::Output>) {
        let n = jobs.len() as u64;
        let mut outputs = outputs.into_iter();
        for job in jobs {
            let k = job.inputs.len();
            let class = job.class;
            let mine: Vec<B::Output> = outputs.by_ref().take(k).collect();
            // Free the slot first: a caller that resubmits as soon as it is
            // answered must find it free.
            self.shared.release(class, 1);
            job.answer(Ok(mine));
        }
        self.after_batch(n);
    }

    fn fail_all(&self, jobs: Vec<Job<B>>, err: &PoolError) {
        let n = jobs.len() as u64;
        for job in jobs {
            self.shared.release(job.class, 1);
            job.answer(Err(err.clone()));
        }
        self.after_batch(n);
    }
}
