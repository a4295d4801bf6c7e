//! A fixed-memory latency histogram: log-linear buckets (8 per power of
//! two) from 1 µs to about 17 minutes, so percentiles are within ~9%.

use std::time::Duration;

/// See the module docs.
#[derive(Debug, Clone)]
pub(crate) struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB: u32 = 8;
const OCTAVES: u32 = 30;

impl LatencyHistogram {
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; (SUB * (OCTAVES + 1)) as usize],
            total: 0,
        }
    }

    fn bucket(micros: u64) -> usize {
        if micros < u64::from(SUB) {
            return micros as usize;
        }
        let octave = 63 - micros.leading_zeros(); // >= 3
        let sub = (micros >> (octave - 3)) & u64::from(SUB - 1);
        let idx = (octave - 2) * SUB + sub as u32;
        (idx as usize).min((SUB * (OCTAVES + 1)) as usize - 1)
    }

    fn lower_bound(idx: usize) -> u64 {
        let idx = idx as u32;
        if idx < SUB {
            return u64::from(idx);
        }
        let octave = idx / SUB + 2;
        let sub = u64::from(idx % SUB);
        (u64::from(SUB) | sub) << (octave - 3)
    }

    pub(crate) fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.counts[Self::bucket(us)] += 1;
        self.total += 1;
    }

    #[cfg(test)]
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The `q` quantile (0..=1), as the lower bound of its bucket.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((self.total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Duration::from_micros(Self::lower_bound(i));
            }
        }
        Duration::from_micros(Self::lower_bound(self.counts.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = LatencyHistogram::new();
        for us in 1..=10_000u64 {
            h.record(Duration::from_micros(us));
        }
        let p50 = h.quantile(0.5).as_micros() as f64;
        let p99 = h.quantile(0.99).as_micros() as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.13, "p50 {p50}");
        assert!((p99 / 9900.0 - 1.0).abs() < 0.13, "p99 {p99}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn histogram_buckets_are_monotonic() {
        let mut last = 0;
        for us in 0..100_000u64 {
            let b = LatencyHistogram::bucket(us);
            assert!(b >= last);
            assert!(LatencyHistogram::lower_bound(b) <= us);
            last = b;
        }
    }

    #[test]
    fn empty_histogram_reports_zero() {
        assert_eq!(LatencyHistogram::new().quantile(0.99), Duration::ZERO);
    }
}
