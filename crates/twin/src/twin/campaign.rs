//! The campaign analysis: every isobar's numbers against pressure, with their ground truth.
//!
//! Input: a [`CampaignSetup`] and the per-scan [`ScanResult`]s. Output: [`CampaignAnalysis`]:
//! τ, β, c of the whole region per isobar (value, σ, truth, pull, and the model's τ), the
//! crossover fit of ln τ(P) on compression (crossover pressure and activation volumes below
//! and above it, each against the same fit of the truth τ's), ΔC vs P, the aging law, α, and
//! the qualitative checks of the seeds as named pass/fail [`Check`]s.
//!
//! Reference: docs/model.md §2 (pressure), §6 (fits); the seeds (docs/model.md §9).

use super::scan::{aging_rate, Compared, ScanResult};
use super::setup::CampaignSetup;
use serde::Serialize;
use xpcs_core::error::Result;
use xpcs_core::fit::line::WeightedLine;
use xpcs_core::fit::pressure::{fit_crossover, kbt_gpa_a3, CrossoverFit};
use xpcs_core::fit::FitOptions;
use xpcs_sim::model::Direction;

/// One isobar's region fit.
#[derive(Debug, Clone, Serialize)]
pub struct IsobarPoint {
    /// Scan label.
    pub label: String,
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// Branch.
    pub direction: Direction,
    /// Fitted parameters vs truth (τ, β, c, baseline when free).
    pub compared: Vec<Compared>,
    /// ΔC at δt = τ, its analytic floor, the noise width measured on the same map (ΔC of
    /// measured − expected) and its truth (ΔC of the expected map); NaN when τ could not be
    /// fitted.
    pub delta_c: [f64; 4],
}

impl IsobarPoint {
    /// The comparison of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&Compared> {
        self.compared.iter().find(|c| c.name == name)
    }
}

/// A named qualitative check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Outcome.
    pub passed: bool,
    /// The numbers behind it.
    pub detail: String,
}

/// Everything the campaign analysis finds.
#[derive(Debug, Clone, Serialize)]
pub struct CampaignAnalysis {
    /// One point per isobar, protocol order.
    pub points: Vec<IsobarPoint>,
    /// Crossover fit of the compression τ's.
    pub crossover: Option<CrossoverFit>,
    /// The same fit of the truth τ's (with the data's errors).
    pub truth_crossover: Option<CrossoverFit>,
    /// Crossover pressure and ΔV below/above vs truth.
    pub crossover_compared: Vec<Compared>,
    /// Every per-scan comparison (bins, region, α, aging), flattened: (scan, what, compared).
    pub all: Vec<(String, String, Compared)>,
    /// Qualitative checks.
    pub checks: Vec<Check>,
    /// The FSDP position q1 fitted per scan and its pressure shift (Err: why not).
    pub q1_shift: std::result::Result<super::q1fit::Q1Shift, String>,
    /// The 6.3 GPa aging law across scans and its plateau (Pt campaigns).
    pub aging_plateau: Option<AgingPlateau>,
}

fn crossover_of(p: &[f64], t: &[f64], e: &[f64]) -> Option<CrossoverFit> {
    if p.len() < 5 {
        return None;
    }
    fit_crossover(p, t, e, kbt_gpa_a3(300.0), 60, &FitOptions::default()).ok()
}

/// Runs the campaign analysis.
pub fn analyse(setup: &CampaignSetup, scans: &[ScanResult]) -> Result<CampaignAnalysis> {
    let points: Vec<IsobarPoint> = scans
        .iter()
        .map(|s| IsobarPoint {
            label: s.label.clone(),
            pressure_gpa: s.facts.pressure_gpa,
            direction: s.facts.direction,
            compared: s.region.compared.clone(),
            delta_c: s
                .delta_c
                .as_ref()
                .map_or([f64::NAN; 4], |d| [d.value, d.floor, d.noise, d.truth]),
        })
        .collect();
    let mut all = Vec::new();
    for s in scans {
        for c in &s.region.compared {
            all.push((s.label.clone(), "region".to_string(), c.clone()));
        }
        for (i, b) in s.bins.iter().enumerate() {
            for c in &b.compared {
                all.push((s.label.clone(), format!("q-bin {}", i + 1), c.clone()));
            }
        }
        if let Some(a) = &s.alpha {
            all.push((s.label.clone(), "τ(q) power law".into(), a.clone()));
        }
        if let Some(a) = &s.aging {
            for c in &a.compared {
                all.push((s.label.clone(), "aging law".into(), c.clone()));
            }
        }
    }
    // Crossover on compression; kB T at 300 K (both seeds: room temperature).
    let comp: Vec<&IsobarPoint> = points
        .iter()
        .filter(|p| p.direction == Direction::Compression)
        .collect();
    let (mut pp, mut tt, mut ee, mut tr) = (vec![], vec![], vec![], vec![]);
    for p in &comp {
        if let Some(c) = p.get("tau") {
            // Unconstrained τ's (scan shorter than 3 τ) stay out of the fit.
            if c.value.is_finite()
                && c.sigma.is_finite()
                && c.truth.is_finite()
                && c.unconstrained.is_none()
            {
                pp.push(p.pressure_gpa);
                tt.push(c.value);
                ee.push(c.sigma);
                tr.push(c.truth);
            }
        }
    }
    let crossover = crossover_of(&pp, &tt, &ee);
    let truth_crossover = crossover_of(&pp, &tr, &ee);
    let mut crossover_compared = Vec::new();
    if let (Some(c), Some(t)) = (&crossover, &truth_crossover) {
        let v = |f: &CrossoverFit, n: &str| f.report.value(n).unwrap_or(f64::NAN);
        let e = |f: &CrossoverFit, n: &str| f.report.std_error(n).unwrap_or(f64::NAN);
        let name0 = c.report.param_names.first().cloned().unwrap_or_default();
        crossover_compared.push(Compared::new(
            "p_cross",
            "GPa",
            v(c, &name0),
            e(c, &name0),
            v(t, &name0),
            None,
        ));
        if let (Some(a), Some(b)) = (c.low, t.low) {
            crossover_compared.push(Compared::new(
                "delta_v_below",
                "Å³",
                a.delta_v_a3,
                a.delta_v_err_a3,
                b.delta_v_a3,
                None,
            ));
        }
        if let (Some(a), Some(b)) = (c.high, t.high) {
            crossover_compared.push(Compared::new(
                "delta_v_above",
                "Å³",
                a.delta_v_a3,
                a.delta_v_err_a3,
                b.delta_v_a3,
                None,
            ));
        }
    }
    // The 6.3 GPa aging law across scans and its plateau (Pt campaigns): computed once, for
    // the check and the figure.
    let aging_plateau = if setup.config.name.to_ascii_lowercase().starts_with("pt") {
        aging_plateau(setup, scans, &points)
    } else {
        None
    };
    let mut checks = qualitative_checks(setup, scans, &points, aging_plateau.as_ref());
    let q1_shift = super::q1fit::q1_shift(setup, scans);
    if let Ok(q) = &q1_shift {
        let (s, e) = q.fit.slope();
        checks.push(Check {
            name: "q1(P): the FSDP shift fitted from the frames equals the sample's dq1/dP".into(),
            passed: q.passes(),
            detail: format!(
                "dq1/dP = {} Å⁻¹/GPa over {} scans; model {} Å⁻¹/GPa: {:+.2} σ (limit {}); \
                 the same fit of the expected intensities {} Å⁻¹/GPa ({:+.2} σ from the fit)",
                crate::fit_results::plus_minus(s, e),
                q.points.len(),
                xpcs_core::check::sig(q.model_slope, 3),
                q.pull_model(),
                q.max_abs_pull,
                xpcs_core::check::sig(q.truth_fit.slope().0, 3),
                q.pull_truth()
            ),
        });
    }
    Ok(CampaignAnalysis {
        aging_plateau,
        points,
        crossover,
        truth_crossover,
        crossover_compared,
        all,
        checks,
        q1_shift,
    })
}

fn tau_of(p: &IsobarPoint) -> f64 {
    p.get("tau").map_or(f64::NAN, |c| c.value)
}

/// The seeds' qualitative statements as checks, chosen by the campaign's name (`plateau`: the
/// campaign's [`AgingPlateau`], if any).
pub fn qualitative_checks(
    setup: &CampaignSetup,
    scans: &[ScanResult],
    points: &[IsobarPoint],
    plateau: Option<&AgingPlateau>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let comp: Vec<&IsobarPoint> = points
        .iter()
        .filter(|p| p.direction == Direction::Compression)
        .collect();
    let argext = |v: &[&IsobarPoint], f: &dyn Fn(&IsobarPoint) -> f64, max: bool| {
        v.iter()
            .filter(|p| f(p).is_finite())
            .max_by(|a, b| {
                let o = f(a).total_cmp(&f(b));
                if max {
                    o
                } else {
                    o.reverse()
                }
            })
            .map(|p| (p.pressure_gpa, f(p)))
    };
    let name = setup.config.name.to_ascii_lowercase();
    // An extremum in pressure needs isobars on both sides of it: with fewer than 3 compression
    // isobars (a scenario running only some scans) those checks are not made.
    let extrema = comp.len() >= 3;
    if name.starts_with("ce") && extrema {
        if let Some((p, t)) = argext(&comp, &tau_of, true) {
            let pmin = comp
                .iter()
                .map(|p| p.pressure_gpa)
                .fold(f64::INFINITY, f64::min);
            let pmax = comp
                .iter()
                .map(|p| p.pressure_gpa)
                .fold(f64::NEG_INFINITY, f64::max);
            out.push(Check {
                name: "Ce: τ(P) non-monotonic, maximum between 2 and 4 GPa".into(),
                passed: (2.0..=4.0).contains(&p) && p > pmin && p < pmax,
                detail: format!("largest τ = {t:.1} s at {p} GPa"),
            });
        }
    }
    if name.starts_with("ce") {
        if let Some(c) = ce_slight_aging_check(scans) {
            out.push(c);
        }
        if let Some(c) = ce_contrast_rise_check(&comp) {
            out.push(c);
        }
    }
    if name.starts_with("pt") && extrema {
        if let Some((p, t)) = argext(&comp, &tau_of, false) {
            out.push(Check {
                name: "Pt: τ minimal near 3.3 GPa on compression".into(),
                passed: (p - 3.3).abs() < 0.5,
                detail: format!("smallest τ = {t:.1} s at {p} GPa"),
            });
        }
        let dc = |p: &IsobarPoint| p.delta_c[0];
        if let Some((p, v)) = argext(&comp, &dc, true) {
            // The largest ΔC elsewhere contradicts the seed only when it is above the 3.3 GPa
            // one by more than the larger noise width (ΔC of measured − expected) of the two;
            // within it the run's scale does not decide (the reduced detector: noise width
            // ~2 × the heterogeneity).
            let at33 = comp.iter().find(|q| (q.pressure_gpa - 3.3).abs() < 0.5);
            let verdict = match at33 {
                None => Err("no isobar near 3.3 GPa".to_string()),
                Some(q) if (p - 3.3).abs() < 0.5 => {
                    // The maximum is at 3.3 GPa: by how much, in noise widths, it stands
                    // above the largest ΔC elsewhere, and above its own noise.
                    let others: Vec<&IsobarPoint> = comp
                        .iter()
                        .copied()
                        .filter(|c| (c.pressure_gpa - 3.3).abs() >= 0.5)
                        .collect();
                    let own = format!(
                        "ΔC at 3.3 GPa = {:.1} × its noise width",
                        q.delta_c[0] / q.delta_c[2]
                    );
                    Ok(match argext(&others, &dc, true) {
                        None => format!("at 3.3 GPa; {own}"),
                        Some((p2, v2)) => {
                            let second = others
                                .iter()
                                .find(|c| c.pressure_gpa == p2)
                                .expect("argext's point");
                            let noise = q.delta_c[2].max(second.delta_c[2]);
                            let m = (q.delta_c[0] - v2) / noise;
                            format!(
                                "at 3.3 GPa; {own}; above the next largest ({v2:.4} at {p2} \
                                 GPa) by {m:.1} × the noise width {noise:.4}: {}",
                                if m > 1.0 {
                                    "decided"
                                } else {
                                    "not decided at this scale"
                                }
                            )
                        }
                    })
                }
                Some(q) => {
                    let top = comp
                        .iter()
                        .find(|c| c.pressure_gpa == p)
                        .expect("argext's point");
                    let noise = q.delta_c[2].max(top.delta_c[2]);
                    let excess = v - q.delta_c[0];
                    if excess > noise {
                        Err(format!(
                            "above the {:.4} at 3.3 GPa by {excess:.4}, more than the noise \
                             width {noise:.4}",
                            q.delta_c[0]
                        ))
                    } else {
                        Ok(format!(
                            "above the {:.4} at 3.3 GPa by {excess:.4}, within the noise width \
                             {noise:.4}: not decided at this scale",
                            q.delta_c[0]
                        ))
                    }
                }
            };
            let (passed, verdict) = match verdict {
                Ok(v) => (true, v),
                Err(v) => (false, v),
            };
            out.push(Check {
                name: "Pt: ΔC maximal near 3.3 GPa on compression".into(),
                passed,
                detail: format!(
                    "largest ΔC = {v:.4} at {p} GPa ({verdict}); ΔC (noise width, expected-map \
                     ΔC) per isobar: {}",
                    comp.iter()
                        .map(|q| format!(
                            "{} GPa {:.4} ({:.4}, {:.4})",
                            q.pressure_gpa, q.delta_c[0], q.delta_c[2], q.delta_c[3]
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            });
        }
    }
    if name.starts_with("pt") {
        if let Some(c) = pt_atm_acceleration_check(setup, points) {
            out.push(c);
        }
        if let Some(c) = pt_decompression_aging_check(scans, points) {
            out.push(c);
        }
        if let Some(pl) = plateau {
            out.push(pt_aging_plateau_check(setup, pl));
        }
        out.extend(pt_late_acceleration_check(setup, scans));
        let mut pairs = Vec::new();
        for d in points
            .iter()
            .filter(|p| p.direction == Direction::Decompression)
        {
            if let Some(c) = comp
                .iter()
                .find(|c| (c.pressure_gpa - d.pressure_gpa).abs() < 1e-6)
            {
                pairs.push((d.pressure_gpa, tau_of(c), tau_of(d)));
            }
        }
        if !pairs.is_empty() {
            out.push(Check {
                name: "Pt: decompression slower than compression at the same pressure".into(),
                passed: pairs.iter().all(|&(_, c, d)| d > c),
                detail: pairs
                    .iter()
                    .map(|(p, c, d)| format!("{p} GPa: τ {c:.1} s up, {d:.1} s down"))
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }
    for s in scans {
        // τ* is identifiable only while τ(t_w) is still growing: skip scans that reach the
        // stationary cap τ_eq within the scan (e.g. the Ce seed's "slight" aging at 2.9 GPa).
        let capped = match setup.scan(s.index).dynamics.clock().law() {
            xpcs_sim::model::TauLaw::Aging { tau_eq_s, .. } => s.facts.tau_end_s >= 0.99 * tau_eq_s,
            _ => true,
        };
        if capped {
            continue;
        }
        if let Some(a) = &s.aging {
            if let Some(c) = a.compared.iter().find(|c| c.name == "tau_star") {
                if let Some(m) = c.model {
                    out.push(tau_star_check(setup, s, c, m));
                }
            }
        }
    }
    let alpha_model = setup.sample.campaign.response.q_exponent;
    if alpha_model != 0.0 {
        // The seed's α is measured at 6.3 GPa (every scan there, in compression: one value
        // from all of them) or, in a q-scenario, on its first scan.
        let chosen: Vec<&ScanResult> = scans
            .iter()
            .filter(|s| s.alpha.is_some())
            .filter(|s| {
                ((s.facts.pressure_gpa - 6.3).abs() < 1e-6
                    && s.facts.direction == Direction::Compression)
                    || (name.starts_with("q") && s.index == 0)
            })
            .collect();
        if !chosen.is_empty() {
            out.push(alpha_check(setup, &chosen, alpha_model));
        }
    }
    out
}

/// Inverse-variance weighted mean of comparisons of one quantity measured in several scans
/// (value and truth of the estimator with the same weights 1/σ², σ = (Σ 1/σ²)^−1/2); those
/// without a finite positive σ are left out (all of them: the first comparison as it is).
/// α is the same in every scan of an aging isobar (τ(q, t_w) = τ(t_w)·(q/q1)^−α), so its
/// scans' estimates combine this way.
fn weighted_mean(cs: &[&super::scan::Compared]) -> super::scan::Compared {
    let ok: Vec<&&super::scan::Compared> = cs
        .iter()
        .filter(|c| c.value.is_finite() && c.sigma.is_finite() && c.sigma > 0.0)
        .collect();
    if ok.len() < 2 {
        return (*ok.first().copied().unwrap_or(&cs[0])).clone();
    }
    let w: Vec<f64> = ok.iter().map(|c| 1.0 / (c.sigma * c.sigma)).collect();
    let sw: f64 = w.iter().sum();
    let mean = |f: &dyn Fn(&super::scan::Compared) -> f64| {
        ok.iter().zip(&w).map(|(c, w)| w * f(c)).sum::<f64>() / sw
    };
    let first = ok[0];
    super::scan::Compared::new(
        &first.name,
        &first.unit,
        mean(&|c| c.value),
        1.0 / sw.sqrt(),
        mean(&|c| c.truth),
        first.model,
    )
}

/// "Recovered within `within` of the model" for a fitted number (α, τ*), decided in two parts:
/// - systematic, noise-free: the truth of the estimator (the same analysis of the exact
///   expected correlations) lies within `within` of the model. This is the analysis chain's
///   accuracy (binning, level-frame averaging, the fits), decided exactly at any scale;
/// - statistical: when the run resolves it (σ ≤ within/2, a 2σ test), the fitted value itself
///   lies within `within` of the model; otherwise the fitted value agrees with the truth of
///   the estimator within the campaign's pull limit, and the check says that the run's σ is
///   too large to decide `within` from its own fit.
#[allow(clippy::too_many_arguments)]
fn within_check(
    what: String,
    within_name: &str,
    numbers: String,
    c: &super::scan::Compared,
    model: f64,
    within: f64,
    max_pull: f64,
    fmt: &dyn Fn(f64) -> String,
) -> Check {
    let systematic = (c.truth - model).abs() <= within;
    let sys_note = format!(
        "noise-free analysis − model = {} ({} the limit)",
        fmt(c.truth - model),
        if systematic { "within" } else { "OUTSIDE" },
    );
    if c.sigma.is_finite() && c.sigma <= within / 2.0 {
        Check {
            name: format!("{what} within {within_name} of the model"),
            passed: systematic && (c.value - model).abs() <= within,
            detail: format!("{numbers}; {sys_note}"),
        }
    } else {
        let pull = (c.value - c.truth) / c.sigma;
        Check {
            name: format!(
                "{what} within {within_name} of the model (noise-free analysis; this run's σ \
                 too large to decide it from its own fit)"
            ),
            passed: systematic && pull.abs() <= max_pull,
            detail: format!(
                "{numbers}; {sys_note}; fit vs truth of the estimator: pull {pull:+.2} (limit \
                 {max_pull}); σ = {} > {}",
                fmt(c.sigma).trim_start_matches('+'),
                fmt(within / 2.0).trim_start_matches('+')
            ),
        }
    }
}

/// α within 0.05 of the model ([`within_check`]), from one scan or the weighted mean of several
/// ([`weighted_mean`]); when undecided from the fit, the detail
/// gives the σ_α a whole-detector run would reach (σ_α · sqrt(N_roi / N_detector), valid when
/// the ROI spans the detector's q range, as the Pt campaign's strip does).
fn alpha_check(setup: &CampaignSetup, scans: &[&ScanResult], alpha_model: f64) -> Check {
    let each: Vec<&super::scan::Compared> = scans.iter().filter_map(|s| s.alpha.as_ref()).collect();
    let a = &weighted_mean(&each);
    let labels: Vec<&str> = scans.iter().map(|s| s.label.as_str()).collect();
    let per_scan = if scans.len() > 1 {
        format!(
            " (weighted mean of {}: {})",
            scans.len(),
            each.iter()
                .map(|c| format!("{:.3} ± {:.3}", c.value, c.sigma))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        String::new()
    };
    let r = &setup.roi;
    let full_sigma = a.sigma * ((r.rows * r.cols) as f64 / (r.det_rows * r.det_cols) as f64).sqrt();
    let mut c = within_check(
        format!("{}: α", labels.join(" + ")),
        "0.05",
        format!(
            "α = {:.3} ± {:.3}{per_scan}, model {alpha_model}, truth of the estimator {:.3}",
            a.value, a.sigma, a.truth
        ),
        a,
        alpha_model,
        0.05,
        setup.config.tolerances.max_abs_pull,
        &|x| format!("{x:+.3}"),
    );
    let decided = a.sigma.is_finite() && a.sigma <= 0.025;
    if !decided && !r.is_full() {
        c.detail += &format!("; the whole detector would give σ_α ≈ {full_sigma:.3}");
    }
    c
}

/// The seed's τ = 571 s at 1 atm and 38 s at 3.3 GPa, "a pressure-induced acceleration of the
/// dynamics by a factor 15": the ratio of the fitted region τ's (σ from both fits' errors,
/// truth: the same ratio of the noise-free fits) within 10 % of 571/38 ([`within_check`]).
/// None without a 1 atm (P < 0.05 GPa) and a 3.3 GPa compression isobar.
fn pt_atm_acceleration_check(setup: &CampaignSetup, points: &[IsobarPoint]) -> Option<Check> {
    let comp = |lo: f64, hi: f64| {
        points
            .iter()
            .find(|p| p.direction == Direction::Compression && (lo..hi).contains(&p.pressure_gpa))
    };
    let (atm, p33) = (comp(0.0, 0.05)?, comp(3.25, 3.35)?);
    let (a, b) = (atm.get("tau")?, p33.get("tau")?);
    let r = a.value / b.value;
    let sigma = r * ((a.sigma / a.value).powi(2) + (b.sigma / b.value).powi(2)).sqrt();
    let seed = 571.0 / 38.0;
    let c = Compared::new("tau ratio", "", r, sigma, a.truth / b.truth, Some(seed));
    Some(within_check(
        format!(
            "Pt: 1 atm → 3.3 GPa acceleration by a factor 15 ({} / {})",
            atm.label, p33.label
        ),
        "10 %",
        format!(
            "τ {:.0} ± {:.0} s at 1 atm / {:.1} ± {:.1} s at 3.3 GPa = {r:.2} ± {sigma:.2}, the \
             seed's 571 s / 38 s = {seed:.2}, truth of the estimator {:.2}",
            a.value, a.sigma, b.value, b.sigma, c.truth
        ),
        &c,
        seed,
        0.1 * seed,
        setup.config.tolerances.max_abs_pull,
        &|x| format!("{x:+.2}"),
    ))
}

/// The Pt seed's decompression at 3.3 GPa, "highly similar to the aging regime visible at
/// 6.3 GPa in compression, and [it] does not match the heterogeneous dynamics observed at the
/// corresponding pressure in compression": the aging law fitted to that scan resolves a
/// positive rate 1/τ* (≥ 3σ from zero), and its ΔC at δt = τ is not above the compression
/// 3.3 GPa one by more than the noise width (the detail says whether "lower" is decided at
/// the run's scale). None without a 3.3 GPa decompression scan.
fn pt_decompression_aging_check(scans: &[ScanResult], points: &[IsobarPoint]) -> Option<Check> {
    let at33 = |d: Direction| {
        points
            .iter()
            .find(|p| (p.pressure_gpa - 3.3).abs() < 1e-6 && p.direction == d)
    };
    let down = at33(Direction::Decompression)?;
    let s = scans.iter().find(|s| s.label == down.label)?;
    let name = format!(
        "Pt: decompression 3.3 GPa ages like 6.3 GPa, not heterogeneous like 3.3 GPa up ({})",
        s.label
    );
    let Some((k, sk)) = s.aging.as_ref().and_then(|a| aging_rate(&a.law)) else {
        return Some(aging_unresolved(name, s));
    };
    let up = at33(Direction::Compression);
    let (dc_down, dc_up) = (down.delta_c[0], up.map_or(f64::NAN, |p| p.delta_c[0]));
    // ΔC is decided against the larger of the two noise widths (ΔC of measured − expected):
    // lower by more than that is "less heterogeneous"; higher by more contradicts the seed.
    let noise = down.delta_c[2].max(up.map_or(f64::NAN, |p| p.delta_c[2]));
    let (verdict, contradicts) = if !(dc_down.is_finite() && dc_up.is_finite()) {
        ("not measured".to_string(), false)
    } else if dc_up - dc_down > noise {
        (
            format!("lower by more than the noise width {noise:.4}: decided"),
            false,
        )
    } else if dc_down - dc_up > noise {
        (
            format!("HIGHER by more than the noise width {noise:.4}"),
            true,
        )
    } else {
        (
            format!("within the noise width {noise:.4}: not decided at this scale"),
            false,
        )
    };
    Some(Check {
        name,
        passed: k / sk >= 3.0 && !contradicts,
        detail: format!(
            "aging rate 1/τ* = {} 1/s ({:.1} σ from zero; limit 3 σ); ΔC at δt = τ {dc_down:.4} \
             down vs {dc_up:.4} up ({verdict})",
            crate::fit_results::plus_minus(k, sk),
            k / sk
        ),
    })
}

/// Start of the Pt seed's aging plateau at 6.3 GPa: "last point at tw>8000s" (s).
const PT_PLATEAU_TW_S: f64 = 8000.0;

/// The 6.3 GPa aging and its plateau (the check "Pt: aging plateau at 6.3 GPa"): the aging
/// law fitted across the age cuts of the 6.3 GPa compression scans that end before
/// t_w = 8000 s, and the first scan starting after it.
#[derive(Debug, Clone, Serialize)]
pub struct AgingPlateau {
    /// Labels of the scans whose cuts are fitted.
    pub fitted_scans: Vec<String>,
    /// Their cuts: [t_w (s), τ (s), σ_τ (s)].
    pub cuts: Vec<[f64; 3]>,
    /// The same cuts of the expected maps: [t_w (s), τ (s)].
    pub truth_cuts: Vec<[f64; 2]>,
    /// The law through `cuts` and through `truth_cuts` (with the data's errors).
    #[serde(skip)]
    law: AgingLine,
    #[serde(skip)]
    truth_law: AgingLine,
    /// τ0, σ_τ0, τ*, σ_τ* (s) of the fitted law.
    pub law_tau0_tau_star_s: [f64; 4],
    /// The plateau scan.
    pub late_label: String,
    /// Its t_w span and middle (s): [start, end, middle].
    pub late_tw_s: [f64; 3],
    /// Its region τ fit: [τ, σ_τ, truth of the estimator] (s).
    pub late_tau: [f64; 3],
    /// Gap ln(τ_law(middle)/τ_scan): [value, σ, noise-free].
    pub gap: [f64; 3],
}

impl AgingPlateau {
    /// ln τ of the fitted (`truth` false) or noise-free law at t_w (s).
    pub fn law_ln_tau(&self, t_w_s: f64, truth: bool) -> f64 {
        if truth { self.truth_law } else { self.law }.at(t_w_s).0
    }
}

/// [`AgingPlateau`] of a campaign; None without a 6.3 GPa compression scan starting after
/// t_w = 8000 s, ≥ 3 converged cut τ's before it and a rising law through them.
pub fn aging_plateau(
    setup: &CampaignSetup,
    scans: &[ScanResult],
    points: &[IsobarPoint],
) -> Option<AgingPlateau> {
    let at63: Vec<&ScanResult> = scans
        .iter()
        .filter(|s| {
            (s.facts.pressure_gpa - 6.3).abs() < 1e-6 && s.facts.direction == Direction::Compression
        })
        .collect();
    let span = |s: &ScanResult| {
        let i = &setup.scan(s.index).isobar;
        (i.waiting_time_s, i.n_frames as f64 * i.frame_time_s)
    };
    let late = at63.iter().find(|s| span(s).0 >= PT_PLATEAU_TW_S)?;
    let early: Vec<&&ScanResult> = at63
        .iter()
        .filter(|s| {
            let (w, t) = span(s);
            w + t <= PT_PLATEAU_TW_S
        })
        .collect();
    // (t_w, τ, σ_τ) per converged cut, measured and noise-free.
    let cuts = |truth: bool| -> Vec<[f64; 3]> {
        early
            .iter()
            .filter_map(|s| s.aging.as_ref())
            .flat_map(|a| if truth { &a.truth_ages } else { &a.ages })
            .filter_map(|f| {
                let (t, e) = (f.report.value("tau")?, f.report.std_error("tau")?);
                (t > 0.0 && e.is_finite() && e > 0.0).then_some([f.cut.age_s, t, e])
            })
            .collect()
    };
    let (m, t) = (cuts(false), cuts(true));
    let (law, truth_law) = (AgingLine::fit(&m)?, AgingLine::fit(&t)?);
    let lp = late_point(points, &late.label)?;
    let (w, dur) = span(late);
    let tw_mid = w + dur / 2.0;
    let ((pred, sp), (tpred, _)) = (law.at(tw_mid), truth_law.at(tw_mid));
    let (t0, st0) = law.tau0();
    let (ts, sts) = law.tau_star();
    Some(AgingPlateau {
        fitted_scans: early.iter().map(|s| s.label.clone()).collect(),
        truth_cuts: t.iter().map(|c| [c[0], c[1]]).collect(),
        cuts: m,
        law,
        truth_law,
        law_tau0_tau_star_s: [t0, st0, ts, sts],
        late_label: late.label.clone(),
        late_tw_s: [w, w + dur, tw_mid],
        late_tau: [lp.value, lp.sigma, lp.truth],
        gap: [
            pred - lp.value.ln(),
            (sp * sp + (lp.sigma / lp.value).powi(2)).sqrt(),
            tpred - lp.truth.ln(),
        ],
    })
}

/// The Pt seed's aging at 6.3 GPa, "a first rapid aging regime which obeys ... τ(tw) =
/// τ0 exp(tw/τ*) followed by a constant dynamical state (last point at tw>8000s, excluded from
/// fit)": one aging law ln τ = ln τ0 + t_w/τ* fitted across the age cuts of every 6.3 GPa
/// compression scan that ends before t_w = 8000 s (the seed's inset), extrapolated to the
/// middle of the first scan that starts after it, lies above that scan's fitted τ (gap
/// d = ln τ_law − ln τ_scan > 0). The cuts are weighted by their τ errors, inflated by the
/// fit's Birge ratio when above 1 (cuts of one scan share its pixels' noise).
///
/// Decided from the fit when the noise-free gap is ≥ (3 + the pull limit) σ_d: pass when
/// d ≥ 3σ_d and d > ln(1 + the τ tolerance) (a plateau, not a τ within tolerance of the law).
/// Otherwise decided by the noise-free analysis (the same law fitted to the expected maps'
/// cuts, the same scan fit of the expected g2): pass when its gap exceeds ln(1 + the τ
/// tolerance) and the fit's is within the pull limit of it.
fn pt_aging_plateau_check(setup: &CampaignSetup, pl: &AgingPlateau) -> Check {
    let (early, late) = (&pl.fitted_scans, &pl.late_label);
    let m = &pl.cuts;
    let tw_mid = pl.late_tw_s[2];
    let [t0, st0, ts, sts] = pl.law_tau0_tau_star_s;
    let [d, sigma, d_truth] = pl.gap;
    let lp = &pl.late_tau;
    let max_pull = setup.config.tolerances.max_abs_pull;
    // A plateau, not a τ within the τ tolerance of the law.
    let min_gap = setup.config.tolerances.tau_rel.ln_1p();
    let name = format!(
        "Pt: aging plateau at 6.3 GPa after t_w ≈ 8000 s ({} law vs {late})",
        early.join(" + "),
    );
    let numbers = format!(
        "law over {} cut τ's at t_w {:.0}–{:.0} s: τ0 = {} s, τ* = {} s (seed 34 s, 2300 s; \
         noise-free τ0 {:.1} s, τ* {:.0} s); at t_w = {tw_mid:.0} s it gives τ = {:.0} s, the \
         scan's fit {:.0} ± {:.0} s: gap ln(τ_law/τ_scan) = {d:.3} ± {sigma:.3} ({:.1} σ), \
         noise-free {d_truth:.3}",
        m.len(),
        m.iter().map(|c| c[0]).fold(f64::INFINITY, f64::min),
        m.iter().map(|c| c[0]).fold(f64::NEG_INFINITY, f64::max),
        crate::fit_results::plus_minus(t0, st0),
        crate::fit_results::plus_minus(ts, sts),
        pl.truth_law.tau0().0,
        pl.truth_law.tau_star().0,
        pl.law_ln_tau(tw_mid, false).exp(),
        lp[0],
        lp[1],
        d / sigma
    );
    // Decided from the fit when a 3σ gap is certain: the noise-free gap ≥ (3 + the pull
    // limit) σ, so that a fit within the pull limit of it is ≥ 3σ from zero.
    if d_truth >= (3.0 + max_pull) * sigma {
        Check {
            name,
            passed: d >= 3.0 * sigma && d > min_gap,
            detail: format!(
                "{numbers}; decided from the fit (limits: gap ≥ 3 σ and above ln(1 + τ \
                 tolerance) = {min_gap:.3})"
            ),
        }
    } else {
        let pull = (d - d_truth) / sigma;
        let r = &setup.roi;
        let full = sigma * ((r.rows * r.cols) as f64 / (r.det_rows * r.det_cols) as f64).sqrt();
        Check {
            name: format!("{name} (noise-free analysis; this run's σ too large to decide it)"),
            passed: d_truth > min_gap && pull.abs() <= max_pull,
            detail: format!(
                "{numbers}; σ of the gap {sigma:.3} > the noise-free gap / (3 + {max_pull}); \
                 noise-free gap above ln(1 + τ tolerance) = {min_gap:.3}: {}; fit vs noise-free \
                 pull {pull:+.2} (limit {max_pull}){}",
                if d_truth > min_gap { "yes" } else { "NO" },
                if r.is_full() {
                    String::new()
                } else {
                    format!("; the whole detector would give σ ≈ {full:.3}")
                }
            ),
        }
    }
}

/// The Pt seed at 3.3 GPa in compression: "a steady acceleration of the dynamics is visible
/// after 11600 s" while "fluctuations are still visible on the TTCF after 12000s". For each
/// 3.3 GPa compression scan whose τ law accelerates inside it: the rate d ln τ/d t_w of its age
/// cuts after the onset ([`super::scan::AgeSegment`], jackknife σ) is negative.
///
/// Decided from the fit when the noise-free rate is below −(3 + the pull limit) σ: pass when
/// the rate is ≤ −3σ and within the pull limit of the noise-free one. Otherwise decided by the
/// noise-free analysis (the same line through the expected map's cuts): pass when τ falls over
/// the segment by more than the τ tolerance and the fit is within the pull limit of it. The
/// rate before the onset is given alongside (τ steady: the fluctuations alone). None without
/// such a scan.
fn pt_late_acceleration_check(setup: &CampaignSetup, scans: &[ScanResult]) -> Vec<Check> {
    let max_pull = setup.config.tolerances.max_abs_pull;
    let min_fall = setup.config.tolerances.tau_rel.ln_1p();
    let mut out = Vec::new();
    for s in scans.iter().filter(|s| {
        (s.facts.pressure_gpa - 3.3).abs() < 1e-6 && s.facts.direction == Direction::Compression
    }) {
        // The scan analysis decides whether the onset falls inside the scan.
        let Some(acc) = s.aging.as_ref().and_then(|a| a.acceleration.as_ref()) else {
            continue;
        };
        let name = format!(
            "Pt: steady acceleration at 3.3 GPa after t_w ≈ {:.0} s ({})",
            acc.onset_s, s.label
        );
        let Some(after) = &acc.after else {
            out.push(Check {
                name,
                passed: false,
                detail: "no rate after the onset (fewer than 3 converged age cuts after it)".into(),
            });
            continue;
        };
        let [k, sk] = after.rate_per_s;
        let kt = after.truth_line[1];
        let span = after.ages_s[1] - after.ages_s[0];
        let before = acc
            .before
            .as_ref()
            .map_or("no rate before the onset".to_string(), |b| {
                format!(
                    "before the onset ({} cuts, t_w {:.0}–{:.0} s): {} 1/s, noise-free {:+.2e}",
                    b.n_cuts,
                    b.ages_s[0],
                    b.ages_s[1],
                    crate::fit_results::plus_minus(b.rate_per_s[0], b.rate_per_s[1]),
                    b.truth_line[1]
                )
            });
        let numbers = format!(
            "after the onset ({} cuts, t_w {:.0}–{:.0} s): d ln τ/d t_w = {} 1/s ({:.1} σ from \
             zero), noise-free {kt:+.2e} 1/s: τ falls by a factor {:.2} over the {span:.0} s \
             (noise-free {:.2}); {before}",
            after.n_cuts,
            after.ages_s[0],
            after.ages_s[1],
            crate::fit_results::plus_minus(k, sk),
            k / sk,
            (-k * span).exp(),
            (-kt * span).exp()
        );
        let pull = (k - kt) / sk;
        let verdict = acceleration_verdict([k, sk], kt, span, max_pull, min_fall);
        out.push(match verdict {
            None => Check {
                name,
                passed: false,
                detail: format!("{numbers}; no jackknife σ of the rate"),
            },
            Some((passed, true)) => Check {
                name,
                passed,
                detail: format!(
                    "{numbers}; decided from the fit (limits: rate ≤ −3 σ; fit vs noise-free \
                     pull {pull:+.2}, limit {max_pull})"
                ),
            },
            Some((passed, false)) => {
                let falls = -kt * span > min_fall;
                let r = &setup.roi;
                let full =
                    sk * ((r.rows * r.cols) as f64 / (r.det_rows * r.det_cols) as f64).sqrt();
                Check {
                    name: format!(
                        "{name} (noise-free analysis; this run's σ too large to decide it)"
                    ),
                    passed,
                    detail: format!(
                        "{numbers}; σ of the rate > the noise-free rate / (3 + {max_pull}); \
                         noise-free τ falls by more than the τ tolerance over the segment: {}; \
                         fit vs noise-free pull {pull:+.2} (limit {max_pull}){}",
                        if falls { "yes" } else { "NO" },
                        if r.is_full() {
                            String::new()
                        } else {
                            format!("; the whole detector would give σ ≈ {full:.1e} 1/s")
                        }
                    ),
                }
            }
        });
    }
    out
}

/// The rule of [`pt_late_acceleration_check`] for a fitted rate `[k, σ]` (1/s), the noise-free
/// rate `kt` over cuts spanning `span_s`: (passed, decided from the fit), or None without a
/// usable σ. From the fit when kt ≤ −(3 + `max_pull`) σ: pass when k ≤ −3σ and |k − kt| ≤
/// `max_pull` σ. Otherwise from the noise-free rate: pass when τ falls by more than
/// `min_fall` (in ln τ) over the span and |k − kt| ≤ `max_pull` σ.
fn acceleration_verdict(
    [k, sk]: [f64; 2],
    kt: f64,
    span_s: f64,
    max_pull: f64,
    min_fall: f64,
) -> Option<(bool, bool)> {
    if !(sk.is_finite() && sk > 0.0 && k.is_finite() && kt.is_finite()) {
        return None;
    }
    let within = ((k - kt) / sk).abs() <= max_pull;
    Some(if kt <= -(3.0 + max_pull) * sk {
        (k <= -3.0 * sk && within, true)
    } else {
        (-kt * span_s > min_fall && within, false)
    })
}

/// The region τ comparison of scan `label`, when fitted with an error and a truth.
fn late_point<'a>(points: &'a [IsobarPoint], label: &str) -> Option<&'a Compared> {
    let c = points.iter().find(|p| p.label == label)?.get("tau")?;
    (c.value > 0.0 && c.sigma.is_finite() && c.sigma > 0.0 && c.truth > 0.0).then_some(c)
}

/// An aging law τ0 e^{t_w/τ*} as a weighted line ln τ = a + b t_w through (t_w, ln τ, σ)
/// points, its errors scaled by the Birge ratio sqrt(χ²/ν) when that exceeds 1 (the points are
/// age cuts, and cuts of one scan share its pixels' noise).
#[derive(Debug, Clone, Copy)]
struct AgingLine {
    line: WeightedLine,
    birge: f64,
}

impl AgingLine {
    /// The law through cuts [t_w (s), τ (s), σ_τ (s)] (σ of ln τ: σ_τ/τ); None with fewer
    /// than 3 usable cuts or a non-positive slope (no aging to extrapolate).
    fn fit(cuts: &[[f64; 3]]) -> Option<Self> {
        let (x, y, s): (Vec<f64>, Vec<f64>, Vec<f64>) = (
            cuts.iter().map(|c| c[0]).collect(),
            cuts.iter().map(|c| c[1].ln()).collect(),
            cuts.iter().map(|c| c[2] / c[1]).collect(),
        );
        let line = WeightedLine::fit(&x, &y, &s)?;
        if line.n < 3 || line.b <= 0.0 {
            return None;
        }
        Some(AgingLine {
            birge: line.birge(),
            line,
        })
    }

    /// ln τ at t_w = `x0` and its (Birge-scaled) σ.
    fn at(&self, x0: f64) -> (f64, f64) {
        let (y, s) = self.line.at(x0);
        (y, self.birge * s)
    }

    /// τ0 (s) and its σ.
    fn tau0(&self) -> (f64, f64) {
        let t0 = self.line.a.exp();
        (t0, self.birge * self.line.sigma_a() * t0)
    }

    /// τ* (s) and its σ.
    fn tau_star(&self) -> (f64, f64) {
        let b = self.line.b;
        (1.0 / b, self.birge * self.line.sigma_b() / (b * b))
    }
}

/// The Ce seed's "slight aging still presents at 2.9 GPa ... even at around three hours after
/// changing pressure": the aging law fitted to the 2.9 GPa scan's age cuts resolves a positive
/// rate 1/τ* (≥ 3σ from zero), and the τ rise it implies over the span of the cuts is slight
/// (below 50 %). None when the campaign has no 2.9 GPa compression scan with an aging fit.
fn ce_slight_aging_check(scans: &[ScanResult]) -> Option<Check> {
    let s = scans.iter().find(|s| {
        (s.facts.pressure_gpa - 2.9).abs() < 1e-6 && s.facts.direction == Direction::Compression
    })?;
    let name = format!(
        "Ce: slight aging still present at 2.9 GPa ~3 h after the step ({})",
        s.label
    );
    let (Some(a), Some((k, sk))) = (&s.aging, s.aging.as_ref().and_then(|a| aging_rate(&a.law)))
    else {
        return Some(aging_unresolved(name, s));
    };
    let span = a.age_span_s();
    let truth = aging_rate(&a.truth_law).map_or("not resolved".to_string(), |(k, _)| {
        format!("{:+.1} %", 100.0 * ((k * span).exp() - 1.0))
    });
    let rise = (k * span).exp() - 1.0;
    Some(Check {
        name,
        passed: k / sk >= 3.0 && rise < 0.5,
        detail: format!(
            "aging rate 1/τ* = {} 1/s ({:.1} σ from zero; limit 3 σ): τ rises by {:+.1} % over \
             the {span:.0} s span of the age cuts (slight: below 50 %; noise-free analysis \
             {truth})",
            crate::fit_results::plus_minus(k, sk),
            k / sk,
            100.0 * rise
        ),
    })
}

/// The Ce seed's "The contrast, c, slightly increases with pressure (Fig. 2c)": a weighted
/// line through the fitted region contrasts of the compression isobars has a positive slope
/// (≥ 3σ from zero), and the rise it implies over the pressure range is slight (below 50 %).
/// The noise-free analysis's slope is given alongside. None with fewer than 3 isobars.
fn ce_contrast_rise_check(comp: &[&IsobarPoint]) -> Option<Check> {
    let cs: Vec<&Compared> = comp.iter().filter_map(|p| p.get("contrast")).collect();
    if cs.len() < 3 || cs.len() != comp.len() {
        return None;
    }
    let p: Vec<f64> = comp.iter().map(|q| q.pressure_gpa).collect();
    let (v, t, s): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        cs.iter().map(|c| c.value).collect(),
        cs.iter().map(|c| c.truth).collect(),
        cs.iter().map(|c| c.sigma).collect(),
    );
    let (lo, hi) = (
        p.iter().copied().fold(f64::INFINITY, f64::min),
        p.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    let name = "Ce: contrast rises slightly with pressure".to_string();
    let Some(line) = WeightedLine::fit(&p, &v, &s) else {
        return Some(Check {
            name,
            passed: false,
            detail: "no contrast fitted with an error at ≥ 2 pressures".into(),
        });
    };
    let (a, b, sb) = (line.a, line.b, line.sigma_b());
    let rise = b * (hi - lo) / (a + b * lo);
    let truth = WeightedLine::fit(&p, &t, &s).map_or("not fitted".to_string(), |l| {
        format!(
            "{:.3e} 1/GPa, {:+.1} %",
            l.b,
            100.0 * l.b * (hi - lo) / (l.a + l.b * lo)
        )
    });
    Some(Check {
        name,
        passed: b / sb >= 3.0 && rise < 0.5,
        detail: format!(
            "slope of the fitted contrast {} 1/GPa ({:.1} σ from zero; limit 3 σ): {:+.1} % from \
             {lo} to {hi} GPa (slight: below 50 %); noise-free analysis {truth}; per isobar: {}",
            crate::fit_results::plus_minus(b, sb),
            b / sb,
            100.0 * rise,
            comp.iter()
                .zip(&cs)
                .map(|(q, c)| format!("{} GPa {:.5} ± {:.5}", q.pressure_gpa, c.value, c.sigma))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

/// The failed check `name` of a scan whose aging law has no fitted rate 1/τ*: says why (no
/// age cuts, or the fit's own failure).
fn aging_unresolved(name: String, s: &ScanResult) -> Check {
    Check {
        name,
        passed: false,
        detail: match &s.aging {
            Some(a) => format!(
                "aging not resolved: {}",
                a.law.failure().unwrap_or("no τ* fitted")
            ),
            None => "no aging fit (the scan has no age cuts)".into(),
        },
    }
}

/// Aging τ* within 10 % of the model ([`within_check`]).
fn tau_star_check(
    setup: &CampaignSetup,
    s: &ScanResult,
    c: &super::scan::Compared,
    model: f64,
) -> Check {
    within_check(
        format!("{}: aging τ*", s.label),
        "10 %",
        format!(
            "τ* = {:.0} ± {:.0} s, model {model:.0} s, truth of the estimator {:.0} s",
            c.value, c.sigma, c.truth
        ),
        c,
        model,
        0.1 * model,
        setup.config.tolerances.max_abs_pull,
        &|x| format!("{:+.1} % of τ*", 100.0 * x / model),
    )
}

#[cfg(test)]
mod tests {
    use super::super::scan::Compared;
    use super::weighted_mean;

    /// The acceleration check's rule: decided from the fit only when the noise-free rate is
    /// beyond (3 + pull limit) σ; a rising τ, a noise-free τ that does not fall, a fit far
    /// from the noise-free rate, or no σ fail.
    #[test]
    fn acceleration_verdicts() {
        use super::acceleration_verdict as v;
        let (pull, fall) = (4.0, 1.1f64.ln());
        // Whole detector: −1.031e-3 ± 1.2e-5 against −1.04e-3: from the fit, pass.
        assert_eq!(
            v([-1.031e-3, 1.2e-5], -1.04e-3, 466.0, pull, fall),
            Some((true, true))
        );
        // Reduced: −9.95e-4 ± 1.6e-4 against −1.09e-3 (6.8σ < 7σ): noise-free, pass.
        assert_eq!(
            v([-9.95e-4, 1.6e-4], -1.09e-3, 466.0, pull, fall),
            Some((true, false))
        );
        // No acceleration (the mutation): τ does not fall, fail.
        assert_eq!(
            v([3.17e-4, 1.4e-4], 1.11e-4, 466.0, pull, fall),
            Some((false, false))
        );
        // A strong noise-free rate, the fit far from it (and within 3σ of zero): fail.
        assert_eq!(
            v([-2.9e-5, 1e-5], -8e-5, 466.0, pull, fall),
            Some((false, true))
        );
        // Noise-free falls, fit beyond the pull limit of it: fail.
        assert_eq!(
            v([4e-4, 1.6e-4], -1.09e-3, 466.0, pull, fall),
            Some((false, false))
        );
        // A fall below the τ tolerance (×1.05 over the span) is not an acceleration: fail.
        assert_eq!(
            v([-1e-4, 1.6e-4], -1.05e-4, 466.0, pull, fall),
            Some((false, false))
        );
        assert_eq!(v([-1e-3, f64::NAN], -1e-3, 466.0, pull, fall), None);
        assert_eq!(v([-1e-3, 0.0], -1e-3, 466.0, pull, fall), None);
    }

    #[test]
    fn weighted_mean_of_scans() {
        let a = Compared::new("alpha", "", 0.40, 0.03, 0.37, Some(0.36));
        let b = Compared::new("alpha", "", 0.34, 0.04, 0.35, Some(0.36));
        let nan = Compared::new("alpha", "", f64::NAN, f64::NAN, 0.36, Some(0.36));
        let m = weighted_mean(&[&a, &nan, &b]);
        // Weights 1/σ²: 1111.1 and 625; σ = (1736.1)^−1/2.
        let (wa, wb) = (1.0 / 0.03f64.powi(2), 1.0 / 0.04f64.powi(2));
        assert!((m.value - (0.40 * wa + 0.34 * wb) / (wa + wb)).abs() < 1e-12);
        assert!((m.truth - (0.37 * wa + 0.35 * wb) / (wa + wb)).abs() < 1e-12);
        assert!((m.sigma - 0.024).abs() < 1e-12, "{}", m.sigma);
        assert_eq!(m.model, Some(0.36));
        // One usable comparison: itself.
        let one = weighted_mean(&[&nan, &a]);
        assert_eq!((one.value, one.sigma), (a.value, a.sigma));
    }
}
