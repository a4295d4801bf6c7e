//! The supervisor's state: the worker slots and the policies that decide
//! about them, wired together. Each decision lives in its own module —
//! [`super::admission`] (admit, wait or refuse?), [`super::watchdog`] (is a
//! worker stuck?), [`super::restart`] (when does its replacement start?),
//! [`super::waiting`] (who is served next?), [`super::drain`] (is shutdown
//! over?), the router (which worker?) — and each thing the state owns is a
//! type of its own: [`Slots`] (the workers and their lifecycle),
//! [`WaitingLine`], [`Snapshot`] (every figure the pool reports, from one
//! pass over the slots).
//!
//! `SupervisorState`'s methods are in two files: this one holds the worker
//! lifecycle (start, retire, restart), the internal messages and the tick,
//! the reports and shutdown; `state/admission.rs` holds the request path —
//! `submit` (a request arrives), the waiting line's pump and expiry, and the
//! re-routing of what a retired worker held.

mod admission;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{ActorId, ActorRef, RpcReplyPort};

use self::admission::Routing;
use super::drain::Drain;
use super::restart::RestartPolicy;
use super::slots::{Slot, Slots};
use super::snapshot::Snapshot;
use super::waiting::WaitingLine;
use super::watchdog::{self, Limits};
use crate::backend::{Backend, LoadContext};
use crate::config::PoolConfig;
use crate::error::{Failure as Failed, Refusal as Refuse};
use crate::job::Job;
use crate::msg::{InternalMsg, PoolMsg, ShutdownReport};
use crate::router::Router;
use crate::shared::PoolShared;
use crate::stats::recorder::{Failure, Recorder};
use crate::stats::{HealthReport, PoolStats};
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

pub(crate) struct SupervisorState<B: Backend> {
    myself: ActorRef<PoolMsg<B>>,
    config: Arc<PoolConfig>,
    spec: Arc<B::Spec>,
    routing: Routing,
    shared: Arc<PoolShared>,
    recorder: Arc<Recorder>,
    events: Arc<dyn Events>,
    threads: usize,
    slots: Slots<B>,
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
            routing: Routing::new(args.router, n),
            shared: args.shared,
            slots: Slots::new(n, now),
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
            Ok(w) => self.slots.install(slot, w),
            Err(e) => {
                tracing::error!(pool = %self.config.name, slot, "could not start a worker: {e}");
                self.schedule_restart(slot);
            }
        }
    }

    fn publish_ready(&self) {
        self.shared.ready.send_replace(self.slots.ready());
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
        let Some(w) = self.slots.vacate(slot, now) else {
            return;
        };
        let held = w.seize();
        let was_ready = w.is_ready();
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
        // The running batch was taken before anything still queued: its
        // retries keep their place ahead.
        let retries = self.retry_or_fail(held.running, panic);
        self.reroute(retries.into_iter().chain(held.queued), now);
        self.schedule_restart(slot);
        self.pump();
    }

    /// Jobs that were running on a worker that failed: returned, to be
    /// tried again elsewhere (where they run alone), until `max_retries` is
    /// spent, then answered `WorkerLost` — or the panic's `Backend` error
    /// when the backend panicked. Jobs already answered at their deadline
    /// just leave.
    fn retry_or_fail(&mut self, jobs: Vec<Job<B>>, panic: Option<&str>) -> Vec<Job<B>> {
        let mut retries = Vec::new();
        for mut job in jobs {
            if job.is_answered() {
                continue;
            }
            job.failed_attempts += 1;
            if job.failed_attempts <= self.config.max_retries {
                self.recorder.retried();
                retries.push(job);
            } else if let Some(reason) = panic {
                job.answer(Err(Failed::Backend(format!("backend panicked: {reason}"))));
            } else {
                self.recorder.worker_lost();
                job.answer(Err(Failed::WorkerLost));
            }
        }
        retries
    }

    fn schedule_restart(&mut self, slot: usize) {
        if self.drain.is_some() || self.stopped {
            self.slots.set_empty(slot, None);
            return;
        }
        if self.shared.abandoned.load(Ordering::Acquire) >= self.config.max_abandoned_threads {
            tracing::error!(
                pool = %self.config.name,
                slot,
                cap = self.config.max_abandoned_threads,
                "abandoned-thread cap reached: not replacing the worker"
            );
            self.slots.set_empty(slot, None);
            return;
        }
        let restart = self.restarts.next(Instant::now());
        if restart.backing_off {
            tracing::warn!(pool = %self.config.name, slot, "restart intensity exceeded: backing off");
        }
        self.recorder.restarted();
        self.slots.set_empty(slot, Some(restart.due));
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
            match self.slots.get(slot) {
                Some(&Slot::Restarting { due }) if due <= now => {
                    if under_cap {
                        self.start_worker(slot).await;
                    } else {
                        self.slots.set_empty(slot, None);
                    }
                }
                Some(Slot::Disabled) if under_cap => self.schedule_restart(slot),
                _ => {}
            }
        }
    }

    pub(crate) async fn worker_actor_gone(&mut self, actor: ActorId, reason: String) {
        if let Some(slot) = self.slots.slot_of_actor(actor) {
            tracing::warn!(pool = %self.config.name, slot, "worker actor stopped: {reason}");
            self.retire(slot, Failure::ActorDied, None, None);
            self.start_due().await;
        }
    }

    // ---------------------------------------------------------- internal msgs

    pub(crate) async fn internal(&mut self, msg: InternalMsg) {
        match msg {
            InternalMsg::Tick => self.tick().await,
            InternalMsg::Freed => self.pump(),
            InternalMsg::Loaded { worker } => {
                if let Some(w) = self.slots.worker_mut(worker) {
                    w.set_ready();
                    tracing::info!(pool = %self.config.name, worker, "worker ready");
                    self.publish_ready();
                    self.pump();
                }
            }
            InternalMsg::LoadFailed { worker, error } => {
                if let Some(slot) = self.slots.slot_of(worker) {
                    tracing::error!(pool = %self.config.name, slot, worker, "model load failed: {error}");
                    self.retire(slot, Failure::LoadFailed, None, None);
                    self.start_due().await;
                }
            }
            InternalMsg::Crashed { worker, reason } => {
                tracing::error!(pool = %self.config.name, worker, "backend panicked: {reason}");
                match self.slots.slot_of(worker) {
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
                if let Some(w) = self.slots.worker_mut(worker) {
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
            #[cfg(feature = "testing")]
            InternalMsg::Stall(release) => {
                let _ = release.await;
            }
        }
    }

    /// The watchdog: waiting deadlines, request deadlines, stuck batches,
    /// unanswered pings, hung loads, due restarts, pings, drain progress,
    /// gauges.
    async fn tick(&mut self) {
        let now = Instant::now();
        // Room freed since the last pump goes to the line in order, before
        // anyone in it is timed out.
        self.pump();
        self.expire_waiting(now);
        let gone = self.line.sweep_gone();
        self.recorder.cancelled(gone as u64);

        let mut failed = Vec::new();
        for (slot, w) in self.slots.live() {
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
            for w in self.slots.live_mut() {
                w.ping(now);
            }
        }

        self.pump();
        self.publish_levels(now);
        self.advance_drain(now);
    }

    // ---------------------------------------------------------------- reports

    /// The pool's figures now; see [`Snapshot`].
    fn snapshot(&self, now: Instant) -> Snapshot {
        self.slots.snapshot(
            now,
            self.line.len(),
            self.shared.abandoned.load(Ordering::Acquire),
            (self.drain.is_some(), self.stopped),
        )
    }

    /// The `retry_after` a refusal carries now ([`Snapshot::retry_after`]).
    pub(super) fn retry_after(&self) -> Duration {
        self.snapshot(Instant::now()).retry_after()
    }

    /// Publishes, at each tick, from one snapshot: the levels (depths, line,
    /// abandoned threads) and the requests processed since the last tick to
    /// `metrics` — read from the workers' own counters, so the compute
    /// threads never touch a shared cache line per batch — and the
    /// `retry_after` and time per request that the door and
    /// `PoolRef::load` report between ticks.
    fn publish_levels(&mut self, now: Instant) {
        let snapshot = self.snapshot(now);
        let processed = snapshot.processed();
        self.recorder
            .processed(processed.saturating_sub(self.processed_published));
        self.processed_published = self.processed_published.max(processed);
        self.recorder
            .levels(&snapshot.depths(), snapshot.waiting, snapshot.abandoned);
        self.shared.door.set_retry_after(snapshot.retry_after());
        self.shared
            .per_request_ns
            .store(snapshot.per_request_ns(), Ordering::Relaxed);
    }

    pub(crate) fn health(&self) -> HealthReport {
        let report = self.snapshot(Instant::now()).health();
        self.shared.door.set_retry_after(report.retry_after);
        report
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let mut stats = PoolStats::default();
        self.recorder.fill(&mut stats);
        self.snapshot(Instant::now()).fill_stats(&mut stats);
        stats
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
        // A waiter the router was keeping from a worker with room (one not
        // measured yet) is admitted there and drained; the rest, for whom
        // no worker has room, are refused.
        let mut refused = 0;
        for w in self.line.drain() {
            if w.item.is_cancelled() {
                self.recorder.cancelled(1);
                continue;
            }
            if let Err(job) = self.try_admit(w.item, false) {
                self.recorder.shutting_down(1);
                job.refuse(Refuse::ShuttingDown);
                refused += 1;
            }
        }
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
            w.item.refuse(Refuse::ShuttingDown);
        }
        n
    }

    fn advance_drain(&mut self, now: Instant) {
        let idle = self.line.is_empty() && self.slots.idle();
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
        let now = Instant::now();
        for slot in 0..self.slots.len() {
            let worker = self.slots.vacate(slot, now);
            self.slots.set_empty(slot, None);
            if let Some(w) = worker {
                let held = w.seize();
                drop(w);
                for job in held.queued {
                    aborted += 1;
                    job.refuse(Refuse::ShuttingDown);
                }
                for mut job in held.running {
                    if !job.is_answered() {
                        aborted += 1;
                        job.answer(Err(Failed::ShuttingDown));
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
