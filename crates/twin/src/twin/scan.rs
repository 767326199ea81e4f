//! One scan of the twin: simulate → counting chain → correlate → fit, each number beside its
//! ground truth.
//!
//! Input: a [`ScanSetup`] and the campaign's analysis settings. Output: [`ScanResult`]: g2
//! (lag × q-bin, lags in frames, delays in s) of the q-bins and of the whole region ("all
//! pixels", the q of the FSDP as in the seeds), the binned two-time map of the whole region,
//! KWW fits per bin and for the region, τ(q) power law, τ(t_w) and the aging law on aging
//! scans, ΔC at δt = τ with its floor, and for every fitted number its ground truth: the same
//! estimator and the same fit applied to the exact expected correlations ([`ScanSetup::truth_g2`],
//! [`ScanSetup::truth_c2_binned`]; docs/model.md §2: the truth of an aging scan's averaged g2 is
//! the fit of the expected averaged g2, not τ0).
//!
//! The event correlator runs when the mean occupancy is below the campaign's
//! `event_occupancy_max`, the dense multi-tau otherwise (they agree exactly).
//!
//! Reference: docs/model.md §5–6; Chushkin, Caronna & Madsen, J. Appl. Cryst. 45, 807 (2012).

use super::setup::{CampaignSetup, ScanSetup};
use super::shard::{
    correlate_window, run_shard, simulate_window, two_time_bin_frames, ScanIdentity, ScanSums,
    Shard,
};
use crate::config::campaign::{AnalysisConfig, EstimatorChoice, FitModelChoice};
use crate::plan::noise::delta_c_floor_for;
use ndarray::{s, Array2};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;
use xpcs_core::correlate::{
    heterogeneity, DenseMultiTau, Estimator, G2Result, IntensityStats, LagSchedule, TwoTimeResult,
};
use xpcs_core::data::{EventList, QPartition};
use xpcs_core::error::Result;
use xpcs_core::fit::line::WeightedLine;
use xpcs_core::fit::qdep::{fit_power_law_from_bins, tau_beta_per_bin, TauBeta};
use xpcs_core::fit::twotime::{
    age_cut, aging_rate_jackknife, converged_ages, evenly_spaced_ages, fit_aging_from_ages,
    fit_aging_from_ages_jackknife, ln_positive, tau_vs_age_jackknife, AgeFit,
};
use xpcs_core::fit::{
    fit_curve, fit_curve_jackknife, Exponential, FitModel, FitOptions, FitReport, Kww,
    KwwHeterodyne,
};

/// A recovered number beside its ground truth.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// Quantity name (e.g. `tau`).
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Recovered value (NaN if the fit failed).
    pub value: f64,
    /// Its 1σ error.
    pub sigma: f64,
    /// Ground truth (the estimator applied to the expected correlations).
    pub truth: f64,
    /// (value - truth)/σ.
    pub pull: f64,
    /// The model parameter it estimates, when one exists (e.g. τ at q1), for reference.
    pub model: Option<f64>,
    /// Why the data cannot constrain this number (e.g. a scan shorter than 3 τ); such a
    /// comparison is reported, never counted as a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unconstrained: Option<String>,
    /// Why the fit itself does not describe its data (χ²_red > [`MAX_CHI2_RED`]): such a
    /// comparison fails even when the truth fit misfits the same way (e.g. a baseline fixed
    /// away from the data's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub misfit: Option<String>,
}

/// Largest χ²_red of a g2 fit that still describes its data (χ²_red is computed with the
/// per-lag errors; for a right model it is ≈ 1 with a spread of sqrt(2/dof) ≈ 0.2).
pub const MAX_CHI2_RED: f64 = 5.0;

impl Compared {
    /// Builds a comparison; the pull is NaN when σ is not positive.
    pub fn new(
        name: &str,
        unit: &str,
        value: f64,
        sigma: f64,
        truth: f64,
        model: Option<f64>,
    ) -> Self {
        let pull = if sigma > 0.0 {
            (value - truth) / sigma
        } else {
            f64::NAN
        };
        Compared {
            name: name.into(),
            unit: unit.into(),
            value,
            sigma,
            truth,
            pull,
            model,
            unconstrained: None,
            misfit: None,
        }
    }

    /// Whether |pull| ≤ `max_pull` (a NaN pull fails); an unconstrained comparison never
    /// fails (see [`Compared::unconstrained`]).
    pub fn passes(&self, max_pull: f64) -> bool {
        self.unconstrained.is_some() || (self.misfit.is_none() && self.pull.abs() <= max_pull)
    }
}

/// Shortest scan, in units of the relaxation time, whose fits are scored: below T/τ = 3 the
/// correlation has not decayed to its baseline within the scan (at T = 3τ, a KWW with β = 1.8
/// is down to e^-14 of c at the longest lag but the longest multi-tau lags hold few pairs), so τ,
/// the baseline and the contrast are degenerate and the fit's σ is not Gaussian.
pub const MIN_T_OVER_TAU: f64 = 3.0;

/// T/τ of a scan: its length over the τ the estimator targets (the fit of the expected g2 of
/// the whole region, or the model's τ at the end of the scan when that fit failed).
pub fn t_over_tau(r: &ScanResult) -> f64 {
    let tau = r
        .region
        .truth_fit
        .value("tau")
        .filter(|t| t.is_finite() && *t > 0.0)
        .unwrap_or(r.facts.tau_end_s);
    r.n_frames as f64 * r.frame_time_s / tau
}

/// Marks every comparison of a scan with T/τ < [`MIN_T_OVER_TAU`] as unconstrained.
fn mark_unconstrained(r: &mut ScanResult) {
    let x = t_over_tau(r);
    if x >= MIN_T_OVER_TAU {
        return;
    }
    let why = format!("unconstrained (T/τ = {x:.2} < {MIN_T_OVER_TAU})");
    let mark = |v: &mut Vec<Compared>| {
        for c in v {
            c.unconstrained = Some(why.clone());
        }
    };
    mark(&mut r.region.compared);
    for b in &mut r.bins {
        mark(&mut b.compared);
    }
    if let Some(a) = &mut r.alpha {
        a.unconstrained = Some(why.clone());
    }
    if let Some(a) = &mut r.aging {
        mark(&mut a.compared);
    }
}

/// Least change of τ within a scan (τ_end/τ_start or its inverse, from the model) for which
/// [`mark_not_one_kww`] applies: 5 %.
const MIN_TAU_DRIFT: f64 = 1.05;

/// In a scan whose τ changes within it (aging, a late acceleration: τ_end/τ_start beyond
/// [`MIN_TAU_DRIFT`]) the scan-averaged g2 mixes many τ and is not one KWW: at high precision
/// (the whole detector) even the expected g2 misfits. A curve whose truth fit has χ²_red >
/// [`MAX_CHI2_RED`] (with the data's errors) then has no single τ, β, c to score: its
/// comparisons are marked unconstrained, with that reason (the age cuts follow τ(t_w)). A
/// misfit of a stationary scan, or of a curve whose truth the model still describes, fails
/// as before.
fn mark_not_one_kww(r: &mut ScanResult) {
    let drift = r.facts.tau_end_s / r.facts.tau_start_s;
    let mark = |f: &mut CurveFit| {
        if let Some(why) = not_one_kww(drift, f.truth_fit.fitted().map(|v| v.chi2_red)) {
            for c in &mut f.compared {
                c.unconstrained = Some(why.clone());
            }
        }
    };
    mark(&mut r.region);
    for b in &mut r.bins {
        mark(b);
    }
}

/// The reason of [`mark_not_one_kww`] for a scan whose τ changes by the factor `drift` and a
/// curve whose truth fit has χ²_red `truth_chi2_red`; None when the curve is scored.
fn not_one_kww(drift: f64, truth_chi2_red: Option<f64>) -> Option<String> {
    let t = truth_chi2_red?;
    let drifts = drift.is_finite() && (drift >= MIN_TAU_DRIFT || drift <= 1.0 / MIN_TAU_DRIFT);
    (drifts && t > MAX_CHI2_RED).then(|| {
        format!(
            "unconstrained (τ changes ×{drift:.2} within the scan: its scan-averaged g2 is not \
             one KWW at this precision, the expected g2's own fit has χ²_red = {t:.1} > \
             {MAX_CHI2_RED}; the age cuts follow τ(t_w))"
        )
    })
}

/// The jackknife replicates of column `bin` at `rows`.
fn replicates_of(g: &G2Result, rows: &[usize], bin: usize) -> Vec<Vec<f64>> {
    g.jackknife
        .outer_iter()
        .map(|r| rows.iter().map(|&i| r[[i, bin]]).collect::<Vec<f64>>())
        .collect()
}

/// Compares every free parameter of a fit with the same fit of the truth.
pub fn compare_fits(fit: &FitReport, truth: &FitReport, models: &[(&str, f64)]) -> Vec<Compared> {
    let mut out = Vec::new();
    for (i, name) in fit.param_names.iter().enumerate() {
        if fit.fixed.get(i).copied().unwrap_or(false) {
            continue;
        }
        let v = fit.value(name).unwrap_or(f64::NAN);
        let e = fit.std_error(name).unwrap_or(f64::NAN);
        let t = truth.value(name).unwrap_or(f64::NAN);
        let m = models.iter().find(|m| m.0 == name).map(|m| m.1);
        let mut c = Compared::new(name, &fit.param_units[i], v, e, t, m);
        if let Some(f) = fit.fitted() {
            let g2_model = matches!(fit.model.as_str(), "kww" | "kww-heterodyne" | "exp");
            if g2_model && f.chi2_red > MAX_CHI2_RED {
                c.misfit = Some(format!(
                    "misfit: χ²_red = {:.1} > {MAX_CHI2_RED}",
                    f.chi2_red
                ));
            }
        }
        out.push(c);
    }
    out
}

/// A one-time g2 curve with its fit and the fit of its truth.
#[derive(Debug, Clone, Serialize)]
pub struct CurveFit {
    /// q centre (Å⁻¹).
    pub q_inv_angstrom: f64,
    /// Pixels.
    pub n_pixels: u64,
    /// Measured g2 (lags ≥ 1).
    pub g2: Vec<f64>,
    /// Its error.
    pub g2_err: Vec<f64>,
    /// Expected g2 at the same lags.
    pub truth_g2: Vec<f64>,
    /// Fit of the measured g2.
    pub fit: FitReport,
    /// The same fit of the expected g2 (errors from the data).
    pub truth_fit: FitReport,
    /// Fitted vs truth, per free parameter.
    pub compared: Vec<Compared>,
}

/// Aging analysis of one scan (two-time age cuts of the whole region).
#[derive(Debug, Clone, Serialize)]
pub struct AgingResult {
    /// Age cuts and their fits.
    pub ages: Vec<AgeFit>,
    /// The same cuts of the expected map.
    pub truth_ages: Vec<AgeFit>,
    /// Aging law fit: ln τ = ln τ0 + t_w/τ* (t_w = waiting time + age).
    pub law: FitReport,
    /// The same fit of the truth's cuts.
    pub truth_law: FitReport,
    /// τ0 and τ* vs truth (and vs the model parameters); empty for an accelerating scan.
    pub compared: Vec<Compared>,
    /// For a scan whose τ law accelerates after an onset inside the scan: the onset and the
    /// ln τ rates before and after it.
    pub acceleration: Option<AccelerationFit>,
}

/// The ln τ rates of an accelerating scan's age cuts on either side of the model's onset
/// (cuts straddling it are left out of both).
#[derive(Debug, Clone, Serialize)]
pub struct AccelerationFit {
    /// The model's onset of the acceleration (time since the pressure step, s), inside the
    /// scan.
    pub onset_s: f64,
    /// The cuts wholly before the onset (None with fewer than 3 converged).
    pub before: Option<AgeSegment>,
    /// The cuts wholly after the onset (None with fewer than 3 converged).
    pub after: Option<AgeSegment>,
}

/// The rate d ln τ/d t_w over the age cuts of one part of a scan (a weighted line in ln τ,
/// the cuts' τ errors as weights, the σ from the same line through each jackknife replicate).
#[derive(Debug, Clone, Serialize)]
pub struct AgeSegment {
    /// Ages since the pressure step of the first and last cut used (s).
    pub ages_s: [f64; 2],
    /// Cuts used (with a converged τ).
    pub n_cuts: usize,
    /// The line ln τ = a + rate · t_w: a.
    pub ln_tau_intercept: f64,
    /// Rate d ln τ/d t_w (1/s; < 0: τ falls) and its jackknife σ (NaN without enough
    /// replicates).
    pub rate_per_s: [f64; 2],
    /// The same line through the expected map's cuts (the data's errors as weights): a, rate.
    pub truth_line: [f64; 2],
}

impl AgingResult {
    /// The span (s) of the age cuts' ages (latest − earliest).
    pub fn age_span_s(&self) -> f64 {
        age_span_s(&self.ages)
    }
}

/// The span (s) of the cuts' ages (latest − earliest).
fn age_span_s(cuts: &[AgeFit]) -> f64 {
    let ages = cuts.iter().map(|f| f.cut.age_s);
    ages.clone().fold(f64::NEG_INFINITY, f64::max) - ages.fold(f64::INFINITY, f64::min)
}

/// The aging rate 1/τ* (1/s) of an aging-law fit and its standard error, when the fit has
/// both τ* and its error.
pub fn aging_rate(law: &FitReport) -> Option<(f64, f64)> {
    law.value("tau_star")
        .zip(law.std_error("tau_star"))
        .map(|(ts, es)| (1.0 / ts, es / (ts * ts)))
}

/// Heterogeneity ΔC of the whole region at δt = τ.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaCResult {
    /// Delay in two-time frames (≈ fitted τ).
    pub delay_frames: usize,
    /// Delay (s).
    pub delay_s: f64,
    /// Two-time frame of the ΔC map (s).
    pub bin_s: f64,
    /// Measured ΔC.
    pub value: f64,
    /// Analytic noise floor for homogeneous dynamics (`delta_c_floor_for`: σ_C times the
    /// finite-sample width of the narrowest 90 % interval).
    pub floor: f64,
    /// The noise width measured on the same map: ΔC of C − C_expected + 1 (the counting and
    /// speckle noise alone, with the same binning and delay).
    pub noise: f64,
    /// ΔC of the expected map (0 for stationary dynamics).
    pub truth: f64,
}

/// Everything recovered from one scan.
#[derive(Debug, Clone, Serialize)]
pub struct ScanResult {
    /// Scan label.
    pub label: String,
    /// Protocol index.
    pub index: usize,
    /// Facts.
    pub facts: xpcs_sim::model::ScanFacts,
    /// Seed of this scan.
    pub seed: u64,
    /// Frames.
    pub n_frames: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Valid pixels in the partition.
    pub n_pixels: usize,
    /// Mean counts per valid pixel per frame (instrument scene).
    pub mean_counts_per_frame: f64,
    /// Photons after the counting chain.
    pub total_counts: u64,
    /// Speckle contrast of the instrument.
    pub contrast_model: f64,
    /// Which correlator ran ("event" or "dense").
    pub correlator: String,
    /// Estimator name.
    pub estimator: String,
    /// Lags (frames) of the g2 rows (lag 0 dropped).
    pub lag_frames: Vec<u64>,
    /// Level-frame widths of the rows.
    pub bin_width_frames: Vec<u64>,
    /// Delays (s).
    pub delays_s: Vec<f64>,
    /// Per q-bin.
    pub bins: Vec<CurveFit>,
    /// The whole region (all q-bins together).
    pub region: CurveFit,
    /// τ and β per bin (converged bins).
    pub tau_q: Vec<Option<TauBeta>>,
    /// Power law τ(q) fit of the measured τ's.
    pub power_law: Option<FitReport>,
    /// The same of the truth τ's.
    pub truth_power_law: Option<FitReport>,
    /// α vs truth.
    pub alpha: Option<Compared>,
    /// Frames per two-time frame.
    pub two_time_bin_frames: usize,
    /// Two-time map of the whole region.
    #[serde(skip)]
    pub c2: Array2<f64>,
    /// Aging analysis (aging scans only).
    pub aging: Option<AgingResult>,
    /// ΔC.
    pub delta_c: Option<DeltaCResult>,
    /// Wall time of each stage (s): in `timing.json` only, so that every other output of a
    /// campaign is the same bytes on every run.
    #[serde(skip)]
    pub timing_s: Vec<(String, f64)>,
    /// The g2 of the q-bins as the correlator returned them (all rows; for the results file).
    #[serde(skip)]
    pub g2_full: G2Result,
    /// Mean intensities of the q-bin partition (every dynamic and static bin).
    #[serde(skip)]
    pub intensity: IntensityStats,
    /// Two-time maps of every q-bin (for the results file; dropped once it is written to
    /// bound a campaign's memory).
    #[serde(skip)]
    pub two_time: Option<TwoTimeResult>,
    /// The FSDP position fitted from this scan's per-pixel intensity (Err: why not), set by a
    /// campaign run once the scan is done, so that the per-pixel maps need not be kept
    /// (None: [`super::q1fit::q1_shift`] fits it from the set-up).
    #[serde(skip)]
    pub q1: Option<std::result::Result<super::q1fit::Q1Point, String>>,
}

fn model_of(c: FitModelChoice) -> Box<dyn FitModel> {
    match c {
        FitModelChoice::Kww => Box::new(Kww),
        FitModelChoice::Exp => Box::new(Exponential),
        FitModelChoice::Heterodyne => Box::new(KwwHeterodyne),
    }
}

/// The correlator's estimator for a campaign choice.
pub fn estimator_of(c: EstimatorChoice) -> Estimator {
    match c {
        EstimatorChoice::Symmetric => Estimator::Symmetric,
        EstimatorChoice::SymmetricStatic => Estimator::SymmetricStatic,
        EstimatorChoice::Frame => Estimator::Frame,
    }
}

/// Fit options of the campaign (fixed baseline if set).
pub fn fit_options(a: &AnalysisConfig) -> FitOptions {
    let o = FitOptions::default();
    match a.fixed_baseline {
        Some(b) => o.fix("baseline", b),
        None => o,
    }
}

/// A one-bin partition of every pixel of `part`'s dynamic bins (the whole region).
pub(crate) fn region_partition(part: &QPartition) -> Result<QPartition> {
    let (r, c) = part.shape();
    let labels: Vec<u32> = part
        .dynamic()
        .labels()
        .iter()
        .map(|&l| u32::from(l > 0))
        .collect();
    let mask = labels.iter().map(|&l| l > 0).collect();
    let map = xpcs_core::data::LabelMap::new(r, c, labels, "twin region")?;
    let sl = part.static_map().clone();
    QPartition::new(mask, map, sl, "twin region")
}

/// Two-time jackknife groups per q-bin: enough that the whole region has at least
/// [`xpcs_core::correlate::sums::JACKKNIFE_GROUPS`] (32) groups (4 per bin for 8 bins), a
/// power of two dividing 32, so that each is a union of the one-time correlator's jackknife
/// groups of its bin (whose photon series give the group's S(t)).
pub fn two_time_split(n_bins: usize) -> usize {
    let k = xpcs_core::correlate::sums::JACKKNIFE_GROUPS;
    k.div_ceil(n_bins.max(1)).next_power_of_two().min(k)
}

/// The partition the two-time maps are accumulated on: each q-bin's pixels, in raster order,
/// cut into [`two_time_split`] runs of (nearly) equal size (a compact band of the detector,
/// as the one-time jackknife groups of [`xpcs_core::correlate::Cells`]); run g of bin b has
/// label (b − 1)·split + g + 1. [`collapse_two_time`] adds the runs back into the q-bins'
/// maps (exactly); the runs themselves are the independent pixel groups of the aging law's
/// jackknife.
pub fn two_time_partition(part: &QPartition) -> Result<QPartition> {
    let (r, c) = part.shape();
    let split = two_time_split(part.n_bins());
    let dl = part.dynamic().labels();
    let mut size = vec![0usize; part.n_bins() + 1];
    for &d in dl {
        size[d as usize] += 1;
    }
    let mut rank = vec![0usize; part.n_bins() + 1];
    let labels: Vec<u32> = dl
        .iter()
        .map(|&d| {
            if d == 0 {
                return 0;
            }
            let d = d as usize;
            let g = rank[d] * split / size[d];
            rank[d] += 1;
            ((d - 1) * split + g + 1) as u32
        })
        .collect();
    let mask = labels.iter().map(|&l| l > 0).collect();
    let map = xpcs_core::data::LabelMap::new(r, c, labels, "two-time jackknife groups")?;
    QPartition::new(
        mask,
        map,
        part.static_map().clone(),
        "two-time jackknife groups",
    )
}

/// The q-bins' two-time result from the groups' of [`two_time_partition`] (numerators,
/// photon sums and pixels add over the disjoint groups of a bin).
pub fn collapse_two_time(groups: &TwoTimeResult, split: usize) -> TwoTimeResult {
    let n = groups.n_frames;
    let mut bins: Vec<usize> = groups.bins.iter().map(|&l| (l - 1) / split + 1).collect();
    bins.dedup();
    let mut out = TwoTimeResult {
        bin_frames: groups.bin_frames,
        n_frames: n,
        bins: bins.clone(),
        bin_pixels: vec![0; bins.len()],
        numerator: vec![Array2::zeros((n, n)); bins.len()],
        bin_sums: vec![vec![0; n]; bins.len()],
    };
    for (i, &l) in groups.bins.iter().enumerate() {
        let k = bins
            .binary_search(&((l - 1) / split + 1))
            .expect("every group's bin is listed");
        out.numerator[k] += &groups.numerator[i];
        for (a, &b) in out.bin_sums[k].iter_mut().zip(&groups.bin_sums[i]) {
            *a += b;
        }
        out.bin_pixels[k] += groups.bin_pixels[i];
    }
    out
}

/// Expected g2 of all pixels of the region: pooled optics of every bin.
fn region_truth(scan: &ScanSetup, entries: &[(u64, u64)]) -> Vec<f64> {
    let mut region = scan.clone();
    region.partition = region_partition(&scan.partition).expect("the region of a valid partition");
    region.truth_g2(1, entries)
}

struct Correlated {
    g2: G2Result,
    region_g2: G2Result,
    /// Intensities of the q-bin partition (every dynamic bin: the results file's rows).
    intensity: IntensityStats,
    /// Two-time maps of every q-bin.
    two_time: TwoTimeResult,
    /// Two-time maps of the jackknife groups ([`two_time_partition`]).
    two_time_groups: TwoTimeResult,
    kind: &'static str,
}

impl Correlated {
    /// The q-bins' and the groups' two-time results from the groups'.
    fn two_time_of(groups: TwoTimeResult, part: &QPartition) -> (TwoTimeResult, TwoTimeResult) {
        (
            collapse_two_time(&groups, two_time_split(part.n_bins())),
            groups,
        )
    }
}

/// The two-time result of all processed bins taken together as one bin (label 1): the
/// numerators Σ_p x_p(t1) x_p(t2), the photon sums S(t) and the pixel counts add over disjoint
/// bins, so this is exactly the map of a one-bin partition of the same pixels.
pub fn merge_two_time_bins(tt: &TwoTimeResult) -> TwoTimeResult {
    let n = tt.n_frames;
    let mut num = Array2::<f64>::zeros((n, n));
    let mut sums = vec![0u64; n];
    for (m, s) in tt.numerator.iter().zip(&tt.bin_sums) {
        num += m;
        for (a, &b) in sums.iter_mut().zip(s) {
            *a += b;
        }
    }
    TwoTimeResult {
        bin_frames: tt.bin_frames,
        n_frames: n,
        bins: vec![1],
        bin_pixels: vec![tt.bin_pixels.iter().sum()],
        numerator: vec![num],
        bin_sums: vec![sums],
    }
}

/// Sums the two-time frames of `tt` in consecutive groups of `k` (a trailing partial group
/// is dropped): exactly the two-time result of k-times longer frames, since the numerators
/// Σ_p x_p(T1) x_p(T2) and the sums S(T) of the coarse frames are sums of the fine ones.
pub fn rebin_two_time(tt: &TwoTimeResult, k: usize) -> TwoTimeResult {
    let k = k.max(1);
    let n = tt.n_frames / k;
    let numerator = tt
        .numerator
        .iter()
        .map(|m| {
            Array2::from_shape_fn((n, n), |(a, b)| {
                m.slice(s![a * k..(a + 1) * k, b * k..(b + 1) * k]).sum()
            })
        })
        .collect();
    let bin_sums = tt
        .bin_sums
        .iter()
        .map(|v| (0..n).map(|a| v[a * k..(a + 1) * k].iter().sum()).collect())
        .collect();
    TwoTimeResult {
        bin_frames: tt.bin_frames * k,
        n_frames: n,
        bins: tt.bins.clone(),
        bin_pixels: tt.bin_pixels.clone(),
        numerator,
        bin_sums,
    }
}

/// Means of consecutive k × k blocks of a map (a trailing partial block is dropped): the
/// expected map of k-times longer frames when the mean intensity is the same in every frame.
fn block_mean(m: &Array2<f64>, k: usize) -> Array2<f64> {
    let k = k.max(1);
    let n = m.nrows() / k;
    Array2::from_shape_fn((n, n), |(a, b)| {
        m.slice(s![a * k..(a + 1) * k, b * k..(b + 1) * k])
            .mean()
            .unwrap_or(f64::NAN)
    })
}

/// Correlates a whole scan with the dense correlator (high occupancy, one shard): multi-tau
/// and two-time of every q-bin, intensities, and multi-tau of the whole region. The sums equal
/// the event correlator's bit for bit ([`xpcs_core::correlate`]); the dense one is faster when
/// most pixel-frames hold photons.
fn correlate_dense(
    ev: &EventList,
    part: &QPartition,
    region: &QPartition,
    a: &AnalysisConfig,
    bin_frames: usize,
) -> Result<Correlated> {
    let n = ev.n_frames();
    let sched = LagSchedule::multi_tau(n, a.num_bufs)?;
    let est = estimator_of(a.estimator);
    let stack = ev.to_stack();
    let mut c = DenseMultiTau::new(part, &sched);
    c.push_stack(&stack, 0..n)?;
    let mut r = DenseMultiTau::new(region, &sched);
    r.push_stack(&stack, 0..n)?;
    let groups = xpcs_core::correlate::twotime::two_time_stack(
        &stack,
        &two_time_partition(part)?,
        &[],
        bin_frames,
    )?;
    let (two_time, two_time_groups) = Correlated::two_time_of(groups, part);
    Ok(Correlated {
        g2: c.finish(est)?,
        region_g2: r.finish(est)?,
        intensity: c.intensity(),
        two_time,
        two_time_groups,
        kind: "dense",
    })
}

/// Rows with lag ≥ 1 (lag 0 carries the shot-noise term).
fn rows_from_lag1(g: &G2Result) -> Vec<usize> {
    (0..g.lag_frames.len())
        .filter(|&i| g.lag_frames[i] >= 1 && g.n_pairs[i] > 0)
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn curve_fit(
    model: &dyn FitModel,
    opts: &FitOptions,
    delays: &[f64],
    g2: Vec<f64>,
    g2_err: Vec<f64>,
    replicates: &[Vec<f64>],
    truth_g2: Vec<f64>,
    q: f64,
    n_pixels: u64,
    model_tau: Option<f64>,
    beta: f64,
) -> Result<CurveFit> {
    let fit = fit_curve_jackknife(model, delays, &g2, &g2_err, replicates, opts)?;
    let truth_fit = fit_curve(model, delays, &truth_g2, &g2_err, opts)?;
    let mut models = vec![("kww_exponent", beta)];
    if let Some(t) = model_tau {
        models.push(("tau", t));
    }
    let compared = compare_fits(&fit, &truth_fit, &models);
    Ok(CurveFit {
        q_inv_angstrom: q,
        n_pixels,
        g2,
        g2_err,
        truth_g2,
        fit,
        truth_fit,
        compared,
    })
}

/// How a scan is cut into detector shards ([`super::shard`]): `count` shards, `concurrency` of
/// them in work at a time. One shard is the whole detector in one piece (the reduced scale).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ShardPlan {
    /// Shards.
    pub count: usize,
    /// Shards in work at once.
    pub concurrency: usize,
}

impl ShardPlan {
    /// The whole detector as one shard.
    pub const WHOLE: ShardPlan = ShardPlan {
        count: 1,
        concurrency: 1,
    };
}

/// Runs one scan end to end, as `plan.count` detector shards whose sums are added (one shard:
/// the whole detector at once, with the dense correlator when the occupancy calls for it).
/// `on_stage` is told each stage's name as it starts; `on_shard(done, count)` each time a
/// shard's sums have been added.
pub fn run_scan(
    setup: &CampaignSetup,
    scan: &ScanSetup,
    plan: ShardPlan,
    on_stage: &(dyn Fn(&str) + Sync),
    on_shard: &(dyn Fn(usize, usize) + Sync),
) -> Result<ScanResult> {
    let a = &setup.config.analysis;
    let identity = ScanIdentity::of(setup, scan);
    if plan.count > 1 {
        on_stage("shards");
        let sums = sum_of_shards(setup, scan, plan, on_shard)?;
        return finish_scan(scan, a, &sums, on_stage);
    }
    on_stage("simulate");
    let n_px = scan.scene.rows * scan.scene.cols;
    let (ev, [t_sim, t_count]) = simulate_window(scan, &(0..n_px))?;
    on_stage("correlate");
    let t2 = Instant::now();
    let n = scan.exposure.n_frames;
    let n_valid = scan.partition.dynamic().n_labelled();
    let occupancy = ev.total_counts() as f64 / (n_valid.max(1) as f64 * n as f64);
    if occupancy < a.event_occupancy_max {
        let mut sums = correlate_window(identity, scan, a, &ev, &(0..n_px))?;
        sums.timing_s = [t_sim, t_count, t2.elapsed().as_secs_f64()];
        drop(ev);
        return finish_scan(scan, a, &sums, on_stage);
    }
    let bin_frames = two_time_bin_frames(scan, a);
    let region = region_partition(&scan.partition)?;
    let corr = correlate_dense(&ev, &scan.partition, &region, a, bin_frames)?;
    let timing = vec![
        ("simulate".to_string(), t_sim),
        ("counting".to_string(), t_count),
        ("correlate".to_string(), t2.elapsed().as_secs_f64()),
    ];
    analyse_scan(scan, a, corr, ev.total_counts(), timing, on_stage)
}

/// Runs the shards of `plan` (`plan.concurrency` at a time, each with its own correlators)
/// and adds their sums; the result covers every pixel once.
pub fn sum_of_shards(
    setup: &CampaignSetup,
    scan: &ScanSetup,
    plan: ShardPlan,
    on_shard: &(dyn Fn(usize, usize) + Sync),
) -> Result<ScanSums> {
    let a = &setup.config.analysis;
    let total = std::sync::Mutex::new((
        ScanSums::empty(ScanIdentity::of(setup, scan), scan, a)?,
        0usize,
    ));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if i >= plan.count {
                return Ok(());
            }
            let part = run_shard(
                setup,
                scan,
                Shard {
                    index: i,
                    count: plan.count,
                },
            )?;
            let mut t = total.lock().expect("no panic while holding the lock");
            t.0.add(&part)?;
            t.1 += 1;
            on_shard(t.1, plan.count);
        }
    };
    let workers = plan.concurrency.clamp(1, plan.count);
    (0..workers)
        .into_par_iter()
        .map(|_| worker())
        .collect::<Result<Vec<()>>>()?;
    let (sums, _) = total.into_inner().expect("no panic while holding the lock");
    sums.check_complete(&format!("scan {}", scan.label))?;
    Ok(sums)
}

/// Largest distance from zero (in σ) of a fitted aging rate 1/τ* that the noise-free analysis
/// does not resolve, before it counts as a failure: 4σ, the campaigns' pull limit.
pub const WEAK_AGING_MAX_Z: f64 = 4.0;

/// The fits and comparisons of a scan from its complete sums (a whole run's, or merged
/// shards').
pub fn finish_scan(
    scan: &ScanSetup,
    a: &AnalysisConfig,
    sums: &ScanSums,
    on_stage: &(dyn Fn(&str) + Sync),
) -> Result<ScanResult> {
    sums.check_complete(&format!("scan {}", scan.label))?;
    let est = estimator_of(a.estimator);
    let (two_time, two_time_groups) = Correlated::two_time_of(
        sums.bins.two_time().expect("scan sums carry two-time"),
        &scan.partition,
    );
    let corr = Correlated {
        g2: sums.bins.finish(est)?,
        region_g2: sums.region.finish(est)?,
        intensity: sums.bins.intensity(),
        two_time,
        two_time_groups,
        kind: "event",
    };
    let [t_sim, t_count, t_corr] = sums.timing_s;
    let timing = vec![
        ("simulate".to_string(), t_sim),
        ("counting".to_string(), t_count),
        ("correlate".to_string(), t_corr),
    ];
    analyse_scan(scan, a, corr, sums.total_counts(), timing, on_stage)
}

/// Fits, truths and comparisons of a correlated scan.
fn analyse_scan(
    scan: &ScanSetup,
    a: &AnalysisConfig,
    corr: Correlated,
    total_counts: u64,
    mut timing: Vec<(String, f64)>,
    on_stage: &(dyn Fn(&str) + Sync),
) -> Result<ScanResult> {
    let n = scan.exposure.n_frames;
    let dt = scan.exposure.frame_time_s;
    let bin_frames = two_time_bin_frames(scan, a);
    let region = region_partition(&scan.partition)?;
    let n_valid = scan.partition.dynamic().n_labelled();
    let t3 = Instant::now();
    on_stage("truth + fit");
    let model = model_of(a.fit_model);
    let opts = fit_options(a);
    let rows = rows_from_lag1(&corr.g2);
    let entries: Vec<(u64, u64)> = rows
        .iter()
        .map(|&i| (corr.g2.lag_frames[i], corr.g2.bin_width_frames[i]))
        .collect();
    let delays: Vec<f64> = entries.iter().map(|e| e.0 as f64 * dt).collect();
    let q = scan.q_centres();
    let beta = scan.dynamics.beta();
    let law = scan.dynamics.clock().law();
    let tau_q1 = match law {
        // The mean τ (with fluctuations the smooth clock alone runs slower).
        xpcs_sim::model::TauLaw::Stationary { .. } => Some(scan.facts.tau_start_s),
        _ => None,
    };
    let bins: Vec<CurveFit> = (1..=scan.partition.n_bins())
        .into_par_iter()
        .map(|b| {
            let g: Vec<f64> = rows.iter().map(|&i| corr.g2.g2[[i, b - 1]]).collect();
            let e: Vec<f64> = rows.iter().map(|&i| corr.g2.g2_err[[i, b - 1]]).collect();
            let truth = scan.truth_g2(b, &entries);
            let reps = replicates_of(&corr.g2, &rows, b - 1);
            curve_fit(
                model.as_ref(),
                &opts,
                &delays,
                g,
                e,
                &reps,
                truth,
                q[b - 1],
                corr.g2.bin_pixels[b - 1],
                None,
                beta,
            )
        })
        .collect::<Result<_>>()?;
    let rrows = rows_from_lag1(&corr.region_g2);
    debug_assert_eq!(rrows, rows);
    let rg: Vec<f64> = rows.iter().map(|&i| corr.region_g2.g2[[i, 0]]).collect();
    let re: Vec<f64> = rows
        .iter()
        .map(|&i| corr.region_g2.g2_err[[i, 0]])
        .collect();
    let rt = region_truth(scan, &entries);
    let region_fit = curve_fit(
        model.as_ref(),
        &opts,
        &delays,
        rg,
        re,
        &replicates_of(&corr.region_g2, &rows, 0),
        rt,
        scan.facts.q1_inv_angstrom,
        corr.region_g2.bin_pixels[0],
        tau_q1,
        beta,
    )?;

    let TauQ {
        tau_q,
        power_law,
        truth_power_law,
        alpha,
    } = tau_q_of(scan, &q, &bins)?;

    // Two-time analysis of the whole region.
    let c2 = merge_two_time_bins(&corr.two_time).c2(0);
    let tt_dt = bin_frames as f64 * dt;
    let needs_truth_map = !scan.is_stationary();
    let truth_map = if needs_truth_map {
        let mut region_scan = scan.clone();
        region_scan.partition = region.clone();
        Some(region_scan.truth_c2_binned(1, bin_frames))
    } else {
        None
    };
    let aging = aging_of(
        scan,
        a,
        &corr,
        &c2,
        tt_dt,
        truth_map.as_ref(),
        model.as_ref(),
        &opts,
    )?;
    let delta_c = delta_c_of(
        scan,
        a,
        &corr,
        &region_fit,
        &region,
        truth_map.as_ref(),
        tt_dt,
        bin_frames,
    )?;
    timing.push(("truth + fit".to_string(), t3.elapsed().as_secs_f64()));

    let mut result = ScanResult {
        label: scan.label.clone(),
        index: scan.index,
        facts: scan.facts.clone(),
        seed: scan.seed,
        n_frames: n,
        frame_time_s: dt,
        n_pixels: n_valid,
        mean_counts_per_frame: scan.mean_counts_per_frame,
        total_counts,
        contrast_model: scan.contrast,
        correlator: corr.kind.to_string(),
        estimator: corr.g2.estimator.name().to_string(),
        lag_frames: entries.iter().map(|e| e.0).collect(),
        bin_width_frames: entries.iter().map(|e| e.1).collect(),
        delays_s: delays,
        bins,
        region: region_fit,
        tau_q,
        power_law,
        truth_power_law,
        alpha,
        two_time_bin_frames: bin_frames,
        c2: c2.slice(s![.., ..]).to_owned(),
        aging,
        delta_c,
        timing_s: timing,
        g2_full: corr.g2,
        intensity: corr.intensity,
        two_time: Some(corr.two_time),
        q1: None,
    };
    mark_unconstrained(&mut result);
    mark_not_one_kww(&mut result);
    Ok(result)
}

/// What [`tau_q_of`] finds.
struct TauQ {
    tau_q: Vec<Option<TauBeta>>,
    power_law: Option<FitReport>,
    truth_power_law: Option<FitReport>,
    alpha: Option<Compared>,
}

/// τ(q) of the bins' fits and its power law, measured and noise-free (the truth of the
/// estimator), with α compared; no power law below three fitted bins.
fn tau_q_of(scan: &ScanSetup, q: &[f64], bins: &[CurveFit]) -> Result<TauQ> {
    let reports: Vec<FitReport> = bins.iter().map(|b| b.fit.clone()).collect();
    let truth_reports: Vec<FitReport> = bins.iter().map(|b| b.truth_fit.clone()).collect();
    let tau_q = tau_beta_per_bin(q, &reports);
    let mut truth_tau_q = tau_beta_per_bin(q, &truth_reports);
    // The truth fit's errors are the data's: use them so both power laws weigh bins alike.
    for (t, m) in truth_tau_q.iter_mut().zip(&tau_q) {
        if let (Some(t), Some(m)) = (t.as_mut(), m) {
            t.tau_err_s = m.tau_err_s;
        }
    }
    let q1 = scan.facts.q1_inv_angstrom;
    // The per-bin τ errors are jackknife errors (calibrated, twin::calibrate): absolute. A
    // χ²-scaled σ from 2-6 dof would itself scatter by ±50-100 % (a chance alignment of the
    // bins gave α a 4σ "failure" on Ce).
    let pl_opts = FitOptions::default().with_error_scale(xpcs_core::fit::ErrorScale::Absolute);
    let (power_law, truth_power_law, alpha) = if tau_q.iter().flatten().count() >= 3 {
        let p = fit_power_law_from_bins(&tau_q, q1, &pl_opts)?;
        let t = fit_power_law_from_bins(&truth_tau_q, q1, &pl_opts)?;
        let c = Compared::new(
            "alpha",
            "",
            p.value("alpha").unwrap_or(f64::NAN),
            p.std_error("alpha").unwrap_or(f64::NAN),
            t.value("alpha").unwrap_or(f64::NAN),
            None,
        );
        (Some(p), Some(t), Some(c))
    } else {
        (None, None, None)
    };

    Ok(TauQ {
        tau_q,
        power_law,
        truth_power_law,
        alpha,
    })
}

/// The aging analysis of an aging scan: τ per age cut of the region's two-time map, with
/// jackknife errors over the two-time groups, the aging law τ0·exp(t_w/τ*) and its noise-free
/// truth; `None` for a scan whose τ law does not age or starts at its cap.
#[allow(clippy::too_many_arguments)]
fn aging_of(
    scan: &ScanSetup,
    a: &AnalysisConfig,
    corr: &Correlated,
    c2: &Array2<f64>,
    tt_dt: f64,
    truth_map: Option<&Array2<f64>>,
    model: &dyn FitModel,
    opts: &FitOptions,
) -> Result<Option<AgingResult>> {
    let law = scan.dynamics.clock().law();
    let scan_end_s =
        scan.isobar.waiting_time_s + scan.exposure.n_frames as f64 * scan.exposure.frame_time_s;
    let onset = match *law {
        // A scan that starts at the law's cap (e.g. the Pt 6.3 GPa plateau scan) does not age:
        // no age cuts (their τ ≈ τ_eq would be far longer than a cut).
        xpcs_sim::model::TauLaw::Aging { tau_eq_s, .. }
            if scan.facts.tau_start_s < 0.99 * tau_eq_s =>
        {
            None
        }
        // A late acceleration whose onset falls inside the scan: the same cuts, and the rate
        // before and after the onset.
        xpcs_sim::model::TauLaw::Accelerating { onset_s, .. } if onset_s < scan_end_s => {
            Some(onset_s)
        }
        _ => return Ok(None),
    };
    let ages = evenly_spaced_ages(c2.nrows(), tt_dt, a.age_cuts.max(2));
    // Jackknife over the two-time groups (≥ 32 compact pixel bands, independent noise):
    // the region map without one group's pixels, per group, through the whole chain
    // (cuts, KWW fits, aging law), which carries the correlations between lags and
    // between ages that the cuts' own scatter misses.
    let groups = &corr.two_time_groups;
    let jk = tau_vs_age_jackknife(
        c2.view(),
        groups.bins.len(),
        &|j| groups.c2_pooled(Some(j)),
        tt_dt,
        &ages,
        None,
        10,
        model,
        opts,
    )?;
    let fits = jk.fits;
    let tm = truth_map.expect("aging scans are not stationary");
    // The expected map has no noise: its cuts are fitted with the data cuts' errors, so
    // both fits weigh the delays alike (the truth of the estimator).
    let tfits: Vec<AgeFit> = fits
        .iter()
        .zip(&ages)
        .map(|(f, &(age, hw))| -> Result<AgeFit> {
            let mut cut = age_cut(tm.view(), tt_dt, age, hw, None, 10)?;
            if cut.delays_s == f.cut.delays_s {
                cut.g2_err = f.cut.g2_err.clone();
            }
            let report = fit_curve(model, &cut.delays_s, &cut.g2, &cut.g2_err, opts)?;
            Ok(AgeFit { cut, report })
        })
        .collect::<Result<_>>()?;
    // Ages since the pressure step: shift by the waiting time.
    let shift = |v: &[AgeFit]| -> Vec<AgeFit> {
        v.iter()
            .cloned()
            .map(|mut f| {
                f.cut.age_s += scan.isobar.waiting_time_s;
                f
            })
            .collect()
    };
    let (fits, mut tfits) = (shift(&fits), shift(&tfits));
    // The truth law weighs the ages with the data's τ errors.
    for (t, m) in tfits.iter_mut().zip(&fits) {
        if let (xpcs_core::fit::FitOutcome::Converged(tv), Some(me)) =
            (&mut t.report.outcome, m.report.std_error("tau"))
        {
            if let Some(i) = t.report.param_names.iter().position(|n| n == "tau") {
                tv.std_errors[i] = me;
            }
        }
    }
    let acceleration = match onset {
        Some(onset_s) => {
            // Cut windows fall on two-time frames: a window may cross the onset by two of them.
            let tol = 2.0 * tt_dt;
            let part = |keep: &dyn Fn(&AgeFit) -> bool| -> Result<Option<AgeSegment>> {
                let idx: Vec<usize> = (0..fits.len()).filter(|&k| keep(&fits[k])).collect();
                age_segment(&idx, &fits, &tfits, &jk.tau_replicates)
            };
            Some(AccelerationFit {
                onset_s,
                before: part(&|f| f.cut.age_s + f.cut.half_width_s <= onset_s + tol)?,
                after: part(&|f| f.cut.age_s - f.cut.half_width_s >= onset_s - tol)?,
            })
        }
        None => None,
    };
    let law_fit = fit_aging_from_ages_jackknife(&fits, &jk.tau_replicates, &FitOptions::default())?;
    let truth_law = fit_aging_from_ages(&tfits, false, &FitOptions::default())?;
    let mut models = Vec::new();
    if let xpcs_sim::model::TauLaw::Aging {
        tau0_s, tau_star_s, ..
    } = law
    {
        models.push(("tau0", *tau0_s));
        models.push(("tau_star", *tau_star_s));
    }
    // An accelerating scan has no aging law to score: its segments say what it shows.
    let mut compared = if onset.is_some() {
        Vec::new()
    } else {
        compare_fits(&law_fit, &truth_law, &models)
    };
    // A weak aging (truth τ* ≥ 5 × the span of ages: ln τ moves < 20 % over the scan) that
    // the measured ages do not resolve is unconstrained, not a failure; a strong aging the
    // fit misses still fails.
    let span = age_span_s(&fits);
    let truth_weak = match truth_law.value("tau_star") {
        Some(ts) => ts >= 5.0 * span,
        None => truth_law
            .failure()
            .is_some_and(|w| w.starts_with("aging not resolved")),
    };
    // The noise-free analysis does not resolve the aging but the noisy fit does (a rate a
    // few σ from zero by chance): there is no truth τ0, τ* to compare with, so the numbers
    // are unconstrained as long as the fitted rate 1/τ* is within WEAK_AGING_MAX_Z σ of
    // zero; a rate beyond that contradicts the weak truth and fails.
    if let (None, true, Some((rate, sr))) = (law_fit.failure(), truth_weak, aging_rate(&law_fit)) {
        if rate / sr <= WEAK_AGING_MAX_Z {
            let note = format!(
                "unconstrained (weak aging: the truth's τ* is unresolved or ≥ 5 × the \
                 {span:.0} s span of ages; the fitted rate 1/τ* = {} 1/s is {:.1} σ from \
                 zero, within {WEAK_AGING_MAX_Z} σ)",
                crate::fit_results::plus_minus(rate, sr),
                rate / sr
            );
            for c in &mut compared {
                c.unconstrained = Some(note.clone());
            }
        }
    }
    if let Some(why) = law_fit.failure() {
        if why.starts_with("aging not resolved") && truth_weak {
            let note = format!(
                "unconstrained (weak aging: the truth's τ* is unresolved or ≥ 5 × the \
                 {span:.0} s span of ages; {why})"
            );
            for c in &mut compared {
                c.unconstrained = Some(note.clone());
            }
        }
    }
    Ok(Some(AgingResult {
        ages: fits,
        truth_ages: tfits,
        law: law_fit,
        truth_law,
        compared,
        acceleration,
    }))
}

/// The ln τ line over the cuts `idx` (those with a converged τ): the rate with its jackknife
/// σ from the replicates (`reps[j][k]`: τ of cut k without pixel group j), and the same line
/// through the expected map's cuts; None with fewer than 3 usable cuts.
fn age_segment(
    idx: &[usize],
    fits: &[AgeFit],
    tfits: &[AgeFit],
    reps: &[Vec<f64>],
) -> Result<Option<AgeSegment>> {
    let c = converged_ages(fits, reps, Some(idx));
    let (x, t, e) = (&c.age_s, &c.tau_s, &c.tau_err_s);
    let Some(rate) = aging_rate_jackknife(x, t, e, &c.replicates)? else {
        return Ok(None);
    };
    let ln_truth: Vec<f64> = c
        .kept
        .iter()
        .map(|&k| ln_positive(tfits[k].report.value("tau").unwrap_or(f64::NAN)))
        .collect();
    let rel: Vec<f64> = e.iter().zip(t).map(|(e, t)| e / t).collect();
    let truth = WeightedLine::fit(x, &ln_truth, &rel).map_or([f64::NAN; 2], |l| [l.a, l.b]);
    Ok(Some(AgeSegment {
        ages_s: [x[0], x[x.len() - 1]],
        n_cuts: rate.line.n,
        ln_tau_intercept: rate.line.a,
        rate_per_s: [rate.line.b, rate.sigma_jackknife.unwrap_or(f64::NAN)],
        truth_line: truth,
    }))
}

/// ΔC of the region's two-time map at the delay τ (rebinned to the campaign's ΔC frame), with
/// its noise floor, the noise alone (measured minus expected map) and the expected map's value;
/// `None` without a fitted τ and contrast or when τ spans half the map.
#[allow(clippy::too_many_arguments)]
fn delta_c_of(
    scan: &ScanSetup,
    a: &AnalysisConfig,
    corr: &Correlated,
    region_fit: &CurveFit,
    region: &QPartition,
    truth_map: Option<&Array2<f64>>,
    tt_dt: f64,
    bin_frames: usize,
) -> Result<Option<DeltaCResult>> {
    let beta = scan.dynamics.beta();
    let n_valid = scan.partition.dynamic().n_labelled();
    Ok(
        match (
            region_fit.fit.value("tau"),
            region_fit.fit.value("contrast"),
        ) {
            (Some(tau), Some(c)) if tau > 0.0 && c > 0.0 => {
                // The ΔC map: the region map rebinned to the campaign's ΔC frame (exact sums),
                // so that every scan's ΔC has the same noise width.
                let k = a
                    .delta_c_bin_s
                    .map_or(1, |b| ((b / tt_dt).round() as usize).max(1));
                let merged = merge_two_time_bins(&corr.two_time);
                let coarse = rebin_two_time(&merged, k);
                let dc_map = coarse.c2(0);
                let dc_dt = tt_dt * k as f64;
                let d = ((tau / dc_dt).round() as usize).max(1);
                if d < dc_map.nrows() / 2 {
                    let value = heterogeneity::delta_c(&dc_map, d, a.delta_c_fraction)?;
                    let f = (-(d as f64 * dc_dt / tau).powf(beta)).exp();
                    let mc = scan.mean_counts_per_frame * (bin_frames * k) as f64;
                    // The region map covers every labelled pixel; the diagonal at delay d holds
                    // n - d values (the finite-sample width of the narrowest 90 % interval).
                    let floor = delta_c_floor_for(
                        n_valid,
                        mc,
                        c.min(1.0),
                        f,
                        a.delta_c_fraction,
                        Some(dc_map.nrows() - d),
                    )?
                    .floor;
                    // The expected map at the same binning (stationary: computed here only).
                    let expected = match truth_map {
                        Some(m) => block_mean(m, k),
                        None => {
                            let mut region_scan = scan.clone();
                            region_scan.partition = region.clone();
                            block_mean(&region_scan.truth_c2_binned(1, bin_frames), k)
                        }
                    };
                    let truth = heterogeneity::delta_c(&expected, d, a.delta_c_fraction)?;
                    // Noise alone: the same width of the measured minus the expected map.
                    let residual = &dc_map - &expected + 1.0;
                    let noise = heterogeneity::delta_c(&residual, d, a.delta_c_fraction)?;
                    Some(DeltaCResult {
                        delay_frames: d,
                        delay_s: d as f64 * dc_dt,
                        bin_s: dc_dt,
                        value,
                        floor,
                        noise,
                        truth,
                    })
                } else {
                    None
                }
            }
            _ => None,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpcs_core::correlate::twotime::two_time_stack;
    use xpcs_core::data::FrameStack;

    /// A scan-averaged g2 that even its truth cannot fit is unscored only when τ drifts
    /// within the scan; a stationary misfit, or a drifting scan the model still describes,
    /// is scored.
    #[test]
    fn misfit_of_a_drifting_scan_is_unconstrained() {
        assert!(not_one_kww(1.62_f64.recip(), Some(7.0)).is_some_and(|w| w.contains("×0.62")));
        assert!(not_one_kww(1.55, Some(5.1)).is_some());
        assert!(not_one_kww(1.0, Some(50.0)).is_none());
        assert!(not_one_kww(1.04, Some(50.0)).is_none());
        assert!(not_one_kww(1.6, Some(4.9)).is_none());
        assert!(not_one_kww(1.6, None).is_none());
        assert!(not_one_kww(f64::NAN, Some(50.0)).is_none());
    }

    /// The merged per-bin two-time result equals the two-time map of the one-bin region
    /// partition of the same pixels, exactly (integer sums).
    #[test]
    fn merged_bins_equal_the_region_map() {
        let data: Vec<u16> = (0..12 * 3 * 4)
            .map(|i| ((i * 7 + i / 5) % 4) as u16)
            .collect();
        let stack = FrameStack::from_u16(12, 3, 4, data).unwrap();
        let labels = vec![1, 1, 2, 2, 3, 3, 0, 1, 2, 3, 3, 1];
        let part = QPartition::from_labels(3, 4, labels, "t").unwrap();
        let region = region_partition(&part).unwrap();
        let bins = two_time_stack(&stack, &part, &[], 2).unwrap();
        let whole = two_time_stack(&stack, &region, &[1], 2).unwrap();
        let merged = merge_two_time_bins(&bins);
        assert_eq!(merged, whole);
        // Rebinning by 3 equals the map computed directly with 3-times longer frames.
        let coarse = two_time_stack(&stack, &part, &[], 6).unwrap();
        assert_eq!(rebin_two_time(&bins, 3), coarse);
    }

    /// The two-time maps accumulated per jackknife group by the event correlator (S(t) and
    /// pixels from its cells' series) equal the dense two-time maps of the group partition
    /// (S(t) counted directly), and add back into the q-bins' maps exactly.
    #[test]
    fn group_two_time_maps_are_exact() {
        use xpcs_core::correlate::{EventCorrelator, LagSchedule};
        use xpcs_core::data::EventList;
        let (r, c, n) = (16, 24, 40);
        let data: Vec<u16> = (0..r * c * n)
            .map(|i| ((i * 7 + i / 5 + i / 97) % 3) as u16)
            .collect();
        let stack = FrameStack::from_u16(n, r, c, data).unwrap();
        // Three q-bins (one with a masked pixel): 16 groups per bin, the split of 3 bins.
        let labels: Vec<u32> = (0..r * c)
            .map(|p| if p == 5 { 0 } else { (p % c / 8 + 1) as u32 })
            .collect();
        let part = QPartition::from_labels(r, c, labels, "t").unwrap();
        assert_eq!(two_time_split(3), 16);
        let groups_part = two_time_partition(&part).unwrap();
        let dense_groups = two_time_stack(&stack, &groups_part, &[], 2).unwrap();
        assert_eq!(dense_groups.bins.len(), 48);
        let ev = EventList::from_stack(&stack, 1.0).unwrap();
        let sched = LagSchedule::multi_tau(n, 4).unwrap();
        let mut corr = EventCorrelator::new(&part, &sched, n)
            .with_two_time(&groups_part, &[], 2)
            .unwrap();
        corr.push_events(&ev).unwrap();
        let event_groups = corr.two_time().unwrap();
        assert_eq!(event_groups, dense_groups);
        let bins = two_time_stack(&stack, &part, &[], 2).unwrap();
        assert_eq!(collapse_two_time(&event_groups, 16), bins);
        // A partition that splits the correlator's cells is refused.
        let odd: Vec<u32> = (0..r * c).map(|p| (p % 2 + 1) as u32).collect();
        let odd = QPartition::from_labels(r, c, odd, "t").unwrap();
        let e = EventCorrelator::new(&part, &sched, n)
            .with_two_time(&odd, &[], 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("refinement"), "{e}");
    }
}
