//! `xpcs-twin shard CAMPAIGN --scan K --shard i/N --out part_i.bin`: one detector shard of one
//! scan simulated, counted and correlated into a partial file; `xpcs-twin merge` adds the
//! shards into the scan's results file, `xpcs-twin twin --partials` every scan's into the
//! campaign's outputs (see `xpcs_twin::twin::shard`). `--list-json` prints the scans and their
//! shard limits for a scheduler.

use super::twin::CampaignChoice;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::twin::shard::{list_scans, load_scan_setup, shard_to_file, Shard};

/// Arguments of `shard`.
#[derive(Debug, Args)]
pub struct ShardArgs {
    #[command(flatten)]
    campaign: CampaignChoice,
    /// The scan: its label (e.g. 09-c7GPa) or protocol index (0 = the first isobar).
    #[arg(long, required_unless_present = "list_json")]
    scan: Option<String>,
    /// Which shard, i/N (1 ≤ i ≤ N): the detector's pixels, row-major, in N runs of whole
    /// 4096-pixel blocks. N is at most the scan's block count (4 at the Pt reduced scale,
    /// 1092 on the full Eiger2 4M).
    #[arg(long, required_unless_present = "list_json")]
    shard: Option<String>,
    /// Partial file to write (binary, documented in docs/formats.md).
    #[arg(long, required_unless_present = "list_json")]
    out: Option<PathBuf>,
    /// Run nothing: print the campaign's scans at this scale as JSON on stdout, for a
    /// scheduler (campaign, scale, seed, and per scan: index, label, frames, pixels and
    /// max_shards, the largest N of --shard i/N).
    #[arg(long, conflicts_with_all = ["scan", "shard", "out"])]
    list_json: bool,
}

/// Runs `shard`.
pub fn run(a: ShardArgs) -> Result<()> {
    let c = &a.campaign;
    let loading = || format!("loading campaign {}", c.model.display());
    let (Some(scan), Some(shard), Some(out)) = (&a.scan, &a.shard, &a.out) else {
        let list = list_scans(&c.model, c.scale.into(), c.seed).with_context(loading)?;
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    };
    let shard = Shard::parse(shard)?;
    let setup = load_scan_setup(&c.model, c.scale.into(), c.seed, scan).with_context(loading)?;
    let (path, sums) = shard_to_file(&setup, shard, out, c.force)?;
    let [ts, tc, tk] = sums.timing_s;
    eprintln!(
        "{} shard {shard}: pixels {:?}, {} photons; simulate {ts:.1} s, count {tc:.1} s, \
         correlate {tk:.1} s → {}",
        setup.scans[0].label,
        sums.pixels,
        sums.total_counts(),
        path.display()
    );
    Ok(())
}
