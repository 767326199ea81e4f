//! Speckle contrast from the beam's coherence, and the speckle size.
//!
//! Input: wavelength, distance, pixel pitch, beam size and profile, bandwidth, sample thickness
//! and scattering angle. Output: [`Contrast`] (dimensionless factors) and speckle sizes in
//! pixels.
//!
//! - Transverse: the detector pixel averages the speckle over its width p. With |μ(u)|² the
//!   squared degree of coherence between two points a distance u apart on the detector,
//!   β_1D = (2/p) ∫₀ᵖ (1 − u/p) |μ(u)|² du. For a Gaussian source of rms size σ,
//!   |μ(u)|² = exp(−u²/ξ²), ξ = λL/(2πσ), and the integral is the closed form
//!   β_1D(a) = [a√π erf(a) + exp(−a²) − 1]/a², a = p/ξ. For a uniform (slit-defined) source of
//!   width d, |μ(u)|² = sinc²(π d u/(λL)), integrated numerically. β_t = β_1D,row · β_1D,col.
//! - The source seen from the detector is the illuminated volume projected on the plane normal
//!   to the scattered beam: along the 2θ direction its width is d cos 2θ + W sin 2θ (W = sample
//!   thickness), across it d.
//! - Longitudinal: path-length differences across the scattering volume spread uniformly over
//!   Δ = 2W sin²θ + d sin 2θ; with a Gaussian spectrum of coherence length ξ_l = λ/(Δλ/λ) the
//!   same averaging integral gives β_l = β_1D(Δ/ξ_l).
//! - Contrast c = β_t β_l, unless a measured value overrides it.
//!
//! Speckle size (FWHM-like): s = λL/d on each axis, reported in pixels.
//!
//! Reference: M. Sutton, "A review of X-ray intensity fluctuation spectroscopy", C. R. Physique
//! 9, 657 (2008); D. L. Abernathy et al., J. Synchrotron Rad. 5, 37 (1998) for the pixel
//! averaging integral.

use crate::config::instrument::BeamProfile;

/// β_1D(a) = [a√π erf(a) + exp(−a²) − 1]/a² for a Gaussian coherence function (a = p/ξ).
/// Tends to 1 as a → 0 and to √π/a as a → ∞.
pub fn beta_1d_gaussian(a: f64) -> f64 {
    if a < 1e-4 {
        // Series: 1 − a²/6 + a⁴/60.
        return 1.0 - a * a / 6.0;
    }
    (a * std::f64::consts::PI.sqrt() * libm::erf(a) + (-a * a).exp() - 1.0) / (a * a)
}

/// β_1D = (2/p) ∫₀ᵖ (1 − u/p) g(u) du by composite Simpson on 2000 intervals; `g` is the
/// squared degree of coherence at separation u (same unit as p).
pub fn beta_1d_numeric(p: f64, g: impl Fn(f64) -> f64) -> f64 {
    let n = 2000;
    let h = p / n as f64;
    let f = |u: f64| (1.0 - u / p) * g(u);
    let mut s = f(0.0) + f(p);
    for i in 1..n {
        let w = if i % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(i as f64 * h);
    }
    2.0 / p * s * h / 3.0
}

/// β_1D of one axis for a source of `width_um` (FWHM for Gaussian, full width for top hat),
/// seen at distance `distance_m` with pixel pitch `pixel_um` and wavelength `lambda_a` (Å).
pub fn beta_1d_source(
    profile: BeamProfile,
    width_um: f64,
    pixel_um: f64,
    distance_m: f64,
    lambda_a: f64,
) -> f64 {
    // λL in µm²: λ[Å]·1e-4 µm · L[m]·1e6 µm.
    let lambda_l_um2 = lambda_a * 1e-4 * distance_m * 1e6;
    match profile {
        BeamProfile::Gaussian => {
            let sigma = width_um / (8.0 * 2f64.ln()).sqrt();
            let xi = lambda_l_um2 / (2.0 * std::f64::consts::PI * sigma);
            beta_1d_gaussian(pixel_um / xi)
        }
        BeamProfile::TopHat => {
            let k = std::f64::consts::PI * width_um / lambda_l_um2;
            beta_1d_numeric(pixel_um, |u| {
                let x = k * u;
                if x.abs() < 1e-8 {
                    1.0
                } else {
                    (x.sin() / x).powi(2)
                }
            })
        }
    }
}

/// Speckle contrast and its factors.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Contrast {
    /// Transverse factor along detector rows (the 2θ direction).
    pub beta_row: f64,
    /// Transverse factor along detector columns.
    pub beta_col: f64,
    /// Longitudinal (bandwidth) factor.
    pub beta_longitudinal: f64,
    /// The computed contrast β_row β_col β_l.
    pub computed: f64,
    /// A measured contrast that overrides the computed one.
    pub measured: Option<f64>,
    /// Speckle size along rows (pixels).
    pub speckle_row_px: f64,
    /// Speckle size along columns (pixels).
    pub speckle_col_px: f64,
}

impl Contrast {
    /// The contrast the simulation uses: the measured value if given, else the computed one.
    pub fn value(&self) -> f64 {
        self.measured.unwrap_or(self.computed)
    }
}

/// Inputs of [`contrast`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CoherenceInputs {
    /// Wavelength (Å).
    pub lambda_angstrom: f64,
    /// Relative bandwidth Δλ/λ.
    pub bandwidth_rel: f64,
    /// Beam profile.
    pub profile: BeamProfile,
    /// Beam width in the scattering plane (µm).
    pub beam_in_plane_um: f64,
    /// Beam width normal to the scattering plane (µm).
    pub beam_out_of_plane_um: f64,
    /// Sample thickness along the beam (µm).
    pub thickness_um: f64,
    /// Scattering angle 2θ (radians).
    pub two_theta_rad: f64,
    /// Sample–detector distance (m).
    pub distance_m: f64,
    /// Pixel pitch (µm).
    pub pixel_um: f64,
}

/// Computes the contrast factors and speckle sizes (see the module docs).
pub fn contrast(inp: &CoherenceInputs, measured: Option<f64>) -> Contrast {
    let tt = inp.two_theta_rad;
    let theta = tt / 2.0;
    let d_row = inp.beam_in_plane_um * tt.cos() + inp.thickness_um * tt.sin();
    let d_col = inp.beam_out_of_plane_um;
    let (l, p, lam) = (inp.distance_m, inp.pixel_um, inp.lambda_angstrom);
    let beta_row = beta_1d_source(inp.profile, d_row, p, l, lam);
    let beta_col = beta_1d_source(inp.profile, d_col, p, l, lam);
    let path_um = 2.0 * inp.thickness_um * theta.sin().powi(2) + inp.beam_in_plane_um * tt.sin();
    let xi_l_um = lam * 1e-4 / inp.bandwidth_rel;
    let beta_l = beta_1d_gaussian(path_um / xi_l_um);
    let lambda_l_um2 = lam * 1e-4 * l * 1e6;
    Contrast {
        beta_row,
        beta_col,
        beta_longitudinal: beta_l,
        computed: beta_row * beta_col * beta_l,
        measured,
        speckle_row_px: lambda_l_um2 / d_row / p,
        speckle_col_px: lambda_l_um2 / d_col / p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The numerical averaging integral with a Gaussian coherence function equals the
        /// closed form (Simpson error ≪ 1e-7 on 2000 intervals).
        #[test]
        fn numeric_equals_closed_form(a in 0.01f64..20.0) {
            let p = 75.0;
            let xi = p / a;
            let num = beta_1d_numeric(p, |u| (-(u / xi).powi(2)).exp());
            prop_assert!((num - beta_1d_gaussian(a)).abs() < 1e-7, "{num} vs {}", beta_1d_gaussian(a));
        }
    }

    #[test]
    fn limits_and_design_numbers() {
        assert!((beta_1d_gaussian(1e-6) - 1.0).abs() < 1e-12);
        let a = 50.0;
        assert!((beta_1d_gaussian(a) * a / std::f64::consts::PI.sqrt() - 1.0).abs() < 0.03);
        // docs/model.md §3: speckle s = λL/d = 37 µm at 20.95 keV, 5 m, 8 µm → 0.49 Eiger pixel.
        let c = contrast(
            &CoherenceInputs {
                lambda_angstrom: 12.39842 / 20.95,
                bandwidth_rel: 1.33e-4,
                profile: BeamProfile::TopHat,
                beam_in_plane_um: 8.0,
                beam_out_of_plane_um: 8.0,
                thickness_um: 20.0,
                two_theta_rad: 0.0,
                distance_m: 5.0,
                pixel_um: 75.0,
            },
            None,
        );
        assert!(
            (c.speckle_col_px - 0.493).abs() < 0.005,
            "{}",
            c.speckle_col_px
        );
        assert_eq!(c.beta_longitudinal, 1.0);
        assert!((c.computed - c.beta_row * c.beta_col).abs() < 1e-15);
        assert_eq!(
            contrast(
                &CoherenceInputs {
                    two_theta_rad: 0.27,
                    ..Default::default()
                },
                Some(0.02)
            )
            .value(),
            0.02
        );
    }

    impl Default for CoherenceInputs {
        fn default() -> Self {
            CoherenceInputs {
                lambda_angstrom: 0.59,
                bandwidth_rel: 1.33e-4,
                profile: BeamProfile::Gaussian,
                beam_in_plane_um: 8.0,
                beam_out_of_plane_um: 8.0,
                thickness_um: 20.0,
                two_theta_rad: 0.27,
                distance_m: 5.0,
                pixel_um: 75.0,
            }
        }
    }

    /// Contrast at the Pt-seed setting equals the formula evaluated by hand.
    #[test]
    fn contrast_equals_formula_by_hand() {
        let inp = CoherenceInputs::default();
        let c = contrast(&inp, None);
        let tt: f64 = 0.27;
        let sigma_row = (8.0 * tt.cos() + 20.0 * tt.sin()) / (8.0 * 2f64.ln()).sqrt();
        let sigma_col = 8.0 / (8.0 * 2f64.ln()).sqrt();
        let ll = 0.59e-4 * 5e6;
        let xi = |s: f64| ll / (2.0 * std::f64::consts::PI * s);
        let br = beta_1d_gaussian(75.0 / xi(sigma_row));
        let bc = beta_1d_gaussian(75.0 / xi(sigma_col));
        let delta = 2.0 * 20.0 * (tt / 2.0).sin().powi(2) + 8.0 * tt.sin();
        let bl = beta_1d_gaussian(delta / (0.59e-4 / 1.33e-4));
        assert!((c.computed / (br * bc * bl) - 1.0).abs() < 1e-12);
        assert!(c.computed > 0.005 && c.computed < 0.05, "{}", c.computed);
    }
}
