"""Measured per-layer training times: the shared pieces of the ``measured`` objects.

EdgeSplit and TinyFEL devices (and the EdgeSplit server) may carry a ``measured`` object
with one time per layer and training phase, in milliseconds per mini-batch of
``measured.batch_size`` samples (null: the instance's ``batch_size``), as an alternative to
``flops_per_s`` x FLOPs. The model scales a time linearly to the instance's mini-batch
(time per sample = ms / measured batch size), as the FLOP model does. Each model declares
which phases it reads; this module holds the entry type, the checks every ``measured``
object shares, and the conversion to seconds per iteration.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field, Strict

from edgeopt.models.validation import FieldProblem

Milliseconds = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
"""One measured time: a finite number >= 0 [ms]."""

MS_PER_S = 1000.0


def check_lengths(measured: Any, phases: Sequence[str]) -> None:
    """Every phase list of ``measured`` present has one value per name in ``measured.layers``;
    ``FieldProblem`` at the first list that does not."""
    count = len(measured.layers)
    for phase in phases:
        values = getattr(measured, phase)
        if values is not None and len(values) != count:
            raise FieldProblem(
                (phase,),
                values,
                f"has {len(values)} value(s); needs one per layer of measured.layers ({count})",
            )


def check_layer_names(measured: Any, layer_names: Sequence[str], loc: tuple[Any, ...]) -> None:
    """``measured.layers`` names the instance's layers in their order; ``FieldProblem`` at
    ``loc + ('layers',)`` naming the missing, unknown or misplaced layers."""
    given = list(measured.layers)
    wanted = list(layer_names)
    if given == wanted:
        return
    missing = [name for name in wanted if name not in given]
    unknown = [name for name in given if name not in wanted]
    parts = []
    if missing:
        parts.append("missing " + ", ".join(repr(name) for name in missing))
    for name in unknown:
        close = difflib.get_close_matches(name, wanted, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        parts.append(f"unknown layer {name!r}{hint}")
    repeated = sorted({name for name in given if given.count(name) > 1})
    if repeated:
        parts.append("repeated " + ", ".join(repr(name) for name in repeated))
    if not parts:
        parts.append(f"order differs: the instance has {wanted}")
    raise FieldProblem(
        (*loc, "layers"),
        given,
        "must name the instance's layers in execution order; " + "; ".join(parts),
    )


def seconds_per_iteration(measured: Any, phases: Sequence[str], batch_size: int) -> np.ndarray:
    """Per-layer time [s] of one iteration at the instance's ``batch_size``: the sum of the
    given ``phases`` (absent ones count 0), scaled by batch_size / measured.batch_size."""
    total = np.zeros(len(measured.layers))
    for phase in phases:
        values = getattr(measured, phase)
        if values is not None:
            total = total + np.asarray(values, dtype=float)
    return total * (batch_size / (measured.batch_size or batch_size)) / MS_PER_S


def seconds_per_iteration_loop(measured: Any, phases: Sequence[str], batch_size: int) -> list[float]:
    """:func:`seconds_per_iteration` with plain Python floats (for the evaluators, which share
    no array code with the option tables)."""
    ratio = batch_size / (measured.batch_size or batch_size)
    rows = [getattr(measured, phase) for phase in phases if getattr(measured, phase) is not None]
    return [math.fsum(row[index] for row in rows) * ratio / MS_PER_S for index in range(len(measured.layers))]
