"""The two-stage verifier plug-in (see :mod:`edgeopt.analysis.verification.registry`).

* Derivation: :mod:`edgeopt.analysis.verification.derivations.two_stage`.
* Bound checks: M steps of SGD on the server's general loss G (batches D(m)), then N steps
  of FedSGD on the devices' task loss F (batches B_k(n)), on the shifted quadratic task of
  :mod:`~edgeopt.analysis.verification.simulators.two_stage_sgd` (spec §9.5). L, sigma^2,
  delta and Phi are exact for Gaussian data; ``linear_shift`` is checked on bounded
  (uniform) data, where G is a proven bound on the reachable set. The measured quantity is
  (1/(M+N)) sum_{t<M+N} ||grad F(w_t)||^2; the bound is the model's Psi, from a
  ``TwoStageModel`` whose ``learning`` block carries the task's constants (its resource
  fields play no part). Each check also reports the closed-form E[measured].
* Optimiser vs baselines: on a preset whose ``learning`` block is replaced by the constants
  of a task built to match it, the decisions (M, N, D, B) of ``exact`` and of each baseline
  are trained with common random numbers; the exact choice must not reach a higher average
  squared gradient norm than a baseline (paired difference, same one-sided confidence as
  the bound checks). The closed-form expectations are reported beside the simulated means.
"""

from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

from edgeopt.analysis.verification.report import Check, jsonable
from edgeopt.analysis.verification.simulation import (
    CONFIDENCE,
    CONFIDENCE_Z,
    Configuration,
    Runner,
    block_rng,
    run_seeds,
)
from edgeopt.analysis.verification.simulators.two_stage_sgd import (
    ShiftedQuadratic,
    expected_norms,
    train,
)

MODEL_ID = "two_stage"

WEIGHTS = (0.4, 0.3, 0.2, 0.1)
"""alpha_k of the bound-check task (K = 4, unequal so that beta = sum alpha_k^2/B_k matters)."""

TASK = {"smoothness": 1.0, "grad_variance": 1.0, "initial_gap": 1.0, "weights": WEIGHTS,
        "noise": "gaussian", "seed": 0}
"""The bound-check task (spec §9.5 shape: d = 5, A = L diag(1, .8, .5, .3, .1)); the shift
delta varies per configuration."""

DECISIONS = (
    (0, 30, 0, (8, 8, 8, 8)),
    (30, 0, 16, (0, 0, 0, 0)),
    (20, 20, 4, (1, 2, 4, 8)),
    (60, 20, 32, (16, 8, 4, 2)),
)
"""(M, N, D, B) of the bound checks: fine-tuning only, pre-training only, and two mixes."""

PRESETS = {True: ("t4", {}), False: ("default", {"devices": 3})}
"""Preset of the optimiser-versus-baselines comparison: quick -> spec §7 T4 (K = 2, 20 x 10
cells), full -> the §8 cell with 3 devices (400 x 200 cells)."""

COMPARISON_SEED = 0
"""Shape seed of the task matched to the preset's learning constants."""


def steps():
    """The derivation steps (see :mod:`...derivations.two_stage`)."""
    from edgeopt.analysis.verification.derivations.two_stage import steps as derivation_steps

    return derivation_steps()


# ---- bound checks ----------------------------------------------------------------------------


def configurations(quick: bool = False) -> list[Configuration]:
    """:func:`task_configurations` and the exact choice on the preset."""
    result = task_configurations(quick)
    model, spec = _preset_setup(quick)
    exact = _solve(quick, "exact")
    if exact.feasible:
        result.append(_configuration(spec, None, model.instance.learning.bound,
                                     _decision(exact.solution), model=model,
                                     label=f"{_preset_label(quick)}: exact choice"))
    return result


def task_configurations(quick: bool = False) -> list[Configuration]:
    """Step sizes eta = 1/L, 1/(2L), 1/(10L), shifts 0, 0.3, 1 and the :data:`DECISIONS`;
    per-round batches; bounded data (``linear_shift`` and ``squared_shift``). ``quick``: four
    of the grid and one of each other kind."""
    grid = ([(1.0, 0.3, 0), (1.0, 0.3, 2), (0.5, 1.0, 1), (0.1, 0.3, 3)] if quick else
            [(f, d, k) for f in (1.0, 0.5, 0.1) for d in (0.0, 0.3, 1.0) for k in range(len(DECISIONS))])
    result = []
    for fraction, shift, index in grid:
        result.append(_configuration({**TASK, "shift": shift}, fraction, "squared_shift",
                                     _constant(*DECISIONS[index])))
    # Per-round batches: D(m) cycles 1, 4, 16, 64; device k's batch doubles every 5 rounds.
    pre = [4 ** (m % 4) for m in range(24)]
    fine = [[min(128, 2 ** (n // 5) * (k + 1)) for k in range(len(WEIGHTS))] for n in range(30)]
    result.append(_configuration({**TASK, "shift": 0.3}, 1.0, "squared_shift",
                                 {"pretrain_batches": pre, "finetune_batches": fine}))
    # At eta = 1/L both variants coincide (a1 = delta^2): linear_shift is checked below it.
    variants = [("linear_shift", 0.5)] if quick else [
        ("linear_shift", 0.5), ("linear_shift", 0.1), ("squared_shift", 1.0), ("squared_shift", 0.5)
    ]
    bounded = {**TASK, "shift": 0.3, "noise": "uniform"}
    for variant, fraction in variants:
        result.append(_configuration(bounded, fraction, variant, _constant(*DECISIONS[3])))
    return result


def simulate(configuration: Configuration, block: tuple[int, int]) -> np.ndarray:
    """Per seed of ``block``: (1/(M+N)) sum_t ||grad F(w_t)||^2."""
    return _trajectories(configuration.name, configuration.settings, block).mean(axis=1)


def _configuration(spec, fraction, variant, decision, model=None, label=None) -> Configuration:
    """The bound check of ``decision`` on the task ``spec`` at eta = ``fraction``/L (or the
    ``model``'s eta): the bound from a model carrying the task's constants."""
    from edgeopt.models.two_stage import convergence

    task = _task(**_key(spec))
    model = model or _task_model(_spec_key(spec), fraction, variant)
    learning = model.instance.learning
    pre, fine = _schedules(decision, task.devices)
    coeffs = model.coefficients_for(variant)
    if "pretrain_batches" in decision or "finetune_batches" in decision:
        bound = convergence.psi_per_round(pre, fine, model.derived.weights, coeffs)
    else:
        bound = model.bound(decision["pretrain_rounds"], decision["finetune_rounds"],
                            decision["pretrain_batch"], decision["finetune_batch"], variant=variant)
    settings = {"task": spec, "learning_rate": learning.learning_rate, "variant": variant, **decision}
    expected = float(expected_norms(task, pre, fine, learning.learning_rate).mean())
    where = label or (f"eta={fraction:g}/L, delta={spec['shift']:g}, {spec['noise']}")
    return Configuration(
        name=f"{where}, {variant}, {_decision_text(decision)}",
        statement=f"(1/(M+N)) sum_t E||grad F(w_t)||^2 <= Psi = [a0 + a1 M + a2 Q]/(M + N) "
                  f"(a0 = {coeffs.a0:.4g}, a1 = {coeffs.a1:.4g}, a2 = {coeffs.a2:.4g})",
        settings=jsonable(settings),
        bound=float(bound),
        constants=("L, sigma^2, delta, Phi exact" if task.noise == "gaussian" else
                   "L, sigma^2, delta, Phi exact; G a proven bound on the reachable box"),
        extra={"closed-form E[measured]": expected},
    )


def _trajectories(name: str, settings: dict[str, Any], block: tuple[int, int]) -> np.ndarray:
    """||grad F(w_t)||^2 per seed of ``block`` and step t (count, M + N)."""
    task = _task(**_key(settings["task"]))
    pre, fine = _schedules(settings, task.devices)
    rng = block_rng(zlib.crc32(name.encode()), block)
    return train(task, pre, fine, settings["learning_rate"], rng, block[1])


def _averages_of(item: tuple[str, dict[str, Any]], block: tuple[int, int]) -> np.ndarray:
    return _trajectories(item[0], item[1], block).mean(axis=1)


# ---- optimiser versus baselines -----------------------------------------------------------


def compare(seeds: int, runner: Runner, quick: bool = False) -> tuple[list[Check], list[str]]:
    """Simulated average squared gradient norm of the exact choice against each baseline's on
    the preset (common random numbers, paired differences), with closed-form expectations;
    notes on the comparison and on the task."""
    from edgeopt.solvers.registry import solvers_for

    baselines = solvers_for("two_stage").methods("baseline")

    model, spec = _preset_setup(quick)
    label = _preset_label(quick)
    runs = {method: _solve(quick, method) for method in ("exact", *baselines)}
    feasible = {method: result for method, result in runs.items() if result.feasible}
    eta = model.instance.learning.learning_rate
    settings = {method: jsonable({"task": spec, "learning_rate": eta, **_decision(r.solution)})
                for method, r in feasible.items()}
    notes = [_task_note()]
    if "exact" not in feasible:
        status = runs["exact"]
        return [Check(
            name=f"{label}: exact vs baselines", kind="simulated", category="comparison",
            statement="the exact method has a decision to simulate", how="solve() status",
            passed=False, detail=f"exact: {status.status.value}: {status.message}", seeds=seeds,
        )], notes
    # One random stream ("comparison") for every method: common random numbers.
    values = dict(zip(settings, run_seeds(runner, _averages_of,
                                          [("comparison", s) for s in settings.values()], seeds)))
    task = _task(**_key(spec))
    expected = {m: float(expected_norms(task, *_schedules(s, task.devices), eta).mean())
                for m, s in settings.items()}
    checks = []
    for method in baselines:
        if method not in feasible:
            checks.append(Check.nothing_to_compare(f"{label}: exact vs {method}", method,
                                                   runs[method], seeds))
            continue
        checks.append(_comparison(label, method, runs, settings, values, expected, seeds))
    notes.append(_comparison_note(label, runs, feasible, values, expected))
    return checks, notes


def _comparison(label, method, runs, settings, values, expected, seeds) -> Check:
    difference = values["exact"] - values[method]
    mean = float(difference.mean())
    stderr = float(difference.std(ddof=1) / math.sqrt(len(difference)))
    significant = mean + CONFIDENCE_Z * stderr < 0
    verdict = ("exact significantly lower" if significant else
               "no significant difference" if mean - CONFIDENCE_Z * stderr <= 0 else
               "exact significantly HIGHER")
    psi = {m: runs[m].objective for m in ("exact", method)}
    status = runs["exact"].status.value
    qualifier = "" if status == "optimal" else f" (exact status {status}, bound {runs['exact'].bound})"
    return Check(
        name=f"{label}: exact vs {method}",
        kind="simulated",
        category="comparison",
        statement=f"the exact choice reaches a lower average squared gradient norm than {method}'s "
                  f"(Psi {psi['exact']:.6g} vs {psi[method]:.6g}){qualifier}",
        how=f"paired over {seeds} seeds with common random numbers: mean(exact - baseline) <= "
            f"{CONFIDENCE_Z:g} standard errors (one-sided {CONFIDENCE:.3%})",
        passed=mean - CONFIDENCE_Z * stderr <= 0,
        detail=f"exact {values['exact'].mean():.6g} vs {values[method].mean():.6g}; difference "
               f"{mean:.3g} +- {stderr:.2g} ({verdict}); closed-form E: exact {expected['exact']:.6g}, "
               f"{method} {expected[method]:.6g}",
        measured=float(values["exact"].mean()), bound=float(values[method].mean()), stderr=stderr,
        seeds=seeds,
        config=jsonable({"preset": label, "method": method,
                         "exact": _decision_text(settings["exact"]),
                         "baseline": _decision_text(settings[method])}),
    )


def _comparison_note(label, runs, feasible, values, expected) -> str:
    rows = []
    for method, result in feasible.items():
        rows.append(f"{method.removeprefix('baseline_')}: Psi {result.objective:.5g}, simulated "
                    f"{values[method].mean():.5g}, closed-form {expected[method]:.5g}")
    by_psi = sorted(feasible, key=lambda m: runs[m].objective)
    by_value = sorted(feasible, key=lambda m: expected[m])
    order = ("the same" if by_psi == by_value else
             f"different (by Psi: {', '.join(by_psi)}; by closed-form E: {', '.join(by_value)})")
    return (f"two_stage {label}: " + "; ".join(rows) + f". Ranking of the methods by Psi and by "
            f"the exact expected average squared gradient norm: {order}. Psi is an upper bound: "
            "it charges every round's batch noise equally, while the true average charges a "
            "round's noise by how many later iterates it reaches, so the rankings can differ.")


def _task_note() -> str:
    return (
        "two_stage task: quadratic loss with Gaussian data, f(w; xi) = (w - xi)'A(w - xi)/2, "
        "whose gradient noise A(mu - xi) does not depend on w (A3 exact). Gaussian *features* "
        "((x'w - y)^2 with x ~ N(0, I)) were not used: their gradient variance is 4(d + 1)"
        "||w - w*||^2 + 4 d s^2, unbounded in w, so A3 fails. linear_shift needs "
        "||grad f|| <= G, impossible with Gaussian data; it is checked on uniform data, "
        "where iterates stay in a box (eta L <= 1) and G bounds the gradient there."
    )


# ---- helpers -----------------------------------------------------------------------------


@lru_cache(maxsize=64)
def _task_cached(smoothness, grad_variance, shift, initial_gap, weights, noise, seed) -> ShiftedQuadratic:
    return ShiftedQuadratic.from_constants(smoothness, grad_variance, shift, initial_gap, weights,
                                           noise=noise, seed=seed)


def _task(smoothness, grad_variance, shift, initial_gap, weights, noise, seed) -> ShiftedQuadratic:
    return _task_cached(smoothness, grad_variance, shift, initial_gap, tuple(weights), noise, seed)


def _key(spec: dict[str, Any]) -> dict[str, Any]:
    """Task arguments in hashable form (JSON round trips turn tuples into lists)."""
    return {**spec, "weights": tuple(spec["weights"])}


def _spec_key(spec: dict[str, Any]) -> tuple:
    return tuple(sorted(_key(spec).items()))


@lru_cache(maxsize=64)
def _task_model(key: tuple, fraction: float, variant: str):
    """A two-stage instance whose learning constants are the task's (computed from the task):
    devices with the task's weights, eta = fraction / L. Its resource fields are those of the
    ``default`` preset and play no part in the bound."""
    task = _task(**dict(key))
    return _model_for(task, fraction / task.smoothness, variant)


def _model_for(task: ShiftedQuadratic, learning_rate: float, variant: str, base=None):
    from edgeopt.models.two_stage import TwoStageModel

    base = base or TwoStageModel.preset("default", devices=task.devices)
    devices = [{**d, "weight": float(w)} for d, w in zip(base.to_dict()["devices"], task.weights)]
    grad_bound = task.grad_bound if math.isfinite(task.grad_bound) else None
    learning = {"learning_rate": learning_rate, "smoothness": task.smoothness,
                "grad_variance": task.per_sample_variance, "initial_gap": task.initial_gap,
                "shift": task.shift, "bound": variant, "grad_bound": grad_bound}
    return base.with_changes(devices=devices, learning=learning)


def _preset_label(quick: bool) -> str:
    name, options = PRESETS[quick]
    return name + "".join(f" ({v} {k})" for k, v in options.items())


@lru_cache(maxsize=2)
def _preset_setup(quick: bool):
    """The preset with the learning constants of a task built to match them (eta kept), and
    the task's spec."""
    from edgeopt.models.two_stage import TwoStageModel

    name, options = PRESETS[quick]
    base = TwoStageModel.preset(name, **options)
    learning = base.instance.learning
    spec = {"smoothness": learning.smoothness, "grad_variance": learning.grad_variance,
            "shift": learning.shift, "initial_gap": learning.initial_gap,
            "weights": tuple(float(w) for w in base.derived.weights), "noise": "gaussian",
            "seed": COMPARISON_SEED}
    task = _task(**spec)
    model = _model_for(task, learning.learning_rate, learning.bound, base=base)
    return model, spec


@lru_cache(maxsize=16)
def _solve(quick: bool, method: str):
    from edgeopt.solvers import solve

    return solve(_preset_setup(quick)[0], method, seed=0)


def _constant(M: int, N: int, D: int, B) -> dict[str, Any]:
    return {"pretrain_rounds": M, "finetune_rounds": N, "pretrain_batch": D, "finetune_batch": list(B)}


def _decision(solution: dict[str, Any]) -> dict[str, Any]:
    """(M, N, D, B) of a solution, with per-round batches if it has them."""
    decision = {"pretrain_rounds": int(solution["pretrain_rounds"]),
                "finetune_rounds": int(solution["finetune_rounds"]),
                "pretrain_batch": int(solution["pretrain_batch"]),
                "finetune_batch": [int(b) for b in solution["finetune_batch"]]}
    per_round = solution.get("per_round") or {}
    if per_round.get("finetune_batch") is not None:
        decision["finetune_batches"] = [[int(b) for b in row] for row in per_round["finetune_batch"]]
    return decision


def _schedules(decision: dict[str, Any], devices: int) -> tuple[np.ndarray, np.ndarray]:
    """D(m) (M,) and B_k(n) (N, K) of a decision: per-round lists if given, else constant."""
    if "pretrain_batches" in decision:
        pre = np.asarray(decision["pretrain_batches"], dtype=float)
    else:
        pre = np.full(int(decision["pretrain_rounds"]), float(decision["pretrain_batch"]))
    if "finetune_batches" in decision:
        fine = np.asarray(decision["finetune_batches"], dtype=float).reshape(-1, devices)
    else:
        fine = np.tile(np.asarray(decision["finetune_batch"], dtype=float), (int(decision["finetune_rounds"]), 1))
    return pre, fine


def _decision_text(decision: dict[str, Any]) -> str:
    """(M, N, D, B) as text ("per round" where batches vary by round)."""
    pre, fine = decision.get("pretrain_batches"), decision.get("finetune_batches")
    M = decision["pretrain_rounds"] if pre is None else len(pre)
    N = decision["finetune_rounds"] if fine is None else len(fine)
    D = "per round" if pre is not None else decision["pretrain_batch"] if M else "-"
    B = "per round" if fine is not None else tuple(decision["finetune_batch"]) if N else "-"
    return f"(M, N) = ({M}, {N}), D = {D}, B = {B}"
