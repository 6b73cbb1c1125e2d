"""Verifying the models' convergence derivations: symbolic checks and simulated training.

    >>> from edgeopt.analysis.verification import verify_derivation
    >>> report = verify_derivation("edgesplit")        # doctest: +SKIP
    >>> report.passed, len(report.checks)              # doctest: +SKIP
    (True, 16)

* :func:`verify_derivation` rebuilds a model's convergence term step by step in SymPy and
  checks each step (identities symbolically and at random points, inequalities at random
  points satisfying the assumptions), ending with the model's own expressions.
* :func:`verify_simulation` trains, in a small NumPy simulator of the learning process the
  model assumes, on synthetic tasks whose constants are exact or proven bounds (the report
  says which), over many seeds (serially or on Dask), and checks the measured average squared
  gradient norm against the model's bound for each configuration; it also checks that the
  exact optimiser's choice reaches a target in less simulated time than the baselines.
* :func:`verify` does both. Every function returns a :class:`Report` (text with ``str``,
  HTML in Jupyter, JSON records with :meth:`Report.to_records`).

Models plug in through :mod:`edgeopt.analysis.verification.registry`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.analysis.verification.registry import NoVerifier, registered, verifier
from edgeopt.analysis.verification.report import Check, Report
from edgeopt.analysis.verification.simulation import Runner, bound_check, run_seeds
from edgeopt.analysis.verification.steps import POINTS, check_step

DEFAULT_SEEDS = 64
"""Independent simulated runs per configuration unless told otherwise."""

__all__ = [
    "Check",
    "NoVerifier",
    "Report",
    "Runner",
    "registered",
    "verify",
    "verify_derivation",
    "verify_simulation",
]


def verify_derivation(model: Any, points: int = POINTS, seed: int = 0) -> Report:
    """Check every step of ``model``'s derivation (a model id or a model object) at
    ``points`` random points per step drawn with ``seed``."""
    plugin = verifier(_model_id(model))
    rng = np.random.default_rng(seed)
    return Report(plugin.MODEL_ID, tuple(check_step(step, rng, points) for step in plugin.steps()))


def verify_simulation(
    model: Any,
    seeds: int = DEFAULT_SEEDS,
    runner: Runner | None = None,
    quick: bool = False,
) -> Report:
    """Simulate every configuration of ``model``'s verifier over ``seeds`` seeds and check
    the measured quantity against the model's bound; then the optimiser-versus-baselines
    comparison. ``runner`` (default: serial) may run the seeds on Dask; ``quick`` uses the
    verifier's small set of configurations."""
    if seeds < 2:
        raise ValueError(f"seeds = {seeds!r}: needs at least 2 seeds (for a standard error)")
    plugin = verifier(_model_id(model))
    runner = runner or Runner()
    configurations = plugin.configurations(quick)
    with runner:
        values = run_seeds(runner, plugin.simulate, configurations, seeds)
        comparison, notes = plugin.compare(seeds, runner, quick)
    checks = [bound_check(c, v) for c, v in zip(configurations, values)]
    return Report(plugin.MODEL_ID, tuple(checks) + tuple(comparison), tuple(notes))


def verify(
    model: Any,
    symbolic: bool = True,
    simulate: bool = True,
    seeds: int = DEFAULT_SEEDS,
    runner: Runner | None = None,
    quick: bool = False,
) -> Report:
    """:func:`verify_derivation` and/or :func:`verify_simulation`, in one report."""
    model_id = _model_id(model)
    report = Report(verifier(model_id).MODEL_ID, ())
    if symbolic:
        report = report + verify_derivation(model_id)
    if simulate:
        report = report + verify_simulation(model_id, seeds, runner, quick)
    return report


def _model_id(model: Any) -> str:
    return model if isinstance(model, str) else model.model_id
