//! One copy of each fast model per process: the workers of a pool (and the
//! worker that replaces a stuck one) read the weights the first of them
//! loaded, instead of each loading, quantising and packing its own.
//!
//! A pool of N workers so holds one model, not N (MiniLM in fp32 is 90 MB
//! a copy), and only its first worker pays the load. The weights are
//! immutable once shared (each worker has buffers of its own, see
//! [`FastBert::share`]), so a worker that hangs or panics in a forward pass
//! leaves nothing behind for the one that replaces it. The cache holds the
//! weights weakly: they are freed with the last worker reading them. A
//! load that comes while the same model loads waits for that load, but not
//! forever: a load in flight for [`STALE_LOAD`] is presumed stuck (a hung
//! read, a worker the supervisor gave up on), and the next one loads on its
//! own; a load that panics wakes its waiters at once.
//!
//! This module owns the cache, [`load_shared`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crate::fast::{kernel_isa, FastBert, FastBertConfig, WeakWeights};
use crate::Quantize;

/// What makes two loads the same model: the file (by its canonical path,
/// length and modification time, so a model rewritten on disk loads
/// afresh), the configuration, the arithmetic and the kernel build.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    file: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    config: FastBertConfig,
    quantize: Quantize,
    isa: &'static str,
}

/// How long a load waits for the same model's load in flight before it
/// presumes that one stuck (a hung read, a thread the supervisor gave up
/// on) and loads on its own: far past any load of a model the fast engine
/// runs (MiniLM loads in 0.1 s, a large BERT in seconds), far short of the
/// supervisor's default `load_timeout` (300 s), so a replacement worker is
/// never held behind an abandoned one.
const STALE_LOAD: Duration = Duration::from_secs(60);

/// Where one model's load stands.
#[derive(Debug)]
enum State {
    /// Never loaded, or its last load failed.
    Empty,
    /// Load `id` has been running since `since`.
    Loading { id: u64, since: Instant },
    /// Loaded; shared while some FastBert still reads it.
    Ready(WeakWeights),
}

/// One model's entry: its state, and a signal on each change of it.
#[derive(Debug)]
struct Slot {
    state: Mutex<State>,
    changed: Condvar,
}

impl Slot {
    /// Records how load `id` ended: its outcome if the slot still waits
    /// for it, or its model if the slot has none alive (a load presumed
    /// stuck that finished after all, or one that ran beside it); then
    /// wakes the waiters.
    fn finish(&self, id: Option<u64>, model: Option<&mut FastBert>) {
        let mut state = lock(&self.state);
        let mine = matches!(*state, State::Loading { id: current, .. } if Some(current) == id);
        let alive = matches!(&*state, State::Ready(w) if w.is_live());
        match model {
            Some(model) if !alive => *state = State::Ready(model.weak_weights()),
            None if mine => *state = State::Empty,
            _ => {}
        }
        drop(state);
        self.changed.notify_all();
    }
}

/// Clears a load's claim on its slot if the load unwinds (a panic in it),
/// so that the others load instead of waiting for it.
struct Claim<'a> {
    slot: &'a Slot,
    id: u64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.slot.finish(Some(self.id), None);
        }
    }
}

/// Every model this process loaded that may still be in use.
static LOADED: Mutex<Vec<(Key, Arc<Slot>)>> = Mutex::new(Vec::new());

/// The ids of loads, each new.
static NEXT_LOAD: AtomicU64 = AtomicU64::new(0);

/// A lock that a panic elsewhere does not poison for good: the data under
/// these locks is a cache entry, valid whatever the panicking holder did.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A FastBert on the weights in `file`, with the dense layers in the
/// arithmetic `quantize` asks for: built by `load` on the first call for this model, and sharing
/// that call's weights (with buffers of its own) on every later one while
/// any FastBert still reads them. A call that comes while another loads the
/// same model waits for it — for at most [`STALE_LOAD`] after that load
/// began, then loads on its own. `load` is called with nothing shared yet
/// and should return the model quantised as asked.
///
/// # Errors
/// `load`'s, when it runs; an error is not cached (the next call loads
/// again).
pub(crate) fn load_shared<E>(
    file: &Path,
    config: &FastBertConfig,
    quantize: Quantize,
    load: impl FnOnce() -> Result<FastBert, E>,
) -> Result<FastBert, E> {
    load_shared_within(file, config, quantize, STALE_LOAD, load)
}

/// [`load_shared`], presuming a load in flight stuck after `stale`.
fn load_shared_within<E>(
    file: &Path,
    config: &FastBertConfig,
    quantize: Quantize,
    stale: Duration,
    load: impl FnOnce() -> Result<FastBert, E>,
) -> Result<FastBert, E> {
    let Some(key) = key(file, config, quantize) else {
        // No metadata: `load` says why (or loads what it can).
        return load();
    };
    let slot = slot(key);
    let mut state = lock(&slot.state);
    loop {
        match &*state {
            State::Ready(weights) => match weights.upgrade() {
                Some(model) => {
                    tracing::debug!(file = %file.display(), "sharing the weights already loaded");
                    return Ok(model);
                }
                None => break,
            },
            State::Empty => break,
            State::Loading { since, .. } => {
                let waited = since.elapsed();
                if waited >= stale {
                    drop(state);
                    tracing::warn!(
                        file = %file.display(),
                        "the same model's load has run {waited:?}: loading beside it"
                    );
                    let mut model = load()?;
                    slot.finish(None, Some(&mut model));
                    return Ok(model);
                }
                state = slot
                    .changed
                    .wait_timeout(state, stale - waited)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
    let id = NEXT_LOAD.fetch_add(1, Ordering::Relaxed);
    *state = State::Loading {
        id,
        since: Instant::now(),
    };
    drop(state);
    let _claim = Claim { slot: &slot, id };
    match load() {
        Ok(mut model) => {
            slot.finish(Some(id), Some(&mut model));
            Ok(model)
        }
        Err(e) => {
            slot.finish(Some(id), None);
            Err(e)
        }
    }
}

/// The slot of `key`, made if new; forgets the models nobody reads any
/// more on the way (a slot another call holds, or whose model is being
/// loaded, stays).
fn slot(key: Key) -> Arc<Slot> {
    let mut all = lock(&LOADED);
    all.retain(|(_, slot)| {
        Arc::strong_count(slot) > 1
            || slot.state.try_lock().map_or(true, |state| match &*state {
                State::Empty => false,
                State::Loading { .. } => true,
                State::Ready(weights) => weights.is_live(),
            })
    });
    if let Some((_, slot)) = all.iter().find(|(k, _)| *k == key) {
        return Arc::clone(slot);
    }
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Empty),
        changed: Condvar::new(),
    });
    all.push((key, Arc::clone(&slot)));
    slot
}

/// The key of `file` with `config`, or `None` when its metadata cannot be
/// read.
fn key(file: &Path, config: &FastBertConfig, quantize: Quantize) -> Option<Key> {
    let canonical = file.canonicalize().ok()?;
    let meta = std::fs::metadata(&canonical).ok()?;
    Some(Key {
        file: canonical,
        len: meta.len(),
        modified: meta.modified().ok(),
        config: config.clone(),
        quantize,
        isa: kernel_isa(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    use super::*;
    use crate::fast::FastBertError;

    fn tiny() -> (tempfile::TempDir, PathBuf, FastBertConfig) {
        let dir = tempfile::tempdir().unwrap();
        let (path, config) = crate::fast::write_tiny_bert(dir.path(), 1);
        (dir, path, config)
    }

    fn counted(
        file: &Path,
        config: &FastBertConfig,
        loads: &AtomicUsize,
    ) -> Result<FastBert, FastBertError> {
        load_shared(file, config, Quantize::None, || {
            loads.fetch_add(1, Ordering::SeqCst);
            FastBert::load(file, config)
        })
    }

    #[test]
    fn later_loads_share_the_first_ones_weights_until_the_last_is_dropped() {
        let (_dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let a = counted(&file, &config, &loads).unwrap();
        let b = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 1, "the second load shares");
        assert!(a.shares_weights_with(&b));
        drop(b);
        let c = counted(&file, &config, &loads).unwrap();
        assert!(a.shares_weights_with(&c), "one reader left is enough");
        drop((a, c));
        let d = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2, "freed, so loaded again");
        drop(d);
    }

    #[test]
    fn another_arithmetic_or_a_rewritten_file_loads_its_own() {
        let (dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let fp32 = counted(&file, &config, &loads).unwrap();
        let int8 = load_shared(&file, &config, Quantize::Int8, || {
            FastBert::load(&file, &config)
        })
        .unwrap();
        assert!(!fp32.shares_weights_with(&int8));
        let bf16 = load_shared(&file, &config, Quantize::Bf16, || {
            FastBert::load(&file, &config)
        })
        .unwrap();
        assert!(!bf16.shares_weights_with(&fp32) && !bf16.shares_weights_with(&int8));
        // Another length on disk is another model.
        let (more, _) = crate::fast::write_tiny_bert(dir.path(), 2);
        assert_eq!(more, file);
        let rewritten = counted(&file, &config, &loads).unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), 2);
        assert!(!fp32.shares_weights_with(&rewritten));
    }

    #[test]
    fn a_failed_load_is_not_cached_and_a_panicked_one_poisons_nothing() {
        let (_dir, file, config) = tiny();
        let failed: Result<FastBert, FastBertError> =
            load_shared(&file, &config, Quantize::None, || {
                Err(FastBertError::Config("planted".into()))
            });
        assert!(failed.is_err());
        let panicked = std::panic::catch_unwind(|| {
            let _ =
                load_shared::<FastBertError>(&file, &config, Quantize::None, || panic!("planted"));
        });
        assert!(panicked.is_err());
        let loads = AtomicUsize::new(0);
        let model = counted(&file, &config, &loads).unwrap();
        assert_eq!(
            loads.load(Ordering::SeqCst),
            1,
            "loaded for real after both"
        );
        drop(model);
    }

    #[test]
    fn loads_at_the_same_time_wait_for_one() {
        let (_dir, file, config) = tiny();
        let loads = AtomicUsize::new(0);
        let barrier = std::sync::Barrier::new(4);
        let models: Vec<FastBert> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        counted(&file, &config, &loads).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert!(models.iter().all(|m| m.shares_weights_with(&models[0])));
    }

    #[test]
    fn a_stuck_load_holds_the_others_back_only_until_it_is_stale() {
        let (_dir, file, config) = tiny();
        let stale = Duration::from_millis(50);
        let (release, stuck) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        let loads = AtomicUsize::new(0);
        // Before the first load marks itself in flight, so that the
        // waiter's own load starting `stale` after this is the bound kept.
        let before = Instant::now();
        let waited = std::sync::OnceLock::new();
        std::thread::scope(|s| {
            // The first load blocks until released (a hung read), or 30 s
            // at most, so that a failed assertion below fails the test
            // instead of leaving it waiting.
            let (f, c) = (&file, &config);
            let first = s.spawn(move || {
                load_shared_within(f, c, Quantize::None, stale, || {
                    started_tx.send(()).unwrap();
                    let _ = stuck.recv_timeout(Duration::from_secs(30));
                    FastBert::load(f, c)
                })
            });
            started.recv().unwrap();
            // The second waits for it, then, past `stale`, loads on its
            // own while the first is still stuck (on its own thread, so
            // that a waiter that never gives up fails this test instead of
            // hanging it).
            let (done_tx, done) = mpsc::channel();
            let (l, w) = (&loads, &waited);
            s.spawn(move || {
                let got = load_shared_within(f, c, Quantize::None, stale, || {
                    l.fetch_add(1, Ordering::SeqCst);
                    w.set(before.elapsed()).unwrap();
                    FastBert::load(f, c)
                });
                done_tx.send(got).unwrap();
            });
            let second = match done.recv_timeout(Duration::from_secs(20)) {
                Ok(second) => second.unwrap(),
                Err(e) => {
                    release.send(()).unwrap();
                    panic!("the waiter never came back from the stuck load: {e}");
                }
            };
            assert_eq!(loads.load(Ordering::SeqCst), 1);
            let waited = *waited.get().unwrap();
            assert!(waited >= stale, "loaded on its own after {waited:?}");
            // Later calls share the second's weights, not another load.
            let third = counted(&file, &config, &loads).unwrap();
            assert!(third.shares_weights_with(&second));
            // The stuck load finishes after all: its model stands alone,
            // and the slot keeps the weights that are in use.
            release.send(()).unwrap();
            let first = first.join().unwrap().unwrap();
            assert!(!first.shares_weights_with(&second));
            let fourth = counted(&file, &config, &loads).unwrap();
            assert!(fourth.shares_weights_with(&second));
            assert_eq!(loads.load(Ordering::SeqCst), 1);
        });
    }

    #[test]
    fn a_panicking_load_frees_its_waiters_at_once() {
        let (_dir, file, config) = tiny();
        // Stale only after 20 s: a waiter back well before that was woken
        // by the panic's release of the slot, not by the bound.
        let stale = Duration::from_secs(20);
        let (go, wait) = mpsc::channel::<()>();
        let (started_tx, started) = mpsc::channel::<()>();
        std::thread::scope(|s| {
            let (f, c) = (&file, &config);
            let first = s.spawn(move || {
                load_shared_within::<FastBertError>(f, c, Quantize::None, stale, || {
                    started_tx.send(()).unwrap();
                    let _ = wait.recv_timeout(Duration::from_secs(30));
                    panic!("planted")
                })
            });
            started.recv().unwrap();
            let second = s.spawn(|| {
                load_shared_within(&file, &config, Quantize::None, stale, || {
                    FastBert::load(&file, &config)
                })
            });
            let t = Instant::now();
            go.send(()).unwrap();
            assert!(first.join().is_err(), "the first load panicked");
            assert!(second.join().unwrap().is_ok(), "the waiter loaded instead");
            assert!(
                t.elapsed() < stale / 2,
                "woken by the panic: {:?}",
                t.elapsed()
            );
        });
    }
}
