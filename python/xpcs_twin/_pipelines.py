"""The command line's whole-run pipelines: simulate, plan, twin."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence, Union


from . import _native

PathLike = Union[str, "os.PathLike[str]"]


def _opt(x: Optional[Any], kind: type) -> Any:
    return None if x is None else kind(x)


def simulate(
    model: PathLike,
    pressure: Optional[float] = None,
    frames: Optional[int] = None,
    frame_time: Optional[float] = None,
    seed: int = 0,
    *,
    output: str = "frames",
    scan: Optional[int] = None,
    rows: Optional[int] = None,
    cols: Optional[int] = None,
    mean_counts: Optional[float] = None,
    contrast: Optional[float] = None,
    modes: Optional[float] = None,
    qbins: int = 4,
    labels: Optional[PathLike] = None,
    generator: str = "circulant",
    phasor_terms: int = 64,
    method: str = "grid",
    subsamples: int = 2,
    grid_tolerance: float = 2e-3,
    block_pixels: int = 4096,
    beam: Optional[str] = None,
    dac: Optional[str] = None,
    detector: Optional[str] = None,
    distance: float = 5.0,
    charge_sharing: bool = False,
) -> Dict[str, Any]:
    """Simulates one scan of a sample preset (``xpcs-twin simulate``), in memory.

    Args:
        model: sample preset (TOML), e.g. ``models/samples/pt42.toml``.
        pressure: simulate the first isobar at this pressure (GPa); or ``scan``: isobar
            number (0-based, protocol order; default 0).
        frames: number of frames (default: the isobar's).
        frame_time: frame period (s; default: the isobar's).
        seed: random seed (same seed → same photons, whatever the thread count).
        output: ``"frames"`` (a dense uint8/16/32 array (frames, rows, cols)) or ``"events"``
            (an :class:`~xpcs_twin.Events` list).
        rows, cols: detector size (px; with the instrument: a centred region).
        mean_counts: mean photons per pixel per frame; contrast: speckle contrast;
            modes: number of coherent modes (ideal scene only).
        qbins: q-bins of the built-in partition (bands of rows).
        labels: q-bin labels file (.npy, rows × cols) instead of the built-in bands.
        generator: ``"circulant"``, ``"phasors"`` or ``"ar1"``; phasor_terms: phasors per
            field; method: ``"grid"`` or ``"exact"``; subsamples: sub-samples per frame;
            grid_tolerance: largest grid interpolation error (relative to the contrast);
            block_pixels: pixels per parallel block (changes the output).
        beam, dac, detector: presets (``models/beams``, ``models/dacs``,
            ``models/detectors``) or TOML files: the scene then comes from the instrument
            model and the counting chain; distance: sample–detector distance (m);
            charge_sharing: charge sharing in the counting chain.

    Returns:
        A dict: ``frames`` or ``events``, ``labels`` and ``static_labels`` (uint32, rows ×
        cols), ``mask`` (bool, valid pixels), ``kossel_mask`` (uint8, 1 = masked; instrument
        only, else None), ``truth`` (the ground truth: the ``.truth.json`` document, with the
        expected g2 per q-bin at ``truth["truth"]["lags_frames"]``), ``frame_time_s`` (s).
    """
    if output not in ("frames", "events"):
        raise ValueError(f"output: `{output}` is out of range (allowed: frames or events)")
    out = _native.simulate(
        os.fspath(model),
        _opt(pressure, float),
        _opt(scan, int),
        _opt(frames, int),
        _opt(frame_time, float),
        int(seed),
        _opt(rows, int),
        _opt(cols, int),
        _opt(mean_counts, float),
        _opt(contrast, float),
        _opt(modes, float),
        int(qbins),
        None if labels is None else os.fspath(labels),
        generator,
        int(phasor_terms),
        method,
        int(subsamples),
        float(grid_tolerance),
        int(block_pixels),
        beam,
        dac,
        detector,
        float(distance),
        bool(charge_sharing),
    )
    events = out["events"]
    out["frame_time_s"] = events.frame_time_s
    if output == "frames":
        del out["events"]
        out["frames"] = events.to_dense()
    return out


def plan(
    model: PathLike,
    pressure: Optional[float] = None,
    *,
    campaign: bool = False,
    target: str = "tau=5%",
    frame_time: Optional[float] = None,
    max_frames: int = 100_000,
    budget_hours: Optional[float] = None,
    mc_repeats: int = 100,
    free: str = "contrast,tau,kww_exponent",
    bin_pixels: Optional[float] = None,
    q_bins: int = 10,
    min_frame_time: float = 1e-3,
    min_t_over_tau: float = 5.0,
    seed: int = 0,
    out: Optional[PathLike] = None,
    verbose: bool = False,
    attenuators: Optional[Sequence[float]] = None,
    systematic: float = 0.02,
    n_sigma: float = 3.0,
) -> Dict[str, Any]:
    """Plans a beamtime (``xpcs-twin plan``): the cheapest (frame time, frames) meeting a
    precision target, checked by Monte Carlo, and the ΔC noise floor.

    Args:
        model: campaign (``models/*.toml``) or sample (``models/samples/*.toml``) file.
        pressure: plan the isobar at this pressure (GPa); or ``campaign=True``: every isobar.
        target: ``"tau=5%"``, ``"beta=3%"`` or ``"contrast=10%"``.
        frame_time: use only this frame time (s); max_frames: most frames per scan;
        budget_hours: longest beam time per isobar (h); mc_repeats: Monte Carlo repeats (0 =
        none, else ≥ 10); free: free fit parameters; bin_pixels: pixels per q-bin; q_bins:
        q-bins of a sample scene; min_frame_time: shortest detector frame (s);
        min_t_over_tau: smallest scan length / τ; seed: random seed.
        out: folder for plan.json and the PNG figures (optional).
        verbose: the text also lists every (frame time, frames) setting compared.
        attenuators: transmissions (each in (0, 1]) of an attenuator series at ``pressure``:
        the frames and dose of each step and the smallest beam-induced relaxation k (Gy⁻¹)
        the series detects at ``n_sigma`` σ, with ``systematic`` (scan-to-scan scatter of
        ln τ, 0 to 1) added to each step (campaign files only).

    Returns:
        The plan.json document as a dict, plus ``text``: the table the command line prints.
    """
    text, doc = _native.plan(
        os.fspath(model),
        _opt(pressure, float),
        bool(campaign),
        target,
        _opt(frame_time, float),
        int(max_frames),
        _opt(budget_hours, float),
        int(mc_repeats),
        free,
        _opt(bin_pixels, float),
        int(q_bins),
        float(min_frame_time),
        float(min_t_over_tau),
        int(seed),
        None if out is None else os.fspath(out),
        bool(verbose),
        None if attenuators is None else [float(t) for t in attenuators],
        float(systematic),
        float(n_sigma),
    )
    doc["text"] = text
    return doc


def twin(
    model: PathLike = "models/pt42-eiger.toml",
    *,
    out: PathLike,
    scale: str = "reduced",
    seed: Optional[int] = None,
    force: bool = False,
) -> Dict[str, Any]:
    """Simulates and analyses a whole campaign (``xpcs-twin twin``): report.md, figures/,
    scans/ (APS results files) and summary.json in ``out``.

    Args:
        model: campaign file. scale: ``"reduced"`` (region of interest) or ``"full"``.
        seed: seed (default: the campaign file's). force: overwrite existing outputs.

    Returns:
        ``campaign``, ``scans``, ``elapsed_s`` (s), ``failures`` (failed comparisons and
        checks), ``report`` (path of report.md).
    """
    return _native.twin(
        os.fspath(model), os.fspath(out), scale, _opt(seed, int), bool(force)
    )


