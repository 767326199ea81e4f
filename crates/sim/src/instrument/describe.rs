//! A printable report of what the twin will do with an instrument: count rate per pixel,
//! contrast, speckle size in pixels, q range per bin and the expected data volume.
//!
//! Input: an [`Instrument`], a pressure, frame time, number of frames and a q-partition spec.
//! Output: [`Description`] (plain data + `Display`). τ per bin is not known here (it comes from
//! the dynamics model): `tau_s` per bin is left `None` for the caller to fill.

use crate::config::instrument::BitDepth;
use crate::instrument::background::Background;
use crate::instrument::coherence::Contrast;
use crate::instrument::dose::DoseRate;
use crate::instrument::geometry::{partition, PartitionSpec};
use crate::instrument::scene::Instrument;
use xpcs_core::error::Result;

/// One dynamic q-bin.
#[derive(Debug, Clone, PartialEq)]
pub struct BinDescription {
    /// Label (1-based).
    pub label: usize,
    /// Smallest q of its pixels (Å⁻¹).
    pub q_min: f64,
    /// Largest q of its pixels (Å⁻¹).
    pub q_max: f64,
    /// Mean q (Å⁻¹).
    pub q_centre: f64,
    /// Circular-mean φ (degrees).
    pub phi_deg: f64,
    /// Pixels.
    pub n_pixels: usize,
    /// Mean counts per pixel per frame.
    pub counts_per_frame: f64,
    /// Relaxation time (s), filled by the caller from the dynamics model.
    pub tau_s: Option<f64>,
}

/// What the twin will do.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Pressure (GPa).
    pub pressure_gpa: f64,
    /// Energy (keV) and wavelength (Å).
    pub energy_kev: f64,
    /// Wavelength (Å).
    pub wavelength_angstrom: f64,
    /// Flux on the sample (photons/s).
    pub flux_ph_s: f64,
    /// Where the flux comes from and what the other reading would give
    /// ([`crate::instrument::beam::Beam::flux_provenance`]).
    pub flux_provenance: String,
    /// Mean flux density on the illuminated spot (photons/s/µm²).
    pub flux_density_ph_s_um2: f64,
    /// Dose rate in the illuminated sample column (Gy/s).
    pub dose: DoseRate,
    /// Dose accumulated during the scan, beam on for n_frames × frame_time (Gy).
    pub scan_dose_gy: f64,
    /// Straight-through anvil transmission.
    pub dac_transmission: f64,
    /// Whether Rayleigh counts as a loss.
    pub rayleigh_is_loss: bool,
    /// Detector QE.
    pub quantum_efficiency: f64,
    /// Detector centre 2θ (degrees).
    pub two_theta_c_deg: f64,
    /// q1 at this pressure (Å⁻¹).
    pub q1_inv_angstrom: f64,
    /// Contrast factors and speckle size.
    pub contrast: Contrast,
    /// Contrast after the incoherent dilution c (1 − x_b)² (what g2 − 1 shows at short lag
    /// without static background).
    pub contrast_diluted: f64,
    /// Incoherent fraction the simulation uses (the cell's `incoherent_fraction`: its number,
    /// or the computed one).
    pub incoherent_fraction: f64,
    /// Whether the cell file asks for the computed fraction.
    pub background_computed: bool,
    /// The incoherent background computed from the cell geometry at the detector centre, or
    /// why it could not be computed.
    pub background: std::result::Result<Background, String>,
    /// The cell compressed at this pressure (`[compression]` of the DAC file): sample density
    /// ratio ρ/ρ₀, sample thickness (µm) and chamber height (µm); None when the file has none.
    pub compressed: Option<[f64; 3]>,
    /// Mean count rate per valid pixel (photons/s).
    pub mean_rate_hz: f64,
    /// Valid pixels.
    pub n_valid: usize,
    /// Frame time (s) and frames.
    pub frame_time_s: f64,
    /// Number of frames.
    pub n_frames: usize,
    /// Dense stack size (bytes) at the detector's bit depth.
    pub dense_bytes: f64,
    /// Expected sparse (event list) size (bytes): 8 per (pixel, frame) event + offsets.
    pub sparse_bytes: f64,
    /// Kossel lines and spots injected.
    pub n_kossel_lines: usize,
    /// Spots injected.
    pub n_spots: usize,
    /// Dynamic bins.
    pub bins: Vec<BinDescription>,
}

/// Builds the description. `mean_rate_hz` overrides the computed mean count rate per pixel
/// (photons/s), as a campaign's `[instrument] mean_rate_hz` does for the simulated scene.
pub fn describe(
    inst: &Instrument,
    pressure_gpa: f64,
    frame_time_s: f64,
    n_frames: usize,
    spec: &PartitionSpec,
    mean_rate_hz: Option<f64>,
) -> Result<Description> {
    let (scene, maps, k) = inst.scene(pressure_gpa, frame_time_s, mean_rate_hz)?;
    let part = partition(&maps, &scene.valid, spec)?;
    let n_valid = scene.valid.iter().filter(|&&v| v).count();
    let total: f64 = scene.mean_counts.iter().sum();
    let bins = (1..=part.n_bins())
        .map(|b| {
            let px = part.dynamic().pixels(b);
            let (mut lo, mut hi, mut c) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
            for &i in px {
                let q = maps.q_inv_angstrom[i as usize];
                lo = lo.min(q);
                hi = hi.max(q);
                c += scene.mean_counts[i as usize];
            }
            let ax = part.dynamic_axes()[b - 1];
            BinDescription {
                label: b,
                q_min: lo,
                q_max: hi,
                q_centre: ax.q_inv_angstrom,
                phi_deg: ax.phi_deg,
                n_pixels: px.len(),
                counts_per_frame: if px.is_empty() {
                    0.0
                } else {
                    c / px.len() as f64
                },
                tau_s: None,
            }
        })
        .collect();
    let bytes = match inst.detector.bit_depth {
        BitDepth::Bits8 => 1.0,
        BitDepth::Bits16 => 2.0,
        BitDepth::Bits32 => 4.0,
    };
    let n_px = (scene.rows * scene.cols) as f64;
    let events: f64 = scene
        .mean_counts
        .iter()
        .map(|&m| -(-m).exp_m1())
        .sum::<f64>()
        * n_frames as f64;
    let contrast = inst.contrast_at(pressure_gpa)?;
    let xb = scene.cell_incoherent_fraction;
    let dose = DoseRate::new(&inst.beam, &inst.dac);
    Ok(Description {
        pressure_gpa,
        energy_kev: inst.beam.energy_kev,
        wavelength_angstrom: inst.beam.wavelength_angstrom(),
        flux_ph_s: inst.beam.flux_ph_s,
        flux_provenance: inst.beam.flux_provenance(),
        flux_density_ph_s_um2: inst.beam.flux_ph_s / inst.beam.spot_area_um2(),
        dose,
        scan_dose_gy: dose.dose_gy(n_frames as f64 * frame_time_s),
        dac_transmission: inst.dac.transmission_straight(),
        rayleigh_is_loss: inst.dac.rayleigh_is_loss,
        quantum_efficiency: inst
            .detector
            .quantum_efficiency(inst.beam.energy_kev, &inst.beam.origin)?,
        two_theta_c_deg: scene.two_theta_c_rad.to_degrees(),
        q1_inv_angstrom: scene.q1_inv_angstrom,
        contrast,
        contrast_diluted: contrast.value() * (1.0 - xb).powi(2),
        incoherent_fraction: xb,
        background_computed: inst.dac.background_is_computed(),
        background: inst
            .dac
            .at_pressure(pressure_gpa)
            .and_then(|d| Background::new(&inst.beam, &d, scene.two_theta_c_rad))
            .map_err(|e| e.to_string()),
        compressed: match (&inst.dac.compression, inst.dac.at_pressure(pressure_gpa)) {
            (Some(_), Ok(d)) => Some([
                inst.dac.density_ratio(pressure_gpa),
                d.sample_thickness_cm * 1e4,
                d.chamber_height_cm * 1e4,
            ]),
            _ => None,
        },
        mean_rate_hz: total / n_valid.max(1) as f64 / frame_time_s,
        n_valid,
        frame_time_s,
        n_frames,
        dense_bytes: n_frames as f64 * n_px * bytes,
        sparse_bytes: events * 8.0 + (n_px + 1.0) * 8.0,
        n_kossel_lines: k.lines.len(),
        n_spots: k.spots.len(),
        bins,
    })
}

fn human_bytes(b: f64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut x = b;
    let mut i = 0;
    while x >= 1000.0 && i < units.len() - 1 {
        x /= 1000.0;
        i += 1;
    }
    format!("{x:.2} {}", units[i])
}

impl std::fmt::Display for Description {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "pressure            {:.2} GPa", self.pressure_gpa)?;
        writeln!(
            f,
            "beam                {:.3} keV (λ = {:.4} Å), {:.3e} ph/s on the sample \
             ({:.2e} ph/s/µm²)",
            self.energy_kev, self.wavelength_angstrom, self.flux_ph_s, self.flux_density_ph_s_um2
        )?;
        writeln!(f, "flux provenance     {}", self.flux_provenance)?;
        writeln!(
            f,
            "dose                {:.2e} Gy/s ({:.2e} W absorbed in {:.2e} kg, sample \
             transmission {:.3}); {:.2e} Gy in this scan ({} × {} s)",
            self.dose.gy_per_s,
            self.dose.absorbed_power_w,
            self.dose.column_mass_kg,
            self.dose.sample_transmission,
            self.scan_dose_gy,
            self.n_frames,
            self.frame_time_s
        )?;
        writeln!(
            f,
            "anvils              transmission {:.3} (Rayleigh {})",
            self.dac_transmission,
            if self.rayleigh_is_loss {
                "counted as loss"
            } else {
                "not counted as loss"
            }
        )?;
        writeln!(f, "detector QE         {:.3}", self.quantum_efficiency)?;
        writeln!(
            f,
            "geometry            2θ_c = {:.3}°, q1 = {:.4} Å⁻¹",
            self.two_theta_c_deg, self.q1_inv_angstrom
        )?;
        if let Some([r, t, h]) = self.compressed {
            writeln!(
                f,
                "compressed cell     ρ/ρ₀ = {r:.3} (Murnaghan), sample {t:.1} µm thick along \
                 the beam, chamber {h:.1} µm high"
            )?;
        }
        let c = &self.contrast;
        writeln!(
            f,
            "contrast            {:.4}{} (computed {:.4} = β_row {:.3} × β_col {:.3} × β_long {:.3}); \
             after incoherent dilution {:.4}",
            c.value(),
            if c.measured.is_some() { " (measured)" } else { "" },
            c.computed,
            c.beta_row,
            c.beta_col,
            c.beta_longitudinal,
            self.contrast_diluted
        )?;
        match &self.background {
            Ok(b) => {
                let xb = b.incoherent_fraction();
                if self.background_computed {
                    writeln!(
                        f,
                        "background          x_b = {:.3} computed from the cell at 2θ_c (B/G = {:.3}, \
                         x_s = {:.3}: x_b = B/G ÷ (1 + B/G) × (1 − x_s)); used",
                        xb,
                        b.ratio_sum(),
                        b.static_fraction,
                    )?;
                } else {
                    writeln!(
                        f,
                        "background          x_b = {:.3} used (the cell file's incoherent_fraction); \
                         computed from the cell {:.3} (B/G = {:.3} at 2θ_c, x_s = {:.3}) → \
                         contrast after dilution {:.4}",
                        self.incoherent_fraction,
                        xb,
                        b.ratio_sum(),
                        b.static_fraction,
                        c.value() * (1.0 - xb).powi(2)
                    )?;
                }
                // Each component as its ratio to the glass signal and as its share of the
                // detected total (glass + incoherent sum, scaled by 1 − x_s).
                let total = (1.0 + b.ratio_sum()) / (1.0 - b.static_fraction);
                writeln!(
                    f,
                    "  {:<28} {:>10} {:>14}",
                    "component", "÷ glass", "share of total"
                )?;
                writeln!(
                    f,
                    "  {:<28} {:>10.4} {:>14.4}",
                    "glass, coherent",
                    1.0,
                    1.0 / total
                )?;
                for k in &b.components {
                    writeln!(
                        f,
                        "  {:<28} {:>10.4} {:>14.4}",
                        k.name,
                        k.ratio,
                        k.ratio / total
                    )?;
                }
                writeln!(
                    f,
                    "  {:<28} {:>10} {:>14.4}",
                    "static (gasket, x_s)", "", b.static_fraction
                )?;
            }
            Err(e) => writeln!(
                f,
                "background          x_b = {:.3} used; not computed from the cell: {e}",
                self.incoherent_fraction
            )?,
        }
        writeln!(
            f,
            "speckle size        {:.2} px (rows) × {:.2} px (cols)",
            c.speckle_row_px, c.speckle_col_px
        )?;
        writeln!(
            f,
            "count rate          {:.3} ph/s/px mean over {} valid px ({:.4} per {:.3} s frame)",
            self.mean_rate_hz,
            self.n_valid,
            self.mean_rate_hz * self.frame_time_s,
            self.frame_time_s
        )?;
        writeln!(
            f,
            "Kossel lines/spots  {} / {}",
            self.n_kossel_lines, self.n_spots
        )?;
        writeln!(
            f,
            "data volume         {} frames: dense {}, sparse ≈ {}",
            self.n_frames,
            human_bytes(self.dense_bytes),
            human_bytes(self.sparse_bytes)
        )?;
        writeln!(
            f,
            "bin   q_min    q_max    q_mean   φ(°)     pixels   counts/px/frame  τ (s)"
        )?;
        for b in &self.bins {
            writeln!(
                f,
                "{:<5} {:.4}   {:.4}   {:.4}   {:<8.2} {:<8} {:<16.4} {}",
                b.label,
                b.q_min,
                b.q_max,
                b.q_centre,
                b.phi_deg,
                b.n_pixels,
                b.counts_per_frame,
                b.tau_s
                    .map(|t| format!("{t:.4}"))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrument::geometry::QBands;

    #[test]
    fn pt_description() {
        let inst = crate::instrument::scene::tests::pt_instrument(true);
        let spec = PartitionSpec {
            bands: QBands::Uniform(6),
            sectors: 1,
            static_per_dynamic: 4,
        };
        let d = describe(&inst, 3.3, 0.1, 10_000, &spec, None).unwrap();
        let text = d.to_string();
        eprintln!("{text}");
        assert_eq!(d.bins.len(), 6);
        assert!(d.bins.windows(2).all(|w| w[0].q_max <= w[1].q_min + 1e-9));
        assert_eq!(d.bins.iter().map(|b| b.n_pixels).sum::<usize>(), d.n_valid);
        assert!((d.dense_bytes - 10_000.0 * 2162.0 * 2068.0 * 2.0).abs() < 1.0);
        assert!(d.sparse_bytes < d.dense_bytes);
        assert!(text.contains("speckle size") && text.contains("data volume"));
        assert!((d.speckle_consistency() - 1.0).abs() < 1e-12);
    }

    impl Description {
        fn speckle_consistency(&self) -> f64 {
            // s = λL/d in pixels along columns (beam 8 µm, L = 5 m, p = 75 µm).
            self.contrast.speckle_col_px / (self.wavelength_angstrom * 1e-4 * 5e6 / 8.0 / 75.0)
        }
    }
}
