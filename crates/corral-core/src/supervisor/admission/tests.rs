use std::time::Duration;

use super::*;
use crate::router::{LeastDepth, LeastWait};

fn load(depth: usize, has_room: bool, service_ns: u64) -> WorkerLoad {
    WorkerLoad {
        depth,
        has_room,
        service_ns,
        running_ns: 0,
    }
}

fn room(depth: usize) -> WorkerLoad {
    load(depth, true, 1_000)
}

fn full() -> WorkerLoad {
    load(3, false, 1_000)
}

/// Busy with its first request, not measured yet.
fn cold() -> WorkerLoad {
    load(1, true, 0)
}

const EMPTY: Line = Line {
    occupied: false,
    has_room: true,
};
const OCCUPIED: Line = Line {
    occupied: true,
    has_room: true,
};
const FULL_LINE: Line = Line {
    occupied: true,
    has_room: false,
};

fn arrival(admission: Admission) -> Arrival {
    Arrival {
        admission,
        deadline: None,
    }
}

const REJECT: Admission = Admission::Reject;
const NO_WAIT: Admission = Admission::Wait(Duration::ZERO);
const WAIT: Admission = Admission::Wait(Duration::from_secs(2));

fn run(a: Arrival, loads: &[WorkerLoad], line: Line) -> Decision {
    decide(
        Instant::now(),
        a,
        loads,
        line,
        false,
        &mut LeastWait::default(),
    )
}

#[test]
fn a_closed_pool_refuses_everything_even_with_room() {
    for adm in [REJECT, NO_WAIT, WAIT] {
        let d = decide(
            Instant::now(),
            arrival(adm),
            &[room(0)],
            EMPTY,
            true,
            &mut LeastWait::default(),
        );
        assert_eq!(d, Decision::Refuse(Refusal::ShuttingDown));
    }
}

#[test]
fn a_passed_deadline_is_refused_before_anything_else() {
    let now = Instant::now();
    let late = Arrival {
        admission: WAIT,
        deadline: Some(now),
    };
    let d = decide(
        now,
        late,
        &[room(0)],
        EMPTY,
        false,
        &mut LeastWait::default(),
    );
    assert_eq!(d, Decision::Refuse(Refusal::DeadlinePassed));
    let on_time = Arrival {
        deadline: Some(now + Duration::from_nanos(1)),
        ..late
    };
    let d = decide(
        now,
        on_time,
        &[room(0)],
        EMPTY,
        false,
        &mut LeastWait::default(),
    );
    assert_eq!(d, Decision::Admit(0));
}

#[test]
fn with_room_every_caller_is_admitted_to_the_routers_pick() {
    for adm in [REJECT, NO_WAIT, WAIT] {
        assert_eq!(
            run(arrival(adm), &[room(3), full(), room(1)], EMPTY),
            Decision::Admit(2)
        );
    }
}

#[test]
fn without_room_each_caller_gets_what_it_chose() {
    let loads = [full(), full()];
    assert_eq!(
        run(arrival(REJECT), &loads, EMPTY),
        Decision::Refuse(Refusal::Overloaded)
    );
    assert_eq!(
        run(arrival(NO_WAIT), &loads, EMPTY),
        Decision::Refuse(Refusal::NoWait)
    );
    let now = Instant::now();
    let d = decide(
        now,
        arrival(WAIT),
        &loads,
        EMPTY,
        false,
        &mut LeastWait::default(),
    );
    assert_eq!(
        d,
        Decision::Wait {
            until: now + Duration::from_secs(2),
            expiry: Expiry::Timeout
        }
    );
    // No ready worker at all: the same.
    assert!(matches!(
        run(arrival(WAIT), &[], EMPTY),
        Decision::Wait { .. }
    ));
    assert_eq!(
        run(arrival(REJECT), &[], EMPTY),
        Decision::Refuse(Refusal::Overloaded)
    );
}

#[test]
fn a_wait_ends_at_the_sooner_of_its_length_and_the_deadline_and_never_overflows() {
    let now = Instant::now();
    let soon = now + Duration::from_millis(500);
    let a = Arrival {
        admission: WAIT,
        deadline: Some(soon),
    };
    let d = decide(now, a, &[full()], EMPTY, false, &mut LeastWait::default());
    assert_eq!(
        d,
        Decision::Wait {
            until: soon,
            expiry: Expiry::Deadline
        }
    );
    // A deadline later than the wait: the wait decides.
    let a = Arrival {
        admission: Admission::Wait(Duration::from_millis(100)),
        deadline: Some(soon),
    };
    let d = decide(now, a, &[full()], EMPTY, false, &mut LeastWait::default());
    assert_eq!(
        d,
        Decision::Wait {
            until: now + Duration::from_millis(100),
            expiry: Expiry::Timeout
        }
    );
    // A deadline at exactly the end of the wait: the wait's timeout (what
    // the caller chose runs out first; counted as a timeout, not a
    // deadline).
    let a = Arrival {
        admission: Admission::Wait(Duration::from_millis(500)),
        deadline: Some(soon),
    };
    let d = decide(now, a, &[full()], EMPTY, false, &mut LeastWait::default());
    assert_eq!(
        d,
        Decision::Wait {
            until: soon,
            expiry: Expiry::Timeout
        }
    );
    // Duration::MAX is clamped, not added.
    let a = arrival(Admission::Wait(Duration::MAX));
    let d = decide(now, a, &[full()], EMPTY, false, &mut LeastWait::default());
    assert!(matches!(d, Decision::Wait { until, expiry: Expiry::Timeout } if until > now));
}

#[test]
fn callers_already_waiting_go_first_but_an_impatient_caller_takes_room_they_cannot_use() {
    let loads = [room(0)];
    // A caller who can wait joins the line, room or not.
    assert!(matches!(
        run(arrival(WAIT), &loads, OCCUPIED),
        Decision::Wait { .. }
    ));
    // One who cannot takes the room (the line was just pumped: what room
    // is left, the waiters could not use).
    assert_eq!(run(arrival(REJECT), &loads, OCCUPIED), Decision::Admit(0));
    assert_eq!(run(arrival(NO_WAIT), &loads, OCCUPIED), Decision::Admit(0));
    assert_eq!(
        run(arrival(REJECT), &[full()], OCCUPIED),
        Decision::Refuse(Refusal::Overloaded)
    );
}

#[test]
fn a_worker_on_probation_keeps_waiting_callers_back_but_never_refuses_anyone() {
    let loads = [cold(), cold()];
    // A patient caller waits for the first worker to be measured…
    assert!(matches!(
        run(arrival(WAIT), &loads, EMPTY),
        Decision::Wait { .. }
    ));
    // …an impatient one is placed on a worker with room.
    assert!(matches!(
        run(arrival(REJECT), &loads, EMPTY),
        Decision::Admit(_)
    ));
    assert!(matches!(
        run(arrival(NO_WAIT), &loads, EMPTY),
        Decision::Admit(_)
    ));
    // A patient caller who finds the line full is placed too, rather than
    // refused with room.
    assert!(matches!(
        run(arrival(WAIT), &loads, FULL_LINE),
        Decision::Admit(_)
    ));
}

#[test]
fn a_full_line_and_no_room_refuse_a_waiting_caller() {
    assert_eq!(
        run(arrival(WAIT), &[full(), full()], FULL_LINE),
        Decision::Refuse(Refusal::Overloaded)
    );
    // Room, though, admits it (a patient caller at a full line).
    assert_eq!(
        run(arrival(WAIT), &[full(), room(0)], FULL_LINE),
        Decision::Admit(1)
    );
}

/// A router that always names the same index, room or not.
struct Always(usize);

impl Router for Always {
    fn pick(&mut self, _: &[WorkerLoad]) -> Option<usize> {
        Some(self.0)
    }
}

#[test]
fn a_router_that_names_a_full_or_missing_worker_cannot_break_the_bound() {
    let now = Instant::now();
    for k in [0, 7] {
        let d = decide(
            now,
            arrival(REJECT),
            &[full(), room(0)],
            EMPTY,
            false,
            &mut Always(k),
        );
        assert_eq!(d, Decision::Refuse(Refusal::Overloaded), "router said {k}");
        let d = decide(
            now,
            arrival(WAIT),
            &[full(), room(0)],
            FULL_LINE,
            false,
            &mut Always(k),
        );
        assert_eq!(d, Decision::Refuse(Refusal::Overloaded), "router said {k}");
    }
    let d = decide(
        now,
        arrival(REJECT),
        &[full(), room(0)],
        EMPTY,
        false,
        &mut Always(1),
    );
    assert_eq!(d, Decision::Admit(1));
}

#[test]
fn the_routers_policy_decides_among_workers_with_room() {
    let now = Instant::now();
    let loads = [room(2), room(1)];
    let d = decide(
        now,
        arrival(WAIT),
        &loads,
        EMPTY,
        false,
        &mut LeastDepth::default(),
    );
    assert_eq!(d, Decision::Admit(1));
}
