//! The front doors for host applications, one file per seam:
//!
//! - `spawn`: [`Pool::spawn`] starts a pool and returns a [`PoolHandle`].
//! - `pool_handle`: [`PoolHandle`], the typed, cheap-to-clone handle:
//!   [`crate::Call`] (the `call*` family), health, stats, readiness and
//!   shutdown.
//! - `pool_ref`: [`PoolRef`], what a host *actor* keeps: the supervisor's
//!   `ActorRef` plus the pool's door. [`PoolRef::admit`] turns a
//!   [`crate::Submit`] into an [`crate::Admitted`] request — or refuses it
//!   on the spot, handing the inputs back — and only an admitted request
//!   can be sent as [`crate::PoolMsg::Submit`] (with `call_t!` or
//!   `send_message`). So every way in takes the same admission permit, and
//!   a flood never piles up in the supervisor's unbounded ractor mailbox.
//! - `testing` (feature `testing`): fault injection on the handle.
//!
//! Both handles implement [`crate::Call`]'s one required method, `submit`;
//! the method family comes from the trait.

mod pool_handle;
mod pool_ref;
mod spawn;
#[cfg(feature = "testing")]
mod testing;

pub use pool_handle::PoolHandle;
pub use pool_ref::{PoolRef, REPORT_TIMEOUT};
pub use spawn::Pool;
