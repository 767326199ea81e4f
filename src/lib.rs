//! # xpcs-twin: a digital twin of an XPCS experiment
//!
//! A coherent x-ray beam crosses a metallic glass squeezed in a diamond anvil cell; a
//! photon-counting detector records a movie of speckle. xpcs-twin simulates, photon by photon,
//! what the detector would record, and analyses it with the same correlation and fitting core
//! that runs on real data.
//!
//! ```text
//! models/*.toml ──► model      glass dynamics: material clock u(t), ISF f     deterministic
//!               ──► speckle    complex fields per pixel and mode               seeded
//!               ──► instrument beam, DAC, detector, photon counting           seeded
//!               ──► data       FrameStack (dense) or EventList (sparse CSR)
//!               ──► correlate  multi-tau g2, two-time C(t1,t2), events, ΔC
//!               ──► fit        KWW, aging, τ(q), activation volume
//!               ──► validate / plan
//!               ──► io, report HDF5 (APS NeXus keys), JSON, PNG
//! ```
//!
//! The analysis half (`correlate`, `fit`) never imports the simulation half (`model`,
//! `speckle`, `instrument`): it sees photons, label maps and frame times only.
//!
//! ```
//! use xpcs_twin::data::{FrameStack, QPartition};
//! use xpcs_twin::correlate::naive;
//! // Two pixels, four frames of constant counts: g2 = 1 at every lag.
//! let stack = FrameStack::from_u16(4, 1, 2, vec![3; 8]).unwrap();
//! let part = QPartition::from_labels(1, 2, vec![1, 1], "example").unwrap();
//! let g2 = naive::g2_symmetric(&stack, part.dynamic().pixels(1), 1);
//! assert!((g2 - 1.0).abs() < 1e-12);
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod rng;

pub mod config;
pub mod data;
pub mod instrument;

pub mod model;
pub mod speckle;

pub mod correlate;
pub mod fit;

pub mod plan;
pub mod report;

pub mod twin;

pub mod io;

pub use error::{Error, Result};
