//! The `correlate` pipeline: photons on disk (or in memory) → g2 (and two-time maps) in an APS
//! results file.
//!
//! [`run`] is `xpcs-twin correlate`: it opens the files, builds the q-partition, applies the
//! detector's own mask, correlates and writes the outputs. [`correlate`] is the part that needs
//! no file: photons from any [`Photons`] (a frame source, a borrowed array, an event source or
//! an event list) over a [`QPartition`] → [`Correlated`]; [`results`] turns that into the APS
//! results layout.

use super::Progress;
use crate::correlate::{
    two_time_stack, two_time_view, BinStatus, DenseMultiTau, Estimator, EventCorrelator, G2Result,
    IntensityStats, LagSchedule, TwoTimeResult,
};
use crate::data::geometry::{bin_axes, DetectorGeometry};
use crate::data::{
    check_event_counts, BinAxis, CheckedCounts, CountDtype, Counts, EventList, FrameSelection,
    FrameSource, FrameStack, QPartition, ResolvedSelection, SelectedFrames, StackView,
};
use crate::io::assemble::{assemble, RunMeta};
use crate::io::atomic::{check_outputs, write_json};
use crate::io::events::EventSource;
use crate::io::input::{
    input_kind, open_input, scan_detector_mask, DetectorMask, Input, InputOptions,
};
use crate::io::results::{write_results, Geometry, Node, ResultsFile, Tree};
use crate::io::{maps, npy::write_npy};
use crate::{Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The files and settings of `xpcs-twin correlate` (one field per command-line flag; see the
/// command's help for each).
///
/// Memory (peak resident, measured with /usr/bin/time -v on 256 × 256 px, 4 q-bins): the dense
/// multi-tau path streams the frames; it holds about 30 MB plus 130 bytes per pixel per
/// multi-tau level, and the levels grow with the frames (log2(frames / num-bufs) + 1): 79 MB
/// for 250 frames, 95 MB for 1000, 112 MB for 4000 (at 512 × 512 px: ~30 MB more per level).
/// `twotime` adds the stack as u32 (4 bytes per pixel-frame) and the maps (8 to 16 bytes per
/// cell of the n × n map per q-bin, n = frames / bin-frames): 0.40 GB for 1000 frames (0.49 GB
/// with 16 q-bins), 1.39 GB for 4000 frames (2000 × 2000 maps). `sparse` holds the photons
/// (12 bytes per nonzero pixel-frame); an event file is read 65 536 pixels at a time (its
/// two-time maps, if asked, are held whole).
#[derive(Debug, Clone)]
pub struct CorrelateFiles {
    /// Photons: a frame file or a sparse photon file (`--help` lists the formats).
    pub frames: PathBuf,
    /// An HDF5 dataset path or an NPZ member name inside `frames`.
    pub dataset: Option<String>,
    /// Dynamic q-bin labels: an APS / pySimpleMask q-map HDF5, or a label map.
    pub qmap: PathBuf,
    /// Static (finer) label map (default: the q-map file's static map, else the dynamic map).
    pub static_qmap: Option<PathBuf>,
    /// Mask (nonzero = valid pixel; default: the q-map's mask, else labels > 0).
    pub mask: Option<PathBuf>,
    /// Do not mask the detector's invalid pixels.
    pub no_detector_mask: bool,
    /// Frame period (s), when the file does not store it (or to override it).
    pub frame_time: Option<f64>,
    /// Which raw frames to correlate (begin, end, stride, avg).
    pub selection: FrameSelection,
    /// Results file to write.
    pub out: PathBuf,
    /// Also write a JSON summary here.
    pub json: Option<PathBuf>,
    /// Also export NPY arrays into this folder.
    pub npy_dir: Option<PathBuf>,
    /// Also compute the two-time maps.
    pub twotime: bool,
    /// Raw frames summed into one two-time frame (default: map at most 2000 × 2000).
    pub twotime_bin_frames: Option<usize>,
    /// Use the event (sparse) correlator.
    pub sparse: bool,
    /// g2 estimator by name: symmetric, symmetric-static or frame.
    pub estimator: String,
    /// Multi-tau buffers per level.
    pub num_bufs: usize,
    /// Bin q values (Å⁻¹), one per dynamic bin: .npy or text/CSV.
    pub q_values: Option<PathBuf>,
    /// Incident energy (keV), for q from the geometry.
    pub energy_kev: Option<f64>,
    /// Sample–detector distance (m), for q from the geometry.
    pub distance_m: Option<f64>,
    /// Pixel size (µm), for q from the geometry.
    pub pixel_size_um: Option<f64>,
    /// Direct-beam position (row, col) in pixels, for q from the geometry.
    pub beam_center_px: Option<Vec<f64>>,
    /// Replace existing output files (inputs are never overwritten).
    pub force: bool,
}

/// The estimator named on the command line.
pub fn parse_estimator(name: &str) -> Result<Estimator> {
    match name {
        "symmetric" => Ok(Estimator::Symmetric),
        "symmetric-static" => Ok(Estimator::SymmetricStatic),
        "frame" => Ok(Estimator::Frame),
        other => Err(Error::out_of_range(
            "command line",
            "--estimator",
            other,
            "symmetric, symmetric-static or frame",
        )),
    }
}

/// The scattering geometry from the command line's four values (energy keV, distance m, pixel
/// size µm, beam centre row, col in pixels): all four, or none.
pub fn geometry(
    energy_kev: Option<f64>,
    distance_m: Option<f64>,
    pixel_size_um: Option<f64>,
    beam_center_px: Option<&[f64]>,
) -> Result<Option<DetectorGeometry>> {
    let given = [
        energy_kev.is_some(),
        distance_m.is_some(),
        pixel_size_um.is_some(),
        beam_center_px.is_some(),
    ];
    if given.iter().all(|g| !g) {
        return Ok(None);
    }
    let (Some(e), Some(d), Some(px), Some(bc)) =
        (energy_kev, distance_m, pixel_size_um, beam_center_px)
    else {
        return Err(Error::invalid(
            "command line",
            "q from geometry needs all of --energy-kev, --distance-m, --pixel-size-um and \
             --beam-center-px ROW,COL",
        ));
    };
    if bc.len() != 2 {
        return Err(Error::invalid(
            "command line",
            format!(
                "--beam-center-px takes ROW,COL (2 numbers, pixels), got {}",
                bc.len()
            ),
        ));
    }
    let g = DetectorGeometry {
        energy_kev: e,
        distance_m: d,
        pixel_size_m: px * 1e-6,
        beam_center_row_px: bc[0],
        beam_center_col_px: bc[1],
    };
    g.validate("command line")?;
    Ok(Some(g))
}

/// Where the q of the bins comes from (at most one source): the q-map file's bin centres
/// (already in `part`), the geometry, or one q value per dynamic bin (`q_values`, named by its
/// origin in errors). Returns the partition with its q and the source's name: "q-map file",
/// "geometry", "--q-values" or "unknown".
pub fn with_q(
    mut part: QPartition,
    geo: Option<&DetectorGeometry>,
    q_values: Option<(&[f64], &str)>,
) -> Result<(QPartition, &'static str)> {
    let file_q = part
        .dynamic_axes()
        .iter()
        .any(|b| b.q_inv_angstrom.is_finite());
    let sources = [file_q, geo.is_some(), q_values.is_some()];
    if sources.iter().filter(|&&x| x).count() > 1 {
        return Err(Error::invalid(
            "command line",
            "q comes from one source: the q-map file's bin centres, the geometry flags or \
             --q-values (more than one given)",
        ));
    }
    let mut source = if file_q { "q-map file" } else { "unknown" };
    if let Some(g) = geo {
        let dax = bin_axes(part.dynamic(), part.mask(), g);
        let sax = bin_axes(part.static_map(), part.mask(), g);
        part = part.with_axes(dax, sax)?;
        source = "geometry";
    }
    if let Some((q, origin)) = q_values {
        if q.len() != part.n_bins() {
            return Err(Error::ShapeMismatch {
                origin: origin.into(),
                what: "q values vs dynamic bins".into(),
                expected: vec![part.n_bins()],
                got: vec![q.len()],
            });
        }
        let dax: Vec<BinAxis> = q
            .iter()
            .map(|&q| BinAxis {
                q_inv_angstrom: q,
                phi_deg: 0.0,
            })
            .collect();
        // The static bins' q is known only when they are the dynamic ones.
        let sax = if part.static_map() == part.dynamic() {
            dax.clone()
        } else {
            part.static_axes().to_vec()
        };
        part = part.with_axes(dax, sax)?;
        source = "--q-values";
    }
    Ok((part, source))
}

impl CorrelateFiles {
    /// The scattering geometry from the four flags (all, or none).
    fn geometry(&self) -> Result<Option<DetectorGeometry>> {
        geometry(
            self.energy_kev,
            self.distance_m,
            self.pixel_size_um,
            self.beam_center_px.as_deref(),
        )
    }

    /// The q-partition: labels (and q, if the q-map file has it) from --qmap, static map and
    /// mask, then q from the geometry or --q-values when given.
    fn read_partition(
        &self,
        shape: (usize, usize),
        geo: Option<&DetectorGeometry>,
    ) -> Result<(QPartition, &'static str)> {
        let is_qmap_h5 = self.is_qmap_h5()?;
        let part = if is_qmap_h5 && self.static_qmap.is_none() {
            let p = maps::read_qmap_h5(&self.qmap, shape)?;
            match &self.mask {
                Some(m) => {
                    let (r, c, v) = maps::read_mask(m, None)?;
                    if (r, c) != shape {
                        return Err(Error::ShapeMismatch {
                            origin: m.display().to_string(),
                            what: "mask vs detector frame (rows, cols)".into(),
                            expected: vec![shape.0, shape.1],
                            got: vec![r, c],
                        });
                    }
                    maps::restrict_mask(&p, &v, &self.qmap.display().to_string())?
                }
                None => p,
            }
        } else {
            maps::read_partition(
                shape,
                (&self.qmap, None),
                self.static_qmap.as_deref().map(|p| (p, None)),
                self.mask.as_deref().map(|p| (p, None)),
            )?
        };
        let q = match &self.q_values {
            Some(qf) => Some((maps::read_q_values(qf)?, qf.display().to_string())),
            None => None,
        };
        with_q(
            part,
            geo,
            q.as_ref().map(|(v, o)| (v.as_slice(), o.as_str())),
        )
    }

    /// Whether --qmap is an APS / pySimpleMask q-map HDF5 file (not a plain label map).
    fn is_qmap_h5(&self) -> Result<bool> {
        Ok(!matches!(
            self.qmap
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("npy" | "npz")
        ) && maps::qmap_group(&self.qmap)?.is_some())
    }

    /// The detector's frame shape (rows, cols): the shape of the q-map's dynamic labels.
    fn qmap_shape(&self) -> Result<(usize, usize)> {
        let name = match maps::qmap_group(&self.qmap) {
            Ok(Some(g)) if self.is_qmap_h5()? => Some(format!("{g}/dynamic_roi_map")),
            _ => None,
        };
        Ok(maps::read_label_map(&self.qmap, name.as_deref())?.shape())
    }
}

/// One q-bin of the JSON summary.
#[derive(Serialize)]
struct BinSummary {
    label: usize,
    /// null when q is unknown.
    q_inv_angstrom: Option<f64>,
    n_pixels: u64,
    status: BinStatus,
    lag_frames: Vec<u64>,
    delay_s: Vec<f64>,
    g2: Vec<f64>,
    g2_err: Vec<f64>,
    twotime_key: Option<String>,
}

/// The JSON summary (`--json`).
#[derive(Serialize)]
struct Summary {
    frames: String,
    qmap: String,
    results: String,
    /// Time between correlated frames (s): raw frame time × stride × avg.
    frame_time_s: f64,
    raw_frame_time_s: f64,
    /// begin, end, stride, avg (raw frames).
    frames_used: [usize; 4],
    n_frames: usize,
    estimator: &'static str,
    schedule: String,
    correlator: &'static str,
    twotime_bin_frames: Option<usize>,
    /// Where q comes from: "q-map file", "geometry", "--q-values" or "unknown".
    q_source: &'static str,
    detector_mask: Option<DetectorMaskSummary>,
    bins: Vec<BinSummary>,
}

/// What the detector's own mask removed (the results file's `/xpcs_twin/detector_mask` and
/// the JSON summary's `detector_mask`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorMaskSummary {
    /// Pixels masked in all.
    pub n_masked: usize,
    /// Pixels flagged by the file's pixel mask.
    pub n_pixel_mask: usize,
    /// Further pixels that held the overflow value or exceeded the count cutoff.
    pub n_overflow: usize,
    /// The overflow value used.
    pub overflow_value: u32,
    /// The count cutoff used, if any.
    pub count_cutoff: Option<u64>,
    /// Where the markers came from.
    pub source: String,
}

impl From<&DetectorMask> for DetectorMaskSummary {
    fn from(m: &DetectorMask) -> Self {
        DetectorMaskSummary {
            n_masked: m.n_masked(),
            n_pixel_mask: m.n_pixel_mask,
            n_overflow: m.n_overflow,
            overflow_value: m.overflow_value,
            count_cutoff: m.count_cutoff,
            source: m.source.clone(),
        }
    }
}

/// Reads every frame into memory (u32), with a progress bar.
/// Bytes of u32 frames read in one batch (64 frames of 512 × 512).
const READ_BATCH_BYTES: usize = 64 << 20;

fn read_all(src: &mut dyn FrameSource, b: &dyn Progress) -> Result<FrameStack> {
    b.start("read", src.n_frames() as u64, "frames");
    let (r, c) = src.frame_shape();
    let (n, n_pix) = (src.n_frames(), r * c);
    let mut stack = Gathered::new(n * n_pix);
    // A source that lends its stored words (a mapped `.npy`) is copied as it lies (u16 words
    // with a memory copy); else batches of frames (parallel decoding where the reader can).
    let batch = (READ_BATCH_BYTES / (4 * n_pix).max(1)).clamp(1, n.max(1));
    let lent = src.lend_frames(batch, &mut |v: &StackView<'_>| {
        match v.counts() {
            Counts::U8(w) => stack.push_narrow(w),
            Counts::U16(w) => stack.push_narrow(w),
            Counts::U32(w) => stack.push_wide(w),
        }
        b.inc(v.n_frames() as u64);
        Ok(())
    });
    match lent {
        Some(r) => r?,
        None => {
            let mut buf = vec![0u32; batch * n_pix];
            let mut t = 0;
            while t < n {
                let want = batch.min(n - t);
                let k = src.read_frames(&mut buf[..want * n_pix])?;
                if k == 0 {
                    return Err(Error::invalid("frames", format!("ended after {t} frames")));
                }
                stack.push_wide(&buf[..k * n_pix]);
                t += k;
                b.inc(k as u64);
            }
        }
    }
    b.finish();
    stack.into_stack(n, r, c)
}

/// Counts gathered into one stack, kept as u16 while every count fits (half the memory of
/// u32), widened once if a larger count comes.
struct Gathered {
    narrow: Vec<u16>,
    wide: Option<Vec<u32>>,
    capacity: usize,
}

impl Gathered {
    /// Room for `capacity` counts.
    fn new(capacity: usize) -> Self {
        Gathered {
            narrow: Vec::with_capacity(capacity),
            wide: None,
            capacity,
        }
    }

    /// Appends counts that fit u16 (u8 or u16 words).
    fn push_narrow<W: Copy + Into<u16> + Into<u32>>(&mut self, got: &[W]) {
        match &mut self.wide {
            Some(w) => w.extend(got.iter().map(|&x| -> u32 { x.into() })),
            None => self.narrow.extend(got.iter().map(|&x| -> u16 { x.into() })),
        }
    }

    /// Appends u32 counts (narrowed while every count so far fits u16).
    fn push_wide(&mut self, got: &[u32]) {
        match &mut self.wide {
            Some(w) => w.extend_from_slice(got),
            None if got.iter().fold(0, |m, &x| m.max(x)) <= u32::from(u16::MAX) => {
                self.narrow.extend(got.iter().map(|&x| x as u16));
            }
            None => {
                let mut w: Vec<u32> = Vec::with_capacity(self.capacity);
                w.extend(self.narrow.drain(..).map(u32::from));
                w.extend_from_slice(got);
                self.narrow = Vec::new();
                self.wide = Some(w);
            }
        }
    }

    /// The stack of `n` frames of `rows × cols`.
    fn into_stack(self, n: usize, rows: usize, cols: usize) -> Result<FrameStack> {
        match self.wide {
            Some(w) => FrameStack::from_u32(n, rows, cols, w),
            None => FrameStack::from_u16(n, rows, cols, self.narrow),
        }
    }
}

/// The correlator settings of `correlate` (the command line's and the Python package's).
#[derive(Debug, Clone)]
pub struct CorrelateOptions {
    /// g2 estimator.
    pub estimator: Estimator,
    /// Multi-tau buffers per level (lags per level; an even number ≥ 2).
    pub num_bufs: usize,
    /// Also compute the two-time maps C(t1, t2) of every q-bin.
    pub twotime: bool,
    /// Raw frames summed into one two-time frame (None: the smallest that keeps the map at
    /// most 2000 × 2000).
    pub twotime_bin_frames: Option<usize>,
    /// Use the event (sparse) correlator (always for events).
    pub sparse: bool,
}

impl CorrelateOptions {
    /// Checked options from the command line's values (`--estimator` by name, `--num-bufs`).
    pub fn new(
        estimator: &str,
        num_bufs: usize,
        twotime: bool,
        twotime_bin_frames: Option<usize>,
        sparse: bool,
    ) -> Result<Self> {
        let estimator = parse_estimator(estimator)?;
        if num_bufs < 2 || num_bufs % 2 != 0 {
            return Err(Error::out_of_range(
                "command line",
                "--num-bufs",
                num_bufs,
                "an even number ≥ 2",
            ));
        }
        Ok(CorrelateOptions {
            estimator,
            num_bufs,
            twotime,
            twotime_bin_frames,
            sparse,
        })
    }

    /// Frames per two-time frame for `n_frames` correlated frames, checked when two-time is
    /// asked.
    pub fn bin_frames(&self, n_frames: usize) -> Result<usize> {
        let bin_frames = self
            .twotime_bin_frames
            .unwrap_or_else(|| n_frames.div_ceil(2000).max(1));
        if self.twotime && (bin_frames == 0 || bin_frames > n_frames / 2) {
            return Err(Error::out_of_range(
                "command line",
                "--twotime-bin-frames",
                bin_frames,
                format!("1 to {} (half the frames)", n_frames / 2),
            ));
        }
        Ok(bin_frames)
    }
}

/// Photons to correlate.
pub enum Photons<'a> {
    /// Frames read one at a time (a file, an iterator): multi-tau streams them 64 at a time.
    Source(&'a mut dyn FrameSource),
    /// Frames in memory, borrowed (an array, a memory-mapped file): not copied for multi-tau
    /// or two-time when every frame is used as it is.
    View(StackView<'a>),
    /// Photons by pixel block (an event file, a sparse detector file): memory ∝ one block.
    EventSource(&'a mut dyn EventSource),
    /// Events in memory.
    Events(&'a EventList),
}

impl Photons<'_> {
    /// Frame shape (rows, cols) and number of (raw) frames.
    pub fn shape(&self) -> ((usize, usize), usize) {
        match self {
            Photons::Source(s) => (s.frame_shape(), s.n_frames()),
            Photons::View(v) => (v.frame_shape(), v.n_frames()),
            Photons::EventSource(s) => (s.frame_shape(), s.n_frames()),
            Photons::Events(e) => (e.frame_shape(), e.n_frames()),
        }
    }

    /// True for photons given as events (correlated whole, by the event correlator).
    pub fn is_events(&self) -> bool {
        matches!(self, Photons::EventSource(_) | Photons::Events(_))
    }
}

/// What [`correlate`] computed.
#[derive(Debug, Clone)]
pub struct Correlated {
    /// Multi-tau g2, g2_err and jackknife replicates (lags without any pair removed).
    pub g2: G2Result,
    /// Mean intensities (per bin per frame, per pixel, per static bin).
    pub intensity: IntensityStats,
    /// Two-time maps, when asked.
    pub two_time: Option<TwoTimeResult>,
    /// Time between correlated frames (s): raw frame time × stride × avg.
    pub frame_time_s: f64,
    /// The raw frame period (s).
    pub raw_frame_time_s: f64,
    /// The raw frames used.
    pub selection: ResolvedSelection,
    /// Frames correlated (after the selection).
    pub n_frames: usize,
    /// "dense" or "event".
    pub correlator: &'static str,
    /// Frames per two-time frame, when two-time maps were computed.
    pub twotime_bin_frames: Option<usize>,
}

/// Correlates `photons` over the q-bins of `part`: multi-tau g2 (and two-time maps when
/// asked), on the raw frames `selection` keeps (frame inputs only; events are correlated
/// whole). `raw_frame_time_s` is the period of the raw frames; `origin` names the input in
/// error messages.
pub fn correlate(
    photons: Photons<'_>,
    origin: &str,
    part: &QPartition,
    raw_frame_time_s: f64,
    selection: &FrameSelection,
    opts: &CorrelateOptions,
    progress: &dyn Progress,
) -> Result<Correlated> {
    crate::check::check_frame_time("command line", "--frame-time", raw_frame_time_s)?;
    let (shape, n_raw) = photons.shape();
    if photons.is_events() && !selection.is_all() {
        return Err(Error::invalid(
            origin,
            "--begin/--end/--stride/--avg select frames of a frame input; events are \
             correlated whole",
        ));
    }
    let sel = selection.resolve(n_raw, origin)?;
    let n_frames = sel.n_out;
    // The correlators see one frame per stride × avg raw frames.
    let frame_time_s = raw_frame_time_s * sel.frames_per_output() as f64;
    if n_frames < 2 {
        return Err(Error::out_of_range(
            origin,
            "frames (after selection)",
            n_frames,
            "≥ 2",
        ));
    }
    if shape != part.shape() {
        return Err(Error::ShapeMismatch {
            origin: origin.into(),
            what: "frame shape vs label map (rows, cols)".into(),
            expected: vec![part.shape().0, part.shape().1],
            got: vec![shape.0, shape.1],
        });
    }
    let sched = LagSchedule::multi_tau(n_frames, opts.num_bufs)?;
    let bin_frames = opts.bin_frames(n_frames)?;
    let estimator = opts.estimator;
    let event_correlator = || -> Result<EventCorrelator> {
        let ev = EventCorrelator::new(part, &sched, n_frames);
        if opts.twotime {
            return ev.with_two_time(part, &[], bin_frames);
        }
        Ok(ev)
    };
    let sparse = opts.sparse || photons.is_events();
    let dense = |src: &mut dyn FrameSource| -> Result<(G2Result, IntensityStats, Option<_>)> {
        if opts.sparse && selection.is_all() {
            // Every raw frame as it is: the reader's own scan to events (parallel over
            // frames for a plain `.npy`), then the same count rule as the frame path.
            progress.start("read events", 1, "scans");
            let events = src.read_events(frame_time_s)?;
            progress.finish();
            check_event_counts(&events, part.mask(), origin)?;
            let mut ev = event_correlator()?;
            ev.push_events(&events)?;
            return Ok((ev.finish(estimator)?, ev.intensity(), ev.two_time()));
        }
        let mut selected = SelectedFrames::new(src, sel)?;
        let mut checked = CheckedCounts::new(&mut selected, part.mask(), origin);
        let src: &mut dyn FrameSource = &mut checked;
        if opts.sparse {
            let b = progress;
            b.start("read events", n_frames as u64, "frames");
            let mut counting = CountingSource { inner: src, bar: b };
            let events = EventList::from_source(&mut counting, frame_time_s)?;
            b.finish();
            let mut ev = event_correlator()?;
            ev.push_events(&events)?;
            Ok((ev.finish(estimator)?, ev.intensity(), ev.two_time()))
        } else if opts.twotime {
            let stack = read_all(src, progress)?;
            let mut mt = DenseMultiTau::new(part, &sched);
            mt.push_stack(&stack, 0..n_frames)?;
            let tt = two_time_stack(&stack, part, &[], bin_frames)?;
            Ok((mt.finish(estimator)?, mt.intensity(), Some(tt)))
        } else {
            let b = progress;
            b.start("correlate", n_frames as u64, "frames");
            let mut mt = DenseMultiTau::new(part, &sched);
            let mut counting = CountingSource { inner: src, bar: b };
            mt.push_source(&mut counting, 64)?;
            b.finish();
            Ok((mt.finish(estimator)?, mt.intensity(), None))
        }
    };
    let (g2, intensity, two_time): (G2Result, _, Option<TwoTimeResult>) = match photons {
        Photons::EventSource(src) => {
            // Pixel blocks straight from the file: memory ∝ one block, not the whole list.
            let mut ev = event_correlator()?;
            progress.start("correlate events", (shape.0 * shape.1) as u64, "pixels");
            // The source's own way in: sparse beamline records are bucketed and correlated
            // in parallel while in cache; an event file goes block by block.
            src.correlate_into(&mut ev)?;
            progress.inc((shape.0 * shape.1) as u64);
            progress.finish();
            (ev.finish(estimator)?, ev.intensity(), ev.two_time())
        }
        Photons::Events(events) => {
            let mut ev = event_correlator()?;
            ev.push_events(events)?;
            (ev.finish(estimator)?, ev.intensity(), ev.two_time())
        }
        Photons::Source(src) => dense(src)?,
        Photons::View(view) if opts.sparse || !selection.is_all() => dense(&mut view.frames())?,
        Photons::View(view) => {
            if view.dtype() == CountDtype::U32 {
                // Counts above the correlators' range are refused, as for a file: one pass
                // over the borrowed frames, no copy.
                let mut frames = view.frames();
                let mut checked = CheckedCounts::new(&mut frames, part.mask(), origin);
                let mut buf = vec![0u32; shape.0 * shape.1];
                while checked.read_next(&mut buf)? {}
            }
            let mut mt = DenseMultiTau::new(part, &sched);
            mt.push_view(&view, 0..n_frames)?;
            let tt = if opts.twotime {
                Some(two_time_view(&view, part, &[], bin_frames)?)
            } else {
                None
            };
            (mt.finish(estimator)?, mt.intensity(), tt)
        }
    };
    Ok(Correlated {
        g2: g2.without_empty_lags(),
        intensity,
        two_time,
        frame_time_s,
        raw_frame_time_s,
        selection: sel,
        n_frames,
        correlator: if sparse { "event" } else { "dense" },
        twotime_bin_frames: opts.twotime.then_some(bin_frames),
    })
}

/// What a results file records besides the correlations: where the data came from, how q
/// was found, the geometry (if known) and what the detector mask removed.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// The frames' file (or a description of the data).
    pub frames: String,
    /// The label map's file (or a description).
    pub qmap: String,
    /// The input's kind (e.g. "NPY stack"; "array" for data in memory).
    pub input_kind: String,
    /// Where q comes from: "q-map file", "geometry", "--q-values" or "unknown".
    pub q_source: String,
    /// The scattering geometry, when known (NaN in the file otherwise).
    pub geometry: Option<DetectorGeometry>,
    /// What the detector's own mask removed, when applied.
    pub detector_mask: Option<DetectorMaskSummary>,
}

/// The APS-layout results of a correlation over `part`, ready for [`write_results`].
pub fn results(c: &Correlated, part: &QPartition, meta: &Metadata) -> ResultsFile {
    let mut extra = Tree::new();
    extra.insert("frames_file".into(), Node::Text(meta.frames.clone()));
    extra.insert("qmap_file".into(), Node::Text(meta.qmap.clone()));
    extra.insert("input_kind".into(), Node::Text(meta.input_kind.clone()));
    extra.insert("correlator".into(), Node::Text(c.correlator.into()));
    extra.insert("q_source".into(), Node::Text(meta.q_source.clone()));
    if let Some(m) = &meta.detector_mask {
        let mut t = Tree::new();
        t.insert("n_masked".into(), Node::scalar(m.n_masked as f64));
        t.insert("n_pixel_mask".into(), Node::scalar(m.n_pixel_mask as f64));
        t.insert("n_overflow".into(), Node::scalar(m.n_overflow as f64));
        t.insert(
            "overflow_value".into(),
            Node::scalar(f64::from(m.overflow_value)),
        );
        if let Some(c) = m.count_cutoff {
            t.insert("count_cutoff".into(), Node::scalar(c as f64));
        }
        t.insert("source".into(), Node::Text(m.source.clone()));
        extra.insert("detector_mask".into(), Node::Group(t));
    }
    let nan = f64::NAN;
    let geo = meta.geometry;
    let run = RunMeta {
        start_time: "unknown".into(),
        frame_time_s: c.raw_frame_time_s,
        count_time_s: c.raw_frame_time_s,
        energy_kev: geo.map_or(nan, |g| g.energy_kev),
        geometry: Geometry {
            beam_center_x_px: geo.map_or(nan, |g| g.beam_center_col_px),
            beam_center_y_px: geo.map_or(nan, |g| g.beam_center_row_px),
            pixel_size_m: geo.map_or(nan, |g| g.pixel_size_m),
            detector_distance_m: geo.map_or(nan, |g| g.distance_m),
        },
        seed: 0,
        frames: c.selection,
        extra,
    };
    assemble(run, part, Some(&c.g2), &c.intensity, c.two_time.as_ref())
}

/// What [`run`] computed and wrote.
pub struct CorrelateOutcome {
    /// The correlations.
    pub correlated: Correlated,
    /// The q-partition used (after the detector mask), with q when known.
    pub partition: QPartition,
    /// The results file written.
    pub written: PathBuf,
}

/// Runs the `correlate` pipeline: reads, correlates, writes the results file (and the JSON
/// summary and NPY exports when asked). What the detector mask removed goes to
/// [`Progress::note`].
pub fn run(a: &CorrelateFiles, progress: &dyn Progress) -> Result<CorrelateOutcome> {
    let opts = CorrelateOptions::new(
        &a.estimator,
        a.num_bufs,
        a.twotime,
        a.twotime_bin_frames,
        a.sparse,
    )?;
    let geo = a.geometry()?;
    let selection = a.selection;
    let origin = a.frames.display().to_string();
    // The q-map's shape is the detector's: formats without a shape take it, sparse formats
    // with one are checked against it before allocating per-pixel state.
    let in_opts = InputOptions {
        detector_shape: Some(a.qmap_shape()?),
        dataset: a.dataset.clone(),
        ..InputOptions::default()
    };
    let kind = input_kind(&a.frames, &in_opts)?;
    let mut input = open_input(&a.frames, &in_opts)?;
    let raw_frame_time_s = match (a.frame_time, input.frame_time_s()) {
        (Some(f), _) => f,
        (None, Some(f)) => f,
        (None, None) => {
            return Err(Error::invalid(
                &origin,
                "no frame time in the file: give --frame-time (s)",
            ))
        }
    };
    crate::check::check_frame_time("command line", "--frame-time", raw_frame_time_s)?;
    let shape = input.frame_shape();
    let is_events = matches!(input, Input::Events(_));
    if is_events && !selection.is_all() {
        return Err(Error::invalid(
            &origin,
            format!(
                "--begin/--end/--stride/--avg select frames of a frame file; a {} is \
                 correlated whole",
                kind.name()
            ),
        ));
    }
    let sel = selection.resolve(input.n_frames(), &origin)?;
    let n_frames = sel.n_out;
    if n_frames < 2 {
        return Err(Error::out_of_range(
            &origin,
            "frames (after selection)",
            n_frames,
            "≥ 2",
        ));
    }
    let (mut part, q_source) = a.read_partition(shape, geo.as_ref())?;
    // Refuse bad outputs before any work: never over an input, never over a file without --force.
    let mut inputs: Vec<&Path> = vec![&a.frames, &a.qmap];
    inputs.extend(a.static_qmap.as_deref());
    inputs.extend(a.mask.as_deref());
    inputs.extend(a.q_values.as_deref());
    // Every output at once: none an input, none a device, no two the same file.
    let mut outputs: Vec<PathBuf> = vec![a.out.clone()];
    outputs.extend(a.json.clone());
    if let Some(dir) = &a.npy_dir {
        outputs.extend(npy_names(&part, a.twotime).iter().map(|n| dir.join(n)));
    }
    let outputs: Vec<&Path> = outputs.iter().map(PathBuf::as_path).collect();
    check_outputs(&outputs, &inputs, a.force)?;
    // The detector's own mask (frame inputs): one streamed pass over the raw frames used.
    let mut det_mask: Option<DetectorMask> = None;
    if !a.no_detector_mask {
        if let Some(m) = detector_mask(&a.frames, &input, &in_opts, &sel, progress)? {
            part = maps::restrict_mask(&part, &m.valid, &origin)?;
            det_mask = Some(m);
        }
    }
    opts.bin_frames(n_frames)?;

    let photons = match &mut input {
        Input::Events(src) => Photons::EventSource(src.as_mut()),
        Input::Frames { source, .. } => Photons::Source(source.as_mut()),
    };
    let c = correlate(
        photons,
        &origin,
        &part,
        raw_frame_time_s,
        &selection,
        &opts,
        progress,
    )?;
    let det_summary = det_mask.as_ref().map(DetectorMaskSummary::from);
    let meta = Metadata {
        frames: a.frames.display().to_string(),
        qmap: a.qmap.display().to_string(),
        input_kind: kind.name().into(),
        q_source: q_source.into(),
        geometry: geo,
        detector_mask: det_summary.clone(),
    };
    let res = results(&c, &part, &meta);
    let written = write_results(&a.out, &res, a.force)?;

    let g2 = &c.g2;
    let frame_time_s = c.frame_time_s;
    let two_time = c.two_time.as_ref();
    if let Some(dir) = &a.npy_dir {
        export_npy(dir, g2, frame_time_s, two_time, &inputs, a.force)?;
    }
    if let Some(j) = &a.json {
        let delay_s = g2.delay_s(frame_time_s);
        let bins: Vec<BinSummary> = (0..part.n_bins())
            .map(|b| BinSummary {
                label: b + 1,
                q_inv_angstrom: finite(part.dynamic_axes()[b].q_inv_angstrom),
                n_pixels: g2.bin_pixels[b],
                status: g2.bin_status[b],
                lag_frames: g2.lag_frames.clone(),
                delay_s: delay_s.clone(),
                g2: g2.g2.column(b).to_vec(),
                g2_err: g2.g2_err.column(b).to_vec(),
                twotime_key: two_time.and_then(|tt| {
                    tt.bins
                        .iter()
                        .position(|&k| k == b + 1)
                        .map(|_| format!("/xpcs/twotime/correlation_map/c2_{:05}", b + 1))
                }),
            })
            .collect();
        let summary = Summary {
            frames: a.frames.display().to_string(),
            qmap: a.qmap.display().to_string(),
            results: written.display().to_string(),
            frame_time_s,
            raw_frame_time_s,
            frames_used: [sel.begin, sel.end, sel.stride, sel.avg],
            n_frames,
            estimator: opts.estimator.name(),
            schedule: g2.schedule.clone(),
            correlator: c.correlator,
            twotime_bin_frames: c.twotime_bin_frames,
            q_source,
            detector_mask: det_summary,
            bins,
        };
        write_json(j, &summary, &inputs, a.force)?;
    }
    Ok(CorrelateOutcome {
        correlated: c,
        partition: part,
        written,
    })
}

/// The detector's own mask of the frame file `path` (its `input`, opened with `in_opts`): the
/// file's pixel mask and the pixels that overflow in a raw frame `sel` uses, found in one
/// streamed pass over a second reader; None for formats that tell nothing (and for events).
/// What it masked goes to [`Progress::note`].
pub fn detector_mask(
    path: &Path,
    input: &Input,
    in_opts: &InputOptions,
    sel: &ResolvedSelection,
    progress: &dyn Progress,
) -> Result<Option<DetectorMask>> {
    let Some(info) = input.detector().cloned() else {
        return Ok(None);
    };
    let mut scan_input = open_input(path, in_opts)?;
    let Input::Frames { source: src, .. } = &mut scan_input else {
        return Ok(None);
    };
    let raw_sel = ResolvedSelection {
        avg: 1,
        n_out: sel.n_out * sel.avg,
        ..*sel
    };
    progress.start("detector mask", raw_sel.n_out as u64, "frames");
    let mut sel_src = SelectedFrames::new(src.as_mut(), raw_sel)?;
    let mut counting = CountingSource {
        inner: &mut sel_src,
        bar: progress,
    };
    let m = scan_detector_mask(&mut counting, &info)?;
    progress.finish();
    progress.note(&format!("{}: {}", path.display(), m.summary()));
    Ok(Some(m))
}

/// Some(x) when finite: unknown values go to JSON as null.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// The file names `--npy-dir` receives (c2 maps: one per non-empty bin, as two-time
/// processes them).
fn npy_names(part: &QPartition, twotime: bool) -> Vec<String> {
    let mut v: Vec<String> = ["g2.npy", "g2_err.npy", "lag_frames.npy", "delay_s.npy"]
        .map(String::from)
        .to_vec();
    if twotime {
        let sizes = part.dynamic().bin_sizes();
        v.extend(
            (1..=part.n_bins())
                .filter(|&b| sizes.get(b - 1).is_some_and(|&n| n > 0))
                .map(|b| format!("c2_{b:05}.npy")),
        );
    }
    v
}

/// Writes the NPY exports (each file atomically).
pub fn export_npy(
    dir: &Path,
    g2: &G2Result,
    frame_time_s: f64,
    two_time: Option<&TwoTimeResult>,
    inputs: &[&Path],
    force: bool,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let shape = [g2.g2.nrows(), g2.g2.ncols()];
    let flat = |a: &ndarray::Array2<f64>| a.iter().copied().collect::<Vec<f64>>();
    write_npy(&dir.join("g2.npy"), &shape, &flat(&g2.g2), inputs, force)?;
    write_npy(
        &dir.join("g2_err.npy"),
        &shape,
        &flat(&g2.g2_err),
        inputs,
        force,
    )?;
    let n = g2.lag_frames.len();
    write_npy(
        &dir.join("lag_frames.npy"),
        &[n],
        &g2.lag_frames,
        inputs,
        force,
    )?;
    write_npy(
        &dir.join("delay_s.npy"),
        &[n],
        &g2.delay_s(frame_time_s),
        inputs,
        force,
    )?;
    if let Some(tt) = two_time {
        for (i, &b) in tt.bins.iter().enumerate() {
            let c = tt.c2(i);
            let path = dir.join(format!("c2_{b:05}.npy"));
            write_npy(&path, &[c.nrows(), c.ncols()], &flat(&c), inputs, force)?;
        }
    }
    Ok(())
}

/// A compact table: g2 - 1 at a few lags per bin, so a user sees the decay at a glance.
pub fn table(g2: &G2Result, frame_time_s: f64, part: &QPartition) -> String {
    use std::fmt::Write;
    // Writing into a String cannot fail: the fmt::Results are ignored.
    let mut out = String::new();
    let n = g2.lag_frames.len();
    let picks: Vec<usize> = [0usize, 1, n / 4, n / 2, 3 * n / 4, n - 1]
        .into_iter()
        .filter(|&i| i < n)
        .fold(Vec::new(), |mut v, i| {
            if !v.contains(&i) {
                v.push(i);
            }
            v
        });
    let _ = write!(out, "{:>4} {:>10} {:>8} ", "bin", "q (Å⁻¹)", "pixels");
    for &i in &picks {
        let _ = write!(
            out,
            "{:>11}",
            format!("{} s", fmt_delay(g2.lag_frames[i] as f64 * frame_time_s))
        );
    }
    let _ = writeln!(out, "   (g2 - 1 at delay)");
    for b in 0..g2.g2.ncols() {
        let q = part.dynamic_axes()[b].q_inv_angstrom;
        let qs = if q.is_finite() {
            format!("{q:.5}")
        } else {
            "unknown".into()
        };
        let _ = write!(out, "{:>4} {qs:>10} {:>8} ", b + 1, g2.bin_pixels[b]);
        for &i in &picks {
            let v = g2.g2[[i, b]] - 1.0;
            let _ = write!(
                out,
                "{:>11}",
                if v.is_finite() {
                    format!("{v:.4}")
                } else {
                    "—".into()
                }
            );
        }
        if g2.bin_status[b] != BinStatus::Ok {
            let _ = write!(out, "   {:?}", g2.bin_status[b]);
        }
        let _ = writeln!(out);
    }
    out
}

/// A frame source that advances a progress bar.
struct CountingSource<'a> {
    inner: &'a mut dyn FrameSource,
    bar: &'a dyn Progress,
}

impl FrameSource for CountingSource<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> Result<bool> {
        let more = self.inner.read_next(out)?;
        if more {
            self.bar.inc(1);
        }
        Ok(more)
    }
    fn read_frames(&mut self, out: &mut [u32]) -> Result<usize> {
        let k = self.inner.read_frames(out)?;
        self.bar.inc(k as u64);
        Ok(k)
    }
    fn count_bound(&self) -> u32 {
        self.inner.count_bound()
    }
    fn lend_frames(
        &mut self,
        batch: usize,
        f: &mut dyn FnMut(&StackView<'_>) -> Result<()>,
    ) -> Option<Result<()>> {
        let bar = self.bar;
        self.inner.lend_frames(batch, &mut |v: &StackView<'_>| {
            f(v)?;
            bar.inc(v.n_frames() as u64);
            Ok(())
        })
    }
    fn pixel_maxima(&mut self) -> Result<Vec<u32>> {
        let max = self.inner.pixel_maxima()?;
        self.bar.inc(self.inner.n_frames() as u64);
        Ok(max)
    }
}

/// Three significant digits without trailing noise: 0.1, 1.6, 25.6, 409.6 → "0.1", "1.6", ...
fn fmt_delay(s: f64) -> String {
    if s == 0.0 {
        return "0".into();
    }
    let digits = (2 - s.abs().log10().floor() as i32).max(0) as usize;
    let t = format!("{s:.digits$}");
    if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Quiet;

    /// A count above the correlators' range in a kept pixel is refused with the same message
    /// by the frame path and by the event path (whose reader scans the frames to events on
    /// its own, not through the checked frame source).
    #[test]
    fn frame_and_event_paths_refuse_the_same_count() {
        let (t, r, c) = (8usize, 2usize, 3usize);
        let mut data = vec![1u32; t * r * c];
        data[5 * r * c + 4] = crate::data::MAX_COUNT + 7;
        let stack = FrameStack::from_u32(t, r, c, data).unwrap();
        let part = QPartition::from_labels(r, c, vec![1; r * c], "t").unwrap();
        let err = |sparse: bool| {
            let opts = CorrelateOptions::new("symmetric", 4, false, None, sparse).unwrap();
            let mut src = stack.frames();
            correlate(
                Photons::Source(&mut src),
                "stack",
                &part,
                0.1,
                &FrameSelection::default(),
                &opts,
                &Quiet,
            )
            .unwrap_err()
            .to_string()
        };
        let (dense, events) = (err(false), err(true));
        assert_eq!(dense, events);
        assert!(events.contains("frame 5 pixel (row 1, col 1)"), "{events}");
    }
}
