//! Jackknife errors of a g2 fit: the fit repeated on every leave-one-pixel-group-out g2.
//!
//! Input: the delays (s), g2 and g2_err of one q-bin (as for [`fit_curve`]) and K replicate
//! curves at the same delays, replicate j being g2 recomputed without pixel group j (the
//! correlators' [`crate::correlate::G2Result::jackknife`]). Output: a [`FitReport`] with the
//! values of the fit to the full g2 and, when the replicates allow, the jackknife covariance
//! ([`ErrorScale::Jackknife`]):
//!
//!   cov(θ) = ((K-1)/K) Σ_j (θ_j - θ̄)(θ_j - θ̄)ᵀ,
//!
//! θ_j the fit to replicate j (same model, weights and fixed parameters, started at the full
//! fit's values).
//!
//! Why: the multi-tau lags of one bin share frames, so their errors are correlated (strongly
//! so at long lags, where a few speckle fluctuations dominate); a least-squares covariance
//! from per-lag errors treats them as independent and is too small (1.3–2.2× for τ on the
//! twin's stacks). Pixel groups are independent to a good approximation (see
//! [`crate::correlate::Cells`]), so the spread of the refits carries every correlation the
//! estimator has, without a model of it.
//!
//! Reference: B. Efron & C. Stein, Ann. Stat. 9, 586 (1981); the delete-one-group form as in
//! Shao & Tu, *The Jackknife and Bootstrap* (Springer 1995), ch. 2.

use super::lm::{fit_curve, FitOptions};
use super::model::FitModel;
use super::report::{ErrorScale, FitOutcome, FitReport};
use crate::error::{Error, Result};

/// Smallest number of usable replicates for a jackknife covariance.
pub const MIN_REPLICATES: usize = 8;

/// Fits `model` to (x, y ± sigma) and, from the replicates, replaces the covariance by the
/// jackknife covariance.
///
/// Replicates that are NaN everywhere (bins with fewer pixels than groups) are absent, not
/// unusable. A replicate is usable when it is finite wherever y and sigma are and its fit
/// converges.
/// With fewer than [`MIN_REPLICATES`] usable replicates (or more than 10 % unusable), the
/// report keeps the least-squares covariance of `opts.error_scale` and says why in a warning.
/// `Err` only for malformed input (replicate lengths); fit failures are in the report.
pub fn fit_curve_jackknife(
    model: &dyn FitModel,
    x: &[f64],
    y: &[f64],
    sigma: &[f64],
    replicates: &[Vec<f64>],
    opts: &FitOptions,
) -> Result<FitReport> {
    Ok(fit_curve_jackknife_replicates(model, x, y, sigma, replicates, opts)?.0)
}

/// [`fit_curve_jackknife`], also returning each replicate's fitted parameters (in the
/// model's order; None for a replicate that is absent, unusable or whose refit failed, and
/// for every replicate when the full fit failed), one entry per element of `replicates`.
pub fn fit_curve_jackknife_replicates(
    model: &dyn FitModel,
    x: &[f64],
    y: &[f64],
    sigma: &[f64],
    replicates: &[Vec<f64>],
    opts: &FitOptions,
) -> Result<(FitReport, Vec<Option<Vec<f64>>>)> {
    let mut per_replicate: Vec<Option<Vec<f64>>> = vec![None; replicates.len()];
    if let Some(r) = replicates.iter().find(|r| r.len() != x.len()) {
        return Err(Error::ShapeMismatch {
            origin: format!("jackknife fit `{}`", model.name()),
            what: "every replicate has one value per delay".into(),
            expected: vec![x.len()],
            got: vec![r.len()],
        });
    }
    let replicates: Vec<(usize, &Vec<f64>)> = replicates
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().any(|v| v.is_finite()))
        .collect();
    let mut report = fit_curve(model, x, y, sigma, opts)?;
    let Some(full) = report.fitted().cloned() else {
        return Ok((report, per_replicate));
    };
    if replicates.is_empty() {
        return Ok((report, per_replicate));
    }
    let used: Vec<usize> = (0..x.len())
        .filter(|&i| x[i].is_finite() && y[i].is_finite() && sigma[i].is_finite())
        .collect();
    // Start every refit at the full fit: the replicates differ by ~1/K of the data, so the
    // refit stays in the same minimum and converges in a few steps.
    let mut ropts = opts.clone();
    ropts.start.clear();
    for (i, spec) in model.params().iter().enumerate() {
        // A fitted value can leave the start domain (e.g. β > 2, flagged by a warning): such
        // a parameter starts from the data-driven guess instead.
        if !report.fixed[i] && spec.domain.contains(full.values[i]) {
            ropts = ropts.start_at(spec.name, full.values[i]);
        }
    }
    let mut thetas: Vec<Vec<f64>> = Vec::with_capacity(replicates.len());
    let mut unusable = 0usize;
    for &(j, r) in &replicates {
        if used.iter().any(|&i| !r[i].is_finite()) {
            unusable += 1;
            continue;
        }
        match fit_curve(model, x, r, sigma, &ropts)?.outcome {
            FitOutcome::Converged(v) => {
                per_replicate[j] = Some(v.values.clone());
                thetas.push(v.values);
            }
            FitOutcome::Failed { .. } => unusable += 1,
        }
    }
    let k = thetas.len();
    if k < MIN_REPLICATES || unusable * 10 > replicates.len() {
        report.warnings.push(format!(
            "jackknife errors unavailable ({unusable} of {} replicates unusable, need at least \
             {MIN_REPLICATES} and at most 10 % unusable): errors are least-squares ({:?}), which \
             ignore the correlation between lags and are likely too small",
            replicates.len(),
            report.error_scale
        ));
        return Ok((report, per_replicate));
    }
    let np = full.values.len();
    let mean: Vec<f64> = (0..np)
        .map(|p| thetas.iter().map(|t| t[p]).sum::<f64>() / k as f64)
        .collect();
    let scale = (k as f64 - 1.0) / k as f64;
    let mut cov = vec![vec![0.0; np]; np];
    for t in &thetas {
        for a in 0..np {
            for b in 0..np {
                cov[a][b] += scale * (t[a] - mean[a]) * (t[b] - mean[b]);
            }
        }
    }
    if let FitOutcome::Converged(v) = &mut report.outcome {
        v.std_errors = (0..np).map(|p| cov[p][p].max(0.0).sqrt()).collect();
        v.covariance = cov;
    }
    report.error_scale = ErrorScale::Jackknife;
    Ok((report, per_replicate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::Kww;
    use crate::rng::stream;
    use rand_distr::{Distribution, StandardNormal};

    /// Data with errors correlated across points: y_i = m(x_i) + σ (ρ z_0 + sqrt(1-ρ²) z_i)
    /// (a common offset shared by all points plus independent noise). K groups each carry
    /// independent such noise of K times the variance, and the full curve is their mean: the
    /// exact structure of pixel groups. The jackknife σ of the baseline must then match
    /// the true spread σ_a = σ ρ (the shared offset is all in the baseline), while the
    /// least-squares σ (which treats points as independent) is far below it.
    #[test]
    fn jackknife_sees_correlated_errors() {
        let x: Vec<f64> = (1..=40).map(|i| 0.5 * 1.15f64.powi(i)).collect();
        let truth = [1.0, 0.2, 20.0, 1.5];
        let (sigma, rho, kg) = (2e-3, 0.8, 32usize);
        let n_rep = 200;
        let mut pulls_jk = Vec::new();
        let mut pulls_ls = Vec::new();
        for r in 0..n_rep {
            let mut rng = stream(77, r as u64);
            let mut groups = vec![vec![0.0; x.len()]; kg];
            let gs = sigma * (kg as f64).sqrt();
            for g in groups.iter_mut() {
                let z0: f64 = StandardNormal.sample(&mut rng);
                for (i, v) in g.iter_mut().enumerate() {
                    let zi: f64 = StandardNormal.sample(&mut rng);
                    *v = Kww.eval(x[i], &truth) + gs * (rho * z0 + (1.0 - rho * rho).sqrt() * zi);
                }
            }
            let mean = |skip: Option<usize>| -> Vec<f64> {
                let n = kg - skip.is_some() as usize;
                (0..x.len())
                    .map(|i| {
                        (0..kg)
                            .filter(|&g| Some(g) != skip)
                            .map(|g| groups[g][i])
                            .sum::<f64>()
                            / n as f64
                    })
                    .collect()
            };
            let y = mean(None);
            let reps: Vec<Vec<f64>> = (0..kg).map(|j| mean(Some(j))).collect();
            let s = vec![sigma; x.len()];
            let o = FitOptions::default().with_error_scale(ErrorScale::Absolute);
            let jk = fit_curve_jackknife(&Kww, &x, &y, &s, &reps, &o).unwrap();
            assert_eq!(jk.error_scale, ErrorScale::Jackknife, "{:?}", jk.warnings);
            let ls = fit_curve(&Kww, &x, &y, &s, &o).unwrap();
            let a = jk.value("baseline").unwrap();
            pulls_jk.push((a - truth[0]) / jk.std_error("baseline").unwrap());
            pulls_ls.push((a - truth[0]) / ls.std_error("baseline").unwrap());
        }
        let sd = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|p| (p - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        };
        // 200 pulls: the sample std has a relative error of 1/sqrt(2·199) = 5 %; the jackknife σ
        // itself scatters by 1/sqrt(2·31) = 13 %, which widens the pulls (a t distribution with
        // 31 dof: std 1.03). Band 0.85–1.2 (docs/model.md §6) is ≥ 3σ from 1.03 on both sides.
        let (s_jk, s_ls) = (sd(&pulls_jk), sd(&pulls_ls));
        assert!((0.85..=1.2).contains(&s_jk), "jackknife pull std {s_jk}");
        // Least squares: the shared offset's variance ρ²σ² is not reduced by the 40 points,
        // so its σ_a is ≈ σ/sqrt(40·(1-ρ²)) ≪ ρσ: the pulls are several times too wide.
        assert!(
            s_ls > 2.0,
            "least-squares pull std {s_ls} should show the correlation"
        );
    }

    #[test]
    fn too_few_replicates_keep_least_squares_with_a_warning() {
        let x: Vec<f64> = (1..=30).map(|i| i as f64).collect();
        let y: Vec<f64> = x
            .iter()
            .map(|&t| Kww.eval(t, &[1.0, 0.2, 8.0, 1.5]))
            .collect();
        let s = vec![1e-3; x.len()];
        let mut reps = vec![y.clone(); 10];
        for r in reps.iter_mut().take(5) {
            r[3] = f64::NAN;
        }
        let r = fit_curve_jackknife(&Kww, &x, &y, &s, &reps, &FitOptions::default()).unwrap();
        assert_eq!(r.error_scale, ErrorScale::Relative);
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("jackknife errors unavailable")));
        assert!(
            fit_curve_jackknife(&Kww, &x, &y, &s, &[vec![1.0; 3]], &FitOptions::default()).is_err()
        );
    }
}
