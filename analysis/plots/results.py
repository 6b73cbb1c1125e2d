"""Figures of spec §8: per-device time breakdown, chosen cuts, speed-ups over baselines.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot``), so it
renders headless with the Agg canvas, never opens a window and leaves the caller's
backend alone; a notebook shows the returned figure, a script calls ``fig.savefig(path)``.
The functions are generic over :class:`~edgeopt.solvers.Result`: they read its
``breakdown`` (per-device seconds), ``device_names`` and per-device ``solution`` arrays.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from edgeopt.analysis.plots.axes import figure_and_axes
from edgeopt.solvers import Result

COMPONENT_LABELS = {
    "device_s": "device compute",
    "server_s": "server compute",
    "comm_s": "communication",
}
"""Legend labels of the known breakdown keys; other keys are shown by name."""

WIDTH_PER_DEVICE = 0.45
"""Figure width per plotted device [inch]."""


def plot_breakdown(results: dict[str, Result], title: str | None = None, axes=None) -> Figure:
    """Stacked bars per device of the per-round seconds in each Result's ``breakdown``.

    One panel per entry of ``results`` (label -> Result), side by side with a shared time
    axis, e.g. ``{"EdgeSplit (exact)": r1, "best common cut": r2}``. Bars stack the
    components (device compute, server compute, communication) in seconds per round. A
    Result without a point (infeasible, error) gets an empty panel saying so. ``axes``: one
    matplotlib Axes per entry to draw on (panels of the caller's figure); default a new figure.
    """
    components = list(dict.fromkeys(k for r in results.values() for k in r.breakdown))
    colors = {key: f"C{index}" for index, key in enumerate(components)}
    devices = max((len(r.device_names) for r in results.values()), default=1)
    own_figure = axes is None
    if own_figure:
        fig = Figure(figsize=(max(4.0, WIDTH_PER_DEVICE * devices) * len(results) + 1.0, 4.0),
                     layout="constrained")
        axes = fig.subplots(1, len(results), sharey=True, squeeze=False)[0]
    else:
        axes = list(axes)
        if len(axes) != len(results):
            raise ValueError(f"axes: {len(axes)} given, one per result needed ({len(results)})")
        fig = axes[0].figure
    for ax, (label, result) in zip(axes, results.items()):
        if not result.breakdown:
            ax.text(0.5, 0.5, f"no point ({result.status.value})", ha="center",
                    transform=ax.transAxes)
            ax.set_title(label)
            ax.set_xticks([])
            continue
        positions = np.arange(len(result.device_names))
        bottom = np.zeros(len(positions))
        for key in components:
            values = np.asarray(result.breakdown.get(key, np.zeros(len(positions))), dtype=float)
            ax.bar(positions, values, bottom=bottom, color=colors[key],
                   label=COMPONENT_LABELS.get(key, key))
            bottom += values
        ax.set_xticks(positions, result.device_names, rotation=60, ha="right")
        ax.set_title(f"{label}\n{result.method}: objective {result.objective:.4g}")
    axes[0].set_ylabel("time per round [s]")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles and own_figure:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    elif handles:
        axes[0].legend(handles, labels, loc="best", fontsize="small")
    if own_figure or title:  # the caller's figure keeps its own title unless one is given
        fig.suptitle(title or "time per round by device and component")
    return fig


def device_class(name: str) -> str:
    """The class part of a device name ``<class>-<index>`` (the whole name otherwise)."""
    head, _, tail = name.rpartition("-")
    return head if head and tail.isdigit() else name


def cuts_by_class(results: dict[str, Result], key: str = "cuts") -> pd.DataFrame:
    """The cut chosen per device class (spec §8 item 3): one column per Result label.

    ``key`` names a per-device integer array of ``Result.solution``. Devices are grouped by
    :func:`device_class`; a cell lists the distinct cuts of that class's devices ("2" or
    "7, 13"), and is empty where a Result has no point. Pass Results of a sweep
    (``{"B = 5 MHz": r1, ...}``) to see how the cuts move.
    """
    columns = {}
    for label, result in results.items():
        values = result.solution.get(key) or []
        chosen: dict[str, set[int]] = {}
        for name, value in zip(result.device_names, values):
            chosen.setdefault(device_class(name), set()).add(int(value))
        columns[label] = {name: ", ".join(map(str, sorted(cuts))) for name, cuts in chosen.items()}
    frame = pd.DataFrame(columns).fillna("")
    frame.index.name = "device class"
    return frame


def plot_cuts(results: dict[str, Result], key: str = "cuts", ax=None,
              title: str | None = None) -> Figure:
    """The cut (last device-side layer, 1-based) of every device, one marker series per Result.

    Device classes (see :func:`device_class`) are shaded alternately so the pattern "weak
    devices cut early, strong ones late" is visible at a glance. ``ax``: draw on these axes
    (default: a new figure).
    """
    names: list[str] = list(dict.fromkeys(n for r in results.values() for n in r.device_names))
    fig, ax = figure_and_axes(ax, (max(5.0, WIDTH_PER_DEVICE * len(names) + 2.0), 3.5))
    positions = {name: index for index, name in enumerate(names)}
    classes = [device_class(n) for n in names]
    starts = [i for i, c in enumerate(classes) if i == 0 or c != classes[i - 1]]
    for number, start in enumerate(starts):
        if number % 2:
            end = starts[number + 1] if number + 1 < len(starts) else len(names)
            ax.axvspan(start - 0.5, end - 0.5, color="0.92", zorder=0)
    markers = "os^Dvx+*"
    for index, (label, result) in enumerate(results.items()):
        values = result.solution.get(key) or []
        x = [positions[n] for n in result.device_names[: len(values)]]
        ax.plot(x, values, linestyle="none", marker=markers[index % len(markers)], label=label,
                markersize=max(4, 8 - index), alpha=0.85)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_ylabel(f"{key} (last device layer) [-]")
    ax.set_xlabel("device")
    ax.set_title(title or f"{key} per device")
    ax.legend(loc="best")
    return fig


def plot_speedups(table: pd.DataFrame, ax=None, title: str | None = None) -> Figure:
    """Bars of the speed-up of the exact plan over each other method of a speed-up table.

    ``table`` is :func:`edgeopt.analysis.compare.speedup_table` output, possibly several
    instances concatenated (grouped by its ``instance`` column). Speed-up = J(method) /
    J(exact) [-]; a dashed line marks 1 (no gain); 'infeasible' entries get a label
    instead of a bar. ``ax``: draw on these axes (default: a new figure).
    """
    rows = table[table["kind"] != "exact"]
    methods = list(dict.fromkeys(rows["method"]))
    instances = list(dict.fromkeys(rows["instance"]))
    width = 0.8 / len(instances)
    fig, ax = figure_and_axes(ax, (max(5.0, 1.2 * len(methods) + 1.5), 4.0))
    for index, instance in enumerate(instances):
        part = rows[rows["instance"] == instance].set_index("method")
        label = instance
        for position, method in enumerate(methods):
            x = position + (index - (len(instances) - 1) / 2) * width
            value = part["speedup"].get(method)
            if isinstance(value, str) or value is None:
                ax.text(x, 1.0, value or "-", rotation=90, ha="center", va="bottom", fontsize=8)
                continue
            bar = ax.bar(x, value, width=width, color=f"C{index}", label=label)
            ax.bar_label(bar, fmt="%.2f×", fontsize=8)
            label = None
    ax.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
    ax.set_xticks(range(len(methods)), methods, rotation=20, ha="right")
    ax.set_ylabel("speed-up of the exact plan [×]")
    ax.set_xlabel("method")
    ax.set_title(title or "speed-up of the exact plan over each method")
    if len(instances) > 1:
        ax.legend(loc="best")
    return fig
