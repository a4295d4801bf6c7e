//! The routing table a cluster router keeps: one [`Entry`] per member pool,
//! with the load it last reported, the requests this router has out to it,
//! and whether it is in routing. [`Table::choose`] is the routing policy —
//! least expected wait, local first on ties — and the rest is bookkeeping,
//! including what each member promised ([`Promise`]) and, when the router
//! expects settings, whether the promise agrees: a member that disagrees
//! never enters routing, and says why ([`MemberInfo::refused`]).
//! Nothing here sends a message or reads a clock of its own: callers pass
//! `now`, so the policy is unit-tested without actors or real time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use ractor::ActorId;
use tokio::sync::{watch, Notify};

use crate::promise::{Promise, NODE_KEY};
use crate::wire::LoadReport;

/// What an unmeasured pool is assumed to take per request, so that pools
/// that have not served yet still split by depth.
pub(crate) const DEFAULT_PER_REQUEST: Duration = Duration::from_millis(1);

/// Per-member counters, as [`crate::MemberInfo`] reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberCounts {
    /// Requests sent to it.
    pub sent: u64,
    /// Requests it answered with outputs.
    pub answered: u64,
    /// Requests it refused (`Overloaded`, `ShuttingDown`) that were then
    /// tried elsewhere or refused to the caller.
    pub refused: u64,
    /// Requests in flight to it when it was lost (disconnected, silent past
    /// the liveness bound, or its reply port dropped).
    pub lost: u64,
}

/// One member pool as a handle reports it ([`crate::ClusterHandle::members`]).
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// The member actor's id (remote ids carry the node's session id).
    pub id: ActorId,
    /// Whether it runs in this process.
    pub local: bool,
    /// Whether it is in routing now.
    pub in_routing: bool,
    /// The load it last reported.
    pub load: Option<LoadReport>,
    /// This handle's requests out to it now.
    pub outstanding: u32,
    /// Counters for it.
    pub counts: MemberCounts,
    /// What it promised, once it answered a describe.
    pub promise: Option<Promise>,
    /// Why it is kept out of routing: its promise disagrees with what the
    /// router expects ([`crate::ClusterConfig::expect`]) — for good — or
    /// it has not answered a describe within twice the liveness bound of
    /// joining ([`NO_PROMISE`]: a node older than the describe, or one
    /// frozen since it joined) — until it answers one.
    pub refused: Option<String>,
}

impl MemberInfo {
    /// What to call it: the node its promise names ([`NODE_KEY`]), else
    /// its actor id.
    pub fn label(&self) -> String {
        label(self.promise.as_ref(), self.id)
    }
}

fn label(promise: Option<&Promise>, id: ActorId) -> String {
    promise
        .and_then(|p| p.get(NODE_KEY))
        .map_or_else(|| id.to_string(), str::to_owned)
}

/// One member pool.
pub(crate) struct Entry<A> {
    pub(crate) id: ActorId,
    pub(crate) actor: A,
    pub(crate) local: bool,
    /// The last load it reported (on a reply or a ping answer).
    pub(crate) report: Option<LoadReport>,
    /// This router's requests out to it when `report` was taken: the rest
    /// of the report's `in_flight` is other routers' load.
    base_outstanding: u32,
    /// This router's requests out to it now.
    pub(crate) outstanding: u32,
    pub(crate) last_heard: Instant,
    /// When it joined: the describe clock starts here.
    joined: Instant,
    /// In routing: reported within the liveness bound.
    pub(crate) live: bool,
    /// Flipped to `true` when the member leaves routing, so that calls in
    /// flight to it stop waiting and fail over. A member that comes back
    /// gets a fresh one.
    gone: watch::Sender<bool>,
    pub(crate) counts: MemberCounts,
    /// Its promise, once it answered a describe.
    promise: Option<Promise>,
    /// Why it is refused, if it is.
    refused: Option<String>,
    /// The refusal is for no promise: it is still asked, and an answer
    /// lifts it.
    unpromised: bool,
}

impl<A: Clone> Entry<A> {
    fn new(id: ActorId, actor: A, now: Instant) -> Self {
        Self {
            local: id.is_local(),
            id,
            actor,
            report: None,
            base_outstanding: 0,
            outstanding: 0,
            last_heard: now,
            joined: now,
            live: false,
            gone: watch::Sender::new(false),
            counts: MemberCounts::default(),
            promise: None,
            refused: None,
            unpromised: false,
        }
    }

    /// In-flight requests at the member now, as best this router knows:
    /// other routers' share from the last report plus its own, exact.
    fn estimated_in_flight(&self, r: &LoadReport) -> u64 {
        let others = r.in_flight.saturating_sub(self.base_outstanding);
        u64::from(others) + u64::from(self.outstanding)
    }

    /// Whether a request sent now would be admitted, and its expected wait
    /// (until it finishes) in ns.
    fn expected_wait(&self, r: &LoadReport) -> Option<u128> {
        if !self.live || r.draining || r.ready_workers == 0 {
            return None;
        }
        let in_flight = self.estimated_in_flight(r);
        if in_flight >= u64::from(r.capacity) {
            return None;
        }
        let per = if r.per_request.is_zero() {
            DEFAULT_PER_REQUEST
        } else {
            r.per_request
        };
        Some(u128::from(in_flight + 1) * per.as_nanos())
    }
}

/// Where to send a request.
pub(crate) enum Choice<A> {
    /// This member: its actor, and a receiver that flips when it leaves
    /// routing.
    Member {
        id: ActorId,
        actor: A,
        gone: watch::Receiver<bool>,
    },
    /// Members exist but none would admit a request now; the soonest any
    /// says a slot frees.
    AllFull { retry_after: Duration },
    /// No member is in routing (besides those lost with this request).
    NoMember,
}

/// All members, behind one lock, and a signal for callers waiting for room.
pub(crate) struct Table<A> {
    entries: Mutex<Vec<Entry<A>>>,
    /// What a member must promise to enter routing; `None`: anything.
    expect: Option<Promise>,
    /// The counts of members that left, by [`MemberInfo::label`]; those
    /// in flight to it when it left count as lost.
    departed: Mutex<BTreeMap<String, MemberCounts>>,
    /// Notified whenever room may have appeared: a reply, a report, a member
    /// joining or coming back.
    pub(crate) changed: Notify,
}

/// How a member that has not answered a describe within twice the liveness
/// bound of joining is refused (followed by the bound), when the router
/// expects settings.
pub const NO_PROMISE: &str = "no promise";

/// How long a caller is told to wait when no member is in routing.
pub(crate) const NO_MEMBER_RETRY: Duration = Duration::from_millis(500);

impl<A: Clone> Table<A> {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::expecting(None)
    }

    /// A table whose members enter routing only once they promised what
    /// `expect` says (see [`Promise::disagreement`]).
    pub(crate) fn expecting(expect: Option<Promise>) -> Self {
        Self {
            entries: Mutex::new(Vec::new()),
            expect,
            departed: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
        }
    }

    /// Adds a member (not yet in routing: it enters with its first report).
    pub(crate) fn join(&self, id: ActorId, actor: A, now: Instant) {
        let mut entries = self.entries.lock();
        if entries.iter().all(|e| e.id != id) {
            entries.push(Entry::new(id, actor, now));
        }
    }

    /// Removes a member; calls in flight to it fail over.
    pub(crate) fn leave(&self, id: ActorId) {
        let mut entries = self.entries.lock();
        if let Some(i) = entries.iter().position(|e| e.id == id) {
            let e = entries.swap_remove(i);
            e.gone.send_replace(true);
            let mut counts = e.counts;
            counts.lost += u64::from(e.outstanding);
            let mut departed = self.departed.lock();
            let sum = departed.entry(label(e.promise.as_ref(), e.id)).or_default();
            sum.sent += counts.sent;
            sum.answered += counts.answered;
            sum.refused += counts.refused;
            sum.lost += counts.lost;
        }
    }

    /// The counts of members that left, by label.
    pub(crate) fn departed(&self) -> BTreeMap<String, MemberCounts> {
        self.departed.lock().clone()
    }

    /// Ids and actors of every member not refused for its promise, and
    /// whether it has promised yet: to ping, or to describe first (those
    /// refused for [`NO_PROMISE`] are still asked).
    pub(crate) fn actors(&self) -> Vec<(ActorId, A, bool)> {
        self.entries
            .lock()
            .iter()
            .filter(|e| e.refused.is_none() || e.unpromised)
            .map(|e| (e.id, e.actor.clone(), e.promise.is_some()))
            .collect()
    }

    /// A member answered a describe with its load and `promise`: it enters
    /// routing if the promise agrees with the expectation (a
    /// [`NO_PROMISE`] refusal lifted), and is kept out for good, with the
    /// reason (returned, and logged), if not.
    pub(crate) fn described(
        &self,
        id: ActorId,
        report: LoadReport,
        promise: Promise,
        now: Instant,
    ) -> Option<String> {
        let refusal = self.expect.as_ref().and_then(|x| x.disagreement(&promise));
        {
            let mut entries = self.entries.lock();
            let e = entries.iter_mut().find(|e| e.id == id)?;
            if e.unpromised {
                tracing::info!(member = %id, "member answered its describe at last");
                e.refused = None;
                e.unpromised = false;
            }
            if let Some(reason) = &refusal {
                tracing::warn!(
                    member = %id,
                    node = %label(Some(&promise), id),
                    %reason,
                    "member refused routing: its settings differ from this router's model"
                );
                e.live = false;
                e.gone.send_replace(true);
                e.refused = Some(reason.clone());
            }
            e.promise = Some(promise);
        }
        if refusal.is_none() {
            self.heard(id, report, now);
        }
        refusal
    }

    /// A member reported its load (a ping answer or a reply): it is heard
    /// from, and in routing — when the router expects settings, only once
    /// its promise agreed.
    pub(crate) fn heard(&self, id: ActorId, report: LoadReport, now: Instant) {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
            e.report = Some(report);
            e.base_outstanding = e.outstanding;
            e.last_heard = now;
            let promised = self.expect.is_none() || e.promise.is_some();
            if !e.live && promised && e.refused.is_none() {
                e.live = true;
                e.gone = watch::Sender::new(false);
                tracing::info!(member = %id, "member in routing");
            }
        }
        drop(entries);
        self.changed.notify_waiters();
    }

    /// Takes members silent for longer than `bound` out of routing; returns
    /// the ids taken out. A member that has not answered a describe within
    /// twice `bound` of joining is refused for [`NO_PROMISE`] when the
    /// router expects settings (still asked: an answer lifts it), and
    /// taken at its word — an empty promise, then pings — when it expects
    /// nothing.
    pub(crate) fn expire(&self, now: Instant, bound: Duration) -> Vec<ActorId> {
        let mut out = vec![];
        let describe_bound = 2 * bound;
        for e in self.entries.lock().iter_mut() {
            if e.live && now.saturating_duration_since(e.last_heard) > bound {
                e.live = false;
                e.gone.send_replace(true);
                out.push(e.id);
            }
            let silent = e.promise.is_none()
                && e.refused.is_none()
                && now.saturating_duration_since(e.joined) > describe_bound;
            if !silent {
                continue;
            }
            if self.expect.is_some() {
                let reason = format!(
                    "{NO_PROMISE}: no answer to describe within {describe_bound:?} of joining \
                     (a node older than this router, or frozen)"
                );
                tracing::warn!(member = %e.id, %reason, "member refused routing");
                e.refused = Some(reason);
                e.unpromised = true;
            } else {
                tracing::info!(member = %e.id, "member never described: routed on its pings");
                e.promise = Some(Promise::new());
            }
        }
        for id in &out {
            tracing::warn!(member = %id, ?bound, "member silent past the liveness bound: out of routing");
        }
        out
    }

    /// A message to `id` could not be sent (its actor, or its node's
    /// session, is gone): it leaves routing now rather than when its group
    /// leave or the liveness bound catches up, and calls in flight to it
    /// fail over. It comes back with its next report.
    pub(crate) fn unreachable(&self, id: ActorId) {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
            if e.live {
                e.live = false;
                e.gone.send_replace(true);
                tracing::warn!(member = %id, "a send to the member failed: out of routing");
            }
        }
    }

    /// The member to send a request to: the least expected wait among those
    /// in routing that would admit it, local first on ties, skipping
    /// `refused` (which count as full) and `lost` (which count as absent).
    /// Counts the request as out to it.
    pub(crate) fn choose(&self, refused: &[ActorId], lost: &[ActorId]) -> Choice<A> {
        let mut entries = self.entries.lock();
        let mut best: Option<(u128, bool, usize)> = None;
        let mut retry_after: Option<Duration> = None;
        let mut any_live = false;
        for (i, e) in entries.iter().enumerate() {
            let Some(r) = e.report.as_ref() else { continue };
            if !e.live || lost.contains(&e.id) {
                continue;
            }
            any_live = true;
            if refused.contains(&e.id) {
                retry_after = Some(retry_after.map_or(r.retry_after, |d| d.min(r.retry_after)));
                continue;
            }
            match e.expected_wait(r) {
                Some(wait) => {
                    let key = (wait, !e.local, i);
                    if best.is_none_or(|b| key < b) {
                        best = Some(key);
                    }
                }
                None => {
                    retry_after = Some(retry_after.map_or(r.retry_after, |d| d.min(r.retry_after)));
                }
            }
        }
        match best {
            Some((_, _, i)) => {
                let e = &mut entries[i];
                e.outstanding += 1;
                e.counts.sent += 1;
                Choice::Member {
                    id: e.id,
                    actor: e.actor.clone(),
                    gone: e.gone.subscribe(),
                }
            }
            None if any_live => Choice::AllFull {
                retry_after: retry_after.unwrap_or(NO_MEMBER_RETRY),
            },
            None => Choice::NoMember,
        }
    }

    /// A request out to `id` ended: `outcome` says how; `report` is the
    /// load its reply carried, if any.
    pub(crate) fn done(
        &self,
        id: ActorId,
        outcome: Outcome,
        report: Option<LoadReport>,
        now: Instant,
    ) {
        let mut entries = self.entries.lock();
        if let Some(e) = entries.iter_mut().find(|e| e.id == id) {
            e.outstanding = e.outstanding.saturating_sub(1);
            match outcome {
                Outcome::Answered => e.counts.answered += 1,
                Outcome::Refused => e.counts.refused += 1,
                Outcome::Lost => e.counts.lost += 1,
                Outcome::Other => {}
            }
            if let Some(mut r) = report {
                if outcome == Outcome::Refused {
                    // It said it is full: believe it until it says otherwise.
                    r.in_flight = r.in_flight.max(r.capacity);
                }
                e.report = Some(r);
                e.base_outstanding = e.outstanding;
                e.last_heard = now;
            }
        }
        drop(entries);
        self.changed.notify_waiters();
    }

    /// The soonest any member in routing says a slot frees.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        self.entries
            .lock()
            .iter()
            .filter(|e| e.live)
            .filter_map(|e| e.report.map(|r| r.retry_after))
            .min()
    }

    /// A snapshot for reports.
    pub(crate) fn snapshot(&self) -> Vec<MemberInfo> {
        self.entries
            .lock()
            .iter()
            .map(|e| MemberInfo {
                id: e.id,
                local: e.local,
                in_routing: e.live,
                load: e.report,
                outstanding: e.outstanding,
                counts: e.counts,
                promise: e.promise.clone(),
                refused: e.refused.clone(),
            })
            .collect()
    }
}

/// How a request out to a member ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Outputs.
    Answered,
    /// Refused without running (full, shutting down).
    Refused,
    /// The member was lost with the request in flight.
    Lost,
    /// Any other answer (an error from the pool).
    Other,
}

#[cfg(test)]
mod tests;
