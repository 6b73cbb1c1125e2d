"""The TinyFEL verifier plug-in (see :mod:`edgeopt.analysis.verification.registry`).

* Derivation: :mod:`edgeopt.analysis.verification.derivations.tinyfel`.
* Bound checks: sparse top-layer updates with device selection on the layered logistic task
  of :mod:`~edgeopt.analysis.verification.simulators.sparse_fel` (G_l^2 and sigma^2 are
  proven bounds, L_s exact, Delta estimated by convex minimisation). The measured quantity
  is (1/R) sum_{r<R} ||grad F(w_r)||^2; the bound is the model's 2 Delta/(eta R) + Phi + N,
  with Phi and N computed by ``TinyFELModel.learning_terms`` on an instance carrying the
  task's constants (its latency fields play no part), for both aggregation rules.
* Optimiser vs baselines: on a preset whose ``learning`` block carries the task's constants
  (G_l^2 unchanged, eta L_s as in the preset), the exact P1 solution (least per-round
  latency under the bias budget), the exact P2 solution (least total latency R(a, n)
  T_round, posed on the preset as shipped: its own learning block and epsilon) and each
  baseline are trained for a fixed horizon; the target is a fraction of the initial
  ||grad F(w_0)||^2, met at the least R with (1/R) sum_{r<R} mean ||grad F(w_r)||^2 <=
  target; simulated time = R x the per-round latency of a compute-then-upload clock
  (checked against the model's evaluator). Both optimisers are compared with every
  baseline. Notes report the comparison at other target fractions, and P2 posed with the
  task's own constants at the simulated target (which the bound cannot reach).
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

from edgeopt.analysis.verification.report import Check, jsonable
from edgeopt.analysis.verification.simulation import (
    Configuration,
    Runner,
    block_rng,
    rounds_to_target,
    run_seeds,
)
from edgeopt.analysis.verification.simulators.sparse_fel import LayeredLogistic, train
from edgeopt.models.testbed.measured import seconds_per_iteration_loop

MODEL_ID = "tinyfel"

TASK = {"radii": (0.4, 0.6, 0.8, 1.0), "samples": (40, 30, 20, 10), "block": 2, "seed": 3}
"""The bound-check task: 4 layers (G_l^2 = r_l^2), 4 devices with unequal data."""

PATTERNS = {
    "all devices, every layer": ((1, 1, 1, 1), (4, 4, 4, 4)),
    "all devices, sparse": ((1, 1, 1, 1), (4, 3, 2, 1)),
    "two devices selected": ((1, 1, 0, 0), (2, 4, 0, 0)),
}
"""Selections a_k and updated layers n_k of the bound checks (n_k = 0: not selected)."""

PRESET = "resnet18-cifar10-cell"
"""Preset of the optimiser-versus-baselines comparison (its default fleet; 6 devices quick)."""

SIMULATED_SAMPLES = 40
"""Data points per device in the comparison's task (scaled by D_k / mean D)."""

TARGET_FRACTION = 0.5
"""The comparison's target: this fraction of the initial ||grad F(w_0)||^2."""

TARGET_SWEEP = (0.8, 0.6, 0.5, 0.4, 0.3)
"""Target fractions of the note on how the comparison depends on the target."""

RELATIVE_TOLERANCE = 1e-9
"""Agreement required between the simulated and the evaluated round latency."""

OPTIMISERS = ("exact", "exact_p2")
"""Result keys of the two optimisers compared with the baselines: P1 (per-round latency) and
P2 (total latency)."""

P2_TIME_LIMIT_S = {True: 10.0, False: 600.0}
"""Time limit [s] of the P2 solve (``pareto_sweep``) in quick and full runs; a walk stopped
by it reports its incumbent with a proven bound, and the checks say so."""


def steps():
    """The derivation steps (see :mod:`...derivations.tinyfel`)."""
    from edgeopt.analysis.verification.derivations.tinyfel import steps as derivation_steps

    return derivation_steps()


# ---- bound checks ----------------------------------------------------------------------------


def configurations(quick: bool = False) -> list[Configuration]:
    """Each pattern of :data:`PATTERNS` at eta = 1/L_s and 1/(4 L_s), batches 1 and 8, horizons
    30 and 300 rounds; the sparse pattern also with normalised aggregation; and the exact P1
    solution on the preset. ``quick``: one setting per pattern and rule, a 6-device preset."""
    grid = [(1.0, 8, 100)] if quick else [
        (fraction, batch, rounds) for fraction in (1.0, 0.25) for batch in (1, 8) for rounds in (30, 300)
    ]
    cases = [(label, "unnormalised") for label in PATTERNS] + [("all devices, sparse", "normalised")]
    result = []
    for label, rule in cases:
        selected, layers = PATTERNS[label]
        for fraction, batch, rounds in grid:
            model = _task_model(tuple(_key(TASK).items()), batch, fraction, rule)
            result.append(_configuration(
                f"{label}, {rule}, eta={fraction:g}/L_s, beta={batch}, R={rounds}",
                model, TASK, selected, layers, rounds, rule,
            ))
    model, spec, _ = _preset_setup(PRESET, 6 if quick else None)
    exact = _solve(model, "exact")
    horizon = _horizon(quick)
    result.append(_configuration(
        f"{PRESET} ({model.n_devices} devices): exact P1 choice, R={horizon}",
        model, spec, exact.solution["selected"], exact.solution["updated_layers"], horizon,
        model.instance.aggregation,
    ))
    return result


def simulate(configuration: Configuration, block: tuple[int, int]) -> np.ndarray:
    """Per seed of ``block``: (1/R) sum_{r<R} ||grad F(w_r)||^2."""
    return _trajectories(configuration.name, configuration.settings, block).mean(axis=1)


def _configuration(name, model, spec, selected, layers, rounds, rule) -> Configuration:
    """The bound check of (a, n) = (``selected``, ``layers``) over ``rounds`` rounds: the bound
    from ``model`` (whose learning constants are the task's ``spec``), and for the
    unnormalised rule also the quadratic-form bound as an extra ratio."""
    learning = model.instance.learning
    terms = model.learning_terms(selected, layers)
    bound = _bound(learning, rounds, terms.bias, terms.noise)
    extra = {}
    if rule == "unnormalised":
        from edgeopt.models.tinyfel import convergence

        grad_sq = np.array([layer.grad_sq_bound for layer in model.instance.layers])
        extra["quadratic-form bound"] = _bound(
            learning, rounds, convergence.bias_quadratic(grad_sq, terms.coverage), terms.noise
        )
    settings = {"task": spec, "selected": [int(bool(a)) for a in selected],
                "updated_layers": [int(n) for n in layers], "batch": model.instance.batch_size,
                "learning_rate": learning.learning_rate, "rounds": rounds, "aggregation": rule}
    return Configuration(
        name=name,
        statement=f"(1/R) sum_r E||grad F(w_r)||^2 <= 2 Delta/(eta R) + Phi + N "
                  f"(Phi = {terms.bias:.4g}, N = {terms.noise:.4g}, {rule} aggregation)",
        settings=jsonable(settings),
        bound=bound,
        constants="G_l^2 = r_l^2 and sigma^2 = sum r_l^2 bounds, L_s exact, Delta estimated "
                  "(F* by Newton's method)",
        extra=extra,
    )


def _trajectories(name: str, settings: dict[str, Any], block: tuple[int, int]) -> np.ndarray:
    """||grad F(w_r)||^2 per seed of ``block`` and round r (count, R)."""
    task = _task(**_key(settings["task"]))
    layers = task.layers
    first = [layers - n + 1 if a else layers + 1
             for a, n in zip(settings["selected"], settings["updated_layers"])]
    rng = block_rng(zlib.crc32(name.encode()), block)
    return train(task, [bool(a) for a in settings["selected"]], first, settings["batch"],
                 settings["learning_rate"], settings["rounds"], rng, block[1],
                 normalised=settings["aggregation"] == "normalised")


def _trajectories_of(item: tuple[str, dict[str, Any]], block: tuple[int, int]) -> np.ndarray:
    return _trajectories(item[0], item[1], block)


# ---- optimiser versus baselines -----------------------------------------------------------


def compare(seeds: int, runner: Runner, quick: bool = False) -> tuple[list[Check], list[str]]:
    """Simulated time to the target of the exact P1 solution (least per-round latency) and of
    the exact P2 solution (least total latency R T_round) against each baseline on the
    preset, a check that the compute-then-upload clock matches the evaluator, and notes on
    other targets and on how P2 is posed."""
    from edgeopt.solvers.registry import solvers_for

    baselines = solvers_for("tinyfel").methods("baseline")

    devices = 6 if quick else None
    model, spec, initial = _preset_setup(PRESET, devices)
    horizon = _horizon(quick)
    runs = {method: _solve(model, method) for method in ("exact", *baselines)}
    runs["exact_p2"] = _solve_p2(PRESET, devices, P2_TIME_LIMIT_S[quick])
    feasible = {method: result for method, result in runs.items() if result.feasible}
    settings = {
        method: jsonable({"task": spec, "selected": [int(bool(a)) for a in r.solution["selected"]],
                           "updated_layers": r.solution["updated_layers"],
                           "batch": model.instance.batch_size,
                           "learning_rate": model.instance.learning.learning_rate,
                           "rounds": horizon, "aggregation": model.instance.aggregation})
        for method, r in feasible.items()
    }
    # One random stream ("comparison") for every method: common random numbers.
    curves = run_seeds(runner, _trajectories_of, [("comparison", s) for s in settings.values()], seeds)
    means = {method: curve.mean(axis=0) for method, curve in zip(settings, curves)}
    clock = {method: simulated_round_latency(model, r.solution) for method, r in feasible.items()}
    evaluated = {method: r.evaluation.round_latency_s for method, r in feasible.items()}
    error = max(abs(clock[m] - evaluated[m]) / evaluated[m] for m in feasible)
    checks = [Check(
        name=f"{PRESET}: simulated round latency = model's T_round",
        kind="simulated",
        category="consistency",
        statement="a compute-then-upload clock of one round (tau beta FLOP_n / f_k, then Q_n bits "
                  "at b log2(1 + S/b), plus downlink) gives the evaluator's T_round",
        how=f"every method's decision; max relative difference over {len(clock)} methods",
        passed=error <= RELATIVE_TOLERANCE,
        detail=", ".join(f"{m} {clock[m]:.6g} s" for m in clock),
        measured=error, bound=RELATIVE_TOLERANCE, seeds=seeds, config={"methods": sorted(clock)},
    )]
    target = TARGET_FRACTION * initial
    times = {m: _time(rounds_to_target(means[m], target), clock[m]) for m in feasible}
    context = {"model": model, "runs": runs, "settings": settings, "times": times, "clock": clock,
               "target": target, "horizon": horizon, "seeds": seeds}
    for key in OPTIMISERS:
        if key not in feasible:
            checks.append(Check(
                name=f"{PRESET}: {_label(key)} has a decision", kind="simulated",
                category="comparison", statement=f"the {_label(key)} solve returns a decision to simulate",
                how="solve() status", passed=False,
                detail=f"{runs[key].status.value}: {runs[key].message}", seeds=seeds,
            ))
            continue
        for method in baselines:
            checks.append(_comparison(key, method, context))
    notes = [_target_note(model, feasible, means, clock, initial, horizon),
             _p2_note(model, runs["exact_p2"], target, devices)]
    return checks, notes


def _label(key: str) -> str:
    return {"exact": "exact P1 (least round latency)", "exact_p2": "exact P2 (least total latency)"}[key]


def _comparison(key: str, method: str, context: dict[str, Any]) -> Check:
    """The check that the ``key`` optimiser's choice reaches the target no later than
    ``method``'s in simulated time."""
    runs, settings, times, clock = (context[k] for k in ("runs", "settings", "times", "clock"))
    name = f"{PRESET}: {_label(key)} vs {method}"
    if method not in times:
        return Check.nothing_to_compare(name, method, runs[method], context["seeds"])
    result = runs[key]
    if key == "exact":
        claim = ("the exact P1 choice (least per-round latency T_round under the bias budget "
                 "Phi <= epsilon0; the number of rounds is not modelled)")
    else:
        gap = "" if result.status.value == "optimal" else (
            f"; status {result.status.value}: the walk's incumbent, whose total latency is at "
            f"most {_gap(result)} above the P2 optimum by its proven bound")
        claim = (f"the exact P2 choice (least total latency R(a, n) T_round, R from the bound with "
                 f"the preset's learning constants{gap})")
    both_missed = math.isinf(times[key]) and math.isinf(times[method])
    target = context["target"]
    return Check(
        name=name,
        kind="simulated",
        category="comparison",
        statement=f"{claim} reaches the target {TARGET_FRACTION:g} x ||grad F(w_0)||^2 in less "
                  f"simulated time than {method}'s",
        how=f"least R with (1/R) sum_(r<R) of the mean over {context['seeds']} seeds of ||grad F||^2 "
            f"<= target (horizon {context['horizon']} rounds), times the simulated round latency",
        passed=both_missed or times[key] <= times[method] * (1 + RELATIVE_TOLERANCE),
        detail=f"{key} {_time_text(times[key], clock[key])}; {method} "
               f"{_time_text(times[method], clock[method])}"
               + ("; neither reaches the target within the horizon" if both_missed else ""),
        measured=times[key], bound=times[method], seeds=context["seeds"],
        config=jsonable({"preset": PRESET, "devices": context["model"].n_devices, "method": method,
                          "optimiser": key,
                          key: {k: settings[key][k] for k in ("selected", "updated_layers")},
                          "baseline": {k: settings[method][k] for k in ("selected", "updated_layers")},
                          "target": target, "horizon": context["horizon"]}),
    )


def _p2_note(model, p2, target: float, devices: int | None) -> str:
    """How P2 is posed: with the task's own constants at the simulated target it has no
    feasible point (reported), so the comparison uses the preset's learning block."""
    from edgeopt.solvers import solve

    learning = {**model.to_dict()["learning"], "target_stationarity": target}
    own = solve(model.with_changes(objective="total_latency", learning=learning), "exact", seed=0)
    base = _p2_model(PRESET, devices).instance.learning
    posed = (f"P2 with the simulated task's own constants at the simulated target epsilon = "
             f"{target:.4g}: {own.status.value}"
             + (f" ({own.message})" if own.message else "")
             + ". The bound's worst-case bias floor is far above the squared gradient norms the "
             "simulation reaches, so the P2 comparison uses the preset's own learning block "
             f"(eta = {base.learning_rate:g}, L_s = {base.smoothness:g}, sigma^2 = "
             f"{base.grad_variance:g}, Delta = {base.initial_gap:g}, epsilon = "
             f"{base.target_stationarity:g}), as a user of the preset would pose P2, and trains "
             "its decision on the task like every other method.")
    if not p2.feasible:
        return f"{posed} That P2 solve: {p2.status.value}: {p2.message}"
    terms = _p2_model(PRESET, devices).learning_terms(p2.solution["selected"], p2.solution["updated_layers"])
    return (f"{posed} Its {p2.status.value} choice: Phi + N = {terms.bias + terms.noise:.4g}, "
            f"R = {terms.rounds} rounds by the bound, T_round = {p2.evaluation.round_latency_s:.6g} s, "
            f"total {p2.objective:.6g} s (proven bound {p2.bound:.6g} s).")


def simulated_round_latency(model, decision: dict[str, Any]) -> float:
    """One round's latency [s] by a clock over the raw instance: each selected device computes
    tau local steps of beta samples (forward through every layer, weight gradients of layers
    s..L, input gradients above s), then uploads its layers' weights (plus header) at the
    Shannon rate of its bandwidth; the round ends with the slowest device, plus the downlink.
    A device's measured per-layer times (``devices[k].measured``) replace FLOPs / speed."""
    inst = model.instance
    layers = inst.layers
    L = len(layers)
    finish = [0.0]
    for k, device in enumerate(inst.devices):
        if not decision["selected"][k]:
            continue
        s = L - int(decision["updated_layers"][k]) + 1
        if device.measured is None:
            flops = sum(layer.fwd_flops for layer in layers)
            flops += sum(_or(layer.bwd_weight_flops, layer.fwd_flops) for layer in layers[s - 1:])
            flops += sum(_or(layer.bwd_act_flops, layer.fwd_flops) for layer in layers[s:])
            clock = inst.local_steps * inst.batch_size * flops / device.flops_per_s
        else:
            clock = inst.local_steps * _measured_step_s(device.measured, inst.batch_size, s)
        bits = 8.0 * sum(layer.param_bytes for layer in layers[s - 1:]) + inst.header_bits
        bandwidth = float(decision["bandwidth_hz"][k])
        snr_hz = device.power_w * device.channel_gain / inst.noise_psd_w_per_hz
        rate = bandwidth * math.log2(1.0 + snr_hz / bandwidth) if bandwidth > 0 else 0.0
        clock += bits / rate if bits > 0 else 0.0
        finish.append(clock)
    downlink = 0.0
    if inst.downlink_rate_bps is not None:
        downlink = 8.0 * sum(layer.param_bytes for layer in layers) / inst.downlink_rate_bps
    return max(finish) + downlink


# ---- helpers -----------------------------------------------------------------------------


def _measured_step_s(measured, batch_size: int, first: int) -> float:
    """One measured local step [s] with first updated layer ``first`` (1-based): forward of
    every layer, weight gradient and update of ``first``..L, input gradient above it."""
    step = 0.0
    for index, name in enumerate(("fwd_ms", "bwd_weight_ms", "update_ms", "bwd_act_ms")):
        times = seconds_per_iteration_loop(measured, (name,), batch_size)
        start = (0, first - 1, first - 1, first)[index]
        step += sum(times[start:])
    return step


def _target_note(model, feasible, means, clock, initial, horizon) -> str:
    rows = []
    for fraction in TARGET_SWEEP:
        times = {m: _time(rounds_to_target(means[m], fraction * initial), clock[m]) for m in feasible}
        best = min(times, key=times.get)
        shown = ", ".join(f"{m.removeprefix('baseline_')} {_short(t)}" for m, t in times.items())
        rows.append(f"target {fraction:g}: {shown} -> fastest {best.removeprefix('baseline_')}")
    text = (
        f"TinyFEL {PRESET} ({model.n_devices} devices), simulated time [s] to a target fraction "
        f"of the initial ||grad F||^2 (horizon {horizon} rounds; inf = not reached; exact = P1, "
        "exact_p2 = P2): " + "; ".join(rows)
    )
    if "exact" not in feasible:
        return text + "."
    exact = model.learning_terms(feasible["exact"].solution["selected"],
                                 feasible["exact"].solution["updated_layers"])
    return (
        text + f". The exact P1 choice has Phi = {exact.bias:.4g}, "
        f"{exact.bias / model.instance.bias_budget:.0%} of the budget epsilon0 = "
        f"{model.instance.bias_budget:g}: P1 trades bias for shorter rounds up to the budget, "
        "and the budget (through the worst-case G_l^2) does not say how much the frozen layers "
        "slow learning."
    )


def _gap(result) -> str:
    """(objective - bound)/bound as text, or 'an unknown factor' without a positive bound."""
    if not result.bound or result.bound <= 0:
        return "an unknown factor"
    return f"{result.objective / result.bound - 1:.2%}"


def _time(rounds: int | None, latency: float) -> float:
    return math.inf if rounds is None else rounds * latency


def _time_text(time: float, latency: float) -> str:
    if math.isinf(time):
        return f"does not reach it ({latency:.6g} s per round)"
    return f"{round(time / latency)} rounds x {latency:.6g} s = {time:.6g} s"


def _short(time: float) -> str:
    return "inf" if math.isinf(time) else f"{time:.0f}"


def _horizon(quick: bool) -> int:
    """Rounds simulated on the preset."""
    return 200 if quick else 300


def _solve(model, method: str):
    from edgeopt.solvers import solve

    return solve(model, method, seed=0)


@lru_cache(maxsize=4)
def _p2_model(name: str, devices: int | None):
    """The preset as shipped (its own learning block, epsilon included) with the P2 objective."""
    from edgeopt.models.tinyfel import TinyFELModel

    base = TinyFELModel.preset(name, **({} if devices is None else {"devices": devices}))
    return base.with_changes(objective="total_latency")


@lru_cache(maxsize=4)
def _solve_p2(name: str, devices: int | None, time_limit: float | None):
    from edgeopt.solvers import solve

    return solve(_p2_model(name, devices), "exact", time_limit=time_limit, seed=0)


def _bound(learning, rounds: int, bias: float, noise: float) -> float:
    from edgeopt.models.tinyfel import convergence

    return convergence.bound_value(learning.initial_gap, learning.learning_rate, rounds, bias, noise)


@lru_cache(maxsize=8)
def _task(radii: tuple, samples: tuple, block: int, seed: int) -> LayeredLogistic:
    return LayeredLogistic.random(np.asarray(radii), samples, block=block, seed=seed)


def _key(spec: dict[str, Any]) -> dict[str, Any]:
    """Task arguments in hashable form (JSON round trips turn tuples into lists)."""
    return {**spec, "radii": tuple(spec["radii"]), "samples": tuple(spec["samples"])}


@lru_cache(maxsize=16)
def _task_model(spec_key: tuple, batch: int, fraction: float, aggregation: str):
    """A TinyFEL instance whose learning quantities are the task's: layers with
    G_l^2 = r_l^2, devices with the task's sample counts, eta = fraction / L_s. Its latency
    fields (FLOPs, bytes, radio) are placeholders: the bound does not involve them."""
    from edgeopt.models.tinyfel import TinyFELModel

    spec = dict(spec_key)
    task = _task(**spec)
    document = {
        "model": "tinyfel", "version": 1,
        "layers": [{"name": f"l{j + 1}", "fwd_flops": 1e6, "param_bytes": 1e3, "in_bytes": 1e3,
                    "act_factor": 1, "grad_sq_bound": float(g)} for j, g in enumerate(task.grad_sq_bounds)],
        "devices": [{"name": f"d{k + 1}", "flops_per_s": 1e10, "memory_bytes": 1e9, "samples": float(n),
                     "power_w": 0.1, "channel_gain": 1e-12} for k, n in enumerate(spec["samples"])],
        "bandwidth_hz": 1e7, "noise_psd_w_per_hz": 1e-20, "batch_size": batch, "local_steps": 1,
        "optimizer_state_factor": 1, "bias_budget": float(task.grad_sq_bounds.sum()),
        "min_selected": 1, "objective": "round_latency", "aggregation": aggregation,
        "learning": _learning(task, fraction / task.smoothness),
    }
    return TinyFELModel.from_dict(document)


def _learning(task: LayeredLogistic, step: float) -> dict[str, float]:
    return {"learning_rate": step, "smoothness": task.smoothness, "grad_variance": task.variance_bound,
            "initial_gap": task.initial_gap, "target_stationarity": 1.0}


@lru_cache(maxsize=4)
def _preset_setup(name: str, devices: int | None):
    """The preset with the task's learning constants (eta L_s kept from the preset), the
    task spec (r_l = sqrt(G_l^2), samples scaled to :data:`SIMULATED_SAMPLES` per device on
    average) and ||grad F(w_0)||^2."""
    from edgeopt.models.tinyfel import TinyFELModel

    base = TinyFELModel.preset(name, **({} if devices is None else {"devices": devices}))
    samples = np.array([d.samples for d in base.instance.devices], dtype=float)
    spec = {"radii": tuple(float(math.sqrt(layer.grad_sq_bound)) for layer in base.instance.layers),
            "samples": tuple(max(1, round(SIMULATED_SAMPLES * n / samples.mean())) for n in samples),
            "block": TASK["block"], "seed": TASK["seed"]}
    task = _task(**spec)
    preset_learning = base.instance.learning
    ratio = preset_learning.learning_rate * preset_learning.smoothness
    model = base.with_changes(learning=_learning(task, ratio / task.smoothness))
    initial = float(np.sum(task.gradient(np.zeros((1, task.layers * task.block))) ** 2))
    return model, spec, initial


def _or(value: float | None, default: float) -> float:
    return default if value is None else value
