"""The three code folders install as edgeopt.models / .solvers / .analysis under the top-level\npackage edgeopt, editable or from a wheel; version, licence and typing marker ship with it."""

from __future__ import annotations

import importlib.metadata
import json
import os
import site
import subprocess
import sys
import sysconfig
import tomllib
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
    assert "edgeopt/setup.py" not in names  # the build script is not part of the package
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    for code in ("models", "solvers", "analysis"):
        for init in (ROOT / code).rglob("__init__.py"):
            folder = init.parent.relative_to(ROOT)
            assert "/".join(("edgeopt", *folder.parts)) in packages, folder  # found by setup.py

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


PURELIB = Path(sysconfig.get_paths()["purelib"]).resolve()
"""This environment's site-packages, where pip installs edgeopt (editable or from a wheel)."""


def _installed_distribution() -> importlib.metadata.Distribution:
    """The edgeopt distribution pip installed here (not an egg-info a source build left)."""
    return next(importlib.metadata.distributions(name="edgeopt", path=[str(PURELIB)]))


def _installed_editable() -> bool:
    """Whether edgeopt is installed in editable mode (PEP 660; recorded as PEP 610 says)."""
    direct_url = _installed_distribution().read_text("direct_url.json")
    return bool(direct_url) and json.loads(direct_url).get("dir_info", {}).get("editable", False)


def test_the_imported_package_is_the_installed_one():
    """Editable: the folders are mapped in place. Wheel: every module comes from the install."""
    import edgeopt
    import edgeopt.analysis
    import edgeopt.models
    import edgeopt.solvers

    folders = {edgeopt: ROOT, edgeopt.models: ROOT / "models", edgeopt.solvers: ROOT / "solvers",
               edgeopt.analysis: ROOT / "analysis"}
    installed = PURELIB / "edgeopt"
    for module, folder in folders.items():
        location = Path(module.__file__).resolve().parent
        if _installed_editable():
            assert location == folder, module.__name__
        else:
            assert location == installed.joinpath(*module.__name__.split(".")[1:]), module.__name__


def test_version_comes_from_the_package_metadata():
    import edgeopt

    assert edgeopt.__version__ == importlib.metadata.version("edgeopt")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert edgeopt.__version__ == pyproject["project"]["version"]


def test_package_is_marked_typed_and_licensed():
    import edgeopt

    assert (Path(edgeopt.__file__).parent / "py.typed").is_file()
    distribution = _installed_distribution()
    licence = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert licence == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert any(str(f).endswith("LICENSE") for f in distribution.files or ())
