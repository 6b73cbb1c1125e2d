"""EdgeSplit's optional convergence term (spec §4.3), derived in SymPy.

Model: one round is one SGD step x_{r+1} = x_r - gamma*g_r on an L_f-smooth f with unbiased
gradients of variance <= sigma^2 and f(x_0) - inf f <= Delta. The expressions here are the
single source of truth; :func:`rounds_needed` is their NumPy/float form and is tested
against them at random points.
"""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=1)
def derivation() -> dict:
    """The derivation step by step, as SymPy expressions keyed by name.

    * ``descent``: right side of the descent lemma minus E f(x_r), one round.
    * ``bound``: min_r E||grad f(x_r)||^2 <= 2*Delta/(gamma*R) + L_f*gamma*sigma^2 (gamma <= 1/L_f).
    * ``rounds``: R(epsilon) before the ceiling, from bound = epsilon.
    * ``optimal_step``: gamma* = min(1/L_f, epsilon/(2*L_f*sigma^2)).
    * ``rounds_optimal``: R at gamma* (piecewise in epsilon vs 2*sigma^2), before the ceiling.
    """
    import sympy as sp

    gamma, L, var, gap, R, eps, grad2 = sp.symbols(
        "gamma L_f sigma2 Delta R epsilon G", positive=True
    )
    descent = -gamma * (1 - L * gamma / 2) * grad2 + L * gamma**2 * var / 2
    # Telescoping R rounds: gamma*(1 - L*gamma/2) * sum G_r <= Delta + R*L*gamma^2*sigma^2/2;
    # with gamma <= 1/L the factor (1 - L*gamma/2) >= 1/2, so min_r G_r <= (1/R) sum_r G_r <= bound.
    bound = 2 * gap / (gamma * R) + L * gamma * var
    rounds = sp.solve(sp.Eq(bound, eps), R)[0]
    # R(gamma) is minimal where gamma*(eps - L*gamma*var) is maximal: d/dgamma = 0.
    unconstrained = sp.solve(sp.diff(gamma * (eps - L * gamma * var), gamma), gamma)[0]
    optimal_step = sp.Min(1 / L, unconstrained)
    rounds_optimal = sp.Piecewise(
        (sp.simplify(rounds.subs(gamma, unconstrained)), eps <= 2 * var),
        (sp.simplify(rounds.subs(gamma, 1 / L)), True),
    )
    return {
        "symbols": {"gamma": gamma, "L_f": L, "sigma2": var, "Delta": gap, "R": R, "epsilon": eps, "G": grad2},
        "descent": descent,
        "bound": bound,
        "rounds": rounds,
        "optimal_step": optimal_step,
        "rounds_optimal": rounds_optimal,
    }


def optimal_step(epsilon: float, smoothness: float, variance: float) -> float:
    """gamma* = min(1/L_f, epsilon/(2 L_f sigma^2)) [1/(unit of the gradient squared)]."""
    if variance == 0:
        return 1.0 / smoothness
    return min(1.0 / smoothness, epsilon / (2.0 * smoothness * variance))


def rounds_needed(
    epsilon: float,
    smoothness: float,
    variance: float,
    initial_gap: float,
    learning_rate: float | None,
) -> int | None:
    """R(epsilon) = ceil(2*Delta / (gamma*(epsilon - L_f*gamma*sigma^2))); ``None`` if unreachable.

    ``learning_rate=None`` uses gamma*. The target is unreachable when
    epsilon <= L_f*gamma*sigma^2 (the noise floor of the chosen step).
    """
    gamma = optimal_step(epsilon, smoothness, variance) if learning_rate is None else learning_rate
    slack = epsilon - smoothness * gamma * variance
    if slack <= 0:
        return None
    value = 2.0 * initial_gap / (gamma * slack)
    nearest = round(value)
    if abs(value - nearest) <= 1e-9 * max(1.0, value):
        return max(1, int(nearest))
    return max(1, math.ceil(value))
