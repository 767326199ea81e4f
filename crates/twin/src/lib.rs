//! # xpcs-twin: a digital twin of an XPCS experiment
//!
//! A coherent x-ray beam crosses a metallic glass squeezed in a diamond anvil cell; a
//! photon-counting detector records a movie of speckle. xpcs-twin simulates, photon by photon,
//! what the detector would record, and analyses it with the same correlation and fitting core
//! that runs on real data.
//!
//! The workspace's crates are the stages:
//!
//! ```text
//! xpcs-core   data, correlate, fit         the analysis core: photons in, g2 and fits out
//! xpcs-io     NPY, Eiger HDF5, events, APS results files
//! xpcs-sim    config, model, speckle, instrument    dynamics → fields → photons
//! xpcs-twin   twin, plan, report (this crate)       campaigns, planner, validation, figures
//! ```
//!
//! The analysis core never depends on the simulation: it sees photons, label maps and frame
//! times only, and the build enforces it. For convenience this crate re-exports the stages'
//! modules under one path (`xpcs_twin::correlate`, `xpcs_twin::model`, `xpcs_twin::io`, ...).
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

pub mod config;
pub mod fit_results;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod twin;

pub use xpcs_core::{check, correlate, data, error, fit, seed, Error, Result};
pub use xpcs_io as io;
pub use xpcs_sim::{instrument, model, rng, speckle};
