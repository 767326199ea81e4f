//! What a twin run leaves in its output directory: the seeds' figures (PNG), `report.md` and
//! `summary.json`.
//!
//! Input: the [`CampaignSetup`], the per-scan [`ScanResult`]s and the [`CampaignAnalysis`].
//! Output files (all written atomically): `figures/two_time_<scan>.png`, `figures/g2_<scan>.png`,
//! `figures/tau_q_<scan>.png`, `figures/tau_age_<scan>.png` (aging scans), `figures/tau_vs_pressure.png`,
//! `figures/beta_vs_pressure.png`, `figures/contrast_vs_pressure.png`,
//! `figures/delta_c_vs_pressure.png`, `figures/aging_plateau_6.3GPa.png` (Pt campaigns with a
//! 6.3 GPa scan after t_w = 8000 s), `report.md`, `summary.json`.
//!
//! Reference: the figures of the seeds (Ce Fig. 1–2, Pt Fig. 2–5), docs/model.md §8.

use super::campaign::{CampaignAnalysis, IsobarPoint};
use super::scan::{Compared, ScanResult};
use super::setup::CampaignSetup;
use crate::report::{figures, Series, SeriesStyle, XyPlot, PALETTE};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use xpcs_core::error::{Error, Result};
use xpcs_core::fit::{FitModel, Kww};
use xpcs_io::assemble::{assemble, RunMeta};
use xpcs_io::results::{write_results, Geometry as ResultsGeometry, Node, Tree};
use xpcs_sim::instrument::background::Background;
use xpcs_sim::instrument::dose::DoseRate;
use xpcs_sim::model::Direction;

/// Writes `text` to `path` atomically (temp file + rename); the twin's outputs are replaced on
/// every run of the same `--out` folder, never an input of the run.
pub fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    xpcs_io::atomic::write_bytes_atomic(path, &[], true, text.as_bytes())?;
    Ok(())
}

fn fmt(v: f64) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.5}")
    }
}

/// The figures; returns the written paths.
pub fn write_figures(
    dir: &Path,
    setup: &CampaignSetup,
    scans: &[ScanResult],
    an: &CampaignAnalysis,
) -> Result<Vec<PathBuf>> {
    let fig = dir.join("figures");
    std::fs::create_dir_all(&fig).map_err(|e| Error::io(&fig, e))?;
    let mut out = Vec::new();
    let name = &setup.config.name;
    for s in scans {
        let tt_dt = s.two_time_bin_frames as f64 * s.frame_time_s;
        let ages = s.aging.as_ref().map_or(&[][..], |a| &a.ages[..]);
        let title = format!(
            "{name} {:.1} GPa {:?}: C(t1,t2), {} px, {}-frame bins",
            s.facts.pressure_gpa, s.facts.direction, s.n_pixels, s.two_time_bin_frames
        );
        let mut hm = figures::two_time_with_cuts(&title, s.c2.view(), tt_dt, ages);
        // Shift the cut overlays back to scan time (ages were stored since the pressure step).
        if let Some(a) = &s.aging {
            let _ = a;
            for o in &mut hm.overlays {
                let sh = waiting(setup, s);
                for p in &mut o.points {
                    p.0 -= sh;
                    p.1 -= sh;
                }
                o.label = format!("{} (since step)", o.label);
            }
        }
        let p = fig.join(format!("two_time_{}.png", s.label));
        hm.write_png(&p)?;
        out.push(p);

        let model = Kww;
        let mut g = figures::g2_with_fit(
            &format!(
                "{name} {:.1} GPa {:?}: g2 of {} px, expected g2 (truth) in green",
                s.facts.pressure_gpa, s.facts.direction, s.n_pixels
            ),
            &s.delays_s,
            &s.region.g2,
            &s.region.g2_err,
            &model as &dyn FitModel,
            &s.region.fit,
        );
        g = g.with(
            Series::line(
                "expected g2 (truth)",
                s.delays_s.clone(),
                s.region.truth_g2.clone(),
            )
            .with_color(PALETTE[2])
            .with_style(SeriesStyle::Line),
        );
        let p = fig.join(format!("g2_{}.png", s.label));
        g.write_png(&p)?;
        out.push(p);

        if s.tau_q.iter().flatten().count() >= 2 {
            let pl = s.power_law.as_ref().map(|r| (r, s.facts.q1_inv_angstrom));
            let mut plot = figures::tau_vs_q(
                &format!(
                    "{name} {:.1} GPa {:?}: τ(q)",
                    s.facts.pressure_gpa, s.facts.direction
                ),
                &s.tau_q,
                pl,
            );
            // The truth each q-bin's τ is scored on: the same fit of its expected g2.
            let truth: Vec<(f64, f64)> = s
                .bins
                .iter()
                .filter_map(|b| b.truth_fit.value("tau").map(|t| (b.q_inv_angstrom, t)))
                .filter(|p| p.1.is_finite() && p.0 > 0.0)
                .collect();
            if !truth.is_empty() {
                let alpha = s.truth_power_law.as_ref().and_then(|r| r.value("alpha"));
                let label = match alpha {
                    Some(a) => format!("truth: the same fits of the expected g2 (α = {a:.3})"),
                    None => "truth: the same fits of the expected g2".to_string(),
                };
                plot = plot.with(
                    Series::points(
                        &label,
                        truth.iter().map(|p| p.0).collect(),
                        truth.iter().map(|p| p.1).collect(),
                    )
                    .with_color(PALETTE[2]),
                );
            }
            let p = fig.join(format!("tau_q_{}.png", s.label));
            plot.write_png(&p)?;
            out.push(p);
        }
        if let Some(a) = &s.aging {
            let accelerating = a.acceleration.is_some();
            let mut plot = figures::tau_vs_age(
                &if accelerating {
                    format!(
                        "{name} {:.1} GPa: τ(t_w), steady then accelerating",
                        s.facts.pressure_gpa
                    )
                } else {
                    format!(
                        "{name} {:.1} GPa: τ(t_w) with the aging law",
                        s.facts.pressure_gpa
                    )
                },
                &a.ages,
                (!accelerating).then_some(&a.law),
            );
            if accelerating {
                // τ falls late in the scan: the lower left (early, short τ) is empty.
                plot = plot.legend_at(plotters::chart::SeriesLabelPosition::LowerLeft);
            }
            // An accelerating scan: the model's onset, and the ln τ line of the cuts before and
            // after it.
            if let Some(acc) = &a.acceleration {
                let on = acc.onset_s;
                let taus = a.ages.iter().filter_map(|f| f.report.value("tau"));
                let (lo, hi) = taus.fold((f64::INFINITY, 0.0f64), |(l, h), t| (l.min(t), h.max(t)));
                if lo.is_finite() && hi > 0.0 {
                    plot = plot.with(
                        Series::line(
                            &format!("model's onset of the acceleration, t_w = {on:.0} s"),
                            vec![on, on],
                            vec![0.8 * lo, 1.25 * hi],
                        )
                        .with_color(PALETTE[7])
                        .with_style(SeriesStyle::Dashed),
                    );
                }
                let parts = [
                    ("before the onset", &acc.before, PALETTE[1]),
                    ("after the onset", &acc.after, PALETTE[3]),
                ];
                for (what, g, color) in parts {
                    let Some(g) = g else { continue };
                    let x = vec![g.ages_s[0], g.ages_s[1]];
                    let [k, sk] = g.rate_per_s;
                    let y = x
                        .iter()
                        .map(|t| (g.ln_tau_intercept + k * t).exp())
                        .collect();
                    plot = plot.with(
                        Series::line(
                            &format!(
                                "{what}: d ln τ/d t_w = {} 1/s",
                                crate::fit_results::plus_minus(k, sk)
                            ),
                            x,
                            y,
                        )
                        .with_color(color),
                    );
                }
            }
            // The same cuts of the expected map: the truth each measured τ(t_w) is scored on.
            let truth: Vec<(f64, f64)> = a
                .truth_ages
                .iter()
                .filter_map(|f| f.report.value("tau").map(|t| (f.cut.age_s, t)))
                .filter(|p| p.1.is_finite())
                .collect();
            if !truth.is_empty() {
                plot = plot.with(
                    Series::points(
                        "truth: the same cuts of the expected map",
                        truth.iter().map(|p| p.0).collect(),
                        truth.iter().map(|p| p.1).collect(),
                    )
                    .with_color(PALETTE[2]),
                );
            }
            let p = fig.join(format!("tau_age_{}.png", s.label));
            plot.write_png(&p)?;
            out.push(p);
        }
    }
    for (param, file, ylabel, logy) in [
        ("tau", "tau_vs_pressure.png", "τ (s)", true),
        (
            "kww_exponent",
            "beta_vs_pressure.png",
            "β (KWW exponent)",
            false,
        ),
        (
            "contrast",
            "contrast_vs_pressure.png",
            "c (contrast)",
            false,
        ),
    ] {
        let plot = vs_pressure(name, &an.points, param, ylabel, logy, an);
        let p = fig.join(file);
        plot.write_png(&p)?;
        out.push(p);
    }
    let mut dc = XyPlot::new(
        &format!("{name}: ΔC at δt = τ (90 % width) vs pressure"),
        "pressure (GPa)",
        "ΔC",
    );
    for (dir, col, lab) in [
        (Direction::Compression, 0, "compression"),
        (Direction::Decompression, 1, "decompression"),
    ] {
        let pts: Vec<&IsobarPoint> = an
            .points
            .iter()
            .filter(|p| p.direction == dir && p.delta_c[0].is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let x: Vec<f64> = pts.iter().map(|p| p.pressure_gpa).collect();
        dc = dc.with(
            Series::points(
                &format!("ΔC, {lab}"),
                x.clone(),
                pts.iter().map(|p| p.delta_c[0]).collect(),
            )
            .with_color(PALETTE[col]),
        );
        // The noise line: one value per pressure (several scans at one pressure, e.g. the
        // 6.3 GPa aging series, averaged), so that it does not jump vertically there.
        let mut noise: Vec<(f64, f64, usize)> = Vec::new();
        for p in &pts {
            match noise.last_mut() {
                Some(l) if (l.0 - p.pressure_gpa).abs() < 1e-6 => {
                    l.1 += p.delta_c[2];
                    l.2 += 1;
                }
                _ => noise.push((p.pressure_gpa, p.delta_c[2], 1)),
            }
        }
        dc = dc.with(
            Series::points(
                &format!("noise alone, {lab}"),
                noise.iter().map(|n| n.0).collect(),
                noise.iter().map(|n| n.1 / n.2 as f64).collect(),
            )
            .with_color(PALETTE[col + 2])
            .with_style(SeriesStyle::Line),
        );
        dc = dc.with(
            Series::points(
                &format!("expected map, {lab}"),
                x,
                pts.iter().map(|p| p.delta_c[3]).collect(),
            )
            .with_color(PALETTE[col + 4]),
        );
    }
    let dc = with_legend_headroom(dc, false);
    let p = fig.join("delta_c_vs_pressure.png");
    dc.write_png(&p)?;
    out.push(p);
    if let Some(pl) = &an.aging_plateau {
        let p = fig.join("aging_plateau_6.3GPa.png");
        aging_plateau_plot(name, pl).write_png(&p)?;
        out.push(p);
    }
    Ok(out)
}

/// τ(t_w) at 6.3 GPa across scans (the Pt seed's Fig. 4b inset): the age cuts of the scans
/// before t_w = 8000 s with the aging law fitted through them (and the noise-free law), the law
/// extended to the plateau scan, and that scan's fitted τ at its middle (horizontal bar: its
/// span).
fn aging_plateau_plot(name: &str, pl: &super::campaign::AgingPlateau) -> XyPlot {
    let col = |i: usize| pl.cuts.iter().map(|c| c[i]).collect::<Vec<f64>>();
    let [w0, w1, mid] = pl.late_tw_s;
    let xs: Vec<f64> = (0..=60).map(|k| w1 * k as f64 / 60.0).collect();
    let law =
        |truth: bool| -> Vec<f64> { xs.iter().map(|&x| pl.law_ln_tau(x, truth).exp()).collect() };
    let [t0, st0, ts, sts] = pl.law_tau0_tau_star_s;
    let [d, sd, dt] = pl.gap;
    let plot = XyPlot::new(
        &format!("{name}: τ(t_w) at 6.3 GPa, aging and plateau"),
        "t_w: time since the pressure step (s)",
        "τ (s)",
    )
    .log_axes(false, true)
    .with(
        Series::points(
            &format!("τ of age cuts ({})", pl.fitted_scans.join(", ")),
            col(0),
            col(1),
        )
        .with_errors(col(2))
        .with_color(PALETTE[0]),
    )
    .with(
        Series::points(
            "truth: the same cuts of the expected maps",
            pl.truth_cuts.iter().map(|c| c[0]).collect(),
            pl.truth_cuts.iter().map(|c| c[1]).collect(),
        )
        .with_color(PALETTE[2]),
    )
    .with(
        Series::line(
            &format!("law τ0 e^(t_w/τ*): τ0 = {t0:.1} ± {st0:.1} s, τ* = {ts:.0} ± {sts:.0} s"),
            xs.clone(),
            law(false),
        )
        .with_color(PALETTE[0]),
    )
    .with(
        Series::line("the same law of the truth cuts", xs.clone(), law(true))
            .with_color(PALETTE[2]),
    )
    .with(
        Series::points(
            &format!("{}: τ fit of the whole scan", pl.late_label),
            vec![mid],
            vec![pl.late_tau[0]],
        )
        .with_errors(vec![pl.late_tau[1]])
        .with_color(PALETTE[1]),
    )
    .with(
        Series::line(
            &format!("{} span", pl.late_label),
            vec![w0, w1],
            vec![pl.late_tau[0], pl.late_tau[0]],
        )
        .with_color(PALETTE[1]),
    )
    // Room below the first cuts for the note (an invisible point, no legend entry).
    .with(
        Series::line("", vec![0.0], vec![t0 / 2.5])
            .with_color(plotters::style::RGBColor(255, 255, 255))
            .with_style(SeriesStyle::Line),
    )
    .with_note(&format!(
        "plateau: ln(τ_law/τ_scan) = {d:.2} ± {sd:.2} at t_w = {mid:.0} s (noise-free {dt:.2})"
    ));
    with_legend_headroom(plot, true)
}

/// Figures a run writes once per campaign (the per-scan ones carry the scan label).
const CAMPAIGN_FIGURES: [&str; 5] = [
    "tau_vs_pressure.png",
    "beta_vs_pressure.png",
    "contrast_vs_pressure.png",
    "delta_c_vs_pressure.png",
    "aging_plateau_6.3GPa.png",
];

/// Prefixes of the per-scan figures (`<prefix><scan label>.png`).
const SCAN_FIGURES: [&str; 4] = ["two_time_", "g2_", "tau_q_", "tau_age_"];

/// Whether `s` looks like a scan label ([`super::setup::scan_label`]): `NN-c<P>GPa` or
/// `NN-d<P>GPa` (index of two digits or more).
fn is_scan_label(s: &str) -> bool {
    let Some((k, rest)) = s.split_once('-') else {
        return false;
    };
    k.len() >= 2
        && k.bytes().all(|c| c.is_ascii_digit())
        && (rest.starts_with('c') || rest.starts_with('d'))
        && rest.len() > 4
        && rest.ends_with("GPa")
}

/// Whether `name` is one of the figure names a run writes ([`CAMPAIGN_FIGURES`], or
/// [`SCAN_FIGURES`] + a scan label + `.png`).
pub(super) fn is_own_figure(name: &str) -> bool {
    CAMPAIGN_FIGURES.contains(&name)
        || SCAN_FIGURES.iter().any(|pre| {
            name.strip_prefix(pre)
                .and_then(|r| r.strip_suffix(".png"))
                .is_some_and(is_scan_label)
        })
}

/// Removes what an earlier run left in `dir` that this run did not write: figures of the
/// twin's own names (`figures_written` are this run's) and per-scan files (`scans/<label>.json`,
/// `scans/<label>_results.hdf`) of labels the campaign no longer has, e.g. after scans were
/// added and the labels shifted. Other files are left alone. Returns the removed paths.
pub fn remove_stale_outputs(
    dir: &Path,
    setup: &CampaignSetup,
    figures_written: &[PathBuf],
) -> Result<Vec<PathBuf>> {
    let labels: Vec<&str> = setup.scans.iter().map(|s| s.label.as_str()).collect();
    let mut stale = Vec::new();
    let list = |d: &Path| -> Result<Vec<(PathBuf, String)>> {
        match std::fs::read_dir(d) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(d, e)),
            Ok(rd) => Ok(rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| {
                    let n = e.file_name().to_str()?.to_string();
                    Some((e.path(), n))
                })
                .collect()),
        }
    };
    for (p, n) in list(&dir.join("figures"))? {
        if is_own_figure(&n)
            && !figures_written
                .iter()
                .any(|w| w.file_name() == p.file_name())
        {
            stale.push(p);
        }
    }
    for (p, n) in list(&dir.join("scans"))? {
        let label = n
            .strip_suffix("_results.hdf")
            .or_else(|| n.strip_suffix(".json"));
        if label.is_some_and(|l| is_scan_label(l) && !labels.contains(&l)) {
            stale.push(p);
        }
    }
    for p in &stale {
        std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
    }
    Ok(stale)
}

/// Adds an invisible one-point line (no legend entry) above the data so that the legend,
/// drawn in the upper part of the plot, does not cover any point: the top third of a
/// log axis (×`factor` above the largest value) or of a linear axis.
fn with_legend_headroom(plot: XyPlot, log_y: bool) -> XyPlot {
    let ys = plot
        .series
        .iter()
        .flat_map(|s| s.y.iter().copied())
        .filter(|y| y.is_finite() && (!log_y || *y > 0.0));
    let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    let x = plot
        .series
        .iter()
        .flat_map(|s| s.x.iter().copied())
        .find(|x| x.is_finite());
    let (Some(x), true) = (x, hi.is_finite()) else {
        return plot;
    };
    let top = if log_y {
        hi * (hi / lo).max(10.0).powf(0.6)
    } else {
        hi + 0.7 * (hi - lo).max(hi.abs() * 0.05)
    };
    plot.with(
        Series::line("", vec![x], vec![top])
            .with_color(plotters::style::RGBColor(255, 255, 255))
            .with_style(SeriesStyle::Line),
    )
}

fn waiting(setup: &CampaignSetup, s: &ScanResult) -> f64 {
    setup.scan(s.index).isobar.waiting_time_s
}

fn vs_pressure(
    name: &str,
    points: &[IsobarPoint],
    param: &str,
    ylabel: &str,
    log_y: bool,
    an: &CampaignAnalysis,
) -> XyPlot {
    let mut plot = XyPlot::new(
        &format!("{name}: {ylabel} vs pressure"),
        "pressure (GPa)",
        ylabel,
    )
    .log_axes(false, log_y);
    for (dir, col, lab) in [
        (Direction::Compression, 0, "compression"),
        (Direction::Decompression, 1, "decompression"),
    ] {
        let pts: Vec<(&IsobarPoint, &Compared)> = points
            .iter()
            .filter(|p| p.direction == dir)
            .filter_map(|p| p.get(param).map(|c| (p, c)))
            .filter(|(_, c)| c.value.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        let x: Vec<f64> = pts.iter().map(|p| p.0.pressure_gpa).collect();
        for (free, label, color) in [
            (false, format!("fit, {lab}"), PALETTE[col]),
            (
                true,
                format!("fit, {lab}, unconstrained (T/τ < 3)"),
                plotters::style::RGBColor(160, 160, 160),
            ),
        ] {
            let sel: Vec<&(&IsobarPoint, &Compared)> = pts
                .iter()
                .filter(|p| p.1.unconstrained.is_some() == free)
                .collect();
            if sel.is_empty() {
                continue;
            }
            plot = plot.with(
                Series::points(
                    &label,
                    sel.iter().map(|p| p.0.pressure_gpa).collect(),
                    sel.iter().map(|p| p.1.value).collect(),
                )
                .with_errors(sel.iter().map(|p| p.1.sigma).collect())
                .with_color(color),
            );
        }
        plot = plot.with(
            Series::line(
                &format!("truth (same fit of expected g2), {lab}"),
                x.clone(),
                pts.iter().map(|p| p.1.truth).collect(),
            )
            .with_color(PALETTE[col]),
        );
        let model: Vec<f64> = pts.iter().map(|p| p.1.model.unwrap_or(f64::NAN)).collect();
        if model.iter().any(|m| m.is_finite()) {
            plot = plot.with(
                Series::points(&format!("model parameter, {lab}"), x, model)
                    .with_color(PALETTE[col + 2]),
            );
        }
    }
    plot = with_legend_headroom(plot, log_y);
    if param == "tau" {
        if let Some(c) = &an.crossover {
            if let Some(v) = c.report.fitted() {
                plot = plot.with_note(&format!(
                    "crossover fit (compression): P_c = {:.2} ± {:.2} GPa",
                    v.values[0], v.std_errors[0]
                ));
            }
        }
    }
    plot
}

/// Pass/fail mark.
fn mark(ok: bool) -> &'static str {
    if ok {
        "pass"
    } else {
        "**FAIL**"
    }
}

fn row(scan: &str, what: &str, c: &Compared, max_pull: f64) -> String {
    format!(
        "| {scan} | {what} | {} ({}) | {} | {} | {} | {} | {} | {} |\n",
        c.name,
        c.unit,
        fmt(c.value),
        fmt(c.sigma),
        fmt(c.truth),
        if c.pull.is_finite() {
            format!("{:+.2}", c.pull)
        } else {
            "–".into()
        },
        c.model.map_or("–".to_string(), fmt),
        match (&c.unconstrained, &c.misfit) {
            (Some(why), _) => why.clone(),
            (None, Some(why)) => format!("**FAIL** ({why})"),
            (None, None) => mark(c.passes(max_pull)).to_string(),
        }
    )
}

/// The report's "Beam, background and dose" section: flux on the sample with its
/// provenance, the incoherent fraction used beside the one computed from the cell, the dose
/// rate and the dose of every scan (beam on during the scans only).
fn beam_and_dose(md: &mut String, setup: &CampaignSetup, scans: &[ScanResult]) {
    let inst = &setup.instrument;
    let dose = DoseRate::new(&inst.beam, &inst.dac);
    let _ = writeln!(md, "\n## Beam, background and dose\n");
    let _ = writeln!(
        md,
        "Flux on the sample {} ph/s: {}. Dose rate {} Gy/s in the illuminated column \
         ({} W absorbed in {} kg).\n",
        fmt(inst.beam.flux_ph_s),
        inst.beam.flux_provenance(),
        fmt(dose.gy_per_s),
        fmt(dose.absorbed_power_w),
        fmt(dose.column_mass_kg)
    );
    if let Some(sc) = setup.scans.first() {
        let at_p = inst.dac.at_pressure(sc.facts.pressure_gpa);
        match at_p.and_then(|d| Background::new(&inst.beam, &d, sc.two_theta_c_rad)) {
            Ok(b) => {
                let used = if inst.dac.background_is_computed() {
                    format!(
                        "Incoherent fraction x_b = {:.3} computed from the cell at 2θ = {:.2}° \
                         (the first scan's cell and 2θ; each scan uses its own) and used: x_b = B/G ÷ \
                         (1 + B/G) × (1 − x_s), B/G = {:.3}, x_s = {:.3}.",
                        b.incoherent_fraction(),
                        sc.two_theta_c_rad.to_degrees(),
                        b.ratio_sum(),
                        b.static_fraction
                    )
                } else {
                    format!(
                        "Incoherent fraction x_b = {:.3} used (the cell file's number); computed \
                         from the cell at 2θ = {:.2}°: {:.3} (not used).",
                        sc.incoherent_fraction,
                        sc.two_theta_c_rad.to_degrees(),
                        b.incoherent_fraction()
                    )
                };
                let _ = writeln!(md, "{used}\n");
                let total = (1.0 + b.ratio_sum()) / (1.0 - b.static_fraction);
                let _ = writeln!(
                    md,
                    "| component | ratio to the glass signal | share of the detected total |\n|---|---|---|"
                );
                let _ = writeln!(
                    md,
                    "| glass, coherent (the signal) | 1 | {:.3} |",
                    1.0 / total
                );
                for k in &b.components {
                    let _ = writeln!(
                        md,
                        "| {} | {:.4} | {:.4} |",
                        k.name,
                        k.ratio,
                        k.ratio / total
                    );
                }
                let _ = writeln!(
                    md,
                    "| static (gasket tails, x_s, assumption) | | {:.3} |\n",
                    b.static_fraction
                );
            }
            Err(e) => {
                let _ = writeln!(md, "Incoherent fraction not computed from the cell: {e}\n");
            }
        }
    }
    let _ = writeln!(
        md,
        "Dose per isobar: beam on during the scans only, accumulated in protocol order \
         (docs/physics.md §3).\n"
    );
    let _ = writeln!(
        md,
        "| scan | P (GPa) | dose rate (Gy/s) | beam on (s) | dose (Gy) | accumulated dose (Gy) |\n\
         |---|---|---|---|---|---|"
    );
    let mut total = 0.0;
    for s in scans {
        let t = s.n_frames as f64 * s.frame_time_s;
        let rate = setup
            .scans
            .iter()
            .find(|x| x.index == s.index)
            .map_or(dose.gy_per_s, |x| x.dose_rate_gy_s);
        total += rate * t;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.label,
            s.facts.pressure_gpa,
            xpcs_core::check::sig(rate, 2),
            fmt(t),
            xpcs_core::check::sig(rate * t, 2),
            xpcs_core::check::sig(total, 2)
        );
    }
    let _ = writeln!(
        md,
        "| campaign | | | | | {} |",
        xpcs_core::check::sig(total, 2)
    );
}

/// The report's "FSDP position q1(P)" section: q1 fitted per scan from the azimuthally
/// averaged intensity, and the shift dq1/dP (its pass/fail is a qualitative check).
fn q1_section(md: &mut String, an: &CampaignAnalysis) {
    use crate::fit_results::plus_minus;
    use xpcs_core::check::sig;
    let _ = writeln!(md, "\n## FSDP position q1(P) from the frames\n");
    let q = match &an.q1_shift {
        Ok(q) => q,
        Err(e) => {
            let _ = writeln!(md, "Not fitted: {e}\n");
            return;
        }
    };
    let _ = writeln!(
        md,
        "Time-averaged intensity of the analysed pixels (Kossel lines masked), averaged over \
         azimuth in {} q bins, fitted with a Gaussian peak on a straight background; truth = the \
         same fit of the expected intensities; model = the sample's q1(0) + dq1/dP · P.\n",
        super::q1fit::N_Q_BINS
    );
    let _ = writeln!(
        md,
        "| scan | P (GPa) | pixels | q1 fit (Å⁻¹) | q1 truth (Å⁻¹) | q1 model (Å⁻¹) | pull (fit − truth)/σ |\n\
         |---|---|---|---|---|---|---|"
    );
    for p in &q.points {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.5} | {:.5} | {:+.2} |",
            p.label,
            p.pressure_gpa,
            p.n_pixels,
            plus_minus(p.value, p.sigma),
            p.truth,
            p.model,
            (p.value - p.truth) / p.sigma
        );
    }
    let (s, e) = q.fit.slope();
    let (q0, e0) = q.fit.line_at(0.0);
    let _ = writeln!(
        md,
        "\n| quantity | fit | truth | model | (fit − model)/σ | |\n|---|---|---|---|---|---|\n\
         | dq1/dP (Å⁻¹/GPa) | {} | {} | {} | {:+.2} | {} |\n\
         | q1 at 0 GPa (Å⁻¹) | {} | {:.5} | {:.5} | {:+.2} | |\n\
         | χ² / degrees of freedom of the line | {:.1} / {} | | | | |\n",
        plus_minus(s, e),
        sig(q.truth_fit.slope().0, 3),
        sig(q.model_slope, 3),
        q.pull_model(),
        mark(q.passes()),
        plus_minus(q0, e0),
        q.truth_fit.line_at(0.0).0,
        q.points
            .first()
            .map_or(f64::NAN, |p| p.model - q.model_slope * p.pressure_gpa),
        (q0 - q
            .points
            .first()
            .map_or(f64::NAN, |p| p.model - q.model_slope * p.pressure_gpa))
            / e0,
        q.fit.chi2,
        q.fit.dof
    );
}

/// The header of the report's comparison tables (one [`row`] per compared quantity).
const COMPARISON_HEAD: &str = "| scan | fit | quantity | value | σ | truth | pull | model | |\n|---|---|---|---|---|---|---|---|---|\n";

/// The markdown report; also returns the number of failed comparisons and checks.
pub fn report_markdown(
    setup: &CampaignSetup,
    scans: &[ScanResult],
    an: &CampaignAnalysis,
) -> (String, usize) {
    let tol = &setup.config.tolerances;
    let mut md = String::new();
    let mut fails = 0;
    report_header(&mut md, setup, scans);
    scans_table(&mut md, scans);
    beam_and_dose(&mut md, setup, scans);
    fails += fit_sections(&mut md, an, tol.max_abs_pull);
    delta_c_section(&mut md, setup, scans);
    q1_section(&mut md, an);
    fails += checks_section(&mut md, an);
    pull_statistics_section(&mut md, scans);
    let _ = writeln!(md, "\n## Per q-bin fits\n");
    md.push_str(COMPARISON_HEAD);
    fails += comparison_rows(
        &mut md,
        an.all.iter().filter(|a| a.1.starts_with("q-bin")),
        tol.max_abs_pull,
    );
    let n_cmp = an.all.len() + an.crossover_compared.len();
    let _ = writeln!(
        md,
        "\n**{} of {} comparisons and checks failed** (|pull| > {} or a failed check; with \
         {n_cmp} pulls, about {:.1} beyond 3σ are expected by chance).",
        fails,
        n_cmp + an.checks.len(),
        tol.max_abs_pull,
        n_cmp as f64 * 0.0027
    );
    let _ = writeln!(
        md,
        "\nFigures: `figures/`. Numbers: `summary.json`. Per-scan results: `scans/`."
    );
    (md, fails)
}

/// The report's title and opening paragraphs: program, campaign, region of interest and
/// what the pulls compare.
fn report_header(md: &mut String, setup: &CampaignSetup, scans: &[ScanResult]) {
    let tol = &setup.config.tolerances;
    let c = &setup.config;
    let _ = writeln!(md, "# xpcs-twin campaign report: {}\n", c.name);
    let _ = writeln!(
        md,
        "xpcs-twin {} · campaign `{}` · sample `{}` · scale **{}** · seed {} · {} scans (wall \
         times: timing.json)\n",
        env!("CARGO_PKG_VERSION"),
        setup.path.display(),
        setup.sample_path.display(),
        setup.scale.name(),
        setup.seed,
        scans.len(),
    );
    let r = &setup.roi;
    let _ = writeln!(
        md,
        "Detector {} ({} × {} px); region of interest {} × {} px from row {}, column {}{}. \
         Statistical errors scale as 1/sqrt(N_pix): a reduced run's σ are about \
         sqrt(N_full/N_roi) larger than the beamline's.\n",
        setup.config.instrument.detector,
        r.det_rows,
        r.det_cols,
        r.rows,
        r.cols,
        r.row0,
        r.col0,
        if r.is_full() { " (whole detector)" } else { "" }
    );
    let _ = writeln!(
        md,
        "Ground truth = the same estimator and the same fit applied to the exact expected \
         correlations of what was simulated (docs/model.md §2), so a pull is (fit − truth)/σ. The \
         model column gives the physical parameter where one exists (τ at q1 of a stationary \
         isobar; τ0, τ* of the aging law; the sample's β), for reference only: a scan-averaged \
         g2 of an aging glass is not τ0. Pass: |pull| ≤ {}.\n",
        tol.max_abs_pull
    );
}

/// The report's "Scans" table: pressure, frames, pixels, photons and contrast of every scan.
fn scans_table(md: &mut String, scans: &[ScanResult]) {
    let _ = writeln!(md, "## Scans\n");
    let _ = writeln!(
        md,
        "| scan | P (GPa) | branch | frames × δt | pixels | photons | photons/px/frame | correlator | contrast (instrument) |\n|---|---|---|---|---|---|---|---|---|"
    );
    for s in scans {
        let _ = writeln!(
            md,
            "| {} | {} | {:?} | {} × {} s | {} | {:.3e} | {} | {} | {} |",
            s.label,
            s.facts.pressure_gpa,
            s.facts.direction,
            s.n_frames,
            s.frame_time_s,
            s.n_pixels,
            s.total_counts as f64,
            fmt(s.total_counts as f64 / (s.n_pixels as f64 * s.n_frames as f64)),
            s.correlator,
            fmt(s.contrast_model),
        );
    }
}

/// Appends one comparison [`row`] per (scan, fit, comparison) of `rows`; returns how many
/// fail (|pull| > `max_pull`).
fn comparison_rows<'a>(
    md: &mut String,
    rows: impl Iterator<Item = &'a (String, String, Compared)>,
    max_pull: f64,
) -> usize {
    let mut fails = 0;
    for (scan, what, cmp) in rows {
        if !cmp.passes(max_pull) {
            fails += 1;
        }
        md.push_str(&row(scan, what, cmp, max_pull));
    }
    fails
}

/// The report's fit sections: τ, β, c of the whole region, the pressure dependence (crossover
/// fit), aging and τ(q); returns the number of failed comparisons (|pull| > `max_pull`).
fn fit_sections(md: &mut String, an: &CampaignAnalysis, max_pull: f64) -> usize {
    let mut fails = 0;
    let _ = writeln!(md, "\n## τ, β, c per isobar (whole region, q ≈ q1)\n");
    md.push_str(COMPARISON_HEAD);
    fails += comparison_rows(md, an.all.iter().filter(|a| a.1 == "region"), max_pull);
    let _ = writeln!(md, "\n## Pressure dependence (compression)\n");
    if an.crossover_compared.is_empty() {
        let _ = writeln!(
            md,
            "No crossover fit (fewer than 5 compression isobars with τ).\n"
        );
    } else {
        md.push_str(COMPARISON_HEAD);
        for cmp in &an.crossover_compared {
            if !cmp.passes(max_pull) {
                fails += 1;
            }
            md.push_str(&row("campaign", "ln τ(P) two slopes", cmp, max_pull));
        }
    }
    let _ = writeln!(md, "\n## Aging and τ(q)\n");
    let extra: Vec<_> = an
        .all
        .iter()
        .filter(|a| a.1 == "aging law" || a.1 == "τ(q) power law")
        .collect();
    if extra.is_empty() {
        let _ = writeln!(md, "No aging scan and no τ(q) fit.\n");
    } else {
        md.push_str(COMPARISON_HEAD);
        fails += comparison_rows(md, extra.into_iter(), max_pull);
    }
    fails
}

/// The report's "ΔC at δt = τ" section: ΔC, its noise width, the expected map's ΔC and the
/// analytic floor of every scan that has them.
fn delta_c_section(md: &mut String, setup: &CampaignSetup, scans: &[ScanResult]) {
    let _ = writeln!(md, "\n## ΔC at δt = τ\n");
    let _ = writeln!(
        md,
        "ΔC is the width of the narrowest interval holding {:.0} % of C(t, t + δt), δt ≈ the \
         fitted τ, on the whole region's two-time map rebinned to the same frame in every scan \
         (so that its noise is the same at every pressure). The noise width is the same \
         statistic of the measured minus the expected map (noise alone); ΔC of the expected map \
         is the heterogeneity of the simulated dynamics without noise. The analytic floor \
         (σ_C normalised by the measured means, times the width of the narrowest 90 % interval \
         of the diagonal's values: `plan::noise::delta_c_floor_for`, docs/planner.md) \
         is shown for reference.\n",
        100.0 * setup.config.analysis.delta_c_fraction
    );
    let _ = writeln!(
        md,
        "| scan | frame (s) | δt (s) | ΔC | noise width | ΔC of the expected map | analytic floor |\n|---|---|---|---|---|---|---|"
    );
    for s in scans {
        if let Some(d) = &s.delta_c {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                fmt(d.bin_s),
                fmt(d.delay_s),
                fmt(d.value),
                fmt(d.noise),
                fmt(d.truth),
                fmt(d.floor)
            );
        }
    }
}

/// The report's "Qualitative checks" list; returns the number of failed checks.
fn checks_section(md: &mut String, an: &CampaignAnalysis) -> usize {
    let mut fails = 0;
    let _ = writeln!(md, "\n## Qualitative checks (the seeds' statements)\n");
    for ch in &an.checks {
        if !ch.passed {
            fails += 1;
        }
        let _ = writeln!(md, "- {} — {}: {}", mark(ch.passed), ch.name, ch.detail);
    }
    fails
}

/// The report's "Are the error bars honest?" table: mean and RMS of the per q-bin pulls of
/// τ, β and c in every scan (at least two finite pulls).
fn pull_statistics_section(md: &mut String, scans: &[ScanResult]) {
    let _ = writeln!(md, "\n## Are the error bars honest? (per q-bin pulls)\n");
    let _ = writeln!(
        md,
        "The q-bins hold disjoint pixels, so their pulls are independent draws: with honest σ \
         their mean is 0 ± 1/sqrt(n) and their RMS is 1 within about ±sqrt(1/(2n)). \
         The σ are jackknife errors over 32 pixel groups per bin (refits to the \
         leave-one-group-out g2), which include the correlation between multi-tau lags that \
         per-lag least-squares errors miss.\n"
    );
    let _ = writeln!(
        md,
        "| scan | quantity | n | mean pull | RMS pull |\n|---|---|---|---|---|"
    );
    for s in scans {
        for q in ["tau", "kww_exponent", "contrast"] {
            let p: Vec<f64> = s
                .bins
                .iter()
                .filter_map(|b| b.compared.iter().find(|c| c.name == q))
                .filter(|c| c.unconstrained.is_none())
                .map(|c| c.pull)
                .filter(|p| p.is_finite())
                .collect();
            if p.len() >= 2 {
                let m = p.iter().sum::<f64>() / p.len() as f64;
                let rms = (p.iter().map(|x| x * x).sum::<f64>() / p.len() as f64).sqrt();
                let _ = writeln!(
                    md,
                    "| {} | {q} | {} | {m:+.2} | {rms:.2} |",
                    s.label,
                    p.len()
                );
            }
        }
    }
}

/// Per-scan JSON, `scans/<scan>.json`: g2 per bin with errors and truth, fits, two-time
/// settings. The results HDF5 are written as each scan finishes ([`write_scan_results`]).
pub fn write_scans(dir: &Path, setup: &CampaignSetup, scans: &[ScanResult]) -> Result<()> {
    let d = dir.join("scans");
    std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
    for s in scans {
        let doc = serde_json::json!({
            "program": format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
            "campaign": setup.config.name,
            "scale": setup.scale.name(),
            "campaign_seed": setup.seed,
            "scan": s,
        });
        let text =
            serde_json::to_string(&doc).map_err(|e| Error::invalid("scan json", e.to_string()))?;
        write_text_atomic(&d.join(format!("{}.json", s.label)), &text)?;
    }
    Ok(())
}

/// `timing.json`: the campaign's wall time and each scan's (`walls_s`, from its start to its
/// results written), with the scan's stage times (summed over its shards, which may run
/// several at a time: their sum can exceed the wall time) and its photons per second of wall
/// time. The one output of `twin` that differs between two runs of the same campaign: every
/// other file (report.md, summary.json, the figures, the scans' JSON and HDF5) is
/// byte-identical.
pub fn write_timing(
    dir: &Path,
    scans: &[ScanResult],
    walls_s: &[f64],
    elapsed_s: f64,
) -> Result<()> {
    let per_scan: Vec<serde_json::Value> = scans
        .iter()
        .zip(walls_s)
        .map(|(s, &wall)| {
            let stages: serde_json::Map<String, serde_json::Value> = s
                .timing_s
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::json!(v)))
                .collect();
            serde_json::json!({
                "scan": s.label,
                "pressure_gpa": s.facts.pressure_gpa,
                "wall_s": wall,
                "stage_times_s": stages,
                "photons": s.total_counts,
                "photons_per_wall_s": if wall > 0.0 { s.total_counts as f64 / wall } else { 0.0 },
            })
        })
        .collect();
    let doc = serde_json::json!({
        "program": format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
        "elapsed_s": elapsed_s,
        "scans": per_scan,
    });
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::invalid("timing.json", e.to_string()))?;
    write_text_atomic(&dir.join("timing.json"), &text)
}

/// The results file name of a scan (`<scan>_results.hdf`, the name the APS viewer lists and
/// labels without its suffix).
pub fn results_file_name(label: &str) -> String {
    format!("{label}_results.hdf")
}

fn tree_fit(f: &xpcs_core::fit::FitReport) -> Tree {
    let mut t = Tree::new();
    t.insert("model".into(), Node::Text(f.model.clone()));
    match f.fitted() {
        Some(v) => {
            for (i, n) in f.param_names.iter().enumerate() {
                t.insert(n.clone(), Node::scalar(v.values[i]));
                t.insert(format!("{n}_err"), Node::scalar(v.std_errors[i]));
            }
            t.insert("chi2_red".into(), Node::scalar(v.chi2_red));
        }
        None => {
            t.insert(
                "failure".into(),
                Node::Text(f.failure().unwrap_or("").to_string()),
            );
        }
    }
    t
}

/// The results HDF5 of one scan, `<dir>/<scan>_results.hdf`, assembled by
/// [`xpcs_io::assemble::assemble`] as the `correlate` command does: the APS 8-ID-I layout
/// with g2 and its error for every q-bin at every multi-tau lag, the partition, the
/// intensities (`intensity_vs_time` over every dynamic bin), the two-time maps of every q-bin
/// (`/xpcs/twotime`, when the scan still holds them); under `/xpcs_twin`: seed, version,
/// estimator, the fits per bin and of the whole region with their ground truth (`fit/`,
/// `ground_truth/`), the expected g2 at the fitted lags, and the whole region's binned
/// two-time map (`region/c2`, with `region/bin_frames`). Returns the written path.
pub fn write_scan_results(dir: &Path, setup: &CampaignSetup, s: &ScanResult) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    write_scan_results_to(&dir.join(results_file_name(&s.label)), setup, s, true)
}

/// [`write_scan_results`] to the file `path` (refused when it exists, unless `force`).
pub fn write_scan_results_to(
    path: &Path,
    setup: &CampaignSetup,
    s: &ScanResult,
    force: bool,
) -> Result<PathBuf> {
    let ss = &setup.scan(s.index);
    let geo = &setup.instrument;
    let r = &setup.roi;
    let mut extra = Tree::new();
    let mut fit = Tree::new();
    let mut truth = Tree::new();
    for (i, b) in s.bins.iter().enumerate() {
        fit.insert(format!("bin_{:03}", i + 1), Node::Group(tree_fit(&b.fit)));
        truth.insert(
            format!("bin_{:03}", i + 1),
            Node::Group(tree_fit(&b.truth_fit)),
        );
    }
    fit.insert("region".into(), Node::Group(tree_fit(&s.region.fit)));
    truth.insert("region".into(), Node::Group(tree_fit(&s.region.truth_fit)));
    let nl = s.lag_frames.len();
    let nb = s.bins.len();
    let mut tg = Vec::with_capacity(nl * nb);
    for l in 0..nl {
        for b in &s.bins {
            tg.push(b.truth_g2[l]);
        }
    }
    truth.insert(
        "g2".into(),
        Node::F64 {
            shape: vec![nl, nb],
            data: tg,
        },
    );
    truth.insert(
        "lag_frames".into(),
        Node::vec(s.lag_frames.iter().map(|&x| x as f64).collect()),
    );
    truth.insert(
        "bin_width_frames".into(),
        Node::vec(s.bin_width_frames.iter().map(|&x| x as f64).collect()),
    );
    truth.insert("region_g2".into(), Node::vec(s.region.truth_g2.clone()));
    truth.insert("tau_start_s".into(), Node::scalar(s.facts.tau_start_s));
    truth.insert("tau_end_s".into(), Node::scalar(s.facts.tau_end_s));
    truth.insert("kww_exponent".into(), Node::scalar(ss.dynamics.beta()));
    truth.insert("pressure_gpa".into(), Node::scalar(s.facts.pressure_gpa));
    truth.insert(
        "q1_inv_angstrom".into(),
        Node::scalar(s.facts.q1_inv_angstrom),
    );
    truth.insert(
        "avalanche_times_s".into(),
        Node::vec(s.facts.avalanche_times_s.clone()),
    );
    truth.insert("contrast_instrument".into(), Node::scalar(s.contrast_model));
    extra.insert("fit".into(), Node::Group(fit));
    extra.insert("ground_truth".into(), Node::Group(truth));
    let mut region = Tree::new();
    let (n, _) = s.c2.dim();
    region.insert(
        "c2".into(),
        Node::F64 {
            shape: vec![n, n],
            data: s.c2.iter().copied().collect(),
        },
    );
    region.insert(
        "bin_frames".into(),
        Node::scalar(s.two_time_bin_frames as f64),
    );
    region.insert("g2".into(), Node::vec(s.region.g2.clone()));
    region.insert("g2_err".into(), Node::vec(s.region.g2_err.clone()));
    extra.insert("region".into(), Node::Group(region));
    extra.insert("campaign".into(), Node::Text(setup.config.name.clone()));
    extra.insert("scan".into(), Node::Text(s.label.clone()));
    extra.insert("scale".into(), Node::Text(setup.scale.name().into()));
    extra.insert("campaign_seed".into(), Node::scalar(setup.seed as f64));
    extra.insert("correlator".into(), Node::Text(s.correlator.clone()));
    extra.insert(
        "geometry_note".into(),
        Node::Text(format!(
            "detector arm at 2θ_c = {:.4} rad; the direct beam is off the detector; \
             beam_center_* = the detector centre (q = q1) in ROI pixels; bin q centres \
             come from the full geometry",
            ss.two_theta_c_rad
        )),
    );
    let meta = RunMeta {
        start_time: "simulated".into(),
        frame_time_s: s.frame_time_s,
        count_time_s: s.frame_time_s,
        energy_kev: geo.beam.energy_kev,
        geometry: ResultsGeometry {
            beam_center_x_px: r.det_cols as f64 / 2.0 - r.col0 as f64,
            beam_center_y_px: r.det_rows as f64 / 2.0 - r.row0 as f64,
            pixel_size_m: geo.detector.pixel_size_um * 1e-6,
            detector_distance_m: geo.geometry.distance_m,
        },
        seed: s.seed,
        frames: xpcs_core::data::ResolvedSelection::all(s.intensity.n_frames),
        extra,
    };
    let g2 = s.g2_full.clone().without_empty_lags();
    let res = assemble(
        meta,
        &ss.partition,
        Some(&g2),
        &s.intensity,
        s.two_time.as_ref(),
    );
    write_results(path, &res, force)?;
    Ok(path.to_path_buf())
}
