"""``edgeopt bench --scaling``: the scaling table (devices against seconds per model and
method) and its log-log plot."""

from __future__ import annotations

import argparse
import math

import pandas as pd
import pytest

from edgeopt.analysis.bench import SCALING_FAMILIES, ScalingFamily, scaling, scaling_table
from edgeopt.analysis.commands import bench as bench_command

SMALL = (
    ScalingFamily("edgesplit", "vgg16-cifar10-hetero8", (3, 6), growth={"bisection": "stated"}),
    ScalingFamily("tinyfel", "resnet18-cifar10-cell", (6, 12), growth={"bisection_mckp": "stated"}),
)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgeopt")
    bench_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", *argv])
    return args.handler(args)


def test_scaling_table_per_model_method_and_size():
    frame = scaling(SMALL, ["exact", "heuristic"], seeds=[0, 1], progress=False)
    table = scaling_table(frame, SMALL)
    assert len(table) == 2 * 2 * 2  # models x methods x sizes
    exact = table[table["method"] == "exact"]
    assert set(exact["method_id"]) == {"bisection", "bisection_mckp"}
    assert (exact["time_vs_exact"] == 1.0).all()
    assert (exact["stated_growth"] == "stated").all()
    assert (table[table["method"] == "heuristic"]["stated_growth"] == "").all()
    assert table["solved_share"].eq(1.0).all()
    assert table["loglog_slope"].map(math.isfinite).all()
    # the exact methods are optimal: nothing beats them
    assert (exact["max_gap_to_best_objective"].fillna(0.0) <= 1e-9).all()
    # the median time is the median over the seeds of the bench rows
    rows = frame[(frame["model"] == "tinyfel") & (frame["method"] == "exact") & (frame["devices"] == 12)]
    cell = exact[(exact["model"] == "tinyfel") & (exact["devices"] == 12)]
    assert cell["median_time_s"].iloc[0] == pytest.approx(rows["time_s"].median())


def test_every_default_family_states_its_exact_growth():
    assert {f.model_id for f in SCALING_FAMILIES} >= {"edgesplit", "tinyfel", "two_stage"}
    assert all(f.growth and all(f.growth.values()) for f in SCALING_FAMILIES)


def test_command_writes_table_and_loglog_plot(tmp_path, capsys):
    out, plot = tmp_path / "scaling.csv", tmp_path / "scaling.png"
    code = cli(["--scaling", "--model", "tinyfel", "--sizes", "6", "12", "--methods", "exact",
                "relaxation", "--out", str(out), "--plot", str(plot), "--quiet"])
    assert code == 0
    table = pd.read_csv(out)
    assert set(table["devices"]) == {6, 12}
    assert set(table["method_id"]) == {"bisection_mckp", "relaxation_lagrangian"}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "bisection_mckp" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--scaling", "--model", "nope"], "no scaling family"),
    (["--model", "tinyfel"], "--preset is required"),
])
def test_command_scaling_bad_input_exits_2(tmp_path, capsys, argv, message):
    assert cli([*argv, "--out", str(tmp_path / "t.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
