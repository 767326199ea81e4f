#!/usr/bin/env python3
"""Runs an xpcs-twin campaign's detector shards on a Dask distributed cluster.

Every scan of the campaign is cut into N detector shards; each shard is one task that runs
``xpcs-twin shard CAMPAIGN --scale S --scan LABEL --shard i/N --out OUT/partials/LABEL/...``
as a subprocess on a worker (the binary writes its partial file to a hidden temp name and
renames it when complete, so a killed task never leaves a file that looks finished). When
every shard is done, the driver runs ``xpcs-twin twin CAMPAIGN --partials OUT/partials --out
OUT`` once: the partial files hold exact integer sums, so the report, summary and results files
are bit-identical to a single-machine ``xpcs-twin twin`` run of the same campaign, scale and
seed (timings aside).

The cluster is either an existing scheduler (``--scheduler tcp://host:8786``: a beamline
cluster, or dask-jobqueue's SLURMCluster/PBSCluster, see docs/scale-out.md) or a LocalCluster
of K worker processes on this machine, bound to 127.0.0.1 (``--local-workers K``). The binary,
the campaign files and OUT must be at the same paths on every worker (a shared file system).

A task whose shard exits with an error is retried (``--retries``); a task whose worker dies
(killed, out of memory, node lost) is re-run on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times). The shard subprocess dies with its worker
(Linux PR_SET_PDEATHSIG), so no orphan goes on simulating.

Usage:
    scripts/xpcs-twin-dask models/pt42-eiger.toml --shards-per-scan 4 --local-workers 2 \\
        --out /tmp/pt-dask
Exit codes: 0 done, 1 a shard or the final analysis failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """A bad argument: the message names it and what is allowed (exit code 2)."""


class RunError(Exception):
    """A shard or the final analysis failed (exit code 1)."""


def find_binary(explicit: str | None = None) -> Path:
    """The xpcs-twin binary: `explicit`, else $XPCS_TWIN_BIN, else the repository's release
    build (target/release/xpcs-twin, as scripts/xpcs-twin builds it), else `xpcs-twin` on
    PATH."""
    candidates = []
    if explicit:
        candidates = [(Path(explicit), "--binary")]
    elif os.environ.get("XPCS_TWIN_BIN"):
        candidates = [(Path(os.environ["XPCS_TWIN_BIN"]), "$XPCS_TWIN_BIN")]
    else:
        candidates.append((REPO / "target" / "release" / "xpcs-twin", "the release build"))
        on_path = shutil.which("xpcs-twin")
        if on_path:
            candidates.append((Path(on_path), "PATH"))
    for path, _ in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
    if explicit or os.environ.get("XPCS_TWIN_BIN"):
        path, what = candidates[0]
        raise UsageError(f"{what} {path}: no such executable file")
    raise UsageError(
        "no xpcs-twin binary: build it (cargo build --release, or run scripts/xpcs-twin once), "
        "put it on PATH, or give --binary PATH"
    )


def _seed_args(seed: int | None) -> list[str]:
    return [] if seed is None else ["--seed", str(seed)]


def list_scans(binary: Path, campaign: Path, scale: str, seed: int | None) -> dict:
    """The campaign's scans and their shard limits (`xpcs-twin shard --list-json`)."""
    cmd = [str(binary), "shard", str(campaign), "--scale", scale, "--list-json"]
    p = subprocess.run(cmd + _seed_args(seed), capture_output=True, text=True)
    if p.returncode != 0:
        raise UsageError(p.stderr.strip() or f"{' '.join(cmd)} exited {p.returncode}")
    return json.loads(p.stdout)


def _die_with_parent() -> None:
    """In the shard subprocess before exec: SIGKILL it when the worker that started it dies
    (Linux prctl PR_SET_PDEATHSIG = 1); elsewhere nothing."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def run_shard(
    binary: str,
    campaign: str,
    scale: str,
    seed: int | None,
    label: str,
    index: int,
    count: int,
    out: str,
) -> dict:
    """One task: shard `index`/`count` (1-based) of scan `label` into the partial file `out`
    (overwriting a previous attempt's). Raises RuntimeError with the binary's message when it
    fails; returns where and how long it ran."""
    cmd = [binary, "shard", campaign, "--scale", scale, *_seed_args(seed)]
    cmd += ["--scan", label, "--shard", f"{index}/{count}", "--out", out, "--force"]
    t0 = time.monotonic()
    pre = _die_with_parent if sys.platform.startswith("linux") else None
    p = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=pre)
    seconds = time.monotonic() - t0
    if p.returncode != 0:
        tail = p.stderr.strip().splitlines()[-5:]
        raise RuntimeError(
            f"{label} shard {index}/{count} on {socket.gethostname()} exited "
            f"{p.returncode}: {' | '.join(tail)}"
        )
    return {
        "label": label,
        "shard": f"{index}/{count}",
        "path": out,
        "seconds": seconds,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "log": p.stderr.strip(),
    }


def shard_path(partials: Path, label: str, index: int, count: int) -> Path:
    """Where shard `index`/`count` of scan `label` is written."""
    width = len(str(count))
    return partials / label / f"part_{index:0{width}d}_of_{count}.bin"


def _prepare_partials(partials: Path, expected: set[Path], force: bool, resume: bool) -> set[Path]:
    """Clears stale partial files (--force), keeps the expected ones already there (--resume),
    or refuses an output folder holding partial files. Returns the files kept."""
    found = sorted(partials.glob("*/*.bin")) if partials.is_dir() else []
    temps = sorted(partials.glob("*/.xpcs-twin-*")) if partials.is_dir() else []
    kept = set()
    for f in found:
        if resume and f in expected:
            kept.add(f)
        elif force or resume:
            f.unlink()
        else:
            raise UsageError(
                f"--out: {partials} already holds partial files (e.g. {f}); use --resume to "
                "keep the finished shards or --force to start over"
            )
    for t in temps:
        t.unlink()
    return kept


class _Progress:
    """One line per finished shard on stderr: shards done / total, elapsed and ETA."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.done, self.t0, self.stream = total, 0, time.monotonic(), stream

    def shard_done(self, r: dict) -> None:
        self.done += 1
        el = time.monotonic() - self.t0
        eta = el / self.done * (self.total - self.done)
        print(
            f"shards {self.done}/{self.total} done ({r['label']} {r['shard']} in "
            f"{r['seconds']:.1f} s on {r['host']}:{r['pid']}), elapsed {el:.0f} s, "
            f"ETA {eta:.0f} s",
            file=self.stream,
            flush=True,
        )


def _open_client(scheduler: str | None, local_workers: int | None):
    """A client of the scheduler at `scheduler`, or of a new LocalCluster of `local_workers`
    processes (one thread each, 127.0.0.1 only, no dashboard); returns (client, cluster)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError) as e:
            raise UsageError(f"--scheduler {scheduler}: cannot connect ({e})") from e
    cluster = LocalCluster(
        n_workers=local_workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return Client(cluster), cluster


def run(
    campaign: str | Path,
    out: str | Path,
    shards_per_scan: int,
    *,
    scale: str = "reduced",
    seed: int | None = None,
    binary: str | Path | None = None,
    client=None,
    scheduler: str | None = None,
    local_workers: int | None = None,
    retries: int = 2,
    force: bool = False,
    resume: bool = False,
    stream=sys.stderr,
) -> dict:
    """Runs every shard of every scan on the cluster (`client`, or one opened from `scheduler`
    / `local_workers`), then `xpcs-twin twin --partials` into `out`. Returns the summary of
    the run: out, shards, per-shard records, wall time (s), summed shard time (s), failures."""
    if scale not in ("reduced", "full"):
        raise UsageError(f"--scale {scale}: out of range (reduced or full)")
    if shards_per_scan < 1:
        raise UsageError(f"--shards-per-scan {shards_per_scan}: out of range (≥ 1)")
    if retries < 0:
        raise UsageError(f"--retries {retries}: out of range (≥ 0)")
    if client is None and (scheduler is None) == (local_workers is None):
        raise UsageError("give exactly one of --scheduler ADDRESS and --local-workers K")
    if local_workers is not None and local_workers < 1:
        raise UsageError(f"--local-workers {local_workers}: out of range (≥ 1)")
    if force and resume:
        raise UsageError("--force and --resume exclude each other")
    campaign = Path(campaign)
    if not campaign.is_file():
        raise UsageError(f"campaign file {campaign}: no such file")
    # Absolute paths: the workers may start in another directory.
    campaign = campaign.resolve()
    out = Path(out).resolve()
    exe = find_binary(None if binary is None else str(binary))
    listing = list_scans(exe, campaign, scale, seed)
    scans = listing["scans"]
    limit = min(s["max_shards"] for s in scans)
    if shards_per_scan > limit:
        raise UsageError(
            f"--shards-per-scan {shards_per_scan}: out of range (1..={limit}, the scans' "
            f"blocks of {listing['shard_unit_px']} pixels at scale {scale})"
        )
    for f in ("report.md", "summary.json"):
        if (out / f).exists() and not (force or resume):
            raise UsageError(f"--out: {out / f} exists (use --force to overwrite)")
    partials = out / "partials"
    tasks = [
        (s["label"], i, shard_path(partials, s["label"], i, shards_per_scan))
        for s in scans
        for i in range(1, shards_per_scan + 1)
    ]
    kept = _prepare_partials(partials, {t[2] for t in tasks}, force, resume)
    todo = [t for t in tasks if t[2] not in kept]

    t0 = time.monotonic()
    cluster = None
    if client is None:
        client, cluster = _open_client(scheduler, local_workers)
    try:
        records = _run_tasks(client, exe, campaign, scale, seed, shards_per_scan, todo,
                             retries, stream)
    finally:
        if cluster is not None:
            client.close()
            cluster.close()
    for t in partials.glob("*/.xpcs-twin-*"):
        # A killed attempt's temp file (its writer is dead: every task has finished).
        t.unlink(missing_ok=True)

    cmd = [str(exe), "twin", str(campaign), "--scale", scale, *_seed_args(seed)]
    cmd += ["--partials", str(partials), "--out", str(out)]
    if force or resume:
        cmd.append("--force")
    print(f"merging {len(tasks)} partial files: {' '.join(cmd)}", file=stream, flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RunError(f"xpcs-twin twin --partials exited {p.returncode}: {p.stderr.strip()}")
    print(p.stderr.strip().splitlines()[-1], file=stream, flush=True)
    summary = json.loads((out / "summary.json").read_text())
    return {
        "out": str(out),
        "shards": len(tasks),
        "reused": len(kept),
        "records": records,
        "wall_s": time.monotonic() - t0,
        "shard_s": sum(r["seconds"] for r in records),
        "failures": summary["failures"],
    }


def _run_tasks(client, exe, campaign, scale, seed, count, todo, retries, stream) -> list[dict]:
    """Submits one task per shard (retried on error; re-run elsewhere when its worker dies)
    and waits for all, printing progress; cancels the rest and raises RunError on a failure."""
    import cloudpickle
    from dask.distributed import as_completed

    # The workers need not import this file: its functions travel with the tasks.
    if __name__ != "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    token = uuid.uuid4().hex[:8]
    futures = [
        client.submit(
            run_shard,
            str(exe),
            str(campaign),
            scale,
            seed,
            label,
            i,
            count,
            str(path),
            key=f"xpcs-twin-shard-{label}-{i}of{count}-{token}",
            retries=retries,
            pure=False,
        )
        for label, i, path in todo
    ]
    progress = _Progress(len(futures), stream)
    records = []
    try:
        for f in as_completed(futures):
            try:
                r = f.result()
            except Exception as e:  # noqa: BLE001 - the task's error, reported whole
                raise RunError(f"shard task {f.key} failed: {e}") from e
            records.append(r)
            progress.shard_done(r)
    except BaseException:
        client.cancel(futures)
        raise
    return records


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="xpcs-twin-dask",
        description="Run a campaign's detector shards on a Dask cluster, then the campaign "
        "analysis (results bit-identical to `xpcs-twin twin`).",
    )
    ap.add_argument("campaign", help="campaign file (e.g. models/pt42-eiger.toml)")
    ap.add_argument("--scale", default="reduced", choices=["reduced", "full"])
    ap.add_argument("--seed", type=int, help="seed (default: the campaign file's)")
    ap.add_argument("--shards-per-scan", type=int, required=True, metavar="N",
                    help="detector shards per scan (1..=the scan's 4096-pixel blocks)")
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786")
    where.add_argument("--local-workers", type=int, metavar="K",
                       help="start a LocalCluster of K worker processes on 127.0.0.1")
    ap.add_argument("--out", required=True, help="output folder (partials/, report.md, ...)")
    ap.add_argument("--binary", help="xpcs-twin binary, at the same path on every worker "
                    "(default: $XPCS_TWIN_BIN, target/release/xpcs-twin, PATH)")
    ap.add_argument("--retries", type=int, default=2,
                    help="retries of a shard that exits with an error (default 2)")
    ap.add_argument("--force", action="store_true",
                    help="overwrite the outputs and delete partial files already in --out")
    ap.add_argument("--resume", action="store_true",
                    help="keep the partial files of finished shards in --out, run the rest")
    a = ap.parse_args(argv)
    try:
        s = run(
            a.campaign,
            a.out,
            a.shards_per_scan,
            scale=a.scale,
            seed=a.seed,
            binary=a.binary,
            scheduler=a.scheduler,
            local_workers=a.local_workers,
            retries=a.retries,
            force=a.force,
            resume=a.resume,
        )
    except UsageError as e:
        print(f"xpcs-twin-dask: error: {e}", file=sys.stderr)
        return 2
    except RunError as e:
        print(f"xpcs-twin-dask: error: {e}", file=sys.stderr)
        return 1
    print(
        f"{s['shards']} shards ({s['reused']} reused) in {s['wall_s']:.0f} s wall, "
        f"{s['shard_s']:.0f} s of shard tasks; {s['failures']} failed comparisons/checks; "
        f"report: {Path(s['out']) / 'report.md'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
