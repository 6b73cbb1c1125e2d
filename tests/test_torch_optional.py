"""PyTorch is optional: imports stay torch-free, and its absence gives clear errors.

These tests run with or without torch installed (torch is hidden in a subprocess).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.models.profiles import LayerProfile, UnitProfile

HIDE_TORCH = "import sys; sys.modules['torch'] = None\n"
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "profiles.ipynb"


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_importing_the_packages_does_not_import_torch():
    done = python(
        "import sys\n"
        "import edgeopt.models.profiles, edgeopt.analysis.torch_checks\n"
        "import edgeopt.analysis.commands.profile, edgeopt.analysis.cli\n"
        "edgeopt.analysis.cli.build_parser()\n"
        "print('torch' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_from_torch_without_torch_names_the_extra():
    done = python(
        HIDE_TORCH + "from edgeopt.models.profiles import TorchUnavailable, from_torch\n"
        "try:\n    from_torch(object(), None)\n"
        "except TorchUnavailable as error:\n    print(error)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "from_torch needs PyTorch" in done.stdout and "pip install 'edgeopt[torch]'" in done.stdout


def test_the_command_without_torch_exits_2_naming_the_extra():
    done = python(
        HIDE_TORCH + "from edgeopt.analysis.cli import main\n"
        "sys.exit(main(['profile', 'mypkg.nets:build', '--input-shape', '3', '32', '32']))\n"
    )
    assert done.returncode == 2
    assert "edgeopt profile: error:" in done.stderr and "edgeopt[torch]" in done.stderr


def test_the_notebook_runs_without_torch():
    """Every code cell of notebooks/profiles.ipynb (magics dropped) with torch hidden."""
    pytest.importorskip("nbformat")
    done = python(
        HIDE_TORCH + "import nbformat\n"
        "from pathlib import Path\n"
        f"book = nbformat.read({str(NOTEBOOK)!r}, as_version=4)\n"
        "scope = {'display': print}\n"
        "for cell in book.cells:\n"
        "    if cell.cell_type == 'code':\n"
        "        lines = [l for l in cell.source.splitlines() if not l.startswith('%')]\n"
        "        exec(compile('\\n'.join(lines), 'cell', 'exec'), scope)\n"
        "print(scope['HAVE_TORCH'])\n"
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'edgeopt[torch]'" in done.stdout and done.stdout.strip().endswith("False")


def unit(name: str, params: float, saved_suffix: float = 8.0) -> UnitProfile:
    return UnitProfile(
        name, fwd_flops=10.0, bwd_flops=20.0, bwd_weight_flops=10.0, bwd_act_flops=10.0,
        param_bytes=params, in_bytes=4.0, out_bytes=6.0, saved_act_bytes=5.0,
        saved_suffix_bytes=saved_suffix, param_names=(f"{name}.weight",),
    )


def test_layer_lists_carry_the_measured_columns():
    profile = LayerProfile((unit("a", 30.0), unit("b", 10.0, 2.0)), batch_size=4, input_bytes=4.0)
    edgesplit = profile.edgesplit_layers()
    assert edgesplit[0] == {"name": "a", "fwd_flops": 10.0, "bwd_flops": 20.0, "param_bytes": 30.0,
                            "out_bytes": 6.0, "saved_act_bytes": 5.0}
    tinyfel = profile.tinyfel_layers()
    assert [layer["act_factor"] for layer in tinyfel] == [2.0, 0.5]
    assert [layer["grad_sq_bound"] for layer in tinyfel] == [0.75, 0.25]
    with pytest.raises(ValueError, match="no measured times"):
        profile.effective_flops_per_s()
    timed = profile.with_times([1.0, 1.0], [2.0, 4.0], repeats=3)
    assert timed.effective_flops_per_s() == pytest.approx(4 * 60.0 / 8.0)
    assert LayerProfile.from_dict(timed.to_dict()) == timed


def test_profile_documents_are_checked():
    with pytest.raises(ValueError, match="repeated: \\['a'\\]"):
        LayerProfile((unit("a", 1.0), unit("a", 1.0)), batch_size=1, input_bytes=1.0)
    with pytest.raises(ValueError, match="at least one unit"):
        LayerProfile((), batch_size=1, input_bytes=1.0)
    with pytest.raises(ValueError, match="format = None"):
        LayerProfile.from_dict({"units": []})
    with pytest.raises(ValueError, match="has 1 values; the profile has 2 units"):
        LayerProfile((unit("a", 1.0), unit("b", 1.0)), batch_size=1, input_bytes=1.0).tinyfel_layers([1.0])
