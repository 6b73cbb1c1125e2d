"""Figures used by notebooks and commands; every function returns a matplotlib ``Figure``
built without ``pyplot`` (headless-safe). Tests check the data drawn, not pixels.

* :mod:`.results`: per-device breakdowns, cuts per device class, speed-ups (one model, many methods).
"""

from edgeopt.analysis.plots.results import (
    COMPONENT_LABELS,
    cuts_by_class,
    device_class,
    plot_breakdown,
    plot_cuts,
    plot_speedups,
)

__all__ = [
    "COMPONENT_LABELS", "cuts_by_class", "device_class", "plot_breakdown", "plot_cuts", "plot_speedups",
]
