//! Admission and routing, wired: a request that arrives is decided by
//! [`super::super::admission::decide`] (admit, wait or refuse — the pure
//! policy, with its reasons) and carried out here — pushed to its worker,
//! put in the waiting line, or answered, and counted. The line is admitted
//! from as slots free and expired at its deadlines; what a retired worker
//! held is re-routed through the same router.

use std::time::Instant;

use ractor::RpcReplyPort;

use super::super::admission::{decide, Arrival, Decision, Line, Refusal};
use super::super::slots::{Slot, Slots};
use super::super::waiting::{Expiry, Waiter, Waiting};
use super::SupervisorState;
use crate::backend::Backend;
use crate::error::{Failure, Refusal as Refuse};
use crate::job::{Class, Job, Reply};
use crate::msg::Admitted;
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

    /// Rebuilds the loads of the ready workers, room counted for `class`.
    fn snapshot<B: Backend>(&mut self, slots: &Slots<B>, class: Class, now: Instant) {
        self.loads.clear();
        self.routable.clear();
        for (i, w) in slots.live().filter(|(_, w)| w.is_ready()) {
            self.loads.push(WorkerLoad {
                depth: w.depth(),
                has_room: w.has_room(class),
                service_ns: w.service_ns(),
                running_ns: w.running_ns(now),
            });
            self.routable.push(i);
        }
    }

    /// Pushes `job` to the worker at `k` in the last snapshot, if it has
    /// room (a router's pick is checked, never trusted), and counts it.
    fn push<B: Backend>(
        &self,
        slots: &Slots<B>,
        recorder: &Recorder,
        k: usize,
        job: Job<B>,
    ) -> Result<(), Job<B>> {
        if !self.loads.get(k).is_some_and(|l| l.has_room) {
            return Err(job);
        }
        let Some(Slot::Live(w)) = self.routable.get(k).and_then(|&i| slots.get(i)) else {
            return Err(job);
        };
        w.push(job)?;
        recorder.admitted();
        Ok(())
    }

    /// Routes `job` to the worker the router picks among the ready workers
    /// with room in the job's class, or hands it back. `patient`: the job
    /// can wait, so the router may keep it waiting for a better worker
    /// ([`Router::pick`]); otherwise it is placed wherever there is room
    /// ([`Router::pick_now`]).
    pub(super) fn admit<B: Backend>(
        &mut self,
        slots: &Slots<B>,
        recorder: &Recorder,
        job: Job<B>,
        patient: bool,
    ) -> Result<(), Job<B>> {
        self.snapshot(slots, job.class, Instant::now());
        let pick = if patient {
            self.router.pick(&self.loads)
        } else {
            self.router.pick_now(&self.loads)
        };
        match pick {
            Some(k) => self.push(slots, recorder, k, job),
            None => Err(job),
        }
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
    /// A request arrives: callers already waiting are served first, then
    /// [`decide`] admits it, puts it in the line or refuses it, and this
    /// carries the decision out.
    pub(crate) fn submit(
        &mut self,
        request: Admitted<B::Input>,
        reply: RpcReplyPort<Reply<B::Input, B::Output>>,
    ) {
        let Admitted { submit, permit } = request;
        let now = Instant::now();
        let arrival = Arrival {
            admission: submit.admission,
            deadline: submit.deadline.map(|d| time::after(now, d)),
        };
        let mut job = Job::new(submit.inputs, reply, arrival.deadline, permit);
        if !self.line.is_empty() {
            self.pump();
        }
        let (line_has_room, gone) = self.line.make_room();
        self.recorder.cancelled(gone as u64);
        let line = Line {
            occupied: !self.line.is_empty(),
            has_room: line_has_room,
        };
        let closed = self.drain.is_some() || self.stopped;
        self.routing.snapshot(&self.slots, job.class, now);
        // At most one turn per worker: a push the worker refuses (its
        // mailbox closed under us) counts that worker as full.
        loop {
            let routing = &mut self.routing;
            match decide(
                now,
                arrival,
                &routing.loads,
                line,
                closed,
                &mut *routing.router,
            ) {
                Decision::Admit(k) => match routing.push(&self.slots, &self.recorder, k, job) {
                    Ok(()) => return,
                    Err(back) => {
                        job = back;
                        match routing.loads.get_mut(k) {
                            Some(l) if l.has_room => l.has_room = false,
                            _ => return self.refuse(job, Refusal::Overloaded),
                        }
                    }
                },
                Decision::Wait { until, expiry } => {
                    return self.wait(job, now, until, expiry, line.occupied)
                }
                Decision::Refuse(why) => return self.refuse(job, why),
            }
        }
    }

    /// Puts a caller at the back of the waiting line until `until`.
    fn wait(&mut self, job: Job<B>, now: Instant, until: Instant, expiry: Expiry, behind: bool) {
        let waiter = Waiter {
            item: job,
            since: now,
            deadline: until,
            expiry,
        };
        let (pushed, gone) = self.line.push_back(waiter);
        self.recorder.cancelled(gone as u64);
        if let Err(w) = pushed {
            // Not reached: the line had room a moment ago.
            self.refuse(w.item, Refusal::Overloaded);
        } else if behind {
            // The waiters ahead may all be of the other class.
            self.pump();
        }
    }

    /// Answers a refused request, counted by its reason.
    fn refuse(&mut self, job: Job<B>, why: Refusal) {
        match why {
            Refusal::ShuttingDown => {
                self.recorder.shutting_down(1);
                job.refuse(Refuse::ShuttingDown);
            }
            Refusal::DeadlinePassed => {
                self.recorder.deadline_exceeded(1);
                job.refuse(Refuse::DeadlinePassed);
            }
            Refusal::Overloaded => {
                self.recorder.overloaded();
                let retry_after = self.retry_after();
                job.refuse(Refuse::Overloaded { retry_after });
            }
            Refusal::NoWait => {
                self.recorder.timed_out();
                job.refuse(Refuse::TimedOut);
            }
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
                    job.refuse(Refuse::TimedOut);
                }
                Expiry::Deadline => {
                    self.recorder.deadline_exceeded(1);
                    job.refuse(Refuse::DeadlinePassed);
                }
                Expiry::WorkerLost => {
                    self.recorder.worker_lost();
                    job.answer(Err(Failure::WorkerLost));
                }
            }
        }
    }
}
