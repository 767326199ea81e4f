//! Fitting: turning g2 curves and two-time maps into the numbers the seed studies report,
//! with honest uncertainties.
//!
//! Input: plain arrays only (delays in s, g2 and g2_err as (lag × q-bin) arrays or slices,
//! two-time maps C(t1,t2) as `Array2<f64>` indexed (frame, frame) with the frame time in s).
//! Output: [`FitReport`]s and small result structs (τ(tw), τ(q), ΔV, crossover pressure).
//! This module never imports `model`, `speckle` or `instrument`: it runs the same on real data.
//!
//! Layout (model × solver × report):
//! - [`model`]: the [`FitModel`] trait and the g2 models ([`Kww`], [`Exponential`],
//!   [`KwwHeterodyne`]).
//! - [`lm`]: weighted Levenberg–Marquardt ([`fit_curve`], [`FitOptions`]).
//! - [`report`]: [`FitReport`] (values, standard errors, covariance, χ²_red, termination,
//!   warnings; failures carry a reason, never NaN values).
//! - [`twotime`]: age cuts of C(t1,t2) at t_mid, τ(tw), the aging law.
//! - [`qdep`]: fits per q-bin and the power law τ(q).
//! - [`pressure`]: ln τ vs P, activation volume, crossover pressure.
//! - [`heterogeneity`]: the analytic noise floor of ΔC.
//! - [`calibration`]: pull statistics over seeded repeats (are the error bars honest?).

pub mod calibration;
pub mod heterogeneity;
pub mod lm;
pub mod model;
pub mod pressure;
pub mod qdep;
pub mod report;
pub mod twotime;

pub use lm::{fit_curve, FitOptions};
pub use model::{Domain, Exponential, FitModel, Kww, KwwHeterodyne, ParamSpec};
pub use report::{ErrorScale, FitOutcome, FitReport, FitValues, Termination};

#[cfg(test)]
mod reference_tests;
