"""TinyFEL's convergence bound (spec §4.3) rebuilt step by step from its assumptions.

Assumptions: F = sum_k p_k F_k is L_s-smooth and bounded below; per-sample gradients are
unbiased with variance <= sigma^2; ||grad_l F_k(w)||^2 <= G_l^2 for every w; one round is
one aggregated step w+ = w - eta g with g = sum_k p_k a_k m_k * (mean of beta per-sample
gradients of device k), where the mask m_k keeps layers s_k..L (unnormalised aggregation,
p over all devices). The symbolic instances use the model's fleet of 3 devices and 4 layers
(:func:`edgeopt.models.tinyfel.convergence.derivation`); random general instances use any
number of devices and layers.

The model's drift term drift_coeff eta^2 tau^2 L_s^2 G^2 is an additive allowance, not
derived: the comparison with the model's bound is made with drift_coeff = 0.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from edgeopt.analysis.verification.steps import (
    Step,
    descent_lemma_values,
    finite_distribution,
    simplex,
)


def steps() -> list[Step]:
    """The derivation of spec §4.3 as checkable steps, in order."""
    import sympy as sp

    from edgeopt.models.tinyfel import convergence

    terms = convergence.derivation()
    s = terms["symbols"]
    p, a, x, G = s["p"], s["a"], s["x"], s["G"]
    eta, Ls, s2, beta, gap, eps, R, V = (
        s[k] for k in ("eta", "L_s", "sigma2", "beta", "Delta", "epsilon", "R", "V")
    )
    K, L = len(p), len(G)
    fleet = _fleet_sampler(p, a, x, G, {eta: (1e-3, 1.0), Ls: (0.1, 10.0), s2: (0.0, 5.0),
                                        beta: (1.0, 64.0), gap: (0.01, 100.0), R: (1.0, 1e4),
                                        eps: (1e-3, 10.0), V: (0.0, 5.0)})
    simplex_rule = {p[-1]: 1 - sum(p[:-1])}
    result = []

    # T1: the bias of one layer's aggregate, as vectors in R^2 for the K devices.
    grads = [sp.Matrix(sp.symbols(f"d{k + 1}_1:3", real=True)) for k in range(K)]
    mask = sp.symbols(f"x1:{K + 1}", nonnegative=True)
    full = sum((p[k] * grads[k] for k in range(K)), sp.zeros(2, 1))
    expected = sum((p[k] * a[k] * mask[k] * grads[k] for k in range(K)), sp.zeros(2, 1))
    result.append(Step(
        "T1 layer bias of the sparse aggregate",
        "e_l = grad_l F - E g_l = sum_k p_k (1 - a_k 1[l >= s_k]) grad_l F_k",
        "==", full - expected, sum((p[k] * (1 - a[k] * mask[k]) * grads[k] for k in range(K)),
                                   sp.zeros(2, 1)),
        "unnormalised aggregation, E of device k's masked gradient = masked grad F_k",
        sample=_vector_sampler(p, a, mask, grads),
    ))
    result.append(Step(
        "T2 bias weight is one minus coverage (model's layer_bias and coverage)",
        "sum_k p_k (1 - a_k x_kl) = 1 - u_l for every layer l",
        "==", sp.Matrix(terms["layer_bias"]), sp.Matrix([1 - u for u in terms["coverage"]]),
        "sum_k p_k = 1", sample=fleet, substitutions=simplex_rule,
    ))
    result.append(Step(
        "T3 layer bias bound",
        "||e_l||^2 <= (1 - u_l)^2 G_l^2 (triangle inequality)",
        "<=", None, None, "||grad_l F_k||^2 <= G_l^2, sum p = 1, a and x binary",
        numeric=_layer_bias_numbers,
    ))
    f_next, f_x, inner, g2 = sp.symbols("f_next f_x inner g2", real=True)

    def lemma(rng, count):
        values = descent_lemma_values(rng, count)
        return {f_next: values["f_next"], f_x: values["f_x"], inner: values["inner"],
                g2: values["g2"], eta: values["gamma"], Ls: values["L"]}

    result.append(Step(
        "T4 descent lemma",
        "F(w - eta g) <= F(w) - eta<grad F(w), g> + L_s eta^2/2 ||g||^2",
        "<=", f_next, f_x - eta * inner + Ls * eta**2 * g2 / 2,
        "F L_s-smooth (random smooth functions; half are quadratics where it is tight)",
        sample=lemma,
    ))
    result.append(Step(
        "T5 variance of the sparse aggregate",
        "E||g - E g||^2 <= sum_k p_k^2 a_k sigma^2/beta (independent devices; a mask drops "
        "coordinates; averaging beta samples divides by beta)",
        "<=", None, None, "per-sample variance <= sigma^2", numeric=_sparse_variance_numbers,
    ))
    gF = sp.Matrix(sp.symbols("y1:4", real=True))
    e = sp.Matrix(sp.symbols("e1:4", real=True))
    names = {s["gF2"]: gF.dot(gF), s["ge"]: gF.dot(e), s["e2"]: e.dot(e)}
    vectors = _gradient_sampler(gF, e, eta, Ls, V)
    result.append(Step(
        "T6 one round (model's descent term)",
        "-eta<grad F, E g> + L_s eta^2/2 (||E g||^2 + Var g) with E g = grad F - e is the "
        "model's `descent`",
        "==", -eta * gF.dot(gF - e) + Ls * eta**2 / 2 * ((gF - e).dot(gF - e) + V),
        terms["descent"].subs(names), "E||g||^2 = ||E g||^2 + Var g", sample=vectors,
    ))
    result.append(Step(
        "T7 polarisation",
        "-<x, x - e> = (||e||^2 - ||x||^2 - ||x - e||^2)/2",
        "==", -gF.dot(gF - e), (e.dot(e) - gF.dot(gF) - (gF - e).dot(gF - e)) / 2, "",
        sample=vectors,
    ))
    result.append(Step(
        "T8 step size eta <= 1/L_s (model's polarised form)",
        "descent <= -(eta/2)||grad F||^2 + (eta/2)||e||^2 + L_s eta^2/2 Var g (the model's "
        "`polarised`)",
        "<=", terms["descent"].subs(names), terms["polarised"].subs(names), "0 < eta <= 1/L_s",
        sample=vectors, certificate=eta / 2 * (1 - eta * Ls) * (gF - e).dot(gF - e),
    ))
    bias_q = terms["bias_quadratic"]
    variance = s2 / beta * sum(p[k] ** 2 * a[k] for k in range(K))
    result.append(Step(
        "T9 telescope (model's bound_quadratic)",
        "(1/R) sum_r E||grad F||^2 <= (Delta + R (eta/2) sum_l (1-u_l)^2 G_l^2 + R L_s eta^2/2 "
        "Var)/(eta R/2), which is the model's `bound_quadratic` (drift_coeff = 0)",
        "==", (gap + R * eta / 2 * bias_q + R * Ls * eta**2 / 2 * variance) / (eta * R / 2),
        terms["bound_quadratic"].subs(s["drift"], 0), "T3, T5, T8 and F(w^0) - E F(w^R) <= Delta",
        sample=fleet,
    ))
    result.append(Step(
        "T10 linearise (model's bias_quadratic <= bias_relaxed)",
        "sum_l (1 - u_l)^2 G_l^2 <= sum_l (1 - u_l) G_l^2",
        "<=", bias_q, terms["bias_relaxed"], "0 <= u_l <= 1", sample=fleet,
        certificate=sum(terms["coverage"][j] * (1 - terms["coverage"][j]) * G[j] for j in range(L)),
    ))
    result.append(Step(
        "T11 exchange of sums (model's bias_linear)",
        "sum_l (1 - u_l) G_l^2 = G^2 (1 - sum_k p_k a_k rho_k) with the gradient-mass ratio",
        "==", terms["bias_relaxed"], terms["bias_linear"], "rho_k = sum_{l >= s_k} G_l^2/G^2",
        sample=fleet,
    ))
    result.append(Step(
        "T12 rounds for a target (model's R(a, n))",
        "2 Delta/(eta R) + Phi + N at R = R(a, n) equals epsilon",
        "==", terms["bound"].subs(R, terms["rounds"]), eps, "epsilon > Phi + N",
        sample=_with(fleet, {s["Phi"]: (0.0, 1.0), s["tau"]: (1.0, 10.0), s["drift"]: (0.0, 1.0)}),
    ))
    result.append(Step(
        "T13 normalised aggregation (model's bias_normalised)",
        "dividing layer l's aggregate by u_l gives ||e_l||^2 <= 4 (1 - u_l)^2 G_l^2 if u_l > 0, "
        "G_l^2 if u_l = 0",
        "<=", None, None, "||grad_l F_k||^2 <= G_l^2", numeric=_normalised_numbers,
    ))
    result.append(Step(
        "T14 model's float forms",
        "coverage, bias_linear, bias_quadratic, noise, bound_value and rounds_needed equal the "
        "symbolic expressions",
        "==", None, None, "", numeric=_float_numbers,
    ))
    return result


# ---- samplers ----------------------------------------------------------------------------


def _fleet_sampler(p, a, x, G, ranges):
    """Weights on the simplex, binary a, x_kl = 1[l >= s_k] with random s_k, positive G_l^2."""
    K, L = len(p), len(G)

    def sample(rng, count):
        weights = simplex(rng, count, K)
        values = {p[k]: weights[:, k] for k in range(K)}
        first = rng.integers(1, L + 2, size=(count, K))  # s_k = L + 1: no layer
        for k in range(K):
            values[a[k]] = (rng.random(count) < 0.7).astype(float)
            for j in range(L):
                values[x[k, j]] = (j + 1 >= first[:, k]).astype(float)
        for j in range(L):
            values[G[j]] = rng.uniform(0.01, 2.0, count)
        values.update({symbol: rng.uniform(lo, hi, count) for symbol, (lo, hi) in ranges.items()})
        return values

    return sample


def _with(sampler, ranges):
    def sample(rng, count):
        values = sampler(rng, count)
        values.update({symbol: rng.uniform(lo, hi, count) for symbol, (lo, hi) in ranges.items()})
        return values

    return sample


def _vector_sampler(p, a, mask, grads):
    def sample(rng, count):
        weights = simplex(rng, count, len(p))
        values = {p[k]: weights[:, k] for k in range(len(p))}
        for k, vector in enumerate(grads):
            values[a[k]] = (rng.random(count) < 0.7).astype(float)
            values[mask[k]] = (rng.random(count) < 0.5).astype(float)
            for entry in vector:
                values[entry] = rng.normal(size=count)
        return values

    return sample


def _gradient_sampler(gF, e, eta, Ls, V):
    def sample(rng, count):
        smooth = rng.uniform(0.1, 10, count)
        values = {Ls: smooth, eta: rng.uniform(1e-6, 1.0, count) / smooth, V: rng.uniform(0, 5, count)}
        for entry in list(gF) + list(e):
            values[entry] = rng.normal(size=count) * 2
        return values

    return sample


# ---- direct computations on general instances -------------------------------------------


def _random_fleet(rng):
    """(p, a, first layer s_k, L, per-layer bounds G_l, gradients (K, L, dim) within them)."""
    K, L, dim = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
    p = rng.dirichlet(np.ones(K))
    a = rng.random(K) < 0.7
    first = rng.integers(1, L + 2, size=K)
    bounds = rng.uniform(0.1, 2.0, L)
    if rng.random() < 0.3:  # aligned gradients at the bound: the worst case
        direction = rng.normal(size=(L, dim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        sign = np.where(rng.random(K) < 0.5, 1.0, -1.0) if rng.random() < 0.5 else np.ones(K)
        grads = sign[:, None, None] * direction[None] * bounds[None, :, None]
    else:
        raw = rng.normal(size=(K, L, dim))
        raw /= np.linalg.norm(raw, axis=2, keepdims=True)
        grads = raw * (bounds[None, :, None] * rng.uniform(0, 1, (K, L, 1)) ** (1 / dim))
    return p, a, first, L, bounds, grads


def _layer_bias_numbers(rng, count):
    lhs, rhs = [], []
    for _ in range(count):
        p, a, first, L, bounds, grads = _random_fleet(rng)
        covers = (np.arange(1, L + 1)[None, :] >= first[:, None]) & a[:, None]
        error = np.einsum("k,kl,kld->ld", p, 1.0 - covers, grads)
        u = p @ covers
        _worst(lhs, rhs, np.sum(error**2, axis=1), ((1 - u) * bounds) ** 2)
    return np.array(lhs), np.array(rhs)


def _worst(lhs: list, rhs: list, left: np.ndarray, right: np.ndarray) -> None:
    """Append the (left, right) pair of the layer with the least slack."""
    layer = int(np.argmax(left - right))
    lhs.append(float(left[layer]))
    rhs.append(float(right[layer]))


def _normalised_numbers(rng, count):
    from edgeopt.models.tinyfel import convergence

    lhs, rhs = [], []
    for _ in range(count):
        p, a, first, L, bounds, grads = _random_fleet(rng)
        covers = (np.arange(1, L + 1)[None, :] >= first[:, None]) & a[:, None]
        u = p @ covers
        # Normalised rule: layer l's aggregate is divided by u_l (nothing updates it if u_l = 0).
        share = np.where(u > 0, covers / np.where(u > 0, u, 1.0), 0.0)
        error = np.einsum("k,kl,kld->ld", p, 1.0 - share, grads)
        bound = [convergence.bias_normalised(np.array([b**2]), np.array([c])) for b, c in zip(bounds, u)]
        _worst(lhs, rhs, np.sum(error**2, axis=1), np.array(bound))
    return np.array(lhs), np.array(rhs)


def _sparse_variance_numbers(rng, count):
    lhs, rhs = np.empty(count), np.empty(count)
    for point in range(count):
        K, dim = int(rng.integers(1, 3)), int(rng.integers(2, 4))
        batch = int(rng.integers(1, 3))
        p = rng.dirichlet(np.ones(K))
        a = rng.random(K) < 0.8
        masks = (rng.random((K, dim)) < 0.6).astype(float)
        laws = [finite_distribution(rng, int(rng.integers(2, 4)), dim) for _ in range(K)]
        sigma2 = max(float(w @ np.sum(v**2, axis=1)) for w, v in laws)
        # Exact E||sum_k p_k a_k m_k (mean of batch draws of device k)||^2 by enumeration.
        per_device = []
        for weights, atoms in laws:
            outcomes = list(itertools.product(range(len(weights)), repeat=batch))
            per_device.append([(math.prod(weights[list(o)]), atoms[list(o)].mean(axis=0)) for o in outcomes])
        total = 0.0
        for combination in itertools.product(*per_device):
            probability = math.prod(c[0] for c in combination)
            vector = sum(p[k] * a[k] * masks[k] * combination[k][1] for k in range(K))
            total += probability * float(vector @ vector)
        lhs[point] = total
        rhs[point] = float(np.sum(p**2 * a)) * sigma2 / batch
    return lhs, rhs


def _float_numbers(rng, count):
    """Largest relative difference between each float form and its expression, per point."""
    import sympy as sp

    from edgeopt.models.tinyfel import convergence

    terms = convergence.derivation()
    s = terms["symbols"]
    p, a, x, G = s["p"], s["a"], s["x"], s["G"]
    K, L = len(p), len(G)
    free = [*p, *a, *x, *G, s["eta"], s["L_s"], s["sigma2"], s["beta"], s["drift"], s["tau"]]
    exprs = {key: sp.lambdify(free, terms[key]) for key in ("bias_linear", "bias_quadratic", "noise")}
    cover = sp.lambdify(free, terms["coverage"])
    lhs = np.empty(count)
    for point in range(count):
        weights = rng.dirichlet(np.ones(K))
        selected = (rng.random(K) < 0.7).astype(float)
        first = rng.integers(1, L + 1, size=K)
        grad_sq = rng.uniform(0.01, 2.0, L)
        rows = (np.arange(1, L + 1)[None, :] >= first[:, None]).astype(float)
        cover_float = convergence.coverage(weights, selected, first, L)
        eta, smooth, var = rng.uniform(1e-3, 0.1), rng.uniform(0.1, 10), rng.uniform(0.1, 5)
        batch, drift, tau = float(rng.integers(1, 64)), rng.uniform(0, 1), float(rng.integers(1, 10))
        args = [*weights, *selected, *rows.ravel(), *grad_sq, eta, smooth, var, batch, drift, tau]
        ratio = rows @ grad_sq / grad_sq.sum()
        floats = {
            "bias_linear": convergence.bias_linear(weights, selected, ratio, grad_sq.sum()),
            "bias_quadratic": convergence.bias_quadratic(grad_sq, cover_float),
            "noise": convergence.noise(weights, selected, learning_rate=eta, smoothness=smooth,
                                       grad_variance=var, batch_size=int(batch), drift_coeff=drift,
                                       local_steps=int(tau), grad_sq_total=float(grad_sq.sum())),
        }
        gaps = [abs(floats[key] - exprs[key](*args)) / (1 + abs(floats[key])) for key in exprs]
        gaps.append(float(np.max(np.abs(cover_float - np.array(cover(*args))))))
        gap, target = rng.uniform(0.1, 10), rng.uniform(0.5, 5)
        bias, noise = floats["bias_linear"] * 0.1, floats["noise"] * 0.1
        rounds = convergence.rounds_needed(gap, eta, target, bias, noise)
        if rounds is not None:
            exact = 2 * gap / (eta * (target - bias - noise))
            gaps.append(0.0 if rounds == max(1, math.ceil(exact * (1 - 1e-12))) else 1.0)
            value = convergence.bound_value(gap, eta, rounds, bias, noise)
            gaps.append(abs(value - (2 * gap / (eta * rounds) + bias + noise)) / value)
        lhs[point] = max(gaps)
    return lhs, np.zeros(count)
