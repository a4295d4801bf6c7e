//! [`Slots`]: the pool's worker slots and their lifecycle, owned in one
//! place. A slot holds a live worker, waits for a restart, or is disabled;
//! the only way to empty a slot is [`Slots::vacate`], which folds what the
//! leaving worker did into the slot's totals — so a slot's `processed` and
//! `batches` survive its incarnations and are summed in one place,
//! [`Slots::snapshot`].

use std::time::Instant;

use ractor::ActorId;

use super::snapshot::{SlotView, Snapshot};
use crate::backend::Backend;
use crate::stats::WorkerState;
use crate::worker::Worker;

/// One slot's occupant.
pub(super) enum Slot<B: Backend> {
    /// A worker, loading or ready.
    Live(Worker<B>),
    /// Empty; a worker is started at `due`.
    Restarting {
        /// When the replacement starts.
        due: Instant,
    },
    /// Empty for good (the abandoned-thread cap is reached, or the pool is
    /// draining).
    Disabled,
}

/// What a slot's past incarnations did.
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    processed: u64,
    batches: u64,
}

/// The worker slots: see the module docs.
pub(super) struct Slots<B: Backend> {
    slots: Vec<Slot<B>>,
    totals: Vec<Totals>,
}

impl<B: Backend> Slots<B> {
    /// `n` empty slots, each due to start a worker at `now`.
    pub(super) fn new(n: usize, now: Instant) -> Self {
        Self {
            slots: (0..n).map(|_| Slot::Restarting { due: now }).collect(),
            totals: vec![Totals::default(); n],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The occupant of `slot`.
    pub(super) fn get(&self, slot: usize) -> Option<&Slot<B>> {
        self.slots.get(slot)
    }

    /// Every live worker with its slot.
    pub(super) fn live(&self) -> impl Iterator<Item = (usize, &Worker<B>)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| match s {
            Slot::Live(w) => Some((i, w)),
            _ => None,
        })
    }

    /// Every live worker, mutably.
    pub(super) fn live_mut(&mut self) -> impl Iterator<Item = &mut Worker<B>> {
        self.slots.iter_mut().filter_map(|s| match s {
            Slot::Live(w) => Some(w),
            _ => None,
        })
    }

    /// The slot whose live worker has id `worker`.
    pub(super) fn slot_of(&self, worker: u64) -> Option<usize> {
        self.live().find(|(_, w)| w.id() == worker).map(|(i, _)| i)
    }

    /// The slot whose live worker's actor is `actor`.
    pub(super) fn slot_of_actor(&self, actor: ActorId) -> Option<usize> {
        self.live()
            .find(|(_, w)| w.actor_id() == actor)
            .map(|(i, _)| i)
    }

    /// The live worker with id `worker`.
    pub(super) fn worker_mut(&mut self, worker: u64) -> Option<&mut Worker<B>> {
        self.live_mut().find(|w| w.id() == worker)
    }

    /// Ready workers.
    pub(super) fn ready(&self) -> usize {
        self.live().filter(|(_, w)| w.is_ready()).count()
    }

    /// No live worker holds a request.
    pub(super) fn idle(&self) -> bool {
        self.live().all(|(_, w)| w.depth() == 0)
    }

    /// Puts a new worker in `slot`.
    pub(super) fn install(&mut self, slot: usize, worker: Worker<B>) {
        self.slots[slot] = Slot::Live(worker);
    }

    /// Marks an empty (or emptied) `slot` as waiting for a restart at `due`,
    /// or disabled (`None`). A live worker is never overwritten: it leaves
    /// through [`Self::vacate`].
    pub(super) fn set_empty(&mut self, slot: usize, due: Option<Instant>) {
        debug_assert!(!matches!(self.slots[slot], Slot::Live(_)));
        self.slots[slot] = match due {
            Some(due) => Slot::Restarting { due },
            None => Slot::Disabled,
        };
    }

    /// Takes `slot`'s live worker out, its counts folded into the slot's
    /// totals, and leaves the slot `Restarting` at `now` until the caller
    /// says otherwise. `None` if the slot held no worker.
    pub(super) fn vacate(&mut self, slot: usize, now: Instant) -> Option<Worker<B>> {
        let old = std::mem::replace(&mut self.slots[slot], Slot::Restarting { due: now });
        match old {
            Slot::Live(w) => {
                let t = &mut self.totals[slot];
                t.processed += w.processed();
                t.batches += w.batches();
                Some(w)
            }
            other => {
                self.slots[slot] = other;
                None
            }
        }
    }

    /// The slots as one consistent set of figures at `now`, with the line's
    /// length and the pool's flags: what every report is computed from.
    pub(super) fn snapshot(
        &self,
        now: Instant,
        waiting: usize,
        abandoned: usize,
        (draining, stopped): (bool, bool),
    ) -> Snapshot {
        let slots = self
            .slots
            .iter()
            .zip(&self.totals)
            .enumerate()
            .map(|(slot, (s, past))| match s {
                Slot::Live(w) => SlotView {
                    slot,
                    worker_id: Some(w.id()),
                    state: if w.is_ready() {
                        WorkerState::Ready
                    } else {
                        WorkerState::Loading
                    },
                    depth: w.depth(),
                    running: w.running_inputs(),
                    service_ns: w.service_ns(),
                    processed: past.processed + w.processed(),
                    batches: past.batches + w.batches(),
                    last_pong_age: Some(now.saturating_duration_since(w.last_pong())),
                },
                Slot::Restarting { .. } | Slot::Disabled => SlotView {
                    slot,
                    worker_id: None,
                    state: if matches!(s, Slot::Disabled) {
                        WorkerState::Disabled
                    } else {
                        WorkerState::Restarting
                    },
                    depth: 0,
                    running: 0,
                    service_ns: 0,
                    processed: past.processed,
                    batches: past.batches,
                    last_pong_age: None,
                },
            })
            .collect();
        Snapshot {
            slots,
            waiting,
            abandoned,
            draining,
            stopped,
        }
    }
}
