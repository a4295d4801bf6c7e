//! Corral: a Rust runtime that runs ML inference workers under a ractor
//! supervisor — bounded mailboxes, least-loaded routing, backpressure the
//! caller chooses per call, and replacement of stuck or deadlocked workers.
//!
//! This facade re-exports the runtime ([`corral_core`]) at its root and, with
//! the `embed` feature (on by default), the candle text-embedding backend as
//! [`embed`].

#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub use corral_core::*;

/// Text embeddings with candle (the `corral-embed` crate).
#[cfg(feature = "embed")]
pub use corral_embed as embed;

#[cfg(feature = "cluster")]
pub use corral_cluster as cluster;

// The README's code blocks, as doc tests: `cargo test --doc -p corral` (and
// so the README's test command) compiles its Rust blocks and runs them; the
// first spawns a pool of the default model. Its text blocks are marked `sh`
// or `text`. Only rustdoc's doctest pass sees this item.
#[cfg(all(doctest, feature = "embed"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
