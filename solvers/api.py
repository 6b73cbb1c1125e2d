"""``solve``: one entry point for every model, method and backend, with independent verification."""

from __future__ import annotations

import time
from typing import Any

from edgeopt.solvers.common.termination import Reason, Termination
from edgeopt.solvers.common.tolerances import OBJECTIVE_MATCH, OPTIMALITY_GAP
from edgeopt.solvers.registry import KINDS, SolverSpec, solvers_for
from edgeopt.solvers.result import Result, Status, Timings


class BackendUnavailable(RuntimeError):
    """The method's backend (a Python package) is not installed on this machine."""


def select(model: Any, method: str = "exact", solver: str | None = None) -> tuple[SolverSpec, str | None]:
    """Resolve ``method`` (a kind such as 'exact' or a method id such as 'bisection') and
    ``solver`` (a backend name) to a registered method and backend; raise ``ValueError``
    naming the allowed values when they do not fit the model, :class:`BackendUnavailable`
    when the backend is not installed (checked first: deciding whether a method applies may
    import its backend)."""
    registry = solvers_for(model.model_id)
    if method in KINDS:
        method = registry.choose(model, method, solver)
    spec = registry.spec(method)
    if solver is not None and solver not in spec.backends:
        allowed = ", ".join(spec.backends) if spec.backends else "none (pure Python: leave solver unset)"
        raise ValueError(f"method {spec.method!r} cannot use solver {solver!r}; allowed: {allowed}")
    backend = solver or (spec.backends[0] if spec.backends else None)
    if not spec.availability(backend):
        raise BackendUnavailable(f"method {spec.method!r} needs backend {backend!r}, which is not installed")
    reason = spec.unsupported_reason(model)
    if reason:
        raise ValueError(f"method {spec.method!r} does not apply: {reason}")
    return spec, backend


def solve(
    model: Any,
    method: str = "exact",
    solver: str | None = None,
    *,
    time_limit: float | None = None,
    seed: int | None = None,
    **options: Any,
) -> Result:
    """Solve ``model`` and return a verified :class:`Result`.

    ``method`` is a kind ('exact', 'relaxation', 'heuristic') whose default method depends
    on the model, or a method id ('bisection', 'misocp_perspective', ...). ``solver`` picks
    a backend ('scip', 'highs', 'clarabel', 'ecos', 'scs'). ``time_limit`` is in seconds;
    a method that hits it returns its incumbent and bound with status ``time_limit``.
    Every returned point is re-checked by ``model.evaluate``; a point it rejects is
    reported with status ``error``, never as feasible.
    """
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit = {time_limit!r}: must be a number of seconds > 0")
    spec, backend = select(model, method, solver)
    options = spec.check_options(options)

    start = time.perf_counter()
    infeasible = model.infeasibility()
    if infeasible is not None:
        result = infeasible_result(model, spec.method, backend, infeasible)
    else:
        run = spec.load()
        result = run(model, backend=backend, time_limit=time_limit, seed=seed, **options)
    requested = dict(options, **({"time_limit": time_limit} if time_limit is not None else {}))
    return finish(model, result, start, requested, seed)


def infeasible_result(model: Any, method: str, backend: str | None, infeasible: Any) -> Result:
    """The Result of an instance whose ``model.infeasibility()`` is ``infeasible``: status
    ``infeasible``, the model's infeasible solution format (its empty solution arrays plus
    the fields the model adds, e.g. two_stage's ``min_delay_s``), reason and message."""
    return Result(
        model=model.model_id,
        method=method,
        status=Status.INFEASIBLE,
        solution=solvers_for(model.model_id).empty_solution(model),
        device_names=model.device_names,
        message=infeasible.message,
        infeasible_reason=infeasible.reason,
        solver=backend,
        extras={"infeasible_details": infeasible.details, **infeasible.solution_fields},
    )


def finish(
    model: Any, result: Result, started: float, requested: dict[str, Any], seed: int | None
) -> Result:
    """Stamp ``result`` with the wall time since ``started`` (``time.perf_counter``), the
    options (those the solver recorded win over ``requested``: they are what it used), the
    seed and the instance's content hash; then :func:`verify` it."""
    wall = time.perf_counter() - started
    result = result.replace(
        timings=Timings(
            build_s=result.timings.build_s,
            solve_s=result.timings.solve_s,
            wall_s=wall,
            solver_reported_s=result.timings.solver_reported_s,
        ),
        options={**requested, **result.options},
        seed=seed,
        instance_hash=model.content_hash(),
    )
    return verify(model, result)


def verify(model: Any, result: Result) -> Result:
    """Re-check ``result`` with ``model.evaluate`` and make its status honest.

    ``optimal`` stays only with a bound within :data:`OPTIMALITY_GAP` of the objective,
    below it or above it: a bound above the objective by more is no valid lower bound,
    and the status becomes ``feasible`` with a message saying so."""
    if not result.status.has_point or result.objective is None:
        return result.replace(verified=None)  # nothing to evaluate (e.g. a time limit before any point)
    try:
        evaluation = model.evaluate(result.solution)
    except ValueError as error:
        return result.replace(status=Status.ERROR, verified=False, message=f"malformed point: {error}")
    changes: dict[str, Any] = {"evaluation": evaluation}
    if not evaluation.feasible:
        detail = "; ".join(evaluation.messages)
        changes.update(
            status=Status.ERROR,
            verified=False,
            message=f"the evaluator rejected the returned point: {detail}",
        )
        return result.replace(**changes)
    claimed, checked = result.objective, evaluation.objective
    scale = max(1.0, abs(checked or 0.0))
    matches = bool(
        claimed is not None and checked is not None and abs(claimed - checked) <= OBJECTIVE_MATCH * scale
    )
    changes["verified"] = matches
    if not matches:
        changes.update(
            objective=checked,
            message=f"reported objective {claimed!r} replaced by the evaluator's {checked!r}",
        )
    gap = result.replace(**changes).gap
    if gap is not None and gap < -OPTIMALITY_GAP:
        objective = changes.get("objective", claimed)
        previous = changes.get("message", result.message)
        notes = [previous] if previous else []
        notes.append(
            f"the reported bound {result.bound!r} exceeds the objective {objective!r} "
            f"(relative {-gap:.3g} > {OPTIMALITY_GAP:g}): not a valid lower bound, optimality not proven"
        )
        changes["message"] = "; ".join(notes)
    if result.status is Status.OPTIMAL and (gap is None or abs(gap) > OPTIMALITY_GAP):
        changes["status"] = Status.FEASIBLE
        changes["termination"] = Termination(
            Reason.FEASIBLE, detail=f"claimed optimal, but the gap {gap} exceeds {OPTIMALITY_GAP:g} in magnitude"
        )
    return result.replace(**changes)


def solver_table(model_id: str | None = None):
    """Every registered method as a DataFrame: model, method, kind, backends, capabilities, available."""
    import pandas as pd

    from edgeopt.solvers.registry import Capability, registered_solver_sets

    rows = []
    for mid in [model_id] if model_id else list(registered_solver_sets()):
        for spec in solvers_for(mid).specs:
            row = {
                "model": mid,
                "method": spec.method,
                "kind": spec.kind,
                "backends": ", ".join(spec.backends) or "python",
                "available": bool(spec.availability()),
            }
            row.update({cap.value: spec.has(cap) for cap in Capability})
            row["description"] = spec.description
            rows.append(row)
    return pd.DataFrame(rows)
