"""The memory and time models against real PyTorch training on this machine's CPU.

* :func:`tinyfel_memory_check`: train a network with its bottom units frozen, for every
  number n of updated top units, and compare the measured peak training memory with
  TinyFEL's M_n (spec §3.2) computed by the model itself, with saved-activation factors
  from :func:`~edgeopt.models.profiles.from_torch` and, optionally, with reference layers
  (the spec's analytic gamma). :func:`memory_claim` answers the paper's ">40% memory
  saved" claim from such a table.
* :func:`edgesplit_time_check`: measured device-side compute per cut (forward + backward
  of units 1..c per mini-batch) against EdgeSplit's FLOP-proportional time
  beta * Phi_c / f, and the effective FLOP/s per unit and per layer type.

Importing this module does not import PyTorch; every function needs it (the
``edgeopt[torch]`` extra). Measurements run on ``threads`` intra-op threads (default 1:
on a machine shared with other work, more threads than free cores make every parallel
kernel wait for a time slice and the timings meaningless).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.models.profiles import LayerProfile, from_torch, require_torch

MIB = 2**20
"""Bytes per MiB."""

CLAIM_SAVING = 0.40
"""The paper's claim: sparse update saves more than 40% of training memory vs full-model FEL."""


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads (None: leave the setting alone)."""
    torch = require_torch("torch_threads")
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _build(factory: Callable[[], Any], seed: int) -> Any:
    torch = require_torch("the torch checks")
    torch.manual_seed(seed)
    return factory()


# ---- TinyFEL: memory ----------------------------------------------------------------------


def tinyfel_option_memory(
    layers: list[dict[str, Any]], batch_size: int, optimizer_state_factor: float
) -> pd.DataFrame:
    """TinyFEL's M_n [byte] for n = 1..L, by the model's own option table, with its terms.

    Columns: ``n``, ``model_bytes`` (M_n from ``TinyFELModel.options``), and the terms of
    spec §3.2 (frozen_param_factor 1): ``weights`` sum_l w_l, ``grad_opt`` kappa * sum_{l>=s}
    w_l, ``saved`` beta * sum_{l>=s} gamma_l o_{l-1}, ``transient`` beta * max_l o_{l-1}.
    """
    from edgeopt.models.tinyfel.model import TinyFELModel

    model = TinyFELModel.from_dict(
        {
            "model": "tinyfel",
            "version": 1,
            "layers": layers,
            "devices": [
                {"name": "probe", "flops_per_s": 1.0, "memory_bytes": 1.0, "samples": 1,
                 "power_w": 1.0, "channel_gain": 1.0}
            ],
            "bandwidth_hz": 1.0,
            "noise_psd_w_per_hz": 1.0,
            "batch_size": batch_size,
            "local_steps": 1,
            "optimizer_state_factor": optimizer_state_factor,
            "bias_budget": 1.0,
            "min_selected": 0,
            "objective": "round_latency",
        }
    )
    w = np.array([layer["param_bytes"] for layer in layers], dtype=float)
    o = np.array([layer["in_bytes"] for layer in layers], dtype=float)
    gamma = np.array([layer["act_factor"] for layer in layers], dtype=float)
    count = len(layers)
    rows = []
    for n in range(1, count + 1):
        s = count - n  # 0-based first updated unit
        rows.append(
            {
                "n": n,
                "model_bytes": float(model.options.memory_bytes[n - 1]),
                "weights": float(w.sum()),
                "grad_opt": optimizer_state_factor * float(w[s:].sum()),
                "saved": batch_size * float((gamma[s:] * o[s:]).sum()),
                "transient": batch_size * float(o.max()),
            }
        )
    return pd.DataFrame(rows)


def tinyfel_memory_check(
    factory: Callable[[], Any],
    input_shape: Sequence[int],
    classes: int,
    *,
    blocks: Sequence[str] | None = None,
    batch_size: int = 32,
    optimizer: str = "momentum",
    reference_layers: list[dict[str, Any]] | None = None,
    updated: Sequence[int] | None = None,
    allocator: bool = False,
    seed: int = 0,
    threads: int | None = 1,
) -> pd.DataFrame:
    """Measured vs modelled peak training memory per TinyFEL option n [MiB].

    ``factory()`` builds the network (seeded with ``seed``); it is cut with ``blocks`` as in
    :func:`~edgeopt.models.profiles.from_torch` and trained on random data (``input_shape``
    per sample, ``classes`` labels) with cross-entropy and ``optimizer`` (``sgd``,
    ``momentum`` or ``adam``: kappa 1, 2, 3). For each n in ``updated`` (default 1..L) the
    parameters of units below L - n + 1 are frozen and one steady-state step is measured by
    :func:`~edgeopt.models.profiles.memory.training_step_memory`.

    Columns per n: ``first_unit``; ``measured_mib`` and its categories at the peak
    (``weights``, ``gradients``, ``optimizer``, ``saved``, ``input``, ``other``) and
    ``phase``; ``saved_end_fwd_mib`` (all saved activations after the forward pass);
    ``model_mib`` (M_n with the profiled gamma) and its terms ``model_weights``,
    ``model_grad_opt``, ``model_saved``, ``model_transient``; ``error_pct`` =
    100 (model - measured) / measured; with ``reference_layers`` also ``reference_mib`` and
    ``reference_error_pct`` (M_n with those layers, e.g. the spec's analytic gamma); with
    ``allocator`` also ``allocator_mib``, the same step's peak seen by the CPU allocator
    (:func:`~edgeopt.models.profiles.memory.allocator_step_peak`, slower).
    """
    torch = require_torch("tinyfel_memory_check")
    from edgeopt.models.profiles.memory import (
        OPTIMIZERS,
        allocator_step_peak,
        training_step_memory,
    )

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer = {optimizer!r}: must be one of {', '.join(OPTIMIZERS)}")
    kappa = float(OPTIMIZERS[optimizer])
    with torch_threads(threads):
        network = _build(factory, seed)
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch_size, *input_shape, generator=generator)
        targets = torch.randint(0, classes, (batch_size,), generator=generator)
        profile = from_torch(network, inputs, blocks)  # at the training batch: exact per sample
        count = len(profile.units)
        options = list(updated or range(1, count + 1))
        wrong = [n for n in options if not 1 <= n <= count]
        if wrong:
            raise ValueError(f"updated contains {wrong}: options are 1..{count}")
        layers = profile.tinyfel_layers([1.0] * count)  # G_l^2 does not enter M_n
        model = tinyfel_option_memory(layers, batch_size, kappa)
        reference = None
        if reference_layers is not None:
            if len(reference_layers) != len(layers):
                raise ValueError(
                    f"reference_layers has {len(reference_layers)} layers; the profile has "
                    f"{len(layers)} units"
                )
            reference = tinyfel_option_memory(reference_layers, batch_size, kappa)
        rows = []
        for n in options:
            first = count - n
            trainable = {name for unit in profile.units[first:] for name in unit.param_names}
            peak = training_step_memory(network, inputs, targets, trainable, optimizer)
            modelled = model.iloc[n - 1]
            row = {
                "n": n,
                "first_unit": profile.units[first].name,
                "measured_mib": peak.peak_bytes / MIB,
                **{k: v / MIB for k, v in peak.by_category.items()},
                "phase": peak.phase,
                "saved_end_fwd_mib": peak.saved_bytes / MIB,
                "model_mib": modelled["model_bytes"] / MIB,
                "model_weights": modelled["weights"] / MIB,
                "model_grad_opt": modelled["grad_opt"] / MIB,
                "model_saved": modelled["saved"] / MIB,
                "model_transient": modelled["transient"] / MIB,
            }
            row["error_pct"] = 100 * (row["model_mib"] - row["measured_mib"]) / row["measured_mib"]
            if allocator:
                row["allocator_mib"] = (
                    allocator_step_peak(network, inputs, targets, trainable, optimizer) / MIB
                )
            if reference is not None:
                row["reference_mib"] = reference.iloc[n - 1]["model_bytes"] / MIB
                row["reference_error_pct"] = (
                    100 * (row["reference_mib"] - row["measured_mib"]) / row["measured_mib"]
                )
            rows.append(row)
    return pd.DataFrame(rows)


def memory_claim(table: pd.DataFrame, saving: float = CLAIM_SAVING) -> pd.DataFrame:
    """Memory saved by each option against full-model training (n = L), per column.

    ``table``: a :func:`tinyfel_memory_check` result; its largest n is taken as the full
    model (n = L), so measure that option. Returns one row per
    source (``measured``, ``model`` and ``reference`` when present) with ``largest_n``: the
    most units one can update while saving more than ``saving`` (None if no option does),
    ``saving_at_largest_n_pct``, and ``saving_at_half_pct``: the saving when updating
    half the units (n = L // 2).
    """
    count = int(table["n"].max())
    columns = {"measured": "measured_mib", "model": "model_mib", "reference": "reference_mib"}
    rows = []
    by_n = table.set_index("n")
    for source, column in columns.items():
        if column not in table:
            continue
        saved = 1 - by_n[column] / by_n.loc[count, column]
        passing = [int(n) for n in saved.index if saved[n] > saving]
        largest = max(passing) if passing else None
        half = count // 2
        rows.append(
            {
                "source": source,
                "largest_n": largest,
                "saving_at_largest_n_pct": 100 * saved[largest] if largest else None,
                "saving_at_half_pct": 100 * saved[half] if half in saved.index else None,
            }
        )
    return pd.DataFrame(rows)


# ---- EdgeSplit: time ------------------------------------------------------------------------

LAYER_TYPES = ("conv", "linear", "batchnorm", "relu", "pool", "add", "other")
"""Layer types of :func:`edgesplit_time_check`'s per-type table."""

_FORWARD_OPS = {
    "aten::conv2d": "conv", "aten::convolution": "conv", "aten::linear": "linear",
    "aten::addmm": "linear", "aten::mm": "linear", "aten::batch_norm": "batchnorm",
    "aten::relu": "relu", "aten::max_pool2d": "pool", "aten::adaptive_avg_pool2d": "pool",
    "aten::avg_pool2d": "pool", "aten::add": "add",
}
_BACKWARD_NODES = {
    "ConvolutionBackward0": "conv", "AddmmBackward0": "linear", "MmBackward0": "linear",
    "TBackward0": "linear", "NativeBatchNormBackward0": "batchnorm", "ReluBackward0": "relu",
    "MaxPool2DWithIndicesBackward0": "pool", "AdaptiveAvgPool2DBackward0": "pool",
    "MeanBackward1": "pool", "AddBackward0": "add",
}
_FLOP_OPS = {"convolution": "conv", "convolution_backward": "conv", "addmm": "linear", "mm": "linear"}
_NODE_PREFIX = "autograd::engine::evaluate_function: "


@dataclass(frozen=True)
class TimeCheck:
    """Result of :func:`edgesplit_time_check` (times in s per mini-batch of ``batch_size``).

    ``profile``: the measured layer profile; ``flops_per_s``: the fitted device throughput
    (all counted work over all measured time); ``per_cut``, ``per_unit``, ``per_type``:
    see :func:`edgesplit_time_check`.
    """

    profile: LayerProfile
    batch_size: int
    flops_per_s: float
    per_cut: pd.DataFrame
    per_unit: pd.DataFrame
    per_type: pd.DataFrame


def edgesplit_time_check(
    factory: Callable[[], Any],
    input_shape: Sequence[int],
    *,
    blocks: Sequence[str] | None = None,
    batch_size: int = 32,
    repeats: int = 5,
    warmup: int = 1,
    direct: bool = False,
    seed: int = 0,
    threads: int | None = 1,
) -> TimeCheck:
    """Measured device-side compute per cut vs EdgeSplit's FLOP-based time.

    The network (built by ``factory()``, seeded) is profiled on a random batch of
    ``batch_size``, then timed like ``from_torch(..., measure=True)``: per unit, the median
    forward and backward window of ``repeats`` training passes (after ``warmup``). One device
    throughput f is fitted over the whole network (counted FLOPs / measured time), and per
    cut c the model's device compute beta * Phi_c / f (Phi_c with the measured backward
    FLOPs) is compared with the measured sum over units 1..c; ``model_default_s`` uses the
    spec's null default phi_B = 2 phi_F with its own fitted f.

    ``per_cut`` columns: ``cut``, ``unit``, ``measured_s``, ``model_s``, ``error_pct``,
    ``model_default_s``, ``default_error_pct``, ``flops_per_s`` (units 1..c), and with
    ``direct=True`` (``nn.Sequential`` networks cut at their children only) ``direct_s``:
    the median time of forward + backward of the prefix network ``children[:c]`` alone,
    timed in turn with the whole passes in every repeat (same machine load), a check of the
    per-unit windows. ``per_unit``: FLOPs, times, effective FLOP/s
    forward and backward, and the backward/forward time ratio (the model assumes the FLOP
    ratio). ``per_type``: forward and backward time, counted FLOPs and effective FLOP/s
    per layer type, from ``torch.profiler`` (top-level ATen ops forward, autograd nodes
    backward) over ``repeats`` passes; matrix products count as ``linear``.
    """
    torch = require_torch("edgesplit_time_check")
    for name, value, minimum in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} = {value!r}: must be an integer >= {minimum}")
    with torch_threads(threads):
        network = _build(factory, seed)
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(batch_size, *input_shape, generator=generator)
        profile = from_torch(network, inputs, blocks)
        fwd, bwd, prefix = _interleaved_times(network, inputs, blocks, profile, repeats, warmup,
                                              direct)
        profile = profile.with_times(fwd, bwd, repeats)
        per_unit, f, f_default = _per_unit(profile)
        per_cut = _per_cut(profile, f, f_default)
        if direct:
            per_cut["direct_s"] = prefix
        per_type = _per_type(network, inputs, repeats, warmup)
    return TimeCheck(profile, batch_size, f, per_cut, per_unit, per_type)


def _interleaved_times(
    network: Any, inputs: Any, blocks: Sequence[str] | None, profile: LayerProfile,
    repeats: int, warmup: int, direct: bool,
) -> tuple[list[float], list[float], list[float]]:
    """Median per-unit forward and backward times of whole training passes and, with
    ``direct``, median times of the prefix networks, taken in turn in every repeat so that
    both see the same machine load."""
    torch = require_torch("edgesplit_time_check")
    from edgeopt.models.profiles.tracing import medians, resolve_cuts, time_pass

    cuts = resolve_cuts(network, blocks)
    prefixes = []
    if direct:
        children = list(network.children())
        if not isinstance(network, torch.nn.Sequential) or len(children) != len(profile.units):
            raise ValueError("direct=True needs an nn.Sequential network cut at its children")
        prefixes = [torch.nn.Sequential(*children[:cut]) for cut in range(1, len(children) + 1)]
    network.train()
    for p in network.parameters():
        p.requires_grad_(True)
    fwd, bwd, direct_s = [], [], []
    for index in range(warmup + repeats):
        f, b = time_pass(network, (inputs,), cuts)
        row = []
        for prefix in prefixes:
            for p in prefix.parameters():
                p.grad = None
            start = time.perf_counter()
            out = prefix(inputs)
            out.backward(torch.ones_like(out))
            row.append(time.perf_counter() - start)
        if index >= warmup:
            fwd.append(f)
            bwd.append(b)
            direct_s.append(row)
    return medians(fwd), medians(bwd), medians(direct_s) if direct else []


def _per_unit(profile: LayerProfile) -> tuple[pd.DataFrame, float, float]:
    beta = profile.batch_size
    rows = []
    for unit in profile.units:
        fwd, bwd = beta * unit.fwd_flops, beta * unit.bwd_flops
        rows.append(
            {
                "unit": unit.name,
                "fwd_flops": fwd,
                "bwd_flops": bwd,
                "fwd_s": unit.fwd_time_s,
                "bwd_s": unit.bwd_time_s,
                "fwd_flops_per_s": fwd / unit.fwd_time_s if unit.fwd_time_s else float("nan"),
                "bwd_flops_per_s": bwd / unit.bwd_time_s if unit.bwd_time_s else float("nan"),
                "bwd_fwd_time_ratio": (unit.bwd_time_s / unit.fwd_time_s
                                       if unit.fwd_time_s and unit.bwd_time_s is not None
                                       else float("nan")),
                "bwd_fwd_flop_ratio": bwd / fwd if fwd else float("nan"),
            }
        )
    frame = pd.DataFrame(rows)
    seconds = float((frame["fwd_s"] + frame["bwd_s"]).sum())
    f = float((frame["fwd_flops"] + frame["bwd_flops"]).sum()) / seconds
    f_default = 3 * float(frame["fwd_flops"].sum()) / seconds
    return frame, f, f_default


def _per_cut(profile: LayerProfile, f: float, f_default: float) -> pd.DataFrame:
    beta = profile.batch_size
    rows = []
    measured = work = default = 0.0
    for cut, unit in enumerate(profile.units, start=1):
        measured += unit.fwd_time_s + unit.bwd_time_s  # type: ignore[operator]
        work += beta * (unit.fwd_flops + unit.bwd_flops)
        default += beta * 3 * unit.fwd_flops
        rows.append(
            {
                "cut": cut,
                "unit": unit.name,
                "measured_s": measured,
                "model_s": work / f,
                "error_pct": 100 * (work / f - measured) / measured,
                "model_default_s": default / f_default,
                "default_error_pct": 100 * (default / f_default - measured) / measured,
                "flops_per_s": work / measured,
            }
        )
    return pd.DataFrame(rows)


def _per_type(network: Any, inputs: Any, repeats: int, warmup: int) -> pd.DataFrame:
    torch = require_torch("edgesplit_time_check")
    from torch.profiler import ProfilerActivity, profile
    from torch.utils.flop_counter import FlopCounterMode

    from edgeopt.models.profiles.tracing import quiet_native_stderr

    network.train()

    def forward_backward() -> None:
        for p in network.parameters():
            p.grad = None
        out = network(inputs)
        out.backward(torch.ones_like(out))

    counter = FlopCounterMode(display=False)
    with counter:
        out = network(inputs)
        fwd_counts = dict(counter.get_flop_counts()["Global"])
        out.backward(torch.ones_like(out))
        all_counts = dict(counter.get_flop_counts()["Global"])
    flops = {(kind, phase): 0.0 for kind in LAYER_TYPES for phase in ("fwd", "bwd")}
    for op, value in all_counts.items():
        kind = _FLOP_OPS.get(str(op).split(".")[-1], "other")
        forward = fwd_counts.get(op, 0)
        flops[kind, "fwd"] += forward
        flops[kind, "bwd"] += value - forward
    for _ in range(warmup):
        forward_backward()
    with quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            forward_backward()
    seconds = {(kind, phase): 0.0 for kind in LAYER_TYPES for phase in ("fwd", "bwd")}
    for event in prof.events():
        parent = event.cpu_parent
        if event.name.startswith(_NODE_PREFIX):
            kind = _BACKWARD_NODES.get(event.name[len(_NODE_PREFIX):], "other")
            seconds[kind, "bwd"] += event.cpu_time_total / 1e6 / repeats
        elif event.name.startswith("aten::") and not _inside_op(parent):
            seconds[_FORWARD_OPS.get(event.name, "other"), "fwd"] += (
                event.cpu_time_total / 1e6 / repeats
            )
    total = sum(seconds.values())
    rows = []
    for kind in LAYER_TYPES:
        row: dict[str, Any] = {"layer_type": kind}
        for phase in ("fwd", "bwd"):
            s, w = seconds[kind, phase], flops[kind, phase]
            row[f"{phase}_s"] = s
            row[f"{phase}_flops"] = w
            row[f"{phase}_flops_per_s"] = w / s if s > 0 and w > 0 else float("nan")
        row["time_share_pct"] = 100 * (row["fwd_s"] + row["bwd_s"]) / total if total else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def _inside_op(event: Any) -> bool:
    """True if ``event`` or one of its ancestors is an ATen op or an autograd node."""
    while event is not None:
        if event.name.startswith("aten::") or event.name.startswith(_NODE_PREFIX):
            return True
        event = event.cpu_parent
    return False
