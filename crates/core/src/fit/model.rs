//! Fit models: parameter specs, evaluation and analytic Jacobians.
//!
//! A [`FitModel`] maps an abscissa `x` (the delay in s for g2 models, the age in s for the
//! aging law, q in Å⁻¹ for the power law, pressure in GPa for the activation-volume fits) and
//! a parameter vector `p` (in the order of [`FitModel::params`], in external units) to the
//! model value. The solver in [`super::lm`] never sees the physics: it only calls
//! [`FitModel::eval`], [`FitModel::jacobian`] and [`FitModel::starts`].
//!
//! g2 models (delay `t` ≥ 0 in s, g2 dimensionless, symmetric-estimator normalisation so that
//! g2 → baseline at long delay):
//! - [`Kww`]: g2 = a + c·exp(-2 (t/τ)^β) (homodyne; g2(0) = a + c, g2(∞) = a).
//! - [`Exponential`]: the same with β = 1.
//! - [`KwwHeterodyne`]: g2 = a + c [(1-x)² f² + 2x(1-x) f + x²], f = exp(-(t/τ)^β), with the
//!   static fraction x = Is/(Is+Id) (docs/model.md §3 with the leading 1 replaced by a baseline
//!   a): g2(0) = a + c, g2(∞) = a + c x². At x = 0 it is [`Kww`].
//!
//! Reference: Siegert relation g2 - 1 = c |f|² (Goodman, Statistical Optics, 1985);
//! KWW in metallic glasses: Ruta et al., PRL 109, 165701 (2012); heterodyne mixing with a
//! static field: Livet et al., J. Synchrotron Rad. 13, 453 (2006), and docs/model.md §3.

use crate::check::sig;

/// The allowed values of a parameter. The solver keeps free parameters inside their domain by
/// reparametrisation (log for positive parameters) and refuses fixed values outside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Domain {
    /// Any finite real number.
    Real,
    /// Strictly positive (fitted as its logarithm).
    Positive,
    /// The KWW exponent: (0, 2] for a fixed value (exp(-|x|^β) is a covariance only there);
    /// fitted as its logarithm, a fitted value above 2 draws a warning.
    KwwExponent,
    /// [0, 1] for a fixed value; fitted unbounded, a value outside draws a warning.
    UnitInterval,
}

impl Domain {
    /// True when `v` is an allowed value.
    pub fn contains(self, v: f64) -> bool {
        v.is_finite()
            && match self {
                Domain::Real => true,
                Domain::Positive => v > 0.0,
                Domain::KwwExponent => v > 0.0 && v <= 2.0,
                Domain::UnitInterval => (0.0..=1.0).contains(&v),
            }
    }

    /// The allowed range in words (for error messages).
    pub fn describe(self) -> &'static str {
        match self {
            Domain::Real => "any finite number",
            Domain::Positive => "> 0",
            Domain::KwwExponent => "(0, 2]",
            Domain::UnitInterval => "[0, 1]",
        }
    }

    /// True when the solver fits the logarithm of the parameter.
    pub fn log_scale(self) -> bool {
        matches!(self, Domain::Positive | Domain::KwwExponent)
    }
}

/// Name, unit and domain of one parameter.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ParamSpec {
    /// Name (glossary: `baseline`, `contrast`, `tau`, `kww_exponent`, ...).
    pub name: &'static str,
    /// Unit ("" when dimensionless).
    pub unit: &'static str,
    /// Allowed values.
    pub domain: Domain,
}

/// A model y = m(x; p) with an analytic Jacobian.
pub trait FitModel: Sync {
    /// Short name written into reports (`kww`, `kww-heterodyne`, ...).
    fn name(&self) -> &str;
    /// The parameters, in the order used by `p`.
    fn params(&self) -> &[ParamSpec];
    /// The model value at `x`.
    fn eval(&self, x: f64, p: &[f64]) -> f64;
    /// ∂m/∂p_j at `x`, written into `out` (length = number of parameters).
    fn jacobian(&self, x: f64, p: &[f64], out: &mut [f64]);
    /// Starting points estimated from the data (x, y), the first being the best guess. Entries
    /// of `fixed` that are `Some` must be used as given.
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>>;
    /// Model-specific warnings about what the data cannot constrain, given the fitted `p`, the
    /// abscissae used and which parameters were free.
    fn diagnose(&self, _x: &[f64], _p: &[f64], _free: &[bool]) -> Vec<String> {
        Vec::new()
    }
}

// ----------------------------------------------------------------------------------------
// helpers shared by the g2 models

/// s = (t/τ)^β and s·ln(t/τ) (the β-derivative factor), both 0 at t ≤ 0.
fn kww_s(t: f64, tau: f64, beta: f64) -> (f64, f64) {
    if t <= 0.0 {
        return (0.0, 0.0);
    }
    let l = (t / tau).ln();
    let s = (beta * l).exp();
    (s, s * l)
}

/// Mean of the finite values of `v` (NaN if none).
fn finite_mean(v: &[f64]) -> f64 {
    let (s, n) = v
        .iter()
        .filter(|x| x.is_finite())
        .fold((0.0, 0usize), |(s, n), &x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// First x at which the normalised decay h(x) falls below `level`, interpolated linearly in
/// ln x (None when it never does, or the first point is already below).
fn crossing(x: &[f64], h: &[f64], level: f64) -> Option<f64> {
    let first = h.iter().position(|v| v.is_finite())?;
    if h[first] < level {
        return None;
    }
    let mut prev = first;
    for i in first + 1..h.len() {
        if !h[i].is_finite() {
            continue;
        }
        if h[i] < level {
            let (x0, x1) = (x[prev].max(1e-300), x[i].max(1e-300));
            let (h0, h1) = (h[prev], h[i]);
            let w = if (h0 - h1).abs() > 0.0 {
                (h0 - level) / (h0 - h1)
            } else {
                0.5
            };
            return Some((x0.ln() + w * (x1.ln() - x0.ln())).exp());
        }
        prev = i;
    }
    None
}

/// Data-driven starting values shared by the g2 models: (baseline, contrast, tau, beta).
///
/// Baseline: the mean of the last 10 % of points (at least 3); contrast: the mean of the first
/// 3 points minus the baseline; τ: where the normalised decay h = (g2 - a)/c crosses e^-2
/// (h(τ) = e^-2 for every β); β from the crossings of 0.8 and 0.2 (for KWW,
/// (t/τ)^β = -ln h / 2 at both levels).
fn g2_guess(x: &[f64], y: &[f64], fixed_a: Option<f64>, fixed_c: Option<f64>) -> [f64; 4] {
    let n = y.len();
    let tail = (n / 10).max(3).min(n);
    let head = 3.min(n);
    let a = fixed_a.unwrap_or_else(|| finite_mean(&y[n - tail..]));
    let c_raw = fixed_c.unwrap_or_else(|| finite_mean(&y[..head]) - a);
    let c = if c_raw.is_finite() && c_raw.abs() > 0.0 {
        c_raw
    } else {
        0.1
    };
    let h: Vec<f64> = y.iter().map(|v| (v - a) / c).collect();
    let x_pos: Vec<f64> = x.iter().copied().filter(|v| *v > 0.0).collect();
    let x_min = x_pos.first().copied().unwrap_or(1.0);
    let x_max = x_pos.last().copied().unwrap_or(1.0);
    let tau =
        crossing(x, &h, (-2.0f64).exp()).unwrap_or(if h.last().copied().unwrap_or(0.0) > 0.5 {
            2.0 * x_max
        } else {
            x_min
        });
    let beta = match (crossing(x, &h, 0.8), crossing(x, &h, 0.2)) {
        (Some(t1), Some(t2)) if t2 > t1 => {
            let b = ((0.2f64.ln() / 0.8f64.ln()).ln()) / (t2 / t1).ln();
            b.clamp(0.3, 2.0)
        }
        _ => 1.0,
    };
    [a, c, tau.max(1e-300), beta]
}

fn push_unique(starts: &mut Vec<Vec<f64>>, p: Vec<f64>) {
    if !starts.iter().any(|s| {
        s.iter()
            .zip(&p)
            .all(|(a, b)| (a - b).abs() <= 1e-12 * a.abs().max(1.0))
    }) {
        starts.push(p);
    }
}

/// Warnings shared by the g2 models: short scan with a free baseline, τ outside the lags.
fn g2_diagnose(x: &[f64], tau: f64, baseline_free: bool) -> Vec<String> {
    let mut w = Vec::new();
    let x_pos = x.iter().copied().filter(|v| *v > 0.0);
    let x_min = x_pos.clone().fold(f64::INFINITY, f64::min);
    let x_max = x_pos.fold(0.0f64, f64::max);
    if baseline_free && x_max < 3.0 * tau {
        w.push(format!(
            "longest delay {} s < 3 tau = {} s with a free baseline: baseline and tau are \
             degenerate, tau and its error are unreliable (fix the baseline or scan longer)",
            sig(x_max, 4),
            sig(3.0 * tau, 4)
        ));
    }
    if tau < x_min || tau > x_max {
        w.push(format!(
            "tau = {} s is outside the delay range [{}, {}] s: it is an extrapolation",
            sig(tau, 4),
            sig(x_min, 4),
            sig(x_max, 4)
        ));
    }
    w
}

fn beta_warning(beta: f64) -> Option<String> {
    (beta > 2.0).then(|| {
        format!(
            "kww_exponent = {beta:.3} > 2: outside the physical range (0, 2] (exp(-|x|^β) is not \
             a correlation function there)"
        )
    })
}

// ----------------------------------------------------------------------------------------

const KWW_PARAMS: [ParamSpec; 4] = [
    ParamSpec {
        name: "baseline",
        unit: "",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "contrast",
        unit: "",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "tau",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "kww_exponent",
        unit: "",
        domain: Domain::KwwExponent,
    },
];

/// Homodyne KWW: g2(t) = baseline + contrast·exp(-2 (t/tau)^kww_exponent).
///
/// Parameters `[baseline, contrast, tau (s), kww_exponent]`.
/// Reference: Ruta et al., PRL 109, 165701 (2012).
#[derive(Clone, Copy, Debug, Default)]
pub struct Kww;

impl FitModel for Kww {
    fn name(&self) -> &str {
        "kww"
    }
    fn params(&self) -> &[ParamSpec] {
        &KWW_PARAMS
    }
    fn eval(&self, t: f64, p: &[f64]) -> f64 {
        let (s, _) = kww_s(t, p[2], p[3]);
        p[0] + p[1] * (-2.0 * s).exp()
    }
    fn jacobian(&self, t: f64, p: &[f64], out: &mut [f64]) {
        let (c, tau, beta) = (p[1], p[2], p[3]);
        let (s, sl) = kww_s(t, tau, beta);
        let e = (-2.0 * s).exp();
        out[0] = 1.0;
        out[1] = e;
        // ∂s/∂τ = -β s/τ, ∂s/∂β = s ln(t/τ).
        out[2] = 2.0 * c * e * beta * s / tau;
        out[3] = -2.0 * c * e * sl;
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let [a, c, tau, beta] = g2_guess(x, y, fixed[0], fixed[1]);
        let mut out = Vec::new();
        for b in [beta, 1.0, 1.8] {
            let p = vec![a, c, fixed[2].unwrap_or(tau), fixed[3].unwrap_or(b)];
            push_unique(&mut out, p);
        }
        out
    }
    fn diagnose(&self, x: &[f64], p: &[f64], free: &[bool]) -> Vec<String> {
        let mut w = g2_diagnose(x, p[2], free[0]);
        w.extend(beta_warning(p[3]));
        w
    }
}

const EXP_PARAMS: [ParamSpec; 3] = [KWW_PARAMS[0], KWW_PARAMS[1], KWW_PARAMS[2]];

/// Simple exponential: g2(t) = baseline + contrast·exp(-2 t/tau) (KWW with β = 1).
///
/// Parameters `[baseline, contrast, tau (s)]`. Reference: Siegert relation for a Lorentzian
/// spectrum (Goodman 1985).
#[derive(Clone, Copy, Debug, Default)]
pub struct Exponential;

impl FitModel for Exponential {
    fn name(&self) -> &str {
        "exp"
    }
    fn params(&self) -> &[ParamSpec] {
        &EXP_PARAMS
    }
    fn eval(&self, t: f64, p: &[f64]) -> f64 {
        p[0] + p[1] * (-2.0 * t.max(0.0) / p[2]).exp()
    }
    fn jacobian(&self, t: f64, p: &[f64], out: &mut [f64]) {
        let t = t.max(0.0);
        let e = (-2.0 * t / p[2]).exp();
        out[0] = 1.0;
        out[1] = e;
        out[2] = 2.0 * p[1] * e * t / (p[2] * p[2]);
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let [a, c, tau, _] = g2_guess(x, y, fixed[0], fixed[1]);
        vec![vec![a, c, fixed[2].unwrap_or(tau)]]
    }
    fn diagnose(&self, x: &[f64], p: &[f64], free: &[bool]) -> Vec<String> {
        g2_diagnose(x, p[2], free[0])
    }
}

const HET_PARAMS: [ParamSpec; 5] = [
    KWW_PARAMS[0],
    KWW_PARAMS[1],
    KWW_PARAMS[2],
    KWW_PARAMS[3],
    ParamSpec {
        name: "static_fraction",
        unit: "",
        domain: Domain::UnitInterval,
    },
];

/// Heterodyne KWW with a speckled static field of fraction x:
/// g2(t) = baseline + contrast [(1-x)² f² + 2x(1-x) f + x²], f = exp(-(t/tau)^β).
///
/// Parameters `[baseline, contrast, tau (s), kww_exponent, static_fraction]`. With a free
/// baseline the asymptote is baseline + contrast·x². Reference: docs/model.md §3; Livet et al.,
/// J. Synchrotron Rad. 13, 453 (2006).
#[derive(Clone, Copy, Debug, Default)]
pub struct KwwHeterodyne;

impl FitModel for KwwHeterodyne {
    fn name(&self) -> &str {
        "kww-heterodyne"
    }
    fn params(&self) -> &[ParamSpec] {
        &HET_PARAMS
    }
    fn eval(&self, t: f64, p: &[f64]) -> f64 {
        let (a, c, tau, beta, x) = (p[0], p[1], p[2], p[3], p[4]);
        let (s, _) = kww_s(t, tau, beta);
        let f = (-s).exp();
        a + c * ((1.0 - x) * (1.0 - x) * f * f + 2.0 * x * (1.0 - x) * f + x * x)
    }
    fn jacobian(&self, t: f64, p: &[f64], out: &mut [f64]) {
        let (c, tau, beta, x) = (p[1], p[2], p[3], p[4]);
        let (s, sl) = kww_s(t, tau, beta);
        let f = (-s).exp();
        let ff = f * f;
        let shape = (1.0 - x) * (1.0 - x) * ff + 2.0 * x * (1.0 - x) * f + x * x;
        // d(shape)/ds = -[2(1-x)² f² + 2x(1-x) f].
        let dshape_ds = -(2.0 * (1.0 - x) * (1.0 - x) * ff + 2.0 * x * (1.0 - x) * f);
        out[0] = 1.0;
        out[1] = shape;
        out[2] = c * dshape_ds * (-beta * s / tau);
        out[3] = c * dshape_ds * sl;
        out[4] = c * (-2.0 * (1.0 - x) * ff + 2.0 * (1.0 - 2.0 * x) * f + 2.0 * x);
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let [a, c, tau, beta] = g2_guess(x, y, None, fixed[1]);
        let mut out = Vec::new();
        for xs in [0.05, 0.3] {
            let xs = fixed[4].unwrap_or(xs);
            // The tail estimate is baseline + contrast·x²: remove the static term.
            let a0 = fixed[0].unwrap_or(a - c * xs * xs);
            for b in [beta, 1.5] {
                let p = vec![a0, c, fixed[2].unwrap_or(tau), fixed[3].unwrap_or(b), xs];
                push_unique(&mut out, p);
            }
        }
        out
    }
    fn diagnose(&self, xv: &[f64], p: &[f64], free: &[bool]) -> Vec<String> {
        let mut w = g2_diagnose(xv, p[2], free[0]);
        w.extend(beta_warning(p[3]));
        if !(0.0..=1.0).contains(&p[4]) {
            w.push(format!(
                "static_fraction = {:.4} is outside [0, 1]: the heterodyne model does not describe \
                 these data",
                p[4]
            ));
        }
        w
    }
}

/// Look up the index of parameter `name` in `model` (None if the model has no such parameter).
pub fn param_index(model: &dyn FitModel, name: &str) -> Option<usize> {
    model.params().iter().position(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Central difference of `model` in parameter j, with a step relative to the parameter.
    fn central(model: &dyn FitModel, t: f64, p: &[f64], j: usize) -> f64 {
        let h = 1e-6 * p[j].abs().max(1e-3);
        let mut pp = p.to_vec();
        let mut pm = p.to_vec();
        pp[j] += h;
        pm[j] -= h;
        (model.eval(t, &pp) - model.eval(t, &pm)) / (2.0 * h)
    }

    fn check_jacobian(
        model: &dyn FitModel,
        t: f64,
        p: &[f64],
    ) -> std::result::Result<(), TestCaseError> {
        let mut jac = vec![0.0; p.len()];
        model.jacobian(t, p, &mut jac);
        for j in 0..p.len() {
            let fd = central(model, t, p, j);
            // Central differences carry O(h²) truncation (≤ 1e-6 relative for a step of 1e-6
            // of the parameter) and round-off ≈ eps·|m|/h: allow 100× both.
            let h = 1e-6 * p[j].abs().max(1e-3);
            let roundoff = f64::EPSILON * model.eval(t, p).abs() / h;
            prop_assert!(
                (jac[j] - fd).abs() <= 1e-6 * jac[j].abs() + 100.0 * roundoff,
                "{} param {} at t={t}: analytic {} vs fd {}",
                model.name(),
                j,
                jac[j],
                fd
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn kww_jacobian_matches_central_differences(
            a in 0.9f64..1.1, c in 0.005f64..0.5, tau in 0.01f64..1e4, beta in 0.3f64..2.0,
            rel_t in 1e-3f64..10.0,
        ) {
            check_jacobian(&Kww, rel_t * tau, &[a, c, tau, beta])?;
        }

        #[test]
        fn exp_jacobian_matches_central_differences(
            a in 0.9f64..1.1, c in 0.005f64..0.5, tau in 0.01f64..1e4, rel_t in 1e-3f64..10.0,
        ) {
            check_jacobian(&Exponential, rel_t * tau, &[a, c, tau])?;
        }

        #[test]
        fn heterodyne_jacobian_matches_central_differences(
            a in 0.9f64..1.1, c in 0.005f64..0.5, tau in 0.01f64..1e4, beta in 0.3f64..2.0,
            x in 0.0f64..1.0, rel_t in 1e-3f64..10.0,
        ) {
            check_jacobian(&KwwHeterodyne, rel_t * tau, &[a, c, tau, beta, x])?;
        }

        #[test]
        fn g2_limits(a in 0.9f64..1.1, c in 0.005f64..0.5, tau in 0.01f64..1e4,
                     beta in 0.3f64..2.0, x in 0.0f64..1.0) {
            let p = [a, c, tau, beta];
            prop_assert!((Kww.eval(0.0, &p) - (a + c)).abs() < 1e-14);
            // s = (t/τ)^β = 50 makes exp(-s) < 2e-22: numerically the asymptote.
            let t_inf = tau * 50f64.powf(1.0 / beta);
            prop_assert!((Kww.eval(t_inf, &p) - a).abs() < 1e-14);
            prop_assert!((Exponential.eval(0.0, &p[..3]) - (a + c)).abs() < 1e-14);
            prop_assert!((Exponential.eval(100.0 * tau, &p[..3]) - a).abs() < 1e-14);
            let ph = [a, c, tau, beta, x];
            prop_assert!((KwwHeterodyne.eval(0.0, &ph) - (a + c)).abs() < 1e-14);
            let inf = KwwHeterodyne.eval(t_inf, &ph);
            prop_assert!((inf - (a + c * x * x)).abs() < 1e-12);
            // x = 0 is the homodyne model.
            let h0 = [a, c, tau, beta, 0.0];
            let t = 0.7 * tau;
            prop_assert!((KwwHeterodyne.eval(t, &h0) - Kww.eval(t, &p)).abs() < 1e-14);
        }
    }

    #[test]
    fn beta_one_is_exponential() {
        let p = [1.0, 0.2, 3.0, 1.0];
        for t in [0.0, 0.1, 1.0, 5.0, 30.0] {
            assert!((Kww.eval(t, &p) - Exponential.eval(t, &p[..3])).abs() < 1e-15);
        }
    }

    #[test]
    fn guesses_are_close_on_clean_data() {
        let p = [1.006, 0.15, 40.0, 1.6];
        let x: Vec<f64> = (0..60).map(|i| 0.1 * 1.2f64.powi(i)).collect();
        let y: Vec<f64> = x.iter().map(|&t| Kww.eval(t, &p)).collect();
        let s = Kww.starts(&x, &y, &[None; 4]);
        let g = &s[0];
        assert!((g[0] - 1.006).abs() < 1e-3);
        assert!((g[2] / 40.0 - 1.0).abs() < 0.1, "tau guess {}", g[2]);
        assert!((g[3] - 1.6).abs() < 0.2, "beta guess {}", g[3]);
    }
}
