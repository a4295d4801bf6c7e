use std::time::Duration;

use super::{SlotView, Snapshot, UNMEASURED_RETRY};
use crate::stats::{Health, PoolStats, WorkerState};

const MS: u64 = 1_000_000;

fn slot(slot: usize, state: WorkerState, service_ns: u64) -> SlotView {
    let live = matches!(state, WorkerState::Ready | WorkerState::Loading);
    SlotView {
        slot,
        worker_id: live.then_some(slot as u64 + 100),
        state,
        depth: if live { slot + 1 } else { 0 },
        running: if live { slot } else { 0 },
        service_ns,
        processed: 10 * slot as u64 + 1,
        batches: slot as u64 + 1,
        last_pong_age: live.then_some(Duration::from_millis(slot as u64)),
    }
}

fn snapshot(slots: Vec<SlotView>) -> Snapshot {
    Snapshot {
        slots,
        waiting: 3,
        abandoned: 2,
        draining: false,
        stopped: false,
    }
}

#[test]
fn retry_after_is_the_soonest_ready_worker_finishing() {
    let s = snapshot(vec![
        slot(0, WorkerState::Ready, 30 * MS),
        slot(1, WorkerState::Ready, 12 * MS),
        // Faster, but not taking requests: not counted.
        slot(2, WorkerState::Loading, 2 * MS),
        // Ready but not measured yet: not counted.
        slot(3, WorkerState::Ready, 0),
    ]);
    assert_eq!(s.retry_after(), Duration::from_millis(12));
}

#[test]
fn retry_after_is_clamped_and_has_a_default() {
    let fast = snapshot(vec![slot(0, WorkerState::Ready, 1_000)]);
    assert_eq!(fast.retry_after(), Duration::from_millis(1));
    let slow = snapshot(vec![slot(0, WorkerState::Ready, 60_000 * MS)]);
    assert_eq!(slow.retry_after(), Duration::from_secs(5));
    let unmeasured = snapshot(vec![
        slot(0, WorkerState::Ready, 0),
        slot(1, WorkerState::Restarting, 0),
    ]);
    assert_eq!(unmeasured.retry_after(), UNMEASURED_RETRY);
}

#[test]
fn per_request_is_the_inverse_of_the_summed_rates() {
    let even = snapshot(vec![
        slot(0, WorkerState::Ready, 10 * MS),
        slot(1, WorkerState::Ready, 10 * MS),
    ]);
    assert_eq!(even.per_request_ns(), 5 * MS);
    let uneven = snapshot(vec![
        slot(0, WorkerState::Ready, 10 * MS),
        slot(1, WorkerState::Ready, 30 * MS),
        slot(2, WorkerState::Loading, MS),
        slot(3, WorkerState::Ready, 0),
    ]);
    // 1 / (1/10 + 1/30) = 7.5 ms.
    assert_eq!(uneven.per_request_ns(), 7_500_000);
    assert_eq!(
        snapshot(vec![slot(0, WorkerState::Ready, 0)]).per_request_ns(),
        0
    );
}

#[test]
fn processed_counts_every_slot_once_live_or_empty() {
    let s = snapshot(vec![
        slot(0, WorkerState::Ready, MS),
        slot(1, WorkerState::Restarting, 0),
        slot(2, WorkerState::Disabled, 0),
    ]);
    assert_eq!(s.processed(), 1 + 11 + 21);
    assert_eq!(s.depths(), [1, 0, 0]);
}

#[test]
fn health_follows_the_slots_and_the_pool_flags() {
    let ready = || {
        vec![
            slot(0, WorkerState::Ready, MS),
            slot(1, WorkerState::Ready, MS),
        ]
    };
    assert_eq!(snapshot(ready()).health().health, Health::Healthy);

    for degraded in [WorkerState::Loading, WorkerState::Restarting] {
        let s = snapshot(vec![slot(0, WorkerState::Ready, MS), slot(1, degraded, 0)]);
        assert_eq!(s.health().health, Health::Degraded, "{degraded:?}");
    }
    let disabled = snapshot(vec![
        slot(0, WorkerState::Ready, MS),
        slot(1, WorkerState::Disabled, 0),
    ]);
    assert_eq!(disabled.health().health, Health::Unhealthy);

    let mut draining = snapshot(ready());
    draining.draining = true;
    let report = draining.health();
    assert_eq!(report.health, Health::Unhealthy);
    assert!(report.draining);

    let mut stopped = snapshot(ready());
    stopped.stopped = true;
    let report = stopped.health();
    assert_eq!(report.health, Health::Unhealthy);
    assert!(!report.draining);
}

#[test]
fn health_and_stats_report_the_same_figures() {
    let s = snapshot(vec![
        slot(0, WorkerState::Ready, 4 * MS),
        slot(1, WorkerState::Loading, 0),
        slot(2, WorkerState::Restarting, 0),
    ]);
    let health = s.health();
    let mut stats = PoolStats::default();
    s.fill_stats(&mut stats);
    assert_eq!(health.waiting, 3);
    assert_eq!(stats.waiting, 3);
    assert_eq!(stats.abandoned_threads, 2);
    assert_eq!(health.retry_after, Duration::from_millis(4));
    assert_eq!(health.total_depth(), 1 + 2);
    for ((h, w), v) in health.workers.iter().zip(&stats.workers).zip(&s.slots) {
        assert_eq!((h.slot, w.slot), (v.slot, v.slot));
        assert_eq!((h.worker_id, w.worker_id), (v.worker_id, v.worker_id));
        assert_eq!(h.state, v.state);
        assert_eq!((h.queue_depth, w.depth), (v.depth, v.depth));
        assert_eq!((h.running, w.running), (v.running, v.running));
        assert_eq!(h.last_pong_age, v.last_pong_age);
        assert_eq!((w.processed, w.batches), (v.processed, v.batches));
    }
    assert_eq!(stats.workers.len(), 3);
}
