//! The incident beam: energy, wavelength, flux, size, profile, bandwidth.
//!
//! Input: [`BeamConfig`] (from `models/beams/*.toml`). Output: [`Beam`], a validated runtime
//! value. Units: keV, Å, photons/s, µm. λ (Å) = 12.398 / E (keV).

use crate::config::instrument::{BeamConfig, BeamProfile};
use crate::instrument::xcom;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::Result;

/// hc in keV·Å (CODATA 2018: 12.398 419 84).
pub const HC_KEV_ANGSTROM: f64 = 12.398_419_84;

/// A validated incident beam.
#[derive(Debug, Clone, PartialEq)]
pub struct Beam {
    /// Where it came from (file or preset), for messages.
    pub origin: String,
    /// Photon energy (keV), inside the attenuation tables' range.
    pub energy_kev: f64,
    /// Photon flux on the sample (photons/s).
    pub flux_ph_s: f64,
    /// Size [horizontal, vertical] (µm): FWHM (Gaussian) or full width (top hat).
    pub size_um: [f64; 2],
    /// Transverse profile.
    pub profile: BeamProfile,
    /// Relative bandwidth Δλ/λ.
    pub bandwidth_rel: f64,
}

impl Beam {
    /// Validates a beam config; `origin` names the file.
    pub fn new(cfg: &BeamConfig, origin: &str) -> Result<Self> {
        check_range(
            origin,
            "energy_kev",
            cfg.energy_kev,
            xcom::MIN_ENERGY_KEV,
            xcom::MAX_ENERGY_KEV,
        )?;
        check_positive(origin, "flux_ph_s", cfg.flux_ph_s)?;
        check_range(origin, "size_um[0]", cfg.size_um[0], 0.01, 1e4)?;
        check_range(origin, "size_um[1]", cfg.size_um[1], 0.01, 1e4)?;
        check_range(origin, "bandwidth_rel", cfg.bandwidth_rel, 1e-7, 0.1)?;
        Ok(Beam {
            origin: origin.to_string(),
            energy_kev: cfg.energy_kev,
            flux_ph_s: cfg.flux_ph_s,
            size_um: cfg.size_um,
            profile: cfg.profile,
            bandwidth_rel: cfg.bandwidth_rel,
        })
    }

    /// Wavelength (Å).
    pub fn wavelength_angstrom(&self) -> f64 {
        HC_KEV_ANGSTROM / self.energy_kev
    }

    /// Largest transverse extent (µm).
    pub fn max_size_um(&self) -> f64 {
        self.size_um[0].max(self.size_um[1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BeamConfig {
        BeamConfig {
            description: String::new(),
            energy_kev: 20.95,
            flux_ph_s: 4.2e11,
            size_um: [8.0, 8.0],
            profile: BeamProfile::TopHat,
            bandwidth_rel: 1.33e-4,
        }
    }

    #[test]
    fn wavelength_and_errors() {
        let b = Beam::new(&cfg(), "b.toml").unwrap();
        assert!((b.wavelength_angstrom() - 0.59181).abs() < 1e-4);
        let mut c = cfg();
        c.flux_ph_s = -1.0;
        let s = Beam::new(&c, "b.toml").unwrap_err().to_string();
        assert!(
            s.contains("b.toml") && s.contains("flux_ph_s") && s.contains("> 0"),
            "{s}"
        );
        let mut c = cfg();
        c.energy_kev = 8.0;
        let s = Beam::new(&c, "b.toml").unwrap_err().to_string();
        assert!(s.contains("energy_kev") && s.contains("10 to 100"), "{s}");
    }
}
