//! Streaming dense multi-tau (and linear) correlator.
//!
//! Input: frames in order, as chunks of a [`FrameStack`] ([`DenseMultiTau::push_stack`]), single
//! u32 frames ([`DenseMultiTau::push_frame`]) or any [`FrameSource`]
//! ([`DenseMultiTau::push_source`]), plus a [`QPartition`] and a [`LagSchedule`]. Output:
//! [`MultiTauSums`] (exact integer sums) → [`G2Result`] (g2 and g2_err, (n_lags, n_bins)) and
//! [`IntensityStats`].
//!
//! Layout and speed: pixels are cut into tiles of [`TILE`] consecutive pixels (row-major);
//! each tile keeps, per level, a ring of the last level-frames, its first level-frames (for the
//! future sums) and one accumulator per lag,
//! all structure-of-arrays over the tile's pixels so the inner loops vectorise. A chunk of
//! frames is processed tile by tile (rayon over tiles), so a tile's state stays in cache for
//! the whole chunk and the stack is read once. Memory: the tile states, independent of the
//! number of frames except through the number of levels (≈ 1 KB per pixel for the default
//! 8-buffer schedule over 1000 frames: 8 levels), plus 8 bytes per cell per frame for the
//! intensity series.
//!
//! Exactness (every value is an integer and every operation exact, so the result does not
//! depend on the order of operations, the SIMD width or the thread count, and equals the event
//! correlator's bit for bit): with M the largest count pushed so far, level-L values are
//! ≤ 2^L·M (M is kept per tile and updated frame by frame, before the frame is stored). Rings hold f32 (8 lanes per AVX2 vector) while 2^L·M < 2^24 at the top level, and
//! switch to f64 (exactly) otherwise. Products at level L are taken in f32 when
//! (2^L·M)² ≤ 2^24, into f32 partial sums flushed into f64 before their bound (level-frames
//! since the flush × (2^L·M)²) could pass 2^24; else in f64. The f64 sums are exact while a
//! pixel's product sum stays below 2^53 (e.g. 16-bit counts over 2^21 frames).
//!
//! Reference: K. Schätzel, M. Drewel & S. Stimac, J. Mod. Opt. 35, 711 (1988); D. Lumma et
//! al., Rev. Sci. Instrum. 71, 3274 (2000) (symmetric normalisation).

use super::intensity::IntensityStats;
use super::lags::LagSchedule;
use super::sums::{Cells, Estimator, G2Result, Moments, MultiTauSums};
use crate::data::{Counts, FrameSource, FrameStack, QPartition, StackView};
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Pixels per tile: the level-0 ring and accumulators of a tile stay in the L1 data cache.
pub const TILE: usize = 128;

/// Largest integer up to which every integer is exact in f32.
const F32_EXACT: f64 = 16_777_216.0; // 2^24

/// Storage lane of the rings: f32 (8 per AVX2 vector) while every level value is below 2^24,
/// else f64.
trait Lane: Copy + Default + Send + Sync + std::fmt::Debug + std::ops::AddAssign + 'static {
    fn from_u64(x: u64) -> Self;
    fn to_f64(self) -> f64;
    /// acc64 += a·b, or (f32 lanes with `narrow`) acc32 += a·b.
    fn mul_acc(acc64: &mut [f64], acc32: &mut [f32], a: &[Self], b: &[Self], narrow: bool);
}

impl Lane for f32 {
    #[inline(always)]
    fn from_u64(x: u64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn mul_acc(acc64: &mut [f64], acc32: &mut [f32], a: &[f32], b: &[f32], narrow: bool) {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        if narrow {
            let acc = &mut acc32[..n];
            for p in 0..n {
                acc[p] += a[p] * b[p];
            }
        } else {
            let acc = &mut acc64[..n];
            for p in 0..n {
                acc[p] += f64::from(a[p]) * f64::from(b[p]);
            }
        }
    }
}

impl Lane for f64 {
    #[inline(always)]
    fn from_u64(x: u64) -> Self {
        x as f64
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn mul_acc(acc64: &mut [f64], _: &mut [f32], a: &[f64], b: &[f64], _: bool) {
        let n = a.len().min(b.len());
        let (a, b, acc) = (&a[..n], &b[..n], &mut acc64[..n]);
        for p in 0..n {
            acc[p] += a[p] * b[p];
        }
    }
}

/// Per-level state of one tile.
#[derive(Debug, Clone)]
struct LevelState<S> {
    /// In-level lags of this level.
    lags: Vec<usize>,
    /// Ring of the last `depth` level-frames, slot-major (depth × len).
    ring: Vec<S>,
    depth: usize,
    /// The first `depth` level-frames, slot-major (F_p = total - the first k).
    head: Vec<S>,
    /// One exact f64 accumulator per lag, lag-major (n_lags × len).
    acc: Vec<f64>,
    /// f32 partial accumulators (f32 lanes only), flushed into `acc` before any partial sum
    /// could pass 2^24.
    acc32: Vec<f32>,
    /// Upper bound on every `acc32` entry since the last flush.
    bound32: f64,
    /// Level-frames seen.
    count: usize,
}

impl<S: Lane> LevelState<S> {
    fn flush(&mut self) {
        for (a, b) in self.acc.iter_mut().zip(self.acc32.iter_mut()) {
            *a += f64::from(*b);
            *b = 0.0;
        }
        self.bound32 = 0.0;
    }

    fn widen(&self) -> LevelState<f64> {
        let mut out = LevelState {
            lags: self.lags.clone(),
            ring: self.ring.iter().map(|x| x.to_f64()).collect(),
            depth: self.depth,
            head: self.head.iter().map(|x| x.to_f64()).collect(),
            acc: self.acc.clone(),
            acc32: Vec::new(),
            bound32: 0.0,
            count: self.count,
        };
        for (a, &b) in out.acc.iter_mut().zip(&self.acc32) {
            *a += f64::from(b);
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Levels {
    /// No pixel of the tile is in a bin.
    None,
    F32(Vec<LevelState<f32>>, Vec<f32>),
    F64(Vec<LevelState<f64>>, Vec<f64>),
}

#[derive(Debug, Clone)]
struct Tile {
    start: usize,
    len: usize,
    levels: Levels,
    /// Photons per pixel over all frames (for scattering_2d and the level totals).
    totals: Vec<u64>,
    /// Runs of consecutive pixels of one cell: (offset in tile, length, cell).
    runs: Vec<(usize, usize, usize)>,
    /// Largest raw count this tile has seen: bounds its level values (f32 exactness).
    max_count: u64,
}

/// Counts a stack can hold.
trait Count: Copy + Send + Sync {
    fn to_u64(self) -> u64;
}
impl Count for u8 {
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}
impl Count for u16 {
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}
impl Count for u32 {
    #[inline(always)]
    fn to_u64(self) -> u64 {
        u64::from(self)
    }
}

/// Pushes the level-0 frame in `incoming` and cascades into higher levels. `max_count` bounds
/// every raw count seen so far: level-L values are ≤ 2^L · max_count, so an f32 product at
/// level L is exact when (2^L·max_count)² ≤ 2^24, and f32 partial sums stay exact when
/// flushed before their bound passes 2^24.
#[inline(always)]
fn push_levels<S: Lane>(
    levels: &mut [LevelState<S>],
    incoming: &mut [S],
    len: usize,
    max_count: f64,
) {
    let n_levels = levels.len();
    let f32_lanes = std::mem::size_of::<S>() == 4;
    let mut level = 0;
    loop {
        let st = &mut levels[level];
        let s = st.count;
        let slot = s % st.depth;
        let cur = &incoming[..len];
        st.ring[slot * len..(slot + 1) * len].copy_from_slice(cur);
        if s < st.depth {
            st.head[s * len..(s + 1) * len].copy_from_slice(cur);
        }
        let vmax = max_count * (1u64 << level) as f64;
        let narrow = f32_lanes && vmax * vmax <= F32_EXACT;
        if narrow {
            if st.bound32 + vmax * vmax > F32_EXACT {
                st.flush();
            }
            st.bound32 += vmax * vmax;
        }
        for (j, &k) in st.lags.iter().enumerate() {
            if s >= k {
                let other = (s - k) % st.depth;
                let r = j * len..(j + 1) * len;
                let (acc64, acc32) = if narrow {
                    (&mut st.acc[..0], &mut st.acc32[r])
                } else {
                    (&mut st.acc[r], &mut st.acc32[..0])
                };
                S::mul_acc(
                    acc64,
                    acc32,
                    cur,
                    &st.ring[other * len..(other + 1) * len],
                    narrow,
                );
            }
        }
        st.count += 1;
        if s % 2 == 1 && level + 1 < n_levels {
            let prev = (s - 1) % st.depth;
            let r = &st.ring[prev * len..(prev + 1) * len];
            for (i, &x) in incoming[..len].iter_mut().zip(r) {
                *i += x;
            }
            level += 1;
        } else {
            break;
        }
    }
}

impl Tile {
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
            let mut row_max = 0;
            for (tot, &x) in self.totals.iter_mut().zip(row) {
                *tot += x.to_u64();
                row_max = row_max.max(x.to_u64());
            }
            if row_max > self.max_count {
                // The bound covers this frame before any of its values is stored.
                self.max_count = row_max;
                self.ensure_lanes();
            }
            let max_count = self.max_count as f64;
            match &mut self.levels {
                Levels::None => {}
                Levels::F32(levels, inc) => {
                    for (i, &x) in inc.iter_mut().zip(row) {
                        *i = f32::from_u64(x.to_u64());
                    }
                    push_levels(levels, inc, len, max_count);
                }
                Levels::F64(levels, inc) => {
                    for (i, &x) in inc.iter_mut().zip(row) {
                        *i = f64::from_u64(x.to_u64());
                    }
                    push_levels(levels, inc, len, max_count);
                }
            }
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

    /// Switches f32 rings to f64 (exactly) once level values could reach 2^24.
    fn ensure_lanes(&mut self) {
        let max_count = self.max_count as f64;
        if let Levels::F32(levels, _) = &self.levels {
            let top = (1u64 << (levels.len() - 1)) as f64;
            if max_count * top >= F32_EXACT {
                let wide: Vec<LevelState<f64>> = levels.iter().map(LevelState::widen).collect();
                self.levels = Levels::F64(wide, vec![0.0; self.len]);
            }
        }
    }

    /// (G, P, F) per lag (lag-major) for every pixel of the tile, exact.
    fn gpf(&self, n_lags: usize) -> [Vec<u64>; 3] {
        match &self.levels {
            Levels::None => [Vec::new(), Vec::new(), Vec::new()],
            Levels::F32(l, _) => gpf_levels(l, &self.totals, self.len, n_lags),
            Levels::F64(l, _) => gpf_levels(l, &self.totals, self.len, n_lags),
        }
    }
}

/// Adds the pixels of one run (G, P, F slices) to `acc`: u64 sums of u32 × u32 products when
/// every value is < 2^26 (exact: a run has ≤ TILE pixels, far below the 4096 that could
/// overflow), else the u128 path pixel by pixel.
fn add_run(acc: &mut Moments, g: &[u64], p: &[u64], f: &[u64]) {
    let big = g.iter().chain(p).chain(f).fold(0, |a, &x| a | x) >> 26;
    if big != 0 {
        for i in 0..g.len() {
            acc.add_pixel(g[i], p[i], f[i]);
        }
        return;
    }
    let mut m = [0u64; 9];
    for ((&a, &b), &c) in g.iter().zip(p).zip(f) {
        let (a, b, c) = (a as u32 as u64, b as u32 as u64, c as u32 as u64);
        m[0] += a;
        m[1] += b;
        m[2] += c;
        m[3] += a * a;
        m[4] += b * b;
        m[5] += c * c;
        m[6] += a * b;
        m[7] += a * c;
        m[8] += b * c;
    }
    let m = m.map(u128::from);
    acc.add(&Moments {
        g: m[0],
        p: m[1],
        f: m[2],
        gg: m[3],
        pp: m[4],
        ff: m[5],
        gp: m[6],
        gf: m[7],
        pf: m[8],
    });
}

fn gpf_levels<S: Lane>(
    levels: &[LevelState<S>],
    totals: &[u64],
    len: usize,
    n_lags: usize,
) -> [Vec<u64>; 3] {
    let mut gpf = [
        vec![0u64; n_lags * len],
        vec![0u64; n_lags * len],
        vec![0u64; n_lags * len],
    ];
    // Level totals from the raw totals: level L drops the last level-(L-1) frame when
    // level L-1 has an odd count.
    let mut total: Vec<u64> = totals.to_vec();
    let mut e = 0;
    for (l, st) in levels.iter().enumerate() {
        if l > 0 {
            let below = &levels[l - 1];
            if below.count % 2 == 1 {
                let slot = (below.count - 1) % below.depth;
                for (t, r) in total
                    .iter_mut()
                    .zip(&below.ring[slot * len..(slot + 1) * len])
                {
                    *t -= r.to_f64() as u64;
                }
            }
        }
        let t_l = st.count;
        // Running edge sums in f64 (exact integers): lags ascend, so the last k and the first
        // k level-frames grow one slot at a time.
        let total_f: Vec<f64> = total.iter().map(|&x| x as f64).collect();
        let mut last = vec![0f64; len];
        let mut first = vec![0f64; len];
        let mut done = 0;
        for (j, &k) in st.lags.iter().enumerate() {
            if t_l > k {
                // P: all level-frames but the last k (still in the ring); F: all but the
                // first k (kept in `head`).
                while done < k {
                    let r = &st.ring[((t_l - 1 - done) % st.depth) * len..][..len];
                    let h = &st.head[done * len..][..len];
                    for p in 0..len {
                        last[p] += r[p].to_f64();
                        first[p] += h[p].to_f64();
                    }
                    done += 1;
                }
                let acc32 = st.acc32.get(j * len..(j + 1) * len);
                for p in 0..len {
                    let g = st.acc[j * len + p] + acc32.map_or(0.0, |a| f64::from(a[p]));
                    gpf[0][e * len + p] = g as u64;
                    gpf[1][e * len + p] = (total_f[p] - last[p]) as u64;
                    gpf[2][e * len + p] = (total_f[p] - first[p]) as u64;
                }
            }
            e += 1;
        }
    }
    gpf
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
            let levels = if runs.is_empty() {
                Levels::None
            } else {
                let l = (0..schedule.n_levels())
                    .map(|l| {
                        let lags = schedule.level_lags(l).to_vec();
                        let depth = lags.last().map_or(2, |&k| (k + 1).max(2));
                        LevelState {
                            head: vec![0f32; depth * len],
                            ring: vec![0f32; depth * len],
                            depth,
                            acc: vec![0.0; lags.len() * len],
                            acc32: vec![0.0; lags.len() * len],
                            bound32: 0.0,
                            lags,
                            count: 0,
                        }
                    })
                    .collect();
                Levels::F32(l, vec![0.0; len])
            };
            tiles.push(Tile {
                start,
                len,
                levels,
                totals: vec![0; len],
                runs,
                max_count: 0,
            });
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
        self.push_view(&stack.view(), frames)
    }

    /// Pushes frames `frames` (a range of frame indices) of a borrowed stack, in order, without
    /// copying or widening them.
    pub fn push_view(
        &mut self,
        stack: &StackView<'_>,
        frames: std::ops::Range<usize>,
    ) -> Result<()> {
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
        match stack.counts() {
            Counts::U8(v) => self.push_chunk(&v[r], n),
            Counts::U16(v) => self.push_chunk(&v[r], n),
            Counts::U32(v) => self.push_chunk(&v[r], n),
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

    /// Reads a frame source to its end, `chunk_frames` frames at a time (memory: two chunks):
    /// the next chunk is read on this thread while the pool correlates the previous one, so
    /// reading (page faults, decoding) overlaps correlating. The same sums as pushing the
    /// frames one by one.
    pub fn push_source(&mut self, source: &mut dyn FrameSource, chunk_frames: usize) -> Result<()> {
        self.check_shape(source.frame_shape(), "frame source")?;
        let n_pix = self.shape.0 * self.shape.1;
        let chunk_frames = chunk_frames.max(1);
        // A source that lends its stored words (a mapped `.npy`) is correlated in place: no
        // widened copy; the pool's tiles read (and fault in) the words themselves.
        if let Some(r) = source.lend_frames(chunk_frames, &mut |v: &StackView<'_>| {
            self.push_view(v, 0..v.n_frames())
        }) {
            return r;
        }
        let fill = |source: &mut dyn FrameSource, buf: &mut [u32]| -> Result<usize> {
            let mut n = 0;
            while n < chunk_frames {
                let k = source.read_frames(&mut buf[n * n_pix..])?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            Ok(n)
        };
        let mut cur = vec![0u32; chunk_frames * n_pix];
        let mut next = vec![0u32; chunk_frames * n_pix];
        let mut n = fill(source, &mut cur)?;
        while n > 0 {
            let more = n == chunk_frames;
            let mut read = Ok(0);
            // `in_place_scope` runs this closure on the calling thread (the source need not
            // be Send); the spawned push runs on the pool meanwhile.
            rayon::in_place_scope(|s| {
                let chunk = &cur[..n * n_pix];
                let me = &mut *self;
                s.spawn(move |_| me.push_chunk(chunk, n));
                if more {
                    read = fill(source, &mut next);
                }
            });
            n = read?;
            std::mem::swap(&mut cur, &mut next);
        }
        Ok(())
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
                let gpf = tile.gpf(n_lags);
                let mut m = vec![Moments::default(); tile.runs.len() * n_lags];
                for (r, &(o, l, _)) in tile.runs.iter().enumerate() {
                    for e in 0..n_lags {
                        let acc = &mut m[r * n_lags + e];
                        let r = e * len + o..e * len + o + l;
                        add_run(acc, &gpf[0][r.clone()], &gpf[1][r.clone()], &gpf[2][r]);
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
