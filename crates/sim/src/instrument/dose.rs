//! Absorbed dose in the illuminated sample column.
//!
//! Input: the [`Beam`] (flux on the sample, energy, spot area) and the [`Dac`] (upstream anvil
//! transmission, sample composition, density, thickness and attenuation). Output: the dose rate
//! Ḋ (Gy/s = W/kg) and the dose of a scan (Gy).
//!
//! ```text
//! P_abs = Φ · T_in · E · (1 − T_s) · μ_pe/μ,    m = ρ · A · t,    Ḋ = P_abs / m,
//! ```
//!
//! with Φ the flux on the sample (photons/s), T_in the upstream anvil transmission, E the photon
//! energy (J), T_s = exp(−μ t) the sample transmission (μ with Rayleigh), μ_pe/μ its
//! photoelectric share (Compton deposits ≈ 0 at 21 keV, elastic nothing), ρ the density, A the
//! illuminated area ([`Beam::spot_area_um2`]) and t the sample thickness. Every photo-absorbed
//! joule is counted as deposited in the column (photo- and Auger electrons of ≤ 10 keV stay in
//! it): an upper bound, high by at most the fluorescence yield (12.5 % for Pt L lines, 4 % for
//! Ce L and Cu K; docs/physics.md §3.1).

use crate::instrument::beam::Beam;
use crate::instrument::dac::Dac;

/// Joules per keV.
pub const J_PER_KEV: f64 = 1.602_176_634e-16;

/// The dose numbers of one beam on one cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DoseRate {
    /// Power absorbed photoelectrically in the illuminated column (W).
    pub absorbed_power_w: f64,
    /// Mass of the illuminated column (kg).
    pub column_mass_kg: f64,
    /// Sample transmission T_s.
    pub sample_transmission: f64,
    /// Dose rate (Gy/s).
    pub gy_per_s: f64,
}

impl DoseRate {
    /// Dose rate of `beam` in the sample held by `dac` (module doc).
    pub fn new(beam: &Beam, dac: &Dac) -> Self {
        let att = &dac.sample_attenuation;
        let mu = att.total_inv_cm();
        let t_cm = dac.sample_thickness_cm;
        let ts = (-mu * t_cm).exp();
        let absorbed_power_w = beam.flux_ph_s
            * dac.transmission_in()
            * beam.energy_kev
            * J_PER_KEV
            * (1.0 - ts)
            * (att.photoelectric_inv_cm / mu);
        // ρ (g/cm³) × A (µm² → cm²) × t (cm) → g → kg.
        let column_mass_kg = dac.sample.density_g_cm3 * beam.spot_area_um2() * 1e-8 * t_cm * 1e-3;
        DoseRate {
            absorbed_power_w,
            column_mass_kg,
            sample_transmission: ts,
            gy_per_s: absorbed_power_w / column_mass_kg,
        }
    }

    /// Dose (Gy) of `seconds` of beam.
    pub fn dose_gy(&self, seconds: f64) -> f64 {
        self.gy_per_s * seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::instrument::{load_preset, BeamConfig, DacConfig};

    fn rate(beam: &str, dac: &str) -> DoseRate {
        let (b, bo) = load_preset::<BeamConfig>("beams", beam).unwrap();
        let beam = Beam::new(&b, &bo).unwrap();
        let (d, o) = load_preset::<DacConfig>("dacs", dac).unwrap();
        let dac = Dac::new(&d, &o, &beam).unwrap();
        DoseRate::new(&beam, &dac)
    }

    #[test]
    fn dose_rates_match_the_hand_numbers() {
        // docs/physics.md §3.1, computed by hand with T_in = 0.842, T_s = 0.224,
        // μ_pe/μ = 0.969, m = 1.72e-11 kg: P_abs = 8.9e-4 W, Ḋ = 5.2e7 Gy/s (reading B);
        // 3.8e6 Gy/s (reading A); the hand values carry 2 significant digits, hence 3 %.
        let b = rate("ebs-id10-20p95kev", "pt-dac");
        assert!((b.sample_transmission / 0.224 - 1.0).abs() < 0.01, "{b:?}");
        assert!((b.column_mass_kg / 1.715e-11 - 1.0).abs() < 0.01, "{b:?}");
        assert!((b.absorbed_power_w / 8.9e-4 - 1.0).abs() < 0.03, "{b:?}");
        assert!((b.gy_per_s / 5.2e7 - 1.0).abs() < 0.03, "{b:?}");
        let a = rate("ebs-id10-20p95kev-slits", "pt-dac");
        assert!((a.gy_per_s / 3.8e6 - 1.0).abs() < 0.03, "{a:?}");
        // Ce cell, 1.6e9 ph/s: 1.0e5 Gy/s (T_s = 0.683).
        let ce = rate("id10-21kev-brilliance", "ce-dac");
        assert!(
            (ce.sample_transmission / 0.683 - 1.0).abs() < 0.01,
            "{ce:?}"
        );
        assert!((ce.gy_per_s / 1.0e5 - 1.0).abs() < 0.05, "{ce:?}");
        // The dose rate is linear in the flux and the dose linear in time.
        assert!((a.gy_per_s / b.gy_per_s - 3.06e10 / 4.2e11).abs() < 2e-4);
        assert_eq!(b.dose_gy(1400.0), b.gy_per_s * 1400.0);
    }
}
