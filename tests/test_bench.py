"""The benchmarking harness (analysis.bench), its performance profile and ``edgeopt bench``."""

from __future__ import annotations

import argparse
import math

import matplotlib
import pandas as pd
import pytest

from edgeopt.analysis import bench as bench_module
from edgeopt.analysis.bench import (
    bench,
    family,
    named_instances,
    performance_profile,
    performance_ratios,
    summary,
)
from edgeopt.analysis.commands import COMMAND_MODULES
from edgeopt.analysis.commands import bench as bench_command
from edgeopt.analysis.plots.profiles import plot_performance_profile
from edgeopt.models.edgesplit import EdgeSplitModel

matplotlib.use("Agg")

PRESET = "vgg16-cifar10-hetero8"
METHODS = ["bisection", "exact", "relaxation_perspective", "alternating", "baseline_fedavg"]


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    families = [
        family("edgesplit", PRESET, sizes=[4, 6], seeds=[0]),
        family("edgesplit", PRESET, sizes=[4], seeds=[1], server_mode="shared"),
    ]
    return bench(families, METHODS, repeats=2, progress=False)


def test_every_instance_method_pair_has_one_row(runs):
    assert len(runs) == 3 * len(METHODS)
    assert not runs.duplicated(["instance", "method"]).any()
    assert set(runs["method"]) == set(METHODS)
    assert set(runs["instance"]) == {f"{PRESET}-n4-s0", f"{PRESET}-n6-s0", f"{PRESET}-n4-s1"}
    assert sorted(runs["devices"].unique()) == [4, 6]


def test_methods_that_do_not_apply_are_skipped_with_a_note(runs):
    shared = runs[runs["instance"] == f"{PRESET}-n4-s1"].set_index("method")
    assert shared.loc["bisection", "status"] == "skipped"
    assert "dedicated" in shared.loc["bisection", "message"]
    assert shared.loc["bisection", "repeats"] == 0 and not shared.loc["bisection", "solved"]
    assert any("bisection skipped" in note for note in runs.attrs["notes"])
    ran = runs[runs["status"] != "skipped"]
    assert (ran["repeats"] == 2).all()
    assert (ran["min_time_s"] <= ran["time_s"]).all() and (ran["min_time_s"] > 0).all()


def test_gaps_exact_zero_heuristic_nonnegative_bounds_below(runs):
    ran = runs[runs["status"] != "skipped"]
    assert ran["verified"].astype(bool).all()
    exact = ran[ran["kind"] == "exact"]
    assert (exact["status"] == "optimal").all()
    assert exact["gap_to_best_bound"].abs().max() <= 1e-6
    assert exact["gap_to_best_objective"].abs().max() <= 1e-9
    heuristic = ran[ran["kind"].isin(["heuristic", "relaxation"])]
    assert (heuristic["gap_to_best_objective"] >= -1e-12).all()
    assert (heuristic["gap_to_best_bound"] >= -1e-6).all()
    assert (ran["bound"].dropna() <= ran["best_objective"].max() * (1 + 1e-9)).all()
    relax = ran[ran["method"] == "relaxation_perspective"]
    assert (relax["solver"] == "clarabel").all() and relax["solver_version"].str.len().gt(0).all()


def test_summary_counts_and_ratios(runs):
    table = summary(runs)
    assert list(table.index) == METHODS
    assert table.loc["bisection", "solved"] == 2 and table.loc["bisection", "instances"] == 3
    assert table.loc["exact", "solved"] == 3
    assert (table["time_ratio_geomean"] >= 1.0).all()
    assert table.loc["exact", "max_gap_to_best_bound"] <= 1e-6


def test_repeats_are_interleaved(monkeypatch):
    calls = []
    original = bench_module.solve

    def recording(model, method, solver=None, **options):
        calls.append(method)
        return original(model, method, solver, **options)

    monkeypatch.setattr(bench_module, "solve", recording)
    model = EdgeSplitModel.preset(PRESET, devices=3)
    bench({"one": model}, ["alternating", "baseline_equal_resources"], repeats=3, progress=False)
    assert calls == ["alternating", "baseline_equal_resources", "baseline_equal_resources",
                     "alternating", "alternating", "baseline_equal_resources"]


def test_bad_input_raises():
    model = EdgeSplitModel.preset(PRESET, devices=2)
    with pytest.raises(ValueError, match="unknown method"):
        bench({"m": model}, ["no_such_method"], progress=False)
    with pytest.raises(ValueError, match="cannot use solver"):
        bench({"m": model}, ["bisection:scs"], progress=False)
    with pytest.raises(ValueError, match="repeats"):
        bench({"m": model}, ["bisection"], repeats=0, progress=False)
    with pytest.raises(ValueError, match="twice"):
        named_instances([("m", model), ("m", model)])


def profile_frame() -> pd.DataFrame:
    """Four instances, three methods; None = not solved. Ratios (A, B, C):
    p1 (1, 2, inf), p2 (2, 1, 4), p3 (1, inf, 1), p4 nobody solved."""
    times = {
        "p1": {"A": 1.0, "B": 2.0, "C": None},
        "p2": {"A": 4.0, "B": 2.0, "C": 8.0},
        "p3": {"A": 3.0, "B": None, "C": 3.0},
        "p4": {"A": None, "B": None, "C": None},
    }
    rows = [
        {"instance": p, "method": m, "time_s": 9.9 if t is None else t, "solved": t is not None,
         "objective": 1.0}
        for p, by_method in times.items() for m, t in by_method.items()
    ]
    return pd.DataFrame(rows)


def test_performance_profile_known_answer():
    frame = profile_frame()
    ratios = performance_ratios(frame)
    assert ratios.loc["p2"].tolist() == [2.0, 1.0, 4.0]
    assert math.isinf(ratios.loc["p1", "C"]) and ratios.loc["p4"].map(math.isinf).all()
    profile = performance_profile(frame, "time")
    assert profile.index.tolist() == [1.0, 2.0, 4.0]
    assert profile["A"].tolist() == [0.5, 0.75, 0.75]
    assert profile["B"].tolist() == [0.25, 0.5, 0.5]
    assert profile["C"].tolist() == [0.25, 0.25, 0.5]


def test_profile_plot_draws_the_profile_on_a_log2_axis():
    frame = profile_frame()
    fig = plot_performance_profile(frame)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    profile = performance_profile(frame)
    for line, method in zip(ax.lines, profile.columns):
        assert line.get_label() == method
        assert list(line.get_ydata()[:-1]) == profile[method].tolist()
        assert list(line.get_xdata()[:-1]) == profile.index.tolist()


def cli(argv: list[str]) -> int:
    """Parse and run ``edgeopt bench ARGV`` the way ``edgeopt.analysis.cli.main`` does."""
    parser = argparse.ArgumentParser(prog="edgeopt")
    bench_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", *argv])
    return args.handler(args)


def test_command_writes_csv_and_png(tmp_path, capsys):
    out, plot = tmp_path / "runs.csv", tmp_path / "profile.png"
    code = cli(["--model", "edgesplit", "--preset", PRESET, "--sizes", "3", "5", "--seeds", "2",
                "--methods", "exact", "alternating", "--repeats", "1", "--out", str(out),
                "--plot", str(plot), "--quiet"])
    assert code == 0
    frame = pd.read_csv(out)
    assert len(frame) == 2 * 2 * 2
    assert set(frame["method"]) == {"exact", "alternating"}
    assert frame["solved"].all()
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "alternating" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "unknown edgesplit preset"),
    (["--methods", "nope"], "unknown method"),
    (["--sizes", "0"], "--sizes"),
    (["--time-limit", "0"], "--time-limit"),
    (["--out", "table.txt"], ".csv or .parquet"),
])
def test_command_bad_input_exits_2_with_a_message(tmp_path, capsys, argv, message):
    defaults = {"--model": "edgesplit", "--preset": PRESET, "--sizes": "2",
                "--out": str(tmp_path / "t.csv")}
    options = dict(zip(argv[::2], argv[1::2]))
    merged = [item for key, value in {**defaults, **options}.items() for item in (key, value)]
    assert cli([*merged, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.skipif("edgeopt.analysis.commands.bench" not in COMMAND_MODULES,
                    reason="edgeopt.analysis.commands.bench is not in COMMAND_MODULES yet")
def test_edgeopt_main_has_the_bench_command(tmp_path):
    from edgeopt.analysis.cli import main

    out = tmp_path / "runs.parquet"
    assert main(["bench", "--model", "edgesplit", "--preset", PRESET, "--sizes", "3",
                 "--methods", "alternating", "--repeats", "1", "--out", str(out), "--quiet"]) == 0
    assert len(pd.read_parquet(out)) == 1
