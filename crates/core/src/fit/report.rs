//! The result of one fit: values, standard errors, covariance, χ², why the solver stopped,
//! and what the data could not constrain.
//!
//! A failed fit carries a reason and no values: a NaN is never written as a result.

use serde::Serialize;

/// How the covariance is scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ErrorScale {
    /// The errors are trusted only in their ratios: covariance = (JᵀWJ)⁻¹ · χ²_red
    /// (scipy's `curve_fit` default, `absolute_sigma=False`; docs/model.md §6). The default, since
    /// g2 errors from a pixel spread or a two-time diagonal are often optimistic.
    #[default]
    Relative,
    /// The errors are absolute 1σ: covariance = (JᵀWJ)⁻¹, unscaled.
    Absolute,
    /// Covariance from refits to leave-one-pixel-group-out g2 curves (see
    /// [`super::jackknife`]): includes the correlation between lags that the two above miss.
    Jackknife,
}

/// Why the solver stopped after converging.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Termination {
    /// The relative decrease of χ² in the last accepted step was below `f_tol`.
    SmallChi2Change,
    /// The last step changed every free parameter by less than `x_tol` (relative).
    SmallStep,
    /// The gradient was orthogonal to the residuals to within `g_tol` (a stationary point).
    SmallGradient,
    /// No step could lower χ² any further at the largest damping (at the numerical minimum).
    NoFurtherImprovement,
    /// Every parameter was fixed: nothing to fit, χ² evaluated at the given values.
    AllFixed,
}

/// Values of a converged fit (all in external units, in the model's parameter order).
#[derive(Clone, Debug, Serialize)]
pub struct FitValues {
    /// Parameter values (fixed ones as given).
    pub values: Vec<f64>,
    /// 1σ standard errors (0 for fixed parameters); scaled per [`FitReport::error_scale`].
    pub std_errors: Vec<f64>,
    /// Covariance matrix (rows and columns of fixed parameters are 0), same scaling.
    pub covariance: Vec<Vec<f64>>,
    /// χ² = Σ ((y - m)/σ)².
    pub chi2: f64,
    /// χ²/dof.
    pub chi2_red: f64,
    /// Degrees of freedom: points used minus free parameters.
    pub dof: usize,
    /// Why the solver stopped.
    pub termination: Termination,
    /// Levenberg–Marquardt iterations of the best start.
    pub iterations: usize,
}

/// Outcome of a fit.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FitOutcome {
    /// The solver converged; values are finite.
    Converged(FitValues),
    /// No result: why.
    Failed {
        /// The reason in one line (too few points, non-positive errors, singular normal
        /// matrix, no convergence, ...).
        reason: String,
    },
}

/// Everything about one fit.
#[derive(Clone, Debug, Serialize)]
pub struct FitReport {
    /// Model name (`kww`, `exp`, `kww-heterodyne`, `aging`, ...).
    pub model: String,
    /// Parameter names in order.
    pub param_names: Vec<String>,
    /// Parameter units in order ("" = dimensionless).
    pub param_units: Vec<String>,
    /// Which parameters were held fixed.
    pub fixed: Vec<bool>,
    /// How the covariance is scaled.
    pub error_scale: ErrorScale,
    /// Points used (finite x, y and error).
    pub n_points: usize,
    /// Points dropped because x, y or the error was not finite.
    pub n_dropped: usize,
    /// Converged values or the failure reason.
    pub outcome: FitOutcome,
    /// What the data could not constrain, or other cautions (empty when none).
    pub warnings: Vec<String>,
}

impl FitReport {
    /// True when the fit converged.
    pub fn is_ok(&self) -> bool {
        matches!(self.outcome, FitOutcome::Converged(_))
    }

    /// The converged values, if any.
    pub fn fitted(&self) -> Option<&FitValues> {
        match &self.outcome {
            FitOutcome::Converged(v) => Some(v),
            FitOutcome::Failed { .. } => None,
        }
    }

    /// The failure reason, if the fit failed.
    pub fn failure(&self) -> Option<&str> {
        match &self.outcome {
            FitOutcome::Converged(_) => None,
            FitOutcome::Failed { reason } => Some(reason),
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.param_names.iter().position(|n| n == name)
    }

    /// Value of parameter `name` (None if failed or unknown).
    pub fn value(&self, name: &str) -> Option<f64> {
        Some(self.fitted()?.values[self.index(name)?])
    }

    /// 1σ standard error of parameter `name` (None if failed or unknown).
    pub fn std_error(&self, name: &str) -> Option<f64> {
        Some(self.fitted()?.std_errors[self.index(name)?])
    }

    /// One line per parameter, for logs: `tau = 12.3 ± 0.4 s`.
    pub fn summary(&self) -> String {
        match &self.outcome {
            FitOutcome::Failed { reason } => format!("{}: FAILED: {reason}", self.model),
            FitOutcome::Converged(v) => {
                let mut s = format!(
                    "{} ({:?}, χ²_red = {:.3}, dof = {}, {:?} errors):",
                    self.model, v.termination, v.chi2_red, v.dof, self.error_scale
                );
                for (i, n) in self.param_names.iter().enumerate() {
                    let fixed = if self.fixed[i] { " (fixed)" } else { "" };
                    s.push_str(&format!(
                        "\n  {n} = {:.6e} ± {:.2e} {}{fixed}",
                        v.values[i], v.std_errors[i], self.param_units[i]
                    ));
                }
                for w in &self.warnings {
                    s.push_str(&format!("\n  warning: {w}"));
                }
                s
            }
        }
    }
}
