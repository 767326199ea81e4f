//! `xpcs-twin shard CAMPAIGN --scan K --shard i/N --out part_i.bin`: one detector shard of one
//! scan simulated, counted and correlated into a partial file; `xpcs-twin merge` adds the
//! shards into the scan's results file (see `xpcs_twin::twin::shard`).

use super::twin::CampaignChoice;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::twin::shard::{load_scan_setup, shard_to_file, Shard};

/// Arguments of `shard`.
#[derive(Debug, Args)]
pub struct ShardArgs {
    #[command(flatten)]
    campaign: CampaignChoice,
    /// The scan: its label (e.g. 05-c7GPa) or protocol index (0 = the first isobar).
    #[arg(long)]
    scan: String,
    /// Which shard, i/N (1 ≤ i ≤ N): the detector's pixels, row-major, in N runs of whole
    /// 4096-pixel blocks. N is at most the scan's block count (4 at the Pt reduced scale,
    /// 1092 on the full Eiger2 4M).
    #[arg(long)]
    shard: String,
    /// Partial file to write (binary, documented in docs/formats.md).
    #[arg(long)]
    out: PathBuf,
}

/// Runs `shard`.
pub fn run(a: ShardArgs) -> Result<()> {
    let shard = Shard::parse(&a.shard)?;
    let c = &a.campaign;
    let setup = load_scan_setup(&c.model, c.scale.into(), c.seed, &a.scan)
        .with_context(|| format!("loading campaign {}", c.model.display()))?;
    let (path, sums) = shard_to_file(&setup, shard, &a.out, c.force)?;
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
