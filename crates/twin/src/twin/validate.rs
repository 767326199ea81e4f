//! Validation scenarios: a campaign (or a focused case) plus what must hold, run and judged.
//!
//! Input: scenario files `validation/scenarios/*.toml` ([`ScenarioConfig`]): a campaign file,
//! which comparisons are scored (`region`, `all`, `aging`, `alpha`), scans to leave out,
//! the qualitative checks that must pass, and optional model tolerances (α within an absolute
//! amount, τ* within a relative amount). Output: [`ScenarioOutcome`] per scenario: every
//! scored comparison, every miss with its numbers; a scenario passes when every scored
//! |pull| ≤ the campaign's `max_abs_pull` (a failed fit is a miss), every required check
//! passes and the model tolerances hold.
//!
//! Reference: docs/model.md §2 (ground truth of an estimator), §9 (the studies' statements).

use super::campaign::Check;
use super::scan::Compared;
use super::setup::scan_label;
use super::{run_campaign, CampaignRun, CampaignSetup, Progress, Scale};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xpcs_core::error::{Error, Result};
use xpcs_sim::config::load_toml;

/// Which comparisons a scenario scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scored {
    /// The whole-region fits of every isobar, and the crossover fit.
    Region,
    /// Region, every q-bin, α and the aging law.
    All,
    /// The aging law only.
    Aging,
    /// The τ(q) power law only.
    Alpha,
}

/// A scenario file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    /// Campaign file, relative to the scenario file.
    pub campaign: String,
    /// Part of the CI set (`cargo test`).
    #[serde(default)]
    pub ci: bool,
    /// Scale (default reduced).
    #[serde(default = "reduced")]
    pub scale: Scale,
    /// What is scored.
    pub compare: Scored,
    /// Scan labels left out of the scoring (reported).
    #[serde(default)]
    pub exclude_scans: Vec<String>,
    /// Qualitative checks (name prefixes) that must be present and pass.
    #[serde(default)]
    pub required_checks: Vec<String>,
    /// |τ* − model τ*|/τ* limit for every aging law.
    #[serde(default)]
    pub tau_star_within_rel: Option<f64>,
    /// Run only these scans (labels such as `06-c6.3GPa`; empty: every scan).
    #[serde(default)]
    pub only_scans: Vec<String>,
    /// Region of interest (rows, cols) replacing the campaign's at the chosen scale, e.g. a
    /// wider strip for one isobar whose statistics the reduced ROI cannot resolve.
    #[serde(default)]
    pub roi_px: Option<[usize; 2]>,
    /// Offset of that ROI's centre from the detector centre (rows, cols; default the scale's).
    #[serde(default)]
    pub roi_offset_px: Option<[i64; 2]>,
}

fn reduced() -> Scale {
    Scale::Reduced
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// Scenario file.
    pub path: PathBuf,
    /// Scored comparisons: (scan, what, comparison).
    pub scored: Vec<(String, String, Compared)>,
    /// Misses, one line each.
    pub misses: Vec<String>,
    /// The campaign's checks.
    pub checks: Vec<Check>,
    /// Wall time (s).
    pub elapsed_s: f64,
}

impl ScenarioOutcome {
    /// Whether nothing missed.
    pub fn passed(&self) -> bool {
        self.misses.is_empty()
    }
}

/// Scenario files in `dir` (or `dir/scenarios`), sorted; `dir` may also be one scenario file.
pub fn scenario_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let d = if dir.join("scenarios").is_dir() {
        dir.join("scenarios")
    } else {
        dir.to_path_buf()
    };
    let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
        .map_err(|e| Error::io(&d, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    if v.is_empty() {
        return Err(Error::invalid(
            d.display().to_string(),
            "no scenario (*.toml) in this directory",
        ));
    }
    Ok(v)
}

/// Loads a scenario and its campaign setup.
pub fn load_scenario(path: &Path) -> Result<(ScenarioConfig, CampaignSetup)> {
    let sc: ScenarioConfig = load_toml(path)?;
    let camp = path.parent().unwrap_or(Path::new(".")).join(&sc.campaign);
    let mut config: crate::config::campaign::CampaignConfig = load_toml(&camp)?;
    let scale = match sc.scale {
        Scale::Reduced => &mut config.scale.reduced,
        Scale::Full => &mut config.scale.full,
    };
    if let Some(r) = sc.roi_px {
        scale.roi_px = Some(r);
    }
    if let Some(o) = sc.roi_offset_px {
        scale.roi_offset_px = o;
    }
    // Deferred scans: one scan's per-pixel maps in memory at a time.
    let setup =
        CampaignSetup::from_config_impl(config, &camp, sc.scale, None, &sc.only_scans, true)?;
    let labels: Vec<String> = (setup.sample.campaign.isobars.iter().enumerate())
        .map(|(k, iso)| scan_label(iso, k))
        .collect();
    for (field, list) in [
        ("exclude_scans", &sc.exclude_scans),
        ("only_scans", &sc.only_scans),
    ] {
        if let Some(l) = list.iter().find(|l| !labels.contains(l)) {
            return Err(Error::invalid(
                path.display().to_string(),
                format!("{field}: no scan `{l}` (scans: {})", labels.join(", ")),
            ));
        }
    }
    Ok((sc, setup))
}

/// Judges a finished run against a scenario.
pub fn judge(
    path: &Path,
    sc: &ScenarioConfig,
    setup: &CampaignSetup,
    run: &CampaignRun,
) -> ScenarioOutcome {
    let max_pull = setup.config.tolerances.max_abs_pull;
    let mut scored = Vec::new();
    for (scan, what, c) in &run.analysis.all {
        if sc.exclude_scans.contains(scan) {
            continue;
        }
        let take = match sc.compare {
            Scored::Region => what == "region",
            Scored::All => true,
            Scored::Aging => what == "aging law",
            Scored::Alpha => what == "τ(q) power law",
        };
        if take {
            scored.push((scan.clone(), what.clone(), c.clone()));
        }
    }
    if sc.compare == Scored::Region || sc.compare == Scored::All {
        for c in &run.analysis.crossover_compared {
            scored.push(("campaign".into(), "crossover".into(), c.clone()));
        }
    }
    let mut misses: Vec<String> = scored
        .iter()
        .filter(|(_, _, c)| !c.passes(max_pull))
        .map(|(s, w, c)| {
            format!(
                "{s} {w} {}: {} ± {} vs truth {} (pull {:+.2}, limit {max_pull})",
                c.name, c.value, c.sigma, c.truth, c.pull
            )
        })
        .collect();
    if scored.is_empty() {
        misses.push(format!("nothing scored for compare = {:?}", sc.compare));
    }
    for req in &sc.required_checks {
        match run
            .analysis
            .checks
            .iter()
            .find(|c| c.name.starts_with(req.as_str()))
        {
            Some(c) if c.passed => {}
            Some(c) => misses.push(format!("check failed: {} ({})", c.name, c.detail)),
            None => misses.push(format!("check not run: {req}")),
        }
    }
    if let Some(lim) = sc.tau_star_within_rel {
        for r in &run.scans {
            if let Some(a) = &r.aging {
                match a.compared.iter().find(|c| c.name == "tau_star") {
                    Some(c) if c.model.is_some_and(|m| ((c.value - m) / m).abs() <= lim) => {}
                    Some(c) => misses.push(format!(
                        "{}: τ* = {:.0} ± {:.0} s, model {:?}, limit ±{:.0} %",
                        r.label,
                        c.value,
                        c.sigma,
                        c.model,
                        100.0 * lim
                    )),
                    None => misses.push(format!("{}: aging law failed", r.label)),
                }
            }
        }
    }
    ScenarioOutcome {
        path: path.to_path_buf(),
        scored,
        misses,
        checks: run.analysis.checks.clone(),
        elapsed_s: run.elapsed_s,
    }
}

/// Loads, runs and judges one scenario; `out` keeps the run's outputs.
pub fn run_scenario(
    path: &Path,
    out: Option<&Path>,
    progress: &dyn Progress,
) -> Result<ScenarioOutcome> {
    let (sc, setup) = load_scenario(path)?;
    run_loaded(path, &sc, &setup, out, None, progress)
}

/// Runs and judges a scenario already loaded with [`load_scenario`]. Without a memory budget
/// a scenario whose scans do not fit whole in the default budget is refused
/// ([`run_campaign`]: reported NOT RUN); with `max_memory_bytes` such scans run as detector
/// shards within it ([`super::run_campaign_within`], the same results as a whole run).
pub fn run_loaded(
    path: &Path,
    sc: &ScenarioConfig,
    setup: &CampaignSetup,
    out: Option<&Path>,
    max_memory_bytes: Option<f64>,
    progress: &dyn Progress,
) -> Result<ScenarioOutcome> {
    let run = match max_memory_bytes {
        None => run_campaign(setup, out, true, progress)?,
        Some(b) => super::run_campaign_within(setup, out, true, Some(b), progress)?,
    };
    Ok(judge(path, sc, setup, &run))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::Quiet;

    /// The CI set: every scenario marked `ci = true` must pass (4σ per pull, stated in the
    /// campaign files; the aging τ* within 10 % of the model).
    #[test]
    fn ci_scenarios_pass() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("validation");
        let mut n = 0;
        for p in scenario_files(&root).unwrap() {
            let (sc, _) = load_scenario(&p).unwrap();
            if !sc.ci {
                continue;
            }
            n += 1;
            // The first scenario also writes its outputs: its results files are checked.
            let dir = tempfile::tempdir().unwrap();
            let out = (n == 1).then(|| dir.path());
            let o = run_scenario(&p, out, &Quiet).unwrap();
            assert!(o.passed(), "{}: {:#?}", p.display(), o.misses);
            if let Some(d) = out {
                check_results_files(&d.join("scans"));
            }
        }
        assert!(n >= 3);
    }

    /// Every results file holds a g2 column, an `intensity_vs_time` contribution and a
    /// two-time map for every dynamic bin of its partition, and passes the layout checks.
    fn check_results_files(dir: &Path) {
        let mut k = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if !p.to_string_lossy().ends_with("_results.hdf") {
                continue;
            }
            k += 1;
            let r = xpcs_io::results::read_results(&p).unwrap();
            r.validate(&p.display().to_string()).unwrap();
            let nd = r.partition.n_bins();
            assert_eq!(r.multitau.as_ref().unwrap().g2.ncols(), nd);
            let tt = r.twotime.as_ref().expect("two-time group");
            assert_eq!(tt.processed_bins, (1..=nd as u32).collect::<Vec<_>>());
            assert!(r
                .intensity_vs_time
                .iter()
                .all(|x| x.is_finite() && *x >= 0.0));
            assert!(r.intensity_vs_time.iter().sum::<f32>() > 0.0);
        }
        assert!(k > 0, "no results file in {}", dir.display());
    }

    #[test]
    fn every_scenario_loads() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join("validation");
        for p in scenario_files(&root).unwrap() {
            let (sc, setup) = load_scenario(&p).unwrap();
            assert!(!setup.scans.is_empty(), "{}", p.display());
            let _ = sc;
        }
    }

    /// A scenario can run some scans of a campaign on another ROI; an unknown scan label is a
    /// clear error naming the scenario file and the field; one scenario file is a valid path.
    #[test]
    fn scenario_selects_scans_and_roi() {
        let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("validation/scenarios");
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, extra: &str| {
            let p = dir.path().join(name);
            let camp = root.join("../../models/ce68-maxipix.toml");
            std::fs::write(
                &p,
                format!(
                    "campaign = \"{}\"\ncompare = \"aging\"\n{extra}",
                    camp.display()
                ),
            )
            .unwrap();
            p
        };
        let ok = write(
            "one.toml",
            "only_scans = [\"02-c2.9GPa\"]\nroi_px = [64, 16]\nroi_offset_px = [0, 70]\n",
        );
        assert_eq!(scenario_files(&ok).unwrap(), vec![ok.clone()]);
        let (_, setup) = load_scenario(&ok).unwrap();
        assert_eq!(setup.scans.len(), 1);
        assert_eq!(setup.scan(2).label, "02-c2.9GPa");
        assert_eq!((setup.roi.rows, setup.roi.cols), (64, 16));
        let bad = write("bad.toml", "only_scans = [\"02-c2.8GPa\"]\n");
        let e = load_scenario(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.toml") && e.contains("only_scans") && e.contains("02-c2.8GPa"),
            "{e}"
        );
    }
}
