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

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::ArrayView3;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use xpcs_twin::config::campaign::{
    AnalysisConfig, BandSpacing, CampaignConfig, CampaignInstrumentConfig, FsdpShapeConfig,
    PartitionConfig, ProtocolTimingConfig, ScaleConfig, ScalesConfig, TolerancesConfig,
};
use xpcs_twin::config::instrument::{CountingConfig, GeometryConfig};
use xpcs_twin::config::parse_toml;
use xpcs_twin::config::sample::{load_sample, Sample};
use xpcs_twin::data::{EventList, FrameStack};
use xpcs_twin::instrument::counting::CountingChain;
use xpcs_twin::instrument::geometry::QMaps;
use xpcs_twin::instrument::kossel::{find_mask, MaskOptions};
use xpcs_twin::io::atomic::check_outputs;
use xpcs_twin::io::output::{write_photons, Acquisition, PhotonFormat};
use xpcs_twin::model::{BinOptics, Truth};
use xpcs_twin::speckle::{Exposure, GeneratorKind, Method, PerPixel, Scene, SimOptions, Simulator};
use xpcs_twin::twin::setup::{CampaignSetup, Scale};

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

impl FormatArg {
    /// The format an output extension implies.
    fn from_extension(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "npy" => FormatArg::Npy,
            "npz" => FormatArg::Npz,
            "h5" => FormatArg::Events,
            "bin" => FormatArg::Rigaku,
            "imm" => FormatArg::Imm,
            _ => return None,
        })
    }

    /// The library's writer for this format (NPZ stays here).
    fn photon_format(self) -> Option<PhotonFormat> {
        Some(match self {
            FormatArg::Npz => return None,
            FormatArg::Npy => PhotonFormat::Npy,
            FormatArg::Events => PhotonFormat::Events,
            FormatArg::Eiger => PhotonFormat::Eiger,
            FormatArg::Rigaku => PhotonFormat::Rigaku,
            FormatArg::Imm => PhotonFormat::Imm,
        })
    }
}

/// Frames per Eiger data file (the DECTRIS default `nimages_per_file`).
const EIGER_FRAMES_PER_FILE: usize = 1000;

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

/// Atomic write through the project's one writer (temp file + rename, never over an input);
/// the existence check (`--force`) was made before any work.
fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<()>,
) -> Result<()> {
    xpcs_twin::io::atomic::write_atomic(path, &[], true, |w| {
        f(w).map_err(|e| xpcs_twin::Error::invalid(path.display().to_string(), format!("{e:#}")))
    })?;
    Ok(())
}

fn read_labels(path: &Path, rows: usize, cols: usize) -> Result<Vec<u32>> {
    let open = || std::fs::File::open(path).with_context(|| format!("{}", path.display()));
    macro_rules! try_type {
        ($t:ty) => {
            if let Ok(a) = ndarray::Array2::<$t>::read_npy(open()?) {
                if a.dim() != (rows, cols) {
                    bail!(xpcs_twin::Error::ShapeMismatch {
                        origin: path.display().to_string(),
                        what: "labels vs detector (rows, cols)".into(),
                        expected: vec![rows, cols],
                        got: vec![a.dim().0, a.dim().1],
                    });
                }
                return a
                    .iter()
                    .map(|&v| {
                        u32::try_from(v).map_err(|_| {
                            anyhow::anyhow!(xpcs_twin::Error::out_of_range(
                                path.display().to_string(),
                                "label",
                                v,
                                "0 to 2^32-1"
                            ))
                        })
                    })
                    .collect();
            }
        };
    }
    try_type!(u32);
    try_type!(i64);
    try_type!(i32);
    try_type!(u16);
    try_type!(u8);
    try_type!(u64);
    bail!(xpcs_twin::Error::format(
        path,
        "expected a 2-D integer .npy of labels"
    ))
}

/// Lags 0..16, then about 8 per octave up to T-1.
fn truth_lags(n_frames: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n_frames.min(16)).collect();
    let mut x = 16.0f64;
    while (x as usize) < n_frames {
        let k = x as usize;
        if v.last() != Some(&k) {
            v.push(k);
        }
        x *= 2f64.powf(0.125);
    }
    v
}

/// What one run simulates and writes besides the photons: the simulator, the counting chain
/// (instrument only), the maps written beside the stack, and per dynamic bin its optics and q
/// (None: empty bin).
struct Prepared {
    sim: Simulator,
    chain: Option<(CountingChain, u64)>,
    labels: Vec<u32>,
    static_labels: Vec<u32>,
    valid: Vec<bool>,
    bins: Vec<Option<(BinOptics, f64)>>,
    /// q/φ maps of the simulated region (instrument only: the Kossel auto-mask needs them).
    maps: Option<QMaps>,
    scene_doc: serde_json::Value,
    /// What a detector file records besides the photons (pixel mask, geometry).
    acquisition: Acquisition,
}

/// The isobar index chosen by `--pressure` / `--scan` (default 0).
fn pick_isobar(a: &SimulateArgs, sample: &Sample) -> Result<usize> {
    let camp = &sample.campaign;
    let k = match (a.pressure, a.scan) {
        (Some(p), _) => camp.find_pressure(p).ok_or_else(|| {
            anyhow::anyhow!(xpcs_twin::Error::out_of_range(
                a.model.display().to_string(),
                "--pressure",
                p,
                format!(
                    "one of the isobars: {:?} GPa",
                    camp.isobars
                        .iter()
                        .map(|b| b.pressure_gpa)
                        .collect::<Vec<_>>()
                )
            ))
        })?,
        (None, Some(k)) => k,
        (None, None) => 0,
    };
    if k >= camp.isobars.len() {
        bail!(xpcs_twin::Error::out_of_range(
            a.model.display().to_string(),
            "--scan",
            k,
            format!("0..{}", camp.isobars.len())
        ));
    }
    Ok(k)
}

fn sim_options(a: &SimulateArgs, seed: u64) -> SimOptions {
    SimOptions {
        generator: match a.generator {
            GenArg::Circulant => GeneratorKind::Circulant,
            GenArg::Phasors => GeneratorKind::Phasors {
                terms: a.phasor_terms,
            },
            GenArg::Ar1 => GeneratorKind::Ar1,
        },
        method: match a.method {
            MethodArg::Grid => Method::Grid {
                du: None,
                tolerance: a.grid_tolerance,
            },
            MethodArg::Exact => Method::Exact {
                subsamples: a.subsamples,
            },
        },
        block_pixels: a.block_pixels,
        seed,
    }
}

/// The sample file's ideal-detector scene (see the module doc).
fn prepare_ideal(
    a: &SimulateArgs,
    sample: &Sample,
    k: usize,
    format: Option<PhotonFormat>,
) -> Result<Prepared> {
    let camp = &sample.campaign;
    let iso = &camp.isobars[k];
    let n_frames = a.frames.unwrap_or(iso.n_frames);
    let frame_time_s = a.frame_time.unwrap_or(iso.frame_time_s);
    let sc = sample.scene.clone();
    let rows = a.rows.or(sc.as_ref().map(|s| s.rows)).unwrap_or(256);
    let cols = a.cols.or(sc.as_ref().map(|s| s.cols)).unwrap_or(256);
    // Sizes before anything is allocated for them.
    xpcs_twin::speckle::check_size(
        "command line (--rows, --cols, --frames)",
        rows,
        cols,
        n_frames,
    )?;
    let mut arng = xpcs_twin::rng::stream(xpcs_twin::rng::subseed(a.seed, "avalanches"), 0);
    let (dynamics, facts) = camp.scan(k, n_frames, frame_time_s, &mut arng)?;

    let mean = a
        .mean_counts
        .or(sc.as_ref().map(|s| s.mean_counts_per_frame))
        .unwrap_or(0.1);
    let contrast = a
        .contrast
        .or(sc.as_ref().map(|s| s.contrast))
        .unwrap_or(0.1);
    let modes = a.modes.or(sc.as_ref().map(|s| s.modes)).unwrap_or(1.0);
    let q_step = sc.as_ref().map_or(0.0, |s| s.q_step_inv_angstrom_per_row);
    let mut scene = Scene::uniform(rows, cols, mean, contrast, modes);
    if let Some(s) = &sc {
        scene.static_fraction = PerPixel::Uniform(s.static_fraction);
        scene.incoherent_fraction = PerPixel::Uniform(s.incoherent_fraction);
    }
    // Built-in geometry: q along rows, q1 at the centre row.
    let q_of_row = |r: usize| facts.q1_inv_angstrom + (r as f64 - rows as f64 / 2.0) * q_step;
    let rate_rows: Vec<f64> = (0..rows)
        .map(|r| camp.response.rate_factor(q_of_row(r), facts.pressure_gpa))
        .collect();
    if rate_rows.iter().any(|&r| !(r.is_finite() && r > 0.0)) {
        bail!(xpcs_twin::Error::invalid(
            a.model.display().to_string(),
            "q_step_inv_angstrom_per_row makes q ≤ 0 on the detector"
        ));
    }
    scene.rate_factor = PerPixel::Map((0..rows * cols).map(|p| rate_rows[p / cols]).collect());
    let mut labels: Vec<u32> = match &a.labels {
        Some(p) => read_labels(p, rows, cols)?,
        None => {
            if a.qbins == 0 || a.qbins > rows {
                bail!(xpcs_twin::Error::out_of_range(
                    "command line",
                    "--qbins",
                    a.qbins,
                    format!("1..={rows}")
                ));
            }
            (0..rows * cols)
                .map(|p| ((p / cols) * a.qbins / rows + 1) as u32)
                .collect()
        }
    };
    // A format whose detector has gaps (the Rigaku 3M): gap pixels are not pixels.
    let layout = format.and_then(|f| f.layout_mask((rows, cols)));
    let valid = layout.unwrap_or_else(|| vec![true; rows * cols]);
    let pixel_mask: Vec<u32> = if valid.iter().all(|&v| v) {
        vec![]
    } else {
        valid.iter().map(|&v| u32::from(!v)).collect()
    };
    for (l, &v) in labels.iter_mut().zip(&valid) {
        if !v {
            *l = 0;
        }
    }
    let sim = Simulator::new(
        scene,
        dynamics,
        Exposure {
            n_frames,
            frame_time_s,
        },
        sim_options(a, a.seed),
    )?;
    let n_bins = labels.iter().copied().max().unwrap_or(0) as usize;
    let bins = (1..=n_bins)
        .map(|bin| {
            let px: Vec<usize> = (0..rows * cols)
                .filter(|&p| labels[p] as usize == bin)
                .collect();
            if px.is_empty() {
                return None;
            }
            let q = px.iter().map(|&p| q_of_row(p / cols)).sum::<f64>() / px.len() as f64;
            Some((BinOptics::new(px.iter().map(|&p| sim.scene().optics(p))), q))
        })
        .collect();
    Ok(Prepared {
        sim,
        chain: None,
        static_labels: labels.clone(),
        labels,
        valid,
        bins,
        maps: None,
        acquisition: Acquisition {
            count_time_s: frame_time_s,
            pixel_size_m: 75e-6,
            distance_m: a.distance,
            energy_kev: 21.0,
            pixel_mask,
            description: format!("xpcs-twin ideal detector, {rows} x {cols} px"),
            frames_per_file: EIGER_FRAMES_PER_FILE,
        },
        scene_doc: serde_json::json!({
            "kind": "ideal detector (the sample file's [scene])",
            "facts": facts,
            "rows": rows, "cols": cols, "mean_counts_per_frame": mean,
            "contrast": contrast, "modes": modes,
            "q_step_inv_angstrom_per_row": q_step,
        }),
    })
}

/// The campaign `simulate --beam/--dac/--detector` stands for: this sample and instrument,
/// follow-q1 geometry at `--distance`, the twin's FSDP shape, `--qbins` equal-pixel bands
/// (1 φ sector, 4 static sub-bands), the region and frame cap of the command line. The
/// protocol's step length only guards overlapping isobars of a campaign, so it is unbounded.
fn campaign_of(a: &SimulateArgs) -> Result<CampaignConfig> {
    let sample = std::path::absolute(&a.model)
        .with_context(|| format!("{}", a.model.display()))?
        .display()
        .to_string();
    if a.qbins == 0 || a.qbins > 1000 {
        bail!(xpcs_twin::Error::out_of_range(
            "command line",
            "--qbins",
            a.qbins,
            "1..=1000"
        ));
    }
    xpcs_twin::check::check_range("command line", "--distance (m)", a.distance, 0.05, 100.0)?;
    let roi_px = match (a.rows, a.cols) {
        (None, None) => None,
        (Some(r), Some(c)) => Some([r, c]),
        _ => bail!(xpcs_twin::Error::invalid(
            "command line",
            "--rows and --cols crop a region of the detector: give both or neither"
        )),
    };
    let scale = ScaleConfig {
        roi_px,
        roi_offset_px: [0, 0],
        max_frames: a.frames,
    };
    Ok(CampaignConfig {
        name: "simulate".into(),
        sample,
        seed: a.seed,
        instrument: CampaignInstrumentConfig {
            beam: a.beam.clone().unwrap_or_default(),
            dac: a.dac.clone().unwrap_or_default(),
            detector: a.detector.clone().unwrap_or_default(),
            geometry: GeometryConfig {
                distance_m: a.distance,
                two_theta_deg: None,
                follow_q1: true,
                ..parse_toml("distance_m = 5.0", "built-in geometry")?
            },
            // The twin's FSDP shape (instrument::scene::Fsdp::pt_seed); q1(P) is the sample's.
            fsdp: FsdpShapeConfig {
                fwhm_inv_angstrom: 0.35,
                peak: 2.7,
                base: 1.0,
            },
            contrast: a.contrast,
            mean_rate_hz: None,
            kossel: true,
            counting: CountingConfig {
                charge_sharing: a.charge_sharing,
                ..CountingConfig::default()
            },
        },
        protocol: ProtocolTimingConfig {
            compression_step_s: f64::MAX,
            decompression_step_s: None,
        },
        partition: PartitionConfig {
            q_bins: a.qbins,
            phi_sectors: 1,
            static_per_dynamic: 4,
            spacing: BandSpacing::EqualPixels,
        },
        analysis: parse_toml::<AnalysisConfig>("", "built-in analysis")?,
        scale: ScalesConfig {
            reduced: scale.clone(),
            full: scale,
        },
        tolerances: TolerancesConfig::default(),
    })
}

/// The instrument model's scene for isobar `k` (see the module doc).
fn prepare_instrument(a: &SimulateArgs, sample: &Sample, k: usize) -> Result<Prepared> {
    let iso = &sample.campaign.isobars[k];
    if let Some(f) = a.frames {
        if f == 0 || f > iso.n_frames {
            bail!(xpcs_twin::Error::out_of_range(
                "command line",
                "--frames",
                f,
                format!(
                    "1..={} (the isobar's frames; with the instrument the scan is the \
                     protocol's, cut short)",
                    iso.n_frames
                )
            ));
        }
    }
    let mut config = campaign_of(a)?;
    if let Some(m) = a.mean_counts {
        config.instrument.mean_rate_hz = Some(m / iso.frame_time_s);
    }
    let mut setup = CampaignSetup::from_config(
        config,
        Path::new("command line"),
        Scale::Reduced,
        Some(a.seed),
    )?;
    let roi = setup.roi;
    let pressure = iso.pressure_gpa;
    let geo = setup.instrument.geometry_at(pressure)?;
    let maps = geo.maps().crop(roi.row0, roi.col0, roi.rows, roi.cols)?;
    let contrast = setup.instrument.contrast_at(pressure)?;
    let scan = setup.scans.swap_remove(k);
    let sim = Simulator::new(
        scan.scene.clone(),
        scan.dynamics.clone(),
        scan.exposure,
        sim_options(a, scan.seed),
    )?;
    let part = &scan.partition;
    let bins = (1..=part.n_bins())
        .map(|b| {
            (!part.dynamic().pixels(b).is_empty()).then(|| {
                (
                    scan.bin_optics(b),
                    part.dynamic_axes()[b - 1].q_inv_angstrom,
                )
            })
        })
        .collect();
    let inst = &setup.instrument;
    let scene_doc = serde_json::json!({
        "kind": "instrument model",
        "beam": inst.beam.origin,
        "dac": inst.dac.origin,
        "detector": setup.config.instrument.detector,
        "facts": scan.facts,
        "detector_shape": [roi.det_rows, roi.det_cols],
        "region": roi,
        "distance_m": a.distance,
        "two_theta_c_deg": scan.two_theta_c_rad.to_degrees(),
        "q1_inv_angstrom": scan.facts.q1_inv_angstrom,
        "contrast": scan.contrast,
        "contrast_computed": contrast,
        "contrast_overridden": a.contrast.is_some(),
        "speckle_size_px": [contrast.speckle_row_px, contrast.speckle_col_px],
        "incoherent_fraction": scan.incoherent_fraction,
        "incoherent_fraction_computed": inst.dac.background_is_computed(),
        "static_fraction": inst.dac.static_fraction,
        "mean_counts_per_frame": scan.mean_counts_per_frame,
        "mean_rate_hz": scan.mean_counts_per_frame / scan.exposure.frame_time_s,
        "counting": setup.config.instrument.counting,
    });
    // The detector's own pixel mask (NXmx bits): module/chip gaps 1, and with the bad-pixel
    // step dead 2, hot (noisy) 16. Not the analysis mask: anvil spots are the sample's.
    let gaps = roi.crop(inst.detector.gap_mask());
    let defects = &scan.chain.defects;
    let bad = scan.chain.steps.bad_pixels;
    let pixel_mask: Vec<u32> = (0..roi.rows * roi.cols)
        .map(|p| {
            u32::from(!gaps[p])
                | if bad && defects.dead[p] { 2 } else { 0 }
                | if bad && defects.hot[p] { 16 } else { 0 }
        })
        .collect();
    let acquisition = Acquisition {
        count_time_s: scan.exposure.frame_time_s,
        pixel_size_m: inst.detector.pixel_size_um * 1e-6,
        distance_m: a.distance,
        energy_kev: inst.beam.energy_kev,
        pixel_mask,
        description: format!(
            "xpcs-twin model of {} ({} x {} px region)",
            inst.detector.origin, roi.rows, roi.cols
        ),
        frames_per_file: EIGER_FRAMES_PER_FILE,
    };
    Ok(Prepared {
        acquisition,
        chain: Some((
            scan.chain.clone(),
            xpcs_twin::rng::subseed(scan.seed, "counting"),
        )),
        labels: part.dynamic().labels().to_vec(),
        static_labels: part.static_map().labels().to_vec(),
        valid: scan.valid.clone(),
        bins,
        maps: Some(maps),
        scene_doc,
        sim,
    })
}

/// The primary quantities, each named by its flag, before anything derived from them.
fn check_args(a: &SimulateArgs) -> Result<()> {
    use xpcs_twin::check::{check_frame_time, check_range};
    for (flag, v) in [
        ("--rows", a.rows),
        ("--cols", a.cols),
        ("--frames", a.frames),
    ] {
        if v == Some(0) {
            bail!(xpcs_twin::Error::out_of_range(
                "command line",
                flag,
                0,
                "≥ 1"
            ));
        }
    }
    if let Some(f) = a.frames {
        if f > xpcs_twin::speckle::MAX_FRAMES {
            bail!(xpcs_twin::Error::out_of_range(
                "command line",
                "--frames",
                f,
                format!("1 to {}", xpcs_twin::speckle::MAX_FRAMES)
            ));
        }
    }
    if let Some(t) = a.frame_time {
        check_frame_time("command line", "--frame-time", t)?;
    }
    if let Some(m) = a.mean_counts {
        if !(m.is_finite() && m > 0.0 && m <= xpcs_twin::speckle::MAX_MEAN_COUNTS) {
            bail!(xpcs_twin::Error::out_of_range(
                "command line",
                "--mean-counts",
                xpcs_twin::check::show(m),
                xpcs_twin::speckle::MEAN_COUNTS_RANGE
            ));
        }
    }
    if let Some(c) = a.contrast {
        check_range("command line", "--contrast", c, 0.0, 1.0)?;
    }
    Ok(())
}

/// Runs `simulate`.
pub fn run(a: SimulateArgs) -> Result<()> {
    let sample = load_sample(&a.model)?;
    let k = pick_isobar(&a, &sample)?;
    let Some(format) = a.format.or_else(|| FormatArg::from_extension(&a.out)) else {
        bail!(xpcs_twin::Error::invalid(
            a.out.display().to_string(),
            "output must be .npy (dense stack), .npz (events: offsets, frames, counts), .h5 \
             (xpcs-twin event file, streamed), .bin (Rigaku) or .imm (IMM); or give --format"
        ));
    };
    let writer = format.photon_format();
    if format == FormatArg::Npz && a.out.extension().is_none_or(|e| e != "npz") {
        bail!(xpcs_twin::Error::invalid(
            a.out.display().to_string(),
            "an npz output must end in .npz"
        ));
    }
    check_args(&a)?;
    // Every output before any work: none an input or a device, no two the same file.
    let truth_path = a.out.with_extension("truth.json");
    let labels_path = a.out.with_extension("labels.npy");
    let static_path = a.out.with_extension("static_labels.npy");
    let mask_path = a.out.with_extension("mask.npy");
    let kossel_path = a.out.with_extension("kossel_mask.npy");
    let inputs: Vec<&Path> = [Some(a.model.as_path()), a.labels.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let mut outputs = vec![
        a.out.as_path(),
        &truth_path,
        &labels_path,
        &static_path,
        &mask_path,
    ];
    if a.beam.is_some() {
        outputs.push(&kossel_path);
    }
    check_outputs(&outputs, &inputs, a.force)?;
    let prep = if a.beam.is_some() {
        prepare_instrument(&a, &sample, k)?
    } else {
        prepare_ideal(&a, &sample, k, writer)?
    };
    let sim = &prep.sim;
    let (rows, cols) = (sim.scene().rows, sim.scene().cols);
    let Exposure {
        n_frames,
        frame_time_s,
    } = sim.exposure();
    if let Some(w) = writer {
        // Extension and frame shape, before any simulation.
        w.check(&a.out, (rows, cols))?;
    }
    let bytes = n_frames as f64 * (rows * cols) as f64;
    if format == FormatArg::Npy && bytes > 8e9 {
        bail!(xpcs_twin::Error::out_of_range(
            "command line",
            "frames × pixels of a dense stack",
            bytes,
            "≤ 8e9 (use an event file for full-scale runs)"
        ));
    }
    // A multi-file format's other files (Eiger data files, Rigaku 3M modules), known once the
    // frame shape is: checked with the rest before any simulation.
    let more = writer.map_or_else(Vec::new, |w| {
        w.files(&a.out, (rows, cols), n_frames, EIGER_FRAMES_PER_FILE)
    });
    if more.iter().any(|m| *m != a.out) {
        let mut all: Vec<&Path> = outputs.clone();
        all.extend(more.iter().filter(|m| **m != a.out).map(PathBuf::as_path));
        check_outputs(&all, &inputs, a.force)?;
    }

    // Simulate with a progress bar over blocks (the ideal scene streams .h5 block by block;
    // the counting chain needs the whole list: charge sharing crosses blocks).
    let mut kossel_doc = serde_json::Value::Null;
    let total_counts = if format == FormatArg::Events && prep.chain.is_none() {
        stream_events_h5(sim, &a.out, rows, cols, n_frames, frame_time_s, a.force)?
    } else {
        let mut events = simulate_in_memory(sim, rows, cols, n_frames, frame_time_s)?;
        if let Some((chain, seed)) = &prep.chain {
            events = chain.apply(&events, *seed)?;
        } else if prep.valid.iter().any(|&v| !v) {
            // The format's detector gaps (Rigaku 3M): no photon is recorded there.
            events = xpcs_twin::instrument::counting::apply_mask(&events, &prep.valid)?;
        }
        if let Some(maps) = &prep.maps {
            let (mask, doc) = kossel_mask(&events, maps, &prep.valid)?;
            xpcs_twin::io::npy::write_npy(&kossel_path, &[rows, cols], &mask, &inputs, a.force)?;
            kossel_doc = doc;
        }
        match writer {
            None => write_events_npz(&a.out, &events)?,
            Some(PhotonFormat::Npy) => write_stack(&a.out, &events.to_stack())?,
            Some(w) => {
                write_photons(&a.out, w, &events, &prep.acquisition, &inputs, a.force)?;
            }
        }
        events.total_counts()
    };
    // The label maps and mask the truth refers to, next to the stack (rows × cols).
    xpcs_twin::io::npy::write_npy(&labels_path, &[rows, cols], &prep.labels, &inputs, a.force)?;
    xpcs_twin::io::npy::write_npy(
        &static_path,
        &[rows, cols],
        &prep.static_labels,
        &inputs,
        a.force,
    )?;
    let mask: Vec<u8> = prep.valid.iter().map(|&v| u8::from(v)).collect();
    xpcs_twin::io::npy::write_npy(&mask_path, &[rows, cols], &mask, &inputs, a.force)?;

    // Ground truth per q-bin.
    let lags = truth_lags(n_frames);
    let sampling = sim.truth_sampling(a.subsamples);
    let bins: Vec<serde_json::Value> = prep
        .bins
        .par_iter()
        .enumerate()
        .map(|(i, b)| {
            let bin = i + 1;
            let n_px = prep.labels.iter().filter(|&&l| l as usize == bin).count();
            match b {
                None => serde_json::json!({"label": bin, "n_pixels": 0, "g2": null,
                    "reason": "empty bin"}),
                Some((optics, q)) => {
                    let g2 = Truth::new(sim.dynamics(), optics, sampling).g2(&lags);
                    serde_json::json!({
                        "label": bin,
                        "n_pixels": n_px,
                        "q_inv_angstrom": q,
                        "optics_classes": optics.n_classes(),
                        "g2": g2,
                    })
                }
            }
        })
        .collect();
    let (du, err) = sim.grid().map_or((None, None), |(d, e)| (Some(d), Some(e)));
    let opts = sim_options(&a, 0);
    let doc = serde_json::json!({
        "program": format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
        "seed": a.seed,
        "model": a.model.display().to_string(),
        "sample": sample.name,
        "scan": k,
        "facts": prep.scene_doc["facts"],
        "dynamics": sim.dynamics(),
        "frames": n_frames,
        "frame_time_s": frame_time_s,
        "scene": prep.scene_doc,
        "labels": labels_path.display().to_string(),
        "static_labels": static_path.display().to_string(),
        "mask": mask_path.display().to_string(),
        "kossel_mask": kossel_doc,
        "method": format!("{:?}", opts.method),
        "generator": format!("{:?}", opts.generator),
        "block_pixels": a.block_pixels,
        "grid_du": du,
        "grid_interpolation_error_rel_contrast": err,
        "total_counts": total_counts,
        "truth": {
            "estimator": "symmetric/frame one-time g2 at linear lags (ratio of expectations)",
            "subsamples_per_frame": sampling.subsamples,
            "phasor_terms": sampling.phasors,
            "lags_frames": lags,
            "bins": bins,
        },
    });
    write_atomic(&truth_path, |f| {
        serde_json::to_writer_pretty(&mut *f, &doc)?;
        Ok(())
    })?;
    eprintln!(
        "wrote {} ({} photons), {}, {}, {} and {}",
        a.out.display(),
        total_counts,
        labels_path.display(),
        static_path.display(),
        mask_path.display(),
        truth_path.display()
    );
    Ok(())
}

/// The automatic Kossel/spot mask of the simulated summed image (1 = masked) and a JSON
/// report of what it masked.
fn kossel_mask(
    events: &EventList,
    maps: &QMaps,
    valid: &[bool],
) -> Result<(Vec<u8>, serde_json::Value)> {
    let sum: Vec<f64> = (0..events.n_pixels())
        .map(|p| events.pixel(p).1.iter().map(|&c| f64::from(c)).sum())
        .collect();
    let m = find_mask(&sum, maps, valid, &MaskOptions::default())?;
    let r = &m.report;
    eprintln!("Kossel/spot auto-mask: {r}");
    let doc = serde_json::json!({
        "report": r.to_string(),
        "masked_pixels": m.masked.iter().filter(|&&x| x).count(),
        "flagged_pixels": m.flagged.iter().filter(|&&x| x).count(),
        "features": r.features.iter().map(|f| serde_json::json!({
            "kind": format!("{:?}", f.kind),
            "pixels": f.n_pixels,
        })).collect::<Vec<_>>(),
    });
    Ok((m.masked.iter().map(|&x| u8::from(x)).collect(), doc))
}

fn progress(n_blocks: usize) -> ProgressBar {
    let bar = ProgressBar::new(n_blocks as u64);
    bar.set_style(
        ProgressStyle::with_template("simulate {bar:40} {pos}/{len} blocks, eta {eta}")
            .expect("valid template"),
    );
    bar
}

/// Streams the photons into an HDF5 event file: blocks are simulated in parallel windows of a
/// few blocks per thread and pushed in pixel order, so memory stays ∝ window, not ∝ photons.
/// Returns the total count.
fn stream_events_h5(
    sim: &Simulator,
    out: &Path,
    rows: usize,
    cols: usize,
    n_frames: usize,
    frame_time_s: f64,
    force: bool,
) -> Result<u64> {
    let mut w = xpcs_twin::io::events::EventWriter::create(
        out,
        rows,
        cols,
        n_frames,
        frame_time_s,
        xpcs_twin::data::CountDtype::U32,
        force,
    )?;
    let n = sim.n_blocks();
    let window = 4 * rayon::current_num_threads().max(1);
    let bar = progress(n);
    let mut total = 0u64;
    let mut start = 0;
    while start < n {
        let end = (start + window).min(n);
        let blocks: Vec<_> = (start..end)
            .into_par_iter()
            .map(|b| sim.block(b))
            .collect::<xpcs_twin::Result<_>>()?;
        // collect keeps index order; the check guards the pixel order the writer needs.
        for blk in blocks {
            debug_assert_eq!(blk.first_pixel, w.next_pixel());
            total += blk.counts.iter().map(|&c| u64::from(c)).sum::<u64>();
            w.push_block(blk.first_pixel, &blk.offsets, &blk.frames, &blk.counts)?;
            bar.inc(1);
        }
        start = end;
    }
    bar.finish_and_clear();
    w.finish()?;
    Ok(total)
}

/// Simulates every block and assembles the event list in block order.
fn simulate_in_memory(
    sim: &Simulator,
    rows: usize,
    cols: usize,
    n_frames: usize,
    frame_time_s: f64,
) -> Result<EventList> {
    let bar = progress(sim.n_blocks());
    let slots = Mutex::new(vec![None; sim.n_blocks()]);
    sim.for_each_block(|b| {
        let i = b.index;
        slots.lock().expect("lock")[i] = Some(b);
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    let mut offsets = vec![0u64];
    let (mut frames, mut counts) = (Vec::new(), Vec::new());
    for b in slots.into_inner().expect("lock").into_iter().flatten() {
        let base = frames.len() as u64;
        offsets.extend(b.offsets[1..].iter().map(|&o| o + base));
        frames.extend_from_slice(&b.frames);
        counts.extend_from_slice(&b.counts);
    }
    let events = EventList::new(rows, cols, n_frames, frame_time_s, offsets, frames, counts)?;
    Ok(events)
}

/// Events as NPZ: `offsets` (u64, pixels + 1), `frames` (u32), `counts` (u32),
/// `shape` (u64: rows, cols, frames), `frame_time_s` (f64, one value).
fn write_events_npz(path: &Path, ev: &EventList) -> Result<()> {
    use ndarray::Array1;
    write_atomic(path, |f| {
        let mut z = ndarray_npy::NpzWriter::new(f);
        z.add_array("offsets", &Array1::from(ev.offsets().to_vec()))?;
        z.add_array("frames", &Array1::from(ev.frames().to_vec()))?;
        z.add_array("counts", &Array1::from(ev.counts().to_vec()))?;
        let (r, c) = ev.frame_shape();
        z.add_array(
            "shape",
            &Array1::from(vec![r as u64, c as u64, ev.n_frames() as u64]),
        )?;
        z.add_array("frame_time_s", &Array1::from(vec![ev.frame_time_s()]))?;
        z.finish()?;
        Ok(())
    })
}

fn write_stack(path: &Path, stack: &FrameStack) -> Result<()> {
    let (r, c) = stack.frame_shape();
    let shape = (stack.n_frames(), r, c);
    write_atomic(path, |f| {
        // Views of the stack's own storage: no second copy of the stack in memory.
        if let Some(v) = stack.as_u8() {
            ArrayView3::from_shape(shape, v)?.write_npy(f)?;
        } else if let Some(v) = stack.as_u16() {
            ArrayView3::from_shape(shape, v)?.write_npy(f)?;
        } else if let Some(v) = stack.as_u32() {
            ArrayView3::from_shape(shape, v)?.write_npy(f)?;
        }
        Ok(())
    })
}
