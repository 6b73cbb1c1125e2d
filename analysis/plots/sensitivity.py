"""Sensitivity figures: tornado chart, elasticity bars, one-at-a-time curves, trade-off fronts.

Each function draws a DataFrame of :mod:`edgeopt.analysis.sensitivity` onto a
:class:`matplotlib.figure.Figure` built without ``pyplot`` (headless-safe, see
:mod:`.results`). The objective is drawn in the model's objective unit (EdgeSplit: seconds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from edgeopt.analysis.plots.axes import figure_and_axes

HEIGHT_PER_BAR = 0.45
"""Figure height per horizontal bar [inch]."""


def _bar_figure(count: int, ax: Axes | None = None) -> tuple[Figure, Axes]:
    return figure_and_axes(ax, (7.0, max(2.5, HEIGHT_PER_BAR * count + 1.5)))


def plot_tornado(data: pd.DataFrame, title: str | None = None, ax=None) -> Figure:
    """Tornado chart of :func:`~edgeopt.analysis.sensitivity.tornado_data`.

    One row per parameter, the largest ``swing`` on top; two horizontal bars start at the
    base objective J(p) (vertical line) and end at J(p (1 - x)) and J(p (1 + x)), so each bar's
    width is ``change_low`` or ``change_high``. Invalid sides (NaN) are left out. ``ax``:
    draw on these axes (default: a new figure).
    """
    rows = data.sort_values("swing", ascending=False, kind="stable", na_position="last").iloc[::-1]
    fig, ax = _bar_figure(len(rows), ax)
    base = float(data["objective"].iloc[0]) if len(data) else 0.0
    percent = 100 * data.attrs.get("fraction", float("nan"))
    positions = np.arange(len(rows))
    for key, label, color in (("change_low", f"-{percent:g} %", "C0"),
                              ("change_high", f"+{percent:g} %", "C1")):
        drawn = rows[key].notna().to_numpy()
        ax.barh(positions[drawn], rows[key].to_numpy()[drawn], left=base, height=0.6,
                color=color, alpha=0.8, label=label)
    ax.axvline(base, color="0.2", linewidth=1)
    ax.set_yticks(positions, rows["param"])
    ax.set_ylabel("parameter (field path)")
    ax.set_xlabel("optimal objective [the model's objective unit]")
    ax.legend(loc="lower right")
    ax.set_title(title or f"tornado: optimal objective at each parameter -/+{percent:g} %")
    return fig


def plot_elasticities(frame: pd.DataFrame, title: str | None = None, ax=None) -> Figure:
    """Bars of the ``elasticity`` (dJ/dp * p / J, dimensionless) per parameter of
    :func:`~edgeopt.analysis.sensitivity.local_sensitivity`, largest magnitude on top;
    parameters at a kink are marked with '(kink)'. ``ax``: draw on these axes."""
    rows = frame.assign(size=frame["elasticity"].abs()).sort_values("size", kind="stable")
    fig, ax = _bar_figure(len(rows), ax)
    positions = np.arange(len(rows))
    colors = ["C3" if value < 0 else "C2" for value in rows["elasticity"]]
    ax.barh(positions, rows["elasticity"], height=0.6, color=colors)
    labels = [f"{p} (kink)" if kink else p for p, kink in zip(rows["param"], rows["kink"])]
    ax.set_yticks(positions, labels)
    ax.set_ylabel("parameter (field path)")
    ax.axvline(0.0, color="0.2", linewidth=1)
    ax.set_xlabel("elasticity  (dJ/J) / (dp/p)  [-]")
    ax.set_title(title or "elasticity of the optimal objective")
    return fig


def plot_one_at_a_time(frame: pd.DataFrame, quantity: str = "objective",
                       logx: bool = False, ax=None, title: str | None = None) -> Figure:
    """J (or ``quantity``) against the parameter of
    :func:`~edgeopt.analysis.sensitivity.one_at_a_time`; dotted vertical lines mark where the
    optimal integer decisions (``frame.attrs['decisions']``) change between two values.
    ``ax``: draw on these axes (default: a new figure)."""
    param = frame.attrs["param"]
    rows = frame.sort_values(param)
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    ax.plot(rows[param], rows[quantity], marker="o", markersize=4, label=quantity)
    decisions = rows[frame.attrs.get("decisions", [])].apply(tuple, axis=1).to_list()
    values = rows[param].to_numpy()
    for k in range(1, len(values)):
        if decisions[k] != decisions[k - 1]:
            ax.axvline(0.5 * (values[k - 1] + values[k]), color="0.5", linestyle=":")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(param)
    ax.set_ylabel(quantity)
    ax.set_title(title or f"{quantity} against {param}")
    return fig


def plot_front(front: pd.DataFrame, points: pd.DataFrame | None = None, ax=None,
               title: str | None = None) -> Figure:
    """The trade-off front of :func:`~edgeopt.analysis.sensitivity.tradeoff_front` (budget on
    x, the minimised quantity on y) as a line with markers; ``points`` (e.g. the
    :func:`~edgeopt.analysis.sensitivity.one_at_a_time` frame) adds every evaluated point in
    grey. ``ax``: draw on these axes (default: a new figure)."""
    budget, quantity = front.attrs["param"], front.attrs["quantity"]
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    if points is not None:
        ax.scatter(points[budget], points[quantity], color="0.7", s=16, label="evaluated")
    ax.plot(front[budget], front[quantity], marker="o", color="C0", label="non-dominated")
    ax.set_xlabel(budget)
    ax.set_ylabel(quantity)
    ax.set_title(title or f"trade-off: least {quantity} for each {budget}")
    ax.legend(loc="best")
    return fig
