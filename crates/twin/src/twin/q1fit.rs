//! The FSDP position q1(P) fitted back from the simulated frames, and its pressure shift.
//!
//! Per scan: the time-averaged intensity of every analysed pixel (photons per frame, the
//! counting chain's output) is averaged over azimuth in `N_Q_BINS` equal-width q bins across
//! the region's q range; pixels on a Kossel line (transmission < [`KOSSEL_MASK`]) are left out,
//! as the Pt study masked "Kossel lines from the diamonds". Each bin's error is the standard
//! deviation of its pixels over sqrt(pixels) (Poisson, speckle and flat-field spread alike). The
//! profile is fitted with a Gaussian peak on a straight background,
//!
//! ```text
//! I(q) = b0 + b1 (q − q̄) + A exp(−4 ln 2 (q − q1)² / w²),
//! ```
//!
//! (absolute errors; q1 and its σ). The truth is the same fit of the expected intensities of
//! the same pixels (the scene's mean counts times each pixel's efficiency) with the same
//! errors, so a pull (q1 − q1_truth)/σ tests the error bar; the model is the sample's
//! q1(P) = q1(0) + dq1/dP · P. Across the isobars a weighted line q1 = q1(0) + s P gives the
//! shift s ± σ_s, compared with the sample's dq1/dP (the Pt study: 4.91e-3 Å⁻¹/GPa, "linear
//! shift of q1 with pressure up to 7 GPa, which is completely reversible with no hysteresis",
//! so compression and decompression isobars share the line).

use super::lsq::{poly_fit, PolyFit};
use super::scan::ScanResult;
use super::setup::{CampaignSetup, ScanSetup};
use serde::Serialize;
use xpcs_core::error::{Error, Result};
use xpcs_core::fit::{fit_curve, Domain, ErrorScale, FitModel, FitOptions, ParamSpec};

/// q bins of the azimuthally averaged profile.
pub const N_Q_BINS: usize = 24;
/// Pixels whose Kossel-line transmission is below this are masked.
pub const KOSSEL_MASK: f64 = 0.99;

const FOUR_LN2: f64 = 4.0 * std::f64::consts::LN_2;

/// Gaussian peak on a straight background (module doc); `q_ref` centres the background.
struct Peak {
    q_ref: f64,
}

const PARAMS: [ParamSpec; 5] = [
    ParamSpec {
        name: "background",
        unit: "photons/frame",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "background_slope",
        unit: "photons/frame/Å⁻¹",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "amplitude",
        unit: "photons/frame",
        domain: Domain::Positive,
    },
    ParamSpec {
        name: "q1",
        unit: "Å⁻¹",
        domain: Domain::Real,
    },
    ParamSpec {
        name: "fwhm",
        unit: "Å⁻¹",
        domain: Domain::Positive,
    },
];

impl FitModel for Peak {
    fn name(&self) -> &str {
        "fsdp-peak"
    }
    fn params(&self) -> &[ParamSpec] {
        &PARAMS
    }
    fn eval(&self, q: f64, p: &[f64]) -> f64 {
        let d = q - p[3];
        p[0] + p[1] * (q - self.q_ref) + p[2] * (-FOUR_LN2 * d * d / (p[4] * p[4])).exp()
    }
    fn jacobian(&self, q: f64, p: &[f64], out: &mut [f64]) {
        let d = q - p[3];
        let w2 = p[4] * p[4];
        let g = (-FOUR_LN2 * d * d / w2).exp();
        out[0] = 1.0;
        out[1] = q - self.q_ref;
        out[2] = g;
        out[3] = p[2] * g * 2.0 * FOUR_LN2 * d / w2;
        out[4] = p[2] * g * 2.0 * FOUR_LN2 * d * d / (w2 * p[4]);
    }
    fn starts(&self, x: &[f64], y: &[f64], _fixed: &[Option<f64>]) -> Vec<Vec<f64>> {
        let (lo, hi) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                (l.min(*v), h.max(*v))
            });
        let imax = y
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(0, |(i, _)| i);
        let span = x.last().copied().unwrap_or(1.0) - x.first().copied().unwrap_or(0.0);
        let amp = (hi - lo).max(1e-12);
        [1.0, 2.0, 0.5]
            .iter()
            .map(|f| {
                vec![
                    lo * 0.5,
                    0.0,
                    amp + lo * 0.5,
                    x[imax],
                    span.abs().max(1e-6) * f,
                ]
            })
            .collect()
    }
}

/// The azimuthally averaged profile of `values` over the pixels `use_px`, in `n` equal q bins:
/// (bin centre q, mean, σ of the mean); bins with fewer than 2 pixels are dropped.
pub fn profile(
    q: &[f64],
    values: &[f64],
    use_px: &[bool],
    n: usize,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (lo, hi) = q
        .iter()
        .zip(use_px)
        .filter(|(_, &u)| u)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), (v, _)| {
            (l.min(*v), h.max(*v))
        });
    let width = (hi - lo) / n as f64;
    let mut s = vec![(0.0f64, 0.0f64, 0.0f64, 0usize); n];
    for p in 0..q.len() {
        if !use_px[p] || !values[p].is_finite() || width <= 0.0 {
            continue;
        }
        let b = (((q[p] - lo) / width) as usize).min(n - 1);
        s[b].0 += q[p];
        s[b].1 += values[p];
        s[b].2 += values[p] * values[p];
        s[b].3 += 1;
    }
    let (mut qc, mut m, mut e) = (vec![], vec![], vec![]);
    for (sq, sv, sv2, k) in s {
        if k < 2 {
            continue;
        }
        let kf = k as f64;
        let mean = sv / kf;
        let var = ((sv2 - kf * mean * mean) / (kf - 1.0)).max(0.0);
        qc.push(sq / kf);
        m.push(mean);
        e.push((var / kf).sqrt());
    }
    (qc, m, e)
}

/// q1 ± σ of a profile (module doc), or why not.
pub fn fit_q1(qc: &[f64], y: &[f64], e: &[f64]) -> Result<(f64, f64)> {
    if e.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(Error::invalid("q1 fit", "a q bin has no spread (σ = 0)"));
    }
    let q_ref = qc.iter().sum::<f64>() / qc.len().max(1) as f64;
    let opts = FitOptions {
        error_scale: ErrorScale::Absolute,
        ..FitOptions::default()
    };
    let r = fit_curve(&Peak { q_ref }, qc, y, e, &opts)?;
    match (r.value("q1"), r.std_error("q1")) {
        (Some(v), Some(s)) => Ok((v, s)),
        _ => Err(Error::invalid("q1 fit", r.summary())),
    }
}

/// q1 of one scan.
#[derive(Debug, Clone, Serialize)]
pub struct Q1Point {
    /// Scan label.
    pub label: String,
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// Fitted q1 (Å⁻¹).
    pub value: f64,
    /// Its σ (Å⁻¹).
    pub sigma: f64,
    /// The same fit of the expected intensities (Å⁻¹).
    pub truth: f64,
    /// The sample's q1(P) (Å⁻¹).
    pub model: f64,
    /// Pixels used.
    pub n_pixels: usize,
}

/// q1(P) over the campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Q1Shift {
    /// Per scan.
    pub points: Vec<Q1Point>,
    /// Line q1 = q1(0) + s P through the fitted q1's.
    pub fit: PolyFit,
    /// The same line through the truth q1's (same weights).
    pub truth_fit: PolyFit,
    /// The sample's dq1/dP (Å⁻¹/GPa).
    pub model_slope: f64,
    /// The limit on |pull| (the campaign's max_abs_pull).
    pub max_abs_pull: f64,
}

impl Q1Shift {
    /// (s − model)/σ_s.
    pub fn pull_model(&self) -> f64 {
        let (s, e) = self.fit.slope();
        (s - self.model_slope) / e
    }
    /// (s − truth)/σ_s.
    pub fn pull_truth(&self) -> f64 {
        let (s, e) = self.fit.slope();
        (s - self.truth_fit.slope().0) / e
    }
    /// Passes when the fitted shift agrees with the model's within max_abs_pull σ.
    pub fn passes(&self) -> bool {
        self.pull_model().abs() <= self.max_abs_pull
    }
}

/// q1 of the scan `r` of set-up `s` (whole: its per-pixel data present), as
/// [`ScanResult::q1`] holds it.
pub fn scan_point(
    setup: &CampaignSetup,
    s: &ScanSetup,
    r: &ScanResult,
) -> std::result::Result<Q1Point, String> {
    point(setup, s, r).map_err(|e| e.to_string())
}

fn point(setup: &CampaignSetup, s: &ScanSetup, r: &ScanResult) -> Result<Q1Point> {
    let dynamic = s.partition.dynamic().labels();
    let use_px: Vec<bool> = (0..s.q_map.len())
        .map(|p| s.valid[p] && dynamic[p] > 0 && s.kossel_transmission[p] >= KOSSEL_MASK)
        .collect();
    let measured = &r.intensity.scattering_2d;
    if measured.len() != use_px.len() {
        return Err(Error::invalid(
            &s.label,
            "the per-pixel intensity does not cover the region (sharded run)",
        ));
    }
    let expected: Vec<f64> = s
        .scene
        .mean_counts
        .iter()
        .zip(&s.efficiency)
        .map(|(m, e)| m * e)
        .collect();
    let (qc, y, e) = profile(&s.q_map, measured, &use_px, N_Q_BINS);
    let (qt, yt, _) = profile(&s.q_map, &expected, &use_px, N_Q_BINS);
    if qt.len() != qc.len() {
        return Err(Error::invalid(
            &s.label,
            "q bins differ between data and truth",
        ));
    }
    let span = |r: Result<(f64, f64)>| {
        r.map_err(|e| {
            let (lo, hi) = (
                qc.first().copied().unwrap_or(f64::NAN),
                qc.last().copied().unwrap_or(f64::NAN),
            );
            Error::invalid(
                &s.label,
                format!(
                    "the region's q bins span {lo:.4}–{hi:.4} Å⁻¹ ({:.3} Å⁻¹), too little of the \
                     peak to locate it: {e}",
                    hi - lo
                ),
            )
        })
    };
    let (v, sg) = span(fit_q1(&qc, &y, &e))?;
    let (t, _) = span(fit_q1(&qt, &yt, &e))?;
    let resp = &setup.sample.campaign.response;
    Ok(Q1Point {
        label: s.label.clone(),
        pressure_gpa: s.isobar.pressure_gpa,
        value: v,
        sigma: sg,
        truth: t,
        model: resp.q1_inv_angstrom_at_0gpa
            + resp.q1_shift_inv_angstrom_per_gpa * s.isobar.pressure_gpa,
        n_pixels: use_px.iter().filter(|&&u| u).count(),
    })
}

/// q1 per scan (each scan's [`ScanResult::q1`], else fitted from the set-up) and the shift
/// over the campaign; Err (with why) when a scan's q1 or the line could not be fitted.
pub fn q1_shift(
    setup: &CampaignSetup,
    scans: &[ScanResult],
) -> std::result::Result<Q1Shift, String> {
    let mut points = Vec::new();
    for r in scans {
        let Some(s) = setup.scans.iter().find(|s| s.index == r.index) else {
            continue;
        };
        points.push(match &r.q1 {
            Some(q) => q.clone()?,
            None if setup.deferred => {
                return Err(format!("{}: q1 was not fitted during the run", r.label))
            }
            None => scan_point(setup, s, r)?,
        });
    }
    let line = |y: &[f64], e: &[f64], what: &str| {
        poly_fit(&points_p(&points), y, e, 1, what).map_err(|e| e.to_string())
    };
    let v: Vec<f64> = points.iter().map(|x| x.value).collect();
    let t: Vec<f64> = points.iter().map(|x| x.truth).collect();
    let e: Vec<f64> = points.iter().map(|x| x.sigma).collect();
    let fit = line(&v, &e, "q1(P) line")?;
    let truth_fit = line(&t, &e, "q1(P) line of the truth")?;
    Ok(Q1Shift {
        points,
        fit,
        truth_fit,
        model_slope: setup.sample.campaign.response.q1_shift_inv_angstrom_per_gpa,
        max_abs_pull: setup.config.tolerances.max_abs_pull,
    })
}

fn points_p(points: &[Q1Point]) -> Vec<f64> {
    points.iter().map(|x| x.pressure_gpa).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_position_recovered_from_an_exact_profile() {
        // A Gaussian FSDP (FWHM 0.35) on a sloped background, sampled across a window
        // narrower than the peak (as the Pt strip is): the fit returns q1 exactly.
        let q1 = 2.8862;
        let qc: Vec<f64> = (0..24).map(|i| 2.73 + 0.0135 * (i as f64 + 0.5)).collect();
        let y: Vec<f64> = qc
            .iter()
            .map(|q| {
                0.03 + 0.01 * (q - 2.9)
                    + 0.05 * (-FOUR_LN2 * (q - q1).powi(2) / 0.35f64.powi(2)).exp()
            })
            .collect();
        let e = vec![1e-4; y.len()];
        let (v, s) = fit_q1(&qc, &y, &e).unwrap();
        assert!((v - q1).abs() < 1e-8, "{v}");
        assert!(s > 0.0 && s < 0.01, "{s}");
    }

    #[test]
    fn profile_means_and_errors() {
        let q = [1.0, 1.1, 1.9, 2.0, 1.5];
        let v = [1.0, 3.0, 5.0, 7.0, 100.0];
        let (qc, m, e) = profile(&q, &v, &[true, true, true, true, false], 2);
        assert_eq!(m, vec![2.0, 6.0]);
        assert!((qc[0] - 1.05).abs() < 1e-12 && (qc[1] - 1.95).abs() < 1e-12);
        // sd of {1, 3} = sqrt(2), over sqrt(2) pixels → 1.
        assert!((e[0] - 1.0).abs() < 1e-12);
    }
}
