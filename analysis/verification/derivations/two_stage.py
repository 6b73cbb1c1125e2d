"""The two-stage convergence bound (spec §4) rebuilt step by step from its assumptions.

Assumptions (§4.1): A1 F* = inf F > -inf, Phi = F(w_0) - F*; A2 F and G are L-smooth and
eta L <= 1; A3 per-sample gradient variance <= sigma^2 under P_0..P_K; A4 grad f(w; .) is
rho-Lipschitz in the data, so ||grad G - grad F|| <= rho W_1 = delta; A5 (``linear_shift``)
||grad F|| <= G. Pre-training steps w+ = w - eta g on G (batch D), fine-tuning steps
w+ = w - eta sum_k alpha_k g_k (device batches B_k, beta = sum_k alpha_k^2/B_k).

The symbolic steps use 2-vectors for gradients and small instances (batch of 3, two
devices) of general claims; random points and random general instances check them beyond
that. Steps I1-I10 are the identities spec §4.4 asks for. The last steps compare the result
with the model's own expressions (:func:`edgeopt.models.two_stage.convergence.derivation`)
and float functions; a disagreement there is a finding about the model.
"""

from __future__ import annotations

import numpy as np

from edgeopt.analysis.verification.steps import (
    Step,
    descent_lemma_values,
    finite_distribution,
    minibatch_numbers,
    second_moment_numbers,
    simplex,
)

DEVICES = 3
"""Devices of the random per-round instances of the float checks."""


def steps() -> list[Step]:
    """The derivation of spec §4 as checkable steps, in order."""
    from edgeopt.models.two_stage import convergence

    terms = convergence.derivation()
    s = terms["symbols"]
    return (
        _one_step(s)
        + _linear_variant(s)
        + _fine_tuning(s)
        + _telescoping(s)
        + _spec_identities(s)
        + _model_steps(terms)
    )


# ---- pre-training step, squared_shift -------------------------------------------------------


def _one_step(s) -> list[Step]:
    import sympy as sp

    eta, L, s2, D, d = s["eta"], s["L"], s["sigma2"], s["D"], s["delta"]
    gF, gG, e = s["gF"], s["gG"], s["e"]
    f_next, f_x, inner, g2 = sp.symbols("f_next f_x inner g2", real=True)
    VD = sp.Symbol("V_D", nonnegative=True)

    def lemma(rng, count):
        values = descent_lemma_values(rng, count)
        return {f_next: values["f_next"], f_x: values["f_x"], inner: values["inner"],
                g2: values["g2"], eta: values["gamma"], L: values["L"]}

    expected = -eta * _dot(gF, gG) + L * eta**2 / 2 * (_dot(gG, gG) + VD)
    worst = -eta * _dot(gF, gG) + L * eta**2 / 2 * (_dot(gG, gG) + s2 / D)
    polarised = (-eta / 2 * _dot(gF, gF) - eta / 2 * (1 - L * eta) * _dot(gG, gG)
                 + eta / 2 * _dot(_sub(gF, gG), _sub(gF, gG)) + L * eta**2 * s2 / (2 * D))
    dropped = -eta / 2 * _dot(gF, gF) + eta / 2 * _dot(_sub(gG, gF), _sub(gG, gF)) + L * eta**2 * s2 / (2 * D)
    gap = -eta / 2 * _dot(gF, gF) + eta / 2 * _dot(e, e) + L * eta**2 * s2 / (2 * D)
    shifted = -eta / 2 * _dot(gF, gF) + eta * d**2 / 2 + L * eta**2 * s2 / (2 * D)
    vectors = _sampler(s, extra={VD: lambda rng, v: rng.uniform(0, 1, len(v[D])) * v[s2] / v[D]})
    result = [
        Step(
            "S1 descent lemma",
            "F(w - eta g) <= F(w) - eta<grad F(w), g> + L eta^2/2 ||g||^2",
            "<=", f_next, f_x - eta * inner + L * eta**2 * g2 / 2,
            "F L-smooth (random smooth functions; half are quadratics where it is tight)",
            sample=lemma,
        ),
        *_moment_steps(),
        Step(
            "S5 pre-training step in expectation",
            "E F(w+) - F(w) <= -eta<grad F, grad G> + L eta^2/2 (||grad G||^2 + V_D) <= "
            "-eta<grad F, grad G> + L eta^2/2 (||grad G||^2 + sigma^2/D)",
            "<=", expected, worst,
            "S1 with E g = grad G, S2, and V_D = E||g - grad G||^2 <= sigma^2/D (S3, A3)",
            sample=vectors, certificate=L * eta**2 / 2 * (s2 / D - VD),
        ),
        Step(
            "S6 polarisation (I1)",
            "<a, b> = (||a||^2 + ||b||^2 - ||a - b||^2)/2 turns S5 into -(eta/2)||grad F||^2 - "
            "(eta/2)(1 - L eta)||grad G||^2 + (eta/2)||grad F - grad G||^2 + L eta^2 sigma^2/(2D)",
            "==", worst, polarised, "", sample=vectors,
        ),
        Step(
            "S7 drop the grad G term",
            "-(eta/2)(1 - L eta)||grad G||^2 <= 0",
            "<=", polarised, dropped, "eta L <= 1 (A2)",
            sample=vectors, certificate=eta / 2 * (1 - L * eta) * _dot(gG, gG),
        ),
        Step(
            "S8 gradient gap by Kantorovich-Rubinstein (A4)",
            "||grad G(w) - grad F(w)|| <= rho W_1(P_0, sum_k alpha_k P_k) = delta for a "
            "gradient that is rho-Lipschitz in the data",
            "<=", None, None,
            "random discrete P_0, P_k and nonlinear rho-Lipschitz gradient maps; W_1 by an LP",
            numeric=_wasserstein_numbers,
        ),
        Step(
            "S9 shift bound (squared_shift)",
            "(eta/2)||e||^2 <= eta delta^2/2, so E F(w+) - F(w) <= -(eta/2)||grad F||^2 + "
            "eta delta^2/2 + L eta^2 sigma^2/(2D)",
            "<=", gap, shifted, "||e|| = ||grad G - grad F|| <= delta (S8)",
            sample=vectors, certificate=eta / 2 * (d**2 - _dot(e, e)),
        ),
    ]
    return result


def _moment_steps() -> list[Step]:
    """S2-S4: second moment of an unbiased estimate, mini-batch average, device aggregate with
    its own batch per device."""
    import sympy as sp

    m = sp.Matrix(sp.symbols("m1:3", real=True))
    u, v = sp.Matrix(sp.symbols("u1:3", real=True)), sp.Matrix(sp.symbols("v1:3", real=True))
    q, r = sp.symbols("q r", positive=True)
    law = ((q, u), (1 - q, -q * u / (1 - q)))  # zero-mean two-atom law
    other = ((r, v), (1 - r, -r * v / (1 - r)))

    def moment(distribution, batch):
        """E||mean of `batch` i.i.d. draws||^2, by enumeration."""
        total = 0
        for outcome in np.ndindex(*(2,) * batch):
            weight = sp.Mul(*[distribution[k][0] for k in outcome])
            average = sum((distribution[k][1] for k in outcome), sp.zeros(2, 1)) / batch
            total += weight * average.dot(average)
        return total

    single = moment(law, 1)
    a1, a2 = sp.symbols("alpha1 alpha2", positive=True)
    aggregate = 0  # device 1 averages 1 draw of `law`, device 2 averages 2 draws of `other`
    for w1, x1 in law:
        for outcome in np.ndindex(2, 2):
            weight = w1 * sp.Mul(*[other[k][0] for k in outcome])
            mean2 = sum((other[k][1] for k in outcome), sp.zeros(2, 1)) / 2
            combined = a1 * x1 + a2 * mean2
            aggregate += weight * combined.dot(combined)
    separate = a1**2 * single + a2**2 * moment(other, 1) / 2
    return [
        Step(
            "S2 second moment of an unbiased estimate",
            "E||g||^2 = ||E g||^2 + E||g - E g||^2",
            "==", sum(w * (m + x).dot(m + x) for w, x in law), m.dot(m) + single,
            "zero-mean noise (symbolically: a two-atom law in R^2)", numeric=second_moment_numbers,
        ),
        Step(
            "S3 variance of an averaged mini-batch",
            "E||(1/D) sum_j n_j||^2 = E||n||^2/D for i.i.d. zero-mean n_j (so <= sigma^2/D by A3)",
            "==", moment(law, 3), single / 3,
            "i.i.d. samples (symbolically: D = 3, a two-atom law)", numeric=minibatch_numbers,
        ),
        Step(
            "S4 variance of the federated aggregate",
            "E||sum_k alpha_k nbar_k||^2 = sum_k alpha_k^2 E||n_k||^2/B_k <= sigma^2 sum_k "
            "alpha_k^2/B_k for independent devices with batches B_k",
            "==", aggregate, separate,
            "devices independent (symbolically: 2 devices, B = (1, 2), two-atom laws)",
            numeric=_aggregate_numbers,
        ),
    ]


# ---- pre-training step, linear_shift ----------------------------------------------------------


def _linear_variant(s) -> list[Step]:
    eta, L, s2, D, d, G = s["eta"], s["L"], s["sigma2"], s["D"], s["delta"], s["G"]
    gF, e = s["gF"], s["e"]
    gGe = _add(gF, e)
    descent = -eta * _dot(gF, gGe) + L * eta**2 / 2 * (_dot(gGe, gGe) + s2 / D)
    noise = L * eta**2 * s2 / (2 * D)
    expanded = (-eta * (1 - L * eta / 2) * _dot(gF, gF) - eta * (1 - L * eta) * _dot(gF, e)
                + L * eta**2 / 2 * _dot(e, e) + noise)
    bounded = -eta / 2 * _dot(gF, gF) + eta * (1 - L * eta) * G * d + L * eta**2 * d**2 / 2 + noise
    certificate = (eta / 2 * (1 - L * eta) * _dot(gF, gF) + eta * (1 - L * eta) * (G * d + _dot(gF, e))
                   + L * eta**2 / 2 * (d**2 - _dot(e, e)))
    vectors = _sampler(s)
    return [
        Step(
            "S10 linear_shift expansion (I3)",
            "with grad G = grad F + e, S5's right side equals -eta(1 - L eta/2)||grad F||^2 - "
            "eta(1 - L eta)<grad F, e> + (L eta^2/2)||e||^2 + L eta^2 sigma^2/(2D)",
            "==", descent, expanded, "", sample=vectors,
        ),
        Step(
            "S11 linear_shift bounds",
            "1 - L eta/2 >= 1/2, |<grad F, e>| <= G delta, ||e|| <= delta give E F(w+) - F(w) <= "
            "-(eta/2)||grad F||^2 + eta(1 - L eta) G delta + L eta^2 delta^2/2 + L eta^2 sigma^2/(2D)",
            "<=", expanded, bounded, "eta L <= 1, ||grad F|| <= G (A5), ||e|| <= delta (S8)",
            sample=vectors, certificate=certificate,
        ),
    ]


# ---- fine-tuning step -----------------------------------------------------------------------


def _fine_tuning(s) -> list[Step]:
    eta, L, s2, beta, V = s["eta"], s["L"], s["sigma2"], s["beta"], s["V"]
    gF = s["gF"]
    descent = -eta * _dot(gF, gF) + L * eta**2 / 2 * (_dot(gF, gF) + V)
    rewritten = -eta / 2 * _dot(gF, gF) - eta / 2 * (1 - L * eta) * _dot(gF, gF) + L * eta**2 * V / 2
    bounded = -eta / 2 * _dot(gF, gF) + L * eta**2 * s2 * beta / 2
    vectors = _sampler(s, extra={V: lambda rng, v: rng.uniform(0, 1, len(v[beta])) * v[s2] * v[beta]})
    return [
        Step(
            "S12 fine-tuning step (I2)",
            "with E sum_k alpha_k g_k = grad F and variance V: -eta||grad F||^2 + (L eta^2/2)"
            "(||grad F||^2 + V) = -(eta/2)||grad F||^2 - (eta/2)(1 - L eta)||grad F||^2 + L eta^2 V/2",
            "==", descent, rewritten, "the aggregate is unbiased (weights alpha_k of F)",
            sample=vectors,
        ),
        Step(
            "S13 fine-tuning bound",
            "E F(w+) - F(w) <= -(eta/2)||grad F||^2 + L eta^2 sigma^2 beta/2",
            "<=", rewritten, bounded, "eta L <= 1, V <= sigma^2 beta (S4, A3)",
            sample=vectors,
            certificate=eta / 2 * (1 - L * eta) * _dot(gF, gF) + L * eta**2 / 2 * (s2 * beta - V),
        ),
    ]


# ---- telescoping ----------------------------------------------------------------------------


def _telescoping(s) -> list[Step]:
    import sympy as sp

    eta, L, s2, Phi, d, M, N = s["eta"], s["L"], s["sigma2"], s["Phi"], s["delta"], s["M"], s["N"]
    values = sp.symbols("F0:7", real=True)
    a1, SD, SB = sp.symbols("a1 S_D S_B", positive=True)
    psi = (2 * Phi / eta + a1 * M + L * eta * s2 * (SD + SB)) / (M + N)

    def sums(rng, count):
        lhs, rhs = np.empty(count), np.empty(count)
        for k in range(count):
            f = rng.normal(size=int(rng.integers(2, 200))) * 10
            lhs[k], rhs[k] = np.sum(np.diff(f)), f[-1] - f[0]
        return lhs, rhs

    def positive(rng, count):
        values = {x: rng.uniform(0.01, 5, count) for x in (eta, L, s2, Phi, a1, SD, SB)}
        values.update({M: rng.integers(0, 400, count).astype(float), N: rng.integers(1, 200, count).astype(float)})
        return values

    return [
        Step("S14 telescoping", "sum_{t<T} (F_{t+1} - F_t) = F_T - F_0",
             "==", sum(values[t + 1] - values[t] for t in range(6)), values[6] - values[0],
             "(symbolically T = 6)", numeric=sums),
        Step(
            "S15 average over both stages",
            "sequences obeying S9 (pre-training, batches D(m)) and S13 (fine-tuning, beta(n)) "
            "with F_0 - F* <= Phi, F_T >= F*: (1/(M+N)) sum_t ||grad F(w_t)||^2 <= [2 Phi/eta + "
            "delta^2 M + L eta sigma^2 (sum_m 1/D(m) + sum_n beta(n))]/(M + N)",
            "<=", None, None, "random sequences with random per-round batches and slacks",
            numeric=_averaged_numbers,
        ),
        Step(
            "S16 dividing by eta (M + N)/2 (I4)",
            "Psi eta (M + N)/2 = Phi + M eta a1/2 + (L eta^2 sigma^2/2)(S_D + S_B)",
            "==", psi * eta * (M + N) / 2,
            Phi + M * eta * a1 / 2 + L * eta**2 * s2 / 2 * (SD + SB), "", sample=positive,
        ),
        Step(
            "S17 linear_shift is never tighter (I5)",
            "a1(squared) = delta^2 <= 2(1 - L eta) G delta + L eta delta^2 = a1(linear); the gap "
            "is delta(2G - delta)(1 - L eta)",
            "<=", d**2, 2 * (1 - L * eta) * s["G"] * d + L * eta * d**2, "delta <= 2G, eta L <= 1",
            sample=_sampler(s), certificate=d * (2 * s["G"] - d) * (1 - L * eta),
        ),
    ]


# ---- the other identities of spec §4.4 ----------------------------------------------------------


def _spec_identities(s) -> list[Step]:
    import sympy as sp

    M, N, D = s["M"], s["N"], s["D"]
    a0, cM, cN = sp.symbols("a0 c_M c_N", positive=True)
    t = sp.Symbol("t", positive=True)
    hessian = sp.hessian(D**3 / t**2, (D, t))
    tau, N0, b, h, S = sp.symbols("tau N0 b h S", positive=True)
    phi = tau * (N0 * b / h) * (2 ** (S / (b * tau)) - 1)
    power = (N0 * b / h) * (2 ** (S / (b * tau)) - 1)
    A, Bc, c = sp.symbols("a b c", positive=True)
    den = sp.sqrt(A * M) + sp.sqrt(Bc * N)
    Ds, Bs = c * sp.sqrt(M / A) / den, c * sp.sqrt(N / Bc) / den

    def positive(rng, count):
        values = {x: rng.uniform(0.1, 5, count) for x in (a0, cM, cN, D, t, N0, h, A, Bc, c)}
        values.update({M: rng.uniform(0, 400, count), N: rng.uniform(0.5, 200, count)})
        values[b] = rng.uniform(1e3, 1e6, count)
        values[S] = rng.uniform(1e3, 1e6, count)
        values[tau] = values[S] / (values[b] * rng.uniform(0.05, 30, count))  # S/(b tau) <= 30
        return values

    return [
        Step(
            "S18 marginal pre-training round (I6)",
            "d/dM [(a0 + c_M M + c_N N)/(M + N)] = ((c_M - c_N) N - a0)/(M + N)^2: with batches "
            "fixed, one more pre-training round helps iff (c_M - c_N) N < a0",
            "==", sp.diff((a0 + cM * M + cN * N) / (M + N), M), ((cM - cN) * N - a0) / (M + N) ** 2,
            "", sample=positive,
        ),
        Step(
            "S19 convexity of the compute energy (I7)",
            "D^3/t^2 has Hessian determinant 0, H_DD = 6D/t^2 >= 0 and H_tt = 6D^3/t^4 >= 0: "
            "positive semidefinite, jointly convex (perspective of x^3)",
            "==", sp.Matrix([hessian.det(), hessian[0, 0], hessian[1, 1]]),
            sp.Matrix([0, 6 * D / t**2, 6 * D**3 / t**4]), "D, t > 0", sample=positive,
        ),
        Step(
            "S20 upload energy is convex (I8)",
            "phi(tau) = tau (N_0 b/h)(2^{S/(b tau)} - 1) has phi'' = N_0 S^2 ln(2)^2 "
            "2^{S/(b tau)}/(b h tau^3) > 0",
            "==", sp.diff(phi, tau, 2), N0 * S**2 * sp.log(2) ** 2 * 2 ** (S / (b * tau)) / (b * h * tau**3),
            "tau > 0", sample=positive,
        ),
        Step(
            "S21 upload-energy infimum (I8)",
            "lim_{tau -> inf} phi(tau) = N_0 S ln2/h = e_k^inf (numerically: phi at S/(b tau) = 1e-12)",
            "==", sp.limit(phi, tau, sp.oo), N0 * S * sp.log(2) / h, "", numeric=_limit_numbers,
        ),
        Step(
            "S22 rate and power round trip (I9)",
            "p(tau) = (N_0 b/h)(2^{S/(b tau)} - 1) gives b log2(1 + p h/(N_0 b)) tau = S",
            "==", b * sp.log(1 + power * h / (N0 * b), 2) * tau, S, "", sample=positive,
        ),
        Step(
            "S23 closed form of instance T2 (I10)",
            "D* = c sqrt(M/a)/den, B* = c sqrt(N/b)/den, den = sqrt(aM) + sqrt(bN): on the delay "
            "line aD + bB = c, with value M/D* + N/B* = den^2/c and equal marginal ratios",
            "==", sp.Matrix([A * Ds + Bc * Bs, M / Ds + N / Bs, (M / Ds**2) / A]),
            sp.Matrix([c, den**2 / c, (N / Bs**2) / Bc]), "", sample=positive,
        ),
        Step(
            "S24 the closed form is the minimum (I10)",
            "M/D* + N/B* <= M/D + N/B for every D, B > 0 with aD + bB = c",
            "<=", None, None, "random a, b, c, M, N and points on the line", numeric=_closed_form_numbers,
        ),
    ]


# ---- the model's own expressions ------------------------------------------------------------


def _model_steps(terms) -> list[Step]:
    import sympy as sp

    s = terms["symbols"]
    eta, L, s2, Phi, d, G, M, N, D, beta = (
        s[k] for k in ("eta", "L", "sigma2", "Phi", "delta", "G", "M", "N", "D", "beta")
    )
    gF = s["gF"]
    norm = {s["gF2"]: _dot(gF, gF)}
    vectors = _sampler(s)
    a0, a2 = 2 * Phi / eta, L * eta * s2
    a1 = d**2
    a1_linear = 2 * (1 - L * eta) * G * d + L * eta * d**2
    pre, fine = 2, 3
    Ds = sp.symbols(f"D_0:{pre}", positive=True)
    betas = sp.symbols(f"beta_0:{fine}", positive=True)
    plain = {s["Dm"][i]: Ds[i] for i in range(pre)} | {s["betan"][j]: betas[j] for j in range(fine)}
    noise = sum(1 / x for x in Ds) + sum(betas)

    def per_round(expr):
        return expr.subs({M: pre, N: fine}).doit().xreplace(plain)

    def rounds(rng, count):
        values = vectors(rng, count)
        values.update({x: rng.uniform(1, 256, count) for x in Ds})
        values.update({x: rng.uniform(1e-3, 1, count) for x in betas})
        return values

    return [
        Step(
            "S25 model's step_pre",
            "S9's one-step bound is the model's `step_pre` (squared_shift)",
            "==", -eta / 2 * _dot(gF, gF) + eta * d**2 / 2 + L * eta**2 * s2 / (2 * D),
            terms["step_pre"].subs(norm), "", sample=vectors,
        ),
        Step(
            "S26 model's step_pre_linear",
            "S11's one-step bound is the model's `step_pre` (linear_shift)",
            "==", -eta / 2 * _dot(gF, gF) + eta * (1 - L * eta) * G * d + L * eta**2 * d**2 / 2
            + L * eta**2 * s2 / (2 * D), terms["step_pre_linear"].subs(norm), "", sample=vectors,
        ),
        Step(
            "S27 model's step_fine",
            "S13's one-step bound is the model's `step_fine`",
            "==", -eta / 2 * _dot(gF, gF) + L * eta**2 * s2 * beta / 2, terms["step_fine"].subs(norm),
            "", sample=vectors,
        ),
        Step(
            "S28 model's bound_per_round (squared_shift)",
            f"S15's per-round bound is the model's `bound_per_round` (Sums expanded at M = {pre}, "
            f"N = {fine})",
            "==", (a0 + a1 * pre + a2 * noise) / (pre + fine), per_round(terms["bound_per_round"]),
            "", sample=rounds,
        ),
        Step(
            "S29 model's bound_per_round (linear_shift)",
            f"the same with a1 = 2(1 - L eta) G delta + L eta delta^2 (M = {pre}, N = {fine})",
            "==", (a0 + a1_linear * pre + a2 * noise) / (pre + fine),
            per_round(terms["bound_per_round_linear"]), "", sample=rounds,
        ),
        Step(
            "S30 model's bound (stage-constant)",
            "Psi = [a0 + a1 M + a2 (M/D + N beta)]/(M + N) is the model's `bound` and "
            "`bound_linear`",
            "==", sp.Matrix([(a0 + a1 * M + a2 * (M / D + N * beta)) / (M + N),
                             (a0 + a1_linear * M + a2 * (M / D + N * beta)) / (M + N)]),
            sp.Matrix([terms["bound"], terms["bound_linear"]]), "", sample=_sampler(s),
        ),
        Step(
            "S31 model's coefficients",
            "a0 = 2 Phi/eta, a1 = delta^2 or 2(1 - L eta) G delta + L eta delta^2, a2 = L eta sigma^2 "
            "are the model's `a0`, `a1`, `a1_linear`, `a2`",
            "==", sp.Matrix([a0, a1, a1_linear, a2]),
            sp.Matrix([terms["a0"], terms["a1"], terms["a1_linear"], terms["a2"]]), "",
            sample=_sampler(s),
        ),
        Step(
            "S32 model's float Psi",
            "convergence.psi(M, N, D, beta, coefficients(...)) = S30 for both variants, with the "
            "special cases M = 0 (a0/N + a2 beta) and N = 0 (a0/M + a1 + a2/D)",
            "==", None, None, "", numeric=_float_psi_numbers,
        ),
        Step(
            "S33 model's psi_per_round",
            "convergence.psi_per_round(D(m), B_k(n), alpha, ...) = [a0 + a1 M + a2 (sum_m 1/D(m) + "
            "sum_n sum_k alpha_k^2/B_k(n))]/(M + N)",
            "==", None, None, "", numeric=_float_per_round_numbers,
        ),
        Step(
            "S34 Psi falls in every batch (model's float)",
            "Psi(D + 1, B) <= Psi(D, B) and Psi(D, B + e_k) <= Psi(D, B) for every device k",
            "<=", None, None, "", numeric=_monotone_numbers,
        ),
        Step(
            "S35 equal per-round batches minimise Q (model's float)",
            "for a fixed sum of batches over the rounds of a stage, equal batches give the least "
            "psi_per_round (1/x is convex)",
            "<=", None, None, "", numeric=_equal_batches_numbers,
        ),
    ]


# ---- samplers ---------------------------------------------------------------------------


def _dot(u, v):
    return sum(a * b for a, b in zip(u, v))


def _sub(u, v):
    return [a - b for a, b in zip(u, v)]


def _add(u, v):
    return [a + b for a, b in zip(u, v)]


def _sampler(s, extra=None):
    """Random points satisfying A1-A5: eta L <= 1, ||grad F|| <= G, ||e|| <= delta <= 2G;
    ``extra`` maps further symbols to functions (rng, values so far) -> values."""

    def sample(rng, count):
        L = rng.uniform(0.1, 10, count)
        G = rng.uniform(0.01, 5, count)
        delta = rng.uniform(0, 2, count) * G
        values = {
            s["L"]: L, s["eta"]: rng.uniform(1e-3, 1, count) / L, s["sigma2"]: rng.uniform(0, 5, count),
            s["Phi"]: rng.uniform(0.01, 10, count), s["delta"]: delta, s["G"]: G,
            s["D"]: rng.uniform(1, 256, count), s["beta"]: rng.uniform(1e-3, 1, count),
            s["M"]: rng.integers(0, 400, count).astype(float),
            s["N"]: rng.integers(1, 200, count).astype(float),
        }
        for name, radius in (("gF", G), ("e", delta)):
            direction = rng.normal(size=(count, 2))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            vector = direction * (radius * rng.uniform(0, 1, count))[:, None]
            values.update({symbol: vector[:, i] for i, symbol in enumerate(s[name])})
        values.update({symbol: rng.normal(size=count) * 3 for symbol in s["gG"]})
        for symbol, draw in (extra or {}).items():
            values[symbol] = draw(rng, values)
        return values

    return sample




def _aggregate_numbers(rng, count):
    """Independent devices with their own batches: the joint law of sum_k alpha_k nbar_k is
    enumerated outcome by outcome and compared with sum_k alpha_k^2 E||n_k||^2/B_k."""
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        devices, dim = int(rng.integers(2, 4)), int(rng.integers(1, 4))
        alpha = simplex(rng, 1, devices)[0]
        probability, points = np.ones(1), np.zeros((1, dim))
        expected = 0.0
        for weight in alpha:
            law, atoms = finite_distribution(rng, int(rng.integers(2, 4)), dim)
            batch = int(rng.integers(1, 3))
            outcomes = list(np.ndindex(*(len(law),) * batch))
            p = np.array([np.prod(law[list(o)]) for o in outcomes])
            means = np.array([atoms[list(o)].mean(axis=0) for o in outcomes])
            probability = np.outer(probability, p).ravel()
            points = (points[:, None, :] + weight * means[None, :, :]).reshape(-1, dim)
            expected += weight**2 * float(law @ np.sum(atoms**2, axis=1)) / batch
        lhs[k] = probability @ np.sum(points**2, axis=1)
        rhs[k] = expected
    return lhs, rhs


def _wasserstein_numbers(rng, count):
    """lhs = ||E_{P_0} grad f(w; xi) - E_{P_T} grad f(w; xi)||, rhs = rho W_1(P_0, P_T) for
    grad f(w; xi) = A (w - xi) + B sin(C xi + c), rho = ||A|| + ||B|| ||C||, P_T the mixture
    sum_k alpha_k P_k; W_1 is the optimal transport LP with Euclidean cost (HiGHS)."""
    from scipy.optimize import linprog

    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        dim = int(rng.integers(1, 4))
        p0, x0 = finite_distribution(rng, int(rng.integers(1, 5)), dim)
        x0 = x0 + rng.normal(size=dim)
        alpha = simplex(rng, 1, int(rng.integers(1, 4)))[0]
        parts = [finite_distribution(rng, int(rng.integers(1, 4)), dim) for _ in alpha]
        pT = np.concatenate([a * w for a, (w, _) in zip(alpha, parts)])
        xT = np.vstack([x + rng.normal(size=dim) for _, x in parts])
        A, B, C = rng.normal(size=(dim, dim)), rng.normal(size=(dim, 3)), rng.normal(size=(3, dim))
        c, w = rng.uniform(0, 2 * np.pi, 3), rng.normal(size=dim)
        if k % 2:  # linear maps: the bound can be tight
            B = np.zeros_like(B)
        rho = np.linalg.norm(A, 2) + np.linalg.norm(B, 2) * np.linalg.norm(C, 2)

        def grad(xi, A=A, B=B, C=C, c=c, w=w):
            return (w - xi) @ A.T + np.sin(xi @ C.T + c) @ B.T

        lhs[k] = np.linalg.norm(p0 @ grad(x0) - pT @ grad(xT))
        cost = np.linalg.norm(x0[:, None, :] - xT[None, :, :], axis=2)
        n0, nT = cost.shape
        rows = np.vstack([np.kron(np.eye(n0), np.ones(nT)), np.kron(np.ones(n0), np.eye(nT))])
        plan = linprog(cost.ravel(), A_eq=rows, b_eq=np.concatenate([p0, pT]), bounds=(0, None),
                       method="highs")
        if plan.status != 0:
            raise RuntimeError(f"transport LP failed: {plan.message}")
        rhs[k] = rho * plan.fun
    return lhs, rhs


def _averaged_numbers(rng, count):
    """Random sequences F_t that obey the one-step bounds with random slacks; lhs = average of
    the gradient norms, rhs = the per-round bound of S15."""
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        M, N = int(rng.integers(0, 30)), int(rng.integers(0, 30))
        if M + N == 0:
            N = 1
        L = rng.uniform(0.1, 10)
        eta, s2, delta = rng.uniform(1e-3, 1) / L, rng.uniform(0, 5), rng.uniform(0, 2)
        D, beta = rng.uniform(1, 64, M), rng.uniform(1e-3, 1, N)
        constant = np.concatenate([eta * delta**2 / 2 + L * eta**2 * s2 / (2 * D), L * eta**2 * s2 * beta / 2])
        norms = rng.exponential(size=M + N) * rng.uniform(0, 10)
        slack = rng.exponential(size=M + N) * rng.uniform(0, 1)
        F = np.concatenate([[rng.normal() * 10], -eta / 2 * norms + constant - slack]).cumsum()
        gap = F[0] - (F[-1] - rng.exponential())  # F* <= F_T
        lhs[k] = norms.mean()
        rhs[k] = (2 * gap / eta + delta**2 * M + L * eta * s2 * (np.sum(1 / D) + np.sum(beta))) / (M + N)
    return lhs, rhs


def _limit_numbers(rng, count):
    """phi at tau = S/(b 1e-12) (expm1 form) against N_0 S ln2/h."""
    N0, h = rng.uniform(1e-21, 1e-19, count), rng.uniform(1e-12, 1e-8, count)
    b, S = rng.uniform(1e4, 1e6, count), rng.uniform(1e3, 1e7, count)
    tau = S / (b * 1e-12)
    return tau * (N0 * b / h) * np.expm1(np.log(2) * S / (b * tau)), N0 * S * np.log(2) / h


def _closed_form_numbers(rng, count):
    a, b, c = (rng.uniform(0.01, 5, count) for _ in range(3))
    M, N = rng.uniform(0.1, 400, count), rng.uniform(0.1, 200, count)
    den = np.sqrt(a * M) + np.sqrt(b * N)
    best = M / (c * np.sqrt(M / a) / den) + N / (c * np.sqrt(N / b) / den)
    D = rng.uniform(0, 1, count) * c / a
    B = (c - a * D) / b
    return best, M / D + N / B


def _coefficient_draw(rng):
    """Random learning constants (eta L <= 1, delta <= 2G) and both variants' coefficients."""
    from edgeopt.models.two_stage import convergence

    L = rng.uniform(0.1, 10)
    constants = {"learning_rate": rng.uniform(1e-3, 1) / L, "smoothness": L,
                 "grad_variance": rng.uniform(0, 5), "initial_gap": rng.uniform(0.01, 10)}
    G = rng.uniform(0.01, 5)
    constants["shift"] = rng.uniform(0, 2) * G
    return constants, G, {v: convergence.coefficients(**constants, variant=v, grad_bound=G)
                          for v in convergence.VARIANTS}


def _spec_psi(constants, G, variant, M, N, q):
    eta, L = constants["learning_rate"], constants["smoothness"]
    d = constants["shift"]
    a1 = d**2 if variant == "squared_shift" else 2 * (1 - L * eta) * G * d + L * eta * d**2
    return (2 * constants["initial_gap"] / eta + a1 * M + L * eta * constants["grad_variance"] * q) / (M + N)


def _float_psi_numbers(rng, count):
    from edgeopt.models.two_stage import convergence

    lhs, rhs = np.empty((count, 2)), np.empty((count, 2))
    for k in range(count):
        constants, G, coeffs = _coefficient_draw(rng)
        M, N = (0, int(rng.integers(1, 200))) if k % 4 == 0 else (
            (int(rng.integers(1, 400)), 0) if k % 4 == 1 else (int(rng.integers(1, 400)), int(rng.integers(1, 200))))
        alpha = simplex(rng, 1, DEVICES)[0]
        D, B = float(rng.integers(1, 257)), rng.integers(1, 129, DEVICES).astype(float)
        beta = float(np.sum(alpha**2 / B))
        q = (M / D if M else 0.0) + (N * beta if N else 0.0)
        for j, variant in enumerate(convergence.VARIANTS):
            lhs[k, j] = float(convergence.psi(M, N, D if M else 0.0, convergence.beta(alpha, B), coeffs[variant]))
            rhs[k, j] = _spec_psi(constants, G, variant, M, N, q)
    return lhs, rhs


def _per_round_draw(rng):
    alpha = simplex(rng, 1, DEVICES)[0]
    M, N = int(rng.integers(0, 20)), int(rng.integers(0, 20))
    if M + N == 0:
        M = 1
    return alpha, rng.integers(1, 257, M).astype(float), rng.integers(1, 129, (N, DEVICES)).astype(float)


def _float_per_round_numbers(rng, count):
    from edgeopt.models.two_stage import convergence

    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        constants, G, coeffs = _coefficient_draw(rng)
        alpha, D, B = _per_round_draw(rng)
        q = float(np.sum(1 / D) + np.sum(alpha**2 / B))
        lhs[k] = convergence.psi_per_round(D, B, alpha, coeffs["squared_shift"])
        rhs[k] = _spec_psi(constants, G, "squared_shift", len(D), len(B), q)
    return lhs, rhs


def _monotone_numbers(rng, count):
    from edgeopt.models.two_stage import convergence

    lhs, rhs = np.empty((count, DEVICES + 1)), np.empty((count, DEVICES + 1))
    for k in range(count):
        _, _, coeffs = _coefficient_draw(rng)
        alpha = simplex(rng, 1, DEVICES)[0]
        M, N = int(rng.integers(1, 400)), int(rng.integers(1, 200))
        D, B = float(rng.integers(1, 256)), rng.integers(1, 128, DEVICES).astype(float)

        def psi(D, B, alpha=alpha, M=M, N=N, coeffs=coeffs["squared_shift"]):
            return float(convergence.psi(M, N, D, convergence.beta(alpha, B), coeffs))

        rhs[k] = psi(D, B)
        lhs[k, 0] = psi(D + 1, B)
        for device in range(DEVICES):
            lhs[k, device + 1] = psi(D, B + np.eye(DEVICES)[device])
    return lhs, rhs


def _equal_batches_numbers(rng, count):
    from edgeopt.models.two_stage import convergence

    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        _, _, coeffs = _coefficient_draw(rng)
        alpha, D, B = _per_round_draw(rng)
        equal_D = np.full_like(D, D.mean() if D.size else 0.0)
        equal_B = np.tile(B.mean(axis=0) if B.size else np.zeros(DEVICES), (len(B), 1))
        lhs[k] = convergence.psi_per_round(equal_D, equal_B, alpha, coeffs["squared_shift"])
        rhs[k] = convergence.psi_per_round(D, B, alpha, coeffs["squared_shift"])
    return lhs, rhs
