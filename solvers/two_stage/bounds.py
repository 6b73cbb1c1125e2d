"""Valid pruning bounds of spec §6.2: batch caps of a cell, LB(M, N) and the block bound.

Caps. Let c_s = C_s/f_s^max, c_k = C_k/f_k^max [s/sample], A = kappa C^3 [J s^2], u_1 = max_k
(c_k + tau_k^min) (0 if N = 0). In any feasible point of cell (M, N) every batch is >= 1, so a
pre-training round lasts >= c_s and a fine-tuning round >= u_1; hence

    t_s <= ts_bar = (T_max - N u_1)/M,     u <= u_bar = (T_max - M c_s)/N,
    t_k <= u_bar - tau_k^min,              tau_k <= u_bar - c_k.

Every energy term decreases in its time, so each is at least its value at the longest time and
unit batch: e_s >= A_s/ts_bar^2, e_k^cmp >= A_k/(u_bar - tau_k^min)^2, upload >= phi_k(u_bar -
c_k). Their total E_min (M, N times the per-round values) is a lower bound on the energy of the
cell (the cell is infeasible if E_min > E_max or a time bar is below its floor). Keeping one
term free and the others at their minima gives the caps

    D   <= D_hat   = min(D^max, ts_bar/c_s, [(E_max - E_min) ts_bar^2/(M A_s) + 1]^(1/3))
    B_k <= B_hat_k = min(B_k^max, (u_bar - tau_k^min)/c_k,
                         [(E_max - E_min)(u_bar - tau_k^min)^2/(N A_k) + 1]^(1/3))

(D_hat = D^max if M = 0, B_hat = B^max if N = 0). This is the spec's bound with E' = E_max -
N sum_k e_k^inf replaced by E_max - (E_min - own term): e_k^inf < phi_k(u_bar - c_k), and the
other stage's and other devices' energies are >= their minima instead of >= 0, so the caps are
never looser and stay valid.

LB(M, N) = [a0 + a1 M + a2 (M/D_hat + N sum_k alpha_k^2/B_hat_k)]/(M + N) <= Psi of every
feasible point of the cell, since Psi falls in every batch. For integer batches the caps are
floored (after a 1e-9 relative margin, so float round-off never floors a feasible integer away).

Block bound. For M >= M_1 and N >= N_1 the feasible batch set of (M, N) is inside that of
(M_1, N_1) (§5.2: costs are non-negative), so the caps of (M_1, N_1) hold there too and
Psi >= g(M, N) = [a0 + (a1 + a2/D_hat_1) M + a2 beta_hat_1 N]/(M + N). g is linear-fractional
with a positive denominator, so its minimum over a rectangle of cells is attained at one of the
rectangle's 4 corners (a rectangle at the origin is split into its part with M >= 1 and its
column M = 0, N >= 1). One evaluation closes a block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.derived import upload_energy

FLOOR_MARGIN = 1e-9
"""Caps are multiplied by 1 + 1e-9 before flooring (a feasible integer at the cap survives)."""


@dataclass(frozen=True)
class Caps:
    """Batch caps of a cell: ``D`` (D^max if M = 0) and ``B`` (B^max if N = 0), real or
    floored, or ``feasible`` False when the cell has no feasible point."""

    feasible: bool
    D: float
    B: np.ndarray


class CellBounds:
    """Caps and bounds of one model (SI constants cached; see the module docstring)."""

    def __init__(self, model: TwoStageModel, integer: bool = True,
                 energy_budget_j: float | None = None, delay_budget_s: float | None = None):
        """``energy_budget_j`` [J] and ``delay_budget_s`` [s] replace the instance's budgets
        (a method that splits them between stages)."""
        d = model.derived
        self.model = model
        self.integer = integer
        self.coeffs = model.coefficients
        self.E = d.energy_budget_j if energy_budget_j is None else float(energy_budget_j)
        self.T = d.delay_budget_s if delay_budget_s is None else float(delay_budget_s)
        self.c_s = d.server_cycles / d.server_clock_hz
        self.A_s = float(d.server_energy_time_constant(1.0))
        self.D_max = float(d.server_max_batch)
        self.c = d.device_cycles / d.device_clock_hz
        self.A = d.device_energy_time_constant(1.0)
        self.B_max = d.device_max_batch.astype(float)
        self.tau_min = d.tau_min_s
        self.scale = d.noise_w_per_hz * d.bandwidth_hz / d.channel_gain
        self.bits, self.band = d.bits, d.bandwidth_hz
        self.alpha2 = d.weights**2
        self.u_1 = float(np.max(self.c + self.tau_min))

    def caps(self, M: int, N: int) -> Caps:
        """The caps of cell (M, N) (floored when ``integer``)."""
        none = Caps(False, 0.0, np.zeros_like(self.B_max))
        if M + N < 1:
            raise ValueError("cell (0, 0) has no bound (M + N >= 1)")
        e_min = 0.0
        if M > 0:
            ts_bar = (self.T - N * self.u_1) / M
            if not ts_bar >= self.c_s:
                return none
            e_min += M * self.A_s / ts_bar**2
        if N > 0:
            u_bar = (self.T - M * self.c_s) / N
            t_bar = u_bar - self.tau_min
            up_bar = u_bar - self.c
            if not (np.all(t_bar >= self.c) and np.all(up_bar >= self.tau_min)):
                return none
            compute_min = self.A / t_bar**2
            e_min += N * float(np.sum(compute_min + upload_energy(up_bar, self.scale, self.bits,
                                                                   self.band)))
        spare = self.E - e_min
        if not spare >= 0:
            return none
        D, B = self.D_max, self.B_max.copy()
        if M > 0:
            D = min(D, ts_bar / self.c_s, math.cbrt(spare * ts_bar**2 / (M * self.A_s) + 1.0))
        if N > 0:
            B = np.minimum(np.minimum(B, t_bar / self.c),
                           np.cbrt(spare * t_bar**2 / (N * self.A) + 1.0))
        if self.integer:
            D = float(math.floor(D * (1 + FLOOR_MARGIN)))
            B = np.floor(B * (1 + FLOOR_MARGIN))
            if (M > 0 and D < 1) or (N > 0 and np.any(B < 1)):
                return none
        return Caps(True, D, B)

    def psi_at(self, M, N, caps: Caps):
        """g(M, N) = [a0 + (a1 + a2/D_hat) M + a2 beta_hat N]/(M + N) with the given caps
        (broadcasts over M, N)."""
        a0, a1, a2 = self.coeffs.a0, self.coeffs.a1, self.coeffs.a2
        M, N = np.asarray(M, float), np.asarray(N, float)
        beta = float(np.sum(self.alpha2 / caps.B))
        return (a0 + (a1 + a2 / caps.D) * M + a2 * beta * N) / (M + N)

    def cell(self, M: int, N: int) -> float:
        """LB(M, N) (inf when the cell is infeasible)."""
        caps = self.caps(M, N)
        return float(self.psi_at(M, N, caps)) if caps.feasible else math.inf

    def block(self, M0: int, M1: int, N0: int, N1: int) -> float:
        """A lower bound on Psi over the cells M0..M1 x N0..N1 (inf if all are infeasible);
        a block at the origin is the union of M >= 1 and of M = 0, N >= 1."""
        if (M0, N0) == (0, 0):
            parts = [self.block(1, M1, 0, N1)] if M1 >= 1 else []
            parts += [self.block(0, 0, 1, N1)] if N1 >= 1 else []
            return min(parts, default=math.inf)
        caps = self.caps(M0, N0)
        if not caps.feasible:
            return math.inf
        M = np.array([M0, M1, M0, M1])
        N = np.array([N0, N0, N1, N1])
        return float(np.min(self.psi_at(M, N, caps)))

    def grid(self, M_max: int, N_max: int) -> np.ndarray:
        """LB over the whole grid (inf at (0, 0) and infeasible cells), cell by cell: for
        tests and heat maps (the searches use :meth:`block` instead)."""
        out = np.full((M_max + 1, N_max + 1), math.inf)
        for M in range(M_max + 1):
            for N in range(N_max + 1):
                if M + N >= 1:
                    out[M, N] = self.cell(M, N)
        return out


def halves(block: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
    """The two halves of a block of cells (M0, M1, N0, N1) (inclusive ranges), split along
    its longer side (the searches' block tree)."""
    M0, M1, N0, N1 = block
    if M1 - M0 >= N1 - N0:
        mid = (M0 + M1) // 2
        return [(M0, mid, N0, N1), (mid + 1, M1, N0, N1)]
    mid = (N0 + N1) // 2
    return [(M0, M1, N0, mid), (M0, M1, mid + 1, N1)]
