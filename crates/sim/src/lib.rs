//! # xpcs-sim: the simulation half of xpcs-twin
//!
//! From a sample's glass dynamics to the photons a detector records:
//!
//! ```text
//! models/*.toml ──► config     sample and instrument files, checked once into runtime types
//!               ──► model      glass dynamics: material clock u(t), ISF f, ground truth   deterministic
//!               ──► speckle    complex fields per pixel and mode                         seeded
//!               ──► instrument beam, DAC, detector, photon counting                     seeded
//!               ──► xpcs_core::data  FrameStack (dense) or EventList (sparse CSR)
//! ```
//!
//! Randomness comes only from [`rng`]: the same seed gives the same photons bit for bit
//! whatever the thread count. The analysis core (`xpcs-core`) never depends on this crate.

#![warn(missing_docs)]

pub mod config;
pub mod rng;

pub mod instrument;
pub mod model;
pub mod speckle;
