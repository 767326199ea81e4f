//! The material clock u(t) and the KWW intermediate scattering function.
//!
//! Input: a relaxation-time law (stationary τ, aging τ(tw) = τ0 exp(tw/τ*) capped at τ_eq, or a
//! constant τ that falls after an onset)
//! and optional clock jumps (avalanche model A). Output: the dimensionless material time u(t)
//! (t in seconds since the start of the scan) and the ISF f(t1,t2) = exp(-|u(t2) - u(t1)|^β).
//!
//! All non-stationarity is a warp of time, u(t) = ∫0^t ds/τ(s), so every correlation built from
//! it is positive definite (a stationary covariance composed with a monotone map).
//!
//! Reference: Ruta et al., PRL 109, 165701 (2012) (KWW and aging in metallic glasses);
//! Evenson et al., PRL 115, 175701 (2015) (intermittent decorrelation).

use xpcs_core::error::{Error, Result};

/// A validated KWW exponent β ∈ (0, 2]: exp(-|x|^β) is a covariance if and only if β is in
/// this range (it is the characteristic function of a symmetric β-stable law).
#[doc(alias = "beta")]
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct KwwExponent(f64);

impl KwwExponent {
    /// Validates β; `origin` names the file or object for the error message.
    pub fn new(beta: f64, origin: &str) -> Result<Self> {
        if beta.is_finite() && beta > 0.0 && beta <= 2.0 {
            Ok(KwwExponent(beta))
        } else {
            Err(Error::out_of_range(
                origin,
                "kww_exponent",
                beta,
                "0 < β ≤ 2 (exp(-|x|^β) is not a covariance outside)",
            ))
        }
    }
    /// The value of β.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// KWW ISF of a material-time difference: f = exp(-|Δu|^β).
#[inline]
pub fn isf(delta_u: f64, beta: f64) -> f64 {
    (-delta_u.abs().powf(beta)).exp()
}

/// The relaxation-time law of one scan (t = 0 at the start of the scan).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum TauLaw {
    /// Constant τ (s).
    Stationary {
        /// Relaxation time (s).
        tau_s: f64,
    },
    /// Aging τ(tw) = τ0 exp(tw/τ*), capped at τ_eq; tw = waiting time at scan start + t.
    Aging {
        /// τ at tw = 0 (s).
        tau0_s: f64,
        /// Aging time constant τ* (s).
        tau_star_s: f64,
        /// Stationary cap τ_eq (s): without it u(∞) = τ*/τ0 is finite and the glass freezes.
        tau_eq_s: f64,
        /// Time since the pressure step at the start of the scan (s).
        waiting_time_s: f64,
    },
    /// Constant τ_eq until the onset t_on (time since the pressure step), then a steady
    /// acceleration τ(tw) = τ_eq exp(−(tw − t_on)/τ_acc) (the Pt seed at 3.3 GPa: "a steady
    /// acceleration of the dynamics is visible after 11600 s").
    Accelerating {
        /// τ before the onset (s).
        tau_eq_s: f64,
        /// Onset t_on: time since the pressure step when τ starts to fall (s).
        onset_s: f64,
        /// Time constant τ_acc of the fall (s): τ halves every τ_acc ln 2.
        tau_acc_s: f64,
        /// Time since the pressure step at the start of the scan (s).
        waiting_time_s: f64,
    },
}

impl TauLaw {
    /// Checks every parameter is finite and positive (waiting time ≥ 0).
    pub fn validate(&self, origin: &str) -> Result<()> {
        use xpcs_core::check::check_positive;
        match *self {
            TauLaw::Stationary { tau_s } => {
                check_positive(origin, "tau_s", tau_s)?;
            }
            TauLaw::Aging {
                tau0_s,
                tau_star_s,
                tau_eq_s,
                waiting_time_s,
            } => {
                check_positive(origin, "tau0_s", tau0_s)?;
                check_positive(origin, "tau_star_s", tau_star_s)?;
                check_positive(origin, "tau_eq_s", tau_eq_s)?;
                xpcs_core::check::check_range(
                    origin,
                    "waiting_time_s",
                    waiting_time_s,
                    0.0,
                    f64::MAX,
                )?;
            }
            TauLaw::Accelerating {
                tau_eq_s,
                onset_s,
                tau_acc_s,
                waiting_time_s,
            } => {
                check_positive(origin, "tau_eq_s", tau_eq_s)?;
                check_positive(origin, "tau_acc_s", tau_acc_s)?;
                for (name, v) in [("onset_s", onset_s), ("waiting_time_s", waiting_time_s)] {
                    xpcs_core::check::check_range(origin, name, v, 0.0, f64::MAX)?;
                }
            }
        }
        Ok(())
    }

    /// τ at scan time t (s).
    pub fn tau_at(&self, t_s: f64) -> f64 {
        match *self {
            TauLaw::Stationary { tau_s } => tau_s,
            TauLaw::Aging {
                tau0_s,
                tau_star_s,
                tau_eq_s,
                waiting_time_s,
            } => (tau0_s * ((waiting_time_s + t_s) / tau_star_s).exp()).min(tau_eq_s),
            TauLaw::Accelerating {
                tau_eq_s,
                onset_s,
                tau_acc_s,
                waiting_time_s,
            } => {
                let late = waiting_time_s + t_s - onset_s;
                if late <= 0.0 {
                    tau_eq_s
                } else {
                    tau_eq_s * (-late / tau_acc_s).exp()
                }
            }
        }
    }

    /// Material time elapsed between the scan start and scan time t (closed form).
    pub fn u(&self, t_s: f64) -> f64 {
        match *self {
            TauLaw::Stationary { tau_s } => t_s / tau_s,
            TauLaw::Aging {
                tau0_s,
                tau_star_s,
                tau_eq_s,
                waiting_time_s,
            } => {
                // A(tw) = ∫0^tw ds/τ(s): (τ*/τ0)(1 - e^{-tw/τ*}) before the cap at
                // tw_c = τ* ln(τ_eq/τ0), linear at rate 1/τ_eq after it.
                let tw_c = tau_star_s * (tau_eq_s / tau0_s).ln();
                let a = |tw: f64| -> f64 {
                    if tw_c <= 0.0 {
                        tw / tau_eq_s
                    } else if tw <= tw_c {
                        (tau_star_s / tau0_s) * (-(-tw / tau_star_s).exp_m1())
                    } else {
                        (tau_star_s / tau0_s) * (-(-tw_c / tau_star_s).exp_m1())
                            + (tw - tw_c) / tau_eq_s
                    }
                };
                a(waiting_time_s + t_s) - a(waiting_time_s)
            }
            TauLaw::Accelerating {
                tau_eq_s,
                onset_s,
                tau_acc_s,
                waiting_time_s,
            } => {
                // Before the onset u = t/τ_eq exactly (the same bits as a stationary law).
                // After it, ∫ ds e^{(s − t_on)/τ_acc}/τ_eq = (τ_acc/τ_eq)(e^{x1} − e^{x0}) with
                // x = (s − t_on)/τ_acc clamped at 0, written with expm1 for small x.
                let end = waiting_time_s + t_s;
                if end <= onset_s {
                    return t_s / tau_eq_s;
                }
                let flat = (onset_s - waiting_time_s).max(0.0) / tau_eq_s;
                let x0 = ((waiting_time_s - onset_s) / tau_acc_s).max(0.0);
                let x1 = (end - onset_s) / tau_acc_s;
                flat + (tau_acc_s / tau_eq_s) * (x1.exp_m1() - x0.exp_m1())
            }
        }
    }
}

/// The material clock of one scan: a τ law, a beam-induced rate and clock jumps u → u + J
/// (avalanche model A):
///
/// ```text
/// du/dt = 1/τ_th(t) + k · Ḋ,
/// ```
///
/// with τ_th the law, Ḋ the dose rate of the beam (constant during a scan) and k the sample's
/// `beam_relaxation_per_gy`; [`Clock::beam_rate_per_s`] is k · Ḋ (material time per second).
/// With k · Ḋ = 0 every value is the law's, bit for bit.
#[doc(alias = "material_time")]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Clock {
    law: TauLaw,
    /// (scan time (s), jump J), sorted by time; u is right-continuous at each jump.
    jumps: Vec<(f64, f64)>,
    /// Beam-induced clock rate k · Ḋ (s⁻¹), ≥ 0.
    #[serde(skip_serializing_if = "is_zero")]
    beam_rate_per_s: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Clock {
    /// A clock from a validated law and jumps (any order; J ≥ 0).
    pub fn new(law: TauLaw, mut jumps: Vec<(f64, f64)>, origin: &str) -> Result<Self> {
        law.validate(origin)?;
        for &(t, j) in &jumps {
            xpcs_core::check::check_range(origin, "avalanche time_s", t, f64::MIN, f64::MAX)?;
            xpcs_core::check::check_range(origin, "clock_jump", j, 0.0, 1e6)?;
        }
        jumps.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Clock {
            law,
            jumps,
            beam_rate_per_s: 0.0,
        })
    }

    /// The same clock with a beam-induced rate k · Ḋ (s⁻¹, ≥ 0; `origin` names the input).
    pub fn with_beam_rate(mut self, beam_rate_per_s: f64, origin: &str) -> Result<Self> {
        xpcs_core::check::check_range(origin, "beam_rate_per_s", beam_rate_per_s, 0.0, 1e9)?;
        self.beam_rate_per_s = beam_rate_per_s;
        Ok(self)
    }

    /// Beam-induced clock rate k · Ḋ (s⁻¹).
    pub fn beam_rate_per_s(&self) -> f64 {
        self.beam_rate_per_s
    }

    /// Effective relaxation time at scan time t (s): 1 / (1/τ_th(t) + k · Ḋ).
    pub fn tau_at(&self, t_s: f64) -> f64 {
        let tau = self.law.tau_at(t_s);
        if self.beam_rate_per_s == 0.0 {
            tau
        } else {
            1.0 / (1.0 / tau + self.beam_rate_per_s)
        }
    }

    /// A stationary clock with no jumps.
    pub fn stationary(tau_s: f64) -> Result<Self> {
        Self::new(TauLaw::Stationary { tau_s }, Vec::new(), "clock")
    }

    /// The τ law.
    pub fn law(&self) -> &TauLaw {
        &self.law
    }
    /// The clock jumps (time (s), J), sorted.
    pub fn jumps(&self) -> &[(f64, f64)] {
        &self.jumps
    }

    /// u(t) without the jumps.
    #[inline]
    pub fn smooth_u(&self, t_s: f64) -> f64 {
        if self.beam_rate_per_s == 0.0 {
            self.law.u(t_s)
        } else {
            self.law.u(t_s) + self.beam_rate_per_s * t_s
        }
    }

    /// u(t): smooth part plus every jump at a time ≤ t.
    pub fn u(&self, t_s: f64) -> f64 {
        let j: f64 = self
            .jumps
            .iter()
            .take_while(|&&(te, _)| te <= t_s)
            .map(|&(_, j)| j)
            .sum();
        self.smooth_u(t_s) + j
    }
}

/// The clock tabulated at frame boundaries for fast lookups at many arbitrary times.
///
/// Between two boundaries the smooth part is interpolated linearly; its error is at most
/// δt²/8 · |u''| = δt²/(8 τ τ*) for aging (1.6e-8 material-time units for the Pt seed at
/// δt = 0.1 s), far below any grid spacing used. Jumps are applied exactly.
#[derive(Debug, Clone)]
pub struct ClockTable {
    frame_time_s: f64,
    /// Smooth u at t = n · frame_time, n = 0..=n_frames.
    smooth: Vec<f64>,
    /// (time in frames, J), sorted.
    jumps: Vec<(f64, f64)>,
}

impl ClockTable {
    /// Tabulates `clock` over `n_frames` frames of `frame_time_s`.
    pub fn new(clock: &Clock, n_frames: usize, frame_time_s: f64) -> Self {
        let smooth = (0..=n_frames)
            .map(|n| clock.smooth_u(n as f64 * frame_time_s))
            .collect();
        let jumps = clock
            .jumps()
            .iter()
            .map(|&(t, j)| (t / frame_time_s, j))
            .collect();
        ClockTable {
            frame_time_s,
            smooth,
            jumps,
        }
    }

    /// Frame time (s).
    pub fn frame_time_s(&self) -> f64 {
        self.frame_time_s
    }

    /// Smooth u at a time given in frames (0 ≤ s ≤ n_frames).
    #[inline]
    pub fn smooth_u_frames(&self, s: f64) -> f64 {
        let n = (s.max(0.0) as usize).min(self.smooth.len() - 2);
        let w = s - n as f64;
        self.smooth[n] + w * (self.smooth[n + 1] - self.smooth[n])
    }

    /// The jumps (time in frames, J), sorted.
    pub fn jumps_frames(&self) -> &[(f64, f64)] {
        &self.jumps
    }

    /// Total u at a time in frames (jumps summed by scanning; use a cursor in hot loops).
    pub fn u_frames(&self, s: f64) -> f64 {
        let j: f64 = self
            .jumps
            .iter()
            .take_while(|&&(te, _)| te <= s)
            .map(|&(_, j)| j)
            .sum();
        self.smooth_u_frames(s) + j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_range_is_enforced() {
        assert!(KwwExponent::new(2.0, "t").is_ok());
        assert!(KwwExponent::new(0.0, "t").is_err());
        let e = KwwExponent::new(2.1, "m.toml").unwrap_err().to_string();
        assert!(e.contains("m.toml") && e.contains("kww_exponent"), "{e}");
    }

    #[test]
    fn beam_term_adds_k_dose_rate_and_zero_changes_nothing() {
        let law = TauLaw::Aging {
            tau0_s: 34.0,
            tau_star_s: 2300.0,
            tau_eq_s: 200.0,
            waiting_time_s: 3000.0,
        };
        let jumps = vec![(100.0, 0.5), (700.0, 2.0)];
        let plain = Clock::new(law, jumps.clone(), "t").unwrap();
        let zero = plain.clone().with_beam_rate(0.0, "t").unwrap();
        for t in [0.0, 0.1, 99.9, 100.0, 512.3, 1000.0] {
            assert_eq!(zero.u(t).to_bits(), plain.u(t).to_bits());
            assert_eq!(zero.tau_at(t).to_bits(), law.tau_at(t).to_bits());
        }
        // k·Ḋ = 3.8e6 Gy/s × 1e-9 /Gy: the clock integrates 1/τ_eff = 1/τ_th + k·Ḋ.
        let r = 3.8e-3;
        let beam = plain.clone().with_beam_rate(r, "t").unwrap();
        let (t_end, n) = (1000.0, 200_000);
        let h = t_end / n as f64;
        let num: f64 = (0..n)
            .map(|i| h / beam.tau_at((i as f64 + 0.5) * h))
            .sum::<f64>()
            + 2.5;
        assert!((num - beam.u(t_end)).abs() < 1e-6 * num, "{num}");
        assert!((beam.u(t_end) - plain.u(t_end) - r * t_end).abs() < 1e-9);
        let e = plain
            .with_beam_rate(-1.0, "s.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.toml") && e.contains("beam_rate_per_s"), "{e}");
    }

    #[test]
    fn aging_clock_matches_numerical_integral() {
        let law = TauLaw::Aging {
            tau0_s: 34.0,
            tau_star_s: 2300.0,
            tau_eq_s: 200.0,
            waiting_time_s: 3000.0,
        };
        // Midpoint rule of ∫ ds/τ(s), crossing the cap (tw_c = 2300 ln(200/34) ≈ 4075 s).
        let t_end = 3000.0;
        let n = 300_000;
        let h = t_end / n as f64;
        let num: f64 = (0..n).map(|i| h / law.tau_at((i as f64 + 0.5) * h)).sum();
        assert!((num - law.u(t_end)).abs() < 1e-6 * num, "{num}");
        // Uncapped limit: u(∞) = τ*/τ0 (e^{-tw0/τ*}) is finite.
        let free = TauLaw::Aging {
            tau0_s: 34.0,
            tau_star_s: 2300.0,
            tau_eq_s: 1e300,
            waiting_time_s: 0.0,
        };
        assert!((free.u(1e7) - 2300.0 / 34.0).abs() < 1e-9);
    }

    #[test]
    fn accelerating_clock_matches_numerical_integral_and_is_stationary_before_onset() {
        let (tau_eq, onset, tau_acc) = (34.0, 11_600.0, 1150.0);
        let law = |tw: f64| TauLaw::Accelerating {
            tau_eq_s: tau_eq,
            onset_s: onset,
            tau_acc_s: tau_acc,
            waiting_time_s: tw,
        };
        let flat = TauLaw::Stationary { tau_s: tau_eq };
        // A scan that ends before the onset is the stationary law, bit for bit.
        let early = law(6000.0);
        for t in [0.0, 0.1, 700.0, 1400.0, 5600.0] {
            assert_eq!(early.u(t).to_bits(), flat.u(t).to_bits());
            assert_eq!(early.tau_at(t).to_bits(), flat.tau_at(t).to_bits());
        }
        // Scans straddling the onset and starting after it: midpoint rule of ∫ ds/τ(s).
        for tw in [11_000.0, 12_000.0] {
            let l = law(tw);
            let t_end = 1400.0;
            let n = 280_000;
            let h = t_end / n as f64;
            let num: f64 = (0..n).map(|i| h / l.tau_at((i as f64 + 0.5) * h)).sum();
            assert!(
                (num - l.u(t_end)).abs() < 1e-6 * num,
                "{tw}: {num} {}",
                l.u(t_end)
            );
        }
        // τ halves τ_acc ln 2 after the onset.
        let l = law(11_000.0);
        let half = onset + tau_acc * 2f64.ln() - 11_000.0;
        assert!((l.tau_at(half) / tau_eq - 0.5).abs() < 1e-12);
        let e = TauLaw::Accelerating {
            tau_eq_s: 34.0,
            onset_s: 100.0,
            tau_acc_s: 0.0,
            waiting_time_s: 0.0,
        }
        .validate("s.toml")
        .unwrap_err()
        .to_string();
        assert!(e.contains("s.toml") && e.contains("tau_acc_s"), "{e}");
    }

    #[test]
    fn jumps_and_table() {
        let c = Clock::new(TauLaw::Stationary { tau_s: 10.0 }, vec![(5.0, 2.0)], "t").unwrap();
        assert!((c.u(4.9) - 0.49).abs() < 1e-12);
        assert!((c.u(5.0) - 2.5).abs() < 1e-12);
        let tab = ClockTable::new(&c, 100, 0.1);
        assert!((tab.u_frames(60.0) - c.u(6.0)).abs() < 1e-12);
        assert!((tab.u_frames(49.0) - c.u(4.9)).abs() < 1e-12);
    }
}
