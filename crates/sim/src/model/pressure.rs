//! Pressure dependence: τ(P) on a compression and a decompression branch (hysteresis), the
//! FSDP position q1(P) and the wave-vector scaling τ(q) = τ(q1)(q/q1)^-α.
//!
//! Input: branch points (P in GPa, τ in s; ln τ interpolated linearly in P) or P0, τ(P0) and
//! piecewise-constant activation volumes ΔV (Å³/atom). Output: τ (s) at a pressure, q1 (Å⁻¹),
//! and the clock-rate factor (q/q1)^α of a pixel.
//!
//! ln τ(P) = ln τ(P0) + ∫_{P0}^{P} ΔV(P')/(kB T) dP'; kB T = 4.14 GPa·Å³ at 300 K, so
//! ΔV = 10 Å³ is d ln τ/dP = 2.4 GPa⁻¹.
//!
//! Reference: transition-state activation volume ΔV = kB T (d ln τ/dP)_T, as used in the Ce study
//! (docs/model.md §9); q1 shift and α from the Pt study.

use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

/// kB T at 300 K in GPa·Å³ (1.380649e-23 J/K × 300 K = 4.142e-21 J = 4.142 GPa·Å³).
pub const KB_T_300K_GPA_A3: f64 = 4.142;

/// kB T (GPa·Å³) at temperature T (K).
pub fn kb_t_gpa_a3(temperature_k: f64) -> f64 {
    KB_T_300K_GPA_A3 * temperature_k / 300.0
}

/// One pressure branch: τ as a function of P.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum TauBranch {
    /// Points (P GPa, τ s), P strictly increasing; ln τ linear between points, constant outside.
    Points(Vec<(f64, f64)>),
    /// Activation volumes: τ(P0) and ΔV piecewise constant.
    Activation {
        /// Reference pressure (GPa).
        p0_gpa: f64,
        /// τ at P0 (s).
        tau_p0_s: f64,
        /// (upper pressure bound (GPa), ΔV (Å³/atom)), bounds increasing; the last segment
        /// extends to +∞ and the first to -∞.
        segments: Vec<(f64, f64)>,
        /// kB T (GPa·Å³).
        kb_t_gpa_a3: f64,
    },
}

impl TauBranch {
    /// Validates the branch; `origin` names the file and `name` the branch.
    pub fn validate(&self, origin: &str, name: &str) -> Result<()> {
        match self {
            TauBranch::Points(pts) => {
                if pts.is_empty() {
                    return Err(Error::invalid(
                        origin,
                        format!("{name}.points: at least one [P_gpa, tau_s] pair"),
                    ));
                }
                for (i, &(p, tau)) in pts.iter().enumerate() {
                    check_range(
                        origin,
                        &format!("{name}.points[{i}] P_gpa"),
                        p,
                        -1.0,
                        1000.0,
                    )?;
                    check_positive(origin, &format!("{name}.points[{i}] tau_s"), tau)?;
                    if i > 0 && p <= pts[i - 1].0 {
                        return Err(Error::invalid(
                            origin,
                            format!("{name}.points: pressures must increase (index {i})"),
                        ));
                    }
                }
            }
            TauBranch::Activation {
                p0_gpa,
                tau_p0_s,
                segments,
                kb_t_gpa_a3,
            } => {
                check_range(origin, &format!("{name}.p0_gpa"), *p0_gpa, -1.0, 1000.0)?;
                check_positive(origin, &format!("{name}.tau_p0_s"), *tau_p0_s)?;
                check_positive(origin, "kB T", *kb_t_gpa_a3)?;
                if segments.is_empty() {
                    return Err(Error::invalid(
                        origin,
                        format!("{name}.activation_volumes: at least one segment"),
                    ));
                }
                for (i, &(pmax, dv)) in segments.iter().enumerate() {
                    check_range(
                        origin,
                        &format!("{name}.activation_volumes[{i}].dv_a3"),
                        dv,
                        -1000.0,
                        1000.0,
                    )?;
                    if i > 0 && pmax <= segments[i - 1].0 {
                        return Err(Error::invalid(
                            origin,
                            format!("{name}.activation_volumes: below_gpa must increase"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// τ (s) at pressure P (GPa).
    pub fn tau_s(&self, p_gpa: f64) -> f64 {
        match self {
            TauBranch::Points(pts) => {
                if p_gpa <= pts[0].0 {
                    return pts[0].1;
                }
                for w in pts.windows(2) {
                    let ((p0, t0), (p1, t1)) = (w[0], w[1]);
                    if p_gpa <= p1 {
                        let x = (p_gpa - p0) / (p1 - p0);
                        return (t0.ln() + x * (t1.ln() - t0.ln())).exp();
                    }
                }
                pts[pts.len() - 1].1
            }
            TauBranch::Activation {
                p0_gpa,
                tau_p0_s,
                segments,
                kb_t_gpa_a3,
            } => {
                // ∫ ΔV dP over [P0, P] with ΔV piecewise constant: integrate the signed slope.
                let dv_at = |p: f64| -> f64 {
                    segments
                        .iter()
                        .find(|&&(pmax, _)| p < pmax)
                        .unwrap_or(&segments[segments.len() - 1])
                        .1
                };
                let (a, b, sign) = if p_gpa >= *p0_gpa {
                    (*p0_gpa, p_gpa, 1.0)
                } else {
                    (p_gpa, *p0_gpa, -1.0)
                };
                let mut cuts: Vec<f64> = vec![a];
                cuts.extend(segments.iter().map(|s| s.0).filter(|&x| x > a && x < b));
                cuts.push(b);
                let integral: f64 = cuts
                    .windows(2)
                    .map(|w| dv_at(0.5 * (w[0] + w[1])) * (w[1] - w[0]))
                    .sum();
                tau_p0_s * (sign * integral / kb_t_gpa_a3).exp()
            }
        }
    }
}

/// Which pressure branch an isobar sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Pressure increasing.
    Compression,
    /// Pressure decreasing (slower dynamics in the Pt seed: hysteresis).
    Decompression,
}

/// The pressure response of a glass: two τ branches, q1(P) and α.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PressureResponse {
    /// τ(P) on compression.
    pub compression: TauBranch,
    /// τ(P) on decompression.
    pub decompression: TauBranch,
    /// FSDP position at 0 GPa (Å⁻¹).
    pub q1_inv_angstrom_at_0gpa: f64,
    /// Linear FSDP shift (Å⁻¹/GPa).
    pub q1_shift_inv_angstrom_per_gpa: f64,
    /// Exponent α of τ(q) = τ(q1)(q/q1)^-α.
    pub q_exponent: f64,
}

impl PressureResponse {
    /// τ (s) at q1 for pressure P on a branch.
    pub fn tau_s(&self, p_gpa: f64, dir: Direction) -> f64 {
        match dir {
            Direction::Compression => self.compression.tau_s(p_gpa),
            Direction::Decompression => self.decompression.tau_s(p_gpa),
        }
    }
    /// FSDP position q1(P) (Å⁻¹).
    pub fn q1_inv_angstrom(&self, p_gpa: f64) -> f64 {
        self.q1_inv_angstrom_at_0gpa + self.q1_shift_inv_angstrom_per_gpa * p_gpa
    }
    /// Clock-rate factor of a pixel at wave vector q: u_p = u · (q/q1)^α, i.e. τ(q) = τ(q1)(q/q1)^-α.
    pub fn rate_factor(&self, q_inv_angstrom: f64, p_gpa: f64) -> f64 {
        (q_inv_angstrom / self.q1_inv_angstrom(p_gpa)).powf(self.q_exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_log_linear() {
        let b = TauBranch::Points(vec![(0.0, 100.0), (2.0, 1.0)]);
        assert!((b.tau_s(1.0) - 10.0).abs() < 1e-9);
        assert_eq!(b.tau_s(-1.0), 100.0);
        assert_eq!(b.tau_s(5.0), 1.0);
    }

    #[test]
    fn activation_volume_slope() {
        let kt = kb_t_gpa_a3(300.0);
        let b = TauBranch::Activation {
            p0_gpa: 0.0,
            tau_p0_s: 100.0,
            segments: vec![(3.0, 10.0), (f64::INFINITY, -10.0)],
            kb_t_gpa_a3: kt,
        };
        b.validate("t", "compression").unwrap();
        // dln τ/dP = ΔV/kT = 2.41 GPa⁻¹ below 3 GPa, -2.41 above: τ peaks at 3 GPa.
        let slope = (b.tau_s(1.0).ln() - b.tau_s(0.0).ln()) / 1.0;
        assert!((slope - 10.0 / kt).abs() < 1e-12);
        assert!((b.tau_s(4.0) - b.tau_s(2.0)).abs() < 1e-9 * b.tau_s(2.0));
        assert!((b.tau_s(-1.0) - 100.0 * (-10.0 / kt).exp()).abs() < 1e-9);
    }
}
