//! The analytic noise floor of the heterogeneity statistic ΔC.
//!
//! Input: the q-bin's pixel count N_pix, the mean count per pixel per frame n̄, the contrast c
//! and the ISF f = |f(δt)| at the delay where ΔC is taken (f = e^-1 at δt = τ for KWW).
//! Output: σ_C, the spread of single two-time values C(t, t+δt) for homogeneous dynamics, and
//! ΔC_floor = 3.29 σ_C, the width that contains 90 % of a Gaussian (2 × 1.645 σ): the ΔC
//! (smallest width containing 90 % of the values, computed in `correlate::heterogeneity`) that
//! pure counting and speckle noise would give.
//!
//! σ_C² ≈ (1 + c f²)/(N_pix n̄²) + 2(1 + c)/(N_pix n̄)   (DESIGN.md §5)
//!
//! This is the spread of C normalised by the *true* mean intensity. Normalised by the
//! measured bin means of the two frames (as `correlate` does), the terms linear in the
//! intensity fluctuations cancel to first order: for pure Poisson counts (c = 0) the spread is
//! 1/(N_pix n̄²) instead of (1/n̄² + 2/n̄)/N_pix (tested below by Monte Carlo), so the formula
//! is conservative by up to sqrt(1 + 2n̄) there. That is one more reason to also quote the floor
//! from a null simulation with the same binning, as DESIGN.md §5 asks.
//!
//! Reference: DESIGN.md §5; low-count variance of intensity products after Jakeman (1974) and
//! Lumma et al., Rev. Sci. Instrum. 71, 3274 (2000).

use crate::error::{Error, Result};

/// Width of the central 90 % of a Gaussian in units of σ (2 × 1.6449).
pub const GAUSS_90_WIDTH_SIGMAS: f64 = 3.29;

/// σ_C and the ΔC floor.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DeltaCFloor {
    /// Standard deviation of single two-time values C(t, t+δt) (dimensionless).
    pub sigma_c: f64,
    /// ΔC floor = 3.29 σ_C.
    pub floor: f64,
}

/// The analytic ΔC noise floor (DESIGN.md §5) for `n_pix` pixels at `mean_count` photons per
/// pixel per frame, contrast `contrast` and ISF `isf` at the chosen delay.
pub fn delta_c_floor(
    n_pix: usize,
    mean_count: f64,
    contrast: f64,
    isf: f64,
) -> Result<DeltaCFloor> {
    let origin = "ΔC noise floor";
    if n_pix == 0 {
        return Err(Error::out_of_range(origin, "n_pix", n_pix, ">= 1"));
    }
    if !(mean_count.is_finite() && mean_count > 0.0) {
        return Err(Error::out_of_range(
            origin,
            "mean_count",
            mean_count,
            "> 0 photons/pixel/frame",
        ));
    }
    if !(contrast.is_finite() && (0.0..=1.0).contains(&contrast)) {
        return Err(Error::out_of_range(origin, "contrast", contrast, "[0, 1]"));
    }
    if !(isf.is_finite() && (-1.0..=1.0).contains(&isf)) {
        return Err(Error::out_of_range(origin, "isf", isf, "[-1, 1]"));
    }
    let n = n_pix as f64;
    let var = (1.0 + contrast * isf * isf) / (n * mean_count * mean_count)
        + 2.0 * (1.0 + contrast) / (n * mean_count);
    let sigma_c = var.sqrt();
    Ok(DeltaCFloor {
        sigma_c,
        floor: GAUSS_90_WIDTH_SIGMAS * sigma_c,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;
    use rand_distr::{Distribution, Poisson};

    #[test]
    fn limits_and_bad_input() {
        let f = delta_c_floor(1000, 0.1, 0.0, 0.0).unwrap();
        // c = 0: (1/n̄² + 2/n̄)/N = (100 + 20)/1000.
        assert!((f.sigma_c - (0.12f64).sqrt()).abs() < 1e-15);
        assert!((f.floor - 3.29 * f.sigma_c).abs() < 1e-15);
        // σ_C ∝ 1/sqrt(N_pix).
        let g = delta_c_floor(4000, 0.1, 0.0, 0.0).unwrap();
        assert!((f.sigma_c / g.sigma_c - 2.0).abs() < 1e-12);
        // Low counts: the 1/n̄² term dominates.
        let lo = delta_c_floor(1, 1e-3, 0.0, 0.0).unwrap();
        assert!((lo.sigma_c * 1e-3 - 1.0).abs() < 3e-3);
        assert!(delta_c_floor(0, 0.1, 0.1, 0.3).is_err());
        assert!(delta_c_floor(10, 0.0, 0.1, 0.3).is_err());
        assert!(delta_c_floor(10, 0.1, 1.5, 0.3).is_err());
        assert!(delta_c_floor(10, 0.1, 0.1, f64::NAN).is_err());
    }

    #[test]
    fn poisson_monte_carlo_true_and_measured_mean_normalisation() {
        // Pure Poisson counts (c = 0): C = <I1 I2>_p / (m1 m2) between two independent frames.
        let (n_pix, nbar, reps) = (400usize, 0.5, 3000usize);
        let pois = Poisson::new(nbar).unwrap();
        let (mut true_mean, mut measured) = (Vec::new(), Vec::new());
        for r in 0..reps {
            let mut rng = rng::stream(21, r as u64);
            let (mut s12, mut s1, mut s2) = (0.0, 0.0, 0.0);
            for _ in 0..n_pix {
                let a: f64 = pois.sample(&mut rng);
                let b: f64 = pois.sample(&mut rng);
                s12 += a * b;
                s1 += a;
                s2 += b;
            }
            let n = n_pix as f64;
            true_mean.push(s12 / n / (nbar * nbar));
            measured.push((s12 / n) / ((s1 / n) * (s2 / n)));
        }
        let sd = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        };
        let formula = delta_c_floor(n_pix, nbar, 0.0, 0.0).unwrap().sigma_c;
        // A sample std over 3000 repeats has relative error 1/sqrt(2·3000) = 1.3 %; allow 5 %
        // (≈ 4σ) — plus the O(1/(N n̄)) higher-order terms (0.5 %) for the measured-mean case.
        let (s_true, s_meas) = (sd(&true_mean), sd(&measured));
        assert!(
            (s_true / formula - 1.0).abs() < 0.05,
            "true-mean {s_true} vs {formula}"
        );
        let first_order = (1.0 / (n_pix as f64 * nbar * nbar)).sqrt();
        assert!(
            (s_meas / first_order - 1.0).abs() < 0.05,
            "measured {s_meas} vs {first_order}"
        );
    }
}
