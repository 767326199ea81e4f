"""Independent reference fits (scipy) of the committed g2 datasets.

Fits each g2_*.csv with scipy.optimize.curve_fit (MINPACK Levenberg-Marquardt), weighted by
g2_err, with tight tolerances, and writes fit_reference.json: values, standard errors with the
covariance scaled by chi2_red (absolute_sigma=False) and unscaled (absolute_sigma=True), chi2.
The Rust test `fit::reference` refits the same files and compares to 1e-4 relative.
Run from this directory:  python3 make_fit_reference.py
"""
import json
import platform

import numpy as np
import scipy
from scipy.optimize import curve_fit


def kww(t, a, c, tau, beta):
    return a + c * np.exp(-2.0 * (t / tau) ** beta)


def kww_fixed_a(a):
    return lambda t, c, tau, beta: kww(t, a, c, tau, beta)


def expo(t, a, c, tau):
    return a + c * np.exp(-2.0 * t / tau)


def het(t, a, c, tau, beta, x):
    f = np.exp(-((t / tau) ** beta))
    return a + c * ((1 - x) ** 2 * f**2 + 2 * x * (1 - x) * f + x**2)


CASES = [
    # name, file, model, rust fixed params, python function, free names, p0
    ("ce_like_fixed_baseline", "g2_ce_like.csv", "kww", {"baseline": 1.006},
     kww_fixed_a(1.006), ["contrast", "tau", "kww_exponent"], [0.1, 400.0, 1.5]),
    ("ce_like_free", "g2_ce_like.csv", "kww", {},
     kww, ["baseline", "contrast", "tau", "kww_exponent"], [1.0, 0.1, 400.0, 1.5]),
    ("pt_like_free", "g2_pt_like.csv", "kww", {},
     kww, ["baseline", "contrast", "tau", "kww_exponent"], [1.0, 0.03, 30.0, 1.5]),
    ("exp_free", "g2_exp.csv", "exp", {},
     expo, ["baseline", "contrast", "tau"], [1.0, 0.1, 3.0]),
    ("heterodyne_free", "g2_heterodyne.csv", "kww-heterodyne", {},
     het, ["baseline", "contrast", "tau", "kww_exponent", "static_fraction"],
     [1.0, 0.1, 15.0, 1.3, 0.1]),
]

out = {"generator": {
    "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
    "method": "scipy.optimize.curve_fit(method='lm', xtol=ftol=gtol=1e-15, maxfev=100000)"},
    "cases": []}
for name, fname, model, fixed, fn, free, p0 in CASES:
    d = np.loadtxt(fname, delimiter=",", skiprows=1)
    t, y, s = d[:, 0], d[:, 1], d[:, 2]
    kw = dict(p0=p0, sigma=s, method="lm", xtol=1e-15, ftol=1e-15, gtol=1e-15, maxfev=100000)
    p_rel, cov_rel = curve_fit(fn, t, y, absolute_sigma=False, **kw)
    p_abs, cov_abs = curve_fit(fn, t, y, absolute_sigma=True, **kw)
    chi2 = float(np.sum(((y - fn(t, *p_rel)) / s) ** 2))
    dof = len(t) - len(free)
    out["cases"].append({
        "name": name, "file": fname, "model": model, "fixed": fixed, "free": free,
        "values": dict(zip(free, map(float, p_rel))),
        "std_errors_relative": dict(zip(free, map(float, np.sqrt(np.diag(cov_rel))))),
        "std_errors_absolute": dict(zip(free, map(float, np.sqrt(np.diag(cov_abs))))),
        "chi2": chi2, "dof": dof, "chi2_red": chi2 / dof,
    })
    print(name, dict(zip(free, p_rel)), "chi2_red", chi2 / dof)

with open("fit_reference.json", "w") as fh:
    json.dump(out, fh, indent=1)
    fh.write("\n")
