"""Fits from Python: the library's Levenberg–Marquardt on numpy data."""

import numpy as np
import pytest

import xpcs_twin


def kww(t, contrast, tau, beta, baseline):
    return baseline + contrast * np.exp(-2.0 * (t / tau) ** beta)


def test_kww_recovers_an_exact_curve():
    t = np.geomspace(0.01, 50.0, 60)  # s
    y = kww(t, 0.2, 2.5, 0.7, 1.0)
    err = np.full_like(t, 1e-3)
    r = xpcs_twin.fit.kww(t, y, err)
    assert r.converged and r.failure is None
    # Noise-free data: the solver's tolerances (1e-10 relative step) bound the error.
    for name, truth in dict(contrast=0.2, tau=2.5, kww_exponent=0.7, baseline=1.0).items():
        assert r.values[name] == pytest.approx(truth, rel=1e-6), name
    assert r.params == ["baseline", "contrast", "tau", "kww_exponent"] or set(r.params) == {
        "baseline", "contrast", "tau", "kww_exponent"}
    cov = r.covariance
    assert cov.shape == (4, 4) and np.allclose(cov, cov.T)
    assert r.chi2 < 1e-12 and r.dof == 56 and isinstance(r.termination, str)
    assert r.to_dict()["model"] == "kww"


def test_fixed_parameter_and_failure():
    t = np.geomspace(0.01, 50.0, 40)
    y = kww(t, 0.2, 2.5, 1.0, 1.0)
    r = xpcs_twin.fit.exp(t, y, np.full_like(t, 1e-3), fix={"baseline": 1.0})
    assert r.converged and r.fixed == ["baseline"] and r.std_errors["baseline"] == 0.0
    assert r.values["tau"] == pytest.approx(2.5, rel=1e-6)
    # Too few points: a report that says why, not an exception.
    bad = xpcs_twin.fit.kww(t[:2], y[:2], np.full(2, 1e-3))
    assert not bad.converged and bad.failure and bad.values is None
    # A malformed call is an error.
    with pytest.raises(ValueError, match="lengths"):
        xpcs_twin.fit.kww(t, y[:-1], np.full_like(t, 1e-3))
    with pytest.raises(ValueError, match="model"):
        xpcs_twin.fit.g2("bogus", t, y, np.full_like(t, 1e-3))


def test_jackknife_errors_on_the_example(example):
    frames, labels, _, _ = example
    c = xpcs_twin.correlate.multitau(frames, labels, 0.1)
    r = xpcs_twin.fit.kww(c.delay_s[1:], c.g2[1:, 0], c.g2_err[1:, 0],
                          jackknife=c.jackknife[:, 1:, 0])
    assert r.converged and r.error_scale == "jackknife"
    # Ring 1's τ is 4 s (examples/README.md); 5σ.
    assert abs(r.values["tau"] - 4.0) < 5 * r.std_errors["tau"]
