"""Bad input raises ValueError (OSError for a file the system cannot open) with the command
line's one-line message: the package and the binary run the same checks."""

import numpy as np
import pytest

import xpcs_twin
from conftest import cli_error


def both(cli, cli_args, call, exc=ValueError):
    """The CLI fails with exit 2 and one line; the call raises `exc` with the same line."""
    rc, _, err = cli(*cli_args)
    assert rc == 2, err
    with pytest.raises(exc) as e:
        call()
    assert str(e.value) == cli_error(err)
    return str(e.value)


@pytest.fixture
def files(example, tmp_path):
    frames, labels, fp, lp = example
    return frames, labels, fp, lp, tmp_path / "r.hdf"


def test_bad_options(cli, files):
    frames, labels, fp, lp, out = files
    base = ["correlate", fp, "--qmap", lp, "--out", out]
    m = both(cli, base + ["--frame-time", 0.1, "--estimator", "bogus"],
             lambda: xpcs_twin.correlate.multitau(frames, labels, 0.1, estimator="bogus"))
    assert "--estimator" in m and "symmetric" in m
    both(cli, base + ["--frame-time", 0.1, "--num-bufs", 3],
         lambda: xpcs_twin.correlate.multitau(frames, labels, 0.1, num_bufs=3))
    both(cli, base + ["--frame-time", -1],
         lambda: xpcs_twin.correlate.multitau(frames, labels, -1.0))
    both(cli, base + ["--frame-time", 0.1, "--twotime", "--twotime-bin-frames", 1000],
         lambda: xpcs_twin.correlate.twotime(frames, labels, 0.1, bin_frames=1000))


def test_bad_files(cli, files, tmp_path):
    frames, labels, fp, lp, out = files
    # A .npy stack records no frame time.
    both(cli, ["correlate", fp, "--qmap", lp, "--out", out],
         lambda: xpcs_twin.correlate.multitau(fp, lp))
    # Labels that select no pixel.
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros_like(labels))
    m = both(cli, ["correlate", fp, "--qmap", zeros, "--frame-time", 0.1, "--out", out],
             lambda: xpcs_twin.correlate.multitau(frames, zeros, 0.1))
    assert "no pixel in any q-bin" in m
    # A label map of another shape than the frames.
    small = tmp_path / "small.npy"
    np.save(small, labels[:32])
    m = both(cli, ["correlate", fp, "--qmap", small, "--frame-time", 0.1, "--out", out],
             lambda: xpcs_twin.correlate.multitau(frames, small, 0.1))
    assert "[64, 64]" in m and "[32, 64]" in m
    # A frame file that does not exist: OSError, same message.
    missing = tmp_path / "missing.npy"
    both(cli, ["correlate", missing, "--qmap", lp, "--frame-time", 0.1, "--out", out],
         lambda: xpcs_twin.correlate.multitau(missing, lp, 0.1), exc=OSError)


def test_simulate_errors(root, cli, tmp_path):
    model = root / "models/samples/pt42.toml"
    both(cli, ["simulate", "--model", model, "--pressure", 99, "--out", tmp_path / "s.npy"],
         lambda: xpcs_twin.simulate(model, pressure=99))
    both(cli, ["simulate", "--model", model, "--qbins", 0, "--frames", 10,
               "--out", tmp_path / "s.npy"],
         lambda: xpcs_twin.simulate(model, qbins=0, frames=10))


def test_python_only_checks(example):
    frames, labels, _, _ = example
    with pytest.raises(ValueError, match="n_frames"):
        xpcs_twin.correlate.multitau(iter(frames), labels, 0.1)
    with pytest.raises(ValueError, match="ended after 10 of n_frames = 300"):
        xpcs_twin.correlate.multitau(iter(frames[:10]), labels, 0.1, n_frames=300)
    with pytest.raises(ValueError, match="more than n_frames = 10"):
        xpcs_twin.correlate.multitau(iter(frames[:20]), labels, 0.1, n_frames=10)
    with pytest.raises(ValueError, match="dtype float64"):
        xpcs_twin.correlate.multitau(frames.astype(float), labels, 0.1)
    with pytest.raises(ValueError, match="label"):
        xpcs_twin.correlate.multitau(frames, -labels.astype(np.int64) - 1, 0.1)
    with pytest.raises(ValueError, match="integer"):
        xpcs_twin.correlate.multitau(frames, labels.astype(float), 0.1)

    def boom():
        yield frames[0]
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        xpcs_twin.correlate.multitau(boom(), labels, 0.1, n_frames=300)


def test_twin_and_plan_errors(root, cli, tmp_path):
    missing = tmp_path / "missing.toml"
    rc, _, err = cli("twin", missing, "--out", tmp_path / "o")
    assert rc == 2
    with pytest.raises((OSError, ValueError)) as e:
        xpcs_twin.twin(missing, out=tmp_path / "o")
    # The command line adds what it was doing ("loading campaign ...") before the same message.
    assert cli_error(err).endswith(str(e.value))
    model = root / "models/samples/pt42.toml"
    both(cli, ["plan", model, "--pressure", 3.3, "--mc-repeats", 5],
         lambda: xpcs_twin.plan(model, pressure=3.3, mc_repeats=5))
    both(cli, ["plan", model, "--pressure", 3.3, "--target", "tau=abc"],
         lambda: xpcs_twin.plan(model, pressure=3.3, target="tau=abc"))
