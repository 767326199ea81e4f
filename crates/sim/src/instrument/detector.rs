//! Photon-counting pixel detectors: layout (modules, chips, gaps), quantum efficiency, and the
//! per-unit defect maps (dead and hot pixels, per-pixel efficiency).
//!
//! Input: [`DetectorConfig`] (from `models/detectors/*.toml`). Output: [`Detector`]. Pixels are
//! row-major, `pixel = row * cols + col`; rows are the slow axis. Masks are `Vec<bool>` with
//! true = valid pixel.
//!
//! Quantum efficiency at energy E for a sensor of thickness t: the photon is counted if its
//! first interaction is photoelectric, or if it scatters (Rayleigh/Compton) and is re-absorbed
//! photoelectrically over a mean remaining path t/2:
//! QE = (1 − e^{−μt}) [μ_pe + μ_sc (1 − e^{−μ_pe t/2})]/μ. This gives ≈ 0.33 for Si 500 µm and
//! ≈ 1.0 for CdTe at 21 keV (docs/model.md §4: 0.34 and ≈ 1). The re-absorption term is an
//! approximation (assumption), worth < 1 % for Si and ≈ 6 % for CdTe.
//!
//! Reference: NIST XCOM cross sections ([`crate::instrument::xcom`]); module layout of the
//! EIGER2 X 4M from Dectris (modules 1028 × 512, gaps 12 × 38 px).

use crate::config::instrument::{BitDepth, DetectorConfig};
use crate::instrument::xcom::Material;
use crate::rng;
use rand::RngExt;
use xpcs_core::check::check_range;
use xpcs_core::error::{Error, Result};

/// Pixels per block of the per-pixel random streams (defect maps, counting chain).
pub const PIXEL_BLOCK: usize = 4096;

/// A validated detector.
#[derive(Debug, Clone, PartialEq)]
pub struct Detector {
    /// Where it came from.
    pub origin: String,
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Pixel pitch (µm).
    pub pixel_size_um: f64,
    /// Sensor material.
    pub sensor: Material,
    /// Sensor thickness (cm).
    pub sensor_thickness_cm: f64,
    /// Counter depth.
    pub bit_depth: BitDepth,
    /// Non-paralysable dead time (s).
    pub dead_time_s: f64,
    /// Probability of a neighbour double count.
    pub charge_sharing_prob: f64,
    /// Relative rms spread of the per-pixel efficiency.
    pub gain_sigma: f64,
    /// Dead pixel fraction.
    pub dead_pixel_fraction: f64,
    /// Hot pixel fraction.
    pub hot_pixel_fraction: f64,
    /// Hot pixel rate (counts/s).
    pub hot_pixel_rate_hz: f64,
    /// Seed of the defect maps.
    pub defect_seed: u64,
    gap_mask: Vec<bool>,
}

/// Tiles of `tile` pixels separated by `gap` pixels must cover `n` exactly: returns the count.
fn tiling(n: usize, tile: usize, gap: usize) -> Option<usize> {
    if tile == 0 || (n + gap) % (tile + gap) != 0 {
        return None;
    }
    Some((n + gap) / (tile + gap))
}

/// Marks as false the gap pixels along one axis of length `n` tiled by `tile` + `gap`.
fn gap_axis(n: usize, tile: usize, gap: usize) -> Vec<bool> {
    (0..n).map(|i| i % (tile + gap) < tile).collect()
}

impl Detector {
    /// Validates a detector config; `origin` names the file.
    pub fn new(cfg: &DetectorConfig, origin: &str) -> Result<Self> {
        check_range(origin, "rows", cfg.rows as f64, 1.0, 20_000.0)?;
        check_range(origin, "cols", cfg.cols as f64, 1.0, 20_000.0)?;
        check_range(origin, "pixel_size_um", cfg.pixel_size_um, 1.0, 5000.0)?;
        check_range(
            origin,
            "sensor_thickness_um",
            cfg.sensor_thickness_um,
            1.0,
            1e5,
        )?;
        let sensor = match cfg.sensor_material.as_str() {
            "CdTe" => Material::new("CdTe", &[("Cd", 1.0), ("Te", 1.0)], 5.85, origin)?,
            "Si" => Material::new("Si", &[("Si", 1.0)], 2.329, origin)?,
            other => {
                return Err(Error::out_of_range(
                    origin,
                    "sensor_material",
                    other,
                    "one of CdTe, Si",
                ))
            }
        };
        check_range(origin, "dead_time_ns", cfg.dead_time_ns, 0.0, 1e9)?;
        check_range(
            origin,
            "charge_sharing_prob",
            cfg.charge_sharing_prob,
            0.0,
            1.0,
        )?;
        check_range(origin, "gain_sigma", cfg.gain_sigma, 0.0, 1.0)?;
        check_range(
            origin,
            "dead_pixel_fraction",
            cfg.dead_pixel_fraction,
            0.0,
            1.0,
        )?;
        check_range(
            origin,
            "hot_pixel_fraction",
            cfg.hot_pixel_fraction,
            0.0,
            1.0,
        )?;
        check_range(origin, "hot_pixel_rate_hz", cfg.hot_pixel_rate_hz, 0.0, 1e9)?;
        let (rows, cols) = (cfg.rows, cfg.cols);
        let mut row_ok = vec![true; rows];
        let mut col_ok = vec![true; cols];
        let module = cfg.module_shape_px.unwrap_or([rows, cols]);
        let [gr, gc] = cfg.module_gap_px;
        let layout_err = |what: &str, n: usize, t: usize, g: usize| {
            Error::invalid(
                origin,
                format!("{what}: {n} px is not a whole number of {t}-px tiles with {g}-px gaps"),
            )
        };
        tiling(rows, module[0], gr)
            .ok_or_else(|| layout_err("rows / module_shape_px[0]", rows, module[0], gr))?;
        tiling(cols, module[1], gc)
            .ok_or_else(|| layout_err("cols / module_shape_px[1]", cols, module[1], gc))?;
        let mr = gap_axis(rows, module[0], gr);
        let mc = gap_axis(cols, module[1], gc);
        if let Some(chip) = cfg.chip_shape_px {
            let [cr, cc] = cfg.chip_gap_px;
            tiling(module[0], chip[0], cr).ok_or_else(|| {
                layout_err("module rows / chip_shape_px[0]", module[0], chip[0], cr)
            })?;
            tiling(module[1], chip[1], cc).ok_or_else(|| {
                layout_err("module cols / chip_shape_px[1]", module[1], chip[1], cc)
            })?;
            let inner_r = gap_axis(module[0], chip[0], cr);
            let inner_c = gap_axis(module[1], chip[1], cc);
            for (i, ok) in row_ok.iter_mut().enumerate() {
                *ok = mr[i] && inner_r[i % (module[0] + gr)];
            }
            for (j, ok) in col_ok.iter_mut().enumerate() {
                *ok = mc[j] && inner_c[j % (module[1] + gc)];
            }
        } else {
            row_ok = mr;
            col_ok = mc;
        }
        let mut gap_mask = Vec::with_capacity(rows * cols);
        for r in &row_ok {
            for c in &col_ok {
                gap_mask.push(*r && *c);
            }
        }
        Ok(Detector {
            origin: origin.to_string(),
            rows,
            cols,
            pixel_size_um: cfg.pixel_size_um,
            sensor,
            sensor_thickness_cm: cfg.sensor_thickness_um * 1e-4,
            bit_depth: cfg.bit_depth,
            dead_time_s: cfg.dead_time_ns * 1e-9,
            charge_sharing_prob: cfg.charge_sharing_prob,
            gain_sigma: cfg.gain_sigma,
            dead_pixel_fraction: cfg.dead_pixel_fraction,
            hot_pixel_fraction: cfg.hot_pixel_fraction,
            hot_pixel_rate_hz: cfg.hot_pixel_rate_hz,
            defect_seed: cfg.defect_seed,
            gap_mask,
        })
    }

    /// Pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Module and chip gaps: true = a real pixel.
    pub fn gap_mask(&self) -> &[bool] {
        &self.gap_mask
    }

    /// Quantum efficiency at `energy_kev` (see the module docs); `origin` names the energy's
    /// source for errors.
    pub fn quantum_efficiency(&self, energy_kev: f64, origin: &str) -> Result<f64> {
        let a = self.sensor.attenuation(energy_kev, origin, "energy_kev")?;
        let mu = a.total_inv_cm();
        let t = self.sensor_thickness_cm;
        let absorbed = -(-mu * t).exp_m1();
        let pe = a.photoelectric_inv_cm;
        let sc = a.coherent_inv_cm + a.incoherent_inv_cm;
        let reabsorbed = -(-pe * t / 2.0).exp_m1();
        Ok(absorbed * (pe + sc * reabsorbed) / mu)
    }

    /// The largest count the counter holds before rolling over.
    pub fn max_count(&self) -> u64 {
        match self.bit_depth {
            BitDepth::Bits8 => 255,
            BitDepth::Bits16 => 65_535,
            BitDepth::Bits32 => u64::from(u32::MAX),
        }
    }

    /// The defect maps of this unit (seeded by `defect_seed`, streams per pixel block).
    pub fn defects(&self) -> DefectMaps {
        let n = self.n_pixels();
        let mut dead = vec![false; n];
        let mut hot = vec![false; n];
        let mut efficiency = vec![1.0; n];
        let seed = rng::subseed(self.defect_seed, "detector-defects");
        for (b, ((d, h), e)) in dead
            .chunks_mut(PIXEL_BLOCK)
            .zip(hot.chunks_mut(PIXEL_BLOCK))
            .zip(efficiency.chunks_mut(PIXEL_BLOCK))
            .enumerate()
        {
            let mut r = rng::stream(seed, b as u64);
            for i in 0..d.len() {
                let u: f64 = r.random();
                d[i] = u < self.dead_pixel_fraction;
                h[i] = !d[i] && u < self.dead_pixel_fraction + self.hot_pixel_fraction;
                let z: f64 = r.sample(rand_distr::StandardNormal);
                e[i] = (1.0 + self.gain_sigma * z).clamp(0.0, 1.0);
            }
        }
        DefectMaps {
            dead,
            hot,
            efficiency,
        }
    }
}

/// Per-pixel defects of one detector unit (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct DefectMaps {
    /// Dead pixels (never count).
    pub dead: Vec<bool>,
    /// Hot pixels (count continuously at the hot rate).
    pub hot: Vec<bool>,
    /// Counting efficiency in [0, 1]: 1 + σ z clipped (an efficiency cannot exceed 1).
    pub efficiency: Vec<f64>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::instrument::load_preset;

    pub(crate) fn preset(name: &str) -> Detector {
        let (c, o) = load_preset::<DetectorConfig>("detectors", name).unwrap();
        Detector::new(&c, &o).unwrap()
    }

    #[test]
    fn eiger_layout() {
        let d = preset("eiger2-cdte-4m");
        assert_eq!((d.rows, d.cols), (2162, 2068));
        let valid = d.gap_mask().iter().filter(|&&v| v).count();
        assert_eq!(valid, 8 * 512 * 1028);
        // First gap column is 1028, first gap row is 512; pixel (511, 1027) is real.
        assert!(!d.gap_mask()[1028]);
        assert!(!d.gap_mask()[512 * 2068]);
        assert!(d.gap_mask()[511 * 2068 + 1027]);
        assert!(d.gap_mask()[550 * 2068 + 1040]);
    }

    #[test]
    fn maxipix_layout() {
        let d = preset("maxipix-2x2");
        assert_eq!(d.gap_mask().iter().filter(|&&v| v).count(), 512 * 512);
        assert!(!d.gap_mask()[256 * 516 + 10] && d.gap_mask()[260 * 516 + 10]);
    }

    #[test]
    fn quantum_efficiency_matches_design() {
        // docs/model.md §4: Si 500 µm → 0.34 at 21 keV; CdTe → ≈ 1.
        let si = preset("maxipix-2x2").quantum_efficiency(21.0, "t").unwrap();
        assert!((si - 0.34).abs() < 0.015, "{si}");
        let cdte = preset("eiger2-cdte-4m")
            .quantum_efficiency(20.95, "t")
            .unwrap();
        assert!(cdte > 0.99, "{cdte}");
        // Closed form for the pure absorption part: Si photoelectric only is below the QE.
        let a = preset("maxipix-2x2")
            .sensor
            .attenuation(21.0, "t", "e")
            .unwrap();
        let pe_only =
            a.photoelectric_inv_cm / a.total_inv_cm() * (1.0 - (-a.total_inv_cm() * 0.05).exp());
        assert!(si > pe_only && si < pe_only + 0.01);
        assert!(preset("maxipix-2x2")
            .quantum_efficiency(120.0, "beam.toml")
            .is_err());
    }

    #[test]
    fn bad_layout_and_material() {
        let (mut c, o) = load_preset::<DetectorConfig>("detectors", "eiger2-cdte-4m").unwrap();
        c.rows = 2163;
        assert!(Detector::new(&c, &o)
            .unwrap_err()
            .to_string()
            .contains("module_shape_px"));
        let (mut c, o) = load_preset::<DetectorConfig>("detectors", "eiger2-cdte-4m").unwrap();
        c.sensor_material = "GaAs".into();
        let s = Detector::new(&c, &o).unwrap_err().to_string();
        assert!(
            s.contains("sensor_material") && s.contains("CdTe, Si"),
            "{s}"
        );
    }

    #[test]
    fn defect_fractions() {
        let d = preset("maxipix-2x2");
        let m = d.defects();
        let n = m.dead.len() as f64;
        let nd = m.dead.iter().filter(|&&x| x).count() as f64;
        // Binomial: 5σ band around n·p.
        let p = d.dead_pixel_fraction;
        assert!(
            (nd - n * p).abs() < 5.0 * (n * p * (1.0 - p)).sqrt(),
            "{nd}"
        );
        assert_eq!(m, d.defects());
    }
}
