//! The supervisor's state: the worker slots and the policies that decide
//! about them, wired together. Each decision lives in its own module —
//! [`super::watchdog`] (is a worker stuck?), [`super::restart`] (when does
//! its replacement start?), [`super::waiting`] (who is served next?),
//! [`super::drain`] (is shutdown over?), the router (which worker?) — and
//! this file only applies them: admission ("why was this request refused?"
//! is [`SupervisorState::submit`]), retirement, re-routing, reports.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{ActorId, ActorRef, RpcReplyPort};

use super::drain::Drain;
use super::restart::RestartPolicy;
use super::waiting::{Expiry, Waiter, Waiting, WaitingLine};
use super::watchdog::{self, Limits};
use crate::backend::{Backend, LoadContext};
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::job::{Class, Job, Reply};
use crate::msg::{Admission, Admitted, InternalMsg, PoolMsg, ShutdownReport};
use crate::router::{Router, WorkerLoad};
use crate::shared::PoolShared;
use crate::stats::recorder::{Failure, Recorder};
use crate::stats::{Health, HealthReport, PoolStats, WorkerHealth, WorkerState, WorkerStats};
use crate::time;
use crate::worker::{Events, Worker, WorkerSpawn};

/// What the supervisor starts from.
pub(crate) struct SupervisorArgs<B: Backend> {
    pub(crate) config: Arc<PoolConfig>,
    pub(crate) spec: Arc<B::Spec>,
    pub(crate) router: Box<dyn Router>,
    pub(crate) shared: Arc<PoolShared>,
}

/// How workers reach the supervisor: each event becomes one internal
/// message. A supervisor that is gone drops them (the pool is gone).
struct SupervisorEvents<B: Backend>(ActorRef<PoolMsg<B>>);

impl<B: Backend> SupervisorEvents<B> {
    fn tell(&self, m: InternalMsg) {
        let _ = self.0.send_message(m.into());
    }
}

impl<B: Backend> Events for SupervisorEvents<B> {
    fn loaded(&self, worker: u64) {
        self.tell(InternalMsg::Loaded { worker });
    }

    fn load_failed(&self, worker: u64, error: String) {
        self.tell(InternalMsg::LoadFailed { worker, error });
    }

    fn crashed(&self, worker: u64, reason: String) {
        self.tell(InternalMsg::Crashed { worker, reason });
    }

    fn pong(&self, worker: u64, seq: u64) {
        self.tell(InternalMsg::Pong { worker, seq });
    }

    fn freed(&self) {
        self.tell(InternalMsg::Freed);
    }
}

enum Slot<B: Backend> {
    Live(Worker<B>),
    /// Empty; a worker is started at `due`.
    Restarting {
        due: Instant,
    },
    /// Empty for good (the abandoned-thread cap is reached, or the pool is
    /// draining).
    Disabled,
}

/// What a slot's past incarnations did.
#[derive(Debug, Default, Clone, Copy)]
struct SlotTotals {
    processed: u64,
    batches: u64,
}

/// The router and its reused scratch space.
struct Routing {
    router: Box<dyn Router>,
    /// The routable workers' loads and their slots, rebuilt per admission.
    loads: Vec<WorkerLoad>,
    routable: Vec<usize>,
}

impl Routing {
    /// Routes `job` to the worker the router picks among the ready workers
    /// with room in the job's class, or hands it back.
    fn admit<B: Backend>(
        &mut self,
        slots: &[Slot<B>],
        recorder: &Recorder,
        job: Job<B>,
    ) -> Result<(), Job<B>> {
        self.loads.clear();
        self.routable.clear();
        for (i, s) in slots.iter().enumerate() {
            if let Slot::Live(w) = s {
                if w.is_ready() {
                    self.loads.push(WorkerLoad {
                        depth: w.depth(),
                        has_room: w.has_room(job.class),
                        service_ns: w.service_ns(),
                    });
                    self.routable.push(i);
                }
            }
        }
        let Some(k) = self.router.pick(&self.loads) else {
            return Err(job);
        };
        // A router that picks a full worker (or out of range) must not break
        // the bound.
        if !self.loads.get(k).is_some_and(|l| l.has_room) {
            return Err(job);
        }
        let Some(Slot::Live(w)) = slots.get(self.routable[k]) else {
            return Err(job);
        };
        w.push(job)?;
        recorder.admitted();
        Ok(())
    }
}

impl<B: Backend> Waiting for Job<B> {
    fn is_gone(&self) -> bool {
        self.is_cancelled()
    }

    fn class(&self) -> Class {
        self.class
    }
}

pub(crate) struct SupervisorState<B: Backend> {
    myself: ActorRef<PoolMsg<B>>,
    config: Arc<PoolConfig>,
    spec: Arc<B::Spec>,
    routing: Routing,
    shared: Arc<PoolShared>,
    recorder: Arc<Recorder>,
    events: Arc<dyn Events>,
    threads: usize,
    slots: Vec<Slot<B>>,
    totals: Vec<SlotTotals>,
    /// Requests answered by workers, as last published to `metrics`.
    processed_published: u64,
    line: WaitingLine<Job<B>>,
    restarts: RestartPolicy,
    limits: Limits,
    last_ping_round: Instant,
    drain: Option<Drain>,
    stopped: bool,
}

impl<B: Backend> SupervisorState<B> {
    pub(crate) fn new(myself: ActorRef<PoolMsg<B>>, args: SupervisorArgs<B>) -> Self {
        let c = &args.config;
        let n = c.workers;
        let now = Instant::now();
        let threads = c.resolved_threads();
        tracing::info!(
            pool = %c.name,
            workers = n,
            threads_per_worker = threads,
            cores = crate::config::available_cores(),
            "starting pool: {n} workers × {threads} compute threads"
        );
        let seed = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
        Self {
            restarts: RestartPolicy::new(
                c.max_restarts,
                c.restart_window,
                c.restart_backoff_base,
                c.restart_backoff_max,
                seed,
            ),
            limits: Limits::of(c),
            line: WaitingLine::new(c.max_waiting),
            recorder: args.shared.recorder.clone(),
            events: Arc::new(SupervisorEvents(myself.clone())),
            myself,
            threads,
            spec: args.spec,
            routing: Routing {
                router: args.router,
                loads: Vec::with_capacity(n),
                routable: Vec::with_capacity(n),
            },
            shared: args.shared,
            slots: (0..n).map(|_| Slot::Restarting { due: now }).collect(),
            totals: vec![SlotTotals::default(); n],
            processed_published: 0,
            last_ping_round: now,
            drain: None,
            stopped: false,
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
        let c = &self.config;
        let spawn = WorkerSpawn {
            id,
            spec: self.spec.clone(),
            load_ctx: LoadContext {
                pool: c.name.clone(),
                worker_id: id,
                threads: self.threads,
            },
            single_capacity: c.queue_capacity,
            batch_capacity: c.batch_queue_capacity,
            max_batch_tokens: c.max_batch_tokens,
            max_batch_requests: c.max_batch_requests,
            events: self.events.clone(),
            waiting: self.line.published(),
            abandoned: self.shared.abandoned.clone(),
            recorder: self.recorder.clone(),
            thread_name: format!("{}-w{id}", c.name),
        };
        match Worker::spawn(spawn, self.myself.get_cell()).await {
            Ok(w) => self.slots[slot] = Slot::Live(w),
            Err(e) => {
                tracing::error!(pool = %self.config.name, slot, "could not start a worker: {e}");
                self.schedule_restart(slot);
            }
        }
    }

    fn slot_of(&self, worker: u64) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| matches!(s, Slot::Live(w) if w.id() == worker))
    }

    fn live_mut(&mut self, worker: u64) -> Option<&mut Worker<B>> {
        self.slots.iter_mut().find_map(|s| match s {
            Slot::Live(w) if w.id() == worker => Some(w),
            _ => None,
        })
    }

    fn publish_ready(&self) {
        let ready = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Live(w) if w.is_ready()))
            .count();
        self.shared.ready.send_replace(ready);
    }

    /// Takes a worker out of service and deals with everything it held:
    /// queued requests are re-routed as they are, the running batch is
    /// retried (or answered), the slot scheduled for a restart. `late` is how
    /// long after the failure became detectable it was acted on.
    fn retire(
        &mut self,
        slot: usize,
        failure: Failure,
        late: Option<Duration>,
        panic: Option<&str>,
    ) {
        let now = Instant::now();
        let Slot::Live(w) = std::mem::replace(&mut self.slots[slot], Slot::Restarting { due: now })
        else {
            return;
        };
        let held = w.seize();
        let was_ready = w.is_ready();
        self.totals[slot].processed += w.processed();
        self.totals[slot].batches += w.batches();
        let id = w.id();
        // The rest of the teardown: kill the actor, abandon a thread still
        // inside the backend.
        drop(w);
        self.recorder.failure(failure, late);
        tracing::warn!(
            pool = %self.config.name,
            slot,
            worker = id,
            failure = failure.label(),
            queued = held.queued.len(),
            running = held.running.len(),
            "retiring worker"
        );
        if was_ready {
            self.publish_ready();
        }
        self.recorder.rerouted(held.queued.len() as u64);
        for job in held.queued {
            self.reroute(job, now);
        }
        self.retry_or_fail(held.running, panic, now);
        self.schedule_restart(slot);
        self.pump();
    }

    /// Jobs that were running on a worker that failed: tried again
    /// elsewhere (where they run alone) until `max_retries` is spent, then
    /// answered `WorkerLost` — or the panic's `Backend` error when the
    /// backend panicked. Jobs already answered at their deadline just leave.
    fn retry_or_fail(&mut self, jobs: Vec<Job<B>>, panic: Option<&str>, now: Instant) {
        for mut job in jobs {
            if job.is_answered() {
                continue;
            }
            job.failed_attempts += 1;
            if job.failed_attempts <= self.config.max_retries {
                self.recorder.retried();
                self.reroute(job, now);
            } else if let Some(reason) = panic {
                job.answer(Err(PoolError::Backend(format!(
                    "backend panicked: {reason}"
                ))));
            } else {
                self.recorder.worker_lost();
                job.answer(Err(PoolError::WorkerLost));
            }
        }
    }

    fn schedule_restart(&mut self, slot: usize) {
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
        let restart = self.restarts.next(Instant::now());
        if restart.backing_off {
            tracing::warn!(pool = %self.config.name, slot, "restart intensity exceeded: backing off");
        }
        self.recorder.restarted();
        self.slots[slot] = Slot::Restarting { due: restart.due };
    }

    /// Starts workers whose restart is due; re-enables disabled slots once
    /// abandoned threads have exited below the cap.
    async fn start_due(&mut self) {
        if self.drain.is_some() || self.stopped {
            return;
        }
        let now = Instant::now();
        let under_cap =
            self.shared.abandoned.load(Ordering::Acquire) < self.config.max_abandoned_threads;
        for slot in 0..self.slots.len() {
            match self.slots[slot] {
                Slot::Restarting { due } if due <= now => {
                    if under_cap {
                        self.start_worker(slot).await;
                    } else {
                        self.slots[slot] = Slot::Disabled;
                    }
                }
                Slot::Disabled if under_cap => self.schedule_restart(slot),
                _ => {}
            }
        }
    }

    pub(crate) async fn worker_actor_gone(&mut self, actor: ActorId, reason: String) {
        let slot = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Live(w) if w.actor_id() == actor));
        if let Some(slot) = slot {
            tracing::warn!(pool = %self.config.name, slot, "worker actor stopped: {reason}");
            self.retire(slot, Failure::ActorDied, None, None);
            self.start_due().await;
        }
    }

    // -------------------------------------------------------------- admission

    /// Admits a request to the least-loaded worker with room, or puts it in
    /// the waiting line, or refuses it — the caller's choice, per request.
    pub(crate) fn submit(
        &mut self,
        request: Admitted<B::Input>,
        reply: RpcReplyPort<Reply<B::Input, B::Output>>,
    ) {
        let Admitted { submit, permit } = request;
        let now = Instant::now();
        let deadline = submit.deadline.map(|d| time::after(now, d));
        let job = Job::new(submit.inputs, reply, deadline, permit);
        if self.drain.is_some() || self.stopped {
            self.recorder.shutting_down(1);
            return job.refuse(PoolError::ShuttingDown);
        }
        if job.expired(now) {
            self.recorder.deadline_exceeded(1);
            return job.refuse(PoolError::Timeout);
        }
        // Callers already waiting go first.
        if !self.line.is_empty() {
            self.pump();
        }
        let job = if self.line.is_empty() {
            match self.try_admit(job) {
                Ok(()) => return,
                Err(job) => job,
            }
        } else {
            job
        };
        let wait = match submit.admission {
            Admission::Reject => {
                self.recorder.overloaded();
                let retry_after = self.retry_after();
                return job.refuse(PoolError::Overloaded { retry_after });
            }
            Admission::Wait(wait) if wait.is_zero() => {
                self.recorder.timed_out();
                return job.refuse(PoolError::Timeout);
            }
            Admission::Wait(wait) => wait,
        };
        let (until, expiry) = match deadline {
            Some(d) if d < time::after(now, wait) => (d, Expiry::Deadline),
            _ => (time::after(now, wait), Expiry::Timeout),
        };
        let waiter = Waiter {
            item: job,
            since: now,
            deadline: until,
            expiry,
        };
        let (pushed, gone) = self.line.push_back(waiter);
        self.recorder.cancelled(gone as u64);
        if let Err(w) = pushed {
            self.recorder.overloaded();
            let retry_after = self.retry_after();
            w.item.refuse(PoolError::Overloaded { retry_after });
        }
    }

    fn try_admit(&mut self, job: Job<B>) -> Result<(), Job<B>> {
        self.routing.admit(&self.slots, &self.recorder, job)
    }

    /// Puts a job taken back from a failed worker on another worker, or at
    /// the head of the waiting line for up to `reroute_wait`.
    fn reroute(&mut self, job: Job<B>, now: Instant) {
        if job.is_cancelled() {
            self.recorder.cancelled(1);
            return;
        }
        if let Err(job) = self.try_admit(job) {
            let reroute_until = time::after(now, self.config.reroute_wait);
            let (deadline, expiry) = match job.deadline {
                Some(d) if d < reroute_until => (d, Expiry::Deadline),
                _ => (reroute_until, Expiry::WorkerLost),
            };
            self.line.push_front(Waiter {
                item: job,
                since: now,
                deadline,
                expiry,
            });
        }
    }

    /// Admits waiting callers, in order, while there is room.
    fn pump(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let (routing, slots, recorder) = (&mut self.routing, &self.slots, &self.recorder);
        let pumped = self
            .line
            .pump(Instant::now(), |job| routing.admit(slots, recorder, job));
        self.recorder.cancelled(pumped.gone as u64);
        for w in pumped.waits {
            self.recorder.waited(w);
        }
    }

    /// Answers the waiters whose deadline passed.
    fn expire_waiting(&mut self, now: Instant) {
        for w in self.line.expire(now) {
            let mut job = w.item;
            if job.is_cancelled() {
                self.recorder.cancelled(1);
                continue;
            }
            match w.expiry {
                Expiry::Timeout => {
                    self.recorder.timed_out();
                    job.refuse(PoolError::Timeout);
                }
                Expiry::Deadline => {
                    self.recorder.deadline_exceeded(1);
                    job.refuse(PoolError::Timeout);
                }
                Expiry::WorkerLost => {
                    self.recorder.worker_lost();
                    job.answer(Err(PoolError::WorkerLost));
                }
            }
        }
    }

    /// The pool's estimate of when a slot frees: the soonest any ready
    /// worker finishes a request, from its measured service time.
    fn retry_after(&self) -> Duration {
        let soonest = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(w) if w.is_ready() => Some(w.service_ns()),
                _ => None,
            })
            .filter(|&ns| ns > 0)
            .min();
        match soonest {
            Some(ns) => {
                Duration::from_nanos(ns).clamp(Duration::from_millis(1), Duration::from_secs(5))
            }
            None => Duration::from_millis(100),
        }
    }

    // ---------------------------------------------------------- internal msgs

    pub(crate) async fn internal(&mut self, msg: InternalMsg) {
        match msg {
            InternalMsg::Tick => self.tick().await,
            InternalMsg::Freed => self.pump(),
            InternalMsg::Loaded { worker } => {
                if let Some(w) = self.live_mut(worker) {
                    w.set_ready();
                    tracing::info!(pool = %self.config.name, worker, "worker ready");
                    self.publish_ready();
                    self.pump();
                }
            }
            InternalMsg::LoadFailed { worker, error } => {
                if let Some(slot) = self.slot_of(worker) {
                    tracing::error!(pool = %self.config.name, slot, worker, "model load failed: {error}");
                    self.retire(slot, Failure::LoadFailed, None, None);
                    self.start_due().await;
                }
            }
            InternalMsg::Crashed { worker, reason } => {
                tracing::error!(pool = %self.config.name, worker, "backend panicked: {reason}");
                match self.slot_of(worker) {
                    Some(slot) => {
                        self.retire(slot, Failure::Panic, None, Some(&reason));
                        self.start_due().await;
                    }
                    // Already retired: the watchdog found the batch over its
                    // budget just before it panicked and took it back.
                    None => self.recorder.failure(Failure::Panic, None),
                }
            }
            InternalMsg::Pong { worker, seq } => {
                if let Some(w) = self.live_mut(worker) {
                    w.pong(seq, Instant::now());
                }
            }
            #[cfg(feature = "testing")]
            InternalMsg::Freeze { slot } => {
                if let Some(Slot::Live(w)) = self.slots.get(slot) {
                    w.freeze();
                }
            }
            #[cfg(feature = "testing")]
            InternalMsg::Panic => panic!("injected supervisor panic (testing hook)"),
        }
    }

    /// The watchdog: waiting deadlines, request deadlines, stuck batches,
    /// unanswered pings, hung loads, due restarts, pings, drain progress,
    /// gauges.
    async fn tick(&mut self) {
        let now = Instant::now();
        self.expire_waiting(now);
        let gone = self.line.sweep_gone();
        self.recorder.cancelled(gone as u64);

        let mut failed = Vec::new();
        for (slot, s) in self.slots.iter().enumerate() {
            let Slot::Live(w) = s else { continue };
            let expired = w.expire(now);
            self.recorder
                .deadline_exceeded((expired.queued + expired.running) as u64);
            if let Some(d) = watchdog::inspect(&w.probe(), now, &self.limits) {
                failed.push((slot, d));
            }
        }
        for (slot, d) in failed {
            let late = now.saturating_duration_since(d.since);
            self.retire(slot, d.failure, Some(late), None);
        }

        self.start_due().await;

        if now.saturating_duration_since(self.last_ping_round) >= self.config.ping_interval {
            self.last_ping_round = now;
            for s in &mut self.slots {
                if let Slot::Live(w) = s {
                    w.ping(now);
                }
            }
        }

        self.pump();
        self.publish_levels();
        self.advance_drain(now);
    }

    /// Publishes the levels (depths, line, abandoned threads), the requests
    /// processed since the last tick — read from the workers' own counters,
    /// so the compute threads never touch a shared cache line per batch —
    /// and the door's `retry_after`.
    fn publish_levels(&mut self) {
        let depths: Vec<usize> = self
            .slots
            .iter()
            .map(|s| match s {
                Slot::Live(w) => w.depth(),
                _ => 0,
            })
            .collect();
        let processed: u64 = self
            .slots
            .iter()
            .zip(&self.totals)
            .map(|(s, t)| {
                t.processed
                    + match s {
                        Slot::Live(w) => w.processed(),
                        _ => 0,
                    }
            })
            .sum();
        self.recorder
            .processed(processed.saturating_sub(self.processed_published));
        self.processed_published = self.processed_published.max(processed);
        let abandoned = self.shared.abandoned.load(Ordering::Relaxed);
        self.recorder.levels(&depths, self.line.len(), abandoned);
        self.shared.door.set_retry_after(self.retry_after());
        self.shared
            .per_request_ns
            .store(self.per_request_ns(), Ordering::Relaxed);
    }

    /// The pool's time between completions when every ready worker is busy:
    /// `1 / Σ 1/service_time` over the ready workers that have a measured
    /// service time (ns; 0 when none has).
    fn per_request_ns(&self) -> u64 {
        let rate: f64 = self
            .slots
            .iter()
            .filter_map(|s| match s {
                Slot::Live(w) if w.is_ready() && w.service_ns() > 0 => {
                    Some(1.0 / w.service_ns() as f64)
                }
                _ => None,
            })
            .sum();
        if rate > 0.0 {
            (1.0 / rate) as u64
        } else {
            0
        }
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
                    worker_id: Some(w.id()),
                    state: if w.is_ready() {
                        WorkerState::Ready
                    } else {
                        WorkerState::Loading
                    },
                    queue_depth: w.depth(),
                    running: w.running_inputs(),
                    last_pong_age: Some(now.saturating_duration_since(w.last_pong())),
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
        let retry_after = self.retry_after();
        self.shared.door.set_retry_after(retry_after);
        HealthReport {
            health,
            workers,
            waiting: self.line.len(),
            draining: self.drain.is_some(),
            retry_after,
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut s = PoolStats::default();
        self.recorder.fill(&mut s);
        s.workers = self
            .slots
            .iter()
            .enumerate()
            .map(|(slot, st)| {
                let past = self.totals[slot];
                match st {
                    Slot::Live(w) => WorkerStats {
                        slot,
                        worker_id: Some(w.id()),
                        depth: w.depth(),
                        in_flight: w.running_inputs(),
                        processed: past.processed + w.processed(),
                        batches: past.batches + w.batches(),
                    },
                    _ => WorkerStats {
                        slot,
                        worker_id: None,
                        depth: 0,
                        in_flight: 0,
                        processed: past.processed,
                        batches: past.batches,
                    },
                }
            })
            .collect();
        s.waiting = self.line.len();
        s.abandoned_threads = self.shared.abandoned.load(Ordering::Acquire);
        s
    }

    // --------------------------------------------------------------- shutdown

    pub(crate) fn begin_shutdown(
        &mut self,
        deadline: Duration,
        reply: RpcReplyPort<ShutdownReport>,
    ) {
        if let Some(d) = &self.drain {
            // Already draining: the earlier caller gets the final report;
            // this one is told at once that shutdown is under way.
            let _ = reply.send(d.report());
            return;
        }
        let refused = self.refuse_waiting();
        tracing::info!(pool = %self.config.name, ?deadline, "draining");
        self.shared.draining.store(true, Ordering::Relaxed);
        self.drain = Some(Drain::new(Instant::now(), deadline, refused, reply));
        self.advance_drain(Instant::now());
    }

    /// Answers everyone in the waiting line `ShuttingDown`; returns how many.
    fn refuse_waiting(&mut self) -> usize {
        let waiting = self.line.drain();
        let n = waiting.len();
        self.recorder.shutting_down(n as u64);
        for w in waiting {
            w.item.refuse(PoolError::ShuttingDown);
        }
        n
    }

    fn advance_drain(&mut self, now: Instant) {
        let idle = self.line.is_empty()
            && self.slots.iter().all(|s| match s {
                Slot::Live(w) => w.depth() == 0,
                _ => true,
            });
        match &self.drain {
            Some(d) if d.is_over(idle, now) => {}
            _ => return,
        }
        let aborted = self.abort_everything();
        if let Some(d) = &mut self.drain {
            d.finish(idle, aborted);
        }
        self.stopped = true;
    }

    /// Stops every worker and answers everything still held `ShuttingDown`.
    /// Returns how many admitted requests were aborted.
    pub(crate) fn abort_everything(&mut self) -> usize {
        let mut aborted = 0;
        for s in &mut self.slots {
            if let Slot::Live(w) = std::mem::replace(s, Slot::Disabled) {
                let held = w.seize();
                drop(w);
                for job in held.queued {
                    aborted += 1;
                    job.refuse(PoolError::ShuttingDown);
                }
                for mut job in held.running {
                    if !job.is_answered() {
                        aborted += 1;
                        job.answer(Err(PoolError::ShuttingDown));
                    }
                }
            }
        }
        self.recorder.shutting_down(aborted as u64);
        self.refuse_waiting();
        self.publish_ready();
        aborted
    }
}
