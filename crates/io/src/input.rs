//! One entry point for every photon file the analysis reads: dense frames (streamed frame by
//! frame) or sparse photons (straight to the event correlator by pixel block, never a dense
//! stack), chosen by extension and content.
//!
//! | file | detected by | kind | delivered as |
//! |---|---|---|---|
//! | `.npy` rank 3 | extension + header | NPY stack (frame, row, col) | frames ([`crate::npy::NpyFrames`]) |
//! | `.npy` (3, N) integer | extension + header | APS triplets | events ([`crate::triplets::TripletsNpy`]) |
//! | `.npz` with `offsets`, `frames`, `counts`, `shape` (no `dataset`) | extension + members | event NPZ (from `simulate`) | events ([`EventListBlocks`]) |
//! | `.npz`, otherwise | extension | NPZ stack (a member, stored or deflated; `dataset` names it) | frames ([`NpzFrames`]) |
//! | `.h5 .hdf .hdf5 .nxs` with `/events/offsets` | content | xpcs-twin event file | events ([`crate::events::EventFileBlocks`]) |
//! | same, with `/entry_0000/measurement/data/frame_ptr` | content | ESRF ID10 sparse | events ([`crate::esrf::EsrfSparse`]) |
//! | same, with `index`, `frame`, `count` (root or a top-level group) | content | APS triplets | events ([`crate::triplets::TripletsH5`]) |
//! | same (and `.cxi`), otherwise, or any with a `dataset` | — | Eiger / NeXus frames | frames ([`crate::eiger::EigerFrames`]: `/entry/data/data`, a master file's linked data files, `/entry/instrument/detector/data`, or `dataset`) |
//! | `.bin`, `.bin.000` … `.bin.005` | extension | Rigaku 500k / 3M | events ([`crate::rigaku::RigakuRecords`]) |
//! | `.imm` | extension | IMM, sparse / full frames | events / frames ([`crate::imm::ImmFile`]) |
//!
//! [`InputOptions::detector_shape`] is the detector's frame shape as the caller knows it (the
//! `correlate` command takes it from the q-map): formats that do not store a shape (ESRF
//! sparse, triplets) use it; sparse formats that declare one (IMM, Rigaku) are checked against
//! it before any per-pixel state is allocated, so a corrupted header cannot make the reader
//! allocate for a detector nobody has. Sparse formats are transposed by
//! [`crate::records::PixelBlocks`] (pass 1 happens in [`open_input`]).
//!
//! Frame inputs also carry what marks the detector's invalid pixels ([`DetectorInfo`]: NPY/NPZ
//! the stored type's maximum, Eiger/NeXus `bit_depth_image`, `pixel_mask` and
//! `countrate_correction_count_cutoff`, full-frame IMM the 16-bit maximum);
//! [`scan_detector_mask`] turns that into a per-pixel mask ([`DetectorMask`]) in one streamed
//! pass over the frames. Which pixels the detector mask removes, for the whole scan:
//! - every pixel whose Eiger/NeXus `pixel_mask` is non-zero (any bit: gap, dead, cold, hot,
//!   noisy, cluster, ...);
//! - every pixel that holds the overflow value 2ⁿ − 1 (n = `bit_depth_image`, else the stored
//!   type's bits) in any frame used, or exceeds `countrate_correction_count_cutoff` (the largest
//!   count the detector's rate correction trusts, where the file has it) in any frame used.
//!
//! Why the whole scan and not only the frames where a pixel overflowed: the multi-tau and
//! two-time estimators normalise each pixel by its own time averages (⟨I⟩ past and future
//! sums); a pixel missing from some frames biases those sums and the correlation of every lag
//! that spans the gap. Crystallography treats the cutoff per image (an "overload" excluded from
//! that image's integration, e.g. DIALS trusted_range); XPCS correlators (boost_corr, the ESRF
//! ones) take one static mask for the scan, and a pixel that reached the cutoff once has a count
//! rate where the rate correction is already unreliable. So: masked for the scan, and reported.

use std::path::Path;

use crate::eiger::EigerFrames;
use crate::esrf::{is_esrf_sparse, EsrfSparse};
use crate::events::{is_event_file, EventBlock, EventFileBlocks, EventReader, EventSource};
use crate::imm::ImmFile;
use crate::npy::npz::{is_event_npz, read_events as read_events_npz, NpzFrames};
use crate::npy::NpyFrames;
use crate::records::{PixelBlocks, DEFAULT_MAX_BLOCK_EVENTS};
use crate::rigaku::RigakuRecords;
use crate::triplets::{is_triplets_h5, is_triplets_header, TripletsH5, TripletsNpy};
use xpcs_core::data::{EventList, FrameSource};
use xpcs_core::error::{Error, Result};

/// The file kinds [`detect`] tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// NPY frame stack.
    NpyStack,
    /// NPZ frame stack (one member).
    NpzStack,
    /// Event NPZ (`offsets`, `frames`, `counts`, `shape`, `frame_time_s`) from `simulate`.
    EventNpz,
    /// Eiger / NeXus HDF5 frames (or a master file).
    Eiger,
    /// xpcs-twin event file.
    EventFile,
    /// ESRF ID10 sparse frames.
    EsrfSparse,
    /// APS triplets in HDF5.
    TripletsH5,
    /// APS triplets as a (3, N) NPY array.
    TripletsNpy,
    /// Rigaku 64-bit `.bin` (one module or a 3M set).
    Rigaku,
    /// IMM (sparse or full frames).
    Imm,
}

impl InputKind {
    /// A short human name.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::NpyStack => "NPY stack",
            InputKind::NpzStack => "NPZ stack",
            InputKind::EventNpz => "event NPZ",
            InputKind::Eiger => "Eiger/NeXus HDF5 frames",
            InputKind::EventFile => "xpcs-twin event file",
            InputKind::EsrfSparse => "ESRF ID10 sparse HDF5",
            InputKind::TripletsH5 => "APS (index, frame, count) triplets, HDF5",
            InputKind::TripletsNpy => "APS (index, frame, count) triplets, NPY",
            InputKind::Rigaku => "Rigaku 64-bit sparse .bin",
            InputKind::Imm => "IMM",
        }
    }
}

/// Options of [`open_input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputOptions {
    /// The detector's frame shape (rows, cols): the shape of formats that do not store it
    /// (ESRF sparse, triplets), a check of sparse formats that do (IMM, Rigaku).
    pub detector_shape: Option<(usize, usize)>,
    /// Largest pixel block of a transposed sparse file, in events (8 bytes each).
    pub max_block_events: usize,
    /// Pixels per block read from an xpcs-twin event file or an event NPZ.
    pub event_block_pixels: usize,
    /// Where the frames are: an HDF5 dataset path (e.g. `/entry/instrument/detector/data`) or
    /// an NPZ member name. With a dataset, an HDF5 or NPZ file is read as frames.
    pub dataset: Option<String>,
}

impl Default for InputOptions {
    fn default() -> Self {
        InputOptions {
            detector_shape: None,
            max_block_events: DEFAULT_MAX_BLOCK_EVENTS,
            event_block_pixels: 65_536,
            dataset: None,
        }
    }
}

/// An opened input: frames or events.
pub enum Input {
    /// Dense frames, one at a time; the frame time if the file stores one.
    Frames {
        /// The frames.
        source: Box<dyn FrameSource>,
        /// Frame period (s) from the file.
        frame_time_s: Option<f64>,
        /// What marks the detector's invalid pixels, if the format tells.
        detector: Option<DetectorInfo>,
    },
    /// Photons by pixel block.
    Events(Box<dyn EventSource>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (k, (r, c), n) = match self {
            Input::Frames { source, .. } => ("frames", source.frame_shape(), source.n_frames()),
            Input::Events(e) => ("events", e.frame_shape(), e.n_frames()),
        };
        write!(f, "Input::{k}({n} frames of {r} × {c})")
    }
}

impl Input {
    /// Frame shape (rows, cols).
    pub fn frame_shape(&self) -> (usize, usize) {
        match self {
            Input::Frames { source, .. } => source.frame_shape(),
            Input::Events(e) => e.frame_shape(),
        }
    }
    /// Frames of the series.
    pub fn n_frames(&self) -> usize {
        match self {
            Input::Frames { source, .. } => source.n_frames(),
            Input::Events(e) => e.n_frames(),
        }
    }
    /// Frame period (s) stored in the file, if any.
    pub fn frame_time_s(&self) -> Option<f64> {
        match self {
            Input::Frames { frame_time_s, .. } => *frame_time_s,
            Input::Events(e) => e.frame_time_s(),
        }
    }
    /// What marks the detector's invalid pixels (frame inputs whose format tells).
    pub fn detector(&self) -> Option<&DetectorInfo> {
        match self {
            Input::Frames { detector, .. } => detector.as_ref(),
            Input::Events(_) => None,
        }
    }
}

/// What marks the detector's invalid pixels in an input.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorInfo {
    /// The file's pixel mask as valid flags (true = good), if it has one.
    pub pixel_mask: Option<Vec<bool>>,
    /// The overflow value 2ⁿ − 1.
    pub overflow_value: u32,
    /// The largest count the detector trusts (`countrate_correction_count_cutoff`).
    pub count_cutoff: Option<u64>,
    /// Where these came from, in words (for the report).
    pub source: String,
}

/// The overflow value 2ⁿ − 1 of a stored type of `bytes` bytes (n = 8 × bytes, at most 32).
fn dtype_overflow(bytes: usize) -> u32 {
    ((1u64 << (8 * bytes).clamp(1, 32)) - 1) as u32
}

/// The detector markers of a frame file that only has its stored type.
fn dtype_info(bytes: usize) -> DetectorInfo {
    let overflow_value = dtype_overflow(bytes);
    DetectorInfo {
        pixel_mask: None,
        overflow_value,
        count_cutoff: None,
        source: format!("the stored type's maximum {overflow_value}"),
    }
}

/// [`EventSource`] over an event list held in memory (an event NPZ), `block_pixels` pixels at
/// a time.
#[derive(Debug)]
pub struct EventListBlocks {
    events: EventList,
    next: usize,
    block_pixels: usize,
}

impl EventListBlocks {
    /// Blocks of `block_pixels` pixels (at least 1) of `events`.
    pub fn new(events: EventList, block_pixels: usize) -> Self {
        EventListBlocks {
            events,
            next: 0,
            block_pixels: block_pixels.max(1),
        }
    }
}

impl EventSource for EventListBlocks {
    fn frame_shape(&self) -> (usize, usize) {
        self.events.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.events.n_frames()
    }
    fn frame_time_s(&self) -> Option<f64> {
        Some(self.events.frame_time_s())
    }
    fn next_block(&mut self) -> Result<Option<EventBlock>> {
        let n = self.events.n_pixels();
        if self.next >= n {
            return Ok(None);
        }
        let len = self.block_pixels.min(n - self.next);
        let off = &self.events.offsets()[self.next..=self.next + len];
        let (lo, hi) = (off[0] as usize, off[len] as usize);
        let b = EventBlock {
            first_pixel: self.next,
            offsets: off.iter().map(|&o| o - off[0]).collect(),
            frames: self.events.frames()[lo..hi].to_vec(),
            counts: self.events.counts()[lo..hi].to_vec(),
        };
        self.next += len;
        Ok(Some(b))
    }
}

fn lower_ext(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether the file name is a Rigaku 3M module file (`*.bin.000` … `*.bin.005`).
fn is_rigaku_module(path: &Path) -> bool {
    let n = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    n.len() > 8
        && n[..n.len() - 1].ends_with(".bin.00")
        && matches!(n.as_bytes()[n.len() - 1], b'0'..=b'5')
}

/// The kind of `path` (see the module table).
pub fn detect(path: &Path) -> Result<InputKind> {
    let ext = lower_ext(path);
    if ext == "bin" || is_rigaku_module(path) {
        return Ok(InputKind::Rigaku);
    }
    match ext.as_str() {
        "imm" => Ok(InputKind::Imm),
        "npy" => {
            let h = crate::npy::read_header(path)?;
            Ok(if is_triplets_header(&h) {
                InputKind::TripletsNpy
            } else {
                InputKind::NpyStack
            })
        }
        "npz" => Ok(if is_event_npz(path) {
            InputKind::EventNpz
        } else {
            InputKind::NpzStack
        }),
        "h5" | "hdf" | "hdf5" | "nxs" | "cxi" => Ok(if is_event_file(path) {
            InputKind::EventFile
        } else if is_esrf_sparse(path) {
            InputKind::EsrfSparse
        } else if is_triplets_h5(path) {
            InputKind::TripletsH5
        } else {
            InputKind::Eiger
        }),
        _ => Err(Error::format(
            path,
            "unknown photon file type (allowed: .npy, .npz, .h5/.hdf/.hdf5/.nxs/.cxi, .bin, \
             .bin.000-.005, .imm)",
        )),
    }
}

/// The kind [`open_input`] opens `path` as with `opts`: [`detect`]'s, except that a `dataset`
/// makes an NPZ an NPZ stack and an HDF5 file Eiger/NeXus frames.
pub fn input_kind(path: &Path, opts: &InputOptions) -> Result<InputKind> {
    let kind = detect(path)?;
    Ok(match (kind, &opts.dataset) {
        (InputKind::EventNpz, Some(_)) => InputKind::NpzStack,
        (InputKind::EventFile | InputKind::EsrfSparse | InputKind::TripletsH5, Some(_)) => {
            InputKind::Eiger
        }
        (k, _) => k,
    })
}

fn need_shape(path: &Path, kind: InputKind, opts: &InputOptions) -> Result<(usize, usize)> {
    opts.detector_shape.ok_or_else(|| {
        Error::invalid(
            path.display().to_string(),
            format!(
                "{} files do not store the frame shape: give the detector shape (rows, cols){}",
                kind.name(),
                if kind == InputKind::EsrfSparse {
                    ", 2162 × 2068 for the ID10 Eiger 4M"
                } else {
                    ""
                }
            ),
        )
    })
}

/// Refuses a declared frame shape other than the caller's detector shape.
fn check_shape(path: &Path, declared: (usize, usize), opts: &InputOptions) -> Result<()> {
    match opts.detector_shape {
        Some(s) if s != declared => Err(Error::ShapeMismatch {
            origin: path.display().to_string(),
            what: "frame shape in the file vs the detector (q-map)".into(),
            expected: vec![s.0, s.1],
            got: vec![declared.0, declared.1],
        }),
        _ => Ok(()),
    }
}

/// Opens `path` as frames or events (see the module docs).
pub fn open_input(path: &Path, opts: &InputOptions) -> Result<Input> {
    let kind = input_kind(path, opts)?;
    let blocks = opts.max_block_events;
    let dataset = opts.dataset.as_deref();
    Ok(match kind {
        InputKind::NpyStack => {
            let f = NpyFrames::open(path)?;
            let detector = Some(dtype_info(f.header().dtype.size));
            Input::Frames {
                source: Box::new(f),
                frame_time_s: None,
                detector,
            }
        }
        InputKind::NpzStack => {
            let f = NpzFrames::open(path, dataset)?;
            let detector = Some(dtype_info(f.header().dtype.size));
            Input::Frames {
                source: Box::new(f),
                frame_time_s: None,
                detector,
            }
        }
        InputKind::EventNpz => Input::Events(Box::new(EventListBlocks::new(
            read_events_npz(path)?,
            opts.event_block_pixels,
        ))),
        InputKind::Eiger => {
            let f = EigerFrames::open_dataset(path, dataset)?;
            let flags = f.detector_flags().clone();
            let pixel_mask = f.pixel_mask()?;
            let mut source = match flags.bit_depth_image {
                Some(b) => format!("bit_depth_image {b}"),
                None => format!("the stored type ({} bits)", flags.dtype_bits),
            };
            if pixel_mask.is_some() {
                source.push_str(", pixel_mask");
            }
            if let Some(c) = flags.count_cutoff {
                source.push_str(&format!(", countrate_correction_count_cutoff {c}"));
            }
            let detector = Some(DetectorInfo {
                pixel_mask,
                overflow_value: flags.overflow_value(),
                count_cutoff: flags.count_cutoff,
                source,
            });
            Input::Frames {
                frame_time_s: f.frame_time_s(),
                source: Box::new(f),
                detector,
            }
        }
        InputKind::EventFile => Input::Events(Box::new(EventFileBlocks::new(
            EventReader::open(path)?,
            opts.event_block_pixels,
        ))),
        InputKind::EsrfSparse => {
            let shape = need_shape(path, kind, opts)?;
            Input::Events(Box::new(PixelBlocks::new(
                EsrfSparse::open(path, shape)?,
                blocks,
            )?))
        }
        InputKind::TripletsH5 => {
            let shape = need_shape(path, kind, opts)?;
            let src = TripletsH5::open(path, None, shape, None)?;
            Input::Events(Box::new(PixelBlocks::new(src, blocks)?))
        }
        InputKind::TripletsNpy => {
            let shape = need_shape(path, kind, opts)?;
            Input::Events(Box::new(PixelBlocks::new(
                TripletsNpy::open(path, shape, None)?,
                blocks,
            )?))
        }
        InputKind::Rigaku => {
            let src = RigakuRecords::open(path)?;
            check_shape(path, crate::records::PhotonRecords::frame_shape(&src), opts)?;
            Input::Events(Box::new(PixelBlocks::new(src, blocks)?))
        }
        InputKind::Imm => {
            let f = ImmFile::open(path)?;
            check_shape(path, FrameSource::frame_shape(&f), opts)?;
            if f.is_sparse() {
                Input::Events(Box::new(PixelBlocks::new(f, blocks)?))
            } else {
                Input::Frames {
                    source: Box::new(f),
                    frame_time_s: None,
                    // IMM stores 2-byte values (checked when opened).
                    detector: Some(dtype_info(2)),
                }
            }
        }
    })
}

/// Reads every block of an event source into one [`xpcs_core::data::EventList`] (frame time: the source's,
/// else `frame_time_s`). For tests and small files: memory ∝ photons.
pub fn collect_events(
    src: &mut dyn EventSource,
    frame_time_s: f64,
) -> Result<xpcs_core::data::EventList> {
    let (rows, cols) = src.frame_shape();
    let mut offsets = vec![0u64];
    let (mut frames, mut counts) = (Vec::new(), Vec::new());
    while let Some(b) = src.next_block()? {
        if b.first_pixel + 1 != offsets.len() {
            return Err(Error::invalid(
                "event source",
                format!(
                    "block starts at pixel {}, expected {}",
                    b.first_pixel,
                    offsets.len() - 1
                ),
            ));
        }
        let base = frames.len() as u64;
        offsets.extend(b.offsets[1..].iter().map(|&x| x + base));
        frames.extend_from_slice(&b.frames);
        counts.extend_from_slice(&b.counts);
    }
    let ft = src.frame_time_s().unwrap_or(frame_time_s);
    xpcs_core::data::EventList::new(rows, cols, src.n_frames(), ft, offsets, frames, counts)
}

/// The detector's mask for one scan, with what it removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorMask {
    /// Valid flags per pixel (true = kept), row-major.
    pub valid: Vec<bool>,
    /// Pixels flagged by the file's pixel mask.
    pub n_pixel_mask: usize,
    /// Further pixels that held the overflow value or exceeded the count cutoff in a frame.
    pub n_overflow: usize,
    /// The overflow value used.
    pub overflow_value: u32,
    /// The count cutoff used, if any.
    pub count_cutoff: Option<u64>,
    /// Where the markers came from.
    pub source: String,
}

impl DetectorMask {
    /// Pixels masked in all.
    pub fn n_masked(&self) -> usize {
        self.valid.iter().filter(|&&v| !v).count()
    }

    /// One line for the user: how many pixels, why.
    pub fn summary(&self) -> String {
        let cut = self
            .count_cutoff
            .map(|c| format!(" or > {c} counts"))
            .unwrap_or_default();
        format!(
            "detector mask: {} pixel(s) masked ({} by the file's pixel_mask, {} more holding \
             {}{cut} in some frame; from {}); --no-detector-mask keeps them",
            self.n_masked(),
            self.n_pixel_mask,
            self.n_overflow,
            self.overflow_value,
            self.source
        )
    }
}

/// Streams every frame of `src` once and marks the pixels that overflow (see the module docs),
/// on top of `info.pixel_mask`.
pub fn scan_detector_mask(src: &mut dyn FrameSource, info: &DetectorInfo) -> Result<DetectorMask> {
    let (r, c) = src.frame_shape();
    let n = r * c;
    let mut valid = info.pixel_mask.clone().unwrap_or_else(|| vec![true; n]);
    if valid.len() != n {
        return Err(Error::ShapeMismatch {
            origin: "detector mask".into(),
            what: "pixel_mask vs frame".into(),
            expected: vec![r, c],
            got: vec![valid.len()],
        });
    }
    let n_pixel_mask = valid.iter().filter(|&&v| !v).count();
    let limit = info
        .count_cutoff
        .map_or(u64::from(info.overflow_value), |c| {
            c.min(u64::from(info.overflow_value))
        });
    // A pixel is invalid when one of its counts is the overflow value or above the
    // cutoff: exactly when its largest count is the overflow value or above the cutoff
    // (the cutoff is at most the overflow value, so a count above the overflow value is
    // above the cutoff too).
    let max = src.pixel_maxima()?;
    let mut n_overflow = 0;
    for (v, &x) in valid.iter_mut().zip(&max) {
        if *v && (x == info.overflow_value || u64::from(x) > limit) {
            *v = false;
            n_overflow += 1;
        }
    }
    Ok(DetectorMask {
        valid,
        n_pixel_mask,
        n_overflow,
        overflow_value: info.overflow_value,
        count_cutoff: info.count_cutoff,
        source: info.source.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triplets::events_from_triplets;
    use std::path::PathBuf;
    use xpcs_core::data::{CountDtype, EventList, FrameStack};

    fn real(name: &str) -> PathBuf {
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/real"
        ))
        .join(name)
    }

    /// What an input holds, as an event list (frames converted losslessly).
    fn as_events(input: Input) -> EventList {
        match input {
            Input::Frames { mut source, .. } => {
                let s = FrameStack::from_source(source.as_mut(), CountDtype::U32).unwrap();
                EventList::from_stack(&s, 1.0).unwrap()
            }
            Input::Events(mut e) => collect_events(e.as_mut(), 1.0).unwrap(),
        }
    }

    fn same(a: &EventList, b: &EventList) -> bool {
        a.frame_shape() == b.frame_shape()
            && a.n_frames() == b.n_frames()
            && a.offsets() == b.offsets()
            && a.frames() == b.frames()
            && a.counts() == b.counts()
    }

    /// An in-memory event list read back through [`EventListBlocks`] in blocks of any size
    /// (1 pixel, an uneven split, all pixels at once) is the same list.
    #[test]
    fn event_list_blocks_split_any_way() {
        let v: Vec<u32> = (0..5 * 3 * 7)
            .map(|i: u32| {
                let h = i.wrapping_mul(2654435761);
                if h % 3 == 0 {
                    h >> 30
                } else {
                    0
                }
            })
            .collect();
        let ev = EventList::from_stack(&FrameStack::from_u32(5, 3, 7, v).unwrap(), 0.5).unwrap();
        for block in [1, 4, 21, 1000] {
            let mut src = EventListBlocks::new(ev.clone(), block);
            assert_eq!(src.frame_time_s(), Some(0.5));
            let got = collect_events(&mut src, 1.0).unwrap();
            assert!(same(&got, &ev), "block {block}");
        }
    }

    /// The fixtures written by independent Python writers from the published layouts
    /// (tests/fixtures/PROVENANCE.md, "Real-layout fixtures") decode to their expected arrays.
    #[test]
    fn reads_the_real_layout_fixtures() {
        let dense = |name: &str| {
            let s = crate::npy::read_stack(&real(name)).unwrap();
            EventList::from_stack(&s, 1.0).unwrap()
        };
        let coo = |name: &str, shape: (usize, usize), n_frames: usize| {
            let (sh, v) = crate::npy::read_f64(&real(name)).unwrap();
            assert_eq!(sh[1], 4);
            let r: Vec<[u32; 4]> = v
                .chunks_exact(4)
                .map(|x| [x[0] as u32, x[1] as u32, x[2] as u32, x[3] as u32])
                .collect();
            let idx: Vec<u32> = r.iter().map(|x| x[1] * shape.1 as u32 + x[2]).collect();
            let fr: Vec<u32> = r.iter().map(|x| x[0]).collect();
            let ct: Vec<u32> = r.iter().map(|x| x[3]).collect();
            events_from_triplets(shape, n_frames, 1.0, &idx, &fr, &ct, name).unwrap()
        };
        let opts = |shape| InputOptions {
            detector_shape: shape,
            max_block_events: 97, // several blocks per file
            ..InputOptions::default()
        };
        let cases: Vec<(&str, InputKind, InputOptions, EventList)> = vec![
            (
                "rigaku500k.bin",
                InputKind::Rigaku,
                InputOptions::default(),
                coo("rigaku500k_expected_coo.npy", (512, 1024), 8),
            ),
            (
                "rigaku3m.bin.000",
                InputKind::Rigaku,
                opts(None),
                coo("rigaku3m_expected_coo.npy", (1676, 2100), 6),
            ),
            (
                "imm_dense.imm",
                InputKind::Imm,
                InputOptions::default(),
                dense("imm_dense_expected.npy"),
            ),
            (
                "imm_sparse.imm",
                InputKind::Imm,
                opts(None),
                dense("imm_sparse_expected.npy"),
            ),
            (
                "esrf_id10_eiger4m_v2_sparse_frame_0_00000.h5",
                InputKind::EsrfSparse,
                opts(Some((32, 48))),
                dense("esrf_id10_sparse_expected.npy"),
            ),
            (
                "aps_triplets.h5",
                InputKind::TripletsH5,
                opts(Some((16, 24))),
                dense("aps_triplets_expected.npy"),
            ),
            (
                "aps_triplets_ifc.npy",
                InputKind::TripletsNpy,
                opts(Some((16, 24))),
                dense("aps_triplets_expected.npy"),
            ),
            (
                "eiger_bslz4_u32_master.h5",
                InputKind::Eiger,
                InputOptions::default(),
                dense("eiger_bslz4_u32_expected.npy"),
            ),
            (
                "eiger_lz4_u16_master.h5",
                InputKind::Eiger,
                InputOptions::default(),
                dense("eiger_lz4_u16_expected.npy"),
            ),
            (
                "eiger_deflate_u32_master.h5",
                InputKind::Eiger,
                InputOptions::default(),
                dense("eiger_deflate_u32_expected.npy"),
            ),
        ];
        for (name, kind, o, want) in cases {
            assert_eq!(detect(&real(name)).unwrap(), kind, "{name}");
            let got = as_events(open_input(&real(name), &o).unwrap());
            assert!(
                same(&got, &want),
                "{name}: decoded photons differ from the expected array"
            );
        }
        // The Eiger master's frame time (f32 in the file) and pixel mask.
        let f = EigerFrames::open(&real("eiger_bslz4_u32_master.h5")).unwrap();
        assert!((f.frame_time_s().unwrap() - 0.001).abs() < 1e-9);
        let valid = f.pixel_mask().unwrap().unwrap();
        assert_eq!(valid.iter().filter(|v| !**v).count(), 306);
        // A declared shape other than the detector's is refused (before pass 1).
        let e = open_input(&real("imm_sparse.imm"), &opts(Some((30, 20)))).unwrap_err();
        assert!(e.to_string().contains("frame shape in the file"), "{e}");
        // Shape-less formats say what they need.
        let e = open_input(&real("aps_triplets.h5"), &InputOptions::default()).unwrap_err();
        assert!(e.to_string().contains("frame shape"), "{e}");
    }
}
