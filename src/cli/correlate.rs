//! `xpcs-twin correlate`: photons on disk → g2 (and two-time maps) in an APS results file.
//! The pipeline is `xpcs_twin::pipeline::correlate`; this file parses its arguments.

use super::bars::Bars;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use xpcs_twin::data::FrameSelection;
use xpcs_twin::pipeline::correlate::{self, CorrelateFiles};

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

/// Runs the subcommand.
pub fn run(a: CorrelateArgs) -> Result<()> {
    let files = CorrelateFiles {
        frames: a.frames,
        dataset: a.dataset,
        qmap: a.qmap,
        static_qmap: a.static_qmap,
        mask: a.mask,
        no_detector_mask: a.no_detector_mask,
        frame_time: a.frame_time,
        selection: FrameSelection {
            begin: a.begin,
            end: a.end,
            stride: a.stride,
            avg: a.avg,
        },
        out: a.out,
        json: a.json,
        npy_dir: a.npy_dir,
        twotime: a.twotime,
        twotime_bin_frames: a.twotime_bin_frames,
        sparse: a.sparse,
        estimator: a.estimator,
        num_bufs: a.num_bufs,
        q_values: a.q_values,
        energy_kev: a.energy_kev,
        distance_m: a.distance_m,
        pixel_size_um: a.pixel_size_um,
        beam_center_px: a.beam_center_px,
        force: a.force,
    };
    let done = correlate::run(&files, &Bars::default())?;
    let c = &done.correlated;
    print!(
        "{}",
        correlate::table(&c.g2, c.frame_time_s, &done.partition)
    );
    eprintln!("wrote {}", done.written.display());
    Ok(())
}
