//! Results HDF5 in the APS 8-ID-I layout (the one the APS XPCS viewer reads).
//!
//! Input of [`write_results`]: a plain-data [`ResultsFile`]. Output: an HDF5 file (written
//! atomically) with every key, shape and dtype of the table in docs/formats.md ("Results
//! HDF5"): 0-d scalars; g2 and its error as (n_delay, Nd) f32, one column per dynamic bin in label order; delays as int64
//! **frames**; two-time maps as (n, n) f32 **upper triangles**; roi maps H×W u32; the q-map
//! group carries a `hash` attribute = sha256 of the mask, both label maps and the bin centres.
//! Units: times in s, energy in keV, q in Å⁻¹, φ in degrees, lengths in m, beam centre in
//! pixels; intensities are mean counts per pixel per frame.
//!
//! Our own data go under `/xpcs_twin`: estimator, seed, version, and free-form groups (fits,
//! ground truth, ...) from a [`Tree`] of f64 arrays and strings. The viewer ignores them.
//!
//! [`read_results`] reads the file back (the `fit` command reads g2 from it) and checks the
//! same consistency rules.
//!
//! Reference: the 8-ID-I result files written by boost_corr and read by pyXpcsViewer
//! (xpcs-viewer 1.2.2, `pyxpcsviewer/core/file_io/aps_8idi.py`), summarised in
//! the table of docs/formats.md ("Results HDF5").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hdf5::types::TypeDescriptor;
use ndarray::{Array1, Array2, Array3, ArrayD, IxDyn};
use sha2::{Digest, Sha256};

use crate::atomic::AtomicOutput;
use crate::h5util::{guard_size, h5err, has_dataset, has_group, open_read, read_text};
use xpcs_core::data::{BinAxis, LabelMap, QPartition};
use xpcs_core::error::{Error, Result};

/// Detector geometry used to make the q-map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    /// Beam centre, column coordinate (pixels).
    pub beam_center_x_px: f64,
    /// Beam centre, row coordinate (pixels).
    pub beam_center_y_px: f64,
    /// Pixel size (m), square pixels.
    pub pixel_size_m: f64,
    /// Sample–detector distance (m).
    pub detector_distance_m: f64,
}

/// Multi-tau one-time correlation results.
#[derive(Debug, Clone, PartialEq)]
pub struct Multitau {
    /// g2, shape (n_delay, Nd): column k is dynamic bin k + 1.
    pub g2: Array2<f32>,
    /// Standard error of g2, same shape.
    pub g2_err: Array2<f32>,
    /// Lags in frames (time = lag × frame_time × stride × avg), length n_delay.
    pub delay_frames: Vec<i64>,
    /// Frame stride used (1 = every frame).
    pub stride_frame: i64,
    /// Frames averaged together before correlating (1 = none).
    pub avg_frame: i64,
    /// Raw frames used, `begin_frame..end_frame` (0-based, end exclusive), when recorded
    /// (`/xpcs/multitau/config/{begin_frame, end_frame}`, the APS pipeline's keys).
    pub frame_range: Option<(i64, i64)>,
    /// Optional g2 per time segment, (n_part, n_delay, Nd), and its error.
    pub g2_partial: Option<(Array3<f32>, Array3<f32>)>,
    /// Optional leave-one-pixel-group-out g2 replicates, (n_groups, n_delay, Nd), f64 (see
    /// [`xpcs_core::correlate::G2Result::jackknife`]): written as `/xpcs/multitau/g2_jackknife`
    /// (an xpcs-twin key; the APS viewer ignores it), read by `fit` for jackknife errors.
    pub g2_jackknife: Option<Array3<f64>>,
}

/// Two-time correlation results.
#[derive(Debug, Clone, PartialEq)]
pub struct Twotime {
    /// Dynamic bins (1-based labels) with a map, in increasing order.
    pub processed_bins: Vec<u32>,
    /// One (n, n) map per processed bin. The writer stores the upper triangle only (the
    /// viewer shows C + Cᵀ); the reader returns what is stored (upper triangle, zeros below).
    pub c2: Vec<Array2<f32>>,
    /// Mean along the diagonals (lag 0..n-1), shape (n, n_proc).
    pub g2: Array2<f32>,
    /// The same over time windows, shape (len, n_seg, n_proc).
    pub g2_segments: Array3<f32>,
    /// Frame stride used.
    pub stride_frame: i64,
    /// Frames averaged together.
    pub avg_frame: i64,
}

/// A node of a free-form tree written under `/xpcs_twin`.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// An f64 array (shape may be empty: a 0-d scalar).
    F64 {
        /// Shape.
        shape: Vec<usize>,
        /// Row-major values.
        data: Vec<f64>,
    },
    /// A UTF-8 string (0-d).
    Text(String),
    /// A sub-group.
    Group(Tree),
}

/// A free-form key → node tree (fits, ground truth, settings).
pub type Tree = BTreeMap<String, Node>;

impl Node {
    /// A 0-d scalar.
    pub fn scalar(x: f64) -> Self {
        Node::F64 {
            shape: vec![],
            data: vec![x],
        }
    }
    /// A 1-d array.
    pub fn vec(v: Vec<f64>) -> Self {
        Node::F64 {
            shape: vec![v.len()],
            data: v,
        }
    }
}

/// Provenance of the results, written to `/xpcs_twin`.
#[derive(Debug, Clone, PartialEq)]
pub struct TwinInfo {
    /// Estimator names, e.g. "multitau symmetric; twotime".
    pub estimator: String,
    /// The run's seed (0 for real data).
    pub seed: u64,
    /// xpcs-twin version that wrote the file.
    pub version: String,
    /// Free-form groups: fits, ground truth, ...
    pub extra: Tree,
}

/// Everything a results file holds. H×W detector; Nd dynamic bins, Ns static bins.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsFile {
    /// Acquisition start, any text (ISO 8601 preferred).
    pub start_time: String,
    /// Frame period (s).
    pub frame_time_s: f64,
    /// Exposure per frame (s).
    pub count_time_s: f64,
    /// Incident energy (keV).
    pub energy_kev: f64,
    /// Geometry used for the q-map.
    pub geometry: Geometry,
    /// Mask, dynamic and static label maps, bin centres.
    pub partition: QPartition,
    /// Mean counts per pixel per frame, H×W row-major.
    pub scattering_2d: Vec<f32>,
    /// Mean counts per pixel per frame in each static bin (length Ns).
    pub scattering_1d: Vec<f32>,
    /// The same per time segment, (n_seg, Ns).
    pub scattering_1d_segments: Array2<f32>,
    /// Mean counts per pixel in each frame (length n_frames).
    pub intensity_vs_time: Vec<f32>,
    /// Multi-tau results, if computed.
    pub multitau: Option<Multitau>,
    /// Two-time results, if computed.
    pub twotime: Option<Twotime>,
    /// Our provenance and free-form groups.
    pub twin: TwinInfo,
}

/// The q × φ grid of a label map in the APS encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct BinGrid {
    /// Distinct q centres, increasing (`v_list_dim0`).
    pub q_centres: Vec<f64>,
    /// Distinct φ centres, increasing (`v_list_dim1`).
    pub phi_centres: Vec<f64>,
    /// Grid index i_q · n_φ + i_φ of label k + 1 (`index_mapping`).
    pub index_mapping: Vec<i64>,
}

/// The APS grid of a list of bin centres. When any centre has a NaN (unknown) q or φ, the
/// grid is 1-D in bin order: `v_list_dim0` holds each bin's q, NaN where unknown (never a
/// made-up value), `v_list_dim1` = `[0]`, index k for bin k + 1; the file still loads in the APS
/// viewer and reads back with the same unknowns. [`Q_UNKNOWN_NOTE`] marks such a list.
pub fn bin_grid(axes: &[BinAxis]) -> BinGrid {
    let known = axes
        .iter()
        .all(|a| a.q_inv_angstrom.is_finite() && a.phi_deg.is_finite());
    if !known || axes.is_empty() {
        return BinGrid {
            q_centres: axes.iter().map(|a| a.q_inv_angstrom).collect(),
            phi_centres: vec![0.0],
            index_mapping: (0..axes.len() as i64).collect(),
        };
    }
    let uniq = |f: &dyn Fn(&BinAxis) -> f64| {
        let mut v: Vec<f64> = axes.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v.dedup();
        v
    };
    let q = uniq(&|a| a.q_inv_angstrom);
    let phi = uniq(&|a| a.phi_deg);
    let idx = axes
        .iter()
        .map(|a| {
            let iq = q.partition_point(|&x| x < a.q_inv_angstrom);
            let ip = phi.partition_point(|&x| x < a.phi_deg);
            (iq * phi.len() + ip) as i64
        })
        .collect();
    BinGrid {
        q_centres: q,
        phi_centres: phi,
        index_mapping: idx,
    }
}

/// Attribute `note` of a `*_v_list_dim0` holding NaN: q unknown.
pub const Q_UNKNOWN_NOTE: &str = "q unknown (NaN): no q-map with q values and no geometry given";

/// sha256 (hex) of the q-map content: shape, mask, both label maps, bin centres.
pub fn qmap_hash(p: &QPartition) -> String {
    let mut h = Sha256::new();
    let (r, c) = p.shape();
    h.update((r as u64).to_le_bytes());
    h.update((c as u64).to_le_bytes());
    h.update(p.mask().iter().map(|&b| b as u8).collect::<Vec<u8>>());
    for m in [p.dynamic(), p.static_map()] {
        for &l in m.labels() {
            h.update(l.to_le_bytes());
        }
    }
    for axes in [p.dynamic_axes(), p.static_axes()] {
        for a in axes {
            h.update(a.q_inv_angstrom.to_le_bytes());
            h.update(a.phi_deg.to_le_bytes());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn positive(origin: &str, field: &str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::out_of_range(origin, field, v, "> 0 and finite"))
    }
}

fn shape_err(origin: &str, what: &str, expected: Vec<usize>, got: Vec<usize>) -> Error {
    Error::ShapeMismatch {
        origin: origin.into(),
        what: what.into(),
        expected,
        got,
    }
}

impl ResultsFile {
    /// Checks every consistency rule of the layout (shapes agree, scalars positive, ...).
    pub fn validate(&self, origin: &str) -> Result<()> {
        positive(origin, "frame_time_s", self.frame_time_s)?;
        positive(origin, "count_time_s", self.count_time_s)?;
        // Geometry and energy may be unknown (NaN, e.g. frames correlated without them), never
        // infinite or ≤ 0.
        let g = &self.geometry;
        for (f, v) in [
            ("energy_kev", self.energy_kev),
            ("pixel_size_m", g.pixel_size_m),
            ("detector_distance_m", g.detector_distance_m),
        ] {
            if !v.is_nan() {
                positive(origin, f, v)?;
            }
        }
        for (f, v) in [
            ("beam_center_x_px", g.beam_center_x_px),
            ("beam_center_y_px", g.beam_center_y_px),
        ] {
            if v.is_infinite() {
                return Err(Error::out_of_range(origin, f, v, "finite (NaN = unknown)"));
            }
        }
        let (r, c) = self.partition.shape();
        let nd = self.partition.n_bins();
        let ns = self.partition.static_map().n_bins();
        if self.scattering_2d.len() != r * c {
            return Err(shape_err(
                origin,
                "scattering_2d vs detector",
                vec![r, c],
                vec![self.scattering_2d.len()],
            ));
        }
        if self.scattering_1d.len() != ns {
            return Err(shape_err(
                origin,
                "scattering_1d vs static bins",
                vec![ns],
                vec![self.scattering_1d.len()],
            ));
        }
        if self.scattering_1d_segments.ncols() != ns {
            return Err(shape_err(
                origin,
                "scattering_1d_segments (n_seg, Ns)",
                vec![self.scattering_1d_segments.nrows(), ns],
                self.scattering_1d_segments.shape().to_vec(),
            ));
        }
        if self.intensity_vs_time.is_empty() {
            return Err(Error::invalid(
                origin,
                "intensity_vs_time is empty (no frames)",
            ));
        }
        if let Some(m) = &self.multitau {
            let nl = m.delay_frames.len();
            for (what, a) in [("multitau g2", &m.g2), ("multitau g2_err", &m.g2_err)] {
                if a.shape() != [nl, nd] {
                    return Err(shape_err(
                        origin,
                        &format!("{what} (n_delay, Nd)"),
                        vec![nl, nd],
                        a.shape().to_vec(),
                    ));
                }
            }
            if nl == 0 {
                return Err(Error::invalid(origin, "multitau has no delays"));
            }
            if let Some(&d) = m.delay_frames.iter().find(|&&d| d < 0) {
                return Err(Error::out_of_range(origin, "delay_frames", d, "≥ 0 frames"));
            }
            for (f, v) in [
                ("multitau stride_frame", m.stride_frame),
                ("multitau avg_frame", m.avg_frame),
            ] {
                if v < 1 {
                    return Err(Error::out_of_range(origin, f, v, "≥ 1"));
                }
            }
            if let Some(j) = &m.g2_jackknife {
                if j.shape()[1..] != [nl, nd] {
                    return Err(shape_err(
                        origin,
                        "g2_jackknife (n_groups, n_delay, Nd)",
                        vec![j.shape()[0], nl, nd],
                        j.shape().to_vec(),
                    ));
                }
            }
            if let Some((p, e)) = &m.g2_partial {
                if p.shape()[1..] != [nl, nd] || p.shape() != e.shape() {
                    return Err(shape_err(
                        origin,
                        "g2_partial (n_part, n_delay, Nd)",
                        vec![p.shape()[0], nl, nd],
                        e.shape().to_vec(),
                    ));
                }
            }
        }
        if let Some(t) = &self.twotime {
            let np = t.processed_bins.len();
            if np == 0 || t.c2.len() != np {
                return Err(shape_err(
                    origin,
                    "two-time maps vs processed_bins",
                    vec![np],
                    vec![t.c2.len()],
                ));
            }
            if t.processed_bins.windows(2).any(|w| w[1] <= w[0]) {
                return Err(Error::invalid(
                    origin,
                    "processed_bins must be strictly increasing",
                ));
            }
            if let Some(&b) = t
                .processed_bins
                .iter()
                .find(|&&b| b == 0 || b as usize > nd)
            {
                return Err(Error::out_of_range(
                    origin,
                    "processed_bins",
                    b,
                    format!("1..={nd}"),
                ));
            }
            let n = t.c2[0].nrows();
            for m in &t.c2 {
                if m.shape() != [n, n] {
                    return Err(shape_err(
                        origin,
                        "two-time map (n, n)",
                        vec![n, n],
                        m.shape().to_vec(),
                    ));
                }
            }
            if t.g2.ncols() != np {
                return Err(shape_err(
                    origin,
                    "twotime g2 (n, n_proc)",
                    vec![t.g2.nrows(), np],
                    t.g2.shape().to_vec(),
                ));
            }
            if t.g2_segments.shape()[2] != np {
                return Err(shape_err(
                    origin,
                    "twotime g2_segments (len, n_seg, n_proc)",
                    vec![np],
                    t.g2_segments.shape().to_vec(),
                ));
            }
            for (f, v) in [
                ("twotime stride_frame", t.stride_frame),
                ("twotime avg_frame", t.avg_frame),
            ] {
                if v < 1 {
                    return Err(Error::out_of_range(origin, f, v, "≥ 1"));
                }
            }
        }
        Ok(())
    }
}

/// Creates (or opens) the group at an absolute path, creating parents.
fn ensure_group(f: &hdf5::File, path: &str, file: &Path) -> Result<hdf5::Group> {
    let mut g = f.group("/").map_err(h5err(file, "/"))?;
    for part in path.trim_matches('/').split('/').filter(|s| !s.is_empty()) {
        g = if g.link_exists(part) {
            g.group(part)
        } else {
            crate::h5util::create_group(&g, part)
        }
        .map_err(h5err(file, path))?;
    }
    Ok(g)
}

struct W<'a> {
    f: &'a hdf5::File,
    path: &'a Path,
}

impl W<'_> {
    fn split<'n>(&self, name: &'n str) -> Result<(hdf5::Group, &'n str)> {
        let (dir, leaf) = name.rsplit_once('/').unwrap_or(("/", name));
        Ok((ensure_group(self.f, dir, self.path)?, leaf))
    }
    fn scalar<T: hdf5::H5Type>(&self, name: &str, v: T) -> Result<()> {
        let (g, leaf) = self.split(name)?;
        g.new_dataset_builder()
            .with_data(&ndarray::arr0(v))
            .create(leaf)
            .map_err(h5err(self.path, name))?;
        Ok(())
    }
    fn text(&self, name: &str, s: &str) -> Result<()> {
        let (g, leaf) = self.split(name)?;
        crate::h5util::write_text(&g, leaf, s, self.path)
    }
    fn array<T: hdf5::H5Type, D: ndarray::Dimension>(
        &self,
        name: &str,
        a: &ndarray::Array<T, D>,
    ) -> Result<()> {
        let (g, leaf) = self.split(name)?;
        let mut b = g.new_dataset_builder();
        // Large maps (roi maps, two-time maps) are chunked whole, byte-shuffled and deflated
        // at level 1: h5py reads both filters without plugins. On a 1000 × 1000 f32
        // two-time map, shuffle + level 1 compresses to 36 % in 39 ms where deflate 4 alone
        // gave 41 % in 94 ms (HDF5 compresses on one core, so this is the writer's wait).
        if a.len() >= 4096 {
            b = b.chunk(a.shape().to_vec()).shuffle().deflate(1);
        }
        b.with_data(a)
            .create(leaf)
            .map_err(h5err(self.path, name))?;
        Ok(())
    }
    fn strings(&self, name: &str, items: &[&str]) -> Result<()> {
        let (g, leaf) = self.split(name)?;
        crate::h5util::write_text_array(&g, leaf, items, self.path)
    }
}

fn write_tree(w: &W, base: &str, t: &Tree) -> Result<()> {
    for (k, node) in t {
        if k.is_empty() || k.contains('/') || k == "." {
            return Err(Error::invalid(
                base,
                format!("tree key {k:?} is not a plain name"),
            ));
        }
        let name = format!("{base}/{k}");
        match node {
            Node::Text(s) => w.text(&name, s)?,
            Node::F64 { shape, data } => {
                let a = ArrayD::from_shape_vec(IxDyn(shape), data.clone())
                    .map_err(|e| Error::invalid(&name, e.to_string()))?;
                w.array(&name, &a)?;
            }
            Node::Group(sub) => {
                ensure_group(w.f, &name, w.path)?;
                write_tree(w, &name, sub)?;
            }
        }
    }
    Ok(())
}

/// Writes `res` to `path` atomically (refuses an input; refuses an existing file unless
/// `force`). Checks [`ResultsFile::validate`] first.
pub fn write_results(path: &Path, res: &ResultsFile, force: bool) -> Result<PathBuf> {
    let origin = path.display().to_string();
    res.validate(&origin)?;
    crate::h5filters::register()?;
    let out = AtomicOutput::begin(path, &[], force)?;
    write_file(out, res)
}

fn write_into(w: &W, res: &ResultsFile) -> Result<()> {
    let p = &res.partition;
    let (r, c) = p.shape();
    let g = &res.geometry;
    w.text("/entry/start_time", &res.start_time)?;
    let det = "/entry/instrument/detector_1";
    w.scalar(&format!("{det}/frame_time"), res.frame_time_s)?;
    w.scalar(&format!("{det}/count_time"), res.count_time_s)?;
    w.scalar(&format!("{det}/distance"), g.detector_distance_m)?;
    w.scalar(&format!("{det}/x_pixel_size"), g.pixel_size_m)?;
    w.scalar(&format!("{det}/y_pixel_size"), g.pixel_size_m)?;
    w.scalar(&format!("{det}/beam_center_x"), g.beam_center_x_px)?;
    w.scalar(&format!("{det}/beam_center_y"), g.beam_center_y_px)?;
    w.scalar(
        "/entry/instrument/incident_beam/incident_energy",
        res.energy_kev,
    )?;

    let q = "/xpcs/qmap";
    let qg = ensure_group(w.f, q, w.path)?;
    crate::h5util::write_text_attr(&qg, "hash", &qmap_hash(p), w.path)?;
    let mask = Array2::from_shape_vec((r, c), p.mask().to_vec()).expect("mask shape");
    w.array(&format!("{q}/mask"), &mask)?;
    for (kind, map, axes) in [
        ("dynamic", p.dynamic(), p.dynamic_axes()),
        ("static", p.static_map(), p.static_axes()),
    ] {
        let roi = Array2::from_shape_vec((r, c), map.labels().to_vec()).expect("label shape");
        w.array(&format!("{q}/{kind}_roi_map"), &roi)?;
        let grid = bin_grid(axes);
        let num_pts = [grid.q_centres.len() as i64, grid.phi_centres.len() as i64];
        w.array(
            &format!("{q}/{kind}_num_pts"),
            &Array1::from(num_pts.to_vec()),
        )?;
        let unknown = grid.q_centres.iter().any(|x| x.is_nan());
        let dim0 = format!("{q}/{kind}_v_list_dim0");
        w.array(&dim0, &Array1::from(grid.q_centres))?;
        if unknown {
            let ds = w.f.dataset(&dim0).map_err(h5err(w.path, &dim0))?;
            crate::h5util::write_text_attr(&ds, "note", Q_UNKNOWN_NOTE, w.path)?;
        }
        w.array(
            &format!("{q}/{kind}_v_list_dim1"),
            &Array1::from(grid.phi_centres),
        )?;
        w.array(
            &format!("{q}/{kind}_index_mapping"),
            &Array1::from(grid.index_mapping),
        )?;
    }
    w.scalar(&format!("{q}/beam_center_x"), g.beam_center_x_px)?;
    w.scalar(&format!("{q}/beam_center_y"), g.beam_center_y_px)?;
    w.scalar(&format!("{q}/pixel_size"), g.pixel_size_m)?;
    w.scalar(&format!("{q}/detector_distance"), g.detector_distance_m)?;
    w.scalar(&format!("{q}/energy"), res.energy_kev)?;
    w.strings(&format!("{q}/map_names"), &["q", "phi"])?;
    w.strings(&format!("{q}/map_units"), &["\u{c5}\u{207b}\u{b9}", "deg"])?;

    let tm = "/xpcs/temporal_mean";
    let s2 = Array3::from_shape_vec((1, r, c), res.scattering_2d.clone()).expect("validated");
    w.array(&format!("{tm}/scattering_2d"), &s2)?;
    let ns = res.scattering_1d.len();
    let s1 = Array2::from_shape_vec((1, ns), res.scattering_1d.clone()).expect("validated");
    w.array(&format!("{tm}/scattering_1d"), &s1)?;
    w.array(
        &format!("{tm}/scattering_1d_segments"),
        &res.scattering_1d_segments,
    )?;
    let nf = res.intensity_vs_time.len();
    let mut ivt = Array2::<f32>::zeros((2, nf));
    for (t, &v) in res.intensity_vs_time.iter().enumerate() {
        ivt[[0, t]] = t as f32;
        ivt[[1, t]] = v;
    }
    w.array("/xpcs/spatial_mean/intensity_vs_time", &ivt)?;

    if let Some(m) = &res.multitau {
        let b = "/xpcs/multitau";
        w.array(&format!("{b}/normalized_g2"), &m.g2)?;
        w.array(&format!("{b}/normalized_g2_err"), &m.g2_err)?;
        w.array(
            &format!("{b}/delay_list"),
            &Array1::from(m.delay_frames.clone()),
        )?;
        w.scalar(&format!("{b}/config/stride_frame"), m.stride_frame)?;
        w.scalar(&format!("{b}/config/avg_frame"), m.avg_frame)?;
        if let Some((begin, end)) = m.frame_range {
            w.scalar(&format!("{b}/config/begin_frame"), begin)?;
            w.scalar(&format!("{b}/config/end_frame"), end)?;
        }
        w.text(&format!("{b}/config/analysis_type"), "Multitau")?;
        if let Some((pg, pe)) = &m.g2_partial {
            w.array(&format!("{b}/normalized_g2_partial"), pg)?;
            w.array(&format!("{b}/normalized_g2_partial_err"), pe)?;
        }
        if let Some(j) = &m.g2_jackknife {
            w.array(
                &format!("{b}/g2_jackknife"),
                &j.as_standard_layout().into_owned(),
            )?;
        }
    }
    if let Some(t) = &res.twotime {
        let b = "/xpcs/twotime";
        ensure_group(w.f, &format!("{b}/correlation_map"), w.path)?;
        for (&bin, m) in t.processed_bins.iter().zip(&t.c2) {
            let n = m.nrows();
            let mut up = m.clone();
            for i in 0..n {
                for j in 0..i {
                    up[[i, j]] = 0.0;
                }
            }
            w.array(&format!("{b}/correlation_map/c2_{bin:05}"), &up)?;
        }
        let pb: Vec<i64> = t.processed_bins.iter().map(|&b| i64::from(b)).collect();
        w.array(&format!("{b}/processed_bins"), &Array1::from(pb))?;
        w.array(&format!("{b}/normalized_g2"), &t.g2)?;
        w.array(&format!("{b}/normalized_g2_segments"), &t.g2_segments)?;
        w.scalar(&format!("{b}/config/stride_frame"), t.stride_frame)?;
        w.scalar(&format!("{b}/config/avg_frame"), t.avg_frame)?;
        w.text(&format!("{b}/config/analysis_type"), "Twotime")?;
    }

    let tw = "/xpcs_twin";
    w.text(&format!("{tw}/estimator"), &res.twin.estimator)?;
    w.scalar(&format!("{tw}/seed"), res.twin.seed)?;
    w.text(&format!("{tw}/version"), &res.twin.version)?;
    for k in ["estimator", "seed", "version"] {
        if res.twin.extra.contains_key(k) {
            return Err(Error::invalid(
                "/xpcs_twin",
                format!("extra key {k:?} is reserved"),
            ));
        }
    }
    write_tree(w, tw, &res.twin.extra)?;
    Ok(())
}

// ---------------------------------------------------------------- reading

struct R<'a> {
    f: &'a hdf5::File,
    path: &'a Path,
}

impl R<'_> {
    fn ds(&self, name: &str) -> Result<hdf5::Dataset> {
        if !has_dataset(self.f, name) {
            return Err(Error::format(self.path, format!("missing dataset {name}")));
        }
        self.f.dataset(name).map_err(h5err(self.path, name))
    }
    /// A scalar stored 0-d (as we write it) or as any shape holding one element ([1], [1, 1]:
    /// the 8-ID-I metadata stores `frame_time` as [1, 1]).
    fn one(&self, name: &str) -> Result<hdf5::Dataset> {
        let ds = self.ds(name)?;
        if crate::h5util::n_elems(&ds) != Some(1) {
            return Err(shape_err(
                &format!("{}:{name}", self.path.display()),
                &format!("{name} (a scalar: shape [], [1] or [1, 1])"),
                vec![],
                ds.shape(),
            ));
        }
        Ok(ds)
    }
    fn f64_0d(&self, name: &str) -> Result<f64> {
        let ds = self.one(name)?;
        Ok(ds.read_raw::<f64>().map_err(h5err(self.path, name))?[0])
    }
    fn i64_0d(&self, name: &str) -> Result<i64> {
        let ds = self.one(name)?;
        Ok(ds.read_raw::<i64>().map_err(h5err(self.path, name))?[0])
    }
    fn text(&self, name: &str) -> Result<String> {
        let ds = self.ds(name)?;
        read_text(&ds, self.path, name)
    }
    fn vec<T: hdf5::H5Type>(&self, name: &str) -> Result<(Vec<usize>, Vec<T>)> {
        let ds = self.ds(name)?;
        guard_size(&ds, std::mem::size_of::<T>(), self.path, name)?;
        let v = ds.read_raw::<T>().map_err(h5err(self.path, name))?;
        Ok((ds.shape(), v))
    }
    fn arr2(&self, name: &str) -> Result<Array2<f32>> {
        let ds = self.ds(name)?;
        if ds.ndim() != 2 {
            return Err(Error::format(
                self.path,
                format!("{name} must have rank 2, got {:?}", ds.shape()),
            ));
        }
        guard_size(&ds, 4, self.path, name)?;
        ds.read_2d::<f32>().map_err(h5err(self.path, name))
    }
    fn arr3<T: hdf5::H5Type>(&self, name: &str) -> Result<Array3<T>> {
        let ds = self.ds(name)?;
        if ds.ndim() != 3 {
            return Err(Error::format(
                self.path,
                format!("{name} must have rank 3, got {:?}", ds.shape()),
            ));
        }
        guard_size(&ds, std::mem::size_of::<T>(), self.path, name)?;
        ds.read::<T, ndarray::Ix3>().map_err(h5err(self.path, name))
    }
}

fn labels_of(r: &R, name: &str, rows: usize, cols: usize) -> Result<LabelMap> {
    let ds = r.ds(name)?;
    let (shape, v) = crate::h5util::read_u32_any(&ds, r.path, name)?;
    if shape != [rows, cols] {
        return Err(shape_err(
            &r.path.display().to_string(),
            &format!("{name} vs mask"),
            vec![rows, cols],
            shape,
        ));
    }
    LabelMap::new(rows, cols, v, &format!("{}:{name}", r.path.display()))
}

fn read_tree(g: &hdf5::Group, path: &Path, skip: &[&str]) -> Result<Tree> {
    let mut t = Tree::new();
    for name in g.member_names().map_err(h5err(path, &g.name()))? {
        if skip.contains(&name.as_str()) {
            continue;
        }
        let full = format!("{}/{name}", g.name().trim_end_matches('/'));
        if let Ok(sub) = g.group(&name) {
            t.insert(name, Node::Group(read_tree(&sub, path, &[])?));
            continue;
        }
        let ds = g.dataset(&name).map_err(h5err(path, &full))?;
        let td = ds
            .dtype()
            .and_then(|d| d.to_descriptor())
            .map_err(h5err(path, &full))?;
        let node = match td {
            TypeDescriptor::VarLenUnicode
            | TypeDescriptor::VarLenAscii
            | TypeDescriptor::FixedAscii(_)
            | TypeDescriptor::FixedUnicode(_) => Node::Text(read_text(&ds, path, &full)?),
            TypeDescriptor::Float(_) | TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => {
                Node::F64 {
                    shape: ds.shape(),
                    data: ds.read_raw::<f64>().map_err(h5err(path, &full))?,
                }
            }
            other => {
                return Err(Error::format(
                    path,
                    format!("{full}: unsupported type {other} in /xpcs_twin"),
                ))
            }
        };
        t.insert(name, node);
    }
    Ok(t)
}

/// Replaces the existing results file at `path` with `res` (e.g. after adding fits to
/// `/xpcs_twin`), atomically: the new file is written to a temp file in the same directory and
/// renamed over `path`, so a crash leaves the old file intact. Unlike [`write_results`] this
/// does not refuse a file the run read: updating that file is the point. Checks
/// [`ResultsFile::validate`] first; `path` must exist.
pub fn update_results(path: &Path, res: &ResultsFile) -> Result<PathBuf> {
    let origin = path.display().to_string();
    res.validate(&origin)?;
    crate::h5filters::register()?;
    let out = AtomicOutput::replace(path)?;
    write_file(out, res)
}

/// Writes `res` into the temp file of `out` and commits it.
fn write_file(out: AtomicOutput, res: &ResultsFile) -> Result<PathBuf> {
    let tmp = out.tmp_path().to_path_buf();
    {
        let f = crate::h5util::create_h5(&tmp)?;
        write_into(&W { f: &f, path: &tmp }, res)?;
        f.close().map_err(h5err(&tmp, "close"))?;
    }
    out.commit()
}

/// Reads a results file written by [`write_results`] (or by boost_corr, for the keys listed
/// in the layout). Two-time maps come back as stored (upper triangle).
pub fn read_results(path: &Path) -> Result<ResultsFile> {
    let f = open_read(path)?;
    let r = R { f: &f, path };
    let origin = path.display().to_string();
    let q = "/xpcs/qmap";
    let det = "/entry/instrument/detector_1";
    // bool as we write it; integer (0/1) as some writers store it.
    let mask_name = format!("{q}/mask");
    let mds = r.ds(&mask_name)?;
    let is_bool = matches!(
        mds.dtype().and_then(|t| t.to_descriptor()),
        Ok(TypeDescriptor::Boolean)
    );
    let (mshape, mraw) = if is_bool {
        r.vec::<bool>(&mask_name)?
    } else {
        let (sh, v) = crate::h5util::read_u32_any(&mds, path, &mask_name)?;
        (sh, v.into_iter().map(|x| x != 0).collect())
    };
    if mshape.len() != 2 {
        return Err(Error::format(
            path,
            format!("{q}/mask must be H×W, got {mshape:?}"),
        ));
    }
    let (rows, cols) = (mshape[0], mshape[1]);
    let dynamic = labels_of(&r, &format!("{q}/dynamic_roi_map"), rows, cols)?;
    let static_map = labels_of(&r, &format!("{q}/static_roi_map"), rows, cols)?;
    let (nd, ns) = (dynamic.n_bins(), static_map.n_bins());
    let dax = crate::maps::read_axes(&f, path, q, "dynamic", nd)?;
    let sax = crate::maps::read_axes(&f, path, q, "static", ns)?;
    let partition = QPartition::new(mraw, dynamic, static_map, &origin)?.with_axes(dax, sax)?;

    let geometry = Geometry {
        beam_center_x_px: r.f64_0d(&format!("{q}/beam_center_x"))?,
        beam_center_y_px: r.f64_0d(&format!("{q}/beam_center_y"))?,
        pixel_size_m: r.f64_0d(&format!("{q}/pixel_size"))?,
        detector_distance_m: r.f64_0d(&format!("{q}/detector_distance"))?,
    };
    let tm = "/xpcs/temporal_mean";
    let (s2shape, scattering_2d) = r.vec::<f32>(&format!("{tm}/scattering_2d"))?;
    if s2shape != [1, rows, cols] {
        return Err(shape_err(
            &origin,
            "scattering_2d (1, H, W)",
            vec![1, rows, cols],
            s2shape,
        ));
    }
    let (s1shape, scattering_1d) = r.vec::<f32>(&format!("{tm}/scattering_1d"))?;
    if s1shape != [1, ns] {
        return Err(shape_err(
            &origin,
            "scattering_1d (1, Ns)",
            vec![1, ns],
            s1shape,
        ));
    }
    let scattering_1d_segments = r.arr2(&format!("{tm}/scattering_1d_segments"))?;
    let ivt = r.arr2("/xpcs/spatial_mean/intensity_vs_time")?;
    if ivt.nrows() != 2 {
        return Err(shape_err(
            &origin,
            "intensity_vs_time (2, n_frames)",
            vec![2, ivt.ncols()],
            ivt.shape().to_vec(),
        ));
    }
    let intensity_vs_time = ivt.row(1).to_vec();

    let multitau = if has_dataset(&f, "/xpcs/multitau/normalized_g2") {
        let b = "/xpcs/multitau";
        let dl = r.ds(&format!("{b}/delay_list"))?;
        let td = dl
            .dtype()
            .and_then(|t| t.to_descriptor())
            .map_err(h5err(path, "delay_list"))?;
        if !matches!(td, TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)) {
            return Err(Error::format(
                path,
                format!("{b}/delay_list must be integer frames (int64), got {td}: a list in seconds gives a wrong time axis"),
            ));
        }
        let partial = if has_dataset(&f, &format!("{b}/normalized_g2_partial")) {
            Some((
                r.arr3(&format!("{b}/normalized_g2_partial"))?,
                r.arr3(&format!("{b}/normalized_g2_partial_err"))?,
            ))
        } else {
            None
        };
        let jackknife = if has_dataset(&f, &format!("{b}/g2_jackknife")) {
            Some(r.arr3::<f64>(&format!("{b}/g2_jackknife"))?)
        } else {
            None
        };
        Some(Multitau {
            g2_jackknife: jackknife,
            g2: r.arr2(&format!("{b}/normalized_g2"))?,
            g2_err: r.arr2(&format!("{b}/normalized_g2_err"))?,
            delay_frames: guard_size(&dl, 8, path, "delay_list")
                .and_then(|_| dl.read_raw::<i64>().map_err(h5err(path, "delay_list")))?,
            stride_frame: r.i64_0d(&format!("{b}/config/stride_frame"))?,
            avg_frame: r.i64_0d(&format!("{b}/config/avg_frame"))?,
            frame_range: if has_dataset(&f, &format!("{b}/config/begin_frame"))
                && has_dataset(&f, &format!("{b}/config/end_frame"))
            {
                Some((
                    r.i64_0d(&format!("{b}/config/begin_frame"))?,
                    r.i64_0d(&format!("{b}/config/end_frame"))?,
                ))
            } else {
                None
            },
            g2_partial: partial,
        })
    } else {
        None
    };
    let twotime = if has_group(&f, "/xpcs/twotime/correlation_map") {
        let b = "/xpcs/twotime";
        let (_, pb) = r.vec::<i64>(&format!("{b}/processed_bins"))?;
        let processed_bins = crate::h5util::to_u32_checked(
            pb.iter().map(|&x| i128::from(x)),
            path,
            "processed_bins",
        )?;
        let c2 = processed_bins
            .iter()
            .map(|&bin| r.arr2(&format!("{b}/correlation_map/c2_{bin:05}")))
            .collect::<Result<Vec<_>>>()?;
        Some(Twotime {
            processed_bins,
            c2,
            g2: r.arr2(&format!("{b}/normalized_g2"))?,
            g2_segments: r.arr3(&format!("{b}/normalized_g2_segments"))?,
            stride_frame: r.i64_0d(&format!("{b}/config/stride_frame"))?,
            avg_frame: r.i64_0d(&format!("{b}/config/avg_frame"))?,
        })
    } else {
        None
    };
    let twin = if has_group(&f, "/xpcs_twin") {
        let g = f.group("/xpcs_twin").map_err(h5err(path, "/xpcs_twin"))?;
        let seed = if has_dataset(&f, "/xpcs_twin/seed") {
            r.ds("/xpcs_twin/seed")?
                .read_scalar::<u64>()
                .map_err(h5err(path, "/xpcs_twin/seed"))?
        } else {
            0
        };
        let opt_text = |n: &str| -> Result<String> {
            if has_dataset(&f, n) {
                r.text(n)
            } else {
                Ok(String::new())
            }
        };
        TwinInfo {
            estimator: opt_text("/xpcs_twin/estimator")?,
            seed,
            version: opt_text("/xpcs_twin/version")?,
            extra: read_tree(&g, path, &["estimator", "seed", "version"])?,
        }
    } else {
        TwinInfo {
            estimator: String::new(),
            seed: 0,
            version: String::new(),
            extra: Tree::new(),
        }
    };
    let res = ResultsFile {
        start_time: r.text("/entry/start_time")?,
        frame_time_s: r.f64_0d(&format!("{det}/frame_time"))?,
        count_time_s: r.f64_0d(&format!("{det}/count_time"))?,
        energy_kev: r.f64_0d("/entry/instrument/incident_beam/incident_energy")?,
        geometry,
        partition,
        scattering_2d,
        scattering_1d,
        scattering_1d_segments,
        intensity_vs_time,
        multitau,
        twotime,
        twin,
    };
    res.validate(&origin)?;
    Ok(res)
}

/// A small but complete results file (for tests, examples and the viewer check): H×W = 8×10,
/// 3 dynamic bins (q × φ = 3 × 1), 6 static bins, g2 = 1 + 0.3 exp(-2 lag/τ_k), two-time maps
/// for bins 1 and 3.
pub fn example_results() -> ResultsFile {
    let (rows, cols) = (8usize, 10usize);
    let mut dl = vec![0u32; rows * cols];
    let mut sl = vec![0u32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            if c == 0 {
                continue; // a masked column: label 0
            }
            dl[r * cols + c] = (c as u32 - 1) / 3 + 1;
            sl[r * cols + c] = ((c as u32 - 1) * 2) / 3 + 1;
        }
    }
    let mask: Vec<bool> = (0..rows * cols).map(|p| p % cols != 0).collect();
    let dmap = LabelMap::new(rows, cols, dl, "example").expect("labels");
    let smap = LabelMap::new(rows, cols, sl, "example").expect("labels");
    let q = |k: usize, n: usize| 0.01 + 0.02 * k as f64 / n as f64;
    let dax = (0..3)
        .map(|k| BinAxis {
            q_inv_angstrom: q(k, 3),
            phi_deg: 0.0,
        })
        .collect();
    let sax = (0..6)
        .map(|k| BinAxis {
            q_inv_angstrom: q(k, 6),
            phi_deg: 0.0,
        })
        .collect();
    let partition = QPartition::new(mask, dmap, smap, "example")
        .and_then(|p| p.with_axes(dax, sax))
        .expect("example partition");
    let delays: Vec<i64> = vec![1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32];
    let tau = [4.0f64, 8.0, 16.0];
    let g2 = Array2::from_shape_fn((delays.len(), 3), |(i, k)| {
        (1.0 + 0.3 * (-2.0 * delays[i] as f64 / tau[k]).exp()) as f32
    });
    let g2_err = Array2::from_elem((delays.len(), 3), 0.01f32);
    let n = 12;
    let c2 = [0usize, 2]
        .iter()
        .map(|&k| {
            Array2::from_shape_fn((n, n), |(i, j)| {
                (1.0 + 0.3 * (-2.0 * (i as f64 - j as f64).abs() / tau[k]).exp()) as f32
            })
        })
        .collect::<Vec<_>>();
    let tg2 = Array2::from_shape_fn((n, 2), |(l, b)| c2[b][[0, l]]);
    let seg = Array3::from_shape_fn((n / 2, 2, 2), |(l, _, b)| c2[b][[0, l]]);
    let mut extra = Tree::new();
    let mut fit = Tree::new();
    fit.insert("tau_s".into(), Node::vec(vec![0.4, 0.8, 1.6]));
    fit.insert("model".into(), Node::Text("kww".into()));
    extra.insert("fit".into(), Node::Group(fit));
    extra.insert("ground_truth_tau_s".into(), Node::scalar(0.8));
    ResultsFile {
        start_time: "2026-01-01T00:00:00Z".into(),
        frame_time_s: 0.1,
        count_time_s: 0.099,
        energy_kev: 21.0,
        geometry: Geometry {
            beam_center_x_px: -20.0,
            beam_center_y_px: 4.0,
            pixel_size_m: 75e-6,
            detector_distance_m: 5.0,
        },
        partition,
        scattering_2d: (0..rows * cols).map(|p| 0.05 + 0.001 * p as f32).collect(),
        scattering_1d: (0..6).map(|k| 0.1 / (k as f32 + 1.0)).collect(),
        scattering_1d_segments: Array2::from_shape_fn((2, 6), |(s, k)| {
            0.1 / (k as f32 + 1.0) + 0.001 * s as f32
        }),
        intensity_vs_time: (0..n).map(|t| 0.07 + 0.001 * (t % 3) as f32).collect(),
        multitau: Some(Multitau {
            g2,
            g2_err,
            delay_frames: delays,
            stride_frame: 1,
            avg_frame: 1,
            frame_range: Some((0, n as i64)),
            g2_partial: None,
            g2_jackknife: None,
        }),
        twotime: Some(Twotime {
            processed_bins: vec![1, 3],
            c2,
            g2: tg2,
            g2_segments: seg,
            stride_frame: 1,
            avg_frame: 1,
        }),
        twin: TwinInfo {
            estimator: "multitau symmetric; twotime".into(),
            seed: 0xDEAD_BEEF_0123_4567,
            version: env!("CARGO_PKG_VERSION").into(),
            extra,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x_results.hdf");
        let res = example_results();
        write_results(&p, &res, false).unwrap();
        assert!(
            write_results(&p, &res, false).is_err(),
            "existing output without force"
        );
        let back = read_results(&p).unwrap();
        // The writer keeps only the upper triangle of each two-time map.
        let mut want = res.clone();
        for m in &mut want.twotime.as_mut().unwrap().c2 {
            let n = m.nrows();
            for i in 0..n {
                for j in 0..i {
                    m[[i, j]] = 0.0;
                }
            }
        }
        assert_eq!(back, want);
        // Refuses to overwrite its own input, even with force.
        assert!(write_results(&p, &res, true).is_err());
    }

    #[test]
    fn layout_shapes_and_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y_results.hdf");
        write_results(&p, &example_results(), false).unwrap();
        let f = hdf5::File::open(&p).unwrap();
        let sh = |n: &str| f.dataset(n).unwrap().shape();
        assert_eq!(
            sh("/entry/instrument/detector_1/frame_time"),
            Vec::<usize>::new()
        );
        assert_eq!(sh("/xpcs/multitau/normalized_g2"), vec![16, 3]);
        assert_eq!(sh("/xpcs/temporal_mean/scattering_2d"), vec![1, 8, 10]);
        assert_eq!(sh("/xpcs/temporal_mean/scattering_1d"), vec![1, 6]);
        assert_eq!(sh("/xpcs/spatial_mean/intensity_vs_time"), vec![2, 12]);
        assert_eq!(sh("/xpcs/twotime/correlation_map/c2_00003"), vec![12, 12]);
        let td = |n: &str| {
            f.dataset(n)
                .unwrap()
                .dtype()
                .unwrap()
                .to_descriptor()
                .unwrap()
        };
        assert_eq!(
            td("/xpcs/multitau/delay_list"),
            TypeDescriptor::Integer(hdf5::types::IntSize::U8)
        );
        assert_eq!(
            td("/xpcs/multitau/normalized_g2"),
            TypeDescriptor::Float(hdf5::types::FloatSize::U4)
        );
        assert_eq!(
            td("/xpcs/qmap/dynamic_roi_map"),
            TypeDescriptor::Unsigned(hdf5::types::IntSize::U4)
        );
        assert_eq!(td("/xpcs/qmap/mask"), TypeDescriptor::Boolean);
        let c2 = f
            .dataset("/xpcs/twotime/correlation_map/c2_00001")
            .unwrap()
            .read_2d::<f32>()
            .unwrap();
        assert_eq!(c2[[5, 2]], 0.0);
        assert!(c2[[2, 5]] > 1.0);
        let h: hdf5::types::FixedUnicode<64> = f
            .group("/xpcs/qmap")
            .unwrap()
            .attr("hash")
            .unwrap()
            .read_scalar()
            .unwrap();
        assert_eq!(h.as_str(), qmap_hash(&example_results().partition));
        assert_eq!(h.as_str().len(), 64);
    }

    #[test]
    fn inconsistent_results_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("z_results.hdf");
        let mut r = example_results();
        r.multitau.as_mut().unwrap().g2 = Array2::zeros((3, 16)); // transposed
        assert!(matches!(
            write_results(&p, &r, false),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut r = example_results();
        r.frame_time_s = f64::NAN;
        assert!(write_results(&p, &r, false).is_err());
        let mut r = example_results();
        r.scattering_1d.pop();
        assert!(write_results(&p, &r, false).is_err());
        assert!(!p.exists());
    }

    /// A mask stored as integers (as some writers do) reads like the bool one.
    #[test]
    fn integer_mask_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m_results.hdf");
        let res = example_results();
        write_results(&p, &res, false).unwrap();
        {
            let f = hdf5::File::open_rw(&p).unwrap();
            f.unlink("/xpcs/qmap/mask").unwrap();
            let m: Vec<u8> = res.partition.mask().iter().map(|&b| u8::from(b)).collect();
            f.group("/xpcs/qmap")
                .unwrap()
                .new_dataset_builder()
                .with_data(&Array2::from_shape_vec((8, 10), m).unwrap())
                .create("mask")
                .unwrap();
        }
        assert_eq!(read_results(&p).unwrap().partition, res.partition);
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/real")
            .join(name)
    }

    /// A results file as the APS 8-ID-I pipeline writes it (h5py, `make_real_fixtures.py`):
    /// LZF-compressed uint8/uint16 roi maps, uint8 index mappings, a [1, 1] frame time, no
    /// `/xpcs_twin` group; everything reads back as the writer's JSON says.
    #[test]
    fn reads_the_aps_8idi_layout() {
        let p = fixture("aps8idi_rigaku500k_results.hdf");
        let exp: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixture("aps8idi_rigaku500k_results_expected.json")).unwrap(),
        )
        .unwrap();
        let r = read_results(&p).unwrap();
        assert_eq!(r.partition.shape(), (512, 1024));
        assert_eq!(r.frame_time_s, exp["frame_time_s"].as_f64().unwrap());
        assert_eq!(r.partition.n_bins(), 27);
        let nd = exp["dynamic"]["n_bins"].as_u64().unwrap() as usize;
        let ns = exp["static"]["n_bins"].as_u64().unwrap() as usize;
        assert_eq!(
            (r.partition.n_bins(), r.partition.static_map().n_bins()),
            (nd, ns)
        );
        let q: Vec<f64> = r
            .partition
            .dynamic_axes()
            .iter()
            .map(|a| a.q_inv_angstrom)
            .collect();
        let want: Vec<f64> = exp["dynamic"]["q_of_bin"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        // serde_json parses floats to within 1 ulp, not always correctly rounded.
        for (a, b) in q.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-15 * b, "{a} vs {b}");
        }
        assert_eq!(q.len(), want.len());
        // The roi map: per-label pixel counts as the writer counted them.
        let counts = r.partition.dynamic().bin_sizes();
        let wc = &exp["dynamic"]["roi_map"]["count_per_value"];
        for (k, &c) in counts.iter().enumerate() {
            assert_eq!(c as u64, wc[k + 1].as_u64().unwrap(), "bin {}", k + 1);
        }
        let m = r.multitau.as_ref().unwrap();
        assert_eq!(
            m.g2.shape(),
            [exp["g2_shape"][0].as_u64().unwrap() as usize, nd]
        );
        assert_eq!(m.delay_frames[0], 1);
        assert!(
            m.g2_err.iter().any(|&e| e == 0.0),
            "the zero-error tail is kept as read"
        );
    }

    #[test]
    fn grid_encoding() {
        let ax = |q: f64, phi: f64| BinAxis {
            q_inv_angstrom: q,
            phi_deg: phi,
        };
        let g = bin_grid(&[ax(0.1, 0.0), ax(0.1, 90.0), ax(0.2, 0.0), ax(0.2, 90.0)]);
        assert_eq!(g.q_centres, vec![0.1, 0.2]);
        assert_eq!(g.phi_centres, vec![0.0, 90.0]);
        assert_eq!(g.index_mapping, vec![0, 1, 2, 3]);
        let g = bin_grid(&[ax(f64::NAN, f64::NAN); 3]);
        assert_eq!((g.q_centres.len(), g.phi_centres.len()), (3, 1));
        assert!(g.q_centres.iter().all(|q| q.is_nan()), "never a made-up q");
        let g = bin_grid(&[ax(0.1, 0.0), ax(f64::NAN, 0.0)]);
        assert_eq!(g.q_centres[0], 0.1);
        assert!(g.q_centres[1].is_nan());
    }
}
