//! Event correlator: multi-tau g2, two-time maps and intensities from sparse photons.
//!
//! Input: an [`EventList`] (or pixel blocks of one, [`EventCorrelator::push_pixel_block`], for
//! files that do not fit in memory: a full Eiger scan holds ~2.6e9 photons), a [`QPartition`],
//! a [`LagSchedule`] and the number of frames. Output: the same [`MultiTauSums`] as the dense
//! correlator (hence the same [`G2Result`], bit for bit), [`IntensityStats`], and optionally a
//! [`TwoTimeResult`] equal to the dense one.
//!
//! Work: per pixel, per level, the pairs of its (binned) events no further apart than the
//! level's largest lag, so the cost grows with photon pairs, not with pixel-frames. State: per
//! cell, the photons per frame and per-lag sums (independent of the pixel count), so pixel
//! blocks can be streamed.
//!
//! Reference: Y. Chushkin, C. Caronna & A. Madsen, J. Appl. Cryst. 45, 807 (2012).

use super::intensity::IntensityStats;
use super::lags::LagSchedule;
use super::sums::{Cells, Estimator, FastMomentsSoa, G2Result, Moments, MultiTauSums};
use super::twotime::{check_request, TwoTimeResult};
use crate::data::{EventList, QPartition};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;

/// Sums of one parallel work item (a chunk of pixels).
struct Partial {
    moments: Vec<Vec<Moments>>,
    series: Vec<Vec<u64>>,
}

/// One pixel's events at one level: level-frames (increasing) and photons.
type BinnedEvents = (Vec<u32>, Vec<u64>);

/// Pixels per parallel work item.
const CHUNK: usize = 4096;

#[derive(Debug, Clone)]
struct TwoTimeAcc {
    bin_frames: usize,
    n: usize,
    bins: Vec<usize>,
    /// Processed-bin index of every dynamic label (index label - 1).
    index_of_label: Vec<Option<usize>>,
    /// Upper-triangle numerators, n × n row-major per processed bin.
    num: Vec<Vec<f64>>,
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
    labels: Vec<u32>,
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
        let (r, c) = part.shape();
        EventCorrelator {
            shape: part.shape(),
            n_frames,
            sums,
            totals: vec![0; r * c],
            tables,
            labels: part.dynamic().labels().to_vec(),
            two_time: None,
        }
    }

    /// Also accumulates two-time numerators for `bins` (all non-empty bins if empty), with
    /// `bin_frames` raw frames per two-time frame.
    pub fn with_two_time(
        mut self,
        part: &QPartition,
        bins: &[usize],
        bin_frames: usize,
    ) -> Result<Self> {
        let bins = check_request(part, bins, bin_frames, self.n_frames)?;
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
        // The list is validated by construction: go straight to the work.
        self.push_checked(0, ev.offsets(), ev.frames(), ev.counts(), ev.offsets()[0]);
        Ok(())
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
        let base = offsets[0];
        if frames.len() != counts.len()
            || offsets[offsets.len() - 1].checked_sub(base) != Some(frames.len() as u64)
        {
            return Err(Error::invalid(
                origin,
                "offsets must span exactly the given frames and counts",
            ));
        }
        for i in 0..offsets.len() - 1 {
            if offsets[i + 1] < offsets[i] {
                return Err(Error::invalid(origin, format!("offsets decrease at {i}")));
            }
            let r = (offsets[i] - base) as usize..(offsets[i + 1] - base) as usize;
            let fr = &frames[r.clone()];
            if fr.windows(2).any(|w| w[1] <= w[0])
                || fr.last().is_some_and(|&f| f as usize >= self.n_frames)
            {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "frames of pixel {} not strictly increasing in 0..{}",
                        first_pixel + i,
                        self.n_frames
                    ),
                ));
            }
            if counts[r].contains(&0) {
                return Err(Error::out_of_range(origin, "count", 0, "≥ 1"));
            }
        }
        self.push_checked(first_pixel, offsets, frames, counts, base);
        Ok(())
    }

    fn push_checked(
        &mut self,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
        base: u64,
    ) {
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
        // Multi-tau sums and series: parallel over pixel chunks, each with its own partial
        // sums (integers: the merge order cannot change the result).
        let partials: Vec<(Partial, Vec<(usize, u64)>)> = (0..n_block.div_ceil(CHUNK))
            .into_par_iter()
            .map(|ch| {
                let mut part = Partial {
                    moments: vec![vec![Moments::default(); nl]; nc],
                    series: vec![vec![0; n_frames]; nc],
                };
                let mut fast = vec![FastMomentsSoa::new(nl); nc];
                let mut totals = Vec::new();
                let mut g = vec![0u64; nl];
                let mut pf = (vec![0u64; nl], vec![0u64; nl]);
                let mut lists: BinnedEvents = (Vec::new(), Vec::new());
                for p in ch * CHUNK..((ch + 1) * CHUNK).min(n_block) {
                    let (fr, ct) = pix(p);
                    let gp = first_pixel + p;
                    let tot: u64 = ct.iter().map(|&c| u64::from(c)).sum();
                    if tot > 0 {
                        totals.push((gp, tot));
                    }
                    let c = cells.cell_of_pixel[gp];
                    if c == u32::MAX {
                        continue;
                    }
                    let c = c as usize;
                    for (&f, &k) in fr.iter().zip(ct) {
                        part.series[c][f as usize] += u64::from(k);
                    }
                    pixel_products(fr, ct, tables, n_frames, &mut g, &mut pf, &mut lists);
                    fast[c].add_pixel(&mut part.moments[c], &g, &pf.0, &pf.1);
                }
                for (ms, f) in part.moments.iter_mut().zip(&mut fast) {
                    f.flush(ms);
                }
                (part, totals)
            })
            .collect();
        for (part, totals) in partials.iter().map(|(p, t)| (p, t)) {
            for (a, b) in self.sums.moments.iter_mut().zip(&part.moments) {
                for (x, y) in a.iter_mut().zip(b) {
                    x.add(y);
                }
            }
            for c in 0..nc {
                for (d, &x) in self.sums.series[c].iter_mut().zip(&part.series[c]) {
                    *d += x;
                }
            }
            for &(p, t) in totals {
                self.totals[p] += t;
            }
        }
        // Two-time numerators: parallel over processed bins (each owns its matrix).
        if let Some(tt) = &mut self.two_time {
            let labels = &self.labels;
            let (bf, n) = (tt.bin_frames, tt.n);
            let index_of_label = &tt.index_of_label;
            tt.num.par_iter_mut().enumerate().for_each(|(i, num)| {
                let mut bl: Vec<(usize, u64)> = Vec::new();
                for p in 0..n_block {
                    let l = labels[first_pixel + p];
                    if l == 0 || index_of_label[l as usize - 1] != Some(i) {
                        continue;
                    }
                    let (fr, ct) = pix(p);
                    bl.clear();
                    for (&f, &k) in fr.iter().zip(ct) {
                        let b = f as usize / bf;
                        if b >= n {
                            break;
                        }
                        match bl.last_mut() {
                            Some(last) if last.0 == b => last.1 += u64::from(k),
                            _ => bl.push((b, u64::from(k))),
                        }
                    }
                    for (a, &(ba, ca)) in bl.iter().enumerate() {
                        let row = &mut num[ba * n..(ba + 1) * n];
                        for &(bb, cb) in &bl[a..] {
                            row[bb] += (ca * cb) as f64;
                        }
                    }
                }
            });
        }
    }

    /// The exact sums accumulated so far.
    pub fn sums(&self) -> &MultiTauSums {
        &self.sums
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
                if self.sums.cells.dynamic_of_cell[c] as usize == k {
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
