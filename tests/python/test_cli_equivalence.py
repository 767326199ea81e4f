"""The package's numbers are the command line's, bit for bit, on the bundled example."""

import numpy as np

import xpcs_twin


def same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)


def test_multitau_equals_cli(example, cli, tmp_path):
    frames, labels, fp, lp = example
    rc, _, err = cli(
        "correlate", fp, "--qmap", lp, "--frame-time", 0.1,
        "--out", tmp_path / "cli_results.hdf", "--npy-dir", tmp_path / "npy",
    )
    assert rc == 0, err
    c = xpcs_twin.correlate.multitau(frames, labels, frame_time=0.1)
    assert same(c.g2, np.load(tmp_path / "npy/g2.npy"))
    assert same(c.g2_err, np.load(tmp_path / "npy/g2_err.npy"))
    assert same(c.lag_frames, np.load(tmp_path / "npy/lag_frames.npy"))
    assert same(c.delay_s, np.load(tmp_path / "npy/delay_s.npy"))
    # The jackknife replicates as the CLI stored them in its results file (which leaves lag 0
    # out, as the APS files do: delays from 1 frame).
    res = xpcs_twin.io.read(tmp_path / "cli_results.hdf")
    assert res["kind"] == "results"
    assert c.lag_frames[0] == 0
    assert np.array_equal(c.lag_frames[1:], res["lag_frames"])
    assert same(c.jackknife[:, 1:], res["jackknife"])
    # The package's own results file holds what the CLI's holds.
    mine = xpcs_twin.io.write_results(tmp_path / "py_results.hdf", c)
    back = xpcs_twin.io.read(mine)
    for key in ("g2", "g2_err", "lag_frames", "delay_s", "jackknife", "labels", "mask",
                "intensity_vs_time", "scattering_1d"):
        assert same(back[key], res[key]), key


def test_twotime_and_estimators_equal_cli(example, cli, tmp_path):
    frames, labels, fp, lp = example
    for est in ("frame", "symmetric-static"):
        d = tmp_path / est
        d.mkdir()
        rc, _, err = cli(
            "correlate", fp, "--qmap", lp, "--frame-time", 0.1, "--estimator", est,
            "--twotime", "--twotime-bin-frames", 3,
            "--out", d / "r.hdf", "--npy-dir", d,
        )
        assert rc == 0, err
        c = xpcs_twin.correlate.twotime(frames, labels, 0.1, bin_frames=3, estimator=est)
        assert same(c.g2, np.load(d / "g2.npy"))
        assert sorted(c.c2) == [1, 2, 3, 4, 5]
        for label, m in c.c2.items():
            assert same(m, np.load(d / f"c2_{label:05d}.npy"))


def test_sparse_equals_cli(example, cli, tmp_path):
    frames, labels, fp, lp = example
    rc, _, err = cli(
        "correlate", fp, "--qmap", lp, "--frame-time", 0.1, "--sparse",
        "--out", tmp_path / "r.hdf", "--npy-dir", tmp_path,
    )
    assert rc == 0, err
    c = xpcs_twin.correlate.events(frames, labels, 0.1)
    assert c.correlator == "event"
    assert same(c.g2, np.load(tmp_path / "g2.npy"))
    # ... and the event correlator equals the dense one, bit for bit.
    assert same(c.g2, xpcs_twin.correlate.multitau(frames, labels, 0.1).g2)


def test_simulate_equals_cli(root, cli, tmp_path):
    args = dict(frames=64, rows=24, cols=20, seed=11, qbins=3)
    rc, _, err = cli(
        "simulate", "--model", root / "models/samples/pt42.toml", "--frames", 64,
        "--rows", 24, "--cols", 20, "--seed", 11, "--qbins", 3, "--out", tmp_path / "s.npy",
    )
    assert rc == 0, err
    s = xpcs_twin.simulate(root / "models/samples/pt42.toml", **args)
    assert same(s["frames"], np.load(tmp_path / "s.npy"))
    assert same(s["labels"], np.load(tmp_path / "s.labels.npy"))
    assert same(s["mask"].astype(np.uint8), np.load(tmp_path / "s.mask.npy"))
    import json

    cli_truth = json.loads((tmp_path / "s.truth.json").read_text())
    assert s["truth"]["truth"] == cli_truth["truth"]
    assert s["truth"]["total_counts"] == cli_truth["total_counts"] == int(s["frames"].sum())
    # The same seed gives the same photons; another seed other photons.
    again = xpcs_twin.simulate(root / "models/samples/pt42.toml", **args)
    assert same(again["frames"], s["frames"])
    other = xpcs_twin.simulate(root / "models/samples/pt42.toml", **{**args, "seed": 12})
    assert not np.array_equal(other["frames"], s["frames"])


def test_plan_equals_cli(root, cli):
    model = root / "models/samples/pt42.toml"
    rc, out, err = cli("plan", model, "--pressure", 3.3, "--mc-repeats", 0)
    assert rc == 0, err
    p = xpcs_twin.plan(model, pressure=3.3, mc_repeats=0)
    assert p["text"] == out
    assert len(p["isobars"]) == 1 and p["target"]["relative"] == 0.05


def test_frame_selection_and_q_equal_cli(example, cli, tmp_path):
    """begin/end/stride/avg and q from the geometry, as the command line's flags."""
    import json

    frames, labels, fp, lp = example
    rc, _, err = cli(
        "correlate", fp, "--qmap", lp, "--frame-time", 0.1,
        "--begin", 10, "--end", 250, "--stride", 2, "--avg", 3,
        "--energy-kev", 10, "--distance-m", 5, "--pixel-size-um", 75,
        "--beam-center-px", "32,-40",
        "--out", tmp_path / "r.hdf", "--npy-dir", tmp_path, "--json", tmp_path / "s.json",
    )
    assert rc == 0, err
    c = xpcs_twin.correlate.multitau(
        frames, labels, 0.1, begin=10, end=250, stride=2, avg=3,
        energy_kev=10, distance_m=5, pixel_size_um=75, beam_center_px=(32, -40),
    )
    assert same(c.g2, np.load(tmp_path / "g2.npy"))
    assert same(c.delay_s, np.load(tmp_path / "delay_s.npy"))
    summary = json.loads((tmp_path / "s.json").read_text())
    assert c.frames_used == tuple(summary["frames_used"]) == (10, 250, 2, 3)
    assert c.n_frames == summary["n_frames"] == 40
    assert c.q_source == summary["q_source"] == "geometry"
    assert [b["q_inv_angstrom"] for b in summary["bins"]] == list(c.q_inv_angstrom)
    # The same frames from a sliced copy of the stack: the selection is not a copy trick.
    picked = frames[10:250:2].astype(np.uint32)
    merged = picked.reshape(40, 3, *picked.shape[1:]).sum(axis=1, dtype=np.uint32)
    direct = xpcs_twin.correlate.multitau(merged, labels, 0.6)
    assert same(direct.g2, c.g2)
    # One q source at a time, as on the command line.
    (tmp_path / "q.txt").write_text("0.1\n0.2\n0.3\n0.4\n0.5\n")
    rc, _, err = cli(
        "correlate", fp, "--qmap", lp, "--frame-time", 0.1, "--q-values", tmp_path / "q.txt",
        "--energy-kev", 10, "--distance-m", 5, "--pixel-size-um", 75,
        "--beam-center-px", "32,-40", "--out", tmp_path / "r2.hdf",
    )
    assert rc == 2
    try:
        xpcs_twin.correlate.multitau(
            frames, labels, 0.1, q_values=[0.1] * 5,
            energy_kev=10, distance_m=5, pixel_size_um=75, beam_center_px=(32, -40),
        )
        raise AssertionError("two q sources accepted")
    except ValueError as e:
        assert str(e) in err
