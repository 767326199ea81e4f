//! The incoherent background fraction x_b computed from the cell geometry.
//!
//! Every scatterer on the beam's path through the cell reaches the detector at 5 m alike (a
//! point 1.2 mm up the beam lands ~0.3 mm away), so the anvils, the pressure medium and the
//! glass's own inelastic scattering all add to what a pixel counts. Per unit solid angle a
//! layer contributes Φ r_e² P · n s ∫ T_in(z) T_out(z) dz, with n its atom density, s its
//! per-atom strength (electrons²) at the detector's x = sin θ / λ, T_in the attenuation of the
//! beam up to depth z and T_out that of the scattered ray (path ÷ cos 2θ through every layer it
//! crosses; it crosses the sample only where its lateral offset (z′ − z) tan 2θ is inside the
//! sample's half width). Ratios to the glass's coherent signal (n_s σ₁ ∫_sample T_in T_out dz)
//! remove Φ, r_e², P and the pixel solid angle.
//!
//! Components (docs/physics.md §2):
//! - anvils, Compton: K_KN(E, 2θ) S(x, Z = 6) per carbon atom, upstream and downstream;
//! - anvils, thermal diffuse: f_C² (1 − e^{−2 B x²}) (Einstein approximation, B = 0.15 Å²);
//! - medium (4:1 methanol/ethanol, 1.2 g/cm³), elastic Σ f² (independent atoms) and Compton;
//! - glass, Compton: K_KN Σ x_i S(x, Z_i).
//!
//! A perfect diamond scatters elastically only into Bragg reflections (the Kossel lines and
//! spots, modelled separately). Not modelled: the gasket's shadow on the rays from deep in the
//! upstream anvil, the medium's own attenuation (< 0.5 % over 40 µm), the gasket tails (static,
//! the preset's `static_fraction`) and fluorescence above the counting threshold (+0.105 of the
//! Pt glass signal at a threshold of E/2, none above 13.5 keV).
//!
//! Then x_b = (B/G)/(1 + B/G) · (1 − x_s), with B/G the sum of the ratios and x_s the static
//! fraction.
//!
//! Tables: f0(x) and S(x, Z) of Hubbell et al., J. Phys. Chem. Ref. Data 4, 471 (1975), at
//! x = 0.20, 0.22, 0.24, 0.26 Å⁻¹ (q = 2.5–3.3 Å⁻¹), interpolated linearly; anomalous terms are
//! below 1 % of f at these x for the light elements that enter through f².

use crate::instrument::beam::Beam;
use crate::instrument::dac::Dac;
use xpcs_core::error::{Error, Result};

/// x nodes of the tables (Å⁻¹).
const X_NODES: [f64; 4] = [0.20, 0.22, 0.24, 0.26];

/// (symbol, f0 at X_NODES (e), S(x, Z) at X_NODES).
// Tabulated values; two of them happen to lie near π and 2π.
#[allow(clippy::approx_constant)]
const TABLE: &[(&str, [f64; 4], [f64; 4])] = &[
    ("H", [0.48, 0.42, 0.37, 0.33], [0.769, 0.820, 0.861, 0.893]),
    ("C", [3.58, 3.31, 3.07, 2.86], [2.604, 2.859, 3.091, 3.298]),
    ("O", [5.62, 5.28, 4.96, 4.65], [2.799, 3.140, 3.461, 3.761]),
    ("Al", [9.16, 8.86, 8.59, 8.34], [4.047, 4.295, 4.535, 4.772]),
    ("P", [10.32, 9.89, 9.50, 9.16], [4.732, 5.109, 5.451, 5.763]),
    (
        "Cr",
        [18.25, 17.56, 16.88, 16.22],
        [5.577, 6.137, 6.682, 7.208],
    ),
    (
        "Fe",
        [20.03, 19.35, 18.67, 18.01],
        [5.781, 6.328, 6.870, 7.403],
    ),
    (
        "Co",
        [21.08, 20.38, 19.69, 19.02],
        [5.764, 6.318, 6.870, 7.414],
    ),
    (
        "Ni",
        [22.14, 21.42, 20.73, 20.04],
        [5.726, 6.283, 6.839, 7.389],
    ),
    (
        "Cu",
        [23.54, 22.80, 22.06, 21.32],
        [5.455, 6.055, 6.643, 7.215],
    ),
    (
        "Ce",
        [46.10, 44.79, 43.49, 42.24],
        [10.190, 11.168, 12.122, 13.056],
    ),
    (
        "Pt",
        [66.18, 64.55, 62.93, 61.35],
        [9.589, 10.618, 11.631, 12.625],
    ),
];

/// Diamond Debye–Waller B (Å²), room temperature (assumption, docs/physics.md §2.5).
pub const DIAMOND_DEBYE_WALLER_A2: f64 = 0.15;
/// Density of the 4:1 methanol/ethanol medium at a few GPa (g/cm³, assumption).
pub const MEDIUM_DENSITY_G_CM3: f64 = 1.2;
/// Atoms of 4:1 (volume) methanol/ethanol: C 26.6 : H 99.7 : O 23.2, with atomic weights
/// (g/mol, IUPAC).
const MEDIUM_ATOMS: [(&str, f64, f64); 3] =
    [("C", 26.6, 12.011), ("H", 99.7, 1.008), ("O", 23.2, 15.999)];
const AVOGADRO: f64 = 6.022_140_76e23;
const ELECTRON_REST_KEV: f64 = 510.998_95;
/// Midpoint cells per layer of the path integrals (the integrands are smooth exponentials
/// with one kink: error ≲ 1e-6 relative).
const CELLS: usize = 4000;

fn lerp(nodes: &[f64; 4], x: f64) -> f64 {
    let i = X_NODES
        .windows(2)
        .position(|w| x <= w[1])
        .unwrap_or(2)
        .min(2);
    let t = (x - X_NODES[i]) / (X_NODES[i + 1] - X_NODES[i]);
    nodes[i] + t * (nodes[i + 1] - nodes[i])
}

fn entry(symbol: &str, origin: &str) -> Result<&'static (&'static str, [f64; 4], [f64; 4])> {
    TABLE.iter().find(|e| e.0 == symbol).ok_or_else(|| {
        Error::invalid(
            origin,
            format!(
                "element `{symbol}` has no form-factor table for the background computation \
                 (known: {})",
                TABLE.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

/// Atomic form factor f0(x) (electrons), x = sin θ / λ in 0.20–0.26 Å⁻¹.
pub fn form_factor(symbol: &str, x: f64, origin: &str) -> Result<f64> {
    Ok(lerp(&entry(symbol, origin)?.1, x))
}

/// Incoherent scattering function S(x, Z) (electrons), x in 0.20–0.26 Å⁻¹.
pub fn incoherent_function(symbol: &str, x: f64, origin: &str) -> Result<f64> {
    Ok(lerp(&entry(symbol, origin)?.2, x))
}

/// Klein–Nishina correction to Thomson for Compton scattering at `energy_kev` and 2θ.
pub fn klein_nishina(energy_kev: f64, two_theta: f64) -> f64 {
    let c = two_theta.cos();
    let r = 1.0 / (1.0 + energy_kev / ELECTRON_REST_KEV * (1.0 - c));
    r * r * (r + 1.0 / r - (1.0 - c * c)) / (1.0 + c * c)
}

/// One background component as a ratio to the glass's coherent signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    /// What scatters.
    pub name: &'static str,
    /// Intensity ratio to the glass's coherent signal at the detector centre.
    pub ratio: f64,
}

/// The computed incoherent background of a cell at one scattering angle.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// Scattering angle (radians) and x = sin θ / λ (Å⁻¹) it was computed at.
    pub two_theta_rad: f64,
    /// x = sin θ / λ (Å⁻¹).
    pub x_inv_angstrom: f64,
    /// The components.
    pub components: Vec<Component>,
    /// Static fraction x_s used (the cell's `static_fraction`).
    pub static_fraction: f64,
}

impl Background {
    /// Sum of the ratios B/G.
    pub fn ratio_sum(&self) -> f64 {
        self.components.iter().map(|c| c.ratio).sum()
    }

    /// x_b = (B/G)/(1 + B/G) · (1 − x_s).
    pub fn incoherent_fraction(&self) -> f64 {
        let b = self.ratio_sum();
        b / (1.0 + b) * (1.0 - self.static_fraction)
    }

    /// The computation for `dac` under `beam` at scattering angle `two_theta` (radians).
    /// Errors (naming the DAC file) for a medium other than methanol/ethanol or an element
    /// without a form-factor table.
    pub fn new(beam: &Beam, dac: &Dac, two_theta: f64) -> Result<Self> {
        let o = dac.origin.as_str();
        if !dac.medium.contains("methanol") || !dac.medium.contains("ethanol") {
            return Err(Error::invalid(
                o,
                format!(
                    "medium `{}`: the background computation knows only methanol/ethanol",
                    dac.medium
                ),
            ));
        }
        let x = (two_theta / 2.0).sin() / beam.wavelength_angstrom();
        let kn = klein_nishina(beam.energy_kev, two_theta);
        let cos = two_theta.cos();
        let tan = two_theta.tan();
        let mu_d = dac.diamond_mu_inv_cm();
        let mu_s = dac.sample_attenuation.total_inv_cm();
        let (ta, ts) = (dac.anvil_thickness_cm, dac.sample_thickness_cm);
        let medium_each = ((dac.chamber_height_cm - ts) / 2.0).max(0.0);
        let half_width = dac.sample_lateral_size_cm / 2.0;
        // Path of the scattered ray inside the sample slab, from a point `d` (cm) before the
        // sample's front face on the axis: Δz ∈ [d, d + ts] with Δz tan 2θ ≤ half width.
        let sample_path = |d: f64| -> f64 {
            let hi = (d + ts).min(if tan > 0.0 {
                half_width / tan
            } else {
                f64::INFINITY
            });
            (hi - d.max(0.0)).max(0.0) / cos
        };
        let t_a_in = (-mu_d * ta).exp();
        let t_a_out = (-mu_d * ta / cos).exp();
        let t_s = (-mu_s * ts).exp();
        let integrate = |len: f64, f: &dyn Fn(f64) -> f64| -> f64 {
            let h = len / CELLS as f64;
            (0..CELLS).map(|i| f((i as f64 + 0.5) * h)).sum::<f64>() * h
        };
        // z measured from each layer's upstream face.
        let up_anvil = integrate(ta, &|z| {
            let d = ta - z + medium_each;
            (-mu_d * z).exp()
                * (-mu_d * (ta - z) / cos).exp()
                * (-mu_s * sample_path(d)).exp()
                * t_a_out
        });
        let up_medium = integrate(medium_each, &|z| {
            t_a_in * (-mu_s * sample_path(medium_each - z)).exp() * t_a_out
        });
        let glass = integrate(ts, &|z| {
            t_a_in * (-mu_s * z).exp() * (-mu_s * (ts - z) / cos).exp() * t_a_out
        });
        let down_medium = medium_each * t_a_in * t_s * t_a_out;
        let down_anvil = integrate(ta, &|z| {
            t_a_in * t_s * (-mu_d * z).exp() * (-mu_d * (ta - z) / cos).exp()
        });
        let medium_path = up_medium + down_medium;
        // Atom densities (cm⁻³).
        let n_glass = dac.sample.number_density_per_cm3();
        let n_diamond = crate::instrument::xcom::Material::diamond().number_density_per_cm3();
        let (mut m_weight, mut m_atoms) = (0.0, 0.0);
        let (mut m_f2, mut m_s) = (0.0, 0.0);
        for (sym, k, weight) in MEDIUM_ATOMS {
            m_weight += k * weight;
            m_atoms += k;
            m_f2 += k * form_factor(sym, x, o)?.powi(2);
            m_s += k * incoherent_function(sym, x, o)?;
        }
        let n_medium = MEDIUM_DENSITY_G_CM3 / (m_weight / m_atoms) * AVOGADRO;
        let (m_f2, m_s) = (m_f2 / m_atoms, m_s / m_atoms);
        let s_c = incoherent_function("C", x, o)?;
        let f_c = form_factor("C", x, o)?;
        let tds = f_c * f_c * -(-2.0 * DIAMOND_DEBYE_WALLER_A2 * x * x).exp_m1();
        let mut glass_s = 0.0;
        for (sym, frac) in &dac.sample.atoms {
            glass_s += frac * incoherent_function(sym, x, o)?;
        }
        let g = n_glass * dac.peak_cross_section_e2 * glass;
        let ratio = |n: f64, s: f64, path: f64| n * s * path / g;
        let components = vec![
            Component {
                name: "upstream anvil, Compton",
                ratio: ratio(n_diamond, kn * s_c, up_anvil),
            },
            Component {
                name: "downstream anvil, Compton",
                ratio: ratio(n_diamond, kn * s_c, down_anvil),
            },
            Component {
                name: "anvils, thermal diffuse",
                ratio: ratio(n_diamond, tds, up_anvil + down_anvil),
            },
            Component {
                name: "medium, elastic",
                ratio: ratio(n_medium, m_f2, medium_path),
            },
            Component {
                name: "medium, Compton",
                ratio: ratio(n_medium, kn * m_s, medium_path),
            },
            Component {
                name: "glass, Compton",
                ratio: ratio(n_glass, kn * glass_s, glass),
            },
        ];
        Ok(Background {
            two_theta_rad: two_theta,
            x_inv_angstrom: x,
            components,
            static_fraction: dac.static_fraction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::instrument::{load_preset, BeamConfig, DacConfig};

    fn cell(beam: &str, dac: &str) -> (Beam, Dac) {
        let (b, bo) = load_preset::<BeamConfig>("beams", beam).unwrap();
        let beam = Beam::new(&b, &bo).unwrap();
        let (d, o) = load_preset::<DacConfig>("dacs", dac).unwrap();
        let dac = Dac::new(&d, &o, &beam).unwrap();
        (beam, dac)
    }

    #[test]
    fn pt_components_match_the_hand_computation() {
        // docs/physics.md §2.2 (3.3 GPa, 2θ = 15.62°): ratios 0.471, 0.112, 0.032, 0.0056,
        // 0.0015, 0.0020, sum 0.624, x_b = 0.377. The hand numbers carry 2–3 digits and used
        // the same tables; tolerance 4 % on each large term, 15 % on the small ones.
        let (beam, dac) = cell("ebs-id10-20p95kev", "pt-dac");
        let bg = Background::new(&beam, &dac, 15.62f64.to_radians()).unwrap();
        assert!(
            (bg.x_inv_angstrom - 0.2297).abs() < 2e-4,
            "{}",
            bg.x_inv_angstrom
        );
        let want = [0.471, 0.112, 0.032, 0.0056, 0.0015, 0.0020];
        for (c, w) in bg.components.iter().zip(want) {
            let tol = if w > 0.1 { 0.04 } else { 0.15 };
            assert!(
                (c.ratio / w - 1.0).abs() < tol,
                "{}: {} vs {w}",
                c.name,
                c.ratio
            );
        }
        assert!(
            (bg.ratio_sum() / 0.624 - 1.0).abs() < 0.03,
            "{}",
            bg.ratio_sum()
        );
        assert!((bg.incoherent_fraction() - 0.377).abs() < 0.01, "{bg:?}");
    }

    #[test]
    fn ce_components_match_the_hand_computation() {
        // docs/physics.md §2.6 (2θ = 16.00°): 0.392, 0.280, 0.036, medium 0.013 together,
        // glass Compton 0.003; B/G = 0.725, x_b = 0.412.
        let (beam, dac) = cell("id10-21kev", "ce-dac");
        let bg = Background::new(&beam, &dac, 16.0f64.to_radians()).unwrap();
        let r: Vec<f64> = bg.components.iter().map(|c| c.ratio).collect();
        assert!((r[0] / 0.392 - 1.0).abs() < 0.04, "{r:?}");
        assert!((r[1] / 0.280 - 1.0).abs() < 0.04, "{r:?}");
        assert!((r[2] / 0.036 - 1.0).abs() < 0.15, "{r:?}");
        assert!(((r[3] + r[4]) / 0.013 - 1.0).abs() < 0.15, "{r:?}");
        assert!((bg.incoherent_fraction() - 0.412).abs() < 0.012, "{bg:?}");
    }

    #[test]
    fn tables_and_klein_nishina() {
        // K_KN at 21 keV, 16°: 0.997 (docs/physics.md §2.1); 1 at 2θ = 0.
        assert!((klein_nishina(21.0, 16f64.to_radians()) - 0.997).abs() < 1e-3);
        assert!((klein_nishina(21.0, 0.0) - 1.0).abs() < 1e-12);
        assert_eq!(incoherent_function("C", 0.22, "t").unwrap(), 2.859);
        let f = form_factor("Pt", 0.23, "t").unwrap();
        assert!((f - 63.74).abs() < 1e-9, "{f}");
        let e = form_factor("Zr", 0.23, "d.toml").unwrap_err().to_string();
        assert!(e.contains("d.toml") && e.contains("Zr"), "{e}");
    }
}
