//! Campaign setup: a campaign file → per isobar everything the twin needs to simulate one scan
//! and to know its exact expected correlations.
//!
//! Input: a campaign file ([`crate::config::campaign::CampaignConfig`]) and a [`Scale`].
//! Output: [`CampaignSetup`] with one [`ScanSetup`] per isobar, in protocol order: the scan's
//! [`Dynamics`] and [`ScanFacts`], the speckle [`Scene`] (rows × cols of the region of
//! interest, row-major), the valid mask, the [`QPartition`] (dynamic and static bins with their
//! q centres, Å⁻¹), the exposure, the scan's seed, and [`ScanSetup::truth_g2`], the exact
//! expected g2 per dynamic bin at any multi-tau lag (dimensionless, → 1 at long lags).
//!
//! The instrument's scene ([`xpcs_sim::instrument::scene::Scene`]) is converted into the speckle
//! simulator's scene ([`xpcs_sim::speckle::Scene`]) here and only here; per-pixel values
//! ([`PerPixel`], one type for both) are cropped in [`crop_per_pixel`]. Two deliberate
//! quantisations make the ground truth exact and cheap: the clock-rate factor (q/q1)^α of a
//! pixel is evaluated at the mean q of its static sub-bin, and per-pixel static / incoherent
//! fractions (anvil spots) are rounded to 1/256. The simulation uses the quantised scene, so
//! the truth is exact for what was simulated; the quantisation error against the continuous
//! scene is below (Δq/q1)·α/(2 × static_per_dynamic) in the rate (≈ 1e-4 for the presets).
//!
//! Scales: `reduced` crops a region of interest (and may cap frames); statistical errors of
//! every fitted quantity grow as 1/sqrt(N_pix) against the full detector. `full` runs the
//! whole detector.
//!
//! Reference: docs/model.md §1–4 (pipeline, material clock, speckle, instrument).

use super::shard::sim_options;
use crate::config::campaign::{BandSpacing, CampaignConfig, ScaleConfig};
use std::path::{Path, PathBuf};
use xpcs_core::check::{check_positive, check_range};
use xpcs_core::data::QPartition;
use xpcs_core::error::{Error, Result};
use xpcs_sim::config::instrument::{
    load_preset, BeamConfig, DacConfig, DetectorConfig, FsdpConfig,
};
use xpcs_sim::config::load_toml;
use xpcs_sim::config::sample::{load_sample, Sample};
use xpcs_sim::instrument::counting::CountingChain;
use xpcs_sim::instrument::detector::DefectMaps;
use xpcs_sim::instrument::dose::DoseRate;
use xpcs_sim::instrument::geometry::{partition, PartitionSpec, QBands, QMaps};
use xpcs_sim::instrument::scene::{Fsdp, Instrument};
use xpcs_sim::instrument::{Beam, Dac, Detector};
use xpcs_sim::model::{BinOptics, Direction, Dynamics, Isobar, Sampling, ScanFacts, Truth};
use xpcs_sim::speckle::{Exposure, PerPixel, Scene, Simulator};

/// Which size to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Region of interest / fewer frames: minutes on 2 cores.
    Reduced,
    /// The beamline-sized detector.
    Full,
}

impl Scale {
    /// "reduced" or "full".
    pub fn name(self) -> &'static str {
        match self {
            Scale::Reduced => "reduced",
            Scale::Full => "full",
        }
    }
}

/// A rectangular region of interest on the detector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Roi {
    /// First row.
    pub row0: usize,
    /// First column.
    pub col0: usize,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Detector rows.
    pub det_rows: usize,
    /// Detector columns.
    pub det_cols: usize,
}

impl Roi {
    /// The ROI of `scale` on a detector of `det_rows` × `det_cols`.
    pub fn new(
        scale: &ScaleConfig,
        det_rows: usize,
        det_cols: usize,
        origin: &str,
    ) -> Result<Self> {
        let [rows, cols] = scale.roi_px.unwrap_or([det_rows, det_cols]);
        if rows == 0 || cols == 0 || rows > det_rows || cols > det_cols {
            return Err(Error::out_of_range(
                origin,
                "roi_px",
                format!("[{rows}, {cols}]"),
                format!("1..={det_rows} rows, 1..={det_cols} cols (the detector)"),
            ));
        }
        let r0 = det_rows as i64 / 2 + scale.roi_offset_px[0] - rows as i64 / 2;
        let c0 = det_cols as i64 / 2 + scale.roi_offset_px[1] - cols as i64 / 2;
        if r0 < 0 || c0 < 0 || r0 as usize + rows > det_rows || c0 as usize + cols > det_cols {
            return Err(Error::invalid(
                origin,
                format!(
                    "roi_offset_px {:?} puts the {rows} × {cols} ROI outside the {det_rows} × \
                     {det_cols} detector",
                    scale.roi_offset_px
                ),
            ));
        }
        Ok(Roi {
            row0: r0 as usize,
            col0: c0 as usize,
            rows,
            cols,
            det_rows,
            det_cols,
        })
    }

    /// Crops a row-major detector map.
    pub fn crop<T: Clone>(&self, full: &[T]) -> Vec<T> {
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in self.row0..self.row0 + self.rows {
            let s = r * self.det_cols + self.col0;
            out.extend_from_slice(&full[s..s + self.cols]);
        }
        out
    }

    /// Whether the ROI is the whole detector.
    pub fn is_full(&self) -> bool {
        self.rows == self.det_rows && self.cols == self.det_cols
    }
}

/// Everything about one scan (one isobar).
#[derive(Debug, Clone)]
pub struct ScanSetup {
    /// Index in the protocol.
    pub index: usize,
    /// A short label, e.g. `03-c3.3GPa`.
    pub label: String,
    /// The isobar (protocol entry).
    pub isobar: Isobar,
    /// Dynamics of the scan (times in s since the scan start).
    pub dynamics: Dynamics,
    /// Facts (pressure, τ at start/end, q1, avalanche times).
    pub facts: ScanFacts,
    /// The scene the speckle simulator consumes (ROI, quantised; see the module doc).
    pub scene: Scene,
    /// Valid pixels of the ROI (gaps false).
    pub valid: Vec<bool>,
    /// q-partition of the ROI (dynamic + static bins with q centres).
    pub partition: QPartition,
    /// Exposure (frames, frame time).
    pub exposure: Exposure,
    /// The scan's seed (`rng::subseed(campaign seed, "scan-<k>")`).
    pub seed: u64,
    /// Speckle contrast of the instrument at this pressure (before the incoherent dilution).
    pub contrast: f64,
    /// What g2 − 1 shows at short lag: `contrast` × (1 − x_b)², x_b the cell's incoherent
    /// fraction (the contrast a planner must use).
    pub contrast_measured: f64,
    /// The cell's incoherent fraction x_b at this isobar (the cell file's number, or computed
    /// from the cell geometry at the detector centre's 2θ).
    pub incoherent_fraction: f64,
    /// Dose rate in the illuminated sample column while the beam is on (Gy/s).
    pub dose_rate_gy_s: f64,
    /// Scattering angle of the detector centre (radians).
    pub two_theta_c_rad: f64,
    /// Mean counts per valid pixel per frame.
    pub mean_counts_per_frame: f64,
    /// The counting chain on the ROI (defect maps cropped; dead and hot pixels masked out of
    /// the partition, as a beamline mask would).
    pub chain: CountingChain,
    /// Counting efficiency per ROI pixel (1 when the gain step is off): the truth uses
    /// efficiency × mean counts, since binomial thinning of Poisson photons is Poisson with
    /// the thinned mean.
    pub efficiency: Vec<f64>,
    /// q of each region pixel (Å⁻¹, row-major).
    pub q_map: Vec<f64>,
    /// Kossel-line transmission of each region pixel (1 off the lines).
    pub kossel_transmission: Vec<f64>,
}

/// A loaded and validated campaign at one scale.
#[derive(Debug, Clone)]
pub struct CampaignSetup {
    /// The campaign file.
    pub path: PathBuf,
    /// The parsed file.
    pub config: CampaignConfig,
    /// The sample (dynamics + protocol).
    pub sample: Sample,
    /// The sample file's path.
    pub sample_path: PathBuf,
    /// The instrument (full detector).
    pub instrument: Instrument,
    /// Scale.
    pub scale: Scale,
    /// Region of interest.
    pub roi: Roi,
    /// Master seed.
    pub seed: u64,
    /// Scans in protocol order.
    pub scans: Vec<ScanSetup>,
    /// The scans hold only their light parts ([`ScanSetup::light`]): a campaign run builds
    /// each scan's per-pixel data ([`CampaignSetup::build`]) when it runs it and drops it
    /// after, so that a full-detector campaign holds one scan's maps at a time (see
    /// [`CampaignSetup::load_deferred`]).
    pub deferred: bool,
}

/// Crops a full-detector per-pixel value to the ROI (rounded to `step` when per pixel; see
/// the module doc).
pub fn crop_per_pixel(v: &PerPixel, roi: &Roi, step: f64) -> PerPixel {
    match v {
        PerPixel::Uniform(x) => PerPixel::Uniform(*x),
        PerPixel::Map(m) => {
            let c = roi.crop(m);
            if c.iter().all(|&x| x == c[0]) {
                PerPixel::Uniform(c[0])
            } else {
                PerPixel::Map(
                    c.into_iter()
                        .map(|x| ((x / step).round() * step).clamp(0.0, 1.0))
                        .collect(),
                )
            }
        }
    }
}

impl CampaignSetup {
    /// The scan with campaign index `index` (indices stay those of the campaign file when a
    /// scenario runs only some scans).
    pub fn scan(&self, index: usize) -> &ScanSetup {
        self.scans
            .iter()
            .find(|s| s.index == index)
            .expect("a scan result comes from one of the setup's scans")
    }

    /// Loads a campaign file at `scale`; `seed` overrides the file's seed.
    pub fn load(path: &Path, scale: Scale, seed: Option<u64>) -> Result<Self> {
        let config: CampaignConfig = load_toml(path)?;
        Self::from_config(config, path, scale, seed)
    }

    /// [`CampaignSetup::load`] with deferred scans: every scan is set up and checked now, then
    /// kept in its light form ([`ScanSetup::light`]; on the full Eiger2 4M a scan's per-pixel
    /// maps are ~0.35 GB, ~3.5 GB for the Pt campaign's 10 scans). For campaign runs
    /// ([`super::run_campaign_within`]); code that reads a scan's scene, masks or maps needs
    /// [`CampaignSetup::build`].
    pub fn load_deferred(path: &Path, scale: Scale, seed: Option<u64>) -> Result<Self> {
        let config: CampaignConfig = load_toml(path)?;
        Self::from_config_impl(config, path, scale, seed, &[], true)
    }

    /// The whole set-up of scan `s` (one of this setup's scans): `s` itself when the scans are
    /// not deferred, else built again (the same deterministic set-up).
    pub fn build<'a>(&self, s: &'a ScanSetup) -> Result<std::borrow::Cow<'a, ScanSetup>> {
        if !self.deferred {
            return Ok(std::borrow::Cow::Borrowed(s));
        }
        let sc = self.scale_config();
        let full = build_scan(
            &self.sample,
            &self.instrument,
            &self.config,
            &self.roi,
            sc.max_frames,
            self.seed,
            s.index,
        )?;
        Ok(std::borrow::Cow::Owned(full))
    }

    /// Bytes held by the per-pixel data of every scan set-up (resident for the whole run).
    pub fn resident_bytes(&self) -> f64 {
        self.scans.iter().map(ScanSetup::resident_bytes).sum()
    }

    /// [`CampaignSetup::load`] keeping only the isobars at `pressure_gpa` (every isobar when
    /// None). The pressure is checked first (finite, one of the campaign's isobars: else an
    /// error naming `field` and listing them), from the campaign and sample files alone, so a
    /// bad value costs no scan set-up.
    pub fn load_at_pressure(
        path: &Path,
        scale: Scale,
        seed: Option<u64>,
        pressure_gpa: Option<f64>,
        field: &str,
    ) -> Result<Self> {
        let config: CampaignConfig = load_toml(path)?;
        let Some(p) = pressure_gpa else {
            return Self::from_config(config, path, scale, seed);
        };
        let origin = path.display().to_string();
        let sample_path = path.parent().unwrap_or(Path::new(".")).join(&config.sample);
        let sample = load_sample(&sample_path)?;
        let isobars = &sample.campaign.isobars;
        let only: Vec<String> = isobars
            .iter()
            .enumerate()
            .filter(|(_, b)| p.is_finite() && (b.pressure_gpa - p).abs() < 1e-6)
            .map(|(k, b)| scan_label(b, k))
            .collect();
        if only.is_empty() {
            let have: Vec<String> = isobars.iter().map(|b| b.pressure_gpa.to_string()).collect();
            return Err(Error::out_of_range(
                origin,
                field,
                p,
                format!("one of the isobars: {} GPa", have.join(", ")),
            ));
        }
        Self::from_config_only(config, path, scale, seed, &only)
    }

    /// Validates a parsed campaign (`path` locates the sample file and names errors).
    pub fn from_config(
        config: CampaignConfig,
        path: &Path,
        scale: Scale,
        seed: Option<u64>,
    ) -> Result<Self> {
        Self::from_config_only(config, path, scale, seed, &[])
    }

    /// [`CampaignSetup::from_config`] keeping only the scans labelled `only` (a label such as
    /// `09-c7GPa` or a protocol index such as `9`; every scan when
    /// empty; labels of [`scan_label`]). Kept scans keep their campaign index and seed.
    pub fn from_config_only(
        config: CampaignConfig,
        path: &Path,
        scale: Scale,
        seed: Option<u64>,
        only: &[String],
    ) -> Result<Self> {
        Self::from_config_impl(config, path, scale, seed, only, false)
    }

    /// [`CampaignSetup::from_config_only`], with the scans deferred when `deferred` (see
    /// [`CampaignSetup::load_deferred`]).
    pub fn from_config_impl(
        config: CampaignConfig,
        path: &Path,
        scale: Scale,
        seed: Option<u64>,
        only: &[String],
        deferred: bool,
    ) -> Result<Self> {
        let mut setup = Self::without_scans(config, path, scale, seed)?;
        let camp = &setup.sample.campaign;
        let sc = setup.scale_config();
        let mut scans = Vec::with_capacity(camp.isobars.len());
        for k in 0..camp.isobars.len() {
            let label = scan_label(&camp.isobars[k], k);
            let chosen = |o: &String| *o == label || o.parse::<usize>().ok() == Some(k);
            if !only.is_empty() && !only.iter().any(chosen) {
                continue;
            }
            let s = build_scan(
                &setup.sample,
                &setup.instrument,
                &setup.config,
                &setup.roi,
                sc.max_frames,
                setup.seed,
                k,
            )?;
            scans.push(if deferred { s.light() } else { s });
        }
        setup.scans = scans;
        setup.deferred = deferred;
        Ok(setup)
    }

    /// The preset of the setup's scale (`[scale.reduced]` or `[scale.full]`).
    pub fn scale_config(&self) -> &ScaleConfig {
        match self.scale {
            Scale::Reduced => &self.config.scale.reduced,
            Scale::Full => &self.config.scale.full,
        }
    }

    /// The label and frame count of every isobar of the campaign at this scale, in protocol
    /// order (from the campaign and sample files alone: no scan is set up).
    pub fn isobar_labels(&self) -> Vec<(String, usize)> {
        let max_frames = self.scale_config().max_frames;
        self.sample
            .campaign
            .isobars
            .iter()
            .enumerate()
            .map(|(k, iso)| {
                let n = max_frames.map_or(iso.n_frames, |m| m.min(iso.n_frames));
                (scan_label(iso, k), n)
            })
            .collect()
    }

    /// [`CampaignSetup::from_config`] without setting up any scan (`scans` empty): the
    /// campaign, sample, instrument and ROI validated, in milliseconds at any scale.
    pub fn without_scans(
        config: CampaignConfig,
        path: &Path,
        scale: Scale,
        seed: Option<u64>,
    ) -> Result<Self> {
        let origin = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new("."));
        let sample_path = dir.join(&config.sample);
        if !sample_path.exists() {
            return Err(Error::invalid(
                &origin,
                format!(
                    "sample = \"{}\": no such file ({})",
                    config.sample,
                    sample_path.display()
                ),
            ));
        }
        let sample = load_sample(&sample_path)?;
        let camp = &sample.campaign;
        let ic = &config.instrument;
        // Preset names stay names; file paths are relative to the campaign file.
        let resolve = |n: &str| -> String {
            if (n.contains('/') || n.ends_with(".toml")) && Path::new(n).is_relative() {
                dir.join(n).display().to_string()
            } else {
                n.to_string()
            }
        };
        let (b, bo) = load_preset::<BeamConfig>("beams", &resolve(&ic.beam))?;
        let beam = Beam::new(&b, &bo)?;
        let (mut d, dorig) = load_preset::<DacConfig>("dacs", &resolve(&ic.dac))?;
        if !ic.kossel {
            d.kossel.n_lines = 0;
            d.kossel.n_spots = 0;
        }
        let dac = Dac::new(&d, &dorig, &beam)?;
        let (dc, detorig) = load_preset::<DetectorConfig>("detectors", &resolve(&ic.detector))?;
        let detector = Detector::new(&dc, &detorig)?;
        // The FSDP position and shift are the sample's: one source of truth for q1(P).
        let fsdp = Fsdp::new(
            &FsdpConfig {
                q1_inv_angstrom: camp.response.q1_inv_angstrom_at_0gpa,
                dq1_dp_inv_angstrom_per_gpa: camp.response.q1_shift_inv_angstrom_per_gpa,
                fwhm_inv_angstrom: ic.fsdp.fwhm_inv_angstrom,
                peak: ic.fsdp.peak,
                base: ic.fsdp.base,
            },
            &format!("{origin} [instrument.fsdp]"),
        )?;
        let instrument = Instrument::new(
            beam,
            dac,
            detector,
            ic.geometry.clone(),
            &format!("{origin} [instrument.geometry]"),
            fsdp,
            ic.contrast,
        )?;
        let sc = match scale {
            Scale::Reduced => &config.scale.reduced,
            Scale::Full => &config.scale.full,
        };
        let roi = Roi::new(
            sc,
            instrument.detector.rows,
            instrument.detector.cols,
            &format!("{origin} [scale.{}]", scale.name()),
        )?;
        check_config(&config, &origin)?;
        check_protocol(&sample, &config, &origin)?;
        let seed = seed.unwrap_or(config.seed);
        Ok(CampaignSetup {
            path: path.to_path_buf(),
            config,
            sample,
            sample_path,
            instrument,
            scale,
            roi,
            seed,
            scans: Vec::new(),
            deferred: false,
        })
    }
}

fn check_config(c: &CampaignConfig, origin: &str) -> Result<()> {
    let a = &c.analysis;
    if a.num_bufs < 2 || a.num_bufs % 2 != 0 || a.num_bufs > 1024 {
        return Err(Error::out_of_range(
            format!("{origin} [analysis]"),
            "num_bufs",
            a.num_bufs,
            "an even number in 2..=1024",
        ));
    }
    if a.two_time_max_side < 8 || a.two_time_max_side > 20_000 {
        return Err(Error::out_of_range(
            format!("{origin} [analysis]"),
            "two_time_max_side",
            a.two_time_max_side,
            "8..=20000",
        ));
    }
    check_range(
        &format!("{origin} [analysis]"),
        "delta_c_fraction",
        a.delta_c_fraction,
        0.05,
        0.999,
    )?;
    if let Some(b) = a.delta_c_bin_s {
        check_range(
            &format!("{origin} [analysis]"),
            "delta_c_bin_s",
            b,
            1e-6,
            1e6,
        )?;
    }
    if let Some(b) = a.fixed_baseline {
        check_range(
            &format!("{origin} [analysis]"),
            "fixed_baseline",
            b,
            0.5,
            2.0,
        )?;
    }
    let p = &c.partition;
    if p.q_bins == 0 || p.q_bins > 1000 {
        return Err(Error::out_of_range(
            format!("{origin} [partition]"),
            "q_bins",
            p.q_bins,
            "1..=1000",
        ));
    }
    if p.phi_sectors == 0 || p.static_per_dynamic == 0 || p.static_per_dynamic > 64 {
        return Err(Error::out_of_range(
            format!("{origin} [partition]"),
            "phi_sectors / static_per_dynamic",
            format!("{} / {}", p.phi_sectors, p.static_per_dynamic),
            "≥ 1 / 1..=64",
        ));
    }
    check_positive(
        &format!("{origin} [protocol]"),
        "compression_step_s",
        c.protocol.compression_step_s,
    )?;
    if let Some(d) = c.protocol.decompression_step_s {
        check_positive(&format!("{origin} [protocol]"), "decompression_step_s", d)?;
    }
    Ok(())
}

/// Refuses protocols whose scans overrun their pressure step (isobars overlapping in time)
/// and pressures outside the range where a τ branch is defined by points.
pub fn check_protocol(sample: &Sample, c: &CampaignConfig, origin: &str) -> Result<()> {
    let camp = &sample.campaign;
    for (k, b) in camp.isobars.iter().enumerate() {
        let step = b.step_s.unwrap_or(match b.direction {
            Direction::Compression => c.protocol.compression_step_s,
            Direction::Decompression => c
                .protocol
                .decompression_step_s
                .unwrap_or(c.protocol.compression_step_s),
        });
        let end = b.waiting_time_s + b.n_frames as f64 * b.frame_time_s;
        if end > step * (1.0 + 1e-9) {
            return Err(Error::invalid(
                origin,
                format!(
                    "isobar {k} ({} GPa, {:?}): waiting {} s + scan {} × {} s = {end} s ends \
                     after the {step} s pressure step, overlapping the next isobar in time \
                     (limit: waiting_time_s + frames × frame_time_s ≤ step)",
                    b.pressure_gpa, b.direction, b.waiting_time_s, b.n_frames, b.frame_time_s
                ),
            ));
        }
        let branch = match b.direction {
            Direction::Compression => &camp.response.compression,
            Direction::Decompression => &camp.response.decompression,
        };
        if let xpcs_sim::model::TauBranch::Points(pts) = branch {
            let (lo, hi) = (pts[0].0, pts[pts.len() - 1].0);
            if b.pressure_gpa < lo - 1e-9 || b.pressure_gpa > hi + 1e-9 {
                return Err(Error::out_of_range(
                    format!("{} [[isobar]] {k}", sample_origin(c)),
                    "pressure_gpa",
                    b.pressure_gpa,
                    format!(
                        "{lo}..={hi} GPa, where the {:?} branch is defined",
                        b.direction
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn sample_origin(c: &CampaignConfig) -> String {
    c.sample.clone()
}

/// Pixels whose static fraction exceeds this are anvil spots and masked from the analysis
/// (the cell's own static fraction is a few %; a spot pixel's is ≈ 1).
pub const SPOT_STATIC_FRACTION_MAX: f64 = 0.5;

/// The label of isobar `k` of a campaign, e.g. `03-c3.3GPa` (index, compression or
/// decompression, pressure).
pub fn scan_label(iso: &Isobar, k: usize) -> String {
    let dir = match iso.direction {
        Direction::Compression => 'c',
        Direction::Decompression => 'd',
    };
    format!("{k:02}-{dir}{}GPa", iso.pressure_gpa)
}

pub(crate) fn build_scan(
    sample: &Sample,
    inst: &Instrument,
    c: &CampaignConfig,
    roi: &Roi,
    max_frames: Option<usize>,
    seed: u64,
    k: usize,
) -> Result<ScanSetup> {
    let camp = &sample.campaign;
    let iso = camp.isobars[k].clone();
    let n_frames = max_frames.map_or(iso.n_frames, |m| m.min(iso.n_frames));
    let frame_time_s = iso.frame_time_s;
    let mut arng = xpcs_sim::rng::stream(xpcs_sim::rng::subseed(seed, "avalanches"), k as u64);
    let (mut dynamics, mut facts) = camp.scan(k, n_frames, frame_time_s, &mut arng)?;
    // Beam-induced relaxation: du/dt = 1/τ + k · Ḋ while the beam is on (during the scan).
    let dose_rate_gy_s = DoseRate::new(&inst.beam, &inst.dac).gy_per_s;
    if sample.beam_relaxation_per_gy > 0.0 {
        let r = sample.beam_relaxation_per_gy * dose_rate_gy_s;
        dynamics = dynamics.with_beam_rate(r, "beam_relaxation_per_gy × dose rate")?;
        facts.tau_start_s = 1.0 / (1.0 / facts.tau_start_s + r);
        facts.tau_end_s = 1.0 / (1.0 / facts.tau_end_s + r);
    }
    let p = iso.pressure_gpa;
    let (isc, maps, kmap) = inst.scene(p, frame_time_s, c.instrument.mean_rate_hz)?;
    // Detector defects on the ROI; dead and hot pixels are masked like module gaps.
    let steps = &c.instrument.counting;
    let defects = inst.detector.defects();
    let dead = roi.crop(&defects.dead);
    let hot = roi.crop(&defects.hot);
    let efficiency = if steps.gain {
        roi.crop(&defects.efficiency)
    } else {
        vec![1.0; roi.rows * roi.cols]
    };
    let mut valid = roi.crop(&isc.valid);
    if steps.bad_pixels {
        for (v, (&d, &h)) in valid.iter_mut().zip(dead.iter().zip(&hot)) {
            *v &= !d && !h;
        }
    }
    // The analysis mask covers the diamonds' Bragg (anvil) spots, as the seed's raw mask covered
    // the Kossel features of the diamonds (Pt seed, SI §6, l. 855-858): a pixel whose static
    // intensity outweighs the rest carries a frozen spot, not the glass; with ~80× a bin's mean
    // intensity it would dominate the bin's Σμ² weighting (Ce full detector: g2 baseline 5.3).
    if let PerPixel::Map(x) = &isc.static_fraction {
        for (v, &x) in valid.iter_mut().zip(&roi.crop(x)) {
            *v &= x <= SPOT_STATIC_FRACTION_MAX;
        }
    }
    let chain = CountingChain {
        steps: steps.clone(),
        detector: inst.detector.clone(),
        defects: DefectMaps {
            dead,
            hot,
            efficiency: efficiency.clone(),
        },
        valid: valid.clone(),
    };
    let cmaps = QMaps {
        rows: roi.rows,
        cols: roi.cols,
        two_theta_rad: roi.crop(&maps.two_theta_rad),
        phi_deg: roi.crop(&maps.phi_deg),
        q_inv_angstrom: roi.crop(&maps.q_inv_angstrom),
        solid_angle_sr: roi.crop(&maps.solid_angle_sr),
        polarisation: roi.crop(&maps.polarisation),
        direction: roi.crop(&maps.direction),
    };
    let pc = &c.partition;
    let spec = PartitionSpec {
        bands: match pc.spacing {
            BandSpacing::Uniform => QBands::Uniform(pc.q_bins),
            BandSpacing::EqualPixels => QBands::EqualPixels(pc.q_bins),
        },
        sectors: pc.phi_sectors,
        static_per_dynamic: pc.static_per_dynamic,
    };
    let part = partition(&cmaps, &valid, &spec)?;
    // Clock-rate factor at each static sub-bin's mean q (module doc: exact, cheap truth).
    let saxes = part.static_axes();
    let slabels = part.static_map().labels();
    let rate: Vec<f64> = slabels
        .iter()
        .map(|&l| {
            if l == 0 {
                1.0
            } else {
                camp.response
                    .rate_factor(saxes[l as usize - 1].q_inv_angstrom, p)
            }
        })
        .collect();
    if rate.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
        return Err(Error::invalid(
            "campaign",
            "a q-bin has a non-positive q: clock-rate factor undefined",
        ));
    }
    let mean_counts = roi.crop(&isc.mean_counts);
    let nv = valid.iter().filter(|&&v| v).count();
    if nv == 0 {
        return Err(Error::invalid(
            "campaign",
            "the region of interest holds no valid pixel (all module gaps)",
        ));
    }
    let mean_cpf = mean_counts.iter().sum::<f64>() / nv as f64;
    let scene = Scene {
        rows: roi.rows,
        cols: roi.cols,
        mean_counts,
        rate_factor: PerPixel::Map(rate),
        contrast: isc.contrast,
        modes: 1.0,
        static_fraction: crop_per_pixel(&isc.static_fraction, roi, 1.0 / 256.0),
        incoherent_fraction: crop_per_pixel(&isc.incoherent_fraction, roi, 1.0 / 256.0),
    };
    scene.validate()?;
    Ok(ScanSetup {
        index: k,
        label: scan_label(&iso, k),
        isobar: iso,
        dynamics,
        facts,
        scene,
        valid,
        partition: part,
        exposure: Exposure {
            n_frames,
            frame_time_s,
        },
        seed: xpcs_sim::rng::subseed(seed, &format!("scan-{k}")),
        contrast: isc.contrast,
        contrast_measured: isc.contrast * (1.0 - isc.cell_incoherent_fraction).powi(2),
        incoherent_fraction: isc.cell_incoherent_fraction,
        dose_rate_gy_s,
        two_theta_c_rad: isc.two_theta_c_rad,
        mean_counts_per_frame: mean_cpf,
        chain,
        efficiency,
        q_map: cmaps.q_inv_angstrom.clone(),
        kossel_transmission: roi.crop(&kmap.transmission),
    })
}

/// Sub-sample quadrature points per frame the truth uses for the grid method's continuous
/// frame integration (midpoint rule; error O(δt²/τ²) ≤ 1e-5 for the presets' δt ≤ τ/100).
pub const TRUTH_QUADRATURE: usize = 2;

impl ScanSetup {
    /// Bytes of this set-up's per-pixel data (scene, masks, maps, partition, counting chain).
    pub fn resident_bytes(&self) -> f64 {
        let per_pixel = |v: &PerPixel| match v {
            PerPixel::Uniform(_) => 0,
            PerPixel::Map(m) => 8 * m.len(),
        };
        let sc = &self.scene;
        let d = &self.chain.defects;
        // Mask (1 byte) and two label maps (u32 label + u32 pixel list entry) per pixel.
        let n_part = self.partition.mask().len();
        let bytes = 8 * sc.mean_counts.len()
            + per_pixel(&sc.rate_factor)
            + per_pixel(&sc.static_fraction)
            + per_pixel(&sc.incoherent_fraction)
            + self.valid.len()
            + 17 * n_part
            + d.dead.len()
            + d.hot.len()
            + 8 * d.efficiency.len()
            + self.chain.valid.len()
            + 8 * (self.efficiency.len() + self.q_map.len() + self.kossel_transmission.len());
        bytes as f64
    }

    /// This set-up without its per-pixel data, except the partition (kept for the results
    /// file layout and the bins' q): scene maps, masks, the counting chain's defect maps,
    /// efficiency, q and Kossel maps are emptied. What a finished scan's analysis and report
    /// read (label, isobar, dynamics, facts, exposure, seed, contrasts, dose) stays.
    pub fn light(mut self) -> ScanSetup {
        self.scene.mean_counts = Vec::new();
        self.scene.rate_factor = PerPixel::Map(Vec::new());
        self.scene.static_fraction = PerPixel::Map(Vec::new());
        self.scene.incoherent_fraction = PerPixel::Map(Vec::new());
        self.valid = Vec::new();
        self.chain.defects = DefectMaps {
            dead: Vec::new(),
            hot: Vec::new(),
            efficiency: Vec::new(),
        };
        self.chain.valid = Vec::new();
        self.efficiency = Vec::new();
        self.q_map = Vec::new();
        self.kossel_transmission = Vec::new();
        self
    }

    /// Optics of dynamic bin `bin` (1-based) grouped into classes.
    pub fn bin_optics(&self, bin: usize) -> BinOptics {
        BinOptics::new(self.partition.dynamic().pixels(bin).iter().map(|&p| {
            let mut o = self.scene.optics(p as usize);
            o.mean_counts *= self.efficiency[p as usize];
            o
        }))
    }

    /// q centre of each dynamic bin (Å⁻¹).
    pub fn q_centres(&self) -> Vec<f64> {
        self.partition
            .dynamic_axes()
            .iter()
            .map(|a| a.q_inv_angstrom)
            .collect()
    }

    /// Whether the dynamics are stationary (no aging, no avalanches, no domain
    /// rearrangements): then E\[C(n, m)\] depends on m - n only.
    pub fn is_stationary(&self) -> bool {
        self.dynamics.is_stationary()
    }

    /// The truth sampling of this scan (grid method, exact Gaussian generator; with domain
    /// clock jumps, the grid spacing the jumps are rounded to).
    pub fn sampling(&self) -> Sampling {
        let jump_grid = if self.dynamics.domains().has_jumps() {
            // The twin's options are constant and valid: no error to report here.
            Simulator::grid_spacing_of(&self.scene, &self.dynamics, &sim_options(self.seed))
                .ok()
                .flatten()
                .map(|(du, _)| du)
        } else {
            None
        };
        Sampling {
            n_frames: self.exposure.n_frames,
            frame_time_s: self.exposure.frame_time_s,
            subsamples: TRUTH_QUADRATURE,
            phasors: None,
            jump_grid,
        }
    }

    /// Exact expected g2 of dynamic bin `bin` at multi-tau entries (lag in frames, frames
    /// summed per level-frame w): the mean over level-frame pairs (s, s + k) of the
    /// block average (1/w²) Σ_{i,j<w} E\[C(s w + i, (s + k) w + j)\] (E\[I\] = 1 at every
    /// frame, so the symmetric and frame estimators share it; ratio of expectations).
    /// Stationary scans use the exact lag-difference sum, O(w) per lag; others average
    /// every level-frame pair with at most 4 × 4 stratified frame pairs per block (exact for
    /// w ≤ 4; beyond, a midpoint rule over the block whose error is second order in w/τ).
    pub fn truth_g2(&self, bin: usize, entries: &[(u64, u64)]) -> Vec<f64> {
        let optics = self.bin_optics(bin);
        let truth = Truth::new(&self.dynamics, &optics, self.sampling());
        let t_n = self.exposure.n_frames;
        let stationary = self.is_stationary();
        entries
            .iter()
            .map(|&(lag, w)| {
                let (lag, w) = (lag as usize, w.max(1) as usize);
                let n_level = t_n / w;
                let k = lag / w;
                if n_level <= k || n_level == 0 {
                    return f64::NAN;
                }
                if stationary {
                    return truth.g2_block_stationary(lag, w);
                }
                let sub = w.min(4);
                let pts: Vec<usize> = (0..sub).map(|i| (2 * i + 1) * w / (2 * sub)).collect();
                let mut total = 0.0;
                for s in 0..n_level - k {
                    let mut acc = 0.0;
                    for &i in &pts {
                        for &j in &pts {
                            acc += truth.c2(s * w + i, (s + k) * w + j);
                        }
                    }
                    total += acc / (sub * sub) as f64;
                }
                total / (n_level - k) as f64
            })
            .collect()
    }

    /// Exact expected two-time map of dynamic bin `bin` on level-frames of `w` frames
    /// (n × n, n = frames / w): block averages over 2 × 2 stratified frame pairs per block
    /// (exact for w ≤ 2; beyond, a midpoint rule whose error is second order in w δt/τ,
    /// ≤ 0.3 % of the contrast term for the presets' w δt ≤ τ/20), rows in parallel.
    pub fn truth_c2_binned(&self, bin: usize, w: usize) -> ndarray::Array2<f64> {
        use rayon::prelude::*;
        let optics = self.bin_optics(bin);
        let truth = Truth::new(&self.dynamics, &optics, self.sampling());
        let w = w.max(1);
        let n = self.exposure.n_frames / w;
        let sub = w.min(2);
        let pts: Vec<usize> = (0..sub).map(|i| (2 * i + 1) * w / (2 * sub)).collect();
        let rows: Vec<Vec<f64>> = (0..n)
            .into_par_iter()
            .map(|a| {
                (a..n)
                    .map(|b| {
                        let mut acc = 0.0;
                        for &i in &pts {
                            for &j in &pts {
                                acc += truth.c2(a * w + i, b * w + j);
                            }
                        }
                        acc / (sub * sub) as f64
                    })
                    .collect()
            })
            .collect();
        let mut out = ndarray::Array2::zeros((n, n));
        for (a, r) in rows.iter().enumerate() {
            for (k, &v) in r.iter().enumerate() {
                out[[a, a + k]] = v;
                out[[a + k, a]] = v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
    }

    #[test]
    fn pt_campaign_loads_reduced() {
        let s = CampaignSetup::load(&root().join("models/pt42-eiger.toml"), Scale::Reduced, None)
            .unwrap();
        assert_eq!(s.scans.len(), 13);
        let sc = &s.scans[3];
        assert!((sc.facts.pressure_gpa - 3.3).abs() < 1e-12);
        assert_eq!(sc.scene.rows * sc.scene.cols, s.roi.rows * s.roi.cols);
        // Every dynamic bin has at most static_per_dynamic optics classes.
        for b in 1..=sc.partition.n_bins() {
            let o = sc.bin_optics(b);
            assert!(
                o.n_classes() <= s.config.partition.static_per_dynamic,
                "{}",
                o.n_classes()
            );
        }
        // q centres increase and straddle q1(P).
        let q = sc.q_centres();
        assert!(q.windows(2).all(|w| w[1] > w[0]), "{q:?}");
        assert!(
            q[0] < sc.facts.q1_inv_angstrom + 0.05
                && *q.last().unwrap() > sc.facts.q1_inv_angstrom - 0.05
        );
        assert!(sc.mean_counts_per_frame > 0.01 && sc.mean_counts_per_frame < 0.5);
    }

    /// The stationary lag-difference sum equals the brute-force block average.
    #[test]
    fn stationary_truth_matches_block_average() {
        let s = CampaignSetup::load(&root().join("models/pt42-eiger.toml"), Scale::Reduced, None)
            .unwrap();
        let sc = &s.scans[0];
        assert!(sc.is_stationary());
        let optics = sc.bin_optics(1);
        let truth = Truth::new(&sc.dynamics, &optics, sc.sampling());
        for &(lag, w) in &[(0u64, 1u64), (3, 1), (16, 4), (64, 16)] {
            let got = sc.truth_g2(1, &[(lag, w)])[0];
            let (lag, w) = (lag as usize, w as usize);
            let mut acc = 0.0;
            for i in 0..w {
                for j in 0..w {
                    acc += truth.c2(i, lag + j);
                }
            }
            let want = acc / (w * w) as f64;
            assert!(
                (got - want).abs() < 1e-12,
                "lag {lag} w {w}: {got} vs {want}"
            );
        }
    }

    /// The Ce cell's anvil spot is masked from the analysis: every pixel whose static fraction
    /// exceeds `SPOT_STATIC_FRACTION_MAX` is invalid and unlabelled, and there is such a pixel
    /// (on the whole detector; one scan only, built through `from_config_only`).
    #[test]
    fn anvil_spots_are_masked() {
        let path = root().join("models/ce68-maxipix.toml");
        let c: CampaignConfig = load_toml(&path).unwrap();
        let only = ["04-c8.2GPa".to_string()];
        let s = CampaignSetup::from_config_only(c, &path, Scale::Full, None, &only).unwrap();
        assert_eq!(s.scans.len(), 1);
        let sc = &s.scans[0];
        let labels = sc.partition.dynamic().labels();
        let spot: Vec<usize> = (0..labels.len())
            .filter(|&p| sc.scene.static_fraction.at(p) > SPOT_STATIC_FRACTION_MAX)
            .collect();
        assert!(!spot.is_empty());
        assert!(spot.iter().all(|&p| labels[p] == 0 && !sc.valid[p]));
    }

    #[test]
    fn pressure_outside_a_branch_is_refused() {
        let path = root().join("models/pt42-eiger.toml");
        let c: CampaignConfig = load_toml(&path).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(root().join("models/samples/pt42.toml")).unwrap();
        // The decompression branch is given from 0.5 to 6.3 GPa: 0.2 GPa lies outside it.
        let bad = text.replacen("pressure_gpa = 0.5", "pressure_gpa = 0.2", 1);
        std::fs::write(dir.path().join("s.toml"), bad).unwrap();
        let mut c2 = c.clone();
        c2.sample = "s.toml".into();
        let e = CampaignSetup::from_config(c2, &dir.path().join("c.toml"), Scale::Reduced, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pressure_gpa") && e.contains("0.5..=6.3"), "{e}");
    }

    #[test]
    fn overlapping_isobars_are_refused() {
        let path = root().join("models/pt42-eiger.toml");
        let mut c: CampaignConfig = load_toml(&path).unwrap();
        c.protocol.compression_step_s = 2000.0;
        let e = CampaignSetup::from_config(c, &path, Scale::Reduced, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("overlapping") && e.contains("2000"), "{e}");
    }
}
