//! Planning a beamtime: how many frames, at what frame time, to measure τ to a given
//! precision, and whether the avalanches will show above the heterogeneity noise floor.
//!
//! Input: plain numbers ([`Setting`]: τ, β, contrast, count rate per pixel, pixels per q-bin,
//! frame time, frames, free fit parameters). Output: Fisher predictions ([`Prediction`]) of
//! the relative errors of τ and c and the absolute error of β.
//!
//! Reference: docs/model.md §7 (and §5 for the ΔC floor).

pub mod fisher;
pub mod floor;
pub mod montecarlo;
pub mod noise;
pub mod recommend;

pub use fisher::{predict, FreeParams, Prediction, Regime, Setting};
pub use montecarlo::{monte_carlo, monte_carlo_with_progress, McOptions, McResult};
pub use recommend::{recommend, Limits, Plan, Target, TargetParam};
