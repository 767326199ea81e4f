//! The recommendation: over a grid of frame times × scan lengths, the cheapest setting that
//! meets a precision target within the limits, or the best one can do and what binds.
//!
//! Input: a base [`Setting`] (its frame time and frames are replaced by the grid's), a
//! [`Target`] and [`Limits`]. Output: a [`Plan`]: every grid point with its Fisher prediction
//! and the limits it breaks, and the recommended (or best) point with its beam time and data
//! volume.
//!
//! Cost order: beam time T = N Δt first (on a 1 % grid, so that rounding of N does not decide),
//! then frames (data). Limits: statistics (the target),
//! T/τ ≥ `min_t_over_tau` (docs/model.md §7: 5–10), Δt ≤ τ/10, Δt ≥ the detector's shortest frame,
//! Δt ≤ the avalanche resolution when the isobar has avalanches, N ≤ max frames, T ≤ budget,
//! and aging drift: with aging the scan-averaged g2 mixes τ(start)…τ(end) = τ(start)
//! min(exp(T/τ*), τ_eq/τ(start)), so the drift τ(end)/τ(start) - 1 must stay below the τ
//! target (otherwise cut the scan into age windows with the two-time map). When nothing meets
//! every limit, the plan shows, among the points breaking the fewest limits other than the
//! statistics, the cheapest that meets the statistics (else the most precise).
//!
//! Reference: docs/model.md §7.

use super::fisher::{predict, Prediction, Setting};
use serde::Serialize;
use xpcs_core::error::{Error, Result};

/// Which parameter the target constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetParam {
    /// Relative error of τ.
    Tau,
    /// Relative error of β.
    KwwExponent,
    /// Relative error of the contrast.
    Contrast,
}

/// A precision target, e.g. `tau=5%`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    /// Parameter.
    pub param: TargetParam,
    /// Largest allowed relative 1σ error.
    pub relative: f64,
}

impl Target {
    /// Parses `tau=5%`, `beta=0.03`, `contrast=10%`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::invalid(
                "--target",
                format!("`{s}`: {why} (expected e.g. tau=5%, beta=3%, contrast=10%)"),
            )
        };
        let (name, val) = s.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let param = match name.trim() {
            "tau" => TargetParam::Tau,
            "beta" | "kww_exponent" => TargetParam::KwwExponent,
            "contrast" => TargetParam::Contrast,
            _ => return Err(bad("unknown parameter")),
        };
        let v = val.trim();
        let relative = match v.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|x| x / 100.0),
            None => v.parse::<f64>(),
        }
        .map_err(|_| bad("not a number"))?;
        if !(relative > 0.0 && relative < 1.0) {
            return Err(Error::out_of_range(
                "--target",
                "relative error",
                relative,
                "(0, 100 %)",
            ));
        }
        Ok(Target { param, relative })
    }

    /// The predicted relative error of the target parameter (None if it is not fitted).
    pub fn error_of(&self, p: &Prediction, beta: f64) -> Option<f64> {
        match self.param {
            TargetParam::Tau => Some(p.sigma_ln_tau),
            TargetParam::KwwExponent => p.sigma_kww_exponent.map(|v| v / beta),
            TargetParam::Contrast => p.rel_contrast,
        }
    }

    /// Short name.
    pub fn name(&self) -> &'static str {
        match self.param {
            TargetParam::Tau => "tau",
            TargetParam::KwwExponent => "beta",
            TargetParam::Contrast => "contrast",
        }
    }
}

/// Limits of the search.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Limits {
    /// Frame times to try (s); empty = a 1-2-5 grid from `min_frame_time_s` to τ/2.
    pub frame_times_s: Vec<f64>,
    /// Shortest frame the detector allows (s).
    pub min_frame_time_s: f64,
    /// Longest useful frame when avalanches must be resolved (s), if any.
    pub avalanche_frame_time_s: Option<f64>,
    /// Most frames in one scan.
    pub max_frames: usize,
    /// Longest beam time per isobar (s), if any.
    pub budget_s: Option<f64>,
    /// Smallest T/τ.
    pub min_t_over_tau: f64,
    /// Aging τ* (s) if the isobar still ages during the scan; the drift is exp(T/τ*).
    pub aging_tau_star_s: Option<f64>,
    /// The stationary cap τ_eq (s) of an aging law: the drift is at most τ_eq/τ(start).
    pub aging_tau_cap_s: Option<f64>,
    /// Largest allowed aging drift τ(end)/τ(start) - 1 (default: the τ target).
    pub max_drift: Option<f64>,
    /// Detector pixels (for the data volume).
    pub detector_pixels: f64,
    /// Bytes per pixel per dense frame.
    pub dense_bytes_per_pixel: f64,
}

/// One grid point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Frames.
    pub n_frames: usize,
    /// Beam time T (s).
    pub scan_s: f64,
    /// T/τ.
    pub t_over_tau: f64,
    /// Fisher prediction.
    pub prediction: Prediction,
    /// Predicted relative error of the target parameter (None: it is not fitted).
    pub target_error: Option<f64>,
    /// Aging drift τ(end)/τ(start) - 1.
    pub drift: f64,
    /// Limits broken (empty = acceptable).
    pub broken: Vec<String>,
    /// Dense data volume of the whole detector (bytes).
    pub dense_bytes: f64,
    /// Sparse (event list, 8 bytes per pixel-frame with photons) volume (bytes).
    pub sparse_bytes: f64,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The target.
    pub target: Target,
    /// Every grid point.
    pub grid: Vec<Candidate>,
    /// Index into `grid` of the recommendation (cheapest meeting everything) or, if none does,
    /// of the best reachable point.
    pub chosen: usize,
    /// Whether the chosen point meets the target within every limit.
    pub reached: bool,
    /// What sets the chosen point: "statistics", "T/τ ≥ 5", or the limits that keep the target
    /// out of reach.
    pub binding: Vec<String>,
}

fn one_two_five(lo: f64, hi: f64) -> Vec<f64> {
    let mut v = Vec::new();
    let mut d = 10f64.powf(lo.log10().floor());
    while d <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let x = d * m;
            if x >= lo * 0.9999 && x <= hi * 1.0001 {
                v.push(x);
            }
        }
        d *= 10.0;
    }
    v
}

/// Scan lengths tried, in units of τ.
pub const T_OVER_TAU: [f64; 16] = [
    1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0, 150.0, 200.0, 300.0, 500.0,
];

/// Evaluates the grid and picks the recommendation.
pub fn recommend(base: &Setting, target: Target, limits: &Limits) -> Result<Plan> {
    base.validate()?;
    let tau = base.tau_s;
    let frame_times = if limits.frame_times_s.is_empty() {
        one_two_five(limits.min_frame_time_s, tau / 2.0)
    } else {
        limits.frame_times_s.clone()
    };
    if frame_times.is_empty() {
        return Err(Error::invalid(
            "plan",
            format!(
                "no frame time between the detector's {} s and τ/2 = {} s",
                limits.min_frame_time_s,
                tau / 2.0
            ),
        ));
    }
    let max_drift = limits.max_drift.unwrap_or(target.relative);
    let mut grid = Vec::new();
    for &dt in &frame_times {
        let mut lengths: Vec<usize> = T_OVER_TAU
            .iter()
            .map(|r| (r * tau / dt - 1e-6).ceil() as usize)
            .collect();
        lengths.push(limits.max_frames);
        if let Some(b) = limits.budget_s {
            lengths.push((b / dt).floor() as usize);
        }
        lengths.retain(|&n| n >= 16 && n <= limits.max_frames);
        lengths.sort_unstable();
        lengths.dedup();
        for n in lengths {
            let s = base.with_scan(dt, n);
            let Ok(p) = predict(&s) else { continue };
            let t = s.scan_s();
            let err = target.error_of(&p, base.kww_exponent);
            let drift = limits.aging_tau_star_s.map_or(0.0, |ts| {
                let cap = limits.aging_tau_cap_s.map_or(f64::INFINITY, |c| c / tau);
                (t / ts).exp().min(cap.max(1.0)) - 1.0
            });
            let mut broken = Vec::new();
            match err {
                Some(e) if e <= target.relative => {}
                Some(_) => broken.push("statistics".to_string()),
                None => broken.push(format!("{} is not fitted", target.name())),
            }
            // Relative slack 1e-9 against round-off in T = N Δt (N is rounded up above).
            if t / tau < limits.min_t_over_tau * (1.0 - 1e-9) {
                broken.push(format!("T/τ ≥ {}", limits.min_t_over_tau));
            }
            if dt > tau / 10.0 * (1.0 + 1e-9) {
                broken.push("Δt ≤ τ/10".into());
            }
            if dt < limits.min_frame_time_s {
                broken.push("frame rate".into());
            }
            if let Some(a) = limits.avalanche_frame_time_s {
                if dt > a {
                    broken.push(format!("Δt ≤ {a} s (avalanches)"));
                }
            }
            if limits.budget_s.is_some_and(|b| t > b * 1.0001) {
                broken.push("budget".into());
            }
            if drift > max_drift {
                broken.push(format!("aging drift ≤ {:.0} %", 100.0 * max_drift));
            }
            let nbar = s.mean_count();
            grid.push(Candidate {
                frame_time_s: dt,
                n_frames: n,
                scan_s: t,
                t_over_tau: t / tau,
                prediction: p,
                target_error: err,
                drift,
                broken,
                dense_bytes: limits.detector_pixels * limits.dense_bytes_per_pixel * n as f64,
                sparse_bytes: 8.0 * limits.detector_pixels * n as f64 * (1.0 - (-nbar).exp()),
            });
        }
    }
    if grid.is_empty() {
        return Err(Error::invalid(
            "plan",
            "no grid point has enough frames (≥ 16) within --max-frames",
        ));
    }
    // Beam time first, on a 1 % grid (so that rounding N = ⌈rτ/Δt⌉ does not decide), then
    // frames.
    let t_min = grid.iter().map(|c| c.scan_s).fold(f64::INFINITY, f64::min);
    let cost = |c: &Candidate| {
        let bucket = ((c.scan_s / t_min).ln() / 0.01f64.ln_1p() + 1e-9).floor() as i64;
        (bucket, c.n_frames)
    };
    let ok: Vec<usize> = (0..grid.len())
        .filter(|&i| grid[i].broken.is_empty())
        .collect();
    if let Some(&best) = ok.iter().min_by(|&&a, &&b| {
        cost(&grid[a])
            .partial_cmp(&cost(&grid[b]))
            .expect("finite costs")
    }) {
        let c = &grid[best];
        // What sets T: the statistics or the T/τ rule (would a shorter scan at this Δt still
        // meet the statistics?).
        let shorter_ok_stats = grid.iter().any(|g| {
            g.frame_time_s == c.frame_time_s
                && g.scan_s < c.scan_s
                && g.target_error.is_some_and(|e| e <= target.relative)
        });
        let binding = if shorter_ok_stats {
            vec![format!("T/τ ≥ {}", limits.min_t_over_tau)]
        } else {
            vec!["statistics".into()]
        };
        return Ok(Plan {
            target,
            grid,
            chosen: best,
            reached: true,
            binding,
        });
    }
    // Unreachable: among the points that break the fewest limits other than statistics, the
    // cheapest that meets the statistics (a limit such as the aging drift is what fails), else
    // the one with the smallest error; report the limits it breaks.
    let err = |c: &Candidate| c.target_error.unwrap_or(f64::INFINITY);
    // A scan shorter than the T/τ rule is no answer at all: it counts 1.5 limits.
    let others = |c: &Candidate| {
        c.broken
            .iter()
            .filter(|b| *b != "statistics")
            .map(|b| if b.starts_with("T/τ") { 3 } else { 2 })
            .sum::<usize>()
    };
    let fewest = grid.iter().map(others).min().expect("non-empty grid");
    let pool: Vec<usize> = (0..grid.len())
        .filter(|&i| others(&grid[i]) == fewest)
        .collect();
    let meets: Vec<usize> = pool
        .iter()
        .copied()
        .filter(|&i| !grid[i].broken.iter().any(|b| b == "statistics"))
        .collect();
    let best = if meets.is_empty() {
        *pool
            .iter()
            .min_by(|&&a, &&b| {
                (err(&grid[a]), cost(&grid[a]))
                    .partial_cmp(&(err(&grid[b]), cost(&grid[b])))
                    .expect("comparable")
            })
            .expect("non-empty pool")
    } else {
        *meets
            .iter()
            .min_by(|&&a, &&b| {
                cost(&grid[a])
                    .partial_cmp(&cost(&grid[b]))
                    .expect("finite costs")
            })
            .expect("non-empty")
    };
    let mut binding = grid[best].broken.clone();
    if binding == ["statistics"] {
        if limits
            .budget_s
            .is_some_and(|b| grid[best].scan_s >= b * 0.999)
        {
            binding.push("budget".into());
        } else if grid[best].n_frames == limits.max_frames {
            binding.push("max frames".into());
        } else if limits.aging_tau_star_s.is_some() {
            binding.push("aging drift (a longer scan breaks it)".into());
        }
    }
    Ok(Plan {
        target,
        grid,
        chosen: best,
        reached: false,
        binding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fisher::FreeParams;

    fn base() -> Setting {
        Setting {
            tau_s: 38.0,
            kww_exponent: 1.8,
            contrast: 0.015,
            rate_per_pixel_hz: 0.6,
            bin_pixels: 4.0e5,
            frame_time_s: 0.1,
            n_frames: 1000,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        }
    }
    fn limits() -> Limits {
        Limits {
            frame_times_s: vec![],
            min_frame_time_s: 1e-3,
            avalanche_frame_time_s: None,
            max_frames: 100_000,
            budget_s: None,
            min_t_over_tau: 5.0,
            aging_tau_star_s: None,
            aging_tau_cap_s: None,
            max_drift: None,
            detector_pixels: 4.4e6,
            dense_bytes_per_pixel: 2.0,
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("tau=5%").unwrap().relative, 0.05);
        assert_eq!(
            Target::parse("beta=0.03").unwrap().param,
            TargetParam::KwwExponent
        );
        assert!(Target::parse("tau=5").is_err());
        assert!(Target::parse("gamma=5%").is_err());
        assert!(Target::parse("tau").is_err());
        assert!(Target::parse("tau=x%").is_err());
    }

    #[test]
    fn high_statistics_is_set_by_t_over_tau() {
        // Full EBS statistics: σ(ln τ) ≪ 5 % already at T = 5τ, so the T/τ rule binds.
        let p = recommend(&base(), Target::parse("tau=5%").unwrap(), &limits()).unwrap();
        assert!(p.reached);
        let c = &p.grid[p.chosen];
        assert!((c.t_over_tau - 5.0).abs() < 0.1 && c.frame_time_s <= 3.8);
        assert_eq!(p.binding, vec!["T/τ ≥ 5".to_string()]);
        // The cheapest meets every limit, and nothing cheaper does.
        assert!(c.broken.is_empty());
        assert!(p
            .grid
            .iter()
            .filter(|g| g.broken.is_empty())
            .all(|g| g.scan_s >= c.scan_s / 1.0101));
    }

    #[test]
    fn low_statistics_is_set_by_statistics_and_unreachable_says_why() {
        let mut b = base();
        b.bin_pixels = 50.0;
        let p = recommend(&b, Target::parse("tau=5%").unwrap(), &limits()).unwrap();
        assert!(p.reached);
        assert_eq!(p.binding, vec!["statistics".to_string()]);
        assert!(p.grid[p.chosen].t_over_tau > 5.0);
        // Aging at τ* = 2300 s with τ = 38 s: 5τ gives a drift of 8.6 % > 5 %.
        let mut l = limits();
        l.aging_tau_star_s = Some(2300.0);
        let p = recommend(&base(), Target::parse("tau=5%").unwrap(), &l).unwrap();
        assert!(!p.reached);
        assert!(
            p.binding
                .iter()
                .any(|b| b.contains("T/τ") || b.contains("aging")),
            "{:?}",
            p.binding
        );
        // A budget too short.
        let mut l = limits();
        l.budget_s = Some(60.0);
        let p = recommend(&b, Target::parse("tau=5%").unwrap(), &l).unwrap();
        assert!(!p.reached && !p.binding.is_empty());
    }

    #[test]
    fn aging_drift_is_capped_and_the_best_meets_the_statistics() {
        // Ce at 2.9 GPa: τ(start) = 1600 s, τ* = 2300 s, cap τ_eq = 2000 s. Any T ≥ 5τ drifts
        // by min(e^(T/τ*), 2000/1600) - 1 = 25 % > 5 %: unreachable, and the best shown is the
        // cheapest setting that meets the statistics and every limit but the drift.
        let mut b = base();
        b.tau_s = 1600.0;
        let mut l = limits();
        l.avalanche_frame_time_s = None;
        l.aging_tau_star_s = Some(2300.0);
        l.aging_tau_cap_s = Some(2000.0);
        let p = recommend(&b, Target::parse("tau=5%").unwrap(), &l).unwrap();
        assert!(!p.reached);
        let c = &p.grid[p.chosen];
        assert!((c.drift - 0.25).abs() < 1e-9, "{}", c.drift);
        assert!(c.target_error.unwrap() <= 0.05);
        assert_eq!(c.broken.len(), 1, "{:?}", c.broken);
        assert!(p.binding[0].contains("aging drift"));
        assert!((c.t_over_tau - 5.0).abs() < 0.1, "{}", c.t_over_tau);
    }
}
