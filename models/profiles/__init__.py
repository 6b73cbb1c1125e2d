"""Layer profiles of your own network, for the EdgeSplit and TinyFEL instance formats.

:func:`from_torch` cuts a PyTorch module at the blocks you name and measures, per unit and
per sample, everything the canonical layer lists need: forward FLOPs, backward FLOPs
(weight and input gradients), parameter bytes, input / output / saved-activation bytes, and
optionally forward and backward wall times on this machine. The result, a
:class:`LayerProfile`, turns into canonical layer lists with
:meth:`LayerProfile.edgesplit_layers` and :meth:`LayerProfile.tinyfel_layers`.

Importing this package does not import PyTorch (an optional dependency, the
``edgeopt[torch]`` extra); :func:`from_torch` imports it and raises
:class:`TorchUnavailable` when it is missing.

    >>> from edgeopt.models.profiles import LayerProfile, UnitProfile
    >>> unit = UnitProfile("fc", fwd_flops=20.0, bwd_flops=20.0, bwd_weight_flops=20.0,
    ...                    bwd_act_flops=20.0, param_bytes=44.0, in_bytes=8.0, out_bytes=40.0,
    ...                    saved_act_bytes=0.0, saved_suffix_bytes=8.0)
    >>> LayerProfile((unit,), batch_size=1, input_bytes=8.0).tinyfel_layers()[0]["act_factor"]
    1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgeopt.models.profiles.table import LayerProfile, UnitProfile

__all__ = ["LayerProfile", "TorchUnavailable", "UnitProfile", "from_torch", "require_torch"]

TORCH_HINT = "install the optional extra: pip install 'edgeopt[torch]'"
"""How to get PyTorch, quoted by every error about it missing."""


class TorchUnavailable(ImportError):
    """PyTorch, needed by the requested function, is not installed."""


def require_torch(what: str = "this function") -> Any:
    """The ``torch`` module, or :class:`TorchUnavailable` naming the ``edgeopt[torch]`` extra."""
    try:
        import torch
    except ImportError as error:
        raise TorchUnavailable(f"{what} needs PyTorch, which is not installed; {TORCH_HINT}") from error
    return torch


def from_torch(
    module: Any,
    example_input: Any,
    blocks: Sequence[str] | None = None,
    *,
    measure: bool = False,
    repeats: int = 5,
    warmup: int = 1,
    source: str | None = None,
) -> LayerProfile:
    """Profile ``module`` on ``example_input``, cut after each block of ``blocks``.

    ``example_input``: a tensor (or tuple of tensors, passed as positional arguments) whose
    first dimension is the batch; per-sample numbers are per-batch counts divided by it
    (use a batch of at least 2 with BatchNorm). ``blocks``: qualified submodule names
    (``"layer1.0"``, ``"features.6"``), each called exactly once and returning one tensor;
    unit k is the work after block k-1 up to the end of block k, so the units are listed in
    execution order, ops before the first block join the first unit and ops after the last
    block join the last. Default: the top-level children that run. The blocks must split
    the network cleanly (no tensor may bypass a cut), else ``ValueError`` names the unit.

    The module is profiled in training mode with three forward + backward passes (all
    parameters trainable with a fixed input, as in training; parameters frozen with an
    input gradient; both) under ``FlopCounterMode``; its mode, ``requires_grad`` flags,
    ``.grad`` and buffers are restored afterwards. Parameter bytes count parameters (not
    buffers) by the unit that first uses them (a parameter shared by two units counts in the
    first). Input-gradient work is measured with a gradient on the floating-point inputs (an
    integer input, e.g. token ids, has none). ``measure=True`` adds the median of
    ``repeats`` timed training passes (after ``warmup``) per unit, forward and backward
    [s per mini-batch], on the current thread settings.
    """
    torch = require_torch("from_torch")
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module is a {type(module).__name__}, not a torch.nn.Module")
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("example_input must be a tensor or a tuple of tensors")
    if inputs[0].dim() == 0 or inputs[0].shape[0] < 1:
        raise ValueError(
            f"example_input has shape {tuple(inputs[0].shape)}: the first dimension must be "
            "a batch of >= 1 samples"
        )
    for name, value, minimum in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} = {value!r}: must be an integer >= {minimum}")

    from edgeopt.models.profiles.tracing import profile

    return profile(
        module,
        inputs,
        blocks,
        measure=measure,
        repeats=repeats,
        warmup=warmup,
        source=source,
    )
