//! [`ClusterHandle`]: the cluster-wide handle. It implements
//! [`corral_core::Call`] — so it has the same method family and the same
//! errors as a local `PoolHandle` — by its one required method, `submit`.
//!
//! A call takes a place at the handle's own door (`max_in_flight`; past it
//! the call is refused `Overloaded` at once, counted), picks the member with
//! the least expected wait from the router's `Table` (`table.rs`), and calls it
//! directly — the router actor is never on the request path. Then:
//! - outputs: done (the reply's load report updates the table);
//! - refused by a full or draining member: the next member is tried; when
//!   none would admit it, `Overloaded` with the soonest `retry_after`
//!   (`Reject`), or the caller waits for room until its admission timeout
//!   (`Wait`, `Default`), then `TimedOut`, exactly as a local pool does;
//! - the member is lost with the request in flight (its node disconnected,
//!   fell silent past the liveness bound, or dropped the reply) or the
//!   request could not be sent to it (then the member leaves routing at
//!   once, before its group leave arrives): retried once elsewhere
//!   (`failover_retries`; waiting for room there as any request does),
//!   and answered `WorkerLost` once the retries are spent, or at once when
//!   no other member is in routing — so every request gets exactly one
//!   answer;
//! - a request over the wire limit (`limits.max_frame`, encoded) is never
//!   sent: `TooLarge`, inputs handed back (a node refuses an oversized
//!   frame by closing its whole session);
//! - any other error (invalid input, backend error, the member pool's own
//!   timeout) is the answer.
//!
//! An end-to-end deadline ([`Submit::deadline`]) covers all of it,
//! failovers included, and is passed on to the member as what is left of
//! it.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorId, ActorRef};
use tokio::sync::watch;

use corral_core::time::after;
use corral_core::{Admission, Call, CallError, Failure, PoolError, Refusal, Reply, Submit};

use crate::member::MemberMsg;
use crate::promise::Promise;
use crate::router::{Router, RouterArgs, RouterMsg};
use crate::table::MemberCounts;
use crate::table::{Choice, MemberInfo, Outcome, Table};
use crate::wire::{self, EncodedInputs, Limits, LoadReport, Wire, WireReply};

/// How a cluster handle routes and what it tolerates.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The process group of the pools to use (see [`crate::group_name`]).
    pub group: String,
    /// How often the router pings each member for its load and liveness.
    pub ping_interval: Duration,
    /// A member not heard from (ping answer or reply) for this long leaves
    /// routing, and the requests in flight to it fail over. Together with
    /// `ping_interval` it bounds how long a frozen node stays in routing:
    /// at most `liveness + ping_interval`.
    pub liveness: Duration,
    /// Requests this handle has in flight at most (waiting for room
    /// included); past it, calls are refused `Overloaded` at once.
    pub max_in_flight: usize,
    /// How many times a request whose member was lost is tried elsewhere
    /// before it is answered `WorkerLost` (at once, whatever is left,
    /// when no other member is in routing).
    pub failover_retries: u32,
    /// How long `call` and `call_batch` ([`Admission::Default`]) wait for
    /// room.
    pub admission_timeout: Duration,
    /// The decoder's limits for replies; `max_frame` also bounds the
    /// requests it sends (an encoded request over it is refused
    /// `InvalidInput`), and should match the members' nodes' (see
    /// [`crate::NodeConfig::max_frame`]).
    pub limits: Limits,
    /// What a member must promise (see [`Promise`]) to be routed to:
    /// every key here with the same value. A member whose promise
    /// disagrees is kept out of routing, with the reason logged and in
    /// [`MemberInfo::refused`]. `None` (the default): any member.
    pub expect: Option<Promise>,
}

impl ClusterConfig {
    /// Defaults for `group`: pings every 250 ms, out of routing after 1.5 s
    /// of silence (so a frozen node is out within 1.75 s), 4,096 requests
    /// in flight, one failover, 30 s admission timeout.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            ping_interval: Duration::from_millis(250),
            liveness: Duration::from_millis(1500),
            max_in_flight: 4096,
            failover_retries: 1,
            admission_timeout: Duration::from_secs(30),
            limits: Limits::default(),
            expect: None,
        }
    }
}

/// Counters since the handle started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Requests answered with outputs.
    pub answered: u64,
    /// Requests refused `Overloaded` (at the handle's door, or because no
    /// member would admit them).
    pub rejected_overloaded: u64,
    /// Requests whose wait for room ran out (`TimedOut`) or whose
    /// end-to-end deadline passed (`DeadlinePassed`).
    pub timed_out: u64,
    /// Requests sent to another member after theirs was lost.
    pub failed_over: u64,
    /// Requests answered `WorkerLost` (lost again after their retries, or
    /// lost with no other member in routing to retry on).
    pub worker_lost: u64,
    /// Requests answered with any other error.
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    answered: AtomicU64,
    rejected_overloaded: AtomicU64,
    timed_out: AtomicU64,
    failed_over: AtomicU64,
    worker_lost: AtomicU64,
    errors: AtomicU64,
}

struct Inner {
    config: ClusterConfig,
    table: Arc<Table<ActorRef<MemberMsg>>>,
    router: ActorRef<RouterMsg>,
    in_flight: AtomicUsize,
    counters: Counters,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.router.stop(None);
    }
}

/// A cheap-to-clone handle to every pool of one group across the cluster;
/// see the module docs. The router stops when the last clone is dropped.
pub struct ClusterHandle<I, O> {
    inner: Arc<Inner>,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O> Clone for ClusterHandle<I, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            _types: PhantomData,
        }
    }
}

/// A place at the handle's door, released on drop.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One request out to a member; its end is recorded exactly once, also
/// when the caller's future is dropped mid-call.
struct Out<'a> {
    table: &'a Table<ActorRef<MemberMsg>>,
    id: ActorId,
    ended: bool,
}

impl Out<'_> {
    fn end(mut self, outcome: Outcome, report: Option<LoadReport>) {
        self.ended = true;
        self.table.done(self.id, outcome, report, Instant::now());
    }
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.table
                .done(self.id, Outcome::Other, None, Instant::now());
        }
    }
}

/// How one try ended.
enum Try<O> {
    Done(Vec<O>),
    /// Refused without running: try another member.
    Refused,
    Lost,
    Failed(PoolError, bool),
}

impl<I, O> ClusterHandle<I, O>
where
    I: Wire + Send + Sync + 'static,
    O: Wire + Send + 'static,
{
    /// Starts a router for `config.group` on this node and returns its
    /// handle. Members already in the group are found at once; later ones
    /// as they join.
    ///
    /// # Errors
    /// ractor's spawn error.
    pub async fn spawn(config: ClusterConfig) -> Result<Self, ractor::SpawnErr> {
        let table = Arc::new(Table::expecting(config.expect.clone()));
        let (router, _join) = Actor::spawn(
            None,
            Router,
            RouterArgs {
                group: config.group.clone(),
                table: table.clone(),
                ping_interval: config.ping_interval,
                liveness: config.liveness,
            },
        )
        .await?;
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                table,
                router,
                in_flight: AtomicUsize::new(0),
                counters: Counters::default(),
            }),
            _types: PhantomData,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Every member, in routing or not.
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.table.snapshot()
    }

    /// The counts of members that have left the group, summed by
    /// [`MemberInfo::label`] (their node, when they promised one): with
    /// [`Self::members`]' counts, every request this handle sent, by node,
    /// across members that came and went. Requests in flight to a member
    /// when it left count as lost.
    pub fn departed(&self) -> std::collections::BTreeMap<String, MemberCounts> {
        self.inner.table.departed()
    }

    /// Counters since start.
    pub fn stats(&self) -> ClusterStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            answered: get(&c.answered),
            rejected_overloaded: get(&c.rejected_overloaded),
            timed_out: get(&c.timed_out),
            failed_over: get(&c.failed_over),
            worker_lost: get(&c.worker_lost),
            errors: get(&c.errors),
        }
    }

    /// Waits until at least `n` members are in routing.
    ///
    /// # Errors
    /// `TimedOut` if they are not within `timeout`.
    pub async fn wait_members(&self, n: usize, timeout: Duration) -> Result<(), PoolError> {
        let until = after(Instant::now(), timeout);
        loop {
            let changed = self.inner.table.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.members().iter().filter(|m| m.in_routing).count() >= n {
                return Ok(());
            }
            let tick = Instant::now() + self.inner.config.ping_interval;
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(tick.min(until).into()) => {}
            }
            if Instant::now() >= until {
                return Err(PoolError::TimedOut);
            }
        }
    }

    /// Sends one request; see the module docs for where it goes and what
    /// can come back. [`Call::submit`]'s body; the trait's `submit` is
    /// this.
    async fn send(&self, submit: Submit<I>) -> Reply<I, O> {
        let inner = &*self.inner;
        if submit.inputs.is_empty() {
            return Err(CallError::Refused {
                reason: Refusal::InvalidInput("the request has no inputs".into()),
                inputs: submit.inputs,
            });
        }
        let prev = inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let _place = Place(&inner.in_flight);
        if prev >= inner.config.max_in_flight {
            inner
                .counters
                .rejected_overloaded
                .fetch_add(1, Ordering::Relaxed);
            let retry_after = inner
                .table
                .retry_after()
                .unwrap_or(crate::table::NO_MEMBER_RETRY);
            return Err(CallError::Refused {
                reason: Refusal::Overloaded { retry_after },
                inputs: submit.inputs,
            });
        }
        let start = Instant::now();
        let admission = submit.admission.resolve(inner.config.admission_timeout);
        // Encoded once, and measured before anything is sent: a frame over
        // the wire limit would be refused by the member's node, which
        // closes the session (every request on it is lost) — so it is the
        // caller's `TooLarge`, never tried on any member.
        let inputs = EncodedInputs::new(&submit.inputs);
        let size = wire::request_frame_len(admission, submit.deadline, &inputs);
        let limit = inner.config.limits.max_frame;
        if size > limit {
            inner.counters.errors.fetch_add(1, Ordering::Relaxed);
            return Err(CallError::Refused {
                reason: Refusal::TooLarge(format!(
                    "the request is {size} bytes on the wire, over the limit of {limit}: \
                     send fewer or shorter inputs per request"
                )),
                inputs: submit.inputs,
            });
        }
        let deadline = submit.deadline.map(|d| after(start, d));
        // Whether the request has been sent to any member: until then, a
        // deadline that passes hands the inputs back.
        let sent = AtomicBool::new(false);
        let run = self.run(
            admission,
            submit.inputs.len(),
            &inputs,
            start,
            deadline,
            &sent,
        );
        let result = match deadline {
            Some(at) => match tokio::time::timeout_at(at.into(), run).await {
                Ok(r) => r,
                Err(_) => Err((PoolError::DeadlinePassed, !sent.load(Ordering::Relaxed))),
            },
            None => run.await,
        };
        let c = &inner.counters;
        match result {
            Ok(out) => {
                c.answered.fetch_add(1, Ordering::Relaxed);
                Ok(out)
            }
            Err((error, refused)) => {
                match &error {
                    PoolError::Overloaded { .. } => &c.rejected_overloaded,
                    PoolError::TimedOut | PoolError::DeadlinePassed => &c.timed_out,
                    PoolError::WorkerLost => &c.worker_lost,
                    _ => &c.errors,
                }
                .fetch_add(1, Ordering::Relaxed);
                Err(call_error(error, refused).map_inputs(|()| submit.inputs))
            }
        }
    }

    /// Tries members until one answers; `Err((error, never_ran))`.
    async fn run(
        &self,
        admission: Admission,
        n: usize,
        inputs: &EncodedInputs,
        start: Instant,
        deadline: Option<Instant>,
        sent: &AtomicBool,
    ) -> Result<Vec<O>, (PoolError, bool)> {
        let inner = &*self.inner;
        let wait_until = match admission.resolve(inner.config.admission_timeout) {
            Admission::Wait(t) => Some(after(start, t)),
            Admission::Reject | Admission::Default => None,
        };
        // Members that refused it (full: tried again once room may have
        // appeared) and members it was lost on (never tried again).
        let mut refused_by: Vec<ActorId> = vec![];
        let mut lost_on: Vec<ActorId> = vec![];
        let mut ran_somewhere = false;
        // Lost, and not yet sent anywhere else.
        let mut retrying = false;
        loop {
            let changed = inner.table.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match inner.table.choose(&refused_by, &lost_on) {
                Choice::Member { id, actor, gone } => {
                    if std::mem::take(&mut retrying) {
                        inner.counters.failed_over.fetch_add(1, Ordering::Relaxed);
                    }
                    let now = Instant::now();
                    let admission = match wait_until {
                        None => Admission::Reject,
                        Some(u) => Admission::Wait(u.saturating_duration_since(now)),
                    };
                    let left = deadline.map(|d| d.saturating_duration_since(now));
                    let bytes = wire::encode_request_framed(admission, left, inputs);
                    let out = Out {
                        table: &inner.table,
                        id,
                        ended: false,
                    };
                    sent.store(true, Ordering::Relaxed);
                    match self.try_member(out, actor, gone, bytes, n).await {
                        Try::Done(v) => return Ok(v),
                        Try::Refused => refused_by.push(id),
                        Try::Failed(e, never_ran) => return Err((e, never_ran && !ran_somewhere)),
                        Try::Lost => {
                            ran_somewhere = true;
                            lost_on.push(id);
                            let losses = u32::try_from(lost_on.len()).unwrap_or(u32::MAX);
                            if losses > inner.config.failover_retries {
                                return Err((PoolError::WorkerLost, false));
                            }
                            retrying = true;
                            tracing::warn!(member = %id, "member lost with a request in flight: retrying elsewhere");
                        }
                    }
                }
                Choice::AllFull { retry_after } => match wait_until {
                    None => return Err((PoolError::Overloaded { retry_after }, !ran_somewhere)),
                    Some(u) => {
                        self.wait_for_room(changed, u)
                            .await
                            .map_err(|e| (e, !ran_somewhere))?;
                        refused_by.clear();
                    }
                },
                // Lost, and no other member to retry on: the retry has
                // nowhere to go, so the loss is the answer now, not after
                // the wait for room.
                Choice::NoMember if ran_somewhere => return Err((PoolError::WorkerLost, false)),
                Choice::NoMember => match wait_until {
                    None => {
                        return Err((
                            PoolError::Overloaded {
                                retry_after: crate::table::NO_MEMBER_RETRY,
                            },
                            true,
                        ));
                    }
                    Some(u) => {
                        self.wait_for_room(changed, u)
                            .await
                            .map_err(|e| (e, !ran_somewhere))?;
                        refused_by.clear();
                    }
                },
            }
        }
    }

    /// Waits for the table to change (or a ping interval, whichever comes
    /// first), or `TimedOut` at `until`.
    async fn wait_for_room(
        &self,
        changed: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        until: Instant,
    ) -> Result<(), PoolError> {
        let now = Instant::now();
        if now >= until {
            return Err(PoolError::TimedOut);
        }
        let tick = (now + self.inner.config.ping_interval).min(until);
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(tick.into()) => {}
        }
        Ok(())
    }

    async fn try_member(
        &self,
        out: Out<'_>,
        actor: ActorRef<MemberMsg>,
        mut gone: watch::Receiver<bool>,
        bytes: Vec<u8>,
        n: usize,
    ) -> Try<O> {
        let call = actor.call(|port| MemberMsg::Call(bytes, port), None);
        let answer = tokio::select! {
            r = call => r,
            _ = gone.wait_for(|&g| g) => {
                out.end(Outcome::Lost, None);
                return Try::Lost;
            }
        };
        let bytes = match answer {
            Ok(ractor::rpc::CallResult::Success(b)) => b,
            Err(_) => {
                // Not even sent: the member is gone, whether or not its
                // group leave has arrived yet.
                self.inner.table.unreachable(out.id);
                out.end(Outcome::Lost, None);
                return Try::Lost;
            }
            Ok(_) => {
                out.end(Outcome::Lost, None);
                return Try::Lost;
            }
        };
        match wire::decode_reply::<O>(&bytes, &self.inner.config.limits) {
            Err(e) => {
                out.end(Outcome::Other, None);
                Try::Failed(PoolError::Backend(format!("undecodable reply: {e}")), false)
            }
            Ok((load, WireReply::Done(v))) => {
                if v.len() != n {
                    out.end(Outcome::Other, Some(load));
                    return Try::Failed(
                        PoolError::Backend(format!("{} outputs for {n} inputs", v.len())),
                        false,
                    );
                }
                out.end(Outcome::Answered, Some(load));
                Try::Done(v)
            }
            Ok((load, WireReply::Failed { error, refused })) => {
                if refused
                    && matches!(
                        error,
                        PoolError::Overloaded { .. } | PoolError::ShuttingDown
                    )
                {
                    out.end(Outcome::Refused, Some(load));
                    Try::Refused
                } else {
                    out.end(Outcome::Other, Some(load));
                    Try::Failed(error, refused)
                }
            }
        }
    }
}

impl<I, O> Call for ClusterHandle<I, O>
where
    I: Wire + Send + Sync + 'static,
    O: Wire + Send + 'static,
{
    type Input = I;
    type Output = O;

    /// Sends one request to the member with the least expected wait; see
    /// the module docs for where it goes and what can come back.
    /// [`Admission::Default`] waits up to
    /// [`ClusterConfig::admission_timeout`].
    ///
    /// # Errors
    /// As [`Call::submit`]: refused, the inputs handed back, when it never
    /// ran on any member (refused by all, no room in time, its deadline
    /// passed before it was sent, too big for the wire); failed otherwise.
    ///
    /// # Cancel safety
    /// Dropping the future stops waiting; a member already running the
    /// request finishes it and its answer is dropped.
    fn submit(&self, submit: Submit<I>) -> impl Future<Output = Reply<I, O>> + Send {
        self.send(submit)
    }
}

/// A flat error with its "never ran" flag (as a member's reply carries
/// them) as a [`CallError`] with the inputs still to fill in. A flag that
/// does not fit the error (a refusal that only a run can give, or a failure
/// that only a refusal can) falls to the side that hands nothing back:
/// `Overloaded` or `TimedOut` after the request ran somewhere means it was
/// lost there and found no room again.
fn call_error(error: PoolError, refused: bool) -> CallError<()> {
    let failed = |e: PoolError| CallError::Failed(e.into_failure().unwrap_or(Failure::WorkerLost));
    if refused {
        match error.into_refusal() {
            Ok(reason) => CallError::Refused { reason, inputs: () },
            Err(e) => failed(e),
        }
    } else {
        failed(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::member::Member;
    use corral_core::synthetic::{Item, Synthetic, SyntheticSpec};
    use corral_core::{Pool, PoolConfig};

    /// With no member at all, nothing is ever sent: a wait for room that
    /// runs out (the given one, or `admission_timeout` for `call`) and a
    /// deadline that passes are refusals that hand the inputs back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_is_never_sent_comes_back() {
        let h = ClusterHandle::<Item, u64>::spawn(ClusterConfig {
            admission_timeout: Duration::from_millis(50),
            ..ClusterConfig::new("t/unit/no-members")
        })
        .await
        .unwrap();
        let ids = |v: &[Item]| v.iter().map(|i| i.id).collect::<Vec<_>>();
        let request = Submit::wait(vec![Item::new(1), Item::new(2)], Duration::from_secs(60))
            .within(Duration::from_millis(50));
        match h.submit(request).await {
            Err(CallError::Refused {
                reason: Refusal::DeadlinePassed,
                inputs,
            }) => assert_eq!(ids(&inputs), [1, 2]),
            other => panic!("{other:?}"),
        }
        match h
            .call_timeout(Item::new(3), Duration::from_millis(50))
            .await
        {
            Err(CallError::Refused {
                reason: Refusal::TimedOut,
                inputs,
            }) => assert_eq!(inputs.id, 3),
            other => panic!("{other:?}"),
        }
        match h.call(Item::new(4)).await {
            Err(CallError::Refused {
                reason: Refusal::TimedOut,
                inputs,
            }) => assert_eq!(inputs.id, 4),
            other => panic!("{other:?}"),
        }
        let s = h.stats();
        assert_eq!((s.timed_out, s.answered), (3, 0), "{s:?}");
    }

    /// A member whose actor is gone while it is still in routing (its
    /// group leave has not arrived): the first send to it fails, and it
    /// leaves routing then — not one request per caller until the leave.
    /// The members are put in the table by hand, outside the router's
    /// group, so that no leave ever arrives and the outcome does not
    /// depend on timing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_whose_send_fails_leaves_routing_at_once() {
        let pool = Pool::<Synthetic>::spawn(
            SyntheticSpec::with_per_item(Duration::ZERO),
            PoolConfig {
                workers: 1,
                threads_per_worker: Some(1),
                ..PoolConfig::default()
            },
        )
        .await
        .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        let limits = Limits::default();
        let gone = Member::spawn(pool.pool_ref(), "t/unit/gone".into(), limits)
            .await
            .unwrap();
        gone.stop_and_wait(None, None).await.unwrap();
        let live = Member::spawn(pool.pool_ref(), "t/unit/live".into(), limits)
            .await
            .unwrap();
        let h = ClusterHandle::<Item, u64>::spawn(ClusterConfig {
            liveness: Duration::from_secs(600),
            ..ClusterConfig::new("t/unit/send-fails")
        })
        .await
        .unwrap();
        let report = |per_request| LoadReport {
            in_flight: 0,
            capacity: 1000,
            ready_workers: 1,
            per_request,
            retry_after: Duration::from_millis(1),
            draining: false,
        };
        let table = &h.inner.table;
        let now = Instant::now();
        table.join(gone.get_id(), gone.clone(), now);
        table.heard(gone.get_id(), report(Duration::from_nanos(1)), now);
        table.join(live.get_id(), live.clone(), now);
        table.heard(live.get_id(), report(Duration::from_secs(1)), now);

        for id in 0..20 {
            assert_eq!(h.call(Item::new(id)).await.map_err(PoolError::from), Ok(id));
        }
        let info = |id| h.members().into_iter().find(|m| m.id == id).unwrap();
        let g = info(gone.get_id());
        assert_eq!(g.counts.sent, 1, "tried once, then out of routing: {g:?}");
        assert!(!g.in_routing);
        assert_eq!(info(live.get_id()).counts.answered, 20);
        let s = h.stats();
        assert_eq!(
            (s.answered, s.failed_over, s.worker_lost),
            (20, 1, 0),
            "{s:?}"
        );
        live.stop(None);
        drop(pool.shutdown(Duration::from_secs(5)).await);
    }

    /// Two members in one group, one promising other settings than the
    /// handle expects: that one is described, refused with the reason, and
    /// never sent a request, though it is as fast; the other takes them all.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_promising_other_settings_is_never_routed_to() {
        let pool = Pool::<Synthetic>::spawn(
            SyntheticSpec::with_per_item(Duration::ZERO),
            PoolConfig {
                workers: 1,
                threads_per_worker: Some(1),
                ..PoolConfig::default()
            },
        )
        .await
        .unwrap();
        pool.wait_ready(Duration::from_secs(10)).await.unwrap();
        let group = "t/unit/promise";
        let settings = |normalize: bool, node: &str| {
            Promise::new()
                .with("model", "m")
                .with("normalize", normalize)
                .with(crate::NODE_KEY, node)
        };
        let limits = Limits::default();
        let good = Member::spawn_promising(
            pool.pool_ref(),
            group.into(),
            limits,
            settings(false, "good"),
        )
        .await
        .unwrap();
        let bad =
            Member::spawn_promising(pool.pool_ref(), group.into(), limits, settings(true, "bad"))
                .await
                .unwrap();
        let h = ClusterHandle::<Item, u64>::spawn(ClusterConfig {
            expect: Some(settings(false, "").without(crate::NODE_KEY)),
            ..ClusterConfig::new(group)
        })
        .await
        .unwrap();
        // Both answer their describe within a few ping intervals.
        let until = Instant::now() + Duration::from_secs(10);
        while h.members().iter().filter(|m| m.promise.is_some()).count() < 2 {
            assert!(Instant::now() < until, "{:?}", h.members());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for id in 0..20 {
            assert_eq!(h.call(Item::new(id)).await.map_err(PoolError::from), Ok(id));
        }
        let info = |id| h.members().into_iter().find(|m| m.id == id).unwrap();
        let b = info(bad.get_id());
        assert!(!b.in_routing);
        assert_eq!(b.counts.sent, 0);
        assert_eq!(b.label(), "bad");
        assert_eq!(
            b.refused.as_deref(),
            Some("normalize: member has true, expected false")
        );
        let g = info(good.get_id());
        assert!(g.in_routing && g.refused.is_none());
        assert_eq!(g.counts.answered, 20);
        good.stop(None);
        bad.stop(None);
        drop(pool.shutdown(Duration::from_secs(5)).await);
    }
}
