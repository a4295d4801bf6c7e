//! The pool's door: admission permits taken on the sender's side, before a
//! request is sent to the supervisor.
//!
//! ractor's mailboxes are unbounded, so the supervisor's own mailbox can be
//! kept short only by refusing on the caller's side. Every way into a pool
//! (the handle, [`crate::PoolRef`] for host actors) takes a [`Permit`]
//! here, and `PoolMsg::Submit` cannot be built without one. The limit
//! (`PoolConfig::door_limit`) is the pool's total capacity (every mailbox
//! full plus a full waiting line) plus room for waiters who left and are not
//! swept out yet: a request past it could only be refused by the supervisor
//! anyway, so the door refuses it at once — counted, with the pool's own
//! `retry_after` estimate.
//!
//! A permit travels inside its request and is released when the request is
//! dropped, i.e. after it is answered: the door's count is exactly the number
//! of requests in the pool or on their way to it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::stats::recorder::Recorder;

/// See the module docs. One per pool.
pub(crate) struct Door {
    in_flight: AtomicUsize,
    limit: usize,
    /// The supervisor's current estimate of when a slot frees, in µs.
    retry_after_us: AtomicU64,
    recorder: Arc<Recorder>,
}

/// The right to have one request in the pool. Released on drop.
pub(crate) struct Permit {
    door: Arc<Door>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.door.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Until the supervisor has measured anything.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_millis(100);

impl Door {
    pub(crate) fn new(limit: usize, recorder: Arc<Recorder>) -> Arc<Self> {
        Arc::new(Self {
            in_flight: AtomicUsize::new(0),
            limit,
            retry_after_us: AtomicU64::new(DEFAULT_RETRY_AFTER.as_micros() as u64),
            recorder,
        })
    }

    /// Takes a permit, or refuses (counted) with the current `retry_after`.
    pub(crate) fn enter(self: &Arc<Self>) -> Result<Permit, Duration> {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let permit = Permit { door: self.clone() };
        if prev >= self.limit {
            drop(permit);
            self.recorder.overloaded();
            return Err(self.retry_after());
        }
        Ok(permit)
    }

    /// Requests holding a permit now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most permits out at once (the pool's whole capacity).
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The pool's current estimate of when a slot frees.
    pub(crate) fn retry_after(&self) -> Duration {
        Duration::from_micros(self.retry_after_us.load(Ordering::Relaxed))
    }

    /// Published by the supervisor whenever it re-estimates.
    pub(crate) fn set_retry_after(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.retry_after_us.store(us, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::PoolStats;

    #[test]
    fn refuses_past_the_limit_counts_it_and_frees_on_drop() {
        let rec = Arc::new(Recorder::new("door-test", 1, &[]));
        let door = Door::new(2, rec.clone());
        door.set_retry_after(Duration::from_millis(7));
        let a = door.enter().unwrap();
        let _b = door.enter().unwrap();
        assert_eq!(door.enter().unwrap_err(), Duration::from_millis(7));
        assert_eq!(door.enter().unwrap_err(), Duration::from_millis(7));
        assert_eq!(door.in_flight(), 2, "refusals hold nothing");
        let mut s = PoolStats::default();
        rec.fill(&mut s);
        assert_eq!(s.rejected_overloaded, 2);
        drop(a);
        assert!(door.enter().is_ok(), "a dropped permit frees its place");
    }

    #[test]
    fn retry_after_starts_at_the_default_and_saturates() {
        let door = Door::new(1, Arc::new(Recorder::new("door-test-2", 1, &[])));
        assert_eq!(door.retry_after(), DEFAULT_RETRY_AFTER);
        door.set_retry_after(Duration::from_micros(1500));
        assert_eq!(door.retry_after(), Duration::from_micros(1500));
        door.set_retry_after(Duration::MAX);
        assert_eq!(door.retry_after(), Duration::from_micros(u64::MAX));
        // A limit of one: the second caller is refused while the first holds.
        let p = door.enter().unwrap();
        assert!(door.enter().is_err());
        drop(p);
        assert_eq!(door.in_flight(), 0);
    }
}
