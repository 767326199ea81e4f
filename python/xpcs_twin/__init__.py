"""xpcs-twin from Python: correlate, fit, simulate, read and write XPCS data.

The same library functions as the ``xpcs-twin`` command line, on numpy arrays::

    import numpy as np, xpcs_twin
    frames = np.load("examples/speckle_small.npy", mmap_mode="r")   # (frames, rows, cols) uint16
    labels = np.load("examples/speckle_small_labels.npy")           # (rows, cols), 0 = excluded
    c = xpcs_twin.correlate.multitau(frames, labels, frame_time=0.1)  # s
    fit = xpcs_twin.fit.kww(c.delay_s[1:], c.g2[1:, 0], c.g2_err[1:, 0])

Units: times in seconds (``frame_time``, ``delay_s``, ``tau``), lags in frames
(``lag_frames``), q in inverse ångström, pressure in GPa, counts in photons.

Modules: :mod:`xpcs_twin.correlate` (multi-tau, two-time, events), :mod:`xpcs_twin.fit`
(KWW and exponential g2 fits), :mod:`xpcs_twin.io` (read every format the command line reads,
write APS results files); functions :func:`simulate`, :func:`plan`, :func:`twin`.

Bad input raises ``ValueError`` with the command line's one-line message (``OSError`` for a file
the system cannot read or write).
"""

from . import _native, correlate, fit, io
from ._native import Correlation, Events, FitReport
from ._pipelines import plan, simulate, twin

__version__ = _native.__version__

__all__ = [
    "Correlation",
    "Events",
    "FitReport",
    "correlate",
    "fit",
    "io",
    "plan",
    "simulate",
    "twin",
    "__version__",
]
