//! Sparse photon event files: the project's own HDF5 layout; event sources by pixel block.
//!
//! **Layout** (all under the group `/events`, documented in `docs/formats.md`):
//!
//! | path | shape, type | meaning |
//! |---|---|---|
//! | `/events` attribute `format` | string | `"xpcs-twin events"` |
//! | `/events` attribute `version` | 0-d u32 | 1 |
//! | `shape` | (2,) u64 | detector [rows, cols]; pixel = row · cols + col |
//! | `n_frames` | 0-d u64 | frames in the series |
//! | `frame_time_s` | 0-d f64 | frame period (s) |
//! | `offsets` | (rows·cols + 1,) u64 | CSR: pixel p's events are `offsets[p]..offsets[p+1]` |
//! | `frames` | (n_events,) u32 | frame index of each event, strictly increasing within a pixel |
//! | `counts` | (n_events,) u8, u16 or u32 | photons of each event (≥ 1), the smallest type declared at creation |
//!
//! `offsets`, `frames` and `counts` are chunked ([`CHUNK_ELEMS`] elements) and compressed with
//! bitshuffle + LZ4 (HDF5 filter 32008, decoded in-process here; h5py needs `import
//! hdf5plugin`). Input/output type: [`EventList`] (whole), [`EventBlock`] (a range of pixels).
//!
//! [`EventWriter`] streams: pixel blocks are pushed in order and buffered to whole chunks, so a
//! full-scale Eiger event file (~2.7e9 photons) is written with memory of a few chunks plus
//! the caller's block; the file appears (atomic rename) only on [`EventWriter::finish`].
//! [`EventReader`] reads the whole list or any block of pixels, checking every CSR invariant.
//!
//! [`EventSource`] is the block-by-block form every sparse input takes (this file format via
//! [`EventFileBlocks`], the beamline formats via [`crate::records::PixelBlocks`]).
//!
//! Reference: the per-pixel sparse layout of Chushkin, Caronna & Madsen, J. Appl. Cryst. 45,
//! 807 (2012).

use std::path::{Path, PathBuf};

use ndarray::{s, Array1};

use crate::atomic::AtomicOutput;
use crate::h5filters::{register, BSHUF_COMPRESS_LZ4, BSHUF_FILTER_ID};
use crate::h5util::{
    guard_size, h5err, has_dataset, int_class, n_elems, open_read, read_u32_any, IntClass,
};
use xpcs_core::correlate::EventCorrelator;
use xpcs_core::data::{CountDtype, EventList};
use xpcs_core::error::{Error, Result};

/// Elements per chunk of the event datasets.
pub const CHUNK_ELEMS: usize = 1 << 18;
/// The `format` attribute value.
pub const FORMAT_NAME: &str = "xpcs-twin events";
/// The layout version written.
pub const FORMAT_VERSION: u32 = 1;

/// The events of a contiguous range of pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBlock {
    /// First pixel of the block (row-major index).
    pub first_pixel: usize,
    /// Local CSR offsets, length (pixels in block + 1), starting at 0.
    pub offsets: Vec<u64>,
    /// Frame index of each event.
    pub frames: Vec<u32>,
    /// Count of each event.
    pub counts: Vec<u32>,
}

impl EventBlock {
    /// Number of pixels in the block.
    pub fn n_pixels(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// Streaming writer of an event file. Push pixel blocks in order, then [`EventWriter::finish`].
#[derive(Debug)]
pub struct EventWriter {
    out: Option<AtomicOutput>,
    file: Option<hdf5::File>,
    tmp: PathBuf,
    n_pixels: usize,
    n_frames: usize,
    count_dtype: CountDtype,
    next_pixel: usize,
    /// Events written or buffered so far.
    n_events: u64,
    buf_offsets: Vec<u64>,
    buf_frames: Vec<u32>,
    buf_counts: Vec<u32>,
    written: [usize; 3],
}

fn bshuf(es: u32) -> Vec<hdf5::filters::Filter> {
    vec![hdf5::filters::Filter::user(
        BSHUF_FILTER_ID,
        &[0, 4, es, 0, BSHUF_COMPRESS_LZ4],
    )]
}

impl EventWriter {
    /// Creates the (temporary) file for a detector of `rows × cols` pixels, `n_frames` frames
    /// of `frame_time_s` seconds; counts are stored as `count_dtype` (a larger count is an
    /// error). `path` is checked like every output (not an input; exists only with `force`).
    pub fn create(
        path: &Path,
        rows: usize,
        cols: usize,
        n_frames: usize,
        frame_time_s: f64,
        count_dtype: CountDtype,
        force: bool,
    ) -> Result<Self> {
        let origin = path.display().to_string();
        xpcs_core::check::check_frame_time(&origin, "frame_time_s", frame_time_s)?;
        if n_frames > u32::MAX as usize {
            return Err(Error::out_of_range(
                origin,
                "n_frames",
                n_frames,
                "≤ 4294967295",
            ));
        }
        let n_pixels = rows.checked_mul(cols).filter(|&n| n > 0).ok_or_else(|| {
            Error::out_of_range(
                &origin,
                "shape",
                format!("({rows}, {cols})"),
                "non-empty, no overflow",
            )
        })?;
        register()?;
        let out = AtomicOutput::begin(path, &[], force)?;
        let tmp = out.tmp_path().to_path_buf();
        let e = |w: &str| h5err(&tmp, w);
        let file = crate::h5util::create_h5(&tmp)?;
        let g = crate::h5util::create_group(&file, "events").map_err(e("/events"))?;
        crate::h5util::write_text_attr(&g, "format", FORMAT_NAME, &tmp)?;
        g.new_attr::<u32>()
            .shape(())
            .create("version")
            .and_then(|a| a.write_scalar(&FORMAT_VERSION))
            .map_err(e("/events@version"))?;
        g.new_dataset_builder()
            .with_data(&Array1::from(vec![rows as u64, cols as u64]))
            .create("shape")
            .map_err(e("/events/shape"))?;
        g.new_dataset_builder()
            .with_data(&ndarray::arr0(n_frames as u64))
            .create("n_frames")
            .map_err(e("/events/n_frames"))?;
        g.new_dataset_builder()
            .with_data(&ndarray::arr0(frame_time_s))
            .create("frame_time_s")
            .map_err(e("/events/frame_time_s"))?;
        g.new_dataset::<u64>()
            .chunk(CHUNK_ELEMS)
            .shape(0..)
            .set_filters(&bshuf(8))
            .create("offsets")
            .map_err(e("/events/offsets"))?;
        g.new_dataset::<u32>()
            .chunk(CHUNK_ELEMS)
            .shape(0..)
            .set_filters(&bshuf(4))
            .create("frames")
            .map_err(e("/events/frames"))?;
        let cb = g.new_dataset_builder();
        let cb = match count_dtype {
            CountDtype::U8 => cb.empty::<u8>(),
            CountDtype::U16 => cb.empty::<u16>(),
            CountDtype::U32 => cb.empty::<u32>(),
        };
        cb.chunk(CHUNK_ELEMS)
            .shape(0..)
            .set_filters(&bshuf(count_dtype.size() as u32))
            .create("counts")
            .map_err(e("/events/counts"))?;
        Ok(EventWriter {
            out: Some(out),
            file: Some(file),
            tmp,
            n_pixels,
            n_frames,
            count_dtype,
            next_pixel: 0,
            n_events: 0,
            buf_offsets: vec![0],
            buf_frames: Vec::new(),
            buf_counts: Vec::new(),
            written: [0; 3],
        })
    }

    /// The next pixel expected by [`EventWriter::push_block`].
    pub fn next_pixel(&self) -> usize {
        self.next_pixel
    }

    /// Appends the events of pixels `first_pixel ..` (offsets local, from 0, length pixels + 1).
    /// Blocks must come in order without gaps; every CSR invariant is checked.
    pub fn push_block(
        &mut self,
        first_pixel: usize,
        offsets: &[u64],
        frames: &[u32],
        counts: &[u32],
    ) -> Result<()> {
        let origin = "event writer";
        if first_pixel != self.next_pixel {
            return Err(Error::invalid(
                origin,
                format!(
                    "blocks must be pushed in pixel order: expected pixel {}, got {first_pixel}",
                    self.next_pixel
                ),
            ));
        }
        let n = offsets.len().saturating_sub(1);
        if first_pixel + n > self.n_pixels {
            return Err(Error::out_of_range(
                origin,
                "block end pixel",
                first_pixel + n,
                format!("≤ {}", self.n_pixels),
            ));
        }
        let max = match self.count_dtype {
            CountDtype::U8 => u8::MAX.into(),
            CountDtype::U16 => u16::MAX.into(),
            CountDtype::U32 => u32::MAX,
        };
        xpcs_core::data::check_csr(
            origin,
            first_pixel,
            offsets,
            frames,
            counts,
            self.n_frames,
            max,
        )?;
        let base = self.n_events;
        self.buf_offsets
            .extend(offsets[1..].iter().map(|&o| base + o));
        self.buf_frames.extend_from_slice(frames);
        self.buf_counts.extend_from_slice(counts);
        self.n_events += frames.len() as u64;
        self.next_pixel += n;
        self.flush(false)
    }

    /// Convenience: pushes pixels from an in-memory [`EventList`] (must match the shape).
    pub fn push_events(&mut self, ev: &EventList) -> Result<()> {
        if ev.n_pixels() != self.n_pixels || ev.n_frames() != self.n_frames {
            return Err(Error::ShapeMismatch {
                origin: "event writer".into(),
                what: "event list (pixels, frames) vs file".into(),
                expected: vec![self.n_pixels, self.n_frames],
                got: vec![ev.n_pixels(), ev.n_frames()],
            });
        }
        self.push_block(0, ev.offsets(), ev.frames(), ev.counts())
    }

    /// Writes whole chunks (all buffered data when `all`).
    fn flush(&mut self, all: bool) -> Result<()> {
        let file = self.file.as_ref().expect("open until finish");
        let tmp = &self.tmp;
        fn append<T: hdf5::H5Type + Copy>(
            file: &hdf5::File,
            tmp: &Path,
            name: &str,
            buf: &mut Vec<T>,
            written: &mut usize,
            all: bool,
        ) -> Result<()> {
            let take = if all {
                buf.len()
            } else {
                buf.len() / CHUNK_ELEMS * CHUNK_ELEMS
            };
            if take == 0 {
                return Ok(());
            }
            let ds = file.dataset(name).map_err(h5err(tmp, name))?;
            ds.resize(*written + take).map_err(h5err(tmp, name))?;
            ds.write_slice(&buf[..take], s![*written..*written + take])
                .map_err(h5err(tmp, name))?;
            *written += take;
            buf.drain(..take);
            Ok(())
        }
        append(
            file,
            tmp,
            "/events/offsets",
            &mut self.buf_offsets,
            &mut self.written[0],
            all,
        )?;
        append(
            file,
            tmp,
            "/events/frames",
            &mut self.buf_frames,
            &mut self.written[1],
            all,
        )?;
        match self.count_dtype {
            CountDtype::U32 => append(
                file,
                tmp,
                "/events/counts",
                &mut self.buf_counts,
                &mut self.written[2],
                all,
            )?,
            CountDtype::U16 => {
                let take = if all {
                    self.buf_counts.len()
                } else {
                    self.buf_counts.len() / CHUNK_ELEMS * CHUNK_ELEMS
                };
                let mut v: Vec<u16> = self.buf_counts.drain(..take).map(|c| c as u16).collect();
                append(
                    file,
                    tmp,
                    "/events/counts",
                    &mut v,
                    &mut self.written[2],
                    true,
                )?;
            }
            CountDtype::U8 => {
                let take = if all {
                    self.buf_counts.len()
                } else {
                    self.buf_counts.len() / CHUNK_ELEMS * CHUNK_ELEMS
                };
                let mut v: Vec<u8> = self.buf_counts.drain(..take).map(|c| c as u8).collect();
                append(
                    file,
                    tmp,
                    "/events/counts",
                    &mut v,
                    &mut self.written[2],
                    true,
                )?;
            }
        }
        Ok(())
    }

    /// Checks that every pixel was pushed, writes the rest, closes and renames the file into
    /// place. Returns the final path.
    pub fn finish(mut self) -> Result<PathBuf> {
        if self.next_pixel != self.n_pixels {
            return Err(Error::invalid(
                "event writer",
                format!(
                    "finish after {} of {} pixels",
                    self.next_pixel, self.n_pixels
                ),
            ));
        }
        self.flush(true)?;
        let f = self.file.take().expect("open");
        f.close().map_err(h5err(&self.tmp, "close"))?;
        self.out.take().expect("once").commit()
    }
}

/// Writes a whole [`EventList`] (counts stored in the smallest type that holds them).
pub fn write_events(path: &Path, ev: &EventList, force: bool) -> Result<PathBuf> {
    let max = ev.counts().iter().copied().max().unwrap_or(1);
    let (r, c) = ev.frame_shape();
    let mut w = EventWriter::create(
        path,
        r,
        c,
        ev.n_frames(),
        ev.frame_time_s(),
        CountDtype::for_max(max),
        force,
    )?;
    w.push_events(ev)?;
    w.finish()
}

/// Reader of an event file: metadata checked at open, events by pixel block or whole.
#[derive(Debug)]
pub struct EventReader {
    path: PathBuf,
    _file: hdf5::File,
    rows: usize,
    cols: usize,
    n_frames: usize,
    frame_time_s: f64,
    n_events: usize,
    offsets: hdf5::Dataset,
    frames: hdf5::Dataset,
    counts: hdf5::Dataset,
}

/// Whether `path` is an HDF5 file holding an xpcs-twin event list (a `/events/offsets`
/// dataset); false for Eiger frame files, other files and unreadable paths.
pub fn is_event_file(path: &Path) -> bool {
    crate::h5util::open_unlocked(path)
        .map(|f| has_dataset(&f, "/events/offsets"))
        .unwrap_or(false)
}

impl EventReader {
    /// Opens and checks an event file's metadata and dataset sizes.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_read(path)?;
        let origin = path.display().to_string();
        let need = |n: &str| -> Result<hdf5::Dataset> {
            let full = format!("/events/{n}");
            if !has_dataset(&file, &full) {
                return Err(Error::format(
                    path,
                    format!("not an xpcs-twin event file: missing {full}"),
                ));
            }
            file.dataset(&full).map_err(h5err(path, &full))
        };
        let (sh, shape) = read_u32_any(&need("shape")?, path, "/events/shape")?;
        if sh != [2] {
            return Err(Error::format(
                path,
                format!("/events/shape must be (2,), got {sh:?}"),
            ));
        }
        let (rows, cols) = (shape[0] as usize, shape[1] as usize);
        let n_pix = rows * cols;
        let nf = need("n_frames")?;
        if n_elems(&nf) != Some(1) {
            return Err(Error::format(path, "/events/n_frames must be a scalar"));
        }
        let n_frames = nf
            .read_raw::<u64>()
            .map_err(h5err(path, "/events/n_frames"))?[0];
        if n_frames > u64::from(u32::MAX) {
            return Err(Error::out_of_range(
                origin,
                "/events/n_frames",
                n_frames,
                "≤ 4294967295",
            ));
        }
        let ft = need("frame_time_s")?;
        if n_elems(&ft) != Some(1) {
            return Err(Error::format(path, "/events/frame_time_s must be a scalar"));
        }
        let frame_time_s = ft
            .read_raw::<f64>()
            .map_err(h5err(path, "/events/frame_time_s"))?[0];
        xpcs_core::check::check_frame_time(&origin, "/events/frame_time_s", frame_time_s)?;
        let offsets = need("offsets")?;
        let frames = need("frames")?;
        let counts = need("counts")?;
        for (d, n) in [
            (&offsets, "offsets"),
            (&frames, "frames"),
            (&counts, "counts"),
        ] {
            if d.ndim() != 1 {
                return Err(Error::format(
                    path,
                    format!("/events/{n} must be 1-D, got {:?}", d.shape()),
                ));
            }
        }
        let n_off = n_elems(&offsets);
        let (n_fr, n_ct) = (n_elems(&frames), n_elems(&counts));
        if n_off != n_pix.checked_add(1) || n_fr.is_none() {
            return Err(Error::ShapeMismatch {
                origin,
                what: "/events/offsets vs rows·cols + 1".into(),
                expected: vec![n_pix + 1],
                got: offsets.shape(),
            });
        }
        if n_fr != n_ct {
            return Err(Error::ShapeMismatch {
                origin,
                what: "/events/frames vs /events/counts".into(),
                expected: frames.shape(),
                got: counts.shape(),
            });
        }
        guard_size(&offsets, 8, path, "/events/offsets")?;
        guard_size(&frames, 4, path, "/events/frames")?;
        let cclass = int_class(&counts, path, "/events/counts")?;
        let ces = match cclass {
            IntClass::U8 => 1,
            IntClass::U16 => 2,
            _ => 4,
        };
        guard_size(&counts, ces, path, "/events/counts")?;
        Ok(EventReader {
            path: path.to_path_buf(),
            _file: file,
            rows,
            cols,
            n_frames: n_frames as usize,
            frame_time_s,
            n_events: n_fr.unwrap_or(0),
            offsets,
            frames,
            counts,
        })
    }

    /// Detector shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    /// Number of frames.
    pub fn n_frames(&self) -> usize {
        self.n_frames
    }
    /// Frame time (s).
    pub fn frame_time_s(&self) -> f64 {
        self.frame_time_s
    }
    /// Number of events.
    pub fn n_events(&self) -> usize {
        self.n_events
    }

    /// Reads pixels `first_pixel .. first_pixel + n_pixels`, checking the CSR invariants.
    pub fn read_block(&self, first_pixel: usize, n_pixels: usize) -> Result<EventBlock> {
        let origin = self.path.display().to_string();
        let total = self.rows * self.cols;
        if first_pixel.checked_add(n_pixels).is_none_or(|e| e > total) {
            return Err(Error::out_of_range(
                origin,
                "pixel block",
                format!("{first_pixel}+{n_pixels}"),
                format!("within 0..{total}"),
            ));
        }
        let e = h5err(&self.path, "/events/offsets");
        let offs: Vec<u64> = self
            .offsets
            .read_slice_1d::<u64, _>(s![first_pixel..first_pixel + n_pixels + 1])
            .map_err(e)?
            .to_vec();
        if first_pixel == 0 && offs[0] != 0 {
            return Err(Error::invalid(origin, "offsets[0] must be 0"));
        }
        if first_pixel + n_pixels == total && offs[n_pixels] != self.n_events as u64 {
            return Err(Error::invalid(
                origin,
                format!(
                    "last offset {} != number of events {}",
                    offs[n_pixels], self.n_events
                ),
            ));
        }
        let (a, b) = (offs[0], offs[n_pixels]);
        if b < a || b > self.n_events as u64 {
            return Err(Error::invalid(
                origin,
                format!(
                    "offsets of pixels {first_pixel}.. run {a}..{b}, outside 0..{}",
                    self.n_events
                ),
            ));
        }
        let (a, b) = (a as usize, b as usize);
        let frames = self
            .frames
            .read_slice_1d::<u32, _>(s![a..b])
            .map_err(h5err(&self.path, "/events/frames"))?
            .to_vec();
        let counts = self
            .counts
            .read_slice_1d::<u32, _>(s![a..b])
            .map_err(h5err(&self.path, "/events/counts"))?
            .to_vec();
        let local: Vec<u64> = offs.iter().map(|&o| o.wrapping_sub(a as u64)).collect();
        xpcs_core::data::check_csr(
            &origin,
            first_pixel,
            &local,
            &frames,
            &counts,
            self.n_frames,
            u32::MAX,
        )?;
        Ok(EventBlock {
            first_pixel,
            offsets: local,
            frames,
            counts,
        })
    }

    /// Reads every event.
    pub fn read_all(&self) -> Result<EventList> {
        let b = self.read_block(0, self.rows * self.cols)?;
        EventList::new(
            self.rows,
            self.cols,
            self.n_frames,
            self.frame_time_s,
            b.offsets,
            b.frames,
            b.counts,
        )
    }
}

/// Reads a whole event file.
pub fn read_events(path: &Path) -> Result<EventList> {
    EventReader::open(path)?.read_all()
}

/// A source of event blocks in pixel order (consecutive pixel ranges, each pixel once, from
/// pixel 0 to the last): an xpcs-twin event file ([`EventFileBlocks`]) or any sparse beamline
/// format transposed by [`crate::records::PixelBlocks`]. What the event correlator consumes
/// block by block (`EventCorrelator::push_pixel_block`), in memory of one block.
pub trait EventSource {
    /// Frame shape (rows, cols).
    fn frame_shape(&self) -> (usize, usize);
    /// Frames of the series.
    fn n_frames(&self) -> usize;
    /// Frame period (s) if the file stores it.
    fn frame_time_s(&self) -> Option<f64>;
    /// The next block (pixel order), `None` after the last pixel. Every pixel's frames
    /// strictly increase and are < [`EventSource::n_frames`]; counts are ≥ 1.
    fn next_block(&mut self) -> Result<Option<EventBlock>>;
    /// Pushes every block not yet read into the event correlator `ev` (same sums as pushing
    /// each [`EventSource::next_block`] with `push_pixel_block`, which is the default).
    /// Sources that build their blocks in parallel override it to hand each piece to the
    /// correlator as soon as it is built, while it is still in cache.
    fn correlate_into(&mut self, ev: &mut EventCorrelator) -> Result<()> {
        push_blocks(self, ev)
    }
}

/// Pushes every block `src` has not yet delivered into `ev`, one at a time.
pub fn push_blocks<S: EventSource + ?Sized>(src: &mut S, ev: &mut EventCorrelator) -> Result<()> {
    while let Some(b) = src.next_block()? {
        ev.push_pixel_block(b.first_pixel, &b.offsets, &b.frames, &b.counts)?;
    }
    Ok(())
}

/// [`EventSource`] over an event file, `block_pixels` pixels at a time.
#[derive(Debug)]
pub struct EventFileBlocks {
    reader: EventReader,
    next: usize,
    block_pixels: usize,
}

impl EventFileBlocks {
    /// Blocks of `block_pixels` pixels (at least 1) of an opened event file.
    pub fn new(reader: EventReader, block_pixels: usize) -> Self {
        EventFileBlocks {
            reader,
            next: 0,
            block_pixels: block_pixels.max(1),
        }
    }
}

impl EventSource for EventFileBlocks {
    fn frame_shape(&self) -> (usize, usize) {
        self.reader.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.reader.n_frames()
    }
    fn frame_time_s(&self) -> Option<f64> {
        Some(self.reader.frame_time_s())
    }
    fn next_block(&mut self) -> Result<Option<EventBlock>> {
        let (r, c) = self.reader.frame_shape();
        let n = r * c;
        if self.next >= n {
            return Ok(None);
        }
        let len = self.block_pixels.min(n - self.next);
        let b = self.reader.read_block(self.next, len)?;
        self.next += len;
        Ok(Some(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use xpcs_core::data::FrameStack;

    fn stack(t: usize, r: usize, c: usize, seed: u32, dens: u32) -> FrameStack {
        let v: Vec<u16> = (0..t * r * c)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2654435761)
                    .wrapping_add(seed.wrapping_mul(40503));
                if h % dens == 0 {
                    (h >> 24) as u16 % 5 + 1
                } else {
                    0
                }
            })
            .collect();
        FrameStack::from_u16(t, r, c, v).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whole write → whole read and block reads equal the in-memory list (the reference),
        /// for any block split.
        #[test]
        fn streaming_write_read_roundtrip(t in 1usize..30, r in 1usize..9, c in 1usize..9,
                                          seed in any::<u32>(), dens in 1u32..6, split in 1usize..20) {
            let ev = EventList::from_stack(&stack(t, r, c, seed, dens), 0.01).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("ev.h5");
            let mut w = EventWriter::create(&p, r, c, t, 0.01, CountDtype::U8, false).unwrap();
            let n = r * c;
            let mut p0 = 0;
            while p0 < n {
                let p1 = (p0 + split).min(n);
                let o = ev.offsets();
                let (a, b) = (o[p0] as usize, o[p1] as usize);
                let local: Vec<u64> = o[p0..=p1].iter().map(|&x| x - a as u64).collect();
                w.push_block(p0, &local, &ev.frames()[a..b], &ev.counts()[a..b]).unwrap();
                p0 = p1;
            }
            w.finish().unwrap();
            let rd = EventReader::open(&p).unwrap();
            prop_assert_eq!(rd.read_all().unwrap(), ev.clone());
            let blk = rd.read_block(n / 2, n - n / 2).unwrap();
            let a = ev.offsets()[n / 2] as usize;
            prop_assert_eq!(&blk.frames[..], &ev.frames()[a..]);
        }
    }

    #[test]
    fn writer_refuses_bad_blocks_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.h5");
        let mut w = EventWriter::create(&p, 1, 3, 5, 0.1, CountDtype::U8, false).unwrap();
        assert!(
            w.push_block(1, &[0, 1], &[0], &[1]).is_err(),
            "out of order"
        );
        assert!(
            w.push_block(0, &[0, 2], &[3, 2], &[1, 1]).is_err(),
            "frames not increasing"
        );
        assert!(
            w.push_block(0, &[0, 1], &[5], &[1]).is_err(),
            "frame out of range"
        );
        assert!(
            w.push_block(0, &[0, 1], &[1], &[300]).is_err(),
            "count above u8"
        );
        // Found by fuzzing: an offset past the events between valid ends must not slice.
        let huge = u64::MAX - 21;
        assert!(w.push_block(0, &[0, huge, huge, 1], &[1], &[1]).is_err());
        w.push_block(0, &[0, 1], &[1], &[2]).unwrap();
        assert!(w.finish().is_err(), "pixels missing");
        assert!(!p.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temp file removed"
        );
        assert!(EventWriter::create(&p, 1, 3, 5, -1.0, CountDtype::U8, false).is_err());
        assert!(EventWriter::create(&p, 1, 3, 5, f64::NAN, CountDtype::U8, false).is_err());
    }

    #[test]
    fn many_chunks_roundtrip() {
        // More events than one chunk, to exercise chunk-aligned flushing.
        let ev = EventList::from_stack(&stack(400, 40, 50, 7, 2), 0.001).unwrap();
        assert!(ev.n_events() > CHUNK_ELEMS);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.h5");
        write_events(&p, &ev, false).unwrap();
        assert_eq!(read_events(&p).unwrap(), ev);
    }
}
