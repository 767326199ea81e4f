//! The per-pixel scene the speckle simulator consumes: what the detector would see on average.
//!
//! Input: [`Beam`], [`Dac`] (with its sample and backgrounds), [`Detector`], a
//! [`GeometryConfig`], the FSDP profile ([`Fsdp`]) and a pressure. Output: [`Scene`]:
//! per-pixel mean counts per frame (row-major, 0 in gaps), q (Å⁻¹) and φ (degrees), the speckle
//! contrast, and the static and incoherent fractions (per pixel), plus the valid mask.
//!
//! Mean rate of the glass in pixel p (photons/s):
//! R = Φ · T_in · T_out(2θ) · n t_eff(2θ) · r_e² · P(2θ, φ) · σ₁ S(q)/S(q1) · ΔΩ · QE,
//! with Φ the flux, T the anvil transmissions, n the sample's atom density, t_eff its
//! absorption-weighted thickness, r_e the classical electron radius, P the polarisation factor,
//! σ₁ = ⟨f⟩²S(q1) the coherent cross section per atom at the peak (electrons²), ΔΩ the pixel
//! solid angle and QE the detector efficiency. The cell's backgrounds are fractions x_b
//! (incoherent) and x_s (static speckled) of the total: I = R/(1 − x_b − x_s). Kossel lines
//! multiply everything; anvil spots add static intensity. Or: a given mean rate per valid pixel
//! rescales the map.
//!
//! Reference: absolute scattered intensity of an amorphous sample, e.g. B. E. Warren, X-ray
//! Diffraction (1969), ch. 10 (I = N r_e² P ⟨f⟩² S(q) per unit solid angle); FSDP shift with
//! pressure from the Pt seed (q1(P) = q1(0) + 4.91e-3 Å⁻¹/GPa · P).

use crate::config::instrument::{FsdpConfig, GeometryConfig};
use crate::instrument::coherence::{self, CoherenceInputs, Contrast};
use crate::instrument::geometry::{self, Geometry, QMaps};
use crate::instrument::kossel::{self, KosselMap};
use crate::instrument::{Beam, Dac, Detector};
use crate::speckle::PerPixel;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::Result;

/// Classical electron radius squared (cm²), CODATA 2018 r_e = 2.817 940 3262e-13 cm.
pub const R_E_SQ_CM2: f64 = 7.940_787_8e-26;

/// The FSDP profile S(q) and its pressure shift (see [`FsdpConfig`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fsdp {
    /// q1 at 0 GPa (Å⁻¹).
    pub q1_inv_angstrom: f64,
    /// dq1/dP (Å⁻¹/GPa).
    pub dq1_dp: f64,
    /// FWHM above the base (Å⁻¹).
    pub fwhm_inv_angstrom: f64,
    /// S(q1).
    pub peak: f64,
    /// Base.
    pub base: f64,
}

impl Fsdp {
    /// Validates an FSDP config; `origin` names the file.
    pub fn new(cfg: &FsdpConfig, origin: &str) -> Result<Self> {
        check_range(origin, "q1_inv_angstrom", cfg.q1_inv_angstrom, 0.1, 20.0)?;
        check_range(
            origin,
            "dq1_dp_inv_angstrom_per_gpa",
            cfg.dq1_dp_inv_angstrom_per_gpa,
            -1.0,
            1.0,
        )?;
        check_positive(origin, "fwhm_inv_angstrom", cfg.fwhm_inv_angstrom)?;
        check_range(origin, "base", cfg.base, 0.0, 1e3)?;
        check_range(origin, "peak", cfg.peak, cfg.base.max(1e-9), 1e3)?;
        Ok(Fsdp {
            q1_inv_angstrom: cfg.q1_inv_angstrom,
            dq1_dp: cfg.dq1_dp_inv_angstrom_per_gpa,
            fwhm_inv_angstrom: cfg.fwhm_inv_angstrom,
            peak: cfg.peak,
            base: cfg.base,
        })
    }

    /// The Pt-seed FSDP: q1 = 2.87 Å⁻¹ at 1 atm (docs/model.md §9), +4.91e-3 Å⁻¹/GPa;
    /// FWHM 0.35 Å⁻¹, S(q1) = 2.7, base 1.0 (assumptions: typical of Pt-based glasses).
    pub fn pt_seed() -> Self {
        Fsdp {
            q1_inv_angstrom: 2.87,
            dq1_dp: 4.91e-3,
            fwhm_inv_angstrom: 0.35,
            peak: 2.7,
            base: 1.0,
        }
    }

    /// q1 at `pressure_gpa`.
    pub fn q1(&self, pressure_gpa: f64) -> f64 {
        self.q1_inv_angstrom + self.dq1_dp * pressure_gpa
    }

    /// S(q) at `pressure_gpa`.
    pub fn s(&self, q: f64, pressure_gpa: f64) -> f64 {
        let x = (q - self.q1(pressure_gpa)) / self.fwhm_inv_angstrom;
        self.base + (self.peak - self.base) * (-4.0 * 2f64.ln() * x * x).exp()
    }
}

/// What the speckle simulator needs, per pixel (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Mean detected counts per frame (glass + backgrounds + spots, after QE and Kossel
    /// lines); 0 in gaps.
    pub mean_counts: Vec<f64>,
    /// q (Å⁻¹), for the τ(q) clock factor.
    pub q_inv_angstrom: Vec<f64>,
    /// Azimuth (degrees).
    pub phi_deg: Vec<f64>,
    /// Speckle contrast (computed or measured).
    pub contrast: f64,
    /// Static speckled fraction of the mean (cell background and spots).
    pub static_fraction: PerPixel,
    /// Incoherent fraction of the mean.
    pub incoherent_fraction: PerPixel,
    /// Valid pixels (module/chip gaps false).
    pub valid: Vec<bool>,
    /// FSDP position at this pressure (Å⁻¹).
    pub q1_inv_angstrom: f64,
    /// Scattering angle of the detector centre (radians).
    pub two_theta_c_rad: f64,
    /// The cell's incoherent fraction x_b at this pressure (the file's number or the one
    /// computed from the cell at `two_theta_c_rad`), before the anvil spots are added.
    pub cell_incoherent_fraction: f64,
}

/// Beam, cell, detector and geometry together.
#[derive(Debug, Clone)]
pub struct Instrument {
    /// The beam.
    pub beam: Beam,
    /// The cell and sample.
    pub dac: Dac,
    /// The detector.
    pub detector: Detector,
    /// Geometry settings.
    pub geometry: GeometryConfig,
    /// Where the geometry came from.
    pub geometry_origin: String,
    /// FSDP profile.
    pub fsdp: Fsdp,
    /// Measured contrast overriding the coherence calculation.
    pub contrast_override: Option<f64>,
}

impl Instrument {
    /// Puts the parts together; checks the geometry at 0 GPa.
    pub fn new(
        beam: Beam,
        dac: Dac,
        detector: Detector,
        geometry: GeometryConfig,
        geometry_origin: &str,
        fsdp: Fsdp,
        contrast_override: Option<f64>,
    ) -> Result<Self> {
        check_range(
            geometry_origin,
            "horizontal_polarisation",
            geometry.horizontal_polarisation,
            0.0,
            1.0,
        )?;
        check_range(
            geometry_origin,
            "arm_azimuth_deg",
            geometry.arm_azimuth_deg,
            -360.0,
            360.0,
        )?;
        if let Some(c) = contrast_override {
            check_range(geometry_origin, "contrast", c, 1e-9, 1.0)?;
        }
        if !geometry.follow_q1 && geometry.two_theta_deg.is_none() {
            return Err(xpcs_core::error::Error::invalid(
                geometry_origin,
                "set `two_theta_deg` or `follow_q1 = true`",
            ));
        }
        let inst = Instrument {
            beam,
            dac,
            detector,
            geometry,
            geometry_origin: geometry_origin.to_string(),
            fsdp,
            contrast_override,
        };
        inst.geometry_at(0.0)?;
        Ok(inst)
    }

    /// The Pt seed's instrument from the bundled presets: beam `ebs-id10-20p95kev`, cell
    /// `pt-dac` (its Kossel lines and spots only if `kossel`), detector `eiger2-cdte-4m` at
    /// 5 m following q1(P) on a vertical arm, FSDP [`Fsdp::pt_seed`], computed contrast. For
    /// tests and benches.
    pub fn pt_seed(kossel: bool) -> Result<Self> {
        use crate::config::instrument::{load_preset, BeamConfig, DacConfig, DetectorConfig};
        let (b, bo) = load_preset::<BeamConfig>("beams", "ebs-id10-20p95kev")?;
        let beam = Beam::new(&b, &bo)?;
        let (mut d, o) = load_preset::<DacConfig>("dacs", "pt-dac")?;
        if !kossel {
            d.kossel.n_lines = 0;
            d.kossel.n_spots = 0;
        }
        let dac = Dac::new(&d, &o, &beam)?;
        let (dc, dorig) = load_preset::<DetectorConfig>("detectors", "eiger2-cdte-4m")?;
        let det = Detector::new(&dc, &dorig)?;
        let geo = GeometryConfig {
            distance_m: 5.0,
            two_theta_deg: None,
            follow_q1: true,
            arm_azimuth_deg: 90.0,
            horizontal_polarisation: 1.0,
        };
        Instrument::new(
            beam,
            dac,
            det,
            geo,
            "model.toml [instrument.geometry]",
            Fsdp::pt_seed(),
            None,
        )
    }

    /// The detector geometry at `pressure_gpa` (the centre follows q1(P) if asked), validated.
    pub fn geometry_at(&self, pressure_gpa: f64) -> Result<Geometry> {
        let lam = self.beam.wavelength_angstrom();
        let g = &self.geometry;
        let tt = if g.follow_q1 {
            geometry::two_theta_for_q(self.fsdp.q1(pressure_gpa), lam, &self.geometry_origin)?
        } else {
            g.two_theta_deg.unwrap_or(0.0).to_radians()
        };
        let geo = Geometry {
            rows: self.detector.rows,
            cols: self.detector.cols,
            pixel_size_um: self.detector.pixel_size_um,
            distance_m: g.distance_m,
            two_theta_c_rad: tt,
            arm_azimuth_rad: g.arm_azimuth_deg.to_radians(),
            wavelength_angstrom: lam,
            horizontal_polarisation: g.horizontal_polarisation,
        };
        geo.validate(
            &self.geometry_origin,
            &self.dac.origin,
            self.dac.opening_angle_rad,
        )?;
        Ok(geo)
    }

    /// Contrast at `pressure_gpa` (the scattering angle sets the projected source and the
    /// path-length spread).
    pub fn contrast_at(&self, pressure_gpa: f64) -> Result<Contrast> {
        let geo = self.geometry_at(pressure_gpa)?;
        let psi = geo.arm_azimuth_rad;
        // The beam size along the arm direction is in the scattering plane.
        let (in_plane, out_plane) = if psi.cos().abs() >= psi.sin().abs() {
            (self.beam.size_um[0], self.beam.size_um[1])
        } else {
            (self.beam.size_um[1], self.beam.size_um[0])
        };
        Ok(coherence::contrast(
            &CoherenceInputs {
                lambda_angstrom: self.beam.wavelength_angstrom(),
                bandwidth_rel: self.beam.bandwidth_rel,
                profile: self.beam.profile,
                beam_in_plane_um: in_plane,
                beam_out_of_plane_um: out_plane,
                thickness_um: self.dac.at_pressure(pressure_gpa)?.sample_thickness_cm * 1e4,
                two_theta_rad: geo.two_theta_c_rad,
                distance_m: geo.distance_m,
                pixel_um: geo.pixel_size_um,
            },
            self.contrast_override,
        ))
    }

    /// Glass count rate (photons/s) in a pixel with the given map values, through `d` (the
    /// cell at this pressure, [`Dac::at_pressure`]).
    #[allow(clippy::too_many_arguments)]
    pub fn glass_rate_hz(
        &self,
        d: &Dac,
        qe: f64,
        tt: f64,
        q: f64,
        omega: f64,
        pol: f64,
        pressure_gpa: f64,
    ) -> f64 {
        let s_rel = self.fsdp.s(q, pressure_gpa) / self.fsdp.peak;
        self.beam.flux_ph_s
            * d.transmission_in()
            * d.transmission_out(tt)
            * d.sample.number_density_per_cm3()
            * d.sample_effective_thickness_cm(tt)
            * R_E_SQ_CM2
            * pol
            * d.peak_cross_section_e2
            * s_rel
            * omega
            * qe
    }

    /// The scene at `pressure_gpa` for frames of `frame_time_s`; `mean_rate_hz` (if given)
    /// rescales the map to that mean total rate per valid pixel. Also returns the maps and the
    /// Kossel map used.
    pub fn scene(
        &self,
        pressure_gpa: f64,
        frame_time_s: f64,
        mean_rate_hz: Option<f64>,
    ) -> Result<(Scene, QMaps, KosselMap)> {
        xpcs_core::check::check_frame_time("scene", "frame_time_s", frame_time_s)?;
        if let Some(r) = mean_rate_hz {
            check_range("scene", "mean_rate_hz", r, 0.0, 1e9)?;
        }
        let geo = self.geometry_at(pressure_gpa)?;
        let maps = geo.maps();
        let valid = self.detector.gap_mask().to_vec();
        let qe = self
            .detector
            .quantum_efficiency(self.beam.energy_kev, &self.beam.origin)?;
        let kmap = kossel::inject(
            &self.dac.kossel,
            self.dac.spot_peak_rate_hz,
            &maps,
            geo.wavelength_angstrom,
            &valid,
        );
        // The cell as compressed at this pressure (itself without `[compression]`).
        let dac = self.dac.at_pressure(pressure_gpa)?;
        let xb = dac.incoherent_fraction_at(&self.beam, geo.two_theta_c_rad)?;
        let xs = self.dac.static_fraction;
        let n = maps.rows * maps.cols;
        let mut total = vec![0.0; n];
        for p in 0..n {
            if valid[p] {
                let glass = self.glass_rate_hz(
                    &dac,
                    qe,
                    maps.two_theta_rad[p],
                    maps.q_inv_angstrom[p],
                    maps.solid_angle_sr[p],
                    maps.polarisation[p],
                    pressure_gpa,
                );
                total[p] = glass / (1.0 - xb - xs);
            }
        }
        if let Some(r) = mean_rate_hz {
            let nv = valid.iter().filter(|&&v| v).count().max(1) as f64;
            let mean: f64 = total.iter().sum::<f64>() / nv;
            let k = if mean > 0.0 { r / mean } else { 0.0 };
            total.iter_mut().for_each(|x| *x *= k);
        }
        let has_spots = kmap.spot_rate_hz.iter().any(|&s| s > 0.0);
        let mut mean_counts = vec![0.0; n];
        let mut stat = vec![0.0; n];
        let mut inc = vec![0.0; n];
        for p in 0..n {
            if !valid[p] {
                continue;
            }
            let diffuse = total[p] * kmap.transmission[p];
            let spot = kmap.spot_rate_hz[p] * qe;
            let all = diffuse + spot;
            mean_counts[p] = all * frame_time_s;
            if all > 0.0 {
                stat[p] = (xs * diffuse + spot) / all;
                inc[p] = xb * diffuse / all;
            }
        }
        let contrast = self.contrast_at(pressure_gpa)?.value();
        let (static_fraction, incoherent_fraction) = if has_spots {
            (PerPixel::Map(stat), PerPixel::Map(inc))
        } else {
            (PerPixel::Uniform(xs), PerPixel::Uniform(xb))
        };
        let scene = Scene {
            rows: maps.rows,
            cols: maps.cols,
            frame_time_s,
            mean_counts,
            q_inv_angstrom: maps.q_inv_angstrom.clone(),
            phi_deg: maps.phi_deg.clone(),
            contrast,
            static_fraction,
            incoherent_fraction,
            valid,
            q1_inv_angstrom: self.fsdp.q1(pressure_gpa),
            two_theta_c_rad: geo.two_theta_c_rad,
            cell_incoherent_fraction: xb,
        };
        Ok((scene, maps, kmap))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{BinOptics, Dynamics, Truth};
    use crate::speckle::{
        Exposure, GeneratorKind, Method, Scene as SimScene, SimOptions, Simulator,
    };
    use xpcs_core::correlate::{DenseMultiTau, Estimator, LagSchedule};
    use xpcs_core::data::QPartition;

    pub(crate) fn pt_instrument(kossel: bool) -> Instrument {
        Instrument::pt_seed(kossel).unwrap()
    }

    /// The Pt seed at 3.3 GPa: q1 = 2.87 + 3.3 × 4.91e-3 at the detector centre; the glass
    /// rate follows the closed-form product; the mean rate is docs/physics.md §1.4's 0.967
    /// ph/s/px; simulated speckle frames (the speckle simulator, the sample's dynamics at 3.3
    /// GPa) carry that rate and that q1 within 5σ (see below). Their contrast is proven on the
    /// same instrument and pressure by `contrast_recovered_from_simulated_g2`.
    #[test]
    fn pt_frame_at_3p3_gpa() {
        let inst = pt_instrument(false);
        let (scene, maps, _) = inst.scene(3.3, 0.1, None).unwrap();
        let q1 = 2.87 + 3.3 * 4.91e-3;
        assert!((scene.q1_inv_angstrom - q1).abs() < 1e-12);
        let (r0, c0) = (scene.rows / 2, scene.cols / 2);
        // Centre between the two middle rows/cols: the four middle pixels straddle q1.
        let qc = 0.25
            * (maps.q_inv_angstrom[(r0 - 1) * scene.cols + c0 - 1]
                + maps.q_inv_angstrom[r0 * scene.cols + c0]
                + maps.q_inv_angstrom[(r0 - 1) * scene.cols + c0]
                + maps.q_inv_angstrom[r0 * scene.cols + c0 - 1]);
        assert!((qc - q1).abs() < 1e-6, "{qc}");
        // Closed-form rate at one pixel.
        let p = 100 * scene.cols + 200;
        let d = &inst.dac;
        let tt = maps.two_theta_rad[p];
        let qe = inst.detector.quantum_efficiency(20.95, "t").unwrap();
        let want = 4.2e11
            * d.transmission_in()
            * d.transmission_out(tt)
            * d.sample.number_density_per_cm3()
            * d.sample_effective_thickness_cm(tt)
            * R_E_SQ_CM2
            * maps.polarisation[p]
            * 4000.0
            * inst.fsdp.s(maps.q_inv_angstrom[p], 3.3)
            / 2.7
            * maps.solid_angle_sr[p]
            * qe
            / (1.0 - scene.cell_incoherent_fraction - 0.02);
        assert!((scene.mean_counts[p] / 0.1 / want - 1.0).abs() < 1e-12);
        let nv = scene.valid.iter().filter(|&&v| v).count() as f64;
        let mean_rate = scene.mean_counts.iter().sum::<f64>() / nv / 0.1;
        eprintln!(
            "Pt 3.3 GPa: mean rate {mean_rate:.3} ph/s/px, contrast {:.4}",
            scene.contrast
        );
        // docs/physics.md §1.4: 0.967 ph/s/px with the computed x_b = 0.377 (reading B).
        assert!((0.93..=1.0).contains(&mean_rate), "{mean_rate}");
        assert!(scene
            .valid
            .iter()
            .zip(&scene.mean_counts)
            .all(|(&v, &m)| v || m == 0.0));
        // Simulated frames: the speckle simulator on a strip of 64 columns × every row (q runs
        // along rows: the strip spans the detector's whole q range, across the module gaps),
        // the sample file's dynamics at 3.3 GPa, 200 frames of 0.1 s. Counts summed over T
        // frames have variance μT + c_I (μT)² per pixel (Poisson + a speckle pattern frozen
        // over 20 s, c_I ≤ c the contrast of the total intensity): v_p = μ_p T + c (μ_p T)² is
        // an upper bound used for every σ below.
        let (col0, w, nf) = (scene.cols / 2 + 100, 64, 200);
        let strip = sim_scene(&scene, 0, col0, scene.rows, w);
        let sample = crate::config::sample::load_sample(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../models/samples/pt42.toml"
        )))
        .unwrap();
        let k = sample.campaign.find_pressure(3.3).unwrap();
        let mut arng = crate::rng::stream(7, 0);
        let (dynamics, facts) = sample.campaign.scan(k, nf, 0.1, &mut arng).unwrap();
        assert!((facts.q1_inv_angstrom - q1).abs() < 1e-12);
        let mu_t: Vec<f64> = strip.mean_counts.iter().map(|m| m * nf as f64).collect();
        let sim = Simulator::new(
            strip,
            dynamics,
            Exposure {
                n_frames: nf,
                frame_time_s: 0.1,
            },
            grid_options(33),
        )
        .unwrap();
        let ev = sim.events().unwrap();
        let full = |r: usize, c: usize| r * scene.cols + col0 + c;
        let n_valid = (0..scene.rows * w)
            .filter(|&p| scene.valid[full(p / w, p % w)])
            .count() as f64;
        assert!(
            n_valid < (scene.rows * w) as f64,
            "the strip crosses module gaps"
        );
        // 1. Mean count rate: total photons vs Σ μT within 5σ.
        let expect: f64 = mu_t.iter().sum();
        let var: f64 = mu_t.iter().map(|m| m + scene.contrast * m * m).sum();
        let got = ev.total_counts() as f64;
        eprintln!(
            "simulated rate {:.4} vs model {:.4} ph/s/px ({got} photons)",
            got / (n_valid * nf as f64 * 0.1),
            expect / (n_valid * nf as f64 * 0.1),
        );
        assert!(
            (got - expect).abs() < 5.0 * var.sqrt(),
            "{got} vs {expect} ± {}",
            var.sqrt()
        );
        // 2. q1 from the simulated counts: per row, n_r vs A B_r S(q̄_r; q0)/S(q̄_r; q1), B_r the
        // model's row sum (everything but the FSDP position is the model's: transmissions,
        // solid angle, polarisation, QE), A and q0 fitted by weighted least squares (A linear,
        // q0 on a 2e-4 Å⁻¹ grid over ±0.03), σ(q0) from Δχ² = 1. q1 recovered within 5σ, and
        // σ < 4e-3 Å⁻¹, so that a detector left at the 0 GPa position (q1 off by 0.016) fails.
        let (mut n_r, mut b_r, mut v_r, mut q_r) = (
            vec![0.0; scene.rows],
            vec![0.0; scene.rows],
            vec![0.0; scene.rows],
            vec![0.0; scene.rows],
        );
        for (p, &m) in mu_t.iter().enumerate() {
            let (r, fp) = (p / w, full(p / w, p % w));
            n_r[r] += ev.pixel(p).1.iter().map(|&c| f64::from(c)).sum::<f64>();
            b_r[r] += m;
            v_r[r] += m + scene.contrast * m * m;
            q_r[r] += maps.q_inv_angstrom[fp] / w as f64;
        }
        let rows: Vec<usize> = (0..scene.rows).filter(|&r| b_r[r] > 0.0).collect();
        let chi2 = |q0: f64| -> f64 {
            let f = inst.fsdp;
            let m: Vec<f64> = rows
                .iter()
                .map(|&r| b_r[r] * f.s(q_r[r] - q0 + q1, 3.3) / f.s(q_r[r], 3.3))
                .collect();
            let sxy: f64 = rows.iter().zip(&m).map(|(&r, x)| n_r[r] * x / v_r[r]).sum();
            let sxx: f64 = rows.iter().zip(&m).map(|(&r, x)| x * x / v_r[r]).sum();
            let amp = sxy / sxx;
            rows.iter()
                .zip(&m)
                .map(|(&r, x)| (n_r[r] - amp * x).powi(2) / v_r[r])
                .sum()
        };
        let h = 2e-4;
        let (i_min, c_min) = (-150i32..=150)
            .map(|i| (i, chi2(q1 + i as f64 * h)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        assert!(i_min.abs() < 150, "χ² minimum at the grid edge");
        let q_hat = q1 + i_min as f64 * h;
        let curv = (chi2(q_hat + h) - 2.0 * c_min + chi2(q_hat - h)) / (h * h);
        let sigma = (2.0 / curv).sqrt();
        eprintln!("q1 from the simulated counts: {q_hat:.4} ± {sigma:.4} (model {q1:.4}; χ² {c_min:.0} over {} rows)", rows.len());
        assert!(sigma < 4e-3, "σ(q1) = {sigma}");
        assert!(
            (q_hat - q1).abs() < 5.0 * sigma + h,
            "{q_hat} vs {q1} ± {sigma}"
        );
        // Given-rate override.
        let (s2, _, _) = inst.scene(3.3, 0.1, Some(0.75)).unwrap();
        let m2 = s2.mean_counts.iter().sum::<f64>() / nv / 0.1;
        assert!((m2 - 0.75).abs() < 1e-9);
        assert!(
            scene.contrast > 0.005 && scene.contrast < 0.03,
            "{}",
            scene.contrast
        );
    }

    /// A rectangle of an instrument scene as the speckle simulator's scene (rate factor 1,
    /// one mode); the background fractions must be uniform (no Kossel spots).
    fn sim_scene(sc: &Scene, row0: usize, col0: usize, rows: usize, cols: usize) -> SimScene {
        let mean_counts = (row0..row0 + rows)
            .flat_map(|r| sc.mean_counts[r * sc.cols + col0..r * sc.cols + col0 + cols].to_vec())
            .collect();
        assert!(matches!(
            (&sc.static_fraction, &sc.incoherent_fraction),
            (PerPixel::Uniform(_), PerPixel::Uniform(_))
        ));
        SimScene {
            rows,
            cols,
            mean_counts,
            rate_factor: PerPixel::Uniform(1.0),
            contrast: sc.contrast,
            modes: 1.0,
            static_fraction: sc.static_fraction.clone(),
            incoherent_fraction: sc.incoherent_fraction.clone(),
        }
    }

    fn grid_options(seed: u64) -> SimOptions {
        SimOptions {
            generator: GeneratorKind::Circulant,
            method: Method::Grid {
                du: None,
                tolerance: 2e-3,
            },
            block_pixels: 1024,
            seed,
        }
    }

    /// The coherence model's contrast, recovered from a simulated stack's g2 at the shortest
    /// non-zero lag. Pt-seed instrument at 3.3 GPa: contrast c from the coherence model, the
    /// cell's incoherent and static fractions; 64 × 64 pixels at 2 photons per frame (the
    /// contrast does not depend on the rate; raised for statistics), 300 frames of 0.1 s, KWW
    /// dynamics τ = 1 s, β = 1.5. Multi-tau symmetric g2 over the region: E[g2(1)] − 1 = K c,
    /// with K = (g2_truth(1) − 1)/c from `model::Truth` of the same scene: (1 − x_b)² = 0.64 for
    /// the incoherent fraction times the decay over one frame (closed form at lag ≪ τ:
    /// K → (1 − x_b)², x_b the cell's computed fraction; one frame of 0.1 s decays the field
    /// correlation by exp(−(0.1)^1.5) ≥ 0.96, so 0.8 (1 − x_b)² < K < (1 − x_b)²). Recovered ĉ = (g2(1) − 1)/K must equal c within
    /// 5σ, σ = g2_err(1)/K (delta-method error over the independent pixels; one comparison at
    /// a fixed seed: false-alarm probability 6e-7 under a normal approximation); σ/c < 0.1, so
    /// a contrast off by half fails.
    #[test]
    fn contrast_recovered_from_simulated_g2() {
        let inst = pt_instrument(false);
        let c_model = inst.contrast_at(3.3).unwrap().value();
        let n = 64;
        let (isc, _, _) = inst.scene(3.3, 0.1, None).unwrap();
        let (xb, xs) = (isc.cell_incoherent_fraction, inst.dac.static_fraction);
        let mut scene = SimScene::uniform(n, n, 2.0, c_model, 1.0);
        scene.incoherent_fraction = PerPixel::Uniform(xb);
        scene.static_fraction = PerPixel::Uniform(xs);
        let exposure = Exposure {
            n_frames: 300,
            frame_time_s: 0.1,
        };
        let sim = Simulator::new(
            scene,
            Dynamics::stationary(1.5, 1.0).unwrap(),
            exposure,
            grid_options(17),
        )
        .unwrap();
        let stack = sim.stack().unwrap();
        let part = QPartition::from_labels(n, n, vec![1; n * n], "region").unwrap();
        let sched = LagSchedule::multi_tau(exposure.n_frames, 8).unwrap();
        let mut corr = DenseMultiTau::new(&part, &sched);
        corr.push_stack(&stack, 0..exposure.n_frames).unwrap();
        let g = corr.finish(Estimator::Symmetric).unwrap();
        let i1 = g.lag_frames.iter().position(|&l| l == 1).unwrap();
        let (g2, err) = (g.g2[[i1, 0]], g.g2_err[[i1, 0]]);
        let optics = BinOptics::new((0..n * n).map(|p| sim.scene().optics(p)));
        let truth = Truth::new(sim.dynamics(), &optics, sim.truth_sampling(2)).g2(&[1])[0];
        let k = (truth - 1.0) / c_model;
        assert!(
            k > 0.8 * (1.0 - xb).powi(2) && k < (1.0 - xb).powi(2) + 1e-12,
            "K = {k}"
        );
        let (c_hat, sigma) = ((g2 - 1.0) / k, err / k);
        eprintln!("contrast: model {c_model:.5}, recovered {c_hat:.5} ± {sigma:.5} (K = {k:.4})");
        assert!(
            sigma < 0.1 * c_model,
            "σ = {sigma} too large to test c = {c_model}"
        );
        assert!(
            (c_hat - c_model).abs() < 5.0 * sigma,
            "recovered {c_hat} ± {sigma} vs model {c_model}"
        );
    }

    #[test]
    fn kossel_and_spots_enter_the_scene() {
        let inst = pt_instrument(true);
        let (scene, _, k) = inst.scene(0.0, 0.1, None).unwrap();
        assert_eq!(k.lines.len(), 4);
        assert!(k.transmission.iter().any(|&t| t < 0.95));
        match &scene.static_fraction {
            PerPixel::Map(v) => assert!(v.iter().any(|&x| x > 0.5)),
            PerPixel::Uniform(_) => panic!("spots make the static fraction per pixel"),
        }
    }

    #[test]
    fn detector_behind_sample_is_an_error() {
        let inst = pt_instrument(false);
        let mut g = inst.geometry.clone();
        g.follow_q1 = false;
        g.two_theta_deg = Some(120.0);
        let e = Instrument::new(
            inst.beam.clone(),
            inst.dac.clone(),
            inst.detector.clone(),
            g,
            "model.toml",
            inst.fsdp,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("model.toml") && e.contains("two_theta_deg") && e.contains("90"),
            "{e}"
        );
    }
}
