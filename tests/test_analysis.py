"""Comparison tables, cross-checks (spec §5.6), speed-up tables (§8.1) and figures (§8.2-3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from edgeopt.analysis.compare import (
    applicable_methods,
    compare_methods,
    cross_check,
    speedup_table,
)
from edgeopt.analysis.plots import cuts_by_class, plot_breakdown, plot_cuts, plot_speedups
from edgeopt.models import load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.solvers import solve

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def t1():
    return load_instance(DATA / "edgesplit_t1.json")


@pytest.fixture(scope="module")
def t3():
    return load_instance(DATA / "edgesplit_t3.json")


@pytest.fixture(scope="module")
def t1_frame(t1):
    return compare_methods(t1, progress=False)


@pytest.fixture(scope="module")
def t3_frame(t3):
    return compare_methods(t3, progress=False)


def test_t1_every_applicable_method_runs_and_the_cross_check_passes(t1, t1_frame):
    assert list(t1_frame["method"]) == applicable_methods(t1)
    assert {"bisection", "alternating", "baseline_fedavg"} <= set(t1_frame["method"])
    assert (t1_frame["status"] != "error").all(), t1_frame[["method", "message"]]
    checks = cross_check(t1_frame)
    assert checks["passed"].all(), checks[~checks["passed"]]
    assert {"verified", "exact agrees", "bound <= J*", "J* <= objective"} == set(checks["check"])
    exact = t1_frame[t1_frame["kind"] == "exact"]
    assert exact["objective"].to_numpy() == pytest.approx(3.2, rel=1e-6)


def test_t1_ratios_are_objective_ratios(t1_frame):
    rows = t1_frame.set_index("method")
    assert rows.loc["baseline_equal_resources", "objective"] == pytest.approx(179 / 45, rel=1e-9)
    for row in rows.to_dict("records"):
        if row["status"] in ("optimal", "feasible"):
            assert row["ratio_to_exact"] == pytest.approx(row["objective"] / 3.2, rel=1e-6)
            assert row["gap_to_exact"] == pytest.approx(row["ratio_to_exact"] - 1, abs=1e-12)


def test_t3_alternating_gap_and_cross_check(t3_frame):
    rows = t3_frame.set_index("method")
    assert "bisection" not in rows.index  # dedicated-only, so not applicable in shared mode
    assert rows.loc["alternating", "gap_to_exact"] == pytest.approx(1.217584 / 1.1 - 1, rel=1e-5)
    assert round(rows.loc["alternating", "gap_to_exact"], 3) == 0.107
    assert rows.loc["baseline_fedavg", "status"] == "infeasible"
    checks = cross_check(t3_frame)
    assert checks["passed"].all(), checks[~checks["passed"]]
    assert checks["reference"].iloc[0] == pytest.approx(1.1, rel=1e-6)


def test_cross_check_flags_a_point_below_the_optimum_and_a_failed_method(t1_frame, t3):
    doctored = t1_frame.copy()
    doctored.loc[doctored["method"] == "baseline_common_cut", "objective"] = 3.0
    failed = cross_check(doctored).query("not passed")
    expected = [("J* <= objective", "baseline_common_cut")]
    assert list(zip(failed["check"], failed["method"], strict=True)) == expected

    broken = compare_methods(t3, ["bisection"], progress=False)
    assert broken.loc[0, "status"] == "error" and "does not apply" in broken.loc[0, "message"]
    assert not cross_check(broken)["passed"].any()


def test_speedup_table_divides_by_the_exact_objective(t1, t3):
    table = speedup_table(t1, name="T1").set_index("method")
    assert table.loc["bisection", "speedup"] == pytest.approx(1.0)
    expected = {
        "baseline_equal_resources": 179 / 45,
        "baseline_common_cut": 3.324094,
        "baseline_sequential_sl": 71 / 15,
        "baseline_fedavg": 6.0,
    }
    for method, objective in expected.items():
        assert table.loc[method, "total_s"] == pytest.approx(objective, rel=1e-6)
        assert table.loc[method, "speedup"] == pytest.approx(objective / 3.2, rel=1e-6)
    assert (table["instance"] == "T1").all()

    shared = speedup_table(t3).set_index("method")
    assert shared.loc["baseline_fedavg", "speedup"] == "infeasible"
    assert shared.loc["alternating", "speedup"] == pytest.approx(1.217584 / 1.1, rel=1e-6)


def test_plot_breakdown_draws_one_panel_per_result_and_three_bars_per_device(t1):
    results = {"exact": solve(t1, "bisection"), "common cut": solve(t1, "baseline_common_cut")}
    fig = plot_breakdown(results)
    assert len(fig.axes) == 2
    assert [len(ax.patches) for ax in fig.axes] == [2 * 3, 2 * 3]
    first_device = [bar for bar in fig.axes[0].patches if bar.get_x() < 0]  # centred at x = 0
    assert sum(bar.get_height() for bar in first_device) == pytest.approx(3.2, rel=1e-9)


def test_plot_breakdown_leaves_an_infeasible_result_empty(t3):
    fig = plot_breakdown({"fedavg": solve(t3, "baseline_fedavg")})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 0


def test_cuts_by_class_on_the_preset():
    model = EdgeSplitModel.preset("vgg16-cifar10-hetero8")
    results = {"exact": solve(model, "bisection"), "common": solve(model, "baseline_common_cut")}
    table = cuts_by_class(results)
    assert table["exact"].to_dict() == {"pi": "2", "nano": "7", "tx2": "13", "laptop": "13"}
    assert set(table["common"]) == {"4"}
    fig = plot_cuts(results)
    assert len(fig.axes[0].lines) == 2


def test_plot_speedups_draws_a_bar_per_feasible_method(t1, t3):
    table = pd.concat([speedup_table(t1, name="T1"), speedup_table(t3, name="T3")])
    fig = plot_speedups(table)
    feasible = table[(table["kind"] != "exact") & (table["speedup"] != "infeasible")]
    assert len(fig.axes[0].patches) == len(feasible) == 9
    assert "infeasible" in [text.get_text() for text in fig.axes[0].texts]
