//! # xpcs-core: the analysis core of xpcs-twin
//!
//! Photons in, correlations and fits out. This crate is what runs on real beamline data and on
//! the twin's simulated photons alike:
//!
//! ```text
//! data       FrameStack (dense), FrameSource (streamed), EventList (sparse CSR), QPartition
//! correlate  multi-tau g2, two-time C(t1,t2), the event correlator, intensities, ΔC
//! fit        KWW / exponential fits with jackknife errors, aging, τ(q), activation volume
//! ```
//!
//! It depends on no HDF5, plotting or random-number crate, and on nothing of the simulation
//! (`xpcs-sim`): the wall between analysis and simulation is a dependency rule of the build.
//! File formats live in `xpcs-io`.
//!
//! ```
//! use xpcs_core::data::{FrameStack, QPartition};
//! use xpcs_core::correlate::naive;
//! // Two pixels, four frames of constant counts: g2 = 1 at every lag.
//! let stack = FrameStack::from_u16(4, 1, 2, vec![3; 8]).unwrap();
//! let part = QPartition::from_labels(1, 2, vec![1, 1], "example").unwrap();
//! let g2 = naive::g2_symmetric(&stack, part.dynamic().pixels(1), 1);
//! assert!((g2 - 1.0).abs() < 1e-12);
//! ```

#![warn(missing_docs)]

pub mod check;
pub mod error;
pub mod seed;

pub mod data;

pub mod correlate;
pub mod fit;

pub use error::{Error, Result};

/// Seeded random streams for the unit tests (the same streams as `xpcs_sim::rng`; the core
/// itself draws no random numbers).
#[cfg(test)]
pub(crate) mod rng {
    pub use crate::seed::subseed;
    use rand::SeedableRng;

    /// The random stream for piece `index` of a run seeded with `seed` (ChaCha8).
    pub fn stream(seed: u64, index: u64) -> rand_chacha::ChaCha8Rng {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        rng
    }
}
