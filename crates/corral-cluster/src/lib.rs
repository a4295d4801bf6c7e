//! Corral pools across ractor_cluster nodes, used as one pool.
//!
//! - [`wire`]: the bytes a request and its reply cross the network as —
//!   versioned, every length checked before anything is allocated. A
//!   task's inputs and outputs bring their own encodings, through the
//!   [`Wire`] trait and the reader and writer primitives (see
//!   [`wire`'s Extending](wire#extending)); this crate knows no task.
//! - [`Member`]: puts a local pool in its process group
//!   ([`group_name`]), answers requests through the pool's own door and
//!   pings with the pool's load.
//! - [`ClusterHandle`]: a router on any node, with the local handle's
//!   method family and errors: least expected wait across members (local
//!   first on ties), refusals and waiting as locally, failover of requests
//!   in flight to a lost member, and liveness of its own (a node frozen
//!   without closing its connection is out of routing within
//!   `liveness + ping_interval`).
//! - [`Node`]: a ractor_cluster node server that listens only where it is
//!   told, reconnects to its peers (one session per peer, whichever side
//!   opened it), holds inbound frames to the wire limit, and sets up TLS.
//!
//! How load travels: every reply carries the member pool's load report
//! (fresh under load, at no extra message), and the router pings every
//! member each `ping_interval` (which keeps idle members' figures and
//! liveness current). Between reports, a router counts its own requests
//! out to each member exactly.

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod flags;
pub mod handle;
pub mod member;
pub mod node;
pub mod promise;
mod router;
mod table;
pub mod wire;

#[cfg(feature = "cli")]
pub use flags::{shutdown_signal, NodeArgs};
pub use flags::{NodeFlags, COOKIE_ENV};
pub use handle::{ClusterConfig, ClusterHandle, ClusterStats};
pub use member::{group_name, Member, MemberMsg};
pub use node::{Node, NodeConfig, NodeError, SessionInfo, TlsConfig};
pub use promise::{Promise, NODE_KEY};
pub use table::{MemberCounts, MemberInfo, NO_PROMISE};
pub use wire::{LoadReport, Wire, WireError};
