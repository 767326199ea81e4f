//! Detector geometry: pixel → 2θ, φ, q, solid angle, polarisation; and q-partitions.
//!
//! Input: detector shape and pitch, distance L, the scattering angle of the detector centre
//! 2θ_c and the arm azimuth ψ, the wavelength. Output: [`QMaps`] (row-major per-pixel maps;
//! 2θ in radians, φ in degrees, q in Å⁻¹, solid angle in sr) and [`QPartition`]s.
//!
//! Frame: the beam runs along +z; x is horizontal, y vertical up. The detector is flat, normal
//! to the direction n̂ = (sin2θ_c cosψ, sin2θ_c sinψ, cos2θ_c), its centre at L n̂. Rows run
//! along ê_r = (cos2θ_c cosψ, cos2θ_c sinψ, −sin2θ_c) (row index up → 2θ up), columns along
//! ê_c = (−sinψ, cosψ, 0). The centre sits between the two middle pixels for even sizes.
//! Pixel position r = L n̂ + (row − (rows−1)/2) p ê_r + (col − (cols−1)/2) p ê_c; then
//! 2θ = acos(r̂·ẑ), φ = atan2(r_y, r_x), q = 4π sin θ / λ, ΔΩ = p² L/|r|³, and the
//! polarisation factor P = 1 − h (r̂·x̂)² − (1 − h)(r̂·ŷ)² for a fraction h of horizontal
//! linear polarisation.
//!
//! Reference: standard scattering geometry (e.g. J. Als-Nielsen & D. McMorrow, Elements of
//! Modern X-ray Physics, 2nd ed., 2011, ch. 1 and 4 for q and polarisation).

use xpcs_core::data::{BinAxis, LabelMap, QPartition};
use xpcs_core::error::{Error, Result};

/// Where the detector is and what it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Pixel pitch (µm).
    pub pixel_size_um: f64,
    /// Sample–detector distance (m).
    pub distance_m: f64,
    /// Scattering angle of the detector centre (radians).
    pub two_theta_c_rad: f64,
    /// Arm azimuth ψ around the beam (radians).
    pub arm_azimuth_rad: f64,
    /// Wavelength (Å).
    pub wavelength_angstrom: f64,
    /// Fraction of horizontal linear polarisation.
    pub horizontal_polarisation: f64,
}

/// The scattering angle (radians) at which wave vector `q` (Å⁻¹) is seen; error when q is
/// beyond backscattering (4π/λ).
pub fn two_theta_for_q(q_inv_angstrom: f64, wavelength_angstrom: f64, origin: &str) -> Result<f64> {
    let s = q_inv_angstrom * wavelength_angstrom / (4.0 * std::f64::consts::PI);
    if !(0.0..1.0).contains(&s) {
        return Err(Error::out_of_range(
            origin,
            "q1_inv_angstrom",
            q_inv_angstrom,
            format!(
                "0 to 4π/λ = {:.3} Å⁻¹",
                4.0 * std::f64::consts::PI / wavelength_angstrom
            ),
        ));
    }
    Ok(2.0 * s.asin())
}

/// q (Å⁻¹) at scattering angle `two_theta` (radians).
pub fn q_of_two_theta(two_theta: f64, wavelength_angstrom: f64) -> f64 {
    4.0 * std::f64::consts::PI * (two_theta / 2.0).sin() / wavelength_angstrom
}

/// Per-pixel maps, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct QMaps {
    /// Image rows.
    pub rows: usize,
    /// Image columns.
    pub cols: usize,
    /// Scattering angle (radians).
    pub two_theta_rad: Vec<f64>,
    /// Azimuth around the beam (degrees, −180..180, 0 = +x horizontal, 90 = up).
    pub phi_deg: Vec<f64>,
    /// Wave vector (Å⁻¹).
    pub q_inv_angstrom: Vec<f64>,
    /// Solid angle of the pixel (sr).
    pub solid_angle_sr: Vec<f64>,
    /// Polarisation factor.
    pub polarisation: Vec<f64>,
    /// Unit vector from the sample to the pixel (x, y, z).
    pub direction: Vec<[f64; 3]>,
}

impl QMaps {
    /// The maps of the `rows` × `cols` rectangle whose first pixel is (`row0`, `col0`);
    /// errors if it does not fit inside these maps.
    pub fn crop(&self, row0: usize, col0: usize, rows: usize, cols: usize) -> Result<QMaps> {
        if rows == 0 || cols == 0 || row0 + rows > self.rows || col0 + cols > self.cols {
            return Err(Error::out_of_range(
                "q-map crop",
                "rectangle (row0, col0, rows, cols)",
                format!("({row0}, {col0}, {rows}, {cols})"),
                format!("non-empty, inside {} × {}", self.rows, self.cols),
            ));
        }
        let idx: Vec<usize> = (row0..row0 + rows)
            .flat_map(|r| (r * self.cols + col0)..(r * self.cols + col0 + cols))
            .collect();
        let pick = |v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<f64>>();
        Ok(QMaps {
            rows,
            cols,
            two_theta_rad: pick(&self.two_theta_rad),
            phi_deg: pick(&self.phi_deg),
            q_inv_angstrom: pick(&self.q_inv_angstrom),
            solid_angle_sr: pick(&self.solid_angle_sr),
            polarisation: pick(&self.polarisation),
            direction: idx.iter().map(|&i| self.direction[i]).collect(),
        })
    }
}

impl Geometry {
    /// Checks that every pixel is in front of the sample (2θ < 90°) and inside the cell's
    /// opening (2θ ≤ opening/2); errors name `origin` and the key.
    pub fn validate(&self, origin: &str, dac_origin: &str, opening_angle_rad: f64) -> Result<()> {
        xpcs_core::check::check_positive(origin, "distance_m", self.distance_m)?;
        let max_tt = [
            (0, 0),
            (0, self.cols - 1),
            (self.rows - 1, 0),
            (self.rows - 1, self.cols - 1),
        ]
        .iter()
        .map(|&(r, c)| self.pixel(r, c).0)
        .fold(self.two_theta_c_rad, f64::max);
        if !(self.two_theta_c_rad >= 0.0 && max_tt < std::f64::consts::FRAC_PI_2) {
            return Err(Error::out_of_range(
                origin,
                "two_theta_deg",
                format!(
                    "{:.3} (detector edge at {:.3}°)",
                    self.two_theta_c_rad.to_degrees(),
                    max_tt.to_degrees()
                ),
                "0 to 90° at every pixel (the detector must be downstream of the sample)",
            ));
        }
        if max_tt > opening_angle_rad / 2.0 {
            return Err(Error::out_of_range(
                origin,
                "two_theta_deg",
                format!("{:.3} (detector edge at {:.3}°)", self.two_theta_c_rad.to_degrees(), max_tt.to_degrees()),
                format!(
                    "detector edge ≤ half the cell opening, {:.1}° (opening_angle_deg in {dac_origin})",
                    opening_angle_rad.to_degrees() / 2.0
                ),
            ));
        }
        Ok(())
    }

    fn frame(&self) -> ([f64; 3], [f64; 3], [f64; 3]) {
        let (s, c) = self.two_theta_c_rad.sin_cos();
        let (sp, cp) = self.arm_azimuth_rad.sin_cos();
        let n = [s * cp, s * sp, c];
        let er = [c * cp, c * sp, -s];
        let ec = [-sp, cp, 0.0];
        (n, er, ec)
    }

    /// (2θ rad, φ deg, q Å⁻¹, solid angle sr, polarisation, direction) of pixel (row, col).
    pub fn pixel(&self, row: usize, col: usize) -> (f64, f64, f64, f64, f64, [f64; 3]) {
        let (n, er, ec) = self.frame();
        let l = self.distance_m;
        let p = self.pixel_size_um * 1e-6;
        let u = (row as f64 - (self.rows as f64 - 1.0) / 2.0) * p;
        let v = (col as f64 - (self.cols as f64 - 1.0) / 2.0) * p;
        let r = [
            l * n[0] + u * er[0] + v * ec[0],
            l * n[1] + u * er[1] + v * ec[1],
            l * n[2] + u * er[2] + v * ec[2],
        ];
        let norm = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let d = [r[0] / norm, r[1] / norm, r[2] / norm];
        let tt = d[2].clamp(-1.0, 1.0).acos();
        let phi = d[1].atan2(d[0]).to_degrees();
        let q = q_of_two_theta(tt, self.wavelength_angstrom);
        let omega = p * p * l / norm.powi(3);
        let h = self.horizontal_polarisation;
        let pol = 1.0 - h * d[0] * d[0] - (1.0 - h) * d[1] * d[1];
        (tt, phi, q, omega, pol, d)
    }

    /// All per-pixel maps.
    pub fn maps(&self) -> QMaps {
        let n = self.rows * self.cols;
        let mut m = QMaps {
            rows: self.rows,
            cols: self.cols,
            two_theta_rad: Vec::with_capacity(n),
            phi_deg: Vec::with_capacity(n),
            q_inv_angstrom: Vec::with_capacity(n),
            solid_angle_sr: Vec::with_capacity(n),
            polarisation: Vec::with_capacity(n),
            direction: Vec::with_capacity(n),
        };
        for r in 0..self.rows {
            for c in 0..self.cols {
                let (tt, phi, q, om, pol, d) = self.pixel(r, c);
                m.two_theta_rad.push(tt);
                m.phi_deg.push(phi);
                m.q_inv_angstrom.push(q);
                m.solid_angle_sr.push(om);
                m.polarisation.push(pol);
                m.direction.push(d);
            }
        }
        m
    }
}

/// How to cut the q range into bands.
#[derive(Debug, Clone, PartialEq)]
pub enum QBands {
    /// Explicit increasing edges (Å⁻¹): n + 1 edges make n bands.
    Edges(Vec<f64>),
    /// n bands of equal width spanning the valid pixels' q range.
    Uniform(usize),
    /// n bands holding equal numbers of valid pixels.
    EqualPixels(usize),
    /// n bands holding equal summed weight (e.g. a summed image: equal photon counts).
    EqualCounts(usize, Vec<f64>),
}

/// Specification of a q-partition.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionSpec {
    /// Dynamic q bands.
    pub bands: QBands,
    /// Sectors in φ (equal width over the valid pixels' φ range), ≥ 1.
    pub sectors: usize,
    /// Static sub-bands per dynamic band (equal width in q inside it), ≥ 1.
    pub static_per_dynamic: usize,
}

fn band_edges(bands: &QBands, q: &[f64], mask: &[bool]) -> Result<Vec<f64>> {
    let origin = "q-partition";
    let mut valid: Vec<f64> = q
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .map(|(&x, _)| x)
        .collect();
    if valid.is_empty() {
        return Err(Error::invalid(origin, "no valid pixel inside the mask"));
    }
    valid.sort_by(f64::total_cmp);
    let (lo, hi) = (valid[0], *valid.last().unwrap_or(&valid[0]));
    let hi_incl = hi + 1e-12 * hi.abs().max(1.0);
    let edges = match bands {
        QBands::Edges(e) => {
            if e.len() < 2 || e.windows(2).any(|w| w[1] <= w[0]) {
                return Err(Error::invalid(
                    origin,
                    "q edges must be ≥ 2 strictly increasing values",
                ));
            }
            e.clone()
        }
        QBands::Uniform(n) | QBands::EqualPixels(n) | QBands::EqualCounts(n, _) if *n == 0 => {
            return Err(Error::out_of_range(origin, "number of q bands", 0, "≥ 1"));
        }
        QBands::Uniform(n) => (0..=*n)
            .map(|i| {
                if i == *n {
                    hi_incl
                } else {
                    lo + (hi - lo) * i as f64 / *n as f64
                }
            })
            .collect(),
        QBands::EqualPixels(n) => {
            let mut e: Vec<f64> = (0..*n).map(|i| valid[i * valid.len() / n]).collect();
            e.push(hi_incl);
            e
        }
        QBands::EqualCounts(n, w) => {
            if w.len() != q.len() {
                return Err(Error::ShapeMismatch {
                    origin: origin.into(),
                    what: "weights vs pixels".into(),
                    expected: vec![q.len()],
                    got: vec![w.len()],
                });
            }
            let mut pw: Vec<(f64, f64)> = q
                .iter()
                .zip(w)
                .zip(mask)
                .filter(|(_, &m)| m)
                .map(|((&x, &y), _)| (x, y.max(0.0)))
                .collect();
            pw.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: f64 = pw.iter().map(|x| x.1).sum();
            let mut e = vec![lo];
            let mut acc = 0.0;
            let mut k = 1;
            for &(x, y) in &pw {
                if k < *n && acc >= total * k as f64 / *n as f64 {
                    e.push(x);
                    k += 1;
                }
                acc += y;
            }
            e.push(hi_incl);
            e.dedup();
            e
        }
    };
    Ok(edges)
}

/// Builds the dynamic and static label maps from per-pixel q and φ inside `mask`.
///
/// Dynamic label = band index × sectors + sector + 1; static bins split each band into
/// `static_per_dynamic` equal-width sub-bands (same sectors). Pixels outside every band get 0.
/// Bin centres are the mean q and the circular mean φ of each bin's pixels.
pub fn partition(maps: &QMaps, mask: &[bool], spec: &PartitionSpec) -> Result<QPartition> {
    let origin = "q-partition";
    let n = maps.rows * maps.cols;
    if mask.len() != n {
        return Err(Error::ShapeMismatch {
            origin: origin.into(),
            what: "mask vs q-map".into(),
            expected: vec![n],
            got: vec![mask.len()],
        });
    }
    if spec.sectors == 0 || spec.static_per_dynamic == 0 {
        return Err(Error::out_of_range(
            origin,
            "sectors / static_per_dynamic",
            0,
            "≥ 1",
        ));
    }
    let q = &maps.q_inv_angstrom;
    let edges = band_edges(&spec.bands, q, mask)?;
    let nb = edges.len() - 1;
    // φ range of the valid pixels, measured from their circular mean to avoid the ±180 cut.
    let (s, c) = maps
        .phi_deg
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m)
        .fold((0.0, 0.0), |(s, c), (&p, _)| {
            (s + p.to_radians().sin(), c + p.to_radians().cos())
        });
    let phi0 = s.atan2(c).to_degrees();
    let rel = |p: f64| (p - phi0 + 540.0).rem_euclid(360.0) - 180.0;
    let (mut pmin, mut pmax) = (f64::INFINITY, f64::NEG_INFINITY);
    for (&p, &m) in maps.phi_deg.iter().zip(mask) {
        if m {
            pmin = pmin.min(rel(p));
            pmax = pmax.max(rel(p));
        }
    }
    let pspan = (pmax - pmin).max(1e-12) * (1.0 + 1e-12);
    let ns = spec.sectors;
    let k = spec.static_per_dynamic;
    let mut dl = vec![0u32; n];
    let mut sl = vec![0u32; n];
    for p in 0..n {
        if !mask[p] {
            continue;
        }
        let qq = q[p];
        if qq < edges[0] || qq >= edges[nb] {
            continue;
        }
        let b = edges.partition_point(|&e| e <= qq) - 1;
        let sec = (((rel(maps.phi_deg[p]) - pmin) / pspan) * ns as f64) as usize;
        let sec = sec.min(ns - 1);
        dl[p] = (b * ns + sec + 1) as u32;
        let sub = (((qq - edges[b]) / (edges[b + 1] - edges[b])) * k as f64) as usize;
        sl[p] = (((b * k + sub.min(k - 1)) * ns) + sec + 1) as u32;
    }
    let dyn_map = LabelMap::new(maps.rows, maps.cols, dl, origin)?;
    let st_map = LabelMap::new(maps.rows, maps.cols, sl, origin)?;
    let axes = |m: &LabelMap| -> Vec<BinAxis> {
        (1..=m.n_bins())
            .map(|b| {
                let px = m.pixels(b);
                if px.is_empty() {
                    return BinAxis {
                        q_inv_angstrom: f64::NAN,
                        phi_deg: f64::NAN,
                    };
                }
                let qm = px.iter().map(|&i| q[i as usize]).sum::<f64>() / px.len() as f64;
                let (s, c) = px.iter().fold((0.0, 0.0), |(s, c), &i| {
                    let a = maps.phi_deg[i as usize].to_radians();
                    (s + a.sin(), c + a.cos())
                });
                BinAxis {
                    q_inv_angstrom: qm,
                    phi_deg: s.atan2(c).to_degrees(),
                }
            })
            .collect()
    };
    let (da, sa) = (axes(&dyn_map), axes(&st_map));
    QPartition::new(mask.to_vec(), dyn_map, st_map, origin)?.with_axes(da, sa)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom() -> Geometry {
        Geometry {
            rows: 101,
            cols: 81,
            pixel_size_um: 75.0,
            distance_m: 5.0,
            two_theta_c_rad: 15.54f64.to_radians(),
            arm_azimuth_rad: 90f64.to_radians(),
            wavelength_angstrom: 0.5918,
            horizontal_polarisation: 1.0,
        }
    }

    /// Closed forms at chosen pixels: centre → 2θ_c; along rows 2θ = 2θ_c + atan(n p / L);
    /// along columns cos 2θ = cos 2θ_c · L / sqrt(L² + (m p)²).
    #[test]
    fn q_map_closed_forms() {
        let g = geom();
        let (tt, phi, q, om, pol, _) = g.pixel(50, 40);
        assert!((tt - g.two_theta_c_rad).abs() < 1e-12);
        assert!((phi - 90.0).abs() < 1e-9);
        let q_c = 4.0 * std::f64::consts::PI * (g.two_theta_c_rad / 2.0).sin() / 0.5918;
        assert!((q - q_c).abs() < 1e-12);
        assert!((om - (75e-6f64 / 5.0).powi(2)).abs() < 1e-20);
        // Vertical scattering with horizontal polarisation: no polarisation loss at φ = 90°.
        assert!((pol - 1.0).abs() < 1e-12);
        for n in [-50i32, -7, 1, 33, 50] {
            let (tt, ..) = g.pixel((50 + n) as usize, 40);
            let want = g.two_theta_c_rad + (n as f64 * 75e-6 / 5.0).atan();
            assert!((tt - want).abs() < 1e-12, "{n}");
        }
        for m in [-40i32, -3, 12, 40] {
            let (tt, _, q, om, ..) = g.pixel(50, (40 + m) as usize);
            let mp = m as f64 * 75e-6;
            let r = (25.0 + mp * mp).sqrt();
            let want = (g.two_theta_c_rad.cos() * 5.0 / r).acos();
            assert!((tt - want).abs() < 1e-12, "{m}");
            assert!((q - 4.0 * std::f64::consts::PI * (want / 2.0).sin() / 0.5918).abs() < 1e-12);
            assert!((om - 75e-6f64.powi(2) * 5.0 / r.powi(3)).abs() < 1e-22);
        }
        // FSDP shift: 4.91e-3 Å⁻¹/GPa ≈ 31 Eiger pixels per GPa at 5 m (docs/model.md §2).
        let dtt = 2.0 * ((2.87 + 4.91e-3) * 0.5918 / (4.0 * std::f64::consts::PI)).asin()
            - 2.0 * (2.87 * 0.5918 / (4.0 * std::f64::consts::PI)).asin();
        let px = (5.0 * dtt.tan()) / 75e-6;
        assert!((px - 31.0).abs() < 1.5, "{px}");
    }

    /// A cropped map holds, pixel for pixel, the full map's values at the shifted indices
    /// (checked against `pixel`, the closed form); rectangles outside the maps are errors.
    #[test]
    fn crop_equals_pixel_closed_form() {
        let g = geom();
        let full = g.maps();
        let c = full.crop(7, 11, 5, 9).unwrap();
        assert_eq!((c.rows, c.cols, c.q_inv_angstrom.len()), (5, 9, 45));
        for r in 0..5 {
            for col in 0..9 {
                let (tt, phi, q, om, pol, dir) = g.pixel(7 + r, 11 + col);
                let p = r * 9 + col;
                assert_eq!(
                    (c.two_theta_rad[p], c.phi_deg[p], c.q_inv_angstrom[p]),
                    (tt, phi, q)
                );
                assert_eq!(
                    (c.solid_angle_sr[p], c.polarisation[p], c.direction[p]),
                    (om, pol, dir)
                );
            }
        }
        assert!(full.crop(full.rows - 2, 0, 3, 1).is_err());
        assert!(full.crop(0, 0, 0, 1).is_err());
    }

    #[test]
    fn behind_sample_and_opening() {
        let mut g = geom();
        g.two_theta_c_rad = 95f64.to_radians();
        let s = g
            .validate("geo.toml", "dac.toml", 170f64.to_radians())
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("geo.toml") && s.contains("two_theta_deg") && s.contains("90"),
            "{s}"
        );
        let mut g = geom();
        g.two_theta_c_rad = 40f64.to_radians();
        let s = g
            .validate("geo.toml", "dac.toml", 70f64.to_radians())
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("opening_angle_deg") && s.contains("dac.toml"),
            "{s}"
        );
        assert!(geom().validate("g", "d", 70f64.to_radians()).is_ok());
    }

    #[test]
    fn partitions() {
        let g = geom();
        let m = g.maps();
        let mut mask = vec![true; m.rows * m.cols];
        mask[0] = false;
        let spec = PartitionSpec {
            bands: QBands::EqualPixels(5),
            sectors: 2,
            static_per_dynamic: 3,
        };
        let p = partition(&m, &mask, &spec).unwrap();
        assert_eq!(p.n_bins(), 10);
        assert_eq!(p.static_map().n_bins(), 30);
        assert_eq!(p.dynamic().labels()[0], 0);
        assert_eq!(p.dynamic().n_labelled(), mask.len() - 1);
        let sizes = p.dynamic().bin_sizes();
        let per_band: Vec<usize> = sizes.chunks(2).map(|c| c[0] + c[1]).collect();
        let mean = (mask.len() - 1) as f64 / 5.0;
        assert!(
            per_band
                .iter()
                .all(|&s| (s as f64 - mean).abs() < 0.02 * mean),
            "{per_band:?}"
        );
        // Bin centres increase with band; every pixel's q lies inside its band's edges.
        let ax = p.dynamic_axes();
        assert!(ax[0].q_inv_angstrom < ax[2].q_inv_angstrom);
        // Static bins nest inside dynamic bins.
        for (d, s) in p.dynamic().labels().iter().zip(p.static_map().labels()) {
            if *d > 0 {
                let band_d = (*d - 1) / 2;
                let band_s = (*s - 1) / 2 / 3;
                assert_eq!(band_d, band_s);
            }
        }
        let e = partition(
            &m,
            &mask,
            &PartitionSpec {
                bands: QBands::Edges(vec![2.9, 2.8]),
                sectors: 1,
                static_per_dynamic: 1,
            },
        );
        assert!(e.is_err());
        let w: Vec<f64> = m.q_inv_angstrom.iter().map(|q| q * q).collect();
        let pc = partition(
            &m,
            &mask,
            &PartitionSpec {
                bands: QBands::EqualCounts(4, w.clone()),
                sectors: 1,
                static_per_dynamic: 1,
            },
        )
        .unwrap();
        let sums: Vec<f64> = (1..=pc.n_bins())
            .map(|b| pc.dynamic().pixels(b).iter().map(|&i| w[i as usize]).sum())
            .collect();
        let tot: f64 = sums.iter().sum();
        assert!(
            sums.iter().all(|s| (s / tot - 0.25).abs() < 0.01),
            "{sums:?}"
        );
    }
}
