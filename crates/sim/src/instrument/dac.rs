//! The diamond anvil cell: anvil attenuation, the sample's absorption and scattering volume,
//! and the cell's backgrounds.
//!
//! Input: [`DacConfig`] (from `models/dacs/*.toml`) and the [`Beam`]. Output: [`Dac`], a
//! validated runtime value with transmissions (dimensionless, 0..1) and effective thickness
//! (cm) as functions of the scattering angle 2θ (radians).
//!
//! - Anvils: T_in = exp(−μ t), T_out(2θ) = exp(−μ t / cos 2θ) (exit path t / cos 2θ), μ of
//!   diamond from the XCOM tables. Rayleigh scattering counts as a loss when
//!   `rayleigh_is_loss` (the free-atom value, 0.71 through 2 × 1.2 mm at 21 keV); a perfect
//!   single crystal scatters coherently only into Bragg reflections (the Kossel lines and spots),
//!   so the other limit removes it (0.75; the Ce seed quotes 75.4 %).
//! - Sample (slab of thickness t normal to the beam, linear attenuation μ_s): the scattering
//!   volume per unit area is t_eff(2θ) = ∫₀ᵗ exp(−μ_s z) exp(−μ_s (t − z)/cos 2θ) dz.
//! - Backgrounds: incoherent (dilutes the contrast) and static speckled fractions of the mean
//!   detected intensity; Kossel lines and spots in [`crate::instrument::kossel`].
//!
//! Reference: attenuation law and slab absorption, e.g. B. E. Warren, X-ray Diffraction (1969),
//! ch. 3; diamond cross sections from NIST XCOM (see [`crate::instrument::xcom`]).

use crate::config::instrument::{
    CompressionConfig, DacConfig, IncoherentFraction, KosselConfig, DEFAULT_SPOT_PEAK_FRACTION,
};
use crate::instrument::background::Background;
use crate::instrument::beam::Beam;
use crate::instrument::xcom::{Attenuation, Material};
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

/// A validated diamond anvil cell holding a sample, at one beam energy.
#[derive(Debug, Clone, PartialEq)]
pub struct Dac {
    /// Where it came from.
    pub origin: String,
    /// Thickness of each anvil (cm).
    pub anvil_thickness_cm: f64,
    /// Diamond attenuation at the beam energy.
    pub diamond: Attenuation,
    /// Count Rayleigh scattering as a loss.
    pub rayleigh_is_loss: bool,
    /// Full opening angle of the downstream seat (radians).
    pub opening_angle_rad: f64,
    /// Sample material.
    pub sample: Material,
    /// Sample thickness (cm).
    pub sample_thickness_cm: f64,
    /// Lateral size of the sample piece (cm).
    pub sample_lateral_size_cm: f64,
    /// Sample chamber height (gasket thickness, cm).
    pub chamber_height_cm: f64,
    /// Pressure-transmitting medium (as written in the file).
    pub medium: String,
    /// Sample attenuation at the beam energy.
    pub sample_attenuation: Attenuation,
    /// Coherent cross section per atom at the FSDP peak (electrons²).
    pub peak_cross_section_e2: f64,
    /// Incoherent background fraction: fixed, or computed from the cell geometry
    /// ([`Dac::incoherent_fraction_at`]).
    pub incoherent_fraction: IncoherentFraction,
    /// Static speckled background fraction.
    pub static_fraction: f64,
    /// Kossel lines and spots.
    pub kossel: KosselConfig,
    /// Peak count rate of an anvil spot (photons/s/pixel), resolved from the fixed rate or
    /// the per-flux fraction of the file.
    pub spot_peak_rate_hz: f64,
    /// How the cell changes with pressure ([`Dac::at_pressure`]); None: it does not.
    pub compression: Option<CompressionConfig>,
}

impl Dac {
    /// Validates a cell against the beam that will cross it; errors name `origin` (the DAC
    /// file) or the beam's file, the key and the allowed range.
    pub fn new(cfg: &DacConfig, origin: &str, beam: &Beam) -> Result<Self> {
        check_range(
            origin,
            "anvil_thickness_mm",
            cfg.anvil_thickness_mm,
            0.01,
            10.0,
        )?;
        check_range(origin, "culet_um", cfg.culet_um, 10.0, 5000.0)?;
        check_range(
            origin,
            "chamber_diameter_um",
            cfg.chamber_diameter_um,
            1.0,
            cfg.culet_um,
        )?;
        check_range(
            origin,
            "opening_angle_deg",
            cfg.opening_angle_deg,
            1.0,
            179.0,
        )?;
        let s = &cfg.sample;
        check_range(
            origin,
            "sample.thickness_um",
            s.thickness_um,
            0.01,
            cfg.chamber_height_um,
        )
        .map_err(|_| {
            Error::out_of_range(
                origin,
                "sample.thickness_um",
                s.thickness_um,
                format!("> 0 and ≤ chamber_height_um = {}", cfg.chamber_height_um),
            )
        })?;
        check_positive(origin, "chamber_height_um", cfg.chamber_height_um)?;
        check_range(
            origin,
            "sample.lateral_size_um",
            s.lateral_size_um,
            0.01,
            cfg.chamber_diameter_um,
        )?;
        if beam.max_size_um() > cfg.chamber_diameter_um {
            return Err(Error::out_of_range(
                &beam.origin,
                "size_um",
                format!("{:?}", beam.size_um),
                format!(
                    "≤ the sample chamber diameter {} µm (chamber_diameter_um in {origin})",
                    cfg.chamber_diameter_um
                ),
            ));
        }
        if beam.max_size_um() > s.lateral_size_um {
            return Err(Error::out_of_range(
                &beam.origin,
                "size_um",
                format!("{:?}", beam.size_um),
                format!(
                    "≤ the sample size {} µm (sample.lateral_size_um in {origin})",
                    s.lateral_size_um
                ),
            ));
        }
        check_range(origin, "static_fraction", cfg.static_fraction, 0.0, 0.99)?;
        if let IncoherentFraction::Fixed(x) = cfg.incoherent_fraction {
            check_range(origin, "incoherent_fraction", x, 0.0, 0.99)?;
            if x + cfg.static_fraction >= 1.0 {
                return Err(Error::out_of_range(
                    origin,
                    "incoherent_fraction + static_fraction",
                    x + cfg.static_fraction,
                    "< 1",
                ));
            }
        }
        check_positive(
            origin,
            "sample.peak_cross_section_e2_per_atom",
            s.peak_cross_section_e2_per_atom,
        )?;
        let k = &cfg.kossel;
        check_range(origin, "kossel.depth[0]", k.depth[0], 0.0, 1.0)?;
        check_range(origin, "kossel.depth[1]", k.depth[1], k.depth[0], 1.0)?;
        check_positive(origin, "kossel.width_mrad", k.width_mrad)?;
        let spot_peak_rate_hz = match (k.spot_peak_rate_hz, k.spot_peak_fraction) {
            (Some(r), None) => {
                check_range(origin, "kossel.spot_peak_rate_hz", r, 0.0, 1e9)?;
                r
            }
            (None, f) => {
                let f = f.unwrap_or(DEFAULT_SPOT_PEAK_FRACTION);
                check_range(origin, "kossel.spot_peak_fraction", f, 0.0, 1e-3)?;
                f * beam.flux_ph_s
            }
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    origin,
                    "give at most one of kossel.spot_peak_rate_hz (fixed photons/s) and \
                     kossel.spot_peak_fraction (per unit flux on the sample)",
                ))
            }
        };
        check_positive(origin, "kossel.spot_sigma_px", k.spot_sigma_px)?;
        check_range(origin, "kossel.n_lines", k.n_lines as f64, 0.0, 100.0)?;
        check_range(origin, "kossel.n_spots", k.n_spots as f64, 0.0, 1000.0)?;
        if let Some(c) = &cfg.compression {
            check_range(
                origin,
                "compression.bulk_modulus_gpa",
                c.bulk_modulus_gpa,
                1.0,
                1000.0,
            )?;
            check_range(
                origin,
                "compression.bulk_modulus_derivative",
                c.bulk_modulus_derivative,
                0.0,
                20.0,
            )?;
            check_range(
                origin,
                "compression.chamber_height_per_gpa_um",
                c.chamber_height_per_gpa_um,
                -cfg.chamber_height_um,
                0.0,
            )?;
        }
        let atoms: Vec<(&str, f64)> = s
            .composition
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let sample = Material::new(&s.name, &atoms, s.density_g_cm3, origin)?;
        let e_origin = beam.origin.as_str();
        let sample_attenuation = sample.attenuation(beam.energy_kev, e_origin, "energy_kev")?;
        let diamond = Material::diamond().attenuation(beam.energy_kev, e_origin, "energy_kev")?;
        let dac = Dac {
            origin: origin.to_string(),
            anvil_thickness_cm: cfg.anvil_thickness_mm * 0.1,
            diamond,
            rayleigh_is_loss: cfg.rayleigh_is_loss,
            opening_angle_rad: cfg.opening_angle_deg.to_radians(),
            sample,
            sample_thickness_cm: s.thickness_um * 1e-4,
            sample_lateral_size_cm: s.lateral_size_um * 1e-4,
            chamber_height_cm: cfg.chamber_height_um * 1e-4,
            medium: cfg.medium.clone(),
            sample_attenuation,
            peak_cross_section_e2: s.peak_cross_section_e2_per_atom,
            incoherent_fraction: cfg.incoherent_fraction,
            static_fraction: cfg.static_fraction,
            kossel: k.clone(),
            spot_peak_rate_hz,
            compression: cfg.compression.clone(),
        };
        if dac.incoherent_fraction == IncoherentFraction::Computed {
            // The computation fails only on the medium or an element without tables, not on
            // the angle: try it once here so that the file is named before any work.
            Background::new(beam, &dac, 0.27).map_err(|e| {
                Error::invalid(origin, format!("incoherent_fraction = \"computed\": {e}"))
            })?;
        }
        Ok(dac)
    }

    /// The incoherent fraction x_b at scattering angle `two_theta` (radians, the detector
    /// centre's): the file's number, or the value computed from the cell geometry
    /// ([`Background::incoherent_fraction`]) when the file says `"computed"`.
    pub fn incoherent_fraction_at(&self, beam: &Beam, two_theta: f64) -> Result<f64> {
        match self.incoherent_fraction {
            IncoherentFraction::Fixed(x) => Ok(x),
            IncoherentFraction::Computed => {
                Ok(Background::new(beam, self, two_theta)?.incoherent_fraction())
            }
        }
    }

    /// Density of the sample at `pressure_gpa` relative to 0 GPa (Murnaghan:
    /// (1 + B′P/B₀)^(1/B′), exp(P/B₀) for B′ = 0); 1 without `[compression]`.
    pub fn density_ratio(&self, pressure_gpa: f64) -> f64 {
        match &self.compression {
            None => 1.0,
            Some(c) if c.bulk_modulus_derivative == 0.0 => {
                (pressure_gpa / c.bulk_modulus_gpa).exp()
            }
            Some(c) => (1.0 + c.bulk_modulus_derivative * pressure_gpa / c.bulk_modulus_gpa)
                .powf(1.0 / c.bulk_modulus_derivative),
        }
    }

    /// The cell at `pressure_gpa`: the sample densified by ρ/ρ₀ ([`Dac::density_ratio`]; its
    /// attenuation and number density scale with it), its thickness along the beam shrunk by
    /// (ρ₀/ρ)^(1/3), the chamber height changed by `chamber_height_per_gpa_um` × P. The cell
    /// itself without `[compression]`. Errors (naming the DAC file) when the gasket would
    /// become thinner than the sample.
    pub fn at_pressure(&self, pressure_gpa: f64) -> Result<Dac> {
        let Some(c) = &self.compression else {
            return Ok(self.clone());
        };
        let r = self.density_ratio(pressure_gpa);
        let mut d = self.clone();
        d.sample.density_g_cm3 *= r;
        let a = &mut d.sample_attenuation;
        a.coherent_inv_cm *= r;
        a.incoherent_inv_cm *= r;
        a.photoelectric_inv_cm *= r;
        d.sample_thickness_cm *= r.powf(-1.0 / 3.0);
        d.chamber_height_cm += c.chamber_height_per_gpa_um * 1e-4 * pressure_gpa;
        if !(r.is_finite() && r > 0.0) || d.chamber_height_cm < d.sample_thickness_cm {
            return Err(Error::out_of_range(
                &self.origin,
                "compression (chamber height at this pressure)",
                format!("{:.1} µm at {pressure_gpa} GPa", d.chamber_height_cm * 1e4),
                format!(
                    "≥ the compressed sample thickness {:.1} µm",
                    d.sample_thickness_cm * 1e4
                ),
            ));
        }
        Ok(d)
    }

    /// Whether x_b is computed from the cell geometry (else the file's number).
    pub fn background_is_computed(&self) -> bool {
        self.incoherent_fraction == IncoherentFraction::Computed
    }

    /// Diamond attenuation used for transmissions (cm⁻¹), with or without Rayleigh.
    pub fn diamond_mu_inv_cm(&self) -> f64 {
        if self.rayleigh_is_loss {
            self.diamond.total_inv_cm()
        } else {
            self.diamond.without_coherent_inv_cm()
        }
    }

    /// Transmission of the upstream anvil.
    pub fn transmission_in(&self) -> f64 {
        (-self.diamond_mu_inv_cm() * self.anvil_thickness_cm).exp()
    }

    /// Transmission of the downstream anvil at scattering angle `two_theta` (radians).
    pub fn transmission_out(&self, two_theta: f64) -> f64 {
        (-self.diamond_mu_inv_cm() * self.anvil_thickness_cm / two_theta.cos()).exp()
    }

    /// Transmission of both anvils in the straight-through beam.
    pub fn transmission_straight(&self) -> f64 {
        self.transmission_in() * self.transmission_out(0.0)
    }

    /// Sample self-absorption: the effective scattering thickness t_eff(2θ) (cm).
    pub fn sample_effective_thickness_cm(&self, two_theta: f64) -> f64 {
        let mu = self.sample_attenuation.total_inv_cm();
        let t = self.sample_thickness_cm;
        let k = 1.0 / two_theta.cos() - 1.0; // extra exit path per unit depth
        let x = mu * t * k;
        let base = t * (-mu * t / two_theta.cos()).exp();
        // ∫₀ᵗ e^{−μz} e^{−μ(t−z)/cos} dz = t e^{−μt/cos} (e^{x} − 1)/x with x = μ t k.
        if x.abs() < 1e-9 {
            base * (1.0 + x / 2.0)
        } else {
            base * x.exp_m1() / x
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::instrument::{load_preset, BeamConfig};

    pub(crate) fn pt() -> (Beam, Dac) {
        let (b, bo) = load_preset::<BeamConfig>("beams", "ebs-id10-20p95kev").unwrap();
        let beam = Beam::new(&b, &bo).unwrap();
        let (d, o) = load_preset::<DacConfig>("dacs", "pt-dac").unwrap();
        let dac = Dac::new(&d, &o, &beam).unwrap();
        (beam, dac)
    }

    #[test]
    fn transmissions_follow_attenuation_law() {
        let (_, dac) = pt();
        let mu = dac.diamond.total_inv_cm();
        let t = dac.anvil_thickness_cm;
        assert!((dac.transmission_straight() - (-2.0 * mu * t).exp()).abs() < 1e-14);
        let tt = 0.27f64;
        assert!((dac.transmission_out(tt) - (-mu * t / tt.cos()).exp()).abs() < 1e-14);
        // 2 × 1.2 mm at 20.95 keV ≈ 0.71 (docs/model.md §4).
        assert!((dac.transmission_straight() - 0.71).abs() < 0.005);
        let mut d2 = dac.clone();
        d2.rayleigh_is_loss = false;
        assert!((d2.transmission_straight() - 0.75).abs() < 0.005);
    }

    #[test]
    fn effective_thickness_closed_form_and_quadrature() {
        let (_, dac) = pt();
        let mu = dac.sample_attenuation.total_inv_cm();
        let t = dac.sample_thickness_cm;
        // 2θ = 0: t e^{−μt}.
        assert!(
            (dac.sample_effective_thickness_cm(0.0) / (t * (-mu * t).exp()) - 1.0).abs() < 1e-9
        );
        // 2θ = 0.5: midpoint quadrature of the defining integral.
        let tt: f64 = 0.5;
        let n = 100_000;
        let h = t / n as f64;
        let q: f64 = (0..n)
            .map(|i| {
                let z = (i as f64 + 0.5) * h;
                (-mu * z).exp() * (-mu * (t - z) / tt.cos()).exp() * h
            })
            .sum();
        assert!((dac.sample_effective_thickness_cm(tt) / q - 1.0).abs() < 1e-6);
    }

    #[test]
    fn incoherent_fraction_fixed_or_computed() {
        let (beam, dac) = pt();
        let tt = 15.62f64.to_radians();
        // The preset asks for the computed value: the background module's x_b at that angle.
        assert!(dac.background_is_computed());
        let xb = dac.incoherent_fraction_at(&beam, tt).unwrap();
        let want = Background::new(&beam, &dac, tt)
            .unwrap()
            .incoherent_fraction();
        assert_eq!(xb, want);
        assert!((xb - 0.377).abs() < 0.01, "{xb}");
        let mut fixed = dac.clone();
        fixed.incoherent_fraction = IncoherentFraction::Fixed(0.2);
        assert_eq!(fixed.incoherent_fraction_at(&beam, tt).unwrap(), 0.2);
        // A medium the computation does not know is refused when the cell is built, naming it.
        let (mut d, o) = load_preset::<DacConfig>("dacs", "pt-dac").unwrap();
        d.medium = "neon".into();
        let e = Dac::new(&d, &o, &beam).unwrap_err().to_string();
        assert!(
            e.contains("pt-dac") && e.contains("neon") && e.contains("computed"),
            "{e}"
        );
        d.incoherent_fraction = IncoherentFraction::Fixed(0.2);
        assert!(Dac::new(&d, &o, &beam).is_ok());
    }

    /// The Ce cell's `[compression]`: Murnaghan ρ/ρ₀ against its closed form, the scaled
    /// sample (density, attenuation, thickness ∝ (ρ₀/ρ)^(1/3)) and gasket, and x_b falling as
    /// docs/physics.md §2.6 tabulates (0.412, 0.402, 0.389 at 0, 2.9, 8.2 GPa); no
    /// `[compression]` leaves the cell as it is; a gasket thinner than the sample and
    /// out-of-range parameters are refused with the file and key named.
    #[test]
    fn compressed_cell() {
        let (b, bo) = load_preset::<BeamConfig>("beams", "id10-21kev").unwrap();
        let beam = Beam::new(&b, &bo).unwrap();
        let (d, o) = load_preset::<DacConfig>("dacs", "ce-dac").unwrap();
        let dac = Dac::new(&d, &o, &beam).unwrap();
        let want = |p: f64| (1.0 + 4.0 * p / 30.0f64).powf(0.25);
        let tt = 16.0f64.to_radians();
        for (p, xb) in [(0.0, 0.412), (2.9, 0.402), (8.2, 0.389)] {
            let r = dac.density_ratio(p);
            assert!((r - want(p)).abs() < 1e-12, "{r}");
            let c = dac.at_pressure(p).unwrap();
            assert!((c.sample.density_g_cm3 / dac.sample.density_g_cm3 - r).abs() < 1e-12);
            let mu = |d: &Dac| d.sample_attenuation.total_inv_cm();
            assert!((mu(&c) / mu(&dac) - r).abs() < 1e-12);
            let t = c.sample_thickness_cm / dac.sample_thickness_cm;
            assert!((t - r.powf(-1.0 / 3.0)).abs() < 1e-12);
            assert!((c.chamber_height_cm * 1e4 - (50.0 - 1.22 * p)).abs() < 1e-9);
            let x = c.incoherent_fraction_at(&beam, tt).unwrap();
            assert!((x - xb).abs() < 0.0015, "{p} GPa: x_b {x}");
        }
        // Without [compression]: the same cell at any pressure.
        let (_, pt) = pt();
        assert_eq!(pt.at_pressure(6.3).unwrap(), pt);
        assert_eq!(pt.density_ratio(6.3), 1.0);
        // A gasket thinning below the sample at this pressure.
        let mut thin = dac.clone();
        thin.compression.as_mut().unwrap().chamber_height_per_gpa_um = -5.0;
        let e = thin.at_pressure(8.2).unwrap_err().to_string();
        assert!(e.contains("ce-dac") && e.contains("chamber height"), "{e}");
        let mut bad = d.clone();
        bad.compression.as_mut().unwrap().bulk_modulus_gpa = 0.0;
        let e = Dac::new(&bad, &o, &beam).unwrap_err().to_string();
        assert!(
            e.contains("ce-dac") && e.contains("compression.bulk_modulus_gpa"),
            "{e}"
        );
        let mut bad = d.clone();
        bad.compression.as_mut().unwrap().chamber_height_per_gpa_um = 1.0;
        let e = Dac::new(&bad, &o, &beam).unwrap_err().to_string();
        assert!(e.contains("chamber_height_per_gpa_um"), "{e}");
    }

    #[test]
    fn beam_larger_than_chamber_is_an_error() {
        let (b, bo) = load_preset::<BeamConfig>("beams", "ebs-id10-20p95kev").unwrap();
        let mut b = b;
        b.size_um = [400.0, 8.0];
        let beam = Beam::new(&b, &bo).unwrap();
        let (d, o) = load_preset::<DacConfig>("dacs", "pt-dac").unwrap();
        let s = Dac::new(&d, &o, &beam).unwrap_err().to_string();
        assert!(
            s.contains("size_um") && s.contains("chamber_diameter_um"),
            "{s}"
        );
        let mut d2 = d.clone();
        d2.sample.thickness_um = -3.0;
        let beam = Beam::new(
            &load_preset::<BeamConfig>("beams", "ebs-id10-20p95kev")
                .unwrap()
                .0,
            &bo,
        )
        .unwrap();
        let s = Dac::new(&d2, &o, &beam).unwrap_err().to_string();
        assert!(
            s.contains("pt-dac.toml") && s.contains("sample.thickness_um"),
            "{s}"
        );
    }
}
