"""Two-stage model: known answers of spec §7 (bound, oracle, evaluator), the SymPy derivation
and identities of §4.4, SymPy vs NumPy at random points, the evaluator's violations, the
infeasibility report (§5.5), presets (§8) and the CLI preset command."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from edgeopt.analysis.cli import main as cli_main
from edgeopt.models import InstanceError, load_instance
from edgeopt.models.two_stage import TwoStageModel, convergence, read_solution
from edgeopt.models.two_stage.presets import NOISE_PSD_W_PER_HZ, preset, preset_names

DATA = Path(__file__).parent / "data"


def load(name: str) -> TwoStageModel:
    """tests/data/two_stage_<name>.json: t1 .. t4 (spec §7; t1 at delta = 0)."""
    return TwoStageModel.from_file(DATA / f"two_stage_{name}.json")


def learning(model: TwoStageModel, **changes) -> TwoStageModel:
    return model.with_changes(learning={**model.to_dict()["learning"], **changes})


# ---- files, presets and the registry -------------------------------------------------------


@pytest.mark.parametrize("name", ["t1", "t2", "t3", "t4"])
def test_known_answer_files_round_trip_and_equal_the_presets(name):
    document = json.loads((DATA / f"two_stage_{name}.json").read_text())
    model = load_instance(DATA / f"two_stage_{name}.json")
    assert isinstance(model, TwoStageModel)
    assert model.to_dict() == document
    assert TwoStageModel.from_dict(model.to_dict()).to_dict() == document
    assert TwoStageModel.preset(name).to_dict() == {**document, "name": name}


def test_spec_instance_t2_is_the_section_3_1_document():
    document = load("t2").to_dict()
    assert document["delay_budget_s"] == 3.905 and document["devices"][0]["channel_gain"] == 1.023e-11
    assert document["learning"] == {
        "learning_rate": 0.1, "smoothness": 1.0, "grad_variance": 10.0, "initial_gap": 0.1,
        "shift": 0.2, "bound": "squared_shift", "grad_bound": None,
    }


# ---- T1: generous budgets, the bound is linear-fractional ---------------------------------


def t1_grid(model: TwoStageModel, variant=None) -> tuple[np.ndarray, np.ndarray]:
    M, N = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
    psi = model.bound(M, N, 8, np.full(M.shape + (1,), 4), variant=variant)
    return M, psi


@pytest.mark.parametrize(
    ("delta", "variant", "cell", "value"),
    [
        (0.0, None, (10, 10), 0.11875),
        (0.3, None, (10, 10), 0.16375),
        (0.5, None, (0, 10), 0.225),
        (0.1, "linear_shift", (10, 10), 0.20925),
        (0.3, "linear_shift", (0, 10), 0.225),
    ],
)
def test_t1_grid_optimum_at_the_batch_caps(delta, variant, cell, value):
    model = learning(load("t1"), shift=delta, grad_bound=1.0)
    _, psi = t1_grid(model, variant)
    assert np.isnan(psi[0, 0])
    best = np.unravel_index(np.nanargmin(psi), psi.shape)
    assert tuple(int(i) for i in best) == cell
    assert np.nanmin(psi) == pytest.approx(value, rel=1e-12)
    M, N = np.meshgrid(np.arange(11), np.arange(11), indexing="ij")
    a1 = delta**2 if variant is None else 2 * 0.9 * delta + 0.1 * delta**2
    with np.errstate(invalid="ignore", divide="ignore"):
        formula = (2 + M * (a1 + 0.0125) + 0.025 * N) / (M + N)
    np.testing.assert_allclose(psi[1:, :], formula[1:, :], rtol=1e-13)


def test_t1_switch_is_a_tie_at_delta_squared_0_2125():
    model = learning(load("t1"), shift=math.sqrt(0.2125))
    assert float(model.bound(10, 10, 8, [4])) == pytest.approx(float(model.bound(0, 10, 0, [4])), rel=1e-13)
    assert math.sqrt(0.2125) == pytest.approx(0.46098, abs=1e-5)


def test_t1_every_cell_is_feasible_at_the_caps():
    model = load("t1")
    d = model.derived
    cell = model.min_energy(10, 10, 8, [4])
    assert cell.min_delay_s == pytest.approx(0.722, abs=5e-4)
    energy, delay = d.totals(10, 10, 8, d.server_clock_hz, [4], d.device_clock_hz, d.max_power_w)
    assert energy == pytest.approx(0.0722, abs=5e-5) and delay == pytest.approx(cell.min_delay_s)
    assert cell.feasible and cell.energy_j < energy
    assert model.infeasibility() is None


# ---- T2: one binding delay row -------------------------------------------------------------

T2_SOLUTION = {
    "model": "two_stage", "status": "optimal", "objective": 0.235396051103,
    "bound": 0.235396051103, "pretrain_rounds": 4, "finetune_rounds": 6, "pretrain_batch": 84,
    "finetune_batch": [41], "server_clock_hz": 3976331360.95, "device_clock_hz": [1000000000.0],
    "power_w": [0.1], "energy_j": 5.61856692693, "delay_s": 3.905, "method": "exact",
    "solver": "scip", "wall_time_s": 0.03,
}
"""The §3.4 solution document (instance T2)."""


def test_t2_tau_min_is_a_tenth_of_a_second():
    d = load("t2").derived
    assert d.tau_min_s[0] == pytest.approx(0.1, rel=1e-13)  # SNR = 1023
    assert d.energy_inf_j[0] == pytest.approx(1e-20 * 1e5 * math.log(2) / 1.023e-11, rel=1e-14)


def test_t2_relaxed_cell_optimum_closed_form():
    model = load("t2")
    a, b, c = 4 * 1e7 / 4e9, 6 * 1e7 / 1e9, 3.905 - 6 * 0.1
    assert (a, b, c) == pytest.approx((0.01, 0.06, 3.305))
    root = math.sqrt(a * 4) + math.sqrt(b * 6)
    D, B = c * math.sqrt(4 / a) / root, c * math.sqrt(6 / b) / root
    assert (D, B) == pytest.approx((82.625, 41.3125), rel=1e-12)
    assert float(model.batch_term(4, 6, D, [B])) == pytest.approx(0.64 / 3.305, rel=1e-12)
    assert float(model.bound(4, 6, D, [B])) == pytest.approx(0.2353645991, rel=1e-9)
    cell = model.min_energy(4, 6, D, [B])
    assert cell.delay_feasible and cell.min_delay_s == pytest.approx(3.905, rel=1e-12)


def t2_feasible(M, N, D, B) -> np.ndarray:
    """Delay row at the caps (energy is generous in T2: < 8.7 J at caps in every cell)."""
    return M * 1e7 * D / 4e9 + N * (1e7 * B / 1e9 + 0.1) <= 3.905 * (1 + 1e-12)


def test_t2_integer_optimum_by_exact_enumeration():
    """Exact rational enumeration of cell (4, 6), and every cell of the grid."""
    best = min(
        (Fraction(4, D) + Fraction(6, B), D, B)
        for D in range(1, 129)
        for B in range(1, 65)
        if t2_feasible(4, 6, D, B)
    )
    assert best == (Fraction(167, 861), 84, 41)
    model = load("t2")
    assert float(model.batch_term(4, 6, 84, [41])) == pytest.approx(167 / 861, rel=1e-15)
    assert float(model.bound(4, 6, 84, [41])) == pytest.approx(0.2353960511, rel=1e-9)
    assert float(model.bound(4, 6, 82, [41])) == pytest.approx(0.2355121951, rel=1e-9)
    D, B = np.meshgrid(np.arange(1, 129), np.arange(1, 65), indexing="ij")
    values = {}
    for M in range(5):
        for N in range(7):
            if M + N == 0:
                continue
            ok = t2_feasible(M, N, np.where(M > 0, D, 0), np.where(N > 0, B, 0))
            psi = model.bound(M, N, D, B[..., None])
            values[(M, N)] = float(np.min(np.where(ok, psi, np.inf)))
    ranked = sorted(values, key=values.get)
    assert ranked[:3] == [(4, 6), (3, 6), (4, 5)]
    assert values[(3, 6)] == pytest.approx(0.25449, abs=5e-6)
    assert values[(4, 5)] == pytest.approx(0.25602, abs=5e-6)
    d = model.derived
    at_caps = d.totals(4, 6, 128, d.server_clock_hz, [64], d.device_clock_hz, d.max_power_w)[0]
    assert at_caps < 8.7


def test_t2_canonical_resources_and_the_section_3_4_solution():
    model = load("t2")
    cell = model.min_energy(4, 6, 84, [41])
    assert cell.round_time_s == pytest.approx(0.51, rel=1e-12)
    assert cell.server_time_s == pytest.approx(0.21125, rel=1e-12)
    assert cell.server_clock_hz == pytest.approx(3.97633136e9, rel=1e-9)
    assert cell.energy_j == pytest.approx(5.61856693, rel=1e-9)
    solution = model.solution(4, 6, 84, [41])
    assert solution["delay_s"] == pytest.approx(3.905, rel=1e-12)
    assert solution["energy_j"] == pytest.approx(T2_SOLUTION["energy_j"], rel=1e-11)
    assert solution["power_w"] == [0.1] and solution["device_clock_hz"] == [1e9]
    evaluation = model.evaluate(T2_SOLUTION)
    assert evaluation.feasible, evaluation.messages
    assert evaluation.objective == pytest.approx(T2_SOLUTION["objective"], rel=1e-11)
    assert evaluation.energy_j == pytest.approx(5.61856692693, rel=1e-11)
    assert evaluation.delay_s == pytest.approx(3.905, rel=1e-11)
    assert read_solution(T2_SOLUTION, devices=1).pretrain_batch == 84


# ---- T3: pure pre-training, energy and delay bind ------------------------------------------


def test_t3_cube_root_batches_and_the_optimum():
    model = load("t3")
    M = np.arange(1, 101)
    cap = (0.01 * 1.0 / (1e-28 * 1e18 * M**3.0)) ** (1 / 3)
    np.testing.assert_allclose(cap * M, 464.1588834, rtol=1e-9)
    D = np.minimum(64, np.floor(cap + 1e-9)).astype(int)
    psi = model.bound(M, 0, D, np.zeros((100, 1)))
    np.testing.assert_allclose(psi, 2 / M + 0.04 + 1 / D, rtol=1e-13)
    assert int(M[np.argmin(psi)]) == 29 and D[28] == 16
    assert float(psi.min()) == pytest.approx(0.1714655172, rel=1e-9)
    for m in (1, 10, 29, 30, 60):  # the oracle draws the same line: D(M) fits, D(M) + 1 not
        assert model.min_energy(m, 0, D[m - 1], [1]).feasible
        if D[m - 1] < 64:
            assert not model.min_energy(m, 0, D[m - 1] + 1, [1]).feasible
    assert cap[9] == pytest.approx(46.41589, rel=1e-6) and D[9] == 46
    cell = model.min_energy(29, 0, 16, [1])
    assert cell.energy_j == pytest.approx(0.0099897344, rel=1e-9)
    assert cell.server_clock_hz == pytest.approx(4.64e8, rel=1e-12)
    relaxed = model.bound(M, 0, np.minimum(64, cap), np.zeros((100, 1)))
    assert int(M[np.argmin(relaxed)]) == 30
    assert float(relaxed.min()) == pytest.approx(0.1712997074, rel=1e-9)
    assert cap[29] == pytest.approx(15.47196, rel=1e-6)


# ---- T4: two devices, energy and delay bind --------------------------------------------------


def test_t4_exact_point_its_canonical_resources_and_better_neighbours_infeasible():
    model = load("t4")
    coeffs = model.coefficients
    assert (coeffs.a0, coeffs.a1, coeffs.a2) == pytest.approx((92.0, 0.09, 2.0), rel=1e-14)
    assert float(model.batch_term(20, 10, 226, [128, 96])) == pytest.approx(0.13406849, abs=5e-9)
    assert float(model.batch_term(20, 10, 226, [128, 94])) == pytest.approx(0.13462257, abs=5e-9)
    assert float(model.bound(20, 10, 226, [128, 96])) == pytest.approx(3.1356046, abs=5e-8)
    cell = model.min_energy(20, 10, 226, [128, 96])
    assert cell.feasible and cell.energy_j == pytest.approx(2.99733, abs=5e-6)
    assert cell.server_clock_hz == pytest.approx(2.2109e9, rel=5e-5)
    np.testing.assert_allclose(cell.device_clock_hz, [9.3904e8, 1e9], rtol=5e-5)
    np.testing.assert_allclose(cell.power_w, [0.017313, 0.1], rtol=5e-5)
    for better in ((227, [128, 96]), (226, [128, 97])):
        assert not model.min_energy(20, 10, better[0], better[1]).feasible
    evaluation = model.evaluate(model.solution(20, 10, 226, [128, 96]))
    assert evaluation.feasible, evaluation.messages
    assert evaluation.delay_s == pytest.approx(8.0, rel=1e-12)
    assert evaluation.objective == pytest.approx(3.1356046, abs=5e-8)


# ---- the oracle against an independent nested search ----------------------------------------


def random_model(rng: np.random.Generator, devices: int = 2, **changes) -> TwoStageModel:
    document = preset("default", devices=devices, seed=int(rng.integers(1000))).model_dump(mode="json")
    document.update(
        energy_budget_j=float(rng.uniform(0.5, 20)),
        delay_budget_s=float(rng.uniform(5, 40)),
        max_pretrain_rounds=20,
        max_finetune_rounds=20,
        **changes,
    )
    for device in document["devices"]:
        device["max_clock_hz"] = float(rng.uniform(0.5e9, 2e9))
        device["max_power_w"] = float(rng.uniform(0.05, 0.3))
    return TwoStageModel.from_dict(document)


def nested_min_energy(model, M, N, D, B) -> float:
    """Spec §5.5 literally: bounded Brent on t_s outside, on t inside (per device)."""
    d = model.derived
    T = d.delay_budget_s
    B = np.asarray(B, float)
    t_min = d.device_cycles * B / d.device_clock_hz
    A = d.device_capacitance * (d.device_cycles * B) ** 3

    def eps(k, u):
        def f(t):
            tau = u - t
            p = d.noise_w_per_hz * d.bandwidth_hz[k] / d.channel_gain[k] * (
                2 ** (d.bits / (d.bandwidth_hz[k] * tau)) - 1)
            return A[k] / t**2 + tau * p

        hi = u - d.tau_min_s[k]
        if hi <= t_min[k]:
            return f(t_min[k])
        r = minimize_scalar(f, bounds=(t_min[k], hi), method="bounded", options={"xatol": 1e-13})
        return min(r.fun, f(t_min[k]), f(hi))

    def total(t_s):
        u = (T - M * t_s) / N
        return M * d.server_capacitance * (d.server_cycles * D) ** 3 / t_s**2 + N * sum(
            eps(k, u) for k in range(d.n_devices))

    u_min = float(np.max(t_min + d.tau_min_s))
    lo, hi = d.server_cycles * D / d.server_clock_hz, (T - N * u_min) / M
    r = minimize_scalar(total, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return min(r.fun, total(lo), total(hi))


@pytest.mark.parametrize("seed", range(3))
def test_oracle_matches_a_nested_brent_search_and_is_a_kkt_point(seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng)
    M, N = int(rng.integers(1, 20)), int(rng.integers(1, 20))
    D, B = int(rng.integers(1, 60)), rng.integers(1, 60, 2)
    cell = model.min_energy(M, N, D, B)
    if not cell.delay_feasible:
        pytest.skip("random cell not delay-feasible")
    assert cell.energy_j == pytest.approx(nested_min_energy(model, M, N, D, B), rel=1e-7)
    assert cell.energy_j <= nested_min_energy(model, M, N, D, B) * (1 + 1e-10)
    assert cell.delay_s == pytest.approx(model.derived.delay_budget_s, rel=1e-12)
    # KKT: the server's time price 2 A_s/t_s^3 equals the sum of the devices' prices
    d = model.derived
    A_s = d.server_energy_time_constant(D)
    A = d.device_energy_time_constant(B)
    t, tau = cell.compute_s, cell.upload_s
    slope = -(d.upload_energy(tau * (1 + 1e-7)) - d.upload_energy(tau * (1 - 1e-7))) / (2e-7 * tau)
    interior = (t > d.device_cycles * B / d.device_clock_hz * (1 + 1e-9)) & (tau > d.tau_min_s * (1 + 1e-9))
    np.testing.assert_allclose((2 * A / t**3)[interior], slope[interior], rtol=1e-5)
    if cell.server_clock_hz < d.server_clock_hz * (1 - 1e-9) and interior.all():
        assert 2 * A_s / cell.server_time_s**3 == pytest.approx(float(np.sum(2 * A / t**3)), rel=1e-6)


def test_oracle_single_stage_cases_and_infeasible_delay():
    model = load("t2")
    only_fine = model.min_energy(0, 6, 0, [41])
    assert only_fine.round_time_s == pytest.approx(3.905 / 6, rel=1e-14)
    assert only_fine.server_clock_hz == 0.0
    only_pre = model.min_energy(4, 0, 84, [0])
    assert only_pre.server_time_s == pytest.approx(3.905 / 4, rel=1e-14)
    assert only_pre.energy_j == pytest.approx(4 * 1e-28 * (1e7 * 84) ** 3 / (3.905 / 4) ** 2, rel=1e-13)
    slow = model.min_energy(4, 6, 128, [64])
    assert not slow.delay_feasible and slow.energy_j == math.inf
    assert slow.min_delay_s == pytest.approx(4 * 0.32 + 6 * 0.74, rel=1e-12)
    with pytest.raises(ValueError, match="M \\+ N >= 1"):
        model.min_energy(0, 0, 1, [1])


# ---- SymPy derivation and the identities of §4.4 ---------------------------------------------


def test_sympy_identities_of_section_4_4():
    import sympy as sp

    eta, L, s2, D, V, d, G, Phi, M, N = sp.symbols("eta L sigma2 D V delta G Phi M N", positive=True)
    gF = sp.symbols("x1:3", real=True)
    gG = sp.symbols("y1:3", real=True)
    e = sp.symbols("e1:3", real=True)

    def dot(u, v):
        return sum(a * b for a, b in zip(u, v))

    def sub(u, v):
        return [a - b for a, b in zip(u, v)]

    def add(u, v):
        return [a + b for a, b in zip(u, v)]

    def Z(x):
        return sp.simplify(sp.expand(x)) == 0

    assert Z(-eta * dot(gF, gG) + L * eta**2 / 2 * (dot(gG, gG) + s2 / D) - (
        -eta / 2 * dot(gF, gF) - eta / 2 * (1 - L * eta) * dot(gG, gG)
        + eta / 2 * dot(sub(gF, gG), sub(gF, gG)) + L * eta**2 * s2 / (2 * D)))  # I1
    assert Z(-eta * dot(gF, gF) + L * eta**2 / 2 * (dot(gF, gF) + V) - (
        -eta / 2 * dot(gF, gF) - eta / 2 * (1 - L * eta) * dot(gF, gF) + L * eta**2 * V / 2))  # I2
    gGe = add(gF, e)
    assert Z(-eta * dot(gF, gGe) + L * eta**2 / 2 * dot(gGe, gGe) - (
        -eta * (1 - L * eta / 2) * dot(gF, gF) - eta * (1 - L * eta) * dot(gF, e)
        + L * eta**2 / 2 * dot(e, e)))  # I3
    a1, SD, SB = sp.symbols("a1 S_D S_B", positive=True)
    Psi = (2 * Phi / eta + a1 * M + L * eta * s2 * (SD + SB)) / (M + N)
    assert Z(Psi * eta * (M + N) / 2 - (Phi + M * eta * a1 / 2 + L * eta**2 * s2 / 2 * (SD + SB)))  # I4
    assert Z(2 * (1 - L * eta) * G * d + L * eta * d**2 - d**2 - d * (2 * G - d) * (1 - L * eta))  # I5
    a0, cM, cN = sp.symbols("a0 c_M c_N", positive=True)
    assert Z(sp.diff((a0 + cM * M + cN * N) / (M + N), M) - ((cM - cN) * N - a0) / (M + N) ** 2)  # I6
    t = sp.Symbol("t", positive=True)
    H = sp.hessian(D**3 / t**2, (D, t))
    assert Z(H.det()) and Z(H[0, 0] - 6 * D / t**2)  # I7
    tau, N0, b, h, S = sp.symbols("tau N0 b h S", positive=True)
    phi = tau * (N0 * b / h) * (2 ** (S / (b * tau)) - 1)
    assert Z(sp.diff(phi, tau, 2) - N0 * S**2 * sp.log(2) ** 2 * 2 ** (S / (b * tau)) / (b * h * tau**3))  # I8
    assert Z(sp.limit(phi, tau, sp.oo) - N0 * S * sp.log(2) / h)
    p = (N0 * b / h) * (2 ** (S / (b * tau)) - 1)
    assert Z(b * sp.log(1 + p * h / (N0 * b), 2) * tau - S)  # I9
    A, Bc, c = sp.symbols("a b c", positive=True)
    den = sp.sqrt(A * M) + sp.sqrt(Bc * N)
    Ds, Bs = c * sp.sqrt(M / A) / den, c * sp.sqrt(N / Bc) / den
    assert Z(A * Ds + Bc * Bs - c) and Z(M / Ds + N / Bs - den**2 / c)  # I10
    assert Z((M / Ds**2) / A - (N / Bs**2) / Bc)


def test_the_derivation_rewrites_are_identities_and_the_dropped_terms_have_the_right_sign():
    import sympy as sp

    terms = convergence.derivation()
    sym = terms["symbols"]
    eta, L, d, G = sym["eta"], sym["L"], sym["delta"], sym["G"]
    assert sp.expand(terms["descent_pre"] - terms["polarised_pre"]) == 0
    assert sp.expand(terms["descent_linear"] - terms["expanded_linear"]) == 0
    assert sp.expand(terms["descent_fine"] - terms["rewritten_fine"]) == 0
    # the dropped terms are <= 0 for every eta L = r in (0, 1]
    r = sp.Symbol("r", positive=True)
    for key, norm in (("dropped_pre", sym["gG2"]), ("dropped_grad", sym["gF2"])):
        coefficient = sp.simplify(terms[key].subs(L, r / eta) / norm)
        assert sp.simplify(coefficient + eta * (1 - r) / 2) == 0
    # the one-step bounds are the §4.2 statements
    gF2, s2, D, beta = sym["gF2"], sym["sigma2"], sym["D"], sym["beta"]
    assert sp.simplify(terms["step_pre"] - (-eta / 2 * gF2 + eta * d**2 / 2 + L * eta**2 * s2 / (2 * D))) == 0
    assert sp.simplify(terms["step_pre_linear"] - (
        -eta / 2 * gF2 + eta * (1 - L * eta) * G * d + L * eta**2 * d**2 / 2 + L * eta**2 * s2 / (2 * D))) == 0
    assert sp.simplify(terms["step_fine"] - (-eta / 2 * gF2 + L * eta**2 * s2 * beta / 2)) == 0
    # coefficients read off the telescoped bound (§4.3)
    Phi = sym["Phi"]
    assert sp.simplify(terms["a0"] - 2 * Phi / eta) == 0
    assert sp.simplify(terms["a2"] - L * eta * s2) == 0
    assert sp.simplify(terms["a1"] - d**2) == 0
    assert sp.simplify(terms["a1_linear"] - (2 * (1 - L * eta) * G * d + L * eta * d**2)) == 0
    M, N = sym["M"], sym["N"]
    for key, a1 in (("bound", terms["a1"]), ("bound_linear", terms["a1_linear"])):
        psi = (2 * Phi / eta + a1 * M + L * eta * s2 * (M / D + N * beta)) / (M + N)
        assert sp.simplify(terms[key] - psi) == 0
    model_terms = learning(load("t1"), bound="linear_shift", grad_bound=1.0).convergence_terms()
    assert sp.simplify(model_terms["bound"] - terms["bound_linear"]) == 0
    assert sp.simplify(terms["bound"].subs(M, 0) - (2 * Phi / eta / N + L * eta * s2 * beta)) == 0
    assert sp.simplify(sp.limit(terms["bound"], N, 0) - (2 * Phi / eta / M + d**2 + L * eta * s2 / D)) == 0


@pytest.mark.parametrize("variant", ["squared_shift", "linear_shift"])
def test_numpy_bound_equals_the_sympy_bound_at_random_points(variant):
    import sympy as sp

    terms = convergence.derivation()
    sym = terms["symbols"]
    expr = terms["bound" if variant == "squared_shift" else "bound_linear"]
    names = ("eta", "L", "sigma2", "Phi", "delta", "G", "M", "N", "D", "beta")
    reference = sp.lambdify([sym[n] for n in names], expr, "numpy")
    rng = np.random.default_rng(5)
    for _ in range(50):
        L = rng.uniform(0.1, 20)
        eta = rng.uniform(0.01, 1) / L
        values = dict(eta=eta, L=L, sigma2=rng.uniform(0, 10), Phi=rng.uniform(0, 5),
                      delta=rng.uniform(0, 2), G=rng.uniform(0.5, 5))
        K = int(rng.integers(1, 5))
        weights = rng.dirichlet(np.ones(K))
        M, N = int(rng.integers(1, 400)), int(rng.integers(1, 200))
        D, B = rng.uniform(1, 256), rng.uniform(1, 128, K)
        beta = float(np.sum(weights**2 / B))
        coeffs = convergence.coefficients(
            learning_rate=eta, smoothness=L, grad_variance=values["sigma2"],
            initial_gap=values["Phi"], shift=values["delta"], variant=variant,
            grad_bound=values["G"])
        expected = reference(*(values[n] for n in names[:6]), M, N, D, beta)
        assert float(convergence.psi(M, N, D, beta, coeffs)) == pytest.approx(expected, rel=1e-12)

    # per-round form: the SymPy Sums at M = 3, N = 2 and random per-round batches
    per_round = terms["bound_per_round" if variant == "squared_shift" else "bound_per_round_linear"]
    fixed = per_round.subs({sym[n]: values[n] for n in names[:6]}).subs({sym["M"]: 3, sym["N"]: 2})
    expanded = fixed.replace(
        lambda x: isinstance(x, sp.Sum),
        lambda s: sum(s.function.subs(s.limits[0][0], i) for i in range(int(s.limits[0][2]) + 1)),
    )
    Dm, Bn = rng.uniform(1, 256, 3), rng.uniform(1, 128, (2, K))
    numeric = expanded.subs({sym["Dm"][i]: Dm[i] for i in range(3)}).subs(
        {sym["betan"][i]: float(np.sum(weights**2 / Bn[i])) for i in range(2)})
    assert float(numeric) == pytest.approx(convergence.psi_per_round(Dm, Bn, weights, coeffs), rel=1e-12)


def test_bound_falls_in_every_batch_and_equal_batches_minimise_q():
    model = load("t4")
    base = float(model.bound(20, 10, 100, [50, 60]))
    assert float(model.bound(20, 10, 101, [50, 60])) < base
    assert float(model.bound(20, 10, 100, [51, 60])) < base
    assert float(model.bound(20, 10, 100, [50, 61])) < base
    rng = np.random.default_rng(1)
    weights = model.derived.weights
    for _ in range(20):  # per-round batches with the same sum: equal ones give the least Q
        Dm = rng.uniform(1, 50, 6)
        Bn = rng.uniform(1, 50, (4, 2))
        coeffs = model.coefficients
        uneven = convergence.psi_per_round(Dm, Bn, weights, coeffs)
        even = convergence.psi_per_round(np.full(6, Dm.mean()), np.tile(Bn.mean(axis=0), (4, 1)), weights, coeffs)
        assert even <= uneven + 1e-15
        assert even == pytest.approx(float(model.bound(6, 4, Dm.mean(), Bn.mean(axis=0))), rel=1e-13)


def test_linear_shift_is_never_tighter_when_delta_at_most_2g():
    rng = np.random.default_rng(2)
    model = load("t4")
    for _ in range(30):
        G = rng.uniform(0.1, 3)
        delta = rng.uniform(0, 2 * G)
        m = learning(model, shift=delta, grad_bound=G)
        gap = m.coefficients_for("linear_shift").a1 - m.coefficients_for("squared_shift").a1
        assert gap >= -1e-15
        assert gap == pytest.approx(delta * (2 * G - delta) * (1 - 0.5), rel=1e-12, abs=1e-15)


# ---- evaluator ------------------------------------------------------------------------------


def t4_point(**changes) -> dict:
    solution = load("t4").solution(20, 10, 226, [128, 96])
    return {**solution, **changes}


@pytest.mark.parametrize(
    ("changes", "constraint", "device", "amount"),
    [
        ({"pretrain_rounds": 21}, "rounds", None, 1.0),
        ({"finetune_rounds": 2.5}, "rounds", None, 1.0),
        ({"pretrain_batch": 300}, "pretrain_batch", None, 44.0),
        ({"pretrain_batch": 225.5}, "pretrain_batch", None, 0.5),
        ({"finetune_batch": [128, 130]}, "finetune_batch", "d1", 2.0),
        ({"finetune_batch": [0, 96]}, "finetune_batch", "d0", 1.0),
        ({"server_clock_hz": 6e9}, "server_clock", None, 0.2),
        ({"device_clock_hz": [9e8, 1.1e9]}, "device_clock", "d1", 0.1),
        ({"device_clock_hz": [-1.0, 1e9]}, "device_clock", "d0", 1.0),
        ({"power_w": [0.15, 0.1]}, "power", "d0", 0.5),
        ({"energy_j": 3.5}, "reported_energy", None, None),
        ({"delay_s": 7.0}, "reported_delay", None, None),
    ],
)
def test_evaluator_names_the_constraint_the_device_and_the_amount(changes, constraint, device, amount):
    evaluation = load("t4").evaluate(t4_point(**changes))
    assert not evaluation.feasible and evaluation.objective is None
    issue = next(i for i in evaluation.issues if i.constraint == constraint)
    assert issue.device == device
    if amount is not None:
        assert issue.amount == pytest.approx(amount, rel=1e-9)
    assert evaluation.violations[constraint] > 0
    assert any(m.startswith(constraint) for m in evaluation.messages)
    if device is not None:
        assert repr(device) in issue.message


def test_evaluator_flags_budgets_with_the_excess():
    model = load("t4")
    fast = t4_point(server_clock_hz=5e9, device_clock_hz=[1e9, 1e9], power_w=[0.1, 0.1])
    del fast["energy_j"], fast["delay_s"]
    evaluation = model.evaluate(fast)
    d = model.derived
    energy, delay = d.totals(20, 10, 226, 5e9, [128, 96], [1e9, 1e9], [0.1, 0.1])
    assert evaluation.energy_j == pytest.approx(float(energy), rel=1e-12)
    assert evaluation.violations["energy"] == pytest.approx(float(energy) / 3.0 - 1, rel=1e-9)
    assert evaluation.violations["delay"] == 0
    slow = t4_point(server_clock_hz=1e9)
    del slow["energy_j"], slow["delay_s"]
    evaluation = model.evaluate(slow)
    assert evaluation.violations["delay"] > 0 and evaluation.violations["energy"] == 0
    assert "over by" in next(m for m in evaluation.messages if m.startswith("delay"))
    assert evaluation.psi == pytest.approx(3.1356046, abs=5e-8)  # the bound is still reported


def test_evaluator_unused_stages_and_malformed_decisions():
    model = load("t2")
    only_fine = model.solution(0, 6, 0, [41])
    assert only_fine["pretrain_batch"] == 0 and only_fine["server_clock_hz"] == 0.0
    evaluation = model.evaluate(only_fine)
    assert evaluation.feasible, evaluation.messages
    assert evaluation.objective == pytest.approx(2 / 6 + 10 * 0.1 / 41 * 1, rel=1e-12)
    bad = model.evaluate({**only_fine, "pretrain_batch": 5})
    assert bad.violations["pretrain_batch"] == 5
    only_pre = model.solution(4, 0, 84)
    assert only_pre["finetune_batch"] == [0] and only_pre["power_w"] == [0.0]
    assert model.evaluate(only_pre).feasible
    assert model.evaluate({**only_pre, "power_w": [0.1]}).violations["power"] > 0
    assert model.evaluate({**only_pre, "pretrain_rounds": 0}).violations["rounds"] == 1
    with pytest.raises(ValueError, match="power_w"):
        model.evaluate({**only_pre, "power_w": [0.1, 0.1]})
    with pytest.raises(ValueError, match="finetune_batch"):
        model.evaluate(model.empty_solution())
    assert model.evaluate({**only_pre, "pretrain_rounds": True}).violations["rounds"] > 0


@pytest.mark.parametrize("seed", range(10))
def test_evaluator_agrees_with_the_vectorised_totals_and_bound(seed):
    rng = np.random.default_rng(seed)
    model = random_model(rng, devices=3)
    d = model.derived
    M, N = int(rng.integers(0, 21)), int(rng.integers(1, 21))
    D = int(rng.integers(1, 257)) if M else 0
    B = rng.integers(1, 129, 3)
    f_s = float(rng.uniform(0.1, 1) * d.server_clock_hz) if M else 0.0
    f = rng.uniform(0.1, 1, 3) * d.device_clock_hz
    p = rng.uniform(0.01, 1, 3) * d.max_power_w
    evaluation = model.evaluate({
        "pretrain_rounds": M, "finetune_rounds": N, "pretrain_batch": D,
        "finetune_batch": B.tolist(), "server_clock_hz": f_s, "device_clock_hz": f.tolist(),
        "power_w": p.tolist(),
    })
    energy, delay = d.totals(M, N, D, f_s, B, f, p)
    assert evaluation.energy_j == pytest.approx(float(energy), rel=1e-12)
    assert evaluation.delay_s == pytest.approx(float(delay), rel=1e-12)
    assert evaluation.psi == pytest.approx(float(model.bound(M, N, D, B)), rel=1e-12)
    assert evaluation.feasible == (energy <= d.energy_budget_j * (1 + 1e-9) and delay <= d.delay_budget_s * (1 + 1e-9))
    np.testing.assert_allclose(evaluation.per_device["upload_s"], d.upload_time(p), rtol=1e-12)


def test_per_round_decisions_and_time_varying_channels():
    document = load("t4").to_dict()
    gains = [[8e-10, 6e-10, 9e-10, 7e-10], [6e-11, 7e-11, 5e-11, 6.5e-11]]
    for device, schedule in zip(document["devices"], gains):
        device["channel_gain_schedule"] = schedule * 3  # 12 >= N_max = 10
    model = TwoStageModel.from_dict(document)
    assert model.derived.time_varying and model.derived.gains.shape == (10, 2)
    assert model.to_dict()["devices"][0]["channel_gain_schedule"][:4] == gains[0]
    d = model.derived
    N = 4
    B = [[100, 80], [90, 70], [110, 60], [100, 75]]
    f = [[8e8, 9e8]] * N
    p = [[0.05, 0.1], [0.04, 0.1], [0.06, 0.09], [0.05, 0.1]]
    decision = {
        "pretrain_rounds": 5, "finetune_rounds": N, "pretrain_batch": 200, "server_clock_hz": 3e9,
        "finetune_batch": B[0], "device_clock_hz": f[0], "power_w": p[0],
        "per_round": {"finetune_batch": B, "device_clock_hz": f, "power_w": p},
    }
    evaluation = model.evaluate(decision)
    rounds = []
    energy = 5 * float(d.server_energy(200, 3e9))
    for n in range(N):
        tau = d.upload_time(p[n], d.gains[n])
        t = d.device_time(B[n], f[n])
        rounds.append(float(np.max(t + tau)))
        energy += float(np.sum(d.device_energy(B[n], f[n]) + np.asarray(p[n]) * tau))
    assert evaluation.round_times_s == pytest.approx(tuple(rounds), rel=1e-12)
    assert evaluation.delay_s == pytest.approx(5 * float(d.server_time(200, 3e9)) + sum(rounds), rel=1e-12)
    assert evaluation.energy_j == pytest.approx(energy, rel=1e-12)
    weights = d.weights
    expected = convergence.psi_per_round([200] * 5, B, weights, model.coefficients)
    assert evaluation.psi == pytest.approx(expected, rel=1e-12)
    assert evaluation.feasible, evaluation.messages
    mismatch = {**decision, "finetune_batch": [99, 80]}
    assert model.evaluate(mismatch).violations["per_round"] == 1
    short = {**decision, "per_round": {**decision["per_round"], "power_w": p[:3]}}
    assert model.evaluate(short).violations["per_round"] == 1
    over = {**decision, "per_round": {**decision["per_round"], "power_w": [p[0], p[1], [0.06, 0.2], p[3]]}}
    issue = next(i for i in model.evaluate(over).issues if i.constraint == "power")
    assert (issue.device, issue.round) == ("d1", 2) and issue.amount == pytest.approx(1.0)
    # a stage-constant decision under time-varying channels: round n uses h_k(n)
    constant = {k: v for k, v in decision.items() if k != "per_round"}
    times = model.evaluate(constant).round_times_s
    assert len(set(times)) > 1


# ---- infeasibility (§5.5) ---------------------------------------------------------------------


def test_delay_infeasibility_names_the_budget_and_the_missing_time():
    model = TwoStageModel.preset("default", max_pretrain_rounds=0, delay_budget_s=0.3)
    problem = model.infeasibility()
    assert problem.reason == "delay"
    assert "delay budget 0.3 s < 0.500557 s needed for one fine-tuning round" in problem.message
    assert "'ue-9'" in problem.message
    assert problem.details["min_delay_s"] == pytest.approx(0.5006, abs=5e-5)
    assert problem.details["missing_s"] == pytest.approx(problem.details["min_delay_s"] - 0.3)
    assert problem.details["min_energy_j"] is None
    both = TwoStageModel.preset("default", delay_budget_s=1e-5).infeasibility()
    assert both.reason == "delay" and both.details["min_delay_s"] == pytest.approx(2e-4, rel=1e-12)
    assert "one pre-training round" in both.message


def test_energy_infeasibility_reports_the_least_energy_needed():
    model = load("t2").with_changes(energy_budget_j=1e-9)
    problem = model.infeasibility()
    assert problem.reason == "energy"
    # cell (1, 0) at D = 1 using all of T_max: kappa C^3 / T^2
    pre = 1e-28 * 1e21 / 3.905**2
    fine = model.min_energy(0, 1, 0, [1]).energy_j
    assert problem.details["min_energy_j"] == pytest.approx(min(pre, fine), rel=1e-12)
    assert problem.details["missing_j"] == pytest.approx(min(pre, fine) - 1e-9, rel=1e-12)
    assert f"{min(pre, fine):.6g} J needed" in problem.message
    assert model.with_changes(energy_budget_j=min(pre, fine) * 1.001).infeasibility() is None


def test_a_budget_equal_to_the_upload_infimum_is_infeasible():
    base = load("t2").with_changes(max_pretrain_rounds=0, max_finetune_rounds=1, delay_budget_s=1e6)
    infimum = float(base.derived.energy_inf_j.sum())
    problem = base.with_changes(energy_budget_j=infimum).infeasibility()
    assert problem.reason == "energy" and problem.details["min_energy_j"] > infimum
    assert base.with_changes(energy_budget_j=infimum * 1.01).infeasibility() is None


# ---- solution documents ---------------------------------------------------------------------


def test_solution_reader_checks_the_section_3_4_rules():
    infeasible = {
        "model": "two_stage", "status": "infeasible", "objective": None, "bound": None,
        "pretrain_rounds": None, "finetune_rounds": None, "pretrain_batch": None,
        "finetune_batch": [], "server_clock_hz": None, "device_clock_hz": [], "power_w": [],
        "energy_j": None, "delay_s": None, "method": "exact", "solver": None, "wall_time_s": 0.0,
        "message": "delay budget 0.3 s < 0.5006 s", "infeasible_reason": "delay",
        "min_delay_s": 0.5006, "min_energy_j": None,
    }
    assert read_solution(infeasible).status == "infeasible"
    for change, path in (
        ({"finetune_batch": [41.5]}, "finetune_batch[0]"),
        ({"status": "optimal", "bound": 0.2}, "bound"),
        ({"finetune_batch": [41, 3]}, "finetune_batch"),
        ({"pretrain_rounds": 0}, "pretrain_batch"),
        ({"method": "magic"}, "method"),
        ({"per_round": {"finetune_batch": [[41]], "device_clock_hz": [[1e9]], "power_w": [[0.1]]}},
         "per_round.finetune_batch"),
    ):
        with pytest.raises(InstanceError) as caught:
            read_solution({**T2_SOLUTION, **change}, devices=1)
        assert caught.value.issues[0].path == path
    with pytest.raises(InstanceError, match="must be null when infeasible"):
        read_solution({**infeasible, "energy_j": 1.0})
    with pytest.raises(InstanceError, match="infeasible_reason"):
        read_solution({**infeasible, "infeasible_reason": None})


# ---- presets and CLI --------------------------------------------------------------------------


def test_default_preset_matches_the_section_8_magnitudes():
    model = TwoStageModel.preset("default")
    d = model.derived
    assert model.size == {"devices": 10, "max_pretrain_rounds": 400, "max_finetune_rounds": 200}
    assert NOISE_PSD_W_PER_HZ == pytest.approx(3.981e-21, rel=1e-3)
    np.testing.assert_allclose([x["distance_m"] for x in model.to_dict()["devices"]],
                               50 + 150 * np.arange(10) / 9, rtol=1e-14)
    np.testing.assert_allclose(d.bandwidth_hz, 1e5) and np.testing.assert_allclose(d.weights, 0.1)
    assert float(d.server_energy(1, 5e9)) == pytest.approx(2.5e-3) and float(d.server_time(1, 5e9)) == pytest.approx(2e-4)
    assert float(d.device_energy([1] * 10, d.device_clock_hz)[0]) == pytest.approx(1e-4)
    assert d.rate_max_bps[0] == pytest.approx(2.15e6, rel=5e-3) and d.tau_min_s[0] == pytest.approx(0.325, abs=1e-3)
    assert d.rate_max_bps[-1] == pytest.approx(1.40e6, rel=5e-3) and d.tau_min_s[-1] == pytest.approx(0.500, abs=1e-3)
    assert d.energy_inf_j.min() == pytest.approx(1.6e-7, rel=0.05) and d.energy_inf_j.max() == pytest.approx(2.9e-5, rel=0.05)
    for batch, seconds, joules in ((1, 0.50, 0.42), (32, 0.53, 0.45), (128, 0.63, 0.55)):
        energy, delay = d.totals(0, 1, 0, 0.0, [batch] * 10, d.device_clock_hz, d.max_power_w)
        assert (float(delay), float(energy)) == pytest.approx((seconds, joules), abs=5e-3)
    for batch, clock, seconds, joules in ((64, 5e9, 12.8e-3, 0.16), (256, 5e9, 51.2e-3, 0.64), (64, 1e9, 64e-3, 6.4e-3)):
        assert (float(d.server_time(batch, clock)), float(d.server_energy(batch, clock))) == pytest.approx((seconds, joules))
    assert model.infeasibility() is None


def test_fleet_generator_is_reproducible_by_seed_and_stays_in_the_cell():
    first = preset("default", devices=6, seed=11).model_dump(mode="json")
    assert first == preset("default", devices=6, seed=11).model_dump(mode="json")
    other = preset("default", devices=6, seed=12).model_dump(mode="json")
    assert first["devices"] != other["devices"]
    distances = np.array([d["distance_m"] for d in first["devices"]])
    assert ((distances >= 50) & (distances <= 200)).all()
    gains = np.array([d["channel_gain"] for d in first["devices"]])
    np.testing.assert_allclose(-10 * np.log10(gains), 128.1 + 37.6 * np.log10(distances / 1000), rtol=1e-12)
    many = preset("default", devices=2000, seed=0)
    radius = np.array([d.distance_m for d in many.devices])
    share_inner = np.mean(radius < 125)  # area-uniform: (125^2 - 50^2)/(200^2 - 50^2) = 0.35
    assert share_inner == pytest.approx(0.35, abs=0.04)
    assert sum(d.weight for d in many.devices) == pytest.approx(1.0, abs=1e-9)
    assert preset_names() == ["default", "t1", "t2", "t3", "t4"]
    with pytest.raises(ValueError, match="fixed fleet"):
        preset("t2", devices=3)
    with pytest.raises(ValueError, match="devices = 0"):
        preset("default", devices=0)
    with pytest.raises(ValueError, match="unknown override"):
        preset("default", budget=3)
    assert preset("default", learning={"shift": 0.8}).learning.shift == 0.8


def test_cli_preset_writes_a_loadable_instance(tmp_path, capsys):
    path = tmp_path / "cell.json"
    assert cli_main(["preset", "two_stage", "default", "--devices", "4", "--seed", "3", "-o", str(path)]) == 0
    model = load_instance(path)
    assert isinstance(model, TwoStageModel)
    assert model.to_dict() == TwoStageModel.preset("default", devices=4, seed=3).to_dict()
    assert cli_main(["validate", str(path)]) == 0
    assert cli_main(["preset", "two_stage", "t2", "--seed", "1"]) == 2
    assert "fixed fleet" in capsys.readouterr().err
