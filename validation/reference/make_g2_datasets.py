"""Writes the committed g2 datasets that make_fit_reference.py fits (and the Rust test refits).

Each CSV has columns delay_s, g2, g2_err. The data are synthetic (a model curve plus seeded
Gaussian noise of the stated error); they exist to compare two fitting implementations on the
same numbers, not to validate physics. Run from this directory:  python3 make_g2_datasets.py
"""
import numpy as np


def multitau_delays(frame_time_s, n_frames, bufs=8):
    """Multi-tau delays (s): `bufs` lags at level 0, then bufs/2 per level, doubling."""
    lags, lag, step = [], 0, 1
    level = 0
    while True:
        for _ in range(bufs if level == 0 else bufs // 2):
            lag += step
            if lag >= n_frames:
                return np.array(lags, float) * frame_time_s
            lags.append(lag)
        step *= 2
        level += 1


def kww(t, a, c, tau, beta):
    return a + c * np.exp(-2.0 * (t / tau) ** beta)


def het(t, a, c, tau, beta, x):
    f = np.exp(-((t / tau) ** beta))
    return a + c * ((1 - x) ** 2 * f**2 + 2 * x * (1 - x) * f + x**2)


def write(name, t, y, s):
    with open(name, "w") as fh:
        fh.write("delay_s,g2,g2_err\n")
        for a, b, c in zip(t, y, s):
            fh.write(f"{a:.10e},{b:.10e},{c:.10e}\n")


rng = np.random.default_rng(20261121)

# Ce-seed-like: Maxipix, 5 s frames, 1500 frames, tau 600 s, beta 1.8, baseline 1.006.
t = multitau_delays(5.0, 1500)
s = 0.004 * (1 + t / t.max())
y = kww(t, 1.006, 0.12, 600.0, 1.8) + rng.normal(0, s)
write("g2_ce_like.csv", t, y, s)

# Pt-seed-like: Eiger, 0.1 s frames, 8000 frames, tau 38 s, beta 1.7, low contrast.
t = multitau_delays(0.1, 8000)
s = 0.0015 * np.sqrt(1 + t / 50.0)
y = kww(t, 1.0, 0.02, 38.0, 1.7) + rng.normal(0, s)
write("g2_pt_like.csv", t, y, s)

# Simple exponential, 0.1 s frames.
t = multitau_delays(0.1, 2000)
s = np.full(t.shape, 0.003)
y = kww(t, 1.0, 0.2, 5.0, 1.0) + rng.normal(0, s)
write("g2_exp.csv", t, y, s)

# Heterodyne with static fraction 0.2.
t = multitau_delays(0.1, 4000)
s = np.full(t.shape, 0.002)
y = het(t, 1.0, 0.15, 20.0, 1.5, 0.2) + rng.normal(0, s)
write("g2_heterodyne.csv", t, y, s)
