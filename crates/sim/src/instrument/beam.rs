//! The incident beam: energy, wavelength, flux, size, profile, bandwidth, and the optics the
//! flux number refers to.
//!
//! Input: [`BeamConfig`] (from `models/beams/*.toml`). Output: [`Beam`], a validated runtime
//! value. Units: keV, Å, photons/s, µm. λ (Å) = 12.398 / E (keV).
//!
//! Flux provenance. A beamline quotes one flux; whether it is the flux of the focus before
//! the beam-defining slits or the flux on the sample after them changes the count rate by
//! 1/T_slit. A Gaussian focus of FWHM w_h × w_v (σ = w/√(8 ln 2)) centred on full slit
//! apertures a_h × a_v transmits
//!
//! ```text
//! T_slit = erf(a_h / (2√2 σ_h)) · erf(a_v / (2√2 σ_v))
//! ```
//!
//! (the integral of the separable Gaussian over the rectangle). A beam file gives either
//! `flux_ph_s` (on the sample) or `focus_flux_ph_s` (before the slits, the sample flux is
//! then T_slit × it); with the optics given, [`Beam::other_reading_flux_ph_s`] says what the
//! other reading of the same number would put on the sample.

use crate::config::instrument::{BeamConfig, BeamProfile};
use crate::instrument::xcom;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

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
    /// What the flux number of the file is: on the sample, or in the focus before the slits.
    pub flux_reading: FluxReading,
    /// Focus before the slits and slit apertures, when the file gives them.
    pub optics: Option<SlitOptics>,
    /// Where the flux number comes from (free text from the file).
    pub flux_basis: String,
}

/// Which flux the beam file quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxReading {
    /// `flux_ph_s`: the flux on the sample, after any slits.
    OnSample,
    /// `focus_flux_ph_s`: the flux of the focus before the slits.
    Focus,
}

/// A Gaussian focus cut by centred rectangular slits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlitOptics {
    /// Focus FWHM [horizontal, vertical] (µm).
    pub focus_fwhm_um: [f64; 2],
    /// Full slit apertures [horizontal, vertical] (µm).
    pub slit_um: [f64; 2],
}

/// FWHM → Gaussian σ: σ = FWHM / √(8 ln 2).
pub fn fwhm_to_sigma(fwhm: f64) -> f64 {
    fwhm / (8.0 * std::f64::consts::LN_2).sqrt()
}

impl SlitOptics {
    /// Fraction of the focus that passes the slits: the product of erf(a / (2√2 σ)) over
    /// both axes.
    pub fn transmission(&self) -> f64 {
        (0..2)
            .map(|k| {
                let sigma = fwhm_to_sigma(self.focus_fwhm_um[k]);
                libm::erf(self.slit_um[k] / (2.0 * std::f64::consts::SQRT_2 * sigma))
            })
            .product()
    }
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
        check_range(origin, "size_um[0]", cfg.size_um[0], 0.01, 1e4)?;
        check_range(origin, "size_um[1]", cfg.size_um[1], 0.01, 1e4)?;
        check_range(origin, "bandwidth_rel", cfg.bandwidth_rel, 1e-7, 0.1)?;
        let optics = match (cfg.focus_fwhm_um, cfg.slit_um) {
            (Some(f), Some(a)) => {
                for k in 0..2 {
                    check_range(origin, &format!("focus_fwhm_um[{k}]"), f[k], 0.01, 1e5)?;
                    check_range(origin, &format!("slit_um[{k}]"), a[k], 0.01, 1e5)?;
                }
                Some(SlitOptics {
                    focus_fwhm_um: f,
                    slit_um: a,
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    origin,
                    "focus_fwhm_um needs slit_um (the slit apertures that cut the focus)",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    origin,
                    "slit_um needs focus_fwhm_um (the focus the slits cut)",
                ))
            }
        };
        let (flux_ph_s, flux_reading) =
            match (cfg.flux_ph_s, cfg.focus_flux_ph_s) {
                (Some(f), None) => {
                    check_positive(origin, "flux_ph_s", f)?;
                    (f, FluxReading::OnSample)
                }
                (None, Some(f)) => {
                    check_positive(origin, "focus_flux_ph_s", f)?;
                    let Some(o) = optics else {
                        return Err(Error::invalid(
                            origin,
                            "focus_flux_ph_s needs focus_fwhm_um and slit_um (the flux on the \
                         sample is derived through the slits)",
                        ));
                    };
                    (f * o.transmission(), FluxReading::Focus)
                }
                _ => return Err(Error::invalid(
                    origin,
                    "give exactly one of flux_ph_s (on the sample) and focus_flux_ph_s (before \
                     the slits)",
                )),
            };
        Ok(Beam {
            origin: origin.to_string(),
            energy_kev: cfg.energy_kev,
            flux_ph_s,
            size_um: cfg.size_um,
            profile: cfg.profile,
            bandwidth_rel: cfg.bandwidth_rel,
            flux_reading,
            optics,
            flux_basis: cfg.flux_basis.clone(),
        })
    }

    /// Slit transmission of the focus, when the optics are given.
    pub fn slit_transmission(&self) -> Option<f64> {
        self.optics.map(|o| o.transmission())
    }

    /// The flux on the sample (photons/s) if the file's flux number were read the other way:
    /// for `flux_ph_s` (on the sample), as the focus flux cut by the slits (× T_slit); for
    /// `focus_flux_ph_s`, as the flux on the sample itself. None without the optics.
    pub fn other_reading_flux_ph_s(&self) -> Option<f64> {
        let t = self.slit_transmission()?;
        Some(match self.flux_reading {
            FluxReading::OnSample => self.flux_ph_s * t,
            FluxReading::Focus => self.flux_ph_s / t,
        })
    }

    /// One line on where the flux on the sample comes from (for `describe` and `plan`).
    pub fn flux_provenance(&self) -> String {
        let mut s = match (self.flux_reading, self.optics) {
            (FluxReading::OnSample, None) => "given as the flux on the sample".to_string(),
            (FluxReading::OnSample, Some(o)) => format!(
                "given as the flux on the sample (read B); a {:.1} × {:.1} µm² FWHM focus \
                 through {:.1} × {:.1} µm² slits transmits {:.4}: if the number were the focus \
                 flux (read A), {:.3e} ph/s on the sample",
                o.focus_fwhm_um[0],
                o.focus_fwhm_um[1],
                o.slit_um[0],
                o.slit_um[1],
                o.transmission(),
                self.other_reading_flux_ph_s().unwrap_or(f64::NAN)
            ),
            (FluxReading::Focus, Some(o)) => format!(
                "{:.3e} ph/s in a {:.1} × {:.1} µm² FWHM focus × slit transmission {:.4} \
                 ({:.1} × {:.1} µm²) (read A); if the number were the flux on the sample \
                 (read B), {:.3e} ph/s",
                self.flux_ph_s / o.transmission(),
                o.focus_fwhm_um[0],
                o.focus_fwhm_um[1],
                o.transmission(),
                o.slit_um[0],
                o.slit_um[1],
                self.other_reading_flux_ph_s().unwrap_or(f64::NAN)
            ),
            (FluxReading::Focus, None) => unreachable!("validated in Beam::new"),
        };
        if !self.flux_basis.is_empty() {
            s.push_str("; basis: ");
            s.push_str(&self.flux_basis);
        }
        s
    }

    /// Area of the illuminated spot (µm²): the full-width rectangle for a top hat, 2πσ_hσ_v
    /// (the area of a flat beam of the same peak flux density) for a Gaussian.
    pub fn spot_area_um2(&self) -> f64 {
        match self.profile {
            BeamProfile::TopHat => self.size_um[0] * self.size_um[1],
            BeamProfile::Gaussian => {
                2.0 * std::f64::consts::PI
                    * fwhm_to_sigma(self.size_um[0])
                    * fwhm_to_sigma(self.size_um[1])
            }
        }
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
            flux_ph_s: Some(4.2e11),
            focus_flux_ph_s: None,
            focus_fwhm_um: None,
            slit_um: None,
            flux_basis: String::new(),
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
        c.flux_ph_s = Some(-1.0);
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

    /// Slow reference: midpoint rule over the slit rectangle of the normalised 2-D Gaussian.
    fn slit_transmission_numerical(o: &SlitOptics, n: usize) -> f64 {
        let (sh, sv) = (
            fwhm_to_sigma(o.focus_fwhm_um[0]),
            fwhm_to_sigma(o.focus_fwhm_um[1]),
        );
        let (dx, dy) = (o.slit_um[0] / n as f64, o.slit_um[1] / n as f64);
        let mut sum = 0.0;
        for i in 0..n {
            let x = -0.5 * o.slit_um[0] + (i as f64 + 0.5) * dx;
            for j in 0..n {
                let y = -0.5 * o.slit_um[1] + (j as f64 + 0.5) * dy;
                sum += (-0.5 * (x * x / (sh * sh) + y * y / (sv * sv))).exp();
            }
        }
        sum * dx * dy / (2.0 * std::f64::consts::PI * sh * sv)
    }

    #[test]
    fn slit_transmission_matches_2d_integration_and_the_pt_numbers() {
        let pt = SlitOptics {
            focus_fwhm_um: [50.5, 14.2],
            slit_um: [8.0, 8.0],
        };
        // Midpoint rule on 400² cells: error ~ (a/σ)²/(24 n²) ≲ 1e-6 relative here.
        for o in [
            pt,
            SlitOptics {
                focus_fwhm_um: [3.0, 40.0],
                slit_um: [10.0, 2.0],
            },
            SlitOptics {
                focus_fwhm_um: [1.0, 1.0],
                slit_um: [50.0, 50.0],
            },
        ] {
            let (fast, slow) = (o.transmission(), slit_transmission_numerical(&o, 400));
            assert!(
                (fast - slow).abs() < 1e-5 * slow.max(1e-3),
                "{o:?}: {fast} vs {slow}"
            );
        }
        // docs/physics.md §1.1: erf terms 0.1480 × 0.4929 = 0.0729 (rounded to 4 digits).
        assert!(
            (pt.transmission() - 0.0729).abs() < 5e-5,
            "{}",
            pt.transmission()
        );
        // Slits far wider than the focus pass everything.
        let wide = SlitOptics {
            focus_fwhm_um: [1.0, 1.0],
            slit_um: [100.0, 100.0],
        };
        assert!((wide.transmission() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn both_readings_of_the_pt_flux() {
        let mut b = cfg();
        b.focus_fwhm_um = Some([50.5, 14.2]);
        b.slit_um = Some([8.0, 8.0]);
        let on_sample = Beam::new(&b, "b.toml").unwrap();
        assert_eq!(on_sample.flux_ph_s, 4.2e11);
        // Reading A on the sample: 4.2e11 × 0.0729 = 3.06e10 (docs/physics.md §1.2).
        let a = on_sample.other_reading_flux_ph_s().unwrap();
        assert!((a / 3.06e10 - 1.0).abs() < 2e-3, "{a}");
        b.flux_ph_s = None;
        b.focus_flux_ph_s = Some(4.2e11);
        let focus = Beam::new(&b, "b.toml").unwrap();
        assert!((focus.flux_ph_s - a).abs() < 1e-3 * a);
        let b_reading = focus.other_reading_flux_ph_s().unwrap();
        assert!((b_reading / 4.2e11 - 1.0).abs() < 1e-12, "{b_reading}");
        assert!(focus.flux_provenance().contains("read A"));
        // Both fluxes, or a focus flux without optics, are refused naming the file.
        b.flux_ph_s = Some(1e11);
        let e = Beam::new(&b, "b.toml").unwrap_err().to_string();
        assert!(e.contains("b.toml") && e.contains("exactly one"), "{e}");
        b.flux_ph_s = None;
        b.slit_um = None;
        let e = Beam::new(&b, "b.toml").unwrap_err().to_string();
        assert!(e.contains("focus_fwhm_um needs slit_um"), "{e}");
    }
}
