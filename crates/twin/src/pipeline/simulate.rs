//! The `simulate` pipeline: a sample preset → a simulated stack plus its ground truth.
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

use super::Progress;
use crate::config::campaign::{
    AnalysisConfig, BandSpacing, CampaignConfig, CampaignInstrumentConfig, FsdpShapeConfig,
    PartitionConfig, ProtocolTimingConfig, ScaleConfig, ScalesConfig, TolerancesConfig,
};
use crate::config::instrument::{CountingConfig, GeometryConfig};
use crate::config::parse_toml;
use crate::config::sample::{load_sample, Sample};
use crate::data::{EventList, FrameStack};
use crate::instrument::counting::CountingChain;
use crate::instrument::geometry::QMaps;
use crate::instrument::kossel::{find_mask, MaskOptions};
use crate::io::atomic::check_outputs;
use crate::io::output::{write_photons, Acquisition, PhotonFormat};
use crate::model::{BinOptics, Truth};
use crate::speckle::{Exposure, GeneratorKind, Method, PerPixel, Scene, SimOptions, Simulator};
use crate::twin::setup::{CampaignSetup, Scale};
use crate::{Error, Result};
use ndarray::ArrayView3;
use ndarray_npy::{ReadNpyExt, WriteNpyExt};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Field generator choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenArg {
    /// Circulant embedding (any β; uniform grids).
    Circulant,
    /// Random phasors (any β, any time points).
    Phasors,
    /// Exact AR(1) (β = 1 only).
    Ar1,
}

/// Time sampling choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodArg {
    /// Coarse material-time grid + thinning (cost ∝ pixels × scan/τ + photons).
    Grid,
    /// Sub-sampled frames, Poisson per pixel-frame (cost ∝ pixel-frames).
    Exact,
}

/// Output format on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// The scene and simulation settings of `simulate` (the output file, its format and `--force`
/// are [`run`]'s arguments).
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Sample preset (TOML), e.g. models/samples/pt42.toml.
    pub model: PathBuf,
    /// Simulate the first isobar at this pressure (GPa).
    pub pressure: Option<f64>,
    /// Simulate isobar number K (0-based, protocol order; default 0).
    pub scan: Option<usize>,
    /// Frames, 1 to 134217728 (default: the isobar's).
    pub frames: Option<usize>,
    /// Frame time in s, 1e-9 to 1e5 (default: the isobar's).
    pub frame_time: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Detector rows (default: the preset's scene).
    pub rows: Option<usize>,
    /// Detector columns (default: the preset's scene).
    pub cols: Option<usize>,
    /// Mean photons per pixel per frame, > 0 to 1e7 (default: the preset's scene).
    pub mean_counts: Option<f64>,
    /// Speckle contrast (default: the preset's scene).
    pub contrast: Option<f64>,
    /// Number of modes (default: the preset's scene).
    pub modes: Option<f64>,
    /// Number of q-bins of the built-in partition (bands of rows; q varies along rows).
    pub qbins: usize,
    /// q-bin labels (.npy, rows × cols, 0 = excluded) instead of the built-in bands.
    pub labels: Option<PathBuf>,
    /// Field generator.
    pub generator: GenArg,
    /// Phasors per field (phasor generator).
    pub phasor_terms: usize,
    /// Time sampling method.
    pub method: MethodArg,
    /// Sub-samples per frame (exact method) or truth quadrature points (grid method).
    pub subsamples: usize,
    /// Largest interpolation error of the grid method, relative to the contrast term.
    pub grid_tolerance: f64,
    /// Pixels per block (parallel unit and random stream; changes the output).
    pub block_pixels: usize,
    /// Beam preset (models/beams) or TOML file; with --dac and --detector the scene comes from
    /// the instrument model. --rows/--cols then crop a centred region of the detector,
    /// --mean-counts overrides the computed rate, --contrast the computed contrast.
    pub beam: Option<String>,
    /// Diamond anvil cell preset (models/dacs) or TOML file (with --beam, --detector).
    pub dac: Option<String>,
    /// Detector preset (models/detectors) or TOML file (with --beam, --dac).
    pub detector: Option<String>,
    /// Sample–detector distance (m) with the instrument; the detector centre follows q1(P).
    pub distance: f64,
    /// Turn on charge sharing in the counting chain (off by default: the ground truth does not
    /// model it; it lowers the measured contrast by about twice the sharing probability).
    pub charge_sharing: bool,
}

/// Atomic write through the project's one writer (temp file + rename, never over an input);
/// the existence check (`--force`) was made before any work.
fn write_atomic(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), BoxError>,
) -> Result<()> {
    crate::io::atomic::write_atomic(path, &[], true, |w| {
        f(w).map_err(|e| crate::Error::invalid(path.display().to_string(), format!("{e}")))
    })?;
    Ok(())
}

/// Any error of a writer (NPY, NPZ, JSON), reported with the file it was writing.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn read_labels(path: &Path, rows: usize, cols: usize) -> Result<Vec<u32>> {
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    macro_rules! try_type {
        ($t:ty) => {
            if let Ok(a) = ndarray::Array2::<$t>::read_npy(open()?) {
                if a.dim() != (rows, cols) {
                    return Err(Error::ShapeMismatch {
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
                            Error::out_of_range(
                                path.display().to_string(),
                                "label",
                                v,
                                "0 to 2^32-1",
                            )
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
    Err(Error::format(path, "expected a 2-D integer .npy of labels"))
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
fn pick_isobar(a: &SimulateOptions, sample: &Sample) -> Result<usize> {
    let camp = &sample.campaign;
    let k = match (a.pressure, a.scan) {
        (Some(p), _) => camp.find_pressure(p).ok_or_else(|| {
            Error::out_of_range(
                a.model.display().to_string(),
                "--pressure",
                p,
                format!(
                    "one of the isobars: {:?} GPa",
                    camp.isobars
                        .iter()
                        .map(|b| b.pressure_gpa)
                        .collect::<Vec<_>>()
                ),
            )
        })?,
        (None, Some(k)) => k,
        (None, None) => 0,
    };
    if k >= camp.isobars.len() {
        return Err(Error::out_of_range(
            a.model.display().to_string(),
            "--scan",
            k,
            format!("0..{}", camp.isobars.len()),
        ));
    }
    Ok(k)
}

fn sim_options(a: &SimulateOptions, seed: u64) -> SimOptions {
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
    a: &SimulateOptions,
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
    crate::speckle::check_size(
        "command line (--rows, --cols, --frames)",
        rows,
        cols,
        n_frames,
    )?;
    let mut arng = crate::rng::stream(crate::rng::subseed(a.seed, "avalanches"), 0);
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
        return Err(Error::invalid(
            a.model.display().to_string(),
            "q_step_inv_angstrom_per_row makes q ≤ 0 on the detector",
        ));
    }
    scene.rate_factor = PerPixel::Map((0..rows * cols).map(|p| rate_rows[p / cols]).collect());
    let mut labels: Vec<u32> = match &a.labels {
        Some(p) => read_labels(p, rows, cols)?,
        None => {
            if a.qbins == 0 || a.qbins > rows {
                return Err(Error::out_of_range(
                    "command line",
                    "--qbins",
                    a.qbins,
                    format!("1..={rows}"),
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
fn campaign_of(a: &SimulateOptions) -> Result<CampaignConfig> {
    let sample = std::path::absolute(&a.model)
        .map_err(|e| Error::io(&a.model, e))?
        .display()
        .to_string();
    if a.qbins == 0 || a.qbins > 1000 {
        return Err(Error::out_of_range(
            "command line",
            "--qbins",
            a.qbins,
            "1..=1000",
        ));
    }
    crate::check::check_range("command line", "--distance (m)", a.distance, 0.05, 100.0)?;
    let roi_px = match (a.rows, a.cols) {
        (None, None) => None,
        (Some(r), Some(c)) => Some([r, c]),
        _ => {
            return Err(Error::invalid(
                "command line",
                "--rows and --cols crop a region of the detector: give both or neither",
            ))
        }
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
fn prepare_instrument(a: &SimulateOptions, sample: &Sample, k: usize) -> Result<Prepared> {
    let iso = &sample.campaign.isobars[k];
    if let Some(f) = a.frames {
        if f == 0 || f > iso.n_frames {
            return Err(Error::out_of_range(
                "command line",
                "--frames",
                f,
                format!(
                    "1..={} (the isobar's frames; with the instrument the scan is the \
                     protocol's, cut short)",
                    iso.n_frames
                ),
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
            crate::rng::subseed(scan.seed, "counting"),
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
fn check_args(a: &SimulateOptions) -> Result<()> {
    use crate::check::{check_frame_time, check_range};
    for (flag, v) in [
        ("--rows", a.rows),
        ("--cols", a.cols),
        ("--frames", a.frames),
    ] {
        if v == Some(0) {
            return Err(crate::Error::out_of_range("command line", flag, 0, "≥ 1"));
        }
    }
    if let Some(f) = a.frames {
        if f > crate::speckle::MAX_FRAMES {
            return Err(crate::Error::out_of_range(
                "command line",
                "--frames",
                f,
                format!("1 to {}", crate::speckle::MAX_FRAMES),
            ));
        }
    }
    if let Some(t) = a.frame_time {
        check_frame_time("command line", "--frame-time", t)?;
    }
    if let Some(m) = a.mean_counts {
        if !(m.is_finite() && m > 0.0 && m <= crate::speckle::MAX_MEAN_COUNTS) {
            return Err(crate::Error::out_of_range(
                "command line",
                "--mean-counts",
                crate::check::show(m),
                crate::speckle::MEAN_COUNTS_RANGE,
            ));
        }
    }
    if let Some(c) = a.contrast {
        check_range("command line", "--contrast", c, 0.0, 1.0)?;
    }
    Ok(())
}

/// The combinations the command line's parser enforces, checked again for library callers
/// (the Python package): the instrument needs beam, cell and detector together, and replaces
/// the ideal scene's modes, frame time and label file.
pub fn check_combination(a: &SimulateOptions) -> Result<()> {
    let inst = [&a.beam, &a.dac, &a.detector];
    let given = inst.iter().filter(|x| x.is_some()).count();
    if given != 0 && given != 3 {
        return Err(Error::invalid(
            "command line",
            "--beam, --dac and --detector go together: give all three or none",
        ));
    }
    if a.pressure.is_some() && a.scan.is_some() {
        return Err(Error::invalid(
            "command line",
            "--pressure and --scan both choose the isobar: give one",
        ));
    }
    if given == 3 {
        for (flag, set) in [
            ("--modes", a.modes.is_some()),
            ("--frame-time", a.frame_time.is_some()),
            ("--labels", a.labels.is_some()),
        ] {
            if set {
                return Err(Error::invalid(
                    "command line",
                    format!("{flag} belongs to the ideal scene: not with --beam/--dac/--detector"),
                ));
            }
        }
    } else if a.charge_sharing {
        return Err(Error::invalid(
            "command line",
            "--charge-sharing needs the instrument (--beam, --dac, --detector)",
        ));
    }
    Ok(())
}

/// The prepared scene of a run (`format`: the output's, whose detector gaps the ideal scene
/// takes).
fn prepare(
    a: &SimulateOptions,
    sample: &Sample,
    k: usize,
    format: Option<PhotonFormat>,
) -> Result<Prepared> {
    if a.beam.is_some() {
        prepare_instrument(a, sample, k)
    } else {
        prepare_ideal(a, sample, k, format)
    }
}

/// The automatic Kossel/spot mask (1 = masked, rows × cols) and the report of what it masked.
type KosselMask = (Vec<u8>, serde_json::Value);

/// The photons of a prepared run in memory (through the counting chain with the instrument,
/// without the format's gap pixels otherwise) and, with the instrument, the automatic
/// Kossel/spot mask (1 = masked) with its report.
fn photons(prep: &Prepared, progress: &dyn Progress) -> Result<(EventList, Option<KosselMask>)> {
    let sim = &prep.sim;
    let (rows, cols) = (sim.scene().rows, sim.scene().cols);
    let Exposure {
        n_frames,
        frame_time_s,
    } = sim.exposure();
    let mut events = simulate_in_memory(sim, rows, cols, n_frames, frame_time_s, progress)?;
    if let Some((chain, seed)) = &prep.chain {
        events = chain.apply(&events, *seed)?;
    } else if prep.valid.iter().any(|&v| !v) {
        // The format's detector gaps (Rigaku 3M): no photon is recorded there.
        events = crate::instrument::counting::apply_mask(&events, &prep.valid)?;
    }
    let kossel = match &prep.maps {
        Some(maps) => Some(kossel_mask(&events, maps, &prep.valid, progress)?),
        None => None,
    };
    Ok((events, kossel))
}

/// A simulated scan in memory (the Python package's `simulate`).
#[derive(Debug, Clone)]
pub struct Simulated {
    /// The photons, per-pixel CSR (rows × cols pixels, frames, frame time).
    pub events: EventList,
    /// Dynamic q-bin labels, rows × cols row-major (0 = excluded).
    pub labels: Vec<u32>,
    /// Static q-bin labels, rows × cols row-major.
    pub static_labels: Vec<u32>,
    /// Valid pixels (not a gap, dead or hot pixel), rows × cols row-major.
    pub valid: Vec<bool>,
    /// With the instrument: the automatic Kossel/spot mask (1 = masked), rows × cols.
    pub kossel_mask: Option<Vec<u8>>,
    /// The ground truth and the run's facts: the `.truth.json` document of the command line
    /// (file names null).
    pub truth: serde_json::Value,
}

/// Simulates one scan in memory: the same scene, photons and ground truth as [`run`] with an
/// event output, no file written.
pub fn simulate(a: &SimulateOptions, progress: &dyn Progress) -> Result<Simulated> {
    check_combination(a)?;
    let sample = load_sample(&a.model)?;
    let k = pick_isobar(a, &sample)?;
    check_args(a)?;
    let prep = prepare(a, &sample, k, None)?;
    let (events, kossel) = photons(&prep, progress)?;
    let (kossel_mask, kossel_doc) = match kossel {
        Some((m, d)) => (Some(m), d),
        None => (None, serde_json::Value::Null),
    };
    let truth = truth_doc(
        a,
        &sample,
        k,
        &prep,
        events.total_counts(),
        kossel_doc,
        None,
    );
    Ok(Simulated {
        events,
        labels: prep.labels,
        static_labels: prep.static_labels,
        valid: prep.valid,
        kossel_mask,
        truth,
    })
}

/// What [`run`] wrote.
#[derive(Debug, Clone)]
pub struct SimulateOutcome {
    /// Photons simulated.
    pub total_counts: u64,
    /// The files written: the stack or events first (a multi-file format: its first file),
    /// then the labels, static labels and mask, the Kossel mask with the instrument, the
    /// truth last.
    pub written: Vec<PathBuf>,
}

/// Runs `simulate`: writes the photons to `out` in `format` (None: by the extension: .npy
/// dense stack, .npz events, .h5 event file, .bin Rigaku, .imm IMM), the label maps and masks
/// beside it and the ground truth `<out>.truth.json`. Existing outputs are replaced only with
/// `force`.
pub fn run(
    a: &SimulateOptions,
    out: &Path,
    format: Option<FormatArg>,
    force: bool,
    progress: &dyn Progress,
) -> Result<SimulateOutcome> {
    check_combination(a)?;
    let sample = load_sample(&a.model)?;
    let k = pick_isobar(a, &sample)?;
    let Some(format) = format.or_else(|| FormatArg::from_extension(out)) else {
        return Err(Error::invalid(
            out.display().to_string(),
            "output must be .npy (dense stack), .npz (events: offsets, frames, counts), .h5 \
             (xpcs-twin event file, streamed), .bin (Rigaku) or .imm (IMM); or give --format",
        ));
    };
    let writer = format.photon_format();
    if format == FormatArg::Npz && out.extension().is_none_or(|e| e != "npz") {
        return Err(Error::invalid(
            out.display().to_string(),
            "an npz output must end in .npz",
        ));
    }
    check_args(a)?;
    // Every output before any work: none an input or a device, no two the same file.
    let truth_path = out.with_extension("truth.json");
    let labels_path = out.with_extension("labels.npy");
    let static_path = out.with_extension("static_labels.npy");
    let mask_path = out.with_extension("mask.npy");
    let kossel_path = out.with_extension("kossel_mask.npy");
    let inputs: Vec<&Path> = [Some(a.model.as_path()), a.labels.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    let mut outputs = vec![out, &truth_path, &labels_path, &static_path, &mask_path];
    if a.beam.is_some() {
        outputs.push(&kossel_path);
    }
    check_outputs(&outputs, &inputs, force)?;
    let prep = prepare(a, &sample, k, writer)?;
    let sim = &prep.sim;
    let (rows, cols) = (sim.scene().rows, sim.scene().cols);
    let n_frames = sim.exposure().n_frames;
    if let Some(w) = writer {
        // Extension and frame shape, before any simulation.
        w.check(out, (rows, cols))?;
    }
    let bytes = n_frames as f64 * (rows * cols) as f64;
    if format == FormatArg::Npy && bytes > 8e9 {
        return Err(Error::out_of_range(
            "command line",
            "frames × pixels of a dense stack",
            bytes,
            "≤ 8e9 (use an event file for full-scale runs)",
        ));
    }
    // A multi-file format's other files (Eiger data files, Rigaku 3M modules), known once the
    // frame shape is: checked with the rest before any simulation.
    let more = writer.map_or_else(Vec::new, |w| {
        w.files(out, (rows, cols), n_frames, EIGER_FRAMES_PER_FILE)
    });
    if more.iter().any(|m| m != out) {
        let mut all: Vec<&Path> = outputs.clone();
        all.extend(more.iter().filter(|m| *m != out).map(PathBuf::as_path));
        check_outputs(&all, &inputs, force)?;
    }

    // Simulate with a progress bar over blocks (the ideal scene streams .h5 block by block;
    // the counting chain needs the whole list: charge sharing crosses blocks).
    let mut kossel_doc = serde_json::Value::Null;
    let mut written = vec![out.to_path_buf()];
    let total_counts = if format == FormatArg::Events && prep.chain.is_none() {
        stream_events_h5(sim, out, force, progress)?
    } else {
        let (events, kossel) = photons(&prep, progress)?;
        if let Some((mask, doc)) = kossel {
            crate::io::npy::write_npy(&kossel_path, &[rows, cols], &mask, &inputs, force)?;
            kossel_doc = doc;
        }
        match writer {
            None => write_events_npz(out, &events)?,
            Some(PhotonFormat::Npy) => write_stack(out, &events.to_stack())?,
            Some(w) => {
                write_photons(out, w, &events, &prep.acquisition, &inputs, force)?;
            }
        }
        events.total_counts()
    };
    // The label maps and mask the truth refers to, next to the stack (rows × cols).
    crate::io::npy::write_npy(&labels_path, &[rows, cols], &prep.labels, &inputs, force)?;
    crate::io::npy::write_npy(
        &static_path,
        &[rows, cols],
        &prep.static_labels,
        &inputs,
        force,
    )?;
    let mask: Vec<u8> = prep.valid.iter().map(|&v| u8::from(v)).collect();
    crate::io::npy::write_npy(&mask_path, &[rows, cols], &mask, &inputs, force)?;
    written.extend([labels_path.clone(), static_path.clone(), mask_path.clone()]);
    if prep.maps.is_some() {
        written.push(kossel_path);
    }
    let doc = truth_doc(
        a,
        &sample,
        k,
        &prep,
        total_counts,
        kossel_doc,
        Some([&labels_path, &static_path, &mask_path]),
    );
    write_atomic(&truth_path, |f| {
        serde_json::to_writer_pretty(&mut *f, &doc)?;
        Ok(())
    })?;
    written.push(truth_path);
    Ok(SimulateOutcome {
        total_counts,
        written,
    })
}

/// The ground-truth document (`<out>.truth.json`): seed, parameters, scan facts, instrument
/// numbers and the expected g2 per q-bin at a list of lags. `files`: the label, static-label
/// and mask files written beside the stack (None: nothing written).
fn truth_doc(
    a: &SimulateOptions,
    sample: &Sample,
    k: usize,
    prep: &Prepared,
    total_counts: u64,
    kossel_doc: serde_json::Value,
    files: Option<[&Path; 3]>,
) -> serde_json::Value {
    let sim = &prep.sim;
    let Exposure {
        n_frames,
        frame_time_s,
    } = sim.exposure();
    let name = |i: usize| files.map(|f| f[i].display().to_string());
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
    let opts = sim_options(a, 0);
    serde_json::json!({
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
        "labels": name(0),
        "static_labels": name(1),
        "mask": name(2),
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
    })
}

/// The automatic Kossel/spot mask of the simulated summed image (1 = masked) and a JSON
/// report of what it masked.
fn kossel_mask(
    events: &EventList,
    maps: &QMaps,
    valid: &[bool],
    progress: &dyn Progress,
) -> Result<(Vec<u8>, serde_json::Value)> {
    let sum: Vec<f64> = (0..events.n_pixels())
        .map(|p| events.pixel(p).1.iter().map(|&c| f64::from(c)).sum())
        .collect();
    let m = find_mask(&sum, maps, valid, &MaskOptions::default())?;
    let r = &m.report;
    progress.note(&format!("Kossel/spot auto-mask: {r}"));
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

/// Streams the photons into an HDF5 event file: blocks are simulated in parallel windows of a
/// few blocks per thread and pushed in pixel order, so memory stays ∝ window, not ∝ photons.
/// Returns the total count.
fn stream_events_h5(sim: &Simulator, out: &Path, force: bool, bar: &dyn Progress) -> Result<u64> {
    let (rows, cols) = (sim.scene().rows, sim.scene().cols);
    let Exposure {
        n_frames,
        frame_time_s,
    } = sim.exposure();
    let mut w = crate::io::events::EventWriter::create(
        out,
        rows,
        cols,
        n_frames,
        frame_time_s,
        crate::data::CountDtype::U32,
        force,
    )?;
    let n = sim.n_blocks();
    let window = 4 * rayon::current_num_threads().max(1);
    bar.start("simulate", n as u64, "blocks");
    let mut total = 0u64;
    let mut start = 0;
    while start < n {
        let end = (start + window).min(n);
        let blocks: Vec<_> = (start..end)
            .into_par_iter()
            .map(|b| sim.block(b))
            .collect::<crate::Result<_>>()?;
        // collect keeps index order; the check guards the pixel order the writer needs.
        for blk in blocks {
            debug_assert_eq!(blk.first_pixel, w.next_pixel());
            total += blk.counts.iter().map(|&c| u64::from(c)).sum::<u64>();
            w.push_block(blk.first_pixel, &blk.offsets, &blk.frames, &blk.counts)?;
            bar.inc(1);
        }
        start = end;
    }
    bar.finish();
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
    bar: &dyn Progress,
) -> Result<EventList> {
    bar.start("simulate", sim.n_blocks() as u64, "blocks");
    let slots = Mutex::new(vec![None; sim.n_blocks()]);
    sim.for_each_block(|b| {
        let i = b.index;
        slots.lock().expect("lock")[i] = Some(b);
        bar.inc(1);
        Ok(())
    })?;
    bar.finish();
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
