//! The admission decision for a request that arrives: admit it to a worker,
//! put it in the waiting line, or refuse it — and why ("why was this
//! request refused?" is [`decide`]).
//!
//! - A closed pool (draining or stopped) refuses everything `ShuttingDown`;
//!   a request whose end-to-end deadline has already passed is refused
//!   before anything else is looked at.
//! - Callers already waiting go first: a caller who can wait joins the back
//!   of a non-empty line (the supervisor pumps the line just before and
//!   just after). A caller who cannot wait — `Reject`, or a zero wait — may
//!   take room that the waiters could not use: room of the other class, or
//!   a worker the router keeps waiters from ([`Router::pick`] against
//!   [`Router::pick_now`]).
//! - With no worker for it: `Reject` is refused `Overloaded`, a zero wait
//!   `TimedOut`; any other wait joins the line until the sooner of its wait
//!   and its deadline. A full line places the caller anywhere with room
//!   ([`Router::pick_now`]) before it refuses it `Overloaded`: only a pool
//!   with no room at all and no place in line refuses a waiting caller.
//!
//! A pure function of the clock, the request, the workers' loads and the
//! line's state; the router is the only state it touches (its rotation).
//! The supervisor ([`super::state`]) turns the decision into a push, a
//! place in line or an answer, and counts it.

use std::time::Instant;

use super::waiting::Expiry;
use crate::msg::Admission;
use crate::router::{Router, WorkerLoad};
use crate::time;

/// What the decision needs to know of a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// The caller's choice when no worker has room.
    pub(crate) admission: Admission,
    /// Its end-to-end deadline, if any.
    pub(crate) deadline: Option<Instant>,
}

impl Arrival {
    /// Whether the caller can wait for room (a wait longer than zero).
    pub(crate) fn patient(&self) -> bool {
        matches!(self.admission, Admission::Wait(w) if !w.is_zero())
    }
}

/// What the decision needs to know of the waiting line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line {
    /// Callers are waiting (after the supervisor's pump).
    pub(crate) occupied: bool,
    /// The line can take one more (after entries whose caller left are
    /// swept out).
    pub(crate) has_room: bool,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The pool is draining or stopped.
    ShuttingDown,
    /// Its end-to-end deadline passed before it was admitted.
    DeadlinePassed,
    /// No worker has room and the caller asked not to wait, or the line is
    /// full too.
    Overloaded,
    /// No worker has room and the caller's wait is zero.
    NoWait,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send it to this worker (an index into the loads).
    Admit(usize),
    /// Put it at the back of the waiting line until `until`, then tell its
    /// caller what `expiry` says.
    Wait { until: Instant, expiry: Expiry },
    /// Answer it now.
    Refuse(Refusal),
}

/// Decides what happens to a request arriving at `now`; see the module
/// docs. `closed`: the pool is draining or stopped. `loads` are the ready
/// workers', with `has_room` for the request's class. A router's answer
/// that names a worker without room (or none that exists) counts as no
/// answer: the bound is never broken.
pub(crate) fn decide(
    now: Instant,
    arrival: Arrival,
    loads: &[WorkerLoad],
    line: Line,
    closed: bool,
    router: &mut dyn Router,
) -> Decision {
    if closed {
        return Decision::Refuse(Refusal::ShuttingDown);
    }
    if arrival.deadline.is_some_and(|d| d <= now) {
        return Decision::Refuse(Refusal::DeadlinePassed);
    }
    let patient = arrival.patient();
    let with_room = |k: Option<usize>| k.filter(|&k| loads.get(k).is_some_and(|l| l.has_room));
    if !line.occupied || !patient {
        let pick = if patient {
            router.pick(loads)
        } else {
            router.pick_now(loads)
        };
        if let Some(k) = with_room(pick) {
            return Decision::Admit(k);
        }
    }
    let wait = match arrival.admission {
        Admission::Reject => return Decision::Refuse(Refusal::Overloaded),
        Admission::Wait(w) if w.is_zero() => return Decision::Refuse(Refusal::NoWait),
        Admission::Wait(w) => w,
        // Not reached: `PoolRef::admit` resolves it to a wait. Were it
        // reached, nothing would wait without a limit.
        Admission::Default => return Decision::Refuse(Refusal::Overloaded),
    };
    if !line.has_room {
        return match with_room(router.pick_now(loads)) {
            Some(k) => Decision::Admit(k),
            None => Decision::Refuse(Refusal::Overloaded),
        };
    }
    let waited_out = time::after(now, wait);
    let (until, expiry) = match arrival.deadline {
        Some(d) if d < waited_out => (d, Expiry::Deadline),
        _ => (waited_out, Expiry::Timeout),
    };
    Decision::Wait { until, expiry }
}

#[cfg(test)]
mod tests;
