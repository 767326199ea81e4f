//! Photon records in file order → per-pixel event blocks, in bounded memory.
//!
//! Sparse beamline formats store photons as records (pixel, frame, count) in *frame* order:
//! the Rigaku 64-bit `.bin` files, compressed IMM frames, the ESRF ID10 sparse HDF5 files,
//! APS `(index, frame, count)` triplets. The event correlator wants them by *pixel* (the CSR
//! of [`EventList`]). [`PixelBlocks`] transposes any [`PhotonRecords`] source without ever
//! holding a dense stack, and without holding more than one block of events.
//!
//! **Single read** (the usual case: the format states its number of records and they fit one
//! block of `max_block_events`): pass 1 reads the file once, checks every record and stages
//! it by *bucket* of 2^k consecutive pixels (8 bytes a record, in chunks of an arena; one
//! share of the file per thread when the format splits, as Rigaku files do); then each bucket
//! counts its pixels and scatters its records into their pixel's slots, buckets in parallel,
//! each within a core's cache. Peak: 16 bytes per record (staged + built), whatever the
//! number of frames.
//!
//! **Blocks** (records beyond one block, or unknown in advance): pass 1 counts the records
//! of every pixel (4 bytes per pixel); the pixels are cut into consecutive blocks of at most
//! `max_block_events` records; each block is one more pass over the file that appends the
//! block's records to buckets (10 bytes a record) and scatters each bucket into its pixels'
//! slots. Peak: 4 bytes per pixel + 10 bytes per record of one block; the file is read
//! `1 + blocks` times (sequential reads).
//!
//! Either way a record breaking the strictly increasing (frame, pixel) order detectors write
//! (unsorted or repeated records, a second module file) or with no photon makes the blocks
//! sort each pixel's events by frame, sum repeated (pixel, frame) pairs and drop zero counts;
//! the result does not depend on the number of threads.

//! Output: [`EventBlock`]s in pixel order (through [`EventSource`]), or a whole
//! [`EventList`] ([`PixelBlocks::into_event_list`]). Every pixel's frames strictly increase,
//! counts are ≥ 1: the blocks go straight into `EventCorrelator::push_pixel_block`.
//!
//! Reference: the per-pixel sparse layout of Chushkin, Caronna & Madsen, J. Appl. Cryst. 45,
//! 807 (2012).

use std::path::{Path, PathBuf};

use crate::events::{EventBlock, EventSource};
use xpcs_core::correlate::{BlockSums, EventCorrelator};
use xpcs_core::data::{check_frame_buffer, EventList, FrameSource};
use xpcs_core::error::{Error, Result};

/// Records per batch handed to a scan's visitor.
pub const BATCH_RECORDS: usize = 1 << 12;

/// Default bound on the events of one pixel block (10 bytes each while the block is built:
/// 160 MiB; 8 bytes each once built).
pub const DEFAULT_MAX_BLOCK_EVENTS: usize = 1 << 24;

/// Events per bucket of the two-step scatter (see [`PixelBlocks`]): about 20 bytes each in
/// flight, so that a bucket stays within a core's L2 cache (2 MiB here).
const BUCKET_EVENTS: usize = 1 << 16;

/// Largest frame (rows × cols) a sparse reader accepts when the file does not back the shape
/// with data (IMM compressed frames, ESRF sparse files, triplets): 2^26 pixels, above every
/// XPCS detector (EIGER2 16M: 18 M pixels). Per-pixel state is 8 bytes per pixel.
pub const MAX_PIXELS: usize = 1 << 26;

/// A batch of photon records as parallel arrays: row-major pixel index, frame, photons.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// Row-major pixel index of each record (row · cols + col).
    pub pixels: Vec<u32>,
    /// Frame index of each record.
    pub frames: Vec<u32>,
    /// Photons of each record (0 allowed: such records are dropped).
    pub counts: Vec<u32>,
}

impl RecordBatch {
    /// An empty batch with room for [`BATCH_RECORDS`] records.
    pub fn with_capacity() -> Self {
        RecordBatch {
            pixels: Vec::with_capacity(BATCH_RECORDS),
            frames: Vec::with_capacity(BATCH_RECORDS),
            counts: Vec::with_capacity(BATCH_RECORDS),
        }
    }
    /// Number of records.
    pub fn len(&self) -> usize {
        self.pixels.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.pixels.is_empty()
    }
    /// Removes every record (keeps the capacity).
    pub fn clear(&mut self) {
        self.pixels.clear();
        self.frames.clear();
        self.counts.clear();
    }
    /// Appends one record.
    #[inline]
    pub fn push(&mut self, pixel: u32, frame: u32, count: u32) {
        self.pixels.push(pixel);
        self.frames.push(frame);
        self.counts.push(count);
    }
}

/// A source of photon records that can be read more than once (each [`PhotonRecords::scan`]
/// is one pass over the file, in file order).
pub trait PhotonRecords {
    /// The file (or first file) the records come from, for error messages.
    fn origin(&self) -> &Path;
    /// Frame shape (rows, cols) of the pixel indices.
    fn frame_shape(&self) -> (usize, usize);
    /// Frames of the series if the format states them; `None`: the largest frame + 1.
    fn n_frames(&self) -> Option<usize>;
    /// Frame period (s) if the format stores it.
    fn frame_time_s(&self) -> Option<f64>;
    /// The number of records, if the format states it before a scan (file length, headers):
    /// when it fits one block, pass 1 also stages the records and the file is read once.
    fn n_records_hint(&self) -> Option<u64> {
        None
    }
    /// `n` sources that together hold the records, each a contiguous share of the file order
    /// (for every pixel, part k's records precede part k + 1's), scanned concurrently by
    /// pass 1; `None` (the default) when the format reads only as a whole.
    fn parts(&self, _n: usize) -> Option<Vec<Box<dyn PhotonRecords + Send>>> {
        None
    }
    /// Visits every record once, in file order, in batches of at most [`BATCH_RECORDS`].
    /// The source checks its own layout (e.g. a module's pixel range); the transposition
    /// checks pixel < rows · cols and frame < frames.
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()>;
}

/// Checks a frame shape of a sparse format against [`MAX_PIXELS`]; returns rows · cols.
pub fn checked_pixels(origin: &Path, (rows, cols): (usize, usize)) -> Result<usize> {
    rows.checked_mul(cols)
        .filter(|&n| n > 0 && n <= MAX_PIXELS)
        .ok_or_else(|| {
            Error::out_of_range(
                origin.display().to_string(),
                "frame shape (rows, cols)",
                format!("({rows}, {cols})"),
                format!("1 to {MAX_PIXELS} pixels"),
            )
        })
}

/// Pixel blocks of a [`PhotonRecords`] source (see the module docs): pass 1 runs in
/// [`PixelBlocks::new`], each [`EventSource::next_block`] is one more pass.
#[derive(Debug)]
pub struct PixelBlocks<R> {
    src: R,
    origin: PathBuf,
    shape: (usize, usize),
    n_frames: usize,
    /// Records per pixel (pass 1).
    per_pixel: Vec<u32>,
    n_records: u64,
    /// Some pixel has records whose frames do not strictly increase, or a zero count: blocks
    /// are sorted and merged after the scatter.
    irregular: bool,
    /// Pixel boundaries of the blocks (first pixel of each, then rows · cols).
    bounds: Vec<usize>,
    next: usize,
    /// Single-read mode: the records staged by pass 1 (one block), per share of the file.
    staged: Option<Vec<Staged>>,
}

/// Records per arena chunk of [`Staged`].
const STAGE_CHUNK: u32 = 2048;

/// Pass 1's copy of the records when they fit one block, grouped by bucket of 2^shift
/// consecutive pixels in chunks of an arena, in file order within a bucket: [frame,
/// count · 2^16 + pixel within the bucket], 8 bytes a record (a count above 65535 ends the
/// staging: the file is then read again). The block is then built from memory, bucket by
/// bucket in parallel, without reading the file again.
#[derive(Debug)]
struct Staged {
    shift: u32,
    /// Per bucket: [next arena slot, end of its current chunk].
    cur: Vec<[u32; 2]>,
    /// Per bucket: its chunks, in order.
    chunks: Vec<Vec<u32>>,
    /// One write stream per bucket: chunks of [`STAGE_CHUNK`] slots, the first `used` of them
    /// handed out.
    arena: Vec<[u32; 2]>,
    used: usize,
}

impl Staged {
    fn new(shift: u32, n_buckets: usize, hint: u64) -> Self {
        // Room for every record plus one partly filled chunk per bucket, allocated zeroed
        // (fresh pages from the system, not written here: no memset pass before the records
        // are written). Not advised onto transparent huge pages: their first fault can stall
        // for compaction (100 MB took 0.77 s instead of 43 ms on a machine hours into use).
        let cap = hint as usize + n_buckets * STAGE_CHUNK as usize;
        let arena = vec![[0u32; 2]; cap];
        Staged {
            shift,
            cur: vec![[0, 0]; n_buckets],
            chunks: vec![Vec::new(); n_buckets],
            arena,
            used: 0,
        }
    }

    /// Calls `f` on each run of bucket `b`'s records, in file order.
    #[inline(always)]
    fn for_each_run(&self, b: usize, mut f: impl FnMut(&[[u32; 2]])) {
        let n = self.chunks[b].len();
        for (i, &ch) in self.chunks[b].iter().enumerate() {
            let s0 = (ch * STAGE_CHUNK) as usize;
            let s1 = if i + 1 == n {
                self.cur[b][0] as usize
            } else {
                s0 + STAGE_CHUNK as usize
            };
            f(&self.arena[s0..s1]);
        }
    }

    /// Appends a record of pixel `p` (< rows · cols). False when the count exceeds 65535 or
    /// the arena would pass 2^32 slots (the caller then reads the file again instead).
    #[inline(always)]
    fn push(&mut self, p: usize, f: u32, c: u32) -> bool {
        if c > 0xFFFF {
            return false;
        }
        let b = p >> self.shift;
        let cur = &mut self.cur[b];
        if cur[0] == cur[1] {
            let start = self.used;
            let end = start + STAGE_CHUNK as usize;
            let Ok(s32) = u32::try_from(end) else {
                return false;
            };
            if end > self.arena.len() {
                // More records than the hint said: grow (amortised doubling).
                self.arena.resize(end.max(2 * self.arena.len()), [0; 2]);
            }
            self.used = end;
            self.chunks[b].push(start as u32 / STAGE_CHUNK);
            *cur = [start as u32, s32];
        }
        let k = cur[0] as usize;
        cur[0] += 1;
        self.arena[k] = [f, c << 16 | (p & ((1 << self.shift) - 1)) as u32];
        true
    }
}

/// Bucket size (2^shift pixels, ≤ 65536 for the u16 pixel-in-bucket) giving about
/// [`BUCKET_EVENTS`] events per bucket on average, and at most 4096 buckets.
fn bucket_shift(n_pix: usize, events: usize) -> u32 {
    let per_px = (events as f64 / n_pix.max(1) as f64).max(1e-9);
    let by_events = (BUCKET_EVENTS as f64 / per_px).log2().floor().max(0.0) as u32;
    let by_count = (n_pix.div_ceil(4096).max(1) as f64).log2().ceil() as u32;
    by_events.max(by_count).min(16)
}

/// What pass 1 learns besides what its visitor keeps.
struct Pass1 {
    n_records: u64,
    /// Some record breaks the strictly increasing (frame, pixel) order, or has no photon.
    irregular: bool,
    max_frame: Option<u32>,
    /// (frame, pixel) keys of the first and last records.
    first_key: Option<u64>,
    last_key: Option<u64>,
}

impl Pass1 {
    /// The frames of the series: the declared number (every record below it), else the
    /// largest frame + 1.
    fn n_frames(&self, declared: Option<usize>, origin: &Path) -> Result<usize> {
        let o = || origin.display().to_string();
        let n = match (declared, self.max_frame) {
            (Some(n), Some(m)) if m as usize >= n => {
                return Err(Error::out_of_range(
                    o(),
                    "frame index of a photon record",
                    m,
                    format!("0..{n} (the frames of the series)"),
                ))
            }
            (Some(n), _) => n,
            (None, Some(m)) => m as usize + 1,
            (None, None) => 0,
        };
        if n > u32::MAX as usize {
            return Err(Error::out_of_range(o(), "frames", n, "≤ 4294967295"));
        }
        Ok(n)
    }
}

/// Pass 1: every record checked (pixel < `n_pix`) and handed to `keep(pixel, frame, count)`.
/// Records in strictly increasing (frame, pixel) order, as detectors write them, give every
/// pixel strictly increasing frames; anything else (a second module file, an unsorted or
/// repeated record, a zero count) marks the scan irregular: the blocks then sort and merge.
fn pass1<R: PhotonRecords + ?Sized, K: FnMut(usize, u32, u32)>(
    src: &mut R,
    n_pix: usize,
    mut keep: K,
) -> Result<Pass1> {
    let origin = src.origin().display().to_string();
    let shape = src.frame_shape();
    let mut out = Pass1 {
        n_records: 0,
        irregular: false,
        max_frame: None,
        first_key: None,
        last_key: None,
    };
    let mut next_key = 0u64;
    let key = |p: u32, f: u32| u64::from(f) << 32 | u64::from(p);
    src.scan(&mut |b| {
        // One length for the three arrays (a source's batch with ragged arrays stops at the
        // shortest, as zipping them did).
        let n = b.pixels.len().min(b.frames.len()).min(b.counts.len());
        let (ps, fs, cs) = (&b.pixels[..n], &b.frames[..n], &b.counts[..n]);
        // The checks first, in loops of their own (few live values: no spills, vectorised),
        // then the records to `keep`, which may rely on pixel < n_pix.
        if ps.iter().fold(false, |bad, &p| bad | (p as usize >= n_pix)) {
            let &p = ps
                .iter()
                .find(|&&p| p as usize >= n_pix)
                .expect("a bad pixel");
            return Err(Error::out_of_range(
                &origin,
                "pixel index of a photon record",
                p,
                format!("0..{n_pix} (rows · cols of {shape:?})"),
            ));
        }
        let Some((&p0, &f0)) = ps.first().zip(fs.first()) else {
            return Ok(());
        };
        let mx = fs.iter().fold(0u32, |m, &f| m.max(f));
        let zero = cs.iter().fold(false, |z, &c| z | (c == 0));
        // Strictly increasing (frame, pixel) keys, across batches too.
        let mut irr = key(p0, f0) < next_key;
        for (w, v) in ps.windows(2).zip(fs.windows(2)) {
            irr |= key(w[1], v[1]) <= key(w[0], v[0]);
        }
        for ((&p, &f), &c) in ps.iter().zip(fs).zip(cs) {
            keep(p as usize, f, c);
        }
        let last = key(ps[ps.len() - 1], fs[fs.len() - 1]);
        next_key = last.saturating_add(1);
        out.first_key.get_or_insert(key(p0, f0));
        out.max_frame = Some(out.max_frame.map_or(mx, |m| m.max(mx)));
        out.last_key = Some(last);
        out.irregular |= irr || zero;
        out.n_records += n as u64;
        Ok(())
    })?;
    Ok(out)
}

impl<R: PhotonRecords> PixelBlocks<R> {
    /// Runs pass 1 over `src` and plans blocks of at most `max_block_events` records (a single
    /// pixel with more records gets a block of its own).
    pub fn new(mut src: R, max_block_events: usize) -> Result<Self> {
        let origin = src.origin().to_path_buf();
        let shape = src.frame_shape();
        let n_pix = checked_pixels(&origin, shape)?;
        let cap = max_block_events.clamp(1, u32::MAX as usize) as u64;
        // Single read when the format says the records fit one block: pass 1 stages them by
        // bucket and needs no per-pixel array (the buckets count their pixels later).
        if let Some(h) = src.n_records_hint().filter(|&h| h <= cap) {
            let shift = bucket_shift(n_pix, h as usize);
            let nb = n_pix.div_ceil(1 << shift);
            // One share of the file per thread when the format splits (memory: the same).
            let threads = rayon::current_num_threads();
            let mut parts = if threads > 1 {
                src.parts(threads)
            } else {
                None
            };
            let staged: Vec<(Result<Pass1>, Staged, bool)> = match &mut parts {
                Some(parts) => {
                    use rayon::prelude::*;
                    parts
                        .par_iter_mut()
                        .map(|part| {
                            let hint = part.n_records_hint().unwrap_or(0);
                            let mut st = Staged::new(shift, nb, hint);
                            let mut fits = true;
                            let p1 = pass1(part.as_mut(), n_pix, |p, f, c| {
                                fits &= st.push(p, f, c);
                            });
                            (p1, st, fits)
                        })
                        .collect()
                }
                None => {
                    let mut st = Staged::new(shift, nb, h);
                    let mut fits = true;
                    let p1 = pass1(&mut src, n_pix, |p, f, c| {
                        fits &= st.push(p, f, c);
                    });
                    vec![(p1, st, fits)]
                }
            };
            // The first error in file order; then the parts joined in order.
            let mut p1 = Pass1 {
                n_records: 0,
                irregular: false,
                max_frame: None,
                first_key: None,
                last_key: None,
            };
            let mut fits = true;
            let mut stages = Vec::with_capacity(staged.len());
            for (r, st, f) in staged {
                let q = r?;
                if let (Some(last), Some(first)) = (p1.last_key, q.first_key) {
                    p1.irregular |= first <= last;
                }
                p1.irregular |= q.irregular;
                p1.n_records += q.n_records;
                p1.max_frame = p1.max_frame.max(q.max_frame);
                p1.first_key = p1.first_key.or(q.first_key);
                p1.last_key = q.last_key.or(p1.last_key);
                fits &= f;
                stages.push(st);
            }
            if fits && p1.n_records <= cap {
                let n_frames = p1.n_frames(src.n_frames(), &origin)?;
                return Ok(PixelBlocks {
                    src,
                    origin,
                    shape,
                    n_frames,
                    per_pixel: Vec::new(),
                    n_records: p1.n_records,
                    irregular: p1.irregular,
                    bounds: vec![0, n_pix],
                    next: 0,
                    staged: Some(stages),
                });
            }
        }
        // Records per pixel (4 bytes a pixel), then blocks of consecutive pixels.
        let mut per_pixel: Vec<u32> = vec![0; n_pix];
        let p1 = pass1(&mut src, n_pix, |p, _, _| {
            per_pixel[p] = per_pixel[p].wrapping_add(1);
        })?;
        // A pixel with 2^32 records or more wrapped its counter: the sum tells.
        if per_pixel.iter().map(|&c| u64::from(c)).sum::<u64>() != p1.n_records {
            return Err(Error::invalid(
                origin.display().to_string(),
                "a pixel has 2^32 or more photon records",
            ));
        }
        let n_frames = p1.n_frames(src.n_frames(), &origin)?;
        // Each block ≤ max_block_events records (or one pixel).
        let mut bounds = vec![0usize];
        let mut acc = 0u64;
        for (p, &c) in per_pixel.iter().enumerate() {
            if acc > 0 && acc + u64::from(c) > cap {
                bounds.push(p);
                acc = 0;
            }
            acc += u64::from(c);
        }
        bounds.push(n_pix);
        Ok(PixelBlocks {
            src,
            origin,
            shape,
            n_frames,
            per_pixel,
            n_records: p1.n_records,
            irregular: p1.irregular,
            bounds,
            next: 0,
            staged: None,
        })
    }

    /// Photon records in the file (before repeated pairs are summed and zeros dropped).
    pub fn n_records(&self) -> u64 {
        self.n_records
    }

    /// Number of pixel blocks (passes after the first).
    pub fn n_blocks(&self) -> usize {
        self.bounds.len() - 1
    }

    /// The source.
    pub fn source(&self) -> &R {
        &self.src
    }

    /// Reads every block into one [`EventList`] (frame time: the file's, else `frame_time_s`).
    pub fn into_event_list(mut self, frame_time_s: f64) -> Result<EventList> {
        let ft = self.src.frame_time_s().unwrap_or(frame_time_s);
        let (rows, cols) = self.shape;
        let mut offsets = Vec::with_capacity(rows * cols + 1);
        offsets.push(0u64);
        let (mut frames, mut counts) = (Vec::new(), Vec::new());
        while let Some(b) = self.next_block()? {
            let base = frames.len() as u64;
            offsets.extend(b.offsets[1..].iter().map(|&x| x + base));
            frames.extend_from_slice(&b.frames);
            counts.extend_from_slice(&b.counts);
        }
        EventList::new(rows, cols, self.n_frames, ft, offsets, frames, counts)
    }

    /// The whole frame as one block, from the records pass 1 staged: each bucket scatters
    /// its records (file order) to its pixels' slots; buckets own disjoint slices and run in
    /// parallel (the result does not depend on the thread count).
    fn block_from(&mut self, stages: Vec<Staged>) -> Result<EventBlock> {
        use rayon::prelude::*;
        let o = self.origin.display().to_string();
        let np = self.shape.0 * self.shape.1;
        let shift = stages[0].shift;
        let nb = stages[0].cur.len();
        // Bucket b's records in file order: the shares in order, each in chunk order.
        let runs = |b: usize, f: &mut dyn FnMut(&[[u32; 2]])| {
            for st in &stages {
                st.for_each_run(b, &mut *f);
            }
        };
        let pixels_of = |b: usize| (b << shift, ((b + 1) << shift).min(np));
        // Records per pixel, bucket by bucket (each count array stays in L1/L2).
        let per_bucket: Vec<Vec<u32>> = (0..nb)
            .into_par_iter()
            .map(|b| {
                let (p0, p1) = pixels_of(b);
                let mut n = vec![0u32; p1 - p0];
                runs(b, &mut |rs| {
                    for r in rs {
                        n[(r[1] & 0xFFFF) as usize] += 1;
                    }
                });
                n
            })
            .collect();
        let mut offsets = Vec::with_capacity(np + 1);
        offsets.push(0u64);
        let mut acc = 0u64;
        for n in &per_bucket {
            for &c in n {
                acc += u64::from(c);
                offsets.push(acc);
            }
        }
        drop(per_bucket);
        let mut frames = vec![0u32; acc as usize];
        let mut counts = vec![0u32; acc as usize];
        let mut jobs = Vec::with_capacity(nb);
        let (mut fr, mut ct) = (&mut frames[..], &mut counts[..]);
        for b in 0..nb {
            let (p0, p1) = pixels_of(b);
            let len = (offsets[p1] - offsets[p0]) as usize;
            let (fa, fb) = std::mem::take(&mut fr).split_at_mut(len);
            let (ca, cb) = std::mem::take(&mut ct).split_at_mut(len);
            fr = fb;
            ct = cb;
            jobs.push((b, fa, ca));
        }
        // Scatter bucket by bucket, in parallel: disjoint slices, the same result for any
        // number of threads.
        jobs.into_par_iter().for_each(|(b, fo, co)| {
            let (p0, p1) = pixels_of(b);
            let base = offsets[p0];
            let mut cursor: Vec<u32> = offsets[p0..p1].iter().map(|&x| (x - base) as u32).collect();
            runs(b, &mut |rs| {
                for &[f, cq] in rs {
                    let k = &mut cursor[(cq & 0xFFFF) as usize];
                    fo[*k as usize] = f;
                    co[*k as usize] = cq >> 16;
                    *k += 1;
                }
            });
        });
        drop(stages);
        if self.irregular {
            merge_pixels(&mut offsets, &mut frames, &mut counts, 0, &o)?;
        }
        Ok(EventBlock {
            first_pixel: 0,
            offsets,
            frames,
            counts,
        })
    }

    /// [`EventSource::correlate_into`] from the staged records: each bucket is counted,
    /// scattered into one thread's reused buffers and handed to the correlator right away
    /// ([`EventCorrelator::block_sums`], buckets in parallel), so the whole block is never
    /// built (no fresh memory to map and zero, no second pass over it from memory). Buckets
    /// go in waves of a few per thread (bounded memory for the sums in flight); the sums are
    /// integers, so the result is that of pushing the block, whatever the thread count.
    fn correlate_staged(&mut self, stages: Vec<Staged>, ev: &mut EventCorrelator) -> Result<()> {
        use rayon::prelude::*;
        let o = self.origin.display().to_string();
        let np = self.shape.0 * self.shape.1;
        let shift = stages[0].shift;
        let nb = stages[0].cur.len();
        let irregular = self.irregular;
        let pixels_of = |b: usize| (b << shift, ((b + 1) << shift).min(np));
        let wave = 8 * rayon::current_num_threads();
        for w0 in (0..nb).step_by(wave) {
            let ev_ref = &*ev;
            let sums: Vec<BlockSums> = (w0..(w0 + wave).min(nb))
                .into_par_iter()
                .map_init(
                    || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
                    |(cursor, offsets, fr, ct), b| {
                        let (p0, p1) = pixels_of(b);
                        let runs = |f: &mut dyn FnMut(&[[u32; 2]])| {
                            for st in &stages {
                                st.for_each_run(b, &mut *f);
                            }
                        };
                        let cursor: &mut Vec<u32> = cursor;
                        cursor.clear();
                        cursor.resize(p1 - p0, 0);
                        runs(&mut |rs| {
                            for r in rs {
                                cursor[(r[1] & 0xFFFF) as usize] += 1;
                            }
                        });
                        offsets.clear();
                        offsets.push(0u64);
                        let mut acc = 0u32;
                        for c in cursor.iter_mut() {
                            let n = *c;
                            *c = acc;
                            acc += n;
                            offsets.push(u64::from(acc));
                        }
                        // Every slot below acc is written once below: no need to zero.
                        set_len_unzeroed(fr, acc as usize);
                        set_len_unzeroed(ct, acc as usize);
                        let (cur, frs, cts) = (&mut cursor[..], &mut fr[..], &mut ct[..]);
                        runs(&mut |rs| {
                            for &[f, cq] in rs {
                                // The slot read once into a value: the stores to `frs` and
                                // `cts` then need no reload of it.
                                let q = (cq & 0xFFFF) as usize;
                                let k = cur[q];
                                frs[k as usize] = f;
                                cts[k as usize] = cq >> 16;
                                cur[q] = k + 1;
                            }
                        });
                        if irregular {
                            merge_pixels(offsets, fr, ct, p0, &o)?;
                        }
                        ev_ref.block_sums(p0, offsets, fr, ct)
                    },
                )
                .collect::<Result<_>>()?;
            for s in &sums {
                ev.add_block_sums(s);
            }
        }
        self.next = self.bounds.len();
        Ok(())
    }

    /// One pass: the records of pixels `a..b`, by pixel.
    ///
    /// A direct scatter of frame-ordered records into pixel slots touches a new cache line
    /// (and, over a large block, a new page) for nearly every record. So the scatter goes in
    /// two steps: the pass appends each record to its *bucket* of 2^shift consecutive pixels
    /// (a few hundred buckets: their write positions stay in cache), keeping the pixel within
    /// the bucket (u16); then each bucket, a region of about [`BUCKET_EVENTS`] events that
    /// fits in L2, is scattered to its pixels. Both steps keep the file order within a pixel.
    fn block(&mut self, a: usize, b: usize) -> Result<EventBlock> {
        let o = self.origin.display().to_string();
        let np = b - a;
        let mut offsets = Vec::with_capacity(np + 1);
        offsets.push(0u64);
        let mut acc = 0u64;
        for &c in &self.per_pixel[a..b] {
            acc += u64::from(c);
            offsets.push(acc);
        }
        let total = acc as usize;
        let shift = bucket_shift(np, total);
        let n_buckets = np.div_ceil(1 << shift).max(1);
        let bucket_start = |k: usize| offsets[(k << shift).min(np)];
        let mut bcur: Vec<u64> = (0..n_buckets).map(bucket_start).collect();
        let mut frames = vec![0u32; total];
        let mut counts = vec![0u32; total];
        let mut pix = vec![0u16; total];
        let mut overflow = false;
        let mask = (1usize << shift) - 1;
        self.src.scan(&mut |batch| {
            for ((&p, &f), &c) in batch.pixels.iter().zip(&batch.frames).zip(&batch.counts) {
                let i = (p as usize).wrapping_sub(a);
                if i < np {
                    let cur = &mut bcur[i >> shift];
                    let k = *cur as usize;
                    match (frames.get_mut(k), counts.get_mut(k), pix.get_mut(k)) {
                        (Some(fk), Some(ck), Some(pk)) => {
                            *fk = f;
                            *ck = c;
                            *pk = (i & mask) as u16;
                            *cur += 1;
                        }
                        _ => overflow = true,
                    }
                }
            }
            Ok(())
        })?;
        // The second pass must see exactly the records the first counted (per bucket here,
        // per pixel below).
        let changed = || {
            Error::invalid(
                &o,
                "the file changed between two reads (photon records per pixel differ)",
            )
        };
        if overflow || (0..n_buckets).any(|k| bcur[k] != bucket_start(k + 1)) {
            return Err(changed());
        }
        // Bucket by bucket, in cache: pixel slots from the offsets.
        let (mut sf, mut sc) = (Vec::new(), Vec::new());
        let mut cursor: Vec<u64> = Vec::with_capacity(1 << shift);
        for k in 0..n_buckets {
            let (p0, p1) = (k << shift, ((k + 1) << shift).min(np));
            let (r0, r1) = (offsets[p0] as usize, offsets[p1] as usize);
            sf.clear();
            sf.extend_from_slice(&frames[r0..r1]);
            sc.clear();
            sc.extend_from_slice(&counts[r0..r1]);
            cursor.clear();
            cursor.extend_from_slice(&offsets[p0..p1]);
            for ((&f, &c), &q) in sf.iter().zip(&sc).zip(&pix[r0..r1]) {
                let Some(cur) = cursor.get_mut(q as usize) else {
                    return Err(changed());
                };
                let j = *cur as usize;
                if j >= r1 {
                    return Err(changed());
                }
                frames[j] = f;
                counts[j] = c;
                *cur += 1;
            }
            if cursor
                .iter()
                .zip(&offsets[p0 + 1..=p1])
                .any(|(c, e)| c != e)
            {
                return Err(changed());
            }
        }
        drop(pix);
        if self.irregular {
            merge_pixels(&mut offsets, &mut frames, &mut counts, a, &o)?;
        }
        Ok(EventBlock {
            first_pixel: a,
            offsets,
            frames,
            counts,
        })
    }
}

/// Makes `v` `n` long, zero-filling only what it grows by: the first `n` values are stale
/// (the caller overwrites all of them).
fn set_len_unzeroed(v: &mut Vec<u32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0);
    } else {
        v.truncate(n);
    }
}

/// Sorts each pixel's events by frame, sums repeated frames and drops zero counts, compacting
/// the block in place (offsets rewritten).
fn merge_pixels(
    offsets: &mut [u64],
    frames: &mut Vec<u32>,
    counts: &mut Vec<u32>,
    first_pixel: usize,
    origin: &str,
) -> Result<()> {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    let mut w = 0usize;
    let mut start = offsets[0] as usize;
    for i in 0..offsets.len() - 1 {
        let end = offsets[i + 1] as usize;
        let fr = &frames[start..end];
        let sorted = fr.windows(2).all(|x| x[0] < x[1]);
        let has_zero = counts[start..end].contains(&0);
        if sorted && !has_zero {
            frames.copy_within(start..end, w);
            counts.copy_within(start..end, w);
            w += end - start;
        } else {
            pairs.clear();
            pairs.extend(fr.iter().copied().zip(counts[start..end].iter().copied()));
            pairs.sort_unstable_by_key(|x| x.0);
            let w0 = w;
            for &(f, c) in &pairs {
                if c == 0 {
                    continue;
                }
                if w > w0 && frames[w - 1] == f {
                    counts[w - 1] = counts[w - 1].checked_add(c).ok_or_else(|| {
                        Error::out_of_range(
                            origin,
                            format!("summed photons of pixel {} frame {f}", first_pixel + i),
                            "> 4294967295",
                            "≤ 4294967295",
                        )
                    })?;
                } else {
                    frames[w] = f;
                    counts[w] = c;
                    w += 1;
                }
            }
        }
        start = end;
        offsets[i + 1] = w as u64;
    }
    frames.truncate(w);
    counts.truncate(w);
    Ok(())
}

impl<R: PhotonRecords> EventSource for PixelBlocks<R> {
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> usize {
        self.n_frames
    }
    fn frame_time_s(&self) -> Option<f64> {
        self.src.frame_time_s()
    }
    fn next_block(&mut self) -> Result<Option<EventBlock>> {
        if self.next + 1 >= self.bounds.len() {
            return Ok(None);
        }
        let (a, b) = (self.bounds[self.next], self.bounds[self.next + 1]);
        self.next += 1;
        if let Some(st) = self.staged.take() {
            return self.block_from(st).map(Some);
        }
        self.block(a, b).map(Some)
    }
    fn correlate_into(&mut self, ev: &mut EventCorrelator) -> Result<()> {
        if ev.two_time_request().is_none() && self.next + 1 < self.bounds.len() {
            if let Some(st) = self.staged.take() {
                return self.correlate_staged(st, ev);
            }
        }
        crate::events::push_blocks(self, ev)
    }
}

/// Photon records held in memory (three equal-length slices), as a [`PhotonRecords`] source:
/// the in-memory form of APS triplets.
#[derive(Debug)]
pub struct SliceRecords<'a> {
    origin: PathBuf,
    shape: (usize, usize),
    n_frames: Option<usize>,
    frame_time_s: Option<f64>,
    pixels: &'a [u32],
    frames: &'a [u32],
    counts: &'a [u32],
}

impl<'a> SliceRecords<'a> {
    /// Records `(pixels[i], frames[i], counts[i])`; the slices must have equal lengths.
    pub fn new(
        origin: &str,
        shape: (usize, usize),
        n_frames: Option<usize>,
        frame_time_s: Option<f64>,
        pixels: &'a [u32],
        frames: &'a [u32],
        counts: &'a [u32],
    ) -> Result<Self> {
        if pixels.len() != frames.len() || pixels.len() != counts.len() {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "record arrays (pixel/index, frame, count)".into(),
                expected: vec![pixels.len(); 3],
                got: vec![pixels.len(), frames.len(), counts.len()],
            });
        }
        Ok(SliceRecords {
            origin: PathBuf::from(origin),
            shape,
            n_frames,
            frame_time_s,
            pixels,
            frames,
            counts,
        })
    }
}

impl PhotonRecords for SliceRecords<'_> {
    fn origin(&self) -> &Path {
        &self.origin
    }
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> Option<usize> {
        self.n_frames
    }
    fn frame_time_s(&self) -> Option<f64> {
        self.frame_time_s
    }
    fn n_records_hint(&self) -> Option<u64> {
        Some(self.pixels.len() as u64)
    }
    fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
        let mut b = RecordBatch::default();
        for s in (0..self.pixels.len()).step_by(BATCH_RECORDS) {
            let e = (s + BATCH_RECORDS).min(self.pixels.len());
            b.pixels.clear();
            b.pixels.extend_from_slice(&self.pixels[s..e]);
            b.frames.clear();
            b.frames.extend_from_slice(&self.frames[s..e]);
            b.counts.clear();
            b.counts.extend_from_slice(&self.counts[s..e]);
            visit(&b)?;
        }
        Ok(())
    }
}

/// Photons of an [`EventList`] regrouped by frame (a counting sort): frame `t` holds
/// `pixels[frame_ptr[t]..frame_ptr[t+1]]` (increasing) with `counts[...]`. What frame-ordered
/// writers (Rigaku, IMM, Eiger frames) consume. Memory: 8 bytes per event + 8 per frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameMajor {
    /// Frame shape (rows, cols).
    pub shape: (usize, usize),
    /// Frame `t`'s photons are `frame_ptr[t]..frame_ptr[t+1]`; length frames + 1.
    pub frame_ptr: Vec<u64>,
    /// Row-major pixel of each photon record, increasing within a frame.
    pub pixels: Vec<u32>,
    /// Photons of each record (≥ 1).
    pub counts: Vec<u32>,
}

impl FrameMajor {
    /// Transposes an event list (pixel-major) into frame-major records.
    pub fn from_events(ev: &EventList) -> Self {
        let nf = ev.n_frames();
        let mut frame_ptr = vec![0u64; nf + 1];
        for &f in ev.frames() {
            frame_ptr[f as usize + 1] += 1;
        }
        for t in 0..nf {
            frame_ptr[t + 1] += frame_ptr[t];
        }
        let n = ev.n_events();
        let mut cursor = frame_ptr[..nf].to_vec();
        let mut pixels = vec![0u32; n];
        let mut counts = vec![0u32; n];
        // Pixels are visited in increasing order: each frame's pixels come out sorted.
        for p in 0..ev.n_pixels() {
            let (fr, ct) = ev.pixel(p);
            for (&f, &c) in fr.iter().zip(ct) {
                let k = &mut cursor[f as usize];
                pixels[*k as usize] = p as u32;
                counts[*k as usize] = c;
                *k += 1;
            }
        }
        FrameMajor {
            shape: ev.frame_shape(),
            frame_ptr,
            pixels,
            counts,
        }
    }

    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.frame_ptr.len() - 1
    }

    /// Frame `t`'s (pixels, counts).
    pub fn frame(&self, t: usize) -> (&[u32], &[u32]) {
        let r = self.frame_ptr[t] as usize..self.frame_ptr[t + 1] as usize;
        (&self.pixels[r.clone()], &self.counts[r])
    }
}

/// Dense frames of a [`FrameMajor`], one at a time (a [`FrameSource`] for frame writers).
#[derive(Debug)]
pub struct FrameMajorFrames<'a> {
    fm: &'a FrameMajor,
    next: usize,
}

impl FrameMajor {
    /// The frames as a [`FrameSource`].
    pub fn frames(&self) -> FrameMajorFrames<'_> {
        FrameMajorFrames { fm: self, next: 0 }
    }
}

impl FrameSource for FrameMajorFrames<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.fm.shape
    }
    fn n_frames(&self) -> usize {
        self.fm.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if self.next >= self.fm.n_frames() {
            return Ok(false);
        }
        check_frame_buffer("frame-major photons", self.fm.shape, out.len())?;
        out.fill(0);
        let (px, ct) = self.fm.frame(self.next);
        for (&p, &c) in px.iter().zip(ct) {
            out[p as usize] = c;
        }
        self.next += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xpcs_core::data::FrameStack;

    /// The obviously-correct reference: a dense stack summed record by record.
    fn dense_reference(
        shape: (usize, usize),
        n_frames: usize,
        recs: &[(u32, u32, u32)],
    ) -> FrameStack {
        let n = shape.0 * shape.1;
        let mut v = vec![0u32; n_frames * n];
        for &(p, f, c) in recs {
            v[f as usize * n + p as usize] += c;
        }
        FrameStack::from_u32(n_frames, shape.0, shape.1, v).unwrap()
    }

    /// (frame shape, frames, records (pixel, frame, count)).
    type Case = ((usize, usize), usize, Vec<(u32, u32, u32)>);

    fn records_strategy() -> impl Strategy<Value = Case> {
        (1usize..7, 1usize..7, 1usize..12).prop_flat_map(|(r, c, t)| {
            let recs = prop::collection::vec(
                (
                    0..(r * c) as u32,
                    0..t as u32,
                    prop_oneof![4 => 1u32..4, 1 => Just(0u32), 1 => 100u32..5000],
                ),
                0..120,
            );
            (Just((r, c)), Just(t), recs)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any records (unsorted, repeated pairs, zero counts), any block bound: the blocks
        /// equal the event list of the dense reference, and frame-major → pixel-major →
        /// frame-major round-trips.
        #[test]
        fn blocks_equal_dense_reference(((r, c), t, mut recs) in records_strategy(),
                                        max_block in 1usize..40, sort_by_frame in any::<bool>()) {
            if sort_by_frame {
                recs.sort_by_key(|x| (x.1, x.0));
            }
            let want = EventList::from_stack(&dense_reference((r, c), t, &recs), 0.1).unwrap();
            let (p, f, ct): (Vec<u32>, Vec<u32>, Vec<u32>) =
                recs.iter().fold((vec![], vec![], vec![]), |mut a, x| {
                    a.0.push(x.0); a.1.push(x.1); a.2.push(x.2); a
                });
            let src = SliceRecords::new("t", (r, c), Some(t), None, &p, &f, &ct).unwrap();
            let blocks = PixelBlocks::new(src, max_block).unwrap();
            prop_assert_eq!(blocks.n_records(), recs.len() as u64);
            let got = blocks.into_event_list(0.1).unwrap();
            prop_assert_eq!(&got, &want);
            // Frame-major view of the result: each frame's pixels sorted, same photons.
            let fm = FrameMajor::from_events(&got);
            let mut again = vec![];
            for tt in 0..t {
                let (px, cc) = fm.frame(tt);
                prop_assert!(px.windows(2).all(|w| w[0] < w[1]));
                again.extend(px.iter().zip(cc).map(|(&p, &c)| (p, tt as u32, c)));
            }
            let stack2 = dense_reference((r, c), t, &again);
            prop_assert_eq!(EventList::from_stack(&stack2, 0.1).unwrap(), want);
        }
    }

    proptest! {
        /// `correlate_into` (buckets built and correlated on the fly when the records fit
        /// one block, block by block otherwise) = the event correlator fed the dense
        /// reference's event list: the same exact sums, for 1 and 2 threads.
        #[test]
        fn correlate_into_equals_pushing_the_reference(((r, c), t, recs) in records_strategy(),
                                                       max_block in prop_oneof![Just(1usize << 20), 1usize..40],
                                                       labels in prop::collection::vec(0u32..3, 64)) {
            use xpcs_core::correlate::{EventCorrelator, LagSchedule};
            use xpcs_core::data::QPartition;
            prop_assume!(t >= 2);
            let np = r * c;
            let mut lab: Vec<u32> = (0..np).map(|i| labels[i % labels.len()]).collect();
            lab[0] = 1;
            let part = QPartition::from_labels(r, c, lab, "t").unwrap();
            let sched = LagSchedule::multi_tau(t, 4).unwrap();
            let want_ev = EventList::from_stack(&dense_reference((r, c), t, &recs), 0.1).unwrap();
            let mut want = EventCorrelator::new(&part, &sched, t);
            want.push_events(&want_ev).unwrap();
            let (p, f, ct): (Vec<u32>, Vec<u32>, Vec<u32>) =
                recs.iter().fold((vec![], vec![], vec![]), |mut a, x| {
                    a.0.push(x.0); a.1.push(x.1); a.2.push(x.2); a
                });
            for threads in [1, 2] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let got = pool.install(|| {
                    let src = SliceRecords::new("t", (r, c), Some(t), None, &p, &f, &ct).unwrap();
                    let mut blocks = PixelBlocks::new(src, max_block).unwrap();
                    let mut ev = EventCorrelator::new(&part, &sched, t);
                    blocks.correlate_into(&mut ev).unwrap();
                    ev
                });
                prop_assert_eq!(got.sums(), want.sums());
                prop_assert_eq!(got.pixel_totals(), want.pixel_totals());
            }
        }
    }

    /// Owned records that split into parts (the parallel pass 1 of the single-read mode).
    #[derive(Clone)]
    struct Parted {
        shape: (usize, usize),
        n_frames: usize,
        recs: Vec<(u32, u32, u32)>,
    }
    impl PhotonRecords for Parted {
        fn origin(&self) -> &Path {
            Path::new("parted")
        }
        fn frame_shape(&self) -> (usize, usize) {
            self.shape
        }
        fn n_frames(&self) -> Option<usize> {
            Some(self.n_frames)
        }
        fn frame_time_s(&self) -> Option<f64> {
            None
        }
        fn n_records_hint(&self) -> Option<u64> {
            Some(self.recs.len() as u64)
        }
        fn parts(&self, n: usize) -> Option<Vec<Box<dyn PhotonRecords + Send>>> {
            let len = self.recs.len();
            Some(
                (0..n)
                    .map(|k| {
                        let mut p = self.clone();
                        p.recs = self.recs[len * k / n..len * (k + 1) / n].to_vec();
                        Box::new(p) as Box<dyn PhotonRecords + Send>
                    })
                    .collect(),
            )
        }
        fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
            // Small batches: batch boundaries inside the parts too.
            for chunk in self.recs.chunks(7) {
                let mut b = RecordBatch::default();
                for &(p, f, c) in chunk {
                    b.push(p, f, c);
                }
                visit(&b)?;
            }
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        /// Split into shares read by 1, 2 or 3 threads, sorted or not: the same list as the
        /// dense reference (order across share boundaries included).
        #[test]
        fn parallel_pass1_equals_reference(((r, c), t, mut recs) in records_strategy(),
                                           threads in 1usize..4, sort_by_frame in any::<bool>()) {
            if sort_by_frame {
                recs.sort_by_key(|x| (x.1, x.0));
                recs.dedup_by_key(|x| (x.1, x.0));
                recs.retain(|x| x.2 > 0);
            }
            let want = EventList::from_stack(&dense_reference((r, c), t, &recs), 0.1).unwrap();
            let src = Parted { shape: (r, c), n_frames: t, recs };
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let got = pool.install(|| {
                PixelBlocks::new(src, 1 << 20).unwrap().into_event_list(0.1).unwrap()
            });
            prop_assert_eq!(got, want);
        }
    }

    /// Each share in order, the file not: the boundary between shares is checked.
    #[test]
    fn share_boundary_disorder_is_merged() {
        let recs = vec![(1, 3, 1), (2, 3, 1), (1, 0, 2), (2, 1, 1)];
        let src = Parted {
            shape: (1, 3),
            n_frames: 4,
            recs: recs.clone(),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let got = pool.install(|| {
            PixelBlocks::new(src, 100)
                .unwrap()
                .into_event_list(0.1)
                .unwrap()
        });
        let want = EventList::from_stack(&dense_reference((1, 3), 4, &recs), 0.1).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn out_of_range_records_are_errors() {
        let (p, f, c) = (vec![0u32, 6], vec![0u32, 1], vec![1u32, 1]);
        let src = SliceRecords::new("t", (2, 3), Some(2), None, &p, &f, &c).unwrap();
        let e = PixelBlocks::new(src, 10).unwrap_err().to_string();
        assert!(e.contains("pixel index") && e.contains("0..6"), "{e}");
        let (p, f, c) = (vec![0u32, 5], vec![0u32, 2], vec![1u32, 1]);
        let src = SliceRecords::new("t", (2, 3), Some(2), None, &p, &f, &c).unwrap();
        let e = PixelBlocks::new(src, 10).unwrap_err().to_string();
        assert!(e.contains("frame index") && e.contains("0..2"), "{e}");
        // Undeclared frames: the largest + 1.
        let src = SliceRecords::new("t", (2, 3), None, None, &p, &f, &c).unwrap();
        assert_eq!(
            PixelBlocks::new(src, 10)
                .unwrap()
                .into_event_list(1.0)
                .unwrap()
                .n_frames(),
            3
        );
        assert!(SliceRecords::new("t", (2, 3), None, None, &p, &f, &c[..1]).is_err());
        // Shapes beyond MAX_PIXELS are refused before any allocation.
        let src = SliceRecords::new("t", (1 << 20, 1 << 20), None, None, &p, &f, &c).unwrap();
        assert!(PixelBlocks::new(src, 10).is_err());
    }

    #[test]
    fn repeated_pair_overflow_is_an_error() {
        let (p, f, c) = (vec![1u32, 1], vec![0u32, 0], vec![u32::MAX, 1]);
        let src = SliceRecords::new("t", (1, 2), None, None, &p, &f, &c).unwrap();
        let e = PixelBlocks::new(src, 10)
            .unwrap()
            .into_event_list(1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("summed photons of pixel 1 frame 0"), "{e}");
    }

    /// A source whose second pass differs from the first (a file rewritten in between).
    struct Changing(u32);
    impl PhotonRecords for Changing {
        fn origin(&self) -> &Path {
            Path::new("changing")
        }
        fn frame_shape(&self) -> (usize, usize) {
            (1, 3)
        }
        fn n_frames(&self) -> Option<usize> {
            Some(4)
        }
        fn frame_time_s(&self) -> Option<f64> {
            None
        }
        fn scan(&mut self, visit: &mut dyn FnMut(&RecordBatch) -> Result<()>) -> Result<()> {
            self.0 += 1;
            let mut b = RecordBatch::default();
            for k in 0..3 {
                b.push(if self.0 > 1 && k == 2 { 0 } else { k }, 0, 1);
            }
            visit(&b)
        }
    }

    #[test]
    fn a_file_changing_between_passes_is_an_error() {
        let e = PixelBlocks::new(Changing(0), 10)
            .unwrap()
            .into_event_list(1.0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed between two reads"), "{e}");
    }
}
