//! `xpcs-twin merge part_*.bin --out results.hdf`: adds the partial files of every shard of a
//! scan (`xpcs-twin shard`) into the scan's results file, the same file `xpcs-twin twin`
//! writes (see `xpcs_twin::twin::shard`).

use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::twin::shard::merge_to_results;

/// Arguments of `merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Partial files of one scan, every shard once, in any order.
    #[arg(required = true)]
    parts: Vec<PathBuf>,
    /// Results file to write (HDF5, APS 8-ID-I layout with the twin's fits and ground truth).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite an existing results file.
    #[arg(long)]
    force: bool,
}

/// Runs `merge`.
pub fn run(a: MergeArgs) -> Result<()> {
    let (path, r) = merge_to_results(&a.parts, &a.out, a.force)?;
    eprintln!(
        "{}: {} partial files merged, {} pixels, {} photons; τ(region) = {:.4} s → {}",
        r.label,
        a.parts.len(),
        r.n_pixels,
        r.total_counts,
        r.region.fit.value("tau").unwrap_or(f64::NAN),
        path.display()
    );
    Ok(())
}
