"""Bring your own testbed: measured per-layer times in EdgeSplit and TinyFEL instances.

* :mod:`.measured`: what the models' ``measured`` objects share (validation, the conversion
  to seconds per iteration).
* :mod:`.tables`: :func:`from_tables` builds a complete instance from a long times table
  (``device, layer, fwd_ms, bwd_ms, update_ms``), a layer table (``layer,
  activation_bytes, param_bytes``) and the fields no table holds; :func:`read_workbook`
  reads an Excel workbook with one sheet per device and a memory sheet; :func:`example_tables`
  are the tables shipped with the package (VGG16 measured on this project's CPU).
* :mod:`.measure`: measure a PyTorch network's per-layer times here (the shipped tables).
* :mod:`.compare`: the FLOP model fitted to a measurement, and the measured plan against it.

The table functions are imported on first use (they need pandas; the models do not).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TableError", "example_tables", "from_tables", "read_table", "read_workbook"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgeopt.models.testbed import tables

        return getattr(tables, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
