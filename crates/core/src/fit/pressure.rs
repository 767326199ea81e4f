//! Pressure dependence: ln τ vs P, activation volumes and the crossover pressure.
//!
//! Input: pressures (GPa), τ ± σ_τ (s) per isobar (one branch: compression or decompression
//! fitted separately, since τ is hysteretic), the thermal energy kB·T (GPa·Å³). Output: the
//! activation volume ΔV = kB·T · dln τ/dP (Å³, per relaxing unit) from a line fit
//! ([`fit_activation_volume`]), or on each side of a crossover from a continuous
//! piecewise-linear fit in ln τ whose breakpoint is first scanned, then fitted
//! ([`fit_crossover`]).
//!
//! Reference: docs/model.md §2 (ln τ(P) = ln τ(P0) + ∫ ΔV/(kB T) dP; kB·T(300 K) = 4.14 GPa·Å³)
//! and the two studies (docs/model.md §9: ΔV ≈ ±10 Å³ around 3 GPa in the Ce glass).

use nalgebra::{DMatrix, DVector};

use super::lm::{fit_curve, FitOptions};
use super::model::{Domain, FitModel, ParamSpec};
use super::report::{ErrorScale, FitReport};
use super::twotime::line_fit;
use crate::error::{Error, Result};

/// Boltzmann constant (J/K, exact SI).
const KB_J_PER_K: f64 = 1.380_649e-23;

/// kB·T in GPa·Å³ (1 GPa·Å³ = 1e-21 J): 4.142 at 300 K.
pub fn kbt_gpa_a3(temperature_k: f64) -> f64 {
    KB_J_PER_K * temperature_k / 1e-21
}

const LINE_PARAMS: [ParamSpec; 2] = [
    ParamSpec {
        name: "tau_ref",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "slope",
        unit: "1/GPa",
        domain: Domain::Real,
    },
];

/// ln τ = ln τ_ref + slope·(P - p_ref), x = P (GPa). Parameters `[tau_ref (s), slope (1/GPa)]`.
#[derive(Clone, Copy, Debug)]
pub struct LnTauLine {
    /// Reference pressure (GPa) at which τ = τ_ref (choose inside the data to decorrelate).
    pub p_ref_gpa: f64,
}

impl FitModel for LnTauLine {
    fn name(&self) -> &str {
        "ln-tau-line"
    }
    fn params(&self) -> &[ParamSpec] {
        &LINE_PARAMS
    }
    fn eval(&self, p_gpa: f64, p: &[f64]) -> f64 {
        p[0].ln() + p[1] * (p_gpa - self.p_ref_gpa)
    }
    fn jacobian(&self, p_gpa: f64, p: &[f64], out: &mut [f64]) {
        out[0] = 1.0 / p[0];
        out[1] = p_gpa - self.p_ref_gpa;
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let (a, b) = line_fit(x, y);
        vec![vec![
            fixed[0].unwrap_or((a + b * self.p_ref_gpa).exp()),
            fixed[1].unwrap_or(b),
        ]]
    }
}

const PIECE_PARAMS: [ParamSpec; 4] = [
    ParamSpec {
        name: "p_cross",
        unit: "GPa",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "tau_cross",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "slope_low",
        unit: "1/GPa",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "slope_high",
        unit: "1/GPa",
        domain: Domain::Real,
    },
];

/// Continuous piecewise-linear ln τ with one breakpoint, x = P (GPa):
/// ln τ = ln τ_c + s_low (P - P_c) for P < P_c, ln τ_c + s_high (P - P_c) for P ≥ P_c.
/// Parameters `[p_cross (GPa), tau_cross (s), slope_low, slope_high (1/GPa)]`.
#[derive(Clone, Copy, Debug, Default)]
pub struct LnTauPiecewise;

impl FitModel for LnTauPiecewise {
    fn name(&self) -> &str {
        "ln-tau-piecewise"
    }
    fn params(&self) -> &[ParamSpec] {
        &PIECE_PARAMS
    }
    fn eval(&self, x: f64, p: &[f64]) -> f64 {
        let d = x - p[0];
        p[1].ln() + if d < 0.0 { p[2] * d } else { p[3] * d }
    }
    fn jacobian(&self, x: f64, p: &[f64], out: &mut [f64]) {
        let d = x - p[0];
        out[1] = 1.0 / p[1];
        if d < 0.0 {
            out[0] = -p[2];
            out[2] = d;
            out[3] = 0.0;
        } else {
            out[0] = -p[3];
            out[2] = 0.0;
            out[3] = d;
        }
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        // Used only when called directly; fit_crossover starts from its breakpoint scan.
        let xm = x.iter().sum::<f64>() / x.len().max(1) as f64;
        let pc = fixed[0].unwrap_or(xm);
        let lo: Vec<usize> = (0..x.len()).filter(|&i| x[i] < pc).collect();
        let hi: Vec<usize> = (0..x.len()).filter(|&i| x[i] >= pc).collect();
        let fit = |ix: &[usize]| {
            let xs: Vec<f64> = ix.iter().map(|&i| x[i]).collect();
            let ys: Vec<f64> = ix.iter().map(|&i| y[i]).collect();
            line_fit(&xs, &ys)
        };
        let (a, _) = line_fit(x, y);
        let (_, s_lo) = fit(&lo);
        let (_, s_hi) = fit(&hi);
        vec![vec![
            pc,
            fixed[1].unwrap_or(a.exp()),
            fixed[2].unwrap_or(s_lo),
            fixed[3].unwrap_or(s_hi),
        ]]
    }
    fn diagnose(&self, x: &[f64], p: &[f64], _free: &[bool]) -> Vec<String> {
        let n_lo = x.iter().filter(|&&v| v < p[0]).count();
        let n_hi = x.len() - n_lo;
        if n_lo < 2 || n_hi < 2 {
            vec![format!(
                "crossover at {:.3} GPa leaves {n_lo} isobar(s) below and {n_hi} above: a slope \
                 from fewer than 2 points rests on the continuity constraint alone",
                p[0]
            )]
        } else {
            Vec::new()
        }
    }
}

/// An activation volume with its error.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ActivationVolume {
    /// dln τ/dP (1/GPa).
    pub slope_per_gpa: f64,
    /// 1σ error of the slope (1/GPa).
    pub slope_err_per_gpa: f64,
    /// ΔV = kB·T · slope (Å³).
    pub delta_v_a3: f64,
    /// 1σ error of ΔV (Å³).
    pub delta_v_err_a3: f64,
}

impl ActivationVolume {
    fn from_slope(s: f64, e: f64, kbt: f64) -> Self {
        ActivationVolume {
            slope_per_gpa: s,
            slope_err_per_gpa: e,
            delta_v_a3: kbt * s,
            delta_v_err_a3: kbt * e,
        }
    }
}

fn ln_data(p: &[f64], tau: &[f64], err: &[f64], origin: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    if tau.len() != p.len() || err.len() != p.len() {
        return Err(Error::ShapeMismatch {
            origin: origin.into(),
            what: "pressure, tau and tau_err lengths".into(),
            expected: vec![p.len(); 3],
            got: vec![p.len(), tau.len(), err.len()],
        });
    }
    let y = tau
        .iter()
        .map(|&t| if t > 0.0 { t.ln() } else { f64::NAN })
        .collect();
    let e = tau.iter().zip(err).map(|(t, e)| e / t).collect();
    Ok((y, e))
}

fn check_kbt(kbt: f64) -> Result<()> {
    if kbt.is_finite() && kbt > 0.0 {
        Ok(())
    } else {
        Err(Error::out_of_range(
            "activation volume",
            "kbt_gpa_a3",
            kbt,
            "> 0 (4.14 at 300 K)",
        ))
    }
}

/// A single-slope activation volume: line fit of ln τ vs P, referenced at the mean pressure.
///
/// The τ errors come from the per-age / per-bin / per-isobar fits; with only a handful of
/// points, χ²-scaled ([`crate::fit::ErrorScale::Relative`]) errors are themselves uncertain
/// by ~sqrt(2/dof) (the report warns): pass `ErrorScale::Absolute` when the input errors are
/// trusted (e.g. calibrated with [`crate::fit::calibration`]).
pub fn fit_activation_volume(
    pressure_gpa: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    kbt_gpa_a3: f64,
    opts: &FitOptions,
) -> Result<(FitReport, Option<ActivationVolume>)> {
    check_kbt(kbt_gpa_a3)?;
    let (y, e) = ln_data(pressure_gpa, tau_s, tau_err_s, "activation volume")?;
    let p_ref = pressure_gpa.iter().filter(|v| v.is_finite()).sum::<f64>()
        / pressure_gpa.len().max(1) as f64;
    let r = fit_curve(&LnTauLine { p_ref_gpa: p_ref }, pressure_gpa, &y, &e, opts)?;
    let dv = r
        .value("slope")
        .zip(r.std_error("slope"))
        .map(|(s, se)| ActivationVolume::from_slope(s, se, kbt_gpa_a3));
    Ok((r, dv))
}

/// A crossover fit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CrossoverFit {
    /// The piecewise-linear fit with all four parameters free (started at the scan minimum).
    pub report: FitReport,
    /// The breakpoint scan: (P_c (GPa), χ² minimised over the other three parameters).
    pub profile: Vec<(f64, f64)>,
    /// Profile-likelihood 1σ interval of P_c (GPa): where χ² ≤ χ²_min + 1 (× χ²_red for
    /// relative errors). `None` on a side where the interval reaches the end of the scanned
    /// range (P_c not bounded there by the data).
    pub p_cross_interval_gpa: (Option<f64>, Option<f64>),
    /// ΔV below the crossover.
    pub low: Option<ActivationVolume>,
    /// ΔV above the crossover.
    pub high: Option<ActivationVolume>,
}

/// Fits a continuous two-slope ln τ(P): scans the breakpoint over `n_scan` pressures strictly
/// between the lowest and the highest isobar (weighted linear least squares for the other
/// three parameters at each), then refines all four with Levenberg–Marquardt. The breakpoint
/// error is given twice: from the covariance (`report`) and as a profile interval (exact for
/// a non-linear parameter such as a breakpoint, where the covariance is only local).
pub fn fit_crossover(
    pressure_gpa: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    kbt_gpa_a3: f64,
    n_scan: usize,
    opts: &FitOptions,
) -> Result<CrossoverFit> {
    check_kbt(kbt_gpa_a3)?;
    let (y, e) = ln_data(pressure_gpa, tau_s, tau_err_s, "crossover fit")?;
    let pts: Vec<(f64, f64, f64)> = (0..y.len())
        .filter(|&i| {
            pressure_gpa[i].is_finite() && y[i].is_finite() && e[i].is_finite() && e[i] > 0.0
        })
        .map(|i| (pressure_gpa[i], y[i], e[i]))
        .collect();
    let pmin = pts.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let pmax = pts.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let mut profile = Vec::new();
    if pts.len() >= 5 && pmax > pmin && n_scan >= 3 {
        for k in 1..=n_scan {
            let pc = pmin + (pmax - pmin) * k as f64 / (n_scan + 1) as f64;
            // Weighted linear LS on [1, min(P - Pc, 0), max(P - Pc, 0)].
            let a = DMatrix::from_fn(pts.len(), 3, |i, j| {
                let d = pts[i].0 - pc;
                let v = match j {
                    0 => 1.0,
                    1 => d.min(0.0),
                    _ => d.max(0.0),
                };
                v / pts[i].2
            });
            let b = DVector::from_iterator(pts.len(), pts.iter().map(|p| p.1 / p.2));
            if let Ok(sol) = a.clone().svd(true, true).solve(&b, 1e-14) {
                let chi2 = (&a * sol - &b).norm_squared();
                profile.push((pc, chi2));
            }
        }
    }
    let mut o = opts.clone();
    if let Some(&(pc, _)) = profile.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
        // Start the full fit at the scan minimum with its linear solution.
        let lo: Vec<usize> = (0..pts.len()).filter(|&i| pts[i].0 < pc).collect();
        let hi: Vec<usize> = (0..pts.len()).filter(|&i| pts[i].0 >= pc).collect();
        let side = |ix: &[usize]| {
            let xs: Vec<f64> = ix.iter().map(|&i| pts[i].0).collect();
            let ys: Vec<f64> = ix.iter().map(|&i| pts[i].1).collect();
            line_fit(&xs, &ys)
        };
        let (a_lo, s_lo) = side(&lo);
        let (_, s_hi) = side(&hi);
        o = o
            .start_at("p_cross", pc)
            .start_at("tau_cross", (a_lo + s_lo * pc).exp())
            .start_at("slope_low", s_lo)
            .start_at("slope_high", s_hi);
    }
    let report = fit_curve(&LnTauPiecewise, pressure_gpa, &y, &e, &o)?;
    let mut interval = (None, None);
    if let Some(v) = report.fitted() {
        let chi2_min = profile.iter().map(|p| p.1).fold(v.chi2, f64::min);
        let delta = match opts.error_scale {
            ErrorScale::Absolute => 1.0,
            ErrorScale::Relative | ErrorScale::Jackknife => v.chi2_red,
        };
        let inside: Vec<usize> = (0..profile.len())
            .filter(|&k| profile[k].1 <= chi2_min + delta)
            .collect();
        if let (Some(&first), Some(&last)) = (inside.first(), inside.last()) {
            interval = (
                (first > 0).then(|| profile[first].0),
                (last + 1 < profile.len()).then(|| profile[last].0),
            );
        }
    }
    let low = report
        .value("slope_low")
        .zip(report.std_error("slope_low"))
        .map(|(s, e)| ActivationVolume::from_slope(s, e, kbt_gpa_a3));
    let high = report
        .value("slope_high")
        .zip(report.std_error("slope_high"))
        .map(|(s, e)| ActivationVolume::from_slope(s, e, kbt_gpa_a3));
    Ok(CrossoverFit {
        report,
        profile,
        p_cross_interval_gpa: interval,
        low,
        high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand_distr::{Distribution, Normal};

    #[test]
    fn kbt_at_300k() {
        // docs/model.md §2: 4.14 GPa·Å³.
        assert!((kbt_gpa_a3(300.0) - 4.142).abs() < 1e-3);
    }

    #[test]
    fn single_slope_activation_volume() {
        let kbt = kbt_gpa_a3(300.0);
        // ΔV = +10 Å³ -> dln τ/dP = 10/kbt.
        let p = [0.0, 1.1, 2.0, 2.9];
        let tau: Vec<f64> = p.iter().map(|x| 100.0 * f64::exp(10.0 / kbt * x)).collect();
        let err: Vec<f64> = tau.iter().map(|t| 0.05 * t).collect();
        let (r, dv) = fit_activation_volume(&p, &tau, &err, kbt, &FitOptions::default()).unwrap();
        let dv = dv.unwrap_or_else(|| panic!("{}", r.summary()));
        assert!((dv.delta_v_a3 - 10.0).abs() < 1e-8);
        assert!(fit_activation_volume(&p, &tau, &err, -1.0, &FitOptions::default()).is_err());
    }

    #[test]
    fn crossover_of_the_ce_seed_shape() {
        // Ce seed: +10 Å³ below and -10 Å³ above ~3 GPa (docs/model.md §9), 7 isobars.
        let kbt = kbt_gpa_a3(300.0);
        let (pc, s) = (3.0, 10.0 / kbt);
        let p = [0.0, 1.1, 2.0, 2.9, 4.0, 5.6, 8.2];
        let truth = |x: f64| 500.0 * f64::exp(if x < pc { s * (x - pc) } else { -s * (x - pc) });
        let tau: Vec<f64> = p.iter().map(|&x| truth(x)).collect();
        let err: Vec<f64> = tau.iter().map(|t| 0.05 * t).collect();
        let o = FitOptions::default().with_error_scale(ErrorScale::Absolute);
        let c = fit_crossover(&p, &tau, &err, kbt, 400, &o).unwrap();
        let r = &c.report;
        assert!(
            (r.value("p_cross").unwrap() - pc).abs() < 1e-6,
            "{}",
            r.summary()
        );
        assert!((c.low.unwrap().delta_v_a3 - 10.0).abs() < 1e-5);
        assert!((c.high.unwrap().delta_v_a3 + 10.0).abs() < 1e-5);
        let (lo, hi) = c.p_cross_interval_gpa;
        assert!(
            lo.unwrap() < pc && hi.unwrap() > pc,
            "{:?}",
            c.p_cross_interval_gpa
        );

        // Noisy repeats: the fitted crossover scatters with about its reported error.
        let mut pulls = Vec::new();
        for k in 0..200 {
            let mut rng = rng::stream(5, k);
            let n = Normal::new(0.0, 0.05).unwrap();
            let tn: Vec<f64> = tau
                .iter()
                .map(|t| t * f64::exp(n.sample(&mut rng)))
                .collect();
            let c = fit_crossover(&p, &tn, &err, kbt, 200, &o).unwrap();
            if let (Some(v), Some(e)) = (c.report.value("p_cross"), c.report.std_error("p_cross")) {
                pulls.push((v - pc) / e);
            }
        }
        assert!(pulls.len() >= 190);
        let m = pulls.iter().sum::<f64>() / pulls.len() as f64;
        let sd = (pulls.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / pulls.len() as f64).sqrt();
        // σ_lnτ = 0.05 against slopes of ±2.4/GPa and isobars ≤ 1.1 GPa apart: nearly linear,
        // so pulls are close to N(0,1). Bands: mean ±0.3 (4σ of a mean of 200), std 0.8–1.25
        // (the breakpoint is a non-linear parameter: a wider band than the g2 calibration).
        assert!(
            m.abs() < 0.3 && (0.8..1.25).contains(&sd),
            "pull mean {m}, std {sd}"
        );
    }
}
