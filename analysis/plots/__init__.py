"""Figures used by notebooks and commands; every function returns a matplotlib ``Figure``
built without ``pyplot`` (headless-safe), or draws on the caller's axes given as ``ax=``
(``axes=``, one per panel, for :func:`plot_breakdown`) and returns their figure. Each has a
title (overridable with ``title=``) and labelled axes. Tests check the data drawn, not pixels.

* :mod:`.results`: per-device breakdowns, cuts per device class, speed-ups (one model, many methods).
* :mod:`.sensitivity`: tornado chart, elasticities, one-at-a-time curves, trade-off fronts.
* :mod:`.profiles`: Dolan-More performance profiles of a benchmark.
* :mod:`.sweeps`: heat maps and curves of a sweep's objective.
* :mod:`.axes`: where a figure function draws (the caller's axes or a new figure).
"""

from edgeopt.analysis.plots.profiles import plot_performance_profile
from edgeopt.analysis.plots.results import (
    COMPONENT_LABELS,
    cuts_by_class,
    device_class,
    plot_breakdown,
    plot_cuts,
    plot_speedups,
)
from edgeopt.analysis.plots.sensitivity import (
    plot_elasticities,
    plot_front,
    plot_one_at_a_time,
    plot_tornado,
)
from edgeopt.analysis.plots.sweeps import plot_curve, plot_heatmap, sweep_grid

__all__ = [
    "COMPONENT_LABELS", "cuts_by_class", "device_class", "plot_breakdown", "plot_cuts", "plot_speedups",
    "plot_performance_profile", "plot_curve", "plot_heatmap", "sweep_grid", "plot_elasticities", "plot_front", "plot_one_at_a_time", "plot_tornado",
]
