//! Deadline arithmetic that cannot panic.
//!
//! Every duration that comes from outside (a caller's timeout, a shutdown
//! deadline, a configured budget) is data: `Instant + Duration` panics on
//! overflow, so the pool never writes it. A deadline too far to represent
//! is treated as "never" — about a century away, which no pool outlives.

use std::time::{Duration, Instant};

/// A horizon no pool outlives; durations past it are clamped to it.
pub(crate) const HORIZON: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + d`, clamped to a century so that it never overflows: the one way
/// Corral turns a caller's duration into a deadline (the cluster handle
/// uses it too).
pub fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d.min(HORIZON))
        .or_else(|| now.checked_add(Duration::from_secs(3600)))
        .unwrap_or(now)
}

/// `base + per_unit × units`, saturating.
pub(crate) fn budget(base: Duration, per_unit: Duration, units: usize) -> Duration {
    base.saturating_add(per_unit.saturating_mul(u32::try_from(units).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_clamp_instead_of_panicking() {
        let now = Instant::now();
        let far = after(now, Duration::MAX);
        assert!(far > now + Duration::from_secs(365 * 24 * 3600));
        assert_eq!(
            after(now, Duration::from_millis(5)),
            now + Duration::from_millis(5)
        );
    }

    #[test]
    fn budgets_saturate() {
        assert_eq!(
            budget(Duration::MAX, Duration::MAX, usize::MAX),
            Duration::MAX
        );
        assert_eq!(
            budget(Duration::from_secs(1), Duration::from_millis(5), 10),
            Duration::from_millis(1050)
        );
    }

    #[test]
    fn the_horizon_is_a_century() {
        assert_eq!(HORIZON, Duration::from_secs(3_153_600_000));
        let now = Instant::now();
        assert_eq!(after(now, Duration::MAX), after(now, HORIZON));
    }
}
