//! Two-time analysis: age cuts of C(t1,t2), τ as a function of age, and the aging law.
//!
//! Input: a two-time map C(t1,t2) as an `ArrayView2<f64>` indexed (frame t1, frame t2), square
//! T × T, symmetric (only one triangle needs finite values), normalised so that C → 1 at long
//! delay (docs/model.md §5); the frame time in s (frame t is at t·frame_time_s, as in
//! [`crate::data`]). Output: [`AgeCut`]s (delay in s, C, error, pair count), per-age
//! [`FitReport`]s ([`tau_vs_age`]) and the aging-law fit ([`fit_aging`]).
//!
//! A cut is taken at fixed **age** t_mid = (t1+t2)/2, not at fixed t1: for aging dynamics,
//! C(t1, t1+δ) mixes the clock between t1 and t1+δ, and labelling it by t1 biases τ upwards
//! by 1–7 % (docs/model.md §2); labelled by t_mid the bias is second order (< 0.1 %).
//!
//! Reference: Madsen, Leheny, Guo, Sprung & Czakkel, New J. Phys. 12, 055001 (2010) (two-time
//! correlation and age cuts); Ruta et al., PRL 109, 165701 (2012) (aging τ(tw) in metallic
//! glasses); docs/model.md §2.

use ndarray::ArrayView2;

use super::lm::{fit_curve, FitOptions};
use super::model::{Domain, FitModel, ParamSpec};
use super::report::{ErrorScale, FitReport};
use crate::check::sig;
use crate::error::{Error, Result};

/// One cut of a two-time map at fixed age.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgeCut {
    /// Age t_mid of the cut (s, from frame 0).
    pub age_s: f64,
    /// Half-width of the age window actually requested (s).
    pub half_width_s: f64,
    /// Delays t2 - t1 (s), one per lag of 1.. frames; lags with fewer than 2 pairs are absent.
    pub delays_s: Vec<f64>,
    /// Mean of C over the pairs of the window (normalised like the map).
    pub g2: Vec<f64>,
    /// Standard error of that mean: spread over the pairs / sqrt(n). Neighbouring pairs are
    /// correlated when the dynamics are slow, so this is optimistic: fit with
    /// [`super::ErrorScale::Relative`].
    pub g2_err: Vec<f64>,
    /// Number of (t1, t2) pairs averaged per delay.
    pub n_pairs: Vec<usize>,
}

/// Extracts the cut of `c2` at age `age_s` (s), averaging, for each lag d ≥ 1, the pairs
/// (i, i+d) whose age (i + d/2)·Δt lies within `half_width_s` of `age_s`. Near the edges of
/// the map the window is shrunk symmetrically about `age_s` (so the mean age of every point is
/// the requested age); lags with fewer than `min_pairs` (at least 2) pairs are left out.
/// `max_lag` bounds the lags (frames). The lag-0 diagonal (shot-noise term) is never used.
///
/// Choosing the window (measured on a simulated aging map, τ0 = 34 s, τ* = 2300 s, σ_C = 0.01
/// per pair, 30 seeds): the errors from the spread need enough pairs — with 2 pairs per lag
/// the τ pulls were biased by -0.7, with ~20 by -0.2; use `min_pairs` ≥ 10. A wide window
/// mixes ages: half-width 150 s (0.065 τ*) biased τ by +0.12 % (noiseless), which was +0.3σ
/// at that noise level. Keep the half-width ≪ τ* when statistics are good.
pub fn age_cut(
    c2: ArrayView2<f64>,
    frame_time_s: f64,
    age_s: f64,
    half_width_s: f64,
    max_lag: Option<usize>,
    min_pairs: usize,
) -> Result<AgeCut> {
    let n = c2.nrows();
    if c2.ncols() != n {
        return Err(Error::ShapeMismatch {
            origin: "two-time map".into(),
            what: "square C(t1,t2)".into(),
            expected: vec![n, n],
            got: vec![c2.nrows(), c2.ncols()],
        });
    }
    if !(frame_time_s.is_finite() && frame_time_s > 0.0) {
        return Err(Error::out_of_range(
            "age cut",
            "frame_time_s",
            frame_time_s,
            "> 0",
        ));
    }
    let t_total = (n.max(1) - 1) as f64 * frame_time_s;
    if !(age_s.is_finite() && age_s >= 0.0 && age_s <= t_total) {
        return Err(Error::out_of_range(
            "age cut",
            "age_s",
            age_s,
            format!("[0, {t_total}] s (the map's time span)"),
        ));
    }
    if !(half_width_s.is_finite() && half_width_s >= 0.0) {
        return Err(Error::out_of_range(
            "age cut",
            "half_width_s",
            half_width_s,
            ">= 0",
        ));
    }
    // Work in half-frames so that ages on the (i + d/2) grid are integers: 2·age = 2i + d.
    let a2 = 2.0 * age_s / frame_time_s;
    let w2 = 2.0 * half_width_s / frame_time_s;
    let max_d = max_lag.unwrap_or(n - 1).min(n.saturating_sub(1));
    let mut cut = AgeCut {
        age_s,
        half_width_s,
        delays_s: Vec::new(),
        g2: Vec::new(),
        g2_err: Vec::new(),
        n_pairs: Vec::new(),
    };
    for d in 1..=max_d {
        // Symmetric window in 2·age: limited by the request and by both edges of the map
        // (2i + d ≥ d at i = 0, and 2i + d ≤ 2(n-1) - d at i = n-1-d).
        let lo_edge = d as f64;
        let hi_edge = (2 * (n - 1) - d) as f64;
        let w = w2.min(a2 - lo_edge).min(hi_edge - a2);
        if w < 0.0 {
            continue;
        }
        // i with |2i + d - a2| ≤ w (small slack for round-off at exact half-frames).
        let i_lo = ((a2 - w - d as f64) / 2.0 - 1e-9).ceil().max(0.0) as usize;
        let i_hi = ((a2 + w - d as f64) / 2.0 + 1e-9).floor();
        if i_hi < 0.0 {
            continue;
        }
        let i_hi = (i_hi as usize).min(n - 1 - d);
        let (mut s, mut ss, mut k) = (0.0, 0.0, 0usize);
        for i in i_lo..=i_hi {
            let mut v = c2[[i, i + d]];
            if !v.is_finite() {
                v = c2[[i + d, i]];
            }
            if v.is_finite() {
                s += v;
                ss += v * v;
                k += 1;
            }
        }
        if k < min_pairs.max(2) {
            continue;
        }
        let mean = s / k as f64;
        let var = ((ss - s * mean) / (k - 1) as f64).max(0.0);
        cut.delays_s.push(d as f64 * frame_time_s);
        cut.g2.push(mean);
        cut.g2_err.push((var / k as f64).sqrt());
        cut.n_pairs.push(k);
    }
    Ok(cut)
}

/// `n_ages` evenly spaced, non-overlapping age windows covering a scan of `n_frames` frames:
/// (age_s, half_width_s) with age_k = (k + 1/2)·T/n_ages, half-width T/(2 n_ages).
pub fn evenly_spaced_ages(n_frames: usize, frame_time_s: f64, n_ages: usize) -> Vec<(f64, f64)> {
    let t_total = (n_frames.max(1) - 1) as f64 * frame_time_s;
    (0..n_ages)
        .map(|k| {
            let w = t_total / n_ages as f64;
            ((k as f64 + 0.5) * w, 0.5 * w)
        })
        .collect()
}

/// One age of [`tau_vs_age`]: the cut and its fit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AgeFit {
    /// The cut.
    pub cut: AgeCut,
    /// Its fit (failed when the cut is too short or flat).
    pub report: FitReport,
}

/// Cuts `c2` at each (age_s, half_width_s) (see [`age_cut`] for `max_lag` and `min_pairs`)
/// and fits `model` (a g2 model with a `tau` parameter) to each cut with its errors.
pub fn tau_vs_age(
    c2: ArrayView2<f64>,
    frame_time_s: f64,
    ages: &[(f64, f64)],
    max_lag: Option<usize>,
    min_pairs: usize,
    model: &dyn FitModel,
    opts: &FitOptions,
) -> Result<Vec<AgeFit>> {
    ages.iter()
        .map(|&(age, hw)| {
            let cut = age_cut(c2, frame_time_s, age, hw, max_lag, min_pairs)?;
            let report = fit_curve(model, &cut.delays_s, &cut.g2, &cut.g2_err, opts)?;
            Ok(AgeFit { cut, report })
        })
        .collect()
}

const AGING_PARAMS: [ParamSpec; 3] = [
    ParamSpec {
        name: "tau0",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "tau_star",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "tau_eq",
        unit: "s",
        domain: Domain::Positive,
    },
];

/// The aging law in log form, x = age (s), y = ln τ:
/// ln τ(tw) = ln τ0 + tw/τ*, optionally capped at ln τ_eq (docs/model.md §2).
///
/// Parameters `[tau0 (s), tau_star (s)]`, plus `tau_eq (s)` when `saturating`.
/// Reference: Ruta et al., PRL 109, 165701 (2012); docs/model.md §2.
#[derive(Clone, Copy, Debug)]
pub struct AgingLaw {
    /// Whether τ saturates at τ_eq.
    pub saturating: bool,
}

impl AgingLaw {
    fn uncapped(x: f64, p: &[f64]) -> f64 {
        p[0].ln() + x / p[1]
    }
}

impl FitModel for AgingLaw {
    fn name(&self) -> &str {
        if self.saturating {
            "aging-saturating"
        } else {
            "aging"
        }
    }
    fn params(&self) -> &[ParamSpec] {
        if self.saturating {
            &AGING_PARAMS
        } else {
            &AGING_PARAMS[..2]
        }
    }
    fn eval(&self, x: f64, p: &[f64]) -> f64 {
        let u = Self::uncapped(x, p);
        if self.saturating {
            u.min(p[2].ln())
        } else {
            u
        }
    }
    fn jacobian(&self, x: f64, p: &[f64], out: &mut [f64]) {
        let capped = self.saturating && Self::uncapped(x, p) > p[2].ln();
        if capped {
            out[0] = 0.0;
            out[1] = 0.0;
            out[2] = 1.0 / p[2];
        } else {
            out[0] = 1.0 / p[0];
            out[1] = -x / (p[1] * p[1]);
            if self.saturating {
                out[2] = 0.0;
            }
        }
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let (icpt, slope) = line_fit(x, y);
        let span = x.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - x.iter().copied().fold(f64::INFINITY, f64::min);
        let tau_star = if slope > 0.0 {
            1.0 / slope
        } else {
            100.0 * span.max(1.0)
        };
        let mut p = vec![fixed[0].unwrap_or(icpt.exp()), fixed[1].unwrap_or(tau_star)];
        if self.saturating {
            let ymax = y.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            p.push(fixed[2].unwrap_or(ymax.exp()));
        }
        vec![p]
    }
    fn diagnose(&self, x: &[f64], p: &[f64], free: &[bool]) -> Vec<String> {
        let mut w = Vec::new();
        let x_max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if free[1] && p[1] > 10.0 * x_max {
            w.push(format!(
                "tau_star = {} s is > 10× the longest age ({} s): aging is barely resolved",
                sig(p[1], 4),
                sig(x_max, 4)
            ));
        }
        if self.saturating && free[2] && Self::uncapped(x_max, p) <= p[2].ln() {
            w.push("no age reaches the cap: tau_eq is not constrained by the data".into());
        }
        w
    }
}

/// Unweighted least-squares line y = a + b x over finite points: (a, b).
pub(crate) fn line_fit(x: &[f64], y: &[f64]) -> (f64, f64) {
    let pts: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .map(|(a, b)| (*a, *b))
        .collect();
    let n = pts.len() as f64;
    if pts.is_empty() {
        return (0.0, 0.0);
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let b = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (my - b * mx, b)
}

/// Fits the aging law to τ(tw) ± σ_τ (s): in ln τ with σ_lnτ = σ_τ/τ. Non-positive τ or
/// non-finite entries are dropped by the solver (non-finite) or refused (τ ≤ 0: a failure).
///
/// The τ errors come from the per-age / per-bin / per-isobar fits; with only a handful of
/// points, χ²-scaled ([`crate::fit::ErrorScale::Relative`]) errors are themselves uncertain
/// by ~sqrt(2/dof) (the report warns): pass `ErrorScale::Absolute` when the input errors are
/// trusted (e.g. calibrated with [`crate::fit::calibration`]).
pub fn fit_aging(
    age_s: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    saturating: bool,
    opts: &FitOptions,
) -> Result<FitReport> {
    if tau_s.len() != age_s.len() || tau_err_s.len() != age_s.len() {
        return Err(Error::ShapeMismatch {
            origin: "aging fit".into(),
            what: "age, tau and tau_err lengths".into(),
            expected: vec![age_s.len(); 3],
            got: vec![age_s.len(), tau_s.len(), tau_err_s.len()],
        });
    }
    let ln_tau: Vec<f64> = tau_s
        .iter()
        .map(|&t| if t > 0.0 { t.ln() } else { f64::NAN })
        .collect();
    let err: Vec<f64> = tau_s.iter().zip(tau_err_s).map(|(t, e)| e / t).collect();
    let mut report = fit_curve(&AgingLaw { saturating }, age_s, &ln_tau, &err, opts)?;
    // τ* → ∞ is the no-aging limit: when the ages do not resolve a positive rate 1/τ*, the
    // solver runs τ* off to huge values with a meaningless error. Test the rate in the linear
    // form ln τ = ln τ0 + κ tw (weighted least squares, same error scaling) and report the
    // fit as unconstrained, with the one-sided 95 % lower bound on τ*, instead.
    let tau_star_free = !opts.fixed.iter().any(|(n, _)| n == "tau_star");
    if report.is_ok() && !saturating && tau_star_free {
        if let Some((kappa, sigma)) = weighted_slope(age_s, &ln_tau, &err, opts.error_scale) {
            if kappa <= 2.0 * sigma {
                let bound = kappa + 1.645 * sigma;
                let lower = if bound > 0.0 {
                    format!("τ* > {} s at 95 % (one-sided)", sig(1.0 / bound, 4))
                } else {
                    "no lower bound on τ*".to_string()
                };
                report.outcome = crate::fit::FitOutcome::Failed {
                    reason: format!(
                        "aging not resolved: rate 1/τ* = {} ± {} 1/s is within 2σ of zero (τ* \
                         unconstrained; {lower})",
                        sig(kappa, 4),
                        sig(sigma, 4)
                    ),
                };
            }
        }
    }
    Ok(report)
}

/// Weighted least-squares slope κ of y = a + κ x and its 1σ error (scaled by sqrt(χ²_red) for
/// [`ErrorScale::Relative`]); None with fewer than 3 usable points or no spread in x.
fn weighted_slope(x: &[f64], y: &[f64], sigma: &[f64], scale: ErrorScale) -> Option<(f64, f64)> {
    let pts: Vec<(f64, f64, f64)> = (0..x.len())
        .filter(|&i| x[i].is_finite() && y[i].is_finite() && sigma[i].is_finite() && sigma[i] > 0.0)
        .map(|i| (x[i], y[i], 1.0 / (sigma[i] * sigma[i])))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let sw: f64 = pts.iter().map(|p| p.2).sum();
    let mx = pts.iter().map(|p| p.2 * p.0).sum::<f64>() / sw;
    let my = pts.iter().map(|p| p.2 * p.1).sum::<f64>() / sw;
    let sxx: f64 = pts.iter().map(|p| p.2 * (p.0 - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let kappa = pts
        .iter()
        .map(|p| p.2 * (p.0 - mx) * (p.1 - my))
        .sum::<f64>()
        / sxx;
    let chi2: f64 = pts
        .iter()
        .map(|p| p.2 * (p.1 - my - kappa * (p.0 - mx)).powi(2))
        .sum();
    let red = chi2 / (pts.len() - 2) as f64;
    let var = match scale {
        ErrorScale::Absolute => 1.0 / sxx,
        ErrorScale::Relative | ErrorScale::Jackknife => red / sxx,
    };
    Some((kappa, var.sqrt()))
}

/// Fits the aging law to the converged fits of [`tau_vs_age`] (failed ages are skipped).
pub fn fit_aging_from_ages(
    fits: &[AgeFit],
    saturating: bool,
    opts: &FitOptions,
) -> Result<FitReport> {
    let (mut a, mut t, mut e) = (Vec::new(), Vec::new(), Vec::new());
    for f in fits {
        if let (Some(tau), Some(err)) = (f.report.value("tau"), f.report.std_error("tau")) {
            a.push(f.cut.age_s);
            t.push(tau);
            e.push(err);
        }
    }
    fit_aging(&a, &t, &e, saturating, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::model::Kww;
    use crate::rng;
    use ndarray::Array2;
    use rand_distr::{Distribution, Normal};

    /// Expected C(t1,t2) of an aging glass from the material clock (docs/model.md §2), written out
    /// here so the analysis half does not import `model/`:
    /// u(t) = (τ*/τ0)(1 - exp(-t/τ*)), C = 1 + c exp(-2 |u2 - u1|^β).
    fn aging_map(n: usize, dt: f64, tau0: f64, tau_star: f64, c: f64, beta: f64) -> Array2<f64> {
        let u: Vec<f64> = (0..n)
            .map(|i| tau_star / tau0 * (1.0 - (-(i as f64) * dt / tau_star).exp()))
            .collect();
        Array2::from_shape_fn((n, n), |(i, j)| {
            1.0 + c * (-2.0 * (u[j] - u[i]).abs().powf(beta)).exp()
        })
    }

    #[test]
    fn cut_at_age_picks_the_antidiagonal() {
        // C[i, j] = i + j encodes the age: every cut value must equal 2·age/Δt.
        let n = 50;
        let m = Array2::from_shape_fn((n, n), |(i, j)| (i + j) as f64);
        let cut = age_cut(m.view(), 0.5, 10.0, 1.0, None, 2).unwrap();
        assert!(!cut.delays_s.is_empty());
        for (k, v) in cut.g2.iter().enumerate() {
            assert!((v - 40.0).abs() < 1e-12, "lag {} mean {v}", cut.delays_s[k]);
        }
        // Lags are limited by the map edge: 2·age/Δt = 40 half-frames -> d ≤ 40 - w.
        assert!(cut.delays_s.iter().all(|d| *d <= 20.0));
        // Bad inputs are errors, not panics.
        assert!(age_cut(m.view(), 0.0, 10.0, 1.0, None, 2).is_err());
        assert!(age_cut(m.view(), 0.5, 1e6, 1.0, None, 2).is_err());
        assert!(age_cut(m.slice(ndarray::s![.., 1..]), 0.5, 10.0, 1.0, None, 2).is_err());
    }

    #[test]
    fn tmid_cut_recovers_local_tau_and_t1_cut_is_biased() {
        let (n, dt, tau0, tau_star, c, beta) = (1200, 2.0, 34.0, 2300.0, 0.2, 1.7);
        let m = aging_map(n, dt, tau0, tau_star, c, beta);
        let o = FitOptions::default().fix("baseline", 1.0);
        for age in [600.0, 1200.0, 1800.0] {
            let truth = tau0 * f64::exp(age / tau_star);
            // One frame either side: averaging over the window adds a second-order bias only.
            let cut = age_cut(m.view(), dt, age, dt, Some(300), 2).unwrap();
            let s = vec![1e-3; cut.g2.len()];
            let r = fit_curve(&Kww, &cut.delays_s, &cut.g2, &s, &o).unwrap();
            let bias_mid = r.value("tau").unwrap() / truth - 1.0;
            // t1-labelled cut: C(t1 = age, t1 + δ).
            let i1 = (age / dt) as usize;
            let d: Vec<f64> = (1..300).map(|k| k as f64 * dt).collect();
            let g: Vec<f64> = (1..300).map(|k| m[[i1, i1 + k]]).collect();
            let r1 = fit_curve(&Kww, &d, &g, &vec![1e-3; d.len()], &o).unwrap();
            let bias_t1 = r1.value("tau").unwrap() / truth - 1.0;
            // docs/model.md §2: < 0.1 % at t_mid. At t1 the cut sees the clock around t1 + τ/2,
            // so to first order τ_fit ≈ τ(t1)(1 + τ/(2τ*)): require that within 30 %.
            let expected_t1 = truth / (2.0 * tau_star);
            assert!(bias_mid.abs() < 1e-3, "age {age}: t_mid bias {bias_mid}");
            assert!(
                (bias_t1 / expected_t1 - 1.0).abs() < 0.3,
                "age {age}: t1 bias {bias_t1}, first-order {expected_t1}"
            );
        }
    }

    #[test]
    fn aging_law_is_recovered_from_a_noisy_map() {
        let (n, dt, tau0, tau_star, c, beta) = (1000, 3.0, 34.0, 2300.0, 0.2, 1.7);
        let mut m = aging_map(n, dt, tau0, tau_star, c, beta);
        let mut rng = rng::stream(11, 0);
        let noise = Normal::new(0.0, 0.01).unwrap();
        for i in 0..n {
            for j in i..n {
                let v = m[[i, j]] + noise.sample(&mut rng);
                m[[i, j]] = v;
                m[[j, i]] = v;
            }
        }
        let ages = evenly_spaced_ages(n, dt, 6);
        let fits = tau_vs_age(
            m.view(),
            dt,
            &ages,
            Some(200),
            10,
            &Kww,
            &FitOptions::default().fix("baseline", 1.0),
        )
        .unwrap();
        assert!(fits.iter().filter(|f| f.report.is_ok()).count() >= 5);
        let r = fit_aging_from_ages(&fits, false, &FitOptions::default()).unwrap();
        let (t0, ts) = (r.value("tau0").unwrap(), r.value("tau_star").unwrap());
        let (e0, es) = (
            r.std_error("tau0").unwrap(),
            r.std_error("tau_star").unwrap(),
        );
        // 4σ: the fit must agree with the truth within its own (χ²-scaled) errors. The windows
        // are 500 s wide, so the mixture bias (second order in width/τ*) is ≪ σ here.
        assert!((t0 - tau0).abs() < 4.0 * e0, "{}", r.summary());
        assert!((ts - tau_star).abs() < 4.0 * es, "{}", r.summary());
        assert!(es / ts < 0.2, "{}", r.summary());
    }

    #[test]
    fn saturating_aging_law() {
        let (tau0, tau_star, tau_eq) = (34.0, 2300.0, 80.0);
        let ages: Vec<f64> = (0..20).map(|k| 200.0 * f64::from(k)).collect();
        let tau: Vec<f64> = ages
            .iter()
            .map(|a| (tau0 * f64::exp(a / tau_star)).min(tau_eq))
            .collect();
        let err: Vec<f64> = tau.iter().map(|t| 0.01 * t).collect();
        let r = fit_aging(&ages, &tau, &err, true, &FitOptions::default()).unwrap();
        for (n, t) in [("tau0", tau0), ("tau_star", tau_star), ("tau_eq", tau_eq)] {
            assert!(
                (r.value(n).unwrap() / t - 1.0).abs() < 1e-6,
                "{}",
                r.summary()
            );
        }
        let r = fit_aging(
            &ages[..3],
            &tau[..3],
            &err[..3],
            true,
            &FitOptions::default(),
        )
        .unwrap();
        assert!(!r.is_ok() || !r.warnings.is_empty(), "{}", r.summary());
    }

    /// A stationary τ(tw) (no aging) is reported as unconstrained with a lower bound on τ*,
    /// never as a huge τ* with a tiny error; a resolved aging law is not.
    #[test]
    fn unresolved_aging_is_reported_as_unconstrained() {
        let ages: Vec<f64> = (0..8).map(|k| 500.0 * f64::from(k)).collect();
        // ±1 % alternating scatter around a constant τ = 40 s.
        let tau: Vec<f64> = (0..8)
            .map(|k| 40.0 * (1.0 + 0.01 * if k % 2 == 0 { 1.0 } else { -1.0 }))
            .collect();
        let err: Vec<f64> = tau.iter().map(|t| 0.01 * t).collect();
        let r = fit_aging(&ages, &tau, &err, false, &FitOptions::default()).unwrap();
        let why = r.failure().expect("must not claim a τ*");
        assert!(
            why.contains("aging not resolved") && why.contains("τ* >"),
            "{why}"
        );
        let aging: Vec<f64> = ages.iter().map(|a| 34.0 * f64::exp(a / 2300.0)).collect();
        let r = fit_aging(&ages, &aging, &err, false, &FitOptions::default()).unwrap();
        assert!((r.value("tau_star").unwrap() / 2300.0 - 1.0).abs() < 1e-6);
    }
}
