//! Streaming dense multi-tau (and linear) correlator.
//!
//! Input: frames in order, as chunks of a [`FrameStack`] ([`DenseMultiTau::push_stack`]), single
//! u32 frames ([`DenseMultiTau::push_frame`]) or any [`FrameSource`]
//! ([`DenseMultiTau::push_source`]), plus a [`QPartition`] and a [`LagSchedule`]. Output:
//! [`MultiTauSums`] (exact integer sums) → [`G2Result`] (g2 and g2_err, (n_lags, n_bins)) and
//! [`IntensityStats`].
//!
//! Layout and speed: pixels are cut into tiles of [`TILE`] consecutive pixels (row-major);
//! each tile keeps, per level, a ring of the last level-frames and one accumulator per lag,
//! all structure-of-arrays over the tile's pixels so the inner loops vectorise. A chunk of
//! frames is processed tile by tile (rayon over tiles), so a tile's state stays in cache for
//! the whole chunk and the stack is read once. Memory: the tile states (independent of the
//! number of frames) plus 8 bytes per cell per frame for the intensity series.
//!
//! Exactness: counts and level sums are held in f64 and multiplied/accumulated there; every
//! value is an integer, exact while each pixel's product sum stays below 2^53 (e.g. 16-bit
//! counts over 2^21 frames), so the result does not depend on the order of operations, the
//! SIMD width or the thread count, and equals the event correlator's bit for bit.
//!
//! Reference: K. Schätzel, M. Drewel & S. Stimac, J. Mod. Opt. 35, 711 (1988); D. Lumma et
//! al., Rev. Sci. Instrum. 71, 3274 (2000) (symmetric normalisation).

use super::intensity::IntensityStats;
use super::lags::LagSchedule;
use super::sums::{Cells, Estimator, G2Result, Moments, MultiTauSums};
use crate::data::{FrameSource, FrameStack, QPartition};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Pixels per tile: 128 f64 lanes × (8 lags + 8 ring slots) = 16 KiB, half an L1 data cache.
pub const TILE: usize = 128;

/// Per-level state of one tile.
#[derive(Debug, Clone)]
struct LevelState {
    /// In-level lags of this level.
    lags: Vec<usize>,
    /// Ring of the last `depth` level-frames, slot-major (depth × len).
    ring: Vec<f64>,
    depth: usize,
    /// One accumulator per lag, lag-major (n_lags × len).
    acc: Vec<f64>,
    /// Level-frames seen.
    count: usize,
    /// Sum of every level-frame, per pixel (for the past/future sums P_p, F_p).
    total: Vec<f64>,
    /// The first `depth` level-frames, slot-major (F_p = total - the first k).
    head: Vec<f64>,
}

#[derive(Debug, Clone)]
struct Tile {
    start: usize,
    len: usize,
    levels: Vec<LevelState>,
    /// Photons per pixel over all frames (for scattering_2d).
    totals: Vec<u64>,
    /// Runs of consecutive pixels of one cell: (offset in tile, length, cell).
    runs: Vec<(usize, usize, usize)>,
    /// Scratch: the incoming level-frame.
    incoming: Vec<f64>,
}

/// Counts a stack can hold, read as f64.
trait Count: Copy + Send + Sync {
    fn to_f64(self) -> f64;
    fn to_u64(self) -> u64;
}
impl Count for u8 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}
impl Count for u16 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}
impl Count for u32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}

/// a[p] += b[p] * c[p]; the one hot loop. Integer-valued f64: exact, so FMA or not, any
/// vector width gives the same bits.
#[inline(always)]
fn mul_acc(a: &mut [f64], b: &[f64], c: &[f64]) {
    let n = a.len().min(b.len()).min(c.len());
    let (a, b, c) = (&mut a[..n], &b[..n], &c[..n]);
    for p in 0..n {
        a[p] += b[p] * c[p];
    }
}

impl Tile {
    /// Pushes the level-0 frame held in `self.incoming` and cascades into higher levels.
    #[inline(always)]
    fn push_incoming(&mut self) {
        let len = self.len;
        let n_levels = self.levels.len();
        let mut level = 0;
        loop {
            let st = &mut self.levels[level];
            let s = st.count;
            let slot = s % st.depth;
            st.ring[slot * len..(slot + 1) * len].copy_from_slice(&self.incoming[..len]);
            let cur = &self.incoming[..len];
            for (t, &x) in st.total.iter_mut().zip(cur) {
                *t += x;
            }
            if s < st.depth {
                st.head[s * len..(s + 1) * len].copy_from_slice(cur);
            }
            for (j, &k) in st.lags.iter().enumerate() {
                if s >= k {
                    let other = (s - k) % st.depth;
                    let acc = &mut st.acc[j * len..(j + 1) * len];
                    mul_acc(acc, cur, &st.ring[other * len..(other + 1) * len]);
                }
            }
            st.count += 1;
            if s % 2 == 1 && level + 1 < n_levels {
                let prev = (s - 1) % st.depth;
                let r = &st.ring[prev * len..(prev + 1) * len];
                for (i, &x) in self.incoming[..len].iter_mut().zip(r) {
                    *i += x;
                }
                level += 1;
            } else {
                break;
            }
        }
    }

    /// Processes `n` frames of a row-major (frame, pixel) chunk with `n_pix` pixels per frame;
    /// returns the photons of each run in each frame (run-major, run × n). Always inlined so
    /// that the AVX2 entry point compiles it with AVX2.
    #[inline(always)]
    fn process<T: Count>(&mut self, data: &[T], n: usize, n_pix: usize) -> Vec<u64> {
        let len = self.len;
        let mut run_sums = vec![0u64; self.runs.len() * n];
        for t in 0..n {
            let row = &data[t * n_pix + self.start..t * n_pix + self.start + len];
            #[cfg(target_arch = "x86_64")]
            if t + 4 < n {
                // The next frames of this tile sit one frame (n_pix counts) apart: prefetch
                // them so the strided walk down the stack does not stall on memory.
                let ahead = (t + 4) * n_pix + self.start;
                let ptr = data[ahead..].as_ptr() as *const i8;
                let bytes = len * std::mem::size_of::<T>();
                let mut off = 0;
                while off < bytes {
                    // SAFETY: prefetch is a hint and never faults; the address lies inside
                    // `data` (ahead + len ≤ data.len()).
                    unsafe {
                        std::arch::x86_64::_mm_prefetch(
                            ptr.add(off),
                            std::arch::x86_64::_MM_HINT_T0,
                        )
                    };
                    off += 64;
                }
            }
            for (r, &(o, l, _)) in self.runs.iter().enumerate() {
                run_sums[r * n + t] = row[o..o + l].iter().map(|&x| x.to_u64()).sum();
            }
            for (p, &x) in row.iter().enumerate() {
                self.totals[p] += x.to_u64();
            }
            if self.levels.is_empty() {
                // A tile with no pixel in any bin: only its totals (scattering_2d).
                continue;
            }
            for (p, &x) in row.iter().enumerate() {
                self.incoming[p] = x.to_f64();
            }
            self.push_incoming();
        }
        run_sums
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn process_avx2<T: Count>(&mut self, data: &[T], n: usize, n_pix: usize) -> Vec<u64> {
        self.process(data, n, n_pix)
    }

    fn process_dispatch<T: Count>(&mut self, data: &[T], n: usize, n_pix: usize) -> Vec<u64> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { self.process_avx2(data, n, n_pix) };
        }
        self.process(data, n, n_pix)
    }
}

/// The dense streaming multi-tau correlator (see the module docs).
#[derive(Debug, Clone)]
pub struct DenseMultiTau {
    cells: Cells,
    schedule: LagSchedule,
    shape: (usize, usize),
    tiles: Vec<Tile>,
    n_frames: usize,
    series: Vec<Vec<u64>>,
}

impl DenseMultiTau {
    /// A correlator for frames of the partition's shape.
    pub fn new(part: &QPartition, schedule: &LagSchedule) -> Self {
        let cells = Cells::new(part);
        let shape = part.shape();
        let n_pix = shape.0 * shape.1;
        let mut tiles = Vec::new();
        let mut start = 0;
        while start < n_pix {
            let len = TILE.min(n_pix - start);
            let mut runs = Vec::new();
            let mut p = start;
            while p < start + len {
                let c = cells.cell_of_pixel[p];
                let mut q = p + 1;
                while q < start + len && cells.cell_of_pixel[q] == c {
                    q += 1;
                }
                if c != u32::MAX {
                    runs.push((p - start, q - p, c as usize));
                }
                p = q;
            }
            {
                let n_levels = if runs.is_empty() {
                    0
                } else {
                    schedule.n_levels()
                };
                let levels = (0..n_levels)
                    .map(|l| {
                        let lags = schedule.level_lags(l).to_vec();
                        let depth = lags.last().map_or(2, |&k| (k + 1).max(2));
                        LevelState {
                            total: vec![0.0; len],
                            head: vec![0.0; depth * len],
                            ring: vec![0.0; depth * len],
                            depth,
                            acc: vec![0.0; lags.len() * len],
                            lags,
                            count: 0,
                        }
                    })
                    .collect();
                let runs_empty = runs.is_empty();
                tiles.push(Tile {
                    start,
                    len,
                    levels,
                    totals: vec![0; len],
                    runs,
                    incoming: vec![0.0; if runs_empty { 0 } else { len }],
                });
            }
            start += len;
        }
        let nc = cells.n_cells();
        DenseMultiTau {
            cells,
            schedule: schedule.clone(),
            shape,
            tiles,
            n_frames: 0,
            series: vec![Vec::new(); nc],
        }
    }

    /// Frames pushed so far.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }

    fn check_shape(&self, shape: (usize, usize), origin: &str) -> Result<()> {
        if shape != self.shape {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "frame shape vs q-partition".into(),
                expected: vec![self.shape.0, self.shape.1],
                got: vec![shape.0, shape.1],
            });
        }
        Ok(())
    }

    fn push_chunk<T: Count>(&mut self, data: &[T], n: usize) {
        let n_pix = self.shape.0 * self.shape.1;
        debug_assert_eq!(data.len(), n * n_pix);
        let run_sums: Vec<Vec<u64>> = self
            .tiles
            .par_iter_mut()
            .map(|tile| tile.process_dispatch(data, n, n_pix))
            .collect();
        let t0 = self.n_frames;
        for s in &mut self.series {
            s.resize(t0 + n, 0);
        }
        // Integer sums: the reduction order does not matter, but it is fixed anyway.
        for (tile, sums) in self.tiles.iter().zip(&run_sums) {
            for (r, &(_, _, c)) in tile.runs.iter().enumerate() {
                let dst = &mut self.series[c][t0..t0 + n];
                for (d, &x) in dst.iter_mut().zip(&sums[r * n..(r + 1) * n]) {
                    *d += x;
                }
            }
        }
        self.n_frames += n;
    }

    /// Pushes frames `frames` (a range of frame indices) of an in-memory stack, in order.
    pub fn push_stack(&mut self, stack: &FrameStack, frames: std::ops::Range<usize>) -> Result<()> {
        self.check_shape(stack.frame_shape(), "frame stack")?;
        if frames.end > stack.n_frames() || frames.start > frames.end {
            return Err(Error::out_of_range(
                "frame stack",
                "frame range",
                format!("{}..{}", frames.start, frames.end),
                format!("within 0..{}", stack.n_frames()),
            ));
        }
        let n_pix = stack.n_pixels();
        let r = frames.start * n_pix..frames.end * n_pix;
        let n = frames.len();
        if let Some(v) = stack.as_u8() {
            self.push_chunk(&v[r], n);
        } else if let Some(v) = stack.as_u16() {
            self.push_chunk(&v[r], n);
        } else if let Some(v) = stack.as_u32() {
            self.push_chunk(&v[r], n);
        }
        Ok(())
    }

    /// Pushes one frame (row-major u32 counts).
    pub fn push_frame(&mut self, frame: &[u32]) -> Result<()> {
        self.push_frames(frame)
    }

    /// Pushes consecutive frames stored back to back (row-major u32, a multiple of the frame
    /// size): a chunk. Pushing a stack in chunks gives the same sums as pushing it whole.
    pub fn push_frames(&mut self, frames: &[u32]) -> Result<()> {
        let n_pix = self.shape.0 * self.shape.1;
        if n_pix == 0 || frames.len() % n_pix != 0 {
            return Err(Error::ShapeMismatch {
                origin: "frame chunk".into(),
                what: "chunk length vs frame size".into(),
                expected: vec![n_pix],
                got: vec![frames.len()],
            });
        }
        self.push_chunk(frames, frames.len() / n_pix);
        Ok(())
    }

    /// Reads a frame source to its end, `chunk_frames` frames at a time (memory: one chunk).
    pub fn push_source(&mut self, source: &mut dyn FrameSource, chunk_frames: usize) -> Result<()> {
        self.check_shape(source.frame_shape(), "frame source")?;
        let n_pix = self.shape.0 * self.shape.1;
        let chunk_frames = chunk_frames.max(1);
        let mut buf = vec![0u32; chunk_frames * n_pix];
        loop {
            let mut n = 0;
            while n < chunk_frames && source.read_next(&mut buf[n * n_pix..(n + 1) * n_pix])? {
                n += 1;
            }
            if n > 0 {
                self.push_chunk(&buf[..n * n_pix], n);
            }
            if n < chunk_frames {
                return Ok(());
            }
        }
    }

    /// The exact sums (per-pixel accumulators reduced into cells, in tile order).
    pub fn sums(&self) -> MultiTauSums {
        let mut out = MultiTauSums::new(self.cells.clone(), self.schedule.clone());
        out.n_frames = self.n_frames;
        out.series = self.series.clone();
        let n_lags = self.schedule.n_lags();
        // Per tile: G, P, F of every lag for all its pixels (lag-major), then per pixel into
        // its cell. Tiles in parallel, merged in tile order (integers: order-free anyway).
        let per_tile: Vec<Vec<Moments>> = self
            .tiles
            .par_iter()
            .map(|tile| {
                let len = tile.len;
                let mut gpf = vec![[0u64; 3]; n_lags * len];
                let mut e = 0;
                for st in &tile.levels {
                    let t_l = st.count;
                    for (j, &k) in st.lags.iter().enumerate() {
                        if t_l > k {
                            // P: all level-frames but the last k (still in the ring);
                            // F: all but the first k (kept in `head`).
                            let mut last = vec![0f64; len];
                            for s in t_l - k..t_l {
                                let r = &st.ring[(s % st.depth) * len..][..len];
                                last.iter_mut().zip(r).for_each(|(a, &b)| *a += b);
                            }
                            let mut first = vec![0f64; len];
                            for s in 0..k {
                                let h = &st.head[s * len..][..len];
                                first.iter_mut().zip(h).for_each(|(a, &b)| *a += b);
                            }
                            for p in 0..len {
                                gpf[e * len + p] = [
                                    st.acc[j * len + p] as u64,
                                    (st.total[p] - last[p]) as u64,
                                    (st.total[p] - first[p]) as u64,
                                ];
                            }
                        }
                        e += 1;
                    }
                }
                let mut m = vec![Moments::default(); tile.runs.len() * n_lags];
                for (r, &(o, l, _)) in tile.runs.iter().enumerate() {
                    for e in 0..n_lags {
                        let acc = &mut m[r * n_lags + e];
                        for p in o..o + l {
                            let [g, pp, ff] = gpf[e * len + p];
                            acc.add_pixel(g, pp, ff);
                        }
                    }
                }
                m
            })
            .collect();
        for (tile, m) in self.tiles.iter().zip(&per_tile) {
            for (r, &(_, _, c)) in tile.runs.iter().enumerate() {
                for e in 0..n_lags {
                    out.moments[c][e].add(&m[r * n_lags + e]);
                }
            }
        }
        out
    }

    /// g2 with the chosen estimator.
    pub fn finish(&self, estimator: Estimator) -> Result<G2Result> {
        self.sums().finish(estimator)
    }

    /// Mean intensities: per bin per frame, per pixel, per static bin.
    pub fn intensity(&self) -> IntensityStats {
        let n_pix = self.shape.0 * self.shape.1;
        let mut totals = vec![0u64; n_pix];
        for tile in &self.tiles {
            totals[tile.start..tile.start + tile.len].copy_from_slice(&tile.totals);
        }
        IntensityStats::from_parts(
            &self.cells,
            &self.series,
            &totals,
            self.n_frames,
            self.shape,
        )
    }
}

/// Convenience: multi-tau g2 of a whole in-memory stack (pushed as one chunk).
pub fn multitau_stack(
    stack: &FrameStack,
    part: &QPartition,
    schedule: &LagSchedule,
    estimator: Estimator,
) -> Result<G2Result> {
    let mut c = DenseMultiTau::new(part, schedule);
    c.push_stack(stack, 0..stack.n_frames())?;
    c.finish(estimator)
}

/// Linear g2 (every lag 0..=max_lag) of a short in-memory stack.
pub fn linear_stack(
    stack: &FrameStack,
    part: &QPartition,
    max_lag: usize,
    estimator: Estimator,
) -> Result<G2Result> {
    multitau_stack(stack, part, &LagSchedule::linear(max_lag)?, estimator)
}
