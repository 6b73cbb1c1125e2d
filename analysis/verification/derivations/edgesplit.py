"""EdgeSplit's convergence term (spec §4.3) rebuilt step by step from its assumptions.

Assumptions: f is L_f-smooth with f(x_0) - inf f <= Delta; one round is one step
x_{r+1} = x_r - gamma g_r of the aggregated model, where g_r = sum_i p_i (mean of beta
per-sample gradients of device i) is unbiased, E g_r = grad f(x_r), and each per-sample
gradient has variance <= sigma_1^2 (so sigma^2 = sigma_1^2 sum_i p_i^2 / beta, step E4).

The last steps compare the result with the model's own expressions
(:func:`edgeopt.models.edgesplit.convergence.derivation`) and float functions; a
disagreement there is a finding about the model.
"""

from __future__ import annotations

import math

import numpy as np

from edgeopt.analysis.verification.steps import (
    Step,
    descent_lemma_values,
    finite_distribution,
    minibatch_numbers,
    second_moment_numbers,
    simplex,
)


def steps() -> list[Step]:
    """The derivation of spec §4.3 as checkable steps, in order."""
    import sympy as sp

    from edgeopt.models.edgesplit import convergence

    terms = convergence.derivation()
    s = terms["symbols"]
    gamma, L, var, gap, R, eps, G = (s[k] for k in ("gamma", "L_f", "sigma2", "Delta", "R", "epsilon", "G"))
    f_next, f_x, inner, g2 = sp.symbols("f_next f_x inner g2", real=True)
    positive = _positive_sampler({gamma: (1e-3, 1.0), L: (0.1, 10.0), var: (0.0, 5.0),
                                  gap: (0.01, 100.0), R: (1.0, 1e4), eps: (1e-3, 10.0), G: (0.0, 10.0)})

    result = [_descent_lemma(f_next, f_x, inner, g2, gamma, L)]
    result += _moment_steps()

    # E5: expectation of the descent lemma over the round's batch.
    one_round = (f_x - gamma * inner + L * gamma**2 * g2 / 2 - f_x).subs({inner: G, g2: G + var})
    result.append(Step(
        "E5 one round (model's descent term)",
        "E f(x_{r+1}) - f(x_r) <= -gamma<grad f, E g> + L_f gamma^2/2 E||g||^2 "
        "= -gamma(1 - L_f gamma/2)||grad f||^2 + L_f gamma^2 sigma^2/2 (the model's `descent`)",
        "==", one_round, terms["descent"], "E g = grad f and E||g||^2 = ||grad f||^2 + sigma^2 (E2)",
        sample=positive,
    ))
    # E6: gamma <= 1/L_f.
    halved = -gamma * G / 2 + L * gamma**2 * var / 2
    result.append(Step(
        "E6 step size gamma <= 1/L_f",
        "-gamma(1 - L_f gamma/2)||grad f||^2 <= -(gamma/2)||grad f||^2",
        "<=", terms["descent"], halved, "0 < gamma <= 1/L_f",
        sample=_step_size_sampler(gamma, L, var, G),
        certificate=gamma * G * (1 - L * gamma) / 2,
    ))
    result.append(_telescoping())
    # E8: sum the halved inequality over R rounds, f_0 - E f_R <= Delta, divide by gamma R/2.
    result.append(Step(
        "E8 average over rounds (model's bound)",
        "(1/R) sum_r E||grad f(x_r)||^2 <= (Delta + R L_f gamma^2 sigma^2/2)/(gamma R/2) "
        "= 2 Delta/(gamma R) + L_f gamma sigma^2 (the model's `bound`)",
        "==", (gap + R * L * gamma**2 * var / 2) / (gamma * R / 2), terms["bound"],
        "f(x_0) - E f(x_R) <= Delta (E7 and f >= inf f)", sample=positive,
    ))
    result.append(_min_below_average())
    result.append(Step(
        "E10 rounds for a target (model's R(epsilon))",
        "the bound at R = R(epsilon) equals epsilon",
        "==", terms["bound"].subs(R, terms["rounds"]), eps, "epsilon > L_f gamma sigma^2",
        sample=positive,
    ))
    unconstrained = eps / (2 * L * var)
    result.append(Step(
        "E11 best step size",
        "d/dgamma [gamma (epsilon - L_f gamma sigma^2)] = 0 at gamma = epsilon/(2 L_f sigma^2)",
        "==", sp.diff(gamma * (eps - L * gamma * var), gamma).subs(gamma, unconstrained), sp.S.Zero,
        "sigma^2 > 0", sample=positive,
    ))
    small, large = terms["rounds_optimal"].args
    result.append(Step(
        "E12 R at gamma* (model's rounds_optimal, epsilon <= 2 sigma^2)",
        "R(epsilon) at gamma = epsilon/(2 L_f sigma^2) is 8 L_f Delta sigma^2/epsilon^2",
        "==", terms["rounds"].subs(gamma, unconstrained), small.expr, "epsilon <= 2 sigma^2",
        sample=positive,
    ))
    result.append(Step(
        "E13 R at gamma* (model's rounds_optimal, epsilon > 2 sigma^2)",
        "R(epsilon) at gamma = 1/L_f is 2 L_f Delta/(epsilon - sigma^2)",
        "==", terms["rounds"].subs(gamma, 1 / L), large.expr, "epsilon > 2 sigma^2",
        sample=positive,
    ))
    result.append(Step(
        "E14 gamma* minimises R(epsilon)",
        "R(epsilon; gamma*) <= R(epsilon; gamma) for every 0 < gamma <= 1/L_f with epsilon > "
        "L_f gamma sigma^2 (gamma* = the model's optimal_step)",
        "<=", None, None, "epsilon > L_f gamma sigma^2", numeric=_best_step_numbers,
    ))
    result.append(Step(
        "E15 model's float R(epsilon)",
        "rounds_needed(...) = ceil of the symbolic R(epsilon) (at gamma or gamma*)",
        "==", None, None, "", numeric=_float_rounds_numbers,
    ))
    result.append(_rough_variance())
    return result


# ---- individual steps --------------------------------------------------------------------


def _descent_lemma(f_next, f_x, inner, g2, gamma, L) -> Step:
    def sample(rng, count):
        values = descent_lemma_values(rng, count)
        return {f_next: values["f_next"], f_x: values["f_x"], inner: values["inner"],
                g2: values["g2"], gamma: values["gamma"], L: values["L"]}

    return Step(
        "E1 descent lemma",
        "f(x - gamma g) <= f(x) - gamma<grad f(x), g> + L_f gamma^2/2 ||g||^2",
        "<=", f_next, f_x - gamma * inner + L * gamma**2 * g2 / 2,
        "f L_f-smooth (random smooth functions; half are quadratics where it is tight)",
        sample=sample,
    )


def _moment_steps() -> list[Step]:
    """E2-E4: second moment of an unbiased estimate, mini-batch average, device aggregate."""
    import sympy as sp

    m = sp.Matrix(sp.symbols("m1:3", real=True))
    v1, v2 = sp.Matrix(sp.symbols("u1:3", real=True)), sp.Matrix(sp.symbols("w1:3", real=True))
    q1, q2 = sp.symbols("q1 q2", positive=True)
    q3 = 1 - q1 - q2
    v3 = -(q1 * v1 + q2 * v2) / q3  # the third atom makes the noise zero-mean
    atoms, probabilities = (v1, v2, v3), (q1, q2, q3)
    second = sum(q * (m + v).dot(m + v) for q, v in zip(probabilities, atoms))
    noise = sum(q * v.dot(v) for q, v in zip(probabilities, atoms))

    # Batch of three draws from a two-atom zero-mean law (q, -q u/(1-q)).
    q = sp.Symbol("q", positive=True)
    a1 = v1
    a2 = -q * v1 / (1 - q)
    law = ((q, a1), (1 - q, a2))
    batch = 3
    mean_square = 0
    for outcome in np.ndindex(*(2,) * batch):
        weight = sp.Mul(*[law[k][0] for k in outcome])
        average = sum((law[k][1] for k in outcome), sp.zeros(2, 1)) / batch
        mean_square += weight * average.dot(average)
    single = sum(w * a.dot(a) for w, a in law)

    # Two devices with independent two-atom zero-mean noise and weights p1, p2.
    p1, p2, r = sp.symbols("p1 p2 r", positive=True)
    b1, b2 = v2, -r * v2 / (1 - r)
    other = ((r, b1), (1 - r, b2))
    aggregate = sum(w * wb * (p1 * a + p2 * b).dot(p1 * a + p2 * b) for w, a in law for wb, b in other)
    separate = p1**2 * single + p2**2 * sum(w * b.dot(b) for w, b in other)

    return [
        Step(
            "E2 second moment of an unbiased estimate",
            "E||g||^2 = ||grad f||^2 + E||g - grad f||^2 when E g = grad f",
            "==", second, m.dot(m) + noise,
            "zero-mean noise (symbolically: any 3-atom law in R^2)", numeric=second_moment_numbers,
        ),
        Step(
            "E3 variance of an averaged mini-batch",
            "E||(1/beta) sum_j n_j||^2 = E||n||^2/beta for i.i.d. zero-mean n_j",
            "==", mean_square, single / batch,
            "i.i.d. samples (symbolically: beta = 3, a 2-atom law)", numeric=minibatch_numbers,
        ),
        Step(
            "E4 variance of the device aggregate",
            "E||sum_i p_i n_i||^2 = sum_i p_i^2 E||n_i||^2 for independent zero-mean device noise;"
            " with E3: sigma^2 = sigma_1^2 sum_i p_i^2/beta",
            "==", aggregate, separate,
            "devices independent (symbolically: 2 devices, 2-atom laws)", numeric=_aggregate_numbers,
        ),
    ]


def _telescoping() -> Step:
    import sympy as sp

    values = sp.symbols("f0:7", real=True)
    total = sum(values[r + 1] - values[r] for r in range(6))

    def numbers(rng, count):
        lhs, rhs = np.empty(count), np.empty(count)
        for k in range(count):
            f = rng.normal(size=int(rng.integers(2, 200))) * 10
            lhs[k], rhs[k] = np.sum(np.diff(f)), f[-1] - f[0]
        return lhs, rhs

    return Step("E7 telescoping", "sum_{r<R} (f_{r+1} - f_r) = f_R - f_0",
                "==", total, values[6] - values[0], "(symbolically R = 6)", numeric=numbers)


def _min_below_average() -> Step:
    def numbers(rng, count):
        lhs, rhs = np.empty(count), np.empty(count)
        for k in range(count):
            values = rng.exponential(size=int(rng.integers(1, 100)))
            lhs[k], rhs[k] = values.min(), values.mean()
        return lhs, rhs

    return Step("E9 minimum below the average",
                "min_r E||grad f(x_r)||^2 <= (1/R) sum_r E||grad f(x_r)||^2 (the spec states the min)",
                "<=", None, None, "", numeric=numbers)


def _rough_variance() -> Step:
    import sympy as sp

    count = 4
    p = sp.symbols(f"p1:{count + 1}", positive=True)
    s1, beta = sp.symbols("sigma1_2 beta", positive=True)
    rough, exact = s1 / (beta * count), s1 * sum(x**2 for x in p) / beta

    def sample(rng, n):
        weights = simplex(rng, n, count)
        values = {p[k]: weights[:, k] for k in range(count)}
        values.update({s1: rng.uniform(0.1, 5, n), beta: rng.integers(1, 64, n).astype(float)})
        return values

    return Step(
        "E16 the spec's rough sigma^2 = sigma_1^2/(beta N)",
        "sigma_1^2/(beta N) <= sigma_1^2 sum_i p_i^2/beta: the rough choice equals the exact "
        "aggregate variance (E4) only for equal sample counts and underestimates it otherwise",
        "<=", rough, exact, "sum_i p_i = 1 (symbolically N = 4)", sample=sample,
        certificate=s1 / beta * sum((x - sp.Rational(1, count)) ** 2 for x in p),
        substitutions={p[-1]: 1 - sum(p[:-1])},
    )


# ---- samplers and direct computations ------------------------------------------------------


def _positive_sampler(ranges):
    def sample(rng, count):
        return {symbol: rng.uniform(lo, hi, count) for symbol, (lo, hi) in ranges.items()}

    return sample


def _step_size_sampler(gamma, L, var, G):
    def sample(rng, count):
        smooth = rng.uniform(0.1, 10.0, count)
        return {L: smooth, gamma: rng.uniform(1e-6, 1.0, count) / smooth,
                var: rng.uniform(0, 5, count), G: rng.uniform(0, 10, count)}

    return sample




def _aggregate_numbers(rng, count):
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        devices, dim = int(rng.integers(2, 4)), int(rng.integers(1, 4))
        p = rng.dirichlet(np.ones(devices))
        laws = [finite_distribution(rng, int(rng.integers(2, 4)), dim) for _ in range(devices)]
        total = 0.0
        for outcome in np.ndindex(*[len(w) for w, _ in laws]):
            probability = math.prod(laws[i][0][j] for i, j in enumerate(outcome))
            combined = sum(p[i] * laws[i][1][j] for i, j in enumerate(outcome))
            total += probability * float(combined @ combined)
        lhs[k] = total
        rhs[k] = sum(p[i] ** 2 * (w @ np.sum(a**2, axis=1)) for i, (w, a) in enumerate(laws))
    return lhs, rhs


def _best_step_numbers(rng, count):
    from edgeopt.models.edgesplit import convergence

    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        L, var, gap = rng.uniform(0.1, 10), rng.uniform(0.01, 5), rng.uniform(0.1, 100)
        eps = rng.uniform(0.01, 4) * var
        best = convergence.optimal_step(eps, L, var)
        gamma = rng.uniform(1e-4, 1.0) * min(1 / L, eps / (L * var))  # keeps eps > L gamma var
        lhs[k] = 2 * gap / (best * (eps - L * best * var))
        rhs[k] = 2 * gap / (gamma * (eps - L * gamma * var))
    return lhs, rhs


def _float_rounds_numbers(rng, count):
    """The model's rounds_needed against the ceiling (with its 1e-9 snap to an integer) of the
    symbolic R(epsilon), at gamma* or at a random gamma <= 1/L_f."""
    import sympy as sp

    from edgeopt.models.edgesplit import convergence

    terms = convergence.derivation()
    s = terms["symbols"]
    exact = sp.lambdify([s["gamma"], s["L_f"], s["sigma2"], s["Delta"], s["epsilon"]], terms["rounds"])
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        L, var, gap = rng.uniform(0.1, 10), rng.uniform(0.0, 5), rng.uniform(0.1, 100)
        eps = rng.uniform(0.05, 10)
        free = rng.random() < 0.5 or var == 0
        gamma = None if free else rng.uniform(1e-3, 1.0) / L
        if gamma is not None and eps <= L * gamma * var:  # gamma* always leaves eps > L gamma var
            eps = 2 * L * gamma * var + 1e-3
        step = convergence.optimal_step(eps, L, var) if gamma is None else gamma
        lhs[k] = convergence.rounds_needed(eps, L, var, gap, gamma)
        value = float(exact(step, L, var, gap, eps))
        nearest = round(value)
        rhs[k] = max(1, nearest if abs(value - nearest) <= 1e-9 * max(1.0, value) else math.ceil(value))
    return lhs, rhs
