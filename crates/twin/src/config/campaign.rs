//! Campaign files (`models/<campaign>.toml`): which sample, which instrument, how to cut the
//! detector, how to analyse, which seed, and how big to run.
//!
//! A campaign file names a sample file (relative to the campaign file), the beam / DAC /
//! detector presets (names from `models/{beams,dacs,detectors}` or paths), the geometry, the
//! FSDP shape (its position and pressure shift come from the sample, so the two can never
//! disagree), the q-partition, the analysis settings and two scale presets, `reduced` (the
//! default: a detector region of interest, fast) and `full` (the beamline-sized detector).
//! Validation into runtime types happens in [`crate::twin::setup`].

use serde::{Deserialize, Serialize};
use xpcs_sim::config::instrument::{CountingConfig, GeometryConfig};

/// A whole campaign file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignConfig {
    /// Campaign name (used in outputs).
    pub name: String,
    /// Sample file (dynamics + protocol), relative to the campaign file.
    pub sample: String,
    /// Master seed; every scan derives its own with `rng::subseed`.
    pub seed: u64,
    /// Beam, cell, detector, geometry.
    pub instrument: CampaignInstrumentConfig,
    /// Protocol timing (for the overlap check).
    pub protocol: ProtocolTimingConfig,
    /// q-partition.
    pub partition: PartitionConfig,
    /// Analysis settings.
    pub analysis: AnalysisConfig,
    /// Scale presets.
    pub scale: ScalesConfig,
    /// Tolerances for the pass/fail table of the report.
    #[serde(default)]
    pub tolerances: TolerancesConfig,
}

/// Instrument part of a campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignInstrumentConfig {
    /// Beam preset name or path.
    pub beam: String,
    /// DAC preset name or path.
    pub dac: String,
    /// Detector preset name or path.
    pub detector: String,
    /// Detector geometry.
    pub geometry: GeometryConfig,
    /// FSDP shape (q1 and its shift come from the sample file).
    pub fsdp: FsdpShapeConfig,
    /// Measured contrast overriding the coherence calculation (None = computed).
    #[serde(default)]
    pub contrast: Option<f64>,
    /// Mean total rate per valid pixel (photons/s) overriding the absolute-intensity
    /// calculation (None = computed).
    #[serde(default)]
    pub mean_rate_hz: Option<f64>,
    /// Kossel lines and anvil spots of the DAC preset (default true).
    #[serde(default = "yes")]
    pub kossel: bool,
    /// Counting-chain steps (each defaults to on).
    #[serde(default)]
    pub counting: CountingConfig,
}

fn yes() -> bool {
    true
}

/// FSDP width and heights: S(q) = base + (peak - base) exp(-4 ln2 (q - q1(P))²/fwhm²).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsdpShapeConfig {
    /// Full width at half maximum above the base (Å⁻¹).
    pub fwhm_inv_angstrom: f64,
    /// S(q1).
    pub peak: f64,
    /// S far from the peak.
    pub base: f64,
}

/// Time each pressure step lasts (from the pressure change to the next one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtocolTimingConfig {
    /// Duration of a compression step (s).
    pub compression_step_s: f64,
    /// Duration of a decompression step (s; default = compression).
    #[serde(default)]
    pub decompression_step_s: Option<f64>,
}

/// How dynamic bands are spaced in q.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandSpacing {
    /// Equal width in q over the valid pixels.
    Uniform,
    /// Equal numbers of valid pixels.
    EqualPixels,
}

/// The q-partition of the (cropped) detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionConfig {
    /// Dynamic q bands.
    pub q_bins: usize,
    /// φ sectors (default 1).
    #[serde(default = "one")]
    pub phi_sectors: usize,
    /// Static sub-bands per dynamic band (default 4). The clock-rate factor (q/q1)^α is
    /// evaluated at each static sub-band's mean q, so a dynamic bin has at most this many
    /// optical classes and its ground truth is exact and cheap.
    #[serde(default = "four")]
    pub static_per_dynamic: usize,
    /// Band spacing (default equal pixels).
    #[serde(default = "equal_pixels")]
    pub spacing: BandSpacing,
}

fn one() -> usize {
    1
}
fn four() -> usize {
    4
}
fn equal_pixels() -> BandSpacing {
    BandSpacing::EqualPixels
}

/// One-time g2 estimator (names as in `correlate::Estimator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimatorChoice {
    /// Normalised after averaging over the bin's pixels.
    Symmetric,
    /// Per static sub-bin, then averaged (APS 8-ID-I).
    SymmetricStatic,
    /// Ratio of two-time diagonal sums.
    Frame,
}

/// Fit model of the one-time g2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitModelChoice {
    /// g2 = a + c exp(-2 (t/τ)^β).
    Kww,
    /// Simple exponential (β = 1).
    Exp,
    /// KWW with a heterodyne static fraction x.
    Heterodyne,
}

/// Analysis settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    /// Multi-tau buffers per level (even, default 8).
    #[serde(default = "eight")]
    pub num_bufs: usize,
    /// Estimator.
    #[serde(default = "symmetric")]
    pub estimator: EstimatorChoice,
    /// Largest side of the binned two-time map (frames are summed in groups to fit).
    #[serde(default = "tt_side")]
    pub two_time_max_side: usize,
    /// Fit model.
    #[serde(default = "kww")]
    pub fit_model: FitModelChoice,
    /// Fixed baseline a (None = fitted). The Ce seed fixed it at 1.006 (Fig. 2 caption).
    #[serde(default)]
    pub fixed_baseline: Option<f64>,
    /// Age cuts of the two-time map for τ(t_w) on aging scans (default 6).
    #[serde(default = "six")]
    pub age_cuts: usize,
    /// Fraction of C(t, δt = τ) values the ΔC width contains (default 0.9, the Pt seed's).
    #[serde(default = "ninety")]
    pub delta_c_fraction: f64,
    /// Mean counts per pixel per frame below which the event correlator is used (default 0.1).
    #[serde(default = "tenth")]
    pub event_occupancy_max: f64,
    /// Two-time frame (s) of the map ΔC is taken from, the same for every scan of the
    /// campaign so that the noise width of ΔC is the same at every pressure (None: each
    /// scan's own two-time binning). Rounded to a whole number of the scan's two-time frames.
    #[serde(default)]
    pub delta_c_bin_s: Option<f64>,
}

fn eight() -> usize {
    8
}
fn six() -> usize {
    6
}
fn symmetric() -> EstimatorChoice {
    EstimatorChoice::Symmetric
}
fn kww() -> FitModelChoice {
    FitModelChoice::Kww
}
fn tt_side() -> usize {
    700
}
fn ninety() -> f64 {
    0.9
}
fn tenth() -> f64 {
    0.1
}

/// One scale preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleConfig {
    /// Region of interest (rows, cols) cropped from the detector (None = whole detector).
    #[serde(default)]
    pub roi_px: Option<[usize; 2]>,
    /// Offset (rows, cols) of the ROI centre from the detector centre, in pixels (e.g. to sit
    /// inside one module rather than on the module gaps at the centre).
    #[serde(default)]
    pub roi_offset_px: [i64; 2],
    /// Cap on frames per scan (None = the protocol's).
    #[serde(default)]
    pub max_frames: Option<usize>,
}

/// The two scale presets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalesConfig {
    /// Default: a fast run (ROI and/or fewer frames).
    pub reduced: ScaleConfig,
    /// Beamline-sized run.
    pub full: ScaleConfig,
}

/// Tolerances of the pass/fail table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TolerancesConfig {
    /// Largest |pull| of a fitted quantity against its ground truth (default 4).
    #[serde(default = "four_f")]
    pub max_abs_pull: f64,
    /// Largest relative deviation of τ, also passing when the pull passes (default 0.1).
    #[serde(default = "tenth")]
    pub tau_rel: f64,
}

fn four_f() -> f64 {
    4.0
}

impl Default for TolerancesConfig {
    fn default() -> Self {
        TolerancesConfig {
            max_abs_pull: 4.0,
            tau_rel: 0.1,
        }
    }
}
