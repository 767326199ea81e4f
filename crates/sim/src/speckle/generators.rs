//! Circular complex Gaussian fields E(u) with <E(u1) E*(u2)> = exp(-|u2 - u1|^β) and
//! <|E|²> = 1, evaluated at points of material time u (one pixel, one mode per call).
//!
//! | generator | exact? | cost for N points |
//! |---|---|---|
//! | [`Generator::Ar1`] (β = 1 only) | yes, any nondecreasing u | O(N) |
//! | [`Generator::Phasors`] (any β) | covariance exact at any u; 4th moments carry 1 - 1/K | O(K N) |
//! | [`Generator::Circulant`] (any β) | yes on a uniform grid, all eigenvalues ≥ 0 checked | one FFT of size M ≥ 2N |
//!
//! Reference: AR(1)/Ornstein–Uhlenbeck exact update (Gillespie, PRE 54, 2084, 1996); random
//! phasors with stable frequencies (Goodman, Statistical Optics, 1985; Chambers, Mallows &
//! Stuck 1976); circulant embedding (Wood & Chan, JCGS 3, 409, 1994; Dietrich & Newsam, SIAM
//! J. Sci. Comput. 18, 1088, 1997).

use super::stable::symmetric_stable;
use num_complex::Complex64;
use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;
use xpcs_core::error::{Error, Result};

/// A circular complex normal variate with E|z|² = 1.
#[inline]
pub fn complex_normal<R: rand::Rng + ?Sized>(rng: &mut R) -> Complex64 {
    let re: f64 = StandardNormal.sample(rng);
    let im: f64 = StandardNormal.sample(rng);
    Complex64::new(re, im) * std::f64::consts::FRAC_1_SQRT_2
}

/// The circulant embedding of exp(-|k du|^β) on N grid points: √(λ/M) of the M-periodic
/// covariance, computed and checked once, shared by every pixel.
#[derive(Clone)]
pub struct CirculantPlan {
    beta: f64,
    du: f64,
    n_points: usize,
    sqrt_lambda: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
    /// Smallest eigenvalue over the largest, before clipping (diagnostic).
    min_eigen_ratio: f64,
}

impl std::fmt::Debug for CirculantPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CirculantPlan")
            .field("beta", &self.beta)
            .field("du", &self.du)
            .field("n_points", &self.n_points)
            .field("embedding", &self.sqrt_lambda.len())
            .field("min_eigen_ratio", &self.min_eigen_ratio)
            .finish()
    }
}

/// Smallest 2^a 3^b ≥ n (FFT-friendly).
fn smooth_size(n: usize) -> usize {
    let mut best = n.next_power_of_two();
    let mut p3 = 1usize;
    while p3 < 2 * n {
        let mut v = p3;
        while v < n {
            v *= 2;
        }
        best = best.min(v);
        p3 *= 3;
    }
    best
}

impl CirculantPlan {
    /// Plans N points at spacing `du`. Padding rule (docs/model.md §3): M/2 ≥ max(N, 4/du);
    /// eigenvalues below -1e-9 λ_max double M (up to 4 times) and then fail; the remaining
    /// round-off negatives (β = 2) are clipped to 0.
    pub fn new(beta: f64, du: f64, n_points: usize) -> Result<Self> {
        crate::model::KwwExponent::new(beta, "circulant embedding")?;
        xpcs_core::check::check_positive("circulant embedding", "grid spacing du", du)?;
        let mut half = smooth_size(n_points.max((4.0 / du).ceil() as usize).max(2));
        let mut planner = FftPlanner::<f64>::new();
        for _ in 0..5 {
            let m = 2 * half;
            let mut row: Vec<Complex64> = (0..m)
                .map(|k| {
                    let d = k.min(m - k) as f64 * du;
                    Complex64::new((-d.powf(beta)).exp(), 0.0)
                })
                .collect();
            let fft = planner.plan_fft_forward(m);
            fft.process(&mut row);
            let lmax = row.iter().map(|z| z.re).fold(f64::MIN, f64::max);
            let lmin = row.iter().map(|z| z.re).fold(f64::MAX, f64::min);
            if lmin >= -1e-9 * lmax {
                let sqrt_lambda = row
                    .iter()
                    .map(|z| (z.re.max(0.0) / m as f64).sqrt())
                    .collect();
                return Ok(CirculantPlan {
                    beta,
                    du,
                    n_points,
                    sqrt_lambda,
                    fft,
                    min_eigen_ratio: lmin / lmax,
                });
            }
            half = smooth_size(2 * half);
        }
        Err(Error::invalid(
            "circulant embedding",
            format!(
                "no nonnegative embedding for beta = {beta}, du = {du}, N = {n_points} \
                 up to M = {}: use the phasor generator",
                2 * half
            ),
        ))
    }

    /// Points the plan covers.
    pub fn n_points(&self) -> usize {
        self.n_points
    }
    /// Embedding size M.
    pub fn embedding_size(&self) -> usize {
        self.sqrt_lambda.len()
    }
    /// Grid spacing in material time.
    pub fn du(&self) -> f64 {
        self.du
    }
    /// λ_min / λ_max before clipping.
    pub fn min_eigen_ratio(&self) -> f64 {
        self.min_eigen_ratio
    }

    /// Fills `out` (length ≤ N) with one field on the grid u_j = u_0 + j du.
    pub fn fill_grid<R: rand::Rng + ?Sized>(
        &self,
        out: &mut [Complex64],
        rng: &mut R,
        scratch: &mut Vec<Complex64>,
    ) {
        let m = self.sqrt_lambda.len();
        scratch.clear();
        scratch.extend(self.sqrt_lambda.iter().map(|&s| complex_normal(rng) * s));
        self.fft.process(scratch);
        let n = out.len().min(m / 2);
        out[..n].copy_from_slice(&scratch[..n]);
    }
}

/// A field generator, validated for its β.
#[derive(Debug, Clone)]
pub enum Generator {
    /// Exact AR(1) (Ornstein–Uhlenbeck) update; β = 1 only.
    Ar1,
    /// K random phasors with symmetric β-stable frequencies.
    Phasors {
        /// β.
        beta: f64,
        /// Number of phasors K.
        terms: usize,
    },
    /// Circulant embedding on a uniform grid.
    Circulant(Arc<CirculantPlan>),
}

/// Reusable buffers of one worker.
#[derive(Debug, Default)]
pub struct Scratch {
    fft: Vec<Complex64>,
    omega: Vec<f64>,
    phase: Vec<f64>,
}

impl Generator {
    /// AR(1), checking β = 1.
    pub fn ar1(beta: f64) -> Result<Self> {
        if beta != 1.0 {
            return Err(Error::invalid(
                "generator ar1",
                format!("the AR(1) generator is exact only for kww_exponent = 1, got {beta}"),
            ));
        }
        Ok(Generator::Ar1)
    }

    /// K phasors (K ≥ 1) for β ∈ (0, 2].
    pub fn phasors(beta: f64, terms: usize) -> Result<Self> {
        crate::model::KwwExponent::new(beta, "generator phasors")?;
        if terms == 0 {
            return Err(Error::out_of_range("generator phasors", "terms", 0, "≥ 1"));
        }
        Ok(Generator::Phasors { beta, terms })
    }

    /// The finite-K factor of this generator's fourth moments (None = exact Gaussian).
    pub fn phasor_terms(&self) -> Option<usize> {
        match self {
            Generator::Phasors { terms, .. } => Some(*terms),
            _ => None,
        }
    }

    /// Most points one fill can hold (circulant: the plan's N; otherwise unbounded).
    pub fn points_held(&self) -> usize {
        match self {
            Generator::Circulant(plan) => plan.n_points(),
            _ => usize::MAX,
        }
    }

    /// Fills `out[i] = E(u[i])` for one realisation; `u` nondecreasing (Circulant: uniform at
    /// the plan's spacing).
    pub fn fill<R: rand::Rng + ?Sized>(
        &self,
        u: &[f64],
        out: &mut [Complex64],
        rng: &mut R,
        scratch: &mut Scratch,
    ) -> Result<()> {
        debug_assert_eq!(u.len(), out.len());
        if u.is_empty() {
            return Ok(());
        }
        match self {
            Generator::Ar1 => {
                let mut e = complex_normal(rng);
                out[0] = e;
                for i in 1..u.len() {
                    let rho = (-(u[i] - u[i - 1]).abs()).exp();
                    e = e * rho + complex_normal(rng) * (1.0 - rho * rho).max(0.0).sqrt();
                    out[i] = e;
                }
            }
            Generator::Phasors { beta, terms } => {
                scratch.omega.clear();
                scratch.phase.clear();
                for _ in 0..*terms {
                    scratch.omega.push(symmetric_stable(*beta, rng));
                    scratch
                        .phase
                        .push(rng.random::<f64>() * std::f64::consts::TAU);
                }
                let norm = 1.0 / (*terms as f64).sqrt();
                for (o, &ui) in out.iter_mut().zip(u) {
                    let mut acc = Complex64::new(0.0, 0.0);
                    for (&w, &p) in scratch.omega.iter().zip(&scratch.phase) {
                        // Reduce the phase before sin/cos: stable ω are heavy-tailed.
                        let (s, c) = (w * ui + p).rem_euclid(std::f64::consts::TAU).sin_cos();
                        acc += Complex64::new(c, s);
                    }
                    *o = acc * norm;
                }
            }
            Generator::Circulant(plan) => {
                let du = plan.du();
                let ok = u.len() <= plan.n_points()
                    && u.iter()
                        .enumerate()
                        .all(|(i, &x)| (x - u[0] - i as f64 * du).abs() <= 1e-9 * (1.0 + x.abs()));
                if !ok {
                    return Err(Error::invalid(
                        "generator circulant",
                        "points are not a uniform grid at the plan's spacing \
                         (warps, jumps and per-pixel rates need the grid method or phasors)",
                    ));
                }
                plan.fill_grid(out, rng, &mut scratch.fft);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empirical covariance of each generator at a few separations, against exp(-|Δu|^β).
    /// Over n realisations Re(E1 E2*) has variance (1 + F²)/(2n) for a Gaussian field (its
    /// fourth moments), so each check uses 5σ of that.
    #[test]
    fn covariances_are_exact() {
        let n = 4000;
        let u: Vec<f64> = (0..16).map(|i| i as f64 * 0.125).collect();
        let gens = [
            (1.0, Generator::ar1(1.0).unwrap()),
            (1.5, Generator::phasors(1.5, 64).unwrap()),
            (
                1.8,
                Generator::Circulant(Arc::new(CirculantPlan::new(1.8, 0.125, 16).unwrap())),
            ),
            (
                2.0,
                Generator::Circulant(Arc::new(CirculantPlan::new(2.0, 0.125, 16).unwrap())),
            ),
        ];
        for (g_i, (beta, g)) in gens.iter().enumerate() {
            let mut rng = crate::rng::stream(5, g_i as u64);
            let mut sc = Scratch::default();
            let mut buf = vec![Complex64::new(0.0, 0.0); u.len()];
            let mut acc = [Complex64::new(0.0, 0.0); 4];
            let mut var = 0.0;
            for _ in 0..n {
                g.fill(&u, &mut buf, &mut rng, &mut sc).unwrap();
                var += buf[3].norm_sqr();
                for (k, lag) in [1usize, 2, 4, 8].iter().enumerate() {
                    acc[k] += buf[3] * buf[3 + lag].conj();
                }
            }
            let var = var / n as f64;
            assert!(
                (var - 1.0).abs() < 5.0 / (n as f64).sqrt(),
                "{g_i}: var {var}"
            );
            for (k, lag) in [1usize, 2, 4, 8].iter().enumerate() {
                let want = crate::model::isf(*lag as f64 * 0.125, *beta);
                let got = acc[k] / n as f64;
                let sd = ((1.0 + want * want) / (2.0 * n as f64)).sqrt();
                assert!(
                    (got.re - want).abs() < 5.0 * sd && got.im.abs() < 5.0 * sd,
                    "generator {g_i} lag {lag}: {got} vs {want}"
                );
            }
        }
        assert!(Generator::ar1(1.5).is_err());
        assert!(Generator::phasors(2.5, 4).is_err());
    }
}
