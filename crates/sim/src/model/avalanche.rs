//! Avalanches: event times and their two models.
//!
//! Input: a rate per isobar (Poisson) or listed times (s since the pressure step), the scan
//! window. Output: event times in scan time (s), sorted. Model A (clock jump u → u + J) acts on
//! the clock; model B (partial replacement E → sqrt(1-φ) E + sqrt(φ) Y, Y an independent copy)
//! multiplies the field covariance across the event by sqrt(1-φ), i.e. C - 1 by (1-φ).
//!
//! Reference: Evenson et al., PRL 115, 175701 (2015) (intermittent aging); docs/model.md §2.

use rand::RngExt;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::Result;

/// What an avalanche does to the dynamics.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum AvalancheModel {
    /// Model A: the clock jumps by J (lag-dependent; J ≥ 2 is complete at β = 1.8).
    ClockJump {
        /// Jump J in material time.
        jump: f64,
    },
    /// Model B: a fraction φ ∈ [0, 1] of the field is replaced by an independent copy.
    Replacement {
        /// φ; 1 makes the two-time map block diagonal.
        fraction: f64,
    },
}

impl AvalancheModel {
    /// Validates J ≥ 0 or φ ∈ [0, 1].
    pub fn validate(&self, origin: &str) -> Result<()> {
        match *self {
            AvalancheModel::ClockJump { jump } => {
                check_range(origin, "avalanche jump", jump, 0.0, 1e6)?;
            }
            AvalancheModel::Replacement { fraction } => {
                check_range(origin, "avalanche fraction", fraction, 0.0, 1.0)?;
            }
        }
        Ok(())
    }
}

/// When avalanches happen.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum AvalancheTimes {
    /// None.
    None,
    /// A homogeneous Poisson process (events per second).
    Poisson {
        /// Rate (1/s).
        rate_per_s: f64,
    },
    /// Listed times, in seconds since the pressure step (as the Pt seed reports them).
    Listed {
        /// Times (s since the pressure step).
        times_s: Vec<f64>,
    },
}

impl AvalancheTimes {
    /// Validates the rate or times.
    pub fn validate(&self, origin: &str) -> Result<()> {
        match self {
            AvalancheTimes::None => {}
            AvalancheTimes::Poisson { rate_per_s } => {
                check_range(origin, "avalanche rate_per_s", *rate_per_s, 0.0, 1e6)?;
            }
            AvalancheTimes::Listed { times_s } => {
                for &t in times_s {
                    check_positive(origin, "avalanche times_s", t + f64::MIN_POSITIVE)?;
                }
            }
        }
        Ok(())
    }

    /// Event times in scan time (s), sorted, inside [0, scan_length_s). The scan starts
    /// `waiting_time_s` after the pressure step.
    pub fn scan_events<R: rand::Rng + ?Sized>(
        &self,
        waiting_time_s: f64,
        scan_length_s: f64,
        rng: &mut R,
    ) -> Vec<f64> {
        let mut out = match self {
            AvalancheTimes::None => Vec::new(),
            AvalancheTimes::Poisson { rate_per_s } => {
                let mut v = Vec::new();
                if *rate_per_s > 0.0 {
                    let mut t = 0.0;
                    loop {
                        let e: f64 = rng.random::<f64>();
                        t += -(1.0 - e).ln() / rate_per_s;
                        if t >= scan_length_s {
                            break;
                        }
                        v.push(t);
                    }
                }
                v
            }
            AvalancheTimes::Listed { times_s } => times_s
                .iter()
                .map(|&t| t - waiting_time_s)
                .filter(|&t| (0.0..scan_length_s).contains(&t))
                .collect(),
        };
        out.sort_by(f64::total_cmp);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_times_are_shifted_and_clipped() {
        let a = AvalancheTimes::Listed {
            times_s: vec![7100.0, 6800.0, 100.0],
        };
        let mut r = crate::rng::stream(1, 0);
        assert_eq!(a.scan_events(6000.0, 1000.0, &mut r), vec![800.0]);
        assert_eq!(a.scan_events(6000.0, 1200.0, &mut r), vec![800.0, 1100.0]);
    }

    #[test]
    fn poisson_count_is_right() {
        // 1e4 expected events: the count is within 5σ = 500 of its mean.
        let a = AvalancheTimes::Poisson { rate_per_s: 10.0 };
        let mut r = crate::rng::stream(2, 0);
        let n = a.scan_events(0.0, 1000.0, &mut r).len() as f64;
        assert!((n - 1e4).abs() < 500.0, "{n}");
    }
}
