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

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::jackknife::fit_curve_jackknife_replicates;
use super::line::WeightedLine;
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

/// The age fits of [`tau_vs_age`] with jackknife errors, and each replicate's τ per age.
#[derive(Clone, Debug)]
pub struct AgeJackknife {
    /// The fits of the full map (jackknife covariance where the replicates allow).
    pub fits: Vec<AgeFit>,
    /// τ (s) of replicate j at age k, `tau_replicates[j][k]`; NaN where that replicate's
    /// refit is unusable or the full fit failed.
    pub tau_replicates: Vec<Vec<f64>>,
}

/// [`tau_vs_age`] of `c2` with jackknife errors: every age is also cut from each of the
/// `n_replicates` replicate maps (`replicate(j)`: the same map recomputed without pixel group
/// j, e.g. [`crate::correlate::TwoTimeResult::c2_pooled`]) with the same window, and the fit
/// repeated on it ([`crate::fit::jackknife`]). Replicate cuts are aligned with the full cut by
/// lag (a lag missing from a replicate is NaN there). Replicate maps are built one per thread
/// at a time and dropped once cut.
#[allow(clippy::too_many_arguments)]
pub fn tau_vs_age_jackknife(
    c2: ArrayView2<f64>,
    n_replicates: usize,
    replicate: &(dyn Fn(usize) -> Array2<f64> + Sync),
    frame_time_s: f64,
    ages: &[(f64, f64)],
    max_lag: Option<usize>,
    min_pairs: usize,
    model: &dyn FitModel,
    opts: &FitOptions,
) -> Result<AgeJackknife> {
    let cuts: Vec<AgeCut> = ages
        .iter()
        .map(|&(age, hw)| age_cut(c2, frame_time_s, age, hw, max_lag, min_pairs))
        .collect::<Result<_>>()?;
    let lag_of = |d: f64| (d / frame_time_s).round() as i64;
    let lags: Vec<Vec<i64>> = cuts
        .iter()
        .map(|c| c.delays_s.iter().map(|&d| lag_of(d)).collect())
        .collect();
    // rep_cuts[j][k]: replicate j's cut at age k, on the full cut's lags.
    let rep_cuts: Vec<Vec<Vec<f64>>> = (0..n_replicates)
        .into_par_iter()
        .map(|j| -> Result<Vec<Vec<f64>>> {
            let m = replicate(j);
            ages.iter()
                .zip(&lags)
                .map(|(&(age, hw), lags)| {
                    let rc = age_cut(m.view(), frame_time_s, age, hw, max_lag, min_pairs)?;
                    let mut v = vec![f64::NAN; lags.len()];
                    for (d, g) in rc.delays_s.iter().zip(&rc.g2) {
                        if let Ok(i) = lags.binary_search(&lag_of(*d)) {
                            v[i] = *g;
                        }
                    }
                    Ok(v)
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    let i_tau = model.params().iter().position(|p| p.name == "tau");
    let mut tau_replicates = vec![vec![f64::NAN; ages.len()]; n_replicates];
    let mut fits = Vec::with_capacity(ages.len());
    for (k, cut) in cuts.into_iter().enumerate() {
        let reps: Vec<Vec<f64>> = rep_cuts.iter().map(|r| r[k].clone()).collect();
        let (report, thetas) = fit_curve_jackknife_replicates(
            model,
            &cut.delays_s,
            &cut.g2,
            &cut.g2_err,
            &reps,
            opts,
        )?;
        if let Some(i) = i_tau {
            for (j, t) in thetas.iter().enumerate() {
                if let Some(t) = t {
                    tau_replicates[j][k] = t[i];
                }
            }
        }
        fits.push(AgeFit { cut, report });
    }
    Ok(AgeJackknife {
        fits,
        tau_replicates,
    })
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
    let (ln_tau, err) = log_tau(age_s, tau_s, tau_err_s)?;
    let mut report = fit_curve(&AgingLaw { saturating }, age_s, &ln_tau, &err, opts)?;
    // τ* → ∞ is the no-aging limit: when the ages do not resolve a positive rate 1/τ*, the
    // solver runs τ* off to huge values with a meaningless error. Test the rate in the linear
    // form ln τ = ln τ0 + κ tw (weighted least squares, same error scaling) and report the
    // fit as unconstrained, with the one-sided 95 % lower bound on τ*, instead.
    let tau_star_free = !opts.fixed.iter().any(|(n, _)| n == "tau_star");
    if !saturating && tau_star_free {
        mark_unresolved(
            &mut report,
            weighted_slope(age_s, &ln_tau, &err, opts.error_scale),
        );
    }
    Ok(report)
}

/// ln τ (NaN for τ ≤ 0) and its error σ_τ/τ, after checking the lengths.
fn log_tau(age_s: &[f64], tau_s: &[f64], tau_err_s: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    if tau_s.len() != age_s.len() || tau_err_s.len() != age_s.len() {
        return Err(Error::ShapeMismatch {
            origin: "aging fit".into(),
            what: "age, tau and tau_err lengths".into(),
            expected: vec![age_s.len(); 3],
            got: vec![age_s.len(), tau_s.len(), tau_err_s.len()],
        });
    }
    let ln_tau = tau_s.iter().map(|&t| ln_positive(t)).collect();
    let err = tau_s.iter().zip(tau_err_s).map(|(t, e)| e / t).collect();
    Ok((ln_tau, err))
}

/// ln τ of each replicate (NaN for τ ≤ 0), as [`log_tau`] takes ln of the data.
fn log_replicates(tau_replicates: &[Vec<f64>]) -> Vec<Vec<f64>> {
    tau_replicates
        .iter()
        .map(|r| r.iter().map(|&t| ln_positive(t)).collect())
        .collect()
}

/// ln t, NaN for t ≤ 0 (left out by the fits).
pub fn ln_positive(t: f64) -> f64 {
    if t > 0.0 {
        t.ln()
    } else {
        f64::NAN
    }
}

/// The "aging not resolved" test on the rate κ = 1/τ* ± σ of the linear form (None: not
/// computable, the report stays). A converged fit is marked failed, with the one-sided 95 %
/// lower bound on τ*, when κ is within 2σ of zero. A rate below −2σ marks the report failed
/// whether or not the solver converged ("τ falls with age": an acceleration, which the aging
/// law τ0 e^{t_w/τ*} with τ* > 0 does not describe; its solver fails on it).
fn mark_unresolved(report: &mut FitReport, rate: Option<(f64, f64)>) {
    let Some((kappa, sigma)) = rate else {
        return;
    };
    if !report.is_ok() && kappa >= -2.0 * sigma {
        return;
    }
    if kappa < -2.0 * sigma {
        report.outcome = crate::fit::FitOutcome::Failed {
            reason: format!(
                "aging not resolved: τ falls with age (rate d ln τ/dt_w = {} ± {} 1/s, {:.1}σ \
                 below zero: an acceleration, not aging)",
                sig(kappa, 4),
                sig(sigma, 4),
                -kappa / sigma
            ),
        };
    } else if kappa <= 2.0 * sigma {
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

/// The aging law with jackknife errors: [`fit_aging`] (not saturating) of τ(age) ± σ_τ,
/// whose covariance of (τ0, τ*) is the spread of the same fit repeated on each replicate
/// τ(age) ([`crate::fit::jackknife`]); `tau_replicates[j][k]` is τ at age k recomputed
/// without pixel group j (e.g. [`tau_vs_age_jackknife`]).
///
/// Why: the age cuts of one map share frames (a pair at long lag in one window shares its
/// frames with pairs of the neighbouring windows) and each cut's lags share frames, so
/// neither the per-age τ errors nor their independence can be taken from the cuts' own
/// scatter. A χ²-scaled least-squares error from a handful of ages is itself uncertain by
/// ~sqrt(2/dof) (pulls of a t distribution with n_ages − 2 dof). The leave-one-group-out
/// refits of the whole chain (cuts, KWW fits, aging law) carry every correlation. The
/// weights of every refit are the full data's σ_τ. With fewer than
/// [`crate::fit::jackknife::MIN_REPLICATES`] usable replicates the report keeps the
/// least-squares errors of `opts.error_scale` and says so in a warning. The "aging not
/// resolved" test uses the jackknife σ of the rate when available.
pub fn fit_aging_jackknife(
    age_s: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    tau_replicates: &[Vec<f64>],
    opts: &FitOptions,
) -> Result<FitReport> {
    let (ln_tau, err) = log_tau(age_s, tau_s, tau_err_s)?;
    let ln_reps = log_replicates(tau_replicates);
    let (mut report, _) = fit_curve_jackknife_replicates(
        &AgingLaw { saturating: false },
        age_s,
        &ln_tau,
        &err,
        &ln_reps,
        opts,
    )?;
    let tau_star_free = !opts.fixed.iter().any(|(n, _)| n == "tau_star");
    if !tau_star_free {
        return Ok(report);
    }
    let slope = if report.error_scale == ErrorScale::Jackknife || !report.is_ok() {
        // The rate's jackknife σ from the same replicates (the slope is linear in ln τ).
        jackknife_slope(age_s, &ln_tau, &err, &ln_reps)
    } else {
        weighted_slope(age_s, &ln_tau, &err, opts.error_scale)
    };
    mark_unresolved(&mut report, slope);
    Ok(report)
}

/// Weighted least-squares slope κ of y = a + κ x and its 1σ error (scaled by sqrt(χ²_red) for
/// [`ErrorScale::Relative`]); None with fewer than 3 usable points or no spread in x.
fn weighted_slope(x: &[f64], y: &[f64], sigma: &[f64], scale: ErrorScale) -> Option<(f64, f64)> {
    let line = WeightedLine::fit(x, y, sigma).filter(|l| l.n >= 3)?;
    let sigma_b = match scale {
        ErrorScale::Absolute => line.sigma_b(),
        ErrorScale::Relative | ErrorScale::Jackknife => line.sigma_b() * line.reduced_chi2().sqrt(),
    };
    Some((line.b, sigma_b))
}

/// The aging rate of τ(age) ± σ_τ: the weighted line ln τ = a + κ t_w (weights from σ_τ/τ;
/// κ = 1/τ* of the aging law, negative when τ falls) and κ's jackknife σ.
#[derive(Debug, Clone, Copy)]
pub struct AgingRate {
    /// The line through the ages with τ > 0 (at least 3).
    pub line: WeightedLine,
    /// κ's jackknife σ: the spread of the same line through each replicate (None with fewer
    /// than [`crate::fit::jackknife::MIN_REPLICATES`] usable replicates).
    pub sigma_jackknife: Option<f64>,
}

/// [`AgingRate`] of τ(age) ± σ_τ with replicates `tau_replicates[j]` (τ at every age
/// recomputed without pixel group j, as [`tau_vs_age_jackknife`] gives; the weights stay the
/// full data's; replicates missing an age the full data has are left out). None with fewer
/// than 3 usable ages or no spread in age.
pub fn aging_rate_jackknife(
    age_s: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    tau_replicates: &[Vec<f64>],
) -> Result<Option<AgingRate>> {
    let (ln_tau, err) = log_tau(age_s, tau_s, tau_err_s)?;
    let Some(line) = WeightedLine::fit(age_s, &ln_tau, &err).filter(|l| l.n >= 3) else {
        return Ok(None);
    };
    let ln_reps = log_replicates(tau_replicates);
    Ok(Some(AgingRate {
        line,
        sigma_jackknife: jackknife_sigma(age_s, &ln_tau, &err, &ln_reps),
    }))
}

/// The slope of ln τ against age and its jackknife σ ([`jackknife_sigma`]).
fn jackknife_slope(
    age_s: &[f64],
    ln_tau: &[f64],
    err: &[f64],
    ln_reps: &[Vec<f64>],
) -> Option<(f64, f64)> {
    let (kappa, _) = weighted_slope(age_s, ln_tau, err, ErrorScale::Absolute)?;
    Some((kappa, jackknife_sigma(age_s, ln_tau, err, ln_reps)?))
}

/// The jackknife σ of the weighted slope of ln τ against age (the full data's weights for every
/// replicate): sqrt((k − 1)/k Σ (κ_j − κ̄)²) over the k usable replicates (every age the full
/// data has, finite); None with fewer than [`crate::fit::jackknife::MIN_REPLICATES`].
fn jackknife_sigma(
    age_s: &[f64],
    ln_tau: &[f64],
    err: &[f64],
    ln_reps: &[Vec<f64>],
) -> Option<f64> {
    let kj: Vec<f64> = ln_reps
        .iter()
        .filter(|r| {
            r.len() == ln_tau.len()
                && (0..r.len()).all(|k| !ln_tau[k].is_finite() || r[k].is_finite())
        })
        .filter_map(|r| weighted_slope(age_s, r, err, ErrorScale::Absolute).map(|s| s.0))
        .collect();
    if kj.len() < crate::fit::jackknife::MIN_REPLICATES {
        return None;
    }
    let k = kj.len() as f64;
    let m = kj.iter().sum::<f64>() / k;
    Some(((k - 1.0) / k * kj.iter().map(|x| (x - m) * (x - m)).sum::<f64>()).sqrt())
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

/// The ages of [`tau_vs_age_jackknife`] whose fit converged with a τ error, among `fits`
/// (or among `fits[k]` for k in `only`): their (age, τ, σ_τ), their index in `fits`, and each
/// replicate `tau_replicates[j]` restricted to them (NaN where a replicate lacks one).
#[derive(Debug, Clone, Default)]
pub struct ConvergedAges {
    /// Age of each kept cut (s).
    pub age_s: Vec<f64>,
    /// Its fitted τ (s).
    pub tau_s: Vec<f64>,
    /// Its τ error (s).
    pub tau_err_s: Vec<f64>,
    /// Index of each kept cut in `fits`.
    pub kept: Vec<usize>,
    /// Per replicate, τ at the kept cuts.
    pub replicates: Vec<Vec<f64>>,
}

/// [`ConvergedAges`] of `fits` (every cut, or those listed in `only`).
pub fn converged_ages(
    fits: &[AgeFit],
    tau_replicates: &[Vec<f64>],
    only: Option<&[usize]>,
) -> ConvergedAges {
    let mut out = ConvergedAges::default();
    let all: Vec<usize> = (0..fits.len()).collect();
    for &k in only.unwrap_or(&all) {
        let Some(f) = fits.get(k) else { continue };
        if let (Some(tau), Some(err)) = (f.report.value("tau"), f.report.std_error("tau")) {
            out.age_s.push(f.cut.age_s);
            out.tau_s.push(tau);
            out.tau_err_s.push(err);
            out.kept.push(k);
        }
    }
    out.replicates = tau_replicates
        .iter()
        .map(|r| {
            out.kept
                .iter()
                .map(|&k| r.get(k).copied().unwrap_or(f64::NAN))
                .collect()
        })
        .collect();
    out
}

/// [`fit_aging_jackknife`] of the converged fits of [`tau_vs_age_jackknife`] (failed ages
/// are skipped, in the replicates too).
pub fn fit_aging_from_ages_jackknife(
    fits: &[AgeFit],
    tau_replicates: &[Vec<f64>],
    opts: &FitOptions,
) -> Result<FitReport> {
    let c = converged_ages(fits, tau_replicates, None);
    fit_aging_jackknife(&c.age_s, &c.tau_s, &c.tau_err_s, &c.replicates, opts)
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

    /// Photon-counting two-time results of an aging glass: `groups` independent pixel groups
    /// (the result's bins) of `px` pixels, `n` frames of `dt` s. Each pixel carries a complex
    /// Gaussian field that decorrelates in the material time u(t) = (τ*/τ0)(1 − e^{−t/τ*})
    /// (field correlation e^{−|Δu|}, so g2 − 1 = e^{−2|Δu|}: KWW with β = 1, c = 1 and
    /// τ(t) = τ0 e^{t/τ*}), and Poisson counts of mean `mu`·|E|² per frame: the speckle and
    /// shot noise of real maps, with their correlations between lags and between ages.
    fn speckle_aging_maps(
        seed: u64,
        groups: usize,
        px: usize,
        n: usize,
        dt: f64,
        (tau0, tau_star, mu): (f64, f64, f64),
    ) -> crate::correlate::TwoTimeResult {
        use rand_distr::{Poisson, StandardNormal};
        let u = |t: f64| tau_star / tau0 * (1.0 - (-t / tau_star).exp());
        let mut rng = rng::stream(seed, 0);
        let mut out = crate::correlate::TwoTimeResult {
            bin_frames: 1,
            n_frames: n,
            bins: (1..=groups).collect(),
            bin_pixels: vec![px as u64; groups],
            numerator: Vec::new(),
            bin_sums: Vec::new(),
        };
        for _ in 0..groups {
            let mut x = Array2::<f64>::zeros((n, px));
            for p in 0..px {
                let h = std::f64::consts::FRAC_1_SQRT_2;
                let (a, b): (f64, f64) = (
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                );
                let (mut re, mut im) = (h * a, h * b);
                for t in 0..n {
                    if t > 0 {
                        let rho = (u((t - 1) as f64 * dt) - u(t as f64 * dt)).exp();
                        let k = h * (1.0 - rho * rho).sqrt();
                        let a: f64 = StandardNormal.sample(&mut rng);
                        let b: f64 = StandardNormal.sample(&mut rng);
                        re = rho * re + k * a;
                        im = rho * im + k * b;
                    }
                    let lam = mu * (re * re + im * im);
                    x[[t, p]] = if lam > 0.0 {
                        Poisson::new(lam).unwrap().sample(&mut rng)
                    } else {
                        0.0
                    };
                }
            }
            out.numerator.push(x.dot(&x.t()));
            out.bin_sums
                .push(x.rows().into_iter().map(|r| r.sum() as u64).collect());
        }
        out
    }

    /// The aging-law errors are calibrated on speckle maps (fast regression test of the
    /// jackknife chain). 16 independent pixel groups of 48 pixels, 300 frames of 4 s,
    /// τ0 = 20 s, τ* = 800 s (τ from 20 to 90 s over the scan), 6 age windows; 50 repeats.
    /// Truth: the same chain (cuts, KWW fits, aging law, with the data's weights) applied to
    /// the expected map 1 + e^{−2|Δu|}.
    ///
    /// Bands from theory: a jackknife σ over K = 16 groups has K − 1 = 15 dof, so the pulls
    /// follow Student's t with 15 dof: std sqrt(15/13) = 1.07, P(|t| ≤ 1) = 0.667,
    /// P(|t| ≤ 1.96) = 0.931. For N = 50 pulls the mean scatters by 1.07/sqrt(50) = 0.15, the
    /// std by 0.12 (t15 has kurtosis 3.55: sd(s)/s ≈ sqrt((3.55 − 1)/(4N)) = 0.11) and the
    /// coverages by sqrt(p(1 − p)/50) = 0.067 and 0.036. 3σ bands: |mean| ≤ 0.46, std
    /// 0.71–1.44, 68 % coverage 0.47–0.87, 95 % coverage ≥ 0.82. The previous estimator on
    /// the same maps (per-age errors from the cuts' own scatter, aging law scaled by χ² of
    /// 4 dof) gives a τ* pull std of ≈ 2 here: it fails the std band, and must stay above
    /// the jackknife's.
    #[test]
    fn aging_law_jackknife_pulls_on_speckle_maps() {
        let (n, dt, tau0, tau_star) = (300, 4.0, 20.0, 800.0);
        let ages = evenly_spaced_ages(n, dt, 6);
        let o = FitOptions::default();
        let u = |t: f64| tau_star / tau0 * (1.0 - (-t / tau_star).exp());
        let expected = Array2::from_shape_fn((n, n), |(i, j)| {
            1.0 + (-2.0 * (u(j as f64 * dt) - u(i as f64 * dt)).abs()).exp()
        });
        let mut jk_pulls = [Vec::new(), Vec::new()];
        let mut ls_pulls = Vec::new();
        for rep in 0..50u64 {
            let tt = speckle_aging_maps(
                rng::subseed(17, &format!("aging-jk-{rep}")),
                16,
                48,
                n,
                dt,
                (tau0, tau_star, 3.0),
            );
            let c2 = tt.c2_pooled(None);
            let replicate = |g: usize| tt.c2_pooled(Some(g));
            let jk = tau_vs_age_jackknife(c2.view(), 16, &replicate, dt, &ages, None, 10, &Kww, &o)
                .unwrap();
            let law = fit_aging_from_ages_jackknife(&jk.fits, &jk.tau_replicates, &o).unwrap();
            assert!(law.is_ok(), "{}", law.summary());
            assert_eq!(law.error_scale, ErrorScale::Jackknife, "{}", law.summary());
            // Truth: the chain on the expected map, weighted as the data.
            let mut tfits = Vec::new();
            for (f, &(age, hw)) in jk.fits.iter().zip(&ages) {
                let cut = age_cut(expected.view(), dt, age, hw, None, 10).unwrap();
                assert_eq!(cut.delays_s, f.cut.delays_s);
                let mut report =
                    fit_curve(&Kww, &cut.delays_s, &cut.g2, &f.cut.g2_err, &o).unwrap();
                if let (crate::fit::FitOutcome::Converged(v), Some(e)) =
                    (&mut report.outcome, f.report.std_error("tau"))
                {
                    v.std_errors[2] = e;
                }
                tfits.push(AgeFit { cut, report });
            }
            let truth = fit_aging_from_ages(&tfits, false, &o).unwrap();
            for (k, name) in ["tau0", "tau_star"].iter().enumerate() {
                let (v, e, t) = (
                    law.value(name).unwrap(),
                    law.std_error(name).unwrap(),
                    truth.value(name).unwrap(),
                );
                jk_pulls[k].push((v - t) / e);
            }
            // The previous estimator on the same map.
            let fits = tau_vs_age(c2.view(), dt, &ages, None, 10, &Kww, &o).unwrap();
            let ls = fit_aging_from_ages(&fits, false, &o).unwrap();
            if let (Some(v), Some(e)) = (ls.value("tau_star"), ls.std_error("tau_star")) {
                ls_pulls.push((v - truth.value("tau_star").unwrap()) / e);
            }
        }
        let stats = |p: &[f64]| crate::fit::calibration::pull_stats("", p, &[]);
        for (k, name) in ["tau0", "tau_star"].iter().enumerate() {
            let s = stats(&jk_pulls[k]);
            eprintln!(
                "{name}: jackknife pulls mean {:+.3} std {:.3} cov68 {:.3} cov95 {:.3} (n {})",
                s.mean, s.std, s.coverage_1sigma, s.coverage_95, s.n
            );
            assert_eq!(s.n, 50);
            assert!(s.mean.abs() <= 0.46, "{name}: mean {}", s.mean);
            assert!((0.71..=1.44).contains(&s.std), "{name}: std {}", s.std);
            assert!(
                (0.47..=0.87).contains(&s.coverage_1sigma),
                "{name}: {}",
                s.coverage_1sigma
            );
            assert!(s.coverage_95 >= 0.82, "{name}: {}", s.coverage_95);
        }
        let ls = stats(&ls_pulls);
        eprintln!(
            "tau_star: least-squares chain pulls mean {:+.3} std {:.3} cov68 {:.3} cov95 {:.3} (n {})",
            ls.mean, ls.std, ls.coverage_1sigma, ls.coverage_95, ls.n
        );
        assert!(ls.std > stats(&jk_pulls[1]).std, "{}", ls.std);
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
        // τ falling with age is an acceleration: unresolved as aging, and said so.
        let falling: Vec<f64> = ages.iter().map(|a| 34.0 * f64::exp(-a / 800.0)).collect();
        let r = fit_aging(&ages, &falling, &err, false, &FitOptions::default()).unwrap();
        let why = r.failure().expect("must not claim a τ*");
        assert!(
            why.starts_with("aging not resolved") && why.contains("τ falls with age"),
            "{why}"
        );
    }

    /// The jackknife rate against its closed form: replicates τ_j(a) = τ(a) e^{ε_j (a − ā)}
    /// shift every refitted slope by exactly ε_j (ā: the weighted mean age, the weights the
    /// full data's), so σ² = (k − 1)/k Σ (ε_j − ε̄)²; a replicate with a missing age is left out.
    #[test]
    fn aging_rate_jackknife_closed_form() {
        let ages: Vec<f64> = (0..6).map(|k| 11_000.0 + 233.0 * f64::from(k)).collect();
        let tau: Vec<f64> = ages
            .iter()
            .map(|a| 34.0 * f64::exp(-(a - 11_000.0) / 800.0))
            .collect();
        let err: Vec<f64> = tau
            .iter()
            .zip([1.0, 2.0, 1.5, 1.0, 3.0, 2.0])
            .map(|(t, f)| 0.02 * f * t)
            .collect();
        let w: Vec<f64> = tau.iter().zip(&err).map(|(t, e)| (t / e).powi(2)).collect();
        let abar = ages.iter().zip(&w).map(|(a, w)| a * w).sum::<f64>() / w.iter().sum::<f64>();
        let eps: Vec<f64> = (0..12)
            .map(|j| 1e-5 * (f64::from(j) - 5.5) * if j % 3 == 0 { 1.7 } else { 1.0 })
            .collect();
        let mut reps: Vec<Vec<f64>> = eps
            .iter()
            .map(|e| {
                ages.iter()
                    .zip(&tau)
                    .map(|(a, t)| t * (e * (a - abar)).exp())
                    .collect()
            })
            .collect();
        let mut broken = tau.clone();
        broken[2] = f64::NAN;
        reps.push(broken);
        let r = aging_rate_jackknife(&ages, &tau, &err, &reps)
            .unwrap()
            .unwrap();
        let (kappa, sigma) = (r.line.b, r.sigma_jackknife.unwrap());
        assert!((kappa + 1.0 / 800.0).abs() < 1e-12, "{kappa}");
        assert!((r.line.a - (34f64.ln() + 11_000.0 / 800.0)).abs() < 1e-9);
        let k = eps.len() as f64;
        let m = eps.iter().sum::<f64>() / k;
        let want = ((k - 1.0) / k * eps.iter().map(|e| (e - m).powi(2)).sum::<f64>()).sqrt();
        assert!((sigma / want - 1.0).abs() < 1e-6, "{sigma} vs {want}");
        // Too few replicates: the line, no σ.
        let few = aging_rate_jackknife(&ages, &tau, &err, &reps[..5])
            .unwrap()
            .unwrap();
        assert!(few.sigma_jackknife.is_none() && few.line.b == r.line.b);
        // Fewer than 3 ages: no line.
        assert!(aging_rate_jackknife(&ages[..2], &tau[..2], &err[..2], &[])
            .unwrap()
            .is_none());
    }
}
