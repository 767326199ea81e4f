//! Memory and disk a twin run needs, estimated before any work, against what the machine has.
//!
//! Input: a [`CampaignSetup`] (and the output directory). Output: [`Estimate`] per scan and a
//! refusal ([`xpcs_core::Error::OutOfRange`]) naming the scan, the estimate and the limit when the
//! largest scan's peak memory exceeds 80 % of the available memory (Linux `MemAvailable`) or
//! the outputs exceed the free disk space of the output directory.
//!
//! Peak memory of a scan ≈ 3 photon lists (ideal, after the counting chain, and the
//! simulator's per-block lists while assembling) × 8 bytes per pixel-frame with photons
//! (u32 frame + u32 count; the expected number of non-empty pixel-frames is
//! Σ_p N_f (1 − e^{−μ_p})) + CSR offsets + the dense stack when the dense correlator runs
//! (u16 per pixel-frame) + two-time maps (numerator, C and the expected map, 8 bytes per cell)
//! plus 8 KiB per pixel of the simulator blocks in flight (4096 pixels per thread). Disk ≈ per scan the results file (upper
//! triangle of the two-time map in f32, label maps, 2-D intensity) plus 2 MB of figures.

use super::setup::CampaignSetup;
use std::path::Path;
use xpcs_core::error::{Error, Result};

/// Estimated needs of one scan.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Estimate {
    /// Peak memory (bytes).
    pub memory_bytes: f64,
    /// Output size (bytes).
    pub disk_bytes: f64,
}

/// Estimates every scan.
pub fn estimate(setup: &CampaignSetup) -> Vec<Estimate> {
    let a = &setup.config.analysis;
    setup
        .scans
        .iter()
        .map(|s| {
            let nf = s.exposure.n_frames as f64;
            let npx = (s.scene.rows * s.scene.cols) as f64;
            let nonempty: f64 = s
                .scene
                .mean_counts
                .iter()
                .map(|&m| nf * (1.0 - (-m).exp()))
                .sum();
            let photons = 3.0 * 8.0 * nonempty + 2.0 * 8.0 * npx;
            let dense = if s.mean_counts_per_frame >= a.event_occupancy_max {
                2.0 * nf * npx
            } else {
                0.0
            };
            let side = (nf / s.exposure.n_frames.div_ceil(a.two_time_max_side) as f64).floor();
            // Two-time maps of every q-bin plus the region's: accumulator, numerator and C.
            let n_maps = s.partition.n_bins() as f64 + 1.0;
            let tt = 3.0 * 8.0 * side * side * n_maps;
            // Simulator work space: 8 KiB per pixel of the blocks in flight (one per thread).
            let work = 8192.0 * npx.min(4096.0 * rayon::current_num_threads() as f64);
            Estimate {
                memory_bytes: photons + dense + tt + work,
                disk_bytes: 4.0 * side * side / 2.0 * n_maps + 16.0 * npx + 2e6,
            }
        })
        .collect()
}

pub use xpcs_sim::speckle::available_memory_bytes;

/// Free disk space (bytes) of the file system holding `dir` (or its nearest existing parent).
pub fn free_disk_bytes(dir: &Path) -> Option<f64> {
    let mut d = dir.to_path_buf();
    while !d.exists() {
        d = d.parent()?.to_path_buf();
        if d.as_os_str().is_empty() {
            d = ".".into();
        }
    }
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(&d)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let kb: f64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kb * 1024.0)
}

fn gb(b: f64) -> String {
    format!("{:.2} GB", b / 1e9)
}

/// Refuses the run when it cannot fit (see the module doc).
pub fn check(setup: &CampaignSetup, out: Option<&Path>) -> Result<()> {
    check_against(
        setup,
        available_memory_bytes(),
        out.and_then(free_disk_bytes),
    )
}

/// [`check`] against given limits (None = unknown, not checked).
pub fn check_against(
    setup: &CampaignSetup,
    memory_bytes: Option<f64>,
    disk_bytes: Option<f64>,
) -> Result<()> {
    let est = estimate(setup);
    let origin = format!("{} (scale {})", setup.path.display(), setup.scale.name());
    if let Some(avail) = memory_bytes {
        let limit = 0.8 * avail;
        if let Some((k, e)) = est
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.memory_bytes.total_cmp(&b.1.memory_bytes))
        {
            if e.memory_bytes > limit {
                return Err(Error::out_of_range(
                    origin,
                    format!("memory of scan {}", setup.scans[k].label),
                    gb(e.memory_bytes),
                    format!(
                        "≤ {} (80 % of the {} available); use --scale reduced or a smaller roi_px",
                        gb(limit),
                        gb(avail)
                    ),
                ));
            }
        }
    }
    if let Some(free) = disk_bytes {
        let total: f64 = est.iter().map(|e| e.disk_bytes).sum();
        if total > free {
            return Err(Error::out_of_range(
                origin,
                "disk for the outputs",
                gb(total),
                format!("≤ {} free in the output directory", gb(free)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::Scale;

    #[test]
    fn full_pt_scale_is_refused_on_a_small_machine() {
        let root = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let s = CampaignSetup::load(&root.join("models/pt42-eiger.toml"), Scale::Reduced, None)
            .unwrap();
        // The reduced run fits in 2 GB.
        check_against(&s, Some(2e9), Some(1e9)).unwrap();
        let e = check_against(&s, Some(1e6), None).unwrap_err().to_string();
        assert!(
            e.contains("memory") && e.contains("GB") && e.contains("available"),
            "{e}"
        );
        let e = check_against(&s, None, Some(1e3)).unwrap_err().to_string();
        assert!(e.contains("disk"), "{e}");
    }
}
