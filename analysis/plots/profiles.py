"""Dolan-More performance profiles of a benchmark (see :func:`edgeopt.analysis.bench.bench`).

Built as a :class:`matplotlib.figure.Figure` without ``pyplot`` (headless-safe); a notebook
shows the figure, a script calls ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from edgeopt.analysis.bench import performance_profile
from edgeopt.analysis.plots.axes import figure_and_axes

METRIC_LABELS = {"time": "wall time", "objective": "objective"}
"""Axis wording of the known metrics; other metrics are shown by column name."""


def plot_performance_profile(
    frame: pd.DataFrame, metric: str = "time", title: str | None = None, ax=None
) -> Figure:
    """Step plot of rho_s(tau) for every method of a :func:`bench` table.

    x: tau, the ratio to the best method on an instance (log2 axis, from 1 to twice the
    largest finite ratio); y: the fraction of instances the method solved within tau. A
    method that never solves an instance stays at 0. The plotted data is
    ``performance_profile(frame, metric)``. ``ax``: draw on these axes (default: a new figure).
    """
    profile = performance_profile(frame, metric)
    taus = profile.index.to_numpy()
    right = 2.0 * float(taus.max())
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    for method in profile.columns:
        steps = profile[method].to_numpy()
        ax.step(np.append(taus, right), np.append(steps, steps[-1]), where="post", label=method)
    ax.set_xscale("log", base=2)
    ax.set_xlim(1.0, right)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"tau: {METRIC_LABELS.get(metric, metric)} / best on the instance (log2)")
    ax.set_ylabel("fraction of instances solved within tau")
    ax.set_title(title or f"performance profile ({frame['instance'].nunique()} instances)")
    ax.legend(loc="lower right", fontsize="small")
    ax.grid(True, which="both", alpha=0.3)
    return fig
