//! The digital twin: a whole high-pressure XPCS campaign simulated and analysed, every
//! recovered number beside its ground truth.
//!
//! Input: a campaign file (`models/<campaign>.toml`, [`crate::config::campaign`]) and a
//! [`Scale`]. Output, in a directory: per scan a results file, the seeds' figures, `report.md`
//! and `summary.json` ([`output`]); in memory, a [`CampaignRun`].
//!
//! ```text
//! campaign.toml ─► setup (dynamics, scene, partition, truth) ─► per isobar: simulate ─►
//!   counting chain ─► correlate (event / dense; multi-tau + binned two-time) ─► fit vs truth
//!   ─► campaign analysis (τ, β, c vs P; crossover, ΔV; ΔC; aging; α) ─► report
//! ```
//!
//! Before any work the run is refused if its isobars overlap in time, a pressure lies outside
//! its τ branch, or the memory / disk it needs exceeds what the machine has ([`resources`]).
//!
//! Reference: docs/model.md §1 (pipeline).

pub mod attenuators;
pub mod calibrate;
pub mod calibrate_aging;
pub mod campaign;
pub mod lsq;
pub mod output;
pub mod q1fit;
pub mod resources;
pub mod scan;
pub mod setup;
pub mod shard;
pub mod validate;

pub use setup::{CampaignSetup, Roi, Scale, ScanSetup};

use std::path::{Path, PathBuf};
use std::time::Instant;
use xpcs_core::error::{Error, Result};

/// Progress callbacks (the CLI draws bars with them).
pub trait Progress: Sync {
    /// Scan `k` of `n` starts.
    fn scan_started(&self, k: usize, n: usize, label: &str);
    /// Scan `k` enters a stage.
    fn stage(&self, k: usize, stage: &str);
    /// Scan `k` is done.
    fn scan_done(&self, k: usize, seconds: f64);
    /// Scan `k` is cut into `plan.count` shards (peak memory estimate `peak_bytes`); only
    /// called for more than one shard.
    fn sharded(&self, _k: usize, _plan: scan::ShardPlan, _peak_bytes: f64) {}
    /// `done` of `count` shards of scan `k` are added, after `elapsed_s` seconds of the scan.
    fn shards_done(&self, _k: usize, _done: usize, _count: usize, _elapsed_s: f64) {}
}

/// No progress output.
pub struct Quiet;

impl Progress for Quiet {
    fn scan_started(&self, _: usize, _: usize, _: &str) {}
    fn stage(&self, _: usize, _: &str) {}
    fn scan_done(&self, _: usize, _: f64) {}
}

/// A finished campaign.
#[derive(Debug, Clone)]
pub struct CampaignRun {
    /// Per-scan results, protocol order.
    pub scans: Vec<scan::ScanResult>,
    /// Campaign analysis.
    pub analysis: campaign::CampaignAnalysis,
    /// Failed comparisons and checks.
    pub failures: usize,
    /// Wall time (s).
    pub elapsed_s: f64,
    /// Files of an earlier run in the output folder that this run does not write (figures
    /// and per-scan files of scans the campaign no longer has), removed.
    pub removed: Vec<PathBuf>,
}

/// Runs every scan and the campaign analysis; writes the outputs into `out` (created) when
/// given. Refuses before any work when [`resources::check`] fails or outputs would be
/// overwritten without `force`, and when a scan does not fit the default memory budget
/// ([`resources::default_budget_bytes`]) whole: validation scenarios the machine is too small
/// for are reported NOT RUN rather than run for hours as shards ([`run_campaign_within`] runs
/// them).
pub fn run_campaign(
    setup: &CampaignSetup,
    out: Option<&Path>,
    force: bool,
    progress: &dyn Progress,
) -> Result<CampaignRun> {
    let source = Source::Simulate {
        max_memory_bytes: None,
        shards: false,
    };
    run_inner(setup, out, force, source, progress)
}

/// [`run_campaign`] within a memory budget (bytes; None = the default): a scan whose whole run
/// does not fit is run as detector shards ([`shard`], [`resources::plan_scan`]), one shard
/// after another (several at a time when the budget allows); the results are bit-identical
/// to a whole run.
pub fn run_campaign_within(
    setup: &CampaignSetup,
    out: Option<&Path>,
    force: bool,
    max_memory_bytes: Option<f64>,
    progress: &dyn Progress,
) -> Result<CampaignRun> {
    let source = Source::Simulate {
        max_memory_bytes,
        shards: true,
    };
    run_inner(setup, out, force, source, progress)
}

/// [`run_campaign`] from shards run elsewhere (`xpcs-twin shard`, e.g. on a cluster): each
/// scan's sums are the partial files `partials/<scan label>/*.bin` ([`shard::partial_files`]),
/// added and refused unless they are every shard of that scan of this campaign, scale and seed
/// once; the analysis, report and outputs are those of a run that simulated the scans
/// (bit-identical numbers: the sums are exact).
pub fn run_campaign_from_partials(
    setup: &CampaignSetup,
    out: Option<&Path>,
    force: bool,
    partials: &Path,
    progress: &dyn Progress,
) -> Result<CampaignRun> {
    run_inner(setup, out, force, Source::Partials(partials), progress)
}

/// Where a run's correlation sums come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Simulated here: whole scans, or shards within a memory budget when `shards`.
    Simulate {
        max_memory_bytes: Option<f64>,
        shards: bool,
    },
    /// Partial files under this folder.
    Partials(&'a Path),
}

fn run_inner(
    setup: &CampaignSetup,
    out: Option<&Path>,
    force: bool,
    source: Source,
    progress: &dyn Progress,
) -> Result<CampaignRun> {
    if let Some(dir) = out {
        for f in ["report.md", "summary.json"] {
            let p = dir.join(f);
            if p.exists() && !force {
                return Err(Error::Overwrite {
                    path: p,
                    reason: "exists (use --force to overwrite)".into(),
                });
            }
        }
        // Every file of the run before any work: none an input (the campaign or sample
        // file), none a device or directory, no two the same file.
        let mut outputs = vec![dir.join("report.md"), dir.join("summary.json")];
        for s in &setup.scans {
            let scans = dir.join("scans");
            outputs.push(scans.join(output::results_file_name(&s.label)));
            outputs.push(scans.join(format!("{}.json", s.label)));
        }
        let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
        xpcs_io::atomic::check_outputs(&outputs, &[&setup.path, &setup.sample_path], true)?;
    }
    let plans = match source {
        Source::Simulate {
            max_memory_bytes,
            shards,
        } => {
            let plans = resources::check(setup, out, max_memory_bytes)?;
            if !shards {
                resources::refuse_shards(setup, &plans, max_memory_bytes)?;
            }
            plans
        }
        // Only the sums and the analysis are held: the disk is checked, not the memory.
        Source::Partials(_) => {
            resources::check_against(setup, None, out.and_then(resources::free_disk_bytes))?
        }
    };
    // Every scan's partial files are listed before any work: a scan without any is refused
    // before an output is written.
    let partials: Vec<Vec<PathBuf>> = match source {
        Source::Partials(dir) => setup
            .scans
            .iter()
            .map(|s| shard::partial_files(setup, s, dir))
            .collect::<Result<_>>()?,
        Source::Simulate { .. } => Vec::new(),
    };
    let t0 = Instant::now();
    let n = setup.scans.len();
    let mut scans = Vec::with_capacity(n);
    let mut walls_s = Vec::with_capacity(n);
    for (k, s) in setup.scans.iter().enumerate() {
        progress.scan_started(k, n, &s.label);
        let ts = Instant::now();
        // The whole set-up of a deferred scan exists only while the scan runs.
        let s = &*setup.build(s)?;
        let on_stage = |st: &str| progress.stage(k, st);
        let mut r = match source {
            Source::Simulate { .. } => {
                let (plan, peak) = plans[k];
                if plan.count > 1 {
                    progress.sharded(k, plan, peak);
                }
                scan::run_scan(setup, s, plan, &on_stage, &|d, n| {
                    progress.shards_done(k, d, n, ts.elapsed().as_secs_f64())
                })?
            }
            Source::Partials(dir) => {
                progress.stage(k, "merge partials");
                let files = &partials[k];
                let n_files = files.len();
                let origin = format!("{}/{}", dir.display(), s.label);
                let sums = shard::sum_partials(setup, s, files, &origin, &|d| {
                    progress.shards_done(k, d, n_files, ts.elapsed().as_secs_f64())
                })?;
                scan::finish_scan(s, &setup.config.analysis, &sums, &on_stage)?
            }
        };
        if let Some(dir) = out {
            // The per-bin two-time maps go to the results file now and are then dropped:
            // a campaign holds one scan's maps at a time.
            progress.stage(k, "write");
            output::write_scan_results(&dir.join("scans"), setup, &r)?;
        }
        r.two_time = None;
        // q1 from the per-pixel intensity now; the map itself is not kept (36 MB a scan on the
        // full Eiger2 4M).
        r.q1 = Some(q1fit::scan_point(setup, s, &r));
        r.intensity.scattering_2d = Vec::new();
        let wall_s = ts.elapsed().as_secs_f64();
        progress.scan_done(k, wall_s);
        walls_s.push(wall_s);
        scans.push(r);
    }
    let analysis = campaign::analyse(setup, &scans)?;
    let elapsed_s = t0.elapsed().as_secs_f64();
    let (md, failures) = output::report_markdown(setup, &scans, &analysis);
    let mut removed = Vec::new();
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let figures = output::write_figures(dir, setup, &scans, &analysis)?;
        output::write_scans(dir, setup, &scans)?;
        output::write_text_atomic(&dir.join("report.md"), &md)?;
        let summary = serde_json::json!({
            "program": format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
            "campaign": setup.config.name,
            "campaign_file": setup.path.display().to_string(),
            "sample_file": setup.sample_path.display().to_string(),
            "scale": setup.scale.name(),
            "roi": setup.roi,
            "seed": setup.seed,
            "partials": match source {
                Source::Partials(d) => Some(d.display().to_string()),
                Source::Simulate { .. } => None,
            },
            "failures": failures,
            "analysis": analysis,
            "scans": scans,
        });
        let text = serde_json::to_string_pretty(&summary)
            .map_err(|e| Error::invalid("summary.json", e.to_string()))?;
        output::write_text_atomic(&dir.join("summary.json"), &text)?;
        output::write_timing(dir, &scans, &walls_s, elapsed_s)?;
        // Last, once every output of this run is in place: an error here leaves a complete
        // new run beside some old files, never a half-written one.
        removed = output::remove_stale_outputs(dir, setup, &figures)?;
    }
    Ok(CampaignRun {
        scans,
        analysis,
        failures,
        elapsed_s,
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deferred set-up (each scan's per-pixel data built while it runs, then dropped) writes
    /// the same report, summary and per-scan JSON as one holding every scan whole, and holds
    /// far less: the light scans keep only their partitions.
    #[test]
    fn deferred_scans_give_the_same_outputs() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let model = root.join("tests/dask/two-isobars.toml");
        let whole = CampaignSetup::load(&model, Scale::Reduced, None).unwrap();
        let deferred = CampaignSetup::load_deferred(&model, Scale::Reduced, None).unwrap();
        assert!(!whole.deferred && deferred.deferred);
        assert!(
            deferred.resident_bytes() < 0.3 * whole.resident_bytes(),
            "{} vs {}",
            deferred.resident_bytes(),
            whole.resident_bytes()
        );
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("whole"), dir.path().join("deferred"));
        let ra = run_campaign(&whole, Some(&a), false, &Quiet).unwrap();
        let rb = run_campaign(&deferred, Some(&b), false, &Quiet).unwrap();
        assert_eq!(ra.failures, rb.failures);
        assert!(rb.scans.iter().all(|s| s.q1.is_some()));
        let read = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
        let mut files = vec!["report.md".to_string(), "summary.json".to_string()];
        for s in &whole.scans {
            files.push(format!("scans/{}.json", s.label));
        }
        for f in &files {
            assert!(read(&a, f) == read(&b, f), "{f} differs");
        }
        // The q1 shift was fitted from the points taken during the run in both cases.
        let q = |r: &CampaignRun| format!("{:?}", r.analysis.q1_shift);
        assert_eq!(q(&ra), q(&rb));
    }

    /// A rerun into the same folder removes the twin's own files of scans the campaign no
    /// longer has (labels that shifted) and leaves every other file alone.
    #[test]
    fn rerun_removes_stale_outputs_only() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let setup = CampaignSetup::load(
            &root.join("tests/dask/two-isobars.toml"),
            Scale::Reduced,
            None,
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let first = run_campaign(&setup, Some(d), false, &Quiet).unwrap();
        assert!(first.removed.is_empty(), "{:?}", first.removed);
        let stale = [
            "figures/g2_05-c7GPa.png",
            "figures/two_time_10-d0.5GPa.png",
            "scans/05-c7GPa.json",
            "scans/05-c7GPa_results.hdf",
        ];
        let foreign = [
            "figures/g2_custom.png",
            "figures/notes.png",
            "scans/notes.json",
            "scans/00-c0.5GPa.txt",
        ];
        for f in stale.iter().chain(&foreign) {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let second = run_campaign(&setup, Some(d), true, &Quiet).unwrap();
        let mut removed: Vec<String> = second
            .removed
            .iter()
            .map(|p| p.strip_prefix(d).unwrap().display().to_string())
            .collect();
        removed.sort();
        let mut want: Vec<String> = stale.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(removed, want);
        for f in stale {
            assert!(!d.join(f).exists(), "{f}");
        }
        for f in foreign {
            assert!(d.join(f).exists(), "{f}");
        }
        for s in &setup.scans {
            assert!(d.join(format!("scans/{}.json", s.label)).exists());
            assert!(d.join(format!("figures/g2_{}.png", s.label)).exists());
        }
        // Every figure a run writes has one of the names the clean-up knows (a figure added
        // without its name there would never be cleaned up).
        for e in std::fs::read_dir(d.join("figures")).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            if !foreign.iter().any(|f| f.ends_with(&n)) {
                assert!(output::is_own_figure(&n), "{n}");
            }
        }
    }
}
