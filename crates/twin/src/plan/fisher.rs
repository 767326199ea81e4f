//! Fisher predictions of the precision of a KWW fit to a multi-tau g2.
//!
//! Input: a [`Setting`] (plain numbers: τ in s, β, contrast c, count rate r in photons/s per
//! pixel, pixels per q-bin N_pix, frame time Δt in s, frames N, which parameters are free).
//! Output: a [`Prediction`]: σ(ln τ) (= relative error of τ), the relative error of c, the
//! absolute error of β, the closed-form σ(ln τ), the inflation caused by the free nuisance
//! parameters, and flags for the regimes where the low-count formula is known to fail.
//!
//! Model of the measurement (docs/model.md §7): the fitted curve is
//! g2(t) = a + c exp(-2 (t/τ)^β) at the lags of the multi-tau schedule
//! ([`multitau_points`], the scheme of `correlate::LagSchedule::multi_tau`), lag 0 left out.
//! At level L the frames are summed in groups of 2^L, so the mean count per level-frame is
//! n̄_L = n̄ 2^L and lag k has N_k = ⌊N/2^L⌋ - k/2^L level-frame pairs. In the low-count limit
//! Var ĝ2(k) ≈ (1 + c f_k²)/(n̄_L² N_pix N_k) with f_k = exp(-(t_k/τ)^β), and errors at
//! different lags are independent (different photon pairs). The Fisher matrix of the free
//! parameters θ ⊂ (a, c, ln τ, β) is F = Σ_k ∇g2(t_k) ∇g2(t_k)ᵀ / Var ĝ2(k); the predicted
//! covariance of a weighted least-squares fit is F⁻¹.
//!
//! Closed form (τ the only free parameter, linear lags, Δt ≪ τ ≪ T):
//! σ(ln τ) = 1 / (c r K(β) sqrt(N_pix T τ)), K(β)² = β Γ(2 + 1/β) / 4^(1 + 1/β).
//!
//! Reference: Jakeman (1974); Lumma et al., Rev. Sci. Instrum. 71, 3274 (2000); Falus, Lurio &
//! Mochrie, J. Synchrotron Rad. 13, 253 (2006); docs/model.md §7.

use nalgebra::DMatrix;
use serde::Serialize;
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::error::{Error, Result};

/// Which fit parameters are free (τ always is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FreeParams {
    /// Baseline a free (else fixed at its true value).
    pub baseline: bool,
    /// Contrast c free.
    pub contrast: bool,
    /// KWW exponent β free.
    pub kww_exponent: bool,
}

impl FreeParams {
    /// Only τ free.
    pub const TAU_ONLY: FreeParams = FreeParams {
        baseline: false,
        contrast: false,
        kww_exponent: false,
    };
    /// Contrast, τ and β free; baseline fixed (the planner's default, as the Ce seed fixed
    /// the baseline).
    pub const DEFAULT: FreeParams = FreeParams {
        baseline: false,
        contrast: true,
        kww_exponent: true,
    };
    /// All four KWW parameters free.
    pub const ALL: FreeParams = FreeParams {
        baseline: true,
        contrast: true,
        kww_exponent: true,
    };

    /// Parses a comma-separated list of names (`baseline,contrast,tau,kww_exponent`; `beta`
    /// is accepted for `kww_exponent`); `tau` is implied.
    pub fn parse(list: &str) -> Result<Self> {
        let mut f = FreeParams::TAU_ONLY;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "baseline" => f.baseline = true,
                "contrast" => f.contrast = true,
                "tau" => {}
                "kww_exponent" | "beta" => f.kww_exponent = true,
                other => {
                    return Err(Error::out_of_range(
                        "--free",
                        "parameter",
                        other,
                        "baseline, contrast, tau, kww_exponent (beta)",
                    ))
                }
            }
        }
        Ok(f)
    }

    /// Names of the free parameters in the fit model's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.baseline {
            v.push("baseline");
        }
        if self.contrast {
            v.push("contrast");
        }
        v.push("tau");
        if self.kww_exponent {
            v.push("kww_exponent");
        }
        v
    }
}

/// One measurement setting: the sample, the instrument and the scan, as plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Setting {
    /// Relaxation time τ (s).
    pub tau_s: f64,
    /// KWW exponent β ∈ (0, 2].
    pub kww_exponent: f64,
    /// Speckle contrast c (g2(0) - baseline).
    pub contrast: f64,
    /// Mean photons per second per pixel r.
    pub rate_per_pixel_hz: f64,
    /// Pixels in the q-bin N_pix.
    pub bin_pixels: f64,
    /// Frame time Δt (s).
    pub frame_time_s: f64,
    /// Frames N.
    pub n_frames: usize,
    /// Free fit parameters.
    pub free: FreeParams,
    /// Buffers per multi-tau level (even, ≥ 2; the correlator's default is 8).
    pub num_bufs: usize,
}

impl Setting {
    /// The setting an earlier version of the model recommended for the Pt glass at 3.3 GPa on
    /// the Eiger2 4M: τ = 38 s, contrast 0.025, 0.1 s × 1900 frames, one q-bin of 526 336
    /// pixels. Kept fixed as the reference case of the Monte Carlo studies and of the plan
    /// bench (today's recommendation is in validation/planner/pt-3p3gpa).
    pub fn pt_3p3_gpa_example() -> Self {
        Setting {
            tau_s: 38.0,
            kww_exponent: 1.8,
            contrast: 0.025246,
            rate_per_pixel_hz: 0.7481,
            bin_pixels: 526336.0,
            frame_time_s: 0.1,
            n_frames: 1900,
            free: FreeParams::DEFAULT,
            num_bufs: 8,
        }
    }

    /// Checks every field (errors name the field and its allowed range).
    pub fn validate(&self) -> Result<()> {
        let o = "plan setting";
        check_positive(o, "tau_s", self.tau_s)?;
        check_range(o, "kww_exponent", self.kww_exponent, 1e-3, 2.0)?;
        check_range(o, "contrast", self.contrast, 1e-9, 1.0)?;
        check_positive(o, "rate_per_pixel_hz", self.rate_per_pixel_hz)?;
        check_range(o, "bin_pixels", self.bin_pixels, 1.0, 1e12)?;
        xpcs_core::check::check_frame_time(o, "frame_time_s", self.frame_time_s)?;
        if self.n_frames < 4 {
            return Err(Error::out_of_range(o, "n_frames", self.n_frames, "≥ 4"));
        }
        if self.num_bufs < 2 || self.num_bufs % 2 != 0 {
            return Err(Error::out_of_range(
                o,
                "num_bufs",
                self.num_bufs,
                "even and ≥ 2",
            ));
        }
        Ok(())
    }
    /// Scan length T = N Δt (s).
    pub fn scan_s(&self) -> f64 {
        self.n_frames as f64 * self.frame_time_s
    }
    /// Mean photons per pixel per frame n̄ = r Δt.
    pub fn mean_count(&self) -> f64 {
        self.rate_per_pixel_hz * self.frame_time_s
    }
    /// The same setting with another frame time and frame count.
    pub fn with_scan(mut self, frame_time_s: f64, n_frames: usize) -> Self {
        self.frame_time_s = frame_time_s;
        self.n_frames = n_frames;
        self
    }
}

/// One point of the multi-tau schedule as the Fisher sum sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LagPoint {
    /// Lag (raw frames).
    pub lag_frames: u64,
    /// Frames summed per level-frame (2^L).
    pub bin_width_frames: u64,
    /// Level-frame pairs behind the point.
    pub n_pairs: u64,
}

/// The lags of the multi-tau schedule of `correlate::LagSchedule::multi_tau(n_frames,
/// num_bufs)` with their bin widths and pair counts, lag 0 and lags without pairs left out.
///
/// Level 0: lags 1..num_bufs-1; level L ≥ 1: in-level lags num_bufs/2..num_bufs-1 (raw lag
/// = in-level lag × 2^L); levels are added while (num_bufs/2)·2^L < n_frames.
pub fn multitau_points(n_frames: usize, num_bufs: usize) -> Vec<LagPoint> {
    let half = num_bufs / 2;
    let mut levels = 1usize;
    while levels < 40 && (half << levels) < n_frames.max(1) {
        levels += 1;
    }
    let mut out = Vec::new();
    for l in 0..levels {
        let w = 1u64 << l;
        let n_l = n_frames as u64 / w;
        let first = if l == 0 { 1 } else { half };
        for k in first..num_bufs {
            let k = k as u64;
            if k < n_l {
                out.push(LagPoint {
                    lag_frames: k * w,
                    bin_width_frames: w,
                    n_pairs: n_l - k,
                });
            }
        }
    }
    out
}

/// K(β) of the closed form: K² = β Γ(2 + 1/β) / 4^(1 + 1/β).
pub fn k_beta(beta: f64) -> f64 {
    (beta * libm::tgamma(2.0 + 1.0 / beta) / 4f64.powf(1.0 + 1.0 / beta)).sqrt()
}

/// The closed-form σ(ln τ) with only τ free: 1 / (c r K(β) sqrt(N_pix T τ)).
pub fn closed_form_sigma_ln_tau(s: &Setting) -> f64 {
    1.0 / (s.contrast
        * s.rate_per_pixel_hz
        * k_beta(s.kww_exponent)
        * (s.bin_pixels * s.scan_s() * s.tau_s).sqrt())
}

/// Regime warnings: where the low-count formula is known to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Regime {
    /// n̄ ≥ 0.2: speckle noise adds terms the formula ignores (it underestimates by
    /// ×1.1–2.2 at n̄ = 0.2–2): trust the Monte Carlo.
    pub high_count: bool,
    /// T/τ < 3: the fit is dominated by the few long lags; the linearised error is unreliable.
    pub short_scan: bool,
    /// Δt > τ/10: the frame averages the decay (contrast and shape lost).
    pub slow_frames: bool,
    /// Predicted σ(ln τ) > 0.3: the fit is nonlinear at this precision (errors not Gaussian).
    pub nonlinear: bool,
}

impl Regime {
    /// True if any flag is set.
    pub fn any(&self) -> bool {
        self.high_count || self.short_scan || self.slow_frames || self.nonlinear
    }
    /// A short text naming the flags.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if self.high_count {
            v.push("n̄≥0.2");
        }
        if self.short_scan {
            v.push("T/τ<3");
        }
        if self.slow_frames {
            v.push("Δt>τ/10");
        }
        if self.nonlinear {
            v.push("σ>0.3");
        }
        v.join(",")
    }
}

/// Fisher prediction for one setting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prediction {
    /// σ(ln τ) with the setting's free parameters (relative error of τ): the weighted fit's
    /// error with the full g2 covariance across lags ([`lag_covariance`]).
    pub sigma_ln_tau: f64,
    /// Relative error of the contrast (None when fixed).
    pub rel_contrast: Option<f64>,
    /// Absolute error of β (None when fixed).
    pub sigma_kww_exponent: Option<f64>,
    /// Absolute error of the baseline (None when fixed).
    pub sigma_baseline: Option<f64>,
    /// Closed-form σ(ln τ) (τ alone, linear lags).
    pub closed_form_sigma_ln_tau: f64,
    /// Numerical σ(ln τ) with τ the only free parameter (same lags, independent-lag Fisher).
    pub tau_only_sigma_ln_tau: f64,
    /// independent_lags_sigma_ln_tau / tau_only_sigma_ln_tau: the cost of the free nuisance
    /// parameters.
    pub inflation: f64,
    /// σ(ln τ) of the independent-lag Fisher matrix (low-count variances only, lags
    /// uncorrelated): the textbook figure, low by ×1.2-1.7 where speckle noise matters.
    pub independent_lags_sigma_ln_tau: f64,
    /// Known-failure flags.
    pub regime: Regime,
}

/// Expected g2 - and its gradient with respect to (a, c, ln τ, β) - at delay t.
pub(crate) fn gradient(t: f64, c: f64, tau: f64, beta: f64) -> (f64, [f64; 4]) {
    let x = t / tau;
    let s = x.powf(beta);
    let e = (-2.0 * s).exp();
    // ∂s/∂lnτ = -β s, ∂s/∂β = s ln x.
    let d = [1.0, e, 2.0 * c * e * beta * s, -2.0 * c * e * s * x.ln()];
    (e, d)
}

/// The Fisher matrix over (a, c, ln τ, β) (all four; free ones are picked afterwards).
pub fn fisher_matrix(s: &Setting) -> DMatrix<f64> {
    let nbar = s.mean_count();
    let mut f = DMatrix::<f64>::zeros(4, 4);
    for p in multitau_points(s.n_frames, s.num_bufs) {
        let t = p.lag_frames as f64 * s.frame_time_s;
        let (e, d) = gradient(t, s.contrast, s.tau_s, s.kww_exponent);
        let nl = nbar * p.bin_width_frames as f64;
        // e = f², the squared ISF at this delay.
        let var = (1.0 + s.contrast * e) / (nl * nl * s.bin_pixels * p.n_pairs as f64);
        for i in 0..4 {
            for j in 0..4 {
                f[(i, j)] += d[i] * d[j] / var;
            }
        }
    }
    f
}

/// ∫ h(v) h(v + δ) dv with h(v) = exp(-2|v|^β) (v, δ in units of τ), tabulated on
/// δ = 0..2V in 400 steps, V = (ln 10⁸ / 2)^(1/β) where h has fallen below 1e-8.
struct OverlapTable {
    beta: f64,
    step: f64,
    values: Vec<f64>,
}

impl OverlapTable {
    fn new(beta: f64) -> Self {
        let v_max = (0.5 * 1e8f64.ln()).powf(1.0 / beta);
        let n_v = 4000usize;
        let dv = 2.0 * v_max / n_v as f64;
        let h = |v: f64| (-2.0 * v.abs().powf(beta)).exp();
        let hv: Vec<f64> = (0..=n_v).map(|i| h(-v_max + i as f64 * dv)).collect();
        let n_d = 400usize;
        let step = 2.0 * v_max / n_d as f64;
        let values = (0..=n_d)
            .map(|j| {
                let d = j as f64 * step;
                // Trapezoid on the v-grid; h(v + δ) evaluated directly (δ is off-grid).
                let mut acc = 0.0;
                for (i, &a) in hv.iter().enumerate() {
                    let w = if i == 0 || i == n_v { 0.5 } else { 1.0 };
                    acc += w * a * h(-v_max + i as f64 * dv + d);
                }
                acc * dv
            })
            .collect();
        OverlapTable { beta, step, values }
    }

    fn at(&self, delta: f64) -> f64 {
        let x = delta.abs() / self.step;
        let i = x.floor() as usize;
        if i + 1 >= self.values.len() {
            return 0.0;
        }
        let fr = x - i as f64;
        self.values[i] * (1.0 - fr) + self.values[i + 1] * fr
    }
}

fn overlap_table(beta: f64) -> std::sync::Arc<OverlapTable> {
    use std::sync::{Arc, Mutex};
    static CACHE: Mutex<Option<Arc<OverlapTable>>> = Mutex::new(None);
    let mut g = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    match &*g {
        Some(t) if t.beta == beta => t.clone(),
        _ => {
            let t = Arc::new(OverlapTable::new(beta));
            *g = Some(t.clone());
            t
        }
    }
}

/// Covariance matrix of the g2 estimates at the lags of [`multitau_points`] (same order), for
/// Gaussian speckle plus Poisson counts, to first order in the fluctuations.
///
/// Per pixel, with y_i = x_i/n̄ the normalised count of raw frame i and a_i = y_i - 1, the
/// symmetric estimator (normalised by the measured past and future means) is to first order
/// ĝ2(k) - E ĝ2(k) = mean_t a_t a_{t+k} over the N_k level-frame pairs of the lag's level
/// (a_t of a level frame is the mean of its raw a_i). The raw a_i are modelled as Gaussian with
/// covariance S(i - j) + δ_ij/n̄, S(u) = c f(uΔt)² (speckle) and 1/n̄ (shot noise), so by
/// Isserlis Cov(a_t a_{t+k}, a_s a_{s+k'}) = C(t,s) C(t+k,s+k') + C(t,s+k') C(t+k,s) with C the
/// covariance of the level frames. The four products of each term are summed separately:
/// - shot × shot: only where both frame pairs overlap (the diagonal 1/(n̄_L² N_k), and the
///   last lag of a level against the first of the next, which share raw frames);
/// - speckle × shot: the shot factor picks the overlapping frames, S is taken at the other
///   pair's centre offset (summed over the ≤ 64 sampled sub-frames of the coarser frame);
/// - speckle × speckle: the double sum as an integral, X/(w w') [A(k'w' - kw) + A(k'w' + kw)]
///   with A(Δ) = ∫ S(u) S(u + Δ) du and X the common length of the two sums (raw frames):
///   this is the speckle noise, ∝ c² τ/T, that does not fall with the count rate.
///
/// The exact Poisson term adds c f_k²/(n̄_L² N_k) on the diagonal (the (1 + c f²) of the
/// low-count formula). Everything is divided by N_pix (pixels are independent).
///
/// Reference: Isserlis (1918); Jakeman (1974); Schätzel, Quantum Opt. 2, 287 (1990) for the
/// speckle-noise covariance of correlator channels.
pub fn lag_covariance(s: &Setting) -> DMatrix<f64> {
    let pts = multitau_points(s.n_frames, s.num_bufs);
    let m = pts.len();
    let nbar = s.mean_count();
    let c = s.contrast;
    let tau_frames = s.tau_s / s.frame_time_s;
    let h = |u: f64| (-2.0 * (u.abs() / tau_frames).powf(s.kww_exponent)).exp();
    let sp = |u: f64| c * h(u);
    let table = overlap_table(s.kww_exponent);
    // A(Δ) in raw-frame units: c² τ_frames a(Δ/τ_frames).
    let area = |d: f64| c * c * tau_frames * table.at(d / tau_frames);
    let mut cov = DMatrix::<f64>::zeros(m, m);
    for i in 0..m {
        for j in i..m {
            // Order so that level(p) ≤ level(q).
            let (p, q) = if pts[i].bin_width_frames <= pts[j].bin_width_frames {
                (pts[i], pts[j])
            } else {
                (pts[j], pts[i])
            };
            let (w, w2) = (p.bin_width_frames as f64, q.bin_width_frames as f64);
            let r = q.bin_width_frames / p.bin_width_frames;
            let (k, k2) = (
                (p.lag_frames / p.bin_width_frames) as i64,
                (q.lag_frames / q.bin_width_frames) as i64,
            );
            let (nk, nk2) = (p.n_pairs as f64, q.n_pairs as f64);
            let x_len = (nk * w).min(nk2 * w2);
            let n_s = x_len / w2;
            // Shot covariance of a level-L frame inside a level-L' frame: w/(w w' n̄).
            let shot = 1.0 / (w2 * nbar);
            let ri = r as i64;
            // shot × shot: j ∈ [0, r) with k'r - j ≤ k ≤ k'r + r - 1 - j.
            let lo = (k2 * ri - k).max(0);
            let hi = (k2 * ri + ri - 1 - k).min(ri - 1);
            let n_j = (hi - lo + 1).max(0) as f64;
            let mut v = n_s * n_j * shot * shot;
            // speckle × shot: S at the offset of the other pair, centres of the frames
            // (a level-L frame against a level-L' frame: start offset D, centre D + (w - w')/2).
            let stride = (r / 64).max(1);
            let mut sps = 0.0;
            let mut jj = 0u64;
            while jj < r {
                let j = jj as f64;
                let centre = |d_levelframes: f64| d_levelframes * w + 0.5 * (w - w2);
                // first product: S(t,s) P(t+k,s+k'), t+k = (s+k')r + j.
                sps += sp(centre(k2 as f64 * r as f64 + j - k as f64));
                // P(t,s) S(t+k,s+k'), t = sr + j.
                sps += sp(centre(j + k as f64 - k2 as f64 * r as f64));
                // second product: S(t,s+k') P(t+k,s), t+k = sr + j.
                sps += sp(centre(j - k as f64 - k2 as f64 * r as f64));
                // P(t,s+k') S(t+k,s), t = (s+k')r + j.
                sps += sp(centre(k2 as f64 * r as f64 + j + k as f64));
                jj += stride;
            }
            v += n_s * shot * sps * stride as f64;
            // speckle × speckle.
            let (kw, kw2) = (k as f64 * w, k2 as f64 * w2);
            v += x_len / (w * w2) * (area(kw2 - kw) + area(kw2 + kw));
            if i == j {
                let nl = nbar * w;
                v += c * h(kw) / (nl * nl) * nk;
            }
            v /= nk * nk2 * s.bin_pixels;
            cov[(i, j)] = v;
            cov[(j, i)] = v;
        }
    }
    cov
}

/// Covariance of the free parameters (indices into (a, c, ln τ, β)); None if singular.
fn covariance(f: &DMatrix<f64>, idx: &[usize]) -> Option<DMatrix<f64>> {
    let sub = DMatrix::from_fn(idx.len(), idx.len(), |i, j| f[(idx[i], idx[j])]);
    // Scale to unit diagonal before inverting: the entries span many decades.
    let d: Vec<f64> = (0..idx.len()).map(|i| sub[(i, i)].sqrt()).collect();
    if d.iter().any(|&v| !(v.is_finite() && v > 0.0)) {
        return None;
    }
    let scaled = DMatrix::from_fn(idx.len(), idx.len(), |i, j| sub[(i, j)] / (d[i] * d[j]));
    let inv = scaled.try_inverse()?;
    Some(DMatrix::from_fn(idx.len(), idx.len(), |i, j| {
        inv[(i, j)] / (d[i] * d[j])
    }))
}

/// Covariance of the free parameters of a weighted least-squares fit whose weights are
/// 1/Var ĝ2(k) (the correlator's errors) when the g2 errors have the full covariance `cov`:
/// the sandwich A Jᵀ W Σ W J A with A = (Jᵀ W J)⁻¹. None if singular.
fn sandwich(s: &Setting, cov: &DMatrix<f64>, idx: &[usize]) -> Option<DMatrix<f64>> {
    let pts = multitau_points(s.n_frames, s.num_bufs);
    let m = pts.len();
    let jac = DMatrix::from_fn(m, idx.len(), |k, a| {
        let t = pts[k].lag_frames as f64 * s.frame_time_s;
        gradient(t, s.contrast, s.tau_s, s.kww_exponent).1[idx[a]]
    });
    let wj = DMatrix::from_fn(m, idx.len(), |k, a| jac[(k, a)] / cov[(k, k)]);
    let info = jac.transpose() * &wj;
    let a = covariance(&info, &(0..idx.len()).collect::<Vec<_>>())?;
    let meat = wj.transpose() * cov * &wj;
    Some(&a * meat * &a)
}

/// The Fisher prediction for a setting.
pub fn predict(s: &Setting) -> Result<Prediction> {
    s.validate()?;
    let f = fisher_matrix(s);
    let mut idx = Vec::new();
    if s.free.baseline {
        idx.push(0);
    }
    if s.free.contrast {
        idx.push(1);
    }
    idx.push(2);
    if s.free.kww_exponent {
        idx.push(3);
    }
    let singular = || {
        Error::invalid(
            "plan setting",
            format!(
                "the Fisher matrix is singular: {} frames of {} s give too few lags to fit {} \
                 parameters",
                s.n_frames,
                s.frame_time_s,
                idx.len()
            ),
        )
    };
    let indep = covariance(&f, &idx).ok_or_else(singular)?;
    let pos_tau = idx.iter().position(|&i| i == 2).expect("τ is always free");
    let independent_lags = indep[(pos_tau, pos_tau)].max(0.0).sqrt();
    let cov = sandwich(s, &lag_covariance(s), &idx).ok_or_else(singular)?;
    let tau_only = covariance(&f, &[2]).ok_or_else(singular)?[(0, 0)].sqrt();
    let pos = |k: usize| idx.iter().position(|&i| i == k);
    let sd = |k: usize| pos(k).map(|i| cov[(i, i)].max(0.0).sqrt());
    let sigma = sd(2).expect("τ is always free");
    let t_over_tau = s.scan_s() / s.tau_s;
    Ok(Prediction {
        sigma_ln_tau: sigma,
        rel_contrast: sd(1).map(|v| v / s.contrast),
        sigma_kww_exponent: sd(3),
        sigma_baseline: sd(0),
        closed_form_sigma_ln_tau: closed_form_sigma_ln_tau(s),
        tau_only_sigma_ln_tau: tau_only,
        inflation: independent_lags / tau_only,
        independent_lags_sigma_ln_tau: independent_lags,
        regime: Regime {
            high_count: s.mean_count() >= 0.2,
            short_scan: t_over_tau < 3.0,
            slow_frames: s.frame_time_s > s.tau_s / 10.0,
            nonlinear: sigma > 0.3,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(t_over_tau: f64, dt_over_tau: f64, free: FreeParams) -> Setting {
        let tau = 40.0;
        let dt = dt_over_tau * tau;
        Setting {
            tau_s: tau,
            kww_exponent: 1.8,
            contrast: 0.015,
            rate_per_pixel_hz: 0.6,
            bin_pixels: 1e5,
            frame_time_s: dt,
            n_frames: (t_over_tau / dt_over_tau).round() as usize,
            free,
            num_bufs: 8,
        }
    }

    #[test]
    fn k_beta_matches_design_table() {
        // docs/model.md §7 quotes K to three decimals.
        for (b, k) in [(1.0, 0.354), (1.5, 0.473), (1.8, 0.537), (2.0, 0.577)] {
            assert!((k_beta(b) - k).abs() < 6e-4, "K({b}) = {}", k_beta(b));
        }
    }

    #[test]
    fn schedule_matches_the_correlator_rule() {
        // N = 20, 4 buffers: level 0 lags 1..3; level 1 lags 4, 6 (in-level 2, 3);
        // level 2 lags 8, 12; level 3 (2·8 = 16 < 20) lags 16 (in-level 2 < ⌊20/8⌋ = 2? no).
        let p = multitau_points(20, 4);
        let lags: Vec<u64> = p.iter().map(|q| q.lag_frames).collect();
        assert_eq!(lags, vec![1, 2, 3, 4, 6, 8, 12]);
        let pairs: Vec<u64> = p.iter().map(|q| q.n_pairs).collect();
        // level 1: ⌊20/2⌋ = 10 level-frames; level 2: 5.
        assert_eq!(pairs, vec![19, 18, 17, 8, 7, 3, 2]);
    }

    #[test]
    fn numeric_fisher_reproduces_closed_form() {
        // Long scan, short frames, τ alone: the sum over multi-tau lags approaches the integral
        // behind the closed form. Multi-tau carries the same information per unit lag as linear
        // lags (each level-L point has 2^L times the information, 2^L apart); the residual
        // difference is the discretisation of the level-0 region and the N_k < N edge, a few %.
        for beta in [1.0, 1.5, 1.8, 2.0] {
            let mut s = setting(200.0, 0.005, FreeParams::TAU_ONLY);
            s.kww_exponent = beta;
            let p = predict(&s).unwrap();
            let r = p.tau_only_sigma_ln_tau / p.closed_form_sigma_ln_tau;
            assert!((r - 1.0).abs() < 0.08, "β = {beta}: numeric/closed = {r}");
        }
    }

    #[test]
    fn inflation_follows_design_figures() {
        // docs/model.md §7: free c and β inflate ×1.4; a free baseline ×1.5 at T/τ ≥ 10, up to ×20
        // at T/τ ≈ 1. Quoted to one digit, so ±25 % here; the T/τ ≈ 1 figure only as "large".
        let cb = predict(&setting(50.0, 0.02, FreeParams::DEFAULT)).unwrap();
        assert!(
            (cb.inflation / 1.4 - 1.0).abs() < 0.25,
            "c,β: {}",
            cb.inflation
        );
        let all10 = predict(&setting(10.0, 0.02, FreeParams::ALL)).unwrap();
        let ratio = all10.independent_lags_sigma_ln_tau
            / predict(&setting(10.0, 0.02, FreeParams::DEFAULT))
                .unwrap()
                .independent_lags_sigma_ln_tau;
        assert!(
            (ratio / 1.5 - 1.0).abs() < 0.35,
            "baseline at T/τ=10: {ratio}"
        );
        let all1 = predict(&setting(1.2, 0.01, FreeParams::ALL)).unwrap();
        assert!(
            all1.inflation > 5.0,
            "baseline at T/τ≈1: {}",
            all1.inflation
        );
        assert!(all1.regime.short_scan && !all10.regime.short_scan);
    }

    #[test]
    fn scaling_laws() {
        let s = setting(20.0, 0.02, FreeParams::DEFAULT);
        let p = predict(&s).unwrap();
        let mut s4 = s;
        s4.bin_pixels *= 4.0;
        assert!((predict(&s4).unwrap().sigma_ln_tau * 2.0 / p.sigma_ln_tau - 1.0).abs() < 1e-9);
        let mut r2 = s;
        r2.rate_per_pixel_hz *= 2.0;
        // Doubling the rate halves the low-count error, but not the speckle noise.
        let (a, b) = (predict(&r2).unwrap(), p);
        let low = a.independent_lags_sigma_ln_tau * 2.0 / b.independent_lags_sigma_ln_tau;
        assert!((low - 1.0).abs() < 0.02);
        assert!(a.sigma_ln_tau * 2.0 > b.sigma_ln_tau * 1.001);
        assert!(p.rel_contrast.is_some() && p.sigma_kww_exponent.is_some());
        assert!(p.sigma_baseline.is_none());
    }

    #[test]
    fn bad_input_is_an_error() {
        let mut s = setting(20.0, 0.02, FreeParams::DEFAULT);
        s.kww_exponent = 2.5;
        assert!(predict(&s).is_err());
        let mut s = setting(20.0, 0.02, FreeParams::DEFAULT);
        s.n_frames = 2;
        assert!(predict(&s).is_err());
        assert!(FreeParams::parse("contrast,gamma").is_err());
        assert_eq!(
            FreeParams::parse("beta, contrast").unwrap(),
            FreeParams::DEFAULT
        );
    }
}
