"""Figures of verification reports (matplotlib): measured against bound, and the optimiser
against the baselines in simulation."""

from __future__ import annotations

import math

from edgeopt.analysis.verification.report import Report


def plot_bounds(reports: list[Report], ax=None):
    """Measured average squared gradient norm (seed mean, 3 standard errors as bars) against
    the model's bound, one point per bound check, log-log, with the line measured = bound
    (points must lie on or below it). Returns the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    low, high = math.inf, 0.0
    for report, marker in zip(reports, "os^vD"):
        checks = [c for c in report.checks if c.category == "bound"]
        bounds = [c.bound for c in checks]
        measured = [c.measured for c in checks]
        errors = [3 * (c.stderr or 0.0) for c in checks]
        failed = [c for c in checks if not c.passed]
        ax.errorbar(bounds, measured, yerr=errors, fmt=marker, ms=5, capsize=2, label=report.model)
        if failed:
            ax.plot([c.bound for c in failed], [c.measured for c in failed], "rx", ms=10)
        low = min([low, *bounds, *measured])
        high = max([high, *bounds, *measured])
    line = [low / 1.5, high * 1.5]
    ax.plot(line, line, "k--", lw=1, label="measured = bound")
    ax.set(xscale="log", yscale="log", xlabel="bound (model)", ylabel="measured (simulation)",
           title="average squared gradient norm: measured vs bound")
    ax.legend(fontsize=8)
    return ax


def plot_comparison(report: Report, ax=None):
    """Simulated time to the target of the exact method and each baseline (bars; a missing
    bar is an infeasible baseline, an arrow one that never reached the target). Returns the
    axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    checks = [c for c in report.checks if c.category == "comparison" and c.measured is not None]
    if not checks:
        raise ValueError(f"the {report.model} report has no comparison with numbers")
    labels = ["exact"] + [c.name.split(" vs ")[-1].removeprefix("baseline_") for c in checks]
    times = [checks[0].measured] + [c.bound for c in checks]
    finite = [t for t in times if math.isfinite(t)]
    cap = 1.1 * max(finite) if finite else 1.0
    heights = [t if math.isfinite(t) else cap for t in times]
    colours = ["tab:green"] + ["tab:gray" if c.passed else "tab:red" for c in checks]
    ax.bar(labels, heights, color=colours)
    for index, value in enumerate(times):
        ax.annotate("not reached" if not math.isfinite(value) else f"{value:.3g}",
                    (index, heights[index]), ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="simulated time to target [s]", title=f"{report.model}: optimiser vs baselines")
    ax.tick_params(axis="x", rotation=30)
    return ax
