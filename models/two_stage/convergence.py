"""The two-stage convergence bound (spec §4), derived in SymPy from the one-step inequalities.

Algorithm (§4.1): M pre-training steps w+ = w - eta g on the general loss G (batch D(m)),
then N FedSGD steps on the task loss F = sum_k alpha_k F_k (batches B_k(n)). Assumptions:
F* > -inf; F, G L-smooth with eta L <= 1; per-sample gradient variance <= sigma^2;
||grad G - grad F|| <= delta (Kantorovich-Rubinstein); ``linear_shift`` also ||grad f|| <= G.

:func:`derivation` is the single source of truth. It writes the descent lemma with symbolic
2-vectors, rewrites it (polarisation, or grad G = grad F + e), drops the non-positive term,
bounds the shift, telescopes the per-step inequalities over both stages with per-round batch
symbols and divides by eta (M + N)/2. The coefficients a0, a1, a2 are then *read off* the
derived bound. The float functions below are its NumPy forms (tested against it at random
points); they broadcast over arrays of (M, N, ...), so solvers can evaluate whole grids.

    Psi = [a0 + a1 M + a2 (sum_m 1/D(m) + sum_n sum_k alpha_k^2 / B_k(n))] / (M + N)
    a0 = 2 Phi / eta,  a2 = L eta sigma^2,
    a1 = delta^2 (squared_shift)   or   2 (1 - L eta) G delta + L eta delta^2 (linear_shift)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

VARIANTS = ("squared_shift", "linear_shift")


@dataclass(frozen=True)
class Coefficients:
    """Psi = [a0 + a1 M + a2 Q] / (M + N): ``a0`` = 2 Phi/eta [F]^2/[w]^2 * round,
    ``a1`` shift price per pre-training round, ``a2`` = L eta sigma^2 (times Q in 1/sample)."""

    a0: float
    a1: float
    a2: float


@lru_cache(maxsize=1)
def derivation() -> dict:
    """The derivation as SymPy expressions (every step is checked by the tests).

    Keys:

    * ``symbols``: the SymPy symbols by name (``eta``, ``L``, ``sigma2``, ``Phi``,
      ``delta``, ``G``, ``M``, ``N``, ``D``, ``beta``, ``Dm``/``betan`` indexed batches,
      ``gF2``/``e2``/``Fe`` squared norms and inner product, vectors ``gF``, ``gG``, ``e``).
    * ``descent_pre``, ``polarised_pre``: right side of the descent lemma minus F for a
      pre-training step (2-vectors) and its polarised form (identity I1);
      ``descent_linear``, ``expanded_linear``: the same with grad G = grad F + e (I3);
      ``descent_fine``, ``rewritten_fine``: a fine-tuning step, variance V (I2).
    * ``dropped_pre`` = -eta/2 (1 - L eta) ||grad G||^2 and ``dropped_grad`` (the same with
      ||grad F||^2): the non-positive terms dropped because eta L <= 1.
    * ``step_pre`` / ``step_pre_linear`` / ``step_fine``: the one-step bounds on
      E F(w+) - F(w) (scalar symbols, after the shift bounds).
    * ``bound_per_round`` / ``bound_per_round_linear``: Psi telescoped with per-round batches
      (SymPy Sums over m, n of ``Dm[m]``, ``betan[n]``).
    * ``bound`` / ``bound_linear``: stage-constant Psi(M, N, D, beta).
    * ``a0``, ``a1``, ``a1_linear``, ``a2``: coefficients read off ``bound``/``bound_linear``.
    """
    import sympy as sp

    eta, L, s2, Phi, d, G = sp.symbols("eta L sigma2 Phi delta G", positive=True)
    M, N, D, beta, V = sp.symbols("M N D beta V", positive=True)
    gF2, gG2, e2, Fe = sp.symbols("gF2 gG2 e2 Fe", real=True)
    m, n = sp.symbols("m n", integer=True, nonnegative=True)
    Dm, betan = sp.IndexedBase("D", positive=True), sp.IndexedBase("beta", positive=True)
    gF = sp.symbols("x1:3", real=True)
    gG = sp.symbols("y1:3", real=True)
    e = sp.symbols("e1:3", real=True)

    def dot(u, v):
        return sum(a * b for a, b in zip(u, v))

    def sub(u, v):
        return [a - b for a, b in zip(u, v)]

    def add(u, v):
        return [a + b for a, b in zip(u, v)]

    # Descent lemma: E F(w+) - F(w) <= -eta <grad F, E g> + (L eta^2/2) E||g||^2 with
    # E||g||^2 = ||E g||^2 + variance. Each rewriting is a function of the squared norms
    # (and inner product), so the same expression serves for 2-vectors (identity checks)
    # and for scalar symbols (the bound).
    def polar(nF, nG, nE):  # pre-training, polarisation <a, b> = (|a|^2 + |b|^2 - |a-b|^2)/2
        return -eta / 2 * nF - eta / 2 * (1 - L * eta) * nG + eta / 2 * nE + L * eta**2 * s2 / (2 * D)

    def expanded(nF, nFe, nE):  # pre-training with grad G = grad F + e
        return (
            -eta * (1 - L * eta / 2) * nF - eta * (1 - L * eta) * nFe + L * eta**2 / 2 * nE
            + L * eta**2 * s2 / (2 * D)
        )

    def fine(nF):  # fine-tuning: unbiased aggregate, variance V = sigma^2 beta
        return -eta / 2 * nF - eta / 2 * (1 - L * eta) * nF + L * eta**2 * V / 2

    descent_pre = -eta * dot(gF, gG) + L * eta**2 / 2 * (dot(gG, gG) + s2 / D)
    polarised_pre = polar(dot(gF, gF), dot(gG, gG), dot(sub(gF, gG), sub(gF, gG)))
    gGe = add(gF, e)
    descent_linear = -eta * dot(gF, gGe) + L * eta**2 / 2 * (dot(gGe, gGe) + s2 / D)
    expanded_linear = expanded(dot(gF, gF), dot(gF, e), dot(e, e))
    descent_fine = -eta * dot(gF, gF) + L * eta**2 / 2 * (dot(gF, gF) + V)
    rewritten_fine = fine(dot(gF, gF))

    # One-step bounds: drop the non-positive terms (coefficient -eta/2 (1 - eta L) <= 0, and
    # -eta (1 - L eta/2) = -eta/2 - eta/2 (1 - L eta)), then ||e||^2 <= delta^2 and
    # <grad F, e> >= -G delta (the tests check each sign).
    dropped_pre = -eta / 2 * (1 - L * eta) * gG2
    dropped_grad = -eta / 2 * (1 - L * eta) * gF2
    step_pre = sp.expand(polar(gF2, gG2, e2) - dropped_pre).subs(e2, d**2)
    step_pre_linear = sp.expand(expanded(gF2, Fe, e2) - dropped_grad).subs({Fe: -G * d, e2: d**2})
    step_fine = sp.expand(fine(gF2) - dropped_grad).subs(V, s2 * beta)

    # Telescoping: sum over m < M of step_pre(D(m)) and n < N of step_fine(beta(n)); the
    # -eta/2 ||grad F||^2 terms move left, E F(w_{M+N}) >= F* bounds the rest by Phi, and
    # dividing by eta (M + N)/2 bounds the average of E||grad F(w_t)||^2.
    def telescoped(step):
        def total(expr, index, upper):
            terms = sp.Add.make_args(sp.expand(expr))
            return sum(sp.Sum(term, (index, 0, upper - 1)).doit() for term in terms)

        pre = total((step + eta / 2 * gF2).subs(D, Dm[m]), m, M)
        post = total((step_fine + eta / 2 * gF2).subs(beta, betan[n]), n, N)
        return (Phi + pre + post) * 2 / (eta * (M + N))

    bound_per_round = telescoped(step_pre)
    bound_per_round_linear = telescoped(step_pre_linear)

    def stage_constant(expr):
        return sp.simplify(
            expr.replace(lambda x: isinstance(x, sp.Sum), lambda s: s.function.subs(
                {Dm[m]: D, betan[n]: beta}) * (s.limits[0][2] + 1)
            ).subs({Dm[m]: D, betan[n]: beta})
        )

    bound = stage_constant(bound_per_round)
    bound_linear = stage_constant(bound_per_round_linear)

    def coefficients(expr):
        numerator = sp.expand(sp.simplify(expr * (M + N)))
        poly = sp.Poly(numerator, M, N)
        a0 = poly.coeff_monomial(1)
        per_m = sp.expand(poly.coeff_monomial(M))
        a2 = sp.simplify(per_m.coeff(1 / D))
        a1 = sp.simplify(per_m - a2 / D)
        return a0, a1, a2

    a0, a1, a2 = coefficients(bound)
    _, a1_linear, _ = coefficients(bound_linear)
    return {
        "symbols": {
            "eta": eta, "L": L, "sigma2": s2, "Phi": Phi, "delta": d, "G": G, "M": M,
            "N": N, "D": D, "beta": beta, "V": V, "gF2": gF2, "gG2": gG2, "e2": e2, "Fe": Fe, "m": m,
            "n": n, "Dm": Dm, "betan": betan, "gF": gF, "gG": gG, "e": e,
        },
        "descent_pre": descent_pre,
        "polarised_pre": polarised_pre,
        "dropped_pre": dropped_pre,
        "dropped_grad": dropped_grad,
        "descent_linear": descent_linear,
        "expanded_linear": expanded_linear,
        "descent_fine": descent_fine,
        "rewritten_fine": rewritten_fine,
        "step_pre": step_pre,
        "step_pre_linear": step_pre_linear,
        "step_fine": step_fine,
        "bound_per_round": bound_per_round,
        "bound_per_round_linear": bound_per_round_linear,
        "bound": bound,
        "bound_linear": bound_linear,
        "a0": a0,
        "a1": a1,
        "a1_linear": a1_linear,
        "a2": a2,
    }


# ---- NumPy forms ---------------------------------------------------------------------------


def coefficients(
    *,
    learning_rate: float,
    smoothness: float,
    grad_variance: float,
    initial_gap: float,
    shift: float,
    variant: str = "squared_shift",
    grad_bound: float | None = None,
) -> Coefficients:
    """(a0, a1, a2) of the chosen variant (``grad_bound`` G needed by ``linear_shift``)."""
    eta, L = learning_rate, smoothness
    if variant == "squared_shift":
        a1 = shift**2
    elif variant == "linear_shift":
        if grad_bound is None:
            raise ValueError("linear_shift needs grad_bound G > 0")
        a1 = 2.0 * (1.0 - L * eta) * grad_bound * shift + L * eta * shift**2
    else:
        raise ValueError(f"variant = {variant!r}: must be one of {VARIANTS}")
    return Coefficients(2.0 * initial_gap / eta, a1, L * eta * grad_variance)


def beta(weights: np.ndarray, batches) -> np.ndarray:
    """beta = sum_k alpha_k^2 / B_k [1/sample]; devices on the last axis of ``batches``."""
    with np.errstate(divide="ignore"):  # B = 0 (unused stage) gives inf, ignored by Q
        return np.sum(np.asarray(weights, float) ** 2 / np.asarray(batches, float), axis=-1)


def batch_term(M, N, pretrain_batch, beta_value) -> np.ndarray:
    """Q = M/D + N beta [1/sample] (stage-constant); a stage with 0 rounds adds 0 whatever
    its batch (D = 0 allowed when M = 0). Broadcasts over arrays."""
    M, N = np.asarray(M, float), np.asarray(N, float)
    D, b = np.asarray(pretrain_batch, float), np.asarray(beta_value, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(M > 0, M / D, 0.0) + np.where(N > 0, N * b, 0.0)


def psi_from_q(M, N, q, coeffs: Coefficients) -> np.ndarray:
    """Psi = [a0 + a1 M + a2 Q] / (M + N) [F]^2/[w]^2; NaN where M + N = 0 (undefined)."""
    M, N = np.asarray(M, float), np.asarray(N, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (coeffs.a0 + coeffs.a1 * M + coeffs.a2 * np.asarray(q, float)) / (M + N)
    return np.where(M + N > 0, value, np.nan)


def psi(M, N, pretrain_batch, beta_value, coeffs: Coefficients) -> np.ndarray:
    """Stage-constant Psi(M, N, D, beta), vectorised (beta from :func:`beta`)."""
    return psi_from_q(M, N, batch_term(M, N, pretrain_batch, beta_value), coeffs)


def psi_per_round(pretrain_batches, finetune_batches, weights, coeffs: Coefficients) -> float:
    """Psi with per-round batches: ``pretrain_batches`` D(m) (length M) and
    ``finetune_batches`` B_k(n) (N x K)."""
    D = np.asarray(pretrain_batches, float).reshape(-1)
    B = np.asarray(finetune_batches, float).reshape(-1, np.asarray(weights).size)
    M, N = D.size, B.shape[0]
    q = float(np.sum(1.0 / D)) + float(np.sum(beta(weights, B)))
    return float(psi_from_q(M, N, q, coeffs))
