//! q and φ of every detector pixel from the scattering geometry, and the q, φ centres of the
//! bins of a label map.
//!
//! Input: [`DetectorGeometry`] (energy keV, sample–detector distance m, square pixel size m,
//! direct-beam position in pixels (row, col) on a detector normal to the beam). Output: per
//! pixel q (Å⁻¹) and φ (degrees, counter-clockwise from +col, rows pointing down, in
//! (−180, 180]); per bin the mean q of its valid pixels and the circular mean of their φ (0 when
//! the bin spans every direction, a ring).
//!
//! q = 4π sin(θ)/λ with 2θ = atan(r/d), r the pixel's distance from the beam centre, and
//! λ (Å) = 12.398419843320026 / E (keV), the pySimpleMask / APS 8-ID-I convention.

use super::partition::{BinAxis, LabelMap};
use crate::check::check_positive;
use crate::error::{Error, Result};

/// hc in keV·Å (CODATA 2018).
pub const HC_KEV_ANGSTROM: f64 = 12.398_419_843_320_026;

/// A flat detector normal to the direct beam.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorGeometry {
    /// Incident energy (keV).
    pub energy_kev: f64,
    /// Sample–detector distance (m).
    pub distance_m: f64,
    /// Pixel size (m), square pixels.
    pub pixel_size_m: f64,
    /// Direct-beam position, row coordinate (pixels, may lie off the detector).
    pub beam_center_row_px: f64,
    /// Direct-beam position, column coordinate (pixels).
    pub beam_center_col_px: f64,
}

impl DetectorGeometry {
    /// Checks every field (positive lengths and energy, finite beam centre).
    pub fn validate(&self, origin: &str) -> Result<()> {
        check_positive(origin, "energy (keV)", self.energy_kev)?;
        check_positive(origin, "distance (m)", self.distance_m)?;
        check_positive(origin, "pixel size (m)", self.pixel_size_m)?;
        for (f, v) in [
            ("beam centre row (px)", self.beam_center_row_px),
            ("beam centre col (px)", self.beam_center_col_px),
        ] {
            if !v.is_finite() {
                return Err(Error::out_of_range(origin, f, v, "finite"));
            }
        }
        Ok(())
    }

    /// q (Å⁻¹) and φ (degrees) of pixel (row, col).
    pub fn q_phi(&self, row: usize, col: usize) -> (f64, f64) {
        let lambda = HC_KEV_ANGSTROM / self.energy_kev;
        let dx = (col as f64 - self.beam_center_col_px) * self.pixel_size_m;
        let dy = (row as f64 - self.beam_center_row_px) * self.pixel_size_m;
        let two_theta = dx.hypot(dy).atan2(self.distance_m);
        let q = 4.0 * std::f64::consts::PI * (two_theta / 2.0).sin() / lambda;
        (q, (-dy).atan2(dx).to_degrees())
    }
}

/// Centres of the bins of `map` (labels 1..=n_bins) over the pixels where `valid` is true:
/// mean q, circular mean φ (0 when the mean resultant length is below 0.1: a ring). Bins
/// without a valid pixel get NaN.
pub fn bin_axes(map: &LabelMap, valid: &[bool], geo: &DetectorGeometry) -> Vec<BinAxis> {
    let n = map.n_bins();
    let (_, cols) = map.shape();
    let mut acc = vec![(0.0f64, 0.0f64, 0.0f64, 0usize); n];
    for (p, &l) in map.labels().iter().enumerate() {
        if l == 0 || !valid.get(p).copied().unwrap_or(false) {
            continue;
        }
        let (q, phi) = geo.q_phi(p / cols, p % cols);
        let a = &mut acc[l as usize - 1];
        a.0 += q;
        a.1 += phi.to_radians().cos();
        a.2 += phi.to_radians().sin();
        a.3 += 1;
    }
    acc.into_iter()
        .map(|(q, c, s, m)| {
            if m == 0 {
                return BinAxis {
                    q_inv_angstrom: f64::NAN,
                    phi_deg: f64::NAN,
                };
            }
            let m = m as f64;
            let r = (c / m).hypot(s / m);
            BinAxis {
                q_inv_angstrom: q / m,
                phi_deg: if r < 0.1 {
                    0.0
                } else {
                    s.atan2(c).to_degrees()
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_follows_bragg_geometry() {
        let g = DetectorGeometry {
            energy_kev: 10.0,
            distance_m: 4.0,
            pixel_size_m: 76e-6,
            beam_center_row_px: 10.0,
            beam_center_col_px: 20.0,
        };
        assert_eq!(g.q_phi(10, 20).0, 0.0);
        // 100 px to the right: 2θ = atan(7.6 mm / 4 m).
        let (q, phi) = g.q_phi(10, 120);
        let lambda = HC_KEV_ANGSTROM / 10.0;
        let want = 4.0 * std::f64::consts::PI * ((0.0076f64 / 4.0).atan() / 2.0).sin() / lambda;
        assert!((q - want).abs() < 1e-15, "{q} vs {want}");
        assert!(phi.abs() < 1e-12);
        // Up (row decreasing) is +90°.
        assert!((g.q_phi(0, 20).1 - 90.0).abs() < 1e-12);
        // A sector bin to the right: φ ≈ 0; a ring: φ = 0 by convention; q in between.
        let labels: Vec<u32> = (0..21 * 41)
            .map(|p| {
                let (q, _) = g.q_phi(p / 41, p % 41);
                u32::from(q > 0.0005 && q < 0.0007)
            })
            .collect();
        let map = LabelMap::new(21, 41, labels, "t").unwrap();
        let ax = bin_axes(&map, &vec![true; 21 * 41], &g);
        assert!(ax[0].q_inv_angstrom > 0.0005 && ax[0].q_inv_angstrom < 0.0007);
    }
}
