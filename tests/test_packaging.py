"""The three code folders install as edgeopt.models / .solvers / .analysis, also from a wheel."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_and_imports_the_subpackages(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr
    wheel = next(tmp_path.glob("edgeopt-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("edgeopt/models/edgesplit/model.py", "edgeopt/solvers/api.py", "edgeopt/analysis/cli.py"):
        assert module in names
    assert not any(name.startswith(("models/", "solvers/", "analysis/", "tests/")) for name in names)

    # Install the wheel by unpacking it (what pip does for a pure wheel) and import from it
    # alone: -S skips .pth files (so not the editable install); dependencies come from
    # site-packages appended after it.
    target = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(target)
    code = (
        "import sys; sys.path[:0] = [sys.argv[1]]; sys.path += sys.argv[2:]; "
        "import edgeopt.models, edgeopt.solvers, edgeopt.analysis.cli as cli; "
        "from edgeopt.models import load_instance; "
        "print(edgeopt.models.__file__); print(cli.__file__)"
    )
    packages = [p for p in site.getsitepackages() if Path(p).is_dir()]
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(target), *packages],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ""},
    )
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert line.startswith(str(target)), line


def test_editable_install_maps_the_folders():
    import edgeopt.analysis
    import edgeopt.models
    import edgeopt.solvers

    assert Path(edgeopt.models.__file__).parent == ROOT / "models"
    assert Path(edgeopt.solvers.__file__).parent == ROOT / "solvers"
    assert Path(edgeopt.analysis.__file__).parent == ROOT / "analysis"
