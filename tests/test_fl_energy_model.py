"""The fl_energy model: evaluator against hand-computed numbers, SymPy terms against the
NumPy forms, the minimum bandwidth, infeasibility diagnosis, validation and presets."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.fl_energy import FLEnergyModel, derived
from edgeopt.models.fl_energy.presets import preset

# Two devices whose numbers are easy by hand (N0 = 1e-12 W/Hz, so a = g p / N0):
#   a: A = 2 * 1000 * 100 = 2e5 cycles, a_snr = 6e-6 * 0.5 / 1e-12 = 3e6 Hz;
#      on b = 1e6 Hz: r = 1e6 log2(1 + 3) = 2e6 bit/s, upload 1e6 bits = 0.5 s (0.25 J);
#      at f = 1e6 Hz: compute 0.2 s, 1e-20 * 2e5 * 1e12 = 2e-3 J.
#   b: A = 3 * 2000 * 50 = 3e5 cycles (its own local_iterations), a_snr = 7e6 Hz;
#      on 1e6 Hz: r = 3e6 bit/s, 6e5 bits = 0.2 s (0.2 J); at f = 5e5 Hz: 0.6 s,
#      2e-20 * 3e5 * 2.5e11 = 1.5e-3 J.
HAND = {
    "model": "fl_energy",
    "version": 1,
    "devices": [
        {"name": "a", "cycles_per_sample": 1000, "samples": 100, "max_frequency_hz": 2e6,
         "capacitance": 1e-20, "power_w": 0.5, "channel_gain": 6e-6, "upload_bits": 1e6},
        {"name": "b", "cycles_per_sample": 2000, "samples": 50, "local_iterations": 3,
         "max_frequency_hz": 5e5, "capacitance": 2e-20, "power_w": 1.0, "channel_gain": 7e-6,
         "upload_bits": 6e5},
    ],
    "deadline_s": 0.8,
    "bandwidth_hz": 2e6,
    "noise_psd_w_per_hz": 1e-12,
    "local_iterations": 2,
}
POINT = {"frequency_hz": [1e6, 5e5], "bandwidth_hz": [1e6, 1e6]}


@pytest.fixture
def hand() -> FLEnergyModel:
    return FLEnergyModel.from_dict(HAND)


def test_evaluator_matches_the_hand_computed_numbers(hand):
    evaluation = hand.evaluate(POINT)
    assert evaluation.feasible
    columns = evaluation.per_device
    assert columns["compute_s"] == pytest.approx([0.2, 0.6], rel=1e-12)
    assert columns["upload_s"] == pytest.approx([0.5, 0.2], rel=1e-12)
    assert columns["per_device_time_s"] == pytest.approx([0.7, 0.8], rel=1e-12)
    assert columns["compute_energy_j"] == pytest.approx([2e-3, 1.5e-3], rel=1e-12)
    assert columns["upload_energy_j"] == pytest.approx([0.25, 0.2], rel=1e-12)
    assert evaluation.objective == pytest.approx(0.4535, rel=1e-12)


@pytest.mark.parametrize(
    ("change", "name", "value"),
    [
        ({"frequency_hz": [1e6, 6e5]}, "frequency_cap", 0.2),  # b above its 5e5 Hz cap
        ({"frequency_hz": [1e6, 4e5]}, "deadline", 0.95 / 0.8 - 1),  # b: 0.75 s + 0.2 s
        ({"bandwidth_hz": [1.2e6, 1e6]}, "bandwidth_budget", 0.1),
        ({"bandwidth_hz": [1e6, 0.0]}, "positivity", 1.0),
        ({"frequency_hz": [math.nan, 5e5]}, "positivity", 1.0),
    ],
)
def test_evaluator_measures_each_violation(hand, change, name, value):
    evaluation = hand.evaluate({**POINT, **change})
    assert not evaluation.feasible and evaluation.objective is None
    assert evaluation.violations[name] == pytest.approx(value, rel=1e-9)
    assert any(message.startswith(name) for message in evaluation.messages)


def test_evaluator_rejects_a_malformed_decision(hand):
    with pytest.raises(ValueError, match="frequency_hz.*one value per device"):
        hand.evaluate({"frequency_hz": [1e6], "bandwidth_hz": [1e6, 1e6]})


def test_cheapest_frequency_and_minimum_bandwidth_by_hand(hand):
    fleet = hand.fleet
    # device a on 1e6 Hz uploads for 0.5 s, leaving 0.3 s for 2e5 cycles
    assert derived.cheapest_frequency(np.array([1e6, 1e6]), fleet)[0] == pytest.approx(2e5 / 0.3, rel=1e-12)
    # b at f_max = 5e5 Hz computes for 0.6 s, so 0.2 s remain for 6e5 bits: 3e6 bit/s = r(1e6)
    assert hand.min_bandwidth_hz[1] == pytest.approx(1e6, rel=1e-12)


def test_minimum_bandwidth_is_tight_on_random_fleets():
    for seed in range(5):
        model = FLEnergyModel.preset("default", devices=6, seed=seed)
        fleet, least = model.fleet, model.min_bandwidth_hz
        at_least = fleet.fastest_compute_s + derived.upload_time(least, fleet)
        below = fleet.fastest_compute_s + derived.upload_time(least * (1 - 1e-9), fleet)
        assert np.all(at_least <= fleet.deadline_s * (1 + 1e-12)) and np.all(below > fleet.deadline_s)


def test_sympy_terms_agree_with_the_numpy_forms_and_the_evaluator():
    import sympy as sp

    terms = FLEnergyModel.from_dict(HAND).convergence_terms()
    symbols = {s.name: s for s in terms["energy"].free_symbols | terms["cheapest_frequency"].free_symbols}
    rng = np.random.default_rng(3)
    for _ in range(20):
        values = {"I": int(rng.integers(1, 5)), "c": rng.uniform(1e3, 3e4), "D": int(rng.integers(10, 900)),
                  "kappa": 10 ** rng.uniform(-28, -26), "p": rng.uniform(0.05, 0.3), "g": 10 ** rng.uniform(-12, -9),
                  "N_0": 4e-21, "b": 10 ** rng.uniform(5, 7), "s": rng.uniform(1e5, 2e6)}
        values["T"] = 2.0 * values["s"] / (values["b"] * math.log2(1 + values["g"] * values["p"] / (values["N_0"] * values["b"])))
        document = {
            "model": "fl_energy", "version": 1, "deadline_s": values["T"], "bandwidth_hz": 1e9,
            "noise_psd_w_per_hz": values["N_0"], "local_iterations": values["I"],
            "devices": [{"name": "x", "cycles_per_sample": values["c"], "samples": values["D"],
                         "max_frequency_hz": 1e12, "capacitance": values["kappa"], "power_w": values["p"],
                         "channel_gain": values["g"], "upload_bits": values["s"]}],
        }
        model = FLEnergyModel.from_dict(document)
        bandwidth = np.array([values["b"]])
        cheapest = derived.cheapest_frequency(bandwidth, model.fleet)
        point = {symbols[name]: value for name, value in values.items() if name in symbols}
        assert float(terms["cheapest_frequency"].subs(point)) == pytest.approx(cheapest[0], rel=1e-10)
        point[symbols["f"]] = cheapest[0]
        evaluation = model.evaluate({"frequency_hz": list(cheapest), "bandwidth_hz": list(bandwidth)})
        assert evaluation.per_device["per_device_time_s"][0] == pytest.approx(values["T"], rel=1e-10)
        assert float(terms["energy"].subs(point)) == pytest.approx(evaluation.objective, rel=1e-10)
        compute, upload = derived.energy(cheapest, bandwidth, model.fleet)
        assert float((compute + upload)[0]) == pytest.approx(evaluation.objective, rel=1e-10)
        assert float(terms["energy_at_cheapest_frequency"].subs(point)) == pytest.approx(evaluation.objective, rel=1e-10)
        assert isinstance(terms["rate"], sp.Expr)


def test_rate_slope_matches_finite_differences_across_regimes():
    snr = np.array([1e3, 1e6, 3e9, 3e9])
    bandwidth = np.array([1e9, 1e9, 1e6, 1e13])  # a/b from 1e-6 (series) to 3e3
    step = bandwidth * 1e-6
    numeric = (derived.rate(bandwidth + step, snr) - derived.rate(bandwidth - step, snr)) / (2 * step)
    assert derived.rate_slope(bandwidth, snr) == pytest.approx(numeric, rel=1e-5)


def test_infeasible_deadline_names_the_device_and_the_missing_seconds(hand):
    # b at f_max needs 0.6 s of compute; with T = 0.7 s and the whole band (2e6 Hz:
    # r = 2e6 log2(4.5) bit/s) the upload takes 6e5 / r s.
    late = hand.with_changes(deadline_s=0.7, **{"devices[1].upload_bits": 1.5e6})
    problem = late.infeasibility()
    upload = 1.5e6 / (2e6 * math.log2(1 + 7e6 / 2e6))
    assert problem.reason == "deadline" and problem.details["device"] == "b"
    assert problem.details["missing_s"] == pytest.approx(0.6 + upload - 0.7, rel=1e-12)
    assert "device 'b' misses the deadline T = 0.7 s by" in problem.message


def test_infeasible_bandwidth_names_the_budget_and_the_shortfall(hand):
    # each device alone meets T on the whole band, but b needs exactly 1e6 Hz (see above) and
    # a about 5.1e5 Hz (at f_max it computes for 0.1 s, leaving 0.7 s for 1e6 bits)
    tight = hand.with_changes(bandwidth_hz=1.5e6)
    problem = tight.infeasibility()
    assert problem.reason == "bandwidth" and problem.details["constraint"] == "bandwidth_budget"
    needed = problem.details["needed_hz"]
    assert needed == pytest.approx(tight.min_bandwidth_hz.sum()) and needed > 1.5e6
    assert problem.details["missing_hz"] == pytest.approx(needed - 1.5e6)
    assert "bandwidth budget" in problem.message and "short by" in problem.message
    assert hand.infeasibility() is None


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("devices[0].cycles_per_sampel", 1.0, "did you mean 'cycles_per_sample'"),
        ("devices[1].power_w", -1.0, r"devices\[1\].power_w = -1.0: must be a finite number > 0 \[W\]"),
        ("deadline_s", 0, r"deadline_s = 0: must be a finite number > 0 \[s\]"),
        ("local_iterations", 1.5, "local_iterations = 1.5: must be an integer >= 1"),
        ("devices[0].samples", True, r"devices\[0\].samples = True: must be an integer >= 1 \[sample\]"),
        ("bandwith_hz", 1e6, "did you mean 'bandwidth_hz'"),
    ],
)
def test_bad_input_names_the_field_and_the_allowed_range(path, value, expected):
    document = json.loads(json.dumps(HAND))
    target = document
    parts = path.replace("]", "").replace("[", ".").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    target[parts[-1]] = value
    with pytest.raises(InstanceError, match=expected):
        FLEnergyModel.from_dict(document)


def test_duplicate_names_and_failed_edits_change_nothing(hand):
    document = json.loads(json.dumps(HAND))
    document["devices"][1]["name"] = "a"
    with pytest.raises(InstanceError, match=r"devices\[1\].name.*must be unique"):
        FLEnergyModel.from_dict(document)
    with pytest.raises(InstanceError, match="did you mean 'deadline_s'"):
        hand.with_changes(deadline=1.0)
    assert hand.instance.deadline_s == 0.8


def test_presets_are_reproducible_feasible_and_round_trip(tmp_path):
    first = preset("default", devices=7, seed=4)
    assert first == preset("default", devices=7, seed=4) and first != preset("default", devices=7, seed=5)
    assert [d.name for d in first.devices] == [f"ue-{k}" for k in range(7)]
    model = FLEnergyModel.preset("default")
    assert model.size == {"devices": 10} and model.instance.bandwidth_hz == 1e7
    for devices, seed in ((1, 0), (30, 1), (200, 2)):
        assert FLEnergyModel.preset("default", devices=devices, seed=seed).infeasibility() is None
    path = tmp_path / "fl.json"
    model.save(path)
    assert load_instance(path).to_dict() == model.to_dict()
    with pytest.raises(ValueError, match="unknown fl_energy preset 'nosuch'; valid: default"):
        preset("nosuch")
    with pytest.raises(ValueError, match="unknown override"):
        preset("default", deadline=1.0)


@pytest.mark.parametrize("name", ["edgeopt.models.fl_energy.model", "edgeopt.models.fl_energy.presets"])
def test_docstring_examples(name):
    import doctest
    import importlib

    failures, attempted = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failures == 0
