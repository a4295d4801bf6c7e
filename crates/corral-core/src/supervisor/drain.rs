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
