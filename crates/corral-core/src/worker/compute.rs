//! A worker's compute thread: loads the backend, takes batches out of the
//! bounded mailbox by token budget, costed by the backend's own rule
//! ([`Batching`]: packed or padded, and its limits on one forward pass), runs
//! them, answers each request on its own reply port.
//!
//! The batch handed to [`Backend::run`] is the forward pass: requests join a
//! batch only while it keeps the pool's `max_batch_tokens` and
//! `max_batch_requests` and the backend's limits. Only a request that is
//! over the backend's limits by itself is run as several forwards, cut in
//! order by [`Batching::forwards`], and answered once.
//!
//! This is the only place the backend is touched. It is a plain OS thread so
//! that a forward pass that never returns blocks nothing but itself: the
//! supervisor sees the heartbeat go stale, seizes the running batch out of
//! the mailbox and abandons the thread. If the thread ever comes back it
//! finds its batch gone and exits without answering anyone.
//!
//! The thread never holds a request only on its own stack: a batch is costed
//! outside the mailbox lock, then taken from the queue into the mailbox's
//! running set and started under one lock (so the supervisor's pushes wait
//! on that lock once per batch, not once per request), and when a batch
//! fails with an error its requests go back to the head of the queue,
//! marked to run alone — so a rerun that hangs or panics leaves the rest
//! where the supervisor takes them back.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Events;
use crate::backend::{Backend, BackendError, BatchShape, Batching, LoadContext};
use crate::error::Failure;
use crate::job::Job;
use crate::mailbox::{Front, WorkerShared};
use crate::stats::recorder::Recorder;

const ALIVE: u8 = 0;
const ABANDONED: u8 = 1;
const EXITED: u8 = 2;

/// Lifecycle of a compute thread, shared with the supervisor so that the
/// abandoned-thread count is exact: the supervisor moves `ALIVE` to
/// `ABANDONED` (and counts it) only if the thread has not exited; the thread
/// swaps in `EXITED` and uncounts itself only if it had been abandoned.
pub(crate) struct ThreadState {
    state: AtomicU8,
    abandoned: Arc<AtomicUsize>,
}

impl ThreadState {
    pub(crate) fn new(abandoned: Arc<AtomicUsize>) -> Self {
        Self {
            state: AtomicU8::new(ALIVE),
            abandoned,
        }
    }

    /// Gives up on the thread (counted) unless it has exited.
    pub(crate) fn abandon(&self) {
        if self
            .state
            .compare_exchange(ALIVE, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.abandoned.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// The thread is leaving; uncounts it if it had been abandoned.
    fn exit(&self) {
        if self.state.swap(EXITED, Ordering::AcqRel) == ABANDONED {
            self.abandoned.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

pub(crate) struct Compute<B: Backend> {
    pub(crate) shared: Arc<WorkerShared<B>>,
    pub(crate) events: Arc<dyn Events>,
    pub(crate) spec: Arc<B::Spec>,
    pub(crate) load_ctx: LoadContext,
    pub(crate) max_batch_tokens: usize,
    pub(crate) max_batch_requests: usize,
    pub(crate) waiting: Arc<AtomicUsize>,
    pub(crate) thread: Arc<ThreadState>,
    pub(crate) recorder: Arc<Recorder>,
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

/// A request's shape: its inputs, each costing at least 1. A `cost` that
/// panics (it must not, but it is a backend's code) makes each input cost a
/// whole batch, so that the request runs alone — where a panicking `run` is
/// caught and handled like any other.
fn shape_of<B: Backend>(backend: &B, inputs: &[B::Input], whole_batch: usize) -> BatchShape {
    catch_unwind(AssertUnwindSafe(|| {
        inputs
            .iter()
            .fold(BatchShape::default(), |s, i| s.with(backend.cost(i).max(1)))
    }))
    .unwrap_or_else(|p| {
        tracing::error!("Backend::cost panicked: {}", panic_message(p.as_ref()));
        inputs
            .iter()
            .fold(BatchShape::default(), |s, _| s.with(whole_batch))
    })
}

/// Runs a batch over the backend's limits (one request, by itself) as
/// several forwards cut by [`Batching::forwards`], in order, and returns
/// their outputs concatenated. The first failure fails the whole batch.
fn run_forwards<B: Backend>(
    backend: &mut B,
    batching: &Batching,
    batch: &[&B::Input],
) -> Result<Vec<B::Output>, BackendError> {
    let costs = catch_unwind(AssertUnwindSafe(|| {
        batch.iter().map(|i| backend.cost(i).max(1)).collect()
    }))
    .unwrap_or_else(|_| vec![usize::MAX; batch.len()]);
    let mut outputs = Vec::with_capacity(batch.len());
    for forward in batching.forwards(&costs) {
        let part = backend.run(&batch[forward.clone()])?;
        if part.len() != forward.len() {
            return Err(BackendError::new(format!(
                "backend returned {} outputs for {} inputs",
                part.len(),
                forward.len()
            )));
        }
        outputs.extend(part);
    }
    Ok(outputs)
}

/// How a batch ended, for the serving loop.
enum Next {
    Continue,
    Exit,
}

impl<B: Backend> Compute<B> {
    pub(crate) fn run(self) {
        let worker = self.shared.id;
        let loaded = catch_unwind(AssertUnwindSafe(|| {
            B::load(&self.spec, &self.load_ctx).map(|b| {
                let batching = b.batching();
                (b, batching)
            })
        }));
        match loaded {
            Ok(Ok((mut backend, batching))) => {
                if !self.shared.is_retired() {
                    self.events.loaded(worker);
                    self.serve(&mut backend, &batching);
                }
                self.thread.exit();
            }
            Ok(Err(e)) => {
                self.thread.exit();
                self.events.load_failed(worker, e.to_string());
            }
            Err(p) => {
                self.thread.exit();
                let error = format!("load panicked: {}", panic_message(p.as_ref()));
                self.events.load_failed(worker, error);
            }
        }
    }

    fn serve(&self, backend: &mut B, batching: &Batching) {
        // Reused from batch to batch: the peeked jobs, the running batch's
        // inputs, and the finished batch's jobs (swapped with the mailbox's
        // running set), so that a batch allocates nothing under the lock.
        let mut peeked = Vec::new();
        let mut inputs = Vec::new();
        let mut jobs = Vec::new();
        while let Some(shape) = self.take_batch(backend, batching, &mut peeked, &mut inputs) {
            if let Next::Exit = self.run_batch(backend, batching, shape, &mut inputs, &mut jobs) {
                return;
            }
        }
    }

    /// Takes the next batch and starts it: peeks at the queued requests,
    /// costs them outside the mailbox lock, and takes the front request
    /// always, then more while the batch, costed by `batching`'s rule, keeps
    /// the token budget, the request cap and the backend's limits. A
    /// request that must run alone (it failed in a batch before) runs alone.
    /// While every request peeked fitted, requests queued meanwhile are
    /// peeked and taken into the same batch (it has not run yet). Cancelled
    /// requests are skipped here, before compute. The batch's inputs are
    /// collected, in order, into `inputs`. Returns the batch's shape, or
    /// `None` when the mailbox is closed.
    fn take_batch(
        &self,
        backend: &B,
        batching: &Batching,
        peeked: &mut Vec<Front<B>>,
        inputs: &mut Vec<Arc<Vec<B::Input>>>,
    ) -> Option<BatchShape> {
        inputs.clear();
        // The shape and count of the requests taken so far, and whether the
        // first of them must run alone.
        let (mut shape, mut jobs, mut alone) = (BatchShape::default(), 0usize, false);
        loop {
            let room = self.max_batch_requests.saturating_sub(jobs);
            if !self.shared.peek_fronts(room, jobs == 0, peeked) {
                // Closed, or (with a batch started) nothing more queued.
                return (jobs > 0 && !self.shared.is_retired()).then_some(shape);
            }
            let mut complete = false;
            let (mut n, mut planned) = (0usize, shape);
            for front in peeked.iter_mut() {
                let s = shape_of(backend, &front.inputs, self.max_batch_tokens);
                let grown = planned.join(s);
                let full = batching.cost(grown) > self.max_batch_tokens
                    || !batching.fits(grown)
                    || jobs + n >= self.max_batch_requests;
                if jobs + n > 0 && (full || front.alone || alone) {
                    complete = true;
                    break;
                }
                front.shape = s;
                planned = grown;
                alone = front.alone;
                n += 1;
            }
            if n == 0 {
                // The batch taken so far is full (n == 0 only when jobs > 0).
                // Let go of the peeked inputs: a queued request refused
                // later hands its inputs back only if nobody else holds them.
                peeked.clear();
                return Some(shape);
            }
            peeked.truncate(n);
            let took = self
                .shared
                .take_batch(peeked, Instant::now(), batching, inputs)?;
            self.recorder.cancelled(took.cancelled as u64);
            shape = shape.join(took.shape);
            jobs += took.jobs;
            if jobs == 0 {
                // Everything peeked had left: wait for the next request.
                alone = false;
                continue;
            }
            if complete || alone || jobs >= self.max_batch_requests {
                return Some(shape);
            }
        }
    }

    /// Runs the started batch (its inputs in `inputs`, emptied here; its
    /// shape `shape`) as one forward pass — or, if it is one request over
    /// the backend's limits, as several — and answers it; `jobs` is the
    /// empty buffer the finished batch is handed back in.
    fn run_batch(
        &self,
        backend: &mut B,
        batching: &Batching,
        shape: BatchShape,
        inputs: &mut Vec<Arc<Vec<B::Input>>>,
        jobs: &mut Vec<Job<B>>,
    ) -> Next {
        let started = Instant::now();
        let refs: Vec<&B::Input> = inputs.iter().flat_map(|v| v.iter()).collect();
        let result = catch_unwind(AssertUnwindSafe(|| {
            if batching.fits(shape) {
                backend.run(&refs)
            } else {
                run_forwards(backend, batching, &refs)
            }
        }));
        let took = started.elapsed();
        let n_inputs = refs.len();
        drop(refs);
        inputs.clear();
        let outputs = match result {
            Ok(Ok(outputs)) if outputs.len() == n_inputs => outputs,
            Ok(Ok(outputs)) => {
                let msg = format!(
                    "backend returned {} outputs for {n_inputs} inputs",
                    outputs.len()
                );
                return self.batch_failed(Failure::Backend(msg), jobs);
            }
            Ok(Err(e)) => return self.batch_failed(Failure::from(e), jobs),
            Err(p) => {
                // The batch stays in the running set, the heartbeat busy: the
                // supervisor takes it back and retries it elsewhere.
                self.thread.exit();
                self.events
                    .crashed(self.shared.id, panic_message(p.as_ref()));
                return Next::Exit;
            }
        };
        if !self.shared.finish_batch(jobs) {
            // The supervisor took the batch back: we were given up on.
            return Next::Exit;
        }
        let per_request = took.as_nanos() / jobs.len().max(1) as u128;
        self.shared
            .record_service(u64::try_from(per_request).unwrap_or(u64::MAX));
        self.answer_all(jobs, outputs);
        Next::Continue
    }

    /// A batch failed with an error (or the wrong number of outputs). A
    /// batch of one is answered with the error; a larger one goes back to
    /// the head of the queue, each request to run alone, so that one bad
    /// input fails only its own request.
    fn batch_failed(&self, err: Failure, jobs: &mut Vec<Job<B>>) -> Next {
        if self.shared.assembled() > 1 {
            match self.shared.requeue_running_alone() {
                Some(n) => {
                    tracing::debug!(
                        worker = self.shared.id,
                        requests = n,
                        "batch failed ({err}); rerunning its requests one by one"
                    );
                    self.recorder.isolated(n as u64);
                    return Next::Continue;
                }
                None => return Next::Exit,
            }
        }
        if !self.shared.finish_batch(jobs) {
            return Next::Exit;
        }
        self.done(jobs, |_| Err(err.clone()));
        Next::Continue
    }

    fn answer_all(&self, jobs: &mut Vec<Job<B>>, outputs: Vec<B::Output>) {
        let mut outputs = outputs.into_iter();
        self.done(jobs, |job| {
            Ok(outputs.by_ref().take(job.inputs.len()).collect())
        });
    }

    /// Answers each job of a finished batch, freeing its slot first (a
    /// caller that resubmits as soon as it is answered must find it free).
    /// The batch is counted before anyone is answered: a caller that has
    /// its answer and then asks for `stats()` must find its request counted.
    /// Leaves `jobs` empty, its capacity kept for the next batch.
    fn done(
        &self,
        jobs: &mut Vec<Job<B>>,
        mut answer: impl FnMut(&Job<B>) -> Result<Vec<B::Output>, Failure>,
    ) {
        self.shared
            .processed
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        self.shared.batches.fetch_add(1, Ordering::Relaxed);
        for mut job in jobs.drain(..) {
            let reply = answer(&job);
            self.shared.release(&job);
            job.answer(reply);
        }
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.events.freed();
        }
    }
}
