//! Are the error bars honest? Pull statistics of a fit over seeded repeats.
//!
//! Input: a [`FitModel`], [`FitOptions`], a number of repeats, a seed, and a closure that turns
//! a per-repeat seed into a [`CalibrationSample`] (delays in s, g2, g2_err, and the true
//! parameter values by name). The closure is where the data come from: Gaussian noise of a
//! known σ in the unit tests here, simulated photon stacks through the correlators in the
//! twin's validation. Output: a [`CalibrationSummary`] with, per free parameter, the mean and
//! standard deviation of the pulls (recovered - truth)/σ and the 1σ coverage, plus the
//! failures, checked against [`CalibrationBands`].
//!
//! Repeat i draws its seed as `seed::subseed(seed, "calibration-repeat-i")`; repeats run in
//! parallel and the summary does not depend on the thread count.
//!
//! Reference: the pull method of particle physics (e.g. Demortier & Lyons, CDF note 5776,
//! 2002); acceptance bands (docs/model.md §6: mean within ±0.15, std 0.85–1.2, coverage 68 ± 5 %).

use rayon::prelude::*;

use super::jackknife::fit_curve_jackknife;
use super::lm::FitOptions;
use super::model::FitModel;
use crate::error::{Error, Result};
use crate::seed::subseed;

/// One repeat's data and truth.
#[derive(Clone, Debug)]
pub struct CalibrationSample {
    /// Delays (s).
    pub delays_s: Vec<f64>,
    /// g2 at those delays.
    pub g2: Vec<f64>,
    /// 1σ errors of g2.
    pub g2_err: Vec<f64>,
    /// True parameter values by name (the estimator's ground truth).
    pub truth: Vec<(String, f64)>,
    /// Leave-one-group-out replicates of g2 (empty: least-squares errors; otherwise the fit
    /// reports jackknife errors, see [`super::jackknife`]).
    pub replicates: Vec<Vec<f64>>,
}

/// Pull statistics of one parameter.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PullStats {
    /// Parameter name.
    pub param: String,
    /// Converged repeats used.
    pub n: usize,
    /// Mean pull.
    pub mean: f64,
    /// Standard deviation of the pulls.
    pub std: f64,
    /// Fraction of 1σ intervals that contain the truth.
    pub coverage_1sigma: f64,
    /// Fraction of 1.96σ (95 %) intervals that contain the truth.
    pub coverage_95: f64,
    /// Mean relative bias (recovered/truth - 1), for non-zero truths.
    pub mean_relative_bias: f64,
}

/// Pull statistics over all repeats.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CalibrationSummary {
    /// Repeats attempted.
    pub n_repeats: usize,
    /// Repeats whose fit failed (excluded from the pulls).
    pub n_failed: usize,
    /// Repeats whose fit converged with at least one warning.
    pub n_warned: usize,
    /// Up to 5 failure reasons, for the log.
    pub failure_examples: Vec<String>,
    /// One entry per parameter that has a truth and is free in the fit.
    pub params: Vec<PullStats>,
}

/// Acceptance bands for [`CalibrationSummary::violations`].
#[derive(Clone, Copy, Debug)]
pub struct CalibrationBands {
    /// Largest allowed |mean pull|.
    pub max_abs_mean: f64,
    /// Allowed range of the pull standard deviation.
    pub std_range: (f64, f64),
    /// Allowed range of the 1σ coverage.
    pub coverage_range: (f64, f64),
    /// Largest allowed fraction of failed fits.
    pub max_failed_fraction: f64,
}

impl Default for CalibrationBands {
    /// The acceptance bands (docs/model.md §6): mean within ±0.15, std 0.85–1.2, coverage
    /// 68 ± 5 %, ≤ 2 % failures.
    fn default() -> Self {
        CalibrationBands {
            max_abs_mean: 0.15,
            std_range: (0.85, 1.2),
            coverage_range: (0.63, 0.73),
            max_failed_fraction: 0.02,
        }
    }
}

impl CalibrationSummary {
    /// The band violations, one line each (empty when all pass).
    pub fn violations(&self, b: &CalibrationBands) -> Vec<String> {
        let mut v = Vec::new();
        let failed = self.n_failed as f64 / self.n_repeats.max(1) as f64;
        if failed > b.max_failed_fraction {
            v.push(format!(
                "{} of {} fits failed (> {:.1} %)",
                self.n_failed,
                self.n_repeats,
                100.0 * b.max_failed_fraction
            ));
        }
        for p in &self.params {
            if p.mean.abs() > b.max_abs_mean {
                v.push(format!(
                    "{}: mean pull {:.3} outside ±{}",
                    p.param, p.mean, b.max_abs_mean
                ));
            }
            if !(b.std_range.0..=b.std_range.1).contains(&p.std) {
                v.push(format!(
                    "{}: pull std {:.3} outside {:?}",
                    p.param, p.std, b.std_range
                ));
            }
            if !(b.coverage_range.0..=b.coverage_range.1).contains(&p.coverage_1sigma) {
                v.push(format!(
                    "{}: 1σ coverage {:.3} outside {:?}",
                    p.param, p.coverage_1sigma, b.coverage_range
                ));
            }
        }
        v
    }

    /// A small table for logs and reports.
    pub fn table(&self) -> String {
        let mut s = format!(
            "repeats {} (failed {}, with warnings {})\nparam          n    mean pull  std pull  cov. 68 %  cov. 95 %  rel. bias\n",
            self.n_repeats, self.n_failed, self.n_warned
        );
        for p in &self.params {
            s.push_str(&format!(
                "{:<14} {:<4} {:>+9.3}  {:>8.3}  {:>9.3}  {:>9.3}  {:>+9.2e}\n",
                p.param, p.n, p.mean, p.std, p.coverage_1sigma, p.coverage_95, p.mean_relative_bias
            ));
        }
        s
    }
}

/// Pull statistics of one parameter from its pulls (recovered − truth)/σ and relative
/// deviations (recovered/truth − 1): mean, sample standard deviation (n − 1), and the
/// fractions of |pull| ≤ 1 and ≤ 1.96.
pub fn pull_stats(param: &str, pulls: &[f64], rel: &[f64]) -> PullStats {
    let p = pulls;
    let m = p.iter().sum::<f64>() / p.len().max(1) as f64;
    let sd =
        (p.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (p.len().max(2) - 1) as f64).sqrt();
    let within = |k: f64| p.iter().filter(|x| x.abs() <= k).count() as f64 / p.len().max(1) as f64;
    PullStats {
        param: param.to_string(),
        n: p.len(),
        mean: m,
        std: sd,
        coverage_1sigma: within(1.0),
        coverage_95: within(1.96),
        mean_relative_bias: rel.iter().sum::<f64>() / rel.len().max(1) as f64,
    }
}

/// Runs `n_repeats` fits of `model` on data from `make(seed_i)` and summarises the pulls.
///
/// `Err` only for a malformed call (bad options, a truth naming an unknown parameter, or an
/// error returned by `make`); failed fits are counted, not fatal.
pub fn calibrate<F>(
    model: &dyn FitModel,
    opts: &FitOptions,
    n_repeats: usize,
    seed: u64,
    make: F,
) -> Result<CalibrationSummary>
where
    F: Fn(u64) -> Result<CalibrationSample> + Sync,
{
    if n_repeats < 2 {
        return Err(Error::out_of_range(
            "calibration",
            "n_repeats",
            n_repeats,
            ">= 2",
        ));
    }
    let results: Vec<Result<(CalibrationSample, crate::fit::FitReport)>> = (0..n_repeats)
        .into_par_iter()
        .map(|i| {
            let s = make(subseed(seed, &format!("calibration-repeat-{i}")))?;
            let r = fit_curve_jackknife(model, &s.delays_s, &s.g2, &s.g2_err, &s.replicates, opts)?;
            Ok((s, r))
        })
        .collect();
    let results: Vec<(CalibrationSample, crate::fit::FitReport)> =
        results.into_iter().collect::<Result<_>>()?;

    // Parameters: those with a truth that are free in the fit.
    let names: Vec<String> = results[0].0.truth.iter().map(|(n, _)| n.clone()).collect();
    for n in &names {
        if !model.params().iter().any(|p| p.name == n) {
            return Err(Error::invalid(
                "calibration",
                format!(
                    "truth names `{n}`, which model `{}` does not have",
                    model.name()
                ),
            ));
        }
    }
    let free: Vec<String> = names
        .into_iter()
        .filter(|n| !opts.fixed.iter().any(|(f, _)| f == n))
        .collect();

    let mut summary = CalibrationSummary {
        n_repeats,
        n_failed: 0,
        n_warned: 0,
        failure_examples: Vec::new(),
        params: Vec::new(),
    };
    let mut pulls: Vec<Vec<f64>> = vec![Vec::new(); free.len()];
    let mut rel: Vec<Vec<f64>> = vec![Vec::new(); free.len()];
    for (s, r) in &results {
        if let Some(reason) = r.failure() {
            summary.n_failed += 1;
            if summary.failure_examples.len() < 5 {
                summary.failure_examples.push(reason.to_string());
            }
            continue;
        }
        if !r.warnings.is_empty() {
            summary.n_warned += 1;
        }
        for (k, n) in free.iter().enumerate() {
            let truth = s
                .truth
                .iter()
                .find(|(m, _)| m == n)
                .map(|(_, v)| *v)
                .unwrap_or(f64::NAN);
            let (v, e) = (
                r.value(n).unwrap_or(f64::NAN),
                r.std_error(n).unwrap_or(0.0),
            );
            if e > 0.0 && truth.is_finite() {
                pulls[k].push((v - truth) / e);
                if truth != 0.0 {
                    rel[k].push(v / truth - 1.0);
                }
            }
        }
    }
    for (k, n) in free.iter().enumerate() {
        summary.params.push(pull_stats(n, &pulls[k], &rel[k]));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::lm::fit_curve;
    use crate::fit::model::Kww;
    use crate::fit::report::ErrorScale;
    use crate::rng;
    use rand_distr::{Distribution, Normal};

    /// Multi-tau delays of a scan of `n_frames` frames of `dt` s.
    fn delays(dt: f64, n_frames: usize) -> Vec<f64> {
        let (mut v, mut lag, mut step) = (Vec::new(), 0usize, 1usize);
        for level in 0.. {
            for _ in 0..if level == 0 { 8 } else { 4 } {
                lag += step;
                if lag >= n_frames {
                    return v;
                }
                v.push(lag as f64 * dt);
            }
            step *= 2;
        }
        v
    }

    /// KWW plus independent Gaussian noise of known σ: pulls must be N(0,1) asymptotically.
    fn gaussian_kww(
        truth: [f64; 4],
        dt: f64,
        n_frames: usize,
        sigma: f64,
    ) -> impl Fn(u64) -> Result<CalibrationSample> + Sync {
        move |seed| {
            let mut rng = rng::stream(seed, 0);
            let t = delays(dt, n_frames);
            let noise = Normal::new(0.0, sigma).unwrap();
            let g2 = t
                .iter()
                .map(|&x| Kww.eval(x, &truth) + noise.sample(&mut rng))
                .collect();
            Ok(CalibrationSample {
                g2_err: vec![sigma; t.len()],
                delays_s: t,
                g2,
                truth: ["baseline", "contrast", "tau", "kww_exponent"]
                    .iter()
                    .zip(truth)
                    .map(|(n, v)| (n.to_string(), v))
                    .collect(),
                replicates: Vec::new(),
            })
        }
    }

    // With N = 1000 repeats and pulls N(0,1): the mean pull has σ = 0.032, so ±0.15 is 4.7σ;
    // the pull std has σ ≈ 1/sqrt(2N) = 0.022, so 0.85–1.2 is -6.7σ/+8.9σ; the coverage has
    // σ = sqrt(0.68·0.32/N) = 1.5 %, so 68 ± 5 % is ±3.4σ. A correct fitter fails any one band
    // with probability < 1e-3 (fixed seeds make the test deterministic anyway); an error off by
    // 20 % moves the coverage by ~8 % and the std by 0.2: caught.
    #[test]
    fn pulls_are_standard_normal_for_gaussian_noise_absolute_errors() {
        let o = FitOptions::default().with_error_scale(ErrorScale::Absolute);
        // Pt-seed-like: 0.1 s frames, 8000 frames, τ = 38 s, β = 1.7.
        let s = calibrate(
            &Kww,
            &o,
            1000,
            1,
            gaussian_kww([1.0, 0.2, 38.0, 1.7], 0.1, 8000, 0.01),
        )
        .unwrap();
        eprintln!("Pt-like, absolute errors:\n{}", s.table());
        let v = s.violations(&CalibrationBands::default());
        assert!(v.is_empty(), "{v:?}\n{}", s.table());
        assert_eq!(s.params.len(), 4);
    }

    #[test]
    fn pulls_with_relative_errors_and_fixed_baseline() {
        // Ce-seed-like: 5 s frames, 1500 frames, τ = 600 s, β = 1.8, baseline fixed at 1.006.
        let o = FitOptions::default().fix("baseline", 1.006);
        let s = calibrate(
            &Kww,
            &o,
            1000,
            2,
            gaussian_kww([1.006, 0.12, 600.0, 1.8], 5.0, 1500, 0.01),
        )
        .unwrap();
        eprintln!("Ce-like, fixed baseline, relative errors:\n{}", s.table());
        assert_eq!(s.params.len(), 3);
        let v = s.violations(&CalibrationBands::default());
        assert!(v.is_empty(), "{v:?}\n{}", s.table());
    }

    #[test]
    fn wrong_errors_are_caught() {
        // Errors reported 30 % too small (absolute scaling): the pull std is ~1.3 -> a violation.
        let truth = [1.0, 0.2, 38.0, 1.7];
        let make = gaussian_kww(truth, 0.1, 8000, 0.01);
        let lying = |seed| {
            let mut s = make(seed)?;
            s.g2_err.iter_mut().for_each(|e| *e *= 0.7);
            Ok(s)
        };
        let o = FitOptions::default().with_error_scale(ErrorScale::Absolute);
        let s = calibrate(&Kww, &o, 300, 3, lying).unwrap();
        assert!(
            !s.violations(&CalibrationBands::default()).is_empty(),
            "{}",
            s.table()
        );
        // The same data with χ²-scaled (relative) errors recovers honest pulls.
        let s = calibrate(&Kww, &FitOptions::default(), 300, 3, lying).unwrap();
        // 300 repeats: coverage σ = 2.7 %, so the 68 ± 5 % band is ±1.9σ; mean band ±2.6σ.
        // Use the wider 4σ bands for this smaller run.
        let b = CalibrationBands {
            max_abs_mean: 0.24,
            std_range: (0.84, 1.2),
            coverage_range: (0.57, 0.79),
            max_failed_fraction: 0.02,
        };
        assert!(s.violations(&b).is_empty(), "{}", s.table());
    }

    /// The short-scan regime: a scan of only 2τ with a free baseline (baseline and τ are
    /// nearly degenerate; docs/model.md §7: large error inflation near T/τ ≈ 1). Every such fit
    /// must carry the short-scan warning or fail. The pull table is printed (--nocapture), not
    /// held to the bands. Measured (seed 4, 200 repeats, Gaussian σ = 0.01, c = 0.2): pulls
    /// stay near N(0,1) (τ: mean -0.14, std 1.10, coverage 0.69) because the errors grow with
    /// the degeneracy, but τ itself is biased by +2.2 %; with the baseline fixed the bias is
    /// +0.7 % and the pulls pass. Photon-noise stacks may behave worse: pending.
    #[test]
    fn short_scan_free_baseline_regime_is_flagged() {
        let truth = [1.0, 0.2, 38.0, 1.7];
        let make = gaussian_kww(truth, 0.1, 760, 0.01);
        let o = FitOptions::default().with_error_scale(ErrorScale::Absolute);
        let mut flagged = 0;
        for i in 0..200u64 {
            let s = make(rng::subseed(4, &format!("short-{i}"))).unwrap();
            let r = fit_curve(&Kww, &s.delays_s, &s.g2, &s.g2_err, &o).unwrap();
            if r.is_ok() && !r.warnings.iter().any(|w| w.contains("3 tau")) {
                continue;
            }
            flagged += 1;
        }
        // A failure or a warning, every time: the user is never handed a silent number.
        assert_eq!(flagged, 200);
        let s = calibrate(&Kww, &o, 200, 4, make).unwrap();
        eprintln!("short scan (T = 2τ), free baseline:\n{}", s.table());
        // With the baseline fixed at its true value the same data calibrate (fewer repeats:
        // 4σ bands for N = 200: mean ±0.28, std 0.8–1.2, coverage 0.58–0.78).
        let s = calibrate(
            &Kww,
            &o.clone().fix("baseline", 1.0),
            200,
            4,
            gaussian_kww(truth, 0.1, 760, 0.01),
        )
        .unwrap();
        eprintln!("short scan (T = 2τ), fixed baseline:\n{}", s.table());
        let b = CalibrationBands {
            max_abs_mean: 0.28,
            std_range: (0.8, 1.2),
            coverage_range: (0.58, 0.78),
            max_failed_fraction: 0.02,
        };
        assert!(s.violations(&b).is_empty(), "{}", s.table());
    }
}
