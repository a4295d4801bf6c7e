//! Corral pools across ractor_cluster nodes (work in progress).

pub mod wire;
