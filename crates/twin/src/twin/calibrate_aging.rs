//! Are the aging-law errors honest? Pull statistics of τ0, τ* and the aging rate 1/τ* over
//! seeded repeats of a campaign's aging scan, through the twin's whole chain.
//!
//! Input: a [`CampaignSetup`] (its scale and region of interest as loaded), the label of an
//! aging scan (e.g. `06-c6.3GPa` of `models/pt42-eiger.toml`), a number of repeats and a seed.
//! Repeat i runs that scan with the scan seed `seed::subseed(seed, "aging-repeat-i")` (new
//! speckle and photons; same detector, mask and dynamics) through [`run_scan`]: simulate →
//! counting chain → correlate → two-time map → age cuts → KWW fit per age → aging law, and
//! compares the aging law's τ0 and τ* (and the rate κ = 1/τ*, σ_κ = σ_τ*/τ*²) with their
//! truth, the same chain applied to the expected map ([`super::scan::AgingResult`]). Output:
//! an [`AgingCalibration`]: per quantity the mean and standard deviation of the pulls, the
//! 68 % and 95 % coverage ([`PullStats`]), and the relative deviation from the truth of the
//! estimator and from the model parameter.
//!
//! Bands ([`AgingBands::for_repeats`]): the KWW calibration's (mean within ±0.15, pull std
//! 0.85–1.2, 68 % coverage 63–73 %; [`super::calibrate`]), widened where the sampling spread of
//! N repeats is larger to `k` standard deviations of that spread about the ideal N(0, 1)
//! pulls, and a 95 % coverage band of the same form.
//!
//! Repeats run in parallel; the result does not depend on the thread count.
//!
//! Reference: L. Demortier & L. Lyons, CDF note 5776 (2002) (pulls); Ruta et al., PRL 109,
//! 165701 (2012) (the aging law τ(tw) = τ0 exp(tw/τ*)).

use super::scan::{run_scan, ShardPlan};
use super::setup::CampaignSetup;
use rayon::prelude::*;
use serde::Serialize;
use xpcs_core::error::{Error, Result};
use xpcs_core::fit::calibration::{pull_stats, PullStats};
use xpcs_core::seed::subseed;

/// One repeat's aging law beside its truth: (value, σ, truth, model) of τ0, τ* and κ = 1/τ*.
#[derive(Clone, Debug, Serialize)]
pub struct AgingRepeat {
    /// The scan seed of this repeat.
    pub seed: u64,
    /// Why the aging law has no value (None: converged).
    pub failure: Option<String>,
    /// (name, value, σ, truth of the estimator, model parameter).
    pub values: Vec<(String, f64, f64, f64, f64)>,
}

/// Pull statistics of the aging law over seeded repeats.
#[derive(Clone, Debug, Serialize)]
pub struct AgingCalibration {
    /// Scan label.
    pub scan: String,
    /// Detector pixels analysed (the region of interest).
    pub n_pixels: usize,
    /// Repeats attempted.
    pub n_repeats: usize,
    /// Repeats whose aging law failed (excluded from the pulls).
    pub n_failed: usize,
    /// Up to 5 failure reasons.
    pub failure_examples: Vec<String>,
    /// tau0, tau_star and rate (1/τ*).
    pub params: Vec<PullStats>,
    /// Mean relative deviation of the fitted value from the model parameter, per quantity.
    pub model_bias: Vec<(String, f64)>,
    /// Every repeat.
    pub repeats: Vec<AgingRepeat>,
}

/// Acceptance bands for the pulls of [`AgingCalibration`].
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AgingBands {
    /// Largest |mean pull|.
    pub max_abs_mean: f64,
    /// Allowed pull standard deviation.
    pub std_range: (f64, f64),
    /// Allowed 68 % coverage.
    pub coverage_68: (f64, f64),
    /// Allowed 95 % coverage.
    pub coverage_95: (f64, f64),
    /// Largest fraction of failed aging laws.
    pub max_failed_fraction: f64,
}

impl AgingBands {
    /// The KWW calibration's bands (mean ±0.15, std 0.85–1.2, 68 % coverage 0.63–0.73, 95 %
    /// coverage 0.93–0.97, ≤ 2 % failures), each widened to `k` standard deviations of its
    /// sampling spread for `n` ideal N(0, 1) pulls where that is wider: mean 1/sqrt(n), std
    /// 1/sqrt(2(n-1)), coverage sqrt(p(1-p)/n) with p = 0.683 and 0.954.
    pub fn for_repeats(n: usize, k: f64) -> Self {
        let n = n.max(2) as f64;
        let cov = |p: f64, lo: f64, hi: f64| {
            let s = k * (p * (1.0 - p) / n).sqrt();
            ((p - s).min(lo), (p + s).max(hi).min(1.0))
        };
        let s_std = k / (2.0 * (n - 1.0)).sqrt();
        AgingBands {
            max_abs_mean: (k / n.sqrt()).max(0.15),
            std_range: ((1.0 - s_std).min(0.85), (1.0 + s_std).max(1.2)),
            coverage_68: cov(0.683, 0.63, 0.73),
            coverage_95: cov(0.954, 0.93, 0.97),
            max_failed_fraction: 0.02,
        }
    }
}

impl AgingCalibration {
    /// Band violations, one line each (empty when all pass).
    pub fn violations(&self, b: &AgingBands) -> Vec<String> {
        let mut v = Vec::new();
        if self.n_failed as f64 > b.max_failed_fraction * self.n_repeats as f64 {
            v.push(format!(
                "{} of {} aging laws failed",
                self.n_failed, self.n_repeats
            ));
        }
        for p in &self.params {
            if p.mean.abs() > b.max_abs_mean {
                v.push(format!(
                    "{}: mean pull {:+.3} outside ±{:.3}",
                    p.param, p.mean, b.max_abs_mean
                ));
            }
            let bands = [
                ("pull std", p.std, b.std_range),
                ("68 % coverage", p.coverage_1sigma, b.coverage_68),
                ("95 % coverage", p.coverage_95, b.coverage_95),
            ];
            for (what, x, (lo, hi)) in bands {
                if !(lo..=hi).contains(&x) {
                    v.push(format!(
                        "{}: {what} {x:.3} outside {lo:.3}–{hi:.3}",
                        p.param
                    ));
                }
            }
        }
        v
    }

    /// A Markdown table: per quantity the pulls, coverages and relative deviations, with the
    /// bands `b`.
    pub fn table(&self, b: &AgingBands) -> String {
        let mut s = format!(
            "{}: {} repeats, {} pixels, {} failed\n\n| quantity | n | mean pull | pull std | \
             68 % coverage | 95 % coverage | fit/truth − 1 | fit/model − 1 |\n|---|---|---|---|---|---|---|---|\n",
            self.scan, self.n_repeats, self.n_pixels, self.n_failed
        );
        for p in &self.params {
            let mb = self
                .model_bias
                .iter()
                .find(|m| m.0 == p.param)
                .map_or(f64::NAN, |m| m.1);
            s.push_str(&format!(
                "| {} | {} | {:+.2} | {:.2} | {:.2} | {:.2} | {:+.1} % | {:+.1} % |\n",
                p.param,
                p.n,
                p.mean,
                p.std,
                p.coverage_1sigma,
                p.coverage_95,
                100.0 * p.mean_relative_bias,
                100.0 * mb
            ));
        }
        s.push_str(&format!(
            "| band ({} repeats) | | ±{:.2} | {:.2}–{:.2} | {:.2}–{:.2} | {:.2}–{:.2} | | |\n",
            self.n_repeats,
            b.max_abs_mean,
            b.std_range.0,
            b.std_range.1,
            b.coverage_68.0,
            b.coverage_68.1,
            b.coverage_95.0,
            b.coverage_95.1
        ));
        s
    }
}

/// One repeat: the scan `label` of `setup` with scan seed `seed`.
fn one_repeat(setup: &CampaignSetup, label: &str, seed: u64) -> Result<AgingRepeat> {
    let mut scan = setup
        .scans
        .iter()
        .find(|s| s.label == label)
        .cloned()
        .ok_or_else(|| Error::invalid("aging calibration", format!("no scan `{label}`")))?;
    scan.seed = seed;
    let r = run_scan(setup, &scan, ShardPlan::WHOLE, &|_| {}, &|_, _| {})?;
    let a = r.aging.ok_or_else(|| {
        Error::invalid(
            "aging calibration",
            format!("scan `{label}` has no aging law (not an aging isobar)"),
        )
    })?;
    let failure = a.law.failure().map(str::to_string);
    let mut values = Vec::new();
    for c in &a.compared {
        let model = c.model.unwrap_or(f64::NAN);
        values.push((c.name.clone(), c.value, c.sigma, c.truth, model));
        if c.name == "tau_star" {
            // κ = 1/τ*: the linear parameter of ln τ = ln τ0 + κ tw; σ_κ = σ_τ*/τ*².
            values.push((
                "rate".to_string(),
                1.0 / c.value,
                c.sigma / (c.value * c.value),
                1.0 / c.truth,
                1.0 / model,
            ));
        }
    }
    Ok(AgingRepeat {
        seed,
        failure,
        values,
    })
}

/// Pull statistics of `n_repeats` seeded repeats of the aging scan `label` of `setup`.
pub fn aging_calibration(
    setup: &CampaignSetup,
    label: &str,
    n_repeats: usize,
    seed: u64,
) -> Result<AgingCalibration> {
    if n_repeats < 2 {
        return Err(Error::out_of_range(
            "aging calibration",
            "n_repeats",
            n_repeats,
            ">= 2",
        ));
    }
    let repeats: Vec<AgingRepeat> = (0..n_repeats)
        .into_par_iter()
        .map(|i| {
            let r = one_repeat(setup, label, subseed(seed, &format!("aging-repeat-{i}")))?;
            if std::env::var_os("AGING_PROGRESS").is_some() {
                eprintln!(
                    "repeat {i}: {}",
                    serde_json::to_string(&r).unwrap_or_default()
                );
            }
            Ok(r)
        })
        .collect::<Result<_>>()?;
    let names = ["tau0", "tau_star", "rate"];
    let mut out = AgingCalibration {
        scan: label.to_string(),
        n_pixels: setup.roi.rows * setup.roi.cols,
        n_repeats,
        n_failed: 0,
        failure_examples: Vec::new(),
        params: Vec::new(),
        model_bias: Vec::new(),
        repeats: Vec::new(),
    };
    let ok: Vec<&AgingRepeat> = repeats
        .iter()
        .filter(|r| {
            let usable = r.failure.is_none()
                && r.values
                    .iter()
                    .all(|v| v.1.is_finite() && v.2.is_finite() && v.2 > 0.0);
            if !usable {
                out.n_failed += 1;
                if out.failure_examples.len() < 5 {
                    out.failure_examples.push(
                        r.failure
                            .clone()
                            .unwrap_or_else(|| "no finite value or σ".to_string()),
                    );
                }
            }
            usable
        })
        .collect();
    for n in names {
        let vals: Vec<(f64, f64, f64, f64)> = ok
            .iter()
            .filter_map(|r| r.values.iter().find(|v| v.0 == n))
            .map(|v| (v.1, v.2, v.3, v.4))
            .collect();
        let pulls: Vec<f64> = vals.iter().map(|v| (v.0 - v.2) / v.1).collect();
        let rel: Vec<f64> = vals.iter().map(|v| v.0 / v.2 - 1.0).collect();
        out.params.push(pull_stats(n, &pulls, &rel));
        let mb = vals.iter().map(|v| v.0 / v.3 - 1.0).sum::<f64>() / vals.len().max(1) as f64;
        out.model_bias.push((n.to_string(), mb));
    }
    out.repeats = repeats;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::Scale;
    use std::path::PathBuf;

    fn pt_setup() -> CampaignSetup {
        let p = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/pt42-eiger.toml"
        ));
        let config = xpcs_sim::config::load_toml(&p).unwrap();
        CampaignSetup::from_config_only(config, &p, Scale::Reduced, None, &["06-c6.3GPa".into()])
            .unwrap()
    }

    /// The aging calibration of the Pt campaign's aging isobar (6.3 GPa, τ0 = 34 s,
    /// τ* = 2300 s, 10000 frames of 0.1 s) at the campaign's reduced scale (the 2048 × 8 px
    /// strip through the FSDP, every frame). `AGING_REPEATS` repeats (default 60), bands at
    /// 3σ of the sampling spread ([`AgingBands::for_repeats`]). Run with
    /// `nice -n 10 cargo test -p xpcs-twin --lib aging_calibration_pt -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn aging_calibration_pt() {
        let n: usize = std::env::var("AGING_REPEATS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60);
        let setup = pt_setup();
        let t = std::time::Instant::now();
        let c = aging_calibration(&setup, "06-c6.3GPa", n, 2026).unwrap();
        let b = AgingBands::for_repeats(n, 3.0);
        eprintln!("{}", c.table(&b));
        eprintln!("failures: {:?}", c.failure_examples);
        eprintln!("elapsed {:.0} s", t.elapsed().as_secs_f64());
        if let Ok(p) = std::env::var("AGING_JSON") {
            std::fs::write(p, serde_json::to_string_pretty(&c).unwrap()).unwrap();
        }
        let v = c.violations(&b);
        assert!(v.is_empty(), "{v:#?}\n{}", c.table(&b));
    }
}
