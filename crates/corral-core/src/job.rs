//! A [`Job`]: one admitted request on its way through the pool — its inputs,
//! its reply port, which mailbox bound it counts against, and how often it
//! has been tried. A job is answered exactly once: whoever holds it answers
//! it (the compute thread, or the supervisor after taking it back from a
//! failed worker).

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::backend::Backend;
use crate::error::PoolError;

/// The reply a caller receives for one request.
pub type Reply<O> = Result<Vec<O>, PoolError>;

/// Which per-worker bound a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// One input (`embed`): bounded by `embed_queue_capacity`.
    Single,
    /// Several inputs (`embed_batch`): bounded by `batch_queue_capacity`.
    Batch,
}

impl Class {
    pub(crate) fn of(len: usize) -> Self {
        if len == 1 {
            Class::Single
        } else {
            Class::Batch
        }
    }
}

pub(crate) struct Job<B: Backend> {
    /// Shared so that the compute thread can run them while the job itself
    /// stays where the supervisor can take it back.
    pub(crate) inputs: Arc<Vec<B::Input>>,
    pub(crate) reply: RpcReplyPort<Reply<B::Output>>,
    pub(crate) class: Class,
    /// How many times a worker started running this job and failed to
    /// finish it (stuck, deadlocked, panicked).
    pub(crate) failed_attempts: u32,
}

impl<B: Backend> Job<B> {
    pub(crate) fn answer(self, reply: Reply<B::Output>) {
        // A caller that went away is not an error: nobody is left to tell.
        let _ = self.reply.send(reply);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.reply.is_closed()
    }
}
