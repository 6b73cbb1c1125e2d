"""Variance-based global sensitivity: Sobol first-order and total indices (numpy only).

Saltelli sampling: two independent n x d matrices A and B of uniform points in the ranges,
and for each input i the matrix AB_i = A with column i taken from B; n (d + 2) evaluations.
Estimators (Saltelli et al. 2010, "Variance based sensitivity analysis of model output",
Table 2), with V the variance of f over the rows of A and B together:

    S_i  = mean(f(B) (f(AB_i) - f(A))) / V              first order (Saltelli 2010)
    ST_i = mean((f(A) - f(AB_i))^2) / (2 V)              total (Jansen 1999)

S_i is the share of Var f explained by input i alone, ST_i the share involving i at all
(ST_i >= S_i; ST_i = 0 means f does not depend on input i in the ranges). Optional
confidence half-widths come from a bootstrap over the n rows (normal approximation, like
SALib's ``*_conf``). Monte Carlo error shrinks like 1/sqrt(n).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from edgeopt.analysis.sensitivity import numeric_field, objective_of, solve_at


def saltelli_sample(
    bounds: Sequence[tuple[float, float]], n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, AB) for ``n`` base rows: A, B are n x d, AB is d x n x d with AB[i] = A except
    column i from B. Column j of every matrix lies in ``bounds[j]`` = (lo, hi)."""
    if n < 2:
        raise ValueError(f"n = {n}: need at least 2 base samples")
    lo, hi = np.asarray(bounds, dtype=float).T
    if not (hi > lo).all():
        raise ValueError(f"every range needs lo < hi; got {list(bounds)}")
    d = lo.size
    a = lo + (hi - lo) * rng.random((n, d))
    b = lo + (hi - lo) * rng.random((n, d))
    ab = np.repeat(a[np.newaxis], d, axis=0)
    for i in range(d):
        ab[i, :, i] = b[:, i]
    return a, b, ab


def sobol_estimates(f_a: np.ndarray, f_b: np.ndarray, f_ab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S1, ST) per input from f(A), f(B) (length n) and f(AB) (d x n), see the module docstring.

    Outputs are centred on the mean of f(A), f(B) first: the estimators are shift-invariant in
    expectation, but the first-order one is far noisier for outputs with a large mean."""
    mean = np.mean(np.concatenate([f_a, f_b]))
    f_a, f_b, f_ab = f_a - mean, f_b - mean, f_ab - mean
    variance = np.var(np.concatenate([f_a, f_b]))
    if not variance > 0:
        raise ValueError("the output does not vary over the ranges: Sobol indices are undefined")
    first = np.mean(f_b * (f_ab - f_a), axis=1) / variance
    total = 0.5 * np.mean((f_a - f_ab) ** 2, axis=1) / variance
    return first, total


def sobol_function(
    func: Callable[[np.ndarray], np.ndarray],
    bounds: Mapping[str, tuple[float, float]],
    n: int = 1024,
    seed: int | None = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Sobol indices of a vectorised ``func`` (m x d array -> m values) over independent
    uniform inputs ``bounds`` (name -> (lo, hi)), from n (d + 2) evaluations.

    Returns one row per input (index: the names) with ``S1`` and ``ST``, plus ``S1_conf``
    and ``ST_conf`` (half-widths at ``confidence``) when ``bootstrap`` > 0 resamples are asked.
    """
    names = list(bounds)
    rng = np.random.default_rng(seed)
    a, b, ab = saltelli_sample([bounds[k] for k in names], n, rng)
    d = len(names)
    values = np.asarray(func(np.concatenate([a, b, ab.reshape(d * n, d)])), dtype=float)
    if values.shape != ((d + 2) * n,):
        raise ValueError(f"func returned shape {values.shape}; expected ({(d + 2) * n},)")
    if np.isnan(values).any():
        raise ValueError("func returned NaN for some inputs: narrow the ranges")
    f_a, f_b, f_ab = values[:n], values[n:2 * n], values[2 * n:].reshape(d, n)
    first, total = sobol_estimates(f_a, f_b, f_ab)
    frame = pd.DataFrame({"S1": first, "ST": total}, index=pd.Index(names, name="param"))
    if bootstrap > 0:
        draws = [sobol_estimates(f_a[r], f_b[r], f_ab[:, r])
                 for r in rng.integers(0, n, size=(bootstrap, n))]
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        frame["S1_conf"] = z * np.std([s for s, _ in draws], axis=0, ddof=1)
        frame["ST_conf"] = z * np.std([t for _, t in draws], axis=0, ddof=1)
    return frame


def sobol_indices(
    model: Any,
    ranges: Mapping[str, tuple[float, float]],
    n: int = 256,
    method: str = "exact",
    solver: str | None = None,
    seed: int | None = 0,
    bootstrap: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Sobol indices of the optimal objective J of ``model`` over uniform field-path ranges.

    ``ranges`` maps field paths to (lo, hi) in the field's unit; integer fields are rounded.
    Costs n (d + 2) solves with ``method``/``solver``, run one after another. Raises
    ``ValueError`` naming the point when a sample has no verified optimum (narrow the ranges).
    Columns as :func:`sobol_function`.
    """
    integer = {path: isinstance(numeric_field(model, path), int) for path in ranges}

    def objective(rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows))
        for k, row in enumerate(rows):
            point = {p: round(v) if integer[p] else float(v) for p, v in zip(ranges, row)}
            out[k] = objective_of(solve_at(model, point, method, solver))
            if math.isnan(out[k]):
                raise ValueError(f"no verified optimum at {point}: narrow the ranges")
        return out

    return sobol_function(objective, ranges, n, seed, bootstrap, confidence)
