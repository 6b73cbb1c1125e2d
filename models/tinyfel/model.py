"""The TinyFEL model object (spec ``tinyfel.md``): derived quantities, learning terms,
infeasibility diagnosis and the independent evaluator.

Federated edge learning with sparse updates: selected device k trains the top n_k layers,
uploads them on b_k Hz of a shared uplink band; P1 minimises the per-round latency under a
bias budget, P2 the total latency R(a, n) * T_round.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from edgeopt.models.base import ConstraintSpec, Infeasibility, Model, SizeLimit, VariableSpec
from edgeopt.models.tinyfel import convergence, evaluator, options
from edgeopt.models.tinyfel.evaluator import TinyFELEvaluation
from edgeopt.models.tinyfel.options import OptionTable
from edgeopt.models.tinyfel.schema import TinyFELInstance


@dataclass(frozen=True)
class LearningTerms:
    """Learning quantities of one (a, n): ``bias`` is the instance's bias measure, ``noise``
    N(a), ``budget_value`` what row C2 compares with epsilon0 [unit of G^2]; ``coverage`` u_l
    per layer; ``rounds`` R(a, n) (``None`` without ``learning`` or when unreachable)."""

    bias: float
    noise: float
    budget_value: float
    coverage: np.ndarray
    rounds: int | None


class TinyFELModel(Model):
    """Sparse-update federated edge learning with device selection (spec ``tinyfel.md``).

    >>> from edgeopt.models.tinyfel import TinyFELModel
    >>> model = TinyFELModel.preset("resnet18-cifar10-cell", devices=5, seed=1)
    >>> model.size
    {'devices': 5, 'layers': 10}
    """

    model_id = "tinyfel"
    version = 1
    schema = TinyFELInstance
    variables = (
        VariableSpec(
            "selected", "binary", "per device", "-", "a_k: device k takes part in the round"
        ),
        VariableSpec(
            "updated_layers",
            "integer",
            "per device",
            "-",
            "n_k in {n_min..L}: top layers trained and uploaded (0 when not selected)",
        ),
        VariableSpec("bandwidth_hz", "continuous", "per device", "Hz", "uplink bandwidth b_k >= 0"),
    )
    constraints = (
        ConstraintSpec(
            "domain", "a_k in {0,1}; n_k in {n_min..L} if a_k = 1, n_k = 0 otherwise (C5)", "count"
        ),
        ConstraintSpec("min_selected", "sum_k a_k >= K_min (C5)", "count"),
        ConstraintSpec("memory", "M_{n_k} <= M_k for selected k (C3)", "byte"),
        ConstraintSpec("bias_budget", "Phi(a,n) [+ N(a)] <= epsilon0 (C2, P1 only)", "unit of G^2"),
        ConstraintSpec("target", "epsilon > Phi + N (P2 only)", "unit of G^2"),
        ConstraintSpec("bandwidth_budget", "sum_k b_k <= B (C4)", "relative"),
        ConstraintSpec("nonnegativity", "b_k >= 0 (C4)", "relative"),
        ConstraintSpec("unselected_bandwidth", "b_k = 0 if a_k = 0 (C4)", "relative"),
        ConstraintSpec("finite_latency", "b_k > 0 for every selected k with Q_{n_k} > 0", "count"),
        ConstraintSpec(
            "latency", "claimed T_round >= max_k (Tcmp + Q/r(b_k)) + T_dl (C1)", "relative"
        ),
        ConstraintSpec(
            "rate_cap", "claimed T_round > Tcmp + Q ln2/S_k + T_dl (any bandwidth)", "s"
        ),
        ConstraintSpec("energy", "E^cmp + P_k Q/r(b_k) <= E_k^max (C6, optional)", "J"),
    )
    objective = "P1: T_round = T + T_dl [s];  P2: R(a,n) * T_round [s]"
    presets_module = "edgeopt.models.tinyfel.presets"
    size_limits = (
        SizeLimit("brute_force: prod_k (1 + options of device k)", "100,000 combinations",
                  "the method declines (its max_combinations option raises the cap)",
                  "it enumerates every selection and option"),
    )

    instance: TinyFELInstance

    # ---- basic facts -----------------------------------------------------------------
    @property
    def size(self) -> dict[str, int]:
        return {"devices": len(self.instance.devices), "layers": len(self.instance.layers)}

    @property
    def n_layers(self) -> int:
        return len(self.instance.layers)

    @property
    def total_latency(self) -> bool:
        """True for the P2 objective (total latency)."""
        return self.instance.objective == "total_latency"

    @cached_property
    def options(self) -> OptionTable:
        """All derived per-(device, option) quantities of spec §3.2 as arrays."""
        return options.build(self.instance)

    # ---- learning quantities (vectorised, for solvers) --------------------------------
    def learning_terms(self, selected: Any, updated_layers: Any) -> LearningTerms:
        """Bias, noise, coverage and R(a, n) of a selection and its n_k (0 when unselected)."""
        table, inst = self.options, self.instance
        a = np.asarray(selected, dtype=float)
        n = np.asarray(updated_layers, dtype=int)
        L = self.n_layers
        first = np.where(a > 0, L - n + 1, L + 1)
        cover = convergence.coverage(table.weights, a, first, L)
        if inst.aggregation == "normalised":
            bias = convergence.bias_normalised(table.grad_sq, cover)
        elif inst.bias_form == "quadratic":
            bias = convergence.bias_quadratic(table.grad_sq, cover)
        else:
            ratio = np.where(a > 0, table.ratio[np.clip(n, 1, L) - 1], 0.0)
            bias = convergence.bias_linear(table.weights, a, ratio, table.grad_sq.sum())
        noise = float(np.dot(table.noise_coeff, a)) + table.noise_const
        learning = inst.learning
        rounds = None
        if learning is not None:
            rounds = convergence.rounds_needed(
                learning.initial_gap,
                learning.learning_rate,
                learning.target_stationarity,
                bias,
                noise,
            )
        budget_value = bias + (noise if inst.include_noise_in_budget else 0.0)
        return LearningTerms(bias, noise, budget_value, cover, rounds)

    # ---- SymPy terms -----------------------------------------------------------------
    def convergence_terms(self) -> dict[str, Any]:
        """SymPy expressions of spec §4.3 (a symbolic fleet of 3 devices and 4 layers):
        ``bound``, ``bound_quadratic``, ``bias_linear``, ``bias_quadratic``, ``noise``,
        ``rounds``."""
        terms = convergence.derivation()
        keys = ("bound", "bound_quadratic", "bias_linear", "bias_quadratic", "noise", "rounds")
        return {key: terms[key] for key in keys}

    # ---- feasibility ----------------------------------------------------------------
    def infeasibility(self, max_round_latency_s: float | None = None) -> Infeasibility | None:
        """Why no feasible point exists, in the order of spec §5, or ``None``.

        With ``max_round_latency_s`` (a deadline on T_round), options whose rate cap or
        compute time rule them out at that latency are removed first. See
        :mod:`edgeopt.models.tinyfel.diagnosis`.
        """
        from edgeopt.models.tinyfel.diagnosis import diagnose

        return diagnose(self, max_round_latency_s)

    # ---- independent evaluator -------------------------------------------------------
    def evaluate(self, decision: dict[str, Any]) -> TinyFELEvaluation:
        """Recompute T_round, Phi, N, R, memory and sum b from the raw instance for ``decision``
        (see :mod:`edgeopt.models.tinyfel.evaluator`); independent of :attr:`options`."""
        return evaluator.evaluate(self.instance, decision)
