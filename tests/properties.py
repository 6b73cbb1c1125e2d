"""The property suites' shared part: each model's :class:`PropertyCase` (random valid instances,
a document to mutate, a hard instance for time limits) and the checks every model must pass.

A model plugs in by adding its case to :data:`CASES` (``test_properties_registry`` fails for
a registered model without one); tests/test_properties.py then runs the generic tests on it. Budgets: the hypothesis profile loaded in
conftest (``regular`` by default, ``slow`` with ``pytest --slow``) sets ``max_examples``;
tests scale it with :func:`examples`.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from edgeopt.models import InstanceError, load_instance
from edgeopt.solvers import Result, Status, solve
from edgeopt.solvers.registry import Capability, SolverSpec, solvers_for

TIME_LIMIT_S = 1.0
"""Seconds given to every method in the properties (tiny instances finish well before)."""

TIME_SLACK_S = 3.0
"""A method given ``time_limit`` T returns within ``2 T + TIME_SLACK_S`` seconds of CPU time
(model building and one last solver call included)."""

TIME_LIMIT_TERMINATIONS = ("limit/time", "time_limit")
"""How a Result says its time limit stopped it (the contract's name, and the older one)."""

OBJECTIVE_RTOL = 1e-9
"""Relative agreement of a reported objective with the evaluator's, and of bound <= objective."""


def examples(fraction: float) -> settings:
    """Hypothesis settings with ``fraction`` of the loaded profile's ``max_examples`` (>= 1)."""
    return settings(
        max_examples=max(1, round(settings().max_examples * fraction)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                               HealthCheck.data_too_large],
    )


# ---- mutations --------------------------------------------------------------------------

VALUE_MUTATIONS: dict[str, Callable[[Any], object]] = {
    "deleted": lambda value: None,  # (deletes the field: see mutate)
    "negative": lambda value: -value if isinstance(value, (int, float)) else -1,
    "zero": lambda value: 0,
    "nan": lambda value: math.nan,
    "inf": lambda value: math.inf,
    "x1e12": lambda value: value * 10**12 if isinstance(value, int) else value * 1e12,
    "x1e-12": lambda value: value * 1e-12,
    "string": lambda value: "12",  # (a string value gets a "?" appended: see mutate)
    "null": lambda value: None,
}
"""How a scalar field is broken (or stretched: x1e12 and x1e-12 may stay valid)."""

LIST_MUTATIONS: dict[str, Callable[[list], list]] = {
    "emptied": lambda items: [],
    "duplicated": lambda items: [*items, copy.deepcopy(items[0])],
    "shortened": lambda items: items[:-1],
}


@dataclass(frozen=True)
class Mutant:
    """A document with one field changed: ``path`` (as errors name it), what was done."""

    document: dict
    path: tuple[str | int, ...]
    mutation: str

    @property
    def shown(self) -> str:
        return shown(self.path)

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"Mutant({self.shown} {self.mutation})"


def shown(path: tuple) -> str:
    """('devices', 1, 'samples') -> 'devices[1].samples' (how errors name a field)."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else ("." if text else "") + part
    return text


def leaves(document, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    """Every (path, value) of a document below its ``model`` and ``version``: scalars and
    lists (a list's items contribute their own fields too); free-form metadata is skipped."""
    found = []
    items = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in items:
        path = (*prefix, key)
        if key in ("metadata", "model", "version") and not prefix:
            continue
        if key == "metadata":
            continue
        if isinstance(value, list):
            found.append((path, value))
        if isinstance(value, (dict, list)):
            found += leaves(value, path)
        else:
            found.append((path, value))
    return found


def mutations_of(value: object) -> list[str]:
    """The mutations that apply to a value of this type."""
    if isinstance(value, list):
        return [*LIST_MUTATIONS, "deleted", "null"] if value else ["deleted", "null", "string"]
    if isinstance(value, (bool, str)) or value is None:
        return ["deleted", "null", "zero", "string"]
    return list(VALUE_MUTATIONS)


def mutate(document: dict, path: tuple, mutation: str) -> Mutant:
    """A deep copy of ``document`` with the value at ``path`` mutated."""
    changed = copy.deepcopy(document)
    holder = changed
    for part in path[:-1]:
        holder = holder[part]
    value = holder[path[-1]]
    if mutation in LIST_MUTATIONS:
        holder[path[-1]] = LIST_MUTATIONS[mutation](value)
    elif mutation == "string":
        holder[path[-1]] = value + "?" if isinstance(value, str) else "12"
    elif mutation == "deleted":
        del holder[path[-1]]
    else:
        holder[path[-1]] = VALUE_MUTATIONS[mutation](value)
    return Mutant(changed, tuple(path), mutation)


@st.composite
def mutants(draw, base: dict) -> Mutant:
    path, value = draw(st.sampled_from(leaves(base)))
    return mutate(base, path, draw(st.sampled_from(mutations_of(value))))


# ---- cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PropertyCase:
    """What the generic properties need of one model.

    ``instance(rng)`` builds a small random valid model within the documented ranges;
    ``base`` is a valid document with every declared field (mutated by :func:`mutants`);
    ``hard()`` builds an instance on which the methods with a time limit need longer than
    ``TIME_LIMIT_S`` (so the limit is exercised); ``other_problem`` lists methods whose
    objective is of a larger problem (their points may beat another method's bound);
    ``extremes`` maps field paths to wide valid ranges (speeds 1e3..1e15, tiny budgets...)
    for the numerically extreme instances.
    """

    model_id: str
    instance: Callable[[np.random.Generator], object]
    base: dict
    hard: Callable[[], object]
    other_problem: frozenset[str] = field(default_factory=frozenset)
    extremes: dict[str, tuple[float, float]] = field(default_factory=dict)

    def instances(self) -> st.SearchStrategy:
        return st.integers(0, 2**32 - 1).map(lambda seed: self.instance(np.random.default_rng(seed)))

    def mutants(self) -> st.SearchStrategy[Mutant]:
        return mutants(self.base)

    def extreme_changes(self) -> st.SearchStrategy[dict[str, float]]:
        """1-3 fields of :attr:`extremes` set to log-uniform values in their (valid) range."""
        def value(path: str) -> st.SearchStrategy[float]:
            lo, hi = self.extremes[path]
            return st.floats(math.log10(lo), math.log10(hi)).map(lambda e: float(10.0 ** e))

        chosen = st.lists(st.sampled_from(sorted(self.extremes)), min_size=1, max_size=3,
                          unique=True)
        return chosen.flatmap(lambda paths: st.fixed_dictionaries({p: value(p) for p in paths}))

    def methods(self) -> list[SolverSpec]:
        return [spec for spec in solvers_for(self.model_id).specs if spec.availability()]


# ---- the checks -------------------------------------------------------------------------


def related(issue_path: str, mutant: Mutant, message: str) -> bool:
    """Whether an error names the mutated field: its path, a field that holds it or one it
    holds, a field of the same record (a rule between two fields, e.g. eta * L <= 1, names
    one of them), or a rule whose message names the mutated field."""
    path = mutant.shown
    parent = shown(mutant.path[:-1])
    return (issue_path.startswith(path) or path.startswith(issue_path)
            or (parent != "" and issue_path.startswith(parent))
            or (parent == "" and "." not in issue_path and "[" not in issue_path)
            or str(mutant.path[-1]) in message)


def load_or_name_the_field(mutant: Mutant):
    """Load the mutant: the model, or ``None`` after an InstanceError naming a related field.
    Loading never changes the document it was given."""
    before = copy.deepcopy(mutant.document)
    try:
        model = load_instance(mutant.document)
    except InstanceError as error:
        paths = [issue.path for issue in error.issues]
        assert any(related(path, mutant, str(error)) for path in paths), (mutant, str(error))
        assert all(path in str(error) for path in paths)
        model = None
    assert mutant.document == before, "loading changed its input"
    return model


def solve_checked(model, spec: SolverSpec, backend: str | None = None,
                  time_limit: float = TIME_LIMIT_S, timed: bool = False) -> Result | None:
    """Solve with one method; check the Result is honest (see :func:`check_result`) and, when
    ``timed``, that the method stopped within ``2 time_limit + TIME_SLACK_S`` seconds of CPU
    time (the machine's other work does not count; no method here waits on another process).
    ``None`` when the method declares that it does not apply to the instance."""
    if spec.unsupported_reason(model):
        return None
    limit = time_limit if spec.has(Capability.TIME_LIMIT) else None
    started, wall = time.process_time(), time.perf_counter()
    try:
        result = solve(model, spec.method, backend, time_limit=limit)
    except ValueError as error:  # a method that declines at run time must say which field
        assert declines(model, str(error)), (spec.method, str(error))
        return None
    used, wall = time.process_time() - started, time.perf_counter() - wall
    if timed and limit is not None:
        assert used <= 2 * limit + TIME_SLACK_S, (spec.method, backend, used, wall)
    check_result(model, result, spec)
    return result


def stopped_by_time(result: Result) -> bool:
    """Whether the Result says its time limit stopped it (a Termination or its text)."""
    return result.termination is not None and str(result.termination) in TIME_LIMIT_TERMINATIONS


def declines(model, message: str) -> bool:
    """Whether a method's refusal names a field of the instance (the documented way for a
    method to decline an instance it does not apply to, besides its ``supports`` rule)."""
    names = {str(path[-1]) for path, _ in leaves(model.to_dict())}
    return any(name in message for name in names if isinstance(name, str) and len(name) > 3)


def check_result(model, result: Result, spec: SolverSpec) -> None:
    """The honesty rules: an answer with a point is verified by the evaluator, its objective
    finite and reproduced, its bound not above it; ``optimal`` has a bound within 1e-6; a
    time-limited answer says so; ``error`` carries the reason."""
    where = f"{spec.method}: {result.status.value} {result.message!r}"
    assert result.status is not Status.ERROR or result.message, where
    if result.bound is not None:
        assert not math.isnan(result.bound), where
    if result.status in (Status.OPTIMAL, Status.FEASIBLE):
        assert result.verified is True, where
    if result.status.has_point and result.verified:
        assert result.objective is not None and math.isfinite(result.objective), where
        evaluation = model.evaluate(result.solution)
        assert evaluation.feasible, where
        scale = max(1.0, abs(evaluation.objective))
        assert abs(result.objective - evaluation.objective) <= OBJECTIVE_RTOL * scale, where
        if result.bound is not None:
            assert result.bound <= result.objective + OBJECTIVE_RTOL * scale, (
                where, result.bound, result.objective)
    if result.status is Status.OPTIMAL:
        assert result.bound is not None and result.gap is not None and result.gap <= 1e-6, where
    if result.status is Status.TIME_LIMIT:
        assert stopped_by_time(result), (where, result.termination)
    if stopped_by_time(result):
        assert result.status is not Status.OPTIMAL or (result.gap or 0) <= 1e-6, where


def every_method(case: PropertyCase, model, time_limit: float = TIME_LIMIT_S) -> list[Result]:
    """Solve ``model`` with every available method (default backend), each checked, and
    check them against one another: no method's bound lies above another's verified point."""
    results = []
    for spec in case.methods():
        result = solve_checked(model, spec, time_limit=time_limit)
        if result is not None:
            results.append(result)
    points = [r.objective for r in results
              if r.status.has_point and r.verified and r.method not in case.other_problem]
    bounds = [r.bound for r in results if r.bound is not None and r.status.has_point]
    if points and bounds:
        least = min(points)
        assert max(bounds) <= least + OBJECTIVE_RTOL * max(1.0, abs(least)), [
            (r.method, r.status.value, r.objective, r.bound) for r in results]
    statuses = {r.status for r in results}
    if Status.OPTIMAL in statuses:  # a method proved an optimum: nobody calls it infeasible
        assert Status.INFEASIBLE not in statuses or all(
            r.method.startswith("baseline") for r in results if r.status is Status.INFEASIBLE
        ), [(r.method, r.status.value) for r in results]
    return results


def time_limits_honoured(case: PropertyCase, spec: SolverSpec, backend: str | None,
                         time_limit: float = 0.5) -> Result | None:
    """On the case's hard instance: ``spec`` with ``backend`` stops within 2 T + slack, and
    a Result stopped by the limit says so and carries its bound. A solve of a small instance
    first keeps imports out of the measured time."""
    solve_checked(case.instance(np.random.default_rng(0)), spec, backend)
    result = solve_checked(case.hard(), spec, backend, time_limit=time_limit, timed=True)
    if result is not None and stopped_by_time(result):
        assert result.status in (Status.TIME_LIMIT, Status.FEASIBLE, Status.OPTIMAL), result.status
        if spec.has(Capability.REPORTS_BOUND):
            assert result.bound is not None, (spec.method, backend)
    return result


def backends(case: PropertyCase) -> list[tuple[SolverSpec, str | None]]:
    """(method, backend) for every available backend of every method with a time limit."""
    pairs = []
    for spec in case.methods():
        if spec.has(Capability.TIME_LIMIT):
            for backend in spec.backends or (None,):
                if spec.availability(backend):
                    pairs.append((spec, backend))
    return pairs


# ---- the models' cases ------------------------------------------------------------------


def _edgesplit(rng: np.random.Generator):
    from conftest import random_edgesplit_document

    from edgeopt.models.edgesplit import EdgeSplitModel

    mode = str(rng.choice(["dedicated", "shared"]))
    document = random_edgesplit_document(rng, int(rng.integers(1, 4)), int(rng.integers(2, 5)),
                                         mode)
    return EdgeSplitModel.from_dict(document)


def _tinyfel(rng: np.random.Generator):
    """1-3 devices and 2-3 layers at the scale of the spec's instance A; some options
    rate-capped or memory-infeasible; sometimes energy budgets or the P2 objective."""
    from conftest import random_tinyfel_layers

    from edgeopt.models.tinyfel import TinyFELModel

    layers = random_tinyfel_layers(rng, int(rng.integers(2, 4)))
    energy = rng.random() < 0.3
    devices = []
    for k in range(int(rng.integers(1, 4))):
        device = {"name": f"d{k + 1}", "flops_per_s": float(rng.uniform(5e9, 3e10)),
                  "memory_bytes": float(rng.uniform(3e6, 1e7)), "samples": int(rng.integers(10, 100)),
                  "power_w": 0.1, "channel_gain": float(10 ** rng.uniform(-13.5, -11.5))}
        if energy:
            device.update(energy_budget_j=float(rng.uniform(0.5, 4.0)), capacitance=2e-31,
                          cycles_per_flop=1.0)
        devices.append(device)
    return TinyFELModel.from_dict({
        "model": "tinyfel", "version": 1, "layers": layers, "devices": devices,
        "bandwidth_hz": float(rng.uniform(2e6, 2e7)), "noise_psd_w_per_hz": 1e-20,
        "batch_size": 1, "local_steps": 1, "optimizer_state_factor": 1,
        "bias_budget": float(rng.uniform(0.25, 0.8)) * sum(x["grad_sq_bound"] for x in layers),
        "min_selected": int(rng.integers(0, len(devices) + 1)),
        "objective": str(rng.choice(["round_latency", "total_latency"])),
        "include_noise_in_budget": bool(rng.random() < 0.3),
        "learning": {"learning_rate": 0.1, "smoothness": 1.0, "grad_variance": 1.0,
                     "initial_gap": 10.0, "target_stationarity": 1.0},
    })


def _two_stage(rng: np.random.Generator):
    from conftest import random_two_stage

    rounds = (int(rng.integers(0, 6)), int(rng.integers(1, 6)))
    return random_two_stage(rng, int(rng.integers(1, 3)), rounds, cap=6)


def _fl_energy(rng: np.random.Generator):
    """A preset cell of 1-4 devices drawn with a random seed."""
    from edgeopt.models.registry import preset

    return preset("fl_energy", "default", devices=int(rng.integers(1, 5)),
                  seed=int(rng.integers(1 << 30)))


def _hard(model_id: str, name: str, **options):
    from edgeopt.models.registry import preset

    return functools.cache(lambda: preset(model_id, name, **options))


def _bases() -> dict[str, dict]:
    """The bad-input matrix's documents (every declared field present); the two-stage one
    with a 5 x 4 round grid instead of T4's 21 x 11, so that its mutants solve quickly;
    fl_energy's 3-device preset cell."""
    from field_matrix import CASES as MATRIX

    bases = {case.name: copy.deepcopy(case.base) for case in MATRIX}
    bases["two_stage"].update(max_pretrain_rounds=4, max_finetune_rounds=3)
    from edgeopt.models.registry import preset

    bases["fl_energy"] = preset("fl_energy", "default", devices=3, seed=1).to_dict()
    return bases


BASES = _bases()

CASES: dict[str, PropertyCase] = {
    "edgesplit": PropertyCase(
        "edgesplit", _edgesplit, BASES["edgesplit"],
        _hard("edgesplit", "vgg16-imagenet-hetero8", devices=24, seed=1, server_mode="shared"),
        other_problem=frozenset({"baseline_fedavg"}),  # full local training whatever is allowed
        extremes={"devices[*].flops_per_s": (1e3, 1e15), "server_flops_per_s": (1e3, 1e15),
                  "bandwidth_hz": (1e0, 1e12), "devices[*].spectral_efficiency": (1e-6, 1e3),
                  "devices[0].flops_per_s": (1e3, 1e15), "devices[*].memory_bytes": (1e3, 1e15),
                  "rounds": (1, 1e9)}),
    "tinyfel": PropertyCase(
        "tinyfel", _tinyfel, BASES["tinyfel"], _hard("tinyfel", "resnet18-cifar10-cell", devices=40),
        extremes={"devices[*].flops_per_s": (1e3, 1e15), "devices[0].flops_per_s": (1e3, 1e15),
                  "bandwidth_hz": (1e0, 1e12), "noise_psd_w_per_hz": (1e-24, 1e-6),
                  "devices[*].channel_gain": (1e-16, 1e-2), "devices[*].power_w": (1e-6, 1e3),
                  "devices[*].memory_bytes": (1e3, 1e15), "devices[0].samples": (1, 1e6)}),
    "two_stage": PropertyCase(
        "two_stage", _two_stage, BASES["two_stage"], _hard("two_stage", "default"),
        other_problem=frozenset({"relaxation_per_round"}),  # per-round decisions: a larger set
        extremes={"server.max_clock_hz": (1e3, 1e15), "devices[*].max_clock_hz": (1e3, 1e15),
                  "devices[0].channel_gain": (1e-16, 1e-2), "noise_psd_w_per_hz": (1e-24, 1e-6),
                  "delay_budget_s": (1e-6, 1e9), "energy_budget_j": (1e-9, 1e9),
                  "devices[*].bandwidth_hz": (1e0, 1e12), "model_bits": (1e0, 1e12)}),
    "fl_energy": PropertyCase(
        "fl_energy", _fl_energy, BASES["fl_energy"], _hard("fl_energy", "default", devices=400, seed=1),
        extremes={"devices[*].max_frequency_hz": (1e3, 1e15), "bandwidth_hz": (1e0, 1e12),
                  "noise_psd_w_per_hz": (1e-24, 1e-6), "deadline_s": (1e-6, 1e9),
                  "devices[0].channel_gain": (1e-16, 1e-2), "devices[*].upload_bits": (1e0, 1e12)}),
}
"""Every registered model's case (a new model adds its own)."""
