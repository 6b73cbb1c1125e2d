"""The spec's reference policies for P1 (spec §5.6); each reports ``feasible`` or
``infeasible`` with a reason, and Phi, N and R (extras ``bias``, ``noise``; solution
``rounds``).

* ``baseline_full_model`` (traditional FEL): every device trains all L layers on B/K
  (``drop_memory_infeasible``: devices without memory for n = L are left out, B split over
  the rest).
* ``baseline_uniform_ratio``: every eligible device at min(n-bar, n_k^max), the least
  n-bar meeting the bias budget; equal finishing times (spec §4.1).
* ``baseline_random_selection`` (seeded) and ``baseline_channel_greedy`` (descending
  channel gain g_k): devices added at n_k^max until the budget and K_min hold; §4.1
  bandwidth.
* ``baseline_equal_bandwidth``: for m = max(1, K_min)..K, B/m to each of m devices, the
  least T by search over the sorted finishing times with a knapsack check per step; the
  best m.

Decisions the spec leaves open: the budget row is that of the exact method (linear,
tightened by its coverage margin), so the baselines apply where ``bisection_mckp`` does;
``seed=None`` means seed 0 (the baseline stays reproducible); uniform_ratio gives a device
whose n_k^max exceeds n-bar the largest available n <= n-bar; with the bandwidth row
replaced by sum a = m, the knapsack of equal_bandwidth at a fixed T has no cost row and
separates: it is feasible iff the m largest per-device gains (each device's deepest option
finishing by T) meet the budget, which is checked exactly by sorting (the tests cross-check
it against the HiGHS knapsack). An infeasible baseline reports the configuration it tried
(extra ``attempt``: selection, n, Phi, N, R) when it got that far.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgeopt.models.tinyfel import TinyFELModel, radio
from edgeopt.solvers.result import Result, Status
from edgeopt.solvers.tinyfel.bcd_admm import BudgetRows, budget_rows, equalise_checked
from edgeopt.solvers.tinyfel.bisection_mckp import unsupported as linear_p1_reason
from edgeopt.solvers.tinyfel.common import infeasible_result, make_result


def unsupported(model: TinyFELModel) -> str | None:
    """The baselines use the linear P1 budget row, like the exact method."""
    return linear_p1_reason(model)


def solve_full_model(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
    drop_memory_infeasible: bool = False,
) -> Result:
    """Traditional FEL: every device (``drop_memory_infeasible``: every device with memory
    for the whole model) trains all L layers, B split equally."""
    if not isinstance(drop_memory_infeasible, bool):
        raise ValueError(
            f"drop_memory_infeasible = {drop_memory_infeasible!r}: must be true or false"
        )
    method = "baseline_full_model"
    started = time.perf_counter()
    table, inst = model.options, model.instance
    L = model.n_layers
    fits = table.fits_memory[:, L - 1]
    names = model.device_names
    if not fits.all() and not drop_memory_infeasible:
        short = "; ".join(
            f"device {names[k]!r} needs {table.memory_bytes[L - 1]:.0f} bytes for n = {L}, "
            f"has {inst.devices[k].memory_bytes:.0f}"
            for k in np.flatnonzero(~fits)
        )
        return _infeasible(model, method, "memory", f"the full model does not fit: {short}",
                           np.ones(model.n_devices, dtype=bool), np.full(model.n_devices, L),
                           use_diagnosis=False)
    selected = fits.copy()
    layers = np.where(selected, L, 0)
    count = int(selected.sum())
    if count < max(inst.min_selected, 1):
        return _infeasible(model, method, "min_selected",
                           f"only {count} device(s) fit the full model in memory; "
                           f"min_selected = {inst.min_selected}", selected, layers,
                           use_diagnosis=False)
    bandwidth = np.where(selected, inst.bandwidth_hz / count, 0.0)
    energy = table.energy_bandwidth_hz[:, L - 1]
    if (selected & (energy > bandwidth)).any():
        short = "; ".join(
            f"device {names[k]!r} needs {energy[k]:.6g} Hz for its energy budget, gets "
            f"{bandwidth[k]:.6g} Hz"
            for k in np.flatnonzero(selected & (energy > bandwidth))
        )
        return _infeasible(model, method, "energy", f"energy budget missed: {short}",
                           selected, layers)
    failure = _budget_failure(model, budget_rows(model), selected, layers)
    if failure is not None:
        return _infeasible(model, method, "bias_budget", failure, selected, layers)
    return make_result(model, method, Status.FEASIBLE, selected, layers, bandwidth,
                       solve_s=time.perf_counter() - started)


def solve_uniform_ratio(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Every eligible device at min(n-bar, n_k^max), the least n-bar meeting the budget."""
    method = "baseline_uniform_ratio"
    started = time.perf_counter()
    table, inst = model.options, model.instance
    rows = budget_rows(model)
    selected = table.n_max > 0
    options = np.arange(1, model.n_layers + 1)
    layers = np.zeros(model.n_devices, dtype=int)
    for level in range(inst.min_updated_layers, model.n_layers + 1):
        for k in np.flatnonzero(selected):
            allowed = options[table.available[k]]
            below = allowed[allowed <= level]
            layers[k] = below.max() if below.size else allowed.min()
        if rows.holds(selected, layers):
            return _equalised(model, method, selected, layers, started)
    return _infeasible(model, method, "bias_budget",
                       "even n-bar = L (every eligible device at n_k^max) misses the budget",
                       selected, layers)


def solve_random_selection(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Devices in a random order (``numpy.random.default_rng(seed)``, seed None = 0) added
    at n_k^max until the budget and K_min hold."""
    eligible = np.flatnonzero(model.options.n_max > 0)
    order = np.random.default_rng(0 if seed is None else seed).permutation(eligible)
    return _greedy(model, "baseline_random_selection", order)


def solve_channel_greedy(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """Devices by descending channel gain g_k (ties: instance order) added at n_k^max until
    the budget and K_min hold."""
    gains = np.array([d.channel_gain for d in model.instance.devices])
    order = np.argsort(-gains, kind="stable")
    return _greedy(model, "baseline_channel_greedy", order[model.options.n_max[order] > 0])


def solve_equal_bandwidth(
    model: TinyFELModel,
    *,
    backend: str | None = None,
    time_limit: float | None = None,
    seed: int | None = None,
) -> Result:
    """B/m to each of m selected devices, options chosen to minimise T, best m."""
    method = "baseline_equal_bandwidth"
    started = time.perf_counter()
    inst = model.instance
    rows = budget_rows(model)
    eligible = int((model.options.n_max > 0).sum())
    best: tuple[float, np.ndarray] | None = None
    for count in range(max(1, inst.min_selected), eligible + 1):
        found = equal_share_layers(model, rows, count)
        if found is not None and (best is None or found[0] < best[0]):
            best = found
    if best is None:
        return _infeasible(model, method, "bias_budget",
                           "no number m of devices on B/m each meets the budget", None, None)
    layers = best[1]
    selected = layers > 0
    bandwidth = np.where(selected, inst.bandwidth_hz / selected.sum(), 0.0)
    return make_result(model, method, Status.FEASIBLE, selected, layers, bandwidth,
                       solve_s=time.perf_counter() - started)


def equal_share_finish(model: TinyFELModel, count: int) -> np.ndarray:
    """Finishing time [s] (excluding T_dl) of every (device, option) on B/count Hz, (K, L);
    +inf where the option is unavailable or B/count misses its energy minimum."""
    table = model.options
    share = model.instance.bandwidth_hz / count
    speed = radio.rate(share, table.snr_hz)
    with np.errstate(divide="ignore"):
        upload = np.where(table.upload_bits[None, :] > 0,
                          table.upload_bits[None, :] / speed[:, None], 0.0)
    usable = table.available & (table.energy_bandwidth_hz <= share)
    return np.where(usable, table.compute_s + upload, np.inf)


def best_choice_at(
    rows: BudgetRows, finish: np.ndarray, count: int, latency_s: float
) -> np.ndarray | None:
    """The knapsack of equal_bandwidth at T = ``latency_s``: exactly ``count`` devices, each
    with an option finishing by T, meeting the budget row. Each device's best option is its
    deepest one finishing by T (the gain grows with n); the ``count`` devices with the
    largest gains are taken. Returns n_k (0 = unselected) or ``None``."""
    K, L = finish.shape
    fits = finish <= latency_s
    deepest = np.where(fits.any(axis=1), L - np.argmax(fits[:, ::-1], axis=1), 0)
    usable = np.flatnonzero(deepest > 0)
    if usable.size < count:
        return None
    gains = rows.gain[usable, deepest[usable] - 1]
    top = usable[np.argsort(-gains, kind="stable")[:count]]
    layers = np.zeros(K, dtype=int)
    layers[top] = deepest[top]
    return layers if rows.holds(layers > 0, layers) else None


def equal_share_layers(
    model: TinyFELModel, rows: BudgetRows, count: int
) -> tuple[float, np.ndarray] | None:
    """(least T [s], n_k) with ``count`` devices on B/count each, or ``None``: a binary
    search over the sorted finishing times (feasibility is monotone in T)."""
    finish = equal_share_finish(model, count)
    candidates = np.unique(finish[np.isfinite(finish)])
    if candidates.size == 0 or best_choice_at(rows, finish, count, candidates[-1]) is None:
        return None
    low, high = -1, len(candidates) - 1
    while high - low > 1:
        middle = (low + high) // 2
        if best_choice_at(rows, finish, count, candidates[middle]) is None:
            low = middle
        else:
            high = middle
    return float(candidates[high]), best_choice_at(rows, finish, count, candidates[high])


# ---- shared pieces ---------------------------------------------------------------------------


def _greedy(model: TinyFELModel, method: str, order: np.ndarray) -> Result:
    """Add devices of ``order`` at n_k^max until the budget and K_min hold; §4.1 bandwidth."""
    started = time.perf_counter()
    table = model.options
    rows = budget_rows(model)
    selected = np.zeros(model.n_devices, dtype=bool)
    for k in [None, *order]:
        if k is not None:
            selected[k] = True
        layers = np.where(selected, table.n_max, 0)
        if rows.holds(selected, layers):
            return _equalised(model, method, selected, layers, started)
    return _infeasible(model, method, "bias_budget",
                       "every eligible device at n_k^max still misses the budget",
                       selected, layers)


def _equalised(
    model: TinyFELModel, method: str, selected: np.ndarray, layers: np.ndarray, started: float
) -> Result:
    """The Result of (a, n) with equal finishing times, or infeasible (energy minima > B)."""
    bandwidth = equalise_checked(model, selected, layers)
    if bandwidth is None:
        need = model.options.energy_bandwidth_hz[selected, layers[selected] - 1].sum()
        return _infeasible(
            model, method, "bandwidth",
            f"the chosen devices' energy minimum bandwidths need {need:.6g} Hz > B = "
            f"{model.instance.bandwidth_hz:.6g} Hz",
            selected, layers,
        )
    return make_result(model, method, Status.FEASIBLE, selected, layers, bandwidth,
                       solve_s=time.perf_counter() - started)


def _budget_failure(
    model: TinyFELModel, rows: BudgetRows, selected: np.ndarray, layers: np.ndarray
) -> str | None:
    """Why (a, n) misses the budget row or K_min, or ``None``."""
    inst = model.instance
    if selected.sum() < inst.min_selected:
        return f"{int(selected.sum())} device(s) selected < min_selected = {inst.min_selected}"
    if rows.holds(selected, layers):
        return None
    terms = model.learning_terms(selected, layers)
    label = "Φ + N" if inst.include_noise_in_budget else "Φ"
    return f"{label} = {terms.budget_value:.6g} > ε0 = {inst.bias_budget:.6g}"


def _infeasible(
    model: TinyFELModel,
    method: str,
    reason: str,
    message: str,
    selected: np.ndarray | None,
    layers: np.ndarray | None,
    use_diagnosis: bool = True,
) -> Result:
    """Infeasible with ``reason``/``message``, or (``use_diagnosis``) the model's diagnosis
    when it finds a cause of the instance itself; the tried configuration as extra
    ``attempt``."""
    extras: dict[str, Any] = {}
    if selected is not None and selected.any():
        terms = model.learning_terms(selected, layers)
        extras["attempt"] = {
            "selected": [bool(a) for a in selected],
            "updated_layers": [int(n) for n in np.where(selected, layers, 0)],
            "bias": float(terms.bias),
            "noise": float(terms.noise),
            "rounds": terms.rounds,
        }
    diagnosis = model.infeasibility() if use_diagnosis else None
    if diagnosis is not None:
        reason, message = diagnosis.reason, diagnosis.message
        extras["infeasible_details"] = diagnosis.details
    return infeasible_result(model, method, reason, message, **extras)
