//! `xpcs-twin correlate`: photons on disk → g2 (and two-time maps) in an APS results file.

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::{Path, PathBuf};
use xpcs_twin::correlate::{
    two_time_stack, BinStatus, DenseMultiTau, Estimator, EventCorrelator, G2Result, LagSchedule,
    TwoTimeResult,
};
use xpcs_twin::data::geometry::{bin_axes, DetectorGeometry};
use xpcs_twin::data::{
    BinAxis, CheckedCounts, CountDtype, EventList, FrameSelection, FrameSource, FrameStack,
    QPartition, SelectedFrames,
};
use xpcs_twin::io::assemble::{assemble, RunMeta};
use xpcs_twin::io::atomic::{check_outputs, write_json};
use xpcs_twin::io::input::{
    input_kind, open_input, scan_detector_mask, DetectorMask, Input, InputOptions,
};
use xpcs_twin::io::results::{write_results, Geometry, Node, Tree};
use xpcs_twin::io::{maps, npy::write_npy};
use xpcs_twin::Error;

/// Correlate a stack of photon-counting frames: multi-tau g2 per q-bin (and optionally the
/// two-time maps), written as an APS 8-ID-I results file that XPCS viewers open.
///
/// Memory (peak resident, measured with /usr/bin/time -v on 256 × 256 px, 4 q-bins): the dense
/// multi-tau path streams the frames; it holds about 30 MB plus 130 bytes per pixel per
/// multi-tau level, and the levels grow with the frames (log2(frames / num-bufs) + 1): 79 MB
/// for 250 frames, 95 MB for 1000, 112 MB for 4000 (at 512 × 512 px: ~30 MB more per level).
/// `--twotime` adds the stack as u32 (4 bytes per pixel-frame) and the maps (8 to 16 bytes per
/// cell of the n × n map per q-bin, n = frames / bin-frames): 0.40 GB for 1000 frames (0.49 GB
/// with 16 q-bins), 1.39 GB for 4000 frames (2000 × 2000 maps). `--sparse` holds the photons
/// (12 bytes per nonzero pixel-frame); an event file is read 65 536 pixels at a time (its
/// two-time maps, if asked, are held whole).
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  xpcs-twin correlate examples/speckle_small.npy \
    --qmap examples/speckle_small_labels.npy --frame-time 0.1 \
    --out out/example_results.hdf --twotime"
)]
pub struct CorrelateArgs {
    /// Photons: .npy or .npz (frames × rows × cols, any unsigned integer type; an .npz member
    /// streams), Eiger/NeXus HDF5 (.h5/.hdf/.hdf5/.nxs/.cxi: /entry/data/data, a Dectris master
    /// file with linked data files, /entry/instrument/detector/data, or --dataset; deflate, LZ4,
    /// bitshuffle-LZ4 or none), IMM (.imm), or a sparse photon file that goes straight to the
    /// event correlator (implies --sparse): an xpcs-twin event file (.h5 with /events) or event
    /// .npz (both from `simulate`), Rigaku 64-bit .bin (one module; or NAME.bin.000 for the
    /// 3M's six files), ESRF ID10 sparse .h5 (the first numbered file), APS (index, frame,
    /// count) triplets (.h5, or a (3, N) .npy). Files that do not store the frame shape (ESRF
    /// sparse, triplets) take the q-map's.
    pub frames: PathBuf,
    /// Where the frames are inside FRAMES: an HDF5 dataset path (e.g.
    /// /entry/instrument/detector/data) or an NPZ member name.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Dynamic q-bin labels: an APS / pySimpleMask q-map HDF5 (/qmap or /xpcs/qmap: roi maps,
    /// mask and q, φ bin centres, any integer type), or a label map (.npy, .npz or an HDF5
    /// dataset; 0 = excluded, k ≥ 1 = bin k), rows × cols.
    #[arg(long)]
    pub qmap: PathBuf,
    /// Static (finer) label map for scattering_1d and per-sub-bin normalisation (default: the
    /// q-map file's static map, else the dynamic map).
    #[arg(long)]
    pub static_qmap: Option<PathBuf>,
    /// Mask (.npy/.npz/.h5, nonzero = valid pixel; default: the q-map's mask, else labels > 0),
    /// combined with the detector's own mask.
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Do not mask the detector's invalid pixels (by default: the Eiger/NeXus pixel_mask, any
    /// bit set, and every pixel holding the overflow value 2^n − 1 or exceeding
    /// countrate_correction_count_cutoff in any frame used; reported on stderr and in the
    /// results file).
    #[arg(long)]
    pub no_detector_mask: bool,
    /// Frame period in seconds, 1e-9 to 1e5 (required unless the file stores it, as Eiger
    /// HDF5, xpcs-twin event files and event NPZ do; Rigaku, IMM, ESRF sparse, triplets and
    /// NPY/NPZ stacks do not).
    #[arg(long, allow_negative_numbers = true)]
    pub frame_time: Option<f64>,
    /// First raw frame used (0-based, inclusive), as the APS pipeline's begin_frame (frame
    /// inputs only, as --end, --stride and --avg).
    #[arg(long, default_value_t = 0)]
    pub begin: usize,
    /// One past the last raw frame used (exclusive; default: the end of the file). The span is
    /// rounded down to a multiple of stride × avg.
    #[arg(long)]
    pub end: Option<usize>,
    /// Keep every n-th raw frame from --begin on (stride_frame).
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// Merge n consecutive kept frames into one (avg_frame; summed, which gives boost_corr's
    /// averaged g2 exactly). Delay = lag × frame time × stride × avg.
    #[arg(long, default_value_t = 1)]
    pub avg: usize,
    /// Results file to write (`*_results.hdf` is what the APS viewer lists).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write a JSON summary: per q-bin lag_frames, delay_s, g2, g2_err.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also export NPY arrays into this folder: g2.npy and g2_err.npy (n_lags × n_bins, f64),
    /// lag_frames.npy (u64), delay_s.npy (f64), and c2_NNNNN.npy (n × n, f64) per two-time bin.
    #[arg(long)]
    pub npy_dir: Option<PathBuf>,
    /// Also compute the two-time maps C(t1, t2) of every q-bin (memory: see above; about
    /// 4 bytes per pixel-frame plus 8-16 bytes per map cell per q-bin).
    #[arg(long)]
    pub twotime: bool,
    /// Raw frames summed into one two-time frame (default: the smallest that keeps the map
    /// at most 2000 × 2000).
    #[arg(long)]
    pub twotime_bin_frames: Option<usize>,
    /// Use the event (sparse) correlator: work ∝ photon pairs; best below ~0.1 photon per
    /// pixel per frame. Same numbers as the dense path, bit for bit.
    #[arg(long)]
    pub sparse: bool,
    /// g2 estimator: symmetric (scikit-beam, boost_corr, Xana), symmetric-static (normalised
    /// per static sub-bin, then averaged, as APS), frame (ratio of two-time diagonal sums).
    #[arg(long, default_value = "symmetric")]
    pub estimator: String,
    /// Multi-tau buffers per level (lags per level).
    #[arg(long, default_value_t = 8)]
    pub num_bufs: usize,
    /// Bin q values (Å⁻¹), one per dynamic bin in label order: .npy or text/CSV.
    #[arg(long)]
    pub q_values: Option<PathBuf>,
    /// Incident energy (keV). With --distance-m, --pixel-size-um and --beam-center-px: q of
    /// every pixel, then of every bin (mean over its pixels).
    #[arg(long)]
    pub energy_kev: Option<f64>,
    /// Sample–detector distance (m).
    #[arg(long)]
    pub distance_m: Option<f64>,
    /// Pixel size (µm), square pixels.
    #[arg(long)]
    pub pixel_size_um: Option<f64>,
    /// Direct-beam position on the detector, pixels: ROW,COL (may lie off the detector).
    #[arg(
        long,
        value_delimiter = ',',
        allow_negative_numbers = true,
        value_name = "ROW,COL"
    )]
    pub beam_center_px: Option<Vec<f64>>,
    /// Replace existing output files (inputs are never overwritten).
    #[arg(long)]
    pub force: bool,
}

fn parse_estimator(name: &str) -> Result<Estimator, Error> {
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

/// The scattering geometry from the command line: all four flags, or none.
fn geometry_from_args(a: &CorrelateArgs) -> Result<Option<DetectorGeometry>, Error> {
    let given = [
        a.energy_kev.is_some(),
        a.distance_m.is_some(),
        a.pixel_size_um.is_some(),
        a.beam_center_px.is_some(),
    ];
    if given.iter().all(|g| !g) {
        return Ok(None);
    }
    let (Some(e), Some(d), Some(px), Some(bc)) = (
        a.energy_kev,
        a.distance_m,
        a.pixel_size_um,
        a.beam_center_px.as_ref(),
    ) else {
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

/// The q-partition: labels (and q, if the q-map file has it) from --qmap, static map and mask,
/// then q from the geometry or --q-values when given.
fn read_partition(
    a: &CorrelateArgs,
    shape: (usize, usize),
    geo: Option<&DetectorGeometry>,
) -> Result<(QPartition, &'static str), Error> {
    let is_qmap_h5 = is_qmap_h5(a)?;
    let mut part = if is_qmap_h5 && a.static_qmap.is_none() {
        let p = maps::read_qmap_h5(&a.qmap, shape)?;
        match &a.mask {
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
                maps::restrict_mask(&p, &v, &a.qmap.display().to_string())?
            }
            None => p,
        }
    } else {
        maps::read_partition(
            shape,
            (&a.qmap, None),
            a.static_qmap.as_deref().map(|p| (p, None)),
            a.mask.as_deref().map(|p| (p, None)),
        )?
    };
    let file_q = part
        .dynamic_axes()
        .iter()
        .any(|b| b.q_inv_angstrom.is_finite());
    let sources = [file_q, geo.is_some(), a.q_values.is_some()];
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
    if let Some(qf) = &a.q_values {
        let q = maps::read_q_values(qf)?;
        if q.len() != part.n_bins() {
            return Err(Error::ShapeMismatch {
                origin: qf.display().to_string(),
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

/// Whether --qmap is an APS / pySimpleMask q-map HDF5 file (not a plain label map).
fn is_qmap_h5(a: &CorrelateArgs) -> Result<bool, Error> {
    Ok(!matches!(
        a.qmap
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("npy" | "npz")
    ) && maps::qmap_group(&a.qmap)?.is_some())
}

/// The detector's frame shape (rows, cols): the shape of the q-map's dynamic labels.
fn qmap_shape(a: &CorrelateArgs) -> Result<(usize, usize), Error> {
    let name = match maps::qmap_group(&a.qmap) {
        Ok(Some(g)) if is_qmap_h5(a)? => Some(format!("{g}/dynamic_roi_map")),
        _ => None,
    };
    Ok(maps::read_label_map(&a.qmap, name.as_deref())?.shape())
}

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
    detector_mask: Option<DetMaskSummary>,
    bins: Vec<BinSummary>,
}

#[derive(Serialize)]
struct DetMaskSummary {
    n_masked: usize,
    n_pixel_mask: usize,
    n_overflow: usize,
    overflow_value: u32,
    count_cutoff: Option<u64>,
    source: String,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} frames, eta {{eta}}"
        ))
        .expect("valid template"),
    );
    b
}

/// Reads every frame into memory (u32), with a progress bar.
fn read_all(src: &mut dyn FrameSource) -> Result<FrameStack, Error> {
    let b = bar(src.n_frames() as u64, "read");
    let (r, c) = src.frame_shape();
    let mut stack = FrameStack::zeros(src.n_frames(), r, c, CountDtype::U32);
    let mut buf = vec![0u32; r * c];
    for t in 0..src.n_frames() {
        if !src.read_next(&mut buf)? {
            return Err(Error::invalid("frames", format!("ended after {t} frames")));
        }
        stack.set_frame(t, &buf)?;
        b.inc(1);
    }
    b.finish_and_clear();
    Ok(stack)
}

/// Runs the subcommand.
pub fn run(a: CorrelateArgs) -> Result<()> {
    let estimator = parse_estimator(&a.estimator)?;
    if a.num_bufs < 2 || a.num_bufs % 2 != 0 {
        return Err(Error::out_of_range(
            "command line",
            "--num-bufs",
            a.num_bufs,
            "an even number ≥ 2",
        )
        .into());
    }
    let geo = geometry_from_args(&a)?;
    let selection = FrameSelection {
        begin: a.begin,
        end: a.end,
        stride: a.stride,
        avg: a.avg,
    };
    let origin = a.frames.display().to_string();
    // The q-map's shape is the detector's: formats without a shape take it, sparse formats
    // with one are checked against it before allocating per-pixel state.
    let opts = InputOptions {
        detector_shape: Some(qmap_shape(&a)?),
        dataset: a.dataset.clone(),
        ..InputOptions::default()
    };
    let kind = input_kind(&a.frames, &opts)?;
    let mut input = open_input(&a.frames, &opts)?;
    let raw_frame_time_s = match (a.frame_time, input.frame_time_s()) {
        (Some(f), _) => f,
        (None, Some(f)) => f,
        (None, None) => {
            return Err(
                Error::invalid(&origin, "no frame time in the file: give --frame-time (s)").into(),
            )
        }
    };
    xpcs_twin::check::check_frame_time("command line", "--frame-time", raw_frame_time_s)?;
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
        )
        .into());
    }
    let sel = selection.resolve(input.n_frames(), &origin)?;
    let n_frames = sel.n_out;
    // The correlators see one frame per stride × avg raw frames.
    let frame_time_s = raw_frame_time_s * sel.frames_per_output() as f64;
    if n_frames < 2 {
        return Err(
            Error::out_of_range(&origin, "frames (after selection)", n_frames, "≥ 2").into(),
        );
    }
    let (mut part, q_source) = read_partition(&a, shape, geo.as_ref())?;
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
    if let (Some(info), false) = (input.detector().cloned(), a.no_detector_mask) {
        let mut scan_input = open_input(&a.frames, &opts)?;
        if let Input::Frames { source: src, .. } = &mut scan_input {
            let raw_sel = xpcs_twin::data::ResolvedSelection {
                avg: 1,
                n_out: sel.n_out * sel.avg,
                ..sel
            };
            let b = bar(raw_sel.n_out as u64, "detector mask");
            let mut sel_src = SelectedFrames::new(src.as_mut(), raw_sel)?;
            let mut counting = CountingSource {
                inner: &mut sel_src,
                bar: &b,
            };
            let m = scan_detector_mask(&mut counting, &info)?;
            b.finish_and_clear();
            eprintln!("{}: {}", a.frames.display(), m.summary());
            part = maps::restrict_mask(&part, &m.valid, &origin)?;
            det_mask = Some(m);
        }
    }
    let sched = LagSchedule::multi_tau(n_frames, a.num_bufs)?;
    let bin_frames = a
        .twotime_bin_frames
        .unwrap_or_else(|| n_frames.div_ceil(2000).max(1));
    if a.twotime && (bin_frames == 0 || bin_frames > n_frames / 2) {
        return Err(Error::out_of_range(
            "command line",
            "--twotime-bin-frames",
            bin_frames,
            format!("1 to {} (half the frames)", n_frames / 2),
        )
        .into());
    }

    let sparse = a.sparse || is_events;
    let (g2, intensity, two_time): (G2Result, _, Option<TwoTimeResult>) = match &mut input {
        Input::Events(src) => {
            // Pixel blocks straight from the file: memory ∝ one block, not the whole list.
            let mut ev = EventCorrelator::new(&part, &sched, n_frames);
            if a.twotime {
                ev = ev.with_two_time(&part, &[], bin_frames)?;
            }
            let b = ProgressBar::new((shape.0 * shape.1) as u64);
            b.set_style(
                ProgressStyle::with_template("correlate events {bar:40} {pos}/{len} pixels")
                    .expect("valid template"),
            );
            while let Some(blk) = src.next_block()? {
                ev.push_pixel_block(blk.first_pixel, &blk.offsets, &blk.frames, &blk.counts)?;
                b.inc(blk.n_pixels() as u64);
            }
            b.finish_and_clear();
            (ev.finish(estimator)?, ev.intensity(), ev.two_time())
        }
        Input::Frames {
            source: raw_src, ..
        } => {
            let mut selected = SelectedFrames::new(raw_src.as_mut(), sel)?;
            let mut checked = CheckedCounts::new(&mut selected, part.mask(), &origin);
            let src: &mut dyn FrameSource = &mut checked;
            if a.sparse {
                let b = bar(n_frames as u64, "read events");
                let mut counting = CountingSource {
                    inner: src,
                    bar: &b,
                };
                let events = EventList::from_source(&mut counting, frame_time_s)?;
                b.finish_and_clear();
                let mut ev = EventCorrelator::new(&part, &sched, n_frames);
                if a.twotime {
                    ev = ev.with_two_time(&part, &[], bin_frames)?;
                }
                ev.push_events(&events)?;
                (ev.finish(estimator)?, ev.intensity(), ev.two_time())
            } else if a.twotime {
                let stack = read_all(src)?;
                let mut mt = DenseMultiTau::new(&part, &sched);
                mt.push_stack(&stack, 0..n_frames)?;
                let tt = two_time_stack(&stack, &part, &[], bin_frames)?;
                (mt.finish(estimator)?, mt.intensity(), Some(tt))
            } else {
                let b = bar(n_frames as u64, "correlate");
                let mut mt = DenseMultiTau::new(&part, &sched);
                let mut counting = CountingSource {
                    inner: src,
                    bar: &b,
                };
                mt.push_source(&mut counting, 64)?;
                b.finish_and_clear();
                (mt.finish(estimator)?, mt.intensity(), None)
            }
        }
    };
    let g2 = g2.without_empty_lags();
    let mut extra = Tree::new();
    extra.insert(
        "frames_file".into(),
        Node::Text(a.frames.display().to_string()),
    );
    extra.insert("qmap_file".into(), Node::Text(a.qmap.display().to_string()));
    extra.insert("input_kind".into(), Node::Text(kind.name().into()));
    extra.insert(
        "correlator".into(),
        Node::Text(if sparse { "event" } else { "dense" }.into()),
    );
    extra.insert("q_source".into(), Node::Text(q_source.into()));
    if let Some(m) = &det_mask {
        let mut t = Tree::new();
        t.insert("n_masked".into(), Node::scalar(m.n_masked() as f64));
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
    let meta = RunMeta {
        start_time: "unknown".into(),
        frame_time_s: raw_frame_time_s,
        count_time_s: raw_frame_time_s,
        energy_kev: geo.map_or(nan, |g| g.energy_kev),
        geometry: Geometry {
            beam_center_x_px: geo.map_or(nan, |g| g.beam_center_col_px),
            beam_center_y_px: geo.map_or(nan, |g| g.beam_center_row_px),
            pixel_size_m: geo.map_or(nan, |g| g.pixel_size_m),
            detector_distance_m: geo.map_or(nan, |g| g.distance_m),
        },
        seed: 0,
        frames: sel,
        extra,
    };
    let res = assemble(meta, &part, Some(&g2), &intensity, two_time.as_ref());
    let written = write_results(&a.out, &res, a.force)
        .with_context(|| format!("writing {}", a.out.display()))?;

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
            twotime_key: two_time.as_ref().and_then(|tt| {
                tt.bins
                    .iter()
                    .position(|&k| k == b + 1)
                    .map(|_| format!("/xpcs/twotime/correlation_map/c2_{:05}", b + 1))
            }),
        })
        .collect();
    if let Some(dir) = &a.npy_dir {
        export_npy(dir, &g2, frame_time_s, two_time.as_ref(), &inputs, a.force)?;
    }
    print_table(&g2, frame_time_s, &part);
    if let Some(j) = &a.json {
        let summary = Summary {
            frames: a.frames.display().to_string(),
            qmap: a.qmap.display().to_string(),
            results: written.display().to_string(),
            frame_time_s,
            raw_frame_time_s,
            frames_used: [sel.begin, sel.end, sel.stride, sel.avg],
            n_frames,
            estimator: estimator.name(),
            schedule: g2.schedule.clone(),
            correlator: if sparse { "event" } else { "dense" },
            twotime_bin_frames: a.twotime.then_some(bin_frames),
            q_source,
            detector_mask: det_mask.as_ref().map(|m| DetMaskSummary {
                n_masked: m.n_masked(),
                n_pixel_mask: m.n_pixel_mask,
                n_overflow: m.n_overflow,
                overflow_value: m.overflow_value,
                count_cutoff: m.count_cutoff,
                source: m.source.clone(),
            }),
            bins,
        };
        write_json(j, &summary, &inputs, a.force)?;
    }
    eprintln!("wrote {}", written.display());
    Ok(())
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
fn export_npy(
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
fn print_table(g2: &G2Result, frame_time_s: f64, part: &QPartition) {
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
    print!("{:>4} {:>10} {:>8} ", "bin", "q (Å⁻¹)", "pixels");
    for &i in &picks {
        print!(
            "{:>11}",
            format!("{} s", fmt_delay(g2.lag_frames[i] as f64 * frame_time_s))
        );
    }
    println!("   (g2 - 1 at delay)");
    for b in 0..g2.g2.ncols() {
        let q = part.dynamic_axes()[b].q_inv_angstrom;
        let qs = if q.is_finite() {
            format!("{q:.5}")
        } else {
            "unknown".into()
        };
        print!("{:>4} {qs:>10} {:>8} ", b + 1, g2.bin_pixels[b]);
        for &i in &picks {
            let v = g2.g2[[i, b]] - 1.0;
            print!(
                "{:>11}",
                if v.is_finite() {
                    format!("{v:.4}")
                } else {
                    "—".into()
                }
            );
        }
        if g2.bin_status[b] != BinStatus::Ok {
            print!("   {:?}", g2.bin_status[b]);
        }
        println!();
    }
}

/// A frame source that advances a progress bar.
struct CountingSource<'a> {
    inner: &'a mut dyn FrameSource,
    bar: &'a ProgressBar,
}

impl FrameSource for CountingSource<'_> {
    fn frame_shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    fn read_next(&mut self, out: &mut [u32]) -> xpcs_twin::Result<bool> {
        let more = self.inner.read_next(out)?;
        if more {
            self.bar.inc(1);
        }
        Ok(more)
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
