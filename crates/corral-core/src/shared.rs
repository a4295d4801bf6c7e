//! [`PoolShared`]: the state a pool's handles and its supervisor share —
//! readiness, the abandoned-thread count, worker ids, the door and the
//! recorder. One per pool: nothing global, so any number of pools live side
//! by side in one process.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::door::Door;
use crate::stats::recorder::Recorder;

/// See the module docs.
pub(crate) struct PoolShared {
    /// Ready workers, published by the supervisor.
    pub(crate) ready: watch::Sender<usize>,
    /// Abandoned compute threads still alive.
    pub(crate) abandoned: Arc<AtomicUsize>,
    next_worker_id: AtomicU64,
    pub(crate) door: Arc<Door>,
    pub(crate) recorder: Arc<Recorder>,
    /// The pool's time between completions with every ready worker busy
    /// (ns; 0 until measured), published by the supervisor each tick.
    pub(crate) per_request_ns: AtomicU64,
    /// Set once the pool starts draining for shutdown.
    pub(crate) draining: AtomicBool,
}

impl PoolShared {
    pub(crate) fn new(door: Arc<Door>, recorder: Arc<Recorder>) -> Self {
        Self {
            ready: watch::Sender::new(0),
            abandoned: Arc::new(AtomicUsize::new(0)),
            next_worker_id: AtomicU64::new(0),
            door,
            recorder,
            per_request_ns: AtomicU64::new(0),
            draining: AtomicBool::new(false),
        }
    }

    pub(crate) fn next_worker_id(&self) -> u64 {
        self.next_worker_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}
