//! Fault injection on the handle (the `testing` feature).

use tokio::sync::oneshot;

use super::PoolHandle;
use crate::backend::Backend;
use crate::msg::InternalMsg;

impl<B: Backend> PoolHandle<B> {
    /// Fault injection (the `testing` feature): the worker actor in `slot`
    /// blocks forever in its next handler, as a deadlocked actor would.
    pub fn inject_actor_freeze(&self, slot: usize) {
        let _ = self
            .pool
            .actor
            .send_message(InternalMsg::Freeze { slot }.into());
    }

    /// Fault injection (the `testing` feature): the supervisor's next
    /// handler waits, answering nothing, until the returned sender is used
    /// or dropped.
    pub fn inject_supervisor_stall(&self) -> oneshot::Sender<()> {
        let (release, stalled) = oneshot::channel();
        let _ = self
            .pool
            .actor
            .send_message(InternalMsg::Stall(stalled).into());
        release
    }

    /// Fault injection (the `testing` feature): the supervisor's next
    /// handler panics, so the actor dies without `post_stop`.
    pub fn inject_supervisor_panic(&self) {
        let _ = self.pool.actor.send_message(InternalMsg::Panic.into());
    }
}
