//! `xpcs-twin fit RESULT.hdf`: g2 model fits per q-bin, τ(q) power law, age cuts of the
//! two-time maps with the aging law; written into the results file under `/xpcs_twin/fits`,
//! a JSON summary and PNG figures.
//!
//! Thin glue: the pipeline is `xpcs_twin::fit_results` (fits, table, tree, JSON, figures), the
//! file `xpcs_twin::io::results`.

use anyhow::Result;
use clap::Args;
use std::path::{Path, PathBuf};
use xpcs_twin::error::Error;
use xpcs_twin::fit::{g2_model_by_name, parse_fix, FitModel, FitOptions};
use xpcs_twin::fit_results::{fit_results, FitSettings};
use xpcs_twin::io::atomic::{check_outputs, write_json};
use xpcs_twin::io::results::{read_results, update_results, Node};

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
    let settings = FitSettings {
        model: model.as_ref(),
        model_name: a.model.clone(),
        fixed: a.fix.clone(),
        options: opts,
        twotime_ages: (!a.no_twotime).then_some(a.twotime_ages),
        min_pairs: a.min_pairs,
        aging_saturating: a.aging_saturating,
        q1: a.q1,
        least_squares_errors: a.least_squares_errors,
    };
    let fitted = fit_results(&res, &settings).map_err(|e| match e {
        // The library names the option; the user wants the file too.
        Error::Invalid { origin: o, message } if o == "--q1" => {
            Error::invalid(&origin, format!("--q1 {message}"))
        }
        e => e,
    })?;
    for n in &fitted.notices {
        eprintln!("{origin}: {n}");
    }
    // Every output before writing any: none the results file, no two alike.
    let mut outputs: Vec<PathBuf> = a.json.iter().cloned().collect();
    if let Some(dir) = &a.plots {
        outputs.extend(fitted.plot_names().iter().map(|n| dir.join(n)));
    }
    let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
    check_outputs(&outputs, &[&a.results], a.force)?;

    print!("{}", fitted.table(&a.results));
    if let Some(dir) = &a.plots {
        fitted.write_plots(dir, model.as_ref())?;
    }
    if let Some(j) = &a.json {
        write_json(j, &fitted.summary_json(&a.results), &[&a.results], a.force)?;
    }
    // Last: the results file itself (temp + rename; the old file survives any failure).
    res.twin
        .extra
        .insert("fits".into(), Node::Group(fitted.tree()));
    update_results(&a.results, &res)?;
    Ok(())
}
