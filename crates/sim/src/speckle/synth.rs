//! Speckle synthesis and ideal photon counting: scene + dynamics → photons per pixel.
//!
//! Input: a [`Scene`] (per pixel: mean counts per frame μ, clock-rate factor r, static and
//! incoherent fractions; contrast c and modes M), the scan [`Dynamics`] and an [`Exposure`]
//! (frames, frame time). Output: per-pixel CSR photon lists ([`PixelBlock`]s handed to a sink,
//! or a whole [`EventList`] / dense [`FrameStack`] for small runs), pixels row-major, frames
//! from 0, counts ≥ 1, from an ideal detector (Poisson, no dead time).
//!
//! Intensity per pixel (mean 1): I = (1 - x_b) S + x_b, S = (1 - a) + a Σ_m w_m |E_m|²,
//! E_m = sqrt(1-x) A_m(r u(t)) + sqrt(x) B_m with A_m independent dynamic fields, B_m static
//! circular Gaussian speckle, ⌈M⌉ fields with weights w (Σ w = 1, Σ w² = 1/M: equal for
//! integer M, one lighter field otherwise) and a = sqrt(c M) (c M ≤ 1). M = 1/c is the pure
//! mode sum (Gamma-distributed intensity for integer M); M = 1 is the one-mode fast form
//! I = 1 - sqrt(c) + sqrt(c)|E|² (mean, variance, g2 and two-time exact; higher moments off by
//! O(c^1.5)). Avalanche model B replaces each field: E → sqrt(1-φ) E + sqrt(φ) Y.
//! With N domains ([`crate::model::Domains`]) each dynamic field is the coherent sum
//! A_m = Σ_d sqrt(w_d) A_md of independent domain fields, A_md at material time ρ_d r u(t), and
//! a domain's rearrangement replaces only its own fields; all domains share the time grid.
//!
//! Two methods ([`Method`]):
//! - `Exact`: fields at S midpoint sub-samples per frame, frame intensity = their mean,
//!   Poisson counts per pixel-frame. Correlations exactly those of [`crate::model::Truth`]
//!   with the same S. Cost ∝ pixels × frames × S × modes.
//! - `Grid`: fields on a uniform grid of material time (spacing du, in units of the pixel's
//!   own clock), intensity linear between grid points, photons by thinning an inhomogeneous
//!   Poisson process against the pixel's largest grid intensity (Lewis & Shedler, Nav. Res.
//!   Logist. Q. 26, 403, 1979): counts are exactly Poisson with mean μ ∫frame I dt/δt (exact
//!   frame integration). Cost ∝ pixels × (scan/τ)/du × modes + photons / acceptance. The
//!   correlations differ from the ideal model by at most
//!   [`crate::model::truth::grid_interpolation_error_range`] over the scene's static fractions
//!   × (1 - x_b)² c.
//!
//! Reproducibility: pixels are cut into blocks of `block_pixels`; block b draws from
//! `rng::stream(subseed(seed, "speckle"), b)`, so output is bit-identical for any thread
//! count (it depends on the block size).
//!
//! Reference: docs/model.md §3; Goodman, Statistical Optics (1985) (modes, static fields).

use super::generators::{complex_normal, CirculantPlan, Generator, Scratch};
use crate::model::{truth, ClockTable, Domains, Dynamics, PixelOptics, Sampling};
use num_complex::Complex64;
use rand::RngExt;
use rand_distr::{Distribution, Exp1, Poisson};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::data::{EventList, FrameStack};
use xpcs_core::error::{Error, Result};

/// A value that is either the same for every pixel or given per pixel. The one per-pixel type
/// of the simulation half: the instrument's scene ([`crate::instrument::scene::Scene`]) and the
/// simulator's [`Scene`] both hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum PerPixel {
    /// One value for all pixels.
    Uniform(f64),
    /// One value per pixel, row-major.
    Map(Vec<f64>),
}

impl PerPixel {
    /// The value at pixel p.
    #[inline]
    pub fn at(&self, p: usize) -> f64 {
        match self {
            PerPixel::Uniform(v) => *v,
            PerPixel::Map(m) => m[p],
        }
    }
    fn check(&self, n: usize, field: &str, lo: f64, hi: f64) -> Result<()> {
        match self {
            PerPixel::Uniform(v) => check_range("scene", field, *v, lo, hi).map(|_| ()),
            PerPixel::Map(m) => {
                if m.len() != n {
                    return Err(Error::ShapeMismatch {
                        origin: "scene".into(),
                        what: field.into(),
                        expected: vec![n],
                        got: vec![m.len()],
                    });
                }
                for (p, &v) in m.iter().enumerate() {
                    check_range("scene", &format!("{field}[{p}]"), v, lo, hi)?;
                }
                Ok(())
            }
        }
    }
}

/// What the instrument hands the simulator: per-pixel plain data (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Detector rows.
    pub rows: usize,
    /// Detector columns.
    pub cols: usize,
    /// Mean counts per pixel per frame (0 = dead or gap pixel).
    pub mean_counts: Vec<f64>,
    /// Clock-rate factor per pixel, (q_p/q1)^α.
    pub rate_factor: PerPixel,
    /// Speckle contrast c (times the nonergodicity factor squared).
    pub contrast: f64,
    /// Number of modes M ≥ 1 (real).
    pub modes: f64,
    /// Static speckled fraction x.
    pub static_fraction: PerPixel,
    /// Incoherent background fraction x_b.
    pub incoherent_fraction: PerPixel,
}

impl Scene {
    /// A uniform scene: every pixel alike.
    pub fn uniform(rows: usize, cols: usize, mean_counts: f64, contrast: f64, modes: f64) -> Self {
        Scene {
            rows,
            cols,
            mean_counts: vec![mean_counts; rows * cols],
            rate_factor: PerPixel::Uniform(1.0),
            contrast,
            modes,
            static_fraction: PerPixel::Uniform(0.0),
            incoherent_fraction: PerPixel::Uniform(0.0),
        }
    }

    /// Checks shapes and ranges (c M ≤ 1, fractions in [0, 1], μ ≥ 0, r > 0).
    pub fn validate(&self) -> Result<()> {
        let n = self.rows * self.cols;
        if self.mean_counts.len() != n {
            return Err(Error::ShapeMismatch {
                origin: "scene".into(),
                what: "mean_counts".into(),
                expected: vec![n],
                got: vec![self.mean_counts.len()],
            });
        }
        if let Some(p) = self
            .mean_counts
            .iter()
            .position(|&m| !(m.is_finite() && (0.0..=MAX_MEAN_COUNTS).contains(&m)))
        {
            return Err(Error::out_of_range(
                "scene",
                format!("mean_counts[{p}] (photons per pixel per frame)"),
                self.mean_counts[p],
                MEAN_COUNTS_RANGE,
            ));
        }
        check_range("scene", "modes", self.modes, 1.0, 1e6)?;
        check_range(
            "scene",
            "contrast",
            self.contrast,
            0.0,
            1.0 / self.modes + 1e-12,
        )?;
        self.rate_factor.check(n, "rate_factor", 1e-9, 1e9)?;
        self.static_fraction.check(n, "static_fraction", 0.0, 1.0)?;
        self.incoherent_fraction
            .check(n, "incoherent_fraction", 0.0, 1.0)?;
        Ok(())
    }

    /// Optics of pixel p for the ground truth.
    pub fn optics(&self, p: usize) -> PixelOptics {
        PixelOptics {
            mean_counts: self.mean_counts[p],
            rate: self.rate_factor.at(p),
            contrast: self.contrast,
            static_fraction: self.static_fraction.at(p),
            incoherent_fraction: self.incoherent_fraction.at(p),
        }
    }

    /// Field weights w_m (Σ w = 1, Σ w² = 1/M) for M modes.
    pub fn mode_weights(&self) -> Vec<f64> {
        mode_weights(self.modes)
    }
}

/// Weights of ⌈M⌉ fields with Σ w = 1 and Σ w² = 1/M: k = ⌈M⌉ - 1 equal weights
/// w = [k + sqrt(k((k+1)/M - 1))]/(k(k+1)) and one weight 1 - k w.
pub fn mode_weights(m: f64) -> Vec<f64> {
    let n = m.ceil().max(1.0) as usize;
    if (m - n as f64).abs() < 1e-12 || n == 1 {
        return vec![1.0 / n as f64; n];
    }
    let k = (n - 1) as f64;
    let w = (k + (k * ((k + 1.0) / m - 1.0)).max(0.0).sqrt()) / (k * (k + 1.0));
    let mut v = vec![w; n - 1];
    v.push((1.0 - k * w).max(0.0));
    v
}

/// Frames and frame time of a scan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    /// Number of frames.
    pub n_frames: usize,
    /// Frame time (s).
    pub frame_time_s: f64,
}

/// Which field generator to use.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum GeneratorKind {
    /// Exact AR(1), β = 1 only.
    Ar1,
    /// Random phasors with K terms.
    Phasors {
        /// K.
        terms: usize,
    },
    /// Circulant embedding (uniform grids).
    Circulant,
}

/// How time is sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// Fields at S midpoint sub-samples per frame; Poisson per pixel-frame.
    Exact {
        /// Sub-samples per frame S ≥ 1.
        subsamples: usize,
    },
    /// Fields on a uniform material-time grid; photons by thinning.
    Grid {
        /// Grid spacing du (pixel material time); None = the largest spacing whose
        /// interpolation error is ≤ `tolerance`.
        du: Option<f64>,
        /// Target interpolation error relative to the contrast term.
        tolerance: f64,
    },
}

/// Simulation options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    /// Generator.
    pub generator: GeneratorKind,
    /// Method.
    pub method: Method,
    /// Pixels per block (the unit of parallel work and of random streams).
    pub block_pixels: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            generator: GeneratorKind::Circulant,
            method: Method::Grid {
                du: None,
                tolerance: 2e-3,
            },
            block_pixels: 4096,
            seed: 0,
        }
    }
}

/// The photons of one block of consecutive pixels, as CSR.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelBlock {
    /// Block index.
    pub index: usize,
    /// First pixel (row-major) of the block.
    pub first_pixel: usize,
    /// Offsets into `frames`/`counts`, length pixels + 1, from 0.
    pub offsets: Vec<u64>,
    /// Frame index of every event, increasing within a pixel.
    pub frames: Vec<u32>,
    /// Count of every event (≥ 1).
    pub counts: Vec<u32>,
}

impl PixelBlock {
    /// Pixels in the block.
    pub fn n_pixels(&self) -> usize {
        self.offsets.len() - 1
    }
    /// Photons in the block.
    pub fn total_counts(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}

/// A validated simulation of one scan.
#[derive(Debug, Clone)]
pub struct Simulator {
    scene: Scene,
    dynamics: Dynamics,
    exposure: Exposure,
    options: SimOptions,
    /// One generator per domain (domain d's plan has spacing ρ_d du).
    generators: Vec<Generator>,
    /// sqrt(w_d) per domain.
    domain_amp: Vec<f64>,
    /// ρ_d per domain.
    domain_rate: Vec<f64>,
    weights: Vec<f64>,
    amplitude: f64,
    table: ClockTable,
    /// Grid spacing and its interpolation error (grid method).
    grid: Option<(f64, f64)>,
    /// Base u (rate 1) at every sub-sample (exact method).
    sub_u: Vec<f64>,
    /// Replacement events, global and per domain, sorted by time.
    events_frames: Vec<SegEvent>,
    /// For event e and domain d, the next event after e that replaces all of d (φ = 1):
    /// what event e mixes into d is overwritten there, so it is generated only up to it.
    next_full: Vec<Vec<Option<usize>>>,
    /// Per domain, circulant plans for shorter runs (ascending points; grid method with events
    /// only): a run cut short by the next full replacement uses the smallest plan that holds it.
    short_generators: Vec<Vec<Generator>>,
    /// Whether the domains' clocks jump on their own (then each domain's field has its own
    /// points: an index offset per segment on the grid, shifted sub-samples when exact).
    local_clocks: bool,
}

/// A replacement event or domain clock jump as the synthesiser applies it.
#[derive(Debug, Clone, PartialEq)]
struct SegEvent {
    /// Time in frames.
    t: f64,
    /// φ.
    phi: f64,
    /// Clock jump J of the domains hit (material time; 0 = none).
    jump: f64,
    /// Domains hit (empty = all).
    domains: Vec<u32>,
}

impl SegEvent {
    fn hits(&self, d: usize) -> bool {
        crate::model::domains::hits(&self.domains, d)
    }
    /// Whether the event replaces part of the fields (a pure clock jump does not).
    fn replaces(&self) -> bool {
        self.phi > 0.0 || self.jump == 0.0
    }
}

/// The largest grid spacing (pixel material time) that keeps every domain clock jump at least
/// two grid steps for the slowest pixel (rate `r_min`): jumps are taken in whole steps, so
/// the rounding changes no jump by more than a quarter. None without domain jumps.
fn jump_spacing_cap(dynamics: &Dynamics, r_min: f64) -> Option<f64> {
    let j_min = dynamics
        .domains()
        .events()
        .iter()
        .map(|e| e.jump)
        .filter(|&j| j > 0.0)
        .fold(f64::INFINITY, f64::min);
    j_min.is_finite().then(|| r_min * j_min / 2.0)
}

/// Grid points the domain clock jumps add to the longest domain field at spacing `du` for
/// pixels up to rate `r_max` (each jump at most round(r J / du) ≤ r J / du + 1 steps).
fn jump_points(dynamics: &Dynamics, r_max: f64, du: f64) -> usize {
    let dom = dynamics.domains();
    (0..dom.len())
        .map(|d| {
            dom.events()
                .iter()
                .filter(|e| e.jump > 0.0 && e.hits(d))
                .map(|e| (r_max * e.jump / du).round() as usize + 1)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

/// For each event e and domain d, the first later event that replaces all of d (φ = 1).
fn next_full_replacements(events: &[SegEvent], n_domains: usize) -> Vec<Vec<Option<usize>>> {
    let mut out = vec![Vec::new(); events.len()];
    let mut cur: Vec<Option<usize>> = vec![None; n_domains];
    for (e, ev) in events.iter().enumerate().rev() {
        out[e] = cur.clone();
        if ev.phi >= 1.0 {
            for (d, c) in cur.iter_mut().enumerate() {
                if ev.hits(d) {
                    *c = Some(e);
                }
            }
        }
    }
    out
}

/// Largest mean count per pixel per frame a scene may ask for: counts are u32 per
/// pixel-frame, and the brightest speckles of a long scan reach ~50 × the mean (exponential
/// intensity tail over 1e9+ pixel-frames), so 1e7 keeps them 8× below 2^32; the grid method's
/// cost grows with the photons, and no photon-counting detector counts more per frame.
pub const MAX_MEAN_COUNTS: f64 = 1e7;
/// [`MAX_MEAN_COUNTS`] as an allowed range for messages.
pub const MEAN_COUNTS_RANGE: &str = "0 to 1e7 photons per pixel per frame (u32 counts)";
/// Most frames of one simulated scan: 2^27 ≈ 1.3e8. The simulator holds per-frame tables
/// (the material clock, 8 bytes per frame; 8 × sub-samples with the exact method), and frame
/// indices are u32 in every output.
pub const MAX_FRAMES: usize = 1 << 27;
/// Most pixels of one simulated scene: 2^28 (16384 × 16384).
pub const MAX_PIXELS: usize = 1 << 28;

/// Checks the size of a scan before anything is allocated for it: rows and columns ≥ 1 with
/// at most [`MAX_PIXELS`] pixels, 1 to [`MAX_FRAMES`] frames, and the per-pixel maps plus the
/// per-frame tables (≈ 48 bytes per pixel, 8 per frame) within 80 % of the available memory.
/// A pure function of its arguments and /proc/meminfo: callers run it first.
pub fn check_size(origin: &str, rows: usize, cols: usize, n_frames: usize) -> Result<()> {
    if rows == 0 {
        return Err(Error::out_of_range(origin, "rows", rows, "≥ 1"));
    }
    if cols == 0 {
        return Err(Error::out_of_range(origin, "cols", cols, "≥ 1"));
    }
    let pixels = rows.saturating_mul(cols);
    if pixels > MAX_PIXELS {
        return Err(Error::out_of_range(
            origin,
            "rows × cols",
            format!("{rows} × {cols}"),
            format!("≤ {MAX_PIXELS} pixels"),
        ));
    }
    if n_frames == 0 || n_frames > MAX_FRAMES {
        return Err(Error::out_of_range(
            origin,
            "frames",
            n_frames,
            format!("1 to {MAX_FRAMES} (the simulator keeps 8 bytes per frame)"),
        ));
    }
    check_memory(origin, 48.0 * pixels as f64 + 8.0 * n_frames as f64)
}

/// Available memory (bytes), Linux `MemAvailable` (None when unknown).
pub fn available_memory_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Refuses `need_bytes` above 80 % of the available memory (unknown memory: no refusal).
pub fn check_memory(origin: &str, need_bytes: f64) -> Result<()> {
    match available_memory_bytes() {
        Some(avail) if need_bytes > 0.8 * avail => Err(Error::out_of_range(
            origin,
            "memory needed",
            format!("{:.2} GB", need_bytes / 1e9),
            format!("≤ 80 % of the {:.2} GB available", avail / 1e9),
        )),
        _ => Ok(()),
    }
}

impl Simulator {
    /// Memory the simulator itself allocates (bytes), estimated without allocating: the
    /// material-clock table (8 bytes per frame), the exact method's sub-sample times (8 per
    /// sub-sample), and for the circulant generator its embedding (M ≥ 2 × grid points:
    /// 16-byte complex row, 8-byte √λ, FFT scratch) plus one field of M points per thread.
    /// The photons it produces are the caller's (the event list or the streamed file).
    pub fn memory_estimate_bytes(
        scene: &Scene,
        dynamics: &Dynamics,
        exposure: &Exposure,
        options: &SimOptions,
    ) -> f64 {
        let nf = exposure.n_frames as f64;
        let mut bytes = 8.0 * (nf + 1.0);
        let grid_points = match options.method {
            Method::Exact { subsamples } => {
                bytes += 8.0 * nf * subsamples as f64;
                nf * subsamples as f64
            }
            Method::Grid { du, tolerance } => {
                let n = scene.rows * scene.cols;
                let r_max = (0..n)
                    .map(|p| scene.rate_factor.at(p))
                    .fold(0.0f64, f64::max);
                let (x_lo, x_hi) = (0..n)
                    .map(|p| scene.static_fraction.at(p))
                    .fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
                let r_min = (0..n)
                    .map(|p| scene.rate_factor.at(p))
                    .fold(f64::INFINITY, f64::min);
                // Invalid spacings are refused by `new` after this estimate: none here.
                let du = match du {
                    Some(d) if d.is_finite() && d > 0.0 => d,
                    None if tolerance.is_finite() && tolerance > 0.0 => {
                        let (lo, hi) = (x_lo.min(x_hi), x_hi);
                        planned_spacing(dynamics, 1.0, lo, hi, tolerance, r_min).0
                    }
                    _ => return bytes,
                };
                let t_end = nf * exposure.frame_time_s;
                let u_span = dynamics.clock().u(t_end) - dynamics.clock().u(0.0);
                (r_max * u_span / du).max(4.0 / du) + 2.0 + jump_points(dynamics, r_max, du) as f64
            }
        };
        if matches!(options.generator, GeneratorKind::Circulant) {
            // One plan per domain; one field per domain (and mode) per thread.
            let m = 4.0 * grid_points;
            let threads = rayon::current_num_threads() as f64;
            let nd = dynamics.domains().len() as f64;
            bytes += nd * m * (16.0 + 8.0 + 16.0) + threads * nd * m * 16.0;
        }
        bytes
    }

    /// Validates everything and plans the generator.
    pub fn new(
        scene: Scene,
        dynamics: Dynamics,
        exposure: Exposure,
        options: SimOptions,
    ) -> Result<Self> {
        // Sizes first: nothing below allocates before they pass.
        check_size("exposure", scene.rows, scene.cols, exposure.n_frames)?;
        scene.validate()?;
        xpcs_core::check::check_frame_time("exposure", "frame_time_s", exposure.frame_time_s)?;
        if options.block_pixels == 0 {
            return Err(Error::out_of_range("options", "block_pixels", 0, "≥ 1"));
        }
        check_memory(
            "simulation",
            Self::memory_estimate_bytes(&scene, &dynamics, &exposure, &options),
        )?;
        let beta = dynamics.beta();
        let table = ClockTable::new(dynamics.clock(), exposure.n_frames, exposure.frame_time_s);
        let mut events_frames: Vec<SegEvent> = dynamics
            .replacements()
            .iter()
            .map(|&(t, phi)| SegEvent {
                t: t / exposure.frame_time_s,
                phi,
                jump: 0.0,
                domains: Vec::new(),
            })
            .collect();
        events_frames.extend(dynamics.domains().events().iter().map(|e| SegEvent {
            t: e.time_s / exposure.frame_time_s,
            phi: e.fraction,
            jump: e.jump,
            domains: e.domains.clone(),
        }));
        let local_clocks = dynamics.domains().has_jumps();
        // Stable: at equal times the global event stays first.
        events_frames.sort_by(|a, b| a.t.total_cmp(&b.t));
        let domain_rate = dynamics.domains().rates().to_vec();
        let domain_amp: Vec<f64> = dynamics
            .domains()
            .weights()
            .iter()
            .map(|w| w.sqrt())
            .collect();
        let n = scene.rows * scene.cols;
        let r_max = (0..n)
            .map(|p| scene.rate_factor.at(p))
            .fold(0.0f64, f64::max);
        let mut grid = None;
        let mut sub_u = Vec::new();
        let n_domains = domain_rate.len();
        let mut short_generators: Vec<Vec<Generator>> = Vec::new();
        let generators = match options.method {
            Method::Grid { .. } => {
                let (du, err) = Self::grid_spacing_of(&scene, &dynamics, &options)?
                    .expect("the grid method has a spacing");
                grid = Some((du, err));
                let u_span = table.u_frames(exposure.n_frames as f64) - table.u_frames(0.0);
                let n_max =
                    (r_max * u_span / du).floor() as usize + 2 + jump_points(&dynamics, r_max, du);
                let mut gens = Vec::with_capacity(domain_rate.len());
                for &rho in &domain_rate {
                    gens.push(match options.generator {
                        GeneratorKind::Ar1 => Generator::ar1(beta)?,
                        GeneratorKind::Phasors { terms } => Generator::phasors(beta, terms)?,
                        GeneratorKind::Circulant => Generator::Circulant(Arc::new(
                            CirculantPlan::new(beta, rho * du, n_max)?,
                        )),
                    });
                    if matches!(options.generator, GeneratorKind::Circulant)
                        && !events_frames.is_empty()
                    {
                        // Halve down to the covariance's support (4 / spacing points), below
                        // which a plan is no smaller.
                        let floor = ((4.0 / (rho * du)).ceil() as usize).max(64);
                        let mut ladder = Vec::new();
                        let mut len = n_max / 2;
                        while len >= floor {
                            ladder.push(Generator::Circulant(Arc::new(CirculantPlan::new(
                                beta,
                                rho * du,
                                len,
                            )?)));
                            len /= 2;
                        }
                        ladder.reverse();
                        short_generators.push(ladder);
                    }
                }
                gens
            }
            Method::Exact { subsamples } => {
                if subsamples == 0 {
                    return Err(Error::out_of_range("options", "subsamples", 0, "≥ 1"));
                }
                let s_n = subsamples;
                sub_u = (0..exposure.n_frames * s_n)
                    .map(|i| {
                        let (f, s) = (i / s_n, i % s_n);
                        dynamics
                            .clock()
                            .u((f as f64 + (s as f64 + 0.5) / s_n as f64) * exposure.frame_time_s)
                    })
                    .collect();
                match options.generator {
                    GeneratorKind::Ar1 => vec![Generator::ar1(beta)?; domain_rate.len()],
                    GeneratorKind::Phasors { terms } => {
                        vec![Generator::phasors(beta, terms)?; domain_rate.len()]
                    }
                    GeneratorKind::Circulant => {
                        // Exact sub-samples are a uniform grid only for a stationary clock
                        // without jumps and one rate for all pixels.
                        let r0 = scene.rate_factor.at(0);
                        let same_rate = (0..n).all(|p| scene.rate_factor.at(p) == r0);
                        let du = if sub_u.len() > 1 {
                            r0 * (sub_u[1] - sub_u[0])
                        } else {
                            1.0
                        };
                        let uniform = sub_u.iter().enumerate().all(|(i, &u)| {
                            (r0 * (u - sub_u[0]) - i as f64 * du).abs() <= 1e-9 * (1.0 + r0 * u)
                        });
                        if !same_rate || !uniform || local_clocks {
                            return Err(Error::invalid(
                                "options",
                                "the circulant generator with the exact method needs a \
                                 stationary clock, no jumps (global or per domain) and one rate \
                                 factor: use the grid method or the phasor generator",
                            ));
                        }
                        let mut gens = Vec::with_capacity(domain_rate.len());
                        for &rho in &domain_rate {
                            gens.push(Generator::Circulant(Arc::new(CirculantPlan::new(
                                beta,
                                rho * du,
                                sub_u.len(),
                            )?)));
                        }
                        gens
                    }
                }
            }
        };
        let weights = scene.mode_weights();
        let amplitude = (scene.contrast * scene.modes).min(1.0).sqrt();
        Ok(Simulator {
            scene,
            dynamics,
            exposure,
            options,
            generators,
            domain_amp,
            domain_rate,
            weights,
            amplitude,
            table,
            grid,
            sub_u,
            next_full: next_full_replacements(&events_frames, n_domains),
            local_clocks,
            events_frames,
            short_generators,
        })
    }

    /// The grid method's spacing du (pixel material time) and its interpolation error for
    /// this scene and dynamics, as [`Simulator::new`] plans it (None for the exact method),
    /// without planning the generators: the truth of a scan with domain clock jumps needs du.
    pub fn grid_spacing_of(
        scene: &Scene,
        dynamics: &Dynamics,
        options: &SimOptions,
    ) -> Result<Option<(f64, f64)>> {
        let Method::Grid { du, tolerance } = options.method else {
            return Ok(None);
        };
        let n = scene.rows * scene.cols;
        let kappa = match options.generator {
            GeneratorKind::Phasors { terms } => 1.0 - 1.0 / terms.max(1) as f64,
            _ => 1.0,
        };
        // The error is not monotonic in x (it vanishes at x = 1): the grid must hold for every
        // static fraction present, not just the largest.
        let (x_lo, x_hi) = (0..n)
            .map(|p| scene.static_fraction.at(p))
            .fold((1.0f64, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let x_lo = x_lo.min(x_hi);
        Ok(Some(match du {
            Some(d) => {
                check_positive("options", "grid du", d)?;
                (d, grid_error(dynamics, d, kappa, x_lo, x_hi))
            }
            None => {
                check_positive("options", "grid tolerance", tolerance)?;
                let r_min = (0..n)
                    .map(|p| scene.rate_factor.at(p))
                    .fold(f64::INFINITY, f64::min);
                planned_spacing(dynamics, kappa, x_lo, x_hi, tolerance, r_min)
            }
        }))
    }

    /// The scene.
    pub fn scene(&self) -> &Scene {
        &self.scene
    }
    /// The dynamics.
    pub fn dynamics(&self) -> &Dynamics {
        &self.dynamics
    }
    /// The exposure.
    pub fn exposure(&self) -> Exposure {
        self.exposure
    }
    /// Grid spacing and its interpolation error relative to the contrast term (grid method).
    pub fn grid(&self) -> Option<(f64, f64)> {
        self.grid
    }
    /// The generator in use.
    pub fn generator(&self) -> &Generator {
        &self.generators[0]
    }

    /// The sampling the ground truth must use: the exact method's sub-samples, or
    /// `quadrature` midpoints per frame for the continuously integrated grid method.
    pub fn truth_sampling(&self, quadrature: usize) -> Sampling {
        Sampling {
            n_frames: self.exposure.n_frames,
            frame_time_s: self.exposure.frame_time_s,
            subsamples: match self.options.method {
                Method::Exact { subsamples } => subsamples,
                Method::Grid { .. } => quadrature.max(1),
            },
            phasors: self.generators[0].phasor_terms(),
            jump_grid: self.grid.map(|(du, _)| du),
        }
    }

    /// Number of pixel blocks.
    pub fn n_blocks(&self) -> usize {
        (self.scene.rows * self.scene.cols).div_ceil(self.options.block_pixels)
    }

    /// Simulates block b (deterministic in the seed and b).
    pub fn block(&self, b: usize) -> Result<PixelBlock> {
        let n = self.scene.rows * self.scene.cols;
        let first = b * self.options.block_pixels;
        let last = (first + self.options.block_pixels).min(n);
        let mut rng =
            crate::rng::stream(crate::rng::subseed(self.options.seed, "speckle"), b as u64);
        let mut ws = Workspace::default();
        let mut out = PixelBlock {
            index: b,
            first_pixel: first,
            offsets: Vec::with_capacity(last - first + 1),
            frames: Vec::new(),
            counts: Vec::new(),
        };
        out.offsets.push(0);
        for p in first..last {
            self.pixel(p, &mut rng, &mut ws, &mut out)?;
            out.offsets.push(out.frames.len() as u64);
        }
        Ok(out)
    }

    /// Simulates every block in parallel (rayon) and hands each to `sink` (in any order;
    /// `PixelBlock::index` says where it goes).
    pub fn for_each_block<F>(&self, sink: F) -> Result<()>
    where
        F: Fn(PixelBlock) -> Result<()> + Sync,
    {
        (0..self.n_blocks())
            .into_par_iter()
            .try_for_each(|b| sink(self.block(b)?))
    }

    /// All photons as one event list (memory ∝ photons).
    pub fn events(&self) -> Result<EventList> {
        self.events_of_blocks(0..self.n_blocks())
    }

    /// The photons of blocks `blocks` (in parallel) as an event list of the whole detector
    /// whose other pixels are empty: a detector shard, bit-identical in its pixels to
    /// [`Simulator::events`] (memory ∝ the shard's photons plus 8 bytes per detector pixel).
    pub fn events_of_blocks(&self, blocks: std::ops::Range<usize>) -> Result<EventList> {
        let blocks = blocks.start.min(self.n_blocks())..blocks.end.min(self.n_blocks());
        let slots: Mutex<Vec<Option<PixelBlock>>> = Mutex::new(vec![None; blocks.len()]);
        blocks.clone().into_par_iter().try_for_each(|b| {
            let blk = self.block(b)?;
            slots.lock().expect("no panic while holding the lock")[b - blocks.start] = Some(blk);
            Ok::<(), Error>(())
        })?;
        let slots = slots.into_inner().expect("no panic while holding the lock");
        let n = self.scene.rows * self.scene.cols;
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0u64);
        offsets.resize((blocks.start * self.options.block_pixels).min(n) + 1, 0);
        let (mut frames, mut counts) = (Vec::new(), Vec::new());
        for blk in slots.into_iter().flatten() {
            let base = frames.len() as u64;
            offsets.extend(blk.offsets[1..].iter().map(|&o| o + base));
            frames.extend_from_slice(&blk.frames);
            counts.extend_from_slice(&blk.counts);
        }
        offsets.resize(n + 1, frames.len() as u64);
        EventList::new(
            self.scene.rows,
            self.scene.cols,
            self.exposure.n_frames,
            self.exposure.frame_time_s,
            offsets,
            frames,
            counts,
        )
    }

    /// All photons as a dense stack (frame, row, col).
    pub fn stack(&self) -> Result<FrameStack> {
        Ok(self.events()?.to_stack())
    }

    /// Fields (all modes) on `points` (pixel material time) for the replacement segments,
    /// then the intensity of each segment into ws.intensity (segment ranges in ws.seg).
    fn intensities<R: rand::Rng + ?Sized>(
        &self,
        p: usize,
        rng: &mut R,
        ws: &mut Workspace,
        seg_ranges: &[(usize, usize)],
    ) -> Result<()> {
        let x = self.scene.static_fraction.at(p);
        let xb = self.scene.incoherent_fraction.at(p);
        let (sa, sx) = ((1.0 - x).sqrt(), x.sqrt());
        let n_pts = ws.points.len();
        let n_modes = self.weights.len();
        let nd = self.domain_rate.len();
        let local = self.local_clocks;
        if local {
            self.domain_clocks(p, ws, seg_ranges.len());
        }
        // Offset into domain d's field in segment k (nonzero on the grid with domain jumps).
        let off = |ws: &Workspace, k: usize, d: usize| if local { ws.doff[k * nd + d] } else { 0 };
        ws.fields.resize(n_modes * nd, Vec::new());
        ws.statics.clear();
        for m in 0..n_modes {
            for d in 0..nd {
                let pts: &[f64] = if local { &ws.dpts[d] } else { &ws.points };
                let field = &mut ws.fields[m * nd + d];
                field.resize(pts.len(), Complex64::new(0.0, 0.0));
                let rho = self.domain_rate[d];
                if rho == 1.0 {
                    self.generators[d].fill(pts, field, rng, &mut ws.scratch)?;
                } else {
                    ws.shifted.clear();
                    ws.shifted.extend(pts.iter().map(|&u| rho * u));
                    self.generators[d].fill(&ws.shifted, field, rng, &mut ws.scratch)?;
                }
            }
            ws.statics.push(if x > 0.0 {
                complex_normal(rng) * sx
            } else {
                Complex64::new(0.0, 0.0)
            });
        }
        ws.intensity.clear();
        ws.seg_start.clear();
        let a = self.amplitude;
        for (k, &(lo, hi)) in seg_ranges.iter().enumerate() {
            if k > 0 && self.events_frames[k - 1].replaces() {
                let ev = &self.events_frames[k - 1];
                let (s, r) = ((1.0 - ev.phi).sqrt(), ev.phi.sqrt());
                let longest = ws.fields[..nd].iter().map(Vec::len).max().unwrap_or(n_pts);
                ws.y.resize(longest, Complex64::new(0.0, 0.0));
                for m in 0..n_modes {
                    for d in (0..nd).filter(|&d| ev.hits(d)) {
                        let len = ws.fields[m * nd + d].len();
                        let lo_d = lo + off(ws, k, d);
                        // Up to the last point read before the next full replacement of d.
                        let stop = match self.next_full[k - 1][d] {
                            Some(j) => (seg_ranges[j].1 + off(ws, j, d) + 1).min(len),
                            None => len,
                        };
                        // The circulant grid starts wherever the segment does: stationarity.
                        let pts: &[f64] = if local { &ws.dpts[d] } else { &ws.points };
                        let (u0, rho) = (pts[lo_d], self.domain_rate[d]);
                        ws.shifted.clear();
                        ws.shifted
                            .extend(pts[lo_d..stop].iter().map(|&u| rho * (u - u0)));
                        let gen = self
                            .short_generators
                            .get(d)
                            .and_then(|l| l.iter().find(|g| g.points_held() >= stop - lo_d))
                            .unwrap_or(&self.generators[d]);
                        gen.fill(&ws.shifted, &mut ws.y[lo_d..stop], rng, &mut ws.scratch)?;
                        let field = &mut ws.fields[m * nd + d];
                        for (f, &y) in field[lo_d..stop].iter_mut().zip(&ws.y[lo_d..stop]) {
                            *f = *f * s + y * r;
                        }
                    }
                }
            }
            ws.seg_start.push(ws.intensity.len());
            for i in lo..=hi {
                let mut sum = 0.0;
                for m in 0..n_modes {
                    let e = if nd == 1 && !local {
                        ws.fields[m][i]
                    } else {
                        (0..nd)
                            .map(|d| ws.fields[m * nd + d][i + off(ws, k, d)] * self.domain_amp[d])
                            .sum::<Complex64>()
                    };
                    sum += self.weights[m] * (e * sa + ws.statics[m]).norm_sqr();
                }
                let s_int = (1.0 - a) + a * sum;
                ws.intensity.push((1.0 - xb) * s_int + xb);
            }
        }
        Ok(())
    }

    fn pixel<R: rand::Rng + ?Sized>(
        &self,
        p: usize,
        rng: &mut R,
        ws: &mut Workspace,
        out: &mut PixelBlock,
    ) -> Result<()> {
        let mu = self.scene.mean_counts[p];
        if mu <= 0.0 {
            return Ok(());
        }
        let r = self.scene.rate_factor.at(p);
        let t_n = self.exposure.n_frames;
        match self.options.method {
            Method::Exact { subsamples } => {
                let s_n = subsamples;
                ws.points.clear();
                ws.points.extend(self.sub_u.iter().map(|&u| r * u));
                // Segment k: sub-samples with k replacement events at or before their time.
                let mut ranges = Vec::with_capacity(self.events_frames.len() + 1);
                let mut lo = 0usize;
                for te in self.events_frames.iter().map(|e| e.t) {
                    let mut hi = lo;
                    while hi < ws.points.len() {
                        let t = (hi / s_n) as f64 + ((hi % s_n) as f64 + 0.5) / s_n as f64;
                        if t >= te {
                            break;
                        }
                        hi += 1;
                    }
                    ranges.push((lo, hi));
                    lo = hi;
                }
                ranges.push((lo, ws.points.len()));
                self.exact_intensities(p, rng, ws, &ranges)?;
                for f in 0..t_n {
                    let i_mean: f64 =
                        ws.frame_int[f * s_n..(f + 1) * s_n].iter().sum::<f64>() / s_n as f64;
                    let lam = mu * i_mean;
                    if lam > 0.0 {
                        let k: f64 = Poisson::new(lam)
                            .map_err(|e| Error::invalid("poisson", e.to_string()))?
                            .sample(rng);
                        if k > 0.0 {
                            out.frames.push(f as u32);
                            out.counts.push(k as u32);
                        }
                    }
                }
            }
            Method::Grid { .. } => {
                let (du, _) = self.grid.expect("grid method has a spacing");
                let u_start = r * self.table.u_frames(0.0);
                let u_end = r * self.table.u_frames(t_n as f64);
                let n_pts = ((u_end - u_start) / du).floor() as usize + 2;
                ws.points.clear();
                ws.points
                    .extend((0..n_pts).map(|j| u_start + j as f64 * du));
                // Segment k spans the grid cells its material times touch.
                let idx = |t_frames: f64, right: bool| -> usize {
                    let g = (r * self.table.u_frames(t_frames) - u_start) / du;
                    let j = if right { g.ceil() } else { g.floor() };
                    (j.max(0.0) as usize).min(n_pts - 1)
                };
                let mut ranges = Vec::with_capacity(self.events_frames.len() + 1);
                let mut t0 = 0.0;
                for te in self.events_frames.iter().map(|e| e.t) {
                    ranges.push((idx(t0, false), idx(te, true).max(idx(t0, false) + 1)));
                    t0 = te;
                }
                ranges.push((idx(t0, false), n_pts - 1));
                let ranges: Vec<(usize, usize)> = ranges
                    .into_iter()
                    .map(|(a, b)| (a.min(n_pts - 2), b.min(n_pts - 1).max(a.min(n_pts - 2) + 1)))
                    .collect();
                self.intensities(p, rng, ws, &ranges)?;
                let bound = ws.intensity.iter().cloned().fold(0.0f64, f64::max);
                if bound <= 0.0 {
                    return Ok(());
                }
                let lam = mu * bound; // candidates per frame
                let jumps = self.table.jumps_frames();
                let (mut jc, mut jsum) = (0usize, 0.0);
                let mut seg = 0usize;
                let mut s = 0.0f64;
                let mut last_frame = u32::MAX;
                loop {
                    let e: f64 = Exp1.sample(rng);
                    s += e / lam;
                    if s >= t_n as f64 {
                        break;
                    }
                    while jc < jumps.len() && jumps[jc].0 <= s {
                        jsum += jumps[jc].1;
                        jc += 1;
                    }
                    while seg < self.events_frames.len() && self.events_frames[seg].t <= s {
                        seg += 1;
                    }
                    let u = r * (self.table.smooth_u_frames(s) + jsum);
                    let (lo, hi) = ranges[seg];
                    let g = (u - u_start) / du;
                    let j = (g.floor().max(lo as f64) as usize).min(hi - 1);
                    let w = (g - j as f64).clamp(0.0, 1.0);
                    let base = ws.seg_start[seg] - lo;
                    let i_val = (1.0 - w) * ws.intensity[base + j] + w * ws.intensity[base + j + 1];
                    if rng.random::<f64>() * bound < i_val {
                        let f = s as u32;
                        if f == last_frame {
                            *out.counts.last_mut().expect("an event exists") += 1;
                        } else {
                            out.frames.push(f);
                            out.counts.push(1);
                            last_frame = f;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Each domain's own clock for pixel p (domain clock jumps only): per segment k (after the
    /// first k events) and domain d, the index offset `doff[k nd + d]` into the domain's field,
    /// and the points `dpts[d]` (pixel material time, before ρ_d) its field is generated at.
    /// Grid: the field runs on the grid extended by its jumps, each taken as round(r J / du)
    /// whole steps, and a segment reads it shifted by the steps so far. Exact: offsets are 0
    /// and each sub-sample's point moves on by r J per jump before it.
    fn domain_clocks(&self, p: usize, ws: &mut Workspace, n_seg: usize) {
        let nd = self.domain_rate.len();
        let r = self.scene.rate_factor.at(p);
        let n_pts = ws.points.len();
        ws.doff.clear();
        ws.doff.resize(n_seg * nd, 0);
        ws.dpts.resize(nd, Vec::new());
        match self.grid {
            Some((du, _)) => {
                for k in 1..n_seg {
                    let ev = &self.events_frames[k - 1];
                    let steps = (r * ev.jump / du).round() as usize;
                    for d in 0..nd {
                        let prev = ws.doff[(k - 1) * nd + d];
                        ws.doff[k * nd + d] = prev + if ev.hits(d) { steps } else { 0 };
                    }
                }
                let u_start = ws.points[0];
                for d in 0..nd {
                    let len = n_pts + ws.doff[(n_seg - 1) * nd + d];
                    let pts = &mut ws.dpts[d];
                    pts.clear();
                    pts.extend((0..len).map(|j| u_start + j as f64 * du));
                }
            }
            None => {
                // Shift of domain d after the first k events: ws.jcum[k nd + d].
                ws.jcum.clear();
                ws.jcum.resize(n_seg * nd, 0.0);
                for k in 1..n_seg {
                    let ev = &self.events_frames[k - 1];
                    for d in 0..nd {
                        let prev = ws.jcum[(k - 1) * nd + d];
                        ws.jcum[k * nd + d] = prev + if ev.hits(d) { r * ev.jump } else { 0.0 };
                    }
                }
                let s_n = n_pts / self.exposure.n_frames.max(1);
                for d in 0..nd {
                    let pts = &mut ws.dpts[d];
                    pts.clear();
                    pts.extend(ws.points.iter().enumerate().map(|(i, &u)| {
                        // The sub-sample's segment: events at or before its time (frames).
                        let t = (i / s_n) as f64 + ((i % s_n) as f64 + 0.5) / s_n as f64;
                        let k = self.events_frames.partition_point(|e| e.t <= t);
                        u + ws.jcum[k * nd + d]
                    }));
                }
            }
        }
    }

    /// Exact method: intensity at every sub-sample into ws.frame_int (segments contiguous).
    fn exact_intensities<R: rand::Rng + ?Sized>(
        &self,
        p: usize,
        rng: &mut R,
        ws: &mut Workspace,
        ranges: &[(usize, usize)],
    ) -> Result<()> {
        // Half-open → inclusive for `intensities`; an empty segment (two events between
        // sub-samples) still applies its replacement to the fields but adds no sub-sample.
        let n = ws.points.len();
        let incl: Vec<(usize, usize)> = ranges
            .iter()
            .map(|&(a, b)| {
                if b > a {
                    (a, b - 1)
                } else {
                    (a.min(n - 1), usize::MAX)
                }
            })
            .collect();
        let guarded: Vec<(usize, usize)> = incl
            .iter()
            .map(|&(a, b)| if b == usize::MAX { (a, a) } else { (a, b) })
            .collect();
        self.intensities(p, rng, ws, &guarded)?;
        ws.frame_int.clear();
        for (k, &(a, b)) in incl.iter().enumerate() {
            if b == usize::MAX {
                continue;
            }
            let st = ws.seg_start[k];
            ws.frame_int
                .extend_from_slice(&ws.intensity[st..st + (b - a + 1)]);
        }
        debug_assert_eq!(ws.frame_int.len(), n);
        Ok(())
    }
}

/// The grid method's interpolation error at spacing `du` (pixel material time) for the scan's
/// field covariance, the domain mixture Σ_d w_d exp(-|ρ_d Δu|^β) (one KWW for a single
/// domain, where w = ρ = 1 gives the same numbers as the single-KWW bound).
fn grid_error(dynamics: &Dynamics, du: f64, kappa: f64, x_lo: f64, x_hi: f64) -> f64 {
    let (dom, beta) = (dynamics.domains(), dynamics.beta());
    truth::grid_interpolation_error_cov(
        |d| dom.isf(d, beta),
        covariance_support(dom),
        du,
        kappa,
        x_lo,
        x_hi,
    )
}

/// The largest spacing whose [`grid_error`] is within `tolerance`, with that error.
fn grid_spacing(
    dynamics: &Dynamics,
    kappa: f64,
    x_lo: f64,
    x_hi: f64,
    tolerance: f64,
) -> (f64, f64) {
    let (dom, beta) = (dynamics.domains(), dynamics.beta());
    truth::grid_spacing_for_cov(
        |d| dom.isf(d, beta),
        covariance_support(dom),
        kappa,
        x_lo,
        x_hi,
        tolerance,
    )
}

/// [`grid_spacing`], halved further while it is coarser than [`jump_spacing_cap`] (slowest
/// pixel rate `r_min`), with its error.
fn planned_spacing(
    dynamics: &Dynamics,
    kappa: f64,
    x_lo: f64,
    x_hi: f64,
    tolerance: f64,
    r_min: f64,
) -> (f64, f64) {
    let (mut du, err) = grid_spacing(dynamics, kappa, x_lo, x_hi, tolerance);
    match jump_spacing_cap(dynamics, r_min) {
        Some(cap) if du > cap => {
            while du > cap && du > 1e-6 {
                du *= 0.5;
            }
            (du, grid_error(dynamics, du, kappa, x_lo, x_hi))
        }
        _ => (du, err),
    }
}

/// Material-time lag beyond which the domain mixture's covariance is negligible: 4 / min ρ_d,
/// where the slowest domain's KWW is exp(-4^β) ≤ e^-4 for β ≥ 1.
fn covariance_support(dom: &Domains) -> f64 {
    4.0 / dom.rates().iter().cloned().fold(f64::MAX, f64::min)
}

/// Per-worker buffers.
#[derive(Debug, Default)]
struct Workspace {
    points: Vec<f64>,
    /// Per domain, the points of its own clock (domain clock jumps only).
    dpts: Vec<Vec<f64>>,
    /// Per segment and domain, the index offset into the domain's field.
    doff: Vec<usize>,
    /// Per segment and domain, the exact method's material-time shift.
    jcum: Vec<f64>,
    shifted: Vec<f64>,
    fields: Vec<Vec<Complex64>>,
    y: Vec<Complex64>,
    statics: Vec<Complex64>,
    intensity: Vec<f64>,
    seg_start: Vec<usize>,
    frame_int: Vec<f64>,
    scratch: Scratch,
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Mode weights: Σ w = 1 and Σ w² = 1/M for any real M ≥ 1, all weights ≥ 0.
        #[test]
        fn mode_weights_give_m_modes(m in 1.0f64..40.0) {
            let w = mode_weights(m);
            prop_assert_eq!(w.len(), m.ceil() as usize);
            prop_assert!(w.iter().all(|&x| x >= 0.0));
            prop_assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            prop_assert!((w.iter().map(|x| x * x).sum::<f64>() - 1.0 / m).abs() < 1e-9);
        }
    }
}
