"""The notebook-style example runs as written."""

import subprocess
import sys


def test_quickstart_runs(root, tmp_path):
    p = subprocess.run(
        [sys.executable, str(root / "examples/python_quickstart.py"), str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ring 5" in p.stdout and (tmp_path / "example_results.hdf").exists()
