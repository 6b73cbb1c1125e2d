"""Notebooks that run from any folder, and figures that draw where they are told (issue 14,
item 7): the known-answer instances ship with the package, no notebook reads a path relative
to the repository, and every figure function takes ``ax=`` (``axes=``), titles its axes and
labels them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from edgeopt.analysis.compare import speedup_table
from edgeopt.analysis.plots import (
    plot_breakdown,
    plot_curve,
    plot_cuts,
    plot_elasticities,
    plot_front,
    plot_heatmap,
    plot_one_at_a_time,
    plot_performance_profile,
    plot_speedups,
    plot_tornado,
)
from edgeopt.analysis.sensitivity import (
    local_sensitivity,
    one_at_a_time,
    tornado_data,
    tradeoff_front,
)
from edgeopt.models import known_answers
from edgeopt.solvers import solve

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_no_notebook_reads_a_path_relative_to_the_repository(path):
    sources = [
        "".join(cell["source"]) for cell in json.loads(path.read_text())["cells"]
        if cell["cell_type"] == "code"
    ]
    for source in sources:
        assert not re.search(r"tests/data|\.\./|Path\(\"(data|tests|notebooks)", source), source[:300]


def test_known_answers_are_the_test_files_and_load_by_name():
    shipped = set(known_answers.names())
    test_files = {p.stem for p in (ROOT / "tests" / "data").glob("*.json")}
    assert shipped == test_files and len(shipped) >= 11
    for name in shipped:
        assert known_answers.document(name) == json.loads((ROOT / "tests" / "data" / f"{name}.json").read_text())
    assert solve(known_answers.load("edgesplit_t1"), "exact").objective == pytest.approx(3.2)
    with pytest.raises(KeyError, match="did you mean 'tinyfel_a'"):
        known_answers.load("tinyfel_aa")


@pytest.fixture(scope="module")
def t1():
    return known_answers.load("edgesplit_t1")


def _panel():
    figure = Figure()
    return figure, figure.subplots(1, 2)


def assert_drawn_on(fig, ax, figure):
    assert fig is figure
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert ax.lines or ax.patches or ax.images or ax.collections


def test_result_figures_draw_on_the_given_axes(t1):
    results = {"exact": solve(t1, "exact"), "equal resources": solve(t1, "baseline_equal_resources")}
    figure, axes = _panel()
    assert plot_breakdown(results, axes=axes) is figure
    assert all(ax.patches and ax.get_title() for ax in axes) and not figure.get_suptitle()
    assert axes[0].get_ylabel() == "time per round [s]"
    assert plot_breakdown(results).get_suptitle() == "time per round by device and component"
    with pytest.raises(ValueError, match="one per result"):
        plot_breakdown(results, axes=axes[:1])
    figure, axes = _panel()
    assert_drawn_on(plot_cuts(results, ax=axes[1]), axes[1], figure)
    assert not axes[0].lines  # the other panel is left alone
    figure, axes = _panel()
    assert_drawn_on(plot_speedups(speedup_table(t1, name="T1"), ax=axes[0]), axes[0], figure)


def test_sensitivity_figures_draw_on_the_given_axes(t1):
    params = ["bandwidth_hz", "devices[0].flops_per_s"]
    figure, axes = _panel()
    assert_drawn_on(plot_tornado(tornado_data(t1, params, fraction=0.1), ax=axes[0]), axes[0], figure)
    assert_drawn_on(plot_elasticities(local_sensitivity(t1, params, duals=False), ax=axes[1]),
                    axes[1], figure)
    values = [1e7, 2e7, 4e7]
    curve = one_at_a_time(t1, "bandwidth_hz", values)
    figure, axes = _panel()
    assert_drawn_on(plot_one_at_a_time(curve, ax=axes[0]), axes[0], figure)
    assert_drawn_on(plot_front(tradeoff_front(t1, "bandwidth_hz", values), curve, ax=axes[1]),
                    axes[1], figure)


def test_sweep_and_benchmark_figures_draw_on_the_given_axes():
    grid = pd.DataFrame({"bandwidth_hz": [1e7, 2e7, 1e7, 2e7], "rounds": [1, 1, 2, 2],
                         "objective": [4.0, 3.0, 8.0, 6.0], "bound": [4.0, 3.0, 8.0, 6.0]})
    figure, axes = _panel()
    assert_drawn_on(plot_heatmap(grid, "bandwidth_hz", "rounds", ax=axes[0]), axes[0], figure)
    assert_drawn_on(plot_curve(grid, "bandwidth_hz", by="rounds", ax=axes[1]), axes[1], figure)
    bench = pd.DataFrame({"instance": ["a", "a", "b", "b"], "method": ["x", "y", "x", "y"],
                          "time_s": [1.0, 2.0, 3.0, 1.5], "solved": [True, True, True, True]})
    figure, axes = _panel()
    assert_drawn_on(plot_performance_profile(bench, ax=axes[0]), axes[0], figure)


@pytest.mark.parametrize("name", ["edgeopt.models.known_answers", "edgeopt.models.testbed.tables"])
def test_docstring_examples_run(name):
    import doctest
    import importlib

    failures, attempted = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
