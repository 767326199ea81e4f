"""Files in and out, as the command line reads and writes them.

- :func:`read`: frames (.npy, Eiger/NeXus HDF5 with deflate/LZ4/bitshuffle-LZ4), xpcs-twin event
  files (.h5 with /events), label maps (.npy/.npz, 2-D) and APS 8-ID-I results files.
- :func:`write_results`: a :class:`~xpcs_twin.Correlation` as an APS results file (what
  ``xpcs-twin correlate --out`` writes; XPCS viewers open it).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Union

from . import _native
from ._native import Correlation

__all__ = ["read", "write_results"]

PathLike = Union[str, "os.PathLike[str]"]


def read(path: PathLike) -> Dict[str, Any]:
    """Reads a file the command line reads; returns a dict whose ``kind`` says what it held:

    - ``"frames"``: ``frames`` (frames, rows, cols) in the smallest of uint8/16/32 holding
      the counts, ``frame_time_s`` (s, or None when the file does not record it);
    - ``"events"``: ``events`` (:class:`~xpcs_twin.Events`), ``frame_time_s``;
    - ``"labels"``: ``labels`` (uint32, rows × cols; 0 = excluded);
    - ``"results"``: ``lag_frames``, ``delay_s`` (s), ``g2``, ``g2_err`` (n_lags × n_bins),
      ``jackknife`` (if stored), ``c2`` ({label: map}, if stored), ``labels``,
      ``static_labels``, ``mask``, ``q_inv_angstrom`` (Å⁻¹), ``intensity_vs_time``,
      ``scattering_1d`` (photons per pixel per frame), ``frame_time_s``, ``energy_kev``.

    Raises:
        ValueError: a file the readers refuse (the command line's message).
        OSError: a file the system cannot open.
    """
    return _native.read(os.fspath(path))


def write_results(
    path: PathLike,
    correlation: Correlation,
    *,
    force: bool = False,
) -> str:
    """Writes ``correlation`` as an APS 8-ID-I results file (``*_results.hdf`` is what the APS
    viewer lists), through a temporary file renamed into place.

    The geometry it records (energy, distance, pixel size, beam centre) is the one given to
    the correlation (``energy_kev=``, ...; NaN when not given), as the command line records
    its flags.

    Args:
        force: replace an existing file.

    Returns:
        The path written.
    """
    return correlation.write_results(os.fspath(path), bool(force))
