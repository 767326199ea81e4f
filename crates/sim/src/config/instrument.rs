//! File-shaped instrument configuration: beam, diamond anvil cell (with the sample it holds),
//! detector, geometry, FSDP profile and the counting chain.
//!
//! These structs mirror `models/beams/*.toml`, `models/dacs/*.toml` and
//! `models/detectors/*.toml` (`deny_unknown_fields`, units in field names). They are validated
//! once into the runtime types of [`crate::instrument`] (`Beam::new`, `Dac::new`,
//! `Detector::new`, ...), which report errors naming the file, the key and the allowed range.
//!
//! Presets are compiled into the binary ([`preset_text`]) so that `--detector eiger2-cdte-4m`
//! works from any directory; a value containing `/` or ending in `.toml` is read as a file.

use crate::config::{load_toml, parse_toml};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use xpcs_core::error::{Error, Result};

/// Transverse beam profile on the sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BeamProfile {
    /// Gaussian with the given FWHM (focused beam).
    #[default]
    Gaussian,
    /// Uniform over the given full width (beam cut by slits).
    TopHat,
}

/// `models/beams/*.toml`: the incident beam.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeamConfig {
    /// Free-text description (source of the numbers).
    #[serde(default)]
    pub description: String,
    /// Photon energy (keV); the attenuation tables cover 10–100 keV.
    pub energy_kev: f64,
    /// Photon flux on the sample (photons/s), > 0. Give either this or `focus_flux_ph_s`.
    #[serde(default)]
    pub flux_ph_s: Option<f64>,
    /// Photon flux in the focus before the slits (photons/s), > 0: the flux on the sample is
    /// derived as T_slit × this (needs `focus_fwhm_um` and `slit_um`).
    #[serde(default)]
    pub focus_flux_ph_s: Option<f64>,
    /// Gaussian focus before the slits, [horizontal, vertical] FWHM (µm).
    #[serde(default)]
    pub focus_fwhm_um: Option<[f64; 2]>,
    /// Full slit apertures, [horizontal, vertical] (µm), centred on the focus.
    #[serde(default)]
    pub slit_um: Option<[f64; 2]>,
    /// Where the flux number comes from (free text, printed by `describe` and `plan`).
    #[serde(default)]
    pub flux_basis: String,
    /// Beam size on the sample, [horizontal, vertical] (µm): FWHM for `gaussian`, full width
    /// for `top_hat`.
    pub size_um: [f64; 2],
    /// Transverse profile (default `gaussian`).
    #[serde(default)]
    pub profile: BeamProfile,
    /// Relative bandwidth Δλ/λ (default 1.33e-4, Si(111)).
    #[serde(default = "default_bandwidth")]
    pub bandwidth_rel: f64,
}

fn default_bandwidth() -> f64 {
    1.33e-4
}

/// Sample inside the cell: thickness and composition for attenuation and scattering strength.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Name of the glass.
    #[serde(default)]
    pub name: String,
    /// Thickness along the beam (µm), > 0.
    pub thickness_um: f64,
    /// Lateral size of the sample piece (µm), > 0; the beam must fit inside it.
    pub lateral_size_um: f64,
    /// Atomic fractions by element symbol (normalised on load).
    pub composition: BTreeMap<String, f64>,
    /// Density (g/cm³).
    pub density_g_cm3: f64,
    /// Coherent differential cross section per atom at the FSDP peak, in electrons²
    /// (⟨f⟩² S(q1) in Faber–Ziman terms). Sets the absolute count rate.
    pub peak_cross_section_e2_per_atom: f64,
}

/// Kossel lines and anvil-reflection spots: a static transmission/intensity map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KosselConfig {
    /// Seed of the cell orientation (which lines and spots fall on the detector).
    #[serde(default)]
    pub seed: u64,
    /// Number of Kossel lines crossing the detector (default 0).
    #[serde(default)]
    pub n_lines: usize,
    /// Depth range of the lines, [min, max] fractions of intensity removed at the line centre
    /// (default [0.1, 0.6]).
    #[serde(default = "default_kossel_depth")]
    pub depth: [f64; 2],
    /// Angular Gaussian sigma of a line (mrad, default 0.02).
    #[serde(default = "default_kossel_width")]
    pub width_mrad: f64,
    /// Number of bright anvil-reflection spots on the detector (default 0).
    #[serde(default)]
    pub n_spots: usize,
    /// Peak count rate of a spot (photons/s/pixel), fixed whatever the flux. Give at most one
    /// of this and `spot_peak_fraction`; neither means `spot_peak_fraction` =
    /// [`DEFAULT_SPOT_PEAK_FRACTION`].
    #[serde(default)]
    pub spot_peak_rate_hz: Option<f64>,
    /// Peak count rate of a spot per unit flux on the sample ((photons/s/pixel) per
    /// (photons/s)): the spots are anvil reflections of the beam, so they scale with it.
    #[serde(default)]
    pub spot_peak_fraction: Option<f64>,
    /// Gaussian sigma of a spot (pixels, default 2).
    #[serde(default = "default_spot_sigma")]
    pub spot_sigma_px: f64,
}

fn default_kossel_depth() -> [f64; 2] {
    [0.1, 0.6]
}
fn default_kossel_width() -> f64 {
    0.02
}
/// Default spot peak per unit flux: 50 photons/s/pixel at 4.2e11 photons/s on the sample.
pub const DEFAULT_SPOT_PEAK_FRACTION: f64 = 50.0 / 4.2e11;
fn default_spot_sigma() -> f64 {
    2.0
}

impl Default for KosselConfig {
    fn default() -> Self {
        KosselConfig {
            seed: 0,
            n_lines: 0,
            depth: default_kossel_depth(),
            width_mrad: default_kossel_width(),
            n_spots: 0,
            spot_peak_rate_hz: None,
            spot_peak_fraction: None,
            spot_sigma_px: default_spot_sigma(),
        }
    }
}

/// `models/dacs/*.toml`: the diamond anvil cell and the sample it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DacConfig {
    /// Free-text description.
    #[serde(default)]
    pub description: String,
    /// Thickness of each of the two anvils along the beam (mm), > 0.
    pub anvil_thickness_mm: f64,
    /// Culet diameter (µm).
    pub culet_um: f64,
    /// Gasket hole (sample chamber) diameter (µm); the beam must fit inside.
    pub chamber_diameter_um: f64,
    /// Gasket hole height (µm); must hold the sample.
    pub chamber_height_um: f64,
    /// Full opening angle of the cell seat on the downstream side (degrees, default 70):
    /// every pixel must see the sample through it.
    #[serde(default = "default_opening")]
    pub opening_angle_deg: f64,
    /// Count Rayleigh scattering in the anvils as a loss (default true → 0.71 through
    /// 2 × 1.2 mm at 21 keV; false → 0.75, the perfect-crystal limit).
    #[serde(default = "default_true")]
    pub rayleigh_is_loss: bool,
    /// Pressure-transmitting medium (description only).
    #[serde(default)]
    pub medium: String,
    /// Fraction of the mean detected intensity that is incoherent (Compton/TDS from anvils and
    /// medium): dilutes the contrast as (1 - x)². A number in 0..0.99, or `"computed"`: from
    /// the cell geometry at the detector centre's 2θ ([`crate::instrument::background`]).
    /// Default 0.
    #[serde(default)]
    pub incoherent_fraction: IncoherentFraction,
    /// Fraction of the mean detected intensity that is a static speckled field (gasket tails,
    /// solid medium). Default 0.
    #[serde(default)]
    pub static_fraction: f64,
    /// The sample.
    pub sample: SampleConfig,
    /// Kossel lines and spots (default none).
    #[serde(default)]
    pub kossel: KosselConfig,
    /// How the cell changes with pressure (default: not at all).
    #[serde(default)]
    pub compression: Option<CompressionConfig>,
}

/// `[compression]` of a DAC file: the sample's Murnaghan equation of state and the gasket's
/// thinning. Under hydrostatic pressure the glass densifies as
/// ρ/ρ₀ = (1 + B′P/B₀)^(1/B′), its thickness along the beam shrinks as (ρ₀/ρ)^(1/3) (so the
/// atoms per unit beam area grow as (ρ/ρ₀)^(2/3)), and the chamber height falls linearly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompressionConfig {
    /// Bulk modulus B₀ of the glass at 0 GPa (GPa), 1..1000.
    pub bulk_modulus_gpa: f64,
    /// Its pressure derivative B′ (dimensionless), 0..20 (0: constant B).
    pub bulk_modulus_derivative: f64,
    /// Change of the chamber height with pressure (µm/GPa, ≤ 0: the gasket thins).
    #[serde(default)]
    pub chamber_height_per_gpa_um: f64,
}

/// The cell's incoherent fraction: a fixed number or computed from the cell geometry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IncoherentFraction {
    /// This fraction of the mean detected intensity (a number in the file).
    Fixed(f64),
    /// Computed from the cell geometry (`"computed"` in the file).
    Computed,
}

impl Default for IncoherentFraction {
    fn default() -> Self {
        IncoherentFraction::Fixed(0.0)
    }
}

impl Serialize for IncoherentFraction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            IncoherentFraction::Fixed(x) => s.serialize_f64(*x),
            IncoherentFraction::Computed => s.serialize_str("computed"),
        }
    }
}

impl<'de> Deserialize<'de> for IncoherentFraction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = IncoherentFraction;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number in 0..0.99 or the string \"computed\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
                Ok(IncoherentFraction::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
                Ok(IncoherentFraction::Fixed(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
                Ok(IncoherentFraction::Fixed(v as f64))
            }
            fn visit_str<E: serde::de::Error>(
                self,
                v: &str,
            ) -> std::result::Result<Self::Value, E> {
                if v == "computed" {
                    Ok(IncoherentFraction::Computed)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

fn default_opening() -> f64 {
    70.0
}
fn default_true() -> bool {
    true
}

/// Counter depth of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BitDepth {
    /// 8-bit counter: counts wrap at 256.
    #[serde(rename = "8")]
    Bits8,
    /// 16-bit counter: counts wrap at 65536.
    #[serde(rename = "16")]
    Bits16,
    /// 32-bit counter.
    #[serde(rename = "32")]
    Bits32,
}

/// `models/detectors/*.toml`: a photon-counting pixel detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Free-text description.
    #[serde(default)]
    pub description: String,
    /// Image rows (slow axis).
    pub rows: usize,
    /// Image columns (fast axis).
    pub cols: usize,
    /// Pixel pitch (µm).
    pub pixel_size_um: f64,
    /// Sensor material: `CdTe` or `Si`.
    pub sensor_material: String,
    /// Sensor thickness (µm).
    pub sensor_thickness_um: f64,
    /// Module shape [rows, cols] in pixels (default: the whole image is one module).
    #[serde(default)]
    pub module_shape_px: Option<[usize; 2]>,
    /// Gap between modules [rows, cols] in pixels (default [0, 0]).
    #[serde(default)]
    pub module_gap_px: [usize; 2],
    /// Chip shape inside a module [rows, cols] in pixels (default: no chip gaps).
    #[serde(default)]
    pub chip_shape_px: Option<[usize; 2]>,
    /// Masked gap between chips [rows, cols] in pixels (default [0, 0]).
    #[serde(default)]
    pub chip_gap_px: [usize; 2],
    /// Counter depth (default "16").
    #[serde(default = "default_bits")]
    pub bit_depth: BitDepth,
    /// Non-paralysable dead time of a pixel counter (ns, default 0 = none).
    #[serde(default)]
    pub dead_time_ns: f64,
    /// Probability that a photon is also counted in one of its 4 neighbours (default 0).
    #[serde(default)]
    pub charge_sharing_prob: f64,
    /// Relative rms spread of the per-pixel counting efficiency (default 0).
    #[serde(default)]
    pub gain_sigma: f64,
    /// Fraction of dead pixels (default 0).
    #[serde(default)]
    pub dead_pixel_fraction: f64,
    /// Fraction of hot pixels (default 0).
    #[serde(default)]
    pub hot_pixel_fraction: f64,
    /// Count rate of a hot pixel (counts/s, default 1000).
    #[serde(default = "default_hot_rate")]
    pub hot_pixel_rate_hz: f64,
    /// Seed of the bad-pixel and gain maps (a property of the detector, fixed per unit).
    #[serde(default)]
    pub defect_seed: u64,
}

fn default_bits() -> BitDepth {
    BitDepth::Bits16
}
fn default_hot_rate() -> f64 {
    1000.0
}

/// Where the detector sits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeometryConfig {
    /// Sample–detector distance along the detector normal (m).
    pub distance_m: f64,
    /// Scattering angle of the detector centre (degrees). Ignored when `follow_q1` is true.
    #[serde(default)]
    pub two_theta_deg: Option<f64>,
    /// Put the detector centre on the FSDP q1(P) at each pressure, as at the beamline.
    #[serde(default)]
    pub follow_q1: bool,
    /// Azimuth of the detector arm around the beam (degrees; 0 = horizontal, 90 = vertical
    /// up). Default 90.
    #[serde(default = "default_arm")]
    pub arm_azimuth_deg: f64,
    /// Linear polarisation of the beam in the horizontal plane (0..1, default 1: undulator).
    #[serde(default = "default_pol")]
    pub horizontal_polarisation: f64,
}

fn default_arm() -> f64 {
    90.0
}
fn default_pol() -> f64 {
    1.0
}

/// First sharp diffraction peak: S(q) = base + (peak - base) exp(-4 ln2 (q - q1(P))²/fwhm²),
/// q1(P) = q1(0) + dq1/dP · P.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsdpConfig {
    /// Peak position at 0 GPa (Å⁻¹).
    pub q1_inv_angstrom: f64,
    /// Linear shift with pressure (Å⁻¹/GPa, default 4.91e-3 from the Pt seed).
    #[serde(default = "default_dq1")]
    pub dq1_dp_inv_angstrom_per_gpa: f64,
    /// Full width at half maximum of the peak above the base (Å⁻¹).
    pub fwhm_inv_angstrom: f64,
    /// S(q1), the peak height.
    pub peak: f64,
    /// S far from the peak (the base under it).
    pub base: f64,
}

fn default_dq1() -> f64 {
    4.91e-3
}

/// Which counting-chain steps run (each defaults to on; off = ideal detector for that step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountingConfig {
    /// Charge sharing (neighbour double counts).
    #[serde(default = "default_true")]
    pub charge_sharing: bool,
    /// Non-paralysable dead time.
    #[serde(default = "default_true")]
    pub dead_time: bool,
    /// Per-pixel efficiency (gain).
    #[serde(default = "default_true")]
    pub gain: bool,
    /// Hot and dead pixels.
    #[serde(default = "default_true")]
    pub bad_pixels: bool,
    /// Counter rollover at the bit depth.
    #[serde(default = "default_true")]
    pub rollover: bool,
    /// Zero the masked pixels (module/chip gaps, dead pixels).
    #[serde(default = "default_true")]
    pub mask: bool,
}

impl Default for CountingConfig {
    fn default() -> Self {
        CountingConfig {
            charge_sharing: true,
            dead_time: true,
            gain: true,
            bad_pixels: true,
            rollover: true,
            mask: true,
        }
    }
}

/// The built-in presets: (kind, name, TOML text).
const PRESETS: &[(&str, &str, &str)] = &[
    (
        "beams",
        "ebs-id10-20p95kev",
        include_str!("../../../../models/beams/ebs-id10-20p95kev.toml"),
    ),
    (
        "beams",
        "ebs-id10-20p95kev-slits",
        include_str!("../../../../models/beams/ebs-id10-20p95kev-slits.toml"),
    ),
    (
        "beams",
        "ebs-id10-21p67kev-focus",
        include_str!("../../../../models/beams/ebs-id10-21p67kev-focus.toml"),
    ),
    (
        "beams",
        "id10-21kev",
        include_str!("../../../../models/beams/id10-21kev.toml"),
    ),
    (
        "beams",
        "id10-21kev-brilliance",
        include_str!("../../../../models/beams/id10-21kev-brilliance.toml"),
    ),
    (
        "detectors",
        "eiger2-cdte-4m",
        include_str!("../../../../models/detectors/eiger2-cdte-4m.toml"),
    ),
    (
        "detectors",
        "maxipix-2x2",
        include_str!("../../../../models/detectors/maxipix-2x2.toml"),
    ),
    (
        "detectors",
        "maxipix-2x2-cdte",
        include_str!("../../../../models/detectors/maxipix-2x2-cdte.toml"),
    ),
    (
        "dacs",
        "pt-dac",
        include_str!("../../../../models/dacs/pt-dac.toml"),
    ),
    (
        "dacs",
        "ce-dac",
        include_str!("../../../../models/dacs/ce-dac.toml"),
    ),
];

/// Names of the built-in presets of one kind (`beams`, `detectors`, `dacs`).
pub fn preset_names(kind: &str) -> Vec<&'static str> {
    PRESETS
        .iter()
        .filter(|p| p.0 == kind)
        .map(|p| p.1)
        .collect()
}

/// The TOML text of a built-in preset.
pub fn preset_text(kind: &str, name: &str) -> Option<&'static str> {
    PRESETS
        .iter()
        .find(|p| p.0 == kind && p.1 == name)
        .map(|p| p.2)
}

/// Loads a preset by name (`eiger2-cdte-4m`) or a TOML file by path (contains `/` or ends in
/// `.toml`). Returns the parsed config and its origin (`models/detectors/eiger2-cdte-4m.toml`
/// or the path) for error messages.
pub fn load_preset<T: serde::de::DeserializeOwned>(
    kind: &str,
    name_or_path: &str,
) -> Result<(T, String)> {
    if name_or_path.contains('/') || name_or_path.ends_with(".toml") {
        let p = Path::new(name_or_path);
        return Ok((load_toml(p)?, p.display().to_string()));
    }
    let origin = format!("models/{kind}/{name_or_path}.toml");
    match preset_text(kind, name_or_path) {
        Some(text) => Ok((parse_toml(text, &origin)?, origin)),
        None => Err(Error::invalid(
            format!("--{}", kind.trim_end_matches('s')),
            format!(
                "unknown {} preset `{name_or_path}` (known: {}; or give a path to a .toml file)",
                kind.trim_end_matches('s'),
                preset_names(kind).join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_presets_parse() {
        for (kind, name, _) in PRESETS {
            let r = match *kind {
                "beams" => load_preset::<BeamConfig>(kind, name).map(|_| ()),
                "detectors" => load_preset::<DetectorConfig>(kind, name).map(|_| ()),
                "dacs" => load_preset::<DacConfig>(kind, name).map(|_| ()),
                _ => unreachable!(),
            };
            r.unwrap_or_else(|e| panic!("{kind}/{name}: {e}"));
        }
    }

    #[test]
    fn unknown_preset_lists_known() {
        let e = load_preset::<DetectorConfig>("detectors", "pilatus").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("pilatus") && s.contains("eiger2-cdte-4m"), "{s}");
        let e = parse_toml::<BeamConfig>(
            "energy_kev = 21\nflux_ph_s = 1e11\nsize_um = [8, 8]\nfoo = 1",
            "b.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("foo"), "{e}");
    }

    #[test]
    fn incoherent_fraction_is_a_number_or_computed() {
        let (pt, o) = load_preset::<DacConfig>("dacs", "pt-dac").unwrap();
        assert_eq!(pt.incoherent_fraction, IncoherentFraction::Computed);
        let text = preset_text("dacs", "pt-dac").unwrap();
        let with = |v: &str| {
            text.replace(
                "incoherent_fraction = \"computed\"",
                &format!("incoherent_fraction = {v}"),
            )
        };
        let d: DacConfig = parse_toml(&with("0.25"), &o).unwrap();
        assert_eq!(d.incoherent_fraction, IncoherentFraction::Fixed(0.25));
        let d: DacConfig = parse_toml(&with("0"), &o).unwrap();
        assert_eq!(d.incoherent_fraction, IncoherentFraction::Fixed(0.0));
        let e = parse_toml::<DacConfig>(&with("\"auto\""), "cell.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cell.toml") && e.contains("auto") && e.contains("\"computed\""),
            "{e}"
        );
        // Round trip through TOML keeps the keyword.
        let back: DacConfig = toml::from_str(&toml::to_string(&pt).unwrap()).unwrap();
        assert_eq!(back.incoherent_fraction, IncoherentFraction::Computed);
    }
}
