//! Two-time correlation C(t1, t2) per dynamic bin, and what follows from it.
//!
//! Input: an in-memory [`FrameStack`] (or, in [`super::event`], an [`crate::data::EventList`]),
//! a [`QPartition`], the bins to process and a frame binning `bin_frames` (b raw frames are
//! summed into one two-time frame; a trailing incomplete group is dropped). Output:
//! [`TwoTimeResult`]: per bin the exact numerator Σ_p x_p(t1) x_p(t2) (an n × n symmetric
//! matrix of integers in f64, n = ⌊T/b⌋) and the bin's photons per frame S(t); from them
//! C(t1,t2) = <x(t1)x(t2)>_p / (<x(t1)>_p <x(t2)>_p) = N·num / (S(t1) S(t2)), NaN where a frame
//! has no photon in the bin. Axis order (t1, t2), in binned frames.
//!
//! Speed: the numerator is a Gram matrix X·Xᵀ (X: frames × pixels). One pass over the stack
//! gathers each bin's binned counts as a sparse matrix (binned counts saturate at 2^32 - 1,
//! far beyond any photon-counting frame); then, per bin, the cheaper of two exact methods:
//! - sparse (photon-counting data, most pixel-frames empty): per pixel, the outer product of
//!   its non-zero counts, summed tile by tile into cache-resident u64 accumulators; cost
//!   ∝ Σ_p k_p² (k_p: the pixel's non-zero frames), i.e. photon pairs, not pixel-frames;
//! - dense: f32 GEMM (`matrixmultiply`) over upper-triangle blocks in parallel. f32 is exact:
//!   with m the largest count, pixels are taken in blocks of B = ⌊2^24 / m²⌋ so that every
//!   partial sum is an integer below 2^24, and each block is flushed into the f64 total.
//!   Counts above 4096 use f64 GEMM (exact below 2^53).
//!
//! The choice weighs Σ_p k_p² against np · n² (`SCATTER_OVER_GEMM`); both give the same
//! integers, so the choice never changes the result.
//!
//! Reference: M. Sutton et al., Opt. Express 11, 2268 (2003) (two-time correlation); aging
//! cuts at t_mid = (t1 + t2)/2: docs/model.md §2.

use crate::data::{FrameStack, QPartition, StackView};
use crate::error::{Error, Result};
use ndarray::Array2;
use rayon::prelude::*;

/// Two-time results for a set of dynamic bins (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct TwoTimeResult {
    /// Raw frames summed into one two-time frame.
    pub bin_frames: usize,
    /// Two-time frames n (= ⌊T / bin_frames⌋).
    pub n_frames: usize,
    /// Dynamic labels processed (1-based), in order.
    pub bins: Vec<usize>,
    /// Pixels of each processed bin.
    pub bin_pixels: Vec<u64>,
    /// Σ_p x_p(t1) x_p(t2) per processed bin, n × n, symmetric, exact integers.
    pub numerator: Vec<Array2<f64>>,
    /// The bin's photons per two-time frame, S(t).
    pub bin_sums: Vec<Vec<u64>>,
}

impl TwoTimeResult {
    /// C(t1, t2) of processed bin `i` (index into [`TwoTimeResult::bins`]); NaN where S = 0.
    pub fn c2(&self, i: usize) -> Array2<f64> {
        normalised(
            &self.numerator[i],
            &self.bin_sums[i],
            self.bin_pixels[i] as f64,
        )
    }

    /// C(t1, t2) of all processed bins pooled into one (numerators, photon sums and pixels
    /// add over disjoint bins), leaving out processed bin `exclude` (an index into
    /// [`TwoTimeResult::bins`]) when given: with `Some(i)` for each i, the leave-one-bin-out
    /// replicates of the pooled map for a jackknife over bins. NaN where S = 0.
    pub fn c2_pooled(&self, exclude: Option<usize>) -> Array2<f64> {
        let n = self.n_frames;
        let mut num = Array2::<f64>::zeros((n, n));
        let mut s = vec![0u64; n];
        let mut np = 0u64;
        for i in (0..self.bins.len()).filter(|&i| Some(i) != exclude) {
            num += &self.numerator[i];
            for (a, &b) in s.iter_mut().zip(&self.bin_sums[i]) {
                *a += b;
            }
            np += self.bin_pixels[i];
        }
        normalised(&num, &s, np as f64)
    }

    /// One-time g2 from the diagonals of C: g2(k) = mean over t of C(t, t+k), k = 0..n-1
    /// (the APS `twotime/normalized_g2`); NaN entries of C are skipped, NaN if none is left.
    pub fn g2_from_diagonals(&self, i: usize) -> Vec<f64> {
        let c = self.c2(i);
        (0..self.n_frames)
            .map(|k| mean_finite((0..self.n_frames - k).map(|t| c[[t, t + k]])))
            .collect()
    }

    /// Age cut: for k = 0..=max_lag, the mean of C(t, t+k) over pairs whose age
    /// t_mid = t + k/2 lies within `half_width` of `age` (all in two-time frames). NaN where no
    /// pair qualifies.
    pub fn age_cut(&self, i: usize, age: f64, half_width: f64, max_lag: usize) -> Vec<f64> {
        let c = self.c2(i);
        let n = self.n_frames;
        (0..=max_lag)
            .map(|k| {
                if k >= n {
                    return f64::NAN;
                }
                mean_finite((0..n - k).filter_map(|t| {
                    let mid = t as f64 + k as f64 / 2.0;
                    ((mid - age).abs() <= half_width).then(|| c[[t, t + k]])
                }))
            })
            .collect()
    }

    /// Σ_t <x(t) x(t+k)>_p for k = 0..n-1 of processed bin `i`: the two-time diagonal sums,
    /// equal to the one-time numerators ΣG/N of a linear correlator on the binned frames.
    pub fn diagonal_numerators(&self, i: usize) -> Vec<f64> {
        let num = &self.numerator[i];
        let np = self.bin_pixels[i] as f64;
        (0..self.n_frames)
            .map(|k| (0..self.n_frames - k).map(|t| num[[t, t + k]]).sum::<f64>() / np)
            .collect()
    }
}

/// C = N·num / (S(t1) S(t2)); NaN where S = 0.
fn normalised(num: &Array2<f64>, s: &[u64], np: f64) -> Array2<f64> {
    Array2::from_shape_fn(num.dim(), |(a, b)| {
        let den = s[a] as f64 * s[b] as f64;
        if den > 0.0 {
            np * num[[a, b]] / den
        } else {
            f64::NAN
        }
    })
}

pub(crate) fn mean_finite(it: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for x in it.filter(|x| x.is_finite()) {
        s += x;
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

/// Checks the bins and frame binning shared by the dense and event two-time correlators;
/// returns the bins to process (all non-empty bins when `bins` is empty).
pub(crate) fn check_request(
    part: &QPartition,
    bins: &[usize],
    bin_frames: usize,
    n_frames: usize,
) -> Result<Vec<usize>> {
    let origin = "two-time request";
    if bin_frames == 0 || bin_frames > n_frames.max(1) {
        return Err(Error::out_of_range(
            origin,
            "bin_frames",
            bin_frames,
            format!("1..={}", n_frames.max(1)),
        ));
    }
    let n = n_frames / bin_frames;
    if n > 50_000 {
        return Err(Error::out_of_range(
            origin,
            "two-time frames (frames / bin_frames)",
            n,
            "≤ 50000 (bin frames to reduce the map)",
        ));
    }
    let nb = part.n_bins();
    let bins: Vec<usize> = if bins.is_empty() {
        (1..=nb)
            .filter(|&k| !part.dynamic().pixels(k).is_empty())
            .collect()
    } else {
        bins.to_vec()
    };
    for &k in &bins {
        if k == 0 || k > nb {
            return Err(Error::out_of_range(
                origin,
                "bin label",
                k,
                format!("1..={nb}"),
            ));
        }
    }
    Ok(bins)
}

/// One bin's binned counts as a frame-major sparse matrix (rows = two-time frames): the
/// non-zero counts of frame t are `pixel[row[t]..row[t + 1]]` (bin-local pixel index,
/// increasing) and `count[..]`.
#[derive(Debug, Default)]
struct BinSparse {
    row: Vec<usize>,
    pixel: Vec<u32>,
    count: Vec<u32>,
}

/// Two-time frames gathered per parallel work item.
const GATHER_BLOCK: usize = 16;

/// One pass over the stack: per bin, the binned counts of its pixels `px[i]` (b raw frames
/// summed per two-time frame, saturating at u32::MAX) as frame-major sparse matrices. Frame
/// blocks are gathered in parallel and joined in frame order.
fn gather_sparse(stack: &StackView<'_>, px: &[&[u32]], b: usize, n: usize) -> Vec<BinSparse> {
    let n_pix = stack.n_pixels();
    let n_blocks = n.div_ceil(GATHER_BLOCK);
    // Per block, per bin: (non-zeros per frame of the block, pixels, counts).
    type Part = (Vec<usize>, Vec<u32>, Vec<u32>);
    let blocks: Vec<Vec<Part>> = (0..n_blocks)
        .into_par_iter()
        .map(|blk| {
            let mut buf = vec![0u32; n_pix];
            let mut acc: Vec<Vec<u32>> = px.iter().map(|p| vec![0u32; p.len()]).collect();
            let mut parts: Vec<Part> = px.iter().map(|_| Part::default()).collect();
            for t in blk * GATHER_BLOCK..((blk + 1) * GATHER_BLOCK).min(n) {
                for f in t * b..(t + 1) * b {
                    stack.frame_into(f, &mut buf);
                    for (a, p) in acc.iter_mut().zip(px) {
                        if f == t * b {
                            for (x, &q) in a.iter_mut().zip(p.iter()) {
                                *x = buf[q as usize];
                            }
                        } else {
                            for (x, &q) in a.iter_mut().zip(p.iter()) {
                                *x = x.saturating_add(buf[q as usize]);
                            }
                        }
                    }
                }
                for (a, (nnz, pix, cnt)) in acc.iter().zip(parts.iter_mut()) {
                    let before = pix.len();
                    for (j, &x) in a.iter().enumerate() {
                        if x > 0 {
                            pix.push(j as u32);
                            cnt.push(x);
                        }
                    }
                    nnz.push(pix.len() - before);
                }
            }
            parts
        })
        .collect();
    (0..px.len())
        .map(|i| {
            let total: usize = blocks.iter().map(|bl| bl[i].1.len()).sum();
            let mut out = BinSparse {
                row: Vec::with_capacity(n + 1),
                pixel: Vec::with_capacity(total),
                count: Vec::with_capacity(total),
            };
            out.row.push(0);
            for bl in &blocks {
                let (nnz, pix, cnt) = &bl[i];
                for &k in nnz {
                    out.row.push(out.row.last().copied().unwrap_or(0) + k);
                }
                out.pixel.extend_from_slice(pix);
                out.count.extend_from_slice(cnt);
            }
            out
        })
        .collect()
}

/// How the Gram matrix of a bin is computed (both exact; chosen by estimated cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GramMethod {
    /// Dense GEMM over all pixel-frames ([`gram_exact`]): cost ∝ np · n².
    Dense,
    /// Per-pixel outer products of the non-zero counts, tiled ([`gram_sparse`]): cost ∝
    /// Σ_p k_p², k_p = non-zero two-time frames of pixel p.
    Sparse,
}

/// Relative cost of one scattered integer update of the sparse path against one multiply-add
/// of the f32 GEMM. ASSUMPTION (measured on the bench stack, 2-core AMD EPYC, AVX2: GEMM
/// ≈ 5e10 multiply-adds/s, tiled scatter ≈ 2e9 updates/s): the sparse path wins below ~20 %
/// non-zero pixel-frames.
const SCATTER_OVER_GEMM: f64 = 25.0;

impl BinSparse {
    /// The cheaper exact method for this bin (Sparse needs counts ≤ 2^16 so that u64 tile sums
    /// of up to 2^32 products stay exact).
    fn method(&self, n: usize, np: usize, max: u32) -> GramMethod {
        let mut k = vec![0u64; np];
        for &p in &self.pixel {
            k[p as usize] += 1;
        }
        cheaper_method(k.into_iter(), n, np, max)
    }

    /// Row-major dense copy (n × np): f32 when every count ≤ 4096 (the exact f32 GEMM path),
    /// else f64.
    fn dense(&self, n: usize, np: usize, max: u32) -> (Vec<f32>, Vec<f64>) {
        let fill = |set: &mut dyn FnMut(usize, u32)| {
            for t in 0..n {
                for j in self.row[t]..self.row[t + 1] {
                    set(t * np + self.pixel[j] as usize, self.count[j]);
                }
            }
        };
        if max <= 4096 {
            let mut x = vec![0f32; n * np];
            fill(&mut |i, v| x[i] = v as f32);
            (x, Vec::new())
        } else {
            let mut x = vec![0f64; n * np];
            fill(&mut |i, v| x[i] = f64::from(v));
            (Vec::new(), x)
        }
    }

    /// Pixel-major copy (CSR over pixels: offsets np + 1, two-time frames increasing, counts).
    fn by_pixel(&self, n: usize, np: usize) -> (Vec<usize>, Vec<u32>, Vec<u32>) {
        let mut off = vec![0usize; np + 1];
        for &p in &self.pixel {
            off[p as usize + 1] += 1;
        }
        for p in 0..np {
            off[p + 1] += off[p];
        }
        let mut next = off.clone();
        let mut frames = vec![0u32; self.pixel.len()];
        let mut counts = vec![0u32; self.pixel.len()];
        for t in 0..n {
            for j in self.row[t]..self.row[t + 1] {
                let p = self.pixel[j] as usize;
                frames[next[p]] = t as u32;
                counts[next[p]] = self.count[j];
                next[p] += 1;
            }
        }
        (off, frames, counts)
    }
}

/// The cheaper exact Gram method for `np` pixels with `k` non-zero two-time frames each (of
/// `n`) and largest count `max` (Sparse needs counts ≤ 2^16 so that u64 tile sums of up to
/// 2^32 products stay exact).
fn cheaper_method(k: impl Iterator<Item = u64>, n: usize, np: usize, max: u32) -> GramMethod {
    if max > u32::from(u16::MAX) || np == 0 {
        return GramMethod::Dense;
    }
    let scatter: f64 = k.map(|k| (k * (k + 1) / 2) as f64).sum();
    let gemm = np as f64 * n as f64 * n as f64 / 2.0;
    if scatter * SCATTER_OVER_GEMM < gemm {
        GramMethod::Sparse
    } else {
        GramMethod::Dense
    }
}

/// Exact Gram matrix Σ_p x_p x_pᵀ (n × n) of pixel-major sparse counts (`off`: np + 1
/// offsets; per pixel increasing two-time frames < n and counts) by the cheaper method, or by
/// `method` when given. The dense method takes pixels in chunks so that its f32 copy stays
/// below 256 MB.
pub(crate) fn gram_by_pixel(
    off: &[usize],
    frames: &[u32],
    counts: &[u32],
    n: usize,
    method: Option<GramMethod>,
) -> Array2<f64> {
    let chunk = ((1usize << 26) / n.max(1)).max(256);
    gram_by_pixel_chunked(off, frames, counts, n, method, chunk)
}

/// [`gram_by_pixel`] with the dense method's pixel chunk given (tests use small chunks).
fn gram_by_pixel_chunked(
    off: &[usize],
    frames: &[u32],
    counts: &[u32],
    n: usize,
    method: Option<GramMethod>,
    chunk: usize,
) -> Array2<f64> {
    let np = off.len() - 1;
    let max = counts.iter().copied().max().unwrap_or(0);
    let k = off.windows(2).map(|w| (w[1] - w[0]) as u64);
    match method.unwrap_or_else(|| cheaper_method(k, n, np, max)) {
        GramMethod::Sparse if max <= u32::from(u16::MAX) => gram_sparse(off, frames, counts, n),
        _ => {
            let mut total = Array2::<f64>::zeros((n, n));
            for p0 in (0..np).step_by(chunk) {
                let pc = chunk.min(np - p0);
                let mut x = vec![0f32; if max <= 4096 { n * pc } else { 0 }];
                let mut x64 = vec![0f64; if max <= 4096 { 0 } else { n * pc }];
                for j in 0..pc {
                    for e in off[p0 + j]..off[p0 + j + 1] {
                        let i = frames[e] as usize * pc + j;
                        if max <= 4096 {
                            x[i] = counts[e] as f32;
                        } else {
                            x64[i] = f64::from(counts[e]);
                        }
                    }
                }
                total += &gram_exact(&x, &x64, n, pc, u64::from(max));
            }
            total
        }
    }
}

/// Exact Gram matrix num[t1][t2] = Σ_p x_p(t1) x_p(t2) from pixel-major sparse counts
/// (`off`: np + 1 offsets; per pixel increasing two-time frames `frames` < n and `counts`
/// ≤ 2^16). The n × n matrix is cut into square tiles of side TB (upper triangle, in
/// parallel); a tile sums, pixel by pixel, the products of the pixel's events in the tile's
/// row block with those in its column block into cache-resident u64 accumulators (exact: at
/// most 2^32 products of ≤ 2^32 each per entry).
pub(crate) fn gram_sparse(off: &[usize], frames: &[u32], counts: &[u32], n: usize) -> Array2<f64> {
    let np = off.len() - 1;
    let mut out = Array2::<f64>::zeros((n, n));
    if n == 0 || frames.is_empty() {
        return out;
    }
    // At most 64 blocks per side so that the per-pixel block offsets stay small.
    let tb = 128usize.max(n.div_ceil(64));
    let nblk = n.div_ceil(tb);
    // bo[p · (nblk + 1) + j]: first event of pixel p in a block ≥ j.
    let mut bo = vec![0usize; np * (nblk + 1)];
    bo.par_chunks_mut(nblk + 1).enumerate().for_each(|(p, b)| {
        let mut e = off[p];
        for (j, slot) in b.iter_mut().enumerate() {
            while e < off[p + 1] && (frames[e] as usize) < j * tb {
                e += 1;
            }
            *slot = e;
        }
    });
    let pairs: Vec<(usize, usize)> = (0..nblk)
        .flat_map(|i| (i..nblk).map(move |j| (i, j)))
        .collect();
    let tiles: Vec<Vec<u64>> = pairs
        .par_iter()
        .map(|&(bi, bj)| {
            let (i0, j0) = (bi * tb, bj * tb);
            let mut tile = vec![0u64; tb * tb];
            for p in 0..np {
                let b = &bo[p * (nblk + 1)..(p + 1) * (nblk + 1)];
                let (ra, rb) = (b[bi]..b[bi + 1], b[bj]..b[bj + 1]);
                if ra.is_empty() || rb.is_empty() {
                    continue;
                }
                for a in ra {
                    let row = &mut tile[(frames[a] as usize - i0) * tb..][..tb];
                    let ca = u64::from(counts[a]);
                    let from = if bi == bj { a } else { rb.start };
                    for e in from..rb.end {
                        row[frames[e] as usize - j0] += ca * u64::from(counts[e]);
                    }
                }
            }
            tile
        })
        .collect();
    for (&(bi, bj), tile) in pairs.iter().zip(&tiles) {
        let (i0, j0) = (bi * tb, bj * tb);
        for a in i0..((bi + 1) * tb).min(n) {
            let from = if bi == bj { a } else { j0 };
            for b in from..((bj + 1) * tb).min(n) {
                let v = tile[(a - i0) * tb + (b - j0)] as f64;
                out[[a, b]] = v;
                out[[b, a]] = v;
            }
        }
    }
    out
}

/// Exact Gram matrix num = X·Xᵀ (X: n × np, row-major, integer-valued, max entry `max`).
fn gram_exact(x: &[f32], x64: &[f64], n: usize, np: usize, max: u64) -> Array2<f64> {
    const TB: usize = 256;
    let mut out = Array2::<f64>::zeros((n, n));
    if n == 0 || np == 0 || max == 0 {
        return out;
    }
    let nblk = n.div_ceil(TB);
    let pairs: Vec<(usize, usize)> = (0..nblk)
        .flat_map(|i| (i..nblk).map(move |j| (i, j)))
        .collect();
    let exact_f32 = max <= 4096;
    // Pixels per f32 block: every partial sum ≤ block · max² < 2^24.
    let pblk = if exact_f32 {
        ((1u64 << 24) / (max * max)).clamp(1, np as u64) as usize
    } else {
        np
    };
    let blocks: Vec<((usize, usize), Vec<f64>)> = pairs
        .par_iter()
        .map(|&(bi, bj)| {
            let (i0, i1) = (bi * TB, ((bi + 1) * TB).min(n));
            let (j0, j1) = (bj * TB, ((bj + 1) * TB).min(n));
            let (m, k) = (i1 - i0, j1 - j0);
            let mut acc = vec![0f64; m * k];
            if exact_f32 {
                let mut c = vec![0f32; m * k];
                let mut p0 = 0;
                while p0 < np {
                    let pl = pblk.min(np - p0);
                    // SAFETY: a = rows i0..i1, cols p0..p0+pl of x (row stride np); b = the
                    // transpose of rows j0..j1 (element (p, t) at t·np + p); c is m × k.
                    unsafe {
                        matrixmultiply::sgemm(
                            m,
                            pl,
                            k,
                            1.0,
                            x.as_ptr().add(i0 * np + p0),
                            np as isize,
                            1,
                            x.as_ptr().add(j0 * np + p0),
                            1,
                            np as isize,
                            0.0,
                            c.as_mut_ptr(),
                            k as isize,
                            1,
                        );
                    }
                    for (a, &v) in acc.iter_mut().zip(&c) {
                        *a += f64::from(v);
                    }
                    p0 += pl;
                }
            } else {
                // SAFETY: as above, on the f64 copy.
                unsafe {
                    matrixmultiply::dgemm(
                        m,
                        np,
                        k,
                        1.0,
                        x64.as_ptr().add(i0 * np),
                        np as isize,
                        1,
                        x64.as_ptr().add(j0 * np),
                        1,
                        np as isize,
                        0.0,
                        acc.as_mut_ptr(),
                        k as isize,
                        1,
                    );
                }
            }
            ((bi, bj), acc)
        })
        .collect();
    for ((bi, bj), acc) in blocks {
        let (i0, i1) = (bi * TB, ((bi + 1) * TB).min(n));
        let (j0, j1) = (bj * TB, ((bj + 1) * TB).min(n));
        let k = j1 - j0;
        for a in i0..i1 {
            for b in j0..j1 {
                let v = acc[(a - i0) * k + (b - j0)];
                out[[a, b]] = v;
                out[[b, a]] = v;
            }
        }
    }
    out
}

/// Two-time correlation of an in-memory stack for `bins` (all non-empty bins if empty), with
/// `bin_frames` raw frames per two-time frame.
pub fn two_time_stack(
    stack: &FrameStack,
    part: &QPartition,
    bins: &[usize],
    bin_frames: usize,
) -> Result<TwoTimeResult> {
    two_time_stack_with(&stack.view(), part, bins, bin_frames, None)
}

/// [`two_time_stack`] of a borrowed stack (no copy of the counts).
pub fn two_time_view(
    stack: &StackView<'_>,
    part: &QPartition,
    bins: &[usize],
    bin_frames: usize,
) -> Result<TwoTimeResult> {
    two_time_stack_with(stack, part, bins, bin_frames, None)
}

/// The Gram matrix of one gathered bin with the given method.
fn gram_of(g: &BinSparse, n: usize, np: usize, max: u32, method: GramMethod) -> Array2<f64> {
    match method {
        GramMethod::Sparse if max <= u32::from(u16::MAX) => {
            let (off, frames, counts) = g.by_pixel(n, np);
            gram_sparse(&off, &frames, &counts, n)
        }
        _ => {
            let (x, x64) = g.dense(n, np, max);
            gram_exact(&x, &x64, n, np, u64::from(max))
        }
    }
}

/// [`two_time_stack`] with the Gram method forced (`None`: the cheaper one per bin); the
/// tests check that both methods give the same exact numerators.
pub(crate) fn two_time_stack_with(
    stack: &StackView<'_>,
    part: &QPartition,
    bins: &[usize],
    bin_frames: usize,
    method: Option<GramMethod>,
) -> Result<TwoTimeResult> {
    if stack.frame_shape() != part.shape() {
        let (a, b) = (part.shape(), stack.frame_shape());
        return Err(Error::ShapeMismatch {
            origin: "frame stack".into(),
            what: "frame shape vs q-partition".into(),
            expected: vec![a.0, a.1],
            got: vec![b.0, b.1],
        });
    }
    let bins = check_request(part, bins, bin_frames, stack.n_frames())?;
    let n = stack.n_frames() / bin_frames;
    let px: Vec<&[u32]> = bins.iter().map(|&k| part.dynamic().pixels(k)).collect();
    let gathered = gather_sparse(stack, &px, bin_frames, n);
    let per_bin: Vec<(Array2<f64>, Vec<u64>, u64)> = gathered
        .into_par_iter()
        .zip(px.par_iter())
        .map(|(g, px)| {
            let np = px.len();
            let sums = (0..n)
                .map(|t| {
                    g.count[g.row[t]..g.row[t + 1]]
                        .iter()
                        .map(|&v| u64::from(v))
                        .sum()
                })
                .collect();
            let max = g.count.iter().copied().max().unwrap_or(0);
            let num = gram_of(
                &g,
                n,
                np,
                max,
                method.unwrap_or_else(|| g.method(n, np, max)),
            );
            (num, sums, np as u64)
        })
        .collect();
    let mut out = TwoTimeResult {
        bin_frames,
        n_frames: n,
        bins,
        bin_pixels: Vec::new(),
        numerator: Vec::new(),
        bin_sums: Vec::new(),
    };
    for (num, sums, np) in per_bin {
        out.numerator.push(num);
        out.bin_sums.push(sums);
        out.bin_pixels.push(np);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Pixel-major Gram: sparse, dense in pixel chunks of any size, and the brute-force
        /// sum agree exactly.
        #[test]
        fn gram_by_pixel_methods_agree(
            px in prop::collection::vec(prop::collection::btree_map(0u32..40, 1u32..6000, 0..12), 1..9),
            chunk in 1usize..5,
        ) {
            let n = 40;
            let mut off = vec![0usize];
            let (mut fr, mut ct) = (Vec::new(), Vec::new());
            for p in &px {
                for (&f, &c) in p {
                    fr.push(f);
                    ct.push(c);
                }
                off.push(fr.len());
            }
            let sparse = gram_by_pixel_chunked(&off, &fr, &ct, n, Some(GramMethod::Sparse), chunk);
            let dense = gram_by_pixel_chunked(&off, &fr, &ct, n, Some(GramMethod::Dense), chunk);
            prop_assert_eq!(&sparse, &dense);
            for a in 0..n as u32 {
                for b in 0..n as u32 {
                    let want: f64 = px
                        .iter()
                        .map(|p| {
                            let x = |t: u32| f64::from(p.get(&t).copied().unwrap_or(0));
                            x(a) * x(b)
                        })
                        .sum();
                    prop_assert_eq!(sparse[[a as usize, b as usize]], want);
                }
            }
        }
    }
}
