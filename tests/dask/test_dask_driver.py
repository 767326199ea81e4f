"""The Dask driver (distributed/xpcs_twin_dask.py) on a real LocalCluster of 2 worker processes.

Run by tests/dask.rs (`cargo test --test dask`), which sets XPCS_TWIN_BIN to the binary cargo
built; by hand: `XPCS_TWIN_BIN=target/release/xpcs-twin .venv/bin/python -m pytest tests/dask`.

The campaign is tests/dask/two-isobars.toml: 2 scans of 3 blocks of 4096 pixels, run as 3
shards per scan (6 tasks). Every run is compared with one single-machine `xpcs-twin twin` of
the same campaign: the results files (every dataset and attribute, bit for bit), the per-scan
JSON and the report byte for byte, the summary but for where its sums came from.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "distributed"))
import xpcs_twin_dask as driver  # noqa: E402

CAMPAIGN = REPO / "tests" / "dask" / "two-isobars.toml"
SHARDS = 3


@pytest.fixture(scope="module")
def binary() -> Path:
    return driver.find_binary()


@pytest.fixture(scope="module")
def reference(binary, tmp_path_factory) -> Path:
    """The single-machine run (the same absolute campaign path the driver passes on)."""
    out = tmp_path_factory.mktemp("single")
    subprocess.run(
        [str(binary), "twin", str(CAMPAIGN), "--out", str(out), "--force"],
        check=True,
        capture_output=True,
    )
    return out


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster: 2 worker processes (with nannies that restart a killed one), one
    thread each, on 127.0.0.1 only."""
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def h5_items(path: Path) -> dict:
    """Every dataset's value and every attribute of an HDF5 file, by path."""
    items = {}
    with h5py.File(path, "r") as f:
        for k, v in f.attrs.items():
            items["@" + k] = v

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                items[name] = obj[()]
            for k, v in obj.attrs.items():
                items[f"{name}@{k}"] = v

        f.visititems(visit)
    return items


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def without_partials(doc):
    """A summary JSON without `partials` (where the sums came from): the one field in which a
    run from partial files differs from a simulating run (wall times are in timing.json)."""
    return {k: v for k, v in doc.items() if k != "partials"}


def assert_same_outputs(ref: Path, got: Path) -> None:
    hdf = sorted(p.name for p in (ref / "scans").glob("*_results.hdf"))
    assert len(hdf) == 2 and hdf == sorted(p.name for p in (got / "scans").glob("*.hdf"))
    for name in hdf:
        a, b = h5_items(ref / "scans" / name), h5_items(got / "scans" / name)
        assert a.keys() == b.keys(), name
        differ = [k for k in a if not same_bits(a[k], b[k])]
        assert not differ, f"{name}: {differ[:5]}"
    a = json.loads((ref / "summary.json").read_text())
    b = json.loads((got / "summary.json").read_text())
    assert without_partials(a) == without_partials(b)
    for name in [f"scans/{p.name}" for p in (ref / "scans").glob("*.json")] + ["report.md"]:
        assert (ref / name).read_bytes() == (got / name).read_bytes(), name
    # Where the sums came from is recorded; the wall times are in timing.json, per scan.
    assert b["partials"] and not a.get("partials")
    timing = json.loads((got / "timing.json").read_text())
    assert len(timing["scans"]) == 2 and all(s["wall_s"] > 0 for s in timing["scans"])


def partial_files(out: Path) -> list[Path]:
    return sorted((out / "partials").rglob("*"))


def test_local_cluster_equals_single_machine(binary, reference, client, tmp_path):
    s = driver.run(CAMPAIGN, tmp_path, SHARDS, binary=binary, client=client)
    assert s["shards"] == 2 * SHARDS and len(s["records"]) == 2 * SHARDS
    assert s["failures"] == json.loads((reference / "summary.json").read_text())["failures"]
    # The shards ran in both worker processes, each once.
    pids = {r["pid"] for r in s["records"]}
    assert len(pids) == 2, pids
    assert sorted((r["label"], r["shard"]) for r in s["records"]) == sorted(
        (label, f"{i}/{SHARDS}") for label in ("00-c0.5GPa", "01-c1GPa") for i in (1, 2, 3)
    )
    # Exactly the finished partial files are left: no temp file of any attempt.
    files = [p.relative_to(tmp_path / "partials") for p in partial_files(tmp_path) if p.is_file()]
    assert sorted(map(str, files)) == sorted(
        f"{label}/part_{i}_of_{SHARDS}.bin" for label in ("00-c0.5GPa", "01-c1GPa") for i in (1, 2, 3)
    )
    assert_same_outputs(reference, tmp_path)


def test_worker_killed_mid_shard_is_rerun(binary, reference, client, tmp_path):
    """SIGKILL to the worker process while its shard subprocess runs: the nanny restarts the
    worker, the scheduler runs the task again on a live worker, the orphaned shard process is
    killed with its worker, and the merged outputs are still those of the single-machine run."""
    worker_pids = client.run(os.getpid)
    killed = {}

    def kill_first_busy_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for pid in worker_pids.values():
                # A shard subprocess that has just exited (a zombie) reads an empty command
                # line: only a live one with its --shard argument is a target.
                shards = []
                try:
                    for c in psutil.Process(pid).children(recursive=True):
                        try:
                            if c.name() == "xpcs-twin" and "--shard" in (cmd := c.cmdline()):
                                shards.append((c, cmd))
                        except psutil.Error:
                            continue
                except psutil.NoSuchProcess:
                    continue
                if shards:
                    child, cmd = shards[0]
                    killed.update(worker=pid, child=child, shard=cmd[cmd.index("--shard") + 1],
                                  scan=cmd[cmd.index("--scan") + 1])
                    os.kill(pid, signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_busy_worker)
    killer.start()
    s = driver.run(CAMPAIGN, tmp_path, SHARDS, binary=binary, client=client)
    killer.join()
    assert killed, "no shard subprocess seen to kill"
    assert not psutil.pid_exists(killed["worker"])
    # The shard process died with its worker (it had not finished: it was killed mid-shard).
    try:
        killed["child"].wait(timeout=10)
    except psutil.TimeoutExpired:
        pytest.fail(f"shard process {killed['child'].pid} outlived its worker")
    # The killed shard was run again, to completion, by another worker process.
    rerun = [r for r in s["records"] if (r["label"], r["shard"]) == (killed["scan"], killed["shard"])]
    assert len(rerun) == 1 and rerun[0]["pid"] != killed["worker"], (killed, rerun)
    assert len(s["records"]) == 2 * SHARDS
    assert not [p for p in partial_files(tmp_path) if p.name.startswith(".")]
    assert_same_outputs(reference, tmp_path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "distributed" / "xpcs_twin_dask.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_through_a_scheduler_address(binary, reference, client, tmp_path):
    """The command line against an existing scheduler (as on a beamline or Slurm cluster);
    then a second run refuses to overwrite, and --resume reuses every finished shard."""
    out = tmp_path / "out"
    addr = client.cluster.scheduler_address
    args = [str(CAMPAIGN), "--shards-per-scan", "2", "--scheduler", addr, "--out", str(out),
            "--binary", str(binary)]
    p = run_cli(*args)
    assert p.returncode == 0, p.stderr
    assert "shards 4/4 done" in p.stderr and "ETA" in p.stderr
    assert_same_outputs(reference, out)
    p = run_cli(*args)
    assert p.returncode == 2 and "exists (use --force" in p.stderr, p.stderr
    p = run_cli(*args, "--resume")
    assert p.returncode == 0 and "4 shards (4 reused)" in p.stderr, p.stderr
    assert_same_outputs(reference, out)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--shards-per-scan", "4", "--local-workers", "2"], "--shards-per-scan 4: out of range (1..=3"),
        (["--shards-per-scan", "0", "--local-workers", "2"], "--shards-per-scan 0: out of range"),
        (["--shards-per-scan", "2", "--local-workers", "0"], "--local-workers 0: out of range"),
        (["--shards-per-scan", "2", "--local-workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
         "not allowed with argument"),
        (["--shards-per-scan", "2"], "one of the arguments --scheduler --local-workers is required"),
        (["--shards-per-scan", "2", "--local-workers", "2", "--binary", "/nonexistent/xpcs-twin"],
         "--binary /nonexistent/xpcs-twin: no such executable file"),
        (["--shards-per-scan", "2", "--local-workers", "2", "--scale", "huge"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2(binary, tmp_path, args, says):
    out = tmp_path / "out"
    extra = [] if "--binary" in args else ["--binary", str(binary)]
    p = run_cli(str(CAMPAIGN), *args, *extra, "--out", str(out))
    assert p.returncode == 2 and says in p.stderr, p.stderr
    assert not out.exists()


def test_bad_campaign_exits_2(binary, tmp_path):
    p = run_cli(str(tmp_path / "missing.toml"), "--shards-per-scan", "1", "--local-workers", "1",
                "--out", str(tmp_path / "o"), "--binary", str(binary))
    assert p.returncode == 2 and "missing.toml: no such file" in p.stderr, p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(CAMPAIGN.read_text().replace("q_bins = 4", "q_bins = 0"))
    (tmp_path / "two-isobars-sample.toml").write_text(
        (CAMPAIGN.parent / "two-isobars-sample.toml").read_text()
    )
    p = run_cli(str(bad), "--shards-per-scan", "1", "--local-workers", "1",
                "--out", str(tmp_path / "o"), "--binary", str(binary))
    assert p.returncode == 2 and "q_bins" in p.stderr, p.stderr
