"""Which module verifies which model: one line per model in :data:`VERIFIERS`.

A verifier module (a *plug-in*) provides:

* ``MODEL_ID: str`` - the model id it verifies;
* ``steps() -> list[Step]`` - the derivation of the model's convergence term, step by step,
  as :class:`~edgeopt.analysis.verification.steps.Step` objects (identities and inequalities
  with samplers of random points satisfying the assumptions), ending with steps that compare
  the result with the model's own expressions (``Model.convergence_terms`` or the model's
  convergence module);
* ``configurations(quick: bool) -> list[Configuration]`` - simulated settings, each with the
  model's bound for it (:class:`~edgeopt.analysis.verification.simulation.Configuration`);
  ``quick`` selects a small set (tests, notebooks);
* ``simulate(configuration, block) -> numpy array`` - a **module-level** function (it is
  sent to Dask workers) returning the measured quantity (e.g. the average squared gradient
  norm over the rounds) for each seed of ``block = (first seed, count)``, using
  ``simulation.block_rng(root, block)`` so results do not depend on where blocks run;
* ``compare(seeds: int, runner: Runner, quick: bool) -> tuple[list[Check], list[str]]`` -
  simulated checks that the optimiser's choice beats the baselines on a preset, and notes
  (findings worth reporting that are not pass/fail checks).

Adding a model's verifier = adding its module and its line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

VERIFIERS: dict[str, str] = {
    "edgesplit": "edgeopt.analysis.verification.edgesplit",
    "fl_energy": "edgeopt.analysis.verification.fl_energy",
    "tinyfel": "edgeopt.analysis.verification.tinyfel",
    "two_stage": "edgeopt.analysis.verification.two_stage",
}
"""model id -> module path of its verifier plug-in."""

REQUIRED = ("MODEL_ID", "steps", "configurations", "simulate", "compare")
"""What every plug-in module must define."""


class NoVerifier(LookupError):
    """No verifier is registered for the model id; the message names the registered ones."""


def registered() -> list[str]:
    """Model ids with a verifier."""
    return sorted(VERIFIERS)


def verifier(model_id: str) -> ModuleType:
    """The plug-in module of ``model_id`` (imported on first use); :class:`NoVerifier` if
    none is registered, ``TypeError`` if the module lacks part of the protocol."""
    if model_id not in VERIFIERS:
        from edgeopt.models.registry import MODEL_IDS

        exists = " (the model exists; its verifier is still to come)" if model_id in MODEL_IDS else ""
        raise NoVerifier(
            f"no verifier registered for model {model_id!r}{exists}; models with a verifier: "
            f"{', '.join(registered())}"
        )
    module = importlib.import_module(VERIFIERS[model_id])
    missing = [name for name in REQUIRED if not hasattr(module, name)]
    if missing or module.MODEL_ID != model_id:
        raise TypeError(
            f"verifier module {module.__name__} is incomplete: missing {missing} or "
            f"MODEL_ID {getattr(module, 'MODEL_ID', None)!r} != {model_id!r}"
        )
    return module
