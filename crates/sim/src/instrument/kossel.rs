//! Kossel lines and anvil-reflection spots: injection into the mean intensity, and automatic
//! masking from a summed image.
//!
//! Injection — input: [`KosselConfig`], the pixel directions ([`QMaps`]), the wavelength and
//! the valid-pixel mask. Output: [`KosselMap`], a per-pixel transmission (dark lines, 0..1) and a
//! per-pixel additive static rate (bright spots, photons/s), row-major. A Kossel line is the
//! intersection of the cone of directions making 90° − θ_B with a diamond reciprocal-lattice
//! vector G (θ_B its Bragg angle at λ) with the detector: a conic. The cell orientation (seeded)
//! fixes which G; each line is forced to cross the detector by choosing G at 90° − θ_B from a
//! random valid pixel's direction. Profile: 1 − depth · exp(−δ²/2w²), δ the angular distance to
//! the cone.
//!
//! Masking — input: a summed image (counts, row-major), the q/φ maps and the valid mask.
//! Output: [`KosselMask`] (true = flagged) and a [`KosselReport`]. The image is divided into
//! static bins in q and φ about 32 pixels on a side; in each, the residual R = (S − median)/σ
//! with σ = max(1.4826 MAD, √median) (the Poisson floor stops a zero MAD from flagging noise),
//! median and MAD re-estimated 4 times without the pixels beyond 3σ (sigma clipping);
//! pixels with |R| > threshold (default 6) are flagged, grouped into 8-connected components and
//! classified: dark or long thin components are lines, compact bright ones spots. Lines are
//! dilated by 1 px and spots by 2 px to cover their wings.
//!
//! Reference: W. Kossel, Ann. Phys. 25, 512 (1936) for the cones; robust residual thresholding
//! as in standard XPCS masking practice (median/MAD per q ring).

use crate::config::instrument::KosselConfig;
use crate::instrument::geometry::QMaps;
use crate::rng;
use rand::RngExt;
use xpcs_core::error::{Error, Result};

/// Diamond lattice constant (Å).
const DIAMOND_A: f64 = 3.5668;
/// Allowed diamond reflections (h² + k² + l²): 111, 220, 311, 400, 331, 422, 333/511, 440.
const DIAMOND_HKL_SQ: [f64; 8] = [3.0, 8.0, 11.0, 16.0, 19.0, 24.0, 27.0, 32.0];

/// One injected Kossel line (ground truth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineTruth {
    /// Unit reciprocal-lattice vector.
    pub g_hat: [f64; 3],
    /// Cone half-angle (radians).
    pub cone_rad: f64,
    /// Depth at the centre (fraction removed).
    pub depth: f64,
}

/// One injected spot (ground truth).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpotTruth {
    /// Centre row, column (pixels).
    pub centre: [f64; 2],
}

/// Static Kossel/spot map.
#[derive(Debug, Clone, PartialEq)]
pub struct KosselMap {
    /// Multiplicative transmission (1 = no line).
    pub transmission: Vec<f64>,
    /// Additive static rate of the spots (photons/s/pixel).
    pub spot_rate_hz: Vec<f64>,
    /// The lines injected.
    pub lines: Vec<LineTruth>,
    /// The spots injected.
    pub spots: Vec<SpotTruth>,
}

fn dot(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Builds the Kossel/spot map of a cell orientation; `spot_peak_rate_hz` is the peak rate of
/// a spot (photons/s/pixel, resolved by [`crate::instrument::dac::Dac::new`] from the flux).
pub fn inject(
    cfg: &KosselConfig,
    spot_peak_rate_hz: f64,
    maps: &QMaps,
    wavelength_angstrom: f64,
    mask: &[bool],
) -> KosselMap {
    let n = maps.rows * maps.cols;
    let mut transmission = vec![1.0; n];
    let mut spot_rate_hz = vec![0.0; n];
    let valid: Vec<usize> = (0..n).filter(|&p| mask[p]).collect();
    let mut lines = Vec::new();
    let mut spots = Vec::new();
    if valid.is_empty() {
        return KosselMap {
            transmission,
            spot_rate_hz,
            lines,
            spots,
        };
    }
    let mut r = rng::stream(rng::subseed(cfg.seed, "kossel"), 0);
    let refl: Vec<f64> = DIAMOND_HKL_SQ
        .iter()
        .map(|s| DIAMOND_A / s.sqrt())
        .filter(|d| wavelength_angstrom / (2.0 * d) < 1.0)
        .collect();
    for _ in 0..cfg.n_lines {
        let p0 = valid[r.random_range(0..valid.len())];
        let u0 = maps.direction[p0];
        let d = refl[r.random_range(0..refl.len())];
        let theta_b = (wavelength_angstrom / (2.0 * d)).asin();
        let cone = std::f64::consts::FRAC_PI_2 - theta_b;
        // A random unit vector normal to u0.
        let a: [f64; 3] = if u0[0].abs() < 0.9 {
            [1.0, 0.0, 0.0]
        } else {
            [0.0, 1.0, 0.0]
        };
        let mut e1 = [
            a[0] - dot(&a, &u0) * u0[0],
            a[1] - dot(&a, &u0) * u0[1],
            a[2] - dot(&a, &u0) * u0[2],
        ];
        let l = dot(&e1, &e1).sqrt();
        e1 = [e1[0] / l, e1[1] / l, e1[2] / l];
        let e2 = [
            u0[1] * e1[2] - u0[2] * e1[1],
            u0[2] * e1[0] - u0[0] * e1[2],
            u0[0] * e1[1] - u0[1] * e1[0],
        ];
        let psi: f64 = r.random_range(0.0..std::f64::consts::TAU);
        let w = [
            psi.cos() * e1[0] + psi.sin() * e2[0],
            psi.cos() * e1[1] + psi.sin() * e2[1],
            psi.cos() * e1[2] + psi.sin() * e2[2],
        ];
        let g = [
            cone.cos() * u0[0] + cone.sin() * w[0],
            cone.cos() * u0[1] + cone.sin() * w[1],
            cone.cos() * u0[2] + cone.sin() * w[2],
        ];
        let depth = r.random_range(cfg.depth[0]..=cfg.depth[1]);
        let wid = cfg.width_mrad * 1e-3;
        for (t, dir) in transmission.iter_mut().zip(&maps.direction) {
            let delta = dot(dir, &g).clamp(-1.0, 1.0).acos() - cone;
            let x = delta / wid;
            if x.abs() < 8.0 {
                *t *= 1.0 - depth * (-0.5 * x * x).exp();
            }
        }
        lines.push(LineTruth {
            g_hat: g,
            cone_rad: cone,
            depth,
        });
    }
    for _ in 0..cfg.n_spots {
        let p0 = valid[r.random_range(0..valid.len())];
        let (r0, c0) = ((p0 / maps.cols) as f64, (p0 % maps.cols) as f64);
        let s = cfg.spot_sigma_px;
        let reach = (6.0 * s).ceil() as i64;
        for dr in -reach..=reach {
            for dc in -reach..=reach {
                let (rr, cc) = (r0 as i64 + dr, c0 as i64 + dc);
                if rr < 0 || cc < 0 || rr >= maps.rows as i64 || cc >= maps.cols as i64 {
                    continue;
                }
                let d2 = (dr * dr + dc * dc) as f64;
                spot_rate_hz[rr as usize * maps.cols + cc as usize] +=
                    spot_peak_rate_hz * (-0.5 * d2 / (s * s)).exp();
            }
        }
        spots.push(SpotTruth { centre: [r0, c0] });
    }
    KosselMap {
        transmission,
        spot_rate_hz,
        lines,
        spots,
    }
}

/// Options of [`find_mask`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MaskOptions {
    /// |R| threshold in robust sigmas (default 6).
    pub threshold_sigma: f64,
    /// Side of a static (q, φ) bin in pixels (default 32): bins are about square on the
    /// detector so that a line crossing at any angle, even along a ring, fills a minority of
    /// its bin.
    pub bin_px: usize,
    /// A component at least this long (pixels) and thin is a line (default 10).
    pub min_line_extent_px: usize,
    /// Components with fewer flagged pixels are isolated outliers, reported but not masked
    /// (default 4). A frozen speckle pattern in the summed image has an exponential intensity
    /// tail (one mode), so single pixels beyond 6 robust σ occur (≈ 0.7 % of pixels at
    /// contrast 0.02), but ≥ 4 connected ones have probability ≈ 76 p⁴ per pixel (≈ 2e-7);
    /// Kossel lines are long and anvil spots (σ ≥ 1 px) cover more pixels above threshold.
    pub min_feature_px: usize,
}

impl Default for MaskOptions {
    fn default() -> Self {
        MaskOptions {
            threshold_sigma: 6.0,
            bin_px: 32,
            min_line_extent_px: 10,
            min_feature_px: 4,
        }
    }
}

/// What a flagged component was taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureKind {
    /// A Kossel line (dark, or long and thin).
    Line,
    /// A bright compact spot.
    Spot,
}

/// One connected group of flagged pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Line or spot.
    pub kind: FeatureKind,
    /// Flagged pixels (before dilation).
    pub n_pixels: usize,
    /// Mean residual (robust sigmas; negative = dark).
    pub mean_residual: f64,
    /// Bounding box [row_min, row_max, col_min, col_max].
    pub bbox: [usize; 4],
}

/// What the automatic mask masked.
#[derive(Debug, Clone, PartialEq)]
pub struct KosselReport {
    /// Pixels flagged by the threshold (before dilation).
    pub n_flagged: usize,
    /// Pixels masked as lines (after dilation).
    pub n_line_pixels: usize,
    /// Pixels masked as spots (after dilation).
    pub n_spot_pixels: usize,
    /// Flagged pixels in components smaller than `min_feature_px` (not masked).
    pub n_isolated: usize,
    /// The components, largest first.
    pub features: Vec<Feature>,
}

impl std::fmt::Display for KosselReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nl = self
            .features
            .iter()
            .filter(|x| x.kind == FeatureKind::Line)
            .count();
        writeln!(
            f,
            "Kossel/spot mask: {} flagged px → {} line px ({nl} components), {} spot px ({} \
             components); {} isolated flagged px left unmasked",
            self.n_flagged,
            self.n_line_pixels,
            self.n_spot_pixels,
            self.features.len() - nl,
            self.n_isolated
        )?;
        for x in self.features.iter().take(20) {
            writeln!(
                f,
                "  {:?}: {} px, mean residual {:+.1} σ, rows {}..{}, cols {}..{}",
                x.kind, x.n_pixels, x.mean_residual, x.bbox[0], x.bbox[1], x.bbox[2], x.bbox[3]
            )?;
        }
        Ok(())
    }
}

/// The automatic mask: `flagged` (raw threshold), `masked` (after dilation; true = masked).
#[derive(Debug, Clone, PartialEq)]
pub struct KosselMask {
    /// Pixels over threshold.
    pub flagged: Vec<bool>,
    /// Pixels to mask (flagged, dilated).
    pub masked: Vec<bool>,
    /// Residual per pixel (robust sigmas; 0 outside the valid mask).
    pub residual: Vec<f64>,
    /// The report.
    pub report: KosselReport,
}

fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    let (_, m, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *m;
    if n % 2 == 1 {
        hi
    } else {
        let lo = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lo + hi)
    }
}

/// Finds Kossel lines and spots in a summed image (see the module docs).
pub fn find_mask(
    sum: &[f64],
    maps: &QMaps,
    valid: &[bool],
    opt: &MaskOptions,
) -> Result<KosselMask> {
    let (rows, cols) = (maps.rows, maps.cols);
    let n = rows * cols;
    if sum.len() != n || valid.len() != n {
        return Err(Error::ShapeMismatch {
            origin: "Kossel mask".into(),
            what: "summed image / valid mask vs q-map".into(),
            expected: vec![n],
            got: vec![sum.len(), valid.len()],
        });
    }
    if opt.bin_px == 0 || opt.threshold_sigma.is_nan() || opt.threshold_sigma <= 0.0 {
        return Err(Error::invalid(
            "Kossel mask",
            "bins must be ≥ 1 and the threshold > 0",
        ));
    }
    let q = &maps.q_inv_angstrom;
    let (mut qlo, mut qhi, mut plo, mut phi_hi) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for p in (0..n).filter(|&p| valid[p]) {
        qlo = qlo.min(q[p]);
        qhi = qhi.max(q[p]);
        plo = plo.min(maps.phi_deg[p]);
        phi_hi = phi_hi.max(maps.phi_deg[p]);
    }
    // Per-pixel steps of q and φ (the larger of the row and column neighbour differences,
    // median over the detector): sets bins of about `bin_px` pixels on a side.
    let mut dq = Vec::new();
    let mut dphi = Vec::new();
    for r in (0..rows.saturating_sub(1)).step_by(7) {
        for c in (0..cols.saturating_sub(1)).step_by(7) {
            let p = r * cols + c;
            dq.push((q[p + cols] - q[p]).abs().max((q[p + 1] - q[p]).abs()));
            let (a, b, d) = (maps.phi_deg[p], maps.phi_deg[p + cols], maps.phi_deg[p + 1]);
            dphi.push((b - a).abs().max((d - a).abs()).min(1.0));
        }
    }
    let step = |v: &mut Vec<f64>| {
        if v.is_empty() {
            1.0
        } else {
            median(v).max(1e-300)
        }
    };
    let (dq, dphi) = (step(&mut dq), step(&mut dphi));
    let n_q_bins = (((qhi - qlo) / (dq * opt.bin_px as f64)).round() as usize).clamp(1, 100_000);
    let n_phi_bins =
        (((phi_hi - plo) / (dphi * opt.bin_px as f64)).round() as usize).clamp(1, 100_000);
    let nb = n_q_bins * n_phi_bins;
    let bin_of = |p: usize| -> usize {
        let iq = (((q[p] - qlo) / (qhi - qlo).max(1e-300)) * n_q_bins as f64) as usize;
        let ip =
            (((maps.phi_deg[p] - plo) / (phi_hi - plo).max(1e-300)) * n_phi_bins as f64) as usize;
        iq.min(n_q_bins - 1) * n_phi_bins + ip.min(n_phi_bins - 1)
    };
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); nb];
    for p in (0..n).filter(|&p| valid[p]) {
        members[bin_of(p)].push(p);
    }
    // Robust statistics per bin, iterated: pixels beyond 3σ are left out of the next median
    // and MAD (sigma clipping), so a line filling a large part of its bin cannot hide itself.
    let mut residual = vec![0.0; n];
    let mut flagged = vec![false; n];
    let mut keep = vec![true; n];
    for _ in 0..4 {
        for m in members.iter().filter(|m| !m.is_empty()) {
            let mut v: Vec<f64> = m.iter().filter(|&&p| keep[p]).map(|&p| sum[p]).collect();
            if v.len() < 8 {
                v = m.iter().map(|&p| sum[p]).collect();
            }
            let med = median(&mut v);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
            let mad = median(&mut dev);
            let sigma = (1.4826 * mad).max(med.max(1.0).sqrt());
            for &p in m {
                residual[p] = (sum[p] - med) / sigma;
                flagged[p] = residual[p].abs() > opt.threshold_sigma;
                keep[p] = residual[p].abs() <= 3.0;
            }
        }
    }
    // 8-connected components.
    let mut comp = vec![usize::MAX; n];
    let mut features = Vec::new();
    let mut line_seed = vec![false; n];
    let mut spot_seed = vec![false; n];
    let mut n_isolated = 0;
    for start in 0..n {
        if !flagged[start] || comp[start] != usize::MAX {
            continue;
        }
        let id = start;
        let mut stack = vec![start];
        comp[start] = id;
        let mut px = Vec::new();
        while let Some(p) = stack.pop() {
            px.push(p);
            let (r, c) = ((p / cols) as i64, (p % cols) as i64);
            for dr in -1..=1 {
                for dc in -1..=1 {
                    let (rr, cc) = (r + dr, c + dc);
                    if rr < 0 || cc < 0 || rr >= rows as i64 || cc >= cols as i64 {
                        continue;
                    }
                    let qn = rr as usize * cols + cc as usize;
                    if flagged[qn] && comp[qn] == usize::MAX {
                        comp[qn] = id;
                        stack.push(qn);
                    }
                }
            }
        }
        if px.len() < opt.min_feature_px {
            n_isolated += px.len();
            continue;
        }
        let mut bbox = [usize::MAX, 0, usize::MAX, 0];
        for &p in &px {
            let (r, c) = (p / cols, p % cols);
            bbox = [
                bbox[0].min(r),
                bbox[1].max(r),
                bbox[2].min(c),
                bbox[3].max(c),
            ];
        }
        let mean_r = px.iter().map(|&p| residual[p]).sum::<f64>() / px.len() as f64;
        let extent = (bbox[1] - bbox[0]).max(bbox[3] - bbox[2]) + 1;
        let thin = px.len() as f64 <= 4.0 * extent as f64;
        let kind = if mean_r < 0.0 || (extent >= opt.min_line_extent_px && thin) {
            FeatureKind::Line
        } else {
            FeatureKind::Spot
        };
        for &p in &px {
            match kind {
                FeatureKind::Line => line_seed[p] = true,
                FeatureKind::Spot => spot_seed[p] = true,
            }
        }
        features.push(Feature {
            kind,
            n_pixels: px.len(),
            mean_residual: mean_r,
            bbox,
        });
    }
    let dilate = |seed: &[bool], radius: i64| -> Vec<bool> {
        let mut out = vec![false; n];
        for p in (0..n).filter(|&p| seed[p]) {
            let (r, c) = ((p / cols) as i64, (p % cols) as i64);
            for dr in -radius..=radius {
                for dc in -radius..=radius {
                    let (rr, cc) = (r + dr, c + dc);
                    if rr >= 0 && cc >= 0 && rr < rows as i64 && cc < cols as i64 {
                        out[rr as usize * cols + cc as usize] = true;
                    }
                }
            }
        }
        out
    };
    let lines = dilate(&line_seed, 1);
    let spots = dilate(&spot_seed, 2);
    let masked: Vec<bool> = (0..n).map(|p| valid[p] && (lines[p] || spots[p])).collect();
    features.sort_by_key(|f| std::cmp::Reverse(f.n_pixels));
    let report = KosselReport {
        n_flagged: flagged.iter().filter(|&&x| x).count(),
        n_line_pixels: (0..n).filter(|&p| valid[p] && lines[p]).count(),
        n_spot_pixels: (0..n)
            .filter(|&p| valid[p] && spots[p] && !lines[p])
            .count(),
        n_isolated,
        features,
    };
    Ok(KosselMask {
        flagged,
        masked,
        residual,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::geometry::Geometry;
    use rand_distr::{Distribution, Poisson};

    fn setup() -> (QMaps, Vec<f64>, Vec<bool>) {
        let g = Geometry {
            rows: 200,
            cols: 200,
            pixel_size_um: 75.0,
            distance_m: 5.0,
            two_theta_c_rad: 15.5f64.to_radians(),
            arm_azimuth_rad: 90f64.to_radians(),
            wavelength_angstrom: 0.5918,
            horizontal_polarisation: 1.0,
        };
        let maps = g.maps();
        // Smooth FSDP-like mean: 1000 counts at q1, Gaussian in q.
        let mean: Vec<f64> = maps
            .q_inv_angstrom
            .iter()
            .map(|q| 600.0 + 400.0 * (-((q - 2.87) / 0.1f64).powi(2)).exp())
            .collect();
        let valid = vec![true; 200 * 200];
        (maps, mean, valid)
    }

    fn draw(mean: &[f64], seed: u64) -> Vec<f64> {
        let mut r = rng::stream(seed, 0);
        mean.iter()
            .map(|&m| Poisson::new(m).unwrap().sample(&mut r))
            .collect()
    }

    /// Seeded: 3 lines 30–60 % deep and 2 spots on a 200 × 200 detector at ~1000 counts/px.
    /// Truth for recall: pixels whose expected count moves by > 8 σ_Poisson (missed with
    /// probability < 1e-4 each at the 6σ threshold); for precision, a flag is correct if its
    /// pixel moves by > 2 σ. Observed: recall and precision ≥ 0.95 asserted.
    #[test]
    fn finds_injected_lines_and_spots() {
        let (maps, mean, valid) = setup();
        let cfg = KosselConfig {
            seed: 3,
            n_lines: 3,
            depth: [0.3, 0.6],
            width_mrad: 0.03,
            n_spots: 2,
            spot_peak_rate_hz: Some(1500.0),
            spot_peak_fraction: None,
            spot_sigma_px: 1.5,
        };
        let k = inject(&cfg, 1500.0, &maps, 0.5918, &valid);
        assert_eq!(k.lines.len(), 3);
        let modded: Vec<f64> = (0..mean.len())
            .map(|p| mean[p] * k.transmission[p] + k.spot_rate_hz[p])
            .collect();
        let img = draw(&modded, 7);
        let m = find_mask(&img, &maps, &valid, &MaskOptions::default()).unwrap();
        let shift = |p: usize| (modded[p] - mean[p]).abs() / mean[p].sqrt();
        let strong: Vec<usize> = (0..mean.len()).filter(|&p| shift(p) > 8.0).collect();
        let found = strong.iter().filter(|&&p| m.flagged[p]).count();
        let recall = found as f64 / strong.len() as f64;
        let flagged: Vec<usize> = (0..mean.len()).filter(|&p| m.flagged[p]).collect();
        let precision =
            flagged.iter().filter(|&&p| shift(p) > 2.0).count() as f64 / flagged.len() as f64;
        eprintln!("Kossel mask: recall {recall:.3} on {} strong px, precision {precision:.3} on {} flagged\n{}", strong.len(), flagged.len(), m.report);
        assert!(strong.len() > 300);
        assert!(
            recall >= 0.95 && precision >= 0.95,
            "recall {recall} precision {precision}"
        );
        assert!(m.report.n_line_pixels > 0 && m.report.n_spot_pixels > 0);
        assert!(m
            .report
            .features
            .iter()
            .any(|f| f.kind == FeatureKind::Spot));
        // Every strong pixel is covered by the dilated mask.
        assert!(strong.iter().filter(|&&p| !m.masked[p]).count() <= strong.len() / 50);
    }

    /// A clean summed image with a frozen one-mode speckle pattern (contrast 0.02, exponential
    /// intensity tail; Poisson on top) masks nothing: single pixels beyond 6σ occur (~0.7 %),
    /// but a component of ≥ 4 has probability ≈ 76 p⁴ ≈ 2e-7 per pixel (8e-3 over the image).
    #[test]
    fn speckled_clean_image_masks_nothing() {
        let (maps, mean, valid) = setup();
        let c: f64 = 0.02;
        let mut r = rng::stream(11, 0);
        let speckled: Vec<f64> = mean
            .iter()
            .map(|&m| {
                let e: f64 = rand_distr::Exp1.sample(&mut r);
                m * (1.0 - c.sqrt() + c.sqrt() * e)
            })
            .collect();
        let img = draw(&speckled, 12);
        let m = find_mask(&img, &maps, &valid, &MaskOptions::default()).unwrap();
        eprintln!("{}", m.report);
        assert!(m.report.n_isolated > 0, "the test must see outliers");
        assert!(m.report.features.is_empty(), "{}", m.report);
        assert!(m.masked.iter().all(|&x| !x));
    }

    /// A clean image (Poisson around a smooth FSDP) is not masked at all: at 6σ the expected
    /// false positives over 40 000 px are ~1e-4.
    #[test]
    fn clean_image_masks_nothing() {
        let (maps, mean, valid) = setup();
        let img = draw(&mean, 9);
        let m = find_mask(&img, &maps, &valid, &MaskOptions::default()).unwrap();
        assert_eq!(m.report.n_flagged, 0, "{}", m.report);
        assert!(m.masked.iter().all(|&x| !x));
    }
}
