//! Stuck and deadlocked workers, detected as a pure function of what a
//! worker's probe shows and the time now. "Why was this worker restarted?"
//! starts here.
//!
//! - *stuck*: a batch running past `stuck_base + stuck_per_token × cost`;
//! - *deadlocked*: the worker actor left a ping unanswered past
//!   `ping_timeout`;
//! - *load hung*: the model load ran past `load_timeout`.
//!
//! (Panics, load errors and actors that stop are reported by the worker or
//! by ractor, not detected here.) The watchdog tick calls [`inspect`] on
//! every live worker; a detection says when the failure became detectable,
//! so the lateness of each detection can be measured.

use std::time::{Duration, Instant};

use crate::config::PoolConfig;
use crate::stats::recorder::Failure;
use crate::time;
use crate::worker::Probe;

/// The budgets a probe is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) stuck_base: Duration,
    pub(crate) stuck_per_token: Duration,
    pub(crate) ping_timeout: Duration,
    pub(crate) load_timeout: Duration,
}

impl Limits {
    pub(crate) fn of(c: &PoolConfig) -> Self {
        Self {
            stuck_base: c.stuck_base,
            stuck_per_token: c.stuck_per_token,
            ping_timeout: c.ping_timeout,
            load_timeout: c.load_timeout,
        }
    }
}

/// A failure found by [`inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detection {
    pub(crate) failure: Failure,
    /// When the failure became detectable (its budget ran out).
    pub(crate) since: Instant,
}

/// What, if anything, is wrong with the worker `p` describes at `now`.
pub(crate) fn inspect(p: &Probe, now: Instant, limits: &Limits) -> Option<Detection> {
    if !p.ready {
        let due = time::after(p.started, limits.load_timeout);
        return (now > due).then_some(Detection {
            failure: Failure::LoadHung,
            since: due,
        });
    }
    if let Some(busy) = p.busy {
        let due = time::after(
            busy.since,
            time::budget(limits.stuck_base, limits.stuck_per_token, busy.cost),
        );
        if now > due {
            return Some(Detection {
                failure: Failure::Stuck,
                since: due,
            });
        }
    }
    let sent = p.ping_sent?;
    let due = time::after(sent, limits.ping_timeout);
    (now > due).then_some(Detection {
        failure: Failure::Deadlock,
        since: due,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::Busy;

    const MS: Duration = Duration::from_millis(1);

    fn limits() -> Limits {
        Limits {
            stuck_base: 100 * MS,
            stuck_per_token: 2 * MS,
            ping_timeout: 50 * MS,
            load_timeout: 1000 * MS,
        }
    }

    fn probe(t0: Instant) -> Probe {
        Probe {
            ready: true,
            started: t0,
            busy: None,
            ping_sent: None,
        }
    }

    #[test]
    fn an_idle_worker_that_answers_pings_is_fine() {
        let t0 = Instant::now();
        assert_eq!(inspect(&probe(t0), t0 + 10_000 * MS, &limits()), None);
    }

    #[test]
    fn the_stuck_budget_grows_with_the_batch_cost() {
        let t0 = Instant::now();
        let p = Probe {
            busy: Some(Busy {
                since: t0,
                cost: 50,
            }),
            ..probe(t0)
        };
        // 100 ms + 50 × 2 ms = 200 ms.
        assert_eq!(inspect(&p, t0 + 200 * MS, &limits()), None);
        let d = inspect(&p, t0 + 201 * MS, &limits()).unwrap();
        assert_eq!(d.failure, Failure::Stuck);
        assert_eq!(d.since, t0 + 200 * MS);
    }

    #[test]
    fn an_unanswered_ping_past_its_timeout_is_a_deadlock() {
        let t0 = Instant::now();
        let p = Probe {
            ping_sent: Some(t0),
            ..probe(t0)
        };
        assert_eq!(inspect(&p, t0 + 50 * MS, &limits()), None);
        let d = inspect(&p, t0 + 51 * MS, &limits()).unwrap();
        assert_eq!((d.failure, d.since), (Failure::Deadlock, t0 + 50 * MS));
    }

    #[test]
    fn a_load_past_its_timeout_is_hung_and_nothing_else_counts_while_loading() {
        let t0 = Instant::now();
        let p = Probe {
            ready: false,
            ping_sent: Some(t0),
            ..probe(t0)
        };
        assert_eq!(inspect(&p, t0 + 999 * MS, &limits()), None);
        assert_eq!(
            inspect(&p, t0 + 1001 * MS, &limits()).map(|d| d.failure),
            Some(Failure::LoadHung)
        );
    }

    #[test]
    fn stuck_wins_over_deadlock_and_huge_budgets_never_fire() {
        let t0 = Instant::now();
        let p = Probe {
            busy: Some(Busy { since: t0, cost: 1 }),
            ping_sent: Some(t0),
            ..probe(t0)
        };
        let d = inspect(&p, t0 + 1000 * MS, &limits()).unwrap();
        assert_eq!(d.failure, Failure::Stuck);
        let huge = Limits {
            stuck_base: Duration::MAX,
            stuck_per_token: Duration::MAX,
            ping_timeout: Duration::MAX,
            load_timeout: Duration::MAX,
        };
        assert_eq!(inspect(&p, t0 + 1000 * MS, &huge), None);
    }

    #[test]
    fn a_load_is_hung_only_past_its_timeout_and_says_since_when() {
        let t0 = Instant::now();
        let p = Probe {
            ready: false,
            ..probe(t0)
        };
        assert_eq!(inspect(&p, t0 + 1000 * MS, &limits()), None);
        let d = inspect(&p, t0 + 1001 * MS, &limits()).unwrap();
        assert_eq!((d.failure, d.since), (Failure::LoadHung, t0 + 1000 * MS));
    }

    #[test]
    fn limits_come_from_the_config() {
        let c = PoolConfig {
            stuck_base: MS,
            stuck_per_token: 2 * MS,
            ping_timeout: 3 * MS,
            load_timeout: 4 * MS,
            ..PoolConfig::default()
        };
        let l = Limits::of(&c);
        assert_eq!(
            (
                l.stuck_base,
                l.stuck_per_token,
                l.ping_timeout,
                l.load_timeout
            ),
            (MS, 2 * MS, 3 * MS, 4 * MS)
        );
    }
}
