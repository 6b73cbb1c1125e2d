"""Figures of sweep tables (:func:`edgeopt.analysis.sweep.sweep`): a heat map of a value over
a 2-D grid and one-parameter curves.

Functions build a :class:`matplotlib.figure.Figure` without ``pyplot`` (headless-safe). They
read only the table's columns (the swept keys, ``objective``, ``bound``, ``status``), so they
work for every model; values are in the model's objective unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from edgeopt.analysis.plots.axes import figure_and_axes


def sweep_grid(frame: pd.DataFrame, x: str, y: str, value: str = "objective") -> pd.DataFrame:
    """The table :func:`plot_heatmap` draws: ``value`` with one row per ``y`` and one column
    per ``x`` (both ascending); NaN where a point has no value (infeasible, error)."""
    for column in (x, y, value):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the sweep table: {list(frame.columns)}")
    if frame.duplicated([x, y]).any():
        raise ValueError(
            f"several rows share ({x}, {y}); select one value of the other keys first"
        )
    values = pd.to_numeric(frame[value], errors="coerce")
    table = frame.assign(**{value: values}).pivot(index=y, columns=x, values=value)
    return table.sort_index().sort_index(axis=1)


def plot_heatmap(
    frame: pd.DataFrame, x: str, y: str, value: str = "objective", title: str | None = None,
    ax=None,
) -> Figure:
    """Heat map of ``value`` over the grid of keys ``x`` (columns) and ``y`` (rows).

    Cells are equal-sized and labelled by the swept values, so linear and log grids read
    alike; points without a value are left blank. ``ax``: draw on these axes (default: a new
    figure).
    """
    table = sweep_grid(frame, x, y, value)
    fig, ax = figure_and_axes(
        ax, (1.0 + 0.7 * max(4, table.shape[1]), 1.0 + 0.5 * max(4, table.shape[0])))
    image = ax.imshow(np.ma.masked_invalid(table.to_numpy(dtype=float)), origin="lower",
                      aspect="auto", cmap="viridis")
    ax.set_xticks(range(table.shape[1]), [_label(v) for v in table.columns], rotation=45,
                  ha="right")
    ax.set_yticks(range(table.shape[0]), [_label(v) for v in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    fig.colorbar(image, ax=ax, label=value)
    ax.set_title(title or f"{value} over {x} x {y}")
    return fig


def plot_curve(
    frame: pd.DataFrame,
    x: str,
    value: str = "objective",
    by: str | None = None,
    log_x: bool = False,
    show_bound: bool = True,
    title: str | None = None,
    ax=None,
) -> Figure:
    """``value`` against key ``x``, one line per value of ``by`` (or a single line).

    With ``show_bound`` and a ``bound`` column, each line's proven bound is drawn dashed in
    the same colour. Points without a value leave a gap. ``ax``: draw on these axes (default:
    a new figure).
    """
    for column in (x, value, *([by] if by else [])):
        if column not in frame.columns:
            raise ValueError(f"column {column!r} is not in the sweep table: {list(frame.columns)}")
    if frame.duplicated([x, by] if by else [x]).any():
        raise ValueError(
            f"several rows share an {x} value on one line; select the other keys first"
        )
    fig, ax = figure_and_axes(ax, (6.0, 4.0))
    groups = frame.groupby(by, sort=True) if by else [(None, frame)]
    for index, (key, group) in enumerate(groups):
        group = group.sort_values(x)
        label = f"{by}={_label(key[0] if isinstance(key, tuple) else key)}" if by else value
        ax.plot(group[x], pd.to_numeric(group[value], errors="coerce"), marker="o",
                color=f"C{index}", label=label)
        if show_bound and "bound" in group and group["bound"].notna().any():
            ax.plot(group[x], pd.to_numeric(group["bound"], errors="coerce"), linestyle="--",
                    color=f"C{index}", label=f"{label} (bound)")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(value)
    ax.legend()
    ax.set_title(title or f"{value} against {x}")
    return fig


def _label(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
