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
    /// Why it is kept out of routing for good: its promise disagrees with
    /// what the router expects ([`crate::ClusterConfig::expect`]).
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
    /// In routing: reported within the liveness bound.
    pub(crate) live: bool,
    /// Flipped to `true` when the member leaves routing, so that calls in
    /// flight to it stop waiting and fail over. A member that comes back
    /// gets a fresh one.
    gone: watch::Sender<bool>,
    pub(crate) counts: MemberCounts,
    /// Its promise, once it answered a describe.
    promise: Option<Promise>,
    /// Why its promise was refused, if it was.
    refused: Option<String>,
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
            live: false,
            gone: watch::Sender::new(false),
            counts: MemberCounts::default(),
            promise: None,
            refused: None,
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

    /// Ids and actors of every member not refused, and whether it has
    /// promised yet: to ping, or to describe first.
    pub(crate) fn actors(&self) -> Vec<(ActorId, A, bool)> {
        self.entries
            .lock()
            .iter()
            .filter(|e| e.refused.is_none())
            .map(|e| (e.id, e.actor.clone(), e.promise.is_some()))
            .collect()
    }

    /// A member answered a describe with its load and `promise`: it enters
    /// routing if the promise agrees with the expectation, and is kept out
    /// for good, with the reason (returned, and logged), if not.
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
    /// the ids taken out.
    pub(crate) fn expire(&self, now: Instant, bound: Duration) -> Vec<ActorId> {
        let mut out = vec![];
        for e in self.entries.lock().iter_mut() {
            if e.live && now.saturating_duration_since(e.last_heard) > bound {
                e.live = false;
                e.gone.send_replace(true);
                out.push(e.id);
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
mod tests {
    use super::*;

    fn local(n: u64) -> ActorId {
        ActorId::Local(n)
    }

    fn remote(n: u64) -> ActorId {
        ActorId::Remote { node_id: n, pid: n }
    }

    fn load(in_flight: u32, capacity: u32, per_request_ms: u64) -> LoadReport {
        LoadReport {
            in_flight,
            capacity,
            ready_workers: 2,
            per_request: Duration::from_millis(per_request_ms),
            retry_after: Duration::from_millis(per_request_ms),
            draining: false,
        }
    }

    fn table(members: &[(ActorId, LoadReport)]) -> (Table<u64>, Instant) {
        let t = Table::new();
        let now = Instant::now();
        for (i, (id, r)) in members.iter().enumerate() {
            t.join(*id, i as u64, now);
            t.heard(*id, *r, now);
        }
        (t, now)
    }

    fn chosen(t: &Table<u64>, exclude: &[ActorId]) -> Option<ActorId> {
        match t.choose(exclude, &[]) {
            Choice::Member { id, .. } => Some(id),
            _ => None,
        }
    }

    #[test]
    fn a_member_without_a_report_is_not_routed_to() {
        let t: Table<u64> = Table::new();
        t.join(remote(1), 1, Instant::now());
        assert!(matches!(t.choose(&[], &[]), Choice::NoMember));
    }

    #[test]
    fn least_expected_wait_wins_not_least_depth() {
        // B is idle but ten times slower: A with 3 in flight still finishes
        // a new request sooner (4 × 1 ms < 1 × 10 ms).
        let (t, _) = table(&[(remote(1), load(3, 100, 1)), (remote(2), load(0, 100, 10))]);
        assert_eq!(chosen(&t, &[]), Some(remote(1)));
        // At 10 in flight on A (11 ms), B's 10 ms wins.
        let (t, _) = table(&[(remote(1), load(10, 100, 1)), (remote(2), load(0, 100, 10))]);
        assert_eq!(chosen(&t, &[]), Some(remote(2)));
    }

    #[test]
    fn the_slow_member_gets_about_its_share() {
        // With requests held out, A (1 ms) takes ~10× what B (10 ms) takes.
        let (t, _) = table(&[
            (remote(1), load(0, 1000, 1)),
            (remote(2), load(0, 1000, 10)),
        ]);
        let mut a = 0;
        for _ in 0..110 {
            if chosen(&t, &[]) == Some(remote(1)) {
                a += 1;
            }
        }
        assert_eq!(a, 100, "A gets 100, B 10");
    }

    #[test]
    fn ties_go_to_the_local_pool() {
        let (t, _) = table(&[(remote(1), load(0, 10, 1)), (local(2), load(0, 10, 1))]);
        assert_eq!(chosen(&t, &[]), Some(local(2)));
    }

    #[test]
    fn own_requests_count_until_the_next_report() {
        let (t, now) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(0, 10, 1))]);
        // Alternates, because each choice counts against the chosen one.
        let picks: Vec<_> = (0..4).map(|_| chosen(&t, &[]).unwrap()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == remote(1)).count(), 2);
        // A report that includes this router's 2 requests does not count
        // them twice.
        t.heard(remote(1), load(2, 10, 1), now);
        t.heard(remote(2), load(2, 10, 1), now);
        let next: Vec<_> = (0..2).map(|_| chosen(&t, &[]).unwrap()).collect();
        assert_ne!(next[0], next[1]);
    }

    #[test]
    fn a_full_or_draining_member_is_skipped_and_all_full_says_when() {
        let mut draining = load(0, 10, 1);
        draining.draining = true;
        let (t, _) = table(&[(remote(1), load(10, 10, 7)), (remote(2), draining)]);
        match t.choose(&[], &[]) {
            Choice::AllFull { retry_after } => assert_eq!(retry_after, Duration::from_millis(1)),
            _ => panic!("expected AllFull"),
        }
        let (t, _) = table(&[(remote(1), load(10, 10, 7)), (remote(2), load(9, 10, 9))]);
        assert_eq!(chosen(&t, &[]), Some(remote(2)));
        // Now B is full too (9 reported + 1 of ours).
        assert!(matches!(t.choose(&[], &[]), Choice::AllFull { .. }));
    }

    #[test]
    fn a_refusal_marks_the_member_full_until_it_reports_again() {
        let (t, now) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(5, 10, 1))]);
        assert_eq!(chosen(&t, &[]), Some(remote(1)));
        t.done(remote(1), Outcome::Refused, Some(load(0, 10, 1)), now);
        assert_eq!(chosen(&t, &[]), Some(remote(2)));
        t.heard(remote(1), load(0, 10, 1), now);
        assert_eq!(chosen(&t, &[]), Some(remote(1)));
    }

    #[test]
    fn excluded_members_are_skipped() {
        let (t, _) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(5, 10, 1))]);
        assert_eq!(chosen(&t, &[remote(1)]), Some(remote(2)));
        assert!(matches!(
            t.choose(&[remote(1), remote(2)], &[]),
            Choice::AllFull { .. }
        ));
    }

    #[test]
    fn a_silent_member_leaves_routing_and_its_calls_fail_over() {
        let (t, now) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(3, 10, 1))]);
        let Choice::Member { id, gone, .. } = t.choose(&[], &[]) else {
            panic!()
        };
        assert_eq!(id, remote(1));
        assert!(!*gone.borrow());
        // B keeps reporting; A falls silent.
        let later = now + Duration::from_millis(1600);
        t.heard(remote(2), load(3, 10, 1), later);
        assert_eq!(
            t.expire(later, Duration::from_millis(1500)),
            vec![remote(1)]
        );
        assert!(*gone.borrow(), "the call in flight to A is told");
        assert_eq!(chosen(&t, &[]), Some(remote(2)));
        // A speaks again: back in routing, with a fresh signal.
        t.heard(remote(1), load(0, 10, 1), later);
        let Choice::Member { id, gone, .. } = t.choose(&[], &[]) else {
            panic!()
        };
        assert_eq!(id, remote(1));
        assert!(!*gone.borrow());
    }

    #[test]
    fn lost_members_count_as_absent_refused_ones_as_full() {
        let (t, _) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(5, 10, 1))]);
        assert!(matches!(
            t.choose(&[remote(2)], &[remote(1)]),
            Choice::AllFull { .. }
        ));
        assert!(matches!(
            t.choose(&[], &[remote(1), remote(2)]),
            Choice::NoMember
        ));
    }

    #[test]
    fn an_unreachable_member_leaves_routing_at_once_and_tells_its_calls() {
        let (t, now) = table(&[(remote(1), load(0, 10, 1)), (remote(2), load(5, 10, 1))]);
        let Choice::Member { id, gone, .. } = t.choose(&[], &[]) else {
            panic!()
        };
        assert_eq!(id, remote(1));
        t.unreachable(remote(1));
        assert!(*gone.borrow(), "calls in flight to it are told");
        for _ in 0..5 {
            assert_eq!(chosen(&t, &[]), Some(remote(2)), "never picked again");
        }
        // A report brings it back.
        t.heard(remote(1), load(0, 10, 1), now);
        assert_eq!(chosen(&t, &[]), Some(remote(1)));
    }

    fn promise(normalize: bool) -> Promise {
        Promise::new()
            .with("dimensions", 384)
            .with("normalize", normalize)
            .with(NODE_KEY, if normalize { "n" } else { "u" })
    }

    #[test]
    fn a_member_that_promises_otherwise_never_enters_routing() {
        let t: Table<u64> = Table::expecting(Some(promise(false).without(NODE_KEY)));
        let now = Instant::now();
        t.join(remote(1), 1, now);
        t.join(remote(2), 2, now);
        // Before any describe, a report alone does not bring it in.
        t.heard(remote(1), load(0, 10, 1), now);
        assert!(matches!(t.choose(&[], &[]), Choice::NoMember));
        let refusal = t.described(remote(1), load(0, 10, 1), promise(true), now);
        assert_eq!(
            refusal.as_deref(),
            Some("normalize: member has true, expected false")
        );
        assert_eq!(
            t.described(remote(2), load(5, 10, 1), promise(false), now),
            None
        );
        // Idle and faster, but refused: never picked, not even after a report.
        t.heard(remote(1), load(0, 10, 1), now);
        for _ in 0..3 {
            assert_eq!(chosen(&t, &[]), Some(remote(2)));
        }
        let info = t.snapshot();
        let m1 = info.iter().find(|m| m.id == remote(1)).unwrap();
        assert!(!m1.in_routing);
        assert_eq!(m1.label(), "n");
        assert!(m1.refused.as_deref().unwrap().contains("normalize"));
        // Not pinged again; the other one is, already described.
        assert_eq!(
            t.actors()
                .into_iter()
                .map(|(id, _, d)| (id, d))
                .collect::<Vec<_>>(),
            vec![(remote(2), true)]
        );
    }

    #[test]
    fn a_router_that_expects_nothing_takes_any_promise() {
        let t: Table<u64> = Table::new();
        let now = Instant::now();
        t.join(remote(1), 1, now);
        assert_eq!(
            t.described(remote(1), load(0, 10, 1), promise(true), now),
            None
        );
        assert_eq!(chosen(&t, &[]), Some(remote(1)));
    }

    #[test]
    fn a_departed_members_counts_are_kept_under_its_node() {
        let t: Table<u64> = Table::new();
        let now = Instant::now();
        t.join(remote(1), 1, now);
        t.described(remote(1), load(0, 10, 1), promise(false), now);
        for _ in 0..3 {
            assert_eq!(chosen(&t, &[]), Some(remote(1)));
        }
        t.done(remote(1), Outcome::Answered, None, now);
        t.leave(remote(1));
        let d = t.departed();
        let u = d.get("u").copied().unwrap();
        assert_eq!((u.sent, u.answered, u.lost), (3, 1, 2), "{u:?}");
    }

    #[test]
    fn a_member_that_leaves_tells_its_calls() {
        let (t, _) = table(&[(remote(1), load(0, 10, 1))]);
        let Choice::Member { gone, .. } = t.choose(&[], &[]) else {
            panic!()
        };
        t.leave(remote(1));
        assert!(*gone.borrow());
        assert!(matches!(t.choose(&[], &[]), Choice::NoMember));
    }
}
