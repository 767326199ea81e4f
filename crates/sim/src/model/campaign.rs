//! A campaign protocol: isobars in compression then decompression, each setting τ, the aging
//! clock and the avalanches of its scan.
//!
//! Input: a [`PressureResponse`] (τ branches, q1(P), α), β, and a list of [`Isobar`]s.
//! Output: per scan, its [`Dynamics`] (times in s since the scan start) and its facts
//! (pressure, τ at q1 at the scan start, q1).
//!
//! An isobar with aging uses τ(tw) = τ0 exp(tw/τ*) capped at the branch value τ(P) (the
//! stationary state the glass ages towards); an isobar with a late acceleration keeps τ(P) until
//! its onset and falls after it; otherwise τ = τ(P) throughout.
//!
//! Reference: the Pt seed protocol (Methods and Fig. S1; docs/model.md §9).

use super::avalanche::{AvalancheModel, AvalancheTimes};
use super::clock::TauLaw;
use super::domains::DomainSpec;
use super::dynamics::Dynamics;
use super::pressure::{Direction, PressureResponse};
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

/// Aging parameters of one isobar.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Aging {
    /// τ at the pressure step (s).
    pub tau0_s: f64,
    /// Aging time constant (s).
    pub tau_star_s: f64,
}

/// A steady acceleration late in a stationary isobar: τ(tw) = τ(P) until the onset t_on (time
/// since the pressure step), then τ(P) exp(−(tw − t_on)/τ_acc) (the Pt seed at 3.3 GPa: "a
/// steady acceleration of the dynamics is visible after 11600 s").
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Acceleration {
    /// Onset t_on since the pressure step (s).
    pub onset_s: f64,
    /// Time constant τ_acc of the fall of τ (s).
    pub tau_acc_s: f64,
}

/// A fluctuating relaxation time (the Pt seed's heterogeneous regime: "relaxation times
/// fluctuating around an average constant value", l. 235-237): Poisson partial clock jumps
/// u → u + J at rate r on top of a smooth clock slowed to rate 1/τ − rJ, so that the mean
/// clock rate stays 1/τ(P) while the local decorrelation over δt fluctuates
/// (Δu = (1 − rJτ) δt/τ + J·N, N ~ Poisson(r δt)). Stationary isobars only.
///
/// With `per_domain` each domain of the isobar's [`super::DomainSpec`] has its own jumps
/// (independent Poisson times at the same rate): the intermittency is local, and the volume's
/// ΔC falls with the number of domains instead of being set by hand.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Fluctuations {
    /// Rate of the jumps (1/s; per domain with `per_domain`).
    pub rate_per_s: f64,
    /// Jump J (material time).
    pub jump: f64,
    /// Each domain's clock jumps on its own.
    pub per_domain: bool,
}

/// One isobar: a pressure step, a wait, then a scan.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Isobar {
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// Branch.
    pub direction: Direction,
    /// Time since the pressure step when the scan starts (s).
    pub waiting_time_s: f64,
    /// Frames in the scan.
    pub n_frames: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Aging (None = stationary at the branch τ).
    pub aging: Option<Aging>,
    /// Late acceleration of a stationary isobar (None = none).
    pub acceleration: Option<Acceleration>,
    /// How long this pressure step lasts (s; None = the protocol's step for its branch).
    pub step_s: Option<f64>,
    /// Avalanche times.
    pub avalanches: AvalancheTimes,
    /// What an avalanche does (ignored when there are none).
    pub avalanche_model: AvalancheModel,
    /// Fluctuating relaxation time (None = a constant τ).
    pub fluctuations: Option<Fluctuations>,
    /// Dynamical domains of the scattering volume (None = the single-clock model).
    pub domains: Option<DomainSpec>,
}

/// Facts of one scan for reports and ground truth.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScanFacts {
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// Branch.
    pub direction: Direction,
    /// τ at q1 at the start of the scan (s).
    pub tau_start_s: f64,
    /// τ at q1 at the end of the scan (s).
    pub tau_end_s: f64,
    /// FSDP position (Å⁻¹).
    pub q1_inv_angstrom: f64,
    /// Avalanche times (s since the scan start).
    pub avalanche_times_s: Vec<f64>,
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Campaign {
    /// Pressure response.
    pub response: PressureResponse,
    /// KWW exponent β.
    pub kww_exponent: f64,
    /// Isobars in protocol order.
    pub isobars: Vec<Isobar>,
}

impl Campaign {
    /// Validates every part; `origin` names the file.
    pub fn new(
        response: PressureResponse,
        kww_exponent: f64,
        isobars: Vec<Isobar>,
        origin: &str,
    ) -> Result<Self> {
        super::clock::KwwExponent::new(kww_exponent, origin)?;
        response.compression.validate(origin, "compression")?;
        response.decompression.validate(origin, "decompression")?;
        check_positive(
            origin,
            "q1_inv_angstrom_at_0gpa",
            response.q1_inv_angstrom_at_0gpa,
        )?;
        check_range(origin, "q_exponent_alpha", response.q_exponent, -10.0, 10.0)?;
        if isobars.is_empty() {
            return Err(Error::invalid(origin, "no [[isobar]] in the protocol"));
        }
        for (i, b) in isobars.iter().enumerate() {
            let o = format!("{origin} [[isobar]] {i}");
            check_range(&o, "pressure_gpa", b.pressure_gpa, -1.0, 1000.0)?;
            check_range(&o, "waiting_time_s", b.waiting_time_s, 0.0, 1e9)?;
            xpcs_core::check::check_frame_time(&o, "frame_time_s", b.frame_time_s)?;
            if b.n_frames == 0 || b.n_frames > u32::MAX as usize {
                return Err(Error::out_of_range(&o, "frames", b.n_frames, "1 to 2^32-1"));
            }
            if let Some(a) = b.aging {
                check_positive(&o, "aging.tau0_s", a.tau0_s)?;
                check_positive(&o, "aging.tau_star_s", a.tau_star_s)?;
            }
            if let Some(a) = b.acceleration {
                check_range(&o, "acceleration.onset_s", a.onset_s, 0.0, 1e9)?;
                check_positive(&o, "acceleration.tau_acc_s", a.tau_acc_s)?;
                if b.aging.is_some() {
                    return Err(Error::invalid(
                        &o,
                        "acceleration needs a stationary isobar (no aging)",
                    ));
                }
            }
            if let Some(step) = b.step_s {
                check_positive(&o, "step_s", step)?;
            }
            b.avalanches.validate(&o)?;
            b.avalanche_model.validate(&o)?;
            if let Some(d) = &b.domains {
                d.validate(&o)?;
            }
            if let Some(f) = b.fluctuations {
                check_positive(&o, "fluctuations.rate_per_s", f.rate_per_s)?;
                check_range(&o, "fluctuations.jump", f.jump, 1e-9, 1e3)?;
                if b.aging.is_some() {
                    return Err(Error::invalid(
                        &o,
                        "fluctuations need a stationary isobar (no aging)",
                    ));
                }
                if f.per_domain && b.domains.is_none() {
                    return Err(Error::invalid(
                        &o,
                        "fluctuations.per_domain = true needs a `domains` table on the isobar",
                    ));
                }
                let tau = response.tau_s(b.pressure_gpa, b.direction);
                let share = f.rate_per_s * f.jump * tau;
                if share >= 0.95 {
                    return Err(Error::out_of_range(
                        &o,
                        "fluctuations rate_per_s × jump × τ",
                        share,
                        "< 0.95 (the jumps cannot carry the whole clock)",
                    ));
                }
            }
        }
        Ok(Campaign {
            response,
            kww_exponent,
            isobars,
        })
    }

    /// Index of the first isobar at pressure P (within 1e-6 GPa), compression first.
    pub fn find_pressure(&self, p_gpa: f64) -> Option<usize> {
        self.isobars
            .iter()
            .position(|b| (b.pressure_gpa - p_gpa).abs() < 1e-6)
    }

    /// The τ law of isobar k (scan time 0 = scan start).
    pub fn tau_law(&self, k: usize) -> TauLaw {
        let b = &self.isobars[k];
        let tau_eq = self.response.tau_s(b.pressure_gpa, b.direction);
        // With fluctuations the smooth clock runs at 1/τ − rJ (mean rate stays 1/τ).
        let share = b
            .fluctuations
            .map_or(0.0, |f| f.rate_per_s * f.jump * tau_eq);
        match (b.aging, b.acceleration) {
            (None, None) => TauLaw::Stationary {
                tau_s: tau_eq / (1.0 - share),
            },
            (None, Some(acc)) => TauLaw::Accelerating {
                tau_eq_s: tau_eq / (1.0 - share),
                onset_s: acc.onset_s,
                tau_acc_s: acc.tau_acc_s,
                waiting_time_s: b.waiting_time_s,
            },
            (Some(a), _) => TauLaw::Aging {
                tau0_s: a.tau0_s,
                tau_star_s: a.tau_star_s,
                tau_eq_s: tau_eq,
                waiting_time_s: b.waiting_time_s,
            },
        }
    }

    /// Dynamics and facts of scan k over `n_frames` × `frame_time_s` (overrides of the
    /// isobar's own); Poisson avalanche times come from `rng`.
    pub fn scan<R: rand::Rng + ?Sized>(
        &self,
        k: usize,
        n_frames: usize,
        frame_time_s: f64,
        rng: &mut R,
    ) -> Result<(Dynamics, ScanFacts)> {
        let b = self.isobars.get(k).ok_or_else(|| {
            Error::out_of_range("campaign", "scan", k, format!("0..{}", self.isobars.len()))
        })?;
        let len = n_frames as f64 * frame_time_s;
        let events = b.avalanches.scan_events(b.waiting_time_s, len, rng);
        let law = self.tau_law(k);
        let beta = b
            .domains
            .and_then(|d| d.local_kww_exponent)
            .unwrap_or(self.kww_exponent);
        let mut dynamics = Dynamics::new(beta, law, &events, Some(b.avalanche_model), "campaign")?;
        let (tau_start_s, tau_end_s) = match b.fluctuations {
            Some(f) => {
                if !f.per_domain {
                    let times = AvalancheTimes::Poisson {
                        rate_per_s: f.rate_per_s,
                    }
                    .scan_events(b.waiting_time_s, len, rng);
                    let jumps: Vec<(f64, f64)> = times.iter().map(|&t| (t, f.jump)).collect();
                    dynamics = dynamics.with_clock_jumps(&jumps, "campaign")?;
                }
                // The mean τ (the branch's), not the slowed smooth clock's: with a late
                // acceleration, 1/τ_mean = 1/τ_smooth(t) + rJ.
                let tau = self.response.tau_s(b.pressure_gpa, b.direction);
                match law {
                    TauLaw::Accelerating { .. } => {
                        let mean = |t: f64| 1.0 / (1.0 / law.tau_at(t) + f.rate_per_s * f.jump);
                        (mean(0.0), mean(len))
                    }
                    _ => (tau, tau),
                }
            }
            None => (law.tau_at(0.0), law.tau_at(len)),
        };
        if let Some(spec) = b.domains {
            // Drawn after the avalanches and fluctuations, so that scans without domains keep
            // their random streams.
            let cascades = if spec.cascade_rate_per_s > 0.0 {
                AvalancheTimes::Poisson {
                    rate_per_s: spec.cascade_rate_per_s,
                }
                .scan_events(b.waiting_time_s, len, rng)
            } else {
                Vec::new()
            };
            let o = format!("campaign [[isobar]] {k}");
            let local = b.fluctuations.filter(|f| f.per_domain);
            dynamics = dynamics.with_domains(spec.realize(&cascades, len, local, rng, &o)?);
        }
        let facts = ScanFacts {
            pressure_gpa: b.pressure_gpa,
            direction: b.direction,
            tau_start_s,
            tau_end_s,
            q1_inv_angstrom: self.response.q1_inv_angstrom(b.pressure_gpa),
            avalanche_times_s: events,
        };
        Ok((dynamics, facts))
    }
}
