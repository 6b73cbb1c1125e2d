"""Peak memory of one real training step on the CPU, by category (imports torch).

What is measured: the bytes of every live tensor storage, tracked op by op with a
``TorchDispatchMode``. A storage is counted from the operation that creates it until it is
freed (a finalizer on the storage; PyTorch keeps a storage's Python object alive as long as
the storage itself, for example while autograd holds it for the backward pass). Views and
in-place results share their input's storage and are not counted again. Parameters,
buffers, the input batch and existing optimizer state are registered before the step.

At the peak, every live storage is put in one category, the terms of the memory models:

* ``weights``: parameters and buffers (BatchNorm running statistics);
* ``gradients``: the ``.grad`` of the parameters;
* ``optimizer``: optimizer state (momentum, Adam moments);
* ``saved``: tensors autograd keeps for the backward pass (``saved_tensors_hooks``);
* ``input``: the input batch and the labels;
* ``other``: everything else: forward intermediates not kept for backward, activation
  gradients during the backward pass, the loss, optimizer temporaries.

Not seen: scratch memory inside one ATen kernel (e.g. a convolution's workspace), allocator
caching and fragmentation, the Python interpreter and libraries. This is the memory the
models describe (weights, gradients, optimizer state, saved activations, a transient buffer);
process RSS would add a constant of several hundred MiB of libraries and allocator slack.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from edgeopt.models.profiles.tracing import (
    quiet_native_stderr,
    storage_bytes,
    storage_key,
    tensors_in,
)

CATEGORIES = ("weights", "gradients", "optimizer", "saved", "input", "other")
"""Categories of :class:`MemoryPeak.by_category`, in this order."""


@dataclass(frozen=True)
class MemoryPeak:
    """Peak of live tensor bytes during one training step, and what was live then.

    ``peak_bytes`` [byte]; ``by_category`` [byte] sums to it; ``phase`` is ``forward``,
    ``backward`` or ``step`` (optimizer); ``saved_bytes`` is everything autograd kept
    at the end of the forward pass [byte].
    """

    peak_bytes: int
    by_category: dict[str, int]
    phase: str
    saved_bytes: int


class _Tracker(TorchDispatchMode):
    """Live storages and their peak (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[int, int]] = {}  # storage address -> (allocation id, bytes)
        self.sizes: dict[int, int] = {}  # allocation id -> bytes
        self.known: dict[int, str] = {}  # allocation id -> category fixed at registration
        self.current = 0
        self.peak = 0
        self.peak_ids: frozenset[int] = frozenset()
        self.phase = self.peak_phase = "forward"

    def register(self, tensors: Iterable[torch.Tensor], category: str) -> None:
        """Count existing tensors (their storages, once) under a fixed category."""
        for tensor in tensors:
            key = storage_key(tensor)
            if key and key not in self.live:
                ident = self._add(key, storage_bytes(tensor), None)
                self.known[ident] = category

    def ident(self, tensor: torch.Tensor) -> int | None:
        """Allocation id of a live tensor's storage."""
        key = storage_key(tensor)
        entry = self.live.get(key) if key else None
        return entry[0] if entry else None

    def _add(self, key: int, size: int, storage: Any) -> int:
        ident = len(self.sizes)
        self.sizes[ident] = size
        self.live[key] = (ident, size)
        self.current += size
        if storage is not None:
            weakref.finalize(storage, self._free, key, ident)
        if self.current > self.peak:
            self.peak = self.current
            self.peak_ids = frozenset(entry[0] for entry in self.live.values())
            self.peak_phase = self.phase
        return ident

    def _free(self, key: int, ident: int) -> None:
        entry = self.live.get(key)
        if entry and entry[0] == ident:
            del self.live[key]
            self.current -= entry[1]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        read = {key for t in tensors_in((args, kwargs)) if (key := storage_key(t))}
        out = func(*args, **kwargs)
        for tensor in tensors_in(out):
            key = storage_key(tensor)
            if not key or key in read:  # no storage, a view, or an in-place result
                continue
            entry = self.live.get(key)
            if entry is not None:  # a freed storage whose finalizer has not run yet
                self._free(key, entry[0])
            self._add(key, storage_bytes(tensor), tensor.untyped_storage())
        return out


OPTIMIZERS = {"sgd": 1, "momentum": 2, "adam": 3}
"""Optimizer name -> optimizer_state_factor kappa (weight-sized buffers besides the weights)."""


def make_optimizer(name: str, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """``sgd`` (kappa 1: gradients only), ``momentum`` (kappa 2) or ``adam`` (kappa 3)."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    raise ValueError(f"optimizer = {name!r}: must be one of {', '.join(OPTIMIZERS)}")


def prepare_step(
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    trainable: set[str] | None = None,
    optimizer: str = "momentum",
    warmup_samples: int = 2,
) -> tuple[torch.optim.Optimizer, list[nn.Parameter]]:
    """Freeze all but ``trainable`` (parameter names; default all), build the optimizer and
    run a warm-up step on the first ``warmup_samples`` samples, so that the next step is a
    steady-state one: gradients ``None``, optimizer state present (its size does not depend
    on the batch). Returns the optimizer and the trainable parameters."""
    params = dict(module.named_parameters())
    chosen = set(params) if trainable is None else set(trainable)
    unknown = sorted(chosen - set(params))
    if unknown:
        raise ValueError(f"trainable names unknown parameters: {unknown[:5]}")
    for name, p in params.items():
        p.requires_grad_(name in chosen)
        p.grad = None
    updated = [p for name, p in params.items() if name in chosen]
    opt = make_optimizer(optimizer, updated)
    module.train()
    if updated:
        nn.functional.cross_entropy(module(inputs[:warmup_samples]), targets[:warmup_samples]).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return opt, updated


def training_step_memory(
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    trainable: set[str] | None = None,
    optimizer: str = "momentum",
    warmup_samples: int = 2,
) -> MemoryPeak:
    """Peak live tensor memory of one steady-state cross-entropy training step of
    ``module`` (trained in place; see :func:`prepare_step`). Frozen parameters get
    ``requires_grad = False``, so autograd keeps nothing below the first trainable layer."""
    opt, updated = prepare_step(module, inputs, targets, trainable, optimizer, warmup_samples)
    tracker = _Tracker()
    tracker.register([*module.parameters(), *module.buffers()], "weights")
    tracker.register([inputs, targets], "input")
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    tracker.register(state, "optimizer")
    saved_ids: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        ident = tracker.ident(tensor)
        if ident is not None and ident not in tracker.known:
            saved_ids.add(ident)
        return tensor

    with tracker:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = nn.functional.cross_entropy(module(inputs), targets)
        saved_bytes = sum(size for ident, size in tracker.live.values() if ident in saved_ids)
        tracker.phase = "backward"
        if loss.requires_grad:
            loss.backward()
        grad_ids = {tracker.ident(p.grad) for p in updated if p.grad is not None}
        tracker.phase = "step"
        opt.step()
        del loss
    by_category = dict.fromkeys(CATEGORIES, 0)
    for ident in tracker.peak_ids:
        if ident in tracker.known:
            category = tracker.known[ident]
        elif ident in grad_ids:
            category = "gradients"
        elif ident in saved_ids:
            category = "saved"
        else:
            category = "other"
        by_category[category] += tracker.sizes[ident]
    return MemoryPeak(
        peak_bytes=tracker.peak,
        by_category=by_category,
        phase=tracker.peak_phase,
        saved_bytes=saved_bytes,
    )



def allocator_step_peak(
    module: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    trainable: set[str] | None = None,
    optimizer: str = "momentum",
    warmup_samples: int = 2,
) -> int:
    """Peak bytes of the same step seen by the CPU allocator [byte], a cross-check of
    :func:`training_step_memory` that also sees memory allocated inside kernels.

    From ``torch.profiler``'s memory profile (``profile_memory=True``): every allocation
    and free of the step, plus the tensors that existed before it and were used in it.
    It uses the profiler's private ``_memory_profile`` (the data behind the deprecated
    ``export_memory_timeline``) and is slower than the tensor tracker.
    """
    from torch.profiler import ProfilerActivity, profile

    opt, _ = prepare_step(module, inputs, targets, trainable, optimizer, warmup_samples)
    with quiet_native_stderr(), profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        loss = nn.functional.cross_entropy(module(inputs), targets)
        if loss.requires_grad:
            loss.backward()
        opt.step()
        del loss
    current = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action.name in ("PREEXISTING", "CREATE"):
            current += size
        elif action.name == "DESTROY":
            current -= size
        peak = max(peak, current)
    return peak
