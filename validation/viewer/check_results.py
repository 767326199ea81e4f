#!/usr/bin/env python3
"""Opens an xpcs-twin results file with the APS XPCS viewer's own loading code and checks it.

The viewer (PyPI `xpcs-viewer` 1.2.2, module `pyxpcsviewer`) loads a file through
`pyxpcsviewer.core.xpcs_file.XpcsFile`; a file that raises there is silently dropped from the
GUI's list, so this script exercises that class (and the two-time reader the GUI calls), not
the GUI.

Usage:
    python3 validation/viewer/check_results.py RESULTS.hdf [EXPECTED.json]

EXPECTED.json (written by the Rust test `tests/viewer.rs`) holds the values the file must
show: g2 and g2_err (n_delay x Nd), delay_frames, frame_time_s, stride/avg, the dynamic q
centres, and the full (symmetric) two-time maps with their processed bins. Without it, only
the loading and the shapes are checked.

Exit code 0 = every check passed; 1 = a check failed (message on stderr); 3 = the viewer is
not importable (pip install xpcs-viewer==1.2.2).
"""
import json
import sys


def fail(msg):
    print(f"check_results: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        import numpy as np
        from pyxpcsviewer.core.xpcs_file import XpcsFile
        from pyxpcsviewer.core.file_io.hdf_reader import get_analysis_type
    except ImportError as e:
        print(f"check_results: SKIP: pyxpcsviewer not importable ({e})", file=sys.stderr)
        sys.exit(3)

    path = sys.argv[1]
    exp = json.load(open(sys.argv[2])) if len(sys.argv) == 3 else None

    if not (path.endswith(".hdf") or path.endswith(".h5")):
        fail(f"{path}: the viewer lists only *.hdf / *.h5 files")
    atype = get_analysis_type(path)
    try:
        xf = XpcsFile(path)
    except Exception as e:  # the GUI would silently drop the file
        fail(f"XpcsFile({path}) raised {type(e).__name__}: {e}")

    nd = len(xf.qmap.dynamic_index_mapping)
    if int(np.max(xf.qmap.dqmap)) != nd:
        fail(f"max(dynamic_roi_map) = {np.max(xf.qmap.dqmap)} != len(dynamic_index_mapping) = {nd}")
    if xf.qmap.mask.shape != xf.qmap.dqmap.shape or xf.saxs_2d.shape != xf.qmap.dqmap.shape:
        fail(f"mask {xf.qmap.mask.shape}, dqmap {xf.qmap.dqmap.shape}, saxs_2d {xf.saxs_2d.shape} differ")
    if not isinstance(xf.t0, float) or xf.t0 <= 0:
        fail(f"frame_time t0 = {xf.t0!r} must load as a positive float (0-d dataset)")

    if "Multitau" in atype:
        g2, g2_err, tau = xf.g2, xf.g2_err, xf.tau
        if g2.ndim != 2 or g2.shape[1] != nd:
            fail(f"g2 shape {g2.shape}, expected (n_delay, {nd})")
        if g2_err.shape != g2.shape or tau.shape != (g2.shape[0],):
            fail(f"g2_err {g2_err.shape} / delay_list {tau.shape} vs g2 {g2.shape}")
        if tau.dtype.kind not in "iu":
            fail(f"delay_list dtype {tau.dtype}: must be integer frames")
        q, t_el, g2s, g2e, labels = xf.get_g2_data()
        if g2s.shape != g2.shape or len(labels) != nd:
            fail(f"get_g2_data: {g2s.shape}, {len(labels)} labels")
        if exp is not None:
            want = np.array(exp["g2"], dtype=np.float32)
            if g2.shape != want.shape or not np.allclose(g2, want, rtol=0, atol=1e-6):
                fail(f"g2 values differ (max |diff| = {np.max(np.abs(g2 - want)) if g2.shape == want.shape else 'shape'})")
            werr = np.array(exp["g2_err"], dtype=np.float32)
            if not np.allclose(g2_err, werr, rtol=0, atol=1e-6):
                fail("g2_err values differ")
            if list(map(int, tau)) != exp["delay_frames"]:
                fail(f"delays {list(tau)} != {exp['delay_frames']}")
            t_want = np.array(exp["delay_frames"]) * exp["frame_time_s"] * exp["stride_frame"] * exp["avg_frame"]
            if not np.allclose(t_el, t_want, rtol=1e-12, atol=0):
                fail(f"time axis {t_el[:4]}... != {t_want[:4]}...")
            # q unknown is stored as NaN (JSON null) and must load as NaN, not as a made-up q.
            want_q = np.array([np.nan if v is None else v for v in exp["dynamic_q"]], dtype=float)
            if not np.allclose(q, want_q, rtol=1e-12, atol=0, equal_nan=True):
                fail(f"q of the g2 columns {q} != {exp['dynamic_q']}")
        print(f"check_results: multitau OK: g2 {g2.shape}, delays int frames, t_el[0] = {t_el[0]:.4g} s")

    if "Twotime" in atype:
        bins = list(map(int, xf.c2_processed_bins))
        for sel, b in enumerate(bins):
            c2 = xf.get_twotime_c2(selection=sel, correct_diag=False)["c2_mat"]
            if c2.ndim != 2 or c2.shape[0] != c2.shape[1]:
                fail(f"two-time map {sel} shape {c2.shape}")
            if not np.allclose(c2, c2.T):
                fail(f"two-time map {sel} is not symmetric after C + C^T")
            if exp is not None:
                want = np.array(exp["c2"][sel], dtype=np.float32)
                if c2.shape != want.shape or not np.allclose(c2, want, rtol=0, atol=1e-6):
                    fail(f"two-time map of bin {b}: values differ (diagonal doubled? lower triangle not zero?)")
        if exp is not None and bins != exp["processed_bins"]:
            fail(f"processed bins {bins} != {exp['processed_bins']}")
        print(f"check_results: twotime OK: bins {bins}, map {c2.shape}")

    if not atype:
        fail("neither multitau nor twotime results found")
    print(f"check_results: {path}: loads in pyxpcsviewer ({', '.join(atype)}): OK")


if __name__ == "__main__":
    main()
