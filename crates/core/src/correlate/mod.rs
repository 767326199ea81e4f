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
//!
//! ```
//! use xpcs_core::correlate::{DenseMultiTau, EventCorrelator, Estimator, LagSchedule};
//! use xpcs_core::data::{EventList, FrameStack, QPartition};
//! // 6 frames of 1 × 3 pixels; bin 1 = pixels 0 and 1, pixel 2 excluded.
//! let stack = FrameStack::from_u16(6, 1, 3, vec![1, 0, 5, 2, 1, 0, 0, 1, 0, 1, 1, 2, 3, 0, 0, 1, 2, 1]).unwrap();
//! let part = QPartition::from_labels(1, 3, vec![1, 1, 0], "example").unwrap();
//! let sched = LagSchedule::multi_tau(6, 4).unwrap();
//! // Dense, streamed in two chunks.
//! let mut dense = DenseMultiTau::new(&part, &sched);
//! dense.push_stack(&stack, 0..4).unwrap();
//! dense.push_stack(&stack, 4..6).unwrap();
//! let g2 = dense.finish(Estimator::Symmetric).unwrap();
//! assert_eq!(g2.estimator.name(), "symmetric");
//! // The event correlator gives the same numbers, bit for bit.
//! let events = EventList::from_stack(&stack, 0.1).unwrap();
//! let mut ev = EventCorrelator::new(&part, &sched, 6);
//! ev.push_events(&events).unwrap();
//! assert_eq!(ev.sums(), &dense.sums());
//! ```
//!
//! Names, ours ← the field's (scikit-beam, boost_corr, Xana, APS results files):
//!
//! | ours | theirs |
//! |---|---|
//! | `lag_frames` (frames), delay = lag × frame_time (s) | `lag_steps`, `tau`, `delay_list` |
//! | `num_bufs`, levels | `num_bufs`/`multitau_channels`, `dpl`, `chn`; `num_levels`, registers |
//! | `G`, `IP`, `IF` ([`Moments`] `g`, `p`, `f`) | `G`, `past_intensity`, `future_intensity`; `G2`, `IP`, `IF` |
//! | [`G2Result::g2`] (n_lags, n_bins) | `g2`, `normalized_g2` |
//! | [`TwoTimeResult::c2`] | `c2`, `correlation_map`, TTCF |
//! | [`IntensityStats`] fields | `intensity_vs_time`, `scattering_2d`, `scattering_1d`(`_segments`) |

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

pub use event::{BlockSums, EventCorrelator};
pub use intensity::IntensityStats;
pub use lags::{LagEntry, LagSchedule};
pub use multitau::DenseMultiTau;
pub use sums::{BinStatus, Cells, Estimator, G2Result, Moments, MultiTauSums};
pub use twotime::TwoTimeResult;
pub use twotime::{two_time_stack, two_time_view};
