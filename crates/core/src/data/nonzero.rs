//! Dense frames → per-pixel events, in two steps that both run in parallel.
//!
//! 1. Scan ([`NonzeroFrames::push_frame`]): a frame's nonzero pixels in pixel order, found by
//!    testing blocks of [`BLOCK`] words at once (at XPCS occupancies, ≤ 0.1 photon per pixel
//!    and frame, most blocks are all zero and cost one vector compare). Readers scan
//!    disjoint runs of frames concurrently, one [`NonzeroFrames`] each.
//! 2. Transpose ([`EventList::from_nonzero_frames`]): frame-major → the per-pixel CSR of
//!    [`EventList`]. The pixels are cut into bands, one parallel task each: a band counts its
//!    pixels' events, then, after one prefix sum over all pixels, writes them into its own
//!    contiguous range of the output, walking the frames in order (so each pixel's frames
//!    increase). Within a frame the band's events are found by binary search (frames list
//!    their pixels in increasing order). Nothing depends on the number of threads: the
//!    output is the one CSR of the input.

use super::events::EventList;
use crate::error::{Error, Result};
use rayon::prelude::*;

/// Words tested at once by the scan (a 64-byte cache line of u16 counts).
pub const BLOCK: usize = 32;

/// A count word of a dense frame: u8, u16 or u32.
pub trait CountWord: Copy + Send + Sync + 'static {
    /// The count.
    fn count(self) -> u32;
    /// Bitwise or (a block is all zero iff the or of its words is).
    fn or(self, other: Self) -> Self;
}

macro_rules! count_word {
    ($($t:ty),*) => {$(
        impl CountWord for $t {
            #[inline(always)]
            fn count(self) -> u32 {
                u32::from(self)
            }
            #[inline(always)]
            fn or(self, other: Self) -> Self {
                self | other
            }
        }
    )*};
}
count_word!(u8, u16, u32);

/// Appends the nonzero words of `frame` (pixel, count) to `px`, `ct`: each block of
/// [`BLOCK`] words is or-reduced (one vector or per 32 bytes) and skipped when zero; the
/// others give a bit mask of their nonzero words, walked bit by bit.
#[inline(always)]
fn scan_frame<W: CountWord>(frame: &[W], px: &mut Vec<u32>, ct: &mut Vec<u32>) {
    let mut blocks = frame.chunks_exact(BLOCK);
    let mut base = 0u32;
    for b in &mut blocks {
        let b: &[W; BLOCK] = b.try_into().expect("BLOCK long");
        if b.iter().fold(b[0], |a, &x| a.or(x)).count() != 0 {
            let mut mask = 0u32;
            for (i, &x) in b.iter().enumerate() {
                mask |= u32::from(x.count() != 0) << i;
            }
            let (mut ip, mut ic) = ([0u32; BLOCK], [0u32; BLOCK]);
            let mut n = 0;
            while mask != 0 {
                let i = mask.trailing_zeros();
                ip[n] = base + i;
                ic[n] = b[i as usize].count();
                n += 1;
                mask &= mask - 1;
            }
            px.extend_from_slice(&ip[..n]);
            ct.extend_from_slice(&ic[..n]);
        }
        base += BLOCK as u32;
    }
    for (i, &x) in blocks.remainder().iter().enumerate() {
        if x.count() != 0 {
            px.push(base + i as u32);
            ct.push(x.count());
        }
    }
}

/// [`scan_frame`] built for AVX2 (32-byte or-reductions and compares); same result.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_frame_avx2<W: CountWord>(frame: &[W], px: &mut Vec<u32>, ct: &mut Vec<u32>) {
    scan_frame(frame, px, ct);
}

/// The nonzero pixels of consecutive frames, frame-major: what one scan of dense frames
/// gives (see the module docs). Pixels increase within each frame by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonzeroFrames {
    n_pix: usize,
    /// Per frame: where its events start in `pixels` / `counts`; then the end.
    starts: Vec<usize>,
    pixels: Vec<u32>,
    counts: Vec<u32>,
}

impl NonzeroFrames {
    /// No frames yet, for frames of `n_pix` pixels (< 2^32).
    pub fn new(n_pix: usize) -> Result<Self> {
        if n_pix > u32::MAX as usize {
            return Err(Error::out_of_range(
                "dense frames",
                "pixels per frame",
                n_pix,
                "≤ 2^32 - 1",
            ));
        }
        Ok(NonzeroFrames {
            n_pix,
            starts: vec![0],
            pixels: Vec::new(),
            counts: Vec::new(),
        })
    }

    /// Frames pushed.
    pub fn n_frames(&self) -> usize {
        self.starts.len() - 1
    }

    /// Nonzero pixel-frames pushed.
    pub fn n_events(&self) -> usize {
        self.pixels.len()
    }

    /// Appends the nonzero pixels of one row-major frame of `n_pix` words.
    pub fn push_frame<W: CountWord>(&mut self, frame: &[W]) -> Result<()> {
        if frame.len() != self.n_pix {
            return Err(Error::ShapeMismatch {
                origin: "dense frames".into(),
                what: "pixels of a frame".into(),
                expected: vec![self.n_pix],
                got: vec![frame.len()],
            });
        }
        let (px, ct) = (&mut self.pixels, &mut self.counts);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            unsafe { scan_frame_avx2(frame, px, ct) };
            self.starts.push(px.len());
            return Ok(());
        }
        scan_frame(frame, px, ct);
        self.starts.push(px.len());
        Ok(())
    }

    /// Pixels and counts of local frame `t`.
    fn frame(&self, t: usize) -> (&[u32], &[u32]) {
        let r = self.starts[t]..self.starts[t + 1];
        (&self.pixels[r.clone()], &self.counts[r])
    }
}

/// Pixels per band of the transposition: at least this many (the binary searches per frame
/// stay few against the events), else the frame cut into 8 bands per thread.
const MIN_BAND: usize = 4096;

/// At most this many bands (the cut table holds bands + 1 u32 per frame).
const MAX_BANDS: usize = 64;

impl EventList {
    /// The events of the frames in `parts`, in order (part 0's frames first), as per-pixel
    /// CSR (see the module docs of [`NonzeroFrames`]). Every part must be of `rows × cols`
    /// pixels.
    pub fn from_nonzero_frames(
        rows: usize,
        cols: usize,
        frame_time_s: f64,
        parts: &[NonzeroFrames],
    ) -> Result<Self> {
        let origin = "dense frames";
        crate::check::check_frame_time(origin, "frame_time_s", frame_time_s)?;
        let n_pix = rows
            .checked_mul(cols)
            .ok_or_else(|| Error::invalid(origin, format!("shape ({rows}, {cols}) overflows")))?;
        if let Some(p) = parts.iter().find(|p| p.n_pix != n_pix) {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "pixels of a frame".into(),
                expected: vec![n_pix],
                got: vec![p.n_pix],
            });
        }
        let frames: Vec<(&[u32], &[u32])> = parts
            .iter()
            .flat_map(|p| (0..p.n_frames()).map(move |t| p.frame(t)))
            .collect();
        let n_frames = frames.len();
        if n_frames > u32::MAX as usize {
            return Err(Error::out_of_range(
                origin,
                "n_frames",
                n_frames,
                "≤ 2^32 - 1",
            ));
        }
        let band = n_pix
            .div_ceil((8 * rayon::current_num_threads()).min(MAX_BANDS))
            .max(MIN_BAND)
            .max(1);
        let bands: Vec<(usize, usize)> = (0..n_pix.div_ceil(band))
            .map(|b| (b * band, ((b + 1) * band).min(n_pix)))
            .collect();
        // Where each band's run starts in each frame (frames list their pixels in increasing
        // order): one sweep per frame, frames in parallel; row t holds bands + 1 cuts.
        let nb = bands.len();
        let mut cuts = vec![0u32; n_frames * (nb + 1)];
        cuts.par_chunks_mut(nb + 1)
            .zip(&frames)
            .for_each(|(row, &(px, _))| {
                let mut i = 0usize;
                for (b, &(lo, _)) in bands.iter().enumerate() {
                    while i < px.len() && (px[i] as usize) < lo {
                        i += 1;
                    }
                    row[b] = i as u32;
                }
                row[nb] = px.len() as u32;
            });
        let segment = |t: usize, b: usize| {
            let row = &cuts[t * (nb + 1)..(t + 1) * (nb + 1)];
            row[b] as usize..row[b + 1] as usize
        };
        // Events per pixel, band by band.
        let per_pixel: Vec<Vec<u32>> = (0..nb)
            .into_par_iter()
            .map(|b| {
                let (lo, hi) = bands[b];
                let mut n = vec![0u32; hi - lo];
                for (t, &(px, _)) in frames.iter().enumerate() {
                    for &p in &px[segment(t, b)] {
                        // ≤ one event per frame: below 2^32 (n_frames checked above).
                        n[p as usize - lo] += 1;
                    }
                }
                n
            })
            .collect();
        let mut offsets = Vec::with_capacity(n_pix + 1);
        offsets.push(0u64);
        let mut acc = 0u64;
        for &n in per_pixel.iter().flatten() {
            acc += u64::from(n);
            offsets.push(acc);
        }
        let n_events = acc as usize;
        let mut out_f = vec![0u32; n_events];
        let mut out_c = vec![0u32; n_events];
        // Each band's contiguous share of the output.
        let mut shares = Vec::with_capacity(bands.len());
        let (mut rest_f, mut rest_c) = (&mut out_f[..], &mut out_c[..]);
        for (b, &(lo, hi)) in bands.iter().enumerate() {
            let len = (offsets[hi] - offsets[lo]) as usize;
            let (f, rf) = std::mem::take(&mut rest_f).split_at_mut(len);
            let (c, rc) = std::mem::take(&mut rest_c).split_at_mut(len);
            (rest_f, rest_c) = (rf, rc);
            shares.push((b, f, c));
        }
        let offsets_ref = &offsets;
        shares.into_par_iter().for_each(|(b, f, c)| {
            let (lo, hi) = bands[b];
            let base = offsets_ref[lo];
            let mut cursor: Vec<usize> = offsets_ref[lo..hi]
                .iter()
                .map(|&o| (o - base) as usize)
                .collect();
            for (t, &(px, ct)) in frames.iter().enumerate() {
                let s = segment(t, b);
                for (&p, &k) in px[s.clone()].iter().zip(&ct[s]) {
                    let cur = &mut cursor[p as usize - lo];
                    f[*cur] = t as u32;
                    c[*cur] = k;
                    *cur += 1;
                }
            }
        });
        EventList::from_parts_unchecked(rows, cols, n_frames, frame_time_s, offsets, out_f, out_c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious reference: pixel by pixel, frame by frame.
    fn brute_force(t: usize, n_pix: usize, data: &[u32]) -> (Vec<u64>, Vec<u32>, Vec<u32>) {
        let (mut o, mut f, mut c) = (vec![0u64], Vec::new(), Vec::new());
        for p in 0..n_pix {
            for s in 0..t {
                let x = data[s * n_pix + p];
                if x > 0 {
                    f.push(s as u32);
                    c.push(x);
                }
            }
            o.push(f.len() as u64);
        }
        (o, f, c)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        /// Scan + transposition = the brute-force CSR, for any cut of the frames into
        /// parts, any word type, any thread count (1 and 3), shapes around the block size
        /// and band sizes, sparse and dense occupancy.
        #[test]
        fn equals_brute_force(
            t in 0usize..12,
            rows in 1usize..40,
            cols in prop::sample::select(vec![1usize, 7, 31, 32, 33, 130, 4097]),
            occ in prop::sample::select(vec![0.0f64, 0.02, 0.3, 1.0]),
            seed in any::<u64>(),
            cuts in prop::collection::vec(0usize..12, 0..4),
            word in 0usize..3,
        ) {
            let rows = if cols > 1000 { rows.min(3) } else { rows };
            let n_pix = rows * cols;
            // A small LCG: counts 0 (with 1 - occ) else 1..=300 (above u8 for u16/u32).
            let mut s = seed | 1;
            let mut next = || { s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (s >> 33) as u32 };
            let max = [255u32, 300, 70_000][word];
            let data: Vec<u32> = (0..t * n_pix)
                .map(|_| if (next() as f64) < occ * f64::from(1u32 << 31) { 1 + next() % max } else { 0 })
                .collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|x| x.min(t)).collect();
            cuts.push(0);
            cuts.push(t);
            cuts.sort_unstable();
            let build = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let parts: Vec<NonzeroFrames> = cuts.windows(2).map(|w| {
                        let mut nz = NonzeroFrames::new(n_pix).unwrap();
                        for s in w[0]..w[1] {
                            let fr = &data[s * n_pix..(s + 1) * n_pix];
                            match word {
                                0 => nz.push_frame(&fr.iter().map(|&x| x as u8).collect::<Vec<_>>()),
                                1 => nz.push_frame(&fr.iter().map(|&x| x as u16).collect::<Vec<_>>()),
                                _ => nz.push_frame(fr),
                            }.unwrap();
                        }
                        nz
                    }).collect();
                    EventList::from_nonzero_frames(rows, cols, 0.1, &parts).unwrap()
                })
            };
            let ev = build(1);
            let (o, f, c) = brute_force(t, n_pix, &data);
            prop_assert_eq!(ev.offsets(), &o[..]);
            prop_assert_eq!(ev.frames(), &f[..]);
            prop_assert_eq!(ev.counts(), &c[..]);
            prop_assert_eq!(ev.n_frames(), t);
            prop_assert_eq!(build(3), ev);
        }
    }

    #[test]
    fn wrong_frame_length_is_an_error() {
        let mut nz = NonzeroFrames::new(10).unwrap();
        assert!(nz.push_frame(&[0u16; 9]).is_err());
        nz.push_frame(&[0u16; 10]).unwrap();
        assert!(EventList::from_nonzero_frames(2, 4, 0.1, &[nz]).is_err());
    }
}
