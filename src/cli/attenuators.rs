//! `xpcs-twin attenuators [MODEL] --pressure P --out DIR`: the attenuator series of one isobar
//! simulated and analysed (see `xpcs_twin::twin::attenuators`).

use crate::cli::twin::ScaleArg;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use xpcs_twin::twin::attenuators::{check_transmissions, run_series, SeriesOptions};
use xpcs_twin::twin::{CampaignSetup, Scale};

/// Arguments of `attenuators`.
///
/// Scans one isobar of a campaign once per attenuator transmission (the same frames and
/// protocol times, independent noise; the attenuator scales the flux, the count rate, the
/// anvil spots and the dose rate), fits τ of each scan, fits 1/τ = 1/τ₀ + k·Ḋ against the dose
/// rate Ḋ and says whether the beam-induced relaxation k is detected (k̂ > n σ_k) and the
/// smallest k the series can detect. Writes attenuators.md, attenuators.json and
/// figures/attenuators.png into --out. Choose a stationary isobar with a long τ (the effect
/// k·Ḋ·τ₀ is largest there), e.g. `--pressure 0.1` of the Pt campaign.
#[derive(Debug, Args)]
pub struct AttenuatorsArgs {
    /// Campaign file (default: models/pt42-eiger.toml, the Pt campaign).
    #[arg(default_value = "models/pt42-eiger.toml")]
    model: PathBuf,
    /// The isobar (GPa; the first in protocol order at that pressure).
    #[arg(long)]
    pressure: f64,
    /// Attenuator transmissions, comma-separated, each in (0, 1] (1 = no attenuator);
    /// run in this order (interleave them, e.g. 1,0.25,0.5,1, to separate a rate effect from
    /// a drift).
    #[arg(long, default_value = "1,0.5,0.25", value_delimiter = ',')]
    transmissions: Vec<f64>,
    /// Beam-induced relaxation k to simulate (Gy⁻¹, 0 to 1; default: the sample file's
    /// beam_relaxation_per_gy).
    #[arg(long, value_name = "K")]
    relaxation_per_gy: Option<f64>,
    /// Detection threshold: k is detected when k̂ > N σ_k (one-sided; 0.5 to 10).
    #[arg(long, default_value_t = 3.0, value_name = "N")]
    n_sigma: f64,
    /// Scale preset.
    #[arg(long, value_enum, default_value_t = ScaleArg::Reduced)]
    scale: ScaleArg,
    /// Seed (default: the campaign file's).
    #[arg(long)]
    seed: Option<u64>,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Overwrite existing outputs.
    #[arg(long)]
    force: bool,
}

/// Runs `attenuators`.
pub fn run(a: AttenuatorsArgs) -> Result<()> {
    check_transmissions(&a.transmissions, "--transmissions")?;
    let outputs = [
        a.out.join("attenuators.md"),
        a.out.join("attenuators.json"),
        a.out.join("figures").join("attenuators.png"),
    ];
    let refs: Vec<&std::path::Path> = outputs.iter().map(PathBuf::as_path).collect();
    xpcs_twin::io::atomic::check_outputs(&refs, &[&a.model], a.force)?;
    let setup = CampaignSetup::load_at_pressure(
        &a.model,
        Scale::from(a.scale),
        a.seed,
        Some(a.pressure),
        "--pressure",
    )
    .with_context(|| format!("loading campaign {}", a.model.display()))?;
    let bar = ProgressBar::new(a.transmissions.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("attenuators {bar:30} {pos}/{len} scans {msg} ({elapsed})")
            .expect("valid template"),
    );
    let opt = SeriesOptions {
        transmissions: a.transmissions.clone(),
        relaxation_per_gy: a.relaxation_per_gy,
        n_sigma: a.n_sigma,
    };
    let r = run_series(&setup, 0, &opt, &|i, _n, st| {
        bar.set_position(i as u64);
        bar.set_message(st.to_string());
    })?;
    bar.finish_and_clear();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    r.write(&a.out, &setup.config.name)?;
    let (k, s) = r.slope();
    println!(
        "{}: slope of 1/τ against the dose rate k̂ = {} Gy⁻¹ ({:.1} σ), simulated k = {:e} Gy⁻¹: \
         {}; smallest detectable k ({} σ) = {:.2e} Gy⁻¹; report {}",
        r.scan_label,
        xpcs_twin::fit_results::plus_minus(k, s),
        k / s,
        r.relaxation_per_gy,
        if r.detected() {
            "DETECTED"
        } else {
            "not detected"
        },
        r.n_sigma,
        r.detection_limit_per_gy(),
        a.out.join("attenuators.md").display()
    );
    Ok(())
}
