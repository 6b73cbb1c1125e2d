"""The examples in docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "edgeopt.models",
    "edgeopt.models.edgesplit.model",
    "edgeopt.models.edgesplit.presets",
    "edgeopt.models.tinyfel.model",
    "edgeopt.models.tinyfel.presets",
    "edgeopt.models.two_stage.model",
    "edgeopt.models.two_stage.presets",
    "edgeopt.models.profiles",
    "edgeopt.solvers",
    "edgeopt.models.paths",
    "edgeopt.analysis.sweep",
    "edgeopt.files",
    "edgeopt.analysis.verification.simulation",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
