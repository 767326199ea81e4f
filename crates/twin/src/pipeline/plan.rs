//! The `plan` pipeline: how many frames, at what frame time, to reach a precision target.
//!
//! MODEL.toml is a campaign file (models/*.toml: instrument-derived contrast, count rate and
//! q-bins) or a sample file (models/samples/*.toml with its ideal `[scene]`). Prints a table,
//! writes `plan.json` and two PNGs into `--out`.

use super::Progress;
use crate::plan::floor::{default_bin_frames, floor_formula, floor_null, FloorEstimate};
use crate::plan::{
    monte_carlo_with_progress, recommend, FreeParams, Limits, McOptions, McResult, Plan,
    Prediction, Setting, Target,
};
use crate::report::{Series, XyPlot};
use crate::{Error, Result};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// Arguments of `plan`.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Campaign (models/*.toml) or sample (models/samples/*.toml) file.
    pub model: PathBuf,
    /// Plan the isobar at this pressure (GPa; the first one in protocol order when the
    /// campaign has two, compression before decompression). A pressure without an isobar is
    /// refused with the list of the campaign's isobar pressures.
    pub pressure: Option<f64>,
    /// Plan every isobar: time per isobar and total.
    pub campaign: bool,
    /// Precision target: tau=5%, beta=3%, contrast=10%.
    pub target: String,
    /// Use only this frame time (s), 1e-9 to 1e5.
    pub frame_time: Option<f64>,
    /// Most frames per scan.
    pub max_frames: usize,
    /// Longest beam time per isobar (hours).
    pub budget_hours: Option<f64>,
    /// Monte Carlo repeats for the recommended setting (0 = none).
    pub mc_repeats: usize,
    /// Free fit parameters (tau is always free).
    pub free: String,
    /// Pixels per q-bin (default: the campaign's median q-bin, or the sample scene / q-bins).
    pub bin_pixels: Option<f64>,
    /// q-bins a sample scene is cut into (sample files only).
    pub q_bins: usize,
    /// Shortest detector frame (s), 1e-9 to 1e5.
    pub min_frame_time: f64,
    /// Smallest T/τ.
    pub min_t_over_tau: f64,
    /// Seed.
    pub seed: u64,
    /// Output folder for plan.json and the PNGs (replaced on every run; never an input).
    pub out: Option<PathBuf>,
    /// Also print every (frame time, frames) setting of the grid with its predicted errors.
    pub verbose: bool,
    /// Recommend an attenuator series at the `pressure` isobar: these transmissions (each in
    /// (0, 1]), the frames each needs for the target, the dose of each scan and the smallest
    /// beam-induced relaxation k (Gy⁻¹) the series detects (campaign files only; the slope of
    /// 1/τ against the dose rate, `n_sigma` σ).
    pub attenuators: Option<Vec<f64>>,
    /// Scan-to-scan scatter of ln τ added in quadrature to the statistical error of each step
    /// of the attenuator series (pressure drift, aging; 0 to 1).
    pub systematic: f64,
    /// Detection threshold of the attenuator series in σ of the slope (0.5 to 10).
    pub n_sigma: f64,
}

/// One isobar as plain numbers.
struct Point {
    label: String,
    pressure_gpa: f64,
    setting: Setting,
    detector_pixels: f64,
    aging_tau_star_s: Option<f64>,
    aging_tau_cap_s: Option<f64>,
    avalanches: bool,
    /// Flux on the sample, its provenance, dose rate and the dose of the configured scan
    /// (campaign files only).
    beam_line: Option<String>,
    /// Dose rate in the illuminated column (Gy/s; campaign files only).
    dose_rate_gy_s: Option<f64>,
    /// The sample's beam-induced relaxation coefficient k (Gy⁻¹): τ(a) = 1/(1/τ₀ + k a Ḋ₀)
    /// at transmission a (campaign files only; 0 otherwise).
    beam_relaxation_per_gy: f64,
}

fn load_points(a: &PlanOptions, free: FreeParams) -> Result<Vec<Point>> {
    let text = std::fs::read_to_string(&a.model).map_err(|e| Error::io(&a.model, e))?;
    let value: toml::Value =
        toml::from_str(&text).map_err(|e| Error::format(&a.model, e.to_string()))?;
    let mut out = Vec::new();
    let setting = |tau, beta, c, r, n| Setting {
        tau_s: tau,
        kww_exponent: beta,
        contrast: c,
        rate_per_pixel_hz: r,
        bin_pixels: n,
        frame_time_s: 0.1,
        n_frames: 1000,
        free,
        num_bufs: 8,
    };
    if value.get("kww_exponent").is_some() {
        let sample = crate::config::sample::load_sample(&a.model)?;
        let Some(scene) = sample.scene.clone() else {
            return Err(Error::invalid(
                a.model.display().to_string(),
                "a sample file needs a [scene] to plan",
            ));
        };
        let det = (scene.rows * scene.cols) as f64;
        let camp = &sample.campaign;
        for (k, b) in camp.isobars.iter().enumerate() {
            let law = camp.tau_law(k);
            let aging = aging_limits(&law);
            out.push(Point {
                label: format!("{:.1} GPa {:?}", b.pressure_gpa, b.direction).to_lowercase(),
                pressure_gpa: b.pressure_gpa,
                setting: setting(
                    law.tau_at(0.0),
                    camp.kww_exponent,
                    // what g2 − 1 shows: the incoherent background dilutes the contrast
                    scene.contrast * (1.0 - scene.incoherent_fraction).powi(2),
                    scene.mean_counts_per_frame / b.frame_time_s,
                    a.bin_pixels.unwrap_or(det / a.q_bins.max(1) as f64),
                ),
                detector_pixels: det,
                aging_tau_star_s: aging.map(|a| a.0),
                aging_tau_cap_s: aging.map(|a| a.1),
                avalanches: !matches!(b.avalanches, crate::model::AvalancheTimes::None),
                beam_line: None,
                dose_rate_gy_s: None,
                beam_relaxation_per_gy: 0.0,
            });
        }
    } else {
        // With a pressure only that pressure's isobars are set up; a pressure without an
        // isobar is refused with the campaign's isobar pressures.
        let setup = crate::twin::CampaignSetup::load_at_pressure(
            &a.model,
            crate::twin::Scale::Full,
            Some(a.seed),
            a.pressure,
            "--pressure",
        )?;
        for s in &setup.scans {
            let mut sizes = s.partition.dynamic().bin_sizes();
            sizes.retain(|&n| n > 0);
            sizes.sort_unstable();
            let median = sizes.get(sizes.len() / 2).copied().unwrap_or(1) as f64;
            let law = setup.sample.campaign.tau_law(s.index);
            let aging = aging_limits(&law);
            out.push(Point {
                label: s.label.clone(),
                pressure_gpa: s.isobar.pressure_gpa,
                setting: setting(
                    s.facts.tau_start_s,
                    setup.sample.campaign.kww_exponent,
                    s.contrast_measured,
                    s.mean_counts_per_frame / s.isobar.frame_time_s,
                    a.bin_pixels.unwrap_or(median),
                ),
                detector_pixels: (s.scene.rows * s.scene.cols) as f64,
                aging_tau_star_s: aging.map(|a| a.0),
                aging_tau_cap_s: aging.map(|a| a.1),
                avalanches: !matches!(s.isobar.avalanches, crate::model::AvalancheTimes::None),
                beam_line: Some(format!(
                    "flux {:.3e} ph/s on the sample ({}); dose rate {:.2e} Gy/s, {:.2e} Gy in \
                     the configured scan ({} × {} s); c = instrument {:.4} × (1 − x_b)², x_b = {}",
                    setup.instrument.beam.flux_ph_s,
                    setup.instrument.beam.flux_provenance(),
                    s.dose_rate_gy_s,
                    s.dose_rate_gy_s * s.isobar.n_frames as f64 * s.isobar.frame_time_s,
                    s.isobar.n_frames,
                    s.isobar.frame_time_s,
                    s.contrast,
                    fmt_xb(
                        s.incoherent_fraction,
                        setup.instrument.dac.background_is_computed()
                    )
                )),
                dose_rate_gy_s: Some(s.dose_rate_gy_s),
                beam_relaxation_per_gy: setup.sample.beam_relaxation_per_gy,
            });
        }
    }
    Ok(out)
}

/// (τ*, τ cap) of an isobar whose τ grows with the waiting time (an aging law that ages), for
/// the planner's aging limit; None for a stationary isobar.
fn aging_limits(law: &crate::model::TauLaw) -> Option<(f64, f64)> {
    match *law {
        crate::model::TauLaw::Aging {
            tau_star_s,
            tau_eq_s,
            ..
        } if law.tau_at(0.0) < law.tau_at(1e12) => Some((tau_star_s, tau_eq_s)),
        _ => None,
    }
}

/// One step of a recommended attenuator series.
#[derive(Debug, Clone, serde::Serialize)]
struct AttenuatorStep {
    transmission: f64,
    dose_rate_gy_s: f64,
    tau_s: f64,
    frame_time_s: f64,
    n_frames: usize,
    beam_on_s: f64,
    dose_gy: f64,
    sigma_ln_tau_stat: f64,
    sigma_ln_tau: f64,
    target_reached: bool,
}

/// The recommended attenuator series and its detection limit.
#[derive(Debug, Clone, serde::Serialize)]
struct AttenuatorPlan {
    steps: Vec<AttenuatorStep>,
    systematic: f64,
    n_sigma: f64,
    sigma_k_per_gy: f64,
    detectable_k_per_gy: f64,
    total_beam_s: f64,
    total_dose_gy: f64,
}

/// The attenuator series at one isobar (docs/physics.md §3.4): each transmission a scales the
/// count rate and the dose rate (Ḋ = a Ḋ₀) and, with the sample's beam_relaxation_per_gy k,
/// sets τ(a) = 1/(1/τ₀ + k a Ḋ₀); the planner finds the frames each step needs for the target
/// (so that every step has about the same σ(ln τ)), adds `systematic` in quadrature, and gives
/// the slope error of the line 1/τ against Ḋ, σ_k = 1/sqrt(Σ w_i (Ḋ_i − Ḋ̄_w)²) with
/// w_i = (τ_i/s_i)², and the smallest detectable k = n σ_k.
fn attenuator_plan(
    p: &Point,
    transmissions: &[f64],
    target: Target,
    limits: &Limits,
    systematic: f64,
    n_sigma: f64,
) -> Result<AttenuatorPlan> {
    let Some(d0) = p.dose_rate_gy_s else {
        return Err(Error::invalid(
            "command line",
            "--attenuators needs a campaign file (the dose rate comes from its beam and cell)",
        ));
    };
    let tau0 = p.setting.tau_s;
    let mut steps = Vec::new();
    for &t in transmissions {
        let d = t * d0;
        let tau = 1.0 / (1.0 / tau0 + p.beam_relaxation_per_gy * d);
        let mut set = p.setting;
        set.rate_per_pixel_hz *= t;
        set.tau_s = tau;
        let plan = recommend(&set, target, limits)?;
        let c = &plan.grid[plan.chosen];
        let stat = c.prediction.sigma_ln_tau;
        steps.push(AttenuatorStep {
            transmission: t,
            dose_rate_gy_s: d,
            tau_s: tau,
            frame_time_s: c.frame_time_s,
            n_frames: c.n_frames,
            beam_on_s: c.scan_s,
            dose_gy: d * c.scan_s,
            sigma_ln_tau_stat: stat,
            sigma_ln_tau: stat.hypot(systematic),
            target_reached: plan.reached,
        });
    }
    // 1/τ against Ḋ: σ(1/τ) = σ(ln τ)/τ.
    let x: Vec<f64> = steps.iter().map(|s| s.dose_rate_gy_s).collect();
    let y: Vec<f64> = steps.iter().map(|s| 1.0 / s.tau_s).collect();
    let e: Vec<f64> = steps.iter().map(|s| s.sigma_ln_tau / s.tau_s).collect();
    let fit = crate::twin::lsq::poly_fit(&x, &y, &e, 1, "--attenuators")?;
    let sigma_k = fit.slope().1;
    Ok(AttenuatorPlan {
        total_beam_s: steps.iter().map(|s| s.beam_on_s).sum(),
        total_dose_gy: steps.iter().map(|s| s.dose_gy).sum(),
        steps,
        systematic,
        n_sigma,
        sigma_k_per_gy: sigma_k,
        detectable_k_per_gy: n_sigma * sigma_k,
    })
}

fn print_attenuator_plan(out: &mut String, p: &Point, s: &AttenuatorPlan) {
    let _ = writeln!(
        out,
        "\nATTENUATOR SERIES at {} (beam_relaxation_per_gy = {:e} Gy⁻¹ in the sample file; \
         σ(ln τ) = statistics ⊕ {:.1} % scan-to-scan scatter):",
        p.label,
        p.beam_relaxation_per_gy,
        100.0 * s.systematic
    );
    let _ = writeln!(
        out,
        "{:>12} {:>12} {:>10} {:>9} {:>8} {:>10} {:>10} {:>11} {:>11}",
        "transmission",
        "Ḋ (Gy/s)",
        "τ (s)",
        "Δt (s)",
        "frames",
        "T (s)",
        "dose (Gy)",
        "σ(lnτ) stat",
        "σ(lnτ) tot"
    );
    for t in &s.steps {
        let _ = writeln!(
            out,
            "{:>12} {:>12.3e} {:>10.4} {:>9} {:>8} {:>10.0} {:>10.2e} {:>10.2} % {:>9.2} %{}",
            t.transmission,
            t.dose_rate_gy_s,
            t.tau_s,
            t.frame_time_s,
            t.n_frames,
            t.beam_on_s,
            t.dose_gy,
            100.0 * t.sigma_ln_tau_stat,
            100.0 * t.sigma_ln_tau,
            if t.target_reached {
                ""
            } else {
                "  (target not reached)"
            }
        );
    }
    let _ = writeln!(
        out,
        "series: {:.0} s of beam, {:.2e} Gy; slope of 1/τ against Ḋ: σ_k = {:.2e} Gy⁻¹, so \
         k ≥ {:.2e} Gy⁻¹ is detected at {} σ (k Ḋ₀ τ₀ ≥ {:.3}). Check it with `xpcs-twin \
         attenuators MODEL --pressure {} --transmissions {} --relaxation-per-gy K`.",
        s.total_beam_s,
        s.total_dose_gy,
        s.sigma_k_per_gy,
        s.detectable_k_per_gy,
        s.n_sigma,
        s.detectable_k_per_gy
            * s.steps.iter().fold(0f64, |m, t| m.max(t.dose_rate_gy_s))
            * p.setting.tau_s,
        p.pressure_gpa,
        s.steps
            .iter()
            .map(|t| t.transmission.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
}

/// Isobar pressures as a list for a message ("0.1, 1.5, 3.3").
fn pressures(p: impl Iterator<Item = f64>) -> String {
    p.map(|x| x.to_string()).collect::<Vec<_>>().join(", ")
}

/// x_b with where it comes from.
fn fmt_xb(xb: f64, computed: bool) -> String {
    if computed {
        format!("{xb:.3} (computed from the cell)")
    } else {
        format!("{xb:.3} (the cell file's)")
    }
}

fn human_bytes(b: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{v:.3} {}", units[i])
}

fn print_plan(out: &mut String, p: &Point, plan: &Plan, verbose: bool) {
    let s = &p.setting;
    let _ = writeln!(
        out,
        "\n== {}: τ = {:.4} s, KWW exponent {:.3}, contrast {:.5} (measured, after the incoherent \
         dilution), rate {:.4} photons/s/pixel, {:.0} pixels per q-bin; fitted: {}",
        p.label,
        s.tau_s,
        s.kww_exponent,
        s.contrast,
        s.rate_per_pixel_hz,
        s.bin_pixels,
        s.free.names().join(", ")
    );
    if let Some(b) = &p.beam_line {
        let _ = writeln!(out, "   {b}");
    }
    if verbose {
        print_grid(out, p, plan);
    } else {
        let _ = writeln!(
            out,
            "{} settings of (frame time, frames) compared; --verbose lists them",
            plan.grid.len()
        );
    }
    print_choice(out, plan);
}

/// Every setting of the grid with its predicted errors (`--verbose`).
fn print_grid(out: &mut String, p: &Point, plan: &Plan) {
    let s = &p.setting;
    let _ = writeln!(
        out,
        "{:>10} {:>9} {:>10} {:>7} {:>9} {:>9} {:>9} {:>7}  broken limits",
        "Δt (s)", "frames", "T (s)", "T/τ", "σ(lnτ)", "σc/c", "σβ", "n̄"
    );
    for c in &plan.grid {
        let pr = &c.prediction;
        let mark = if std::ptr::eq(c, &plan.grid[plan.chosen]) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(
            out,
            "{mark}{:>9.4} {:>9} {:>10.1} {:>7.1} {:>9.2e} {:>9} {:>9} {:>7.3}  {}{}",
            c.frame_time_s,
            c.n_frames,
            c.scan_s,
            c.t_over_tau,
            pr.sigma_ln_tau,
            pr.rel_contrast.map_or("-".into(), |v| format!("{v:.2e}")),
            pr.sigma_kww_exponent
                .map_or("-".into(), |v| format!("{v:.2e}")),
            c.frame_time_s * s.rate_per_pixel_hz,
            c.broken.join(", "),
            if pr.regime.any() {
                format!(" [Fisher unreliable: {}]", pr.regime.describe())
            } else {
                String::new()
            }
        );
    }
}

/// The recommended (or best) setting and what binds it.
fn print_choice(out: &mut String, plan: &Plan) {
    let c = &plan.grid[plan.chosen];
    if plan.reached {
        let _ = writeln!(
            out,
            "RECOMMENDED: Δt = {} s × {} frames = {:.0} s ({:.2} h) beam time; {} target {:.1} % \
             → predicted {:.2} %; set by: {}; data {} dense (16-bit), {} sparse",
            c.frame_time_s,
            c.n_frames,
            c.scan_s,
            c.scan_s / 3600.0,
            plan.target.name(),
            100.0 * plan.target.relative,
            100.0 * c.target_error.unwrap_or(f64::NAN),
            plan.binding.join(", "),
            human_bytes(c.dense_bytes),
            human_bytes(c.sparse_bytes),
        );
    } else {
        let _ = writeln!(
            out,
            "NOT REACHABLE: no setting within the limits gives {} ≤ {:.1} %. Best: Δt = {} s × {} \
             frames = {:.0} s → {:.2} %; binding: {}",
            plan.target.name(),
            100.0 * plan.target.relative,
            c.frame_time_s,
            c.n_frames,
            c.scan_s,
            100.0 * c.target_error.unwrap_or(f64::NAN),
            plan.binding.join(", ")
        );
    }
    if c.drift > 0.0 {
        let _ = writeln!(
            out,
            "aging drift during the scan: τ(end)/τ(start) - 1 = {:.1} %",
            100.0 * c.drift
        );
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::io::atomic::write_bytes_atomic(path, &[], true, bytes)?;
    Ok(())
}

fn precision_plot(p: &Point, plan: &Plan, path: &Path) -> Result<()> {
    let mut fig = XyPlot::new(
        &format!("{}: predicted σ(ln τ) vs scan length", p.label),
        "scan length T (s)",
        "σ(ln τ) (prediction, lag covariance)",
    )
    .log_axes(true, true);
    let mut dts: Vec<f64> = plan.grid.iter().map(|c| c.frame_time_s).collect();
    dts.dedup();
    for dt in dts {
        let pts: Vec<_> = plan.grid.iter().filter(|c| c.frame_time_s == dt).collect();
        fig = fig.with(Series::line(
            &format!("Δt = {dt} s"),
            pts.iter().map(|c| c.scan_s).collect(),
            pts.iter().map(|c| c.prediction.sigma_ln_tau).collect(),
        ));
    }
    let (lo, hi) = plan.grid.iter().fold((f64::INFINITY, 0f64), |(l, h), c| {
        (l.min(c.scan_s), h.max(c.scan_s))
    });
    fig = fig.with(Series::line(
        "target",
        vec![lo, hi],
        vec![plan.target.relative; 2],
    ));
    let c = &plan.grid[plan.chosen];
    fig = fig.with(Series::points(
        if plan.reached { "recommended" } else { "best" },
        vec![c.scan_s],
        vec![c.prediction.sigma_ln_tau],
    ));
    fig.write_png(path)?;
    Ok(())
}

/// What [`run`] planned: the table the command line prints and the plan.json document.
#[derive(Debug, Clone)]
pub struct PlanOutcome {
    /// The tables and lines the command line prints.
    pub text: String,
    /// The plan.json document (written into `out` when given).
    pub json: serde_json::Value,
}

/// Parses the target and the free parameters and checks the options that need no model file.
fn check_options(a: &PlanOptions) -> Result<(Target, FreeParams)> {
    let target = Target::parse(&a.target)?;
    let free = FreeParams::parse(&a.free)?;
    if a.pressure.is_none() && !a.campaign {
        return Err(Error::invalid(
            "command line",
            "give --pressure P or --campaign",
        ));
    }
    if a.mc_repeats > 0 && a.mc_repeats < 10 {
        return Err(Error::out_of_range(
            "command line",
            "--mc-repeats",
            a.mc_repeats,
            "0, or ≥ 10",
        ));
    }
    if let Some(t) = &a.attenuators {
        if a.pressure.is_none() {
            return Err(Error::invalid(
                "command line",
                "--attenuators needs --pressure (the isobar the series is measured at)",
            ));
        }
        crate::twin::attenuators::check_transmissions(t, "--attenuators")?;
        crate::check::check_range("command line", "--systematic", a.systematic, 0.0, 1.0)?;
        crate::check::check_range("command line", "--n-sigma", a.n_sigma, 0.5, 10.0)?;
    }
    Ok((target, free))
}

/// Keeps only the isobar at `a.pressure` (GPa) when one is given, else every isobar.
fn select_isobar(a: &PlanOptions, mut points: Vec<Point>) -> Result<Vec<Point>> {
    if let Some(p) = a.pressure {
        // The first isobar at that pressure in protocol order (compression before a later
        // decompression at the same pressure).
        let i = points
            .iter()
            .position(|q| (q.pressure_gpa - p).abs() < 1e-6)
            .ok_or_else(|| {
                Error::out_of_range(
                    "command line",
                    "--pressure",
                    p,
                    format!(
                        "one of the isobars: {} GPa",
                        pressures(points.iter().map(|q| q.pressure_gpa))
                    ),
                )
            })?;
        points = vec![points.swap_remove(i)];
    }
    Ok(points)
}

/// Checks every output of `a.out` (plan.json and two PNGs per isobar) and creates the folder.
fn prepare_out_dir(a: &PlanOptions, points: &[Point]) -> Result<()> {
    if let Some(o) = &a.out {
        // Every output before any work: none the model file, none a device, no two alike.
        let mut outputs = vec![o.join("plan.json")];
        for p in points {
            let stem = p.label.replace([' ', '/'], "_");
            outputs.push(o.join(format!("precision_{stem}.png")));
            outputs.push(o.join(format!("floor_{stem}.png")));
        }
        let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
        crate::io::atomic::check_outputs(&outputs, &[&a.model], true)?;
        std::fs::create_dir_all(o).map_err(|e| Error::io(o, e))?;
    }
    Ok(())
}

/// The planner's limits for isobar `p` (frame times and budget in s).
fn limits_for(a: &PlanOptions, p: &Point) -> Limits {
    Limits {
        frame_times_s: a.frame_time.map(|v| vec![v]).unwrap_or_default(),
        min_frame_time_s: a.min_frame_time,
        avalanche_frame_time_s: p.avalanches.then_some(0.1),
        max_frames: a.max_frames,
        budget_s: a.budget_hours.map(|h| h * 3600.0),
        min_t_over_tau: a.min_t_over_tau,
        aging_tau_star_s: p.aging_tau_star_s,
        aging_tau_cap_s: p.aging_tau_cap_s,
        max_drift: None,
        detector_pixels: p.detector_pixels,
        dense_bytes_per_pixel: 2.0,
    }
}

/// The isobar's row of the campaign table: the recommended scan, its dose and the
/// accumulated dose `total_dose` (Gy).
fn summary_row(p: &Point, plan: &Plan, dose: Option<f64>, total_dose: f64) -> String {
    let c = &plan.grid[plan.chosen];
    let g = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2e}"));
    format!(
        "{:<22} {:>9.3} {:>8} {:>8} {:>10.0} {:>9.2} {:>6} {:>10} {:>10} {:>12}  {}",
        p.label,
        p.setting.tau_s,
        c.frame_time_s,
        c.n_frames,
        c.scan_s,
        100.0 * c.target_error.unwrap_or(f64::NAN),
        if plan.reached { "yes" } else { "NO" },
        g(p.dose_rate_gy_s),
        g(dose),
        g(dose.map(|_| total_dose)),
        plan.binding.join(", ")
    )
}

/// Runs the Monte Carlo check of the recommended setting `chosen` against the planner's
/// prediction `pred` and prints it; None when not asked for (or when it fails).
fn monte_carlo_check(
    out: &mut String,
    a: &PlanOptions,
    chosen: &Setting,
    pred: &Prediction,
    progress: &dyn Progress,
) -> Option<McResult> {
    if a.mc_repeats == 0 || a.campaign {
        return None;
    }
    let t0 = std::time::Instant::now();
    progress.start("Monte Carlo repeats", a.mc_repeats as u64, "repeats");
    let r = monte_carlo_with_progress(
        chosen,
        &McOptions {
            repeats: a.mc_repeats,
            seed: a.seed,
            ..Default::default()
        },
        &|| progress.inc(1),
    );
    progress.finish();
    let _ = match &r {
        Ok(m) => writeln!(
            out,
            "Monte Carlo ({} repeats, {} of {:.0} pixels simulated, rescaled ×{:.3e}, {:.1} s): \
             σ(ln τ) = {:.3e} ± {:.0} % vs planner {:.3e} (ratio {:.2}; independent-lag \
             Fisher {:.3e}, ratio {:.2}); failed fits {}",
            m.repeats,
            m.sim_pixels,
            chosen.bin_pixels,
            m.pixel_scale,
            t0.elapsed().as_secs_f64(),
            m.sigma_ln_tau,
            100.0 * m.sigma_rel_uncertainty,
            pred.sigma_ln_tau,
            m.sigma_ln_tau / pred.sigma_ln_tau,
            pred.independent_lags_sigma_ln_tau,
            m.sigma_ln_tau / pred.independent_lags_sigma_ln_tau,
            m.failed
        ),
        Err(e) => writeln!(out, "Monte Carlo: {e}"),
    };
    r.ok()
}

/// Prints the ΔC floor `fl` of `chosen` at `b` raw frames per two-time frame.
fn print_floor(out: &mut String, chosen: &Setting, b: usize, fl: &FloorEstimate) {
    let _ = writeln!(
        out,
        "ΔC floor at δt = τ, {} frames per two-time frame, {:.0} px, {} values: {:.3e} \
         (formula: σ_C = {:.3e} × {:.2}); smallest avalanche φ = {}",
        b,
        chosen.bin_pixels,
        fl.n_values,
        fl.formula,
        fl.sigma_c,
        fl.formula / fl.sigma_c,
        if fl.phi_min <= 1.0 {
            format!("{:.2}", fl.phi_min)
        } else {
            format!("none (φ_min = {:.1} > 1)", fl.phi_min)
        }
    );
}

/// The ΔC floor of `chosen` at `b` frames per two-time frame from null simulations (printed);
/// None without Monte Carlo (or when it fails).
fn null_simulation_floor(
    out: &mut String,
    a: &PlanOptions,
    chosen: &Setting,
    b: usize,
    fl: &FloorEstimate,
) -> Option<FloorEstimate> {
    // Enough repeats that the mean width of M values has a sampling error of ~2 %.
    let null_repeats = (4000 / fl.n_values.max(1)).clamp(8, 64);
    let null_floor = if a.mc_repeats > 0 && !a.campaign {
        let sim = ((chosen.bin_pixels).min(1000.0)) as usize;
        floor_null(chosen, b, sim.max(1), null_repeats, a.seed).ok()
    } else {
        None
    };
    if let Some(n) = &null_floor {
        let v = n.null_simulation.unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "ΔC floor from {null_repeats} null simulations: {v:.3e} (formula/null = {:.2})",
            fl.formula / v
        );
    }
    null_floor
}

/// Draws the ΔC floor of `chosen` against the binning (formula line, null point) into `path`.
fn floor_plot(
    p: &Point,
    chosen: &Setting,
    null_floor: Option<&FloorEstimate>,
    path: &Path,
) -> Result<()> {
    // ΔC floor vs binning (formula lines, null points at the chosen binning).
    let bs: Vec<usize> = [1usize, 2, 5, 10, 20, 50, 100, 200, 500]
        .into_iter()
        .filter(|&x| x <= chosen.n_frames / 4)
        .collect();
    let fs: Vec<_> = bs
        .iter()
        .filter_map(|&x| floor_formula(chosen, x).ok())
        .collect();
    let mut fig = XyPlot::new(
        &format!(
            "{}: ΔC noise floor at δt = τ ({:.0} px/bin)",
            p.label, chosen.bin_pixels
        ),
        "raw frames per two-time frame",
        "ΔC floor",
    )
    .log_axes(true, true)
    .with(Series::line(
        "formula",
        fs.iter().map(|f| f.bin_frames as f64).collect(),
        fs.iter().map(|f| f.formula).collect(),
    ));
    if let Some(n) = null_floor {
        fig = fig.with(Series::points(
            "null simulation",
            vec![n.bin_frames as f64],
            vec![n.null_simulation.unwrap_or(f64::NAN)],
        ));
    }
    fig.write_png(path)?;
    Ok(())
}

/// Checks the plan of isobar `p`: Monte Carlo, attenuator series, ΔC floor, the figures
/// (with `a.out`); prints them and returns the isobar's plan.json entry.
fn check_isobar(
    out: &mut String,
    a: &PlanOptions,
    p: &Point,
    target: Target,
    limits: &Limits,
    plan: &Plan,
    progress: &dyn Progress,
) -> Result<serde_json::Value> {
    let c = &plan.grid[plan.chosen];
    let chosen = p.setting.with_scan(c.frame_time_s, c.n_frames);
    let mc = monte_carlo_check(out, a, &chosen, &c.prediction, progress);
    let series = match &a.attenuators {
        Some(t) => Some(attenuator_plan(
            p,
            t,
            target,
            limits,
            a.systematic,
            a.n_sigma,
        )?),
        None => None,
    };
    if let Some(s) = &series {
        print_attenuator_plan(out, p, s);
    }
    let b = default_bin_frames(&chosen).min(chosen.n_frames / 4).max(1);
    let fl = match floor_formula(&chosen, b) {
        Ok(f) => f,
        Err(e) => {
            // Too short a scan for a two-time delay of τ: no floor, the rest still stands.
            let _ = writeln!(out, "ΔC floor: not computed ({e})");
            return Ok(serde_json::json!({
                "isobar": p.label, "setting": p.setting, "plan": plan, "monte_carlo": mc,
                "dose_rate_gy_s": p.dose_rate_gy_s, "attenuator_series": series,
                "delta_c_floor": null, "delta_c_null": null,
            }));
        }
    };
    print_floor(out, &chosen, b, &fl);
    let null_floor = null_simulation_floor(out, a, &chosen, b, &fl);
    if let Some(o) = &a.out {
        let stem = p.label.replace([' ', '/'], "_");
        precision_plot(p, plan, &o.join(format!("precision_{stem}.png")))?;
        floor_plot(
            p,
            &chosen,
            null_floor.as_ref(),
            &o.join(format!("floor_{stem}.png")),
        )?;
    }
    Ok(serde_json::json!({
        "isobar": p.label, "setting": p.setting, "plan": plan, "monte_carlo": mc,
        "dose_rate_gy_s": p.dose_rate_gy_s, "attenuator_series": series,
        "delta_c_floor": fl,
        "delta_c_null": null_floor.as_ref().and_then(|n| n.null_simulation),
        "delta_c_null_simulation": null_floor,
    }))
}

/// Prints the campaign table (one `summary` row per isobar) and the total beam time `total` (s).
fn print_campaign(
    out: &mut String,
    a: &PlanOptions,
    target: Target,
    summary: &[String],
    n_isobars: usize,
    total: f64,
) {
    let _ = writeln!(
        out,
        "\n== campaign {}: {} {:.1} % per isobar\n{:<22} {:>9} {:>8} {:>8} {:>10} {:>9} {:>6} {:>10} {:>10} {:>12}  set by",
        a.model.display(),
        target.name(),
        100.0 * target.relative,
        "isobar",
        "τ (s)",
        "Δt (s)",
        "frames",
        "T (s)",
        "pred. %",
        "met",
        "Ḋ (Gy/s)",
        "dose (Gy)",
        "accum. (Gy)"
    );
    for line in summary {
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(
        out,
        "TOTAL beam time for {} isobars: {:.0} s ({:.2} h), counting time only (no \
         pressure changes, alignment or dead time between scans)",
        n_isobars,
        total,
        total / 3600.0
    );
}

/// Runs `plan`: per isobar, the recommended setting, its Monte Carlo check and the ΔC floor;
/// with `out`, writes plan.json and the figures there.
pub fn run(a: &PlanOptions, progress: &dyn Progress) -> Result<PlanOutcome> {
    // Writing into a String cannot fail: the fmt::Results are ignored.
    let mut out = String::new();
    let (target, free) = check_options(a)?;
    let points = select_isobar(a, load_points(a, free)?)?;
    if let Some(t) = a.frame_time {
        crate::check::check_frame_time("command line", "--frame-time", t)?;
    }
    crate::check::check_frame_time("command line", "--min-frame-time", a.min_frame_time)?;
    prepare_out_dir(a, &points)?;
    let mut json = Vec::new();
    let mut total = 0.0;
    let mut total_dose = 0.0;
    let mut summary = Vec::new();
    for p in &points {
        let limits = limits_for(a, p);
        let plan = recommend(&p.setting, target, &limits)?;
        print_plan(&mut out, p, &plan, a.verbose);
        let c = &plan.grid[plan.chosen];
        total += c.scan_s;
        let dose = p.dose_rate_gy_s.map(|r| r * c.scan_s);
        total_dose += dose.unwrap_or(0.0);
        if let Some(d) = dose {
            let _ = writeln!(
                out,
                "dose of the recommended scan: {:.2e} Gy/s × {:.0} s = {d:.2e} Gy; accumulated \
                 {total_dose:.2e} Gy (the planned isobars in protocol order, beam on during the \
                 scans only)",
                p.dose_rate_gy_s.unwrap_or(f64::NAN),
                c.scan_s
            );
        }
        summary.push(summary_row(p, &plan, dose, total_dose));
        json.push(check_isobar(
            &mut out, a, p, target, &limits, &plan, progress,
        )?);
    }
    if points.len() > 1 {
        print_campaign(&mut out, a, target, &summary, points.len(), total);
    }
    let doc = serde_json::json!({
        "model": a.model, "target": target, "isobars": json, "total_beam_time_s": total,
    });
    if let Some(o) = &a.out {
        let text = serde_json::to_string_pretty(&doc)
            .map_err(|e| Error::invalid("plan.json", e.to_string()))?;
        write_atomic(&o.join("plan.json"), text.as_bytes())?;
    }
    Ok(PlanOutcome {
        text: out,
        json: doc,
    })
}
