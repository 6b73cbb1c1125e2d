"""Measured per-layer times in EdgeSplit and TinyFEL instances (issue 14, item 1).

* Validation: one value per layer, finite and >= 0, layer names matching the instance; each
  error names the path and the mismatch.
* Measured times equal to FLOPs / speed give today's optimum: every exact method, both
  models, the spec's known-answer instances (and P2, energy and shared-server variants).
* A GPU-like device (convolutions 20x, dense layers 3x faster than its FLOP speed) changes
  the plan; exact methods agree, and the evaluator and the event-clock simulator agree with
  the solver's numbers.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from edgeopt.models import InstanceError
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.models.tinyfel import TinyFELModel
from edgeopt.solvers import Capability, solve, solvers_for

DATA = Path(__file__).parent / "data"
AGREE = 1e-9
"""Relative agreement of objectives between the FLOP and the equal measured instance."""


def load(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def _or(value, default):
    return default if value is None else value


# ---- measured tables equal to FLOPs / speed (per mini-batch, in ms) ---------------------------
def edgesplit_measured(document: dict, speeds: dict[str, float] | None = None,
                       server: bool = True) -> dict:
    """``document`` with every device's times measured as 1000 beta FLOPs / f_i ms, divided
    by ``speeds[layer name]`` (default 1), and the server's likewise at F."""
    document = copy.deepcopy(document)
    beta, layers = document["batch_size"], document["layers"]
    names = [layer["name"] for layer in layers]
    up = [(speeds or {}).get(name, 1.0) for name in names]

    def times(rate: float) -> dict:
        return {"layers": names,
                "fwd_ms": [1000 * beta * layer["fwd_flops"] / rate / s for layer, s in zip(layers, up)],
                "bwd_ms": [1000 * beta * _or(layer["bwd_flops"], 2 * layer["fwd_flops"]) / rate / s
                           for layer, s in zip(layers, up)]}

    for device in document["devices"]:
        device["measured"] = times(device["flops_per_s"])
    if server:
        document["server_measured"] = times(document["server_flops_per_s"])
    return document


def tinyfel_measured(document: dict, only: int | None = None,
                     speeds: dict[str, float] | None = None) -> dict:
    """``document`` with measured times 1000 beta FLOPs / f_k ms per phase (divided by
    ``speeds[layer name]``), on every device or only on device ``only``."""
    document = copy.deepcopy(document)
    beta, layers = document["batch_size"], document["layers"]
    up = [(speeds or {}).get(layer["name"], 1.0) for layer in layers]
    for index, device in enumerate(document["devices"]):
        if only is not None and index != only:
            continue
        f = device["flops_per_s"]
        device["measured"] = {
            "layers": [layer["name"] for layer in layers],
            **{phase: [1000 * beta * _or(layer[key], layer["fwd_flops"]) / f / s
                       for layer, s in zip(layers, up)]
               for phase, key in (("fwd_ms", "fwd_flops"), ("bwd_weight_ms", "bwd_weight_flops"),
                                  ("bwd_act_ms", "bwd_act_flops"))},
        }
    return document


def exact_methods(model):
    for spec in solvers_for(model.model_id).specs:
        if (spec.has(Capability.PROVES_OPTIMALITY) and spec.availability()
                and spec.unsupported_reason(model) is None):
            yield spec.method


def assert_same_optimum(flop_model, measured_model):
    methods = list(exact_methods(flop_model))
    assert methods == list(exact_methods(measured_model)) and len(methods) >= 2
    reference = solve(flop_model, methods[0])
    for method in methods:
        flop, measured = solve(flop_model, method), solve(measured_model, method)
        assert measured.status == flop.status == reference.status, method
        if flop.objective is None:
            assert measured.objective is None
            continue
        assert measured.objective == pytest.approx(flop.objective, rel=AGREE), method
        assert measured.objective == pytest.approx(reference.objective, rel=1e-6), method
        check = measured_model.evaluate(measured.solution)
        assert check.feasible and check.objective == pytest.approx(measured.objective, rel=AGREE)


# ---- validation -----------------------------------------------------------------------------
def _problems(document, reader=EdgeSplitModel.from_dict):
    with pytest.raises(InstanceError) as caught:
        reader(document)
    return {issue.path: issue for issue in caught.value.issues}


def test_measured_lists_need_one_finite_nonnegative_value_per_layer():
    document = edgesplit_measured(load("edgesplit_t1"))
    document["devices"][0]["measured"]["bwd_ms"] = [1.0, 2.0]
    document["devices"][1]["measured"]["fwd_ms"][2] = -1.0
    document["server_measured"]["fwd_ms"][0] = math.inf
    issues = _problems(document)
    assert "has 2 value(s); needs one per layer of measured.layers (3)" in issues[
        "devices[0].measured.bwd_ms"].message
    assert issues["devices[1].measured.fwd_ms[2]"].message == "must be a finite number >= 0 [ms]"
    assert "server_measured.fwd_ms[0]" in issues


def test_measured_layer_names_must_match_the_instance():
    document = tinyfel_measured(load("tinyfel_a"))
    document["devices"][1]["measured"]["layers"] = ["l1", "l2", "l33"]
    issue = _problems(document, TinyFELModel.from_dict)["devices[1].measured.layers"]
    assert "missing 'l3'" in issue.message and "unknown layer 'l33' (did you mean 'l3'?)" in issue.message
    document["devices"][1]["measured"]["layers"] = ["l2", "l1", "l3"]
    issue = _problems(document, TinyFELModel.from_dict)["devices[1].measured.layers"]
    assert "order differs" in issue.message


def test_unknown_measured_field_names_the_nearest_one():
    document = edgesplit_measured(load("edgesplit_t1"))
    document["devices"][0]["measured"]["fwd_msec"] = document["devices"][0]["measured"].pop("fwd_ms")
    issues = _problems(document)
    assert "did you mean 'fwd_ms'?" in issues["devices[0].measured.fwd_msec"].message
    assert issues["devices[0].measured.fwd_ms"].missing


def test_measured_times_round_trip_and_flops_stay_the_default():
    document = edgesplit_measured(load("edgesplit_t2"))
    document["devices"][0]["measured"].update(batch_size=8, update_ms=[0.5, 0.25, 0.0])
    model = EdgeSplitModel.from_dict(document)
    assert EdgeSplitModel.from_dict(model.to_dict()).to_dict() == model.to_dict()
    assert model.to_dict()["devices"][1]["measured"]["update_ms"] is None
    plain = EdgeSplitModel.from_dict(load("edgesplit_t2")).to_dict()
    assert "server_measured" in plain and plain["server_measured"] is None
    assert all(device["measured"] is None for device in plain["devices"])


# ---- measured = FLOPs / speed: today's optimum ------------------------------------------------
@pytest.mark.parametrize("name", ["edgesplit_t1", "edgesplit_t2", "edgesplit_t3"])
@pytest.mark.parametrize("server", [True, False], ids=["server-measured", "server-flops"])
def test_edgesplit_measured_equal_to_flops_gives_the_same_optimum(name, server):
    document = load(name)
    flop_model = EdgeSplitModel.from_dict(document)
    measured_model = EdgeSplitModel.from_dict(edgesplit_measured(document, server=server))
    flop, measured = flop_model.options, measured_model.options
    for key in ("device_s", "server_s", "server_flops"):
        assert getattr(measured, key) == pytest.approx(getattr(flop, key), rel=1e-12, abs=0)
    assert_same_optimum(flop_model, measured_model)


TINYFEL_VARIANTS = {"a": "tinyfel_a", "a_prime": "tinyfel_a_prime", "b": "tinyfel_b",
                    "c": "tinyfel_c", "a_p2": "tinyfel_a", "a_energy": "tinyfel_a"}
"""Known-answer instances (spec §6): C is infeasible; A as P2 and with energy rows."""


@pytest.mark.parametrize("variant", list(TINYFEL_VARIANTS))
def test_tinyfel_measured_equal_to_flops_gives_the_same_optimum(variant):
    document = load(TINYFEL_VARIANTS[variant])
    if variant == "a_p2":
        document["objective"] = "total_latency"
    if variant == "a_energy":
        for device, budget in zip(document["devices"], (3.0, 2.0)):
            device.update(energy_budget_j=budget, capacitance=1e-28, cycles_per_flop=1.0)
    flop_model = TinyFELModel.from_dict(document)
    measured_model = TinyFELModel.from_dict(tinyfel_measured(document))
    flop, measured = flop_model.options, measured_model.options
    assert measured.compute_s == pytest.approx(flop.compute_s, rel=1e-12, abs=0)
    assert measured.compute_energy_j == pytest.approx(flop.compute_energy_j, rel=1e-12, abs=0)
    if variant == "a_energy":
        assert flop.compute_energy_j.max() > 0
    assert_same_optimum(flop_model, measured_model)


def test_measured_batch_size_scales_times_linearly():
    document = edgesplit_measured(load("edgesplit_t2"))  # batch_size 4
    halved = copy.deepcopy(document)
    for device in halved["devices"]:
        device["measured"].update(batch_size=2, fwd_ms=[t / 2 for t in device["measured"]["fwd_ms"]],
                                  bwd_ms=[t / 2 for t in device["measured"]["bwd_ms"]])
    full, half = EdgeSplitModel.from_dict(document), EdgeSplitModel.from_dict(halved)
    assert half.options.device_s == pytest.approx(full.options.device_s, rel=1e-12)


def test_update_time_counts_on_the_trained_layers_only():
    document = load("tinyfel_a")  # tau = beta = 1, 3 layers
    measured = tinyfel_measured(document, only=0)
    times = measured["devices"][0]["measured"]
    times["update_ms"] = [10.0, 20.0, 40.0]
    model = TinyFELModel.from_dict(measured)
    without = TinyFELModel.from_dict(tinyfel_measured(document, only=0))
    # n = 1 trains layer 3 only, n = 3 all three: +40 ms, +70 ms
    extra = model.options.compute_s[0] - without.options.compute_s[0]
    assert extra == pytest.approx([0.040, 0.060, 0.070], rel=1e-12)
    decision = {"selected": [True, False], "updated_layers": [2, 0], "bandwidth_hz": [1e7, 0.0]}
    assert (model.evaluate(decision).per_device["compute_s"][0]
            == pytest.approx(model.options.compute_s[0, 1], rel=1e-12))


# ---- a GPU-like device ------------------------------------------------------------------------
def _vgg_three_devices() -> dict:
    document = EdgeSplitModel.preset("vgg16-cifar10-hetero8").to_dict()
    document["devices"] = [document["devices"][i] for i in (0, 4, 6)]  # pi, tx2, laptop
    return document


def test_gpu_like_device_changes_the_edgesplit_plan():
    document = _vgg_three_devices()
    speeds = {layer["name"]: 20.0 if layer["name"].startswith("conv") else 3.0
              for layer in document["layers"]}
    gpu = edgesplit_measured(document, speeds=speeds, server=False)
    for device in gpu["devices"][1:]:
        device["measured"] = None  # only the first device (a Pi-class CPU) becomes a GPU
    flop_model, gpu_model = EdgeSplitModel.from_dict(document), EdgeSplitModel.from_dict(gpu)
    flop, measured = solve(flop_model, "bisection"), solve(gpu_model, "bisection")
    assert measured.solution["cuts"] != flop.solution["cuts"]
    assert measured.solution["cuts"][0] > flop.solution["cuts"][0]  # the GPU keeps more layers
    assert measured.objective < flop.objective
    for method in exact_methods(gpu_model):
        other = solve(gpu_model, method)
        assert other.objective == pytest.approx(measured.objective, rel=1e-6), method
    check = gpu_model.evaluate(measured.solution)
    assert check.feasible and check.objective == pytest.approx(measured.objective, rel=1e-12)
    cut = measured.solution["cuts"][0]
    times = gpu["devices"][0]["measured"]
    by_hand = (math.ceil(document["devices"][0]["samples"] / document["batch_size"])
               * (sum(times["fwd_ms"][:cut]) + sum(times["bwd_ms"][:cut])) / 1000)
    assert check.per_device["device_s"][0] == pytest.approx(by_hand, rel=1e-12)

    from edgeopt.analysis.verification.edgesplit import simulated_round_time

    per_round = measured.objective / gpu_model.rounds_used
    assert simulated_round_time(gpu_model, measured.solution) == pytest.approx(per_round, rel=1e-9)


def test_measured_server_prices_shared_mode_by_its_time():
    document = load("edgesplit_t3")  # shared server
    measured = edgesplit_measured(document)
    server = measured["server_measured"]
    server["fwd_ms"] = [t / 4 for t in server["fwd_ms"]]  # a server 4x faster on forward
    model = EdgeSplitModel.from_dict(measured)
    results = {method: solve(model, method) for method in exact_methods(model)}
    values = [r.objective for r in results.values()]
    assert max(values) == pytest.approx(min(values), rel=1e-6)
    best = results["brute_force"]
    assert best.objective < solve(EdgeSplitModel.from_dict(document), "brute_force").objective
    from edgeopt.analysis.verification.edgesplit import simulated_round_time

    assert simulated_round_time(model, best.solution) == pytest.approx(best.objective, rel=1e-9)


def test_gpu_like_device_changes_the_tinyfel_plan():
    document = load("tinyfel_a_prime")
    speeds = {"l1": 20.0, "l2": 20.0, "l3": 3.0}  # two conv blocks, one dense head
    flop_model = TinyFELModel.from_dict(document)
    gpu_model = TinyFELModel.from_dict(tinyfel_measured(document, only=0, speeds=speeds))
    flop, measured = solve(flop_model, "exact"), solve(gpu_model, "exact")
    assert measured.solution["updated_layers"] != flop.solution["updated_layers"]
    assert measured.objective < flop.objective
    for method in exact_methods(gpu_model):
        assert solve(gpu_model, method).objective == pytest.approx(measured.objective, rel=1e-6), method
    check = gpu_model.evaluate(measured.solution)
    assert check.feasible and check.objective == pytest.approx(measured.objective, rel=1e-9)

    from edgeopt.analysis.verification.tinyfel import simulated_round_latency

    assert simulated_round_latency(gpu_model, measured.solution) == pytest.approx(
        measured.objective, rel=1e-9)
