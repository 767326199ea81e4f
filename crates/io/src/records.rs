//! Photon records in file order → per-pixel event blocks, in bounded memory.
//!
//! Sparse beamline formats store photons as records (pixel, frame, count) in *frame* order:
//! the Rigaku 64-bit `.bin` files, compressed IMM frames, the ESRF ID10 sparse HDF5 files,
//! APS `(index, frame, count)` triplets. The event correlator wants them by *pixel* (the CSR
//! of [`EventList`]). [`PixelBlocks`] transposes any [`PhotonRecords`] source without ever
//! holding a dense stack, and without holding more than one block of events:
//!
//! 1. pass 1 reads the file once and counts the records of every pixel (4 bytes per pixel,
//!    plus 4 while counting), noting whether some pixel's frames are not strictly increasing
//!    (repeated or unsorted records) or some count is zero;
//! 2. the pixels are cut into consecutive blocks of at most `max_block_events` records;
//! 3. each block is one more pass over the file that scatters the block's records into their
//!    pixel's slots (a counting sort), then, only if pass 1 saw irregular records, sorts each
//!    pixel's events by frame, sums repeated (pixel, frame) pairs and drops zero counts.
//!
//! Peak memory: 8 bytes per pixel + 8 bytes per event of one block (frame + count, u32 each)
//! + one read batch; independent of the number of frames. A file whose events fit in one block
//!   is read twice; a larger one `1 + blocks` times (the passes are sequential reads).
//!
//! Output: [`EventBlock`]s in pixel order (through [`EventSource`]), or a whole
//! [`EventList`] ([`PixelBlocks::into_event_list`]). Every pixel's frames strictly increase,
//! counts are ≥ 1: the blocks go straight into `EventCorrelator::push_pixel_block`.
//!
//! Reference: the per-pixel sparse layout of Chushkin, Caronna & Madsen, J. Appl. Cryst. 45,
//! 807 (2012).

use std::path::{Path, PathBuf};

use crate::events::{EventBlock, EventSource};
use xpcs_core::data::{EventList, FrameSource};
use xpcs_core::error::{Error, Result};

/// Records per batch handed to a scan's visitor.
pub const BATCH_RECORDS: usize = 1 << 16;

/// Default bound on the events of one pixel block (8 bytes each: 256 MiB).
pub const DEFAULT_MAX_BLOCK_EVENTS: usize = 1 << 25;

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
}

impl<R: PhotonRecords> PixelBlocks<R> {
    /// Runs pass 1 over `src` and plans blocks of at most `max_block_events` records (a single
    /// pixel with more records gets a block of its own).
    pub fn new(mut src: R, max_block_events: usize) -> Result<Self> {
        let origin = src.origin().to_path_buf();
        let o = || origin.display().to_string();
        let shape = src.frame_shape();
        let n_pix = checked_pixels(&origin, shape)?;
        let declared = src.n_frames();
        // [records, smallest frame the next record may have] per pixel.
        let mut state: Vec<[u32; 2]> = vec![[0, 0]; n_pix];
        let mut irregular = false;
        let mut max_frame: Option<u32> = None;
        let mut n_records = 0u64;
        src.scan(&mut |b| {
            let mut irr = false;
            let mut zero = false;
            let mut mx = 0u32;
            for ((&p, &f), &c) in b.pixels.iter().zip(&b.frames).zip(&b.counts) {
                let Some(s) = state.get_mut(p as usize) else {
                    return Err(Error::out_of_range(
                        o(),
                        "pixel index of a photon record",
                        p,
                        format!("0..{n_pix} (rows · cols of {shape:?})"),
                    ));
                };
                s[0] = s[0].wrapping_add(1);
                irr |= f < s[1];
                s[1] = f.saturating_add(1);
                zero |= c == 0;
                mx = mx.max(f);
            }
            if !b.is_empty() {
                max_frame = Some(max_frame.map_or(mx, |m| m.max(mx)));
            }
            irregular |= irr || zero;
            n_records += b.len() as u64;
            Ok(())
        })?;
        let per_pixel: Vec<u32> = state.into_iter().map(|s| s[0]).collect();
        // A pixel with 2^32 records or more wrapped its counter: the sum tells.
        if per_pixel.iter().map(|&c| u64::from(c)).sum::<u64>() != n_records {
            return Err(Error::invalid(
                o(),
                "a pixel has 2^32 or more photon records",
            ));
        }
        let n_frames = match (declared, max_frame) {
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
        if n_frames > u32::MAX as usize {
            return Err(Error::out_of_range(o(), "frames", n_frames, "≤ 4294967295"));
        }
        // Blocks of consecutive pixels, each ≤ max_block_events records (or one pixel).
        let cap = max_block_events.clamp(1, u32::MAX as usize) as u64;
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
            n_records,
            irregular,
            bounds,
            next: 0,
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

    /// One pass: the records of pixels `a..b`, by pixel.
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
        // Slot of the next record of each pixel (block-local; < 2^32 by construction).
        let mut cursor: Vec<u32> = offsets[..np].iter().map(|&x| x as u32).collect();
        let mut frames = vec![0u32; total];
        let mut counts = vec![0u32; total];
        let mut overflow = false;
        self.src.scan(&mut |batch| {
            for ((&p, &f), &c) in batch.pixels.iter().zip(&batch.frames).zip(&batch.counts) {
                let i = (p as usize).wrapping_sub(a);
                if i < np {
                    let k = cursor[i] as usize;
                    match (frames.get_mut(k), counts.get_mut(k)) {
                        (Some(fk), Some(ck)) => {
                            *fk = f;
                            *ck = c;
                            cursor[i] += 1;
                        }
                        _ => overflow = true,
                    }
                }
            }
            Ok(())
        })?;
        // The second pass must see exactly the records the first counted.
        if overflow
            || cursor
                .iter()
                .zip(&offsets[1..])
                .any(|(&c, &e)| u64::from(c) != e)
        {
            return Err(Error::invalid(
                o,
                "the file changed between two reads (photon records per pixel differ)",
            ));
        }
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
        self.block(a, b).map(Some)
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
        let n = self.fm.shape.0 * self.fm.shape.1;
        if out.len() != n {
            return Err(Error::ShapeMismatch {
                origin: "frame-major photons".into(),
                what: "frame buffer".into(),
                expected: vec![n],
                got: vec![out.len()],
            });
        }
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
