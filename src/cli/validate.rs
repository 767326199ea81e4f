//! `xpcs-twin validate [DIR]`: runs every scenario of a validation directory and exits
//! non-zero if any recovered quantity misses its tolerance (see `xpcs_twin::twin::validate`).

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::twin::validate::{run_loaded, scenario_files};

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Validation directory (holding scenarios/*.toml), a scenario directory or one scenario file.
    #[arg(default_value = "validation")]
    dir: PathBuf,
    /// Only the CI set (scenarios with `ci = true`).
    #[arg(long)]
    ci: bool,
    /// Keep each scenario's outputs in OUT/SCENARIO/.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Memory budget (GiB): a scenario whose scans do not fit whole runs them as detector
    /// shards within it (the same results; a full-detector scenario such as qdep-full then
    /// takes tens of minutes). Without it such a scenario is reported NOT RUN.
    #[arg(long, value_name = "GIB")]
    max_memory: Option<f64>,
}

/// Runs `validate`.
pub fn run(a: ValidateArgs) -> Result<()> {
    let budget = super::twin::budget_bytes(a.max_memory)?;
    let files = scenario_files(&a.dir)?;
    let mut failed = Vec::new();
    let mut not_run = Vec::new();
    for p in files {
        let (sc, setup) = xpcs_twin::twin::validate::load_scenario(&p)?;
        if a.ci && !sc.ci {
            continue;
        }
        let stem = p
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().to_string());
        let out = a.out.as_ref().map(|o| o.join(&stem));
        eprintln!("scenario {stem} ...");
        let bars = super::twin::Bars::new(&stem, setup.scans.len());
        let run = run_loaded(&p, &sc, &setup, out.as_deref(), budget, &bars);
        bars.clear();
        let o = match run {
            Ok(o) => o,
            // A run refused before any work because the machine is too small is reported,
            // not scored: nothing was recovered, so nothing missed.
            Err(e @ xpcs_twin::Error::OutOfRange { .. })
                if e.to_string().contains("available") || e.to_string().contains("disk") =>
            {
                println!("NOT RUN {stem}: {e}");
                not_run.push(stem);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        println!(
            "{} {stem}: {} scored, {} missed, {:.0} s",
            if o.passed() { "PASS" } else { "FAIL" },
            o.scored.len(),
            o.misses.len(),
            o.elapsed_s
        );
        for m in &o.misses {
            println!("    miss: {m}");
        }
        for c in &o.checks {
            println!(
                "    check {}: {} ({})",
                if c.passed { "pass" } else { "FAIL" },
                c.name,
                c.detail
            );
        }
        if !o.passed() {
            failed.push(stem);
        }
    }
    if !failed.is_empty() {
        bail!("validation failed: {}", failed.join(", "));
    }
    if not_run.is_empty() {
        println!("all scenarios passed");
    } else {
        println!(
            "all scenarios that ran passed; not run on this machine: {}",
            not_run.join(", ")
        );
    }
    Ok(())
}
