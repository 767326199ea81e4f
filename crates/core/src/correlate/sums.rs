//! Exact correlation sums and their normalisation into g2: the part that the dense and the
//! event correlators share, so that "event = dense" holds bit for bit.
//!
//! Both correlators reduce photons to [`MultiTauSums`]: integers only (u64/u128), per *cell*
//! (a cell = the pixels sharing one dynamic label and one static label, see [`Cells`]):
//! - the cell's photon count in every raw frame, `series[cell][t]` (length T: the one piece of
//!   state that grows with the scan, 8 bytes per cell per frame; it is also the
//!   `intensity_vs_time` output);
//! - per lag entry e (level L, in-level lag k, n = ⌊T/2^L⌋ - k level-frame pairs), over the
//!   cell's pixels p: the [`Moments`] of G_p = Σ_{s<n} x_L(s,p)·x_L(s+k,p) (the pixel's
//!   product sum; x_L = level-L frame, the sum of 2^L raw frames), P_p = Σ_{s<n} x_L(s,p)
//!   and F_p = Σ_{s≥k} x_L(s,p).
//!
//! [`MultiTauSums::finish`] turns them into g2 (see [`Estimator`] for the formulas) and g2_err.

use super::lags::{LagEntry, LagSchedule};
use crate::data::QPartition;
use crate::error::{Error, Result};
use ndarray::{Array2, Array3};

/// Pixel groups per dynamic bin for the jackknife error of g2 and of the fits made from it
/// (see [`G2Result::jackknife`]).
pub const JACKKNIFE_GROUPS: usize = 32;

/// Photons a correlated pixel may hold over a whole scan (2^26) in the event correlator. A
/// pixel with m photons has G, P, F ≤ m² < 2^52, so every per-pixel moment (G², G·P, ...)
/// stays below 2^104, and the u128 sums of [`Moments`] are exact for cells of up to 2^24
/// pixels (a whole 16 Mpx detector). Two pixels holding the 2^32 − 1 overflow marker in
/// every frame would wrap them: the correlator refuses them with an error instead.
pub const MAX_PIXEL_PHOTONS: u64 = 1 << 26;

/// Pixels grouped by (dynamic label, static label, jackknife group): the unit every sum is
/// kept per.
///
/// Jackknife groups: the pixels of each dynamic bin, in raster order, are cut into
/// [`JACKKNIFE_GROUPS`] runs of (nearly) equal size, so a group is a compact band of the
/// detector (neighbouring pixels that share a speckle stay together, which keeps the groups
/// close to independent). Pixel p of rank r among the bin's N pixels is in group ⌊r K / N⌋.
#[derive(Debug, Clone, PartialEq)]
pub struct Cells {
    /// Cell index of every pixel (row-major), `u32::MAX` for pixels in no dynamic bin.
    pub cell_of_pixel: Vec<u32>,
    /// Dynamic label (1-based) of every cell.
    pub dynamic_of_cell: Vec<u32>,
    /// Static label of every cell (0 when the pixel has no static label).
    pub static_of_cell: Vec<u32>,
    /// Jackknife group (0-based, < `n_groups`) of every cell.
    pub group_of_cell: Vec<u32>,
    /// Pixels per cell.
    pub pixels_per_cell: Vec<u64>,
    /// Number of dynamic bins (largest dynamic label).
    pub n_bins: usize,
    /// Number of static bins (largest static label).
    pub n_static: usize,
    /// Jackknife groups per dynamic bin.
    pub n_groups: usize,
}

impl Cells {
    /// The cells of a partition with [`JACKKNIFE_GROUPS`] groups per dynamic bin, ordered by
    /// (dynamic label, static label, group).
    pub fn new(part: &QPartition) -> Self {
        Self::with_groups(part, JACKKNIFE_GROUPS)
    }

    /// As [`Cells::new`] with `n_groups` (≥ 1) jackknife groups per dynamic bin.
    pub fn with_groups(part: &QPartition, n_groups: usize) -> Self {
        let n_groups = n_groups.max(1);
        let dl = part.dynamic().labels();
        let sl = part.static_map().labels();
        let n_bins = part.n_bins();
        let mut bin_size = vec![0usize; n_bins + 1];
        for &d in dl {
            if d > 0 {
                bin_size[d as usize] += 1;
            }
        }
        // Per bin: (rank·K of the next pixel, its group ⌊rank·K/N⌋), advanced without a
        // division per pixel. Pass 1 parks each pixel's group in `cell_of_pixel` and collects
        // the keys; neighbouring pixels mostly share a key, so repeats are dropped on the way
        // and few are left to sort.
        let mut next = vec![(0usize, 0usize); n_bins + 1];
        let mut cell_of_pixel = vec![u32::MAX; dl.len()];
        let mut keys: Vec<(u32, u32, u32)> = Vec::new();
        for (p, (&d, &s)) in dl.iter().zip(sl).enumerate() {
            if d == 0 {
                continue;
            }
            let (rk, g) = &mut next[d as usize];
            while (*g + 1) * bin_size[d as usize] <= *rk {
                *g += 1;
            }
            *rk += n_groups;
            cell_of_pixel[p] = *g as u32;
            let k = (d, s, *g as u32);
            if keys.last() != Some(&k) {
                keys.push(k);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        let index = |k: (u32, u32, u32)| keys.binary_search(&k).expect("key exists") as u32;
        let mut pixels_per_cell = vec![0u64; keys.len()];
        // Pass 2: group → cell. The previous pixel's key and cell: a run of equal keys needs
        // one search.
        let mut last: Option<((u32, u32, u32), u32)> = None;
        for (p, (&d, &s)) in dl.iter().zip(sl).enumerate() {
            if d > 0 {
                let k = (d, s, cell_of_pixel[p]);
                let c = match last {
                    Some((lk, c)) if lk == k => c,
                    _ => index(k),
                };
                last = Some((k, c));
                cell_of_pixel[p] = c;
                pixels_per_cell[c as usize] += 1;
            }
        }
        Cells {
            cell_of_pixel,
            dynamic_of_cell: keys.iter().map(|k| k.0).collect(),
            static_of_cell: keys.iter().map(|k| k.1).collect(),
            group_of_cell: keys.iter().map(|k| k.2).collect(),
            pixels_per_cell,
            n_bins,
            n_static: part.static_map().n_bins(),
            n_groups,
        }
    }

    /// Number of cells.
    pub fn n_cells(&self) -> usize {
        self.dynamic_of_cell.len()
    }

    /// Pixels in dynamic bin `k` (1-based).
    pub fn bin_pixels(&self, k: usize) -> u64 {
        (0..self.n_cells())
            .filter(|&c| self.dynamic_of_cell[c] as usize == k)
            .map(|c| self.pixels_per_cell[c])
            .sum()
    }
}

/// How g2 is normalised (recorded in every output as [`Estimator::name`]).
///
/// Notation for one dynamic bin with N pixels and one lag (level L, in-level lag k, n level-frame
/// pairs): G = Σ_p G_p (see the module docs), S(s) = the bin's photons in level-frame s,
/// IP = Σ_{s<n} S(s) ("past"), IF = Σ_{s≥k} S(s) ("future").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// g2 = <G_p/n>_p / (<IP/n>_p <IF/n>_p) = N n G / (IP · IF): normalised after averaging
    /// over the bin's pixels (scikit-beam, boost_corr, Xana).
    #[default]
    Symmetric,
    /// As `Symmetric` per static sub-bin (cell) c, then averaged into the dynamic bin weighted
    /// by pixel count: g2 = Σ_c (N_c/N) · N_c n G_c / (IP_c IF_c) (APS 8-ID-I). Cells with no
    /// photon in IP or IF are left out and the weights renormalised over the others.
    SymmetricStatic,
    /// Ratio of the two-time map's diagonal sums: g2 = Σ_s <x(s)x(s+k)>_p / Σ_s m(s)m(s+k)
    /// = N G / Σ_{s<n} S(s)S(s+k), m = S/N (xpcs-correlator, dynamix). A per-frame intensity
    /// factor a_s (beam drift) multiplies numerator and denominator terms alike: it cancels
    /// exactly when the frames are a_s times one pattern, and in expectation for stationary
    /// speckle (the symmetric estimator is biased by it). The exactly drift-invariant
    /// estimator is the mean of the two-time diagonal,
    /// [`super::TwoTimeResult::g2_from_diagonals`].
    Frame,
}

impl Estimator {
    /// The name written to outputs: "symmetric", "symmetric_static" or "frame".
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Symmetric => "symmetric",
            Estimator::SymmetricStatic => "symmetric_static",
            Estimator::Frame => "frame",
        }
    }
}

/// Why a dynamic bin's g2 is NaN (or `Ok`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinStatus {
    /// Finite g2 at every lag with at least one frame pair.
    Ok,
    /// No pixel carries this label: g2 and g2_err are NaN at every lag.
    Empty,
    /// The bin's pixels recorded no photon: g2 and g2_err are NaN at every lag.
    NoPhotons,
    /// Photons, but at some lags IP, IF (or the frame estimator's denominator) is 0 (e.g.
    /// all photons in one frame): NaN at those lags only.
    ZeroDenominator,
}

/// One-time g2 per lag and dynamic bin: the output of every multi-tau / linear correlator.
///
/// Arrays are (n_lags, n_bins), column k-1 for dynamic label k (the APS
/// `normalized_g2` layout). NaN entries: a lag with no frame pair (lag ≥ level-frames), or a
/// bin whose [`BinStatus`] is not `Ok` (see there).
///
/// g2_err is the delta-method standard error over pixels (formula at
/// [`MultiTauSums::finish`]); NaN for a one-pixel bin or a lag without any product.
#[derive(Debug, Clone, PartialEq)]
pub struct G2Result {
    /// The estimator used.
    pub estimator: Estimator,
    /// The schedule's name.
    pub schedule: String,
    /// Lag of each row, in frames.
    pub lag_frames: Vec<u64>,
    /// Frames averaged into one level-frame at each row (1, 2, 4, ...).
    pub bin_width_frames: Vec<u64>,
    /// Level-frame pairs behind each row (0 → NaN row).
    pub n_pairs: Vec<u64>,
    /// g2, (n_lags, n_bins).
    pub g2: Array2<f64>,
    /// Standard error over pixels, (n_lags, n_bins).
    pub g2_err: Array2<f64>,
    /// Pixels in each dynamic bin.
    pub bin_pixels: Vec<u64>,
    /// Why a bin is NaN, per dynamic bin.
    pub bin_status: Vec<BinStatus>,
    /// Number of raw frames correlated.
    pub n_frames: usize,
    /// Leave-one-group-out g2, (n_groups, n_lags, n_bins): replicate j is g2 computed with
    /// the same estimator from every pixel of the bin except jackknife group j (see
    /// [`Cells`]). NaN for bins with fewer pixels than groups, and where g2 is NaN.
    ///
    /// The jackknife covariance of g2 across lags is ((K-1)/K) Σ_j (g_j - ḡ)(g_j - ḡ)ᵀ; unlike
    /// g2_err it keeps the correlation between lags (multi-tau lags share frames), and a fit
    /// repeated on every replicate gives parameter errors that include it
    /// ([`crate::fit::jackknife`]).
    ///
    /// Reference: B. Efron & C. Stein, Ann. Stat. 9, 586 (1981) (the delete-one-group
    /// jackknife variance).
    pub jackknife: Array3<f64>,
}

impl G2Result {
    /// Jackknife groups (replicates) per bin.
    pub fn n_groups(&self) -> usize {
        self.jackknife.len_of(ndarray::Axis(0))
    }

    /// Drops the lag rows without any frame pair (`n_pairs == 0`: lags the scan is too short
    /// for, NaN in every bin), so that outputs hold only measured delays.
    pub fn without_empty_lags(mut self) -> Self {
        let keep: Vec<usize> = (0..self.lag_frames.len())
            .filter(|&i| self.n_pairs[i] > 0)
            .collect();
        if keep.len() == self.lag_frames.len() {
            return self;
        }
        let pick = |v: &[u64]| keep.iter().map(|&i| v[i]).collect::<Vec<u64>>();
        self.lag_frames = pick(&self.lag_frames);
        self.bin_width_frames = pick(&self.bin_width_frames);
        self.n_pairs = pick(&self.n_pairs);
        self.g2 = self.g2.select(ndarray::Axis(0), &keep);
        self.g2_err = self.g2_err.select(ndarray::Axis(0), &keep);
        self.jackknife = self.jackknife.select(ndarray::Axis(1), &keep);
        self
    }

    /// Delays in seconds: lag_frames × frame_time_s.
    pub fn delay_s(&self, frame_time_s: f64) -> Vec<f64> {
        self.lag_frames
            .iter()
            .map(|&k| k as f64 * frame_time_s)
            .collect()
    }
}

/// Per (cell, lag) sums over the cell's pixels of the per-pixel product sum G_p, past sum
/// P_p = Σ_{s<n} x_L(s,p) and future sum F_p = Σ_{s≥k} x_L(s,p), and of their products: the
/// moments behind g2 and its linearised (delta-method) error. Exact integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moments {
    /// Σ G_p.
    pub g: u128,
    /// Σ P_p (= IP).
    pub p: u128,
    /// Σ F_p (= IF).
    pub f: u128,
    /// Σ G_p².
    pub gg: u128,
    /// Σ P_p².
    pub pp: u128,
    /// Σ F_p².
    pub ff: u128,
    /// Σ G_p P_p.
    pub gp: u128,
    /// Σ G_p F_p.
    pub gf: u128,
    /// Σ P_p F_p.
    pub pf: u128,
}

impl Moments {
    #[inline]
    pub(crate) fn add_pixel(&mut self, g: u64, p: u64, f: u64) {
        if g | p | f == 0 {
            return;
        }
        if (g | p | f) >> 32 == 0 {
            // Products of values below 2^32 fit u64: cheaper than u128 multiplies.
            self.g += u128::from(g);
            self.p += u128::from(p);
            self.f += u128::from(f);
            self.gg += u128::from(g * g);
            self.pp += u128::from(p * p);
            self.ff += u128::from(f * f);
            self.gp += u128::from(g * p);
            self.gf += u128::from(g * f);
            self.pf += u128::from(p * f);
            return;
        }
        let (g, p, f) = (u128::from(g), u128::from(p), u128::from(f));
        self.g += g;
        self.p += p;
        self.f += f;
        self.gg += g * g;
        self.pp += p * p;
        self.ff += f * f;
        self.gp += g * p;
        self.gf += g * f;
        self.pf += p * f;
    }

    /// Removes sums that were added before (exact: every field of `o` is part of `self`).
    pub(crate) fn sub(&mut self, o: &Moments) {
        self.g -= o.g;
        self.p -= o.p;
        self.f -= o.f;
        self.gg -= o.gg;
        self.pp -= o.pp;
        self.ff -= o.ff;
        self.gp -= o.gp;
        self.gf -= o.gf;
        self.pf -= o.pf;
    }

    pub(crate) fn add(&mut self, o: &Moments) {
        self.g += o.g;
        self.p += o.p;
        self.f += o.f;
        self.gg += o.gg;
        self.pp += o.pp;
        self.ff += o.ff;
        self.gp += o.gp;
        self.gf += o.gf;
        self.pf += o.pf;
    }

    /// Σ_p u_p² with u_p = G_p/Ḡ - P_p/P̄ - F_p/F̄ (bars: means over the N pixels), the
    /// squared influence of each pixel on log g2.
    fn sum_u2(&self, n: f64) -> f64 {
        let (g, p, f) = (self.g as f64 / n, self.p as f64 / n, self.f as f64 / n);
        self.gg as f64 / (g * g) + self.pp as f64 / (p * p) + self.ff as f64 / (f * f)
            - 2.0 * self.gp as f64 / (g * p)
            - 2.0 * self.gf as f64 / (g * f)
            + 2.0 * self.pf as f64 / (p * f)
    }
}

/// Exact integer sums from which g2 of every estimator follows (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct MultiTauSums {
    /// The cells the sums are kept per.
    pub cells: Cells,
    /// The lag schedule.
    pub schedule: LagSchedule,
    /// Raw frames seen.
    pub n_frames: usize,
    /// Photons per cell per raw frame, `series[cell][t]`.
    pub series: Vec<Vec<u64>>,
    /// Pixel moments per cell per lag entry, `moments[cell][entry]`.
    pub moments: Vec<Vec<Moments>>,
}

impl MultiTauSums {
    /// Zero sums.
    pub fn new(cells: Cells, schedule: LagSchedule) -> Self {
        let nc = cells.n_cells();
        let nl = schedule.n_lags();
        MultiTauSums {
            cells,
            schedule,
            n_frames: 0,
            series: vec![Vec::new(); nc],
            moments: vec![vec![Moments::default(); nl]; nc],
        }
    }

    /// Adds one pixel of cell `c`: its product, past and future sums, one per lag entry.
    #[inline]
    pub fn add_pixel(&mut self, c: usize, g: &[u64], p: &[u64], f: &[u64]) {
        for (e, m) in self.moments[c].iter_mut().enumerate() {
            m.add_pixel(g[e], p[e], f[e]);
        }
    }

    /// Adds another set of sums over different pixels (same cells, schedule and frames).
    pub fn merge_pixels(&mut self, other: &MultiTauSums) {
        for (a, b) in self.moments.iter_mut().zip(&other.moments) {
            for (x, y) in a.iter_mut().zip(b) {
                x.add(y);
            }
        }
    }

    /// The level-L series of cell c: sums of 2^L raw frames, trailing partial bin dropped.
    fn level_series(&self, c: usize, level: usize) -> Vec<u64> {
        let w = 1usize << level;
        self.series[c]
            .chunks_exact(w)
            .map(|ch| ch.iter().sum())
            .collect()
    }

    /// g2 and g2_err with the chosen estimator, and the jackknife replicates.
    ///
    /// g2_err is the delta-method standard error over pixels: with u_p = G_p/Ḡ - P_p/P̄ -
    /// F_p/F̄ (the influence of pixel p on ln g2 of the symmetric estimator; Σ u_p = -N),
    /// g2_err = g2 · sqrt((Σ u_p² - N) / (N (N - 1))). It treats pixels as independent
    /// (optimistic when a speckle spans several pixels) and each lag on its own. The `Frame`
    /// estimator uses the same linearisation (its denominator Σ S(s)S(s+k) ≈ IP·IF/n).
    /// `SymmetricStatic` combines the static sub-bins' variances with the weights (N_c/N)²; a
    /// one-pixel sub-bin adds no variance. The replicates ([`G2Result::jackknife`]) apply the
    /// same estimator to the bin without one pixel group: the sums are additive, so each is
    /// the total minus one group's sums, exact.
    pub fn finish(&self, estimator: Estimator) -> Result<G2Result> {
        if self.series.iter().any(|s| s.len() != self.n_frames) {
            return Err(Error::invalid(
                "multi-tau sums",
                "per-cell series length differs from the frame count",
            ));
        }
        let entries: Vec<LagEntry> = self.schedule.entries();
        let nl = entries.len();
        let nb = self.cells.n_bins;
        let nc = self.cells.n_cells();
        let kg = self.cells.n_groups;
        let mut n_pairs = vec![0u64; nl];
        for (e, en) in entries.iter().enumerate() {
            let t_l = self.n_frames >> en.level;
            n_pairs[e] = t_l.saturating_sub(en.lag_in_level) as u64;
        }
        let cells_of: Vec<Vec<usize>> = (0..nb)
            .map(|d| {
                (0..nc)
                    .filter(|&c| self.cells.dynamic_of_cell[c] as usize == d + 1)
                    .collect()
            })
            .collect();
        // Frame estimator denominators Σ_s S(s)S(s+k), exact, for the whole bin (index 0) and
        // for the bin without group j (index j + 1): ss[d][e][0..=kg].
        let mut ss = vec![vec![vec![0u128; kg + 1]; nl]; nb];
        if estimator == Estimator::Frame {
            for (d, cells) in cells_of.iter().enumerate() {
                for level in 0..self.schedule.n_levels() {
                    let t_l = self.n_frames >> level;
                    let mut per_group = vec![vec![0u64; t_l]; kg];
                    for &c in cells {
                        let g = self.cells.group_of_cell[c] as usize;
                        for (s, x) in self.level_series(c, level).into_iter().enumerate() {
                            per_group[g][s] += x;
                        }
                    }
                    let total: Vec<u64> = (0..t_l)
                        .map(|s| per_group.iter().map(|v| v[s]).sum())
                        .collect();
                    for (e, en) in entries.iter().enumerate() {
                        if en.level != level || n_pairs[e] == 0 {
                            continue;
                        }
                        let (k, n) = (en.lag_in_level, n_pairs[e] as usize);
                        let dot = |excl: Option<&Vec<u64>>| -> u128 {
                            let v = |i: usize| u128::from(total[i] - excl.map_or(0, |x| x[i]));
                            (0..n).map(|i| v(i) * v(i + k)).sum()
                        };
                        ss[d][e][0] = dot(None);
                        for g in 0..kg {
                            ss[d][e][g + 1] = dot(Some(&per_group[g]));
                        }
                    }
                }
            }
        }
        let mut g2 = Array2::from_elem((nl, nb), f64::NAN);
        let mut g2_err = Array2::from_elem((nl, nb), f64::NAN);
        let mut jackknife = Array3::from_elem((kg, nl, nb), f64::NAN);
        let mut bin_pixels = vec![0u64; nb];
        let mut bin_photons = vec![0u64; nb];
        let mut group_pixels = vec![vec![0u64; kg]; nb];
        for c in 0..nc {
            let d = self.cells.dynamic_of_cell[c] as usize - 1;
            bin_pixels[d] += self.cells.pixels_per_cell[c];
            group_pixels[d][self.cells.group_of_cell[c] as usize] += self.cells.pixels_per_cell[c];
            bin_photons[d] += self.series[c].iter().sum::<u64>();
        }
        let mut bin_status: Vec<BinStatus> = (0..nb)
            .map(|d| {
                if bin_pixels[d] == 0 {
                    BinStatus::Empty
                } else if bin_photons[d] == 0 {
                    BinStatus::NoPhotons
                } else {
                    BinStatus::Ok
                }
            })
            .collect();
        let mut per_group = vec![(Moments::default(), 0u64); kg];
        for e in 0..nl {
            if n_pairs[e] == 0 {
                continue;
            }
            for d in 0..nb {
                if bin_status[d] == BinStatus::Empty || bin_status[d] == BinStatus::NoPhotons {
                    continue;
                }
                let n = n_pairs[e];
                let full = match estimator {
                    Estimator::SymmetricStatic => self.static_value(&cells_of[d], e, n, None),
                    _ => {
                        // Per-group moments once; a replicate is the total minus one group.
                        per_group.fill((Moments::default(), 0u64));
                        for &c in &cells_of[d] {
                            let g = &mut per_group[self.cells.group_of_cell[c] as usize];
                            g.0.add(&self.moments[c][e]);
                            g.1 += self.cells.pixels_per_cell[c];
                        }
                        let mut total = (Moments::default(), 0u64);
                        for g in &per_group {
                            total.0.add(&g.0);
                            total.1 += g.1;
                        }
                        let full = pooled_value(estimator, &total.0, total.1, n, ss[d][e][0]);
                        if full.is_some() && kg >= 2 && !group_pixels[d].contains(&0) {
                            for (j, g) in per_group.iter().enumerate() {
                                let mut m = total.0;
                                m.sub(&g.0);
                                let r =
                                    pooled_value(estimator, &m, total.1 - g.1, n, ss[d][e][j + 1]);
                                jackknife[[j, e, d]] = r.map_or(f64::NAN, |x| x.0);
                            }
                        }
                        full
                    }
                };
                match full {
                    Some((v, err)) => {
                        g2[[e, d]] = v;
                        g2_err[[e, d]] = err;
                    }
                    None => {
                        bin_status[d] = BinStatus::ZeroDenominator;
                        continue;
                    }
                }
                if estimator == Estimator::SymmetricStatic
                    && kg >= 2
                    && !group_pixels[d].contains(&0)
                {
                    for j in 0..kg {
                        let r = self.static_value(&cells_of[d], e, n, Some(j as u32));
                        jackknife[[j, e, d]] = r.map_or(f64::NAN, |x| x.0);
                    }
                }
            }
        }
        Ok(G2Result {
            estimator,
            schedule: self.schedule.name().to_string(),
            lag_frames: entries.iter().map(|e| e.lag_frames).collect(),
            bin_width_frames: entries.iter().map(|e| e.bin_width_frames).collect(),
            n_pairs,
            g2,
            g2_err,
            bin_pixels,
            bin_status,
            n_frames: self.n_frames,
            jackknife,
        })
    }

    /// `SymmetricStatic` g2 and g2_err of one bin (its cells `cells`, sorted by static label)
    /// at lag entry `e` with `n_pairs` level-frame pairs, leaving out jackknife group `excl`.
    /// None when no static sub-bin has both denominators > 0.
    fn static_value(
        &self,
        cells: &[usize],
        e: usize,
        n_pairs: u64,
        excl: Option<u32>,
    ) -> Option<(f64, f64)> {
        let n = n_pairs as f64;
        let used = cells
            .iter()
            .copied()
            .filter(|&c| Some(self.cells.group_of_cell[c]) != excl);
        // Merge the groups of each static sub-bin (cells are sorted by static label).
        let mut subs: Vec<(u32, Moments, u64)> = Vec::new();
        for c in used {
            let s = self.cells.static_of_cell[c];
            if subs.last().is_none_or(|x| x.0 != s) {
                subs.push((s, Moments::default(), 0));
            }
            let last = subs.last_mut().expect("just pushed");
            last.1.add(&self.moments[c][e]);
            last.2 += self.cells.pixels_per_cell[c];
        }
        let (mut sum, mut var, mut w_used) = (0.0, 0.0, 0.0);
        let mut err_ok = true;
        for (_, m, ncp) in &subs {
            let ncp = *ncp as f64;
            let (ipc, ifc) = (m.p as f64, m.f as f64);
            if ipc * ifc > 0.0 {
                let gc = ncp * n * m.g as f64 / (ipc * ifc);
                sum += ncp * gc;
                w_used += ncp;
                if m.g == 0 {
                    err_ok = false;
                } else if ncp > 1.0 {
                    let v = ((m.sum_u2(ncp) - ncp) / (ncp - 1.0)).max(0.0);
                    var += ncp * ncp * gc * gc * v / ncp;
                }
            }
        }
        (w_used > 0.0).then(|| {
            let err = if err_ok && w_used > 1.0 {
                var.sqrt() / w_used
            } else {
                f64::NAN
            };
            (sum / w_used, err)
        })
    }
}

/// Symmetric or frame g2 and g2_err from pooled moments `m` of `nd` pixels, with `n_pairs`
/// level-frame pairs and the frame estimator's denominator `ss`. None when a denominator is 0.
fn pooled_value(
    estimator: Estimator,
    m: &Moments,
    nd: u64,
    n_pairs: u64,
    ss: u128,
) -> Option<(f64, f64)> {
    let (nd, n) = (nd as f64, n_pairs as f64);
    let (ipd, ifd) = (m.p as f64, m.f as f64);
    let val = if estimator == Estimator::Frame {
        let den = ss as f64;
        (den > 0.0).then(|| nd * m.g as f64 / den)
    } else {
        (ipd * ifd > 0.0).then(|| nd * n * m.g as f64 / (ipd * ifd))
    };
    val.map(|v| {
        let err = if m.g > 0 && ipd * ifd > 0.0 && nd > 1.0 {
            let var = ((m.sum_u2(nd) - nd) / (nd - 1.0)).max(0.0);
            v * (var / nd).sqrt()
        } else {
            f64::NAN
        };
        (v, err)
    })
}

#[cfg(test)]
mod tests {
    use super::Cells;
    use crate::data::{LabelMap, QPartition};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The cells equal their definition: pixel of rank r among its dynamic bin's N pixels
        /// in group ⌊rK/N⌋, cells = sorted distinct (dynamic, static, group) keys (bins
        /// smaller and larger than K, several static labels per bin).
        #[test]
        fn cells_follow_their_definition(
            dl in prop::collection::vec(0u32..4, 1..300),
            sl_seed in prop::collection::vec(0u32..3, 300),
            k in 1usize..40,
        ) {
            // A partition needs a labelled pixel (QPartition::new refuses an all-zero map).
            prop_assume!(dl.iter().any(|&l| l > 0));
            let n = dl.len();
            let sl: Vec<u32> = (0..n).map(|p| if dl[p] > 0 { sl_seed[p] } else { 0 }).collect();
            let d = LabelMap::new(1, n, dl.clone(), "t").unwrap();
            let s = LabelMap::new(1, n, sl.clone(), "t").unwrap();
            let part = QPartition::new(dl.iter().map(|&l| l > 0).collect(), d, s, "t").unwrap();
            let cells = Cells::with_groups(&part, k);
            let size = |b: u32| dl.iter().filter(|&&x| x == b).count();
            let mut rank = [0usize; 4];
            let mut keys = Vec::new();
            for p in 0..n {
                if dl[p] > 0 {
                    let b = dl[p] as usize;
                    keys.push((dl[p], sl[p], (rank[b] * k / size(dl[p])) as u32));
                    rank[b] += 1;
                }
            }
            let mut sorted = keys.clone();
            sorted.sort_unstable();
            sorted.dedup();
            let mut it = keys.iter();
            for p in 0..n {
                if dl[p] == 0 {
                    prop_assert_eq!(cells.cell_of_pixel[p], u32::MAX);
                    continue;
                }
                let key = *it.next().unwrap();
                let c = cells.cell_of_pixel[p] as usize;
                prop_assert_eq!(c, sorted.binary_search(&key).unwrap());
                prop_assert_eq!(
                    (cells.dynamic_of_cell[c], cells.static_of_cell[c], cells.group_of_cell[c]),
                    key
                );
            }
            prop_assert_eq!(cells.n_cells(), sorted.len());
        }
    }
}
