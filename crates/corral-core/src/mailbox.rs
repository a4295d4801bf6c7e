//! A worker's bounded mailbox and the state its compute thread shares with
//! the supervisor ([`WorkerShared`]).
//!
//! ractor's own mailboxes are unbounded and expose no length, so the data
//! path does not use them: the supervisor reserves a slot (the depth
//! counters, checked before anything is sent), pushes the job here, and the
//! worker's compute thread takes batches out. Depth — queued plus running —
//! is a pair of atomics any thread can read without a message round-trip.
//!
//! The same struct carries the worker's heartbeat (what batch it is running,
//! how big, since when) and the batch in flight, kept where the supervisor
//! can take it back if the compute thread never returns.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::backend::Backend;
use crate::job::{Class, Job};

/// What a compute thread is doing right now.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Heartbeat {
    /// `Some(start)` while a batch runs.
    pub(crate) busy_since: Option<Instant>,
    /// Cost (tokens) of the running batch.
    pub(crate) batch_cost: usize,
    /// Inputs in the running batch.
    pub(crate) batch_len: usize,
}

struct Queue<B: Backend> {
    jobs: VecDeque<Job<B>>,
    /// Set when the worker is retired: nothing more is pushed or taken.
    closed: bool,
    /// The compute thread is parked on the condvar.
    sleeping: bool,
}

/// State shared between one worker's compute thread, its actor and the
/// supervisor.
pub(crate) struct WorkerShared<B: Backend> {
    pub(crate) id: u64,
    pub(crate) single_capacity: usize,
    pub(crate) batch_capacity: usize,
    single_depth: AtomicUsize,
    batch_depth: AtomicUsize,
    queue: Mutex<Queue<B>>,
    wake: Condvar,
    /// The batch being run; whoever takes it out answers its callers.
    pub(crate) running: Mutex<Vec<Job<B>>>,
    pub(crate) heartbeat: Mutex<Heartbeat>,
    /// Set by the supervisor when it gives up on this worker.
    pub(crate) retired: AtomicBool,
    pub(crate) processed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) batches: AtomicU64,
    /// Exponentially weighted mean service time per request (a batch's
    /// run time over its requests), in microseconds; feeds routing ties and
    /// `retry_after`.
    pub(crate) service_ewma_us: AtomicU64,
}

impl<B: Backend> WorkerShared<B> {
    pub(crate) fn new(id: u64, single_capacity: usize, batch_capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            id,
            single_capacity,
            batch_capacity,
            single_depth: AtomicUsize::new(0),
            batch_depth: AtomicUsize::new(0),
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
                sleeping: false,
            }),
            wake: Condvar::new(),
            running: Mutex::new(Vec::new()),
            heartbeat: Mutex::new(Heartbeat::default()),
            retired: AtomicBool::new(false),
            processed: AtomicU64::new(0),
            cancelled: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            service_ewma_us: AtomicU64::new(0),
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

    pub(crate) fn depth_of(&self, class: Class) -> usize {
        self.counter(class).load(Ordering::Acquire)
    }

    pub(crate) fn capacity_of(&self, class: Class) -> usize {
        match class {
            Class::Single => self.single_capacity,
            Class::Batch => self.batch_capacity,
        }
    }

    pub(crate) fn has_room(&self, class: Class) -> bool {
        self.depth_of(class) < self.capacity_of(class)
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
        q.jobs.push_back(job);
        if q.sleeping {
            q.sleeping = false;
            drop(q);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Releases the slots of `n` answered jobs of `class`.
    pub(crate) fn release(&self, class: Class, n: usize) {
        if n > 0 {
            self.counter(class).fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Blocks until a job is queued or the mailbox is closed. Returns the
    /// front job's inputs (to be costed outside the lock) and whether it
    /// has failed before, or `None` when closed.
    pub(crate) fn wait_front(&self) -> Option<(Arc<Vec<B::Input>>, bool)> {
        let mut q = self.queue.lock();
        loop {
            if q.closed {
                return None;
            }
            if let Some(front) = q.jobs.front() {
                return Some((front.inputs.clone(), front.failed_attempts > 0));
            }
            q.sleeping = true;
            self.wake.wait(&mut q);
        }
    }

    /// As [`Self::wait_front`], without blocking.
    pub(crate) fn peek_front(&self) -> Option<(Arc<Vec<B::Input>>, bool)> {
        let q = self.queue.lock();
        if q.closed {
            return None;
        }
        q.jobs
            .front()
            .map(|j| (j.inputs.clone(), j.failed_attempts > 0))
    }

    /// Takes the front job if it is still the one whose inputs were peeked.
    pub(crate) fn pop_if(&self, peeked: &Arc<Vec<B::Input>>) -> Option<Job<B>> {
        let mut q = self.queue.lock();
        if q.closed {
            return None;
        }
        match q.jobs.front() {
            Some(j) if Arc::ptr_eq(&j.inputs, peeked) => q.jobs.pop_front(),
            _ => None,
        }
    }

    /// Closes the mailbox and hands back everything still queued. The
    /// compute thread wakes, finds it closed, and exits once its current
    /// batch (if any) returns.
    pub(crate) fn close(&self) -> Vec<Job<B>> {
        let mut q = self.queue.lock();
        q.closed = true;
        let jobs: Vec<Job<B>> = q.jobs.drain(..).collect();
        drop(q);
        self.wake.notify_all();
        jobs
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.queue.lock().closed
    }

    /// Takes the running batch back from the compute thread, if it has one.
    pub(crate) fn take_running(&self) -> Vec<Job<B>> {
        std::mem::take(&mut *self.running.lock())
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.heartbeat.lock().busy_since.is_some()
    }

    /// Folds one batch's service time per request into the average. Only
    /// the compute thread writes it.
    pub(crate) fn record_service(&self, micros: u64) {
        let micros = micros.max(1);
        let old = self.service_ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            micros
        } else {
            (old * 3 + micros) / 4
        };
        self.service_ewma_us.store(new, Ordering::Relaxed);
    }
}
