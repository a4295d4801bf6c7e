//! A worker: a ractor actor (the control plane) plus its compute thread (the
//! data plane), sharing a [`WorkerShared`] mailbox.
//!
//! The supervisor sees a worker only through [`Worker`], its handle on one
//! incarnation: spawn it, push requests, read its depth, ping it, probe its
//! heartbeat, take back what it holds. The worker sees the supervisor only
//! through [`Events`]. Neither builds the other's types.
//!
//! The actor answers pings — a worker actor that stops answering is deemed
//! deadlocked — and owns nothing else. Requests do not pass through its
//! unbounded ractor mailbox: the supervisor puts them in the worker's bounded
//! mailbox directly (see the `mailbox` module).
//!
//! Teardown is written once, in `Drop for Worker`: close the mailbox, kill
//! the actor, abandon a compute thread still inside the backend, and answer
//! whatever is still held `WorkerLost`. Every path out of the supervisor —
//! retirement, shutdown, the supervisor itself panicking — goes through it,
//! so no path leaves requests unanswered or compute threads parked.

pub(crate) mod compute;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef};

use crate::backend::{Backend, LoadContext};
use crate::job::{Class, Job};
use crate::mailbox::{Expired, Held, WorkerShared};
use crate::stats::recorder::Recorder;

use compute::{Compute, ThreadState};

/// What a worker tells its supervisor. Implemented by the supervisor; the
/// worker never builds the supervisor's messages itself.
pub(crate) trait Events: Send + Sync + 'static {
    /// The compute thread loaded its model.
    fn loaded(&self, worker: u64);
    /// The model failed to load (an error or a panic).
    fn load_failed(&self, worker: u64, error: String);
    /// The backend panicked; the batch is still in the running set.
    fn crashed(&self, worker: u64, reason: String);
    /// The actor answered ping `seq`.
    fn pong(&self, worker: u64, seq: u64);
    /// Slots freed while callers were waiting for room.
    fn freed(&self);
}

/// Everything a worker needs to start.
pub(crate) struct WorkerSpawn<B: Backend> {
    pub(crate) id: u64,
    pub(crate) spec: Arc<B::Spec>,
    pub(crate) load_ctx: LoadContext,
    pub(crate) single_capacity: usize,
    pub(crate) batch_capacity: usize,
    pub(crate) max_batch_tokens: usize,
    pub(crate) max_batch_requests: usize,
    pub(crate) events: Arc<dyn Events>,
    /// Callers in the supervisor's waiting line; freed slots are announced
    /// only when it is non-zero.
    pub(crate) waiting: Arc<AtomicUsize>,
    /// The pool's count of abandoned compute threads still alive.
    pub(crate) abandoned: Arc<AtomicUsize>,
    pub(crate) recorder: Arc<Recorder>,
    pub(crate) thread_name: String,
}

/// What the watchdog reads of a worker, at one instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe {
    pub(crate) ready: bool,
    pub(crate) started: Instant,
    /// The running batch, if any.
    pub(crate) busy: Option<Busy>,
    /// When the outstanding ping was sent.
    pub(crate) ping_sent: Option<Instant>,
}

/// A batch in progress, as the watchdog sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Busy {
    pub(crate) since: Instant,
    /// The batch's cost (tokens).
    pub(crate) cost: usize,
}

/// A ping in flight.
#[derive(Debug, Clone, Copy)]
struct Ping {
    seq: u64,
    sent: Instant,
}

/// The supervisor's handle on one worker incarnation. Dropping it retires
/// the worker (see the module docs).
pub(crate) struct Worker<B: Backend> {
    id: u64,
    actor: ActorRef<WorkerMsg>,
    shared: Arc<WorkerShared<B>>,
    thread: Arc<ThreadState>,
    ready: bool,
    started: Instant,
    last_pong: Instant,
    ping_seq: u64,
    ping_outstanding: Option<Ping>,
}

impl<B: Backend> Worker<B> {
    /// Starts the worker actor (linked to `supervisor`) and its compute
    /// thread, which loads the model.
    ///
    /// # Errors
    /// ractor's or the OS's refusal, as a message.
    pub(crate) async fn spawn(w: WorkerSpawn<B>, supervisor: ActorCell) -> Result<Self, String> {
        let shared = WorkerShared::new(w.id, w.single_capacity, w.batch_capacity);
        let thread = Arc::new(ThreadState::new(w.abandoned));
        let compute = Compute {
            shared: shared.clone(),
            events: w.events.clone(),
            spec: w.spec,
            load_ctx: w.load_ctx,
            max_batch_tokens: w.max_batch_tokens,
            max_batch_requests: w.max_batch_requests,
            waiting: w.waiting,
            thread: thread.clone(),
            recorder: w.recorder,
        };
        let args = WorkerArgs {
            id: w.id,
            events: w.events,
        };
        let (actor, _) = Actor::spawn_linked(None, WorkerActor, args, supervisor)
            .await
            .map_err(|e| format!("could not spawn the worker actor: {e}"))?;
        // Never joined: a thread stuck in the backend is abandoned, not
        // awaited (see the supervisor).
        let spawned = std::thread::Builder::new()
            .name(w.thread_name)
            .spawn(move || compute.run());
        if let Err(e) = spawned {
            actor.kill();
            return Err(format!("could not start the compute thread: {e}"));
        }
        let now = Instant::now();
        Ok(Self {
            id: w.id,
            actor,
            shared,
            thread,
            ready: false,
            started: now,
            last_pong: now,
            ping_seq: 0,
            ping_outstanding: None,
        })
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn actor_id(&self) -> ractor::ActorId {
        self.actor.get_id()
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready
    }

    pub(crate) fn set_ready(&mut self) {
        self.ready = true;
    }

    /// Queued plus running requests.
    pub(crate) fn depth(&self) -> usize {
        self.shared.depth()
    }

    pub(crate) fn has_room(&self, class: Class) -> bool {
        self.shared.has_room(class)
    }

    pub(crate) fn service_ns(&self) -> u64 {
        self.shared.service_ns()
    }

    /// How long the batch running now has been running, in nanoseconds
    /// (0: idle).
    pub(crate) fn running_ns(&self, now: Instant) -> u64 {
        let since = self.shared.heartbeat.lock().busy_since;
        since.map_or(0, |s| {
            u64::try_from(now.saturating_duration_since(s).as_nanos()).unwrap_or(u64::MAX)
        })
    }

    /// Inputs in the batch running now.
    pub(crate) fn running_inputs(&self) -> usize {
        self.shared.heartbeat.lock().batch_len
    }

    pub(crate) fn processed(&self) -> u64 {
        self.shared.processed.load(Ordering::Relaxed)
    }

    pub(crate) fn batches(&self) -> u64 {
        self.shared.batches.load(Ordering::Relaxed)
    }

    pub(crate) fn last_pong(&self) -> Instant {
        self.last_pong
    }

    /// Queues an admitted job (the caller checked [`Self::has_room`]).
    pub(crate) fn push(&self, job: Job<B>) -> Result<(), Job<B>> {
        self.shared.push(job)
    }

    /// Sends a ping unless one is outstanding.
    pub(crate) fn ping(&mut self, now: Instant) {
        if self.ping_outstanding.is_none() {
            self.ping_seq += 1;
            self.ping_outstanding = Some(Ping {
                seq: self.ping_seq,
                sent: now,
            });
            let _ = self.actor.send_message(WorkerMsg::Ping(self.ping_seq));
        }
    }

    /// Records the answer to ping `seq`.
    pub(crate) fn pong(&mut self, seq: u64, now: Instant) {
        if self.ping_outstanding.is_some_and(|p| p.seq == seq) {
            self.ping_outstanding = None;
            self.last_pong = now;
        }
    }

    pub(crate) fn probe(&self) -> Probe {
        let hb = *self.shared.heartbeat.lock();
        Probe {
            ready: self.ready,
            started: self.started,
            busy: hb.busy_since.map(|since| Busy {
                since,
                cost: hb.batch_cost,
            }),
            ping_sent: self.ping_outstanding.map(|p| p.sent),
        }
    }

    /// Answers `DeadlinePassed` to requests whose end-to-end deadline passed.
    pub(crate) fn expire(&self, now: Instant) -> Expired {
        self.shared.expire(now)
    }

    /// Takes the worker out of service and takes back everything it held;
    /// the rest of the teardown happens when the handle is dropped.
    pub(crate) fn seize(&self) -> Held<B> {
        self.shared.seize()
    }

    /// Test hook: make the actor block in its next handler.
    #[cfg(feature = "testing")]
    pub(crate) fn freeze(&self) {
        let _ = self.actor.send_message(WorkerMsg::Freeze);
    }
}

impl<B: Backend> Drop for Worker<B> {
    fn drop(&mut self) {
        // Whatever was not taken back before is answered `WorkerLost` as it
        // drops (see `Job`).
        let held = self.shared.seize();
        // A thread still inside the backend (or the loader) cannot be
        // stopped: abandon it. It uncounts itself if it ever exits.
        if self.shared.is_busy() || !self.ready {
            self.thread.abandon();
        }
        self.actor.kill();
        drop(held);
    }
}

/// Messages to a worker actor.
pub(crate) enum WorkerMsg {
    /// Answer with a pong.
    Ping(u64),
    /// Fault injection: block this handler forever (a deadlocked actor).
    #[cfg(feature = "testing")]
    Freeze,
}

#[cfg(feature = "cluster")]
impl ractor::Message for WorkerMsg {}

struct WorkerActor;

struct WorkerArgs {
    id: u64,
    events: Arc<dyn Events>,
}

impl Actor for WorkerActor {
    type Msg = WorkerMsg;
    type State = WorkerArgs;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Ping(seq) => state.events.pong(state.id, seq),
            #[cfg(feature = "testing")]
            WorkerMsg::Freeze => std::future::pending::<()>().await,
        }
        Ok(())
    }
}
