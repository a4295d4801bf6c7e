//! A worker's bounded mailbox and the state its compute thread shares with
//! the supervisor ([`WorkerShared`]).
//!
//! ractor's own mailboxes are unbounded and expose no length, so the data
//! path does not use them: the supervisor reserves a slot (the depth
//! counters, checked before anything is sent), pushes the job here, and the
//! worker's compute thread takes batches out. Depth — queued plus running —
//! is a pair of atomics any thread can read without a message round-trip.
//!
//! Everything the compute thread holds stays here, where the supervisor can
//! take it back: the batch it runs is in `running`, and requests of a failed
//! batch waiting to be rerun one by one go back to the head of the queue.
//! The queue and the running set change under one lock (queue first), so the
//! supervisor's [`WorkerShared::seize`] and the compute thread's hand-overs
//! never cross: each job is in exactly one place at every moment.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::backend::{Backend, BatchShape, Batching};
use crate::job::{Class, Job};

/// How long an idle compute thread looks for work before it parks:
/// `SPIN_ROUNDS` rounds of `SPINS_PER_ROUND` pause instructions (about a
/// microsecond all told), then `YIELD_ROUNDS` scheduler yields, which hand
/// the core to whatever else is runnable (the supervisor, the callers).
/// Parking costs the next push a futex wake on the supervisor's thread, the
/// one thread every request passes through; `corral-bench route` is how
/// these were chosen (benches/route_ab.sh).
const SPIN_ROUNDS: u32 = 4;
const SPINS_PER_ROUND: u32 = 16;
const YIELD_ROUNDS: u32 = 8;

/// What a compute thread is doing right now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heartbeat {
    /// `Some(start)` while a batch runs.
    pub(crate) busy_since: Option<Instant>,
    /// Cost (tokens) of the running batch, by the backend's
    /// [`Batching`] rule.
    pub(crate) batch_cost: usize,
    /// The running batch's shape, which the cost is reckoned from.
    pub(crate) batch_shape: BatchShape,
    /// Inputs in the running batch.
    pub(crate) batch_len: usize,
    /// The earliest end-to-end deadline in the running batch.
    pub(crate) deadline: Option<Instant>,
}

struct Queue<B: Backend> {
    jobs: VecDeque<Job<B>>,
    /// The batch being run.
    running: Vec<Job<B>>,
    /// Set when the worker is retired: nothing more is pushed or taken.
    closed: bool,
    /// The compute thread is parked on the condvar.
    sleeping: bool,
}

/// Everything a retired worker held, taken back by the supervisor.
pub(crate) struct Held<B: Backend> {
    /// Queued, never started: re-route as they are.
    pub(crate) queued: Vec<Job<B>>,
    /// In the batch that was running: retry (they may have run).
    pub(crate) running: Vec<Job<B>>,
}

/// A queued job as the compute thread sees it before taking it: its
/// inputs (to be costed outside the lock), whether it must run alone, and
/// its shape (count, cost sum, costliest input) once the compute thread has
/// costed it.
pub(crate) struct Front<B: Backend> {
    pub(crate) inputs: Arc<Vec<B::Input>>,
    pub(crate) alone: bool,
    /// Filled in by the compute thread, outside the lock.
    pub(crate) shape: BatchShape,
}

impl<B: Backend> Front<B> {
    fn of(job: &Job<B>) -> Self {
        Self {
            inputs: job.inputs.clone(),
            alone: job.runs_alone(),
            shape: BatchShape::default(),
        }
    }
}

/// What [`WorkerShared::take_batch`] did with the jobs it was given.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Took {
    /// Moved into the running set: the batch started with these.
    pub(crate) jobs: usize,
    /// Their callers went away: dropped, slots freed.
    pub(crate) cancelled: usize,
    /// Already answered at their deadline: dropped, slots freed.
    pub(crate) answered: usize,
    /// The taken jobs' shape, joined.
    pub(crate) shape: BatchShape,
}

/// What [`WorkerShared::expire`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired {
    /// Queued requests removed and refused `DeadlinePassed` (inputs back).
    pub(crate) queued: usize,
    /// Running requests failed `DeadlinePassed` (they stay in the batch, their
    /// result discarded).
    pub(crate) running: usize,
}

/// State shared between one worker's compute thread, its actor and the
/// supervisor.
pub(crate) struct WorkerShared<B: Backend> {
    pub(crate) id: u64,
    single_capacity: usize,
    batch_capacity: usize,
    single_depth: AtomicUsize,
    batch_depth: AtomicUsize,
    /// Queued jobs with an end-to-end deadline (the watchdog skips the scan
    /// when there are none).
    with_deadline: AtomicUsize,
    queue: Mutex<Queue<B>>,
    wake: Condvar,
    pub(crate) heartbeat: Mutex<Heartbeat>,
    pub(crate) processed: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Exponentially weighted mean service time per request (a batch's run
    /// time over its requests), in nanoseconds; feeds routing and
    /// `retry_after`.
    service_ewma_ns: AtomicU64,
    /// Set by the supervisor when it gives up on this worker.
    retired: AtomicBool,
}

impl<B: Backend> WorkerShared<B> {
    pub(crate) fn new(id: u64, single_capacity: usize, batch_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            id,
            single_capacity,
            batch_capacity,
            single_depth: AtomicUsize::new(0),
            batch_depth: AtomicUsize::new(0),
            with_deadline: AtomicUsize::new(0),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                running: Vec::new(),
                closed: false,
                sleeping: false,
            }),
            wake: Condvar::new(),
            heartbeat: Mutex::new(Heartbeat::default()),
            processed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            service_ewma_ns: AtomicU64::new(0),
            retired: AtomicBool::new(false),
        })
    }

    fn counter(&self, class: Class) -> &AtomicUsize {
        match class {
            Class::Single => &self.single_depth,
            Class::Batch => &self.batch_depth,
        }
    }

    /// Requests admitted to this worker and not yet answered (queued plus
    /// running), both classes.
    pub(crate) fn depth(&self) -> usize {
        self.single_depth.load(Ordering::Acquire) + self.batch_depth.load(Ordering::Acquire)
    }

    pub(crate) fn has_room(&self, class: Class) -> bool {
        let cap = match class {
            Class::Single => self.single_capacity,
            Class::Batch => self.batch_capacity,
        };
        self.counter(class).load(Ordering::Acquire) < cap
    }

    /// Admits `job`: reserves its slot and queues it. Only the supervisor
    /// calls this, after checking [`Self::has_room`]; the supervisor is the
    /// only admitter, so the check and the increment cannot race with
    /// another admission. Returns the job if the worker has been retired.
    pub(crate) fn push(&self, job: Job<B>) -> Result<(), Job<B>> {
        let mut q = self.queue.lock();
        if q.closed {
            return Err(job);
        }
        self.counter(job.class).fetch_add(1, Ordering::AcqRel);
        if job.deadline.is_some() {
            self.with_deadline.fetch_add(1, Ordering::Relaxed);
        }
        q.jobs.push_back(job);
        if q.sleeping {
            q.sleeping = false;
            drop(q);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Releases the slot of one job that left this worker.
    pub(crate) fn release(&self, job: &Job<B>) {
        self.counter(job.class).fetch_sub(1, Ordering::AcqRel);
    }

    fn dequeued(&self, job: &Job<B>) {
        if job.deadline.is_some() {
            self.with_deadline.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Peeks at up to `max` queued jobs from the front, in order, into
    /// `out` (emptied first), to be costed outside the lock. With `block`,
    /// waits until a job is queued. Returns `false` when the mailbox is
    /// closed, or when nothing is queued and `block` is not set.
    pub(crate) fn peek_fronts(&self, max: usize, block: bool, out: &mut Vec<Front<B>>) -> bool {
        out.clear();
        let mut spun = false;
        let mut q = self.queue.lock();
        loop {
            if q.closed {
                return false;
            }
            if !q.jobs.is_empty() {
                out.extend(q.jobs.iter().take(max.max(1)).map(Front::of));
                return true;
            }
            if !block {
                return false;
            }
            if !spun {
                // Before parking, look for work for a few microseconds with
                // the lock released: a request pushed meanwhile is found
                // without a futex wake on the supervisor's thread (the one
                // thread every request passes through).
                spun = true;
                drop(q);
                self.spin_for_work();
                q = self.queue.lock();
                continue;
            }
            q.sleeping = true;
            self.wake.wait(&mut q);
        }
    }

    /// Spins, then yields (see [`SPIN_ROUNDS`]), until something is queued
    /// or the worker is retired. A hint only: the caller confirms under the
    /// lock. Depth counts only queued requests here: the compute thread
    /// calls this with no batch of its own (its last batch's slots were
    /// freed as it was answered).
    fn spin_for_work(&self) {
        for round in 0..SPIN_ROUNDS + YIELD_ROUNDS {
            if self.depth() > 0 || self.is_retired() {
                return;
            }
            if round < SPIN_ROUNDS {
                for _ in 0..SPINS_PER_ROUND {
                    std::hint::spin_loop();
                }
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Up to `max` queued jobs from the front, without blocking (tests
    /// only).
    #[cfg(test)]
    pub(crate) fn fronts(&self, max: usize) -> Vec<Front<B>> {
        let mut out = Vec::new();
        self.peek_fronts(max, false, &mut out);
        out
    }

    /// Takes the jobs peeked in `peeked` (drained) that are still queued,
    /// in order, into the running set, and starts the batch — its heartbeat
    /// published — under one lock, so that the supervisor's pushes wait on
    /// it once per batch rather than once per job. A job whose caller went
    /// away (or that was answered at its deadline) leaves instead, its slot
    /// freed; one no longer queued (the watchdog expired it) is skipped.
    /// The taken jobs' inputs are pushed to `inputs`, in order. The
    /// heartbeat's cost is the batch's by `batching`'s rule. A batch
    /// already started (and not yet run) grows by the jobs taken: its
    /// heartbeat keeps its start and is costed again with them. Returns `None` if the
    /// mailbox is closed (nothing taken); a batch starts only if at least
    /// one job was taken.
    pub(crate) fn take_batch(
        &self,
        peeked: &mut Vec<Front<B>>,
        started: Instant,
        batching: &Batching,
        inputs: &mut Vec<Arc<Vec<B::Input>>>,
    ) -> Option<Took> {
        let mut took = Took::default();
        let mut q = self.queue.lock();
        if q.closed {
            peeked.clear();
            return None;
        }
        for front in peeked.drain(..) {
            // Only the compute thread takes from the front and jobs are
            // pushed at the back, so the peeked jobs still queued are at the
            // front, in order; one that is not there has left the queue.
            if !q
                .jobs
                .front()
                .is_some_and(|j| Arc::ptr_eq(&j.inputs, &front.inputs))
            {
                continue;
            }
            let Some(job) = q.jobs.pop_front() else {
                break;
            };
            self.dequeued(&job);
            if job.is_cancelled() {
                self.release(&job);
                if job.is_answered() {
                    took.answered += 1;
                } else {
                    took.cancelled += 1;
                }
                continue;
            }
            took.jobs += 1;
            took.shape = took.shape.join(front.shape);
            inputs.push(front.inputs);
            q.running.push(job);
        }
        if took.jobs > 0 {
            let mut hb = self.heartbeat.lock();
            let (since, shape) = match hb.busy_since {
                Some(since) => (since, hb.batch_shape.join(took.shape)),
                None => (started, took.shape),
            };
            *hb = Heartbeat {
                busy_since: Some(since),
                batch_cost: batching.cost(shape),
                batch_shape: shape,
                batch_len: q.running.iter().map(|j| j.inputs.len()).sum(),
                deadline: q.running.iter().filter_map(|j| j.deadline).min(),
            };
        }
        Some(took)
    }

    /// Jobs in the running batch.
    pub(crate) fn assembled(&self) -> usize {
        self.queue.lock().running.len()
    }

    /// Ends the running batch: clears the heartbeat and hands the batch back
    /// to the compute thread by swapping it with `into` (empty; its capacity
    /// becomes the next batch's, so that assembling a batch allocates
    /// nothing under the lock). Returns `false`, leaving `into` empty, if
    /// the supervisor seized the batch (the thread was given up on and must
    /// exit).
    pub(crate) fn finish_batch(&self, into: &mut Vec<Job<B>>) -> bool {
        debug_assert!(into.is_empty());
        let mut q = self.queue.lock();
        *self.heartbeat.lock() = Heartbeat::default();
        if q.closed {
            return false;
        }
        std::mem::swap(&mut q.running, into);
        true
    }

    /// After a batch error: puts the running batch's unanswered jobs back
    /// at the head of the queue, in order, each marked to run alone. Jobs
    /// already answered (at their deadline) leave, their slots freed.
    /// Returns how many were put back, or `None` if the supervisor seized
    /// the batch first.
    pub(crate) fn requeue_running_alone(&self) -> Option<usize> {
        let mut q = self.queue.lock();
        *self.heartbeat.lock() = Heartbeat::default();
        if q.closed {
            return None;
        }
        let mut n = 0;
        // From the back, each to the head: the batch's order is kept.
        while let Some(mut job) = q.running.pop() {
            if job.is_answered() {
                self.release(&job);
                continue;
            }
            job.isolate = true;
            if job.deadline.is_some() {
                self.with_deadline.fetch_add(1, Ordering::Relaxed);
            }
            q.jobs.push_front(job);
            n += 1;
        }
        Some(n)
    }

    /// Answers `DeadlinePassed` to every request whose end-to-end deadline
    /// passed: queued ones leave (slot freed) refused, their inputs handed
    /// back; running ones fail in place
    /// (their slot frees when the batch ends). Cheap when no job has a
    /// deadline.
    pub(crate) fn expire(&self, now: Instant) -> Expired {
        let running_due = self.heartbeat.lock().deadline.is_some_and(|d| d <= now);
        if self.with_deadline.load(Ordering::Relaxed) == 0 && !running_due {
            return Expired::default();
        }
        let mut out = Expired::default();
        let mut q = self.queue.lock();
        if q.closed {
            return out;
        }
        let mut i = 0;
        while i < q.jobs.len() {
            if q.jobs[i].expired(now) {
                if let Some(job) = q.jobs.remove(i) {
                    self.dequeued(&job);
                    self.release(&job);
                    // Nothing ran: its inputs go back.
                    job.refuse(crate::error::Refusal::DeadlinePassed);
                    out.queued += 1;
                }
            } else {
                i += 1;
            }
        }
        if running_due {
            for job in q.running.iter_mut() {
                if job.expired(now) && !job.is_answered() {
                    job.answer(Err(crate::error::Failure::DeadlinePassed));
                    out.running += 1;
                }
            }
            let mut hb = self.heartbeat.lock();
            hb.deadline = q
                .running
                .iter()
                .filter(|j| !j.is_answered())
                .filter_map(|j| j.deadline)
                .min();
        }
        out
    }

    /// Retires the worker: closes the mailbox and takes back everything it
    /// held. The compute thread wakes, finds it closed, and exits once its
    /// current batch (if any) returns. Idempotent: a second call gets
    /// nothing.
    pub(crate) fn seize(&self) -> Held<B> {
        self.retired.store(true, Ordering::Release);
        let mut q = self.queue.lock();
        q.closed = true;
        let queued: Vec<Job<B>> = q.jobs.drain(..).collect();
        // A batch is taken and started under one lock: whatever is in the
        // running set has started.
        let running = std::mem::take(&mut q.running);
        drop(q);
        self.wake.notify_all();
        for job in queued.iter().chain(running.iter()) {
            self.release(job);
        }
        self.with_deadline.store(0, Ordering::Relaxed);
        Held { queued, running }
    }

    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    /// Whether the supervisor has given up on this worker.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.heartbeat.lock().busy_since.is_some()
    }

    /// Recent service time per request, in ns (0: not measured yet).
    pub(crate) fn service_ns(&self) -> u64 {
        self.service_ewma_ns.load(Ordering::Relaxed)
    }

    /// Folds one batch's service time per request into the average. Only
    /// the compute thread writes it.
    pub(crate) fn record_service(&self, nanos: u64) {
        let nanos = nanos.max(1);
        let old = self.service_ewma_ns.load(Ordering::Relaxed);
        let new = if old == 0 {
            nanos
        } else {
            (old.saturating_mul(3).saturating_add(nanos)) / 4
        };
        self.service_ewma_ns.store(new, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
