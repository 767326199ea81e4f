"""Fits of g2(delay): KWW (stretched exponential), heterodyne KWW, simple exponential.

Models (delays δt in s):

- ``kww``: g2 = baseline + contrast · exp(-2 (δt/tau)^kww_exponent)
- ``exp``: the same with kww_exponent = 1
- ``kww-heterodyne``: a static reference beam mixed with the decaying field

Each returns a :class:`~xpcs_twin.FitReport`: ``values`` and ``std_errors`` ({name: value};
tau in s, the others dimensionless), ``covariance`` (parameter order ``params``), ``chi2``,
``chi2_red``, ``dof``, ``termination`` (why the solver stopped), ``converged`` and ``failure``.
A fit that fails is a report with the reason, not an exception.

Drop lag 0 before fitting (it carries the shot-noise term): ``c.delay_s[1:], c.g2[1:, k]``.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import _native
from ._native import FitReport

__all__ = ["kww", "exp", "g2", "FitReport"]


def _vec(x: Sequence[float], name: str) -> list:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got {a.ndim} dimensions")
    return a.tolist()


def g2(
    model: str,
    delay_s: Sequence[float],
    g2: Sequence[float],
    g2_err: Sequence[float],
    *,
    fix: Optional[Mapping[str, float]] = None,
    start: Optional[Mapping[str, float]] = None,
    error_scale: str = "relative",
    jackknife: Optional[np.ndarray] = None,
) -> FitReport:
    """Fits ``model`` (``"kww"``, ``"kww-heterodyne"`` or ``"exp"``) to g2 ± g2_err at delays
    ``delay_s`` (s), by Levenberg–Marquardt (``xpcs-twin fit``).

    Args:
        fix: parameters held at a value, e.g. ``{"baseline": 1.0}`` (tau in s).
        start: starting values replacing the data-driven guess.
        error_scale: ``"relative"`` (covariance × χ²_red, scipy's default) or ``"absolute"``
            (g2_err are true 1σ).
        jackknife: leave-one-group-out g2 replicates (n_groups × n_delays, e.g.
            ``c.jackknife[:, 1:, k]``): the errors are then jackknife errors, which include
            the correlation between multi-tau lags.
    """
    reps = None
    if jackknife is not None:
        j = np.asarray(jackknife, dtype=np.float64)
        if j.ndim != 2:
            raise ValueError(f"jackknife: expected (n_groups, n_delays), got {j.ndim} dimensions")
        reps = j.tolist()
    return _native.fit_g2(
        model,
        _vec(delay_s, "delay_s"),
        _vec(g2, "g2"),
        _vec(g2_err, "g2_err"),
        [(k, float(v)) for k, v in (fix or {}).items()],
        [(k, float(v)) for k, v in (start or {}).items()],
        error_scale,
        reps,
    )


def kww(
    delay_s: Sequence[float],
    g2_values: Sequence[float],
    g2_err: Sequence[float],
    **options: Any,
) -> FitReport:
    """KWW fit: g2 = baseline + contrast · exp(-2 (δt/tau)^kww_exponent); delays in s.

    Parameters ``baseline``, ``contrast``, ``tau`` (s), ``kww_exponent``. Options (``fix``,
    ``start``, ``error_scale``, ``jackknife``) as for :func:`g2`.
    """
    return g2("kww", delay_s, g2_values, g2_err, **options)


def exp(
    delay_s: Sequence[float],
    g2_values: Sequence[float],
    g2_err: Sequence[float],
    **options: Any,
) -> FitReport:
    """Exponential fit: g2 = baseline + contrast · exp(-2 δt/tau); delays in s. Options as for
    :func:`g2`."""
    return g2("exp", delay_s, g2_values, g2_err, **options)
