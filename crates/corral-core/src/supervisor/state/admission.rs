//! Admission and routing: which worker a request goes to, and what happens
//! when none has room — the waiting line (admitting from it as slots free,
//! expiring it), or a refusal ("why was this request refused?" is
//! [`SupervisorState::submit`]). Re-routing what a retired worker held goes
//! through the same door.

use std::time::Instant;

use ractor::RpcReplyPort;

use super::super::waiting::{Expiry, Waiter, Waiting};
use super::{Slot, SupervisorState};
use crate::backend::Backend;
use crate::error::PoolError;
use crate::job::{Class, Job, Reply};
use crate::msg::{Admission, Admitted};
use crate::router::{Router, WorkerLoad};
use crate::stats::recorder::Recorder;
use crate::time;

/// The router and its reused scratch space.
pub(super) struct Routing {
    router: Box<dyn Router>,
    /// The routable workers' loads and their slots, rebuilt per admission.
    loads: Vec<WorkerLoad>,
    routable: Vec<usize>,
}

impl Routing {
    /// A router with scratch space for `workers` workers.
    pub(super) fn new(router: Box<dyn Router>, workers: usize) -> Self {
        Self {
            router,
            loads: Vec::with_capacity(workers),
            routable: Vec::with_capacity(workers),
        }
    }

    /// Routes `job` to the worker the router picks among the ready workers
    /// with room in the job's class, or hands it back. `patient`: the job
    /// can wait, so the router may keep it waiting for a better worker
    /// ([`Router::pick`]); otherwise it is placed wherever there is room
    /// ([`Router::pick_now`]).
    pub(super) fn admit<B: Backend>(
        &mut self,
        slots: &[Slot<B>],
        recorder: &Recorder,
        job: Job<B>,
        patient: bool,
    ) -> Result<(), Job<B>> {
        self.loads.clear();
        self.routable.clear();
        let now = Instant::now();
        for (i, s) in slots.iter().enumerate() {
            if let Slot::Live(w) = s {
                if w.is_ready() {
                    self.loads.push(WorkerLoad {
                        depth: w.depth(),
                        has_room: w.has_room(job.class),
                        service_ns: w.service_ns(),
                        running_ns: w.running_ns(now),
                    });
                    self.routable.push(i);
                }
            }
        }
        let pick = if patient {
            self.router.pick(&self.loads)
        } else {
            self.router.pick_now(&self.loads)
        };
        let Some(k) = pick else {
            return Err(job);
        };
        // A router that picks a full worker (or out of range) must not break
        // the bound.
        if !self.loads.get(k).is_some_and(|l| l.has_room) {
            return Err(job);
        }
        let Some(Slot::Live(w)) = slots.get(self.routable[k]) else {
            return Err(job);
        };
        w.push(job)?;
        recorder.admitted();
        Ok(())
    }
}

impl<B: Backend> Waiting for Job<B> {
    fn is_gone(&self) -> bool {
        self.is_cancelled()
    }

    fn class(&self) -> Class {
        self.class
    }
}

impl<B: Backend> SupervisorState<B> {
    /// Admits a request to the least-loaded worker with room, or puts it in
    /// the waiting line, or refuses it — the caller's choice, per request.
    pub(crate) fn submit(
        &mut self,
        request: Admitted<B::Input>,
        reply: RpcReplyPort<Reply<B::Input, B::Output>>,
    ) {
        let Admitted { submit, permit } = request;
        let now = Instant::now();
        let deadline = submit.deadline.map(|d| time::after(now, d));
        let job = Job::new(submit.inputs, reply, deadline, permit);
        if self.drain.is_some() || self.stopped {
            self.recorder.shutting_down(1);
            return job.refuse(PoolError::ShuttingDown);
        }
        if job.expired(now) {
            self.recorder.deadline_exceeded(1);
            return job.refuse(PoolError::Timeout);
        }
        // Callers already waiting go first.
        if !self.line.is_empty() {
            self.pump();
        }
        let patient = match submit.admission {
            Admission::Reject => false,
            Admission::Wait(wait) => !wait.is_zero(),
        };
        // A caller who cannot wait may take room that the waiters, just
        // pumped, could not use (another class's, or a worker the router
        // keeps them from); one who can wait joins the line behind them.
        let job = if self.line.is_empty() || !patient {
            match self.try_admit(job, patient) {
                Ok(()) => return,
                Err(job) => job,
            }
        } else {
            job
        };
        let wait = match submit.admission {
            Admission::Reject => {
                self.recorder.overloaded();
                let retry_after = self.retry_after();
                return job.refuse(PoolError::Overloaded { retry_after });
            }
            Admission::Wait(wait) if wait.is_zero() => {
                self.recorder.timed_out();
                return job.refuse(PoolError::Timeout);
            }
            Admission::Wait(wait) => wait,
        };
        let (until, expiry) = match deadline {
            Some(d) if d < time::after(now, wait) => (d, Expiry::Deadline),
            _ => (time::after(now, wait), Expiry::Timeout),
        };
        let waiter = Waiter {
            item: job,
            since: now,
            deadline: until,
            expiry,
        };
        let joined_others = !self.line.is_empty();
        let (pushed, gone) = self.line.push_back(waiter);
        self.recorder.cancelled(gone as u64);
        if let Err(w) = pushed {
            // The line is full: placed anywhere with room, or refused.
            if let Err(job) = self.try_admit(w.item, false) {
                self.recorder.overloaded();
                let retry_after = self.retry_after();
                job.refuse(PoolError::Overloaded { retry_after });
            }
        } else if joined_others {
            // The waiters ahead may all be of the other class.
            self.pump();
        }
    }

    pub(super) fn try_admit(&mut self, job: Job<B>, patient: bool) -> Result<(), Job<B>> {
        self.routing
            .admit(&self.slots, &self.recorder, job, patient)
    }

    /// Puts jobs taken back from a failed worker on other workers, in
    /// order, or — those that find no room — at the head of the waiting
    /// line, in the same order and ahead of every caller who was already
    /// waiting, for up to `reroute_wait`.
    pub(super) fn reroute(&mut self, jobs: impl IntoIterator<Item = Job<B>>, now: Instant) {
        let mut unplaced = Vec::new();
        for job in jobs {
            if job.is_cancelled() {
                self.recorder.cancelled(1);
                continue;
            }
            if let Err(job) = self.try_admit(job, true) {
                unplaced.push(job);
            }
        }
        let reroute_until = time::after(now, self.config.reroute_wait);
        for job in unplaced.into_iter().rev() {
            let (deadline, expiry) = match job.deadline {
                Some(d) if d < reroute_until => (d, Expiry::Deadline),
                _ => (reroute_until, Expiry::WorkerLost),
            };
            self.line.push_front(Waiter {
                item: job,
                since: now,
                deadline,
                expiry,
            });
        }
    }

    /// Admits waiting callers, in order, while there is room.
    pub(super) fn pump(&mut self) {
        if self.line.is_empty() {
            return;
        }
        let (routing, slots, recorder) = (&mut self.routing, &self.slots, &self.recorder);
        let pumped = self.line.pump(Instant::now(), |job| {
            routing.admit(slots, recorder, job, true)
        });
        self.recorder.cancelled(pumped.gone as u64);
        for w in pumped.waits {
            self.recorder.waited(w);
        }
    }

    /// Answers the waiters whose deadline passed — after a last try to
    /// place those whose wait (not their request's deadline) is over,
    /// anywhere with room: a waiter the router kept back from a worker with
    /// room is admitted there rather than timed out.
    pub(super) fn expire_waiting(&mut self, now: Instant) {
        for w in self.line.expire(now) {
            let mut job = w.item;
            if job.is_cancelled() {
                self.recorder.cancelled(1);
                continue;
            }
            if w.expiry != Expiry::Deadline {
                job = match self.try_admit(job, false) {
                    Ok(()) => {
                        if w.expiry == Expiry::Timeout {
                            self.recorder.waited(now.saturating_duration_since(w.since));
                        }
                        continue;
                    }
                    Err(job) => job,
                };
            }
            match w.expiry {
                Expiry::Timeout => {
                    self.recorder.timed_out();
                    job.refuse(PoolError::Timeout);
                }
                Expiry::Deadline => {
                    self.recorder.deadline_exceeded(1);
                    job.refuse(PoolError::Timeout);
                }
                Expiry::WorkerLost => {
                    self.recorder.worker_lost();
                    job.answer(Err(PoolError::WorkerLost));
                }
            }
        }
    }
}
