//! Correlators: the analysis half that real and simulated data share.
//!
//! Input: photons ([`crate::data::FrameStack`], any [`crate::data::FrameSource`], or
//! [`crate::data::EventList`]) and a [`crate::data::QPartition`]. Output: per dynamic q-bin,
//! g2 at a list of lags ([`G2Result`], (n_lags, n_bins), lags in frames), two-time maps
//! ([`TwoTimeResult`], C(t1, t2) per bin), mean intensities ([`IntensityStats`]) and the
//! heterogeneity width ΔC ([`heterogeneity::delta_c`]). This module never imports `model`,
//! `speckle` or `instrument`: it sees photons, label maps and frame times only.
//!
//! - [`lags`]: lag schedules as plain data (multi-tau, linear, scikit-beam / boost_corr / Xana
//!   presets).
//! - [`multitau`]: the dense streaming multi-tau / linear correlator.
//! - [`event`]: the same outputs from sparse photons, work ∝ photon pairs.
//! - [`twotime`]: C(t1, t2), one-time g2 from its diagonals, age cuts.
//! - [`sums`]: the exact integer sums both correlators reduce to, and the estimators.
//! - [`naive`]: the brute-force definitions every fast path is tested against.
//!
//! Empty bins, bins without photons and lags without frame pairs give NaN, with the reason in
//! [`BinStatus`]; nothing here panics on such input.

// Numerical kernels index several parallel arrays by one loop variable; iterator chains
// would hide which axis is which.
#![allow(clippy::needless_range_loop)]

pub mod event;
pub mod heterogeneity;
pub mod intensity;
pub mod lags;
pub mod multitau;
pub mod naive;
pub mod sums;
pub mod twotime;

#[cfg(test)]
mod tests;

pub use event::EventCorrelator;
pub use intensity::IntensityStats;
pub use lags::{LagEntry, LagSchedule};
pub use multitau::DenseMultiTau;
pub use sums::{BinStatus, Cells, Estimator, G2Result, MultiTauSums};
pub use twotime::TwoTimeResult;
