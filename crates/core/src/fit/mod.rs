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
//! - [`mod@line`]: the weighted straight line (aging rates, extrapolations).
//! - [`twotime`]: age cuts of C(t1,t2) at t_mid, τ(tw), the aging law.
//! - [`qdep`]: fits per q-bin and the power law τ(q).
//! - [`pressure`]: ln τ vs P, activation volume, crossover pressure.
//! - [`jackknife`]: parameter errors from refits to leave-one-pixel-group-out g2 curves.
//! - [`calibration`]: pull statistics over seeded repeats (are the error bars honest?).

pub mod calibration;
pub mod jackknife;
pub mod line;
pub mod lm;
pub mod model;
pub mod pressure;
pub mod qdep;
pub mod report;
pub mod twotime;

pub use jackknife::fit_curve_jackknife;
pub use lm::{fit_curve, FitOptions};
pub use model::{Domain, Exponential, FitModel, Kww, KwwHeterodyne, ParamSpec};
pub use report::{ErrorScale, FitOutcome, FitReport, FitValues, Termination};

use crate::error::{Error, Result};

/// The g2 model named on the command line: `kww`, `kww-heterodyne` or `exp`.
pub fn g2_model_by_name(name: &str) -> Result<Box<dyn FitModel>> {
    match name {
        "kww" => Ok(Box::new(Kww)),
        "kww-heterodyne" => Ok(Box::new(KwwHeterodyne)),
        "exp" => Ok(Box::new(Exponential)),
        other => Err(Error::out_of_range(
            "--model",
            "model",
            other,
            "kww, kww-heterodyne or exp",
        )),
    }
}

/// Parses a `name=value` fixed-parameter argument (e.g. `baseline=1.006`). The name is
/// checked against the model when the fit runs.
pub fn parse_fix(arg: &str) -> Result<(String, f64)> {
    let (name, value) = arg.split_once('=').ok_or_else(|| {
        Error::invalid(
            "--fix",
            format!("`{arg}` is not of the form name=value (e.g. baseline=1.006)"),
        )
    })?;
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| Error::invalid("--fix", format!("`{value}` in `{arg}` is not a number")))?;
    Ok((name.trim().to_string(), v))
}

#[cfg(test)]
mod reference_tests;

#[cfg(test)]
mod cli_helper_tests {
    use super::*;

    #[test]
    fn model_names_and_fix_arguments() {
        assert_eq!(g2_model_by_name("kww").unwrap().name(), "kww");
        assert_eq!(g2_model_by_name("exp").unwrap().params().len(), 3);
        assert_eq!(
            g2_model_by_name("kww-heterodyne").unwrap().params().len(),
            5
        );
        assert!(g2_model_by_name("gauss").is_err());
        assert_eq!(
            parse_fix("baseline=1.006").unwrap(),
            ("baseline".to_string(), 1.006)
        );
        assert!(parse_fix("baseline").is_err());
        assert!(parse_fix("baseline=abc").is_err());
    }
}
