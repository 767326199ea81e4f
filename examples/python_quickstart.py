"""xpcs-twin from Python, in the style of a notebook: correlate the bundled speckle movie,
fit its q-bins, write an APS results file, simulate a scan and recover its ground truth.

Run from the repository's root after `pip install ./python` (or `scripts/test-python`):

    python examples/python_quickstart.py [OUT_DIR]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

import xpcs_twin

root = Path(__file__).resolve().parent.parent
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="xpcs-twin-"))
out.mkdir(parents=True, exist_ok=True)

# %% 1. Correlate: 300 frames of 64 × 64 px, memory-mapped (no copy), frame time 0.1 s.
frames = np.load(root / "examples/speckle_small.npy", mmap_mode="r")
labels = np.load(root / "examples/speckle_small_labels.npy")  # 0 = excluded, 1..5 = rings
c = xpcs_twin.correlate.multitau(frames, labels, frame_time=0.1)
print(c)
print(c.table())

# %% 2. Fit each ring: g2 = baseline + contrast·exp(-2 (t/τ)^β), lag 0 dropped (shot noise),
# errors from the jackknife replicates (they include the correlation between lags).
tau_true_s = 4.0 / np.arange(1, 6)  # the example's truth: τ_q = 4, 2, 1.33, 1, 0.8 s
for k in range(c.g2.shape[1]):
    r = xpcs_twin.fit.kww(
        c.delay_s[1:],
        c.g2[1:, k],
        c.g2_err[1:, k],
        jackknife=c.jackknife[:, 1:, k],
    )
    tau, err = r.values["tau"], r.std_errors["tau"]
    print(f"ring {k + 1}: τ = {tau:.3f} ± {err:.3f} s (truth {tau_true_s[k]:.3f} s), "
          f"β = {r.values['kww_exponent']:.3f}, χ²_red = {r.chi2_red:.2f}, {r.termination}")
    assert r.converged and abs(tau - tau_true_s[k]) < 5 * err, "τ within 5σ of the truth"

# %% 3. The APS results file (what `xpcs-twin correlate --out` writes; viewers open it).
path = xpcs_twin.io.write_results(out / "example_results.hdf", c, force=True)
back = xpcs_twin.io.read(path)
print(f"wrote {path}: kind {back['kind']}, g2 {back['g2'].shape}")

# %% 4. Two-time maps C(t1, t2), 5 raw frames per two-time frame.
tt = xpcs_twin.correlate.twotime(frames, labels, frame_time=0.1, bin_frames=5)
print({label: m.shape for label, m in tt.c2.items()})

# %% 5. Simulate a scan of the Pt glass (ideal detector) and compare with its ground truth.
sim = xpcs_twin.simulate(root / "models/samples/pt42.toml", frames=400, rows=48, cols=48,
                         seed=7)
truth = sim["truth"]["truth"]
s = xpcs_twin.correlate.multitau(sim["frames"], sim["labels"], sim["frame_time_s"])
lag = truth["lags_frames"].index(16)
for b, tb in enumerate(truth["bins"]):
    row = int(np.searchsorted(s.lag_frames, 16))
    print(f"q-bin {b + 1}: g2(16 frames) measured {s.g2[row, b]:.4f} ± {s.g2_err[row, b]:.4f}, "
          f"truth {tb['g2'][lag]:.4f}")
