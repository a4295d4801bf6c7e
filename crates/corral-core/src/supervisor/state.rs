//! The supervisor's state and every decision it makes. Kept apart from the
//! actor plumbing in `mod.rs` so each handler reads as one method.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram};
use ractor::{Actor, ActorId, ActorRef, RpcReplyPort};

use super::SupervisorArgs;
use crate::backend::{Backend, LoadContext};
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::job::{Class, Job, Reply};
use crate::mailbox::WorkerShared;
use crate::msg::{Admission, InternalMsg, PoolMsg, ShutdownReport, Submit};
use crate::router::{Router, WorkerLoad};
use crate::stats::{
    metric_names as m, Health, HealthReport, LatencyHistogram, PoolStats, WorkerHealth,
    WorkerState, WorkerStats,
};
use crate::worker::compute::{Compute, ABANDONED, ALIVE};
use crate::worker::{WorkerActor, WorkerArgs, WorkerMsg};
use crate::PoolShared;

/// One live worker incarnation.
struct Worker<B: Backend> {
    id: u64,
    actor: ActorRef<WorkerMsg>,
    shared: Arc<WorkerShared<B>>,
    thread_state: Arc<AtomicU8>,
    ready: bool,
    started: Instant,
    last_pong: Instant,
    ping_seq: u64,
    /// The ping in flight and when it was sent.
    ping_outstanding: Option<(u64, Instant)>,
}

enum Slot<B: Backend> {
    Live(Worker<B>),
    /// Empty; a worker is started at `due`.
    Restarting {
        due: Instant,
    },
    /// Empty for good while the abandoned-thread cap is reached.
    Disabled,
}

/// A caller waiting for room (or a request taken back from a failed worker
/// waiting to be re-routed).
struct Waiter<B: Backend> {
    job: Job<B>,
    since: Instant,
    deadline: Instant,
    /// What the caller is told if the deadline passes.
    on_expiry: PoolError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    Stuck,
    Deadlock,
    Panic,
    LoadFailed,
    LoadHung,
    ActorDied,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Stuck => "stuck",
            Failure::Deadlock => "deadlock",
            Failure::Panic => "panic",
            Failure::LoadFailed | Failure::LoadHung => "load",
            Failure::ActorDied => "actor_died",
        }
    }
}

struct Drain {
    deadline: Instant,
    reply: Option<RpcReplyPort<ShutdownReport>>,
    report: ShutdownReport,
}

/// Handles on the pool's series in the `metrics` facade, made once.
struct Metrics {
    depth: Vec<Gauge>,
    waiting: Gauge,
    admitted: Counter,
    overloaded: Counter,
    timeout: Counter,
    shutting_down: Counter,
    wait: Histogram,
    restarts: Counter,
    retries: Counter,
    worker_lost: Counter,
    abandoned: Gauge,
    processed: Counter,
    pool: String,
}

impl Metrics {
    fn new(pool: &str, slots: usize) -> Self {
        let p = pool.to_owned();
        Self {
            depth: (0..slots)
                .map(|s| metrics::gauge!(m::WORKER_DEPTH, "pool" => p.clone(), "slot" => s.to_string()))
                .collect(),
            waiting: metrics::gauge!(m::WAITING, "pool" => p.clone()),
            admitted: metrics::counter!(m::ADMITTED, "pool" => p.clone()),
            overloaded: metrics::counter!(m::REJECTED, "pool" => p.clone(), "reason" => "overloaded"),
            timeout: metrics::counter!(m::REJECTED, "pool" => p.clone(), "reason" => "timeout"),
            shutting_down: metrics::counter!(m::REJECTED, "pool" => p.clone(), "reason" => "shutting_down"),
            wait: metrics::histogram!(m::WAIT_SECONDS, "pool" => p.clone()),
            restarts: metrics::counter!(m::RESTARTS, "pool" => p.clone()),
            retries: metrics::counter!(m::RETRIES, "pool" => p.clone()),
            worker_lost: metrics::counter!(m::WORKER_LOST, "pool" => p.clone()),
            abandoned: metrics::gauge!(m::ABANDONED, "pool" => p.clone()),
            processed: metrics::counter!(m::PROCESSED, "pool" => p.clone()),
            pool: p,
        }
    }

    fn failure(&self, f: Failure) {
        metrics::counter!(m::FAILURES, "pool" => self.pool.clone(), "kind" => f.label())
            .increment(1);
    }
}

pub(crate) struct SupervisorState<B: Backend> {
    myself: ActorRef<PoolMsg<B>>,
    config: Arc<PoolConfig>,
    spec: Arc<B::Spec>,
    router: Box<dyn Router>,
    shared: Arc<PoolShared>,
    threads: usize,
    slots: Vec<Slot<B>>,
    /// Processed/batch counts of past incarnations, per slot.
    retired_counts: Vec<(u64, u64)>,
    /// Reused per admission: the routable workers' loads and their slots.
    loads: Vec<WorkerLoad>,
    routable: Vec<usize>,
    waiting: VecDeque<Waiter<B>>,
    restart_log: VecDeque<Instant>,
    backoff_level: u32,
    rng: u64,
    last_ping_round: Instant,
    drain: Option<Drain>,
    stopped: bool,
    stats: PoolStats,
    retired_cancelled: u64,
    wait_hist: LatencyHistogram,
    detect_hist: LatencyHistogram,
    metrics: Metrics,
    last_processed: u64,
}

impl<B: Backend> SupervisorState<B> {
    pub(crate) fn new(myself: ActorRef<PoolMsg<B>>, args: SupervisorArgs<B>) -> Self {
        let n = args.config.workers;
        let now = Instant::now();
        let threads = args.config.resolved_threads();
        tracing::info!(
            pool = %args.config.name,
            workers = n,
            threads_per_worker = threads,
            cores = crate::config::available_cores(),
            "starting pool: {n} workers × {threads} compute threads"
        );
        Self {
            myself,
            metrics: Metrics::new(&args.config.name, n),
            threads,
            spec: args.spec,
            router: args.router,
            shared: args.shared,
            slots: (0..n).map(|_| Slot::Restarting { due: now }).collect(),
            retired_counts: vec![(0, 0); n],
            loads: Vec::with_capacity(n),
            routable: Vec::with_capacity(n),
            waiting: VecDeque::new(),
            restart_log: VecDeque::new(),
            backoff_level: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()),
            last_ping_round: now,
            drain: None,
            stopped: false,
            stats: PoolStats::default(),
            retired_cancelled: 0,
            wait_hist: LatencyHistogram::new(),
            detect_hist: LatencyHistogram::new(),
            last_processed: 0,
            config: args.config,
        }
    }

    pub(crate) fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub(crate) fn finished(&self) -> bool {
        self.stopped
    }

    pub(crate) async fn start_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.start_worker(slot).await;
        }
    }

    // ---------------------------------------------------------------- workers

    async fn start_worker(&mut self, slot: usize) {
        let id = self.shared.next_worker_id();
        let shared = WorkerShared::new(
            id,
            self.config.embed_queue_capacity,
            self.config.batch_queue_capacity,
        );
        let thread_state = Arc::new(AtomicU8::new(ALIVE));
        let compute = Compute {
            shared: shared.clone(),
            supervisor: self.myself.clone(),
            spec: self.spec.clone(),
            load_ctx: LoadContext {
                pool: self.config.name.clone(),
                worker_id: id,
                threads: self.threads,
            },
            max_batch_tokens: self.config.max_batch_tokens,
            max_batch_requests: self.config.max_batch_requests,
            waiting: self.shared.waiting.clone(),
            thread_state: thread_state.clone(),
            abandoned_threads: self.shared.abandoned.clone(),
        };
        let args = WorkerArgs {
            compute,
            thread_name: format!("{}-w{id}", self.config.name),
        };
        let now = Instant::now();
        match Actor::spawn_linked(None, WorkerActor::new(), args, self.myself.get_cell()).await {
            Ok((actor, _)) => {
                self.slots[slot] = Slot::Live(Worker {
                    id,
                    actor,
                    shared,
                    thread_state,
                    ready: false,
                    started: now,
                    last_pong: now,
                    ping_seq: 0,
                    ping_outstanding: None,
                });
            }
            Err(e) => {
                tracing::error!(pool = %self.config.name, slot, "could not spawn worker actor: {e}");
                self.schedule_restart(slot);
            }
        }
    }

    fn slot_of(&self, worker: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Live(w) if w.id == worker))
    }

    fn publish_ready(&self) {
        let ready = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Live(w) if w.ready))
            .count();
        self.shared.ready.send_replace(ready);
    }

    /// Takes a worker out of service and deals with everything it held.
    fn retire(
        &mut self,
        slot: usize,
        failure: Failure,
        started: Option<Instant>,
        extra: Vec<Job<B>>,
        panic_reason: Option<String>,
    ) {
        let placeholder = Slot::Restarting {
            due: Instant::now(),
        };
        let Slot::Live(w) = std::mem::replace(&mut self.slots[slot], placeholder) else {
            return;
        };
        let now = Instant::now();
        w.shared.retired.store(true, Ordering::Release);
        let queued = w.shared.close();
        let mut running = w.shared.take_running();
        running.extend(extra);
        // A thread still inside the backend (or the loader) cannot be
        // stopped: abandon it. It uncounts itself if it ever exits.
        let inside = w.shared.is_busy() || !w.ready;
        if inside
            && !matches!(failure, Failure::LoadFailed | Failure::Panic)
            && w.thread_state
                .compare_exchange(ALIVE, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.shared.abandoned.fetch_add(1, Ordering::AcqRel);
        }
        w.actor.kill();
        self.retired_counts[slot].0 += w.shared.processed.load(Ordering::Relaxed);
        self.retired_counts[slot].1 += w.shared.batches.load(Ordering::Relaxed);
        self.retired_cancelled += w.shared.cancelled.load(Ordering::Relaxed);
        if let Some(t) = started {
            self.detect_hist.record(now.saturating_duration_since(t));
        }
        match failure {
            Failure::Stuck => self.stats.stuck_detected += 1,
            Failure::Deadlock => self.stats.deadlocks_detected += 1,
            Failure::Panic => self.stats.panics += 1,
            Failure::LoadFailed | Failure::LoadHung => self.stats.load_failures += 1,
            Failure::ActorDied => {}
        }
        self.metrics.failure(failure);
        tracing::warn!(
            pool = %self.config.name,
            slot,
            worker = w.id,
            failure = failure.label(),
            queued = queued.len(),
            running = running.len(),
            "retiring worker"
        );
        if w.ready {
            self.publish_ready();
        }
        for job in queued {
            self.stats.rerouted += 1;
            self.reroute(job, now);
        }
        self.retry_or_fail(running, panic_reason.as_deref(), now);
        self.schedule_restart(slot);
        self.pump_waiting();
    }

    /// Jobs that were running on a worker that failed: tried again
    /// elsewhere (where they run alone, see the compute thread) until
    /// `max_retries` is spent, then answered `WorkerLost` — or the panic's
    /// `Backend` error when the backend panicked.
    fn retry_or_fail(&mut self, jobs: Vec<Job<B>>, panic_reason: Option<&str>, now: Instant) {
        for mut job in jobs {
            job.failed_attempts += 1;
            if job.failed_attempts <= self.config.max_retries {
                self.stats.retries += 1;
                self.metrics.retries.increment(1);
                self.reroute(job, now);
            } else if let Some(reason) = panic_reason {
                job.answer(Err(PoolError::Backend(format!(
                    "backend panicked: {reason}"
                ))));
            } else {
                self.stats.worker_lost += 1;
                self.metrics.worker_lost.increment(1);
                job.answer(Err(PoolError::WorkerLost));
            }
        }
    }

    fn schedule_restart(&mut self, slot: usize) {
        let now = Instant::now();
        if self.drain.is_some() || self.stopped {
            self.slots[slot] = Slot::Disabled;
            return;
        }
        if self.shared.abandoned.load(Ordering::Acquire) >= self.config.max_abandoned_threads {
            tracing::error!(
                pool = %self.config.name,
                slot,
                cap = self.config.max_abandoned_threads,
                "abandoned-thread cap reached: not replacing the worker"
            );
            self.slots[slot] = Slot::Disabled;
            return;
        }
        while self
            .restart_log
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.config.restart_window)
        {
            self.restart_log.pop_front();
        }
        let due = if self.restart_log.len() < self.config.max_restarts {
            self.backoff_level = 0;
            now
        } else {
            let base = self.config.restart_backoff_base;
            let exp = base.saturating_mul(1u32 << self.backoff_level.min(20));
            let capped = exp.min(self.config.restart_backoff_max);
            self.backoff_level = self.backoff_level.saturating_add(1);
            // Jitter in [0.5, 1.5) so that pools restarting together spread out.
            let jitter = 0.5 + (self.next_random() % 1000) as f64 / 1000.0;
            let delay = capped.mul_f64(jitter);
            tracing::warn!(pool = %self.config.name, slot, ?delay, "restart intensity exceeded: backing off");
            now + delay
        };
        self.restart_log.push_back(due);
        self.stats.restarts += 1;
        self.metrics.restarts.increment(1);
        self.slots[slot] = Slot::Restarting { due };
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: jitter needs no better.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    pub(crate) async fn worker_actor_gone(&mut self, actor: ActorId, reason: String) {
        let slot = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Live(w) if w.actor.get_id() == actor));
        if let Some(slot) = slot {
            tracing::warn!(pool = %self.config.name, slot, "worker actor stopped: {reason}");
            self.retire(slot, Failure::ActorDied, None, Vec::new(), None);
            self.start_due().await;
        }
    }

    // -------------------------------------------------------------- admission

    pub(crate) fn submit(
        &mut self,
        submit: Submit<B::Input>,
        reply: RpcReplyPort<Reply<B::Output>>,
    ) {
        if self.drain.is_some() || self.stopped {
            self.metrics.shutting_down.increment(1);
            let _ = reply.send(Err(PoolError::ShuttingDown));
            return;
        }
        let n = submit.inputs.len();
        if n == 0 {
            let _ = reply.send(Err(PoolError::InvalidInput(
                "the request has no inputs".into(),
            )));
            return;
        }
        if n > self.config.max_client_batch {
            let _ = reply.send(Err(PoolError::InvalidInput(format!(
                "the request has {n} inputs; the limit (max_client_batch) is {}",
                self.config.max_client_batch
            ))));
            return;
        }
        let now = Instant::now();
        let job = Job {
            inputs: Arc::new(submit.inputs),
            reply,
            class: Class::of(n),
            failed_attempts: 0,
        };
        // Callers already waiting go first.
        if !self.waiting.is_empty() {
            self.pump_waiting();
        }
        let job = if self.waiting.is_empty() {
            match self.try_admit(job) {
                Ok(()) => return,
                Err(job) => job,
            }
        } else {
            job
        };
        match submit.admission {
            Admission::Wait(timeout)
                if !timeout.is_zero() && self.waiting.len() < self.config.max_waiting =>
            {
                self.waiting.push_back(Waiter {
                    job,
                    since: now,
                    deadline: now + timeout,
                    on_expiry: PoolError::Timeout,
                });
                self.shared
                    .waiting
                    .store(self.waiting.len(), Ordering::Release);
            }
            Admission::Wait(timeout) if timeout.is_zero() => {
                self.stats.timed_out += 1;
                self.metrics.timeout.increment(1);
                job.answer(Err(PoolError::Timeout));
            }
            _ => {
                self.stats.rejected_overloaded += 1;
                self.metrics.overloaded.increment(1);
                job.answer(Err(PoolError::Overloaded {
                    retry_after: self.retry_after(),
                }));
            }
        }
    }

    /// Routes `job` to the least-loaded ready worker with room in the job's
    /// class, or hands it back.
    fn try_admit(&mut self, job: Job<B>) -> Result<(), Job<B>> {
        self.loads.clear();
        self.routable.clear();
        for (i, s) in self.slots.iter().enumerate() {
            if let Slot::Live(w) = s {
                if w.ready {
                    self.loads.push(WorkerLoad {
                        depth: w.shared.depth(),
                        has_room: w.shared.has_room(job.class),
                        service_us: w.shared.service_ewma_us.load(Ordering::Relaxed),
                    });
                    self.routable.push(i);
                }
            }
        }
        let Some(k) = self.router.pick(&self.loads) else {
            return Err(job);
        };
        let Slot::Live(w) = &self.slots[self.routable[k]] else {
            return Err(job);
        };
        w.shared.push(job)?;
        self.stats.admitted += 1;
        self.metrics.admitted.increment(1);
        Ok(())
    }

    /// Puts a job taken back from a failed worker on another worker, or at
    /// the head of the waiting line (past its bound: these were admitted
    /// once already, and there are at most one worker's worth of them).
    fn reroute(&mut self, job: Job<B>, now: Instant) {
        if job.is_cancelled() {
            self.stats.cancelled += 1;
            return;
        }
        if let Err(job) = self.try_admit(job) {
            self.waiting.push_front(Waiter {
                job,
                since: now,
                deadline: now + self.config.reroute_wait,
                on_expiry: PoolError::WorkerLost,
            });
            self.shared
                .waiting
                .store(self.waiting.len(), Ordering::Release);
        }
    }

    /// Admits waiting callers, in order, while there is room. A waiter whose
    /// class is full does not block waiters of the other class.
    fn pump_waiting(&mut self) {
        let now = Instant::now();
        let mut blocked = [false, false];
        let mut i = 0;
        while i < self.waiting.len() && !(blocked[0] && blocked[1]) {
            let class_ix = usize::from(self.waiting[i].job.class == Class::Batch);
            if blocked[class_ix] {
                i += 1;
                continue;
            }
            let Some(w) = self.waiting.remove(i) else {
                break;
            };
            if w.job.is_cancelled() {
                self.stats.cancelled += 1;
                continue;
            }
            match self.try_admit(w.job) {
                Ok(()) => {
                    if w.on_expiry == PoolError::Timeout {
                        let waited = now.saturating_duration_since(w.since);
                        self.wait_hist.record(waited);
                        self.metrics.wait.record(waited.as_secs_f64());
                        self.stats.waited += 1;
                    }
                }
                Err(job) => {
                    self.waiting.insert(i, Waiter { job, ..w });
                    blocked[class_ix] = true;
                    i += 1;
                }
            }
        }
        self.shared
            .waiting
            .store(self.waiting.len(), Ordering::Release);
    }

    fn expire_waiting(&mut self, now: Instant) {
        // Runs every tick: touch nothing unless someone's deadline passed.
        if !self.waiting.iter().any(|w| w.deadline <= now) {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for w in std::mem::take(&mut self.waiting) {
            if w.deadline <= now {
                match w.on_expiry {
                    PoolError::Timeout => {
                        self.stats.timed_out += 1;
                        self.metrics.timeout.increment(1);
                    }
                    PoolError::WorkerLost => {
                        self.stats.worker_lost += 1;
                        self.metrics.worker_lost.increment(1);
                    }
                    _ => {}
                }
                w.job.answer(Err(w.on_expiry));
            } else {
                kept.push_back(w);
            }
        }
        self.waiting = kept;
        self.shared
            .waiting
            .store(self.waiting.len(), Ordering::Release);
    }

    /// An estimate of when a slot frees: the soonest any ready worker
    /// finishes a request, from its measured service time.
    fn retry_after(&self) -> Duration {
        let soonest = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(w) if w.ready => Some(w.shared.service_ewma_us.load(Ordering::Relaxed)),
                _ => None,
            })
            .filter(|&us| us > 0)
            .min();
        match soonest {
            Some(us) => {
                Duration::from_micros(us).clamp(Duration::from_millis(1), Duration::from_secs(5))
            }
            None => Duration::from_millis(100),
        }
    }

    // ---------------------------------------------------------- internal msgs

    pub(crate) async fn internal(&mut self, msg: InternalMsg<B>) {
        match msg {
            InternalMsg::Tick => self.tick().await,
            InternalMsg::Freed => self.pump_waiting(),
            InternalMsg::Loaded { worker } => {
                if let Some(slot) = self.slot_of(worker) {
                    if let Slot::Live(w) = &mut self.slots[slot] {
                        w.ready = true;
                        tracing::info!(pool = %self.config.name, slot, worker, "worker ready");
                    }
                    self.publish_ready();
                    self.pump_waiting();
                }
            }
            InternalMsg::LoadFailed { worker, error } => {
                if let Some(slot) = self.slot_of(worker) {
                    tracing::error!(pool = %self.config.name, slot, worker, "model load failed: {error}");
                    self.retire(slot, Failure::LoadFailed, None, Vec::new(), None);
                    self.start_due().await;
                }
            }
            InternalMsg::Crashed {
                worker,
                jobs,
                reason,
            } => {
                tracing::error!(pool = %self.config.name, worker, "backend panicked: {reason}");
                match self.slot_of(worker) {
                    Some(slot) => {
                        self.retire(slot, Failure::Panic, None, jobs, Some(reason));
                        self.start_due().await;
                    }
                    // Already retired: the watchdog found the batch over
                    // budget just before it panicked, and took back an empty
                    // batch. These are that batch's jobs.
                    None => {
                        self.stats.panics += 1;
                        self.retry_or_fail(jobs, Some(&reason), Instant::now());
                        self.pump_waiting();
                    }
                }
            }
            InternalMsg::Pong { worker, seq } => {
                if let Some(slot) = self.slot_of(worker) {
                    if let Slot::Live(w) = &mut self.slots[slot] {
                        if w.ping_outstanding.is_some_and(|(s, _)| s == seq) {
                            w.ping_outstanding = None;
                            w.last_pong = Instant::now();
                        }
                    }
                }
            }
            InternalMsg::Freeze { slot } => {
                if let Some(Slot::Live(w)) = self.slots.get(slot) {
                    let _ = w.actor.send_message(WorkerMsg::Freeze);
                }
            }
        }
    }

    /// The watchdog: waiting deadlines, stuck batches, unanswered pings, hung
    /// loads, due restarts, pings, drain progress, gauges.
    async fn tick(&mut self) {
        let now = Instant::now();
        self.expire_waiting(now);

        let mut failed: Vec<(usize, Failure, Instant)> = Vec::new();
        for (slot, s) in self.slots.iter().enumerate() {
            let Slot::Live(w) = s else { continue };
            if !w.ready {
                if now.duration_since(w.started) > self.config.load_timeout {
                    failed.push((slot, Failure::LoadHung, w.started));
                }
                continue;
            }
            let hb = *w.shared.heartbeat.lock();
            if let Some(since) = hb.busy_since {
                let budget = self.config.stuck_base
                    + self
                        .config
                        .stuck_per_token
                        .saturating_mul(u32::try_from(hb.batch_cost).unwrap_or(u32::MAX));
                if now.saturating_duration_since(since) > budget {
                    failed.push((slot, Failure::Stuck, since + budget));
                    continue;
                }
            }
            if let Some((_, sent)) = w.ping_outstanding {
                if now.saturating_duration_since(sent) > self.config.ping_timeout {
                    failed.push((slot, Failure::Deadlock, sent + self.config.ping_timeout));
                }
            }
        }
        for (slot, failure, due) in failed {
            self.retire(slot, failure, Some(due), Vec::new(), None);
        }

        self.start_due().await;

        if now.duration_since(self.last_ping_round) >= self.config.ping_interval {
            self.last_ping_round = now;
            for s in &mut self.slots {
                if let Slot::Live(w) = s {
                    if w.ping_outstanding.is_none() {
                        w.ping_seq += 1;
                        w.ping_outstanding = Some((w.ping_seq, now));
                        let _ = w.actor.send_message(WorkerMsg::Ping(w.ping_seq));
                    }
                }
            }
        }

        self.pump_waiting();
        self.publish_gauges();
        self.advance_drain(now);
    }

    /// Starts workers whose restart is due; re-enables disabled slots once
    /// abandoned threads have exited below the cap.
    async fn start_due(&mut self) {
        let now = Instant::now();
        let under_cap =
            self.shared.abandoned.load(Ordering::Acquire) < self.config.max_abandoned_threads;
        for slot in 0..self.slots.len() {
            match self.slots[slot] {
                Slot::Restarting { due } if due <= now && self.drain.is_none() => {
                    if under_cap {
                        self.start_worker(slot).await;
                    } else {
                        self.slots[slot] = Slot::Disabled;
                    }
                }
                Slot::Disabled if under_cap && self.drain.is_none() && !self.stopped => {
                    self.schedule_restart(slot);
                }
                _ => {}
            }
        }
    }

    fn publish_gauges(&mut self) {
        let mut processed = 0;
        for (slot, s) in self.slots.iter().enumerate() {
            let depth = match s {
                Slot::Live(w) => {
                    processed += w.shared.processed.load(Ordering::Relaxed);
                    w.shared.depth()
                }
                _ => 0,
            };
            self.metrics.depth[slot].set(depth as f64);
        }
        processed += self.retired_counts.iter().map(|c| c.0).sum::<u64>();
        self.metrics
            .processed
            .increment(processed.saturating_sub(self.last_processed));
        self.last_processed = processed.max(self.last_processed);
        self.metrics.waiting.set(self.waiting.len() as f64);
        self.metrics
            .abandoned
            .set(self.shared.abandoned.load(Ordering::Relaxed) as f64);
    }

    // ---------------------------------------------------------------- reports

    pub(crate) fn health(&self) -> HealthReport {
        let now = Instant::now();
        let workers: Vec<WorkerHealth> = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, s)| match s {
                Slot::Live(w) => WorkerHealth {
                    slot,
                    worker_id: Some(w.id),
                    state: if w.ready {
                        WorkerState::Ready
                    } else {
                        WorkerState::Loading
                    },
                    queue_depth: w.shared.depth(),
                    running: w.shared.heartbeat.lock().batch_len,
                    last_pong_age: Some(now.saturating_duration_since(w.last_pong)),
                },
                Slot::Restarting { .. } | Slot::Disabled => WorkerHealth {
                    slot,
                    worker_id: None,
                    state: if matches!(s, Slot::Disabled) {
                        WorkerState::Disabled
                    } else {
                        WorkerState::Restarting
                    },
                    queue_depth: 0,
                    running: 0,
                    last_pong_age: None,
                },
            })
            .collect();
        let health = if self.stopped
            || self.drain.is_some()
            || workers.iter().any(|w| w.state == WorkerState::Disabled)
        {
            Health::Unhealthy
        } else if workers.iter().all(|w| w.state == WorkerState::Ready) {
            Health::Healthy
        } else {
            Health::Degraded
        };
        HealthReport {
            health,
            workers,
            waiting: self.waiting.len(),
            draining: self.drain.is_some(),
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = self.stats.clone();
        let mut cancelled = self.retired_cancelled;
        s.workers = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, st)| {
                let (p, b) = self.retired_counts[slot];
                match st {
                    Slot::Live(w) => {
                        cancelled += w.shared.cancelled.load(Ordering::Relaxed);
                        WorkerStats {
                            slot,
                            worker_id: Some(w.id),
                            depth: w.shared.depth(),
                            in_flight: w.shared.heartbeat.lock().batch_len,
                            processed: p + w.shared.processed.load(Ordering::Relaxed),
                            batches: b + w.shared.batches.load(Ordering::Relaxed),
                        }
                    }
                    _ => WorkerStats {
                        slot,
                        worker_id: None,
                        depth: 0,
                        in_flight: 0,
                        processed: p,
                        batches: b,
                    },
                }
            })
            .collect();
        s.cancelled += cancelled;
        s.waiting = self.waiting.len();
        s.wait_p50 = self.wait_hist.quantile(0.5);
        s.wait_p99 = self.wait_hist.quantile(0.99);
        s.detection_p50 = self.detect_hist.quantile(0.5);
        s.detection_p99 = self.detect_hist.quantile(0.99);
        s.abandoned_threads = self.shared.abandoned.load(Ordering::Acquire);
        s
    }

    // --------------------------------------------------------------- shutdown

    pub(crate) fn begin_shutdown(
        &mut self,
        deadline: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        if let Some(d) = &mut self.drain {
            // Already draining: the earlier caller gets the report; this one
            // is told at once that shutdown is under way.
            let _ = reply.send(d.report);
            return;
        }
        let mut report = ShutdownReport::default();
        for w in self.waiting.drain(..) {
            report.refused_waiting += 1;
            w.job.answer(Err(PoolError::ShuttingDown));
        }
        self.shared.waiting.store(0, Ordering::Release);
        tracing::info!(pool = %self.config.name, ?deadline, "draining");
        self.drain = Some(Drain {
            deadline: Instant::now() + deadline,
            reply: Some(reply),
            report,
        });
        self.advance_drain(Instant::now());
    }

    fn advance_drain(&mut self, now: Instant) {
        let Some(drain) = &self.drain else { return };
        let idle = self.slots.iter().all(|s| match s {
            Slot::Live(w) => w.shared.depth() == 0,
            _ => true,
        });
        if !idle && now < drain.deadline {
            return;
        }
        let aborted = self.abort_everything();
        if let Some(mut d) = self.drain.take() {
            d.report.aborted = aborted;
            d.report.drained = idle;
            if let Some(r) = d.reply.take() {
                let _ = r.send(d.report);
            }
            self.drain = Some(d);
        }
        self.stopped = true;
    }

    /// Stops every worker and answers everything still held `ShuttingDown`.
    /// Returns how many admitted requests were aborted.
    pub(crate) fn abort_everything(&mut self) -> usize {
        let mut aborted = 0;
        for s in &mut self.slots {
            if let Slot::Live(w) = std::mem::replace(s, Slot::Disabled) {
                w.shared.retired.store(true, Ordering::Release);
                let mut jobs = w.shared.close();
                jobs.extend(w.shared.take_running());
                if w.shared.is_busy()
                    && w.thread_state
                        .compare_exchange(ALIVE, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.shared.abandoned.fetch_add(1, Ordering::AcqRel);
                }
                w.actor.kill();
                for j in jobs {
                    aborted += 1;
                    j.answer(Err(PoolError::ShuttingDown));
                }
            }
        }
        for w in self.waiting.drain(..) {
            w.job.answer(Err(PoolError::ShuttingDown));
        }
        self.shared.waiting.store(0, Ordering::Release);
        self.publish_ready();
        aborted
    }
}
