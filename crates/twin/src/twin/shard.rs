//! Detector shards: a scan simulated, counted and correlated one block of pixels at a time,
//! with bounded memory, and the shards' sums added into the whole scan's.
//!
//! Input: a [`ScanSetup`], the campaign's analysis settings and a [`Shard`] (`i/N`). Output:
//! [`ScanSums`], the exact correlation sums of the shard's pixels (multi-tau moments and
//! photon series per (dynamic bin, static bin, jackknife group) cell, two-time numerators of
//! every q-bin, photons per pixel; for the q-bins and for the whole region), which
//! [`ScanSums::add`] merges with other shards' and [`write_partial`] / [`add_partial`] keep on
//! disk.
//!
//! Why shards add up exactly: given the material clock (one time series for the scan), pixels
//! are independent. The speckle simulator draws block b of [`SHARD_UNIT_PX`] pixels from its
//! own random stream, and so does every step of the counting chain, so a shard of whole blocks
//! gets exactly the photons the whole run gives its pixels, whatever the shard count (the
//! chain's charge sharing reads one detector row either side). Every correlation state is an
//! integer sum over pixels: the merged sums, hence g2, two-time maps and intensities, are
//! bit-identical for any shard count and any merge order.

use super::output;
use super::scan::{finish_scan, region_partition, ScanResult};
use super::setup::{CampaignSetup, Scale, ScanSetup};
use crate::config::campaign::{AnalysisConfig, CampaignConfig};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xpcs_core::correlate::{EventCorrelator, LagSchedule};
use xpcs_core::data::EventList;
use xpcs_core::error::{Error, Result};
use xpcs_io::partial::CorrelatorSums;
use xpcs_sim::instrument::detector::PIXEL_BLOCK;
use xpcs_sim::speckle::{GeneratorKind, Method, SimOptions, Simulator};

/// Pixels per simulator block and per counting-chain block: the unit shards are cut in, so
/// that the photons do not depend on the shard count.
pub const SHARD_UNIT_PX: usize = PIXEL_BLOCK;

/// The simulator options of every twin scan (the grid method with the circulant generator,
/// blocks of [`SHARD_UNIT_PX`] pixels).
pub fn sim_options(seed: u64) -> SimOptions {
    SimOptions {
        generator: GeneratorKind::Circulant,
        method: Method::Grid {
            du: None,
            tolerance: 2e-3,
        },
        block_pixels: SHARD_UNIT_PX,
        seed,
    }
}

/// Shard `index` (0-based) of `count`: blocks ⌊index·B/count⌋ .. ⌊(index+1)·B/count⌋ of the
/// scan's B blocks of [`SHARD_UNIT_PX`] pixels (row-major).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 0-based index.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// The whole detector as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `i/N` (1-based i, as on the command line: `1/8` … `8/8`).
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::out_of_range("--shard", "shard", s, "i/N with 1 ≤ i ≤ N, e.g. 3/8");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard {
            index: i - 1,
            count: n,
        })
    }

    /// The shard's blocks among `n_blocks`; refuses more shards than blocks.
    pub fn blocks(&self, n_blocks: usize) -> Result<Range<usize>> {
        if self.count == 0 || self.count > n_blocks || self.index >= self.count {
            return Err(Error::out_of_range(
                "--shard",
                "shard",
                self.to_string(),
                format!(
                    "i/N with N ≤ {n_blocks} (the scan's blocks of {SHARD_UNIT_PX} pixels) and \
                     1 ≤ i ≤ N"
                ),
            ));
        }
        Ok(self.index * n_blocks / self.count..(self.index + 1) * n_blocks / self.count)
    }

    /// The shard's pixels (row-major) on a detector of `n_pixels`.
    pub fn pixels(&self, n_pixels: usize) -> Result<Range<usize>> {
        let b = self.blocks(n_pixels.div_ceil(SHARD_UNIT_PX))?;
        Ok(b.start * SHARD_UNIT_PX..(b.end * SHARD_UNIT_PX).min(n_pixels))
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index + 1, self.count)
    }
}

/// What a scan's sums belong to: partials merge only when every field is equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanIdentity {
    /// Campaign name.
    pub campaign: String,
    /// Campaign file, as given.
    pub campaign_file: String,
    /// Scale ("reduced" or "full").
    pub scale: String,
    /// The campaign's master seed.
    pub campaign_seed: u64,
    /// Scan index in the protocol.
    pub scan_index: usize,
    /// Scan label.
    pub scan_label: String,
    /// The scan's seed.
    pub seed: u64,
    /// Detector (ROI) rows × columns.
    pub shape: (usize, usize),
    /// Frames.
    pub n_frames: usize,
    /// Lag schedule (name and buffers per level).
    pub schedule: String,
    /// Raw frames per two-time frame.
    pub two_time_bin_frames: usize,
    /// SHA-256 (hex) of the dynamic and static label maps and the mask.
    pub label_map_sha256: String,
    /// The program that wrote the sums.
    pub program: String,
}

impl ScanIdentity {
    /// The identity of `scan` of `setup`.
    pub fn of(setup: &CampaignSetup, scan: &ScanSetup) -> Self {
        let a = &setup.config.analysis;
        ScanIdentity {
            campaign: setup.config.name.clone(),
            // Canonical, so that shards run from different directories still merge.
            campaign_file: std::fs::canonicalize(&setup.path)
                .unwrap_or_else(|_| setup.path.clone())
                .display()
                .to_string(),
            scale: setup.scale.name().into(),
            campaign_seed: setup.seed,
            scan_index: scan.index,
            scan_label: scan.label.clone(),
            seed: scan.seed,
            shape: (scan.scene.rows, scan.scene.cols),
            n_frames: scan.exposure.n_frames,
            schedule: format!("multi-tau, {} buffers per level", a.num_bufs),
            two_time_bin_frames: two_time_bin_frames(scan, a),
            label_map_sha256: label_hash(&scan.partition),
            program: format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The first field that differs from `other`, with both values (None when equal).
    pub fn mismatch(&self, other: &ScanIdentity) -> Option<String> {
        let a = serde_json::to_value(self).expect("plain data");
        let b = serde_json::to_value(other).expect("plain data");
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find(|(k, v)| b.get(*k) != Some(*v)).map(|(k, v)| {
            format!(
                "{k} = {v} vs {}",
                b.get(k).unwrap_or(&serde_json::Value::Null)
            )
        })
    }
}

/// Raw frames per two-time frame of a scan (the map's side is at most the campaign's
/// `two_time_max_side`).
pub fn two_time_bin_frames(scan: &ScanSetup, a: &AnalysisConfig) -> usize {
    scan.exposure.n_frames.div_ceil(a.two_time_max_side).max(1)
}

/// The exact correlation sums of some of a scan's pixels (see the module docs).
#[derive(Debug, Clone)]
pub struct ScanSums {
    /// Which scan.
    pub identity: ScanIdentity,
    /// Pixel ranges covered (sorted, disjoint).
    pub pixels: Vec<Range<usize>>,
    /// Multi-tau (and two-time) sums of the q-bins.
    pub bins: EventCorrelator,
    /// Multi-tau sums of the whole region (all q-bins as one bin).
    pub region: EventCorrelator,
    /// Wall time of simulate, counting and correlate, summed over the shards (s).
    pub timing_s: [f64; 3],
}

impl ScanSums {
    /// Zero sums of `scan` (no pixel covered).
    pub fn empty(identity: ScanIdentity, scan: &ScanSetup, a: &AnalysisConfig) -> Result<Self> {
        let n = scan.exposure.n_frames;
        let sched = LagSchedule::multi_tau(n, a.num_bufs)?;
        let part = &scan.partition;
        // Two-time maps per jackknife group of each q-bin (added back into the bins' maps
        // when the scan is analysed).
        let bins = EventCorrelator::new(part, &sched, n).with_two_time(
            &super::scan::two_time_partition(part)?,
            &[],
            two_time_bin_frames(scan, a),
        )?;
        let region = EventCorrelator::new(&region_partition(part)?, &sched, n);
        Ok(ScanSums {
            identity,
            pixels: Vec::new(),
            bins,
            region,
            timing_s: [0.0; 3],
        })
    }

    /// Adds another shard's sums of the same scan; refuses another scan's (naming the first
    /// field that differs) and overlapping pixels.
    pub fn add(&mut self, other: &ScanSums) -> Result<()> {
        self.check_mergeable(&other.identity, &other.pixels, "shard")?;
        self.bins.merge(&other.bins)?;
        self.region.merge(&other.region)?;
        self.cover(&other.pixels);
        for (a, b) in self.timing_s.iter_mut().zip(other.timing_s) {
            *a += b;
        }
        Ok(())
    }

    fn check_mergeable(
        &self,
        identity: &ScanIdentity,
        pixels: &[Range<usize>],
        origin: &str,
    ) -> Result<()> {
        if let Some(m) = self.identity.mismatch(identity) {
            return Err(Error::invalid(
                origin,
                format!("belongs to another run ({m}); not merged"),
            ));
        }
        for p in pixels {
            if let Some(q) = self
                .pixels
                .iter()
                .find(|q| q.start < p.end && p.start < q.end)
            {
                return Err(Error::invalid(
                    origin,
                    format!(
                        "pixels {}..{} overlap pixels {}..{} already merged (the same shard \
                         twice?)",
                        p.start, p.end, q.start, q.end
                    ),
                ));
            }
        }
        Ok(())
    }

    fn cover(&mut self, pixels: &[Range<usize>]) {
        self.pixels.extend(pixels.iter().cloned());
        self.pixels.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::new();
        for r in self.pixels.drain(..) {
            match merged.last_mut() {
                Some(l) if l.end == r.start => l.end = r.end,
                _ => merged.push(r),
            }
        }
        self.pixels = merged;
    }

    /// Pixels of the detector (ROI).
    pub fn n_pixels(&self) -> usize {
        self.identity.shape.0 * self.identity.shape.1
    }

    /// Refuses sums that do not cover every pixel exactly once, naming the first gap.
    pub fn check_complete(&self, origin: &str) -> Result<()> {
        let n = self.n_pixels();
        let mut at = 0;
        for r in &self.pixels {
            if r.start > at {
                break;
            }
            at = r.end;
        }
        if at < n {
            let next = self
                .pixels
                .iter()
                .find(|r| r.start > at)
                .map_or(n, |r| r.start);
            return Err(Error::invalid(
                origin,
                format!(
                    "the shards cover pixels {:?} of 0..{n}; pixels {at}..{next} are missing",
                    self.pixels
                ),
            ));
        }
        Ok(())
    }

    /// Photons (after the counting chain) of the covered pixels.
    pub fn total_counts(&self) -> u64 {
        self.bins.pixel_totals().iter().sum()
    }

    /// The header of a partial file (JSON): identity, covered pixels, shard and timing.
    fn header(&self, shard: Option<Shard>) -> String {
        serde_json::to_string_pretty(&serde_json::json!({
            "identity": self.identity,
            "pixels": self.pixels.iter().map(|r| [r.start, r.end]).collect::<Vec<_>>(),
            "shard": shard.map(|s| s.to_string()),
            "timing_s": self.timing_s,
        }))
        .expect("plain data")
    }
}

/// Writes the sums of one shard (or of merged shards) as a partial file (`xpcs_io::partial`);
/// the photon totals are kept from the first to the last covered pixel.
pub fn write_partial(
    path: &Path,
    sums: &ScanSums,
    shard: Option<Shard>,
    force: bool,
) -> Result<PathBuf> {
    let hull = match (sums.pixels.first(), sums.pixels.last()) {
        (Some(a), Some(b)) => a.start..b.end,
        _ => 0..0,
    };
    let all = [
        CorrelatorSums::of("bins", &sums.bins, hull.clone()),
        CorrelatorSums::of("region", &sums.region, hull),
    ];
    xpcs_io::partial::write_partial(path, &sums.header(shard), &all, force)
}

#[derive(Deserialize)]
struct Header {
    identity: ScanIdentity,
    pixels: Vec<[usize; 2]>,
    timing_s: [f64; 3],
}

/// Adds the partial file `path` into `sums` (see [`ScanSums::add`]); every refusal is one
/// error naming the file.
pub fn add_partial(sums: &mut ScanSums, path: &Path) -> Result<()> {
    let origin = path.display().to_string();
    let (header, parts) = xpcs_io::partial::read_partial(path)?;
    let h: Header = serde_json::from_str(&header)
        .map_err(|e| Error::invalid(origin.clone(), format!("header: {e}")))?;
    let pixels: Vec<Range<usize>> = h.pixels.iter().map(|p| p[0]..p[1]).collect();
    sums.check_mergeable(&h.identity, &pixels, &origin)?;
    // Add into copies first: a refused part leaves `sums` unchanged.
    let (mut bins, mut region) = (sums.bins.clone(), sums.region.clone());
    for p in &parts {
        let target = match p.name.as_str() {
            "bins" => &mut bins,
            "region" => &mut region,
            _ => {
                return Err(Error::invalid(
                    origin,
                    format!("unknown correlator {:?}", p.name),
                ))
            }
        };
        p.add_into(target)
            .map_err(|e| Error::invalid(origin.clone(), e.to_string()))?;
    }
    sums.bins = bins;
    sums.region = region;
    sums.cover(&pixels);
    for (a, b) in sums.timing_s.iter_mut().zip(h.timing_s) {
        *a += b;
    }
    Ok(())
}

/// Reads the identity of a partial file (to find its campaign and scan before merging).
pub fn partial_identity(path: &Path) -> Result<ScanIdentity> {
    let (header, _) = xpcs_io::partial::read_partial(path)?;
    let h: Header = serde_json::from_str(&header)
        .map_err(|e| Error::invalid(path.display().to_string(), format!("header: {e}")))?;
    Ok(h.identity)
}

/// Simulates the ideal photons a window of whole blocks needs and runs the counting chain on
/// it: the window's photons as the detector records them (other pixels empty), bit-identical
/// to the whole run's. Returns the photons and the wall times of both stages (s).
pub fn simulate_window(scan: &ScanSetup, window: &Range<usize>) -> Result<(EventList, [f64; 2])> {
    let t0 = Instant::now();
    let sim = Simulator::new(
        scan.scene.clone(),
        scan.dynamics.clone(),
        scan.exposure,
        sim_options(scan.seed),
    )?;
    let (rows, cols) = (scan.scene.rows, scan.scene.cols);
    let src = scan.chain.sources(window, rows, cols);
    let ideal = sim.events_of_blocks(src.start / SHARD_UNIT_PX..src.end.div_ceil(SHARD_UNIT_PX))?;
    drop(sim);
    let t_sim = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let ev = scan.chain.apply_window(
        &ideal,
        xpcs_sim::rng::subseed(scan.seed, "counting"),
        window,
    )?;
    Ok((ev, [t_sim, t1.elapsed().as_secs_f64()]))
}

/// Correlates the photons of pixels `window` of `ev` into zero sums of the scan.
pub fn correlate_window(
    identity: ScanIdentity,
    scan: &ScanSetup,
    a: &AnalysisConfig,
    ev: &EventList,
    window: &Range<usize>,
) -> Result<ScanSums> {
    let t0 = Instant::now();
    let mut sums = ScanSums::empty(identity, scan, a)?;
    let off = &ev.offsets()[window.start..=window.end];
    let (lo, hi) = (off[0] as usize, off[off.len() - 1] as usize);
    let (fr, ct) = (&ev.frames()[lo..hi], &ev.counts()[lo..hi]);
    let (b, r) = rayon::join(
        || sums.bins.push_pixel_block(window.start, off, fr, ct),
        || sums.region.push_pixel_block(window.start, off, fr, ct),
    );
    b?;
    r?;
    sums.pixels = vec![window.clone()];
    sums.timing_s[2] = t0.elapsed().as_secs_f64();
    Ok(sums)
}

/// One shard of a scan: simulate its blocks, count, correlate (see the module docs).
pub fn run_shard(setup: &CampaignSetup, scan: &ScanSetup, shard: Shard) -> Result<ScanSums> {
    let window = shard.pixels(scan.scene.rows * scan.scene.cols)?;
    let (ev, [t_sim, t_count]) = simulate_window(scan, &window)?;
    let mut sums = correlate_window(
        ScanIdentity::of(setup, scan),
        scan,
        &setup.config.analysis,
        &ev,
        &window,
    )?;
    sums.timing_s[0] = t_sim;
    sums.timing_s[1] = t_count;
    Ok(sums)
}

/// Loads the one scan `scan` (a label such as `09-c7GPa` or a protocol index) of a campaign
/// file at `scale`.
pub fn load_scan_setup(
    path: &Path,
    scale: Scale,
    seed: Option<u64>,
    scan: &str,
) -> Result<CampaignSetup> {
    let config: CampaignConfig = xpcs_sim::config::load_toml(path)?;
    let s = CampaignSetup::from_config_only(config, path, scale, seed, &[scan.to_string()])?;
    if s.scans.len() != 1 {
        return Err(Error::out_of_range(
            path.display().to_string(),
            "scan",
            scan,
            "a scan label (e.g. 09-c7GPa) or a protocol index (0 = the first isobar)",
        ));
    }
    Ok(s)
}

/// `xpcs-twin shard`: runs shard `shard` of the one scan of `setup` and writes its partial
/// file to `out`. Returns the written path and the sums.
pub fn shard_to_file(
    setup: &CampaignSetup,
    shard: Shard,
    out: &Path,
    force: bool,
) -> Result<(PathBuf, ScanSums)> {
    // Refuse an existing output before the work, not after; the folder is made (a scheduler
    // writes one folder per scan).
    xpcs_io::atomic::check_output(out, &[], force)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let sums = run_shard(setup, &setup.scans[0], shard)?;
    let path = write_partial(out, &sums, Some(shard), force)?;
    Ok((path, sums))
}

/// `xpcs-twin merge`: adds the partial files `parts` (every shard of one scan, in any order)
/// and writes the scan's results file to `out`, the same file `xpcs-twin twin` writes for
/// the scan (g2, two-time maps, intensities, fits and their ground truth). The campaign is
/// read from the file named in the partials' header. Returns the path and the scan result.
pub fn merge_to_results(
    parts: &[PathBuf],
    out: &Path,
    force: bool,
) -> Result<(PathBuf, ScanResult)> {
    let Some(first) = parts.first() else {
        return Err(Error::invalid("merge", "no partial file given"));
    };
    let inputs: Vec<&Path> = parts.iter().map(PathBuf::as_path).collect();
    xpcs_io::atomic::check_output(out, &inputs, force)?;
    let id = partial_identity(first)?;
    let scale = match id.scale.as_str() {
        "full" => Scale::Full,
        _ => Scale::Reduced,
    };
    let setup = load_scan_setup(
        Path::new(&id.campaign_file),
        scale,
        Some(id.campaign_seed),
        &id.scan_label,
    )?;
    let scan = &setup.scans[0];
    let origin = format!("merge of {} partial files", parts.len());
    let sums = sum_partials(&setup, scan, parts, &origin, &|_| {})?;
    let r = finish_scan(scan, &setup.config.analysis, &sums, &|_| {})?;
    let path = output::write_scan_results_to(out, &setup, &r, force)?;
    Ok((path, r))
}

/// Adds the partial files `parts` of `scan` (every shard once, any order) into the scan's
/// sums and refuses them unless they cover every pixel once (`origin` names the set in that
/// error). `on_part(i)` is called after the `i`-th file is added.
pub fn sum_partials(
    setup: &CampaignSetup,
    scan: &ScanSetup,
    parts: &[PathBuf],
    origin: &str,
    on_part: &dyn Fn(usize),
) -> Result<ScanSums> {
    let a = &setup.config.analysis;
    let mut sums = ScanSums::empty(ScanIdentity::of(setup, scan), scan, a)?;
    for (i, p) in parts.iter().enumerate() {
        add_partial(&mut sums, p)?;
        on_part(i + 1);
    }
    sums.check_complete(origin)?;
    Ok(sums)
}

/// The partial files of `scan` under `dir`: `dir/<scan label>/*.bin`, sorted by name (a
/// killed writer leaves only a hidden `.tmp` file, never a `.bin`). Refuses a missing or
/// empty folder, naming it and the command that fills it.
pub fn partial_files(setup: &CampaignSetup, scan: &ScanSetup, dir: &Path) -> Result<Vec<PathBuf>> {
    let folder = dir.join(&scan.label);
    let hint = || {
        format!(
            "no partial files of scan {} (expected {}/*.bin, written by `xpcs-twin shard {} \
             --scale {} --scan {} --shard i/N --out {}/part_i.bin` for every i)",
            scan.label,
            folder.display(),
            setup.path.display(),
            setup.scale.name(),
            scan.label,
            folder.display()
        )
    };
    let entries = match std::fs::read_dir(&folder) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::invalid(dir.display().to_string(), hint()))
        }
        Err(e) => return Err(Error::io(&folder, e)),
    };
    let mut files = Vec::new();
    for e in entries {
        let p = e.map_err(|e| Error::io(&folder, e))?.path();
        let visible = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.'));
        if visible && p.extension().is_some_and(|x| x == "bin") && p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(Error::invalid(dir.display().to_string(), hint()));
    }
    files.sort();
    Ok(files)
}

/// One scan of the campaign listed for a scheduler: what `xpcs-twin shard --list-json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ScanListing {
    /// Protocol index.
    pub index: usize,
    /// Label (the `--scan` value and the folder name under `twin --partials DIR`).
    pub label: String,
    /// Frames.
    pub frames: usize,
    /// Detector (ROI) pixels.
    pub pixels: usize,
    /// Blocks of [`SHARD_UNIT_PX`] pixels: the largest shard count N of `--shard i/N`.
    pub max_shards: usize,
}

/// Every scan of a campaign file at `scale` with its shard limit, set up from the campaign
/// and sample files alone (milliseconds at any scale), as JSON-ready data.
pub fn list_scans(path: &Path, scale: Scale, seed: Option<u64>) -> Result<serde_json::Value> {
    let config: CampaignConfig = xpcs_sim::config::load_toml(path)?;
    let setup = CampaignSetup::without_scans(config, path, scale, seed)?;
    let pixels = setup.roi.rows * setup.roi.cols;
    let scans: Vec<ScanListing> = setup
        .isobar_labels()
        .into_iter()
        .enumerate()
        .map(|(index, (label, frames))| ScanListing {
            index,
            label,
            frames,
            pixels,
            max_shards: pixels.div_ceil(SHARD_UNIT_PX),
        })
        .collect();
    Ok(serde_json::json!({
        "program": format!("xpcs-twin {}", env!("CARGO_PKG_VERSION")),
        "campaign": setup.config.name,
        "campaign_file": path.display().to_string(),
        "scale": scale.name(),
        "seed": setup.seed,
        "shard_unit_px": SHARD_UNIT_PX,
        "scans": scans,
    }))
}

/// SHA-256 (hex) of a partition's dynamic labels, static labels (u32 LE) and mask (u8).
pub fn label_hash(part: &xpcs_core::data::QPartition) -> String {
    let mut b = Vec::with_capacity(part.dynamic().labels().len() * 9);
    for &l in part.dynamic().labels() {
        b.extend_from_slice(&l.to_le_bytes());
    }
    for &l in part.static_map().labels() {
        b.extend_from_slice(&l.to_le_bytes());
    }
    b.extend(part.mask().iter().map(|&m| u8::from(m)));
    xpcs_io::partial::sha256_hex(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twin::scan::{run_scan, ShardPlan};
    use crate::twin::Scale;

    fn same_bits(a: &ndarray::Array2<f64>, b: &ndarray::Array2<f64>) -> bool {
        a.iter()
            .map(|v| v.to_bits())
            .eq(b.iter().map(|v| v.to_bits()))
    }

    /// One Pt scan (reduced: 4 blocks of 4096 pixels) run whole and as 3 shards (2 at a time):
    /// bit-identical g2 (q-bins and region), the same two-time maps, intensities and photons;
    /// shards written as partial files and merged in another order give the same sums; a
    /// partial of another scan, a shard given twice and a missing shard are refused.
    #[test]
    fn shards_equal_the_whole_run() {
        let root = std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        let path = root.join("models/pt42-eiger.toml");
        let c: crate::config::campaign::CampaignConfig =
            xpcs_sim::config::load_toml(&path).unwrap();
        let only = ["09-c7GPa".to_string(), "06-c6.3GPa".to_string()];
        let setup = CampaignSetup::from_config_only(c, &path, Scale::Reduced, None, &only).unwrap();
        let scan = setup.scans.iter().find(|s| s.label == "09-c7GPa").unwrap();
        let quiet = |_: &str| {};
        let none = |_: usize, _: usize| {};
        let whole = run_scan(&setup, scan, ShardPlan::WHOLE, &quiet, &none).unwrap();
        let plan = ShardPlan {
            count: 3,
            concurrency: 2,
        };
        let sharded = run_scan(&setup, scan, plan, &quiet, &none).unwrap();
        assert_eq!(whole.correlator, "event");
        assert!(same_bits(&whole.g2_full.g2, &sharded.g2_full.g2));
        assert!(same_bits(&whole.g2_full.g2_err, &sharded.g2_full.g2_err));
        assert_eq!(
            format!("{:?}", whole.region.g2),
            format!("{:?}", sharded.region.g2)
        );
        assert_eq!(whole.two_time, sharded.two_time);
        assert_eq!(
            format!("{:?}", whole.intensity),
            format!("{:?}", sharded.intensity)
        );
        assert_eq!(whole.total_counts, sharded.total_counts);

        // Partial files, merged in reverse order.
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3)
            .map(|i| {
                let sh = Shard { index: i, count: 3 };
                let p = dir.path().join(format!("part_{i}.bin"));
                write_partial(&p, &run_shard(&setup, scan, sh).unwrap(), Some(sh), false).unwrap()
            })
            .collect();
        let a = &setup.config.analysis;
        let mut merged = ScanSums::empty(ScanIdentity::of(&setup, scan), scan, a).unwrap();
        add_partial(&mut merged, &files[2]).unwrap();
        assert!(merged
            .check_complete("t")
            .unwrap_err()
            .to_string()
            .contains("missing"));
        add_partial(&mut merged, &files[0]).unwrap();
        let e = add_partial(&mut merged, &files[0]).unwrap_err().to_string();
        assert!(e.contains("overlap") && e.contains("part_0.bin"), "{e}");
        add_partial(&mut merged, &files[1]).unwrap();
        merged.check_complete("t").unwrap();
        let est = crate::twin::scan::estimator_of(a.estimator);
        let g = merged.bins.finish(est).unwrap();
        assert!(same_bits(&g.g2, &whole.g2_full.g2));
        // Another scan's sums refuse to merge, naming the differing field.
        let other = setup
            .scans
            .iter()
            .find(|s| s.label == "06-c6.3GPa")
            .unwrap();
        let mut sums = ScanSums::empty(ScanIdentity::of(&setup, other), other, a).unwrap();
        let e = add_partial(&mut sums, &files[0]).unwrap_err().to_string();
        assert!(e.contains("another run") && e.contains("scan_index"), "{e}");
        // Shard arithmetic: 4 blocks in 3 shards; more shards than blocks is refused.
        assert_eq!(Shard::parse("2/3").unwrap(), Shard { index: 1, count: 3 });
        assert!(Shard::parse("0/3").is_err() && Shard::parse("x").is_err());
        assert!(Shard { index: 0, count: 5 }.pixels(4 * 4096).is_err());
    }
}
