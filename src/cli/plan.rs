//! `xpcs-twin plan`: how many frames, at what frame time, to reach a precision target.
//!
//! MODEL.toml is a campaign file (models/*.toml: instrument-derived contrast, count rate and
//! q-bins) or a sample file (models/samples/*.toml with its ideal `[scene]`). Prints a table,
//! writes `plan.json` and two PNGs into `--out`. The pipeline is `xpcs_twin::pipeline::plan`;
//! this file parses its arguments.

use super::bars::Bars;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::pipeline::plan::{self, PlanOptions};

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Campaign (models/*.toml) or sample (models/samples/*.toml) file.
    model: PathBuf,
    /// Plan the isobar at this pressure (GPa; the first one in protocol order when the
    /// campaign has two, compression before decompression). A pressure without an isobar is
    /// refused (exit 2) with the list of the campaign's isobar pressures.
    #[arg(long)]
    pressure: Option<f64>,
    /// Plan every isobar: time per isobar and total.
    #[arg(long, conflicts_with = "pressure")]
    campaign: bool,
    /// Precision target: tau=5%, beta=3%, contrast=10%.
    #[arg(long, default_value = "tau=5%")]
    target: String,
    /// Use only this frame time (s), 1e-9 to 1e5.
    #[arg(long)]
    frame_time: Option<f64>,
    /// Most frames per scan.
    #[arg(long, default_value_t = 100_000)]
    max_frames: usize,
    /// Longest beam time per isobar (hours).
    #[arg(long)]
    budget_hours: Option<f64>,
    /// Monte Carlo repeats for the recommended setting (0 = none).
    #[arg(long, default_value_t = 100)]
    mc_repeats: usize,
    /// Free fit parameters (tau is always free).
    #[arg(long, default_value = "contrast,tau,kww_exponent")]
    free: String,
    /// Pixels per q-bin (default: the campaign's median q-bin, or the sample scene / q-bins).
    #[arg(long)]
    bin_pixels: Option<f64>,
    /// q-bins a sample scene is cut into (sample files only).
    #[arg(long, default_value_t = 10)]
    q_bins: usize,
    /// Shortest detector frame (s), 1e-9 to 1e5.
    #[arg(long, default_value_t = 1e-3)]
    min_frame_time: f64,
    /// Smallest T/τ.
    #[arg(long, default_value_t = 5.0)]
    min_t_over_tau: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder for plan.json and the PNGs (replaced on every run; never an input).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also print every (frame time, frames) setting of the grid with its predicted errors.
    #[arg(long)]
    verbose: bool,
    /// Recommend an attenuator series at the --pressure isobar: these transmissions
    /// (comma-separated, each in (0, 1]), the frames each needs for the target, the dose of
    /// each scan and the smallest beam-induced relaxation k (Gy⁻¹) the series detects
    /// (campaign files only; the slope of 1/τ against the dose rate, `--n-sigma` σ).
    #[arg(
        long,
        value_delimiter = ',',
        requires = "pressure",
        value_name = "A,B,..."
    )]
    attenuators: Option<Vec<f64>>,
    /// Scan-to-scan scatter of ln τ added in quadrature to the statistical error of each
    /// step of the attenuator series (pressure drift, aging; 0 to 1).
    #[arg(long, default_value_t = 0.02, value_name = "S")]
    systematic: f64,
    /// Detection threshold of the attenuator series in σ of the slope (0.5 to 10).
    #[arg(long, default_value_t = 3.0, value_name = "N")]
    n_sigma: f64,
}

/// Runs `plan`.
pub fn run(a: PlanArgs) -> Result<()> {
    let opts = PlanOptions {
        model: a.model,
        pressure: a.pressure,
        campaign: a.campaign,
        target: a.target,
        frame_time: a.frame_time,
        max_frames: a.max_frames,
        budget_hours: a.budget_hours,
        mc_repeats: a.mc_repeats,
        free: a.free,
        bin_pixels: a.bin_pixels,
        q_bins: a.q_bins,
        min_frame_time: a.min_frame_time,
        min_t_over_tau: a.min_t_over_tau,
        seed: a.seed,
        out: a.out,
        verbose: a.verbose,
        attenuators: a.attenuators,
        systematic: a.systematic,
        n_sigma: a.n_sigma,
    };
    let done = plan::run(&opts, &Bars::default())?;
    print!("{}", done.text);
    Ok(())
}
