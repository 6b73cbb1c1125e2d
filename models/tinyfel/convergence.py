"""TinyFEL's convergence bound (spec §4.3), derived in SymPy step by step.

Assumptions: F = sum_k p_k F_k is L_s-smooth and bounded below by F*; stochastic gradients
are unbiased with per-sample variance sigma^2; ||grad_l F_k(w)||^2 <= G_l^2 for all w; one
round is one aggregated step w+ = w - eta g with g = sum_k p_k a_k m_k * grad F_k, where the
mask m_k keeps layers s_k..L (unnormalised aggregation, p over all devices).

:func:`derivation` is the single source of truth; the float functions below are its NumPy
forms and are tested against it at random points. The drift term drift_coeff eta^2 tau^2
L_s^2 G^2 of N(a) is the spec's additive allowance for client drift; it is carried along,
not derived.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

CEILING_RTOL = 1e-12
"""R = ceil(x (1 - CEILING_RTOL)): x within rounding above an integer counts as that integer."""


@lru_cache(maxsize=4)
def derivation(devices: int = 3, layers: int = 4) -> dict:
    """The derivation as SymPy expressions, for a symbolic fleet of the given size.

    Keys (each step checked by the tests with ``sympy.simplify``):

    * ``layer_bias``: sum_k p_k (1 - a_k x_kl), the factor of G_l in the bound on ||e_l||
      (step 1), to be compared with ``1 - coverage`` under sum p = 1;
    * ``descent``: right side of the descent lemma minus F(w) (step 2), written with the
      squared norms ``gF2`` = ||grad F||^2, ``e2`` = ||e||^2, the inner product ``ge`` and
      the variance ``V``;
    * ``polarised``: the same after polarisation with eta L_s <= 1 (step 3);
    * ``bound_quadratic``: 2 Delta/(eta R) + sum_l (1 - u_l)^2 G_l^2 + N (step 4);
    * ``bias_quadratic``, ``bias_relaxed``, ``bias_linear``: Phi_q, sum_l (1 - u_l) G_l^2 and
      G^2 (1 - sum_k p_k a_k rho_k) (step 5; the last two are equal);
    * ``bound``: 2 Delta/(eta R) + Phi + N, the linear conservative form;
    * ``rounds``: R solving bound = epsilon, before the ceiling (step 6);
    * ``noise``: N(a).
    """
    import sympy as sp

    K, L = devices, layers
    p = sp.symbols(f"p1:{K + 1}", nonnegative=True)
    a = sp.symbols(f"a1:{K + 1}", nonnegative=True)
    x = sp.Matrix(K, L, lambda k, j: sp.Symbol(f"x{k + 1}_{j + 1}", nonnegative=True))
    G = sp.symbols(f"G1:{L + 1}", positive=True)  # G[j] stands for G_j^2 (layer j + 1)
    eta, Ls, s2, beta, gap, eps, R, V = sp.symbols(
        "eta L_s sigma2 beta Delta epsilon R V", positive=True
    )
    tau, drift = sp.symbols("tau drift", nonnegative=True)
    gF2, e2, ge, Phi = sp.symbols("gF2 e2 ge Phi", real=True)
    G2 = sum(G)
    coverage = [sum(p[k] * a[k] * x[k, j] for k in range(K)) for j in range(L)]
    rho = [sum(x[k, j] * G[j] for j in range(L)) / G2 for k in range(K)]

    # Step 1: e_l = sum_k p_k (1 - a_k x_kl) grad_l F_k, so ||e_l|| <= G_l * layer_bias[l].
    layer_bias = [sum(p[k] * (1 - a[k] * x[k, j]) for k in range(K)) for j in range(L)]
    # Step 2: descent lemma with E g = grad F - e and Var g <= V.
    descent = -eta * (gF2 - ge) + Ls * eta**2 / 2 * ((gF2 - 2 * ge + e2) + V)
    # Step 3: polarisation; the dropped term -(eta/2)(1 - eta L_s)||grad F - e||^2 is <= 0.
    polarised = -eta / 2 * gF2 + eta / 2 * e2 + Ls * eta**2 / 2 * V
    # Step 4: telescope over R rounds and divide by eta R / 2; ||e||^2 <= sum_l (1-u_l)^2 G_l^2.
    noise = (
        eta * Ls * s2 / beta * sum(p[k] ** 2 * a[k] for k in range(K))
        + drift * eta**2 * tau**2 * Ls**2 * G2
    )
    bias_quadratic = sum((1 - coverage[j]) ** 2 * G[j] for j in range(L))
    bound_quadratic = 2 * gap / (eta * R) + bias_quadratic + noise
    # Step 5: 0 <= 1 - u_l <= 1, so (1 - u_l)^2 <= 1 - u_l; exchanging the sums gives Phi.
    bias_relaxed = sum((1 - coverage[j]) * G[j] for j in range(L))
    bias_linear = G2 * (1 - sum(p[k] * a[k] * rho[k] for k in range(K)))
    bound = 2 * gap / (eta * R) + Phi + noise
    # Step 6: the target bound <= epsilon.
    rounds = sp.solve(sp.Eq(bound, eps), R)[0]
    return {
        "symbols": {
            "p": p,
            "a": a,
            "x": x,
            "G": G,
            "eta": eta,
            "L_s": Ls,
            "sigma2": s2,
            "beta": beta,
            "Delta": gap,
            "epsilon": eps,
            "R": R,
            "V": V,
            "tau": tau,
            "drift": drift,
            "gF2": gF2,
            "e2": e2,
            "ge": ge,
            "Phi": Phi,
        },
        "coverage": coverage,
        "rho": rho,
        "layer_bias": layer_bias,
        "descent": descent,
        "polarised": polarised,
        "noise": noise,
        "bias_quadratic": bias_quadratic,
        "bound_quadratic": bound_quadratic,
        "bias_relaxed": bias_relaxed,
        "bias_linear": bias_linear,
        "bound": bound,
        "rounds": rounds,
    }


# ---- NumPy forms -----------------------------------------------------------------------


def coverage(
    weights: np.ndarray, selected: np.ndarray, first_layer: np.ndarray, layers: int
) -> np.ndarray:
    """u_l = sum_k p_k a_k 1[l >= s_k] for l = 1..L (``first_layer`` s_k is 1-based) [-]."""
    rows = np.arange(1, layers + 1)[None, :] >= np.asarray(first_layer)[:, None]
    return (np.asarray(weights) * np.asarray(selected, dtype=float)) @ rows


def bias_linear(
    weights: np.ndarray, selected: np.ndarray, ratio: np.ndarray, grad_sq_total: float
) -> float:
    """Phi = G^2 (1 - sum_k p_k a_k rho_k) [unit of G^2]; ``ratio`` is rho_{n_k} per device."""
    return grad_sq_total * (
        1.0 - float(np.sum(np.asarray(weights) * np.asarray(selected) * np.asarray(ratio)))
    )


def bias_quadratic(grad_sq: np.ndarray, cover: np.ndarray) -> float:
    """Phi_q = sum_l G_l^2 (1 - u_l)^2 [unit of G^2]."""
    return float(np.sum(np.asarray(grad_sq) * (1.0 - np.asarray(cover)) ** 2))


def bias_normalised(grad_sq: np.ndarray, cover: np.ndarray) -> float:
    """Worst-case bias of the normalised rule (spec §9) [unit of G^2]:
    sum_l of 4 (1-u_l)^2 G_l^2 if u_l > 0, else G_l^2."""
    u = np.asarray(cover)
    per_layer = np.where(u > 0, 4.0 * (1.0 - u) ** 2, 1.0)
    return float(np.sum(np.asarray(grad_sq) * per_layer))


def noise(
    weights: np.ndarray,
    selected: np.ndarray,
    *,
    learning_rate: float,
    smoothness: float,
    grad_variance: float,
    batch_size: int,
    drift_coeff: float,
    local_steps: int,
    grad_sq_total: float,
) -> float:
    """N(a) = eta L_s sigma^2/beta sum_k p_k^2 a_k + drift eta^2 tau^2 L_s^2 G^2 [unit of G^2]."""
    spread = float(np.sum(np.asarray(weights) ** 2 * np.asarray(selected)))
    drift = drift_coeff * learning_rate**2 * local_steps**2 * smoothness**2 * grad_sq_total
    return learning_rate * smoothness * grad_variance / batch_size * spread + drift


def rounds_needed(
    initial_gap: float, learning_rate: float, target: float, bias: float, noise_term: float
) -> int | None:
    """R = ceil(2 Delta / (eta (epsilon - Phi - N))) with a 1e-12 relative guard; ``None`` if
    epsilon <= Phi + N (target unreachable)."""
    slack = target - bias - noise_term
    if slack <= 0:
        return None
    value = 2.0 * initial_gap / (learning_rate * slack)
    return max(1, math.ceil(value * (1.0 - CEILING_RTOL)))


def bound_value(
    initial_gap: float, learning_rate: float, rounds: float, bias: float, noise_term: float
) -> float:
    """The right side 2 Delta/(eta R) + Phi + N of the bound [unit of G^2]."""
    return 2.0 * initial_gap / (learning_rate * rounds) + bias + noise_term
