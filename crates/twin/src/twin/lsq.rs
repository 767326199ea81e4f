//! Weighted linear least squares for polynomials: the straight lines of the attenuator series
//! (1/τ against the dose rate) and of q1(P), and the parabola of a peak position.
//!
//! ```text
//! minimise χ² = Σ_i ((y_i − Σ_k p_k x_i^k) / σ_i)²,   normal equations (AᵀWA) p = AᵀWy,
//! covariance C = (AᵀWA)⁻¹,   σ(p_k) = sqrt(C_kk)
//! ```
//!
//! The abscissae are centred on their weighted mean before the fit (and the result moved back),
//! so that the normal matrix stays well conditioned for data far from 0 (q ≈ 2.9 Å⁻¹).

use xpcs_core::error::{Error, Result};

/// A weighted polynomial fit y = Σ_k p_k (x − x0)^k.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PolyFit {
    /// Centre x0 of the abscissae (weighted mean).
    pub x0: f64,
    /// Coefficients p_k, k = 0..=degree, in powers of (x − x0).
    pub coef: Vec<f64>,
    /// Their covariance (row-major, (degree + 1)²).
    pub cov: Vec<f64>,
    /// χ² of the fit.
    pub chi2: f64,
    /// Degrees of freedom (points − parameters).
    pub dof: usize,
}

impl PolyFit {
    /// σ of coefficient `k`.
    pub fn sigma(&self, k: usize) -> f64 {
        let n = self.coef.len();
        self.cov[k * n + k].sqrt()
    }

    /// Covariance of coefficients `i` and `j`.
    pub fn covariance(&self, i: usize, j: usize) -> f64 {
        self.cov[i * self.coef.len() + j]
    }

    /// Slope and its σ of a straight line (degree 1): dy/dx does not depend on x0.
    pub fn slope(&self) -> (f64, f64) {
        (self.coef[1], self.sigma(1))
    }

    /// Value and σ at `x` of a straight line.
    pub fn line_at(&self, x: f64) -> (f64, f64) {
        let d = x - self.x0;
        let v = self.coef[0] + self.coef[1] * d;
        let var =
            self.covariance(0, 0) + 2.0 * d * self.covariance(0, 1) + d * d * self.covariance(1, 1);
        (v, var.max(0.0).sqrt())
    }

    /// Vertex x_v = x0 − p1/(2 p2) of a parabola (degree 2) and its σ by the delta method.
    pub fn vertex(&self) -> (f64, f64) {
        let (b, c) = (self.coef[1], self.coef[2]);
        let x = self.x0 - b / (2.0 * c);
        // ∂x/∂b = −1/(2c), ∂x/∂c = b/(2c²).
        let (gb, gc) = (-1.0 / (2.0 * c), b / (2.0 * c * c));
        let var = gb * gb * self.covariance(1, 1)
            + 2.0 * gb * gc * self.covariance(1, 2)
            + gc * gc * self.covariance(2, 2);
        (x, var.max(0.0).sqrt())
    }
}

/// Fits a polynomial of `degree` to (x, y) with 1σ errors `sigma` (all > 0 and finite). Errors
/// when there are fewer points than parameters, a σ is not positive, or the abscissae do not
/// determine the polynomial.
pub fn poly_fit(x: &[f64], y: &[f64], sigma: &[f64], degree: usize, what: &str) -> Result<PolyFit> {
    let m = degree + 1;
    if x.len() != y.len() || x.len() != sigma.len() || x.len() < m {
        return Err(Error::invalid(
            what,
            format!(
                "{} points for a polynomial of degree {degree} (need ≥ {m})",
                x.len()
            ),
        ));
    }
    if sigma.iter().any(|s| !(s.is_finite() && *s > 0.0)) || y.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid(
            what,
            "a point has a non-finite value or a σ ≤ 0",
        ));
    }
    let w: Vec<f64> = sigma.iter().map(|s| 1.0 / (s * s)).collect();
    let sw: f64 = w.iter().sum();
    let x0 = x.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() / sw;
    // Abscissae in units of their weighted spread (the normal matrix is then of order 1 in
    // every entry whatever the units of x); the coefficients are scaled back below.
    let xs = (x
        .iter()
        .zip(&w)
        .map(|(a, b)| b * (a - x0).powi(2))
        .sum::<f64>()
        / sw)
        .sqrt();
    let xs = if xs > 0.0 && xs.is_finite() { xs } else { 1.0 };
    let mut a = vec![0.0; m * m];
    let mut rhs = vec![0.0; m];
    for i in 0..x.len() {
        let d = (x[i] - x0) / xs;
        let pows: Vec<f64> = (0..m).map(|k| d.powi(k as i32)).collect();
        for r in 0..m {
            rhs[r] += w[i] * pows[r] * y[i];
            for c in 0..m {
                a[r * m + c] += w[i] * pows[r] * pows[c];
            }
        }
    }
    let inv = invert(&a, m).ok_or_else(|| {
        Error::invalid(
            what,
            format!("the abscissae do not determine a polynomial of degree {degree}"),
        )
    })?;
    let scaled: Vec<f64> = (0..m)
        .map(|r| (0..m).map(|c| inv[r * m + c] * rhs[c]).sum())
        .collect();
    let f = |k: usize| xs.powi(k as i32);
    let coef: Vec<f64> = (0..m).map(|k| scaled[k] / f(k)).collect();
    let inv: Vec<f64> = (0..m * m).map(|i| inv[i] / (f(i / m) * f(i % m))).collect();
    let chi2 = (0..x.len())
        .map(|i| {
            let d = x[i] - x0;
            let f: f64 = coef
                .iter()
                .enumerate()
                .map(|(k, p)| p * d.powi(k as i32))
                .sum();
            ((y[i] - f) / sigma[i]).powi(2)
        })
        .sum();
    Ok(PolyFit {
        x0,
        coef,
        cov: inv,
        chi2,
        dof: x.len() - m,
    })
}

/// Inverse of an m × m symmetric positive matrix by Gauss–Jordan with partial pivoting; None
/// when singular.
fn invert(a: &[f64], m: usize) -> Option<Vec<f64>> {
    let mut w = a.to_vec();
    let mut inv = vec![0.0; m * m];
    for i in 0..m {
        inv[i * m + i] = 1.0;
    }
    let scale = a.iter().fold(0f64, |s, v| s.max(v.abs()));
    for col in 0..m {
        let piv =
            (col..m).max_by(|&r, &s| w[r * m + col].abs().total_cmp(&w[s * m + col].abs()))?;
        if w[piv * m + col].abs() <= 1e-12 * scale {
            return None;
        }
        for k in 0..m {
            w.swap(col * m + k, piv * m + k);
            inv.swap(col * m + k, piv * m + k);
        }
        let p = w[col * m + col];
        for k in 0..m {
            w[col * m + k] /= p;
            inv[col * m + k] /= p;
        }
        for r in 0..m {
            if r != col {
                let f = w[r * m + col];
                for k in 0..m {
                    w[r * m + k] -= f * w[col * m + k];
                    inv[r * m + k] -= f * inv[col * m + k];
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_and_its_textbook_errors() {
        // y = 2 + 3x on x = 0..4, σ = 0.5: slope error 1/sqrt(Σw(x − x̄)²) = 0.5/sqrt(10).
        let x = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 + 3.0 * v).collect();
        let f = poly_fit(&x, &y, &[0.5; 5], 1, "t").unwrap();
        let (s, e) = f.slope();
        assert!((s - 3.0).abs() < 1e-12 && (e - 0.5 / 10f64.sqrt()).abs() < 1e-12);
        let (v, ev) = f.line_at(0.0);
        // σ of the intercept at x = 0: σ sqrt(1/n + x̄²/Sxx) = 0.5 sqrt(0.2 + 0.4).
        assert!((v - 2.0).abs() < 1e-12 && (ev - 0.5 * 0.6f64.sqrt()).abs() < 1e-12);
        assert!(f.chi2 < 1e-20 && f.dof == 3);
        // The same line in the units of an attenuator series (Ḋ ~ 1e7 Gy/s, 1/τ ~ 4e-3 1/s,
        // σ ~ 1e-4): slope and error scale exactly.
        let (u, v) = (1.3e7, 1e-3);
        let xu: Vec<f64> = x.iter().map(|a| a * u).collect();
        let yu: Vec<f64> = y.iter().map(|b| b * v).collect();
        let g = poly_fit(&xu, &yu, &[0.5 * v; 5], 1, "t").unwrap();
        let (s2, e2) = g.slope();
        assert!((s2 / (3.0 * v / u) - 1.0).abs() < 1e-10, "{s2}");
        assert!(
            (e2 / (0.5 / 10f64.sqrt() * v / u) - 1.0).abs() < 1e-10,
            "{e2}"
        );
    }

    #[test]
    fn parabola_vertex_far_from_zero() {
        // y = 5 − 40 (x − 2.9)² sampled around q ≈ 2.9: the vertex comes back exactly.
        let x: Vec<f64> = (0..11).map(|i| 2.75 + 0.03 * i as f64).collect();
        let y: Vec<f64> = x.iter().map(|v| 5.0 - 40.0 * (v - 2.9).powi(2)).collect();
        let f = poly_fit(&x, &y, &vec![0.01; x.len()], 2, "t").unwrap();
        let (v, e) = f.vertex();
        assert!((v - 2.9).abs() < 1e-10, "{v}");
        // Its error against the propagation of each point's σ through a finite-difference
        // derivative of the vertex (an independent route): σ² = Σ (∂v/∂y_i)² σ_i².
        let h = 1e-7;
        let var: f64 = (0..x.len())
            .map(|i| {
                let mut y2 = y.clone();
                y2[i] += h;
                let g = poly_fit(&x, &y2, &vec![0.01; x.len()], 2, "t").unwrap();
                ((g.vertex().0 - v) / h * 0.01).powi(2)
            })
            .sum();
        assert!((e / var.sqrt() - 1.0).abs() < 1e-4, "{e} vs {}", var.sqrt());
    }

    #[test]
    fn too_few_points_or_bad_sigma() {
        assert!(poly_fit(&[1.0], &[1.0], &[1.0], 1, "t").is_err());
        assert!(poly_fit(&[1.0, 2.0], &[1.0, 2.0], &[1.0, 0.0], 1, "t").is_err());
        let e = poly_fit(
            &[1.0, 1.0, 1.0],
            &[1.0, 2.0, 3.0],
            &[1.0; 3],
            1,
            "line of x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line of x"), "{e}");
    }
}
