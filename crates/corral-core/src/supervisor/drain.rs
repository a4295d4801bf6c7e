//! Shutdown: stop admitting, let admitted work finish until a deadline, then
//! answer whatever is left `ShuttingDown`. This type holds the drain's state
//! and decides when it is over; the supervisor does the stopping.

use std::time::{Duration, Instant};

use ractor::RpcReplyPort;

use crate::msg::ShutdownReport;
use crate::time;

/// A drain in progress (or finished: `reply` taken).
pub(crate) struct Drain {
    deadline: Instant,
    reply: Option<RpcReplyPort<ShutdownReport>>,
    report: ShutdownReport,
}

impl Drain {
    /// Starts a drain asked for at `now` with `deadline` to finish (any
    /// length: clamped, never an overflow). `refused_waiting` callers were
    /// refused from the waiting line as it began.
    pub(crate) fn new(
        now: Instant,
        deadline: Duration,
        refused_waiting: usize,
        reply: RpcReplyPort<ShutdownReport>,
    ) -> Self {
        Self {
            deadline: time::after(now, deadline),
            reply: Some(reply),
            report: ShutdownReport {
                refused_waiting,
                ..ShutdownReport::default()
            },
        }
    }

    /// The report so far (for a second shutdown call during the drain).
    pub(crate) fn report(&self) -> ShutdownReport {
        self.report
    }

    /// Whether the drain is over: the pool is idle or the deadline passed.
    pub(crate) fn is_over(&self, idle: bool, now: Instant) -> bool {
        idle || now >= self.deadline
    }

    /// Ends the drain: `aborted` requests were answered `ShuttingDown`.
    pub(crate) fn finish(&mut self, idle: bool, aborted: usize) {
        self.report.aborted = aborted;
        self.report.drained = idle;
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(self.report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    const MS: Duration = Duration::from_millis(1);

    fn drain(now: Instant, deadline: Duration) -> (Drain, oneshot::Receiver<ShutdownReport>) {
        let (tx, rx) = oneshot::channel();
        (Drain::new(now, deadline, 3, tx.into()), rx)
    }

    #[test]
    fn a_drain_is_over_when_idle_or_at_its_deadline() {
        let t0 = Instant::now();
        let (d, _rx) = drain(t0, 100 * MS);
        assert!(!d.is_over(false, t0));
        assert!(!d.is_over(false, t0 + 99 * MS));
        assert!(d.is_over(false, t0 + 100 * MS), "due at the deadline");
        assert!(d.is_over(true, t0), "idle ends it at once");
        let (never, _rx) = drain(t0, Duration::MAX);
        assert!(!never.is_over(false, t0 + 1_000_000 * MS));
    }

    #[test]
    fn the_report_counts_refused_waiters_and_goes_out_once() {
        let t0 = Instant::now();
        let (mut d, mut rx) = drain(t0, 100 * MS);
        assert_eq!(
            d.report(),
            ShutdownReport {
                refused_waiting: 3,
                ..ShutdownReport::default()
            }
        );
        assert!(rx.try_recv().is_err(), "no report before the end");
        d.finish(false, 2);
        let sent = rx.try_recv().unwrap();
        assert_eq!(
            sent,
            ShutdownReport {
                refused_waiting: 3,
                aborted: 2,
                drained: false,
            }
        );
        assert_eq!(d.report(), sent);
        d.finish(true, 0);
        assert!(d.report().drained);
    }
}
