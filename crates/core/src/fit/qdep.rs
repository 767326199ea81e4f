//! q-dependence: one fit per q-bin, τ and β per bin, and the power law τ(q) = τ1 (q/q1)^-α.
//!
//! Input: delays (s, length n_lag), g2 and g2_err as (lag × q-bin) arrays (the correlators'
//! layout), bin centres q (Å⁻¹). Output: one [`FitReport`] per bin (failures recorded per bin
//! with their reason), [`TauBeta`] per bin, and the power-law [`FitReport`] (parameters
//! `tau1` (s) at the reference `q1`, and `alpha`).
//!
//! Reference: docs/model.md §2 (α = 0.36 at 6.3 GPa in the Pt seed); Ruta et al., PRL 109, 165701
//! (2012) for τ ∝ q^-α in metallic glasses.

use ndarray::{Array2, Array3, ArrayView2, ArrayView3};
use rayon::prelude::*;

use super::jackknife::fit_curve_jackknife;
use super::lm::{fit_curve, FitOptions};
use super::model::{Domain, FitModel, ParamSpec};
use super::report::FitReport;
use super::twotime::line_fit;
use crate::error::{Error, Result};

/// Fits `model` to every q-bin (column) of `g2` ± `g2_err` against `delays_s`, in parallel
/// (each bin is independent, so the result does not depend on the thread count).
pub fn fit_bins(
    model: &dyn FitModel,
    delays_s: &[f64],
    g2: ArrayView2<f64>,
    g2_err: ArrayView2<f64>,
    opts: &FitOptions,
) -> Result<Vec<FitReport>> {
    fit_bins_jackknife(model, delays_s, g2, g2_err, None, opts)
}

/// As [`fit_bins`], with jackknife errors from the leave-one-group-out replicates
/// `jackknife` (n_groups, n_lag, n_bins) when given (see [`super::jackknife`]).
pub fn fit_bins_jackknife(
    model: &dyn FitModel,
    delays_s: &[f64],
    g2: ArrayView2<f64>,
    g2_err: ArrayView2<f64>,
    jackknife: Option<ArrayView3<f64>>,
    opts: &FitOptions,
) -> Result<Vec<FitReport>> {
    if let Some(j) = &jackknife {
        if j.dim().1 != g2.nrows() || j.dim().2 != g2.ncols() {
            return Err(Error::ShapeMismatch {
                origin: "g2 fit".into(),
                what: "jackknife replicates as (group × lag × q-bin)".into(),
                expected: vec![j.dim().0, g2.nrows(), g2.ncols()],
                got: vec![j.dim().0, j.dim().1, j.dim().2],
            });
        }
    }
    if g2.nrows() != delays_s.len() || g2_err.dim() != g2.dim() {
        return Err(Error::ShapeMismatch {
            origin: "g2 fit".into(),
            what: "g2 and g2_err as (lag × q-bin) with one row per delay".into(),
            expected: vec![delays_s.len(), g2.ncols()],
            got: vec![g2.nrows(), g2.ncols(), g2_err.nrows(), g2_err.ncols()],
        });
    }
    (0..g2.ncols())
        .into_par_iter()
        .map(|b| {
            let y: Vec<f64> = g2.column(b).to_vec();
            let e: Vec<f64> = g2_err.column(b).to_vec();
            match &jackknife {
                Some(j) => {
                    let reps: Vec<Vec<f64>> =
                        j.outer_iter().map(|r| r.column(b).to_vec()).collect();
                    fit_curve_jackknife(model, delays_s, &y, &e, &reps, opts)
                }
                None => fit_curve(model, delays_s, &y, &e, opts),
            }
        })
        .collect()
}

/// Marks the (lag, q-bin) points of a g2 table that hold no measurement as missing, so that
/// [`fit_bins_jackknife`] leaves them out instead of failing the bin: a non-finite g2 or
/// g2_err, or g2_err ≤ 0. Files averaged by the APS 8-ID-I pipeline hold g2 = 0 with
/// g2_err = 0 at lags where no pair of frames exists (the tail of the multi-tau list, longer in
/// bins with few pixels). Such points become NaN in g2, g2_err and every jackknife replicate
/// (the fits drop non-finite points). Returns how many points were marked.
pub fn mask_points_without_data(
    g2: &mut Array2<f64>,
    g2_err: &mut Array2<f64>,
    mut jackknife: Option<&mut Array3<f64>>,
) -> usize {
    let mut n = 0;
    for ((i, b), e) in g2_err.indexed_iter_mut() {
        let y = &mut g2[[i, b]];
        if y.is_finite() && e.is_finite() && *e > 0.0 {
            continue;
        }
        n += 1;
        *y = f64::NAN;
        *e = f64::NAN;
        if let Some(j) = jackknife.as_deref_mut() {
            if i < j.dim().1 && b < j.dim().2 {
                j.slice_mut(ndarray::s![.., i, b]).fill(f64::NAN);
            }
        }
    }
    n
}

/// τ and the KWW exponent of one q-bin with their 1σ errors (None for failed fits; β = 1 with
/// error 0 for the exponential model).
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct TauBeta {
    /// Bin centre (Å⁻¹).
    pub q_inv_angstrom: f64,
    /// τ (s).
    pub tau_s: f64,
    /// 1σ error of τ (s).
    pub tau_err_s: f64,
    /// KWW exponent.
    pub kww_exponent: f64,
    /// 1σ error of the KWW exponent (0 when fixed or absent from the model).
    pub kww_exponent_err: f64,
}

/// τ and β per bin from per-bin reports (`q` = bin centres, Å⁻¹). A converged fit whose τ
/// error is not finite and > 0 (a covariance singular at the solution, e.g. τ driven far
/// below the first delay) carries no weight for τ(q) and gives None too.
pub fn tau_beta_per_bin(q_inv_angstrom: &[f64], reports: &[FitReport]) -> Vec<Option<TauBeta>> {
    q_inv_angstrom
        .iter()
        .zip(reports)
        .map(|(&q, r)| {
            Some(TauBeta {
                q_inv_angstrom: q,
                tau_s: r.value("tau")?,
                tau_err_s: r.std_error("tau").filter(|e| e.is_finite() && *e > 0.0)?,
                kww_exponent: r.value("kww_exponent").unwrap_or(1.0),
                kww_exponent_err: r.std_error("kww_exponent").unwrap_or(0.0),
            })
        })
        .collect()
}

const POWER_PARAMS: [ParamSpec; 2] = [
    ParamSpec {
        name: "tau1",
        unit: "s",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "alpha",
        unit: "",
        domain: Domain::Real,
    },
];

/// The power law in log form, x = q (Å⁻¹), y = ln τ: ln τ = ln τ1 - α ln(q/q1).
///
/// Parameters `[tau1 (s), alpha]`; `q1_inv_angstrom` is a fixed reference (e.g. the FSDP).
#[derive(Clone, Copy, Debug)]
pub struct PowerLaw {
    /// Reference wave vector q1 (Å⁻¹) at which τ = τ1.
    pub q1_inv_angstrom: f64,
}

impl FitModel for PowerLaw {
    fn name(&self) -> &str {
        "power-law"
    }
    fn params(&self) -> &[ParamSpec] {
        &POWER_PARAMS
    }
    fn eval(&self, q: f64, p: &[f64]) -> f64 {
        p[0].ln() - p[1] * (q / self.q1_inv_angstrom).ln()
    }
    fn jacobian(&self, q: f64, p: &[f64], out: &mut [f64]) {
        out[0] = 1.0 / p[0];
        out[1] = -(q / self.q1_inv_angstrom).ln();
    }
    fn starts(&self, x: &[f64], y: &[f64], fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let lx: Vec<f64> = x.iter().map(|q| (q / self.q1_inv_angstrom).ln()).collect();
        let (a, b) = line_fit(&lx, y);
        vec![vec![fixed[0].unwrap_or(a.exp()), fixed[1].unwrap_or(-b)]]
    }
}

/// Fits τ(q) = τ1 (q/q1)^-α to τ ± σ_τ (s) at q (Å⁻¹), in ln τ with σ_lnτ = σ_τ/τ.
///
/// The τ errors come from the per-age / per-bin / per-isobar fits; with only a handful of
/// points, χ²-scaled ([`crate::fit::ErrorScale::Relative`]) errors are themselves uncertain
/// by ~sqrt(2/dof) (the report warns): pass `ErrorScale::Absolute` when the input errors are
/// trusted (e.g. calibrated with [`crate::fit::calibration`]).
pub fn fit_power_law(
    q_inv_angstrom: &[f64],
    tau_s: &[f64],
    tau_err_s: &[f64],
    q1_inv_angstrom: f64,
    opts: &FitOptions,
) -> Result<FitReport> {
    if !(q1_inv_angstrom.is_finite() && q1_inv_angstrom > 0.0) {
        return Err(Error::out_of_range(
            "power-law fit",
            "q1_inv_angstrom",
            q1_inv_angstrom,
            "> 0",
        ));
    }
    if tau_s.len() != q_inv_angstrom.len() || tau_err_s.len() != q_inv_angstrom.len() {
        return Err(Error::ShapeMismatch {
            origin: "power-law fit".into(),
            what: "q, tau and tau_err lengths".into(),
            expected: vec![q_inv_angstrom.len(); 3],
            got: vec![q_inv_angstrom.len(), tau_s.len(), tau_err_s.len()],
        });
    }
    let q: Vec<f64> = q_inv_angstrom
        .iter()
        .map(|&q| if q > 0.0 { q } else { f64::NAN })
        .collect();
    let y: Vec<f64> = tau_s
        .iter()
        .map(|&t| if t > 0.0 { t.ln() } else { f64::NAN })
        .collect();
    let e: Vec<f64> = tau_s.iter().zip(tau_err_s).map(|(t, e)| e / t).collect();
    fit_curve(&PowerLaw { q1_inv_angstrom }, &q, &y, &e, opts)
}

/// Fits the power law to the converged bins of [`tau_beta_per_bin`].
pub fn fit_power_law_from_bins(
    bins: &[Option<TauBeta>],
    q1_inv_angstrom: f64,
    opts: &FitOptions,
) -> Result<FitReport> {
    let ok: Vec<&TauBeta> = bins.iter().flatten().collect();
    let q: Vec<f64> = ok.iter().map(|b| b.q_inv_angstrom).collect();
    let t: Vec<f64> = ok.iter().map(|b| b.tau_s).collect();
    let e: Vec<f64> = ok.iter().map(|b| b.tau_err_s).collect();
    fit_power_law(&q, &t, &e, q1_inv_angstrom, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fit::model::Kww;
    use ndarray::Array2;

    #[test]
    fn points_without_data_are_left_out_not_failed() {
        let delays: Vec<f64> = (0..40).map(|i| 0.01 * 1.2f64.powi(i)).collect();
        let mut g2 =
            Array2::from_shape_fn((40, 2), |(i, _)| Kww.eval(delays[i], &[1.0, 0.2, 0.3, 1.0]));
        let mut err = Array2::from_elem(g2.dim(), 1e-3);
        // The APS tail: g2 = 0, g2_err = 0 on the last lags; one NaN in bin 2.
        for i in 35..40 {
            g2[[i, 0]] = 0.0;
            err[[i, 0]] = 0.0;
        }
        g2[[3, 1]] = f64::NAN;
        let before =
            fit_bins(&Kww, &delays, g2.view(), err.view(), &FitOptions::default()).unwrap();
        assert!(before[0].failure().unwrap().contains("non-positive"));
        let n = mask_points_without_data(&mut g2, &mut err, None);
        assert_eq!(n, 6);
        let r = fit_bins(&Kww, &delays, g2.view(), err.view(), &FitOptions::default()).unwrap();
        for (b, rep) in r.iter().enumerate() {
            let v = rep
                .fitted()
                .unwrap_or_else(|| panic!("bin {b}: {:?}", rep.failure()));
            // Noiseless data: the truth, to the solver's tolerance.
            assert!(
                (v.values[2] - 0.3).abs() < 1e-6,
                "bin {b}: τ = {}",
                v.values[2]
            );
        }
        assert_eq!((r[0].n_points, r[1].n_points), (35, 39));
    }

    #[test]
    fn per_bin_fits_and_power_law() {
        let (tau1, alpha, q1) = (30.0, 0.36, 2.87);
        let q: Vec<f64> = (0..6).map(|k| 2.7 + 0.07 * f64::from(k)).collect();
        let delays: Vec<f64> = (0..60).map(|i| 0.1 * 1.2f64.powi(i)).collect();
        let mut g2 = Array2::zeros((delays.len(), q.len()));
        for (b, &qb) in q.iter().enumerate() {
            let tau = tau1 * (qb / q1).powf(-alpha);
            for (i, &t) in delays.iter().enumerate() {
                g2[[i, b]] = Kww.eval(t, &[1.0, 0.2, tau, 1.6]);
            }
        }
        let mut err = Array2::from_elem(g2.dim(), 1e-3);
        // One bad bin: non-positive errors -> recorded failure, others unaffected.
        err[[5, 2]] = -1.0;
        let reports =
            fit_bins(&Kww, &delays, g2.view(), err.view(), &FitOptions::default()).unwrap();
        assert!(reports[2].failure().unwrap().contains("non-positive"));
        let bins = tau_beta_per_bin(&q, &reports);
        assert!(bins[2].is_none());
        for b in bins.iter().flatten() {
            assert!((b.kww_exponent - 1.6).abs() < 1e-6);
        }
        let r = fit_power_law_from_bins(&bins, q1, &FitOptions::default()).unwrap();
        assert_eq!(r.n_points, 5);
        // Noiseless τ: exact up to the per-bin solver tolerance.
        assert!(
            (r.value("alpha").unwrap() - alpha).abs() < 1e-5,
            "{}",
            r.summary()
        );
        assert!(
            (r.value("tau1").unwrap() / tau1 - 1.0).abs() < 1e-6,
            "{}",
            r.summary()
        );
        assert!(fit_power_law(&q, &q, &q, 0.0, &FitOptions::default()).is_err());
        // Wrong shapes are errors.
        assert!(fit_bins(
            &Kww,
            &delays[1..],
            g2.view(),
            err.view(),
            &FitOptions::default()
        )
        .is_err());
    }
}
