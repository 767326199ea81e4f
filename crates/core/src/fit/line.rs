//! The weighted straight line y = a + b x through points with errors σ (closed form).
//!
//! Input: x, y and σ slices of one length (points with a non-finite value or σ ≤ 0 are left
//! out). Output: [`WeightedLine`] with the intercept, the slope, their errors, χ² and the line's
//! prediction error at any x. Used for the aging rate (ln τ against the waiting time), the
//! contrast against pressure and the extrapolation of an aging law to a later scan.

/// A weighted least-squares line y = a + b x (weights w = 1/σ²).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WeightedLine {
    /// Intercept a.
    pub a: f64,
    /// Slope b.
    pub b: f64,
    /// Σ w.
    sw: f64,
    /// Weighted mean x̄ = Σ w x / Σ w.
    xm: f64,
    /// Sxx = Σ w (x − x̄)².
    sxx: f64,
    /// χ² of the used points about the line.
    pub chi2: f64,
    /// Number of points used.
    pub n: usize,
}

impl WeightedLine {
    /// The line through the usable points (all finite, σ > 0); None with fewer than two of
    /// them or no spread in x.
    pub fn fit(x: &[f64], y: &[f64], sigma: &[f64]) -> Option<Self> {
        let pts: Vec<(f64, f64, f64)> = x
            .iter()
            .zip(y)
            .zip(sigma)
            .filter(|((x, y), s)| x.is_finite() && y.is_finite() && s.is_finite() && **s > 0.0)
            .map(|((&x, &y), &s)| (x, y, 1.0 / (s * s)))
            .collect();
        if pts.len() < 2 {
            return None;
        }
        let sw: f64 = pts.iter().map(|p| p.2).sum();
        let xm = pts.iter().map(|p| p.2 * p.0).sum::<f64>() / sw;
        let ym = pts.iter().map(|p| p.2 * p.1).sum::<f64>() / sw;
        let sxx: f64 = pts.iter().map(|p| p.2 * (p.0 - xm).powi(2)).sum();
        if sxx <= 0.0 {
            return None;
        }
        let b = pts
            .iter()
            .map(|p| p.2 * (p.0 - xm) * (p.1 - ym))
            .sum::<f64>()
            / sxx;
        let a = ym - b * xm;
        let chi2 = pts.iter().map(|p| p.2 * (p.1 - a - b * p.0).powi(2)).sum();
        Some(WeightedLine {
            a,
            b,
            sw,
            xm,
            sxx,
            chi2,
            n: pts.len(),
        })
    }

    /// σ of the slope from the input errors: 1/sqrt(Sxx).
    pub fn sigma_b(&self) -> f64 {
        self.sxx.powf(-0.5)
    }

    /// σ of the intercept from the input errors: sqrt(1/Σw + x̄²/Sxx).
    pub fn sigma_a(&self) -> f64 {
        (1.0 / self.sw + self.xm * self.xm / self.sxx).sqrt()
    }

    /// The line at `x0` and its σ from the input errors: sqrt(1/Σw + (x0 − x̄)²/Sxx).
    pub fn at(&self, x0: f64) -> (f64, f64) {
        (
            self.a + self.b * x0,
            (1.0 / self.sw + (x0 - self.xm).powi(2) / self.sxx).sqrt(),
        )
    }

    /// χ²/ν with ν = n − 2 (NaN with two points).
    pub fn reduced_chi2(&self) -> f64 {
        if self.n > 2 {
            self.chi2 / (self.n - 2) as f64
        } else {
            f64::NAN
        }
    }

    /// The Birge ratio sqrt(χ²/ν) when it exceeds 1, else 1: the factor that scales the input
    /// errors up to the scatter of the points (1 with two points).
    pub fn birge(&self) -> f64 {
        let r = self.reduced_chi2();
        if r.is_finite() {
            r.sqrt().max(1.0)
        } else {
            1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WeightedLine;

    /// The line against the closed form of a two-point line and of points on an exact line
    /// (any weights), and its errors against σ_b² = 1/Σ w (x − x̄_w)².
    #[test]
    fn weighted_line_fits() {
        let l = WeightedLine::fit(&[0.0, 2.0], &[1.0, 2.0], &[0.1, 0.1]).unwrap();
        assert!((l.a - 1.0).abs() < 1e-12 && (l.b - 0.5).abs() < 1e-12);
        // Two points, σ = 0.1: Σ w (x − x̄)² = 100 × (1 + 1) = 200; Σ w = 200, x̄ = 1.
        assert!((l.sigma_b() - 200f64.powf(-0.5)).abs() < 1e-12);
        assert!((l.sigma_a() - (1.0 / 200.0 + 1.0 / 200.0f64).sqrt()).abs() < 1e-12);
        // At x̄ only 1/Σw remains; at x = 0 the prediction's σ is σ_a.
        assert!((l.at(1.0).1 - 200f64.powf(-0.5)).abs() < 1e-12);
        assert!((l.at(0.0).1 - l.sigma_a()).abs() < 1e-12 && l.chi2 < 1e-20);
        assert!(l.reduced_chi2().is_nan() && l.birge() == 1.0);
        let x = [0.0, 1.1, 2.9, 5.6, 8.2];
        let s = [1e-5, 3e-5, 5e-5, 2e-5, 4e-5];
        let y: Vec<f64> = x.iter().map(|x| 0.0089 + 1.3e-4 * x).collect();
        let l = WeightedLine::fit(&x, &y, &s).unwrap();
        assert!((l.a - 0.0089).abs() < 1e-12 && (l.b - 1.3e-4).abs() < 1e-12);
        // One point off the line by 2σ: 0 < χ² < 4 (the line moves towards it).
        let mut y2 = y.clone();
        y2[2] += 2.0 * 5e-5;
        let l2 = WeightedLine::fit(&x, &y2, &s).unwrap();
        assert!(l2.chi2 > 0.0 && l2.chi2 < 4.0, "{}", l2.chi2);
        assert!((l2.birge() - (l2.chi2 / 3.0).sqrt().max(1.0)).abs() < 1e-15);
        assert!(WeightedLine::fit(&[1.0, 1.0], &[1.0, 2.0], &[0.1, 0.1]).is_none());
        assert!(WeightedLine::fit(&[1.0, f64::NAN], &[1.0, 2.0], &[0.1, 0.1]).is_none());
    }
}
