//! The noise floor of the heterogeneity statistic ΔC: one formula, used by the twin's scan
//! analysis and by the planner ([`super::floor`]).
//!
//! Input: the q-bin's pixel count N_pix, the mean count per pixel per (two-time) frame n̄, the
//! contrast c, the ISF f = |f(δt)| at the delay where ΔC is taken (f = e^-1 at δt = τ for
//! KWW) and, for [`delta_c_floor_for`], the fraction q of values the width must hold and the
//! number M of two-time values on the diagonal. Output: σ_C, the spread of single two-time
//! values C(t, t+δt) for homogeneous dynamics, and ΔC_floor = w_q(M) σ_C, the expected
//! narrowest width holding a fraction q of M independent Gaussian values of that spread: the
//! ΔC (as computed by `correlate::heterogeneity::delta_c`) that pure counting and speckle noise
//! give. For M → ∞ and q = 0.9, w = 3.29 (2 × 1.645).
//!
//! **σ_C.** The correlators normalise C(t1, t2) = ⟨x1 x2⟩_p / (⟨x1⟩_p ⟨x2⟩_p) by the measured
//! bin means of the two frames. With y = x/n̄ - 1 per pixel (Var y = c + 1/n̄: speckle plus
//! shot noise), to first order C - 1 = ⟨y1 y2⟩_p, whose variance for one-mode Gaussian speckle
//! and Poisson counts is
//!
//! σ_C² = [(1 + c f²)/n̄² + 2c/n̄ + c²(1 + f⁴)] / N_pix.
//!
//! docs/model.md §5 quotes (1 + c f²)/(N_pix n̄²) + 2(1 + c)/(N_pix n̄): that is the spread of C
//! normalised by the *true* mean intensity, where the fluctuations of the bin means add
//! 2/(N_pix n̄) (Poisson) and the linear speckle terms; dividing by the measured means cancels
//! them. It is high by sqrt(1 + 2n̄) at low c (tested below: 1.1× at n̄ = 0.1, 2.5× at
//! n̄ = 2.8, the Pt planner's binning).
//!
//! **w_q(M).** The narrowest interval holding ⌈qM⌉ of M values is narrower than the population's
//! central interval: 8 % at M = 40, 1 % at M = 2000. w_q(M) is the mean of that width over
//! seeded draws of M standard normal values (fixed seed: deterministic), M capped at 20 000.
//! Neighbouring values share the speckle field only through the c² terms, so they are treated as
//! independent.
//!
//! Reference: docs/model.md §5; low-count variance of intensity products after Jakeman (1974) and
//! Lumma et al., Rev. Sci. Instrum. 71, 3274 (2000).

use rand_distr::{Distribution, StandardNormal};
use xpcs_core::error::{Error, Result};

/// Width of the central 90 % of a Gaussian in units of σ (2 × 1.6449).
pub const GAUSS_90_WIDTH_SIGMAS: f64 = 3.29;

/// σ_C and the ΔC floor.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DeltaCFloor {
    /// Standard deviation of single two-time values C(t, t+δt) (dimensionless).
    pub sigma_c: f64,
    /// ΔC floor = w_q(M) σ_C.
    pub floor: f64,
    /// w_q(M): the expected narrowest width holding the fraction q of M values, in σ.
    pub width_sigmas: f64,
}

/// σ_C of a single two-time value for `n_pix` pixels at `mean_count` photons per pixel per
/// frame, contrast `contrast` and ISF `isf` (measured-mean normalisation; module docs).
pub fn sigma_c(n_pix: usize, mean_count: f64, contrast: f64, isf: f64) -> Result<f64> {
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
    let (n, c, f2) = (mean_count, contrast, isf * isf);
    let var = ((1.0 + c * f2) / (n * n) + 2.0 * c / n + c * c * (1.0 + f2 * f2)) / n_pix as f64;
    Ok(var.sqrt())
}

/// Standard normal quantile Φ⁻¹(p) by bisection on erf (exact to 1e-12).
fn normal_quantile(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if 0.5 * (1.0 + libm::erf(mid / std::f64::consts::SQRT_2)) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// w_q(M): the expected narrowest width holding ⌈qM⌉ of M independent standard normal values
/// (None: M → ∞, 2Φ⁻¹((1 + q)/2)).
pub fn narrowest_width_sigmas(fraction: f64, n_values: Option<usize>) -> Result<f64> {
    if !(fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::out_of_range(
            "ΔC noise floor",
            "fraction",
            fraction,
            "(0, 1]",
        ));
    }
    let Some(m) = n_values else {
        return Ok(2.0 * normal_quantile(0.5 * (1.0 + fraction)));
    };
    if m < 2 {
        return Err(Error::out_of_range(
            "ΔC noise floor",
            "n_values",
            m,
            ">= 2 two-time values",
        ));
    }
    let m = m.min(20_000);
    let keep = ((fraction * m as f64).ceil() as usize).clamp(1, m);
    // ≥ 2·10⁵ values in all: the mean width's relative sampling error stays below 0.5 %.
    let draws = (200_000 / m).clamp(64, 4000);
    let mut rng = xpcs_sim::rng::stream(xpcs_sim::rng::subseed(0, "delta-c-width"), m as u64);
    let mut v = vec![0f64; m];
    let mut total = 0.0;
    for _ in 0..draws {
        for x in v.iter_mut() {
            *x = StandardNormal.sample(&mut rng);
        }
        v.sort_by(f64::total_cmp);
        total += (0..=m - keep)
            .map(|i| v[i + keep - 1] - v[i])
            .fold(f64::INFINITY, f64::min);
    }
    Ok(total / draws as f64)
}

/// The ΔC noise floor for M → ∞ values and q = 0.9 (3.29 σ_C): see [`delta_c_floor_for`].
pub fn delta_c_floor(
    n_pix: usize,
    mean_count: f64,
    contrast: f64,
    isf: f64,
) -> Result<DeltaCFloor> {
    let sigma_c = sigma_c(n_pix, mean_count, contrast, isf)?;
    Ok(DeltaCFloor {
        sigma_c,
        floor: GAUSS_90_WIDTH_SIGMAS * sigma_c,
        width_sigmas: GAUSS_90_WIDTH_SIGMAS,
    })
}

/// The ΔC noise floor for `n_pix` pixels at `mean_count` photons per pixel per two-time frame,
/// contrast `contrast`, ISF `isf` at the delay, width fraction `fraction` and `n_values`
/// two-time values on the diagonal (None: M → ∞).
pub fn delta_c_floor_for(
    n_pix: usize,
    mean_count: f64,
    contrast: f64,
    isf: f64,
    fraction: f64,
    n_values: Option<usize>,
) -> Result<DeltaCFloor> {
    let sigma_c = sigma_c(n_pix, mean_count, contrast, isf)?;
    let w = narrowest_width_sigmas(fraction, n_values)?;
    Ok(DeltaCFloor {
        sigma_c,
        floor: w * sigma_c,
        width_sigmas: w,
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
        // c = 0: 1/(N n̄²) = 100/1000.
        assert!((f.sigma_c - (0.1f64).sqrt()).abs() < 1e-15);
        assert!((f.floor - 3.29 * f.sigma_c).abs() < 1e-15);
        // c = 1, f = 1, n̄ = 1: (2 + 2 + 2)/N.
        let g = delta_c_floor(6, 1.0, 1.0, 1.0).unwrap();
        assert!((g.sigma_c - 1.0).abs() < 1e-15);
        // σ_C ∝ 1/sqrt(N_pix).
        let h = delta_c_floor(4000, 0.1, 0.0, 0.0).unwrap();
        assert!((f.sigma_c / h.sigma_c - 2.0).abs() < 1e-12);
        assert!(delta_c_floor(0, 0.1, 0.1, 0.3).is_err());
        assert!(delta_c_floor(10, 0.0, 0.1, 0.3).is_err());
        assert!(delta_c_floor(10, 0.1, 1.5, 0.3).is_err());
        assert!(delta_c_floor(10, 0.1, 0.1, f64::NAN).is_err());
        assert!(delta_c_floor_for(10, 0.1, 0.1, 0.3, 0.0, None).is_err());
        assert!(delta_c_floor_for(10, 0.1, 0.1, 0.3, 0.9, Some(1)).is_err());
    }

    #[test]
    fn width_factor() {
        // Asymptote: 2 × 1.6449 for 90 %, 2 × 0.8416 for 60 %.
        let w90 = narrowest_width_sigmas(0.9, None).unwrap();
        assert!((w90 - 3.28971).abs() < 1e-4, "{w90}");
        assert!((narrowest_width_sigmas(0.6, None).unwrap() - 1.68324).abs() < 1e-4);
        // Finite M: below the asymptote, approaching it as M grows; deterministic.
        let w40 = narrowest_width_sigmas(0.9, Some(40)).unwrap();
        let w4000 = narrowest_width_sigmas(0.9, Some(4000)).unwrap();
        assert!(
            w40 < w4000 && w4000 < w90 && w4000 > 0.98 * w90,
            "{w40} {w4000}"
        );
        assert_eq!(w40, narrowest_width_sigmas(0.9, Some(40)).unwrap());
    }

    #[test]
    fn speckle_and_poisson_monte_carlo() {
        // One-mode speckle (I = 1 - √c + √c|E|², E complex Gaussian with correlation f between
        // the two frames) and Poisson counts; C = <x1 x2>_p/(<x1>_p <x2>_p) with the measured
        // means. The sample std over 3000 repeats has relative error 1/sqrt(6000) = 1.3 %;
        // the neglected higher-order terms are O(1/(N n̄)) < 1 %: ±5 % is ≈ 3σ.
        // The docs/model.md §5 form (true-mean normalisation) is also checked, to show why it is
        // high: it is the spread with true means, larger by the bin-mean fluctuations.
        for (n_pix, nbar, c, f) in [
            (400usize, 0.5f64, 0.0f64, 0.0f64),
            (400, 2.8, 0.025, 0.37),
            (200, 0.3, 0.3, 0.6),
        ] {
            let reps = 3000usize;
            let (mut true_mean, mut measured) = (Vec::new(), Vec::new());
            for r in 0..reps {
                let mut rng = rng::stream(21, r as u64);
                let (mut s12, mut s1, mut s2) = (0.0, 0.0, 0.0);
                for _ in 0..n_pix {
                    let g = |rng: &mut xpcs_sim::rng::TwinRng| -> (f64, f64) {
                        let a: f64 = StandardNormal.sample(rng);
                        let b: f64 = StandardNormal.sample(rng);
                        (a / 2f64.sqrt(), b / 2f64.sqrt())
                    };
                    let (ar, ai) = g(&mut rng);
                    let (nr, ni) = g(&mut rng);
                    let k = (1.0 - f * f).sqrt();
                    let (br, bi) = (f * ar + k * nr, f * ai + k * ni);
                    let i1 = 1.0 - c.sqrt() + c.sqrt() * (ar * ar + ai * ai);
                    let i2 = 1.0 - c.sqrt() + c.sqrt() * (br * br + bi * bi);
                    let a: f64 = Poisson::new(nbar * i1).unwrap().sample(&mut rng);
                    let b: f64 = Poisson::new(nbar * i2).unwrap().sample(&mut rng);
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
            let (s_true, s_meas) = (sd(&true_mean), sd(&measured));
            let formula = sigma_c(n_pix, nbar, c, f).unwrap();
            assert!(
                (s_meas / formula - 1.0).abs() < 0.05,
                "n̄ {nbar} c {c}: measured-mean {s_meas} vs {formula}"
            );
            let n = n_pix as f64;
            let design =
                ((1.0 + c * f * f) / (n * nbar * nbar) + 2.0 * (1.0 + c) / (n * nbar)).sqrt();
            eprintln!("n̄ {nbar} c {c}: measured {s_meas:.3e} formula {formula:.3e}; true-mean {s_true:.3e} textbook {design:.3e}");
            if c == 0.0 {
                // Pure Poisson: the textbook form is exactly the true-mean spread.
                assert!((s_true / design - 1.0).abs() < 0.05, "{s_true} vs {design}");
            }
            // The textbook form overstates what the correlators see.
            assert!(design > 1.05 * s_meas);
        }
    }
}
