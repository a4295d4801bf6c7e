//! The bytes a pool request and its reply are carried in between
//! ractor_cluster nodes.
//!
//! ractor_cluster can only carry `BytesConvertable` fields, and
//! `BytesConvertable::from_bytes` cannot fail, so every remote message holds
//! one of the frames below as a `Vec<u8>` and is decoded here, where a bad
//! frame becomes an `Err(`[`WireError`]`)`. Decoding never panics and never
//! reserves memory from a length it has not checked against both the bytes
//! that are left and a [`Limits`] bound.
//!
//! # Encoding
//!
//! Hand-written, little-endian, no padding, no self-description:
//!
//! | Value | Bytes |
//! |-------|-------|
//! | `u8`, `bool` | 1 byte; a bool is `0` or `1`, anything else is [`WireError::Invalid`] |
//! | `u32`, `u64`, `f32` | 4, 8, 4 bytes LE; an `f32` travels as its bits (NaN payloads kept) |
//! | `usize` (item cost) | as `u64` |
//! | [`Duration`] | `u64` microseconds, rounded down; over `u64::MAX` µs (about 584,542 years, e.g. `Duration::MAX`) is sent as `u64::MAX` µs |
//! | `String` | `u32` byte length, then UTF-8 (length ≤ [`Limits::max_item_bytes`]) |
//! | `Vec<f32>`, `Vec<u32>` | `u32` element count, then the elements (count × 4 ≤ [`Limits::max_item_bytes`]) |
//! | `Option<T>` | tag `0` (none), or tag `1` then `T` |
//! | items (`Vec<T>`, see [`encode_items`]) | `u32` count (≤ [`Limits::max_items`]), then each `T` |
//! | [`Admission`] | tag `0` `Reject`, tag `1` `Wait` then a duration, or tag `2` `Default` |
//! | [`LoadReport`] | `in_flight: u32`, `capacity: u32`, `ready_workers: u32`, `per_request: duration`, `retry_after: duration`, `draining: bool` (29 bytes) |
//! | [`Promise`](crate::Promise) | `u32` pair count (≤ [`Limits::max_items`]), then each key and value as strings, keys strictly ascending |
//! | [`PoolError`] | tag `0` `Overloaded` + `retry_after: duration`; `1` `TimedOut`; `2` `WorkerLost`; `3` `ShuttingDown`; `4` `InvalidInput` + string; `5` `Backend` + string; `6` `DeadlinePassed` (strings ≤ [`Limits::max_message`] bytes) |
//! | `synthetic::Item` (feature `testing`) | `id: u64`, `cost: u64`; its fault and payload do not travel |
//! | a capability's inputs and outputs | their own [`Wire`] implementations, in their own crates (see [Extending](#extending)) |
//!
//! A length or count that does not fit a `u32` is written as `u32::MAX`
//! followed by that many bytes or elements, so a frame stays well formed
//! (and a receiver's limits refuse it); nothing that size is expected.
//!
//! # Frames
//!
//! Every frame starts with [`VERSION`] and a [`FrameKind`] byte, and must end
//! exactly where its last field does:
//!
//! | Frame | Layout | Made by | Read by |
//! |-------|--------|---------|---------|
//! | request | `[VERSION][1][admission][deadline: Option<duration>][items]` | [`encode_request`] | [`decode_request`] |
//! | reply | `[VERSION][2][load][0][items]` or `[VERSION][2][load][1][error][refused: bool]` | [`encode_reply`] | [`decode_reply`] |
//! | ping | `[VERSION][3]` | [`encode_ping`] | [`decode_ping`] |
//! | load | `[VERSION][4][load]` | [`encode_load`] | [`decode_load`] |
//! | describe | `[VERSION][5]` | [`encode_describe`] | [`decode_describe`] |
//! | promise | `[VERSION][6][load][promise]` | [`encode_promise`] | [`decode_promise`] |
//!
//! A decoder checks the frame's size against [`Limits::max_frame`] first,
//! then the version, then the kind, then the fields, then that no bytes are
//! left over.
//!
//! # Layout
//!
//! - `format`: [`VERSION`], [`Limits`], [`WireError`], [`ENVELOPE`].
//! - `reader`: [`Reader`], the checked reads.
//! - `writer`: [`put_len`], [`put_str`], [`put_bool`], [`put_u32`],
//!   [`put_u64`], [`put_f32`], their counterparts.
//! - `codec`: the [`Wire`] trait, [`encode_items`] / [`decode_items`], and
//!   the wire forms of the standard and runtime types above.
//! - `frame`: [`FrameKind`] and the six frames.
//!
//! # Extending
//!
//! A task's inputs and outputs travel through their own [`Wire`]
//! implementations, written in the crate that defines them (as
//! `corral-embed` does for its `EmbedInput` and `EmbedOutput` behind its
//! `cluster` feature), so a new task needs no change here. This is a
//! stable extension point: [`Wire`], [`Reader`], [`Limits`], [`WireError`],
//! the `put_*` writers and the wire forms of the standard types above
//! (`u64`, [`Duration`], `String`, `Vec<f32>`, `Vec<u32>`, `Option<T>`)
//! change only with [`VERSION`]. An implementation keeps the contract on
//! [`Wire`]: strict, never panicking, every length through
//! [`Reader::length`] or [`Reader::string`] against a [`Limits`] bound. No
//! type is named in a frame: the members of a pool's group
//! ([`group_name`](crate::group_name)) and its routers agree on the input
//! and output types by the group they join.
//!
//! ```
//! use corral_cluster::wire::{self, Limits, Reader, Wire, WireError};
//! use corral_core::Submit;
//!
//! /// A reranker's input: a query and one candidate passage.
//! #[derive(Debug, PartialEq)]
//! struct Pair {
//!     query: String,
//!     passage: String,
//! }
//!
//! impl Wire for Pair {
//!     // Two string lengths.
//!     const MIN_LEN: usize = 8;
//!
//!     fn encode(&self, out: &mut Vec<u8>) {
//!         wire::put_str(out, &self.query);
//!         wire::put_str(out, &self.passage);
//!     }
//!
//!     fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
//!         Ok(Self {
//!             query: r.string("query", limits.max_item_bytes)?,
//!             passage: r.string("passage", limits.max_item_bytes)?,
//!         })
//!     }
//! }
//!
//! let pair = Pair { query: "rust".into(), passage: "a language".into() };
//! let bytes = wire::encode_request(&Submit::reject(vec![pair]));
//! let back: Submit<Pair> = wire::decode_request(&bytes, &Limits::default())?;
//! assert_eq!(back.inputs[0].passage, "a language");
//! # Ok::<(), WireError>(())
//! ```
//!
//! # Example
//!
//! ```
//! use corral_cluster::wire::{self, Limits};
//! use corral_core::Submit;
//! use std::time::Duration;
//!
//! let request = Submit::wait(vec!["hello".to_owned()], Duration::from_secs(5));
//! let bytes = wire::encode_request(&request);
//! let back: Submit<String> = wire::decode_request(&bytes, &Limits::default())?;
//! assert_eq!(back, request);
//! # Ok::<(), wire::WireError>(())
//! ```

#![warn(missing_docs)]

// For the links in the docs above.
#[cfg(doc)]
use {
    corral_core::{Admission, PoolError},
    std::time::Duration,
};

mod codec;
mod format;
mod frame;
mod reader;
#[cfg(feature = "testing")]
pub mod testing;
mod writer;

pub use codec::{decode_items, encode_items, LoadReport, Wire};
pub use format::{Limits, WireError, ENVELOPE, VERSION};
pub use frame::{
    decode_describe, decode_load, decode_ping, decode_promise, decode_reply, decode_request,
    encode_describe, encode_load, encode_ping, encode_promise, encode_reply, encode_request,
    encode_request_framed, encode_request_parts, frame_kind, request_frame_len, EncodedInputs,
    FrameKind, WireReply,
};
pub use reader::Reader;
pub use writer::{put_bool, put_f32, put_len, put_str, put_u32, put_u64};

#[cfg(test)]
mod tests;
