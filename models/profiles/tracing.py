"""Trace a PyTorch module into cut units with torch's own tools (imports torch).

Use :func:`edgeopt.models.profiles.from_torch`; this module does the work.

A *cut* is a named submodule; unit k is everything executed after cut k-1 finished up to
the end of cut k (unit 1 starts at the network input, work after the last cut belongs to
the last unit). Every run is observed by

* forward hooks on the cut modules (unit boundaries in the forward pass) and gradient hooks
  on their outputs (the same boundaries in the backward pass: the gradient of cut k's
  output is ready exactly when unit k's backward starts);
* :class:`torch.utils.flop_counter.FlopCounterMode` (torch's FLOP formulas: 2 x MACs for
  convolutions and matrix products, biases, BatchNorm, activations, pooling and adds not
  counted), read at every boundary;
* :func:`torch.autograd.graph.saved_tensors_hooks` (every tensor autograd keeps for the
  backward pass, by storage, parameters and buffers excluded);
* a ``TorchDispatchMode`` that sees every ATen operation: which unit first reads each
  parameter, and whether a unit reads a tensor produced before the previous cut without it
  being that cut's output (then the cut is not a clean split, e.g. a skip connection
  crosses it).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from edgeopt.models.profiles.table import LayerProfile, UnitProfile


def tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor inside nested tuples, lists and dicts."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Discard what native code writes to file descriptor 2 inside the block (the profiler
    logs a line at every start and stop)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def storage_key(tensor: torch.Tensor) -> int | None:
    """Address of the tensor's storage (shared by all its views), None if it has none."""
    try:
        pointer = tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return None
    return pointer or None


def storage_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the tensor's whole storage (what keeping it alive costs)."""
    try:
        return int(tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):
        return tensor.numel() * tensor.element_size()


@dataclass
class _Run:
    """What one traced forward + backward pass records (indices are 0-based units)."""

    cuts: dict[nn.Module, str]
    read: Callable[[], float]
    forward: bool = True
    passed: list[str] = field(default_factory=list)
    outputs: list[torch.Tensor] = field(default_factory=list)
    fwd_marks: list[float] = field(default_factory=list)
    bwd_marks: dict[int, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def unit(self) -> int:
        """The unit now running forward (work after the last cut joins the last unit)."""
        return min(len(self.passed), len(self.cuts) - 1)

    def after_cut(self, module: nn.Module, _inputs: Any, output: Any) -> None:
        """Forward hook of a cut module: close the current unit."""
        name = self.cuts[module]
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.calls[name] > 1:
            raise ValueError(
                f"block {name!r} runs more than once per forward pass; a cut must be a "
                "module called exactly once (name the enclosing blocks instead)"
            )
        if not isinstance(output, torch.Tensor):
            raise ValueError(
                f"block {name!r} returns {type(output).__name__}, not one tensor; a cut "
                "must pass a single tensor to the rest of the network"
            )
        index = len(self.passed)
        self.passed.append(name)
        self.outputs.append(output)
        self.fwd_marks.append(self.read())
        if output.requires_grad and index < len(self.cuts) - 1:
            output.register_hook(lambda grad, index=index: self._grad_ready(index))

    def _grad_ready(self, index: int) -> None:
        self.bwd_marks.setdefault(index, self.read())


class _Watcher(TorchDispatchMode):
    """Parameter use and the clean-split check, op by op, during the forward pass."""

    def __init__(self, run: _Run, param_keys: dict[int, None | int], inputs: set[int]):
        super().__init__()
        self.run = run
        self.param_unit = param_keys  # storage -> first unit reading it (None: not yet)
        self.producer: dict[int, int] = {key: -1 for key in inputs}
        self.boundary: dict[int, set[int]] = {-1: set(inputs)}
        self.violation: tuple[int, int, int] | None = None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        read = {key for t in tensors_in((args, kwargs)) if (key := storage_key(t))}
        out = func(*args, **kwargs)
        if self.run.forward:
            self._observe(read, out)
        return out

    def _observe(self, read: set[int], out: Any) -> None:
        run = self.run
        unit = run.unit
        for b, tensor in enumerate(run.outputs):
            if b not in self.boundary and (key := storage_key(tensor)):
                self.boundary[b] = {key}
        for key in read:
            if key in self.param_unit:
                if self.param_unit[key] is None:
                    self.param_unit[key] = unit
                continue
            origin = self.producer.get(key)
            if origin is None or origin >= unit or self.violation is not None:
                continue
            for b in range(origin, unit):
                if key not in self.boundary.get(b, ()):
                    self.violation = (unit, origin, b)
                    break
        for tensor in tensors_in(out):
            key = storage_key(tensor)
            if key and key not in read:  # a fresh storage (views and in-place ops reuse one)
                self.producer[key] = unit


def _intervals(marks: Sequence[float]) -> list[float]:
    return [later - earlier for earlier, later in zip(marks[:-1], marks[1:])]


def run_once(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    cuts: dict[nn.Module, str],
    read: Callable[[], float],
    *,
    watch: _Watcher | None = None,
    saved: list[tuple[int, int, int]] | None = None,
) -> tuple[_Run, list[float], list[float], torch.Tensor]:
    """One forward + backward pass; returns the run, the per-unit forward and backward
    intervals of ``read`` and the network output. ``saved`` collects (unit, storage,
    bytes) of every tensor autograd keeps."""
    run = _Run(cuts=cuts, read=read)
    if watch is not None:
        watch.run = run
    handles = [m.register_forward_hook(run.after_cut) for m in cuts]
    try:

        def pack(tensor: torch.Tensor) -> torch.Tensor:
            if saved is not None and (key := storage_key(tensor)):
                saved.append((run.unit, key, storage_bytes(tensor)))
            return tensor

        start = read()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            output = module(*inputs)
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"the network returns {type(output).__name__}; expected one tensor")
        missing = [name for name in cuts.values() if name not in run.calls]
        if missing:
            raise ValueError(f"block(s) {missing} never ran in the forward pass")
        fwd = _intervals([start, *run.fwd_marks[:-1], read()])
        run.forward = False
        count = len(cuts)
        if output.requires_grad:
            grad = torch.ones_like(output)
            begin = read()
            output.backward(grad)
            end = read()
        else:
            begin = end = read()
        marks = [run.bwd_marks.get(k, end) for k in range(count - 1)] + [begin]
        # unit k's backward runs from the gradient of cut k's output to that of cut k-1
        bwd = [(marks[k - 1] if k > 0 else end) - marks[k] for k in range(count)]
    finally:
        for handle in handles:
            handle.remove()
    return run, fwd, bwd, output


def resolve_cuts(module: nn.Module, blocks: Sequence[str] | None) -> dict[nn.Module, str]:
    """Cut modules by name: the named submodules, or the top-level children by default."""
    if blocks is None:
        children = dict(module.named_children())
        return {child: name for name, child in children.items()} or {
            module: type(module).__name__
        }
    if isinstance(blocks, str):
        raise TypeError(f"blocks = {blocks!r}: pass a list of submodule names")
    if not blocks:
        raise ValueError("blocks = []: name at least one submodule")
    cuts: dict[nn.Module, str] = {}
    for name in blocks:
        try:
            submodule = module.get_submodule(name)
        except AttributeError:
            top = ", ".join(n for n, _ in module.named_children()) or "none"
            raise ValueError(
                f"unknown block {name!r}: not a submodule (top-level children: {top})"
            ) from None
        if submodule in cuts:
            raise ValueError(f"blocks {cuts[submodule]!r} and {name!r} are the same module")
        cuts[submodule] = name
    return cuts


def _children_that_run(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], cuts: dict[nn.Module, str]
) -> dict[nn.Module, str]:
    """The default cuts that a forward pass calls (all of the module if none is called)."""
    called: set[nn.Module] = set()
    handles = [m.register_forward_hook(lambda m, *_: called.add(m)) for m in cuts]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {m: name for m, name in cuts.items() if m in called} or {module: type(module).__name__}


class _State:
    """Saves and restores what profiling touches: mode, requires_grad, .grad, buffers."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.training = module.training
        self.params = list(module.parameters())
        self.flags = [p.requires_grad for p in self.params]
        self.grads = [p.grad for p in self.params]
        self.buffers = [(b, b.detach().clone()) for b in module.buffers()]

    def set(self, params_grad: bool) -> None:
        for p in self.params:
            p.requires_grad_(params_grad)
            p.grad = None

    def restore(self) -> None:
        self.module.train(self.training)
        with torch.no_grad():
            for p, flag, grad in zip(self.params, self.flags, self.grads, strict=True):
                p.requires_grad_(flag)
                p.grad = grad
            for buffer, copy in self.buffers:
                buffer.copy_(copy)


def _with_input_grad(inputs: tuple[torch.Tensor, ...], wanted: bool) -> tuple[torch.Tensor, ...]:
    return tuple(
        t.detach().requires_grad_(wanted and t.is_floating_point()) for t in inputs
    )


def _flop_pass(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    cuts: dict[nn.Module, str],
    *,
    watch: _Watcher | None = None,
    saved: list[tuple[int, int, int]] | None = None,
) -> tuple[_Run, list[float], list[float], torch.Tensor]:
    counter = FlopCounterMode(display=False)
    with counter:
        if watch is None:
            return run_once(module, inputs, cuts, counter.get_total_flops, saved=saved)
        with watch:
            return run_once(module, inputs, cuts, counter.get_total_flops, watch=watch, saved=saved)


def profile(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    blocks: Sequence[str] | None,
    *,
    measure: bool,
    repeats: int,
    warmup: int,
    source: str | None,
) -> LayerProfile:
    """The work behind :func:`edgeopt.models.profiles.from_torch` (arguments checked there)."""
    cuts = resolve_cuts(module, blocks)
    batch = int(inputs[0].shape[0])
    state = _State(module)
    module.train()
    persistent = {key for t in [*state.params, *module.buffers()] if (key := storage_key(t))}
    try:
        if blocks is None:
            cuts = _children_that_run(module, inputs, cuts)
        # 1. real training: every parameter trainable, the input fixed
        state.set(True)
        fixed = _with_input_grad(inputs, False)
        param_keys: dict[int, int | None] = {
            key: None for p in state.params if (key := storage_key(p))
        }
        input_keys = {key for t in fixed if (key := storage_key(t))}
        watch = _Watcher(_Run(cuts=cuts, read=float), param_keys, input_keys)
        saved: list[tuple[int, int, int]] = []
        run, fwd, bwd_train, output = _flop_pass(module, fixed, cuts, watch=watch, saved=saved)
        names = list(run.passed)
        if watch.violation is not None:
            unit, origin, b = watch.violation
            source_text = "the network input" if origin < 0 else f"unit {names[origin]!r}"
            raise ValueError(
                f"the blocks do not split the network cleanly: unit {names[unit]!r} reads a "
                f"tensor from {source_text} that is not the output of block {names[b]!r} "
                "(a skip connection across the cut?); name blocks that enclose it"
            )
        outputs = [*run.outputs[:-1], output]
        for name, tensor in zip(names, outputs, strict=True):
            if tensor.dim() == 0 or tensor.shape[0] != batch:
                raise ValueError(
                    f"block {name!r} outputs shape {tuple(tensor.shape)}: per-sample sizes "
                    f"need the batch ({batch}) as the first dimension"
                )
        out_bytes = [t.numel() * t.element_size() for t in outputs]
        del outputs, output, run
        # 2. input gradients only (parameters frozen); 3. both
        state.set(False)
        _, _, bwd_act, _ = _flop_pass(module, _with_input_grad(inputs, True), cuts)
        state.set(True)
        _, _, bwd_both, _ = _flop_pass(module, _with_input_grad(inputs, True), cuts)
        times = None
        if measure:
            times = _measure(module, fixed, cuts, repeats=repeats, warmup=warmup)
    finally:
        state.restore()

    count = len(names)
    first: list[int] = [0] * count
    last: list[int] = [0] * count
    owner_first: dict[int, tuple[int, int]] = {}
    owner_last: dict[int, tuple[int, int]] = {}
    for unit, key, size in saved:
        if key in persistent:
            continue
        owner_first.setdefault(key, (unit, size))
        owner_last[key] = (unit, size)
    for key, (unit, size) in owner_first.items():
        if key not in input_keys:
            first[unit] += size
    for unit, size in owner_last.values():
        last[unit] += size

    by_key: dict[int, list[tuple[str, int]]] = {}  # storage -> (name, bytes) of its parameters
    for name, p in module.named_parameters():
        if key := storage_key(p):
            by_key.setdefault(key, []).append((name, p.numel() * p.element_size()))
    param_bytes = [0] * count
    param_names: list[list[str]] = [[] for _ in range(count)]
    unused: list[str] = []
    for key, owner in param_keys.items():
        entries = by_key.get(key, [])
        if owner is None:
            unused.extend(name for name, _ in entries)
            continue
        param_names[owner].extend(name for name, _ in entries)
        param_bytes[owner] += sum(size for _, size in entries)
    notes = []
    if unused:
        notes.append(f"parameters never used in the forward pass (not counted): {sorted(unused)}")

    input_bytes = sum(t.numel() * t.element_size() for t in inputs) / batch
    in_bytes = [input_bytes] + [b / batch for b in out_bytes[:-1]]
    units = tuple(
        UnitProfile(
            name=names[k],
            fwd_flops=fwd[k] / batch,
            bwd_flops=bwd_train[k] / batch,
            bwd_weight_flops=(bwd_both[k] - bwd_act[k]) / batch,
            bwd_act_flops=bwd_act[k] / batch,
            param_bytes=float(param_bytes[k]),
            in_bytes=in_bytes[k],
            out_bytes=out_bytes[k] / batch,
            saved_act_bytes=first[k] / batch,
            saved_suffix_bytes=last[k] / batch,
            param_names=tuple(param_names[k]),
        )
        for k in range(count)
    )
    result = LayerProfile(
        units=units,
        batch_size=batch,
        input_bytes=input_bytes,
        source=source,
        torch_version=torch.__version__,
        notes=tuple(notes),
    )
    if times is not None:
        result = result.with_times(*times, repeats=repeats)
    return result


def time_pass(
    module: nn.Module, inputs: tuple[torch.Tensor, ...], cuts: dict[nn.Module, str]
) -> tuple[list[float], list[float]]:
    """One timed training pass (gradients cleared first): per-unit forward and backward wall
    times [s per mini-batch]. The caller sets the mode and ``requires_grad`` flags."""
    for p in module.parameters():
        p.grad = None
    _, fwd, bwd, _ = run_once(module, inputs, cuts, time.perf_counter)
    return fwd, bwd


def medians(samples: Sequence[Sequence[float]]) -> list[float]:
    """Column-wise medians of equally long rows."""
    return [statistics.median(column) for column in zip(*samples, strict=True)]


def _measure(
    module: nn.Module,
    inputs: tuple[torch.Tensor, ...],
    cuts: dict[nn.Module, str],
    *,
    repeats: int,
    warmup: int,
) -> tuple[list[float], list[float]]:
    """Median per-unit forward and backward wall times [s per mini-batch] of ``repeats``
    training passes (after ``warmup`` untimed ones), parameters trainable, input fixed."""
    runs = [time_pass(module, inputs, cuts) for _ in range(warmup + repeats)][warmup:]
    return medians([fwd for fwd, _ in runs]), medians([bwd for _, bwd in runs])
