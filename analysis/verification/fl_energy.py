"""The fl_energy verifier plug-in (see :mod:`edgeopt.analysis.verification.registry`).

fl_energy has no learning term; what its solvers rest on is the convexity argument:

* Derivation: the Shannon rate is concave in b, so the upload time s/r(b) is convex; the
  energy grows with f, so for a bandwidth the best frequency is the least one meeting the
  deadline, f*(b) = A/(T - s/r(b)); the energy at f* is a convex increasing function of the
  upload time, hence convex and decreasing in b. The last steps compare the model's own
  SymPy terms and the solvers' NumPy forms with these expressions.
* Bound checks: the exact and the heuristic plan of the preset replayed in a simulation of
  the round in which every sample takes a random number of cycles (uniform within
  +-:data:`CYCLE_JITTER` of c_k, so the mean is the model's c_k) and the update is sent in
  packets of :data:`PACKET_BITS` bits. The seed means of the round energy must not exceed
  the model's energy of the plan, and (exact plan) the devices' mean time over the deadline
  must not exceed 1.
* Consistency: the packet clock gives the evaluator's upload time.
* Optimiser vs baselines: the simulated energy of the exact plan against the heuristic and
  the baseline, on common random numbers.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from edgeopt.analysis.verification.report import Check, jsonable
from edgeopt.analysis.verification.simulation import Configuration, Runner, block_rng, run_seeds
from edgeopt.analysis.verification.steps import Step

MODEL_ID = "fl_energy"

PRESET = "default"
"""Preset of the simulations (10 devices; 4 with ``quick``)."""

CYCLE_JITTER = 0.5
"""Per-sample cycles are uniform on c_k (1 +- CYCLE_JITTER) [-]."""

PACKET_BITS = 12_000
"""Packet size of the simulated upload (1500 bytes) [bit]."""

RELATIVE_TOLERANCE = 1e-9
"""Agreement required between the solvers' NumPy forms and the SymPy terms."""


# ---- derivation ------------------------------------------------------------------------------


def steps() -> list[Step]:
    """The convexity argument as checkable steps, in order."""
    import sympy as sp

    from edgeopt.models.fl_energy.symbolic import terms as model_terms

    terms = model_terms()
    symbols = {s.name: s for s in terms["energy_at_cheapest_frequency"].free_symbols | terms["energy"].free_symbols}
    f, kappa, p, g, N0, b, T = (symbols[n] for n in ("f", "kappa", "p", "g", "N_0", "b", "T"))
    u = sp.Symbol("u", positive=True)
    cycles, rate, upload = terms["cycles"], terms["rate"], terms["upload_time"]
    snr = g * p / N0
    at_cheapest = kappa * cycles**3 / (T - u) ** 2 + p * u
    sample = _sampler(symbols, u)
    return [
        Step("F1 the rate is concave in b",
             "d^2/db^2 b log2(1 + a/b) = -a^2 / (b (a + b)^2 ln 2) <= 0, a = g p / N0",
             "==", sp.diff(rate, b, 2), -snr**2 / (b * (snr + b) ** 2 * sp.log(2)), "b, a > 0", sample=sample),
        Step("F2 the rate stays below its cap", "b log2(1 + a/b) <= a / ln 2 (ln(1 + x) <= x)",
             "<=", rate, snr / sp.log(2), "b, a > 0", sample=sample),
        Step("F3 the upload time is convex in b", "0 <= d^2/db^2 s / r(b) (1/concave > 0 is convex)",
             "<=", sp.S.Zero, sp.diff(upload, b, 2), "b, a, s > 0", sample=sample),
        Step("F4 the energy grows with the frequency", "dE/df = 2 kappa A f > 0",
             "==", sp.diff(terms["energy"], f), 2 * kappa * cycles * f, "f > 0", sample=sample),
        Step("F5 the cheapest frequency meets the deadline exactly",
             "A / f* + s / r(b) = T for f* = A / (T - s/r(b)) (the model's cheapest_frequency)",
             "==", terms["round_time"].subs(f, terms["cheapest_frequency"]), T,
             "T > s / r(b)", sample=sample),
        Step("F6 energy at f* as a function of the upload time u",
             "E(f*, u) = kappa A^3 / (T - u)^2 + p u at u = s / r(b) (the model's energy_at_cheapest_frequency)",
             "==", at_cheapest.subs(u, upload), terms["energy_at_cheapest_frequency"], "T > s / r(b)",
             sample=sample),
        Step("F7 that function is convex increasing in u",
             "d^2/du^2 [kappa A^3/(T - u)^2 + p u] = 6 kappa A^3 / (T - u)^4 >= 0, d/du > 0",
             "==", sp.diff(at_cheapest, u, 2), 6 * kappa * cycles**3 / (T - u) ** 4, "u < T", sample=sample),
        Step("F8 so the energy at f* is decreasing in b",
             "d/db E(f*(b), b) <= 0 (convex increasing of convex decreasing: also convex in b)",
             "<=", sp.diff(terms["energy_at_cheapest_frequency"], b), sp.S.Zero, "T > s / r(b)", sample=sample),
        Step("F9 the solvers' NumPy forms",
             "derived.cheapest_frequency, derived.energy and pricing.device_slope equal f*, E and "
             "dE/db of the SymPy terms",
             "==", None, None, "", numeric=_numpy_forms(terms, symbols)),
    ]


def _sampler(symbols: dict[str, Any], u: Any):
    """Random points at the presets' scale with T above the upload time (and u below T)."""
    def sample(rng: np.random.Generator, count: int) -> dict[Any, np.ndarray]:
        values = _draw(rng, count)
        out = {symbols[name]: values[name] for name in symbols}
        out[u] = values["T"] * rng.uniform(0.05, 0.95, count)
        return out

    return sample


def _draw(rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    values = {
        "I": rng.integers(1, 20, count).astype(float), "c": rng.uniform(1e3, 5e4, count),
        "D": rng.integers(10, 2000, count).astype(float), "kappa": 10 ** rng.uniform(-29, -26, count),
        "p": rng.uniform(0.01, 1.0, count), "g": 10 ** rng.uniform(-13, -9, count),
        "N_0": 10 ** rng.uniform(-21, -19, count), "b": 10 ** rng.uniform(4, 8, count),
        "s": 10 ** rng.uniform(4, 7, count), "f": 10 ** rng.uniform(8, 9.5, count),
    }
    snr = values["g"] * values["p"] / values["N_0"]
    upload = values["s"] / (values["b"] * np.log2(1 + snr / values["b"]))
    values["T"] = upload * rng.uniform(1.05, 10.0, count)
    return values


def _numpy_forms(terms: dict[str, Any], symbols: dict[str, Any]):
    import sympy as sp

    names = sorted(symbols)
    cheapest = sp.lambdify([symbols[n] for n in names], terms["cheapest_frequency"], "numpy")
    energy = sp.lambdify([symbols[n] for n in names], terms["energy_at_cheapest_frequency"], "numpy")
    slope = sp.lambdify([symbols[n] for n in names],
                        sp.diff(terms["energy_at_cheapest_frequency"], symbols["b"]), "numpy")

    def numbers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        from edgeopt.models.fl_energy.derived import Fleet, cheapest_frequency
        from edgeopt.models.fl_energy.derived import energy as split_energy
        from edgeopt.solvers.fl_energy.pricing import device_slope

        v = _draw(rng, count)
        lhs = np.empty((count, 3))
        for k in range(count):  # one deadline per point: a one-device fleet each
            one = Fleet(cycles=np.array([v["I"][k] * v["c"][k] * v["D"][k]]), max_frequency_hz=np.array([np.inf]),
                        capacitance=v["kappa"][k:k + 1], power_w=v["p"][k:k + 1], upload_bits=v["s"][k:k + 1],
                        snr_hz=np.array([v["g"][k] * v["p"][k] / v["N_0"][k]]), deadline_s=float(v["T"][k]),
                        bandwidth_hz=math.inf)
            bandwidth = v["b"][k:k + 1]
            frequency = cheapest_frequency(bandwidth, one)
            compute, upload = split_energy(frequency, bandwidth, one)
            lhs[k] = (frequency[0], compute[0] + upload[0], device_slope(one, bandwidth)[0])
        args = [v[n] for n in names]
        rhs = np.column_stack([cheapest(*args), energy(*args), slope(*args)])
        # compared relative to the SymPy value (the quantities range over many decades)
        return lhs / np.abs(rhs), np.sign(rhs)

    return numbers


# ---- simulated round -------------------------------------------------------------------------


def configurations(quick: bool = False) -> list[Configuration]:
    """The exact plan of the preset (its energy, its devices' time over the deadline) and the
    heuristic's plan (its energy)."""
    model = _preset(quick)
    constants = f"per-sample cycles uniform within +-{CYCLE_JITTER:g} of c_k (mean c_k)"
    result = []
    for method in ("exact", "heuristic"):
        plan = _plan(model, method)
        result.append(Configuration(
            name=f"{PRESET} ({model.n_devices} devices): round energy of the {method} plan",
            statement="E[simulated round energy] <= the model's energy (equal in expectation)",
            settings={**plan, "measure": "energy_j"}, bound=plan["model_energy_j"], constants=constants,
        ))
        if method == "exact":
            result.append(Configuration(
                name=f"{PRESET} ({model.n_devices} devices): device time / deadline of the exact plan",
                statement="E[mean over devices of t_k / T] <= 1 (the deadline holds in expectation)",
                settings={**plan, "measure": "time_over_deadline"}, bound=1.0, constants=constants,
            ))
    return result


def simulate(configuration: Configuration, block: tuple[int, int]) -> np.ndarray:
    """Per seed of ``block``: the simulated round energy [J] or mean t_k / T [-]."""
    return _simulate_plan((configuration.name, configuration.settings), block)


def _simulate_plan(item: tuple[str, dict[str, Any]], block: tuple[int, int]) -> np.ndarray:
    name, plan = item
    rng = block_rng(zlib.crc32(name.encode()), block)
    energy, lateness = np.zeros(block[1]), np.zeros(block[1])
    devices = len(plan["frequency_hz"])
    for k in range(devices):
        draws = int(plan["iterations"][k] * plan["samples"][k])
        per_sample = rng.uniform(1 - CYCLE_JITTER, 1 + CYCLE_JITTER, size=(block[1], draws))
        cycles = plan["cycles_per_sample"][k] * per_sample.sum(axis=1)
        f = plan["frequency_hz"][k]
        compute_s = cycles / f
        upload_s = _packet_clock(plan["upload_bits"][k], plan["rate_bps"][k])
        energy += plan["capacitance"][k] * cycles * f**2 + plan["power_w"][k] * upload_s
        lateness += (compute_s + upload_s) / plan["deadline_s"] / devices
    return energy if plan["measure"] == "energy_j" else lateness


def _packet_clock(bits: float, rate_bps: float) -> float:
    """Seconds to send ``bits`` in packets of :data:`PACKET_BITS` at ``rate_bps``."""
    full, rest = divmod(bits, PACKET_BITS)
    return full * (PACKET_BITS / rate_bps) + rest / rate_bps


def compare(seeds: int, runner: Runner, quick: bool = False) -> tuple[list[Check], list[str]]:
    """Simulated round energy of the exact plan against the heuristic's and the baseline's,
    and the packet clock against the evaluator's upload time."""
    from edgeopt.solvers import solve

    model = _preset(quick)
    methods = ("exact", "heuristic", "max_frequency")
    plans = {m: {**_plan(model, m), "measure": "energy_j"} for m in methods}
    # one random stream for every plan: common random numbers
    values = run_seeds(runner, _simulate_plan, [("comparison", plans[m]) for m in methods], seeds)
    means = {m: float(v.mean()) for m, v in zip(methods, values)}
    exact = solve(model, "exact")
    clock = [_packet_clock(bits, rate) for bits, rate in zip(plans["exact"]["upload_bits"], plans["exact"]["rate_bps"])]
    evaluated = exact.evaluation.per_device["upload_s"]
    clock_error = max(abs(c - e) / e for c, e in zip(clock, evaluated))
    checks = [Check(
        name=f"{PRESET}: packet clock = model's upload time",
        kind="simulated", category="consistency",
        statement="sending the update packet by packet at the Shannon rate takes the evaluator's upload time",
        how=f"every device of the exact plan; max relative difference over {len(clock)} devices",
        passed=clock_error <= RELATIVE_TOLERANCE, detail=f"max relative difference {clock_error:.2g}",
        measured=clock_error, bound=RELATIVE_TOLERANCE, seeds=seeds,
        config={"packet_bits": PACKET_BITS, "devices": model.n_devices},
    )]
    for method in methods[1:]:
        checks.append(Check(
            name=f"{PRESET}: exact vs {method}",
            kind="simulated", category="comparison",
            statement=f"the exact plan spends less simulated energy per round than {method}'s",
            how=f"mean over {seeds} seeds of the simulated round energy, common random numbers",
            passed=means["exact"] <= means[method] * (1 + RELATIVE_TOLERANCE),
            detail=f"exact {means['exact']:.6g} J, {method} {means[method]:.6g} J "
                   f"(saving {1 - means['exact'] / means[method]:.3%})",
            measured=means["exact"], bound=means[method], seeds=seeds,
            config=jsonable({"preset": PRESET, "devices": model.n_devices, "method": method}),
        ))
    return checks, []


def _preset(quick: bool):
    from edgeopt.models.fl_energy import FLEnergyModel

    return FLEnergyModel.preset(PRESET, devices=4 if quick else 10)


def _plan(model: Any, method: str) -> dict[str, Any]:
    """A method's decision with what the simulator needs (JSON-ready)."""
    from edgeopt.solvers import solve

    result = solve(model, method)
    inst = model.instance
    bandwidth = result.solution["bandwidth_hz"]
    devices = inst.devices
    return jsonable({
        "method": result.method,
        "frequency_hz": result.solution["frequency_hz"],
        "rate_bps": [b * math.log2(1 + d.channel_gain * d.power_w / (inst.noise_psd_w_per_hz * b))
                     for d, b in zip(devices, bandwidth)],
        "iterations": [inst.local_iterations if d.local_iterations is None else d.local_iterations
                       for d in devices],
        "samples": [d.samples for d in devices],
        "cycles_per_sample": [d.cycles_per_sample for d in devices],
        "capacitance": [d.capacitance for d in devices],
        "power_w": [d.power_w for d in devices],
        "upload_bits": [d.upload_bits for d in devices],
        "deadline_s": inst.deadline_s,
        "model_energy_j": result.objective,
    })
