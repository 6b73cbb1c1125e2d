"""Sensitivity analysis: local derivatives against analytic ones, kinks, Sobol indices, plots, CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import known_answer_path

from edgeopt.analysis.commands import COMMAND_MODULES
from edgeopt.analysis.commands import sensitivity as command
from edgeopt.analysis.plots.sensitivity import (
    plot_elasticities,
    plot_front,
    plot_one_at_a_time,
    plot_tornado,
)
from edgeopt.analysis.sensitivity import (
    local_sensitivity,
    one_at_a_time,
    pareto_mask,
    tornado_data,
    tradeoff_front,
)
from edgeopt.analysis.sobol import sobol_function, sobol_indices
from edgeopt.models import load_instance
from edgeopt.solvers import solve

T1_DUALS = {"bandwidth_budget": "bandwidth_hz"}
"""Relaxation dual name -> field path, for as long as the relaxation reports duals by name only."""


@pytest.fixture(scope="module")
def t1():
    return load_instance(known_answer_path("t1"))


def t1_terms(document: dict, cuts: list[int]) -> dict[str, np.ndarray]:
    """Spec §3.2 by hand for T1 (K = 1 iteration, dedicated server, no sync): per device
    A [s] device compute, S [FLOP] server work, D' [Hz s] bandwidth-seconds for ``cuts``."""
    layers, devices = document["layers"], document["devices"]
    work = [3 * layer["fwd_flops"] for layer in layers]  # forward + backward (2x forward)
    device_s, server_flop, need = [], [], []
    for device, cut in zip(devices, cuts):
        device_s.append(sum(work[:cut]) / device["flops_per_s"])
        server_flop.append(sum(work[cut:]))
        need.append(8 * 2 * layers[cut - 1]["out_bytes"] / device["spectral_efficiency"])
    return {"A": np.array(device_s), "S": np.array(server_flop), "D": np.array(need)}


def t1_slopes(document: dict, cuts: list[int], makespan: float) -> dict[str, float]:
    """Analytic dJ/dp at an optimum with fixed ``cuts`` and every device ending at ``makespan`` T.

    T solves G = sum_i D'_i / (T - A'_i) - B = 0 with A' = A + S/F. Implicit differentiation:
    dT/dB = -1/W, dT/dA'_i = w_i/W, dT/dD'_i = (1/(T - A'_i))/W, with w_i = D'_i/(T - A'_i)^2
    and W = sum w_i; then A'_0 depends on f_0 (dA/df = -A/f), D'_1 on eta_1 (dD'/deta = -D'/eta)
    and every A' on F (d(S/F)/dF = -S/F^2). J = R T, so dJ/dR = T.
    """
    terms, server, rounds = t1_terms(document, cuts), document["server_flops_per_s"], document["rounds"]
    slack = makespan - (terms["A"] + terms["S"] / server)
    weight = terms["D"] / slack**2
    total = weight.sum()
    eta = document["devices"][1]["spectral_efficiency"]
    return {
        "bandwidth_hz": -rounds / total,
        "rounds": makespan,
        "devices[0].flops_per_s": rounds * weight[0] / total * (-terms["A"][0] / document["devices"][0]["flops_per_s"]),
        "devices[1].spectral_efficiency": rounds * (-terms["D"][1] / eta) / slack[1] / total,
        "server_flops_per_s": rounds * (weight * -terms["S"] / server**2).sum() / total,
    }


def test_t1_finite_differences_and_duals_match_the_analytic_derivatives(t1):
    document = t1.to_dict()
    terms = t1_terms(document, [2, 1])
    assert (terms["D"] / (3.2 - terms["A"] - terms["S"] / 3e10)).sum() == pytest.approx(1.8e7, rel=1e-12)
    expected = t1_slopes(document, [2, 1], 3.2)
    assert expected["bandwidth_hz"] == pytest.approx(-1 / (2.2e6 / 1.1**2 + 1.6e7), rel=1e-12)
    frame = local_sensitivity(t1, list(expected), dual_fields=T1_DUALS).set_index("param")
    for path, slope in expected.items():
        assert frame.loc[path, "derivative"] == pytest.approx(slope, rel=1e-6), path
        assert frame.loc[path, "kink"] in (False, None) and not frame.loc[path, "decision_change"]
    # rounds = 1 cannot go down by the integer step 1: a forward difference, exact as J = R T.
    assert frame.loc["rounds", "scheme"] == "forward" and frame.loc["rounds", "step"] == 1
    bandwidth = frame.loc["bandwidth_hz"]
    assert bandwidth["dual_derivative"] == pytest.approx(expected["bandwidth_hz"], rel=1e-5)
    assert bandwidth["agree"] and "fix-and-relax" in bandwidth["dual_note"]
    assert math.isnan(frame.loc["rounds", "dual_derivative"])


def test_t1_elasticities(t1):
    paths = ["bandwidth_hz", "rounds", "devices[0].spectral_efficiency",
             "devices[1].spectral_efficiency", "devices[0].memory_bytes"]
    frame = local_sensitivity(t1, paths, duals=False).set_index("param")["elasticity"]
    assert frame["rounds"] == pytest.approx(1.0, rel=1e-12)
    assert frame["bandwidth_hz"] == pytest.approx(-1.8e7 / (3.2 * 1.781818181818e7), rel=1e-6)
    # Rates are eta_i b_i: scaling every eta is scaling B, so the elasticities add up.
    spectral = frame["devices[0].spectral_efficiency"] + frame["devices[1].spectral_efficiency"]
    assert spectral == pytest.approx(frame["bandwidth_hz"], rel=1e-6)
    assert frame["devices[0].memory_bytes"] == 0.0


def test_a_wildcard_parameter_moves_every_device_together(t1):
    same = t1.with_changes({"devices[*].spectral_efficiency": 1.5})
    frame = local_sensitivity(same, ["devices[*].spectral_efficiency", "bandwidth_hz"],
                              duals=False).set_index("param")["elasticity"]
    # Rates are eta b: one common eta scales like B.
    assert frame["devices[*].spectral_efficiency"] == pytest.approx(frame["bandwidth_hz"], rel=1e-6)
    with pytest.raises(ValueError, match=r"devices\[\*\]\.spectral_efficiency = \[2.0, 1.0\]: the entries differ"):
        local_sensitivity(t1, ["devices[*].spectral_efficiency"], duals=False)


def _cut_switch(model, low: float, high: float) -> float:
    """A bandwidth [Hz] within 1e-9 (relative) of where the optimal cuts change in (low, high)."""
    cuts_low = solve(model.with_changes({"bandwidth_hz": low})).solution["cuts"]
    while high - low > 1e-9 * high:
        middle = 0.5 * (low + high)
        if solve(model.with_changes({"bandwidth_hz": middle})).solution["cuts"] == cuts_low:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def test_kink_at_a_cut_switch_is_reported_with_both_one_sided_slopes(t1):
    switch = _cut_switch(t1, 1.8e7, 1e9)
    at_switch = t1.with_changes({"bandwidth_hz": switch})
    row = local_sensitivity(at_switch, ["bandwidth_hz"], dual_fields=T1_DUALS).iloc[0]
    assert row["kink"] and row["decision_change"] and row["agree"] is None
    makespan = row["objective"]
    document = at_switch.to_dict()
    below, above = (t1_slopes(document, cuts, makespan)["bandwidth_hz"] for cuts in ([2, 1], [1, 1]))
    assert row["backward"] == pytest.approx(below, rel=1e-3)
    assert row["forward"] == pytest.approx(above, rel=1e-3)
    assert abs(above - below) > 0.03 * abs(below)  # a 5 % jump in the slope
    smooth = local_sensitivity(t1, ["bandwidth_hz"], duals=False).iloc[0]
    assert not smooth["kink"] and not smooth["decision_change"]


def test_fix_and_relax_duals_hold_where_the_relaxation_has_a_gap():
    """T3 (shared server): the plain relaxation is 1.5 % below J*, so its duals are not
    derivatives of J; with the optimum's cuts fixed they are, and match finite differences."""
    t3 = load_instance(known_answer_path("t3"))
    frame = local_sensitivity(t3, ["bandwidth_hz", "server_flops_per_s"]).set_index("param")
    assert frame["dual_note"].str.startswith("fix-and-relax").all()
    for path in ("bandwidth_hz", "server_flops_per_s"):
        assert frame.loc[path, "dual_derivative"] == pytest.approx(frame.loc[path, "derivative"], rel=1e-4)
        assert frame.loc[path, "agree"] and not frame.loc[path, "kink"]
    plain = solve(t3, "relaxation_perspective").extras["duals_by_field"]["bandwidth_hz"]
    assert abs(plain / frame.loc["bandwidth_hz", "derivative"] - 1) > 1e-3


def test_fix_and_relax_hook_and_duals_by_field(t1, monkeypatch):
    """A dual method with a ``fix`` option gets the optimum's integer decisions, and duals it
    reports by field path are used as they are (no ``dual_fields`` needed)."""
    import dataclasses

    from edgeopt.analysis import sensitivity
    from edgeopt.solvers import Result, Status
    from edgeopt.solvers.api import select

    calls = []

    def fixing_select(model, method="exact", solver=None):
        spec, backend = select(model, method, solver)
        return dataclasses.replace(spec, options={"fix": "integer decisions"}), backend

    def recording_solve(model, method="exact", solver=None, **options):
        if "fix" not in options:
            return solve(model, method, solver)
        calls.append(options["fix"])
        duals = {"bandwidth_hz": -5.6e-8}
        return Result("edgesplit", method, Status.FEASIBLE, extras={"duals_by_field": duals})

    monkeypatch.setattr(sensitivity, "select", fixing_select)
    monkeypatch.setattr(sensitivity, "solve", recording_solve)
    row = local_sensitivity(t1, ["bandwidth_hz"]).iloc[0]
    assert calls == [{"cuts": [2, 1]}]
    assert row["dual_derivative"] == -5.6e-8 and row["dual_note"].startswith("fix-and-relax")


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Analytic (S1, ST) of the Ishigami function on [-pi, pi]^3."""
    v1 = 0.5 * (1 + b * np.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * np.pi**8 * (1 / 18 - 1 / 50)
    variance = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / variance, np.array([v1 + v13, v2, v13]) / variance


def test_sobol_on_ishigami_matches_the_analytic_indices():
    first, total = ishigami_indices()
    assert first == pytest.approx([0.3139, 0.4424, 0.0], abs=1e-4)
    assert total == pytest.approx([0.5576, 0.4424, 0.2437], abs=1e-4)
    bounds = {name: (-np.pi, np.pi) for name in ("x1", "x2", "x3")}
    frame = sobol_function(ishigami, bounds, n=2**16, seed=3, bootstrap=100)
    assert frame["S1"].to_numpy() == pytest.approx(first, abs=0.03)
    assert frame["ST"].to_numpy() == pytest.approx(total, abs=0.03)
    assert (frame["S1_conf"] > 0).all() and (frame["ST_conf"] > 0).all()
    assert (np.abs(frame["S1"] - first) < 4 * frame["S1_conf"] + 1e-3).all()
    assert (np.abs(frame["ST"] - total) < 4 * frame["ST_conf"] + 1e-3).all()


def test_sobol_on_t1_bandwidth_dominates_and_memory_is_irrelevant(t1):
    ranges = {
        "bandwidth_hz": (1.2e7, 2.4e7),
        "devices[1].flops_per_s": (1.45e9, 1.55e9),
        "devices[0].memory_bytes": (1e8, 1e9),  # every cut fits (m <= 7.55e6 bytes)
    }
    frame = sobol_indices(t1, ranges, n=64, seed=1)
    assert frame.loc["devices[0].memory_bytes", "ST"] == 0.0
    assert frame.loc["devices[0].memory_bytes", "S1"] == 0.0
    assert frame.loc["bandwidth_hz", "ST"] > 0.8 > 0.2 > frame.loc["devices[1].flops_per_s", "ST"]


def test_tornado_data_is_ordered_by_swing_and_drawn_as_such(t1):
    params = ["devices[0].memory_bytes", "devices[0].flops_per_s", "bandwidth_hz", "rounds"]
    data = tornado_data(t1, params, fraction=0.1)
    assert list(data["param"]) == ["bandwidth_hz", "devices[0].flops_per_s",
                                   "devices[0].memory_bytes", "rounds"]
    low = solve(t1.with_changes({"bandwidth_hz": 1.62e7})).objective
    first = data.iloc[0]
    assert first["objective_low"] == pytest.approx(low, rel=1e-12)
    assert first["swing"] == pytest.approx(first["change_low"] - first["change_high"], rel=1e-12)
    assert data.loc[3, "low_value"] == data.loc[3, "high_value"] == 1  # rounds 0.9, 1.1 round to 1
    fig = plot_tornado(data)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(data["param"])[::-1]
    widths = [bar.get_width() for bar in ax.patches]
    expected = list(data["change_low"])[::-1] + list(data["change_high"])[::-1]
    assert widths == pytest.approx(expected, abs=1e-12)
    assert all(bar.get_x() == pytest.approx(3.2) for bar in ax.patches)


def test_elasticity_plot_draws_one_bar_per_parameter(t1):
    frame = local_sensitivity(t1, ["bandwidth_hz", "devices[0].flops_per_s"], duals=False)
    ax = plot_elasticities(frame).axes[0]
    assert [bar.get_width() for bar in ax.patches] == pytest.approx(list(frame["elasticity"])[::-1])


def test_one_at_a_time_front_and_their_plots(t1):
    values = [1e7, 2e7, 4e7, 1e8, 1e9]
    curve = one_at_a_time(t1, "bandwidth_hz", values)
    assert list(curve.columns) == ["bandwidth_hz", "status", "objective", "bound", "cuts"]
    assert (np.diff(curve["objective"]) < 0).all()
    assert curve["cuts"].tolist() == [(2, 1), (2, 1), (2, 1), (1, 1), (1, 1)]
    front = tradeoff_front(t1, "bandwidth_hz", values)
    assert front["bandwidth_hz"].tolist() == values  # more bandwidth always helps here
    switches = plot_one_at_a_time(curve, logx=True).axes[0].lines[1:]
    assert len(switches) == 1 and 4e7 < switches[0].get_xdata()[0] < 1e8
    line = plot_front(front, curve).axes[0].lines[0]
    assert list(line.get_ydata()) == pytest.approx(list(front["objective"]))


def test_pareto_mask():
    mask = pareto_mask([1, 2, 3, 4, 5, 2], [5, 3, 3, 1, np.nan, 4])
    assert mask.tolist() == [True, True, False, True, False, False]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeopt")
    command.register(parser.add_subparsers(dest="command"))
    return parser


def test_cli_end_to_end(tmp_path, capsys):
    out, plot = tmp_path / "sens.csv", tmp_path / "tornado.png"
    args = _parser().parse_args([
        "sensitivity", str(known_answer_path("t1")), "--param", "bandwidth_hz",
        "--param", "rounds", "--tornado", "0.1", "--out", str(out), "--plot", str(plot),
    ])
    assert args.handler(args) == 0
    table = pd.read_csv(out).set_index("param")
    expected = t1_slopes(json.loads(known_answer_path("t1").read_text()), [2, 1], 3.2)
    assert table.loc["bandwidth_hz", "derivative"] == pytest.approx(expected["bandwidth_hz"], rel=1e-6)
    assert table.loc["rounds", "elasticity"] == pytest.approx(1.0)
    assert table.loc["bandwidth_hz", "swing"] > 0 and plot.stat().st_size > 0
    assert "bandwidth_hz" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["missing.json", "--param", "bandwidth_hz"], "no such file"),
    (["T1", "--param", "bandwith_hz"], "bandwith_hz: unknown field; did you mean 'bandwidth_hz'"),
    (["T1", "--param", "server_mode"], "is not a number"),
    (["T1", "--param", "bandwidth_hz", "--method", "nosuch"], "unknown method"),
])
def test_cli_bad_input_exits_2_with_a_message(argv, message, capsys):
    argv = [str(known_answer_path("t1")) if a == "T1" else a for a in argv]
    args = _parser().parse_args(["sensitivity", *argv])
    assert args.handler(args) == 2
    assert message in capsys.readouterr().err


def test_cli_main_runs_the_sub_command(monkeypatch, capsys):
    from edgeopt.analysis import cli

    name = "edgeopt.analysis.commands.sensitivity"
    if name not in COMMAND_MODULES:  # until the command is listed in COMMAND_MODULES
        monkeypatch.setattr(cli, "COMMAND_MODULES", (*COMMAND_MODULES, name))
    assert cli.main(["sensitivity", str(known_answer_path("t1")), "--param", "bandwidth_hz"]) == 0
    assert "bandwidth_hz" in capsys.readouterr().out
    assert cli.main(["sensitivity", str(known_answer_path("t1")), "--param", "rounds",
                     "--method", "bisection", "--solver", "scip"]) == 2
    assert "cannot use solver 'scip'" in capsys.readouterr().err


def test_two_stage_scalar_decisions_and_the_analytic_shift_derivative():
    """Rounds are scalar integer decisions (two_stage): d Psi*/d delta = 2 delta M/(M + N)
    at a fixed optimal cell (squared_shift, a1 = delta^2), and the rounds are reported."""
    from edgeopt.models.two_stage import TwoStageModel

    model = TwoStageModel.preset("t2")
    table = local_sensitivity(model, ["learning.shift"], "exact")
    row = table.iloc[0]
    M, N = 4, 6  # T2's optimal cell (spec §7)
    assert row["derivative"] == pytest.approx(2 * 0.2 * M / (M + N), rel=1e-6)
    assert not row["decision_change"]
    curve = one_at_a_time(model, "energy_budget_j", [2.0, 5.0, 1000.0])
    assert curve["pretrain_rounds"].tolist() == [4, 4, 4]
    assert (np.diff(curve["objective"]) <= 1e-12).all()
