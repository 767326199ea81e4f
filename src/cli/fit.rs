//! `xpcs-twin fit RESULT.hdf`: g2 model fits per q-bin, τ(q) power law, age cuts of the
//! two-time maps with the aging law; written into the results file under `/xpcs_twin/fits`,
//! a JSON summary and PNG figures.
//!
//! Thin glue: the fits are `xpcs_twin::fit`, the figures `xpcs_twin::report::figures`, the file
//! `xpcs_twin::io::results`. Delays are lag × frame_time × stride × avg (s); q in Å⁻¹.
//! Failed fits are recorded with their reason (text), never as NaN values.

use anyhow::{bail, Result};
use clap::Args;
use ndarray::{Array2, Axis};
use std::path::PathBuf;
use xpcs_twin::error::Error;
use xpcs_twin::fit::qdep::{
    fit_bins_jackknife, fit_power_law_from_bins, mask_points_without_data, tau_beta_per_bin,
    TauBeta,
};
use xpcs_twin::fit::twotime::{evenly_spaced_ages, fit_aging_from_ages, tau_vs_age, AgeFit};
use xpcs_twin::fit::{g2_model_by_name, parse_fix, FitModel, FitOptions, FitReport};
use xpcs_twin::io::atomic::{check_output, write_json};
use xpcs_twin::io::results::{read_results, update_results, Node, ResultsFile, Tree};
use xpcs_twin::report::figures;

/// Arguments of `fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Results file (APS layout, e.g. written by `xpcs-twin correlate`); updated in place.
    results: PathBuf,
    /// g2 model: kww, kww-heterodyne or exp.
    #[arg(long, default_value = "kww")]
    model: String,
    /// Hold a parameter fixed, e.g. baseline=1.006 (repeatable).
    #[arg(long)]
    fix: Vec<String>,
    /// Age cuts per two-time map, 2 or more (an aging law needs at least 2 ages).
    #[arg(long, default_value_t = 5)]
    twotime_ages: usize,
    /// Skip the two-time analysis (age cuts and aging law) even when the file holds maps.
    #[arg(long)]
    no_twotime: bool,
    /// Fewest (t1, t2) pairs per delay of an age cut.
    #[arg(long, default_value_t = 10)]
    min_pairs: usize,
    /// Fit the saturating aging law τ = min(τ0 exp(tw/τ*), τ_eq).
    #[arg(long)]
    aging_saturating: bool,
    /// Reference q1 (Å⁻¹) of the power law τ = τ1 (q/q1)^-α (default: the median bin centre).
    #[arg(long)]
    q1: Option<f64>,
    /// Write a JSON summary here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write PNG figures into this folder (created if missing).
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Replace existing fits in the results file and existing JSON/PNG outputs.
    #[arg(long)]
    force: bool,
    /// Report least-squares errors (scaled by χ²_red) even when the file holds the
    /// jackknife replicates `/xpcs/multitau/g2_jackknife` (written by `correlate`). By default
    /// the g2 fits' errors are jackknife errors over pixel groups, which include the
    /// correlation between multi-tau lags that least squares ignores (its errors are then
    /// typically 1.3–2× too small).
    #[arg(long)]
    least_squares_errors: bool,
}

/// The two-time analysis of one processed bin.
struct TwotimeFits {
    bin: u32,
    c2: Array2<f64>,
    ages: Vec<AgeFit>,
    aging: FitReport,
}

/// Delays of the multi-tau g2 (s).
fn delays_s(res: &ResultsFile, m: &xpcs_twin::io::results::Multitau) -> Vec<f64> {
    let scale = res.frame_time_s * (m.stride_frame.max(1) * m.avg_frame.max(1)) as f64;
    m.delay_frames.iter().map(|&d| d as f64 * scale).collect()
}

/// A fit report as tree nodes: converged → values and errors per parameter; failed → reason.
fn report_node(r: &FitReport) -> Node {
    let mut t = Tree::new();
    t.insert("model".into(), Node::Text(r.model.clone()));
    t.insert("n_points".into(), Node::scalar(r.n_points as f64));
    if !r.warnings.is_empty() {
        t.insert("warnings".into(), Node::Text(r.warnings.join("; ")));
    }
    match r.fitted() {
        Some(v) => {
            t.insert("status".into(), Node::Text("converged".into()));
            for (i, name) in r.param_names.iter().enumerate() {
                t.insert(name.clone(), Node::scalar(v.values[i]));
                let err = if r.fixed[i] { 0.0 } else { v.std_errors[i] };
                t.insert(format!("{name}_err"), Node::scalar(err));
            }
            t.insert("chi2_red".into(), Node::scalar(v.chi2_red));
            let fixed: Vec<&str> = r
                .param_names
                .iter()
                .zip(&r.fixed)
                .filter(|(_, &f)| f)
                .map(|(n, _)| n.as_str())
                .collect();
            t.insert("fixed".into(), Node::Text(fixed.join(",")));
        }
        None => {
            let reason = r.failure().unwrap_or("failed");
            t.insert("status".into(), Node::Text(format!("failed: {reason}")));
        }
    }
    Node::Group(t)
}

/// True when every number of a converged report is finite (the solver promises it; checked
/// here because NaN must never reach the file).
fn finite_report(r: &FitReport) -> bool {
    r.fitted().is_none_or(|v| {
        v.values.iter().all(|x| x.is_finite())
            && v.std_errors.iter().all(|x| x.is_finite())
            && v.chi2_red.is_finite()
    })
}

fn checked(r: FitReport, what: &str) -> Result<FitReport> {
    if !finite_report(&r) {
        bail!("internal error: non-finite values in the converged fit of {what}");
    }
    Ok(r)
}

/// Runs `fit`.
pub fn run(a: FitArgs) -> Result<()> {
    let origin = a.results.display().to_string();
    let model: Box<dyn FitModel> = g2_model_by_name(&a.model)?;
    let mut opts = FitOptions::default();
    for f in &a.fix {
        let (name, v) = parse_fix(f)?;
        opts = opts.fix(&name, v);
    }
    if a.twotime_ages < 2 {
        return Err(Error::out_of_range(
            "command line",
            "--twotime-ages",
            a.twotime_ages,
            "≥ 2 (to skip the two-time analysis: --no-twotime)",
        )
        .into());
    }
    let mut res = read_results(&a.results)?;
    if res.multitau.is_none() && res.twotime.is_none() {
        return Err(Error::invalid(
            &origin,
            "no g2: neither /xpcs/multitau nor /xpcs/twotime is present (run `xpcs-twin \
             correlate` first)",
        )
        .into());
    }
    if res.twin.extra.contains_key("fits") && !a.force {
        return Err(Error::Overwrite {
            path: a.results.clone(),
            reason: "already holds fits (/xpcs_twin/fits); pass --force to replace them".into(),
        }
        .into());
    }
    // Refuse existing JSON / plot outputs before any work is done.
    if let Some(j) = &a.json {
        check_output(j, &[&a.results], a.force)?;
    }
    let axes = res.partition.dynamic_axes().to_vec();
    let q: Vec<f64> = axes.iter().map(|b| b.q_inv_angstrom).collect();
    // q is unknown when the file's q-map holds NaN (frames correlated without a q-map with q,
    // geometry or --q-values): per-bin fits go on, τ(q) is refused.
    let q_ok = |x: f64| x.is_finite() && x > 0.0;
    let q_known = q.iter().any(|&x| q_ok(x));
    if !q_known && a.q1.is_some() {
        return Err(Error::invalid(
            &origin,
            "--q1 given but q is unknown in this file (no q values in /xpcs/qmap)",
        )
        .into());
    }

    // Per-bin g2 fits.
    let mut per_bin: Vec<FitReport> = Vec::new();
    let mut g2_data: Option<(Vec<f64>, Array2<f64>, Array2<f64>)> = None;
    if let Some(m) = &res.multitau {
        // Lag 0 carries the shot-noise term (<I²> = <I>² (1 + c) + <I>): never fitted.
        let rows: Vec<usize> = (0..m.delay_frames.len())
            .filter(|&i| m.delay_frames[i] > 0)
            .collect();
        let all_delays = delays_s(&res, m);
        let d: Vec<f64> = rows.iter().map(|&i| all_delays[i]).collect();
        let mut g2 = m.g2.select(Axis(0), &rows).mapv(f64::from);
        let mut err = m.g2_err.select(Axis(0), &rows).mapv(f64::from);
        let mut jk = match (&m.g2_jackknife, a.least_squares_errors) {
            (Some(j), false) => Some(j.select(Axis(1), &rows)),
            _ => None,
        };
        let n_missing = mask_points_without_data(&mut g2, &mut err, jk.as_mut());
        if n_missing > 0 {
            eprintln!(
                "warning: {origin}: {n_missing} of {} (lag, q-bin) points hold no data (g2_err ≤ 0 or \
                 not finite, e.g. g2 = 0 at lags without frame pairs) and are left out of the fits",
                g2.len()
            );
        }
        per_bin = fit_bins_jackknife(
            model.as_ref(),
            &d,
            g2.view(),
            err.view(),
            jk.as_ref().map(|j| j.view()),
            &opts,
        )?
        .into_iter()
        .enumerate()
        .map(|(b, r)| checked(r, &format!("bin {}", b + 1)))
        .collect::<Result<_>>()?;
        g2_data = Some((d, g2, err));
    }
    // τ(q): needs known q centres and ≥ 3 converged bins (2 parameters + 1 dof).
    // τ and β per converged bin (q NaN where unknown); τ(q) uses the bins with a known q.
    let bins: Vec<Option<TauBeta>> = if per_bin.is_empty() {
        Vec::new()
    } else {
        tau_beta_per_bin(&q, &per_bin)
    };
    let bins_q: Vec<Option<TauBeta>> = bins
        .iter()
        .map(|b| b.filter(|b| q_ok(b.q_inv_angstrom)))
        .collect();
    if !q_known && !per_bin.is_empty() {
        eprintln!(
            "{origin}: τ(q) power law not fitted: q unknown (the file's q-map holds no q values; \
             correlate with a q-map file with q, --energy-kev/--distance-m/--pixel-size-um/\
             --beam-center-px, or --q-values)"
        );
    }
    let n_ok = bins_q.iter().flatten().count();
    let mut power: Option<(FitReport, f64)> = None;
    if n_ok >= 3 {
        let q1 = match a.q1 {
            Some(v) => v,
            None => {
                let mut ok: Vec<f64> = bins_q.iter().flatten().map(|b| b.q_inv_angstrom).collect();
                ok.sort_by(f64::total_cmp);
                ok[ok.len() / 2]
            }
        };
        // Jackknife per-bin errors are calibrated: weigh the bins with them as absolute σ
        // (a χ²-scaled σ from a few bins is itself very uncertain).
        let jackknife = per_bin
            .iter()
            .filter(|r| r.is_ok())
            .all(|r| r.error_scale == xpcs_twin::fit::ErrorScale::Jackknife);
        let o = if jackknife {
            FitOptions::default().with_error_scale(xpcs_twin::fit::ErrorScale::Absolute)
        } else {
            FitOptions::default()
        };
        let r = fit_power_law_from_bins(&bins_q, q1, &o)?;
        power = Some((checked(r, "the power law τ(q)")?, q1));
    }

    // Two-time: age cuts and the aging law per processed bin.
    let mut tt: Vec<TwotimeFits> = Vec::new();
    if let (Some(t), false) = (&res.twotime, a.no_twotime) {
        for (&bin, m) in t.processed_bins.iter().zip(&t.c2) {
            // Stored as the upper triangle (zeros below): mirror it, so the map and its
            // colour scale show C(t1,t2) = C(t2,t1) everywhere.
            let mut c2 = m.mapv(f64::from);
            let n = c2.nrows();
            for i in 0..n {
                for j in 0..i.min(c2.ncols()) {
                    c2[[i, j]] = c2[[j, i]];
                }
            }
            let scale = (t.stride_frame.max(1) * t.avg_frame.max(1)) as f64;
            let dt = res.frame_time_s * scale;
            let ages = evenly_spaced_ages(n, dt, a.twotime_ages);
            let fits = tau_vs_age(
                c2.view(),
                dt,
                &ages,
                None,
                a.min_pairs,
                model.as_ref(),
                &opts,
            )?;
            let fits = fits
                .into_iter()
                .map(|f| {
                    let r = checked(f.report, &format!("an age cut of bin {bin}"))?;
                    Ok(AgeFit {
                        cut: f.cut,
                        report: r,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let aging = checked(
                fit_aging_from_ages(&fits, a.aging_saturating, &FitOptions::default())?,
                &format!("the aging law of bin {bin}"),
            )?;
            tt.push(TwotimeFits {
                bin,
                c2,
                ages: fits,
                aging,
            });
        }
    }

    // Tree under /xpcs_twin/fits.
    let mut fits = Tree::new();
    fits.insert("model".into(), Node::Text(a.model.clone()));
    fits.insert("fixed".into(), Node::Text(a.fix.join(",")));
    if !per_bin.is_empty() {
        let mut g = Tree::new();
        for (b, r) in per_bin.iter().enumerate() {
            g.insert(format!("bin_{:03}", b + 1), report_node(r));
        }
        // Converged bins only: arrays never carry NaN placeholders.
        let ok: Vec<(usize, &TauBeta)> = bins
            .iter()
            .enumerate()
            .filter_map(|(i, b)| b.as_ref().map(|b| (i, b)))
            .collect();
        if !ok.is_empty() {
            g.insert(
                "converged_bins".into(),
                Node::vec(ok.iter().map(|(i, _)| (*i + 1) as f64).collect()),
            );
            // Never a NaN placeholder: q is written only when every converged bin has one.
            if ok.iter().all(|(_, b)| q_ok(b.q_inv_angstrom)) {
                g.insert(
                    "q_inv_angstrom".into(),
                    Node::vec(ok.iter().map(|(_, b)| b.q_inv_angstrom).collect()),
                );
            }
            g.insert(
                "tau_s".into(),
                Node::vec(ok.iter().map(|(_, b)| b.tau_s).collect()),
            );
            g.insert(
                "tau_err_s".into(),
                Node::vec(ok.iter().map(|(_, b)| b.tau_err_s).collect()),
            );
            g.insert(
                "kww_exponent".into(),
                Node::vec(ok.iter().map(|(_, b)| b.kww_exponent).collect()),
            );
            g.insert(
                "kww_exponent_err".into(),
                Node::vec(ok.iter().map(|(_, b)| b.kww_exponent_err).collect()),
            );
        }
        fits.insert("g2".into(), Node::Group(g));
    }
    if let Some((r, q1)) = &power {
        let mut g = match report_node(r) {
            Node::Group(g) => g,
            _ => unreachable!("report_node returns a group"),
        };
        g.insert("q1_inv_angstrom".into(), Node::scalar(*q1));
        fits.insert("power_law".into(), Node::Group(g));
    }
    if !tt.is_empty() {
        let mut g = Tree::new();
        for t in &tt {
            let mut b = Tree::new();
            for (k, f) in t.ages.iter().enumerate() {
                let mut n = match report_node(&f.report) {
                    Node::Group(g) => g,
                    _ => unreachable!("report_node returns a group"),
                };
                n.insert("age_s".into(), Node::scalar(f.cut.age_s));
                n.insert("half_width_s".into(), Node::scalar(f.cut.half_width_s));
                b.insert(format!("age_{:02}", k + 1), Node::Group(n));
            }
            b.insert("aging".into(), report_node(&t.aging));
            g.insert(format!("bin_{:03}", t.bin), Node::Group(b));
        }
        fits.insert("twotime".into(), Node::Group(g));
    }

    // Table on stdout.
    println!("{}: model {}", a.results.display(), a.model);
    for (b, r) in per_bin.iter().enumerate() {
        let qs = if q_ok(q[b]) {
            format!("q = {:.4} Å⁻¹", q[b])
        } else {
            "q unknown".into()
        };
        println!("  bin {:3} {qs}: {}", b + 1, r.summary());
    }
    if let Some((r, q1)) = &power {
        println!("  τ(q), q1 = {q1} Å⁻¹: {}", r.summary());
    } else if !q_known && !per_bin.is_empty() {
        println!("  τ(q): not fitted (q unknown)");
    } else if !per_bin.is_empty() {
        println!("  τ(q): not fitted ({n_ok} converged bins with known q; need ≥ 3)");
    }
    for t in &tt {
        for f in &t.ages {
            println!(
                "  two-time bin {} age {:.3} s: {}",
                t.bin,
                f.cut.age_s,
                f.report.summary()
            );
        }
        println!("  two-time bin {} aging: {}", t.bin, t.aging.summary());
    }

    // Figures.
    if let Some(dir) = &a.plots {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let out = |name: String| -> Result<PathBuf> {
            let p = dir.join(name);
            check_output(&p, &[&a.results], a.force)?;
            Ok(p)
        };
        if let Some((d, g2, err)) = &g2_data {
            for (b, r) in per_bin.iter().enumerate() {
                let title = if q_ok(q[b]) {
                    format!("bin {} (q = {:.4} Å⁻¹)", b + 1, q[b])
                } else {
                    format!("bin {} (q unknown)", b + 1)
                };
                let y = g2.column(b).to_vec();
                let e = err.column(b).to_vec();
                figures::g2_with_fit(&title, d, &y, &e, model.as_ref(), r)
                    .write_png(&out(format!("g2_bin_{:03}.png", b + 1))?)?;
            }
        }
        if bins_q.iter().any(Option::is_some) {
            let p = power.as_ref().map(|(r, q1)| (r, *q1));
            figures::tau_vs_q("τ(q)", &bins_q, p).write_png(&out("tau_vs_q.png".into())?)?;
        }
        for t in &tt {
            figures::two_time_with_cuts(
                &format!("C(t1, t2), bin {}", t.bin),
                t.c2.view(),
                res.frame_time_s,
                &t.ages,
            )
            .write_png(&out(format!("twotime_bin_{:03}.png", t.bin))?)?;
            figures::tau_vs_age(&format!("τ(tw), bin {}", t.bin), &t.ages, Some(&t.aging))
                .write_png(&out(format!("tau_vs_age_bin_{:03}.png", t.bin))?)?;
        }
    }

    // JSON summary.
    if let Some(j) = &a.json {
        let summary = serde_json::json!({
            "results": a.results.display().to_string(),
            "model": a.model,
            "fixed": a.fix,
            "q_inv_angstrom": q.iter().map(|&x| q_ok(x).then_some(x)).collect::<Vec<_>>(),
            "q_unknown": !q_known,
            "bins": per_bin,
            "tau_beta": bins,
            "power_law": power.as_ref().map(|(r, q1)| serde_json::json!({"q1_inv_angstrom": q1, "fit": r})),
            "twotime": tt.iter().map(|t| serde_json::json!({
                "bin": t.bin,
                "ages": t.ages.iter().map(|f| serde_json::json!({
                    "age_s": f.cut.age_s,
                    "half_width_s": f.cut.half_width_s,
                    "fit": f.report,
                })).collect::<Vec<_>>(),
                "aging": t.aging,
            })).collect::<Vec<_>>(),
        });
        write_json(j, &summary, &[&a.results], a.force)?;
    }

    // Last: the results file itself (temp + rename; the old file survives any failure).
    res.twin.extra.insert("fits".into(), Node::Group(fits));
    update_results(&a.results, &res)?;
    Ok(())
}
