//! The dynamics of one scan, as the speckle synthesiser consumes it.
//!
//! Input: β, a [`Clock`] (τ law + model-A jumps), model-B replacement events and the
//! [`Domains`] of the scattering volume. Output: the field covariance F(t1,t2) for a pixel whose
//! clock runs at rate factor r:
//! F = Σ_d w_d exp(-|r ρ_d (u(t2) - u(t1) + J_d)|^β) · Π sqrt(1 - φ_e) over replacement events
//! t1 < t_e ≤ t2 (global ones, and the domain's own), J_d the domain's own clock jumps in
//! (t1, t2]. One domain (w = ρ = 1, no domain events) is F = exp(-|r Δu|^β) · Π sqrt(1 - φ_e).
//! Times are seconds since the start of the scan.
//!
//! Reference: docs/model.md §2 (material clock; avalanche models A and B; domains).

use super::avalanche::AvalancheModel;
use super::clock::{isf, Clock, KwwExponent, TauLaw};
use super::domains::Domains;
use xpcs_core::error::Result;

/// The dynamics of one scan: β, the clock, and partial-replacement events.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dynamics {
    beta: KwwExponent,
    clock: Clock,
    /// (scan time (s), φ), sorted by time.
    replacements: Vec<(f64, f64)>,
    /// The domains of the scattering volume (one by default).
    #[serde(skip_serializing_if = "Domains::is_single")]
    domains: Domains,
}

impl Dynamics {
    /// Builds the dynamics from a τ law and avalanche events (scan time, s) of one model.
    pub fn new(
        beta: f64,
        law: TauLaw,
        events_s: &[f64],
        model: Option<AvalancheModel>,
        origin: &str,
    ) -> Result<Self> {
        let beta = KwwExponent::new(beta, origin)?;
        let (jumps, mut replacements) = match model {
            None => (Vec::new(), Vec::new()),
            Some(m) => {
                m.validate(origin)?;
                match m {
                    AvalancheModel::ClockJump { jump } => {
                        (events_s.iter().map(|&t| (t, jump)).collect(), Vec::new())
                    }
                    AvalancheModel::Replacement { fraction } => (
                        Vec::new(),
                        events_s.iter().map(|&t| (t, fraction)).collect(),
                    ),
                }
            }
        };
        replacements.sort_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0));
        Ok(Dynamics {
            beta,
            clock: Clock::new(law, jumps, origin)?,
            replacements,
            domains: Domains::single(),
        })
    }

    /// The same dynamics with more model-A clock jumps (scan time (s), J).
    pub fn with_clock_jumps(mut self, extra: &[(f64, f64)], origin: &str) -> Result<Self> {
        let mut jumps = self.clock.jumps().to_vec();
        jumps.extend_from_slice(extra);
        let rate = self.clock.beam_rate_per_s();
        self.clock = Clock::new(*self.clock.law(), jumps, origin)?.with_beam_rate(rate, origin)?;
        Ok(self)
    }

    /// The same dynamics with a beam-induced clock rate k · Ḋ (s⁻¹; see [`Clock`]).
    pub fn with_beam_rate(mut self, beam_rate_per_s: f64, origin: &str) -> Result<Self> {
        self.clock = self.clock.with_beam_rate(beam_rate_per_s, origin)?;
        Ok(self)
    }

    /// The same dynamics over `domains` (see [`super::domains`]); β becomes the local exponent.
    pub fn with_domains(mut self, domains: Domains) -> Self {
        self.domains = domains;
        self
    }

    /// Stationary KWW dynamics, no avalanches.
    pub fn stationary(beta: f64, tau_s: f64) -> Result<Self> {
        Self::new(
            beta,
            TauLaw::Stationary { tau_s },
            &[],
            None,
            "stationary dynamics",
        )
    }

    /// β.
    pub fn beta(&self) -> f64 {
        self.beta.get()
    }
    /// The material clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
    /// Model-B events (scan time (s), φ), sorted.
    pub fn replacements(&self) -> &[(f64, f64)] {
        &self.replacements
    }
    /// The domains (one, of rate 1 and no events, unless set by [`Dynamics::with_domains`]).
    pub fn domains(&self) -> &Domains {
        &self.domains
    }

    /// Whether the dynamics are stationary (constant τ, no clock jumps, no model-B or domain
    /// rearrangements): then the field covariance depends on t2 - t1 only.
    pub fn is_stationary(&self) -> bool {
        matches!(self.clock.law(), TauLaw::Stationary { .. })
            && self.clock.jumps().is_empty()
            && self.replacements.is_empty()
            && self.domains.events().is_empty()
    }

    /// Field covariance F(t1, t2) of a pixel with clock-rate factor `rate` (see module doc).
    pub fn field_cov(&self, rate: f64, t1_s: f64, t2_s: f64) -> f64 {
        let (a, b) = if t1_s <= t2_s {
            (t1_s, t2_s)
        } else {
            (t2_s, t1_s)
        };
        let du = rate * (self.clock.u(b) - self.clock.u(a));
        let mut f = 0.0;
        for (d, (&w, &rho)) in self
            .domains
            .weights()
            .iter()
            .zip(self.domains.rates())
            .enumerate()
        {
            let (mut keep, mut jump) = (w, 0.0);
            for e in self.domains.events() {
                if a < e.time_s && e.time_s <= b && e.hits(d) {
                    keep *= (1.0 - e.fraction).sqrt();
                    jump += e.jump;
                }
            }
            f += keep * isf(rho * (du + rate * jump), self.beta.get());
        }
        for &(te, phi) in &self.replacements {
            if a < te && te <= b {
                f *= (1.0 - phi).sqrt();
            }
        }
        f
    }
}
