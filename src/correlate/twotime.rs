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
//! Speed: the numerator is a Gram matrix X·Xᵀ (X: frames × pixels), computed as f32 GEMM
//! (`matrixmultiply`) over upper-triangle blocks in parallel. f32 is exact here: with m the
//! largest count in the bin, pixels are taken in blocks of B = ⌊2^24 / m²⌋ so that every
//! partial sum is an integer below 2^24 (exactly representable), and each block is flushed
//! into the f64 total. Counts above 4096 fall back to f64 GEMM (exact below 2^53). Binned
//! counts are gathered as u32 (saturating at 2^32 - 1, far beyond any photon-counting frame).
//!
//! Reference: M. Sutton et al., Opt. Express 11, 2268 (2003) (two-time correlation); aging
//! cuts at t_mid = (t1 + t2)/2: DESIGN.md section 2.

use crate::data::{FrameStack, QPartition};
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
        let n = self.n_frames;
        let np = self.bin_pixels[i] as f64;
        let s = &self.bin_sums[i];
        let num = &self.numerator[i];
        Array2::from_shape_fn((n, n), |(a, b)| {
            let den = s[a] as f64 * s[b] as f64;
            if den > 0.0 {
                np * num[[a, b]] / den
            } else {
                f64::NAN
            }
        })
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

/// Binned matrices of several bins (one pass over the stack): for bin i with pixels
/// `px[i]`, the n × np row-major counts; exact f32 when every value is ≤ 4096 (then the f32
/// GEMM path is exact), else f64. Returns per bin (f32, f64, max).
type Binned = (Vec<f32>, Vec<f64>, u64);
fn binned_matrices(stack: &FrameStack, px: &[&[u32]], b: usize, n: usize) -> Vec<Binned> {
    let n_pix = stack.n_pixels();
    let mut rows: Vec<Vec<u32>> = px.iter().map(|p| vec![0u32; n * p.len()]).collect();
    // Blocks of two-time frames gathered in parallel; each block owns its rows of every bin.
    const BLOCK: usize = 16;
    let n_blocks = n.div_ceil(BLOCK);
    let mut per_block: Vec<Vec<&mut [u32]>> = (0..n_blocks).map(|_| Vec::new()).collect();
    for (r, p) in rows.iter_mut().zip(px) {
        let width = (BLOCK * p.len()).max(1);
        for (blk, chunk) in r.chunks_mut(width).enumerate() {
            per_block[blk].push(chunk);
        }
        // Bins without pixels have no chunks: keep the per-block lists aligned.
        if p.is_empty() {
            for list in per_block.iter_mut() {
                list.push(&mut []);
            }
        }
    }
    per_block
        .into_par_iter()
        .enumerate()
        .for_each(|(blk, mut slices)| {
            let mut buf = vec![0u32; n_pix];
            for t in blk * BLOCK..((blk + 1) * BLOCK).min(n) {
                let i = t - blk * BLOCK;
                for f in t * b..(t + 1) * b {
                    stack.frame_into(f, &mut buf);
                    for (sl, p) in slices.iter_mut().zip(px) {
                        let row = &mut sl[i * p.len()..(i + 1) * p.len()];
                        for (x, &q) in row.iter_mut().zip(p.iter()) {
                            *x = x.saturating_add(buf[q as usize]);
                        }
                    }
                }
            }
        });
    rows.into_par_iter()
        .map(|r| {
            let max = u64::from(r.iter().copied().max().unwrap_or(0));
            if max <= 4096 {
                (r.iter().map(|&v| v as f32).collect(), Vec::new(), max)
            } else {
                (Vec::new(), r.iter().map(|&v| f64::from(v)).collect(), max)
            }
        })
        .collect()
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
    let mats = binned_matrices(stack, &px, bin_frames, n);
    let per_bin: Vec<(Array2<f64>, Vec<u64>, u64)> = mats
        .into_par_iter()
        .zip(px.par_iter())
        .map(|((x, x64, max), px)| {
            let np = px.len();
            let sums = (0..n)
                .map(|t| {
                    if x64.is_empty() {
                        x[t * np..(t + 1) * np].iter().map(|&v| v as u64).sum()
                    } else {
                        x64[t * np..(t + 1) * np].iter().map(|&v| v as u64).sum()
                    }
                })
                .collect();
            (gram_exact(&x, &x64, n, np, max), sums, np as u64)
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
