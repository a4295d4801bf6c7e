//! Tests of the mailbox: bounds per class, batches taken and finished,
//! re-queueing, expiry, seizure, wake-ups.

use super::*;
use crate::backend::{BackendError, LoadContext};
use crate::door::Door;
use crate::error::{CallError, Failure, Refusal};
use crate::job::Reply;
use crate::stats::recorder::Recorder;
use std::time::Duration;
use tokio::sync::oneshot;

/// A backend that is never run: the mailbox only needs its types.
struct Echo;

impl Backend for Echo {
    type Spec = ();
    type Input = u32;
    type Output = u32;
    fn load(_: &(), _: &LoadContext) -> Result<Self, BackendError> {
        Ok(Echo)
    }
    fn cost(&self, _: &u32) -> usize {
        1
    }
    fn run(&mut self, batch: &[&u32]) -> Result<Vec<u32>, BackendError> {
        Ok(batch.iter().map(|x| **x).collect())
    }
}

type Rx = oneshot::Receiver<Reply<u32, u32>>;

fn door() -> Arc<Door> {
    Door::new(100, Arc::new(Recorder::new("mailbox-test", 1, &[])))
}

fn job(door: &Arc<Door>, inputs: Vec<u32>, deadline: Option<Instant>) -> (Job<Echo>, Rx) {
    let (tx, rx) = oneshot::channel();
    let job = Job::new(inputs, tx.into(), deadline, door.enter().unwrap());
    (job, rx)
}

fn mailbox(single: usize, batch: usize) -> Arc<WorkerShared<Echo>> {
    WorkerShared::new(7, single, batch)
}

fn push(m: &WorkerShared<Echo>, j: Job<Echo>) {
    assert!(m.push(j).is_ok(), "the mailbox is open");
}

/// Peeks at up to `n` queued jobs, costs each input 1, and takes them as
/// one packed batch started at `at`; returns what was taken and the
/// batch's inputs, flattened.
fn take_n(m: &WorkerShared<Echo>, n: usize, at: Instant) -> (Took, Vec<u32>) {
    take_costed(m, n, at, &Batching::PACKED, |_| 1)
}

/// [`take_n`] with each input costed by `cost` and the batch by `batching`.
fn take_costed(
    m: &WorkerShared<Echo>,
    n: usize,
    at: Instant,
    batching: &Batching,
    cost: impl Fn(u32) -> usize,
) -> (Took, Vec<u32>) {
    let mut peeked = m.fronts(n);
    assert!(!peeked.is_empty(), "queued jobs");
    for f in &mut peeked {
        f.shape = f
            .inputs
            .iter()
            .fold(BatchShape::default(), |s, &i| s.with(cost(i)));
    }
    let mut inputs = Vec::new();
    let took = m
        .take_batch(&mut peeked, at, batching, &mut inputs)
        .expect("open");
    assert!(peeked.is_empty(), "drained");
    let flat = inputs.iter().flat_map(|v| v.iter().copied()).collect();
    (took, flat)
}

/// `jobs` taken with `inputs` inputs of cost 1 between them.
fn took(jobs: usize, inputs: usize) -> Took {
    Took {
        jobs,
        shape: BatchShape {
            inputs,
            sum: inputs,
            costliest: inputs.min(1),
        },
        ..Took::default()
    }
}

fn answer(rx: &mut Rx) -> Option<Reply<u32, u32>> {
    rx.try_recv().ok()
}

#[test]
fn each_class_has_its_own_bound_and_depth_counts_both() {
    let d = door();
    let m = mailbox(2, 1);
    assert!(m.has_room(Class::Single) && m.has_room(Class::Batch));
    let (a, _ra) = job(&d, vec![1], None);
    let (b, _rb) = job(&d, vec![2], None);
    push(&m, a);
    assert!(m.has_room(Class::Single));
    push(&m, b);
    assert!(!m.has_room(Class::Single), "two singles fill a bound of 2");
    assert!(m.has_room(Class::Batch), "the batch bound is separate");
    let (c, _rc) = job(&d, vec![3, 4], None);
    push(&m, c);
    assert!(!m.has_room(Class::Batch));
    assert_eq!(m.depth(), 3);
    assert_eq!(m.single_depth.load(Ordering::Acquire), 2);
    assert_eq!(m.batch_depth.load(Ordering::Acquire), 1);
}

#[test]
fn a_batch_runs_in_order_and_frees_its_slots_when_released() {
    let d = door();
    let m = mailbox(4, 4);
    let (a, _ra) = job(&d, vec![1], Some(Instant::now() + Duration::from_secs(9)));
    let (b, _rb) = job(
        &d,
        vec![2, 3],
        Some(Instant::now() + Duration::from_secs(5)),
    );
    push(&m, a);
    push(&m, b);
    assert_eq!(m.with_deadline.load(Ordering::Relaxed), 2);
    assert!(!m.is_busy());

    let t0 = Instant::now();
    let (t, flat) = take_n(&m, 8, t0);
    assert_eq!(t, took(2, 3));
    assert_eq!(flat, [1, 2, 3]);
    assert_eq!(m.with_deadline.load(Ordering::Relaxed), 0);
    assert_eq!(m.assembled(), 2);
    assert!(m.fronts(8).is_empty());
    let hb = *m.heartbeat.lock();
    assert_eq!(hb.busy_since, Some(t0));
    assert_eq!((hb.batch_cost, hb.batch_len), (3, 3));
    assert!(
        hb.deadline.unwrap() < t0 + Duration::from_secs(6),
        "the earliest"
    );
    assert!(m.is_busy());
    assert_eq!(m.depth(), 2, "running requests still count");

    let mut jobs = Vec::new();
    assert!(m.finish_batch(&mut jobs));
    assert_eq!(jobs.len(), 2);
    assert!(!m.is_busy());
    assert_eq!(m.assembled(), 0);
    for j in &jobs {
        m.release(j);
    }
    assert_eq!(m.depth(), 0);
}

#[test]
fn take_batch_skips_gone_callers_and_jobs_no_longer_queued() {
    let d = door();
    let m = mailbox(4, 4);
    let t0 = Instant::now();
    let (a, ra) = job(&d, vec![1], None);
    let (b, _rb) = job(&d, vec![2], Some(t0 + Duration::from_secs(1)));
    let (c, _rc) = job(&d, vec![3], None);
    let (e, _re) = job(&d, vec![4], None);
    push(&m, a);
    push(&m, b);
    push(&m, c);
    push(&m, e);
    let mut peeked = m.fronts(3);
    drop(ra);
    // The watchdog expires the second while the batch is being costed.
    assert_eq!(m.expire(t0 + Duration::from_secs(2)).queued, 1);
    assert_eq!(m.depth(), 3);
    let mut inputs = Vec::new();
    let t = m
        .take_batch(&mut peeked, t0, &Batching::PACKED, &mut inputs)
        .unwrap();
    assert_eq!(
        t,
        Took {
            jobs: 1,
            cancelled: 1,
            answered: 0,
            shape: BatchShape::default(),
        }
    );
    assert_eq!(inputs.len(), 1);
    assert_eq!(inputs[0][0], 3);
    assert_eq!(m.depth(), 2, "a gone caller's slot is freed");
    assert!(m.is_busy(), "the batch started");
    let left: Vec<u32> = m.fronts(8).iter().map(|f| f.inputs[0]).collect();
    assert_eq!(left, [4], "jobs not peeked stay queued");
    let mut jobs = Vec::new();
    assert!(m.finish_batch(&mut jobs));
    // Nothing left of what was peeked: nothing taken, nothing started.
    let mut stale = m.fronts(1);
    let (extra, _rx) = job(&d, vec![5], None);
    push(&m, extra);
    assert_eq!(take_n(&m, 1, t0).0, took(1, 1));
    jobs.clear();
    assert!(m.finish_batch(&mut jobs));
    assert_eq!(
        m.take_batch(&mut stale, t0, &Batching::PACKED, &mut inputs)
            .unwrap(),
        Took::default(),
        "taken already"
    );
    m.seize();
    let mut none = Vec::new();
    assert!(m
        .take_batch(&mut none, t0, &Batching::PACKED, &mut inputs)
        .is_none());
}

#[test]
fn a_started_batch_grows_by_what_is_taken_before_it_runs() {
    let d = door();
    let m = mailbox(4, 4);
    let t0 = Instant::now();
    let (a, _ra) = job(&d, vec![1], None);
    push(&m, a);
    assert_eq!(take_n(&m, 4, t0), (took(1, 1), vec![1]));
    let (b, _rb) = job(&d, vec![2, 3], Some(t0 + Duration::from_secs(4)));
    push(&m, b);
    let later = t0 + Duration::from_millis(5);
    assert_eq!(take_n(&m, 4, later), (took(1, 2), vec![2, 3]));
    let hb = *m.heartbeat.lock();
    assert_eq!(hb.busy_since, Some(t0), "the batch keeps its start");
    assert_eq!((hb.batch_cost, hb.batch_len), (3, 3));
    assert_eq!(hb.deadline, Some(t0 + Duration::from_secs(4)));
    assert_eq!(m.assembled(), 2);
    let held = m.seize();
    assert_eq!(held.running.len(), 2, "all of it started");
}

#[test]
fn a_padded_batch_is_costed_again_as_it_grows() {
    // Each input costs its own value; padded, a batch costs its inputs ×
    // its costliest one — not the sum of what each take cost alone.
    let d = door();
    let m = mailbox(4, 4);
    let t0 = Instant::now();
    let padded = Batching::PADDED;
    let (a, _ra) = job(&d, vec![5], None);
    push(&m, a);
    take_costed(&m, 4, t0, &padded, |i| i as usize);
    assert_eq!(m.heartbeat.lock().batch_cost, 5);
    let (b, _rb) = job(&d, vec![2, 3], None);
    push(&m, b);
    let (t, _) = take_costed(&m, 4, t0, &padded, |i| i as usize);
    assert_eq!(
        t.shape,
        BatchShape {
            inputs: 2,
            sum: 5,
            costliest: 3
        }
    );
    let hb = *m.heartbeat.lock();
    assert_eq!((hb.batch_cost, hb.batch_len), (15, 3), "3 rows × 5");
}

#[test]
fn a_failed_batch_goes_back_to_the_head_in_order_each_to_run_alone() {
    let d = door();
    let m = mailbox(4, 4);
    let (a, _ra) = job(&d, vec![1], Some(Instant::now() + Duration::from_secs(9)));
    let (b, _rb) = job(&d, vec![2], None);
    let (c, _rc) = job(&d, vec![3], None);
    push(&m, a);
    push(&m, b);
    push(&m, c);
    assert_eq!(take_n(&m, 2, Instant::now()).0, took(2, 2));
    assert_eq!(m.requeue_running_alone(), Some(2));
    assert!(!m.is_busy(), "the heartbeat is cleared");
    assert_eq!(m.assembled(), 0);
    assert_eq!(m.depth(), 3, "nothing released: all still held");
    assert_eq!(m.with_deadline.load(Ordering::Relaxed), 1);
    let q = m.queue.lock();
    let order: Vec<u32> = q.jobs.iter().map(|j| j.inputs[0]).collect();
    assert_eq!(order, [1, 2, 3]);
    let alone: Vec<bool> = q.jobs.iter().map(|j| j.runs_alone()).collect();
    assert_eq!(alone, [true, true, false]);
}

#[test]
fn requeue_drops_jobs_already_answered_and_fails_once_seized() {
    let d = door();
    let m = mailbox(4, 4);
    let past = Instant::now();
    let (a, mut ra) = job(&d, vec![1], Some(past));
    let (b, _rb) = job(&d, vec![2], None);
    push(&m, a);
    push(&m, b);
    assert_eq!(take_n(&m, 2, past).0, took(2, 2));
    // The running job past its deadline is answered in place.
    let e = m.expire(past + Duration::from_millis(1));
    assert_eq!(
        e,
        Expired {
            queued: 0,
            running: 1
        }
    );
    assert_eq!(
        answer(&mut ra).unwrap().unwrap_err(),
        CallError::Failed(Failure::DeadlinePassed),
        "it was running: its inputs do not come back"
    );
    assert_eq!(m.requeue_running_alone(), Some(1));
    assert_eq!(m.depth(), 1, "the answered one left");

    assert_eq!(take_n(&m, 1, past).0, took(1, 1));
    m.seize();
    assert_eq!(m.requeue_running_alone(), None);
    let mut jobs = Vec::new();
    assert!(!m.finish_batch(&mut jobs));
    assert!(jobs.is_empty());
}

#[test]
fn expiry_answers_exactly_the_jobs_past_their_deadline() {
    let d = door();
    let m = mailbox(8, 8);
    let t0 = Instant::now();
    let s = Duration::from_secs(1);
    // Nothing has a deadline: nothing to do.
    let (plain, _rp) = job(&d, vec![9], None);
    push(&m, plain);
    assert_eq!(m.expire(t0 + 100 * s), Expired::default());

    let (a, mut ra) = job(&d, vec![1], Some(t0 + s));
    let (b, mut rb) = job(&d, vec![2], Some(t0 + 3 * s));
    let (c, mut rc) = job(&d, vec![3], Some(t0 + 2 * s));
    push(&m, a);
    push(&m, b);
    push(&m, c);
    assert_eq!(m.expire(t0), Expired::default());
    assert_eq!(
        m.expire(t0 + 2 * s),
        Expired {
            queued: 2,
            running: 0
        },
        "a deadline is due at its instant"
    );
    // Queued, they never ran: refused, each with its inputs back.
    for (r, input) in [(&mut ra, 1), (&mut rc, 3)] {
        assert_eq!(
            answer(r).unwrap().unwrap_err(),
            CallError::Refused {
                reason: Refusal::DeadlinePassed,
                inputs: vec![input]
            }
        );
    }
    assert!(answer(&mut rb).is_none());
    assert_eq!(m.depth(), 2, "expired queued jobs free their slots");
    assert_eq!(m.with_deadline.load(Ordering::Relaxed), 1);
    let left: Vec<u32> = m.queue.lock().jobs.iter().map(|j| j.inputs[0]).collect();
    assert_eq!(left, [9, 2]);

    // Running: answered in place, the heartbeat's deadline moves on.
    assert_eq!(take_n(&m, 2, t0).0, took(2, 2));
    assert_eq!(m.heartbeat.lock().deadline, Some(t0 + 3 * s));
    assert_eq!(
        m.expire(t0 + 3 * s),
        Expired {
            queued: 0,
            running: 1
        }
    );
    assert!(answer(&mut rb).is_some());
    assert_eq!(m.heartbeat.lock().deadline, None);
    assert_eq!(m.depth(), 2, "running slots free when the batch ends");
    assert_eq!(m.expire(t0 + 4 * s), Expired::default(), "answered once");
}

#[test]
fn seize_takes_everything_back_once() {
    let d = door();
    let m = mailbox(4, 4);
    let (a, _ra) = job(&d, vec![1], None);
    let (b, _rb) = job(
        &d,
        vec![2, 3],
        Some(Instant::now() + Duration::from_secs(9)),
    );
    let (c, _rc) = job(&d, vec![4], None);
    push(&m, a);
    push(&m, b);
    push(&m, c);
    assert!(!m.is_retired() && !m.is_closed());
    let held = m.seize();
    let ids: Vec<u32> = held.queued.iter().map(|j| j.inputs[0]).collect();
    assert_eq!(ids, [1, 2, 4]);
    assert!(held.running.is_empty());
    assert_eq!(m.depth(), 0);
    assert_eq!(m.with_deadline.load(Ordering::Relaxed), 0);
    assert!(m.is_retired() && m.is_closed());
    let mut out = Vec::new();
    assert!(!m.peek_fronts(4, true, &mut out) && m.fronts(4).is_empty());
    let (late, _rl) = job(&d, vec![5], None);
    assert!(m.push(late).is_err(), "a closed mailbox takes nothing");
    let again = m.seize();
    assert!(again.queued.is_empty() && again.running.is_empty());
}

#[test]
fn seize_of_a_started_batch_keeps_it_apart() {
    let d = door();
    let m = mailbox(4, 4);
    let (a, _ra) = job(&d, vec![1], None);
    let (b, _rb) = job(&d, vec![2], None);
    push(&m, a);
    push(&m, b);
    assert_eq!(take_n(&m, 1, Instant::now()).0, took(1, 1));
    let held = m.seize();
    assert_eq!(held.running.len(), 1);
    assert_eq!(held.running[0].inputs[0], 1);
    assert_eq!(held.queued.len(), 1);
    assert_eq!(m.depth(), 0);
}

#[test]
fn wait_fronts_wakes_on_push() {
    let d = door();
    let m = mailbox(4, 4);
    let m2 = m.clone();
    let waiter = std::thread::spawn(move || {
        let mut out = Vec::new();
        m2.peek_fronts(4, true, &mut out);
        out.iter()
            .map(|f| (f.inputs[0], f.alone))
            .collect::<Vec<_>>()
    });
    // Whether the thread is parked yet or not, a push must reach it.
    let (a, _ra) = job(&d, vec![42], None);
    push(&m, a);
    assert_eq!(waiter.join().unwrap(), [(42, false)]);
    let m3 = m.clone();
    assert_eq!(take_n(&m, 1, Instant::now()).0, took(1, 1));
    let closed = std::thread::spawn(move || !m3.peek_fronts(4, true, &mut Vec::new()));
    m.seize();
    assert!(closed.join().unwrap(), "a closed mailbox wakes its thread");
}

#[test]
fn service_time_is_a_moving_average() {
    let m = mailbox(1, 1);
    assert_eq!(m.service_ns(), 0);
    m.record_service(0);
    assert_eq!(m.service_ns(), 1, "at least 1 ns once measured");
    let m = mailbox(1, 1);
    m.record_service(400);
    assert_eq!(m.service_ns(), 400);
    m.record_service(800);
    assert_eq!(m.service_ns(), (3 * 400 + 800) / 4);
}
