//! The routing policy and the bookkeeping, on a table driven by hand.

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

#[test]
fn a_member_that_never_describes_is_refused_for_no_promise_until_it_does() {
    let t: Table<u64> = Table::expecting(Some(promise(false).without(NODE_KEY)));
    let now = Instant::now();
    let bound = Duration::from_millis(1500);
    t.join(remote(1), 1, now);
    // Silent, but within twice the bound: not refused, asked to describe.
    t.expire(now + 2 * bound, bound);
    assert_eq!(t.snapshot()[0].refused, None);
    t.expire(now + 2 * bound + Duration::from_millis(1), bound);
    let m = &t.snapshot()[0];
    assert!(!m.in_routing);
    let reason = m.refused.as_deref().unwrap();
    assert!(reason.starts_with("no promise: "), "{reason}");
    assert!(reason.contains("3s"), "{reason}");
    // Still asked to describe; a report alone does not bring it in.
    assert_eq!(
        t.actors()
            .into_iter()
            .map(|(id, _, d)| (id, d))
            .collect::<Vec<_>>(),
        vec![(remote(1), false)]
    );
    t.heard(remote(1), load(0, 10, 1), now);
    assert!(matches!(t.choose(&[], &[]), Choice::NoMember));
    // Its answer, at last, lifts the refusal: judged on its promise.
    assert_eq!(
        t.described(remote(1), load(0, 10, 1), promise(false), now),
        None
    );
    let m = &t.snapshot()[0];
    assert_eq!(m.refused, None);
    assert!(m.in_routing);
    assert_eq!(chosen(&t, &[]), Some(remote(1)));
    // A late answer that disagrees is refused for good, with that reason.
    t.join(remote(2), 2, now);
    t.expire(now + 3 * bound, bound);
    let refusal = t.described(remote(2), load(0, 10, 1), promise(true), now);
    assert!(refusal.unwrap().contains("normalize"));
    let ids: Vec<_> = t.actors().into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(
        ids,
        vec![remote(1)],
        "the disagreeing one is not asked again"
    );
}

#[test]
fn a_router_that_expects_nothing_routes_a_silent_member_on_its_pings() {
    let t: Table<u64> = Table::new();
    let now = Instant::now();
    let bound = Duration::from_millis(1500);
    t.join(remote(1), 1, now);
    // Asked to describe, not pinged (it has sent no report).
    assert!(!t.actors()[0].2);
    assert!(matches!(t.choose(&[], &[]), Choice::NoMember));
    t.expire(now + 2 * bound + Duration::from_millis(1), bound);
    let m = &t.snapshot()[0];
    assert_eq!((m.refused.as_deref(), m.promise.is_some()), (None, true));
    // Pinged from now on; its next report brings it in.
    assert!(t.actors()[0].2);
    t.heard(remote(1), load(0, 10, 1), now + 3 * bound);
    assert_eq!(chosen(&t, &[]), Some(remote(1)));
}
