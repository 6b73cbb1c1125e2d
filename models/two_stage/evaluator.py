"""The independent evaluator of the two-stage model (spec §3.2-§3.4, §4.3): plain loops over
the raw instance, sharing no code with :mod:`~edgeopt.models.two_stage.derived`,
:mod:`~edgeopt.models.two_stage.convergence` or the oracle (the tests check they agree).

A decision (a §3.4 solution document or a solver's ``Result.solution``) holds
``pretrain_rounds`` M, ``finetune_rounds`` N, ``pretrain_batch`` D, ``server_clock_hz``
f_s, and per device ``finetune_batch`` B_k, ``device_clock_hz`` f_k, ``power_w`` p_k.
Optional: ``per_round`` = {"finetune_batch", "device_clock_hz", "power_w"} as N x K lists
(round n's values; the top-level lists must then equal round 0), and the reported
``energy_j`` / ``delay_s``, which must match the recomputed E and T to 1e-9 relative. Other
keys are ignored. Round n of fine-tuning uses h_k(n) from ``channel_gain_schedule`` when the
device has one (so a stage-constant decision is evaluated under time-varying channels too).

Violations (0 when satisfied; ``Evaluation.violations[name]`` is the worst amount):

* ``rounds`` [count]: M, N integers in {0..M_max}, {0..N_max}, M + N >= 1.
* ``pretrain_batch`` / ``finetune_batch`` [sample]: integers in {1..cap} for a used stage,
  exactly 0 for an unused one (amount: distance to the allowed set).
* ``server_clock`` / ``device_clock`` / ``power`` [relative to the cap]: 0 < x <= cap
  (tolerance 1e-12), exactly 0 for an unused stage. A non-positive or non-finite value of a
  used stage counts max(1, |x|/cap).
* ``energy`` / ``delay`` [relative]: E <= E_max (1 + 1e-9), T <= T_max (1 + 1e-9).
* ``reported_energy`` / ``reported_delay`` [relative]: |claim - value| <= 1e-9 value.
* ``per_round`` [count]: shape N x K and round 0 equal to the top-level lists.

Every violation is also listed in ``issues`` with the device (and round) and the amount, and
in ``messages``. E, T and Psi are computed only when the rounds are valid and all values of
the used stages are finite and positive (else ``None``); ``objective`` = Psi when feasible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

from edgeopt.models.base import Evaluation, per_device_values
from edgeopt.models.two_stage.schema import TwoStageInstance

BUDGET_RTOL = 1e-9
"""E <= E_max (1 + 1e-9), T <= T_max (1 + 1e-9) (spec §3.4)."""

REPORT_RTOL = 1e-9
"""Reported energy_j / delay_s must match the recomputed values to this relative error."""

CAP_RTOL = 1e-12
"""Clocks and powers may exceed their caps by this relative amount (float round-off)."""


@dataclass(frozen=True)
class Issue:
    """One violated constraint: ``device`` (name) and ``round`` (0-based, fine-tuning) when
    it concerns one; ``amount`` in ``unit``."""

    constraint: str
    amount: float
    unit: str
    message: str
    device: str | None = None
    round: int | None = None


@dataclass(frozen=True, repr=False)
class TwoStageEvaluation(Evaluation):
    """An :class:`Evaluation` with what a §3.4 solution reports.

    ``psi`` the bound Psi at the decision's rounds and batches (also when infeasible, if
    defined); ``batch_term`` Q [1/sample]; ``energy_j`` E [J]; ``delay_s`` T [s];
    ``pretrain_round_s`` t_s and ``round_times_s`` u(n) per fine-tuning round [s];
    ``issues`` the violations one by one. ``per_device`` holds round-0 ``compute_s``,
    ``upload_s``, ``finish_s``, ``rate_bps`` and stage totals ``compute_energy_j``,
    ``upload_energy_j`` [J].
    """

    psi: float | None = None
    batch_term: float | None = None
    energy_j: float | None = None
    delay_s: float | None = None
    pretrain_round_s: float | None = None
    round_times_s: tuple[float, ...] = ()
    issues: tuple[Issue, ...] = ()


def evaluate(inst: TwoStageInstance, decision: dict[str, Any]) -> TwoStageEvaluation:
    """Objective, per-constraint violations and per-device breakdown of ``decision``."""
    devices, server = inst.devices, inst.server
    K = len(devices)
    names = [d.name for d in devices]
    issues: list[Issue] = []

    def flag(constraint, amount, unit, message, device=None, round_=None):
        issues.append(Issue(constraint, float(amount), unit, message, device, round_))

    M = _whole(decision.get("pretrain_rounds"))
    N = _whole(decision.get("finetune_rounds"))
    rounds_ok = True
    for key, value, cap in (
        ("pretrain_rounds", M, inst.max_pretrain_rounds),
        ("finetune_rounds", N, inst.max_finetune_rounds),
    ):
        raw = decision.get(key)
        if value is None or not 0 <= value <= cap:
            rounds_ok = False
            amount = 1.0 if value is None else max(value - cap, -value)
            flag("rounds", amount, "count", f"rounds: {key} = {raw!r} must be an integer in 0..{cap}")
    # Both counts are integers when rounds_ok; otherwise a missing count reads as 0.
    M, N = (M or 0), (N or 0)
    if rounds_ok and M + N < 1:
        rounds_ok = False
        flag("rounds", 1, "count", "rounds: pretrain_rounds + finetune_rounds must be >= 1")

    # ---- per-round fine-tuning values (stage-constant lists repeated, or per_round) ------
    batch0 = per_device_values(decision, "finetune_batch", K)
    clock0 = per_device_values(decision, "device_clock_hz", K)
    power0 = per_device_values(decision, "power_w", K)
    firsts = (batch0, clock0, power0)
    if rounds_ok:
        rows = _fine_rounds(decision, N, K, firsts, flag)
    else:
        rows = [firsts] if N > 0 else []

    # ---- domain of every value ----------------------------------------------------------
    usable = rounds_ok
    D, f_s = decision.get("pretrain_batch"), decision.get("server_clock_hz")
    usable &= _batch(D, M > 0, server.max_batch, "pretrain_batch", None, None, flag)
    usable &= _positive(f_s, M > 0, server.max_clock_hz, "server_clock", "server_clock_hz",
                        None, None, flag)
    stage_rows = rows if N > 0 else [firsts]
    for n, (batch, clock, power) in enumerate(stage_rows):
        where = n if N > 0 else None
        for k, device in enumerate(devices):
            usable &= _batch(batch[k], N > 0, device.max_batch, "finetune_batch", names[k],
                             where, flag)
            usable &= _positive(clock[k], N > 0, device.max_clock_hz, "device_clock",
                                "device_clock_hz", names[k], where, flag)
            usable &= _positive(power[k], N > 0, device.max_power_w, "power", "power_w",
                                names[k], where, flag)

    columns = {key: [0.0] * K for key in ("compute_s", "upload_s", "finish_s", "rate_bps",
                                           "compute_energy_j", "upload_energy_j")}
    psi = q = energy = delay = t_s = None
    round_times: list[float] = []
    if usable:
        # usable: both are numbers when M > 0 (_batch / _positive flag a missing one).
        D = float(D) if M > 0 and D is not None else 0.0
        f_s = float(f_s) if M > 0 and f_s is not None else 0.0
        t_s = server.cycles_per_sample * D / f_s if M > 0 else 0.0
        e_s = server.capacitance * server.cycles_per_sample * D * f_s**2 if M > 0 else 0.0
        parts = [M * e_s]
        for n, (batch, clock, power) in enumerate(rows):
            finish = []
            for k, device in enumerate(devices):
                gain = device.channel_gain
                if device.channel_gain_schedule is not None:
                    gain = device.channel_gain_schedule[n]
                b, f, p = float(batch[k]), float(clock[k]), float(power[k])
                compute = device.cycles_per_sample * b / f
                snr = p * gain / (inst.noise_psd_w_per_hz * device.bandwidth_hz)
                # log1p: log2(1 + snr) loses every digit of a small snr (1 + 1e-15 rounds)
                rate = device.bandwidth_hz * math.log1p(snr) / math.log(2.0)
                upload = inst.model_bits / rate
                e_cmp = device.capacitance * device.cycles_per_sample * b * f**2
                parts += [e_cmp, p * upload]
                columns["compute_energy_j"][k] += e_cmp
                columns["upload_energy_j"][k] += p * upload
                if n == 0:
                    columns["compute_s"][k], columns["upload_s"][k] = compute, upload
                    columns["finish_s"][k], columns["rate_bps"][k] = compute + upload, rate
                finish.append(compute + upload)
            round_times.append(max(finish))
        energy = math.fsum(parts)
        delay = math.fsum([M * t_s, *round_times])
        psi, q = _psi(inst, M, D, [row[0] for row in rows])
        for name, total, budget, unit in (
            ("energy", energy, inst.energy_budget_j, "J"),
            ("delay", delay, inst.delay_budget_s, "s"),
        ):
            excess = total / budget - 1.0
            if excess > BUDGET_RTOL:
                flag(name, excess, "relative",
                     f"{name}: {total:.9g} {unit} > budget {budget:.9g} {unit} "
                     f"(over by {total - budget:.6g} {unit})")
        for name, key, total in (("reported_energy", "energy_j", energy),
                                 ("reported_delay", "delay_s", delay)):
            claim = decision.get(key)
            if claim is None:
                continue
            gap = abs(float(claim) - total) / max(abs(total), 1e-300)
            if not gap <= REPORT_RTOL:
                flag(name, gap if math.isfinite(gap) else math.inf, "relative",
                     f"{name}: reported {key} = {claim!r} but the evaluator finds {total:.12g}")

    violations = {name: 0.0 for name in CONSTRAINT_NAMES}
    for issue in issues:
        violations[issue.constraint] = max(violations[issue.constraint], issue.amount)
    feasible = not issues
    return TwoStageEvaluation(
        objective=psi if feasible else None,
        feasible=feasible,
        violations=violations,
        per_device=columns,
        messages=tuple(issue.message for issue in issues),
        psi=psi,
        batch_term=q,
        energy_j=energy,
        delay_s=delay,
        pretrain_round_s=t_s,
        round_times_s=tuple(round_times),
        issues=tuple(issues),
    )


CONSTRAINT_NAMES = (
    "rounds",
    "pretrain_batch",
    "finetune_batch",
    "server_clock",
    "device_clock",
    "power",
    "energy",
    "delay",
    "reported_energy",
    "reported_delay",
    "per_round",
)


def _whole(value: Any) -> int | None:
    """An integral number as int (4.0 -> 4), else None (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    value = float(value)
    return int(value) if math.isfinite(value) and value.is_integer() else None


def _fine_rounds(decision, N, K, firsts, flag) -> list[tuple[list, list, list]]:
    """(B, f, p) per fine-tuning round: ``per_round`` rows, or the lists repeated N times."""
    block = decision.get("per_round")
    if block is None:
        return [firsts] * N
    keys = ("finetune_batch", "device_clock_hz", "power_w")
    tables = []
    for key, first in zip(keys, firsts):
        table = block.get(key) if isinstance(block, dict) else None
        if table is None or len(table) != N or any(len(row) != K for row in table):
            flag("per_round", 1, "count", f"per_round: {key} must be an N x K = {N} x {K} list")
            return [firsts] * N
        if N and [float(v) for v in table[0]] != [float(v) for v in first]:
            flag("per_round", 1, "count", f"per_round: round 0 of {key} differs from {key}")
        tables.append([list(row) for row in table])
    return list(zip(*tables))


def _batch(value, used, cap, constraint, device, round_, flag) -> bool:
    """Check one batch size; True when it can enter the cost formulas."""
    where = _where(device, round_)
    if not used:
        if _number(value) and float(value) == 0:
            return True
        flag(constraint, abs(float(value)) if _number(value) else 1.0, "sample",
             f"{constraint}{where} = {value!r} must be 0 (stage unused)", device, round_)
        return True
    if not _number(value) or not math.isfinite(float(value)):
        flag(constraint, math.inf, "sample", f"{constraint}{where} = {value!r} must be an integer "
             f"in 1..{cap}", device, round_)
        return False
    x = float(value)
    nearest = min(max(round(x), 1), cap)
    if x != nearest:
        kind = "an integer" if not x.is_integer() else f"in 1..{cap}"
        flag(constraint, abs(x - nearest), "sample",
             f"{constraint}{where} = {value!r} must be {kind} (1..{cap}; off by "
             f"{abs(x - nearest):.6g} sample)", device, round_)
    return x > 0


def _positive(value, used, cap, constraint, key, device, round_, flag) -> bool:
    """Check 0 < value <= cap (or value == 0 for an unused stage); True when usable."""
    where = _where(device, round_)
    if not used:
        if _number(value) and float(value) == 0:
            return True
        flag(constraint, 1.0, "relative", f"{constraint}: {key}{where} = {value!r} must be 0 "
             "(stage unused)", device, round_)
        return True
    x = float(value) if _number(value) else math.nan
    if not (math.isfinite(x) and x > 0):
        amount = max(1.0, abs(x) / cap) if math.isfinite(x) else math.inf
        flag(constraint, amount, "relative", f"{constraint}: {key}{where} = {value!r} must be "
             f"> 0 and <= {cap:g}", device, round_)
        return False
    excess = x / cap - 1.0
    if excess > CAP_RTOL:
        flag(constraint, excess, "relative", f"{constraint}: {key}{where} = {x:.9g} > cap "
             f"{cap:.9g} (over by {x - cap:.6g}, {excess:.3g} relative)", device, round_)
    return True


def _number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _where(device, round_) -> str:
    text = f" of device {device!r}" if device is not None else ""
    return text + (f" in fine-tuning round {round_}" if round_ is not None else "")


def _psi(inst: TwoStageInstance, M: int, D: float, batches: list) -> tuple[float, float]:
    """(Psi, Q) = ([a0 + a1 M + a2 Q]/(M + N), Q) with Q = M/D + sum_n sum_k alpha_k^2/B_k(n)."""
    learning = inst.learning
    eta, L, delta = learning.learning_rate, learning.smoothness, learning.shift
    a0 = 2.0 * learning.initial_gap / eta
    a2 = L * eta * learning.grad_variance
    if learning.bound == "squared_shift":
        a1 = delta * delta
    else:
        G = learning.grad_bound
        if G is None:  # the schema requires it with linear_shift
            raise ValueError("learning.grad_bound is required when bound is 'linear_shift'")
        a1 = 2.0 * (1.0 - L * eta) * G * delta + L * eta * delta * delta
    weights: list[float] = []
    for device in inst.devices:
        if device.weight is None:  # the schema fills absent weights with 1/K
            raise ValueError(f"device {device.name!r} has no weight: validate the instance first")
        weights.append(device.weight)
    terms = [M / D] if M > 0 else []
    for batch in batches:
        terms += [w * w / float(b) for w, b in zip(weights, batch)]
    q = math.fsum(terms)
    return (a0 + a1 * M + a2 * q) / (M + len(batches)), q
