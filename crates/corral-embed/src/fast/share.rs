//! How many threads a forward pass may use right now: the machine's cores
//! shared among the forward passes running in the process.
//!
//! A pool runs one worker per core, each with one thread, so that under load
//! the workers never ask for more threads than there are cores. That leaves
//! a lone request on one core while the others idle. A [`FastBert`] given a
//! ceiling above its own thread count
//! ([`FastBert::set_max_threads`](super::FastBert::set_max_threads)) asks
//! instead, before each layer, how many forward passes are running: alone it
//! takes up to its ceiling; beside others it takes its share of the cores
//! (cores ÷ forwards running), never fewer than its own threads. Asked
//! again at every layer, so a forward that started alone gives its extra
//! threads back within one layer of another one starting.
//!
//! Every fast forward pass in the process counts itself while it runs
//! ([`Share::enter`]), whatever its ceiling, so pinned workers leave room
//! for elastic ones too. candle's engine does not count (its workers keep
//! their fixed thread pools).
//!
//! [`FastBert`]: super::FastBert

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The cores of the process and the forward passes running on them.
#[derive(Debug)]
pub(crate) struct Share {
    /// Cores to share out; 0 until first asked (then the machine's).
    cores: OnceLock<usize>,
    running: AtomicUsize,
}

/// The process's one [`Share`]: every [`FastBert`](super::FastBert) uses it
/// unless a test gives it another.
pub(crate) static PROCESS: Share = Share::new();

impl Share {
    /// A share of the machine's cores (`std::thread::available_parallelism`).
    pub(crate) const fn new() -> Self {
        Self {
            cores: OnceLock::new(),
            running: AtomicUsize::new(0),
        }
    }

    /// A share of exactly `cores` cores (tests).
    #[cfg(test)]
    pub(crate) fn with_cores(cores: usize) -> Self {
        let me = Self::new();
        let _ = me.cores.set(cores.max(1));
        me
    }

    /// Cores shared out.
    pub(crate) fn cores(&self) -> usize {
        *self
            .cores
            .get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Counts a forward pass as running until the guard drops.
    pub(crate) fn enter(&self) -> Running<'_> {
        self.running.fetch_add(1, Ordering::AcqRel);
        Running { share: self }
    }

    /// Forward passes running now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
}

/// One forward pass counted as running in its [`Share`].
#[derive(Debug)]
pub(crate) struct Running<'a> {
    share: &'a Share,
}

impl Running<'_> {
    /// Threads for this forward's next step: its share of the cores now,
    /// within `floor..=ceiling` (see [`threads_for`]).
    pub(crate) fn threads(&self, floor: usize, ceiling: usize) -> usize {
        threads_for(self.share.cores(), self.share.running(), floor, ceiling)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.share.running.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The threads of one forward among `running` (this one included) on
/// `cores`: `cores / running`, but at least `floor` (the forward's own
/// threads, which it always keeps) and at most `ceiling` (what its thread
/// pool holds); `floor` wins over `ceiling`.
pub(crate) fn threads_for(cores: usize, running: usize, floor: usize, ceiling: usize) -> usize {
    let share = cores / running.max(1);
    share.min(ceiling).max(floor).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_forward_takes_every_core_up_to_its_ceiling() {
        assert_eq!(threads_for(2, 1, 1, 2), 2);
        assert_eq!(threads_for(16, 1, 1, 4), 4);
        assert_eq!(threads_for(16, 1, 1, 16), 16);
    }

    #[test]
    fn forwards_side_by_side_split_the_cores_and_keep_their_floor() {
        assert_eq!(threads_for(2, 2, 1, 2), 1);
        assert_eq!(threads_for(8, 3, 1, 8), 2);
        assert_eq!(threads_for(2, 5, 1, 2), 1, "never below one");
        assert_eq!(threads_for(4, 4, 2, 4), 2, "never below the floor");
        assert_eq!(
            threads_for(2, 1, 3, 2),
            3,
            "the floor wins over the ceiling"
        );
        assert_eq!(threads_for(2, 0, 0, 0), 1);
    }

    #[test]
    fn running_counts_guards_while_they_live() {
        let share = Share::with_cores(4);
        assert_eq!(share.running(), 0);
        let a = share.enter();
        assert_eq!(a.threads(1, 4), 4);
        {
            let _b = share.enter();
            assert_eq!(share.running(), 2);
            assert_eq!(a.threads(1, 4), 2);
        }
        assert_eq!(share.running(), 1);
        assert_eq!(a.threads(1, 4), 4);
        drop(a);
        assert_eq!(share.running(), 0);
    }
}
