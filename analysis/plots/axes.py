"""Where a figure function draws: the caller's axes (``ax=``) or a new headless figure."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def figure_and_axes(ax: Any | None, figsize: tuple[float, float]) -> tuple[Figure, Any]:
    """(figure, axes) to draw on: ``ax`` and its figure when given (a panel of the caller's
    figure, e.g. from ``plt.subplots``), else a new constrained-layout :class:`Figure` of
    ``figsize`` inches built without ``pyplot``."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()
