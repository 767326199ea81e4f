//! Python bindings of xpcs-twin: the native module `xpcs_twin._native`, wrapped by the
//! pure-Python package `xpcs_twin` (python/xpcs_twin), which documents every argument with its
//! unit.
//!
//! Every call runs the same library function as the command line (`xpcs_twin::pipeline`,
//! `xpcs_twin::fit`, `xpcs_twin::twin`), with the interpreter released (`Python::detach`)
//! while it works. Arrays come in without a copy when they are C-contiguous (numpy arrays,
//! `np.memmap`, `np.load(mmap_mode="r")`), and go out as new numpy arrays. Errors from bad input
//! raise `ValueError` with the command line's one-line message (`OSError` for a file the
//! system cannot read or write).

use numpy::{
    IntoPyArray, PyArray2, PyArray3, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};
use std::path::{Path, PathBuf};
use xpcs_twin::data::FrameSelection;
use xpcs_twin::data::{CountDtype, Counts, EventList, FrameSource, FrameStack, LabelMap};
use xpcs_twin::data::{QPartition, StackView};
use xpcs_twin::io::input::{collect_events, input_kind, open_input, Input, InputOptions};
use xpcs_twin::io::maps;
use xpcs_twin::pipeline::correlate::{
    self, CorrelateOptions, Correlated, DetectorMaskSummary, Metadata, Photons,
};
use xpcs_twin::pipeline::{simulate as sim, Quiet};
use xpcs_twin::Error;

/// A library error as the Python exception the package documents.
fn py_err(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// A JSON value as Python objects (dict, list, float, ...).
fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| PyValueError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A label map or mask argument: a file (read as the command line reads it) or an array.
enum MapArg<'py> {
    File(PathBuf),
    Array(Bound<'py, PyAny>),
}

fn map_arg<'py>(obj: &Bound<'py, PyAny>) -> PyResult<MapArg<'py>> {
    if let Ok(p) = obj.extract::<PathBuf>() {
        return Ok(MapArg::File(p));
    }
    Ok(MapArg::Array(obj.clone()))
}

/// Labels (int64, 2-D, from the Python side) as a label map named `origin`.
fn label_map(a: &Bound<'_, PyAny>, origin: &str) -> PyResult<LabelMap> {
    let arr: PyReadonlyArray2<i64> = a.extract()?;
    let (r, c) = (arr.shape()[0], arr.shape()[1]);
    let mut v = Vec::with_capacity(r * c);
    for &x in arr.as_array().iter() {
        v.push(
            u32::try_from(x)
                .map_err(|_| py_err(Error::out_of_range(origin, "label", x, "0 to 2^32-1")))?,
        );
    }
    LabelMap::new(r, c, v, origin).map_err(py_err)
}

/// The q-partition for frames of `shape`, from the labels, static labels and mask arguments,
/// with the command line's checks (`maps::partition_of`).
fn partition(
    shape: (usize, usize),
    labels: &Bound<'_, PyAny>,
    static_labels: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
) -> PyResult<(QPartition, String)> {
    let read_labels = |obj: &Bound<'_, PyAny>, name: &str| -> PyResult<(LabelMap, PathBuf)> {
        match map_arg(obj)? {
            MapArg::File(p) => Ok((maps::read_label_map(&p, None).map_err(py_err)?, p)),
            MapArg::Array(a) => Ok((label_map(&a, name)?, PathBuf::from(name))),
        }
    };
    let (d, d_origin) = read_labels(labels, "labels")?;
    let s = match static_labels {
        Some(o) => Some(read_labels(o, "static_labels")?),
        None => None,
    };
    let m = match mask {
        Some(o) => Some(match map_arg(o)? {
            MapArg::File(p) => (maps::read_mask(&p, None).map_err(py_err)?, p),
            MapArg::Array(a) => {
                let arr: PyReadonlyArray2<bool> = a.extract()?;
                let (r, c) = (arr.shape()[0], arr.shape()[1]);
                let v: Vec<bool> = arr.as_array().iter().copied().collect();
                ((r, c, v), PathBuf::from("mask"))
            }
        }),
        None => None,
    };
    let name = d_origin.display().to_string();
    let part = maps::partition_of(
        shape,
        (d, &d_origin),
        s.as_ref().map(|(m, p)| (m.clone(), p.as_path())),
        m.as_ref().map(|(m, p)| (m.clone(), p.as_path())),
    )
    .map_err(py_err)?;
    Ok((part, name))
}

/// Frames pulled from a Python iterator: each frame a 2-D unsigned-integer array. The
/// correlator asks for frames with the interpreter released; each frame re-attaches it.
struct IterFrames {
    iter: Py<PyIterator>,
    shape: (usize, usize),
    n_frames: usize,
    next: usize,
    /// A Python exception raised by the iterator, re-raised after the pipeline returns.
    error: Option<PyErr>,
}

impl IterFrames {
    fn frame(
        &self,
        py: Python<'_>,
        f: &Bound<'_, PyAny>,
        out: &mut [u32],
    ) -> xpcs_twin::Result<()> {
        let t = self.next;
        let bad_shape = |got: &[usize]| Error::ShapeMismatch {
            origin: "frames".into(),
            what: format!("frame {t} vs the first frame (rows, cols)"),
            expected: vec![self.shape.0, self.shape.1],
            got: got.to_vec(),
        };
        macro_rules! widen {
            ($t:ty) => {
                if let Ok(a) = f.cast::<numpy::PyArray2<$t>>() {
                    let a = a.readonly();
                    if (a.shape()[0], a.shape()[1]) != self.shape {
                        return Err(bad_shape(a.shape()));
                    }
                    for (o, &x) in out.iter_mut().zip(a.as_array().iter()) {
                        *o = u32::from(x);
                    }
                    return Ok(());
                }
            };
        }
        widen!(u8);
        widen!(u16);
        widen!(u32);
        let _ = py;
        let what = f
            .getattr("dtype")
            .map(|d| d.to_string())
            .unwrap_or_else(|_| f.get_type().to_string());
        let ndim = f
            .getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .unwrap_or(0);
        if ndim != 2 {
            return Err(Error::invalid(
                "frames",
                format!("frame {t} is not a 2-D array (ndim {ndim})"),
            ));
        }
        Err(Error::invalid(
            "frames",
            format!("frame {t} has dtype {what} (allowed: uint8, uint16, uint32)"),
        ))
    }
}

impl FrameSource for IterFrames {
    fn frame_shape(&self) -> (usize, usize) {
        self.shape
    }
    fn n_frames(&self) -> usize {
        self.n_frames
    }
    fn read_next(&mut self, out: &mut [u32]) -> xpcs_twin::Result<bool> {
        if self.next >= self.n_frames {
            return Ok(false);
        }
        Python::attach(|py| {
            let mut it = self.iter.bind(py).clone();
            match it.next() {
                None => Err(Error::invalid(
                    "frames",
                    format!(
                        "the iterator ended after {} of n_frames = {} frames",
                        self.next, self.n_frames
                    ),
                )),
                Some(Err(e)) => {
                    let msg = e.to_string();
                    self.error = Some(e);
                    Err(Error::invalid("frames", msg))
                }
                Some(Ok(f)) => {
                    self.frame(py, &f, out)?;
                    self.next += 1;
                    Ok(true)
                }
            }
        })
    }
}

/// The photons argument, held for the duration of one call.
enum Held<'py> {
    U8(numpy::PyReadonlyArray3<'py, u8>),
    U16(numpy::PyReadonlyArray3<'py, u16>),
    U32(numpy::PyReadonlyArray3<'py, u32>),
    Owned(FrameStack),
    Events(EventList),
    File(Input, PathBuf, InputOptions),
    Iter(IterFrames),
}

/// A numpy stack as a borrowed view (C-contiguous) or a copy in C order (any other strides).
fn hold_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Held<'py>>> {
    macro_rules! try_dtype {
        ($t:ty, $v:ident, $from:ident) => {
            if let Ok(a) = obj.cast::<PyArray3<$t>>() {
                let r = a.readonly();
                if r.is_c_contiguous() {
                    return Ok(Some(Held::$v(r)));
                }
                let (n, rows, cols) = (r.shape()[0], r.shape()[1], r.shape()[2]);
                let data: Vec<$t> = r.as_array().iter().copied().collect();
                return Ok(Some(Held::Owned(
                    FrameStack::$from(n, rows, cols, data).map_err(py_err)?,
                )));
            }
        };
    }
    try_dtype!(u8, U8, from_u8);
    try_dtype!(u16, U16, from_u16);
    try_dtype!(u32, U32, from_u32);
    Ok(None)
}

impl Held<'_> {
    fn photons(&mut self) -> PyResult<Photons<'_>> {
        fn view(n: usize, r: usize, c: usize, counts: Counts<'_>) -> PyResult<StackView<'_>> {
            StackView::new(n, r, c, counts).map_err(py_err)
        }
        macro_rules! borrowed {
            ($a:expr, $v:ident) => {{
                let s = $a.shape();
                let counts = Counts::$v($a.as_slice().map_err(slice_err)?);
                Photons::View(view(s[0], s[1], s[2], counts)?)
            }};
        }
        Ok(match self {
            Held::U8(a) => borrowed!(a, U8),
            Held::U16(a) => borrowed!(a, U16),
            Held::U32(a) => borrowed!(a, U32),
            Held::Owned(s) => Photons::View(s.view()),
            Held::Events(e) => Photons::Events(e),
            Held::File(Input::Frames { source, .. }, ..) => Photons::Source(source.as_mut()),
            Held::File(Input::Events(src), ..) => Photons::EventSource(src.as_mut()),
            Held::Iter(it) => Photons::Source(it),
        })
    }
}

fn slice_err(e: numpy::AsSliceError) -> PyErr {
    PyValueError::new_err(format!("frames: {e}"))
}

/// Events in memory: per-pixel CSR of (frame, count) pairs.
///
/// `offsets` (uint64, pixels + 1), `frames` (uint32 frame indices), `counts` (uint32 photons),
/// row-major pixels of a `shape` = (rows, cols) detector, `n_frames` frames of `frame_time_s`
/// seconds.
#[pyclass(module = "xpcs_twin._native", frozen)]
struct Events {
    inner: EventList,
}

#[pymethods]
impl Events {
    #[new]
    #[pyo3(signature = (offsets, frames, counts, shape, n_frames, frame_time_s))]
    fn new(
        offsets: Vec<u64>,
        frames: Vec<u32>,
        counts: Vec<u32>,
        shape: (usize, usize),
        n_frames: usize,
        frame_time_s: f64,
    ) -> PyResult<Self> {
        let inner = EventList::new(
            shape.0,
            shape.1,
            n_frames,
            frame_time_s,
            offsets,
            frames,
            counts,
        )
        .map_err(py_err)?;
        Ok(Events { inner })
    }
    /// Detector (rows, cols).
    #[getter]
    fn shape(&self) -> (usize, usize) {
        self.inner.frame_shape()
    }
    /// Number of frames.
    #[getter]
    fn n_frames(&self) -> usize {
        self.inner.n_frames()
    }
    /// Frame period (s).
    #[getter]
    fn frame_time_s(&self) -> f64 {
        self.inner.frame_time_s()
    }
    /// Photons in all frames.
    #[getter]
    fn total_counts(&self) -> u64 {
        self.inner.total_counts()
    }
    /// Per-pixel offsets into `frames`/`counts` (uint64, pixels + 1).
    #[getter]
    fn offsets<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.inner.offsets().to_vec().into_pyarray(py).into_any()
    }
    /// Frame index of each event (uint32).
    #[getter]
    fn frames<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.inner.frames().to_vec().into_pyarray(py).into_any()
    }
    /// Photons of each event (uint32).
    #[getter]
    fn counts<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.inner.counts().to_vec().into_pyarray(py).into_any()
    }
    /// The dense stack (frames, rows, cols) in the smallest unsigned type that holds it.
    fn to_dense<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        stack_to_py(py, &self.inner.to_stack())
    }
    fn __repr__(&self) -> String {
        let (r, c) = self.inner.frame_shape();
        format!(
            "Events(shape=({r}, {c}), n_frames={}, frame_time_s={}, events={}, photons={})",
            self.inner.n_frames(),
            self.inner.frame_time_s(),
            self.inner.n_events(),
            self.inner.total_counts()
        )
    }
}

fn stack_to_py<'py>(py: Python<'py>, s: &FrameStack) -> PyResult<Bound<'py, PyAny>> {
    let (r, c) = s.frame_shape();
    let shape = (s.n_frames(), r, c);
    let err = |e: ndarray::ShapeError| PyValueError::new_err(e.to_string());
    macro_rules! array {
        ($v:expr) => {
            ndarray::Array3::from_shape_vec(shape, $v.to_vec())
                .map_err(err)?
                .into_pyarray(py)
                .into_any()
        };
    }
    Ok(match s.view().counts() {
        Counts::U8(v) => array!(v),
        Counts::U16(v) => array!(v),
        Counts::U32(v) => array!(v),
    })
}

/// The result of a correlation: multi-tau g2 per q-bin (and two-time maps when asked).
#[pyclass(module = "xpcs_twin._native", frozen)]
struct Correlation {
    c: Correlated,
    part: QPartition,
    meta: Metadata,
}

#[pymethods]
impl Correlation {
    /// Lag of each g2 row (frames, uint64).
    #[getter]
    fn lag_frames<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c.g2.lag_frames.clone().into_pyarray(py).into_any()
    }
    /// Delay of each g2 row: lag × frame time (s).
    #[getter]
    fn delay_s<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c
            .g2
            .delay_s(self.c.frame_time_s)
            .into_pyarray(py)
            .into_any()
    }
    /// g2, shape (n_lags, n_bins); column k is q-bin k + 1.
    #[getter]
    fn g2<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c.g2.g2.clone().into_pyarray(py).into_any()
    }
    /// Standard error of g2 over the bin's pixels, shape (n_lags, n_bins).
    #[getter]
    fn g2_err<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c.g2.g2_err.clone().into_pyarray(py).into_any()
    }
    /// Leave-one-pixel-group-out g2, shape (n_groups, n_lags, n_bins).
    #[getter]
    fn jackknife<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c.g2.jackknife.clone().into_pyarray(py).into_any()
    }
    /// Pixels in each q-bin (uint64).
    #[getter]
    fn bin_pixels<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c.g2.bin_pixels.clone().into_pyarray(py).into_any()
    }
    /// Per q-bin: "Ok" or why its g2 is NaN.
    #[getter]
    fn bin_status(&self) -> Vec<String> {
        self.c
            .g2
            .bin_status
            .iter()
            .map(|s| format!("{s:?}"))
            .collect()
    }
    /// Frame period (s).
    #[getter]
    fn frame_time_s(&self) -> f64 {
        self.c.frame_time_s
    }
    /// Frames correlated.
    #[getter]
    fn n_frames(&self) -> usize {
        self.c.n_frames
    }
    /// The estimator's name.
    #[getter]
    fn estimator(&self) -> &'static str {
        self.c.g2.estimator.name()
    }
    /// The lag schedule's name.
    #[getter]
    fn schedule(&self) -> String {
        self.c.g2.schedule.clone()
    }
    /// "dense" or "event".
    #[getter]
    fn correlator(&self) -> &'static str {
        self.c.correlator
    }
    /// Mean counts per pixel per frame in each q-bin, shape (n_bins, n_frames).
    #[getter]
    fn intensity_vs_time<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        self.c
            .intensity
            .intensity_vs_time
            .clone()
            .into_pyarray(py)
            .into_any()
    }
    /// Two-time maps: {q-bin label: C(t1, t2) (n × n)} (empty without two-time).
    #[getter]
    fn c2<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        if let Some(tt) = &self.c.two_time {
            for (i, &b) in tt.bins.iter().enumerate() {
                d.set_item(b, tt.c2(i).into_pyarray(py))?;
            }
        }
        Ok(d)
    }
    /// Raw frames per two-time frame (None without two-time).
    #[getter]
    fn twotime_bin_frames(&self) -> Option<usize> {
        self.c.twotime_bin_frames
    }
    /// q of each dynamic bin (Å⁻¹; NaN when unknown).
    #[getter]
    fn q_inv_angstrom<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        let q: Vec<f64> = self
            .part
            .dynamic_axes()
            .iter()
            .map(|b| b.q_inv_angstrom)
            .collect();
        q.into_pyarray(py).into_any()
    }
    /// Where q comes from: "q-map file", "geometry", "--q-values" or "unknown".
    #[getter]
    fn q_source(&self) -> String {
        self.meta.q_source.clone()
    }
    /// Raw frames used: (begin, end, stride, avg).
    #[getter]
    fn frames_used(&self) -> (usize, usize, usize, usize) {
        let s = self.c.selection;
        (s.begin, s.end, s.stride, s.avg)
    }
    /// Pixels the detector's own mask removed (None when not applied).
    #[getter]
    fn detector_masked(&self) -> Option<usize> {
        self.meta.detector_mask.as_ref().map(|m| m.n_masked)
    }
    /// The one-line-per-bin table the command line prints (g2 - 1 at a few delays).
    fn table(&self) -> String {
        correlate::table(&self.c.g2, self.c.frame_time_s, &self.part)
    }
    /// Writes the APS 8-ID-I results file (what `xpcs-twin correlate --out` writes).
    #[pyo3(signature = (path, force))]
    fn write_results(&self, py: Python<'_>, path: PathBuf, force: bool) -> PyResult<String> {
        py.detach(|| {
            let res = correlate::results(&self.c, &self.part, &self.meta);
            xpcs_twin::io::results::write_results(&path, &res, force)
        })
        .map(|p| p.display().to_string())
        .map_err(py_err)
    }
    fn __repr__(&self) -> String {
        format!(
            "Correlation({} lags × {} bins, {} frames of {} s, estimator {}, {} correlator{})",
            self.c.g2.lag_frames.len(),
            self.c.g2.g2.ncols(),
            self.c.n_frames,
            self.c.frame_time_s,
            self.c.g2.estimator.name(),
            self.c.correlator,
            if self.c.two_time.is_some() {
                ", two-time"
            } else {
                ""
            }
        )
    }
}

/// The frame shape a label-map argument (array or file) gives.
fn labels_shape(labels: &Bound<'_, PyAny>) -> PyResult<Option<(usize, usize)>> {
    Ok(match map_arg(labels)? {
        MapArg::File(p) => Some(maps::read_label_map(&p, None).map_err(py_err)?.shape()),
        MapArg::Array(a) => a.getattr("shape")?.extract().ok(),
    })
}

/// Correlates frames (array, memory map, file or iterator) or events: the command line's
/// `correlate` without its outputs. Argument checks in the command line's order.
#[pyfunction]
#[pyo3(signature = (frames, labels, static_labels, mask, frame_time_s, estimator, num_bufs,
    twotime, twotime_bin_frames, sparse, n_frames, begin, end, stride, avg, dataset,
    q_values, energy_kev, distance_m, pixel_size_um, beam_center_px, detector_mask))]
#[allow(clippy::too_many_arguments)]
fn correlate_photons(
    py: Python<'_>,
    frames: &Bound<'_, PyAny>,
    labels: &Bound<'_, PyAny>,
    static_labels: Option<&Bound<'_, PyAny>>,
    mask: Option<&Bound<'_, PyAny>>,
    frame_time_s: Option<f64>,
    estimator: &str,
    num_bufs: usize,
    twotime: bool,
    twotime_bin_frames: Option<usize>,
    sparse: bool,
    n_frames: Option<usize>,
    begin: usize,
    end: Option<usize>,
    stride: usize,
    avg: usize,
    dataset: Option<String>,
    q_values: Option<Vec<f64>>,
    energy_kev: Option<f64>,
    distance_m: Option<f64>,
    pixel_size_um: Option<f64>,
    beam_center_px: Option<Vec<f64>>,
    detector_mask: bool,
) -> PyResult<Correlation> {
    let opts = CorrelateOptions::new(estimator, num_bufs, twotime, twotime_bin_frames, sparse)
        .map_err(py_err)?;
    let geo = correlate::geometry(
        energy_kev,
        distance_m,
        pixel_size_um,
        beam_center_px.as_deref(),
    )
    .map_err(py_err)?;
    let selection = FrameSelection {
        begin,
        end,
        stride,
        avg,
    };
    let (mut held, origin, own_ft, kind) = if let Ok(e) = frames.cast::<Events>() {
        let ev = e.get().inner.clone();
        let ft = ev.frame_time_s();
        (Held::Events(ev), "events".to_string(), Some(ft), "events")
    } else if let Some(h) = hold_array(frames)? {
        (h, "frames".to_string(), None, "array")
    } else if let Ok(p) = frames.extract::<PathBuf>() {
        // The label map's shape is the detector's, as the command line's q-map is.
        let in_opts = InputOptions {
            detector_shape: labels_shape(labels)?,
            dataset,
            ..InputOptions::default()
        };
        let kind = input_kind(&p, &in_opts).map_err(py_err)?.name();
        let input = open_input(&p, &in_opts).map_err(py_err)?;
        let ft = input.frame_time_s();
        let name = p.display().to_string();
        (Held::File(input, p, in_opts), name, ft, kind)
    } else if frames.hasattr("ndim")? {
        let dtype = frames.getattr("dtype")?.to_string();
        let ndim: usize = frames.getattr("ndim")?.extract()?;
        let msg = if ndim != 3 {
            format!("frames: a stack is (frames, rows, cols): got {ndim} dimensions")
        } else {
            format!("frames: dtype {dtype} is not a count type (allowed: uint8, uint16, uint32)")
        };
        return Err(PyValueError::new_err(msg));
    } else {
        let it = PyIterator::from_object(frames)?;
        let Some(n) = n_frames else {
            return Err(PyValueError::new_err(
                "frames: an iterator of frames needs n_frames (the number of frames it yields)",
            ));
        };
        // The first frame fixes the shape: peek it through a chained iterator.
        let itertools = py.import("itertools")?;
        let mut peek = it.clone();
        let first = match peek.next() {
            Some(f) => f?,
            None => {
                return Err(py_err(Error::out_of_range("frames", "frames", 0, "≥ 2")));
            }
        };
        let shape: (usize, usize) = match first.getattr("shape")?.extract() {
            Ok(s) => s,
            Err(_) => {
                return Err(PyValueError::new_err(
                    "frames: frame 0 is not a 2-D array (rows, cols)",
                ))
            }
        };
        let chained = itertools.call_method1("chain", ((first,), it))?;
        let iter = PyIterator::from_object(&chained)?.unbind();
        let src = IterFrames {
            iter,
            shape,
            n_frames: n,
            next: 0,
            error: None,
        };
        (Held::Iter(src), "frames".to_string(), None, "iterator")
    };
    if matches!(held, Held::File(..) | Held::Iter(_)) && frame_time_s.is_none() {
        if let (Held::File(_, p, _), None) = (&held, own_ft) {
            return Err(py_err(Error::invalid(
                p.display().to_string(),
                "no frame time in the file: give --frame-time (s)",
            )));
        }
    }
    let frame_time_s = match (frame_time_s, own_ft) {
        (Some(f), _) | (None, Some(f)) => f,
        (None, None) => {
            return Err(PyValueError::new_err(
                "frames: no frame time: give frame_time (s)",
            ))
        }
    };
    xpcs_twin::check::check_frame_time("command line", "--frame-time", frame_time_s)
        .map_err(py_err)?;
    let (shape, n_raw) = held.photons()?.shape();
    if held.photons()?.is_events() && !selection.is_all() {
        return Err(py_err(Error::invalid(
            &origin,
            "begin/end/stride/avg select frames of a frame input; events are correlated whole",
        )));
    }
    let sel = selection.resolve(n_raw, &origin).map_err(py_err)?;
    if sel.n_out < 2 {
        return Err(py_err(Error::out_of_range(
            &origin,
            "frames (after selection)",
            sel.n_out,
            "≥ 2",
        )));
    }
    let (part, qmap_name) = partition(shape, labels, static_labels, mask)?;
    let (mut part, q_source) = correlate::with_q(
        part,
        geo.as_ref(),
        q_values.as_deref().map(|q| (q, "q_values")),
    )
    .map_err(py_err)?;
    let mut det_mask = None;
    if let (Held::File(input, p, in_opts), true) = (&held, detector_mask) {
        let job = SameThread((p, input, in_opts));
        let sel = &sel;
        let m = py
            .detach(move || {
                let (p, input, in_opts) = job.into_inner();
                correlate::detector_mask(p, input, in_opts, sel, &Quiet)
            })
            .map_err(py_err)?;
        if let Some(m) = m {
            part = maps::restrict_mask(&part, &m.valid, &origin).map_err(py_err)?;
            det_mask = Some(DetectorMaskSummary::from(&m));
        }
    }
    opts.bin_frames(sel.n_out).map_err(py_err)?;
    let out = {
        let job = SameThread(held.photons()?);
        let (part, origin, opts, selection) = (&part, origin.as_str(), &opts, &selection);
        // The pipeline runs without the interpreter; an iterator re-attaches it per frame.
        py.detach(move || {
            let photons = job.into_inner();
            correlate::correlate(photons, origin, part, frame_time_s, selection, opts, &Quiet)
        })
    };
    if let Held::Iter(it) = &mut held {
        if let Some(e) = it.error.take() {
            return Err(e);
        }
        if out.is_ok() {
            let mut rest = it.iter.bind(py).clone();
            if let Some(extra) = rest.next() {
                extra?;
                return Err(PyValueError::new_err(format!(
                    "frames: the iterator gave more than n_frames = {} frames",
                    it.n_frames
                )));
            }
        }
    }
    let c = out.map_err(py_err)?;
    let meta = Metadata {
        frames: origin,
        qmap: qmap_name,
        input_kind: kind.into(),
        q_source: q_source.into(),
        geometry: geo,
        detector_mask: det_mask,
    };
    Ok(Correlation { c, part, meta })
}

/// A value handed to [`Python::detach`]'s closure, which runs on the calling thread: frame
/// readers (boxed `dyn FrameSource`) are not `Send`, and need not be, since they never leave
/// this thread.
struct SameThread<T>(T);

// SAFETY: `Python::detach` calls its closure on the current thread and returns before this
// function goes on; the wrapped value (a borrowed array view, a file reader, or an iterator
// that re-attaches the interpreter before touching a Python object) is used on this thread
// only. The `Send` bound it satisfies is pyo3's proxy for "holds no GIL-bound reference".
unsafe impl<T> Send for SameThread<T> {}

impl<T> SameThread<T> {
    fn into_inner(self) -> T {
        self.0
    }
}

/// A fit report: values, 1σ errors, covariance, χ², why the solver stopped.
#[pyclass(module = "xpcs_twin._native", frozen)]
struct FitReport {
    r: xpcs_twin::fit::FitReport,
}

impl FitReport {
    fn by_name<'py>(
        &self,
        py: Python<'py>,
        pick: impl Fn(&xpcs_twin::fit::FitValues) -> &Vec<f64>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(v) = self.r.fitted() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (n, x) in self.r.param_names.iter().zip(pick(v)) {
            d.set_item(n, x)?;
        }
        Ok(Some(d))
    }
}

#[pymethods]
impl FitReport {
    /// Model name.
    #[getter]
    fn model(&self) -> String {
        self.r.model.clone()
    }
    /// Parameter names in order.
    #[getter]
    fn params(&self) -> Vec<String> {
        self.r.param_names.clone()
    }
    /// Parameter units in order ("" = dimensionless).
    #[getter]
    fn units(&self) -> Vec<String> {
        self.r.param_units.clone()
    }
    /// Names of the parameters held fixed.
    #[getter]
    fn fixed(&self) -> Vec<String> {
        self.r
            .param_names
            .iter()
            .zip(&self.r.fixed)
            .filter(|(_, &f)| f)
            .map(|(n, _)| n.clone())
            .collect()
    }
    /// True when the solver converged.
    #[getter]
    fn converged(&self) -> bool {
        self.r.is_ok()
    }
    /// Why the fit failed (None when it converged).
    #[getter]
    fn failure(&self) -> Option<String> {
        self.r.failure().map(String::from)
    }
    /// {name: value} in parameter order (None when the fit failed).
    #[getter]
    fn values<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.by_name(py, |v| &v.values)
    }
    /// {name: 1σ standard error} (0 for fixed parameters; None when the fit failed).
    #[getter]
    fn std_errors<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.by_name(py, |v| &v.std_errors)
    }
    /// Covariance matrix in parameter order (None when the fit failed).
    #[getter]
    fn covariance<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyArray2<f64>>>> {
        let Some(v) = self.r.fitted() else {
            return Ok(None);
        };
        PyArray2::from_vec2(py, &v.covariance)
            .map(Some)
            .map_err(|e| PyValueError::new_err(e.to_string()))
    }
    /// χ² = Σ ((y - model)/σ)².
    #[getter]
    fn chi2(&self) -> Option<f64> {
        self.r.fitted().map(|v| v.chi2)
    }
    /// χ² per degree of freedom.
    #[getter]
    fn chi2_red(&self) -> Option<f64> {
        self.r.fitted().map(|v| v.chi2_red)
    }
    /// Degrees of freedom.
    #[getter]
    fn dof(&self) -> Option<usize> {
        self.r.fitted().map(|v| v.dof)
    }
    /// Why the solver stopped (e.g. "small_chi2_change").
    #[getter]
    fn termination(&self) -> Option<String> {
        let v = self.r.fitted()?;
        serde_json::to_value(v.termination)
            .ok()
            .and_then(|t| t.as_str().map(String::from))
    }
    /// How the errors are scaled: "relative", "absolute" or "jackknife".
    #[getter]
    fn error_scale(&self) -> String {
        serde_json::to_value(self.r.error_scale)
            .ok()
            .and_then(|t| t.as_str().map(String::from))
            .unwrap_or_default()
    }
    /// Points used.
    #[getter]
    fn n_points(&self) -> usize {
        self.r.n_points
    }
    /// What the data could not constrain, or other cautions.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.r.warnings.clone()
    }
    /// The whole report as a dict (as `xpcs-twin fit --json` writes it).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.r).map_err(|e| PyValueError::new_err(e.to_string()))?;
        json_to_py(py, &v)
    }
    /// One line per parameter: `tau = 12.3 ± 0.4 s`.
    fn summary(&self) -> String {
        self.r.summary()
    }
    fn __repr__(&self) -> String {
        format!("FitReport({})", self.r.summary())
    }
}

/// Fits a g2 model (`kww`, `kww-heterodyne`, `exp`) to (delay_s, g2 ± g2_err); with
/// jackknife replicates (n_groups × n_delays) the errors are jackknife errors.
#[pyfunction]
#[pyo3(signature = (model, delay_s, g2, g2_err, fix, start, error_scale, jackknife))]
#[allow(clippy::too_many_arguments)]
fn fit_g2(
    py: Python<'_>,
    model: &str,
    delay_s: Vec<f64>,
    g2: Vec<f64>,
    g2_err: Vec<f64>,
    fix: Vec<(String, f64)>,
    start: Vec<(String, f64)>,
    error_scale: &str,
    jackknife: Option<Vec<Vec<f64>>>,
) -> PyResult<FitReport> {
    use xpcs_twin::fit::{ErrorScale, FitOptions};
    let m = xpcs_twin::fit::g2_model_by_name(model).map_err(py_err)?;
    let scale = match error_scale {
        "relative" => ErrorScale::Relative,
        "absolute" => ErrorScale::Absolute,
        other => {
            return Err(py_err(Error::out_of_range(
                "fit",
                "error_scale",
                other,
                "relative or absolute",
            )))
        }
    };
    let mut opts = FitOptions::default().with_error_scale(scale);
    for (n, v) in &fix {
        opts = opts.fix(n, *v);
    }
    for (n, v) in &start {
        opts = opts.start_at(n, *v);
    }
    let r = py
        .detach(|| match &jackknife {
            Some(j) => {
                xpcs_twin::fit::fit_curve_jackknife(m.as_ref(), &delay_s, &g2, &g2_err, j, &opts)
            }
            None => xpcs_twin::fit::fit_curve(m.as_ref(), &delay_s, &g2, &g2_err, &opts),
        })
        .map_err(py_err)?;
    Ok(FitReport { r })
}

/// Simulates one scan in memory (the command line's `simulate` without files): a dict with
/// `events` (Events), `labels`, `static_labels` (uint32, rows × cols), `mask` (bool, valid
/// pixels), `kossel_mask` (uint8 or None) and `truth` (the `.truth.json` document).
#[pyfunction]
#[pyo3(signature = (model, pressure, scan, frames, frame_time, seed, rows, cols, mean_counts,
    contrast, modes, qbins, labels, generator, phasor_terms, method, subsamples, grid_tolerance,
    block_pixels, beam, dac, detector, distance, charge_sharing))]
#[allow(clippy::too_many_arguments)]
fn simulate<'py>(
    py: Python<'py>,
    model: PathBuf,
    pressure: Option<f64>,
    scan: Option<usize>,
    frames: Option<usize>,
    frame_time: Option<f64>,
    seed: u64,
    rows: Option<usize>,
    cols: Option<usize>,
    mean_counts: Option<f64>,
    contrast: Option<f64>,
    modes: Option<f64>,
    qbins: usize,
    labels: Option<PathBuf>,
    generator: &str,
    phasor_terms: usize,
    method: &str,
    subsamples: usize,
    grid_tolerance: f64,
    block_pixels: usize,
    beam: Option<String>,
    dac: Option<String>,
    detector: Option<String>,
    distance: f64,
    charge_sharing: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let generator = match generator {
        "circulant" => sim::GenArg::Circulant,
        "phasors" => sim::GenArg::Phasors,
        "ar1" => sim::GenArg::Ar1,
        other => {
            return Err(py_err(Error::out_of_range(
                "command line",
                "--generator",
                other,
                "circulant, phasors or ar1",
            )))
        }
    };
    let method = match method {
        "grid" => sim::MethodArg::Grid,
        "exact" => sim::MethodArg::Exact,
        other => {
            return Err(py_err(Error::out_of_range(
                "command line",
                "--method",
                other,
                "grid or exact",
            )))
        }
    };
    let opts = sim::SimulateOptions {
        model,
        pressure,
        scan,
        frames,
        frame_time,
        seed,
        rows,
        cols,
        mean_counts,
        contrast,
        modes,
        qbins,
        labels,
        generator,
        phasor_terms,
        method,
        subsamples,
        grid_tolerance,
        block_pixels,
        beam,
        dac,
        detector,
        distance,
        charge_sharing,
    };
    let s = py.detach(|| sim::simulate(&opts, &Quiet)).map_err(py_err)?;
    let (r, c) = s.events.frame_shape();
    let d = PyDict::new(py);
    let grid = |v: Vec<u32>| ndarray::Array2::from_shape_vec((r, c), v);
    let shape_err = |e: ndarray::ShapeError| PyValueError::new_err(e.to_string());
    d.set_item(
        "labels",
        grid(s.labels).map_err(shape_err)?.into_pyarray(py),
    )?;
    d.set_item(
        "static_labels",
        grid(s.static_labels).map_err(shape_err)?.into_pyarray(py),
    )?;
    d.set_item(
        "mask",
        ndarray::Array2::from_shape_vec((r, c), s.valid)
            .map_err(shape_err)?
            .into_pyarray(py),
    )?;
    match s.kossel_mask {
        Some(m) => d.set_item(
            "kossel_mask",
            ndarray::Array2::from_shape_vec((r, c), m)
                .map_err(shape_err)?
                .into_pyarray(py),
        )?,
        None => d.set_item("kossel_mask", py.None())?,
    }
    d.set_item("truth", json_to_py(py, &s.truth)?)?;
    d.set_item("events", Events { inner: s.events })?;
    Ok(d)
}

/// Reads any file the command line reads: frames (.npy, Eiger/NeXus HDF5), an event file,
/// a label map or mask (.npy/.npz 2-D), or an APS results file. A dict with `kind`.
#[pyfunction]
fn read<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_h5 = matches!(ext.as_str(), "h5" | "hdf" | "hdf5" | "nxs");
    if is_h5 && !xpcs_twin::io::events::is_event_file(&path) {
        // A results file, else Eiger frames (whose error is the one reported).
        if let Ok(res) = py.detach(|| xpcs_twin::io::results::read_results(&path)) {
            results_dict(py, &d, &res)?;
            return Ok(d);
        }
    }
    if ext == "npz" || (ext == "npy" && npy_ndim(&path).map_err(py_err)? == 2) {
        let m = maps::read_label_map(&path, None).map_err(py_err)?;
        let (r, c) = m.shape();
        d.set_item("kind", "labels")?;
        let a = ndarray::Array2::from_shape_vec((r, c), m.labels().to_vec())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        d.set_item("labels", a.into_pyarray(py))?;
        return Ok(d);
    }
    let input = open_input(&path, &InputOptions::default()).map_err(py_err)?;
    let ft = input.frame_time_s();
    d.set_item("frame_time_s", ft)?;
    match input {
        Input::Events(src) => {
            let job = SameThread(src);
            let ev = py
                .detach(move || {
                    let mut src = job.into_inner();
                    collect_events(src.as_mut(), ft.unwrap_or(f64::NAN))
                })
                .map_err(py_err)?;
            d.set_item("kind", "events")?;
            d.set_item("events", Events { inner: ev })?;
        }
        Input::Frames { source: src, .. } => {
            let job = SameThread(src);
            let stack = py
                .detach(move || -> xpcs_twin::Result<FrameStack> {
                    let mut src = job.into_inner();
                    let wide = FrameStack::from_source(src.as_mut(), CountDtype::U32)?;
                    let max = wide
                        .as_u32()
                        .map_or(0, |v| v.iter().copied().max().unwrap_or(0));
                    let dtype = CountDtype::for_max(max);
                    if dtype == CountDtype::U32 {
                        return Ok(wide);
                    }
                    FrameStack::from_source(&mut wide.frames(), dtype)
                })
                .map_err(py_err)?;
            d.set_item("kind", "frames")?;
            d.set_item("frames", stack_to_py(py, &stack)?)?;
        }
    }
    Ok(d)
}

/// Rank of an `.npy` array (from its header).
fn npy_ndim(path: &Path) -> xpcs_twin::Result<usize> {
    xpcs_twin::io::npy::read_header(path).map(|h| h.shape.len())
}

/// The arrays of an APS results file as a dict.
fn results_dict(
    py: Python<'_>,
    d: &Bound<'_, PyDict>,
    res: &xpcs_twin::io::results::ResultsFile,
) -> PyResult<()> {
    d.set_item("kind", "results")?;
    d.set_item("frame_time_s", res.frame_time_s)?;
    d.set_item("count_time_s", res.count_time_s)?;
    d.set_item("energy_kev", res.energy_kev)?;
    d.set_item("start_time", res.start_time.clone())?;
    let (r, c) = res.partition.shape();
    let shape_err = |e: ndarray::ShapeError| PyValueError::new_err(e.to_string());
    let grid = |v: Vec<u32>| ndarray::Array2::from_shape_vec((r, c), v).map_err(shape_err);
    d.set_item(
        "labels",
        grid(res.partition.dynamic().labels().to_vec())?.into_pyarray(py),
    )?;
    d.set_item(
        "static_labels",
        grid(res.partition.static_map().labels().to_vec())?.into_pyarray(py),
    )?;
    d.set_item(
        "mask",
        ndarray::Array2::from_shape_vec((r, c), res.partition.mask().to_vec())
            .map_err(shape_err)?
            .into_pyarray(py),
    )?;
    let q: Vec<f64> = res
        .partition
        .dynamic_axes()
        .iter()
        .map(|a| a.q_inv_angstrom)
        .collect();
    d.set_item("q_inv_angstrom", q.into_pyarray(py))?;
    d.set_item(
        "intensity_vs_time",
        res.intensity_vs_time.clone().into_pyarray(py),
    )?;
    d.set_item("scattering_1d", res.scattering_1d.clone().into_pyarray(py))?;
    if let Some(m) = &res.multitau {
        let scale = res.frame_time_s * (m.stride_frame.max(1) * m.avg_frame.max(1)) as f64;
        let delay: Vec<f64> = m.delay_frames.iter().map(|&k| k as f64 * scale).collect();
        d.set_item("lag_frames", m.delay_frames.clone().into_pyarray(py))?;
        d.set_item("delay_s", delay.into_pyarray(py))?;
        d.set_item("g2", m.g2.clone().into_pyarray(py))?;
        d.set_item("g2_err", m.g2_err.clone().into_pyarray(py))?;
        if let Some(j) = &m.g2_jackknife {
            d.set_item("jackknife", j.clone().into_pyarray(py))?;
        }
    }
    if let Some(t) = &res.twotime {
        let c2 = PyDict::new(py);
        for (&b, m) in t.processed_bins.iter().zip(&t.c2) {
            c2.set_item(b, m.clone().into_pyarray(py))?;
        }
        d.set_item("c2", c2)?;
        d.set_item(
            "twotime_bin_frames",
            t.stride_frame.max(1) * t.avg_frame.max(1),
        )?;
    }
    Ok(())
}

/// Runs a twin campaign (the command line's `twin`): writes `out` (report.md, figures/,
/// scans/, summary.json) and returns a dict of the run's totals.
#[pyfunction]
#[pyo3(signature = (model, out, scale, seed, force))]
fn twin<'py>(
    py: Python<'py>,
    model: PathBuf,
    out: PathBuf,
    scale: &str,
    seed: Option<u64>,
    force: bool,
) -> PyResult<Bound<'py, PyDict>> {
    use xpcs_twin::twin::{run_campaign, CampaignSetup, Scale};
    let scale = match scale {
        "reduced" => Scale::Reduced,
        "full" => Scale::Full,
        other => {
            return Err(py_err(Error::out_of_range(
                "command line",
                "--scale",
                other,
                "reduced or full",
            )))
        }
    };
    let (name, n, elapsed, failures) = py
        .detach(|| -> xpcs_twin::Result<_> {
            let setup = CampaignSetup::load(&model, scale, seed)?;
            let run = run_campaign(&setup, Some(&out), force, &xpcs_twin::twin::Quiet)?;
            Ok((
                setup.config.name.clone(),
                run.scans.len(),
                run.elapsed_s,
                run.failures,
            ))
        })
        .map_err(py_err)?;
    let d = PyDict::new(py);
    d.set_item("campaign", name)?;
    d.set_item("scans", n)?;
    d.set_item("elapsed_s", elapsed)?;
    d.set_item("failures", failures)?;
    d.set_item("report", out.join("report.md"))?;
    Ok(d)
}

/// Plans a beamtime (the command line's `plan`): (the printed text, the plan.json document).
#[pyfunction]
#[pyo3(signature = (model, pressure, campaign, target, frame_time, max_frames, budget_hours,
    mc_repeats, free, bin_pixels, q_bins, min_frame_time, min_t_over_tau, seed, out,
    verbose = false, attenuators = None, systematic = 0.02, n_sigma = 3.0))]
#[allow(clippy::too_many_arguments)]
fn plan<'py>(
    py: Python<'py>,
    model: PathBuf,
    pressure: Option<f64>,
    campaign: bool,
    target: String,
    frame_time: Option<f64>,
    max_frames: usize,
    budget_hours: Option<f64>,
    mc_repeats: usize,
    free: String,
    bin_pixels: Option<f64>,
    q_bins: usize,
    min_frame_time: f64,
    min_t_over_tau: f64,
    seed: u64,
    out: Option<PathBuf>,
    verbose: bool,
    attenuators: Option<Vec<f64>>,
    systematic: f64,
    n_sigma: f64,
) -> PyResult<(String, Bound<'py, PyAny>)> {
    let opts = xpcs_twin::pipeline::plan::PlanOptions {
        model,
        pressure,
        campaign,
        target,
        frame_time,
        max_frames,
        budget_hours,
        mc_repeats,
        free,
        bin_pixels,
        q_bins,
        min_frame_time,
        min_t_over_tau,
        seed,
        out,
        verbose,
        attenuators,
        systematic,
        n_sigma,
    };
    let done = py
        .detach(|| xpcs_twin::pipeline::plan::run(&opts, &Quiet))
        .map_err(py_err)?;
    Ok((done.text, json_to_py(py, &done.json)?))
}

/// The native half of the `xpcs_twin` package.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Events>()?;
    m.add_class::<Correlation>()?;
    m.add_class::<FitReport>()?;
    m.add_function(wrap_pyfunction!(correlate_photons, m)?)?;
    m.add_function(wrap_pyfunction!(fit_g2, m)?)?;
    m.add_function(wrap_pyfunction!(simulate, m)?)?;
    m.add_function(wrap_pyfunction!(read, m)?)?;
    m.add_function(wrap_pyfunction!(twin, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    Ok(())
}
