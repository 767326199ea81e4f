//! Sample and dynamics configuration: the file shape of `models/samples/*.toml` and its
//! validation into a [`Sample`] (a [`Campaign`] plus an optional ideal-detector scene).
//!
//! Units are in the key names (`_s`, `_gpa`, `_a3` = Å³/atom, `_inv_angstrom`). Unknown keys
//! are errors; every range error names the file and the key.

use super::{load_toml, parse_toml};
use crate::model::{
    pressure::kb_t_gpa_a3, Acceleration, Aging, AvalancheModel, AvalancheTimes, Campaign,
    Direction, DomainSpec, Fluctuations, Isobar, PressureResponse, TauBranch,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

/// One segment of piecewise-constant activation volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivationSegmentConfig {
    /// Upper pressure bound of the segment (GPa); omitted for the last (open) segment.
    pub below_gpa: Option<f64>,
    /// Activation volume (Å³/atom).
    pub dv_a3: f64,
}

/// A τ(P) branch: either `points` or (`p0_gpa`, `tau_p0_s`, `activation_volumes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    /// [[P_gpa, tau_s], ...], P increasing; ln τ interpolated linearly.
    pub points: Option<Vec<[f64; 2]>>,
    /// Reference pressure (GPa).
    pub p0_gpa: Option<f64>,
    /// τ at the reference pressure (s).
    pub tau_p0_s: Option<f64>,
    /// Activation volumes by pressure segment.
    pub activation_volumes: Option<Vec<ActivationSegmentConfig>>,
}

/// Aging of one isobar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgingConfig {
    /// τ right after the pressure step (s).
    pub tau0_s: f64,
    /// Aging time constant τ* (s).
    pub tau_star_s: f64,
}

/// A late acceleration of one stationary isobar (see `model::campaign::Acceleration`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccelerationConfig {
    /// Onset: time since the pressure step when τ starts to fall (s).
    pub onset_s: f64,
    /// Time constant of the fall, τ(tw) = τ(P) exp(−(tw − onset)/τ_acc) (s).
    pub tau_acc_s: f64,
}

/// Avalanche times of one isobar: a Poisson rate or listed times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AvalanchesConfig {
    /// Poisson rate (events per second).
    pub rate_per_s: Option<f64>,
    /// Times in seconds since the pressure step.
    pub times_s: Option<Vec<f64>>,
}

/// What an avalanche does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AvalancheModelConfig {
    /// Model A: u → u + J.
    ClockJump {
        /// J (material time).
        jump: f64,
    },
    /// Model B: E → sqrt(1-φ) E + sqrt(φ) Y.
    Replacement {
        /// φ ∈ [0, 1].
        fraction: f64,
    },
}

/// Fluctuations of the relaxation time within an isobar (see `model::campaign::Fluctuations`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FluctuationsConfig {
    /// Poisson rate of the partial clock jumps (1/s).
    pub rate_per_s: f64,
    /// Each jump J (material time; J < 1 is a partial decorrelation).
    pub jump: f64,
    /// Whether each domain's clock jumps on its own (independent Poisson times per domain;
    /// needs `domains`), rather than the whole volume's at once (default false).
    #[serde(default)]
    pub per_domain: bool,
}

/// One isobar of the protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsobarConfig {
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// "compression" or "decompression".
    pub direction: Direction,
    /// Time since the pressure step at the scan start (s).
    pub waiting_time_s: f64,
    /// Frames in the scan.
    pub frames: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Aging (omitted: stationary at the branch τ).
    pub aging: Option<AgingConfig>,
    /// Late acceleration of a stationary isobar (omitted: none).
    pub acceleration: Option<AccelerationConfig>,
    /// Length of this pressure step (s; omitted: the campaign protocol's step for the branch).
    pub step_s: Option<f64>,
    /// Avalanche times (omitted: none).
    pub avalanches: Option<AvalanchesConfig>,
    /// Avalanche model (default: clock jump J = 3, complete decorrelation at β ≥ 1).
    pub avalanche_model: Option<AvalancheModelConfig>,
    /// Fluctuating relaxation time (omitted: none).
    pub fluctuations: Option<FluctuationsConfig>,
    /// Dynamical domains (omitted: the single-clock model); see `model::domains`.
    pub domains: Option<DomainSpec>,
}

/// Ideal-detector scene used by `simulate` until an instrument model provides one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneConfig {
    /// Detector rows.
    pub rows: usize,
    /// Detector columns.
    pub cols: usize,
    /// Mean photons per pixel per frame.
    pub mean_counts_per_frame: f64,
    /// Speckle contrast c.
    pub contrast: f64,
    /// Modes M (default 1: the one-mode fast form).
    #[serde(default = "one")]
    pub modes: f64,
    /// Static speckled fraction (default 0).
    #[serde(default)]
    pub static_fraction: f64,
    /// Incoherent background fraction (default 0).
    #[serde(default)]
    pub incoherent_fraction: f64,
    /// Change of q per detector row (Å⁻¹), q1 at the centre row (default 0: one q).
    #[serde(default)]
    pub q_step_inv_angstrom_per_row: f64,
}

fn one() -> f64 {
    1.0
}
fn default_temperature() -> f64 {
    300.0
}

/// The file shape of a sample preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Sample name.
    pub name: String,
    /// KWW exponent β ∈ (0, 2].
    pub kww_exponent: f64,
    /// Temperature (K), for kB T in activation volumes (default 300).
    #[serde(default = "default_temperature")]
    pub temperature_k: f64,
    /// FSDP position at 0 GPa (Å⁻¹).
    pub q1_inv_angstrom_at_0gpa: f64,
    /// FSDP shift (Å⁻¹/GPa).
    #[serde(default)]
    pub q1_shift_inv_angstrom_per_gpa: f64,
    /// α in τ(q) = τ(q1)(q/q1)^-α.
    #[serde(default)]
    pub q_exponent_alpha: f64,
    /// τ(P) on compression.
    pub compression: BranchConfig,
    /// τ(P) on decompression (default: the compression branch).
    pub decompression: Option<BranchConfig>,
    /// The protocol.
    pub isobar: Vec<IsobarConfig>,
    /// Ideal-detector scene for `simulate`.
    pub scene: Option<SceneConfig>,
    /// Beam-induced relaxation k (Gy⁻¹, material time per gray, ≥ 0; default 0): the clock
    /// runs at du/dt = 1/τ + k · Ḋ with Ḋ the dose rate of the campaign's beam.
    #[serde(default)]
    pub beam_relaxation_per_gy: f64,
}

/// A validated sample: its campaign and optional scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Name.
    pub name: String,
    /// The campaign (pressure response, β, isobars).
    pub campaign: Campaign,
    /// Ideal-detector scene (validated ranges).
    pub scene: Option<SceneConfig>,
    /// Beam-induced relaxation k (Gy⁻¹), ≥ 0.
    pub beam_relaxation_per_gy: f64,
}

fn branch(c: &BranchConfig, kb_t: f64, origin: &str, name: &str) -> Result<TauBranch> {
    let b = match (&c.points, c.p0_gpa, c.tau_p0_s, &c.activation_volumes) {
        (Some(p), None, None, None) => TauBranch::Points(p.iter().map(|x| (x[0], x[1])).collect()),
        (None, Some(p0), Some(t0), Some(av)) => {
            let n = av.len();
            let mut segs = Vec::with_capacity(n);
            for (i, s) in av.iter().enumerate() {
                let bound = match (s.below_gpa, i + 1 == n) {
                    (Some(b), false) => b,
                    (None, true) => f64::INFINITY,
                    _ => {
                        return Err(Error::invalid(
                            origin,
                            format!(
                                "{name}.activation_volumes[{i}]: `below_gpa` is required on \
                                 every segment but the last, and not allowed on the last"
                            ),
                        ))
                    }
                };
                segs.push((bound, s.dv_a3));
            }
            TauBranch::Activation {
                p0_gpa: p0,
                tau_p0_s: t0,
                segments: segs,
                kb_t_gpa_a3: kb_t,
            }
        }
        _ => {
            return Err(Error::invalid(
                origin,
                format!(
                    "[{name}]: give either `points` or all of `p0_gpa`, `tau_p0_s`, \
                     `activation_volumes`"
                ),
            ))
        }
    };
    b.validate(origin, name)?;
    Ok(b)
}

impl SampleConfig {
    /// Validates into a [`Sample`]; `origin` names the file.
    pub fn validate(&self, origin: &str) -> Result<Sample> {
        let t = check_range(origin, "temperature_k", self.temperature_k, 1.0, 5000.0)?;
        let kb_t = kb_t_gpa_a3(t);
        let comp = branch(&self.compression, kb_t, origin, "compression")?;
        let decomp = match &self.decompression {
            Some(d) => branch(d, kb_t, origin, "decompression")?,
            None => comp.clone(),
        };
        let response = PressureResponse {
            compression: comp,
            decompression: decomp,
            q1_inv_angstrom_at_0gpa: self.q1_inv_angstrom_at_0gpa,
            q1_shift_inv_angstrom_per_gpa: self.q1_shift_inv_angstrom_per_gpa,
            q_exponent: self.q_exponent_alpha,
        };
        let mut isobars = Vec::with_capacity(self.isobar.len());
        for (i, b) in self.isobar.iter().enumerate() {
            let o = format!("{origin} [[isobar]] {i}");
            let avalanches = match &b.avalanches {
                None => AvalancheTimes::None,
                Some(a) => match (a.rate_per_s, &a.times_s) {
                    (Some(r), None) => AvalancheTimes::Poisson { rate_per_s: r },
                    (None, Some(t)) => AvalancheTimes::Listed { times_s: t.clone() },
                    (None, None) => AvalancheTimes::None,
                    _ => {
                        return Err(Error::invalid(
                            &o,
                            "avalanches: give `rate_per_s` or `times_s`, not both",
                        ))
                    }
                },
            };
            let avalanche_model = match b.avalanche_model {
                None => AvalancheModel::ClockJump { jump: 3.0 },
                Some(AvalancheModelConfig::ClockJump { jump }) => {
                    AvalancheModel::ClockJump { jump }
                }
                Some(AvalancheModelConfig::Replacement { fraction }) => {
                    AvalancheModel::Replacement { fraction }
                }
            };
            isobars.push(Isobar {
                pressure_gpa: b.pressure_gpa,
                direction: b.direction,
                waiting_time_s: b.waiting_time_s,
                n_frames: b.frames,
                frame_time_s: b.frame_time_s,
                aging: b.aging.map(|a| Aging {
                    tau0_s: a.tau0_s,
                    tau_star_s: a.tau_star_s,
                }),
                acceleration: b.acceleration.map(|a| Acceleration {
                    onset_s: a.onset_s,
                    tau_acc_s: a.tau_acc_s,
                }),
                step_s: b.step_s,
                avalanches,
                avalanche_model,
                fluctuations: b.fluctuations.map(|f| Fluctuations {
                    rate_per_s: f.rate_per_s,
                    jump: f.jump,
                    per_domain: f.per_domain,
                }),
                domains: b.domains,
            });
        }
        let campaign = Campaign::new(response, self.kww_exponent, isobars, origin)?;
        if let Some(s) = &self.scene {
            let o = format!("{origin} [scene]");
            if s.rows == 0 || s.cols == 0 {
                return Err(Error::out_of_range(&o, "rows/cols", 0, "≥ 1"));
            }
            check_range(
                &o,
                "mean_counts_per_frame",
                s.mean_counts_per_frame,
                0.0,
                1e9,
            )?;
            check_range(&o, "modes", s.modes, 1.0, 1e6)?;
            check_range(&o, "contrast", s.contrast, 0.0, 1.0 / s.modes)?;
            check_range(&o, "static_fraction", s.static_fraction, 0.0, 1.0)?;
            check_range(&o, "incoherent_fraction", s.incoherent_fraction, 0.0, 1.0)?;
            check_range(
                &o,
                "q_step_inv_angstrom_per_row",
                s.q_step_inv_angstrom_per_row,
                -1.0,
                1.0,
            )?;
        }
        check_positive(
            origin,
            "q1_inv_angstrom_at_0gpa",
            self.q1_inv_angstrom_at_0gpa,
        )?;
        check_range(
            origin,
            "beam_relaxation_per_gy",
            self.beam_relaxation_per_gy,
            0.0,
            1.0,
        )?;
        Ok(Sample {
            name: self.name.clone(),
            campaign,
            scene: self.scene.clone(),
            beam_relaxation_per_gy: self.beam_relaxation_per_gy,
        })
    }
}

/// Loads and validates a sample file.
pub fn load_sample(path: &Path) -> Result<Sample> {
    let c: SampleConfig = load_toml(path)?;
    c.validate(&path.display().to_string())
}

/// Parses and validates sample TOML text; `origin` names it in errors.
pub fn parse_sample(text: &str, origin: &str) -> Result<Sample> {
    let c: SampleConfig = parse_toml(text, origin)?;
    c.validate(origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn presets_load() {
        let pt = load_sample(&root().join("models/samples/pt42.toml")).unwrap();
        let c = &pt.campaign;
        // 6.3 GPa aging scan starts at τ0 = 34 s.
        let k = c.find_pressure(6.3).unwrap();
        assert!((c.tau_law(k).tau_at(0.0) - 34.0).abs() < 1e-9);
        let k33 = c.find_pressure(3.3).unwrap();
        assert!((c.response.tau_s(3.3, Direction::Compression) - 34.0).abs() < 1e-9);
        let mut r = crate::rng::stream(0, 0);
        let (dyn33, facts) = c.scan(k33, 14000, 0.1, &mut r).unwrap();
        assert_eq!(facts.avalanche_times_s.len(), 2);
        // τ fluctuations keep the mean clock rate 1/τ: over T = 1400 s the material time
        // without the two J = 3 avalanches is T/τ within 4σ of its Poisson spread J sqrt(r T).
        let f = c.isobars[k33].fluctuations.unwrap();
        let t = 1400.0;
        let u = dyn33.clock().u(t) - 2.0 * 3.0;
        let sd = f.jump * (f.rate_per_s * t).sqrt();
        assert!((u - t / 34.0).abs() < 4.0 * sd, "{u} vs {}", t / 34.0);
        assert!((facts.tau_start_s - 34.0).abs() < 1e-9);
        // The second 3.3 GPa scan of the same step (t_w 10 900–12 300 s): the smooth τ is
        // 34/(1 − s) (s = r J τ = 0.39984, the jumps' share) until the onset at 11 600 s, then
        // falls with τ_acc = 714 s; the mean τ (jumps included) starts at 34 s and ends at
        // 34 s / ((1 − s) e^{700/714} + s) ≈ 17 s.
        let late = k33 + 1;
        let b = &c.isobars[late];
        let share = f.rate_per_s * f.jump * 34.0;
        assert!((b.pressure_gpa - 3.3).abs() < 1e-12 && b.waiting_time_s == 10_900.0);
        match c.tau_law(late) {
            crate::model::TauLaw::Accelerating {
                tau_eq_s,
                onset_s,
                tau_acc_s,
                ..
            } => {
                assert!((tau_eq_s - 34.0 / (1.0 - share)).abs() < 1e-9);
                assert_eq!((onset_s, tau_acc_s), (11_600.0, 714.0));
            }
            other => panic!("{other:?}"),
        }
        let (_, facts) = c.scan(late, 14000, 0.1, &mut r).unwrap();
        let end = 34.0 / ((1.0 - share) * (700.0f64 / 714.0).exp() + share);
        assert!(
            (facts.tau_start_s - 34.0).abs() < 1e-9,
            "{}",
            facts.tau_start_s
        );
        assert!(
            (facts.tau_end_s / end - 1.0).abs() < 1e-9,
            "{} vs {end}",
            facts.tau_end_s
        );
        // The step lasts 12 600 s (both scans of it say so).
        assert_eq!(
            (c.isobars[k33].step_s, b.step_s),
            (Some(12_600.0), Some(12_600.0))
        );
        let ce = load_sample(&root().join("models/samples/ce68.toml")).unwrap();
        assert_eq!(ce.campaign.isobars.len(), 5);
        // The domain-model variant: the 3.3 GPa heterogeneity is its 2 domains' own clocks.
        // The shared smooth clock runs at (1 − ν J τ)/τ = 0.4/τ between the two J = 3
        // avalanches (no global jumps); each domain jumps by J = 0.3 at ν = 0.0625/s, so
        // over 1400 s the 2 domains see 175 jumps (Poisson: 122..228 is ±4σ).
        let pd = load_sample(&root().join("models/samples/pt42-domains.toml")).unwrap();
        let c = &pd.campaign;
        let k33 = c.find_pressure(3.3).unwrap();
        assert!((c.response.tau_s(3.3, Direction::Compression) - 32.0).abs() < 1e-9);
        let (dyn33, facts) = c.scan(k33, 14000, 0.1, &mut r).unwrap();
        let u = dyn33.clock().u(t) - 2.0 * 3.0;
        assert!(
            (u - 0.4 * t / 32.0).abs() < 1e-9,
            "{u} vs {}",
            0.4 * t / 32.0
        );
        assert_eq!((dyn33.domains().len(), dyn33.beta()), (2, 2.0));
        let jumps: Vec<f64> = dyn33.domains().events().iter().map(|e| e.jump).collect();
        assert!((122..=228).contains(&jumps.len()), "{} jumps", jumps.len());
        assert!(jumps.iter().all(|&j| j == 0.3), "{jumps:?}");
        assert!((facts.tau_start_s - 32.0).abs() < 1e-9);
    }

    #[test]
    fn errors_name_file_and_key() {
        let text = std::fs::read_to_string(root().join("models/samples/pt42.toml")).unwrap();
        let bad = text.replacen("kww_exponent = 1.8", "kww_exponent = 2.5", 1);
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(e.contains("pt42.toml") && e.contains("kww_exponent"), "{e}");
        let bad = text.replacen("kww_exponent = 1.8", "kww_exponent = 1.8\nbogus = 1", 1);
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let bad = text.replacen("tau0_s = 34.0", "tau0_s = -34.0", 1);
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(e.contains("aging.tau0_s") && e.contains("> 0"), "{e}");
        let bad = text.replacen("tau_acc_s = 714.0", "tau_acc_s = 0.0", 1);
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(
            e.contains("acceleration.tau_acc_s") && e.contains("[[isobar]] 3"),
            "{e}"
        );
        let bad = text.replacen(
            "acceleration = { onset_s = 11600.0, tau_acc_s = 714.0 }",
            "acceleration = { onset_s = 11600.0, tau_acc_s = 714.0 }\naging = { tau0_s = 34.0, tau_star_s = 2300.0 }",
            1,
        );
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(e.contains("acceleration needs a stationary isobar"), "{e}");
        let bad = text.replacen("step_s = 12600.0", "step_s = -1.0", 1);
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(e.contains("step_s") && e.contains("[[isobar]] 3"), "{e}");
    }

    /// An isobar's `domains` table reaches the scan's dynamics (N domains, the local β0, the
    /// cascades and spontaneous events), and its ranges are checked with the isobar named.
    #[test]
    fn isobar_domains_reach_the_dynamics() {
        let text = std::fs::read_to_string(root().join("models/samples/pt42.toml")).unwrap();
        let anchor = "pressure_gpa = 7.0\ndirection = \"compression\"\n";
        assert!(text.contains(anchor));
        let with = |table: &str| text.replacen(anchor, &format!("{anchor}domains = {table}\n"), 1);
        let ok = with(
            "{ count = 6, rate_spread = 0.3, local_rate_per_s = 0.01, \
             cascade_rate_per_s = 0.002, local_kww_exponent = 2.0 }",
        );
        let s = parse_sample(&ok, "pt42.toml").unwrap();
        let k = s.campaign.find_pressure(7.0).unwrap();
        let mut r = crate::rng::stream(3, 0);
        let (d, _) = s.campaign.scan(k, 10000, 0.1, &mut r).unwrap();
        assert_eq!(d.domains().len(), 6);
        assert_eq!(d.beta(), 2.0);
        // 6 domains × 0.01/s × 1000 s ≈ 60 spontaneous events plus ≈ 2 cascades.
        let n = d.domains().events().len();
        assert!((30..=100).contains(&n), "{n} events");
        // Scans without domains keep the sample's β and the single clock.
        let k0 = s.campaign.find_pressure(0.1).unwrap();
        let (d0, _) = s.campaign.scan(k0, 100, 0.1, &mut r).unwrap();
        assert!(d0.domains().is_single() && d0.beta() == 1.8);
        for (table, field) in [
            ("{ count = 0 }", "domains.count"),
            ("{ count = 4, fraction = 1.5 }", "domains.fraction"),
            (
                "{ count = 4, local_kww_exponent = 2.5 }",
                "domains.local_kww_exponent",
            ),
            ("{ count = 4, bogus = 1 }", "bogus"),
        ] {
            let e = parse_sample(&with(table), "pt42.toml")
                .unwrap_err()
                .to_string();
            assert!(e.contains("pt42.toml") && e.contains(field), "{table}: {e}");
        }
    }

    /// `fluctuations.per_domain` gives each domain its own clock jumps (and no global ones),
    /// and needs a `domains` table.
    #[test]
    fn per_domain_fluctuations_reach_the_domains() {
        let text = std::fs::read_to_string(root().join("models/samples/pt42.toml")).unwrap();
        let anchor = "pressure_gpa = 7.0\ndirection = \"compression\"\n";
        assert!(text.contains(anchor));
        let with = |extra: &str| text.replacen(anchor, &format!("{anchor}{extra}\n"), 1);
        let ok = with(
            "domains = { count = 3, rate_spread = 0.1 }\n\
             fluctuations = { rate_per_s = 0.001, jump = 0.3, per_domain = true }",
        );
        let s = parse_sample(&ok, "pt42.toml").unwrap();
        let k = s.campaign.find_pressure(7.0).unwrap();
        let mut r = crate::rng::stream(5, 0);
        let (d, _) = s.campaign.scan(k, 10000, 0.1, &mut r).unwrap();
        assert!(d.clock().jumps().is_empty(), "no global jumps");
        let ev = d.domains().events();
        // 3 domains × 0.001/s × 1000 s: 3 jumps expected (P(none) = e^-3 = 5 %); each hits
        // one domain by J = 0.3 and replaces nothing.
        assert!(!ev.is_empty() && ev.len() <= 15, "{} events", ev.len());
        assert!(ev
            .iter()
            .all(|e| e.jump == 0.3 && e.fraction == 0.0 && e.domains.len() == 1));
        assert!(!d.is_stationary());
        let bad = with("fluctuations = { rate_per_s = 0.001, jump = 0.3, per_domain = true }");
        let e = parse_sample(&bad, "pt42.toml").unwrap_err().to_string();
        assert!(
            e.contains("pt42.toml") && e.contains("per_domain") && e.contains("domains"),
            "{e}"
        );
    }
}
