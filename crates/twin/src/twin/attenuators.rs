//! The attenuator series: the standard test for a beam-induced effect on the dynamics (τ must
//! not depend on the flux).
//!
//! One isobar is scanned again at each attenuator transmission a_i (the same frames, protocol
//! times and region; independent noise). An attenuator before the cell scales everything the
//! beam makes: the flux on the sample, hence the count rate, the anvil spots and the dose rate
//! Ḋ_i = a_i Ḋ₀. With a beam-induced relaxation coefficient k (`beam_relaxation_per_gy`, Gy⁻¹,
//! docs/physics.md §3.3) the material clock runs at du/dt = 1/τ_th + k Ḋ, so for a stationary
//! isobar
//!
//! ```text
//! 1/τ(a) = 1/τ₀ + k · a Ḋ₀          (a straight line in Ḋ = a Ḋ₀, slope k)
//! ```
//!
//! Each scan's τ is the KWW fit of the whole region's g2 (σ from the jackknife of the scan
//! analysis). The slope of 1/τ against Ḋ is a weighted least-squares line (weights
//! 1/σ(1/τ)², σ(1/τ) = σ_τ/τ²; [`super::lsq`]); its error σ_k = 1/sqrt(Σ w_i (Ḋ_i − Ḋ̄_w)²).
//! The effect is **detected** when k̂ > n σ_k (one-sided, n = 3 by default: a false alarm
//! probability of 1.3e-3 for k = 0), and the smallest k the series can detect is n σ_k (the
//! slope's error does not depend on k to first order). The same line through the truth τ's
//! (the same fit of the expected g2) gives the estimator's own slope, so a pull
//! (k̂ − k_truth)/σ_k tests the error bar. The KWW τ of a g2 is slightly longer than the clock's
//! τ (the frame average, a heterogeneous isobar's β): the truth slope is k divided by that
//! ratio.

use super::lsq::{poly_fit, PolyFit};
use super::scan::{run_scan, Compared, ShardPlan};
use super::setup::{build_scan, CampaignSetup};
use crate::report::{Series as PlotSeries, XyPlot};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use xpcs_core::check::sig;
use xpcs_core::error::{Error, Result};
use xpcs_sim::instrument::dose::DoseRate;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesOptions {
    /// Attenuator transmissions (each in (0, 1]; at least two different ones).
    pub transmissions: Vec<f64>,
    /// Beam-induced relaxation k (Gy⁻¹); None: the sample file's `beam_relaxation_per_gy`.
    pub relaxation_per_gy: Option<f64>,
    /// Detection threshold in σ of the slope (one-sided).
    pub n_sigma: f64,
}

/// One scan of the series.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Attenuator transmission a.
    pub transmission: f64,
    /// Flux on the sample (photons/s).
    pub flux_ph_s: f64,
    /// Dose rate a Ḋ₀ (Gy/s).
    pub dose_rate_gy_s: f64,
    /// Beam on (s).
    pub beam_on_s: f64,
    /// Dose of the scan (Gy).
    pub dose_gy: f64,
    /// Dose accumulated by the end of this scan over the series (Gy).
    pub accumulated_dose_gy: f64,
    /// Mean counts per valid pixel per frame.
    pub mean_counts_per_frame: f64,
    /// The clock's τ at q1 at the scan start, 1/(1/τ_th + k a Ḋ₀) (s).
    pub tau_clock_s: f64,
    /// The region's KWW τ against its truth.
    pub tau: Compared,
}

/// The result of a series.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesResult {
    /// The isobar's label.
    pub scan_label: String,
    /// Its pressure (GPa).
    pub pressure_gpa: f64,
    /// Dose rate of the unattenuated beam Ḋ₀ (Gy/s).
    pub full_dose_rate_gy_s: f64,
    /// The coefficient k simulated (Gy⁻¹).
    pub relaxation_per_gy: f64,
    /// Detection threshold (σ).
    pub n_sigma: f64,
    /// The scans, in the order run.
    pub steps: Vec<Step>,
    /// Line 1/τ = p0 + k (Ḋ − Ḋ̄) through the fitted τ's.
    pub fit: PolyFit,
    /// The same line through the truth τ's (their σ as weights).
    pub truth_fit: PolyFit,
    /// Steps whose τ the data cannot constrain (scan shorter than 3 τ), with why.
    pub unconstrained: Vec<String>,
}

impl SeriesResult {
    /// Fitted slope k̂ and σ_k (Gy⁻¹).
    pub fn slope(&self) -> (f64, f64) {
        self.fit.slope()
    }

    /// Whether k̂ > n σ_k.
    pub fn detected(&self) -> bool {
        let (k, s) = self.slope();
        k > self.n_sigma * s
    }

    /// Smallest k this series detects: n σ_k (Gy⁻¹).
    pub fn detection_limit_per_gy(&self) -> f64 {
        self.n_sigma * self.slope().1
    }

    /// (k̂ − k_truth)/σ_k.
    pub fn pull(&self) -> f64 {
        let (k, s) = self.slope();
        (k - self.truth_fit.slope().0) / s
    }
}

/// Checks the transmissions: each in (0, 1], at least two different ones.
pub fn check_transmissions(t: &[f64], origin: &str) -> Result<()> {
    for &a in t {
        if !(a.is_finite() && a > 0.0 && a <= 1.0) {
            return Err(Error::out_of_range(
                origin,
                "transmission",
                a,
                "> 0 and ≤ 1 (1 = no attenuator)",
            ));
        }
    }
    let mut d = t.to_vec();
    d.sort_by(f64::total_cmp);
    d.dedup();
    if d.len() < 2 {
        return Err(Error::invalid(
            origin,
            format!(
                "{} different transmission(s): a slope against the dose rate needs at least 2",
                d.len()
            ),
        ));
    }
    Ok(())
}

/// Runs the series on scan `scan` of `setup` (an entry of `setup.scans`). `progress` is told
/// each step's index, the number of steps and a stage name.
pub fn run_series(
    setup: &CampaignSetup,
    scan: usize,
    opt: &SeriesOptions,
    progress: &(dyn Fn(usize, usize, &str) + Sync),
) -> Result<SeriesResult> {
    check_transmissions(&opt.transmissions, "--transmissions")?;
    xpcs_core::check::check_range(
        "--relaxation-per-gy",
        "k",
        opt.relaxation_per_gy.unwrap_or(0.0),
        0.0,
        1.0,
    )?;
    xpcs_core::check::check_range("--n-sigma", "n", opt.n_sigma, 0.5, 10.0)?;
    let base = setup
        .scans
        .get(scan)
        .ok_or_else(|| Error::invalid("attenuator series", "no such scan in the campaign"))?;
    let k = opt
        .relaxation_per_gy
        .unwrap_or(setup.sample.beam_relaxation_per_gy);
    let full = DoseRate::new(&setup.instrument.beam, &setup.instrument.dac).gy_per_s;
    let tau_th = setup.sample.campaign.tau_law(base.index).tau_at(0.0);
    let sc = match setup.scale {
        super::Scale::Reduced => &setup.config.scale.reduced,
        super::Scale::Full => &setup.config.scale.full,
    };
    let n = opt.transmissions.len();
    let mut steps = Vec::with_capacity(n);
    let mut accumulated = 0.0;
    for (i, &a) in opt.transmissions.iter().enumerate() {
        progress(i, n, "set up");
        let mut s = setup.clone();
        s.instrument.beam.flux_ph_s *= a;
        s.instrument.dac.spot_peak_rate_hz *= a;
        s.sample.beam_relaxation_per_gy = k;
        let seed = xpcs_sim::rng::subseed(setup.seed, &format!("attenuator-{i}"));
        let scan_setup = build_scan(
            &s.sample,
            &s.instrument,
            &s.config,
            &s.roi,
            sc.max_frames,
            seed,
            base.index,
        )?;
        s.scans = vec![scan_setup];
        let r = run_scan(
            &s,
            &s.scans[0],
            ShardPlan::WHOLE,
            &|st| progress(i, n, st),
            &|_, _| {},
        )?;
        let tau = r
            .region
            .compared
            .iter()
            .find(|c| c.name == "tau")
            .cloned()
            .ok_or_else(|| Error::invalid("attenuator series", "the region fit has no τ"))?;
        let beam_on_s = r.n_frames as f64 * r.frame_time_s;
        let rate = s.scans[0].dose_rate_gy_s;
        accumulated += rate * beam_on_s;
        steps.push(Step {
            transmission: a,
            flux_ph_s: s.instrument.beam.flux_ph_s,
            dose_rate_gy_s: rate,
            beam_on_s,
            dose_gy: rate * beam_on_s,
            accumulated_dose_gy: accumulated,
            mean_counts_per_frame: r.mean_counts_per_frame,
            tau_clock_s: 1.0 / (1.0 / tau_th + k * rate),
            tau,
        });
    }
    let x: Vec<f64> = steps.iter().map(|s| s.dose_rate_gy_s).collect();
    let sy: Vec<f64> = steps
        .iter()
        .map(|s| s.tau.sigma / (s.tau.value * s.tau.value))
        .collect();
    let y: Vec<f64> = steps.iter().map(|s| 1.0 / s.tau.value).collect();
    let yt: Vec<f64> = steps.iter().map(|s| 1.0 / s.tau.truth).collect();
    let fit = poly_fit(
        &x,
        &y,
        &sy,
        1,
        "attenuator series: 1/τ against the dose rate",
    )?;
    let truth_fit = poly_fit(&x, &yt, &sy, 1, "attenuator series: truth 1/τ")?;
    let unconstrained = steps
        .iter()
        .filter_map(|s| {
            s.tau
                .unconstrained
                .as_ref()
                .map(|w| format!("transmission {}: {w}", s.transmission))
        })
        .collect();
    Ok(SeriesResult {
        scan_label: base.label.clone(),
        pressure_gpa: base.isobar.pressure_gpa,
        full_dose_rate_gy_s: full,
        relaxation_per_gy: k,
        n_sigma: opt.n_sigma,
        steps,
        fit,
        truth_fit,
        unconstrained,
    })
}

/// A value ± error rounded to the error's 2 significant digits, in plain or scientific
/// notation ([`crate::fit_results::plus_minus`]).
fn pm(v: f64, e: f64) -> String {
    crate::fit_results::plus_minus(v, e)
}

impl SeriesResult {
    /// The markdown report.
    pub fn markdown(&self, campaign: &str) -> String {
        let mut md = String::new();
        let (kh, sk) = self.slope();
        let _ = writeln!(
            md,
            "# Attenuator series: {} ({campaign})\n",
            self.scan_label
        );
        let _ = writeln!(
            md,
            "Isobar {} at {} GPa, scanned once per attenuator transmission (same frames, \
             independent noise). Unattenuated dose rate Ḋ₀ = {} Gy/s. Simulated beam-induced \
             relaxation k = {} Gy⁻¹ (du/dt = 1/τ + k Ḋ). Test: 1/τ = 1/τ₀ + k Ḋ, a weighted line \
             through the fitted τ's; detected when k̂ > {} σ_k (one-sided).\n",
            self.scan_label,
            self.pressure_gpa,
            sig(self.full_dose_rate_gy_s, 3),
            sig(self.relaxation_per_gy, 3),
            self.n_sigma
        );
        let _ = writeln!(
            md,
            "| transmission | flux (ph/s) | dose rate (Gy/s) | beam on (s) | dose (Gy) | accumulated dose (Gy) | photons/px/frame | τ clock (s) | τ fit (s) | τ truth (s) | pull |\n\
             |---|---|---|---|---|---|---|---|---|---|---|"
        );
        for s in &self.steps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:+.2} |",
                s.transmission,
                sig(s.flux_ph_s, 3),
                sig(s.dose_rate_gy_s, 3),
                sig(s.beam_on_s, 4),
                sig(s.dose_gy, 2),
                sig(s.accumulated_dose_gy, 2),
                sig(s.mean_counts_per_frame, 3),
                sig(s.tau_clock_s, 4),
                pm(s.tau.value, s.tau.sigma),
                sig(s.tau.truth, 4),
                s.tau.pull
            );
        }
        let (kt, _) = self.truth_fit.slope();
        let _ = writeln!(md);
        let _ = writeln!(
            md,
            "| quantity | value |\n|---|---|\n\
             | slope k̂ of 1/τ against Ḋ (Gy⁻¹) | {} |\n\
             | slope of the truth τ's (Gy⁻¹) | {} |\n\
             | k simulated (Gy⁻¹) | {} |\n\
             | k̂/σ_k | {:.2} |\n\
             | pull (k̂ − truth)/σ_k | {:+.2} |\n\
             | smallest detectable k, {} σ_k (Gy⁻¹) | {} |\n\
             | χ² / degrees of freedom | {:.2} / {} |\n",
            pm(kh, sk),
            sig(kt, 3),
            sig(self.relaxation_per_gy, 3),
            kh / sk,
            self.pull(),
            self.n_sigma,
            sig(self.detection_limit_per_gy(), 2),
            self.fit.chi2,
            self.fit.dof
        );
        let verdict = if self.detected() {
            format!(
                "**DETECTED**: k̂ = {} Gy⁻¹ is {:.1} σ above 0 (threshold {} σ).",
                pm(kh, sk),
                kh / sk,
                self.n_sigma
            )
        } else {
            format!(
                "**not detected**: k̂ = {} Gy⁻¹ is {:.1} σ from 0 (threshold {} σ); this series \
                 would detect k ≥ {} Gy⁻¹.",
                pm(kh, sk),
                kh / sk,
                self.n_sigma,
                sig(self.detection_limit_per_gy(), 2)
            )
        };
        let _ = writeln!(md, "{verdict}");
        if !self.unconstrained.is_empty() {
            let _ = writeln!(
                md,
                "\nUnconstrained steps (their τ is reported, the line uses them with their σ): {}",
                self.unconstrained.join("; ")
            );
        }
        md
    }

    /// The figure: 1/τ against the dose rate with error bars, the fitted line and the truth.
    pub fn plot(&self, path: &Path) -> Result<()> {
        let x: Vec<f64> = self.steps.iter().map(|s| s.dose_rate_gy_s).collect();
        let y: Vec<f64> = self.steps.iter().map(|s| 1.0 / s.tau.value).collect();
        let e: Vec<f64> = self
            .steps
            .iter()
            .map(|s| s.tau.sigma / (s.tau.value * s.tau.value))
            .collect();
        let yt: Vec<f64> = self.steps.iter().map(|s| 1.0 / s.tau.truth).collect();
        let hi = x.iter().fold(0f64, |m, v| m.max(*v)) * 1.05;
        let xs = vec![0.0, hi];
        let line = |f: &PolyFit| xs.iter().map(|&v| f.line_at(v).0).collect::<Vec<_>>();
        let (kh, sk) = self.slope();
        XyPlot::new(
            &format!("{}: attenuator series, 1/τ vs dose rate", self.scan_label),
            "dose rate Ḋ (Gy/s)",
            "1/τ (1/s)",
        )
        // 1/τ rises with Ḋ when k > 0: the upper right holds the full-beam points.
        .legend_at(plotters::chart::SeriesLabelPosition::LowerRight)
        .with(PlotSeries::points("fitted τ (±1σ)", x.clone(), y).with_errors(e))
        .with(PlotSeries::line(
            "weighted line",
            xs.clone(),
            line(&self.fit),
        ))
        .with(PlotSeries::points("truth τ (expected g2)", x, yt))
        .with(PlotSeries::line(
            "truth line",
            xs.clone(),
            line(&self.truth_fit),
        ))
        .with_note(&format!(
            "slope k = {} 1/Gy ({:.1} σ); simulated k = {} 1/Gy",
            pm(kh, sk),
            kh / sk,
            sig(self.relaxation_per_gy, 3)
        ))
        .write_png(path)
    }

    /// Writes `attenuators.md`, `attenuators.json` and `figures/attenuators.png` into `dir`.
    pub fn write(&self, dir: &Path, campaign: &str) -> Result<Vec<PathBuf>> {
        let fig = dir.join("figures");
        std::fs::create_dir_all(&fig).map_err(|e| Error::io(&fig, e))?;
        let png = fig.join("attenuators.png");
        self.plot(&png)?;
        let md = dir.join("attenuators.md");
        super::output::write_text_atomic(&md, &self.markdown(campaign))?;
        let js = dir.join("attenuators.json");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| Error::invalid("attenuators.json", e.to_string()))?;
        super::output::write_text_atomic(&js, &text)?;
        Ok(vec![md, js, png])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::Scale;

    /// The Pt campaign at 0.1 GPa (stationary, τ = 228 s, 1400 s scans) on a quarter of its
    /// reduced strip (512 × 8 px), fixed seed.
    fn pt_at_0p1(dir: &Path) -> CampaignSetup {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models");
        let text = std::fs::read_to_string(root.join("pt42-eiger.toml"))
            .unwrap()
            .replace(
                "sample = \"samples/pt42.toml\"",
                &format!("sample = \"{}\"", root.join("samples/pt42.toml").display()),
            )
            .replace("roi_px = [2048, 8]", "roi_px = [512, 8]");
        let path = dir.join("pt.toml");
        std::fs::write(&path, text).unwrap();
        CampaignSetup::load_at_pressure(&path, Scale::Reduced, None, Some(0.1), "p").unwrap()
    }

    fn series(setup: &CampaignSetup, k: f64) -> SeriesResult {
        let opt = SeriesOptions {
            transmissions: vec![1.0, 0.5, 0.25],
            relaxation_per_gy: Some(k),
            n_sigma: 3.0,
        };
        run_series(setup, 0, &opt, &|_, _, _| {}).unwrap()
    }

    /// k = 0: the slope of 1/τ against the dose rate is consistent with 0 within 3 σ_k (a
    /// two-sided 3σ bound on one fixed-seed draw: false alarm 0.27 %), not detected, and the
    /// truth slope is 0 within 0.1 σ_k (the expected g2 does not depend on the flux). k = 1e-10
    /// Gy⁻¹ (k Ḋ₀ τ₀ = 1.2: τ halves at full beam): detected, the fit agrees with the truth
    /// slope within 4 σ_k, and the truth slope is k divided by the KWW-over-clock τ ratio
    /// (within 10 %).
    #[test]
    fn zero_coefficient_is_consistent_with_zero_and_a_large_one_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let setup = pt_at_0p1(dir.path());
        let r0 = series(&setup, 0.0);
        let (k0, s0) = r0.slope();
        eprintln!(
            "k = 0: slope {k0:e} ± {s0:e}, truth {:e}",
            r0.truth_fit.slope().0
        );
        assert!(k0.abs() <= 3.0 * s0, "{k0} ± {s0}");
        assert!(!r0.detected() || k0 <= 3.0 * s0);
        assert!(
            r0.truth_fit.slope().0.abs() < 0.1 * s0,
            "{:?}",
            r0.truth_fit
        );
        assert!(r0
            .steps
            .iter()
            .all(|s| (s.tau_clock_s - 228.0).abs() < 1e-9));
        // The dose rate follows the transmission; the counts too.
        let d = &r0.steps;
        assert!((d[2].dose_rate_gy_s / d[0].dose_rate_gy_s - 0.25).abs() < 1e-12);
        assert!((d[2].mean_counts_per_frame / d[0].mean_counts_per_frame - 0.25).abs() < 1e-3);
        let k = 1e-10;
        let r1 = series(&setup, k);
        let (k1, s1) = r1.slope();
        let kt = r1.truth_fit.slope().0;
        eprintln!("k = {k:e}: slope {k1:e} ± {s1:e}, truth {kt:e}");
        assert!(r1.detected(), "{k1} ± {s1}");
        assert!(r1.pull().abs() <= 4.0, "pull {}", r1.pull());
        assert!(kt > 0.9 * k / 1.1 && kt < 1.1 * k, "{kt}");
        // The markdown says so.
        assert!(r1.markdown("pt").contains("**DETECTED**"));
        assert!(r0.markdown("pt").contains("**not detected**"));
    }

    #[test]
    fn transmissions_are_checked() {
        assert!(check_transmissions(&[1.0, 0.5], "t").is_ok());
        for bad in [&[1.0, 0.0][..], &[1.0, 1.2], &[0.5, 0.5], &[f64::NAN, 1.0]] {
            let e = check_transmissions(bad, "--transmissions")
                .unwrap_err()
                .to_string();
            assert!(e.contains("--transmissions"), "{e}");
        }
    }
}
