//! The supervisor's bounded waiting line: callers that chose to wait for
//! room, and requests taken back from a failed worker waiting to be
//! re-routed.
//!
//! - Callers are served in arrival order, per request class: a waiter whose
//!   class has no room does not block waiters of the other class.
//! - Re-routed requests go to the head of the line, past the bound: they were
//!   admitted once already, and there are at most one worker's worth of them.
//! - A caller who leaves frees its place: when the line is full, entries
//!   whose caller is gone are swept out before a newcomer is refused, and
//!   they are never counted as timeouts.
//! - The line owns its published length (an atomic the compute threads read
//!   to decide whether freed slots are worth announcing).
//!
//! A pure policy over any [`Waiting`] item: no actors, no clock of its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::job::Class;

/// What the line needs to know of an item.
pub(crate) trait Waiting {
    /// Its caller went away: nobody is waiting for it any more.
    fn is_gone(&self) -> bool;
    /// Which mailbox bound it needs room in.
    fn class(&self) -> Class;
}

/// What the caller is told if a waiter's deadline passes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Its wait for room (the admission timeout) ran out.
    Timeout,
    /// Its end-to-end deadline passed.
    Deadline,
    /// A re-routed request found no room in time.
    WorkerLost,
}

/// One entry in the line.
#[derive(Debug)]
pub(crate) struct Waiter<T> {
    pub(crate) item: T,
    pub(crate) since: Instant,
    pub(crate) deadline: Instant,
    pub(crate) expiry: Expiry,
}

/// What one pump did.
#[derive(Debug, Default)]
pub(crate) struct Pumped {
    /// How long each admitted caller had waited (re-routed requests are not
    /// callers and are not listed).
    pub(crate) waits: Vec<Duration>,
    /// Entries dropped because their caller was gone.
    pub(crate) gone: usize,
}

/// See the module docs.
pub(crate) struct WaitingLine<T> {
    line: VecDeque<Waiter<T>>,
    bound: usize,
    published: Arc<AtomicUsize>,
}

impl<T: Waiting> WaitingLine<T> {
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            line: VecDeque::new(),
            bound,
            published: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The line's length, readable from any thread.
    pub(crate) fn published(&self) -> Arc<AtomicUsize> {
        self.published.clone()
    }

    fn publish(&self) {
        self.published.store(self.line.len(), Ordering::Release);
    }

    pub(crate) fn len(&self) -> usize {
        self.line.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Queues a caller at the back, or hands it back if the line is full
    /// even after entries whose caller left are swept out. Returns how many
    /// such entries were swept.
    pub(crate) fn push_back(&mut self, w: Waiter<T>) -> (Result<(), Waiter<T>>, usize) {
        let mut gone = 0;
        if self.line.len() >= self.bound {
            gone = self.sweep_gone();
        }
        let r = if self.line.len() < self.bound {
            self.line.push_back(w);
            Ok(())
        } else {
            Err(w)
        };
        self.publish();
        (r, gone)
    }

    /// Whether the line can take one more, once entries whose caller left
    /// are swept out if it is at its bound. Returns that, and how many such
    /// entries were swept.
    pub(crate) fn make_room(&mut self) -> (bool, usize) {
        let gone = if self.line.len() >= self.bound {
            self.sweep_gone()
        } else {
            0
        };
        (self.line.len() < self.bound, gone)
    }

    /// Queues a re-routed request at the head (past the bound).
    pub(crate) fn push_front(&mut self, w: Waiter<T>) {
        self.line.push_front(w);
        self.publish();
    }

    /// Drops every entry whose caller is gone; returns how many.
    pub(crate) fn sweep_gone(&mut self) -> usize {
        let before = self.line.len();
        self.line.retain(|w| !w.item.is_gone());
        self.publish();
        before - self.line.len()
    }

    /// Offers waiters to `admit`, in order, while there is room. `admit`
    /// hands an item back when its class has no room; that class is then
    /// blocked for the rest of this pump, the other class goes on.
    pub(crate) fn pump(
        &mut self,
        now: Instant,
        mut admit: impl FnMut(T) -> Result<(), T>,
    ) -> Pumped {
        let mut out = Pumped::default();
        let mut blocked = Blocked::default();
        let mut i = 0;
        while i < self.line.len() && !blocked.all() {
            let class = self.line[i].item.class();
            if blocked.has(class) {
                i += 1;
                continue;
            }
            let Some(w) = self.line.remove(i) else { break };
            if w.item.is_gone() {
                out.gone += 1;
                continue;
            }
            match admit(w.item) {
                Ok(()) => {
                    if w.expiry != Expiry::WorkerLost {
                        out.waits.push(now.saturating_duration_since(w.since));
                    }
                }
                Err(item) => {
                    self.line.insert(i, Waiter { item, ..w });
                    blocked.set(class);
                    i += 1;
                }
            }
        }
        self.publish();
        out
    }

    /// Removes and returns the entries whose deadline has passed (gone
    /// callers among them are the caller's to tell apart).
    pub(crate) fn expire(&mut self, now: Instant) -> Vec<Waiter<T>> {
        if !self.line.iter().any(|w| w.deadline <= now) {
            return Vec::new();
        }
        let (expired, kept): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.line)
            .into_iter()
            .partition(|w| w.deadline <= now);
        self.line = kept;
        self.publish();
        expired.into()
    }

    /// Empties the line.
    pub(crate) fn drain(&mut self) -> Vec<Waiter<T>> {
        let all = self.line.drain(..).collect();
        self.publish();
        all
    }
}

/// Which classes have no room in this pump.
#[derive(Default)]
struct Blocked {
    single: bool,
    batch: bool,
}

impl Blocked {
    fn has(&self, c: Class) -> bool {
        match c {
            Class::Single => self.single,
            Class::Batch => self.batch,
        }
    }

    fn set(&mut self, c: Class) {
        match c {
            Class::Single => self.single = true,
            Class::Batch => self.batch = true,
        }
    }

    fn all(&self) -> bool {
        self.single && self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Debug, Clone)]
    struct Item {
        id: u32,
        class: Class,
        gone: Rc<Cell<bool>>,
    }

    impl Waiting for Item {
        fn is_gone(&self) -> bool {
            self.gone.get()
        }
        fn class(&self) -> Class {
            self.class
        }
    }

    fn item(id: u32, class: Class) -> Item {
        Item {
            id,
            class,
            gone: Rc::new(Cell::new(false)),
        }
    }

    fn waiter(item: Item, t: Instant, deadline: Duration) -> Waiter<Item> {
        Waiter {
            item,
            since: t,
            deadline: t + deadline,
            expiry: Expiry::Timeout,
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn callers_are_served_in_arrival_order() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        for id in 0..5 {
            line.push_back(waiter(item(id, Class::Single), t, S))
                .0
                .unwrap();
        }
        let mut served = Vec::new();
        let mut room = 3;
        let p = line.pump(t + S / 2, |it| {
            if room == 0 {
                return Err(it);
            }
            room -= 1;
            served.push(it.id);
            Ok(())
        });
        assert_eq!(served, [0, 1, 2]);
        assert_eq!(p.waits, [S / 2; 3]);
        assert_eq!(line.len(), 2);
        assert_eq!(line.published().load(Ordering::Acquire), 2);
        line.pump(t, |it| {
            served.push(it.id);
            Ok(())
        });
        assert_eq!(served, [0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_full_class_does_not_block_the_other() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        line.push_back(waiter(item(0, Class::Batch), t, S))
            .0
            .unwrap();
        line.push_back(waiter(item(1, Class::Single), t, S))
            .0
            .unwrap();
        line.push_back(waiter(item(2, Class::Batch), t, S))
            .0
            .unwrap();
        line.push_back(waiter(item(3, Class::Single), t, S))
            .0
            .unwrap();
        let mut served = Vec::new();
        line.pump(t, |it| {
            if it.class == Class::Batch {
                return Err(it);
            }
            served.push(it.id);
            Ok(())
        });
        assert_eq!(served, [1, 3]);
        let left: Vec<u32> = line.drain().into_iter().map(|w| w.item.id).collect();
        assert_eq!(left, [0, 2], "the blocked class keeps its order");
    }

    #[test]
    fn a_caller_who_left_frees_its_place_at_once() {
        let t = Instant::now();
        let mut line = WaitingLine::new(3);
        let items: Vec<Item> = (0..3).map(|id| item(id, Class::Single)).collect();
        for it in &items {
            line.push_back(waiter(it.clone(), t, S)).0.unwrap();
        }
        let (full, swept) = line.push_back(waiter(item(9, Class::Single), t, S));
        assert!(full.is_err() && swept == 0, "full of live callers");
        items[0].gone.set(true);
        items[2].gone.set(true);
        let (r, swept) = line.push_back(waiter(item(10, Class::Single), t, S));
        assert!(r.is_ok());
        assert_eq!(swept, 2);
        assert_eq!(line.len(), 2);
        assert!(line.expire(t + 2 * S).iter().all(|w| !w.item.is_gone()));
    }

    #[test]
    fn gone_entries_are_dropped_by_pump_not_admitted() {
        let t = Instant::now();
        let mut line = WaitingLine::new(3);
        let a = item(0, Class::Single);
        a.gone.set(true);
        line.push_back(waiter(a, t, S)).0.unwrap();
        line.push_back(waiter(item(1, Class::Single), t, S))
            .0
            .unwrap();
        let mut served = Vec::new();
        let p = line.pump(t, |it| {
            served.push(it.id);
            Ok(())
        });
        assert_eq!((served, p.gone), (vec![1], 1));
    }

    #[test]
    fn rerouted_go_first_past_the_bound_and_are_not_timed_as_callers() {
        let t = Instant::now();
        let mut line = WaitingLine::new(1);
        line.push_back(waiter(item(0, Class::Single), t, S))
            .0
            .unwrap();
        line.push_front(Waiter {
            expiry: Expiry::WorkerLost,
            ..waiter(item(1, Class::Single), t, S)
        });
        assert_eq!(line.len(), 2);
        let mut served = Vec::new();
        let p = line.pump(t + S / 4, |it| {
            served.push(it.id);
            Ok(())
        });
        assert_eq!(served, [1, 0]);
        assert_eq!(p.waits.len(), 1, "only the caller's wait is recorded");
    }

    #[test]
    fn expiry_takes_exactly_the_entries_past_their_deadline() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        line.push_back(waiter(item(0, Class::Single), t, S))
            .0
            .unwrap();
        line.push_back(waiter(item(1, Class::Single), t, 3 * S))
            .0
            .unwrap();
        line.push_back(waiter(item(2, Class::Single), t, 2 * S))
            .0
            .unwrap();
        assert!(line.expire(t).is_empty());
        let gone: Vec<u32> = line
            .expire(t + 2 * S)
            .into_iter()
            .map(|w| w.item.id)
            .collect();
        assert_eq!(gone, [0, 2]);
        assert_eq!(line.len(), 1);
        assert_eq!(line.published().load(Ordering::Acquire), 1);
    }

    #[test]
    fn a_waiter_is_due_exactly_at_its_deadline() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        line.push_back(waiter(item(0, Class::Single), t, S))
            .0
            .unwrap();
        line.push_back(waiter(item(1, Class::Single), t, 2 * S))
            .0
            .unwrap();
        let due: Vec<u32> = line.expire(t + S).into_iter().map(|w| w.item.id).collect();
        assert_eq!(due, [0]);
        assert_eq!(line.published().load(Ordering::Acquire), 1);
    }

    #[test]
    fn the_line_publishes_its_length_after_every_change() {
        let t = Instant::now();
        let mut line = WaitingLine::new(2);
        let published = line.published();
        let gone = item(0, Class::Single);
        line.push_back(waiter(gone.clone(), t, S)).0.unwrap();
        line.push_back(waiter(item(1, Class::Batch), t, S))
            .0
            .unwrap();
        assert_eq!(published.load(Ordering::Acquire), 2);
        assert!(line
            .push_back(waiter(item(2, Class::Single), t, S))
            .0
            .is_err());
        assert_eq!(published.load(Ordering::Acquire), 2);
        line.push_front(waiter(item(3, Class::Single), t, S));
        assert_eq!((line.len(), published.load(Ordering::Acquire)), (3, 3));
        assert!(!line.is_empty());
        gone.gone.set(true);
        assert_eq!(line.sweep_gone(), 1);
        assert_eq!(published.load(Ordering::Acquire), 2);
        // Both classes blocked: the pump stops and keeps the order.
        let p = line.pump(t, Err);
        assert!(p.waits.is_empty() && p.gone == 0);
        assert_eq!(published.load(Ordering::Acquire), 2);
        let left: Vec<u32> = line.drain().into_iter().map(|w| w.item.id).collect();
        assert_eq!(left, [3, 1]);
        assert_eq!(published.load(Ordering::Acquire), 0);
        assert!(line.is_empty());
    }

    #[test]
    fn once_both_classes_are_blocked_the_pump_offers_nothing_more() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        for (id, class) in [(0, Class::Single), (1, Class::Batch), (2, Class::Single)] {
            line.push_back(waiter(item(id, class), t, S)).0.unwrap();
        }
        let mut offered = Vec::new();
        line.pump(t, |it| {
            offered.push(it.id);
            Err(it)
        });
        assert_eq!(
            offered,
            [0, 1],
            "each class is offered once, then the pump stops"
        );
        assert_eq!(line.len(), 3);
    }

    #[test]
    fn a_blocked_class_is_not_offered_again_in_the_same_pump() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        for (id, class) in [
            (0, Class::Single),
            (1, Class::Single),
            (2, Class::Batch),
            (3, Class::Single),
        ] {
            line.push_back(waiter(item(id, class), t, S)).0.unwrap();
        }
        let mut offered = Vec::new();
        line.pump(t, |it| {
            offered.push(it.id);
            if it.class == Class::Single {
                Err(it)
            } else {
                Ok(())
            }
        });
        assert_eq!(offered, [0, 2]);
        assert_eq!(line.len(), 3);
    }

    #[test]
    fn a_line_whose_every_waiter_is_due_expires_them_all() {
        let t = Instant::now();
        let mut line = WaitingLine::new(10);
        line.push_back(waiter(item(0, Class::Single), t, S))
            .0
            .unwrap();
        assert_eq!(line.expire(t + 2 * S).len(), 1);
        assert!(line.is_empty());
    }
}
