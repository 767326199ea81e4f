//! `xpcs-twin simulate`: a sample preset → a simulated stack plus its ground truth.
//!
//! Two scenes. Without `--beam/--dac/--detector`: the sample file's ideal-detector `[scene]`
//! (uniform mean counts and contrast, q along rows, every pixel valid, no counting chain).
//! With them (preset names from `models/{beams,dacs,detectors}` or TOML files): the
//! instrument model, exactly as the twin builds one scan (`twin::setup::CampaignSetup` from
//! a campaign assembled from the command line): q-map of the detector at `--distance` with
//! its centre on q1(P), count rate from flux, anvil transmission, sample and S(q) (or
//! `--mean-counts`), contrast from the coherence model (or `--contrast`), the cell's
//! backgrounds, Kossel lines and spots, module gaps, then the counting chain (dead time,
//! gain, hot/dead pixels, rollover, masks; charge sharing with `--charge-sharing`), on the
//! whole detector or a centred `--rows × --cols` region.
//!
//! Writes the stack as dense NPY (frame, row, col; u8/u16/u32) or as events in NPZ (per-pixel
//! CSR: offsets, frames, counts) or as an HDF5 event file (`.h5`; the ideal scene streams block
//! by block in pixel order through `io::events::EventWriter`), each through a temp file renamed
//! into place; beside it (rows × cols) the dynamic q-bin labels `<out>.labels.npy` (u32), the
//! static labels `<out>.static_labels.npy` (u32), the valid mask `<out>.mask.npy` (u8, 1 =
//! valid: not a gap, dead or hot pixel), with the instrument the automatic Kossel/spot mask
//! found from the simulated summed image `<out>.kossel_mask.npy` (u8, 1 = masked; what it
//! masked is in the sidecar), and a sidecar `<out>.truth.json` with the seed, the parameters,
//! the scan facts, the instrument numbers and the expected g2 per q-bin at a list of lags
//! (symmetric/frame estimators, linear lags).
//!
//! The pipeline is `xpcs_twin::pipeline::simulate`; this file parses its arguments.

use super::bars::Bars;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use xpcs_twin::pipeline::simulate;

/// Field generator choice on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GenArg {
    /// Circulant embedding (any β; uniform grids).
    Circulant,
    /// Random phasors (any β, any time points).
    Phasors,
    /// Exact AR(1) (β = 1 only).
    Ar1,
}

/// Time sampling on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MethodArg {
    /// Coarse material-time grid + thinning (cost ∝ pixels × scan/τ + photons).
    Grid,
    /// Sub-sampled frames, Poisson per pixel-frame (cost ∝ pixel-frames).
    Exact,
}

/// Output format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Dense NPY stack (frame, row, col).
    Npy,
    /// Events as NPZ (offsets, frames, counts).
    Npz,
    /// xpcs-twin event file (HDF5).
    Events,
    /// DECTRIS Eiger master + data files.
    Eiger,
    /// Rigaku 64-bit sparse .bin (APS 8-ID-I).
    Rigaku,
    /// IMM sparse frames (legacy APS cameras).
    Imm,
}

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Sample preset (TOML), e.g. models/samples/pt42.toml.
    #[arg(long)]
    model: PathBuf,
    /// Simulate the first isobar at this pressure (GPa).
    #[arg(long, conflicts_with = "scan")]
    pressure: Option<f64>,
    /// Simulate isobar number K (0-based, protocol order; default 0).
    #[arg(long)]
    scan: Option<usize>,
    /// Frames, 1 to 134217728 (default: the isobar's).
    #[arg(long)]
    frames: Option<usize>,
    /// Frame time in s, 1e-9 to 1e5 (default: the isobar's).
    #[arg(long)]
    frame_time: Option<f64>,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output file (the format follows its extension unless --format is given): .npy (dense
    /// stack), .npz (events), .h5 (xpcs-twin event file, streamed in pixel order), .bin
    /// (Rigaku), .imm (IMM).
    #[arg(long)]
    out: PathBuf,
    /// Write the scan as this detector's acquisition system does, for beamline pipelines:
    /// npy, npz, events (.h5); eiger (OUT must be NAME_master.h5: master + NAME_data_00000k.h5,
    /// bitshuffle-LZ4, 1000 frames per file, pixel_mask with the detector's gaps and bad
    /// pixels, flagged pixels at 2^bits - 1); rigaku (OUT.bin: one 512 × 1024 module, or
    /// OUT.bin.000-.005 for 1676 × 2100 frames, the 3M, whose gaps are masked; counts ≤ 4095);
    /// imm (sparse frames, counts ≤ 65535).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Overwrite existing outputs.
    #[arg(long)]
    force: bool,
    /// Detector rows (default: the preset's scene).
    #[arg(long)]
    rows: Option<usize>,
    /// Detector columns (default: the preset's scene).
    #[arg(long)]
    cols: Option<usize>,
    /// Mean photons per pixel per frame, > 0 to 1e7 (default: the preset's scene).
    #[arg(long)]
    mean_counts: Option<f64>,
    /// Speckle contrast (default: the preset's scene).
    #[arg(long)]
    contrast: Option<f64>,
    /// Number of modes (default: the preset's scene).
    #[arg(long)]
    modes: Option<f64>,
    /// Number of q-bins of the built-in partition (bands of rows; q varies along rows).
    #[arg(long, default_value_t = 4, conflicts_with = "labels")]
    qbins: usize,
    /// q-bin labels (.npy, rows × cols, 0 = excluded) instead of the built-in bands.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Field generator.
    #[arg(long, value_enum, default_value_t = GenArg::Circulant)]
    generator: GenArg,
    /// Phasors per field (phasor generator).
    #[arg(long, default_value_t = 64)]
    phasor_terms: usize,
    /// Time sampling method.
    #[arg(long, value_enum, default_value_t = MethodArg::Grid)]
    method: MethodArg,
    /// Sub-samples per frame (exact method) or truth quadrature points (grid method).
    #[arg(long, default_value_t = 2)]
    subsamples: usize,
    /// Largest interpolation error of the grid method, relative to the contrast term.
    #[arg(long, default_value_t = 2e-3)]
    grid_tolerance: f64,
    /// Pixels per block (parallel unit and random stream; changes the output).
    #[arg(long, default_value_t = 4096)]
    block_pixels: usize,
    /// Beam preset (models/beams) or TOML file; with --dac and --detector the scene comes from
    /// the instrument model. --rows/--cols then crop a centred region of the detector,
    /// --mean-counts overrides the computed rate, --contrast the computed contrast.
    #[arg(long, requires_all = ["dac", "detector"], conflicts_with_all = ["modes", "frame_time", "labels"])]
    beam: Option<String>,
    /// Diamond anvil cell preset (models/dacs) or TOML file (with --beam, --detector).
    #[arg(long, requires_all = ["beam", "detector"])]
    dac: Option<String>,
    /// Detector preset (models/detectors) or TOML file (with --beam, --dac).
    #[arg(long, requires_all = ["beam", "dac"])]
    detector: Option<String>,
    /// Sample–detector distance (m) with the instrument; the detector centre follows q1(P).
    #[arg(long, default_value_t = 5.0)]
    distance: f64,
    /// Turn on charge sharing in the counting chain (off by default: the ground truth does not
    /// model it; it lowers the measured contrast by about twice the sharing probability).
    #[arg(long, requires = "beam")]
    charge_sharing: bool,
}

/// Runs `simulate`.
pub fn run(a: SimulateArgs) -> Result<()> {
    let opts = simulate::SimulateOptions {
        model: a.model,
        pressure: a.pressure,
        scan: a.scan,
        frames: a.frames,
        frame_time: a.frame_time,
        seed: a.seed,
        rows: a.rows,
        cols: a.cols,
        mean_counts: a.mean_counts,
        contrast: a.contrast,
        modes: a.modes,
        qbins: a.qbins,
        labels: a.labels,
        generator: match a.generator {
            GenArg::Circulant => simulate::GenArg::Circulant,
            GenArg::Phasors => simulate::GenArg::Phasors,
            GenArg::Ar1 => simulate::GenArg::Ar1,
        },
        phasor_terms: a.phasor_terms,
        method: match a.method {
            MethodArg::Grid => simulate::MethodArg::Grid,
            MethodArg::Exact => simulate::MethodArg::Exact,
        },
        subsamples: a.subsamples,
        grid_tolerance: a.grid_tolerance,
        block_pixels: a.block_pixels,
        beam: a.beam,
        dac: a.dac,
        detector: a.detector,
        distance: a.distance,
        charge_sharing: a.charge_sharing,
    };
    let format = a.format.map(|f| match f {
        FormatArg::Npy => simulate::FormatArg::Npy,
        FormatArg::Npz => simulate::FormatArg::Npz,
        FormatArg::Events => simulate::FormatArg::Events,
        FormatArg::Eiger => simulate::FormatArg::Eiger,
        FormatArg::Rigaku => simulate::FormatArg::Rigaku,
        FormatArg::Imm => simulate::FormatArg::Imm,
    });
    let done = simulate::run(&opts, &a.out, format, a.force, &Bars::default())?;
    // The stack, the labels, static labels and mask, and the truth (not the Kossel mask).
    let w = &done.written;
    eprintln!(
        "wrote {} ({} photons), {}, {}, {} and {}",
        a.out.display(),
        done.total_counts,
        w[1].display(),
        w[2].display(),
        w[3].display(),
        w[w.len() - 1].display()
    );
    Ok(())
}
