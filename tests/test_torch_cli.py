"""``edgeopt profile``: canonical layer lists that drop into instances; exit 2 on bad input."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from conftest import DATA  # noqa: E402

from edgeopt.analysis.cli import main  # noqa: E402
from edgeopt.models.edgesplit import EdgeSplitModel  # noqa: E402
from edgeopt.models.profiles import LayerProfile, from_torch  # noqa: E402
from edgeopt.models.tinyfel.model import TinyFELModel  # noqa: E402

NETWORK = '''
from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))


def not_a_module():
    return 42


def broken():
    raise RuntimeError("boom")
'''


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "mynet.py"
    path.write_text(NETWORK)
    return str(path)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_edgesplit_layers_drop_into_an_instance(factory, tmp_path, capsys):
    out = tmp_path / "layers.json"
    assert main(["profile", f"{factory}:build", "--input-shape", "3", "8", "8", "-o", str(out)]) == 0
    layers = json.loads(out.read_text())
    from torch import nn

    network = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 5))
    assert layers == from_torch(network, torch.randn(2, 3, 8, 8)).edgesplit_layers()
    assert [layer["name"] for layer in layers] == ["0", "1", "2", "3"]
    document = json.loads((DATA / "edgesplit_t1.json").read_text())
    document["layers"] = layers
    EdgeSplitModel.from_dict(document)
    assert "4 units" in capsys.readouterr().err


def test_tinyfel_layers_with_named_blocks_drop_into_an_instance(factory, capsys):
    code = main(["profile", f"{factory}:build", "--input-shape", "3", "8", "8", "--blocks", "1", "3",
                 "--format", "tinyfel"])
    assert code == 0
    layers = json.loads(capsys.readouterr().out)
    assert [layer["name"] for layer in layers] == ["1", "3"]
    assert layers[0]["fwd_flops"] == 2 * 3 * 9 * 4 * 64 and layers[1]["in_bytes"] == 4 * 256
    document = json.loads((DATA / "tinyfel_a.json").read_text())
    document["layers"] = layers
    TinyFELModel.from_dict(document)


def test_full_profile_with_times_from_a_dotted_module(tmp_path):
    out = tmp_path / "profile.json"
    code = main(["profile", "edgeopt.models.profiles.cifar:resnet18", "--input-shape", "3", "32", "32",
                 "--format", "profile", "--measure", "--repeats", "1", "--threads", "1", "-o", str(out)])
    assert code == 0
    profile = LayerProfile.load(out)
    assert profile.measured and profile.source == "edgeopt.models.profiles.cifar:resnet18"
    assert profile.names[1] == "layer1_0" and profile.units[1].fwd_flops == 150994944


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("nosuch_module_xyz:build", [], "cannot import 'nosuch_module_xyz'"),
        ("missing/net.py:build", [], "missing/net.py: no such file"),
        ("{f}:nosuch", [], "has no callable 'nosuch'"),
        ("{f}:not_a_module", [], "returned int 42, not a torch.nn.Module"),
        ("{f}:broken", [], r"broken\(\) failed: RuntimeError: boom"),
        ("nocolon", [], "expected MODULE_PATH:FACTORY"),
        ("{f}:build", ["--input-shape", "3", "8"], r"failed on an input of shape \(2, 3, 8\)"),
        ("{f}:build", ["--blocks", "nosuch"], "unknown block 'nosuch'"),
        ("{f}:build", ["--format", "tinyfel"], "have no parameters"),
        ("{f}:build", ["--measure"], "--measure needs --format profile"),
    ],
)
def test_bad_input_exits_2_with_a_message(factory, capsys, target, extra, message):
    shape = [] if "--input-shape" in extra else ["--input-shape", "3", "8", "8"]
    assert main(["profile", target.format(f=factory), *shape, *extra]) == 2
    import re

    assert re.search(message, capsys.readouterr().err)


@pytest.mark.parametrize("shape", [["0"], ["3", "x"], []])
def test_bad_shapes_are_argument_errors(factory, shape):
    with pytest.raises(SystemExit) as exit_info:
        main(["profile", f"{factory}:build", "--input-shape", *shape])
    assert exit_info.value.code == 2
