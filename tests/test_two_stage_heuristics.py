"""Two-stage heuristics and baselines (spec §6.4-§6.5): the SCA against the closed form of T2,
the reference value of T4 and an independent SLSQP solve of the §5.3 reformulation; feasible
and non-worsening SCA iterates; every heuristic and baseline on T1-T4 verified by ``solve``
and never below the spec's exact optima; the baselines' definitions against brute force; the
infeasibility reports; option validation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from edgeopt.models.two_stage import TwoStageModel
from edgeopt.models.two_stage.presets import preset
from edgeopt.solvers import solve
from edgeopt.solvers.api import verify
from edgeopt.solvers.two_stage import baselines, coarse_to_fine, sca
from edgeopt.solvers.two_stage.cell import CellPrograms

DATA = Path(__file__).parent / "data"

HEURISTICS = ("sca_grid", "coarse_to_fine")
BASELINES = ("baseline_finetune_only", "baseline_equal_rounds", "baseline_fixed_batch",
             "baseline_split_budget", "baseline_max_resource")


def load(name: str, **learning) -> TwoStageModel:
    model = TwoStageModel.from_file(DATA / f"two_stage_{name}.json")
    if learning:
        model = model.with_changes(learning={**model.to_dict()["learning"], **learning})
    return model


def relaxed_cell(model: TwoStageModel, M: int, N: int, backend: str = "clarabel"):
    relaxed = sca.CellSCA(model, backend).relax(M, N)
    assert relaxed is not None
    return relaxed


# ---- SCA in one cell: known answers ----------------------------------------------------------


@pytest.mark.parametrize("backend", ["clarabel", "ecos"])
def test_sca_reaches_the_t2_closed_form(backend):
    """I10: D* = 82.625, B* = 41.3125, Q* = 0.64/3.305, Psi_relax = 0.2353645991."""
    model = load("t2")
    relaxed = relaxed_cell(model, 4, 6, backend)
    assert relaxed.termination == "converged"
    assert relaxed.batch_term == pytest.approx(0.64 / 3.305, rel=1e-6)
    assert relaxed.batch_term == pytest.approx(0.193645991, rel=1e-6)
    psi = float(model.bound(4, 6, relaxed.D, relaxed.B))
    assert psi == pytest.approx(0.2353645991, rel=1e-6)
    # the optimum is unique (strictly convex objective on the active delay line)
    assert relaxed.D == pytest.approx(82.625, rel=1e-3)
    assert relaxed.B[0] == pytest.approx(41.3125, rel=1e-3)


@pytest.mark.parametrize("backend", ["clarabel", "ecos"])
def test_sca_reaches_the_t4_reference_value(backend):
    """T4 cell (20, 10): relaxed Q* = 0.13402856 at D = 226.82, B = (128, 94.98)."""
    relaxed = relaxed_cell(load("t4"), 20, 10, backend)
    assert relaxed.batch_term == pytest.approx(0.13402856, rel=1e-6)
    assert relaxed.D == pytest.approx(226.82, rel=1e-3)
    np.testing.assert_allclose(relaxed.B, [128, 94.98], rtol=1e-3)


def test_sca_pure_pretraining_matches_the_t3_cube_root():
    """N = 0: D*(M) = min(64, 464.1588834/M) (energy and delay bind), for several M."""
    model = load("t3")
    cells = sca.CellSCA(model)
    for M in (5, 10, 30, 77):
        relaxed = cells.relax(M, 0)
        assert relaxed.D == pytest.approx(min(64.0, 464.1588834 / M), rel=1e-6)


# ---- SCA against an independent SLSQP solve of §5.3 -------------------------------------------


def random_model(seed: int) -> TwoStageModel:
    rng = np.random.default_rng(seed)
    document = preset("default", devices=3, seed=seed).model_dump(mode="json")
    document.update(energy_budget_j=float(rng.uniform(0.5, 4)),
                    delay_budget_s=float(rng.uniform(2, 8)),
                    max_pretrain_rounds=30, max_finetune_rounds=15)
    for device in document["devices"]:
        device["max_clock_hz"] = float(rng.uniform(0.5e9, 2e9))
        device["max_power_w"] = float(rng.uniform(0.05, 0.3))
    return TwoStageModel.from_dict(document)


def slsqp_cell(model: TwoStageModel, M: int, N: int) -> float:
    """Spec §5.3 in time variables (t_s, t_k, tau_k, u), every variable scaled to O(1):
    min M/D + N sum alpha^2/B s.t. the energy row with kappa C^3 D^3/t^2 and the upload
    energy tau (N0 b/h)(2^(S/(b tau)) - 1), M t_s + N u <= T, u >= t_k + tau_k, clock caps."""
    d = model.derived
    K = d.n_devices
    E, T = d.energy_budget_j, d.delay_budget_s
    Dm, Bm = d.server_max_batch, d.device_max_batch.astype(float)
    scale = d.noise_w_per_hz * d.bandwidth_hz / d.channel_gain

    def split(z):
        return (z[0] * Dm, z[1] * T, z[2:2 + K] * Bm, z[2 + K:2 + 2 * K] * T,
                z[2 + 2 * K:2 + 3 * K] * T, z[-1] * T)

    def energy(z):
        D, ts, B, t, tau, _ = split(z)
        tau = np.maximum(tau, d.tau_min_s)
        upload = tau * scale * np.expm1(math.log(2) * d.bits / (d.bandwidth_hz * tau))
        return (M * d.server_capacitance * (d.server_cycles * D) ** 3 / ts**2
                + N * np.sum(d.device_capacitance * (d.device_cycles * B) ** 3 / t**2 + upload))

    def rows(z):
        D, ts, B, t, tau, u = split(z)
        return np.concatenate([
            [1 - energy(z) / E, 1 - (M * ts + N * u) / T],
            (u - t - tau) / T,
            [(ts - d.server_cycles * D / d.server_clock_hz) / T],
            (t - d.device_cycles * B / d.device_clock_hz) / T,
        ])

    def objective(z):
        D, _, B, _, _, _ = split(z)
        return M / D + N * np.sum(d.weights**2 / B)

    start = model.min_energy(M, N, 1, np.ones(K))
    z0 = np.concatenate([[1 / Dm, start.server_time_s / T], 1 / Bm, start.compute_s / T,
                         start.upload_s / T, [start.round_time_s / T]])
    bounds = ([(1 / Dm, 1), (1e-9, 1)] + [(1 / b, 1) for b in Bm] + [(1e-9, 1)] * K
              + [(tm / T, 1) for tm in d.tau_min_s] + [(0, 1)])
    result = minimize(objective, z0, method="SLSQP", bounds=bounds,
                      constraints=[{"type": "ineq", "fun": rows}],
                      options={"ftol": 1e-12, "maxiter": 1000})
    assert result.success, result.message
    assert np.all(rows(result.x) >= -1e-9)
    return float(result.fun)


@pytest.mark.parametrize("seed", [2, 3, 5])
def test_sca_matches_an_independent_slsqp_solve_on_random_cells(seed):
    """Two random cells per fleet where a budget binds (some relaxed batch below its cap)."""
    model = random_model(seed)
    d = model.derived
    rng = np.random.default_rng(100 + seed)
    cells = sca.CellSCA(model)
    checked = 0
    for _ in range(30):
        M, N = int(rng.integers(1, 31)), int(rng.integers(1, 16))
        relaxed = cells.relax(M, N)
        if relaxed is None or (relaxed.D > d.server_max_batch * (1 - 1e-6)
                               and np.all(relaxed.B > d.device_max_batch * (1 - 1e-6))):
            continue
        assert relaxed.batch_term == pytest.approx(slsqp_cell(model, M, N), rel=1e-6)
        checked += 1
        if checked == 2:
            break
    assert checked == 2


# ---- SCA iterates: feasible, never worse ------------------------------------------------------


@pytest.mark.parametrize(("name", "cell"), [("t2", (4, 6)), ("t4", (20, 10)), ("t3", (29, 0)),
                                            ("t1", (0, 7)), ("random", (12, 9))])
def test_sca_iterates_are_feasible_and_never_worse(name, cell):
    model = random_model(4) if name == "random" else load(name)
    relaxed = relaxed_cell(model, *cell)
    M, N = cell
    rows = relaxed.trace
    assert rows[0]["iteration"] == 0 and rows[0]["batch_term"] == pytest.approx(
        float(model.batch_term(M, N, 1, np.ones(model.n_devices))), rel=1e-12)
    values = [row["batch_term"] for row in rows]
    assert all(b <= a for a, b in zip(values, values[1:]))
    d = model.derived
    for row in rows:  # the model's own totals from the trace's batches, clocks and powers
        energy, delay = d.totals(M, N, row["pretrain_batch"], row["server_clock_hz"],
                                 np.array(row["finetune_batch"]), row["device_clock_hz"],
                                 row["power_w"])
        assert energy <= d.energy_budget_j * (1 + 1e-12)
        assert delay <= d.delay_budget_s * (1 + 1e-12)
        assert row["server_clock_hz"] <= d.server_clock_hz
        assert np.all(np.array(row["device_clock_hz"]) <= d.device_clock_hz)
        assert np.all(np.array(row["power_w"]) <= d.max_power_w)
        assert float(model.batch_term(M, N, row["pretrain_batch"], row["finetune_batch"])) == \
            pytest.approx(row["batch_term"], rel=1e-12)
    assert relaxed.iterations <= 200


# ---- rounding --------------------------------------------------------------------------------


def test_floor_and_floor_fill_on_t2_and_t4():
    """T2: floor (82, 41) -> 0.2355121951, floor_fill reaches D = 84 (0.2353960511, exact).
    T4: floor (226, 128, 94) (spec §7); floor_fill only adds feasible +1 steps."""
    t2 = load("t2")
    relaxed = relaxed_cell(t2, 4, 6)
    D, B = sca.round_cell(t2, relaxed, "floor")
    assert (D, B.tolist()) == (82, [41])
    assert float(t2.bound(4, 6, D, B)) == pytest.approx(0.2355121951, rel=1e-9)
    D, B = sca.round_cell(t2, relaxed, "floor_fill")
    assert (D, B.tolist()) == (84, [41])
    assert float(t2.bound(4, 6, D, B)) == pytest.approx(0.2353960511, rel=1e-9)
    t4 = load("t4")
    relaxed = relaxed_cell(t4, 20, 10)
    floor = sca.round_cell(t4, relaxed, "floor")
    assert (floor[0], floor[1].tolist()) == (226, [128, 94])
    D, B = sca.round_cell(t4, relaxed, "floor_fill")
    assert D >= 226 and np.all(B >= [128, 94]) and t4.min_energy(20, 10, D, B).feasible
    for k in range(3):  # maximal: no single +1 step fits any more
        x = np.array([D, *B])
        x[k] += 1
        assert x[k] > [256, 128, 128][k] or not t4.min_energy(20, 10, x[0], x[1:]).feasible


# ---- the methods on T1-T4: verified, never below the exact optimum -----------------------------

KNOWN = [
    ("t1", {"shift": 0.0}, 0.11875),
    ("t1", {"shift": 0.3}, 0.16375),
    ("t1", {"shift": 0.5}, 0.225),
    ("t1", {"shift": 0.3, "bound": "linear_shift", "grad_bound": 1.0}, 0.225),
    ("t2", {}, 0.2353960511),
    ("t3", {}, 0.1714655172),
    ("t4", {}, 3.1356046),
]
"""(instance, learning changes, exact optimum) of spec §7."""


@pytest.mark.parametrize("method", HEURISTICS + BASELINES)
@pytest.mark.parametrize(("name", "changes", "optimum"), KNOWN)
def test_methods_are_verified_and_never_beat_the_exact_optimum(method, name, changes, optimum):
    model = load(name, **changes)
    d = model.derived
    if method == "baseline_finetune_only" and d.max_finetune_rounds == 0:
        with pytest.raises(ValueError, match="max_finetune_rounds >= 1"):
            solve(model, method)
        return
    if method == "baseline_equal_rounds" and d.max_finetune_rounds == 0:
        with pytest.raises(ValueError, match="admits no cell"):
            solve(model, method)
        return
    result = solve(model, method)
    assert result.status.value == "feasible" and result.verified, result.message
    assert result.objective >= optimum * (1 - 1e-8)  # spec values carry 8-10 digits
    evaluation = model.evaluate(result.solution)
    assert evaluation.feasible and evaluation.objective == pytest.approx(result.objective, rel=1e-12)
    assert result.solution["delay_s"] == pytest.approx(d.delay_budget_s, rel=1e-9)  # canonical


@pytest.mark.parametrize(("name", "changes", "optimum"), KNOWN)
def test_sca_grid_and_coarse_to_fine_values_on_t1_to_t4(name, changes, optimum):
    """Where the spec determines them: T1 and T3 are solved exactly by every cell search
    (T1: the batch caps bind; T3: one batch per cell, so the floor of a cell's relaxed optimum
    is its integer optimum, M* = 29, D* = 16), T2 is the floor value 0.2355121951 for
    sca_grid and the exact one (84, 41) with floor_fill."""
    model = load(name, **changes)
    grid = solve(model, "sca_grid")
    fine = solve(model, "coarse_to_fine")
    if name in ("t1", "t3"):
        assert grid.objective == pytest.approx(optimum, rel=1e-9)
        assert fine.objective == pytest.approx(optimum, rel=1e-9)
    if name == "t2":
        assert grid.objective == pytest.approx(0.2355121951, rel=1e-9)
        assert fine.objective == pytest.approx(optimum, rel=1e-9)
        assert (fine.solution["pretrain_batch"], fine.solution["finetune_batch"]) == (84, [41])
    if name == "t4":  # floor (226, 128, 94) in the optimal cell; floor_fill no worse
        assert grid.objective == pytest.approx(float(model.bound(20, 10, 226, [128, 94])), rel=1e-12)
        assert fine.objective <= grid.objective
    trace = grid.trace
    assert {"iteration", "batch_term", "energy_j", "rounded_psi"} <= set(trace.columns)
    assert trace["rounded_psi"].dropna().min() == pytest.approx(grid.objective, rel=1e-12)


@pytest.mark.parametrize("keep", [1, 3])
def test_relaxed_bound_skips_change_no_answer(keep):
    """Cells closed by their certified relaxed bound before any SCA are cells the SCA would
    have closed: the best ``keep`` values of a search (the whole grid for sca_grid, the
    coarse grid of coarse_to_fine) are the same with and without it."""
    model = TwoStageModel.preset("default", devices=3, seed=5)
    cells = sca.grid_cells(model) if keep == 1 else coarse_to_fine.coarse_cells(model, 10)
    bounds = sca.lower_bounds(model, cells)
    answers, skipped = [], []
    for relaxations in (None, CellPrograms(model)):
        evaluate = sca.sca_evaluator(model, sca.CellSCA(model), "floor", [], None,
                                     relaxations=relaxations, skipped=skipped)
        best, _ = sca.visit_cells(cells, bounds, evaluate, keep=keep)
        answers.append([(c.value, c.cell) for c in best])
    assert answers[0] == answers[1]
    assert len(skipped) >= 2  # the skip did close cells here


def test_grid_search_skips_cells_but_equals_the_full_grid():
    model = load("t2").with_changes(max_finetune_rounds=4)
    grid = sca.solve_sca_grid(model)
    full = sca.solve_sca_grid(model, search="full")
    assert grid.objective == full.objective
    assert grid.extras["cells_evaluated"] < full.extras["cells_evaluated"] == 24
    # every evaluated cell's rounded value is above its valid lower bound
    last = full.trace.dropna(subset=["rounded_psi"])
    cells = list(zip(last["M"], last["N"]))
    bounds = sca.lower_bounds(model, cells)
    assert np.all(bounds <= last["rounded_psi"].to_numpy() * (1 + 1e-12))
    relaxed_psi = model.bound(last["M"].to_numpy(), last["N"].to_numpy(),
                              last["pretrain_batch"].to_numpy(),
                              np.array(last["finetune_batch"].tolist()))
    assert np.all(relaxed_psi <= last["rounded_psi"].to_numpy() * (1 + 1e-8))  # SCA to ~1e-9


def test_ecos_backend_gives_the_same_points():
    model = load("t2")
    for method in HEURISTICS:
        clarabel = sca.solve_sca_grid(model) if method == "sca_grid" else \
            coarse_to_fine.solve_coarse_to_fine(model)
        ecos = sca.solve_sca_grid(model, backend="ecos") if method == "sca_grid" else \
            coarse_to_fine.solve_coarse_to_fine(model, backend="ecos")
        assert ecos.solver == "ecos" and clarabel.solver == "clarabel"
        assert ecos.objective == clarabel.objective
    assert solve(model, "sca_grid", solver="ecos").verified


def test_coarse_to_fine_stride_rule_and_cells():
    assert coarse_to_fine.default_stride(TwoStageModel.preset("default")) == 20  # 400 // 20
    assert coarse_to_fine.default_stride(load("t1")) == 1
    model = load("t1")
    coarse = coarse_to_fine.coarse_cells(model, 4)
    assert set(coarse) == {(M, N) for M in (0, 4, 8, 10) for N in (0, 4, 8, 10)} - {(0, 0)}
    fine = coarse_to_fine.fine_cells(model, [(10, 10)], 4, set(coarse))
    assert set(fine) == {(M, N) for M in range(6, 11) for N in range(6, 11)} - set(coarse)
    result = coarse_to_fine.solve_coarse_to_fine(model, stride=4)
    assert result.objective == pytest.approx(0.11875, rel=1e-12)
    assert result.extras["stride"] == 4 and [10, 10] in result.extras["coarse_best"]
    # stride 1 evaluates the whole grid with floor_fill: the same value as sca_grid with it
    t2 = load("t2")
    assert coarse_to_fine.solve_coarse_to_fine(t2, stride=1).objective == \
        sca.solve_sca_grid(t2, rounding="floor_fill").objective


# ---- baseline definitions ---------------------------------------------------------------------


def test_finetune_only_and_equal_rounds_restrictions():
    t4 = load("t4")
    only = solve(t4, "baseline_finetune_only")
    assert only.solution["pretrain_rounds"] == 0 and only.solution["pretrain_batch"] == 0
    assert only.solution["server_clock_hz"] == 0.0
    equal = solve(t4, "baseline_equal_rounds")
    assert equal.solution["pretrain_rounds"] == equal.solution["finetune_rounds"] >= 1
    half = baselines.solve_equal_rounds(t4, ratio=0.5)
    assert 2 * half.solution["pretrain_rounds"] == half.solution["finetune_rounds"]
    assert verify(t4, half).verified and half.extras["ratio"] == "1/2"
    fraction, cells = baselines.ratio_cells(t4, 0.3)
    assert str(fraction) == "3/10" and cells == [(3, 10)]
    # the restricted cell search is the exhaustive one over its cells (valid-bound skipping)
    best = min(float(t4.bound(*cell, *sca.round_cell(t4, relaxed_cell(t4, *cell), "floor_fill")))
               for cell in [(0, N) for N in range(1, 11)])
    assert only.objective == pytest.approx(best, rel=1e-12)


def test_fixed_batch_is_exact_within_its_restriction():
    for name in ("t2", "t3", "t4"):
        model = load(name)
        d = model.derived
        result = solve(model, "baseline_fixed_batch")
        D, B = min(32, d.server_max_batch), np.minimum(32, d.device_max_batch)
        s = result.solution
        if s["pretrain_rounds"]:
            assert s["pretrain_batch"] == D
        if s["finetune_rounds"]:
            assert s["finetune_batch"] == B.tolist()
        # brute force over the cells: every cell with a smaller Psi fails the oracle
        cells = [(M, N) for M in range(d.max_pretrain_rounds + 1)
                 for N in range(d.max_finetune_rounds + 1) if M + N]
        better = [c for c in cells if float(model.bound(*c, D, B)) < result.objective * (1 - 1e-12)]
        assert len(better) < len(cells)
        assert not any(model.min_energy(*c, D, B).feasible for c in better)
    small = baselines.solve_fixed_batch(load("t2"), batch=8)
    assert small.solution["pretrain_batch"] == 8 and small.extras["batch"] == 8


def test_split_budget_stages_fit_their_shares():
    for name, share in (("t2", 0.5), ("t4", 0.5), ("t4", 0.8), ("t3", 0.3)):
        model = load(name)
        d = model.derived
        result = baselines.solve_split_budget(model, share=share)
        assert verify(model, result).verified
        s = result.solution
        M, N, D, B = s["pretrain_rounds"], s["finetune_rounds"], s["pretrain_batch"], s["finetune_batch"]
        ones = np.ones(model.n_devices)
        pre = {"energy_budget_j": share * d.energy_budget_j, "delay_budget_s": share * d.delay_budget_s}
        rest = {"energy_budget_j": (1 - share) * d.energy_budget_j,
                "delay_budget_s": (1 - share) * d.delay_budget_s}
        if M:
            assert model.min_energy(M, 0, D, ones, **pre).feasible
            assert D == d.server_max_batch or not model.min_energy(M, 0, D + 1, ones, **pre).feasible
        if N:
            assert model.min_energy(0, N, 0, B, **rest).feasible
        assert result.extras["share"] == share


def linear_totals(model: TwoStageModel, M, N, D, B):
    """E and T at f = f^max, p = P^max (spec §6.5), written out from the instance."""
    inst = model.instance
    s = inst.server
    energy = M * s.capacitance * s.cycles_per_sample * D * s.max_clock_hz**2
    delay = M * s.cycles_per_sample * D / s.max_clock_hz
    device_e, device_t = 0.0, []
    for k, dev in enumerate(inst.devices):
        rate = dev.bandwidth_hz * math.log2(
            1 + dev.max_power_w * dev.channel_gain / (inst.noise_psd_w_per_hz * dev.bandwidth_hz))
        tau = inst.model_bits / rate
        b = np.asarray(B)[..., k]
        device_e = device_e + dev.capacitance * dev.cycles_per_sample * b * dev.max_clock_hz**2 \
            + dev.max_power_w * tau
        device_t.append(dev.cycles_per_sample * b / dev.max_clock_hz + tau)
    return energy + N * device_e, delay + N * np.max(device_t, axis=0)


def test_max_resource_point_fits_the_linear_costs_and_beats_brute_force_nowhere():
    """T2 (one device): exhaustive enumeration of (M, N, D, B) under the linear costs; T3:
    every (M, D); the baseline must find the same optimum (exact within the restriction)."""
    for name in ("t2", "t3"):
        model = load(name)
        d = model.derived
        result = solve(model, "baseline_max_resource")
        s = result.solution
        M, N, D, B = s["pretrain_rounds"], s["finetune_rounds"], s["pretrain_batch"], s["finetune_batch"]
        energy, delay = linear_totals(model, M, N, D, np.array(B, float))
        assert energy <= d.energy_budget_j and delay <= d.delay_budget_s * (1 + 1e-12)
        assert result.extras["max_resource_energy_j"] == pytest.approx(energy, rel=1e-12)
        assert result.extras["max_resource_delay_s"] == pytest.approx(delay, rel=1e-12)
        assert s["energy_j"] <= energy * (1 + 1e-12)  # canonical resources use no more energy
        assert result.extras["exact_within_restriction"]
        Dg, Bg = np.meshgrid(np.arange(1, d.server_max_batch + 1),
                             np.arange(1, d.device_max_batch[0] + 1), indexing="ij")
        best = math.inf
        for m in range(d.max_pretrain_rounds + 1):
            for n in range(d.max_finetune_rounds + 1):
                if m + n == 0:
                    continue
                e, t = linear_totals(model, m, n, np.where(m > 0, Dg, 0),
                                     np.where(n > 0, Bg, 0)[..., None].astype(float))
                ok = (e <= d.energy_budget_j) & (t <= d.delay_budget_s * (1 + 1e-12))
                psi = model.bound(m, n, Dg, Bg[..., None])
                if ok.any():
                    best = min(best, float(psi[ok].min()))
        assert result.objective == pytest.approx(best, rel=1e-12)
    assert solve(load("t2"), "baseline_max_resource").objective == pytest.approx(0.2353960511, rel=1e-9)


def test_max_resource_cell_of_t4_against_brute_force():
    model = load("t4")
    lin = baselines.LinearCosts(model)
    D, B = baselines.max_resource_cell(lin, 20, 10)
    Dg, B1, B2 = np.meshgrid(np.arange(1, 257), np.arange(1, 129), np.arange(1, 129),
                             indexing="ij", sparse=True)
    Bs = np.stack(np.broadcast_arrays(B1, B2), axis=-1).astype(float)
    energy, delay = linear_totals(model, 20, 10, Dg, Bs)
    ok = (energy <= 3.0) & (delay <= 8.0 * (1 + 1e-12))
    q = 20 / Dg + 10 * (0.25 / B1 + 0.25 / B2)
    assert float(model.batch_term(20, 10, D, B)) == pytest.approx(float(np.min(np.where(ok, q, np.inf))),
                                                                  rel=1e-12)


def test_device_response_is_exact_for_equal_costs_and_feasible_otherwise():
    rng = np.random.default_rng(7)
    for trial in range(20):
        K = 3
        alpha2 = rng.uniform(0.1, 1, K) ** 2
        equal = trial % 2 == 0
        costs = np.full(K, 0.7) if equal else rng.uniform(0.2, 1.5, K)
        caps = rng.integers(1, 9, K).astype(float)
        budget = float(rng.uniform(np.sum(costs), np.sum(costs * caps) + 1))
        B = baselines.device_response(alpha2, costs, caps, budget)
        grid = np.stack(np.meshgrid(*[np.arange(1, int(c) + 1) for c in caps], indexing="ij"), -1)
        ok = (grid * costs).sum(-1) <= budget
        brute = float(np.min(np.where(ok, (alpha2 / grid).sum(-1), np.inf)))
        value = float(np.sum(alpha2 / B))
        assert np.sum(costs * B) <= budget and np.all((B >= 1) & (B <= caps))
        if equal:
            assert value == pytest.approx(brute, rel=1e-12)
        else:
            assert value >= brute * (1 - 1e-12)
    assert baselines.device_response(np.ones(2), np.ones(2), np.array([3.0, 0.0]), 10.0) is None


# ---- infeasibility ----------------------------------------------------------------------------


def test_infeasible_instance_reports_the_models_diagnosis():
    model = load("t2").with_changes(delay_budget_s=0.001)
    diagnosis = model.infeasibility()
    assert diagnosis is not None and diagnosis.reason == "delay"
    runs = [sca.solve_sca_grid, coarse_to_fine.solve_coarse_to_fine,
            baselines.solve_finetune_only, baselines.solve_equal_rounds,
            baselines.solve_fixed_batch, baselines.solve_split_budget,
            baselines.solve_max_resource]
    for run in runs:
        result = run(model)
        assert result.status.value == "infeasible"
        assert result.infeasible_reason == "delay" and result.message == diagnosis.message
        assert result.objective is None and result.solution == model.empty_solution()
    assert solve(model, "sca_grid").status.value == "infeasible"


def test_restrictions_that_miss_a_budget_say_which_and_by_how_much():
    # T2 with 0.05 s: pre-training fits (0.0025 s per round at D = 1), fine-tuning cannot
    # (0.01 s compute + 0.1 s upload at B = 1)
    model = load("t2").with_changes(delay_budget_s=0.05)
    assert model.infeasibility() is None
    only = baselines.solve_finetune_only(model)
    assert only.status.value == "infeasible" and only.infeasible_reason == "delay"
    assert only.extras["missing_s"] == pytest.approx(0.11 - 0.05, rel=1e-9)
    assert "0.06 s" in only.message and "M = 0" in only.message
    equal = baselines.solve_equal_rounds(model)
    assert equal.infeasible_reason == "delay"
    assert equal.extras["missing_s"] == pytest.approx(0.0025 + 0.11 - 0.05, rel=1e-9)
    fixed = baselines.solve_fixed_batch(model)  # D = 32: 0.08 s > 0.05 s
    assert fixed.infeasible_reason == "delay"
    assert fixed.extras["missing_s"] == pytest.approx(0.08 - 0.05, rel=1e-9)
    assert solve(model, "baseline_max_resource").verified  # pre-training only, at f^max
    # T3 with 5e-5 J: the slowest clock fits (1e-10 J), f^max needs 1e-4 J per sample
    t3 = load("t3").with_changes(energy_budget_j=5e-5)
    assert t3.infeasibility() is None
    maxed = baselines.solve_max_resource(t3)
    assert maxed.infeasible_reason == "energy"
    assert maxed.extras["missing_j"] == pytest.approx(1e-4 - 5e-5, rel=1e-9)
    assert "J" in maxed.message and "maximum clocks" in maxed.message
    split = baselines.solve_split_budget(load("t2").with_changes(delay_budget_s=0.004), share=0.5)
    assert split.infeasible_reason == "delay"  # each share: 0.002 s < 0.0025 s for D = 1
    assert split.extras["missing_s"] == pytest.approx(0.0025 - 0.002, rel=1e-9)


# ---- options, seeds, time limits, applicability ---------------------------------------------------


@pytest.mark.parametrize(
    ("run", "options", "match"),
    [
        (sca.solve_sca_grid, {"rounding": "ceil"}, "rounding = 'ceil'"),
        (sca.solve_sca_grid, {"search": "random"}, "search = 'random'"),
        (sca.solve_sca_grid, {"max_iterations": 0}, "max_iterations = 0"),
        (sca.solve_sca_grid, {"tolerance": 2.0}, "tolerance = 2.0"),
        (sca.solve_sca_grid, {"backend": "scs"}, "solver = 'scs'"),
        (sca.solve_sca_grid, {"seed": -1}, "seed = -1"),
        (sca.solve_sca_grid, {"seed": 1.5}, "seed = 1.5"),
        (coarse_to_fine.solve_coarse_to_fine, {"stride": 0}, "stride = 0"),
        (coarse_to_fine.solve_coarse_to_fine, {"seed": "x"}, "seed = 'x'"),
        (baselines.solve_equal_rounds, {"ratio": -1}, "ratio = -1"),
        (baselines.solve_equal_rounds, {"ratio": True}, "ratio = True"),
        (baselines.solve_equal_rounds, {"ratio": 100}, "admits no cell"),
        (baselines.solve_fixed_batch, {"batch": 0}, "batch = 0"),
        (baselines.solve_fixed_batch, {"batch": 2.5}, "batch = 2.5"),
        (baselines.solve_split_budget, {"share": 1.0}, "share = 1.0"),
        (baselines.solve_split_budget, {"share": 0}, "share = 0"),
        (baselines.solve_max_resource, {"seed": -3}, "seed = -3"),
    ],
)
def test_options_and_seeds_are_validated(run, options, match):
    with pytest.raises(ValueError, match=match.replace("(", r"\(")):
        run(load("t2"), **options)


def test_seed_is_recorded_and_changes_nothing():
    model = load("t4")
    a = solve(model, "baseline_fixed_batch", seed=3)
    b = solve(model, "baseline_fixed_batch")
    assert a.seed == 3 and a.objective == b.objective


def test_time_limit_returns_a_verified_incumbent():
    result = solve(load("t4"), "sca_grid", time_limit=1e-9)
    assert result.status.value == "time_limit" and result.verified
    assert result.objective >= 3.1356046


def test_time_varying_channels_are_not_supported():
    document = load("t2").to_dict()
    document["devices"][0]["channel_gain_schedule"] = [1e-11, 2e-11, 1e-11, 1e-11, 1e-11, 1e-11]
    model = TwoStageModel.from_dict(document)
    for module in (sca, coarse_to_fine, baselines):
        assert "channel_gain_schedule" in module.unsupported(model)
        assert module.unsupported(load("t2")) is None
    with pytest.raises(ValueError, match="does not apply"):
        solve(model, "baseline_max_resource")
