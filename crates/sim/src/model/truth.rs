//! Ground truth: the exact expected two-time map E\[C(t1,t2)\] and one-time g2 of a q-bin.
//!
//! Input: the scan [`Dynamics`], the optics of the bin's pixels ([`PixelOptics`]: clock-rate
//! factor, contrast, static and incoherent fractions, mean counts per frame) and the sampling
//! of the simulation ([`Sampling`]: frames, frame time, sub-samples per frame, finite phasor
//! count K). Output: C(n, m) for frames n, m (dimensionless, → 1 at long lags) and g2(k) at
//! lags k (frames).
//!
//! Per pixel, intensity I = (1 - x_b) S + x_b with S = (1 - a) + a Σ_m w_m |E_m|²,
//! E_m = sqrt(1-x) A_m + sqrt(x) B_m (A dynamic, B static speckle), a² Σ w_m² = c.
//! For two instants with field covariance F (see [`Dynamics::field_cov`]):
//! E\[I1 I2\] = 1 + (1 - x_b)² c [κ (1-x)² F² + 2 x (1-x) F + x²],
//! κ = 1 - 1/K for random phasors with K terms (exact Gaussian generators: κ = 1). A frame
//! averages S sub-samples at t = (n + (s + ½)/S) δt, and counts are Poisson, so
//! E\[k_n k_m\] = μ² (1/S²) Σ_{s,s'} E\[I I'\] + δ_nm μ. The bin estimator divides pixel means:
//! E\[C(n,m)\] = N Σ_p μ_p² G_p(n,m) / (Σ_p μ_p)² + δ_nm N / Σ_p μ_p (ratio of expectations;
//! the ratio bias is O(1/N) and neglected). The one-time g2 of the symmetric and frame
//! estimators is then the mean of the k-th diagonal, since E\[I\] = 1 at every frame.
//!
//! Reference: Goodman, Statistical Optics (1985) (Gaussian moment theorem); docs/model.md §2–3.

use super::dynamics::Dynamics;
use ndarray::Array2;
use std::collections::BTreeMap;

/// The optics of one pixel, as the truth needs them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelOptics {
    /// Mean counts per frame μ (0 = dead pixel, ignored).
    pub mean_counts: f64,
    /// Clock-rate factor r: u_p = r u.
    pub rate: f64,
    /// Speckle contrast c (= a² Σ w²).
    pub contrast: f64,
    /// Static speckled fraction x.
    pub static_fraction: f64,
    /// Incoherent (non-fluctuating) fraction x_b.
    pub incoherent_fraction: f64,
}

/// How the simulation sampled time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Frames.
    pub n_frames: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
    /// Sub-samples per frame (midpoints); for continuously integrated output this is the
    /// quadrature used by the truth.
    pub subsamples: usize,
    /// Phasor count K of the random-phasor generator (None = exact Gaussian generator).
    pub phasors: Option<usize>,
    /// Grid spacing du (pixel material time) of the grid method, whose domain clock jumps are
    /// whole grid steps: a pixel of rate r jumps by du · round(r J / du) (None = exact jumps).
    pub jump_grid: Option<f64>,
}

impl Sampling {
    fn kappa(&self) -> f64 {
        self.phasors.map_or(1.0, |k| 1.0 - 1.0 / k as f64)
    }
}

/// Pixels of one bin grouped into classes of identical optics (μ aside).
#[derive(Debug, Clone, PartialEq)]
pub struct BinOptics {
    n_pixels: usize,
    sum_mu: f64,
    /// (optics with mean_counts = Σ μ² of the class).
    classes: Vec<PixelOptics>,
}

impl BinOptics {
    /// Groups the pixels (dead pixels, μ = 0, still count in N as the correlator averages
    /// over them).
    pub fn new(pixels: impl IntoIterator<Item = PixelOptics>) -> Self {
        let mut map: BTreeMap<[u64; 4], f64> = BTreeMap::new();
        let (mut n, mut sum_mu) = (0usize, 0.0);
        for p in pixels {
            n += 1;
            sum_mu += p.mean_counts;
            if p.mean_counts > 0.0 {
                let key = [
                    p.rate.to_bits(),
                    p.contrast.to_bits(),
                    p.static_fraction.to_bits(),
                    p.incoherent_fraction.to_bits(),
                ];
                *map.entry(key).or_insert(0.0) += p.mean_counts * p.mean_counts;
            }
        }
        let classes = map
            .into_iter()
            .map(|(k, w)| PixelOptics {
                mean_counts: w,
                rate: f64::from_bits(k[0]),
                contrast: f64::from_bits(k[1]),
                static_fraction: f64::from_bits(k[2]),
                incoherent_fraction: f64::from_bits(k[3]),
            })
            .collect();
        BinOptics {
            n_pixels: n,
            sum_mu,
            classes,
        }
    }
    /// Pixels in the bin.
    pub fn n_pixels(&self) -> usize {
        self.n_pixels
    }
    /// Distinct optics classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }
}

/// h(F) = κ (1-x)² F² + 2 x (1-x) F + x²: the normalised intensity covariance.
#[inline]
pub fn intensity_cov(f: f64, kappa: f64, x: f64) -> f64 {
    kappa * (1.0 - x) * (1.0 - x) * f * f + 2.0 * x * (1.0 - x) * f + x * x
}

/// Ground-truth calculator for one scan and one bin.
#[derive(Debug, Clone)]
pub struct Truth<'a> {
    dynamics: &'a Dynamics,
    bin: &'a BinOptics,
    sampling: Sampling,
    /// Sub-sample times (s), frame-major.
    times: Vec<f64>,
    /// u at each sub-sample.
    u: Vec<f64>,
    /// Replacement segment of each sub-sample.
    seg: Vec<usize>,
    /// Domain events at or before each sub-sample (empty for one plain domain).
    dseg: Vec<usize>,
    /// After the first k domain events, row k: per domain, the number of complete
    /// replacements (φ = 1) and Σ ln sqrt(1 - φ) of the partial ones; the factor of the events
    /// between two sub-samples is then a difference of two rows, not a walk over the events.
    dprefix: Vec<Vec<(u32, f64)>>,
    /// Per class of the bin (empty without domain clock jumps): after the first k domain
    /// events, row k holds per domain the pixel material time its own jumps added (r J each,
    /// or whole grid steps), so the domain's Δu between two sub-samples is r Δu plus a
    /// difference of two rows.
    jprefix: Vec<Vec<Vec<f64>>>,
}

impl<'a> Truth<'a> {
    /// Prepares the sub-sample clock.
    pub fn new(dynamics: &'a Dynamics, bin: &'a BinOptics, sampling: Sampling) -> Self {
        let s_n = sampling.subsamples.max(1);
        let times: Vec<f64> = (0..sampling.n_frames * s_n)
            .map(|i| {
                let (n, s) = (i / s_n, i % s_n);
                (n as f64 + (s as f64 + 0.5) / s_n as f64) * sampling.frame_time_s
            })
            .collect();
        let u = times.iter().map(|&t| dynamics.clock().u(t)).collect();
        let seg = times
            .iter()
            .map(|&t| {
                dynamics
                    .replacements()
                    .iter()
                    .take_while(|&&(te, _)| te <= t)
                    .count()
            })
            .collect();
        let dseg = if dynamics.domains().is_single() {
            Vec::new()
        } else {
            let ev = dynamics.domains().events();
            times
                .iter()
                .map(|&t| ev.partition_point(|e| e.time_s <= t))
                .collect()
        };
        let dprefix = if dseg.is_empty() {
            Vec::new()
        } else {
            let dom = dynamics.domains();
            let mut row = vec![(0u32, 0.0f64); dom.len()];
            let mut rows = vec![row.clone()];
            for e in dom.events() {
                for (d, r) in row.iter_mut().enumerate() {
                    if e.hits(d) {
                        if e.fraction >= 1.0 {
                            r.0 += 1;
                        } else {
                            r.1 += 0.5 * (1.0 - e.fraction).ln();
                        }
                    }
                }
                rows.push(row.clone());
            }
            rows
        };
        let jprefix = if dseg.is_empty() || !dynamics.domains().has_jumps() {
            Vec::new()
        } else {
            let dom = dynamics.domains();
            let step = |x: f64| match sampling.jump_grid {
                Some(du) => (x / du).round() * du,
                None => x,
            };
            bin.classes
                .iter()
                .map(|cl| {
                    let mut row = vec![0.0f64; dom.len()];
                    let mut rows = vec![row.clone()];
                    for e in dom.events() {
                        let j = step(cl.rate * e.jump);
                        for (d, r) in row.iter_mut().enumerate() {
                            if e.hits(d) {
                                *r += j;
                            }
                        }
                        rows.push(row.clone());
                    }
                    rows
                })
                .collect()
        };
        Truth {
            dynamics,
            bin,
            sampling: Sampling {
                subsamples: s_n,
                ..sampling
            },
            times,
            u,
            seg,
            dseg,
            dprefix,
            jprefix,
        }
    }

    /// Σ_d w_d exp(-|ρ_d (Δ + J_d)|^β) · (the domain's replacements between sub-samples i and
    /// j), J_d the domain's own jumps from i to j (signed like Δ) for bin class `class`.
    fn domain_cov(&self, delta_u: f64, i: usize, j: usize, class: usize) -> f64 {
        let dom = self.dynamics.domains();
        let beta = self.dynamics.beta();
        let (a, b) = (
            self.dseg[i].min(self.dseg[j]),
            self.dseg[i].max(self.dseg[j]),
        );
        let (ra, rb) = (&self.dprefix[a], &self.dprefix[b]);
        let jumps = self
            .jprefix
            .get(class)
            .map(|t| (&t[self.dseg[i]], &t[self.dseg[j]]));
        let mut f = 0.0;
        for (d, (&w, &rho)) in dom.weights().iter().zip(dom.rates()).enumerate() {
            // A complete replacement in between: nothing of this domain is left.
            if rb[d].0 != ra[d].0 {
                continue;
            }
            let x = match jumps {
                Some((ji, jj)) => (rho * (delta_u + jj[d] - ji[d])).abs(),
                None => (rho * delta_u).abs(),
            };
            let smooth = if beta == 2.0 { x * x } else { x.powf(beta) };
            f += w * (rb[d].1 - ra[d].1 - smooth).exp();
        }
        f
    }

    /// Sub-sample times (s).
    pub fn times(&self) -> &[f64] {
        &self.times
    }

    /// Σ_classes μ² E\[I_n I_m\] (before the bin normalisation).
    fn weighted_product(&self, n: usize, m: usize) -> f64 {
        let s_n = self.sampling.subsamples;
        let kappa = self.sampling.kappa();
        let beta = self.dynamics.beta();
        let reps = self.dynamics.replacements();
        let mut total = 0.0;
        for (c, cl) in self.bin.classes.iter().enumerate() {
            let k0 = (1.0 - cl.incoherent_fraction).powi(2) * cl.contrast;
            let mut acc = 0.0;
            for i in n * s_n..(n + 1) * s_n {
                for j in m * s_n..(m + 1) * s_n {
                    let du = cl.rate * (self.u[j] - self.u[i]);
                    let mut f = if self.dseg.is_empty() {
                        (-du.abs().powf(beta)).exp()
                    } else {
                        self.domain_cov(du, i, j, c)
                    };
                    let (a, b) = (self.seg[i].min(self.seg[j]), self.seg[i].max(self.seg[j]));
                    for &(_, phi) in &reps[a..b] {
                        f *= (1.0 - phi).sqrt();
                    }
                    acc += 1.0 + k0 * intensity_cov(f, kappa, cl.static_fraction);
                }
            }
            total += cl.mean_counts * acc / (s_n * s_n) as f64;
        }
        total
    }

    /// E\[C(n, m)\] for frames n, m.
    pub fn c2(&self, n: usize, m: usize) -> f64 {
        let nn = self.bin.n_pixels as f64;
        let mut c = nn * self.weighted_product(n, m) / (self.bin.sum_mu * self.bin.sum_mu);
        if n == m {
            c += nn / self.bin.sum_mu;
        }
        c
    }

    /// E\[C\] on the frames listed (rows and columns), a square map.
    pub fn c2_map(&self, frames: &[usize]) -> Array2<f64> {
        let k = frames.len();
        let mut out = Array2::zeros((k, k));
        for a in 0..k {
            for b in a..k {
                let v = self.c2(frames[a], frames[b]);
                out[[a, b]] = v;
                out[[b, a]] = v;
            }
        }
        out
    }

    /// Expected multi-tau g2 of a stationary scan at a lag of `lag` raw frames between
    /// level-frames of `w` raw frames each: the block average (1/w²) Σ_{i,j<w} E\[C(i, lag + j)\]
    /// = (1/w²) Σ_d (w - |d|) E\[C(0, lag + d)\], O(w). Stationary dynamics only (it uses
    /// C(a, b) = C(0, b - a)).
    pub fn g2_block_stationary(&self, lag: usize, w: usize) -> f64 {
        let w = w.max(1);
        let mut acc = 0.0;
        for d in -(w as i64 - 1)..=(w as i64 - 1) {
            let m = lag as i64 + d;
            let (a, b) = if m >= 0 {
                (0, m as usize)
            } else {
                ((-m) as usize, 0)
            };
            acc += (w as i64 - d.abs()) as f64 * self.c2(a, b);
        }
        acc / (w * w) as f64
    }

    /// One-time g2 at each lag: mean over t of E\[C(t, t+k)\] (NaN for k ≥ T).
    pub fn g2(&self, lags: &[usize]) -> Vec<f64> {
        let t_n = self.sampling.n_frames;
        lags.iter()
            .map(|&k| {
                if k >= t_n {
                    return f64::NAN;
                }
                (0..t_n - k).map(|t| self.c2(t, t + k)).sum::<f64>() / (t_n - k) as f64
            })
            .collect()
    }
}

/// Largest error of linearly interpolating the intensity of an exact grid in material time
/// with spacing `du`, relative to the contrast term: max over lags and positions of
/// |Σ weights h(F(grid separations)) - h(F(true separation))| for a stationary KWW field.
///
/// This bounds |E\[C\]_simulated - E\[C\]_ideal| / ((1 - x_b)² c) for the grid-mode simulator.
pub fn grid_interpolation_error(beta: f64, du: f64, kappa: f64, x: f64) -> f64 {
    grid_interpolation_error_range(beta, du, kappa, x, x)
}

/// [`grid_interpolation_error`], worst case over every static fraction x in [x_lo, x_hi].
///
/// The error is not monotonic in x: h = κ(1-x)²F² + 2x(1-x)F + x², and the constant x² is
/// interpolated exactly, so at each lag and position the error is the quadratic
/// q(x) = κ(1-x)² e₂ + 2x(1-x) e₁ (e₁, e₂: the errors of F and F²), which vanishes at x = 1.
/// A scene's largest x (an anvil spot, x ≈ 1) is therefore the *easiest* case, not the worst;
/// |q| is maximal at an end of the interval or at the vertex of q, and all three are checked.
pub fn grid_interpolation_error_range(beta: f64, du: f64, kappa: f64, x_lo: f64, x_hi: f64) -> f64 {
    grid_interpolation_error_cov(|d| super::clock::isf(d, beta), 4.0, du, kappa, x_lo, x_hi)
}

/// [`grid_interpolation_error_range`] for any stationary field covariance `cov`(Δu) that is
/// negligible beyond `support` (material time): the domain model's mixture
/// Σ_d w_d exp(-|ρ_d Δu|^β) has support 4/min ρ_d.
pub fn grid_interpolation_error_cov(
    cov: impl Fn(f64) -> f64,
    support: f64,
    du: f64,
    kappa: f64,
    x_lo: f64,
    x_hi: f64,
) -> f64 {
    let f = |sep: f64| cov(sep * du);
    let max_lag = (support / du).ceil() as i64 + 2;
    let phases: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
    let q =
        |x: f64, e1: f64, e2: f64| kappa * (1.0 - x) * (1.0 - x) * e2 + 2.0 * x * (1.0 - x) * e1;
    let mut worst: f64 = 0.0;
    for lag in 0..=max_lag {
        for &w1 in &phases {
            for &w2 in &phases {
                let p = [1.0 - w1, w1];
                let r = [1.0 - w2, w2];
                let (mut i1, mut i2) = (0.0, 0.0);
                for (a, pa) in p.iter().enumerate() {
                    for (b, rb) in r.iter().enumerate() {
                        let v = f((lag + b as i64 - a as i64) as f64);
                        i1 += pa * rb * v;
                        i2 += pa * rb * v * v;
                    }
                }
                let exact = f(lag as f64 + w2 - w1);
                let (e1, e2) = (i1 - exact, i2 - exact * exact);
                let mut m = q(x_lo, e1, e2).abs().max(q(x_hi, e1, e2).abs());
                // Vertex of q: q'(x) = 0 at x* = (κ e₂ - e₁) / (κ e₂ - 2 e₁).
                let den = kappa * e2 - 2.0 * e1;
                if den != 0.0 {
                    let xs = (kappa * e2 - e1) / den;
                    if xs > x_lo && xs < x_hi {
                        m = m.max(q(xs, e1, e2).abs());
                    }
                }
                worst = worst.max(m);
            }
        }
    }
    worst
}

/// The grid spacing (material time) whose interpolation error is ≤ `tolerance` for every
/// static fraction in [x_lo, x_hi] (halving from 0.1), together with that error.
pub fn grid_spacing_for(beta: f64, kappa: f64, x_lo: f64, x_hi: f64, tolerance: f64) -> (f64, f64) {
    grid_spacing_for_cov(
        |d| super::clock::isf(d, beta),
        4.0,
        kappa,
        x_lo,
        x_hi,
        tolerance,
    )
}

/// [`grid_spacing_for`] for any covariance (see [`grid_interpolation_error_cov`]).
pub fn grid_spacing_for_cov(
    cov: impl Fn(f64) -> f64,
    support: f64,
    kappa: f64,
    x_lo: f64,
    x_hi: f64,
    tolerance: f64,
) -> (f64, f64) {
    let mut du = 0.1;
    loop {
        let e = grid_interpolation_error_cov(&cov, support, du, kappa, x_lo, x_hi);
        if e <= tolerance || du < 1e-4 {
            return (du, e);
        }
        du *= 0.5;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::TauLaw;

    #[test]
    fn stationary_truth_is_kww() {
        let d = Dynamics::stationary(1.5, 10.0).unwrap();
        let px = PixelOptics {
            mean_counts: 2.0,
            rate: 1.0,
            contrast: 0.3,
            static_fraction: 0.0,
            incoherent_fraction: 0.0,
        };
        let bin = BinOptics::new(vec![px; 10]);
        let s = Sampling {
            n_frames: 50,
            frame_time_s: 1.0,
            subsamples: 1,
            phasors: None,
            jump_grid: None,
        };
        let t = Truth::new(&d, &bin, s);
        let g = t.g2(&[0, 1, 5, 49, 50]);
        assert!((g[0] - (1.3 + 10.0 / 20.0)).abs() < 1e-12);
        let want = 1.0 + 0.3 * (-2.0 * (0.5f64).powf(1.5)).exp();
        assert!((g[2] - want).abs() < 1e-12);
        assert!(g[4].is_nan());
        // Static field: g2(∞) - 1 = c x² (baseline), heterodyne term in between.
        let px2 = PixelOptics {
            static_fraction: 0.4,
            ..px
        };
        let bin2 = BinOptics::new(vec![px2]);
        let t2 = Truth::new(&d, &bin2, s);
        // f(4.9 τ) = 2e-5 leaves a heterodyne residue 2x(1-x)c f ≈ 3e-6.
        assert!((t2.c2(0, 49) - (1.0 + 0.3 * 0.16)).abs() < 1e-5);
    }

    #[test]
    fn replacement_blocks_the_map() {
        let d = Dynamics::new(
            1.8,
            TauLaw::Stationary { tau_s: 1e9 },
            &[10.0],
            Some(crate::model::avalanche::AvalancheModel::Replacement { fraction: 1.0 }),
            "t",
        )
        .unwrap();
        let px = PixelOptics {
            mean_counts: 1.0,
            rate: 1.0,
            contrast: 1.0,
            static_fraction: 0.0,
            incoherent_fraction: 0.0,
        };
        let bin = BinOptics::new(vec![px]);
        let s = Sampling {
            n_frames: 20,
            frame_time_s: 1.0,
            subsamples: 2,
            phasors: None,
            jump_grid: None,
        };
        let t = Truth::new(&d, &bin, s);
        assert!((t.c2(2, 8) - 2.0).abs() < 1e-9);
        assert!((t.c2(2, 12) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn grid_error_shrinks_like_du_to_beta() {
        let e1 = grid_interpolation_error(1.8, 0.04, 1.0, 0.0);
        let e2 = grid_interpolation_error(1.8, 0.02, 1.0, 0.0);
        // Leading order ∝ du^β: the ratio is 2^1.8 = 3.5 (allow 3 to 4).
        assert!(e1 / e2 > 3.0 && e1 / e2 < 4.0, "{e1} {e2}");
        let (du, e) = grid_spacing_for(1.8, 1.0, 0.0, 0.0, 2e-3);
        assert!(e <= 2e-3 && du > 0.01, "{du} {e}");
    }

    /// A scene with an anvil spot (x ≈ 1) beside ordinary pixels (x = 0.02): the spacing must
    /// hold the tolerance for the ordinary pixels. The error vanishes at x = 1, so the spot's
    /// x alone would allow a far coarser grid (the Ce full-detector bias of session 3).
    #[test]
    fn grid_spacing_covers_every_static_fraction() {
        let (beta, kappa, tol) = (1.8, 1.0, 2e-3);
        let (du_spot, _) = grid_spacing_for(beta, kappa, 0.995, 0.995, tol);
        let (du, e) = grid_spacing_for(beta, kappa, 0.02, 0.995, tol);
        assert!(du < du_spot, "{du} {du_spot}");
        assert!(e <= tol);
        // The range bound is the exact max: no x in the interval does worse (checked densely).
        for i in 0..=200 {
            let x = 0.02 + (0.995 - 0.02) * i as f64 / 200.0;
            let ex = grid_interpolation_error(beta, du, kappa, x);
            assert!(ex <= e * (1.0 + 1e-12), "x {x}: {ex} > {e}");
        }
        // The coarser grid the spot alone allows misses the ordinary pixels' tolerance.
        assert!(grid_interpolation_error(beta, du_spot, kappa, 0.02) > tol);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::model::{AvalancheModel, ClockTable, TauLaw};
    use proptest::prelude::*;

    /// Slow reference: the mean over the s_n × s_n sub-sample pairs of frames n and m (1 s
    /// frames) of `term`(F), F from `Dynamics::field_cov` at clock-rate factor `rate`.
    fn direct_c2(
        d: &Dynamics,
        rate: f64,
        n: usize,
        m: usize,
        s_n: usize,
        term: impl Fn(f64) -> f64,
    ) -> f64 {
        let mut acc = 0.0;
        for a in 0..s_n {
            for b in 0..s_n {
                let t1 = n as f64 + (a as f64 + 0.5) / s_n as f64;
                let t2 = m as f64 + (b as f64 + 0.5) / s_n as f64;
                acc += term(d.field_cov(rate, t1, t2));
            }
        }
        acc / (s_n * s_n) as f64
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The truth's precomputed clock and segments equal a direct evaluation with
        /// `Dynamics::field_cov` (slow reference), and the frame table equals `Clock::u`.
        #[test]
        fn truth_matches_direct_formula(
            beta in 0.3f64..2.0,
            tau0 in 1.0f64..20.0,
            ev in proptest::collection::vec(0.0f64..12.0, 0..3),
            jump in proptest::bool::ANY,
            x in 0.0f64..1.0,
            s_n in 1usize..4,
            n in 0usize..12,
            m in 0usize..12,
        ) {
            let law = TauLaw::Aging { tau0_s: tau0, tau_star_s: 7.0, tau_eq_s: 3.0 * tau0,
                waiting_time_s: 1.0 };
            let model = if jump { AvalancheModel::ClockJump { jump: 0.4 } }
                else { AvalancheModel::Replacement { fraction: 0.3 } };
            let d = Dynamics::new(beta, law, &ev, Some(model), "p").unwrap();
            let px = PixelOptics { mean_counts: 1.5, rate: 1.2, contrast: 0.4,
                static_fraction: x, incoherent_fraction: 0.1 };
            let bin = BinOptics::new(vec![px]);
            let s = Sampling { n_frames: 12, frame_time_s: 1.0, subsamples: s_n, phasors: Some(8),
                jump_grid: None };
            let t = Truth::new(&d, &bin, s);
            let want = direct_c2(&d, 1.2, n, m, s_n, |f| 1.0 + 0.81 * 0.4 *
                intensity_cov(f, 7.0 / 8.0, x)) + if n == m { 1.0 / 1.5 } else { 0.0 };
            prop_assert!((t.c2(n, m) - want).abs() < 1e-12 * want.max(1.0));
            let tab = ClockTable::new(d.clock(), 12, 1.0);
            let q = (n as f64 + 0.37).min(12.0);
            // Linear interpolation of the smooth part within a frame: error ≤ δt² max|u''|/8,
            // |u''| = 1/(τ* τ) ≤ 1/(τ* τ0) while aging.
            let bound = 1.0 / (8.0 * 7.0 * tau0) + 1e-12;
            prop_assert!((tab.u_frames(q) - d.clock().u(q)).abs() <= bound);
        }

        /// With domains (rates, partial and complete replacements and own clock jumps on
        /// one, several or all domains, and global model-B events; β = 2 takes a fast path),
        /// the truth equals the direct per-pair formula of `Dynamics::field_cov`. With a jump
        /// grid du the reference is the same dynamics with every jump rounded to whole grid
        /// steps of the pixel, J → du round(r J / du) / r.
        #[test]
        fn domain_truth_matches_direct_formula(
            beta in prop_oneof![0.3f64..2.0, Just(2.0)],
            rates in proptest::collection::vec(0.2f64..3.0, 1..6),
            ev in proptest::collection::vec(
                (0.0f64..10.0, prop_oneof![0.0f64..1.0, Just(1.0), Just(0.0)], 0u32..64,
                 prop_oneof![Just(0.0), 0.0f64..2.0]), 0..6),
            global in proptest::collection::vec(0.0f64..10.0, 0..2),
            rate in 0.3f64..2.5,
            grid in prop_oneof![Just(None), (0.05f64..0.5).prop_map(Some)],
            s_n in 1usize..3,
            n in 0usize..10,
            m in 0usize..10,
        ) {
            use crate::model::{DomainEvent, Domains};
            let nd = rates.len();
            let build = |quantum: Option<f64>| {
                let events = ev.iter().map(|&(t, phi, mask, jump)| DomainEvent {
                    time_s: t,
                    fraction: phi,
                    jump: quantum.map_or(jump, |du| du * (rate * jump / du).round() / rate),
                    domains: (0..nd as u32).filter(|d| mask & (1 << d) != 0).collect(),
                }).collect();
                let doms = Domains::new(vec![1.0 / nd as f64; nd], rates.clone(), events, "p")
                    .unwrap();
                Dynamics::new(beta, TauLaw::Stationary { tau_s: 4.0 }, &global,
                    Some(AvalancheModel::Replacement { fraction: 0.4 }), "p").unwrap()
                    .with_domains(doms)
            };
            let (d, reference) = (build(None), build(grid));
            let px = PixelOptics { mean_counts: 2.0, rate, contrast: 0.3,
                static_fraction: 0.2, incoherent_fraction: 0.0 };
            let bin = BinOptics::new(vec![px]);
            let s = Sampling { n_frames: 10, frame_time_s: 1.0, subsamples: s_n, phasors: None,
                jump_grid: grid };
            let t = Truth::new(&d, &bin, s);
            let want = direct_c2(&reference, rate, n, m, s_n,
                |f| 1.0 + 0.3 * intensity_cov(f, 1.0, 0.2)) + if n == m { 0.5 } else { 0.0 };
            prop_assert!((t.c2(n, m) - want).abs() < 1e-12 * want.max(1.0));
        }
    }
}
