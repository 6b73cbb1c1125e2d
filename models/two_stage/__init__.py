"""Two-stage edge learning: server pre-training + federated fine-tuning (spec ``two_stage.md``).

Output of this model is labelled "two-stage model (edgeopt reconstruction)": only the paper's
abstract was available; every formula is the project's reconstruction.

Modules: ``schema`` (canonical JSON v1, solution reader), ``derived`` (§3.2 quantities as
arrays), ``convergence`` (SymPy derivation of Psi and its NumPy forms), ``oracle`` (§5.5
minimum-energy oracle), ``evaluator`` (independent loops), ``diagnosis`` (infeasibility),
``presets`` (§8 cell, §7 tiny instances), ``model`` (the model object).

Public API for solvers (``model = TwoStageModel.from_file(...)`` or ``.preset(...)``):

* Bound, vectorised (NumPy broadcasting; batches may be real in relaxations; devices on the
  last axis of ``B``): ``model.bound(M, N, D, B, variant=None)`` = Psi (NaN at M + N = 0);
  ``model.batch_term(M, N, D, B)`` = Q = M/D + N beta; ``model.beta(B)`` =
  sum_k alpha_k^2/B_k; ``model.coefficients`` (a0, a1, a2) of the instance's variant and
  ``model.coefficients_for(variant)``; ``convergence.psi_from_q(M, N, Q, coeffs)`` (reuse
  a cell's Q* across shifts/variants), ``convergence.psi(M, N, D, beta, coeffs)``,
  ``convergence.psi_per_round(D_list, B_rows, weights, coeffs)``. A stage with 0 rounds
  ignores its batch (0 allowed). The bound does not depend on clocks or powers.
* Constraint data: ``model.derived`` (:class:`derived.Derived`): per-device arrays
  ``device_clock_hz`` (f^max), ``device_capacitance``, ``device_cycles``, ``max_power_w``,
  ``channel_gain``, ``bandwidth_hz``, ``weights``, ``device_max_batch``, ``gains``
  (N_max x K, h_k(n)), ``tau_min_s``, ``energy_inf_j``, ``rate_max_bps``; server scalars
  ``server_clock_hz`` (f_s^max), ``server_capacitance``, ``server_cycles``,
  ``server_max_batch``; ``noise_w_per_hz``, ``bits``, ``energy_budget_j``,
  ``delay_budget_s``, ``max_pretrain_rounds``, ``max_finetune_rounds``. Methods:
  ``server_time/server_energy(D, f_s)``, ``device_time/device_energy(B, f)``,
  ``*_energy_time_constant`` (A = kappa C^3 batch^3, e = A/t^2), ``rate(p, gain)``,
  ``upload_time(p, gain)``, ``power_for_time(tau, gain)`` (expm1 inverse, clipped to
  P^max), ``upload_energy(tau, gain)`` (phi), ``totals(M, N, D, f_s, B, f, p)`` -> (E, T),
  ``min_server_time(D)``, ``min_round_time(B, gain)``. Module functions
  ``derived.upload_energy/_slope/_curvature(tau, scale, S, b)`` with scale = N_0 b/h.
* Minimum-energy oracle (§5.5): ``model.min_energy(M, N, D, B, delay_budget_s=None,
  energy_budget_j=None, gains=None)`` -> :class:`oracle.MinEnergy` with ``delay_feasible``,
  ``feasible`` (E* <= E_max), ``energy_j`` (E*, inf if not delay-feasible),
  ``min_delay_s``, times and the canonical resources ``server_clock_hz``,
  ``device_clock_hz``, ``power_w``. Real batches are accepted.
* Result solution dict: ``model.solution(M, N, D, B)`` gives the §3.4 decision fields with
  canonical resources and the recomputed ``energy_j``/``delay_s`` (put it in
  ``Result.solution``; objective = ``float(model.bound(M, N, D, B))``);
  ``model.empty_solution()`` for an infeasible Result; ``model.infeasibility()`` gives
  reason ``delay``/``energy`` with ``details`` ``min_delay_s``, ``min_energy_j``,
  ``missing_s``/``missing_j``. For ``per_round`` add ``"per_round": {"finetune_batch",
  "device_clock_hz", "power_w"}`` (N x K lists; top-level lists = round 0); the solver
  module ``edgeopt.solvers.two_stage.per_round`` builds such decisions at their per-round
  minimum-energy allocation (``per_round.solution(model, M, N, D, B_rows)``).
* ``model.evaluate(decision)`` -> :class:`evaluator.TwoStageEvaluation` (``psi``,
  ``energy_j``, ``delay_s``, ``violations``, ``issues`` naming constraint, device, round,
  amount). ``schema.read_solution(document, devices=K)`` validates a §3.4 document.
* SymPy: ``model.convergence_terms()`` / ``convergence.derivation()``.
"""

from edgeopt.models.two_stage.convergence import Coefficients
from edgeopt.models.two_stage.derived import Derived
from edgeopt.models.two_stage.evaluator import Issue, TwoStageEvaluation
from edgeopt.models.two_stage.model import TwoStageModel
from edgeopt.models.two_stage.oracle import MinEnergy
from edgeopt.models.two_stage.schema import (
    Device,
    Learning,
    Server,
    TwoStageInstance,
    TwoStageSolution,
    read_solution,
)

__all__ = [
    "TwoStageModel",
    "TwoStageEvaluation",
    "Issue",
    "Coefficients",
    "Derived",
    "MinEnergy",
    "TwoStageInstance",
    "TwoStageSolution",
    "Server",
    "Device",
    "Learning",
    "read_solution",
]
