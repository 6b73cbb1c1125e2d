"""Parameter sweeps: points, values reaching the instance, Dask = serial, resume, command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import known_answer_path

from edgeopt.analysis import cli
from edgeopt.analysis.commands.sweep import parse_param
from edgeopt.analysis.plots.sweeps import plot_curve, plot_heatmap, sweep_grid
from edgeopt.analysis.sweep import (
    RESULT_COLUMNS,
    SweepError,
    point_id,
    rebuild,
    sample_points,
    sweep,
)

T1 = known_answer_path("t1")
BANDWIDTHS = [5e6, 1e7, 2e7, 4e7]
COMMAND = "edgeopt.analysis.commands.sweep"
CLI = (  # the command line with the sweep command listed (until COMMAND_MODULES lists it)
    "import sys; from edgeopt.analysis import cli; "
    f"cli.COMMAND_MODULES = tuple(dict.fromkeys((*cli.COMMAND_MODULES, {COMMAND!r}))); "
    "sys.exit(cli.main(sys.argv[1:]))"
)


@pytest.fixture
def edgeopt(monkeypatch):
    """``main`` of the command line, with the sweep command listed."""
    listed = tuple(dict.fromkeys((*cli.COMMAND_MODULES, COMMAND)))
    monkeypatch.setattr(cli, "COMMAND_MODULES", listed)
    return cli.main


def journal_ids(out) -> list[str]:
    """Point ids of the complete journal lines (a kill may tear the last one)."""
    ids = []
    for line in open(f"{out}.jsonl"):
        try:
            ids.append(json.loads(line)["point_id"])
        except json.JSONDecodeError:
            continue
    return ids


def test_grid_is_the_full_product_with_a_column_per_key():
    frame = sweep(T1, grid={"bandwidth_hz": BANDWIDTHS[:3], "rounds": [1, 2]}, serial=True,
                  progress=False)
    assert list(frame.columns) == ["bandwidth_hz", "rounds", *RESULT_COLUMNS]
    assert list(zip(frame["bandwidth_hz"], frame["rounds"])) == [
        (b, r) for b in BANDWIDTHS[:3] for r in (1, 2)
    ]
    assert frame["point_id"].tolist() == [
        point_id({"bandwidth_hz": b, "rounds": r}) for b in BANDWIDTHS[:3] for r in (1, 2)
    ]
    assert frame["point_id"].is_unique
    assert (frame["status"] == "optimal").all() and frame["verified"].all()
    one, two = frame[frame.rounds == 1], frame[frame.rounds == 2]
    np.testing.assert_allclose(two["objective"].to_numpy(), 2 * one["objective"].to_numpy())
    assert json.loads(frame["solution"][0])["cuts"]


def test_objective_falls_as_bandwidth_grows():
    frame = sweep(T1, grid={"bandwidth_hz": BANDWIDTHS}, serial=True, progress=False)
    assert (np.diff(frame["objective"].to_numpy()) < 0).all()
    point = sweep(T1, grid={"bandwidth_hz": [1.8e7]}, serial=True, progress=False)
    assert point["objective"][0] == pytest.approx(3.2, rel=1e-6)  # T1's known answer


@pytest.mark.parametrize("sampling", ["lhs", "random"])
def test_samples_lie_within_ranges_and_repeat_with_a_seed(sampling):
    ranges = {"bandwidth_hz": (1e6, 1e8, "log"), "rounds": (1, 10),
              "server_flops_per_s": (1e10, 5e10)}
    points = sample_points(ranges, 20, sampling, seed=3)
    assert points == sample_points(ranges, 20, sampling, seed=3)
    assert points != sample_points(ranges, 20, sampling, seed=4)
    for key, (lo, hi, *_) in ranges.items():
        assert all(lo <= p[key] <= hi for p in points)
    assert all(isinstance(p["rounds"], int) for p in points)
    if sampling == "lhs":  # one draw in each of 20 equal strata (log strata for bandwidth)
        strata = np.floor(20 * np.log(np.array([p["bandwidth_hz"] for p in points]) / 1e6)
                          / np.log(100)).astype(int)
        assert sorted(strata) == list(range(20))
    frame = sweep(T1, samples=5, ranges={"bandwidth_hz": (1e7, 4e7)}, sampling=sampling, seed=1,
                  serial=True, progress=False)
    assert frame["bandwidth_hz"].between(1e7, 4e7).all() and len(frame) == 5
    repeats = sweep(T1, samples=10, ranges={"rounds": (1, 2)}, sampling=sampling, seed=0,
                    serial=True, progress=False)
    assert sorted(repeats["rounds"]) == [1, 2]  # integer draws that repeat are solved once


def test_a_wildcard_key_sets_every_device():
    frame = sweep(T1, grid={"devices[*].memory_bytes": [1e9, 5e6]}, serial=True, progress=False)
    assert list(frame.columns[:1]) == ["devices[*].memory_bytes"]
    assert frame["objective"].tolist() == pytest.approx([3.2, 71 / 30 + 33**0.5 / 6], rel=1e-6)
    assert json.loads(frame["solution"][1])["cuts"] == [1, 1]  # 5e6 bytes fit cut 1 only (spec §6)


def test_bad_keys_and_values_fail_before_any_solve(tmp_path):
    with pytest.raises(SweepError, match="bandwith_hz: unknown field; did you mean 'bandwidth_hz'"):
        sweep(T1, grid={"bandwith_hz": [1e7]}, serial=True)
    with pytest.raises(SweepError, match=r"devices\[\*\]\.flops_per_sec: .*'flops_per_s'"):
        sweep(T1, grid={"devices[*].flops_per_sec": [1e9]}, serial=True)
    with pytest.raises(SweepError, match="rounds=1.5"):
        sweep(T1, grid={"bandwidth_hz": [1e7], "rounds": [1, 1.5]}, serial=True)
    with pytest.raises(SweepError, match="bandwidth_hz: a log range needs lo > 0"):
        sweep(T1, samples=3, ranges={"bandwidth_hz": (0, 1e7, "log")}, seed=0, serial=True)
    with pytest.raises(SweepError, match="devices\\[7\\]"):
        sweep(T1, grid={"devices[7].flops_per_s": [1e9]}, serial=True, out=tmp_path / "x.parquet")
    assert not list(tmp_path.iterdir())


def test_a_local_dask_cluster_gives_the_serial_table(tmp_path):
    grid = {"bandwidth_hz": BANDWIDTHS, "rounds": [1, 2, 3]}
    out = tmp_path / "dask.parquet"
    parallel = sweep(T1, grid=grid, workers=2, chunk_size=2, out=out, progress=False)
    serial = sweep(T1, grid=grid, serial=True, progress=False)
    same = [c for c in serial.columns if c != "wall_time_s"]
    pd.testing.assert_frame_equal(parallel[same], serial[same])
    pd.testing.assert_frame_equal(pd.read_parquet(out)[same], serial[same], check_dtype=False)
    assert sorted(journal_ids(out)) == sorted(serial["point_id"])


class Interrupt(BaseException):
    """Stands for a kill part way through a sweep (not an error of one point's solve)."""


SOLVED: list[dict] = []


def counting(document, method, solver, time_limit):
    """A resolver factory that records every solve and fails on the solve after ``limit``."""
    resolve = rebuild(document, method, solver, time_limit)

    def run(values):
        if len(SOLVED) == counting.limit:
            raise Interrupt
        SOLVED.append(values)
        return resolve(values)

    return run


def test_an_interrupted_sweep_resumes_without_loss_or_repeats(tmp_path, monkeypatch):
    out = tmp_path / "sweep.parquet"
    grid = {"bandwidth_hz": BANDWIDTHS, "rounds": [1, 2, 3]}
    monkeypatch.setattr(counting, "limit", 5, raising=False)
    SOLVED.clear()
    with pytest.raises(Interrupt):
        sweep(T1, grid=grid, serial=True, out=out, resolver=counting, progress=False)
    assert len(journal_ids(out)) == 5 and len(pd.read_parquet(out)) == 5
    monkeypatch.setattr(counting, "limit", -1)
    frame = sweep(T1, grid=grid, serial=True, out=out, resume=True, resolver=counting,
                  progress=False)
    assert len(SOLVED) == 12 and len({json.dumps(v, sort_keys=True) for v in SOLVED}) == 12
    assert len(frame) == 12 and frame["point_id"].is_unique
    assert sorted(journal_ids(out)) == sorted(frame["point_id"])
    pd.testing.assert_frame_equal(pd.read_parquet(out), frame, check_dtype=False)
    again = sweep(T1, grid=grid, serial=True, out=out, resume=True, resolver=counting,
                  progress=False)
    assert len(SOLVED) == 12 and len(again) == 12
    with pytest.raises(SweepError, match="another instance, method"):
        sweep(T1, grid=grid, method="heuristic", serial=True, out=out, resume=True)


def test_the_command_killed_part_way_resumes_without_loss_or_repeats(tmp_path):
    out = tmp_path / "killed.parquet"
    command = [sys.executable, "-c", CLI, "sweep", str(T1),
               "--param", "bandwidth_hz=log:5e6:5e7:20", "--param", "rounds=1,2",
               "--method", "misocp_perspective", "--out", str(out), "--serial"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = tmp_path / "killed.parquet.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 3:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = len(journal_ids(out))
    assert 3 <= before < 40, "the sweep should have been killed part way"
    done = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    ids = journal_ids(out)
    assert len(ids) == 40 and len(set(ids)) == 40  # every point solved exactly once
    table = pd.read_parquet(out)
    assert len(table) == 40 and table["point_id"].is_unique and (table["status"] == "optimal").all()


def test_the_command_writes_one_row_per_grid_point(tmp_path, capsys, edgeopt):
    out = tmp_path / "grid.parquet"
    code = edgeopt(["sweep", str(T1), "--param", "bandwidth_hz=lin:1e7:4e7:4", "--param",
                 "rounds=1,3", "--method", "exact", "--out", str(out), "--serial"])
    assert code == 0 and "8 points" in capsys.readouterr().out
    table = pd.read_parquet(out)
    assert list(table.columns[:2]) == ["bandwidth_hz", "rounds"]
    assert table["rounds"].tolist() == [1, 3] * 4 and table["rounds"].dtype.kind == "i"
    assert {"status", "objective", "bound", "wall_time_s"} <= set(table.columns)
    assert (table["status"] == "optimal").all()


@pytest.mark.parametrize(
    ("param", "named"),
    [("bandwith_hz=1e7", "bandwith_hz"), ("rounds=0,1", "rounds=0"),
     ("bandwidth_hz=log:0:1e7:3", "bandwidth_hz=log"), ("rounds", "'rounds'")],
)
def test_bad_parameters_exit_2_naming_the_key(tmp_path, capsys, edgeopt, param, named):
    out = tmp_path / "bad.parquet"
    assert edgeopt(["sweep", str(T1), "--param", param, "--out", str(out), "--serial"]) == 2
    error = capsys.readouterr().err
    assert named in error and "Traceback" not in error
    assert not out.exists()


def test_param_values_parse_to_ints_floats_and_spaced_ranges():
    assert parse_param("rounds=1,2,10") == ("rounds", [1, 2, 10])
    assert parse_param("bandwidth_hz=1e7,2.5e7") == ("bandwidth_hz", [1e7, 2.5e7])
    assert parse_param("rounds=lin:1:5:3") == ("rounds", [1, 3, 5])
    assert parse_param("batch_size=log:1:1000:4") == ("batch_size", [1, 10, 100, 1000])
    key, values = parse_param("devices[1].flops_per_s=log:1e9:1e10:3")
    assert key == "devices[1].flops_per_s"
    np.testing.assert_allclose(values, [1e9, 10**9.5, 1e10])
    assert parse_param("server_mode=shared,dedicated") == ("server_mode", ["shared", "dedicated"])


def test_plots_draw_the_sweep_table():
    frame = sweep(T1, grid={"bandwidth_hz": BANDWIDTHS, "rounds": [1, 2]}, serial=True,
                  progress=False)
    table = sweep_grid(frame, "bandwidth_hz", "rounds")
    assert table.shape == (2, 4) and list(table.columns) == BANDWIDTHS
    heat = plot_heatmap(frame, "bandwidth_hz", "rounds")
    np.testing.assert_allclose(heat.axes[0].images[0].get_array(), table.to_numpy())
    curve = plot_curve(frame, "bandwidth_hz", by="rounds", log_x=True)
    lines = curve.axes[0].get_lines()
    assert len(lines) == 4  # objective and bound for each number of rounds
    np.testing.assert_allclose(lines[2].get_ydata(), table.loc[2].to_numpy())
    with pytest.raises(ValueError, match="several rows"):
        plot_curve(frame, "bandwidth_hz")
