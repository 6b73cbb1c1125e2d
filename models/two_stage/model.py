"""The two-stage model object (spec ``two_stage.md``): server pre-training for M rounds, then
federated fine-tuning on K devices for N rounds, minimising the convergence bound Psi under
one energy and one delay budget.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from edgeopt.models.base import ConstraintSpec, Infeasibility, Model, SizeLimit, VariableSpec
from edgeopt.models.two_stage import convergence, derived, evaluator, oracle
from edgeopt.models.two_stage.convergence import Coefficients
from edgeopt.models.two_stage.derived import Derived
from edgeopt.models.two_stage.evaluator import TwoStageEvaluation
from edgeopt.models.two_stage.oracle import MinEnergy
from edgeopt.models.two_stage.schema import MAX_GRID_CELLS, MAX_ROUND_CAP, TwoStageInstance


class TwoStageModel(Model):
    """Joint pre-training and fine-tuning resource management (spec ``two_stage.md``).

    >>> from edgeopt.models.two_stage import TwoStageModel
    >>> model = TwoStageModel.preset("default", devices=3, seed=1)
    >>> model.size
    {'devices': 3, 'max_pretrain_rounds': 400, 'max_finetune_rounds': 200}
    >>> t2 = TwoStageModel.preset("t2")
    >>> round(float(t2.bound(4, 6, 84, [41])), 10)
    0.2353960511
    >>> cell = t2.min_energy(4, 6, 84, [41])
    >>> round(cell.energy_j, 8), round(cell.server_time_s, 8)
    (5.61856693, 0.21125)
    >>> solution = t2.solution(4, 6, 84, [41])
    >>> evaluation = t2.evaluate(solution)
    >>> evaluation.feasible, round(evaluation.delay_s, 9)
    (True, 3.905)
    """

    model_id = "two_stage"
    version = 1
    schema = TwoStageInstance
    variables = (
        VariableSpec("pretrain_rounds", "integer", "scalar", "-", "M in {0..M_max}"),
        VariableSpec("finetune_rounds", "integer", "scalar", "-", "N in {0..N_max}, M + N >= 1"),
        VariableSpec("pretrain_batch", "integer", "scalar", "sample", "D in {1..D^max} (0 if M = 0)"),
        VariableSpec(
            "finetune_batch", "integer", "per device", "sample", "B_k in {1..B_k^max} (0 if N = 0)"
        ),
        VariableSpec("server_clock_hz", "continuous", "scalar", "Hz", "0 < f_s <= f_s^max"),
        VariableSpec("device_clock_hz", "continuous", "per device", "Hz", "0 < f_k <= f_k^max"),
        VariableSpec("power_w", "continuous", "per device", "W", "0 < p_k <= P_k^max"),
    )
    constraints = (
        ConstraintSpec("rounds", "M in {0..M_max}, N in {0..N_max}, integers, M + N >= 1", "count"),
        ConstraintSpec("pretrain_batch", "D integer in {1..D^max} if M > 0, else 0", "sample"),
        ConstraintSpec("finetune_batch", "B_k(n) integer in {1..B_k^max} if N > 0, else 0", "sample"),
        ConstraintSpec("server_clock", "0 < f_s <= f_s^max if M > 0, else 0", "relative"),
        ConstraintSpec("device_clock", "0 < f_k(n) <= f_k^max if N > 0, else 0", "relative"),
        ConstraintSpec("power", "0 < p_k(n) <= P_k^max if N > 0, else 0", "relative"),
        ConstraintSpec(
            "energy",
            "M kappa_s C_s D f_s^2 + sum_n sum_k [kappa_k C_k B_k f_k^2 + p_k S/r_k] <= E_max",
            "relative",
        ),
        ConstraintSpec(
            "delay", "M C_s D/f_s + sum_n max_k [C_k B_k/f_k + S/r_k] <= T_max", "relative"
        ),
        ConstraintSpec("reported_energy", "|energy_j - E| <= 1e-9 E (if reported)", "relative"),
        ConstraintSpec("reported_delay", "|delay_s - T| <= 1e-9 T (if reported)", "relative"),
        ConstraintSpec("per_round", "per_round lists N x K, round 0 = top-level lists", "count"),
    )
    objective = "Psi = [a0 + a1 M + a2 (sum_m 1/D(m) + sum_n sum_k alpha_k^2/B_k(n))]/(M + N)"
    presets_module = "edgeopt.models.two_stage.presets"
    size_limits = (
        SizeLimit("max_pretrain_rounds, max_finetune_rounds", f"{MAX_ROUND_CAP:,} each",
                  "rejected when the instance is read", "the methods search the rounds M, N"),
        SizeLimit("(max_pretrain_rounds + 1) * (max_finetune_rounds + 1)",
                  f"{MAX_GRID_CELLS:,} cells", "rejected when the instance is read",
                  "sca_grid, coarse_to_fine and the baselines prepare every (M, N) cell before "
                  "their first look at the time limit (~30 us of CPU per cell); the §8 preset "
                  "has 80,601"),
    )

    instance: TwoStageInstance

    # ---- basic facts -----------------------------------------------------------------
    @property
    def size(self) -> dict[str, int]:
        return {
            "devices": len(self.instance.devices),
            "max_pretrain_rounds": self.instance.max_pretrain_rounds,
            "max_finetune_rounds": self.instance.max_finetune_rounds,
        }

    @cached_property
    def derived(self) -> Derived:
        """The instance as arrays and the §3.2 formulas (see :mod:`.derived`)."""
        return derived.build(self.instance)

    # ---- the bound (vectorised) -------------------------------------------------------
    @cached_property
    def coefficients(self) -> Coefficients:
        """(a0, a1, a2) of the instance's bound variant."""
        return self.coefficients_for(self.instance.learning.bound)

    def coefficients_for(self, variant: str) -> Coefficients:
        """(a0, a1, a2) of ``variant`` (``squared_shift`` or ``linear_shift``)."""
        learning = self.instance.learning
        return convergence.coefficients(
            learning_rate=learning.learning_rate,
            smoothness=learning.smoothness,
            grad_variance=learning.grad_variance,
            initial_gap=learning.initial_gap,
            shift=learning.shift,
            variant=variant,
            grad_bound=learning.grad_bound,
        )

    def beta(self, finetune_batch) -> np.ndarray:
        """beta = sum_k alpha_k^2 / B_k [1/sample] (devices on the last axis)."""
        return convergence.beta(self.derived.weights, finetune_batch)

    def batch_term(self, M, N, pretrain_batch, finetune_batch) -> np.ndarray:
        """Q = M/D + N beta [1/sample]; broadcasts (batches may be real)."""
        return convergence.batch_term(M, N, pretrain_batch, self.beta(finetune_batch))

    def bound(self, M, N, pretrain_batch, finetune_batch, variant: str | None = None):
        """Psi(M, N, D, B) of the stage-constant policy, vectorised; NaN where M + N = 0."""
        coeffs = self.coefficients if variant is None else self.coefficients_for(variant)
        return convergence.psi(M, N, pretrain_batch, self.beta(finetune_batch), coeffs)

    # ---- resources -------------------------------------------------------------------
    def min_energy(self, M: int, N: int, pretrain_batch, finetune_batch, **budgets) -> MinEnergy:
        """The §5.5 oracle: E* and the canonical minimum-energy resources of (M, N, D, B)
        (keyword overrides ``delay_budget_s``, ``energy_budget_j``, ``gains``)."""
        return oracle.min_energy(self.derived, M, N, pretrain_batch, finetune_batch, **budgets)

    def solution(
        self, M: int, N: int, pretrain_batch=0, finetune_batch=None, resources: MinEnergy | None = None
    ) -> dict[str, Any]:
        """The decision fields of a §3.4 solution for integer (M, N, D, B) with the canonical
        minimum-energy resources (or ``resources`` from :meth:`min_energy`), plus
        ``energy_j`` and ``delay_s`` recomputed from the reported clocks and powers. Raise
        ``ValueError`` if the cell is not delay-feasible (use :meth:`empty_solution`)."""
        K = self.n_devices
        D = int(pretrain_batch) if M > 0 else 0
        B = [int(b) for b in np.broadcast_to(finetune_batch, (K,))] if N > 0 else [0] * K
        cell = resources or self.min_energy(M, N, D, B)
        if not cell.delay_feasible:
            raise ValueError(
                f"cell (M, N) = ({M}, {N}) with D = {D}, B = {B} needs {cell.min_delay_s:.6g} s "
                f"> T_max = {self.derived.delay_budget_s:.6g} s"
            )
        f_s = cell.server_clock_hz if M > 0 else 0.0
        f = [float(x) for x in cell.device_clock_hz] if N > 0 else [0.0] * K
        p = [float(x) for x in cell.power_w] if N > 0 else [0.0] * K
        energy, delay = self.derived.totals(M, N, D, f_s, np.asarray(B, float), f, p)
        return {
            "pretrain_rounds": int(M),
            "finetune_rounds": int(N),
            "pretrain_batch": D,
            "finetune_batch": B,
            "server_clock_hz": float(f_s),
            "device_clock_hz": f,
            "power_w": p,
            "energy_j": float(energy),
            "delay_s": float(delay),
        }

    @staticmethod
    def empty_solution() -> dict[str, Any]:
        """The decision fields of an infeasible §3.4 solution (nulls and empty lists)."""
        return {
            "pretrain_rounds": None,
            "finetune_rounds": None,
            "pretrain_batch": None,
            "finetune_batch": [],
            "server_clock_hz": None,
            "device_clock_hz": [],
            "power_w": [],
            "energy_j": None,
            "delay_s": None,
        }

    # ---- SymPy terms -----------------------------------------------------------------
    def convergence_terms(self) -> dict[str, Any]:
        """SymPy expressions of spec §4 (see :func:`convergence.derivation`): ``bound`` (the
        instance's variant, stage-constant Psi(M, N, D, beta)), ``bound_squared_shift``,
        ``bound_linear_shift``, ``bound_per_round``, ``step_pre`` (of the instance's variant),
        ``step_fine``, ``a0``, ``a1``, ``a2`` and ``symbols``."""
        terms = convergence.derivation()
        linear = self.instance.learning.bound == "linear_shift"
        return {
            "bound": terms["bound_linear" if linear else "bound"],
            "bound_squared_shift": terms["bound"],
            "bound_linear_shift": terms["bound_linear"],
            "bound_per_round": terms["bound_per_round_linear" if linear else "bound_per_round"],
            "step_pre": terms["step_pre_linear" if linear else "step_pre"],
            "step_fine": terms["step_fine"],
            "a0": terms["a0"],
            "a1": terms["a1_linear" if linear else "a1"],
            "a2": terms["a2"],
            "symbols": terms["symbols"],
        }

    # ---- feasibility ----------------------------------------------------------------
    def infeasibility(self) -> Infeasibility | None:
        """``delay`` or ``energy`` with the least delay / energy any allowed cell needs and
        how much is missing (see :mod:`.diagnosis`), or ``None``."""
        from edgeopt.models.two_stage.diagnosis import diagnose

        return diagnose(self)

    # ---- independent evaluator -------------------------------------------------------
    def evaluate(self, decision: dict[str, Any]) -> TwoStageEvaluation:
        """Recompute Psi, E and T and check every constraint (see :mod:`.evaluator`)."""
        return evaluator.evaluate(self.instance, decision)
