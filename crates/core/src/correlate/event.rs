//! Event correlator: multi-tau g2, two-time maps and intensities from sparse photons.
//!
//! Input: an [`EventList`] (or pixel blocks of one, [`EventCorrelator::push_pixel_block`], for
//! files that do not fit in memory: a full Eiger scan holds ~2.6e9 photons), a [`QPartition`],
//! a [`LagSchedule`] and the number of frames. Output: the same [`MultiTauSums`] as the dense
//! correlator (hence the same [`G2Result`], bit for bit), [`IntensityStats`], and optionally a
//! [`TwoTimeResult`] equal to the dense one.
//!
//! Work: each pixel's past and future sums are its level total m minus its photons in the
//! level's first / last k level-frames (h, t). Levels whose lags are all below 8 (every level
//! of the default 8-buffer schemes) take `level_lanes`: one pass over the pixel's events
//! gives G, h and t for all 8 in-level lags at once (8-lane integer vectors), added as
//! moments per lag lane. Other levels use correction sums: the per-cell [`Moments`] follow
//! from Σm, Σm² per level plus per-lag sums that only pixels with h, t or G ≠ 0 feed. Both are
//! exact u64 per chunk of pixels (`CorrAcc`), turned into u128 moments. Per pixel and level:
//! the events, the events near the scan's ends and the pairs of (binned) events no further
//! apart than the level's largest lag, so the cost grows with photons and photon pairs, not
//! with pixel-frames or lags.
//! Pixels with ≥ 2^12 photons take the per-pixel u128 path (`pixel_products`), which is also
//! the reference the fast path is tested against. State: per cell, the photons per frame and
//! per-lag sums (independent of the pixel count), so pixel blocks can be streamed, and
//! correlators that saw disjoint pixel sets (shards of a detector) add up exactly
//! ([`EventCorrelator::merge`], [`EventCorrelator::add_sums`]).
//!
//! Reference: Y. Chushkin, C. Caronna & A. Madsen, J. Appl. Cryst. 45, 807 (2012).

use super::intensity::IntensityStats;
use super::lags::LagSchedule;
use super::sums::{Cells, Estimator, G2Result, Moments, MultiTauSums, MAX_PIXEL_PHOTONS};
use super::twotime::{check_request, gram_by_pixel, TwoTimeResult};
use crate::data::{EventList, QPartition};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;

/// Sums of one parallel work item (a chunk of pixels), kept only for the cells its pixels
/// touch (so memory does not grow with cells × chunks).
#[derive(Debug)]
struct Partial {
    /// Touched cells, in order of first appearance.
    cells: Vec<usize>,
    /// Per touched cell: moments per lag entry.
    moments: Vec<Vec<Moments>>,
    /// Per touched cell: photons per raw frame.
    series: Vec<Vec<u64>>,
}

/// A chunk's sums and its pixels' photon totals (global pixel, photons).
type ChunkSums = (Partial, Vec<(usize, u64)>);

/// The multi-tau sums, intensity series and photon totals of one pixel block, computed
/// without the correlator's state ([`EventCorrelator::block_sums`], `&self`: blocks on many
/// threads at once) and added later ([`EventCorrelator::add_block_sums`]). Integers only:
/// adding blocks in any order gives the state that [`EventCorrelator::push_pixel_block`]
/// gives.
#[derive(Debug)]
pub struct BlockSums {
    chunks: Vec<ChunkSums>,
}

/// One pixel's events at one level: level-frames (increasing) and photons.
type BinnedEvents = (Vec<u32>, Vec<u64>);

/// Pixels per parallel work item. Also bounds the pixels summed into one [`CorrAcc`]: with
/// fewer than [`FAST_MAX_PHOTONS`] photons per pixel every u64 correction sum stays below
/// 4096 · 2^48 = 2^60.
const CHUNK: usize = 4096;

/// Pixels with fewer photons (sum of counts) than this take the correction-sum fast path
/// ([`pixel_corrections`]): then h, t, m < 2^12 and g ≤ m² < 2^24, so every product is < 2^48.
const FAST_MAX_PHOTONS: u64 = 1 << 12;

/// One level's lag entries for the fast path.
#[derive(Debug, Clone)]
struct LevelLags {
    /// Level-frames T_L = ⌊T / 2^L⌋.
    t_l: u64,
    /// (in-level lag k, entry index), k increasing, only k < T_L (longer lags have no frame
    /// pair: all their sums stay 0).
    lags: Vec<(u64, usize)>,
    /// Whether the level takes [`level_lanes`] (lags non-empty, all below [`LANES`], T_L ≤
    /// [`LANES_MAX_FRAMES`]); its sums are then the pixel moments themselves
    /// ([`CorrAcc::lanes`]), not correction sums.
    lanes: bool,
    /// For a lanes level: where its row starts in [`FastScratch::lanes_x`] (rows of T_L +
    /// 2·[`LANES`] level-frames, one after the other); the end of the rows otherwise.
    row: usize,
}

#[derive(Debug, Clone)]
struct TwoTimeAcc {
    bin_frames: usize,
    n: usize,
    bins: Vec<usize>,
    /// Processed-bin index of every dynamic label (index label - 1).
    index_of_label: Vec<Option<usize>>,
    /// Dynamic label of every pixel (row-major).
    labels: Vec<u32>,
    /// Upper-triangle numerators, n × n row-major per processed bin.
    num: Vec<Vec<f64>>,
    /// Two-time label of every cell of the correlator (0: none); every cell lies in one.
    label_of_cell: Vec<u32>,
}

/// The event correlator (see the module docs).
#[derive(Debug, Clone)]
pub struct EventCorrelator {
    shape: (usize, usize),
    n_frames: usize,
    sums: MultiTauSums,
    totals: Vec<u64>,
    /// Per level: entry index of each in-level lag 0..=max (u32::MAX = not computed).
    tables: Vec<Vec<u32>>,
    /// Per level: the lag entries the fast path visits.
    levels: Vec<LevelLags>,
    two_time: Option<TwoTimeAcc>,
}

impl EventCorrelator {
    /// A correlator for `n_frames` frames of the partition's shape.
    pub fn new(part: &QPartition, schedule: &LagSchedule, n_frames: usize) -> Self {
        let cells = Cells::new(part);
        let nc = cells.n_cells();
        let mut sums = MultiTauSums::new(cells, schedule.clone());
        sums.n_frames = n_frames;
        sums.series = vec![vec![0; n_frames]; nc];
        let mut tables = Vec::new();
        let mut e = 0u32;
        for l in 0..schedule.n_levels() {
            let lags = schedule.level_lags(l);
            let mut t = vec![u32::MAX; lags.last().map_or(0, |&k| k + 1)];
            for &k in lags {
                t[k] = e;
                e += 1;
            }
            tables.push(t);
        }
        let mut levels = Vec::new();
        let mut e = 0;
        let mut row = 0;
        for l in 0..schedule.n_levels() {
            let t_l = (n_frames >> l) as u64;
            let mut lags = Vec::new();
            for &k in schedule.level_lags(l) {
                if (k as u64) < t_l {
                    lags.push((k as u64, e));
                }
                e += 1;
            }
            let lanes =
                lags.last().is_some_and(|&(k, _)| (k as usize) < LANES) && t_l <= LANES_MAX_FRAMES;
            levels.push(LevelLags {
                t_l,
                lags,
                lanes,
                row,
            });
            if lanes {
                row += t_l as usize + 2 * LANES;
            }
        }
        let (r, c) = part.shape();
        EventCorrelator {
            shape: part.shape(),
            n_frames,
            sums,
            totals: vec![0; r * c],
            tables,
            levels,
            two_time: None,
        }
    }

    /// Also accumulates two-time numerators for `bins` (all non-empty bins if empty), with
    /// `bin_frames` raw frames per two-time frame. `part` is the correlator's partition or a
    /// refinement of its pixel cells (each cell of (dynamic, static, jackknife group) lies in
    /// one bin of `part`, and every labelled pixel of `part` in a cell): the photon sums
    /// S(t) and pixel counts of `part`'s bins are added from the cells' series. Otherwise an
    /// error naming the first pixel that breaks this.
    pub fn with_two_time(
        mut self,
        part: &QPartition,
        bins: &[usize],
        bin_frames: usize,
    ) -> Result<Self> {
        let bins = check_request(part, bins, bin_frames, self.n_frames)?;
        let cells = &self.sums.cells;
        let mut label_of_cell: Vec<Option<u32>> = vec![None; cells.n_cells()];
        for (p, &l) in part.dynamic().labels().iter().enumerate() {
            let c = cells.cell_of_pixel[p];
            let fits = if c == u32::MAX {
                l == 0
            } else {
                *label_of_cell[c as usize].get_or_insert(l) == l
            };
            if !fits {
                return Err(Error::invalid(
                    "two-time request",
                    format!(
                        "pixel {p} (two-time label {l}): the two-time partition must be the \
                         correlator's or a refinement of its pixel cells (dynamic, static, \
                         jackknife group)"
                    ),
                ));
            }
        }
        let label_of_cell = label_of_cell.into_iter().map(|l| l.unwrap_or(0)).collect();
        let n = self.n_frames / bin_frames;
        let mut index_of_label = vec![None; part.n_bins()];
        for (i, &k) in bins.iter().enumerate() {
            index_of_label[k - 1] = Some(i);
        }
        self.two_time = Some(TwoTimeAcc {
            bin_frames,
            n,
            num: vec![vec![0.0; n * n]; bins.len()],
            bins,
            index_of_label,
            labels: part.dynamic().labels().to_vec(),
            label_of_cell,
        });
        Ok(self)
    }

    /// Pushes a whole event list (pixel blocks processed in parallel).
    pub fn push_events(&mut self, ev: &EventList) -> Result<()> {
        if ev.frame_shape() != self.shape || ev.n_frames() != self.n_frames {
            return Err(Error::ShapeMismatch {
                origin: "event list".into(),
                what: "(rows, cols, frames) vs correlator".into(),
                expected: vec![self.shape.0, self.shape.1, self.n_frames],
                got: vec![ev.frame_shape().0, ev.frame_shape().1, ev.n_frames()],
            });
        }
        // The list's layout is validated by construction; each pixel's events (and its photons
        // against the exact range of the sums) are checked as the pixel is correlated.
        self.push_checked(
            "event list",
            0,
            ev.offsets(),
            ev.frames(),
            ev.counts(),
            ev.offsets()[0],
        )
    }

    /// Pushes the events of pixels `first_pixel .. first_pixel + offsets.len() - 1` in CSR
    /// form: pixel `first_pixel + i` has events `offsets[i]..offsets[i+1]` of `frames` /
    /// `counts` (offsets may start anywhere; they index these slices after subtracting
    /// `offsets[0]`). Frames strictly increasing per pixel and < n_frames; counts ≥ 1. Blocks
    /// may come in any order but each pixel at most once.
    pub fn push_pixel_block(
        &mut self,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
    ) -> Result<()> {
        self.check_block(first_pixel, offsets, frames, counts)?;
        let base = offsets[0];
        self.push_checked(
            "event pixel block",
            first_pixel,
            offsets,
            frames,
            counts,
            base,
        )
    }

    /// The layout of a pixel block: pixel range within the detector, offsets and lengths. Each
    /// pixel's events are checked as it is correlated (in `chunk_sums`), in the same pass.
    fn check_block(
        &self,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
    ) -> Result<()> {
        let origin = "event pixel block";
        let n_pix = self.shape.0 * self.shape.1;
        if offsets.is_empty() || first_pixel + offsets.len() - 1 > n_pix {
            return Err(Error::out_of_range(
                origin,
                "pixel range",
                format!(
                    "{first_pixel}..{}",
                    first_pixel + offsets.len().saturating_sub(1)
                ),
                format!("within 0..{n_pix}"),
            ));
        }
        crate::data::check_csr_layout(origin, first_pixel, offsets, frames.len(), counts.len())
    }

    /// Refuses pixel `p` of a dynamic bin with [`MAX_PIXEL_PHOTONS`] photons or more over the
    /// scan: its sums of products would leave the exact integer range (see that constant).
    /// Such a pixel is a gap or overflow marker (2^16 − 1, 2^32 − 1 in every frame) or the
    /// direct beam: it should be masked. Pixels in no bin may hold anything (they are only
    /// totalled, in u64).
    #[cold]
    fn photon_limit_error(&self, origin: &str, p: usize, total: u64) -> Error {
        let cols = self.shape.1.max(1);
        Error::out_of_range(
            origin,
            format!(
                "photons of pixel (row {}, col {}) over the scan",
                p / cols,
                p % cols
            ),
            total,
            format!(
                "< {MAX_PIXEL_PHOTONS} (a gap or overflow marker, or the direct beam? mask the \
                 pixel)"
            ),
        )
    }

    /// [`EventCorrelator::push_pixel_block`] in two halves, for readers that build pixel
    /// blocks on several threads: the sums of a block (same arguments and checks), to be
    /// added with [`EventCorrelator::add_block_sums`]. Not with a two-time request (its
    /// numerators are not part of [`BlockSums`]): that is an error.
    pub fn block_sums(
        &self,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
    ) -> Result<BlockSums> {
        if self.two_time.is_some() {
            return Err(Error::invalid(
                "event pixel block",
                "block sums carry no two-time numerators: push blocks with push_pixel_block",
            ));
        }
        self.check_block(first_pixel, offsets, frames, counts)?;
        let chunks = self.chunk_sums(
            "event pixel block",
            first_pixel,
            offsets,
            frames,
            counts,
            offsets[0],
        )?;
        Ok(BlockSums { chunks })
    }

    /// Adds the sums of a block from [`EventCorrelator::block_sums`] of this correlator.
    pub fn add_block_sums(&mut self, sums: &BlockSums) {
        self.add_partials(&sums.chunks);
    }

    /// Adds a block whose layout is checked (each pixel's events are checked on the way,
    /// before any state changes).
    fn push_checked(
        &mut self,
        origin: &str,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
        base: u64,
    ) -> Result<()> {
        let partials = self.chunk_sums(origin, first_pixel, offsets, frames, counts, base)?;
        self.add_partials(&partials);
        let n_block = offsets.len() - 1;
        let pix = |p: usize| {
            let r = (offsets[p] - base) as usize..(offsets[p + 1] - base) as usize;
            (&frames[r.clone()], &counts[r])
        };
        // Two-time numerators: parallel over processed bins (each owns its matrix).
        if let Some(tt) = &mut self.two_time {
            let labels = &tt.labels;
            let (bf, n) = (tt.bin_frames, tt.n);
            let index_of_label = &tt.index_of_label;
            tt.num.par_iter_mut().enumerate().for_each(|(i, num)| {
                // The block's pixels of this bin, binned by bf, pixel-major.
                let (mut off, mut bfr, mut bct) = (vec![0usize], Vec::new(), Vec::new());
                for p in 0..n_block {
                    let l = labels[first_pixel + p];
                    if l == 0 || index_of_label[l as usize - 1] != Some(i) {
                        continue;
                    }
                    let (fr, ct) = pix(p);
                    let start = bfr.len();
                    for (&f, &k) in fr.iter().zip(ct) {
                        let b = f as usize / bf;
                        if b >= n {
                            break;
                        }
                        if bfr.len() > start && bfr.last() == Some(&(b as u32)) {
                            let last = bct.len() - 1;
                            let c: &mut u32 = &mut bct[last];
                            *c = c.saturating_add(k);
                        } else {
                            bfr.push(b as u32);
                            bct.push(k);
                        }
                    }
                    off.push(bfr.len());
                }
                if bfr.is_empty() {
                    return;
                }
                let g = gram_by_pixel(&off, &bfr, &bct, n, None);
                for a in 0..n {
                    for (x, &v) in num[a * n + a..(a + 1) * n]
                        .iter_mut()
                        .zip(&g.row(a).as_slice().expect("standard layout")[a..])
                    {
                        *x += v;
                    }
                }
            });
        }
        Ok(())
    }

    /// The multi-tau sums, series and photon totals of a checked pixel block, per chunk of
    /// [`CHUNK`] pixels (parallel over chunks; integers, so any merge order gives the same
    /// state).
    fn chunk_sums(
        &self,
        origin: &str,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
        base: u64,
    ) -> Result<Vec<ChunkSums>> {
        let n_block = offsets.len() - 1;
        let n_frames = self.n_frames;
        let cells = &self.sums.cells;
        let tables = &self.tables;
        let nl = self.sums.schedule.n_lags();
        let nc = cells.n_cells();
        let pix = |p: usize| {
            let r = (offsets[p] - base) as usize..(offsets[p + 1] - base) as usize;
            (&frames[r.clone()], &counts[r])
        };
        let levels = &self.levels;
        let avx2 = has_avx2();
        // Multi-tau sums and series: parallel over pixel chunks, each with its own partial
        // sums (integers: the merge order cannot change the result).
        (0..n_block.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut part = Partial {
                    cells: Vec::new(),
                    moments: Vec::new(),
                    series: Vec::new(),
                };
                let mut local_of: Vec<u32> = vec![u32::MAX; nc];
                let mut accs: Vec<CorrAcc> = Vec::new();
                let mut totals = Vec::new();
                let mut g = vec![0u64; nl];
                let mut pf = (vec![0u64; nl], vec![0u64; nl]);
                let mut lists: BinnedEvents = (Vec::new(), Vec::new());
                let mut scratch = FastScratch::default();
                for p in ch * CHUNK..((ch + 1) * CHUNK).min(n_block) {
                    let (fr, ct) = pix(p);
                    let gp = first_pixel + p;
                    let tot: u64 = ct.iter().map(|&c| u64::from(c)).sum();
                    let c = cells.cell_of_pixel[gp];
                    // The pixel's events checked here, on data already in cache (the block's
                    // layout was checked before), and the photon limit of a correlated pixel.
                    crate::data::check_pixel_events(origin, gp, fr, ct, n_frames, u32::MAX)?;
                    if c != u32::MAX && tot >= MAX_PIXEL_PHOTONS {
                        return Err(self.photon_limit_error(origin, gp, tot));
                    }
                    if tot > 0 {
                        totals.push((gp, tot));
                    }
                    if c == u32::MAX || tot == 0 {
                        continue;
                    }
                    let c = c as usize;
                    if local_of[c] == u32::MAX {
                        local_of[c] = part.cells.len() as u32;
                        part.cells.push(c);
                        part.moments.push(vec![Moments::default(); nl]);
                        part.series.push(vec![0; n_frames]);
                        accs.push(CorrAcc::new(levels.len(), nl));
                    }
                    let li = local_of[c] as usize;
                    let series = &mut part.series[li];
                    for (&f, &k) in fr.iter().zip(ct) {
                        series[f as usize] += u64::from(k);
                    }
                    if tot < FAST_MAX_PHOTONS {
                        pixel_corrections(fr, ct, tot, levels, &mut accs[li], &mut scratch, avx2);
                    } else {
                        // Rare bright pixel: its own moments, in u128.
                        pixel_products(fr, ct, tables, n_frames, &mut g, &mut pf, &mut lists);
                        for (e, m) in part.moments[li].iter_mut().enumerate() {
                            m.add_pixel(g[e], pf.0[e], pf.1[e]);
                        }
                    }
                }
                for (ms, acc) in part.moments.iter_mut().zip(&accs) {
                    acc.add_to(levels, ms);
                }
                Ok((part, totals))
            })
            .collect::<Vec<Result<ChunkSums>>>()
            // The first failing chunk's error, whatever the thread count.
            .into_iter()
            .collect()
    }

    /// Adds chunk sums from [`EventCorrelator::chunk_sums`].
    fn add_partials(&mut self, partials: &[ChunkSums]) {
        for (part, totals) in partials {
            for ((&c, ms), series) in part.cells.iter().zip(&part.moments).zip(&part.series) {
                for (x, y) in self.sums.moments[c].iter_mut().zip(ms) {
                    x.add(y);
                }
                for (d, &x) in self.sums.series[c].iter_mut().zip(series) {
                    *d += x;
                }
            }
            for &(p, t) in totals {
                self.totals[p] += t;
            }
        }
    }

    /// The exact sums accumulated so far.
    pub fn sums(&self) -> &MultiTauSums {
        &self.sums
    }

    /// Photons per pixel (row-major) pushed so far.
    pub fn pixel_totals(&self) -> &[u64] {
        &self.totals
    }

    /// The two-time request, when made: (raw frames per two-time frame, processed bins).
    pub fn two_time_request(&self) -> Option<(usize, &[usize])> {
        self.two_time
            .as_ref()
            .map(|t| (t.bin_frames, t.bins.as_slice()))
    }

    /// Upper-triangle two-time numerators Σ_p x_p(T1) x_p(T2) (T1 ≤ T2), one n × n row-major
    /// matrix per processed bin (entries below the diagonal are 0); None without two-time.
    pub fn two_time_numerators(&self) -> Option<&[Vec<f64>]> {
        self.two_time.as_ref().map(|t| t.num.as_slice())
    }

    /// Adds the sums of `other`, a correlator of the same partition, schedule, frames and
    /// two-time request that saw *other* pixels (a shard of the detector): every sum is an
    /// integer (the two-time numerators are integers held exactly in f64 below 2^53), so the
    /// merged state equals the state of one correlator that saw both pixel sets, whatever the
    /// order of the merges. A pixel seen by both is counted twice (the caller keeps shards
    /// disjoint).
    pub fn merge(&mut self, other: &EventCorrelator) -> Result<()> {
        self.check_compatible(other)?;
        let tt = other.two_time.as_ref().map(|t| t.num.as_slice());
        self.add_sums(
            &other.sums.moments,
            &other.sums.series,
            0,
            &other.totals,
            tt,
        )
    }

    fn check_compatible(&self, other: &EventCorrelator) -> Result<()> {
        let same_request = match (&self.two_time, &other.two_time) {
            (None, None) => true,
            (Some(a), Some(b)) => a.bin_frames == b.bin_frames && a.bins == b.bins,
            _ => false,
        };
        if self.shape != other.shape
            || self.n_frames != other.n_frames
            || self.sums.schedule != other.sums.schedule
            || self.sums.cells != other.sums.cells
            || !same_request
        {
            return Err(Error::invalid(
                "correlator merge",
                "the correlators differ in frame shape, frames, lag schedule, partition or                  two-time request",
            ));
        }
        Ok(())
    }

    /// Adds sums kept elsewhere (e.g. read back from a shard's partial file): `moments` and
    /// `series` per cell in this correlator's cell order, photon totals of pixels
    /// `first_pixel..first_pixel + totals.len()`, and the two-time numerators in the layout
    /// of [`EventCorrelator::two_time_numerators`] (required exactly when two-time was
    /// requested). Shapes are checked; nothing is added on a mismatch.
    pub fn add_sums(
        &mut self,
        moments: &[Vec<Moments>],
        series: &[Vec<u64>],
        first_pixel: usize,
        totals: &[u64],
        two_time: Option<&[Vec<f64>]>,
    ) -> Result<()> {
        let origin = "correlator sums";
        let nc = self.sums.cells.n_cells();
        let nl = self.sums.schedule.n_lags();
        let shape_err = |what: &str, expected: Vec<usize>, got: Vec<usize>| Error::ShapeMismatch {
            origin: origin.into(),
            what: what.into(),
            expected,
            got,
        };
        if moments.len() != nc || moments.iter().any(|m| m.len() != nl) {
            return Err(shape_err(
                "moments (cells, lags)",
                vec![nc, nl],
                vec![moments.len(), moments.first().map_or(0, Vec::len)],
            ));
        }
        if series.len() != nc || series.iter().any(|s| s.len() != self.n_frames) {
            return Err(shape_err(
                "series (cells, frames)",
                vec![nc, self.n_frames],
                vec![series.len(), series.first().map_or(0, Vec::len)],
            ));
        }
        if first_pixel + totals.len() > self.totals.len() {
            return Err(Error::out_of_range(
                origin,
                "pixel range of the totals",
                format!("{first_pixel}..{}", first_pixel + totals.len()),
                format!("within 0..{}", self.totals.len()),
            ));
        }
        match (&self.two_time, two_time) {
            (None, None) => {}
            (Some(t), Some(num)) => {
                if num.len() != t.num.len() || num.iter().any(|m| m.len() != t.n * t.n) {
                    return Err(shape_err(
                        "two-time numerators (bins, n × n)",
                        vec![t.num.len(), t.n * t.n],
                        vec![num.len(), num.first().map_or(0, Vec::len)],
                    ));
                }
            }
            _ => {
                return Err(Error::invalid(
                    origin,
                    "two-time numerators given without a two-time request or missing",
                ))
            }
        }
        for (a, b) in self.sums.moments.iter_mut().zip(moments) {
            for (x, y) in a.iter_mut().zip(b) {
                x.add(y);
            }
        }
        for (a, b) in self.sums.series.iter_mut().zip(series) {
            for (x, &y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        for (a, &b) in self.totals[first_pixel..].iter_mut().zip(totals) {
            *a += b;
        }
        if let (Some(t), Some(num)) = (&mut self.two_time, two_time) {
            for (a, b) in t.num.iter_mut().zip(num) {
                for (x, &y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
        Ok(())
    }

    /// g2 with the chosen estimator.
    pub fn finish(&self, estimator: Estimator) -> Result<G2Result> {
        self.sums.finish(estimator)
    }

    /// Mean intensities.
    pub fn intensity(&self) -> IntensityStats {
        IntensityStats::from_parts(
            &self.sums.cells,
            &self.sums.series,
            &self.totals,
            self.n_frames,
            self.shape,
        )
    }

    /// The two-time result, if requested with [`EventCorrelator::with_two_time`].
    pub fn two_time(&self) -> Option<TwoTimeResult> {
        let tt = self.two_time.as_ref()?;
        let n = tt.n;
        let mut out = TwoTimeResult {
            bin_frames: tt.bin_frames,
            n_frames: n,
            bins: tt.bins.clone(),
            bin_pixels: Vec::new(),
            numerator: Vec::new(),
            bin_sums: Vec::new(),
        };
        for (i, &k) in tt.bins.iter().enumerate() {
            let mut m = Array2::<f64>::zeros((n, n));
            for a in 0..n {
                for b in a..n {
                    let v = tt.num[i][a * n + b];
                    m[[a, b]] = v;
                    m[[b, a]] = v;
                }
            }
            out.numerator.push(m);
            let mut s = vec![0u64; n];
            let mut np = 0;
            for c in 0..self.sums.cells.n_cells() {
                if tt.label_of_cell[c] as usize == k {
                    np += self.sums.cells.pixels_per_cell[c];
                    for (t, &x) in self.sums.series[c][..n * tt.bin_frames].iter().enumerate() {
                        s[t / tt.bin_frames] += x;
                    }
                }
            }
            out.bin_sums.push(s);
            out.bin_pixels.push(np);
        }
        Some(out)
    }
}

/// Product sums G_p, past sums P_p and future sums F_p of one pixel for every lag entry,
/// from its sorted events. `bins`/`cnts` are scratch buffers (the pixel's events, binned in
/// place level after level).
fn pixel_products(
    fr: &[u32],
    ct: &[u32],
    tables: &[Vec<u32>],
    n_frames: usize,
    g: &mut [u64],
    (pp, ff): &mut (Vec<u64>, Vec<u64>),
    (bins, cnts): &mut (Vec<u32>, Vec<u64>),
) {
    g.iter_mut().for_each(|x| *x = 0);
    pp.iter_mut().for_each(|x| *x = 0);
    ff.iter_mut().for_each(|x| *x = 0);
    bins.clear();
    bins.extend_from_slice(fr);
    cnts.clear();
    cnts.extend(ct.iter().map(|&c| u64::from(c)));
    let mut m = bins.len();
    for (level, table) in tables.iter().enumerate() {
        let t_l = (n_frames >> level) as u32;
        if level > 0 {
            // Bin the previous level's events in pairs, in place; drop an incomplete
            // trailing bin.
            let mut w = 0;
            for r in 0..m {
                let b = bins[r] >> 1;
                if b >= t_l {
                    break;
                }
                if w > 0 && bins[w - 1] == b {
                    cnts[w - 1] += cnts[r];
                } else {
                    bins[w] = b;
                    cnts[w] = cnts[r];
                    w += 1;
                }
            }
            m = w;
        }
        if m == 0 {
            return;
        }
        let (b, c) = (&bins[..m], &cnts[..m]);
        // P = total minus the photons of the last k level-frames, F = total minus the first
        // k; k grows along the table, so both edge sums advance with one pointer each.
        let total: u64 = c.iter().sum();
        let (mut hi, mut head) = (0usize, 0u64);
        let (mut ti, mut tail) = (m, 0u64);
        let mut min_lag = u32::MAX;
        for (k, &e) in table.iter().enumerate() {
            let k = k as u32;
            if k >= t_l {
                break;
            }
            if e == u32::MAX {
                continue;
            }
            min_lag = min_lag.min(k);
            while hi < m && b[hi] < k {
                head += c[hi];
                hi += 1;
            }
            let n = t_l - k;
            while ti > 0 && b[ti - 1] >= n {
                ti -= 1;
                tail += c[ti];
            }
            (pp[e as usize], ff[e as usize]) = (total - tail, total - head);
        }
        if min_lag == u32::MAX {
            continue;
        }
        let max_lag = table.len() as u32;
        // j0: first event at least min_lag after event i (moves forward only).
        let mut j0 = 0;
        for i in 0..m {
            let (bi, ci) = (b[i], c[i]);
            j0 = j0.max(i);
            while j0 < m && b[j0] - bi < min_lag {
                j0 += 1;
            }
            for j in j0..m {
                let d = b[j] - bi;
                if d >= max_lag {
                    break;
                }
                let e = table[d as usize];
                if e != u32::MAX {
                    g[e as usize] = g[e as usize].saturating_add(ci.saturating_mul(c[j]));
                }
            }
        }
    }
}

/// One cell's correction sums over its fast-path pixels, exact in u64 (see [`CHUNK`]).
///
/// For lag entry (level L, in-level lag k) a pixel's past and future sums are P = m - t and
/// F = m - h, with m its level-L photon total, h its photons in the first k level-frames and
/// t in the last k. Expanding the [`Moments`] in m, h, t leaves sums of m and m² (per level,
/// shared by all lags) and sums that vanish for every pixel with h = t = G = 0 at that lag:
/// the work per pixel follows its photons near the scan's ends and its photon pairs, not the
/// number of lags.
#[derive(Debug, Clone)]
pub(super) struct CorrAcc {
    /// Per level: [Σ m, Σ m²].
    m: Vec<[u64; 2]>,
    /// Per lag entry: Σ t, Σ h, Σ mt, Σ mh, Σ t², Σ h², Σ ht, Σ G, Σ G², Σ Gm, Σ Gt, Σ Gh.
    v: Vec<[u64; 12]>,
    /// Per level taking [`level_lanes`] (empty for the others): the pixel moments Σ G, Σ P,
    /// Σ F, Σ G², Σ P², Σ F², Σ GP, Σ GF, Σ PF per in-level lag 0..[`LANES`] (lanes that
    /// are no lag entry hold sums nobody reads).
    lanes: Vec<LaneSums>,
}

/// Pixel moments of one level per in-level lag lane, field-major so that a pixel adds each
/// field to all lanes with one vector operation.
pub(super) type LaneSums = [[u64; LANES]; 9];

impl CorrAcc {
    pub(super) fn new(n_levels: usize, n_lags: usize) -> Self {
        CorrAcc {
            m: vec![[0; 2]; n_levels],
            v: vec![[0; 12]; n_lags],
            lanes: vec![[[0; LANES]; 9]; n_levels],
        }
    }

    /// Adds the cell's moments per lag entry to `out`, in u128. Each result is assembled by
    /// adding before subtracting, so no intermediate goes below zero (e.g. Σ(m-t)² =
    /// (Σm² + Σt²) - 2Σmt).
    fn add_to(&self, levels: &[LevelLags], out: &mut [Moments]) {
        for ((lv, &[s1, s2]), a) in levels.iter().zip(&self.m).zip(&self.lanes) {
            if lv.lanes {
                for &(k, e) in &lv.lags {
                    let k = k as usize;
                    let [g, p, f, gg, pp, ff, gp, gf, pf] = a.map(|x| u128::from(x[k]));
                    out[e].add(&Moments {
                        g,
                        p,
                        f,
                        gg,
                        pp,
                        ff,
                        gp,
                        gf,
                        pf,
                    });
                }
                continue;
            }
            let (s1, s2) = (u128::from(s1), u128::from(s2));
            for &(_, e) in &lv.lags {
                let [t, h, mt, mh, tt, hh, ht, g, gg, gm, gt, gh] = self.v[e].map(u128::from);
                out[e].add(&Moments {
                    g,
                    p: s1 - t,
                    f: s1 - h,
                    gg,
                    pp: s2 + tt - 2 * mt,
                    ff: s2 + hh - 2 * mh,
                    gp: gm - gt,
                    gf: gm - gh,
                    pf: s2 + ht - mt - mh,
                });
            }
        }
    }
}

/// Levels with at most this many level-frames take the dense route in
/// [`pixel_corrections`] (their level-frames fit in a few cache lines).
const DENSE_MAX_FRAMES: u64 = 128;

/// Scratch buffers of [`pixel_corrections`].
#[derive(Debug, Default)]
pub(super) struct FastScratch {
    /// Dense level-frames of the current (short) level, zero-padded by kmax + 1.
    x: Vec<u32>,
    /// Occupied level-frames of `x`.
    occ: Vec<usize>,
    /// G per in-level lag 0..=kmax of the current short level.
    gd: Vec<u32>,
    /// Rows of level-frames for [`level_lanes`], one per lanes level (see [`LevelLags::row`]),
    /// each offset by [`LANES`] zeros in front and followed by [`LANES`] zeros; all zero
    /// between pixels.
    lanes_x: Vec<u32>,
    /// G per in-level distance 0..=kmax of the current (long, sparse) level.
    g: Vec<u64>,
}

/// Adds one pixel (sorted events, `total` < [`FAST_MAX_PHOTONS`] photons) to a cell's
/// sums. Dispatches to an AVX2 build of the same code when the CPU has it (the 8-lane
/// multiply-adds and prefix sums of [`level_lanes`] become single vector operations);
/// integers only, so both builds agree exactly.
fn pixel_corrections(
    fr: &[u32],
    ct: &[u32],
    total: u64,
    levels: &[LevelLags],
    acc: &mut CorrAcc,
    scratch: &mut FastScratch,
    avx2: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is true only when the CPU supports AVX2 (see `has_avx2`).
        unsafe { pixel_corrections_avx2(fr, ct, total, levels, acc, scratch) };
        return;
    }
    let _ = avx2;
    pixel_corrections_impl::<false>(fr, ct, total, levels, acc, scratch);
}

/// Whether [`pixel_corrections`] may use its AVX2 build.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pixel_corrections_avx2(
    fr: &[u32],
    ct: &[u32],
    total: u64,
    levels: &[LevelLags],
    acc: &mut CorrAcc,
    scratch: &mut FastScratch,
) {
    pixel_corrections_impl::<true>(fr, ct, total, levels, acc, scratch);
}

/// Lags per level handled by [`level_lanes`] (every level of the default 8-buffer schemes).
const LANES: usize = 8;

/// Longest level (level-frames) for [`level_lanes`]: its scratch row stays within L1/L2
/// (64 KiB); longer levels of very long scans take the sparse route.
const LANES_MAX_FRAMES: u64 = 1 << 14;

/// One level whose lags are all below [`LANES`], as pixel moments per lag lane. The events
/// are already in the level's row of `x` ([`scatter`]; level-frames at offset [`LANES`],
/// [`LANES`] zeros after the level's end; all zero again on return), G(0..8) comes from one
/// 8-lane multiply-add per event ([`gather`]), head and tail sums h(k), t(k) are prefix sums
/// of x's first and last 8 level-frames (the zero margins stand in for frames beyond the
/// level), P = m - t, F = m - h. No branch depends on the data: work ∝ events + lanes.
#[inline(always)]
fn level_lanes<const AVX2: bool>(
    f: &[u32],
    c: &[u32],
    l: usize,
    lv: &LevelLags,
    m: u64,
    x: &mut [u32],
    a: &mut LaneSums,
) {
    // T_L ≤ LANES_MAX_FRAMES: u32 (so that no index sum below can wrap).
    let tl32 = lv.t_l as u32;
    let tl = tl32 as usize;
    let x = &mut x[lv.row..lv.row + tl + 2 * LANES];
    #[cfg(target_arch = "x86_64")]
    let g8 = if AVX2 {
        // SAFETY: AVX2 is true only in the build of `pixel_corrections_avx2`, which runs only
        // when the CPU has AVX2.
        unsafe { gather_avx2(f, c, l, tl32, x) }
    } else {
        gather(f, c, l, tl32, x)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let g8 = gather(f, c, l, tl32, x);
    let head: &[u32; LANES] = x[LANES..2 * LANES].try_into().expect("LANES long");
    let tail: &[u32; LANES] = x[tl..tl + LANES].try_into().expect("LANES long");
    #[cfg(target_arch = "x86_64")]
    let (h8, t8) = if AVX2 {
        // SAFETY: as above.
        unsafe { head_tail_avx2(head, tail) }
    } else {
        head_tail(head, tail)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (h8, t8) = head_tail(head, tail);
    for &fi in f {
        // (The clamp never binds: every event is below the level's end.)
        x[LANES + ((fi >> l) as usize).min(tl)] = 0;
    }
    let m = m as u32;
    if lv.lags[0].0 as usize >= LANES / 2 {
        lanes_update::<{ LANES / 2 }>(m, &g8, &h8, &t8, a);
    } else {
        lanes_update::<0>(m, &g8, &h8, &t8, a);
    }
}

/// Head and tail sums h(k), t(k), k = 0..[`LANES`], from the first and the last 8
/// level-frames (`tail` in frame order): exclusive prefix sums.
#[inline(always)]
fn head_tail(head: &[u32; LANES], tail: &[u32; LANES]) -> ([u32; LANES], [u32; LANES]) {
    let (mut h8, mut t8) = ([0u32; LANES], [0u32; LANES]);
    let (mut hs, mut ts) = (0u32, 0u32);
    for k in 0..LANES {
        h8[k] = hs;
        t8[k] = ts;
        hs += head[k];
        ts += tail[LANES - 1 - k];
    }
    (h8, t8)
}

/// [`head_tail`] as two 8-lane scans.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn head_tail_avx2(head: &[u32; LANES], tail: &[u32; LANES]) -> ([u32; LANES], [u32; LANES]) {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_permutevar8x32_epi32, _mm256_setr_epi32,
        _mm256_storeu_si256,
    };
    // SAFETY: 8 readable u32 each; loadu needs no alignment.
    let (h, t) = unsafe {
        (
            _mm256_loadu_si256(head.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(tail.as_ptr().cast::<__m256i>()),
        )
    };
    let t = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0));
    let (mut h8, mut t8) = ([0u32; LANES], [0u32; LANES]);
    // SAFETY: 8 writable u32 each; storeu needs no alignment.
    unsafe {
        _mm256_storeu_si256(h8.as_mut_ptr().cast::<__m256i>(), exclusive_scan_avx2(h));
        _mm256_storeu_si256(t8.as_mut_ptr().cast::<__m256i>(), exclusive_scan_avx2(t));
    }
    (h8, t8)
}

/// Exclusive prefix sum of 8 u32 lanes: scans within each 128-bit half by byte shifts, then
/// the lower half's total carried into the upper half.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn exclusive_scan_avx2(v: std::arch::x86_64::__m256i) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::{
        _mm256_add_epi32, _mm256_blend_epi32, _mm256_permutevar8x32_epi32, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_slli_si256, _mm256_sub_epi32,
    };
    let s = _mm256_add_epi32(v, _mm256_slli_si256::<4>(v));
    let s = _mm256_add_epi32(s, _mm256_slli_si256::<8>(s));
    let carry = _mm256_permutevar8x32_epi32(s, _mm256_set1_epi32(3));
    let s = _mm256_add_epi32(s, _mm256_blend_epi32::<0xF0>(_mm256_setzero_si256(), carry));
    _mm256_sub_epi32(s, v)
}

/// Adds a level's events (all below its T_L) to its row `x` of level-frames (offset
/// [`LANES`]). The clamp never binds; it lets the compiler drop the bounds check.
#[inline(always)]
fn scatter(f: &[u32], c: &[u32], l: usize, tl: u32, x: &mut [u32]) {
    let tl = tl as usize;
    let x = &mut x[..tl + 2 * LANES];
    for (&fi, &ci) in f.iter().zip(c) {
        x[LANES + ((fi >> l) as usize).min(tl)] += ci;
    }
}

/// The gather pass of [`level_lanes`]: with the events in `x`, G(k) = Σ_i c_i·x(s_i + k), k =
/// 0..[`LANES`] (each event weighs the photons k level-frames after it; the events of one
/// level-frame add up to x(s)). Every sum ≤ m² < 2^24: no u32 wrap. The clamps never bind;
/// they let the compiler drop the bounds checks.
#[inline(always)]
fn gather(f: &[u32], c: &[u32], l: usize, tl: u32, x: &[u32]) -> [u32; LANES] {
    let tl = tl as usize;
    let x = &x[..tl + 2 * LANES];
    let mut g = [0u32; LANES];
    for (&fi, &ci) in f.iter().zip(c) {
        let s = LANES + ((fi >> l) as usize).min(tl);
        let w: &[u32; LANES] = x[s..s + LANES].try_into().expect("LANES long");
        for k in 0..LANES {
            g[k] += ci * w[k];
        }
    }
    g
}

/// [`gather`] with the 8-lane multiply-add as one AVX2 instruction (the auto-vectorised
/// loop splits it into pieces); same integers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn gather_avx2(f: &[u32], c: &[u32], l: usize, tl: u32, x: &[u32]) -> [u32; LANES] {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_loadu_si256, _mm256_mullo_epi32, _mm256_set1_epi32,
        _mm256_setzero_si256, _mm256_storeu_si256,
    };
    let tl = tl as usize;
    let x = &x[..tl + 2 * LANES];
    let mut acc = _mm256_setzero_si256();
    for (&fi, &ci) in f.iter().zip(c) {
        let s = LANES + ((fi >> l) as usize).min(tl);
        let w: &[u32; LANES] = x[s..s + LANES].try_into().expect("LANES long");
        // SAFETY: `w` is 8 readable u32 (32 bytes); loadu needs no alignment.
        let v = unsafe { _mm256_loadu_si256(w.as_ptr().cast::<__m256i>()) };
        // Lane products < 2^24: the low 32 bits (mullo) are the exact products.
        acc = _mm256_add_epi32(acc, _mm256_mullo_epi32(_mm256_set1_epi32(ci as i32), v));
    }
    let mut g = [0u32; LANES];
    // SAFETY: `g` is 8 writable u32 (32 bytes); storeu needs no alignment.
    unsafe { _mm256_storeu_si256(g.as_mut_ptr().cast::<__m256i>(), acc) };
    g
}

/// Adds one pixel's moments for lanes `LO..LANES` (G, level total m, head and tail sums per
/// lane) to `a`. Every value < 2^24 and every product < 2^48, so a chunk of [`CHUNK`] pixels
/// stays below 2^60.
#[inline(always)]
fn lanes_update<const LO: usize>(
    m: u32,
    g8: &[u32; LANES],
    h8: &[u32; LANES],
    t8: &[u32; LANES],
    a: &mut LaneSums,
) {
    for k in LO..LANES {
        let (g, p, f) = (u64::from(g8[k]), u64::from(m - t8[k]), u64::from(m - h8[k]));
        a[0][k] += g;
        a[1][k] += p;
        a[2][k] += f;
        a[3][k] += g * g;
        a[4][k] += p * p;
        a[5][k] += f * f;
        a[6][k] += g * p;
        a[7][k] += g * f;
        a[8][k] += p * f;
    }
}

/// Adds one lag entry's values of one pixel (level total m, head h, tail t, product sum g) to
/// the correction sums; nothing when h = t = g = 0.
#[inline(always)]
fn add_entry(a: &mut [u64; 12], m: u64, h: u64, t: u64, g: u64) {
    if h | t | g == 0 {
        return;
    }
    a[0] += t;
    a[1] += h;
    a[2] += m * t;
    a[3] += m * h;
    a[4] += t * t;
    a[5] += h * h;
    a[6] += h * t;
    if g != 0 {
        a[7] += g;
        a[8] += g * g;
        a[9] += g * m;
        a[10] += g * t;
        a[11] += g * h;
    }
}

/// The body of [`pixel_corrections`]. Level-L frame of an event: raw frame >> L; the level
/// keeps the raw frames below T_L·2^L (the incomplete trailing bin is dropped, as in the
/// dense correlator). Levels whose lags are all below [`LANES`] take [`level_lanes`]. Of the
/// others, short levels (T_L ≤ [`DENSE_MAX_FRAMES`]: most photons have partners within the
/// lags there) go dense: events scattered into level-frames, G(k) gathered over the occupied
/// ones, h and t as prefix sums. Long levels stay sparse on the raw events: h and t from the
/// few events near the ends, G from pairs, skipped outright when the pixel's smallest frame
/// gap rules every pair out.
#[inline(always)]
fn pixel_corrections_impl<const AVX2: bool>(
    fr: &[u32],
    ct: &[u32],
    total: u64,
    levels: &[LevelLags],
    acc: &mut CorrAcc,
    FastScratch {
        x,
        occ,
        gd,
        g,
        lanes_x,
    }: &mut FastScratch,
) {
    let need = levels.last().map_or(0, |lv| {
        lv.row
            + if lv.lanes {
                lv.t_l as usize + 2 * LANES
            } else {
                0
            }
    });
    if lanes_x.len() < need {
        lanes_x.resize(need, 0);
    }
    // Every lanes level's events into its own row first, all gathers after: a gather then
    // never loads bytes whose store is still pending (such a load stalls until the store
    // lands).
    let mut cut = fr.len();
    for (l, lv) in levels.iter().enumerate() {
        while cut > 0 && u64::from(fr[cut - 1]) >= lv.t_l << l {
            cut -= 1;
        }
        if cut == 0 {
            break;
        }
        if lv.lanes {
            let tl = lv.t_l as u32;
            scatter(&fr[..cut], &ct[..cut], l, tl, &mut lanes_x[lv.row..]);
        }
    }
    let mut cut = fr.len();
    let mut m = total;
    // Events i < j are ≥ min_gap raw frames apart, so ≥ ⌊min_gap / 2^L⌋ level-frames
    // (computed when a level first needs it: lanes levels do not).
    let mut min_gap: Option<u32> = None;
    for (l, lv) in levels.iter().enumerate() {
        let t_l = lv.t_l;
        // Level limits only shrink with L: drop events from the end.
        while cut > 0 && u64::from(fr[cut - 1]) >= t_l << l {
            cut -= 1;
            m -= u64::from(ct[cut]);
        }
        if cut == 0 {
            return;
        }
        let (f, c) = (&fr[..cut], &ct[..cut]);
        if lv.lanes {
            level_lanes::<AVX2>(f, c, l, lv, m, lanes_x, &mut acc.lanes[l]);
            continue;
        }
        acc.m[l][0] += m;
        acc.m[l][1] += m * m;
        let (Some(&(kmin, _)), Some(&(kmax, _))) = (lv.lags.first(), lv.lags.last()) else {
            continue;
        };
        if t_l <= DENSE_MAX_FRAMES {
            // Scatter the events into zero-padded level-frames, then G(k) = Σ_s x(s)x(s+k)
            // over the occupied s only (the padding reads 0 past the last level-frame).
            let (tl, k0, km) = (t_l as usize, kmin as usize, kmax as usize);
            x.clear();
            x.resize(tl + km + 1, 0);
            occ.clear();
            for (&fi, &ci) in f.iter().zip(c) {
                let s = (u64::from(fi) >> l) as usize;
                if x[s] == 0 {
                    occ.push(s);
                }
                x[s] += ci;
            }
            if gd.len() <= km {
                gd.resize(km + 1, 0);
            }
            let gl = &mut gd[..];
            gl[k0..=km].fill(0);
            for &s in occ.iter() {
                let xs = x[s];
                let (dst, src) = (&mut gl[k0..=km], &x[s + k0..=s + km]);
                for (d, &y) in dst.iter_mut().zip(src) {
                    // ≤ m² < 2^24 in total: no u32 wrap.
                    *d += xs * y;
                }
            }
            let xs = &x[..tl];
            let (mut j, mut h, mut t) = (0usize, 0u64, 0u64);
            for &(k, e) in &lv.lags {
                let k = k as usize;
                while j < k {
                    h += u64::from(xs[j]);
                    t += u64::from(xs[tl - 1 - j]);
                    j += 1;
                }
                add_entry(&mut acc.v[e], m, h, t, u64::from(gl[k]));
            }
            continue;
        }
        let bin = |i: usize| u64::from(f[i]) >> l;
        let n = cut;
        // h(k) > 0 for some lag iff the first event lies before kmax; t(k) likewise at the end.
        let mut active = bin(0) < kmax || bin(n - 1) + kmax >= t_l;
        let g = {
            g.clear();
            g.resize(kmax as usize + 1, 0);
            &mut g[..]
        };
        if kmin == 0 {
            active = true;
            g[0] = c.iter().map(|&x| u64::from(x) * u64::from(x)).sum();
        }
        let min_gap = *min_gap
            .get_or_insert_with(|| fr.windows(2).map(|w| w[1] - w[0]).min().unwrap_or(u32::MAX));
        if u64::from(min_gap) >> l <= kmax {
            for i in 0..n {
                let (bi, ci) = (bin(i), u64::from(c[i]));
                for j in i + 1..n {
                    let d = bin(j) - bi;
                    if d > kmax {
                        break;
                    }
                    // Distance 0 (one level-frame): both orders of the pair.
                    let w = if d == 0 { 2 } else { 1 };
                    g[d as usize] += w * ci * u64::from(c[j]);
                    active = true;
                }
            }
        }
        if !active {
            continue;
        }
        // Pointers: photons of the first k level-frames (head) and of the last k (tail).
        let (mut hi, mut h) = (0usize, 0u64);
        let (mut ti, mut t) = (n, 0u64);
        for &(k, e) in &lv.lags {
            while hi < n && bin(hi) < k {
                h += u64::from(c[hi]);
                hi += 1;
            }
            while ti > 0 && bin(ti - 1) + k >= t_l {
                ti -= 1;
                t += u64::from(c[ti]);
            }
            add_entry(&mut acc.v[e], m, h, t, g[k as usize]);
        }
    }
}

/// Test hook: the moments of a set of pixels (CSR, frames < `n_frames`) through the fast path
/// and through the per-pixel reference ([`pixel_products`]), for comparison. The fast path
/// runs its AVX2 build (when the CPU has it) for even `n_frames`, the portable one otherwise,
/// so a property test covers both.
#[cfg(test)]
pub(super) fn fast_and_slow_moments(
    schedule: &LagSchedule,
    n_frames: usize,
    pixels: &[(Vec<u32>, Vec<u32>)],
) -> (Vec<Moments>, Vec<Moments>) {
    let part = QPartition::from_labels(1, 1, vec![1], "test").expect("valid");
    let ec = EventCorrelator::new(&part, schedule, n_frames);
    let nl = schedule.n_lags();
    let mut acc = CorrAcc::new(ec.levels.len(), nl);
    let mut scratch = FastScratch::default();
    let avx2 = has_avx2() && n_frames % 2 == 0;
    let mut slow = vec![Moments::default(); nl];
    let mut g = vec![0u64; nl];
    let mut pf = (vec![0u64; nl], vec![0u64; nl]);
    let mut lists: BinnedEvents = (Vec::new(), Vec::new());
    for (fr, ct) in pixels {
        let tot = ct.iter().map(|&c| u64::from(c)).sum();
        pixel_corrections(fr, ct, tot, &ec.levels, &mut acc, &mut scratch, avx2);
        pixel_products(fr, ct, &ec.tables, n_frames, &mut g, &mut pf, &mut lists);
        for (e, m) in slow.iter_mut().enumerate() {
            m.add_pixel(g[e], pf.0[e], pf.1[e]);
        }
    }
    let mut fast = vec![Moments::default(); nl];
    acc.add_to(&ec.levels, &mut fast);
    (fast, slow)
}
