//! Dense frame stacks and streaming frame sources.

use super::events::EventList;
use crate::error::{Error, Result};

/// The integer type a stack stores its counts in (photon-counting detectors write u8, u16 or
/// u32 frames; 8- and 16-bit modes roll over at 255 and 65535).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountDtype {
    /// 8-bit counts.
    U8,
    /// 16-bit counts.
    U16,
    /// 32-bit counts.
    U32,
}

impl CountDtype {
    /// The smallest type that holds `max_count`.
    pub fn for_max(max_count: u32) -> Self {
        if max_count <= u32::from(u8::MAX) {
            CountDtype::U8
        } else if max_count <= u32::from(u16::MAX) {
            CountDtype::U16
        } else {
            CountDtype::U32
        }
    }

    /// Bytes per count.
    pub fn size(self) -> usize {
        match self {
            CountDtype::U8 => 1,
            CountDtype::U16 => 2,
            CountDtype::U32 => 4,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Storage {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
}

/// Dense photon counts in memory, axis order (frame, row, col), row-major.
///
/// Counts keep the detector's integer type (u8, u16 or u32) so that a 1000 × 512 × 512 u16
/// stack takes 0.5 GB, not 1 GB; readers widen one frame at a time to u32 with
/// [`FrameStack::frame_into`].
#[doc(alias = "images")]
#[derive(Debug, Clone, PartialEq)]
pub struct FrameStack {
    n_frames: usize,
    rows: usize,
    cols: usize,
    data: Storage,
}

macro_rules! from_vec {
    ($name:ident, $t:ty, $variant:ident) => {
        /// A stack from a row-major (frame, row, col) vector of counts.
        pub fn $name(n_frames: usize, rows: usize, cols: usize, data: Vec<$t>) -> Result<Self> {
            Self::check_len(n_frames, rows, cols, data.len())?;
            Ok(FrameStack {
                n_frames,
                rows,
                cols,
                data: Storage::$variant(data),
            })
        }
    };
}

impl FrameStack {
    fn check_len(n_frames: usize, rows: usize, cols: usize, len: usize) -> Result<()> {
        let expected = n_frames
            .checked_mul(rows)
            .and_then(|x| x.checked_mul(cols))
            .ok_or_else(|| {
                Error::invalid(
                    "frame stack",
                    format!("shape ({n_frames}, {rows}, {cols}) overflows"),
                )
            })?;
        if expected != len {
            return Err(Error::ShapeMismatch {
                origin: "frame stack".into(),
                what: "data length vs (frames, rows, cols)".into(),
                expected: vec![expected],
                got: vec![len],
            });
        }
        Ok(())
    }

    from_vec!(from_u8, u8, U8);
    from_vec!(from_u16, u16, U16);
    from_vec!(from_u32, u32, U32);

    /// An all-zero stack of the given type.
    pub fn zeros(n_frames: usize, rows: usize, cols: usize, dtype: CountDtype) -> Self {
        let n = n_frames * rows * cols;
        let data = match dtype {
            CountDtype::U8 => Storage::U8(vec![0; n]),
            CountDtype::U16 => Storage::U16(vec![0; n]),
            CountDtype::U32 => Storage::U32(vec![0; n]),
        };
        FrameStack {
            n_frames,
            rows,
            cols,
            data,
        }
    }

    /// Collects every frame of a source into memory, in the smallest type given by `dtype`.
    pub fn from_source(source: &mut dyn FrameSource, dtype: CountDtype) -> Result<Self> {
        let (rows, cols) = source.frame_shape();
        let n_frames = source.n_frames();
        let mut stack = FrameStack::zeros(n_frames, rows, cols, dtype);
        let mut buf = vec![0u32; rows * cols];
        for t in 0..n_frames {
            if !source.read_next(&mut buf)? {
                return Err(Error::invalid(
                    "frame source",
                    format!("ended after {t} of {n_frames} frames"),
                ));
            }
            stack.set_frame(t, &buf)?;
        }
        Ok(stack)
    }

    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }
    /// Frame shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }
    /// The storage type of the counts.
    pub fn dtype(&self) -> CountDtype {
        self.view().dtype()
    }

    /// Count at (frame, pixel), widened to u32.
    #[inline]
    pub fn get(&self, frame: usize, pixel: usize) -> u32 {
        let i = frame * self.n_pixels() + pixel;
        match &self.data {
            Storage::U8(v) => u32::from(v[i]),
            Storage::U16(v) => u32::from(v[i]),
            Storage::U32(v) => v[i],
        }
    }

    /// Copies frame `t` into `out` (length rows × cols), widening to u32.
    pub fn frame_into(&self, t: usize, out: &mut [u32]) {
        self.view().frame_into(t, out);
    }

    /// Overwrites frame `t` with `counts`; fails if a count does not fit the storage type.
    pub fn set_frame(&mut self, t: usize, counts: &[u32]) -> Result<()> {
        let n = self.n_pixels();
        if counts.len() != n || t >= self.n_frames {
            return Err(Error::ShapeMismatch {
                origin: "frame stack".into(),
                what: "frame index / frame length".into(),
                expected: vec![self.n_frames, n],
                got: vec![t, counts.len()],
            });
        }
        let r = t * n..(t + 1) * n;
        let too_big = |x: u32, max: u32| {
            Error::out_of_range(
                "frame stack",
                "count",
                x,
                format!("0..={max} for this dtype"),
            )
        };
        match &mut self.data {
            Storage::U8(v) => {
                for (o, &x) in v[r].iter_mut().zip(counts) {
                    *o = u8::try_from(x).map_err(|_| too_big(x, u8::MAX.into()))?;
                }
            }
            Storage::U16(v) => {
                for (o, &x) in v[r].iter_mut().zip(counts) {
                    *o = u16::try_from(x).map_err(|_| too_big(x, u16::MAX.into()))?;
                }
            }
            Storage::U32(v) => v[r].copy_from_slice(counts),
        }
        Ok(())
    }

    /// The raw u8 data, if stored as u8.
    pub fn as_u8(&self) -> Option<&[u8]> {
        match &self.data {
            Storage::U8(v) => Some(v),
            _ => None,
        }
    }
    /// The raw u16 data, if stored as u16.
    pub fn as_u16(&self) -> Option<&[u16]> {
        match &self.data {
            Storage::U16(v) => Some(v),
            _ => None,
        }
    }
    /// The raw u32 data, if stored as u32.
    pub fn as_u32(&self) -> Option<&[u32]> {
        match &self.data {
            Storage::U32(v) => Some(v),
            _ => None,
        }
    }

    /// Total photons in the stack.
    pub fn total_counts(&self) -> u64 {
        match &self.data {
            Storage::U8(v) => v.iter().map(|&x| u64::from(x)).sum(),
            Storage::U16(v) => v.iter().map(|&x| u64::from(x)).sum(),
            Storage::U32(v) => v.iter().map(|&x| u64::from(x)).sum(),
        }
    }

    /// A streaming view of this stack.
    pub fn frames(&self) -> StackFrames<'_> {
        StackFrames {
            stack: self.view(),
            next: 0,
        }
    }

    /// A borrowed view of the whole stack.
    pub fn view(&self) -> StackView<'_> {
        let counts = match &self.data {
            Storage::U8(v) => Counts::U8(v),
            Storage::U16(v) => Counts::U16(v),
            Storage::U32(v) => Counts::U32(v),
        };
        StackView {
            n_frames: self.n_frames,
            rows: self.rows,
            cols: self.cols,
            counts,
        }
    }
}

/// Borrowed row-major (frame, row, col) counts in the detector's integer type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Counts<'a> {
    /// 8-bit counts.
    U8(&'a [u8]),
    /// 16-bit counts.
    U16(&'a [u16]),
    /// 32-bit counts.
    U32(&'a [u32]),
}

impl Counts<'_> {
    /// Number of counts.
    pub fn len(&self) -> usize {
        match self {
            Counts::U8(v) => v.len(),
            Counts::U16(v) => v.len(),
            Counts::U32(v) => v.len(),
        }
    }
    /// True when there is no count.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A dense stack borrowed from memory the caller owns (a [`FrameStack`], or an array of another
/// language or a memory-mapped file): axis order (frame, row, col), row-major, no copy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StackView<'a> {
    n_frames: usize,
    rows: usize,
    cols: usize,
    counts: Counts<'a>,
}

impl<'a> StackView<'a> {
    /// A view of `counts` as `n_frames` frames of `rows × cols`; fails when the length differs.
    pub fn new(n_frames: usize, rows: usize, cols: usize, counts: Counts<'a>) -> Result<Self> {
        FrameStack::check_len(n_frames, rows, cols, counts.len())?;
        Ok(StackView {
            n_frames,
            rows,
            cols,
            counts,
        })
    }
    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }
    /// Frame shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Pixels per frame.
    pub fn n_pixels(&self) -> usize {
        self.rows * self.cols
    }
    /// The counts, row-major.
    pub fn counts(&self) -> Counts<'a> {
        self.counts
    }
    /// The storage type of the counts.
    pub fn dtype(&self) -> CountDtype {
        match self.counts {
            Counts::U8(_) => CountDtype::U8,
            Counts::U16(_) => CountDtype::U16,
            Counts::U32(_) => CountDtype::U32,
        }
    }
    /// Copies frame `t` into `out` (length rows × cols), widening to u32.
    pub fn frame_into(&self, t: usize, out: &mut [u32]) {
        let n = self.n_pixels();
        assert_eq!(out.len(), n, "frame_into: buffer length");
        let r = t * n..(t + 1) * n;
        match self.counts {
            Counts::U8(v) => out
                .iter_mut()
                .zip(&v[r])
                .for_each(|(o, &x)| *o = u32::from(x)),
            Counts::U16(v) => out
                .iter_mut()
                .zip(&v[r])
                .for_each(|(o, &x)| *o = u32::from(x)),
            Counts::U32(v) => out.copy_from_slice(&v[r]),
        }
    }
    /// An owned copy in the same integer type.
    pub fn to_stack(&self) -> FrameStack {
        let data = match self.counts {
            Counts::U8(v) => Storage::U8(v.to_vec()),
            Counts::U16(v) => Storage::U16(v.to_vec()),
            Counts::U32(v) => Storage::U32(v.to_vec()),
        };
        FrameStack {
            n_frames: self.n_frames,
            rows: self.rows,
            cols: self.cols,
            data,
        }
    }
    /// A streaming view (frames widened to u32 one at a time).
    pub fn frames(&self) -> StackFrames<'a> {
        StackFrames {
            stack: *self,
            next: 0,
        }
    }
}

/// Checks that a frame buffer handed to [`FrameSource::read_next`] holds `rows × cols`
/// counts: the one check every reader makes, with one message naming `origin`.
pub fn check_frame_buffer(origin: &str, (rows, cols): (usize, usize), len: usize) -> Result<()> {
    if len != rows * cols {
        return Err(Error::ShapeMismatch {
            origin: origin.into(),
            what: "frame buffer".into(),
            expected: vec![rows * cols],
            got: vec![len],
        });
    }
    Ok(())
}

/// A source of frames read one at a time: an in-memory stack, an NPY or HDF5 file read frame
/// by frame, or a simulator. Frames come in order 0, 1, 2, ...; each is row-major, widened to
/// u32 photon counts.
pub trait FrameSource {
    /// Frame shape (rows, cols).
    fn frame_shape(&self) -> (usize, usize);
    /// Total number of frames the source will deliver.
    fn n_frames(&self) -> usize;
    /// Reads the next frame into `out` (length rows × cols). Returns `Ok(false)` once every
    /// frame has been delivered.
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool>;
    /// Reads the next frames into `out`, frame after frame, as many as fit (`out.len()` is a
    /// multiple of rows × cols) or as are left; returns how many (0 once every frame has been
    /// delivered). The same frames as that many [`FrameSource::read_next`] calls: the default
    /// makes those calls; a reader that can decode frames in parallel (a plain `.npy`)
    /// overrides it, and the correlators read through it.
    fn read_frames(&mut self, out: &mut [u32]) -> Result<usize> {
        read_frames_singly(self, out)
    }
    /// An upper bound of every count the source can deliver (its word's largest value: 255
    /// for a u8 file; `u32::MAX` when nothing narrower is known). Lets a count check that
    /// cannot fail be skipped.
    fn count_bound(&self) -> u32 {
        u32::MAX
    }
    /// The largest count of every pixel over the frames not read yet (row-major, one per
    /// pixel; zeros for a source with no frames left); the source is then exhausted. The
    /// default reads batches through [`FrameSource::read_frames`]
    /// ([`pixel_maxima_by_frames`]); a reader that can scan its stored words in place
    /// overrides it.
    fn pixel_maxima(&mut self) -> Result<Vec<u32>> {
        pixel_maxima_by_frames(self)
    }
    /// The frames not read yet as the source stores them, lent without a copy: `f` is called
    /// with views of up to `batch` consecutive frames (in the stored word type, counts not
    /// widened) until the end; the source is then exhausted. None, having read nothing, when
    /// the source cannot lend its frames (the default; then read them with
    /// [`FrameSource::read_frames`]). The same frames, in the same order, as reading them.
    fn lend_frames(
        &mut self,
        _batch: usize,
        _f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        None
    }
    /// Skips the next `n` frames (fewer if the source ends first). The default reads and
    /// discards them; file readers override it with a seek.
    fn skip_frames(&mut self, n: usize) -> Result<()> {
        let (r, c) = self.frame_shape();
        let mut buf = vec![0u32; r * c];
        for _ in 0..n {
            if !self.read_next(&mut buf)? {
                break;
            }
        }
        Ok(())
    }
    /// Reads the whole series (from a source not read yet) into an [`EventList`] (its
    /// nonzero counts by pixel); the source is then exhausted. The default reads frame by frame
    /// ([`EventList::from_source`]); file readers override it with a parallel scan.
    fn read_events(&mut self, frame_time_s: f64) -> Result<EventList> {
        EventList::from_source(self, frame_time_s)
    }
}

/// [`FrameSource::read_frames`] by one [`FrameSource::read_next`] call per frame (its
/// default, and the reference that faster readers are tested against).
pub fn read_frames_singly<S: FrameSource + ?Sized>(src: &mut S, out: &mut [u32]) -> Result<usize> {
    let (r, c) = src.frame_shape();
    let n = r * c;
    if n == 0 {
        return Ok(0);
    }
    let mut k = 0;
    for frame in out.chunks_exact_mut(n) {
        if !src.read_next(frame)? {
            break;
        }
        k += 1;
    }
    Ok(k)
}

/// Bytes of u32 frames [`pixel_maxima_by_frames`] reads in one batch.
const MAXIMA_BATCH_BYTES: usize = 256 << 10;

/// Pixels per parallel task of the per-pixel maxima.
const MAXIMA_PIXEL_BLOCK: usize = 16 << 10;

/// [`FrameSource::pixel_maxima`] from batches of [`FrameSource::read_frames`], the maxima
/// taken in parallel over pixel blocks (each block its own: the same result for any thread
/// count).
pub fn pixel_maxima_by_frames<S: FrameSource + ?Sized>(src: &mut S) -> Result<Vec<u32>> {
    let (r, c) = src.frame_shape();
    let n = r * c;
    let mut max = vec![0u32; n];
    if n == 0 {
        return Ok(max);
    }
    // A batch never larger than the frames there are: a short or corrupt file costs little.
    let batch = (MAXIMA_BATCH_BYTES / (4 * n)).clamp(1, src.n_frames().max(1));
    let mut buf = vec![0u32; batch * n];
    loop {
        let k = src.read_frames(&mut buf)?;
        if k == 0 {
            return Ok(max);
        }
        max_into(&mut max, &buf[..k * n]);
    }
}

/// `max[p] = max(max[p], frames[t][p])` over the frames in `frames` (each `max.len()` long),
/// in parallel over pixel blocks.
pub fn max_into<W: Copy + Into<u32> + Sync>(max: &mut [u32], frames: &[W]) {
    use rayon::prelude::*;
    let n = max.len();
    if n == 0 {
        return;
    }
    let k = frames.len() / n;
    max.par_chunks_mut(MAXIMA_PIXEL_BLOCK)
        .enumerate()
        .for_each(|(b, m)| {
            let p0 = b * MAXIMA_PIXEL_BLOCK;
            for t in 0..k {
                let row = &frames[t * n + p0..t * n + p0 + m.len()];
                for (m, &x) in m.iter_mut().zip(row) {
                    *m = (*m).max(x.into());
                }
            }
        });
}

/// [`FrameSource`] over an in-memory [`FrameStack`] or [`StackView`].
#[derive(Debug, Clone)]
pub struct StackFrames<'a> {
    stack: StackView<'a>,
    next: usize,
}

impl FrameSource for StackFrames<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.stack.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.stack.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        if self.next >= self.stack.n_frames {
            return Ok(false);
        }
        self.stack.frame_into(self.next, out);
        self.next += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_borrows_and_copies_back() {
        let v: Vec<u16> = (0..12).collect();
        let view = StackView::new(3, 2, 2, Counts::U16(&v)).unwrap();
        assert!(StackView::new(3, 2, 3, Counts::U16(&v)).is_err());
        assert_eq!(view.dtype(), CountDtype::U16);
        let owned = view.to_stack();
        assert_eq!(owned, FrameStack::from_u16(3, 2, 2, v.clone()).unwrap());
        assert_eq!(owned.view(), view);
        let mut buf = [0u32; 4];
        view.frame_into(2, &mut buf);
        assert_eq!(buf, [8, 9, 10, 11]);
        let back = FrameStack::from_source(&mut view.frames(), CountDtype::U32).unwrap();
        assert_eq!(back.total_counts(), 66);
    }

    #[test]
    fn roundtrip_through_source() {
        let s = FrameStack::from_u16(3, 2, 2, (0..12).collect()).unwrap();
        let mut src = s.frames();
        let back = FrameStack::from_source(&mut src, CountDtype::U8).unwrap();
        assert_eq!(back.get(2, 3), 11);
        assert_eq!(back.total_counts(), 66);
        assert!(FrameStack::from_u8(2, 2, 2, vec![0; 7]).is_err());
        let mut small = FrameStack::zeros(1, 1, 2, CountDtype::U8);
        assert!(small.set_frame(0, &[1, 300]).is_err());
    }
}
