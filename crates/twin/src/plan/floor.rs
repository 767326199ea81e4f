//! The heterogeneity noise floor ΔC_floor of a setting, by formula and by null simulation, and
//! the smallest avalanche it lets through.
//!
//! Input: a [`Setting`] and the two-time binning (raw frames per two-time frame b). Output: a
//! [`FloorEstimate`]: ΔC_floor from the docs/model.md §5 formula (`plan::noise`, intensities
//! normalised by their true mean), from the measured-mean formula below, and optionally from a
//! null simulation (homogeneous stationary dynamics, same binning and delay), plus φ_min.
//!
//! ΔC is taken at δt = τ (the delay rounded to whole two-time frames). The formula is
//! `plan::noise::delta_c_floor_for` (the same one the twin's scan analysis uses):
//! σ_C² = [(1 + c f²)/n̄_b² + 2c/n̄_b + c²(1 + f⁴)]/N_pix with n̄_b = b n̄ (the correlators'
//! measured-mean normalisation), times w_0.9(M), the expected narrowest 90 % width of the
//! M = (two-time frames - delay) values in σ (3.29 for M → ∞, 8 % less at M = 40). Why the
//! docs/model.md §5 form was high: docs/planner.md and `plan::noise`.
//!
//! An avalanche of model B (a fraction φ of the field replaced) multiplies C - 1 across the
//! event by (1 - φ): the values C(t, t+τ) straddling it drop by c f(τ)² φ. It stands out of the
//! homogeneous spread when that drop exceeds ΔC_floor: φ_min = ΔC_floor / (c f(τ)²), with
//! f(τ) = e^-1 for KWW (above 1: not detectable at this setting).
//!
//! Null simulation: N_sim independent pixels (rescaled by sqrt(N_sim/N_pix), exact to first
//! order as for the Monte Carlo), C(t, t+d) = N Σ_p x_p(t) x_p(t+d) / (S(t) S(t+d)) on frames
//! binned by b, ΔC = the narrowest width holding 90 % of the values (the definition of
//! `correlate::heterogeneity::delta_c`), averaged over repeats.
//!
//! Reference: docs/model.md §5; Evenson et al., PRL 115, 175701 (2015) (avalanches).

use super::fisher::Setting;
use super::noise::delta_c_floor_for;
use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;
use xpcs_core::error::{Error, Result};
use xpcs_sim::model::Dynamics;
use xpcs_sim::speckle::{Exposure, GeneratorKind, Method, Scene, SimOptions, Simulator};

/// ΔC floor of a setting at one two-time binning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FloorEstimate {
    /// Raw frames per two-time frame b.
    pub bin_frames: usize,
    /// Delay of ΔC in two-time frames (≈ τ).
    pub delay_frames: usize,
    /// Mean photons per pixel per two-time frame n̄_b.
    pub mean_count: f64,
    /// Two-time values on the diagonal M.
    pub n_values: usize,
    /// σ_C of one two-time value.
    pub sigma_c: f64,
    /// ΔC_floor from the formula (`plan::noise::delta_c_floor_for`).
    pub formula: f64,
    /// ΔC_floor from null simulations (None if not run).
    pub null_simulation: Option<f64>,
    /// Smallest detectable avalanche fraction φ from the formula floor.
    pub phi_min: f64,
}

/// The delay in two-time frames closest to τ (≥ 1).
pub fn delay_frames(s: &Setting, bin_frames: usize) -> usize {
    ((s.tau_s / (s.frame_time_s * bin_frames as f64)).round() as usize).max(1)
}

/// The default two-time binning: τ spans about 10 two-time frames.
pub fn default_bin_frames(s: &Setting) -> usize {
    ((s.tau_s / (10.0 * s.frame_time_s)).floor() as usize).max(1)
}

/// Formula floors (no simulation).
pub fn floor_formula(s: &Setting, bin_frames: usize) -> Result<FloorEstimate> {
    s.validate()?;
    if bin_frames == 0 || bin_frames > s.n_frames / 2 {
        return Err(Error::out_of_range(
            "ΔC floor",
            "bin_frames",
            bin_frames,
            format!("1..={}", s.n_frames / 2),
        ));
    }
    let d = delay_frames(s, bin_frames);
    let n_bins = s.n_frames / bin_frames;
    if d + 2 > n_bins {
        return Err(Error::invalid(
            "ΔC floor",
            format!(
                "the scan holds {n_bins} two-time frames of {bin_frames} frames: too few for the \
                 delay {d} (≈ τ)"
            ),
        ));
    }
    let nb = s.mean_count() * bin_frames as f64;
    let dt = d as f64 * bin_frames as f64 * s.frame_time_s;
    let f = (-(dt / s.tau_s).powf(s.kww_exponent)).exp();
    let c = s.contrast;
    let m = n_bins - d;
    let fl = delta_c_floor_for(
        s.bin_pixels.round().max(1.0) as usize,
        nb,
        c.min(1.0),
        f,
        0.9,
        Some(m),
    )?;
    let formula = fl.floor;
    let f_tau = (-1.0f64).exp();
    Ok(FloorEstimate {
        bin_frames,
        delay_frames: d,
        mean_count: nb,
        n_values: m,
        sigma_c: fl.sigma_c,
        formula,
        null_simulation: None,
        phi_min: formula / (c * f_tau * f_tau),
    })
}

/// Width of the narrowest interval holding ⌈fraction·m⌉ of the m values (sorted in place).
pub fn narrowest_width(v: &mut [f64], fraction: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = ((fraction * v.len() as f64).ceil() as usize).clamp(1, v.len());
    (0..=v.len() - m)
        .map(|i| v[i + m - 1] - v[i])
        .fold(f64::INFINITY, f64::min)
}

/// The floor with a null simulation of `repeats` repeats of `sim_pixels` pixels.
pub fn floor_null(
    s: &Setting,
    bin_frames: usize,
    sim_pixels: usize,
    repeats: usize,
    seed: u64,
) -> Result<FloorEstimate> {
    let mut est = floor_formula(s, bin_frames)?;
    if sim_pixels == 0 || repeats == 0 {
        return Err(Error::out_of_range(
            "ΔC null simulation",
            "sim_pixels and repeats",
            sim_pixels.min(repeats),
            "≥ 1",
        ));
    }
    let n_bins = s.n_frames / bin_frames;
    let d = est.delay_frames;
    if d >= n_bins {
        return Err(Error::invalid(
            "ΔC null simulation",
            format!("the scan holds {n_bins} two-time frames, fewer than the delay {d}"),
        ));
    }
    let base = xpcs_sim::rng::subseed(seed, "plan-floor");
    let widths: Vec<f64> = (0..repeats)
        .into_par_iter()
        .map(|i| -> Result<f64> {
            let scene = Scene::uniform(1, sim_pixels, s.mean_count(), s.contrast, 1.0);
            let dynamics = Dynamics::stationary(s.kww_exponent, s.tau_s)?;
            let exposure = Exposure {
                n_frames: n_bins * bin_frames,
                frame_time_s: s.frame_time_s,
            };
            let options = SimOptions {
                generator: GeneratorKind::Circulant,
                method: Method::Grid {
                    du: None,
                    tolerance: 2e-3,
                },
                block_pixels: sim_pixels,
                seed: xpcs_sim::rng::stream(base, i as u64).next_u64(),
            };
            let ev = Simulator::new(scene, dynamics, exposure, options)?.events()?;
            // Binned counts per pixel (two-time frame, pixel), then the diagonal at d.
            let mut x = vec![0f64; n_bins * sim_pixels];
            let (off, fr, ct) = (ev.offsets(), ev.frames(), ev.counts());
            for p in 0..sim_pixels {
                for e in off[p] as usize..off[p + 1] as usize {
                    let b = fr[e] as usize / bin_frames;
                    x[b * sim_pixels + p] += ct[e] as f64;
                }
            }
            let sums: Vec<f64> = (0..n_bins)
                .map(|b| x[b * sim_pixels..(b + 1) * sim_pixels].iter().sum())
                .collect();
            let np = sim_pixels as f64;
            let mut vals: Vec<f64> = (0..n_bins - d)
                .filter(|&t| sums[t] > 0.0 && sums[t + d] > 0.0)
                .map(|t| {
                    let a = &x[t * sim_pixels..(t + 1) * sim_pixels];
                    let b = &x[(t + d) * sim_pixels..(t + d + 1) * sim_pixels];
                    let num: f64 = a.iter().zip(b).map(|(u, v)| u * v).sum();
                    np * num / (sums[t] * sums[t + d])
                })
                .collect();
            if vals.len() < 10 {
                return Err(Error::invalid(
                    "ΔC null simulation",
                    "fewer than 10 two-time values with photons",
                ));
            }
            Ok(narrowest_width(&mut vals, 0.9))
        })
        .collect::<Result<_>>()?;
    let mean = widths.iter().sum::<f64>() / widths.len() as f64;
    est.null_simulation = Some(mean * (sim_pixels as f64 / s.bin_pixels).sqrt());
    Ok(est)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fisher::FreeParams;
    use ndarray::Array2;

    fn setting() -> Setting {
        Setting {
            tau_s: 4.0,
            kww_exponent: 1.8,
            contrast: 0.05,
            rate_per_pixel_hz: 0.25,
            bin_pixels: 1e5,
            frame_time_s: 0.2,
            n_frames: 8000,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        }
    }

    #[test]
    fn narrowest_width_equals_the_correlator_definition() {
        // Same values on the diagonal of a map: correlate::heterogeneity::delta_c must agree.
        let n = 40;
        let c2 = Array2::from_shape_fn((n, n), |(a, b)| ((a * 7 + b * 3) % 11) as f64 * 0.1);
        let mut v: Vec<f64> = (0..n - 5).map(|t| c2[[t, t + 5]]).collect();
        let ours = narrowest_width(&mut v, 0.9);
        let theirs = xpcs_core::correlate::heterogeneity::delta_c(&c2, 5, 0.9).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn null_simulation_matches_formula() {
        // n̄_b = 0.05 × 2 = 0.1; 2000 two-time frames per repeat, 4 repeats, 1500 pixels: the
        // 90 % width of ~2000 values has a relative sampling error of ~3 %, averaged over 4
        // repeats ~1.5 %; w_0.9(M) carries the finite-sample bias. Tolerance ±15 % (the
        // target), i.e. far outside the noise: this is a test of the formula.
        let mut s = setting();
        s.n_frames = 4000;
        let e = floor_null(&s, 2, 1500, 4, 3).unwrap();
        let null = e.null_simulation.unwrap();
        eprintln!("{e:?}");
        assert!(
            (null / e.formula - 1.0).abs() < 0.15,
            "{null} vs {}",
            e.formula
        );
        assert!(e.phi_min > 0.0);
    }

    #[test]
    fn null_simulation_matches_formula_with_few_values() {
        // The Pt planner's setting (3.3 GPa): 1900 frames of 0.1 s binned by 37, so n̄_b = 2.8
        // and only M = 41 values at δt = τ. There the docs/model.md §5 form was 2.4× high and the
        // M → ∞ width 10 % high. The narrowest 90 % width of 41 values has a relative spread
        // of ~13 % per repeat, ~1.9 % over 48 repeats; ±15 % (the target) is > 5σ of that.
        let s = Setting {
            tau_s: 38.0,
            kww_exponent: 1.8,
            contrast: 0.025,
            rate_per_pixel_hz: 0.75,
            bin_pixels: 526336.0,
            frame_time_s: 0.1,
            n_frames: 1900,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        };
        let e = floor_null(&s, 37, 300, 48, 5).unwrap();
        let null = e.null_simulation.unwrap();
        eprintln!("{e:?}");
        assert_eq!(e.n_values, 41);
        assert!(
            (null / e.formula - 1.0).abs() < 0.15,
            "{null} vs {}",
            e.formula
        );
    }
}
