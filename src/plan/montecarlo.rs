//! Monte Carlo with the twin itself: seeded repeats of simulate → correlate → fit at one
//! [`Setting`], and the spread of the fitted parameters.
//!
//! Input: a [`Setting`] and [`McOptions`] (repeats, seed, simulated pixels). Output: an
//! [`McResult`]: the standard deviation over repeats of ln τ̂ (the relative error of τ), of
//! ĉ/c and of β̂, rescaled to the setting's pixel count, with the sampling uncertainty of that
//! spread and the failed fits.
//!
//! Each repeat simulates `sim_pixels` independent pixels of a uniform scene (ideal detector,
//! one-mode form, stationary KWW dynamics; `speckle::Simulator`, grid method), correlates them
//! as one q-bin with the event correlator (symmetric estimator, multi-tau with `num_bufs`) and
//! fits KWW by weighted Levenberg–Marquardt with the correlator's g2 errors, fixing the
//! parameters the setting does not free at their true values (baseline 1).
//!
//! **Reduced pixel counts.** The pixels of a q-bin are independent and identically
//! distributed, and every g2 sum is a sum over pixels, so the covariance of the g2 estimates -
//! and, to first order in the errors, of the fitted parameters - scales exactly as 1/N_pix.
//! The Monte Carlo therefore simulates N_sim ≤ N_pix pixels, chosen so that the predicted
//! σ(ln τ) at N_sim is about `target_reduced_sigma` (0.02: small enough that the fit stays in
//! its linear regime, large enough to be cheap), and multiplies every spread by
//! sqrt(N_sim/N_pix). What this cannot capture is the nonlinearity of the fit at the full
//! pixel count, which is smaller still; biases do not rescale and are reported at N_sim.
//!
//! Repeat i draws its seed from `rng::stream(subseed(seed, "plan-mc"), i)`; repeats run in
//! parallel, each single-threaded, so results do not depend on the thread count.
//!
//! Reference: DESIGN.md §7; the estimators of DESIGN.md §5 and the fit of §6.

use super::fisher::{predict, Setting};
use crate::correlate::{Estimator, EventCorrelator, LagSchedule};
use crate::data::QPartition;
use crate::error::{Error, Result};
use crate::fit::{fit_curve, FitOptions, Kww};
use crate::model::Dynamics;
use crate::speckle::{Exposure, GeneratorKind, Method, Scene, SimOptions, Simulator};
use rand::Rng;
use rayon::prelude::*;
use serde::Serialize;

/// Monte Carlo options.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McOptions {
    /// Seeded repeats (≥ 10; ≥ 100 for a ±20 % comparison).
    pub repeats: usize,
    /// Seed.
    pub seed: u64,
    /// Simulated pixels (None: chosen from `target_reduced_sigma`).
    pub sim_pixels: Option<usize>,
    /// Predicted σ(ln τ) aimed at when choosing the simulated pixel count.
    pub target_reduced_sigma: f64,
    /// Fewest simulated pixels (the g2 errors come from the spread over pixels).
    pub min_pixels: usize,
}

impl Default for McOptions {
    fn default() -> Self {
        McOptions {
            repeats: 100,
            seed: 0,
            sim_pixels: None,
            target_reduced_sigma: 0.02,
            min_pixels: 64,
        }
    }
}

/// Fitted values of one repeat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McFit {
    /// ln(τ̂/τ).
    pub ln_tau_ratio: f64,
    /// ĉ/c.
    pub contrast_ratio: f64,
    /// β̂.
    pub kww_exponent: f64,
}

/// Spread of the fitted parameters over repeats.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct McResult {
    /// Repeats run.
    pub repeats: usize,
    /// Repeats whose fit failed (left out of the spreads).
    pub failed: usize,
    /// Pixels simulated per repeat.
    pub sim_pixels: usize,
    /// sqrt(sim_pixels / bin_pixels): the factor applied to every spread.
    pub pixel_scale: f64,
    /// σ(ln τ̂) at the setting's pixel count (relative error of τ).
    pub sigma_ln_tau: f64,
    /// Relative 1σ uncertainty of `sigma_ln_tau` from the finite repeats: 1/sqrt(2(n-1)).
    pub sigma_rel_uncertainty: f64,
    /// Relative error of ĉ at the setting's pixel count (None when fixed).
    pub rel_contrast: Option<f64>,
    /// Absolute error of β̂ at the setting's pixel count (None when fixed).
    pub sigma_kww_exponent: Option<f64>,
    /// Mean ln(τ̂/τ) at `sim_pixels` (bias; not rescaled).
    pub mean_ln_tau_ratio: f64,
    /// Photons simulated per repeat.
    pub photons_per_repeat: f64,
}

fn sd(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
}

/// The pixel count the Monte Carlo simulates for a setting.
pub fn sim_pixels_for(s: &Setting, o: &McOptions) -> Result<usize> {
    if let Some(n) = o.sim_pixels {
        if n == 0 || n as f64 > s.bin_pixels {
            return Err(Error::out_of_range(
                "Monte Carlo",
                "sim_pixels",
                n,
                format!("1..={}", s.bin_pixels),
            ));
        }
        return Ok(n);
    }
    let p = predict(s)?;
    let want = s.bin_pixels * (p.sigma_ln_tau / o.target_reduced_sigma).powi(2);
    Ok((want.ceil() as usize)
        .max(o.min_pixels)
        .min(s.bin_pixels as usize)
        .max(1))
}

/// Simulates, correlates and fits one repeat with `n_pix` pixels and seed `seed`.
pub fn one_repeat(s: &Setting, n_pix: usize, seed: u64) -> Result<Option<McFit>> {
    let scene = Scene::uniform(1, n_pix, s.mean_count(), s.contrast, 1.0);
    let dynamics = Dynamics::stationary(s.kww_exponent, s.tau_s)?;
    let exposure = Exposure {
        n_frames: s.n_frames,
        frame_time_s: s.frame_time_s,
    };
    let options = SimOptions {
        generator: GeneratorKind::Circulant,
        method: Method::Grid {
            du: None,
            tolerance: 2e-3,
        },
        // One block: the repeats are the parallel unit.
        block_pixels: n_pix,
        seed,
    };
    let sim = Simulator::new(scene, dynamics, exposure, options)?;
    let events = sim.events()?;
    let part = QPartition::from_labels(1, n_pix, vec![1; n_pix], "plan Monte Carlo")?;
    let sched = LagSchedule::multi_tau(s.n_frames, s.num_bufs)?;
    let mut corr = EventCorrelator::new(&part, &sched, s.n_frames);
    corr.push_events(&events)?;
    let g2 = corr.finish(Estimator::Symmetric)?;
    let delays = g2.delay_s(s.frame_time_s);
    let (mut x, mut y, mut e) = (Vec::new(), Vec::new(), Vec::new());
    for (k, &t) in delays.iter().enumerate() {
        let (v, err) = (g2.g2[[k, 0]], g2.g2_err[[k, 0]]);
        if t > 0.0 && v.is_finite() && err.is_finite() && err > 0.0 {
            x.push(t);
            y.push(v);
            e.push(err);
        }
    }
    let mut opts = FitOptions::default();
    if !s.free.baseline {
        opts = opts.fix("baseline", 1.0);
    }
    if !s.free.contrast {
        opts = opts.fix("contrast", s.contrast);
    }
    if !s.free.kww_exponent {
        opts = opts.fix("kww_exponent", s.kww_exponent);
    }
    let rep = fit_curve(&Kww, &x, &y, &e, &opts)?;
    Ok(rep.fitted().map(|f| McFit {
        ln_tau_ratio: (f.values[2] / s.tau_s).ln(),
        contrast_ratio: f.values[1] / s.contrast,
        kww_exponent: f.values[3],
    }))
}

/// Runs the Monte Carlo for one setting.
pub fn monte_carlo(s: &Setting, o: &McOptions) -> Result<McResult> {
    s.validate()?;
    if o.repeats < 10 {
        return Err(Error::out_of_range(
            "Monte Carlo",
            "repeats",
            o.repeats,
            "≥ 10",
        ));
    }
    let n_pix = sim_pixels_for(s, o)?;
    let base = crate::rng::subseed(o.seed, "plan-mc");
    let fits: Vec<Option<McFit>> = (0..o.repeats)
        .into_par_iter()
        .map(|i| {
            let seed = crate::rng::stream(base, i as u64).next_u64();
            one_repeat(s, n_pix, seed)
        })
        .collect::<Result<_>>()?;
    let ok: Vec<McFit> = fits.iter().flatten().copied().collect();
    if ok.len() < 3 {
        return Err(Error::invalid(
            "Monte Carlo",
            format!(
                "only {} of {} fits converged: the setting is far outside the fit's reach",
                ok.len(),
                o.repeats
            ),
        ));
    }
    let scale = (n_pix as f64 / s.bin_pixels).sqrt();
    let lt: Vec<f64> = ok.iter().map(|f| f.ln_tau_ratio).collect();
    let cr: Vec<f64> = ok.iter().map(|f| f.contrast_ratio).collect();
    let kb: Vec<f64> = ok.iter().map(|f| f.kww_exponent).collect();
    Ok(McResult {
        repeats: o.repeats,
        failed: o.repeats - ok.len(),
        sim_pixels: n_pix,
        pixel_scale: scale,
        sigma_ln_tau: sd(&lt) * scale,
        sigma_rel_uncertainty: 1.0 / (2.0 * (ok.len() as f64 - 1.0)).sqrt(),
        rel_contrast: s.free.contrast.then(|| sd(&cr) * scale),
        sigma_kww_exponent: s.free.kww_exponent.then(|| sd(&kb) * scale),
        mean_ln_tau_ratio: lt.iter().sum::<f64>() / lt.len() as f64,
        photons_per_repeat: n_pix as f64 * s.mean_count() * s.n_frames as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fisher::FreeParams;

    /// A CI-sized Fisher-vs-MC check: n̄ = 0.03, T/τ = 20, Δt = τ/20, 100 repeats.
    #[test]
    fn fisher_matches_monte_carlo_small() {
        let s = Setting {
            tau_s: 4.0,
            kww_exponent: 1.8,
            contrast: 0.2,
            rate_per_pixel_hz: 0.15,
            bin_pixels: 1e6,
            frame_time_s: 0.2,
            n_frames: 400,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        };
        let p = predict(&s).unwrap();
        // σ_reduced = 0.08 keeps this CI-sized (~15 s); c = 0.2 keeps the fit linear there.
        let o = McOptions {
            target_reduced_sigma: 0.08,
            ..Default::default()
        };
        let mc = monte_carlo(&s, &o).unwrap();
        eprintln!("{p:?}\n{mc:?}");
        // ±20 % is 2.8σ of the spread's sampling error at 100 repeats (1/sqrt(198) = 7.1 %).
        let r = mc.sigma_ln_tau / p.sigma_ln_tau;
        assert!((r - 1.0).abs() < 0.2, "MC/Fisher = {r}");
        assert!(mc.failed <= 2);
    }

    #[test]
    fn reproducible_and_checked() {
        let s = Setting {
            tau_s: 4.0,
            kww_exponent: 1.5,
            contrast: 0.2,
            rate_per_pixel_hz: 0.15,
            bin_pixels: 500.0,
            frame_time_s: 0.2,
            n_frames: 200,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        };
        let o = McOptions {
            repeats: 10,
            ..Default::default()
        };
        let a = monte_carlo(&s, &o).unwrap();
        let b = monte_carlo(&s, &o).unwrap();
        assert_eq!(a, b);
        let bad = McOptions {
            sim_pixels: Some(1000),
            ..o
        };
        assert!(monte_carlo(&s, &bad).is_err());
        assert!(monte_carlo(&s, &McOptions { repeats: 3, ..o }).is_err());
    }
}
