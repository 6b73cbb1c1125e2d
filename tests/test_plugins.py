"""Models and solver sets are found through the ``edgeopt.*`` entry points, built-ins included."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgeopt.models import MODEL_IDS, load_instance, model_class, plugins, preset
from edgeopt.models.base import Model
from edgeopt.models.errors import InstanceError
from edgeopt.models.registry import register_model, unregister_model
from edgeopt.solvers import solve
from edgeopt.solvers.registry import ModelSolvers, registered_solver_sets, solvers_for

BUILT_IN = {"edgesplit", "tinyfel", "two_stage"}


@pytest.fixture
def fake_distribution(tmp_path, monkeypatch):
    """Write a distribution's metadata (dist-info with entry_points.txt) onto sys.path, the way
    ``pip install`` of a plug-in package would, and re-read the entry points."""

    def install(name: str, entry_points: str) -> None:
        info = tmp_path / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(entry_points)
        monkeypatch.syspath_prepend(str(tmp_path))
        plugins.refresh()

    yield install
    sys.path[:] = [entry for entry in sys.path if entry != str(tmp_path)]
    plugins.refresh()


def test_built_in_models_come_through_the_entry_points():
    installed = plugins.plugins("edgeopt.models")
    assert BUILT_IN <= set(installed) and set(MODEL_IDS) == set(installed)
    assert {installed[name].provider for name in BUILT_IN} == {"edgeopt"}
    for model_id in MODEL_IDS:
        cls = model_class(model_id)
        assert issubclass(cls, Model) and cls.model_id == model_id
        solvers = solvers_for(model_id)
        assert isinstance(solvers, ModelSolvers) and solvers.model == model_id
    assert set(registered_solver_sets()) == set(MODEL_IDS)


def test_an_installed_plug_in_package_adds_a_model(fake_distribution):
    fake_distribution(
        "twin-plugin",
        "[edgeopt.models]\ntwin = edgeopt.models.edgesplit:EdgeSplitModel\n",
    )
    assert "twin" in MODEL_IDS
    assert plugins.plugins("edgeopt.models")["twin"].provider == "twin-plugin"
    assert model_class("twin") is model_class("edgesplit")


def test_two_packages_claiming_one_id_is_an_error_naming_both(fake_distribution):
    fake_distribution("rival", "[edgeopt.models]\nedgesplit = rival.model:Other\n")
    with pytest.raises(RuntimeError, match=r"edgeopt.models:edgesplit is declared twice.*rival"):
        list(MODEL_IDS)


def test_run_time_registration_cannot_shadow_an_installed_model():
    with pytest.raises(ValueError, match="already installed by edgeopt"):
        register_model("edgesplit", "my.module:Model")
    with pytest.raises(ValueError, match="module:attribute"):
        register_model("mine", "no_colon")
    with pytest.raises(ValueError, match="unknown entry-point group"):
        plugins.register("edgeopt.model", "mine", "a:b")


def test_a_model_registered_at_run_time_loads_and_solves():
    register_model("edgesplit_alias", "edgeopt.models.edgesplit:EdgeSplitModel")
    try:
        assert model_class("edgesplit_alias") is model_class("edgesplit")
        assert "edgesplit_alias" in MODEL_IDS
    finally:
        unregister_model("edgesplit_alias")
    assert "edgesplit_alias" not in MODEL_IDS


def test_a_misspelled_model_id_suggests_the_nearest():
    with pytest.raises(InstanceError, match="did you mean 'edgesplit'"):
        load_instance({"model": "edgeslpit", "version": 1})


def test_a_solver_set_for_another_model_is_refused(fake_distribution):
    fake_distribution(
        "mismatch", "[edgeopt.solvers]\nodd = edgeopt.solvers.edgesplit.registration:EDGESPLIT_SOLVERS\n"
    )
    with pytest.raises(TypeError, match="must be a ModelSolvers for model 'odd'"):
        solvers_for("odd")


def test_the_built_in_path_still_solves():
    result = solve(preset("edgesplit", "vgg16-cifar10-hetero8"), "exact")
    assert result.status.value == "optimal" and result.verified


def test_every_package_folder_is_installed():
    """setup.py finds the packages: every code folder with an __init__.py is in the wheel's list."""
    import importlib.util

    root = Path(__file__).resolve().parents[1]
    for folder in ("models", "solvers", "analysis"):
        for init in (root / folder).rglob("__init__.py"):
            name = ".".join(("edgeopt", *init.parent.relative_to(root).parts))
            assert importlib.util.find_spec(name) is not None, name
