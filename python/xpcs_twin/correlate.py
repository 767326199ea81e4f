"""Correlation of photon-counting frames or events: multi-tau g2, two-time maps.

Every function runs the command line's ``xpcs-twin correlate`` pipeline and returns a
:class:`~xpcs_twin.Correlation` with

- ``lag_frames`` (uint64, frames) and ``delay_s`` (float64, s = lag × frame time),
- ``g2`` and ``g2_err`` (float64, n_lags × n_bins; column k is q-bin k + 1; ``g2_err`` is the
  standard error over the bin's pixels),
- ``jackknife`` (float64, n_groups × n_lags × n_bins: leave-one-pixel-group-out g2, for fit
  errors that include the correlation between lags),
- ``bin_pixels``, ``bin_status``, ``intensity_vs_time`` (photons per pixel per frame),
- ``c2`` ({label: C(t1, t2)}, two-time only), ``q_inv_angstrom`` (NaN when unknown) and
  ``q_source``, ``frames_used`` (begin, end, stride, avg), ``write_results(path)`` (APS
  layout).

``frames`` may be

- a numpy array (frames, rows, cols) of uint8, uint16 or uint32 counts: C-contiguous arrays,
  ``np.memmap`` and ``np.load(path, mmap_mode="r")`` are correlated in place, without a copy;
  other strides are copied once into C order;
- a path to a frame file (.npy, Eiger/NeXus HDF5) or an xpcs-twin event file, read as the
  command line reads it (streamed);
- an :class:`~xpcs_twin.Events` list (from :func:`xpcs_twin.simulate` or :func:`xpcs_twin.io.read`);
- an iterator of 2-D frames (uint8/16/32), streamed 64 frames at a time through the
  correlator's push API; give ``n_frames``, the number of frames it yields.

``labels`` (and ``static_labels``, ``mask``) are 2-D arrays of the frame shape (label 0 =
excluded, k ≥ 1 = q-bin k; mask nonzero = valid pixel) or paths to .npy/.npz/.h5 maps.

The work runs with the interpreter released.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, Optional, Union

import numpy as np

from . import _native
from ._native import Correlation, Events

__all__ = ["multitau", "twotime", "events", "Correlation"]

PathLike = Union[str, "os.PathLike[str]"]
Frames = Union[np.ndarray, PathLike, Events, Iterable[np.ndarray]]
Map = Union[np.ndarray, PathLike]


# Keyword arguments every correlation takes besides its own (the command line's flags):
# frame selection (raw frames begin..end, every stride-th, avg merged: delay = lag × frame
# time × stride × avg), the HDF5 dataset / NPZ member of a file, q of the bins (q_values, or
# the geometry: energy_kev, distance_m, pixel_size_um, beam_center_px = (row, col)), and the
# detector's own mask of a frame file (pixel_mask and overflow pixels; on by default).
_SELECTION_DEFAULTS: Dict[str, Any] = {
    "begin": 0,
    "end": None,
    "stride": 1,
    "avg": 1,
    "dataset": None,
    "q_values": None,
    "energy_kev": None,
    "distance_m": None,
    "pixel_size_um": None,
    "beam_center_px": None,
    "detector_mask": True,
}


def _opt_float(x: Any) -> Optional[float]:
    return None if x is None else float(x)


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _labels(x: Optional[Map], name: str) -> Any:
    if x is None or _is_path(x):
        return None if x is None else os.fspath(x)
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise ValueError(f"{name}: dtype {a.dtype} is not an integer type")
    if a.ndim != 2:
        raise ValueError(f"{name}: a label map is (rows, cols): got {a.ndim} dimensions")
    return np.ascontiguousarray(a, dtype=np.int64)


def _mask(x: Optional[Map]) -> Any:
    if x is None or _is_path(x):
        return None if x is None else os.fspath(x)
    a = np.asarray(x)
    if a.ndim != 2:
        raise ValueError(f"mask: a mask is (rows, cols): got {a.ndim} dimensions")
    return np.ascontiguousarray(a != 0)


def _frames(x: Frames) -> Any:
    if _is_path(x):
        return os.fspath(x)
    if isinstance(x, (np.ndarray, Events)):
        return x
    if hasattr(x, "__array__") and not hasattr(x, "__next__"):
        return np.asarray(x)
    return iter(x)


def _run(
    frames: Frames,
    labels: Map,
    frame_time: Optional[float],
    *,
    static_labels: Optional[Map],
    mask: Optional[Map],
    estimator: str,
    num_bufs: int,
    twotime: bool,
    twotime_bin_frames: Optional[int],
    sparse: bool,
    n_frames: Optional[int],
    selection: Dict[str, Any],
) -> Correlation:
    sel = dict(_SELECTION_DEFAULTS)
    unknown = set(selection) - set(sel)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    sel.update(selection)
    q_values = sel["q_values"]
    beam_center = sel["beam_center_px"]
    return _native.correlate_photons(
        _frames(frames),
        _labels(labels, "labels"),
        _labels(static_labels, "static_labels"),
        _mask(mask),
        None if frame_time is None else float(frame_time),
        estimator,
        int(num_bufs),
        bool(twotime),
        None if twotime_bin_frames is None else int(twotime_bin_frames),
        bool(sparse),
        None if n_frames is None else int(n_frames),
        int(sel["begin"]),
        None if sel["end"] is None else int(sel["end"]),
        int(sel["stride"]),
        int(sel["avg"]),
        sel["dataset"],
        None if q_values is None else [float(q) for q in np.asarray(q_values).ravel()],
        _opt_float(sel["energy_kev"]),
        _opt_float(sel["distance_m"]),
        _opt_float(sel["pixel_size_um"]),
        None if beam_center is None else [float(x) for x in beam_center],
        bool(sel["detector_mask"]),
    )


def multitau(
    frames: Frames,
    labels: Map,
    frame_time: Optional[float] = None,
    *,
    estimator: str = "symmetric",
    num_bufs: int = 8,
    static_labels: Optional[Map] = None,
    mask: Optional[Map] = None,
    sparse: bool = False,
    n_frames: Optional[int] = None,
    **selection: Any,
) -> Correlation:
    """Multi-tau g2 per q-bin (``xpcs-twin correlate``).

    Args:
        frames: photons: an array (frames, rows, cols) of uint8/16/32 counts, a memory map, a
            frame or event file path, an :class:`Events` list, or an iterator of 2-D frames.
        labels: dynamic q-bin labels (rows, cols): 0 = excluded, k ≥ 1 = bin k; or a file.
        frame_time: frame period in seconds (required unless the file or events record it).
        estimator: ``"symmetric"`` (scikit-beam, boost_corr, Xana), ``"symmetric-static"``
            (normalised per static sub-bin, then averaged, as APS) or ``"frame"``.
        num_bufs: multi-tau lags per level (an even number ≥ 2): lags 0..num_bufs-1 at level
            0, then num_bufs/2 lags per level with the frames averaged in pairs.
        static_labels: finer static labels for the symmetric-static estimator and the
            intensities (default: ``labels``).
        mask: nonzero = valid pixel (default: labels > 0).
        sparse: use the event correlator (work ∝ photon pairs; same numbers bit for bit).
        n_frames: the number of frames an iterator yields (required for iterators).
        begin, end, stride, avg: the raw frames used (frame inputs; as ``--begin/--end/
            --stride/--avg``): frames begin..end (end exclusive, default: all), every
            stride-th, avg consecutive kept frames summed into one; delay = lag × frame_time
            × stride × avg.
        dataset: the HDF5 dataset path or NPZ member holding the frames of a file.
        q_values: q (Å⁻¹) of each dynamic bin, in label order; or q from the geometry:
            energy_kev, distance_m, pixel_size_um and beam_center_px = (row, col), all four.
        detector_mask: mask a frame file's invalid pixels (its pixel_mask, overflow values),
            as the command line does (default True).

    Returns:
        A :class:`Correlation`: ``lag_frames``, ``delay_s`` (s), ``g2``, ``g2_err``,
        ``jackknife``, ...

    Raises:
        ValueError: bad input, with the command line's message.
    """
    return _run(
        frames,
        labels,
        frame_time,
        static_labels=static_labels,
        mask=mask,
        estimator=estimator,
        num_bufs=num_bufs,
        twotime=False,
        twotime_bin_frames=None,
        sparse=sparse,
        n_frames=n_frames,
        selection=selection,
    )


def twotime(
    frames: Frames,
    labels: Map,
    frame_time: Optional[float] = None,
    *,
    bin_frames: Optional[int] = None,
    estimator: str = "symmetric",
    num_bufs: int = 8,
    static_labels: Optional[Map] = None,
    mask: Optional[Map] = None,
    sparse: bool = False,
    n_frames: Optional[int] = None,
    **selection: Any,
) -> Correlation:
    """Two-time maps C(t1, t2) of every q-bin, with the multi-tau g2 (``correlate --twotime``).

    Args:
        bin_frames: raw frames summed into one two-time frame (default: the smallest that
            keeps the map at most 2000 × 2000); the map's time step is bin_frames × frame_time
            seconds.
        Others: as :func:`multitau`.

    Returns:
        A :class:`Correlation` whose ``c2`` is {q-bin label: C(t1, t2) (n × n)}, with
        n = frames // bin_frames.

    Memory: an array input is not copied; a file or an iterator is read into memory (4 bytes
    per pixel-frame), and each map takes n² × 8 bytes.
    """
    return _run(
        frames,
        labels,
        frame_time,
        static_labels=static_labels,
        mask=mask,
        estimator=estimator,
        num_bufs=num_bufs,
        twotime=True,
        twotime_bin_frames=bin_frames,
        sparse=sparse,
        n_frames=n_frames,
        selection=selection,
    )


def events(
    photons: Frames,
    labels: Map,
    frame_time: Optional[float] = None,
    *,
    twotime: bool = False,
    bin_frames: Optional[int] = None,
    estimator: str = "symmetric",
    num_bufs: int = 8,
    static_labels: Optional[Map] = None,
    mask: Optional[Map] = None,
    n_frames: Optional[int] = None,
    **selection: Any,
) -> Correlation:
    """The event (sparse) correlator (``correlate --sparse``): work ∝ photon pairs, best below
    about 0.1 photon per pixel per frame; the same numbers as :func:`multitau`, bit for bit.

    ``photons`` is an :class:`Events` list, an event file, or frames (converted to events
    first). Other arguments as :func:`multitau` and :func:`twotime`.
    """
    return _run(
        photons,
        labels,
        frame_time,
        static_labels=static_labels,
        mask=mask,
        estimator=estimator,
        num_bufs=num_bufs,
        twotime=twotime,
        twotime_bin_frames=bin_frames,
        sparse=True,
        n_frames=n_frames,
        selection=selection,
    )
