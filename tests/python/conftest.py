"""Fixtures of the Python package's tests: the repository, the bundled example, and the
command-line binary whose outputs and error messages the package must reproduce."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def example():
    """The bundled movie (300 × 64 × 64 u8) and its ring labels, with their paths."""
    fp = ROOT / "examples/speckle_small.npy"
    lp = ROOT / "examples/speckle_small_labels.npy"
    return np.load(fp), np.load(lp), fp, lp


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The `xpcs-twin` binary: $XPCS_TWIN_BIN, else target/debug (built by `cargo test`), else
    built here."""
    env = os.environ.get("XPCS_TWIN_BIN")
    if env:
        return Path(env)
    b = ROOT / "target/debug/xpcs-twin"
    if not b.exists():
        subprocess.run(["cargo", "build", "--quiet", "--bin", "xpcs-twin"], cwd=ROOT, check=True)
    return b


@pytest.fixture
def cli(cli_bin):
    """Runs the binary; returns (exit code, stdout, stderr)."""

    def run(*args):
        p = subprocess.run(
            [str(cli_bin), *map(str, args)], cwd=ROOT, capture_output=True, text=True
        )
        return p.returncode, p.stdout, p.stderr

    return run


def cli_error(stderr: str) -> str:
    """The one-line message of a failed command (`error: <message>`)."""
    lines = [l for l in stderr.splitlines() if l.startswith("error: ")]
    assert len(lines) == 1, stderr
    return lines[0][len("error: ") :]
