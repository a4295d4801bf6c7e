//! A backend with scripted cost and faults, for tests and benchmarks (the
//! `testing` feature, off by default): the
//! runtime can be exercised — floods, slow workers, hangs, panics, load
//! failures — without a model.
//!
//! Each [`Item`] carries an id (echoed back as its output, so callers can
//! check that answers reach the right request), a cost in tokens, and
//! optionally a [`Fault`] that fires a set number of times (so a hung batch
//! retried elsewhere can succeed the second time).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::backend::{Backend, BackendError, BatchShape, Batching, LoadContext};
use crate::rng::Rng;

/// A latch: closed until [`Gate::open`], and it counts who reached it.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<(bool, usize)>,
    cv: Condvar,
}

impl Gate {
    /// A new closed gate.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Opens the gate for good, releasing everyone blocked on it.
    pub fn open(&self) {
        self.state.lock().0 = true;
        self.cv.notify_all();
    }

    /// Whether the gate is open.
    pub fn is_open(&self) -> bool {
        self.state.lock().0
    }

    /// Blocks until the gate opens.
    pub fn pass(&self) {
        let mut s = self.state.lock();
        s.1 += 1;
        self.cv.notify_all();
        while !s.0 {
            self.cv.wait(&mut s);
        }
    }

    /// How many threads have reached the gate so far.
    pub fn arrived(&self) -> usize {
        self.state.lock().1
    }

    /// Blocks until at least `n` threads have reached the gate, or
    /// `timeout` passes. Returns whether they did.
    pub fn wait_arrived(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock();
        while s.1 < n {
            if self.cv.wait_until(&mut s, deadline).timed_out() {
                return s.1 >= n;
            }
        }
        true
    }
}

/// What a [`Fault`] does when it fires.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// Block until the spec's `hang_release` gate opens (a forward pass that
    /// never returns).
    Hang,
    /// Panic inside `run`.
    Panic,
    /// Return a backend error.
    Error,
    /// Take this much longer.
    Delay(Duration),
    /// Block until this gate opens.
    Gate(Arc<Gate>),
    /// Return one output too few for the batch (a backend bug).
    WrongCount,
    /// Panic in `Backend::cost` (every time; `run` is unaffected).
    PanicInCost,
}

/// A fault attached to an input, firing the first `times` times a batch
/// containing it runs.
#[derive(Debug)]
pub struct Fault {
    kind: FaultKind,
    remaining: AtomicU32,
}

impl Fault {
    /// Fires once.
    pub fn once(kind: FaultKind) -> Arc<Self> {
        Self::times(kind, 1)
    }

    /// Fires `times` times.
    pub fn times(kind: FaultKind, times: u32) -> Arc<Self> {
        Arc::new(Self {
            kind,
            remaining: AtomicU32::new(times),
        })
    }

    /// Fires every time.
    pub fn always(kind: FaultKind) -> Arc<Self> {
        Self::times(kind, u32::MAX)
    }

    fn take(&self) -> Option<&FaultKind> {
        self.remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(1))
            .ok()
            .map(|_| &self.kind)
    }
}

/// Counts the [`Payload`]s alive, and the most ever alive at once: a
/// stand-in for the memory that inputs held by a pool pin, exact where RSS
/// is noise.
#[derive(Debug, Default)]
pub struct Census {
    live: AtomicUsize,
    peak: AtomicUsize,
}

impl Census {
    /// A new census with nothing alive.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Payloads alive now.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// The most payloads alive at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }
}

/// A counted payload: alive from creation (or clone) to drop, in its
/// [`Census`].
#[derive(Debug)]
pub struct Payload(Arc<Census>);

impl Payload {
    /// A new payload, counted in `census`.
    pub fn new(census: &Arc<Census>) -> Self {
        let now = census.live.fetch_add(1, Ordering::AcqRel) + 1;
        census.peak.fetch_max(now, Ordering::AcqRel);
        Self(census.clone())
    }
}

impl Clone for Payload {
    fn clone(&self) -> Self {
        Self::new(&self.0)
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One synthetic input.
#[derive(Debug, Clone)]
pub struct Item {
    /// Echoed back as the output.
    pub id: u64,
    /// Cost in tokens (at least 1).
    pub cost: usize,
    /// A fault to fire when this item runs.
    pub fault: Option<Arc<Fault>>,
    /// A counted payload, to measure how many inputs are alive.
    pub payload: Option<Payload>,
}

impl Item {
    /// A plain item of cost 1.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            cost: 1,
            fault: None,
            payload: None,
        }
    }

    /// An item of cost 1 carrying `fault`.
    pub fn faulty(id: u64, fault: Arc<Fault>) -> Self {
        Self {
            id,
            cost: 1,
            fault: Some(fault),
            payload: None,
        }
    }

    /// This item with cost `cost`.
    pub fn costing(self, cost: usize) -> Self {
        Self { cost, ..self }
    }

    /// This item carrying a payload counted in `census`.
    pub fn counted(self, census: &Arc<Census>) -> Self {
        Self {
            payload: Some(Payload::new(census)),
            ..self
        }
    }
}

/// Random faults at the batch level, for chaos runs: each batch, with
/// probability `rate`, gets one of four faults at random — it hangs (sleeps
/// `hang_for`, far past any budget), panics, runs `slow_for` longer, or
/// fails with an error *and* arms a hang or a panic for the next batch run
/// (which, for a multi-request batch, is the first of its requests rerun
/// alone: a fault inside fault handling).
#[derive(Debug, Clone)]
pub struct Chaos {
    /// Probability that a batch carries a fault.
    pub rate: f64,
    /// How long a "hung" batch blocks before it returns.
    pub hang_for: Duration,
    /// How much longer a slow batch takes.
    pub slow_for: Duration,
    state: Arc<AtomicU64>,
    /// A fault armed by an error for the next batch: 0 none, 1 hang, 2 panic.
    armed: Arc<AtomicU32>,
    /// Faults injected so far: hangs, panics, slow batches, errors (each
    /// error's follow-up hang or panic is counted as a hang or a panic).
    pub injected: Arc<[AtomicU64; 4]>,
}

/// One batch's chaos fault.
enum ChaosFault {
    Hang,
    Panic,
    Slow,
    Error,
}

impl Chaos {
    /// Faults in `rate` of batches, drawn from `seed`.
    pub fn new(rate: f64, hang_for: Duration, slow_for: Duration, seed: u64) -> Self {
        Self {
            rate,
            hang_for,
            slow_for,
            state: Arc::new(AtomicU64::new(seed.max(1))),
            armed: Arc::new(AtomicU32::new(0)),
            injected: Arc::new(Default::default()),
        }
    }

    fn draw(&self) -> u64 {
        // The runtime's one xorshift, over a shared state: reproducible
        // enough for a chaos run.
        let prev = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |x| Some(Rng::step(x)))
            .unwrap_or(1);
        Rng::step(prev)
    }

    fn count(&self, k: usize) {
        self.injected[k].fetch_add(1, Ordering::Relaxed);
    }

    /// Which fault this batch gets, if any.
    fn roll(&self) -> Option<ChaosFault> {
        match self.armed.swap(0, Ordering::AcqRel) {
            1 => {
                self.count(0);
                return Some(ChaosFault::Hang);
            }
            2 => {
                self.count(1);
                return Some(ChaosFault::Panic);
            }
            _ => {}
        }
        let u = (self.draw() >> 11) as f64 / (1u64 << 53) as f64;
        if u >= self.rate {
            return None;
        }
        let k = (self.draw() % 4) as usize;
        self.count(k);
        Some(match k {
            0 => ChaosFault::Hang,
            1 => ChaosFault::Panic,
            2 => ChaosFault::Slow,
            _ => {
                let follow_up = 1 + (self.draw() % 2) as u32;
                self.armed.store(follow_up, Ordering::Release);
                ChaosFault::Error
            }
        })
    }
}

/// How synthetic workers behave. Cheap to clone; the counters are shared.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// Time per input (per unit of cost) in `run`.
    pub per_item: Duration,
    /// Extra time per batch.
    pub per_batch: Duration,
    /// Per-load override of `per_item`: the n-th load (0-based) gets
    /// `per_item_by_load[n]` when present, e.g. to make one worker slow.
    /// Loads run concurrently, so which slot gets which is not fixed; see
    /// `per_item_by_worker` for that.
    pub per_item_by_load: Vec<Duration>,
    /// Per-worker override of `per_item`, by worker id (ids start at 1 and
    /// the first incarnations take slots in order: id `k + 1` is slot `k`).
    /// Wins over `per_item_by_load`.
    pub per_item_by_worker: Vec<Duration>,
    /// Time `load` takes.
    pub load_time: Duration,
    /// The next this-many loads fail (`usize::MAX`: all of them).
    pub failing_loads: Arc<AtomicUsize>,
    /// Load attempts so far.
    pub loads: Arc<AtomicUsize>,
    /// What `Hang` faults block on; open it to let hung threads finish.
    pub hang_release: Arc<Gate>,
    /// Batches run so far (all workers).
    pub batches: Arc<AtomicU64>,
    /// Inputs run so far (all workers).
    pub items: Arc<AtomicU64>,
    /// Largest batch seen (inputs).
    pub max_batch: Arc<AtomicUsize>,
    /// Random batch-level faults, if any.
    pub chaos: Option<Chaos>,
    /// The next this-many loads hang until `hang_release` opens (a model
    /// load that never returns).
    pub hanging_loads: Arc<AtomicUsize>,
    /// When set, the ids of the items run, in the order they ran (all
    /// workers).
    pub run_log: Option<Arc<Mutex<Vec<u64>>>>,
    /// How the backend costs a batch ([`Backend::batching`]; default
    /// [`Batching::PACKED`]); `run` takes `per_item` per unit of that cost.
    pub batching: Batching,
    /// The inputs of each `run`, one entry per call (all workers).
    pub forward_log: Option<Arc<Mutex<Vec<Vec<u64>>>>>,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            per_item: Duration::ZERO,
            per_batch: Duration::ZERO,
            per_item_by_load: Vec::new(),
            per_item_by_worker: Vec::new(),
            load_time: Duration::ZERO,
            failing_loads: Arc::new(AtomicUsize::new(0)),
            loads: Arc::new(AtomicUsize::new(0)),
            hang_release: Gate::new(),
            batches: Arc::new(AtomicU64::new(0)),
            items: Arc::new(AtomicU64::new(0)),
            max_batch: Arc::new(AtomicUsize::new(0)),
            chaos: None,
            hanging_loads: Arc::new(AtomicUsize::new(0)),
            run_log: None,
            batching: Batching::PACKED,
            forward_log: None,
        }
    }
}

impl SyntheticSpec {
    /// A spec whose `run` takes `per_item` per input.
    pub fn with_per_item(per_item: Duration) -> Self {
        Self {
            per_item,
            ..Self::default()
        }
    }
}

/// The synthetic backend. `Input = Item`, `Output = u64` (the item's id).
#[derive(Debug)]
pub struct Synthetic {
    spec: SyntheticSpec,
    per_item: Duration,
}

impl Backend for Synthetic {
    type Spec = SyntheticSpec;
    type Input = Item;
    type Output = u64;

    fn load(spec: &SyntheticSpec, ctx: &LoadContext) -> Result<Self, BackendError> {
        let n = spec.loads.fetch_add(1, Ordering::AcqRel);
        let hangs = spec
            .hanging_loads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |h| h.checked_sub(1))
            .is_ok();
        if hangs {
            spec.hang_release.pass();
        }
        if !spec.load_time.is_zero() {
            std::thread::sleep(spec.load_time);
        }
        let failing = spec
            .failing_loads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |f| match f {
                0 => None,
                usize::MAX => Some(usize::MAX),
                f => Some(f - 1),
            })
            .is_ok();
        if failing {
            return Err(BackendError::new(format!("synthetic load {n} failed")));
        }
        let by_worker = usize::try_from(ctx.worker_id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .and_then(|k| spec.per_item_by_worker.get(k));
        Ok(Self {
            per_item: by_worker
                .or_else(|| spec.per_item_by_load.get(n))
                .copied()
                .unwrap_or(spec.per_item),
            spec: spec.clone(),
        })
    }

    fn cost(&self, input: &Item) -> usize {
        if let Some(f) = &input.fault {
            if matches!(f.kind, FaultKind::PanicInCost) {
                panic!("synthetic panic in cost of item {}", input.id);
            }
        }
        input.cost.max(1)
    }

    fn batching(&self) -> Batching {
        self.spec.batching
    }

    fn run(&mut self, batch: &[&Item]) -> Result<Vec<u64>, BackendError> {
        self.spec.batches.fetch_add(1, Ordering::Relaxed);
        self.spec
            .items
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.spec
            .max_batch
            .fetch_max(batch.len(), Ordering::Relaxed);
        if let Some(log) = &self.spec.run_log {
            log.lock().extend(batch.iter().map(|i| i.id));
        }
        if let Some(log) = &self.spec.forward_log {
            log.lock().push(batch.iter().map(|i| i.id).collect());
        }
        let mut extra = Duration::ZERO;
        let mut short = false;
        if let Some(chaos) = &self.spec.chaos {
            match chaos.roll() {
                Some(ChaosFault::Hang) => extra += chaos.hang_for,
                Some(ChaosFault::Panic) => panic!("synthetic chaos panic"),
                Some(ChaosFault::Slow) => extra += chaos.slow_for,
                Some(ChaosFault::Error) => {
                    return Err(BackendError::new("synthetic chaos error"));
                }
                None => {}
            }
        }
        for item in batch {
            let Some(fault) = &item.fault else { continue };
            match fault.take() {
                None => {}
                Some(FaultKind::Hang) => self.spec.hang_release.pass(),
                Some(FaultKind::Panic) => panic!("synthetic panic on item {}", item.id),
                Some(FaultKind::Error) => {
                    return Err(BackendError::new(format!(
                        "synthetic error on item {}",
                        item.id
                    )))
                }
                Some(FaultKind::Delay(d)) => extra += *d,
                Some(FaultKind::Gate(g)) => g.pass(),
                Some(FaultKind::WrongCount) => short = true,
                Some(FaultKind::PanicInCost) => {}
            }
        }
        let shape = batch
            .iter()
            .fold(BatchShape::default(), |s, i| s.with(i.cost.max(1)));
        let cost = self.spec.batching.cost(shape);
        let busy = self
            .per_item
            .saturating_mul(u32::try_from(cost).unwrap_or(u32::MAX))
            + self.spec.per_batch
            + extra;
        if !busy.is_zero() {
            std::thread::sleep(busy);
        }
        let mut out: Vec<u64> = batch.iter().map(|i| i.id).collect();
        if short {
            out.pop();
        }
        Ok(out)
    }
}
