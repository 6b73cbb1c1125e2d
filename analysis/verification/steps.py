"""Derivation steps and how they are checked.

A :class:`Step` states ``lhs == rhs`` (an identity) or ``lhs <= rhs`` (an inequality) in
SymPy. :func:`check_step` verifies it:

* identity: ``lhs - rhs`` must simplify to 0 (SymPy) **and** both sides must agree at random
  points (``simplify`` can miss, and a symbolic instance can be narrower than the claim);
* inequality: ``lhs <= rhs`` at random points drawn to satisfy the assumptions; with a
  ``certificate`` C, also ``rhs - lhs == C`` symbolically and ``C >= 0`` at those points.

Random points come from the step's ``sample`` (values of the free symbols of ``lhs`` and
``rhs``) or, when the symbolic form is a small instance of a general claim (three atoms, a
batch of three), from ``numeric``, which computes both sides directly for general instances.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.analysis.verification.report import Check

POINTS = 200
"""Random points per step."""

RELATIVE_TOLERANCE = 1e-9
"""Two sides agree (or ``lhs <= rhs`` holds) within this fraction of 1 + |lhs| + |rhs|."""

Sampler = Callable[[np.random.Generator, int], dict[Any, np.ndarray]]
"""``sample(rng, n)``: n values of every free symbol, drawn to satisfy the assumptions."""

Direct = Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]]
"""``numeric(rng, n)``: n values of (lhs, rhs), computed directly for general instances."""


@dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs == rhs`` (``relation='=='``) or ``lhs <= rhs``.

    ``statement`` is the human-readable claim and ``assumptions`` what it uses. ``lhs`` and
    ``rhs`` are SymPy expressions (scalars or Matrices); ``substitutions`` (symbol ->
    expression) encode equality constraints (e.g. p_K = 1 - sum of the other weights) before
    the symbolic proof. ``lhs = rhs = None`` marks a numeric-only check (``numeric`` required):
    an inequality with no closed form, or an implementation compared with the expressions.
    A ``certificate`` C of an inequality must equal ``rhs - lhs`` symbolically and be >= 0 at
    the random points.
    """

    name: str
    statement: str
    relation: str
    lhs: Any
    rhs: Any
    assumptions: str = ""
    sample: Sampler | None = None
    numeric: Direct | None = None
    certificate: Any = None
    substitutions: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.relation not in ("==", "<="):
            raise ValueError(f"relation = {self.relation!r}: must be '==' or '<='")
        if self.sample is None and self.numeric is None:
            raise ValueError(f"step {self.name!r} needs sample= or numeric= for its random points")
        if (self.lhs is None) != (self.rhs is None):
            raise ValueError(f"step {self.name!r}: give both lhs and rhs, or neither")
        if self.lhs is None and (self.numeric is None or self.certificate is not None):
            raise ValueError(f"step {self.name!r}: a numeric-only step needs numeric= and no certificate")


def proves_zero(expression: Any) -> bool:
    """True when SymPy reduces ``expression`` (or every entry of a Matrix) to 0: expand, then
    cancel, then simplify."""
    import sympy as sp

    if isinstance(expression, sp.MatrixBase):
        return all(proves_zero(entry) for entry in expression)
    expression = sp.expand(expression)
    if expression == 0:
        return True
    return sp.cancel(sp.together(expression)) == 0 or sp.simplify(expression) == 0


def evaluate(expression: Any, values: dict[Any, np.ndarray], count: int) -> np.ndarray:
    """``expression`` at ``count`` points given by ``values`` (symbol -> array), shape
    (count, entries): one column per entry of a Matrix, one column for a scalar."""
    import sympy as sp

    entries = list(expression) if isinstance(expression, sp.MatrixBase) else [sp.sympify(expression)]
    columns = []
    for entry in entries:
        symbols = sorted(entry.free_symbols, key=str)
        missing = [s for s in symbols if s not in values]
        if missing:
            raise KeyError(f"no sampled values for {missing}")
        function = sp.lambdify(symbols, entry, "numpy")
        result = function(*[np.asarray(values[s], dtype=float) for s in symbols])
        columns.append(np.broadcast_to(np.asarray(result, dtype=float), (count,)))
    return np.column_stack(columns)


def check_step(step: Step, rng: np.random.Generator, points: int = POINTS) -> Check:
    """Verify ``step`` (see the module docstring) and return the :class:`Check`."""
    lhs, rhs, certificate = _numbers(step, rng, points)
    scale = 1.0 + np.abs(lhs) + np.abs(rhs)
    finite = bool(np.all(np.isfinite(lhs)) and np.all(np.isfinite(rhs)))
    where = "random points satisfying the assumptions" if step.sample else "random general instances"
    symbolic = step.lhs is not None
    if step.relation == "==":
        error = float(np.max(np.abs(lhs - rhs) / scale)) if finite else float("inf")
        numeric_ok = error <= RELATIVE_TOLERANCE
        proved = symbolic and proves_zero(_difference(step, step.lhs, step.rhs))
        how = (f"SymPy: lhs - rhs simplifies to 0; numerically at {points} {where}" if symbolic
               else f"numerically at {points} {where} (implementation against the expressions)")
        detail = f"numeric: max relative difference {error:.2g}"
        if symbolic:
            detail = f"symbolic: {'proved' if proved else 'NOT reduced to 0'}; " + detail
        passed = numeric_ok and (proved or not symbolic)
    else:
        excess = float(np.max((lhs - rhs) / scale)) if finite else float("inf")
        passed = excess <= RELATIVE_TOLERANCE
        how = f"numerically at {points} {where}"
        detail = (f"numeric: holds at every point (smallest relative slack {max(0.0, -excess):.2g})" if passed
                  else f"numeric: VIOLATED (worst relative excess {excess:.3g})")
        if step.certificate is not None:
            equal = proves_zero(_difference(step, step.rhs - step.lhs - step.certificate, 0))
            nonnegative = certificate is not None and bool(
                np.all(certificate >= -RELATIVE_TOLERANCE * scale)
            )
            how = f"SymPy: rhs - lhs equals a certificate that is >= 0 under the assumptions; {how}"
            detail += (f"; certificate {'equals' if equal else 'does NOT equal'} rhs - lhs and is "
                       f"{'>= 0' if nonnegative else 'NEGATIVE'} at the points")
            passed = passed and equal and nonnegative
    if step.assumptions:
        detail += f"; assumes {step.assumptions}"
    return Check(name=step.name, kind="symbolic", category="step", statement=step.statement, how=how,
                 passed=bool(passed), detail=detail)


def _difference(step: Step, first: Any, second: Any) -> Any:
    """first - second after the step's substitutions."""
    import sympy as sp

    difference = first - second
    if not isinstance(difference, sp.MatrixBase):
        difference = sp.sympify(difference)
    return difference.subs(step.substitutions)


def _numbers(step: Step, rng: np.random.Generator, points: int):
    """(lhs, rhs, certificate or None) at the random points of ``step``, shape (points, entries)."""
    if step.numeric is not None:
        lhs, rhs = (np.asarray(side, dtype=float).reshape(points, -1) for side in step.numeric(rng, points))
        return lhs, rhs, (rhs - lhs if step.certificate is not None else None)
    values = step.sample(rng, points)
    lhs = evaluate(step.lhs, values, points)
    rhs = evaluate(step.rhs, values, points)
    certificate = None if step.certificate is None else evaluate(step.certificate, values, points)
    return lhs, rhs, certificate


# ---- samplers shared by the derivations -----------------------------------------------


def simplex(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """``count`` random points of the probability simplex in R^size, shape (count, size)."""
    return rng.dirichlet(np.ones(size), size=count)


def descent_lemma_values(rng: np.random.Generator, count: int, dim: int = 4) -> dict[str, np.ndarray]:
    """Random L-smooth functions f on R^dim with points x, directions g and steps gamma.

    Half are f(x) = x'Hx/2 + sum_j c_j sin(b_j'x + phi_j) with the smoothness constant
    L = ||H||_2 + sum_j |c_j| ||b_j||^2 (a bound on the Hessian norm); the other half are
    convex quadratics with g along the top eigenvector, where the lemma is tight. Returns
    arrays ``f_next`` = f(x - gamma g), ``f_x``, ``inner`` = <grad f(x), g>, ``g2`` = ||g||^2,
    ``gamma`` in (0, 2/L], and ``L``.
    """
    out = {key: np.empty(count) for key in ("f_next", "f_x", "inner", "g2", "gamma", "L")}
    for point in range(count):
        raw = rng.normal(size=(dim, dim))
        x, g = rng.normal(size=dim), rng.normal(size=dim)
        if point % 2 == 0:
            hessian = (raw + raw.T) / 2
            waves = rng.normal(size=(3, dim))
            amplitude, phase = rng.normal(size=3), rng.uniform(0, 2 * np.pi, size=3)
            smooth = np.linalg.norm(hessian, 2) + float(np.sum(np.abs(amplitude) * np.sum(waves**2, axis=1)))

            def f(y, hessian=hessian, waves=waves, amplitude=amplitude, phase=phase):
                return 0.5 * y @ hessian @ y + float(np.sum(amplitude * np.sin(waves @ y + phase)))

            gradient = hessian @ x + waves.T @ (amplitude * np.cos(waves @ x + phase))
        else:
            hessian = raw @ raw.T
            eigenvalues, vectors = np.linalg.eigh(hessian)
            smooth = float(eigenvalues[-1])
            g = vectors[:, -1] * rng.uniform(0.1, 3.0)

            def f(y, hessian=hessian):
                return 0.5 * y @ hessian @ y

            gradient = hessian @ x
        gamma = rng.uniform(1e-3, 2.0) / smooth
        out["f_next"][point] = f(x - gamma * g)
        out["f_x"][point] = f(x)
        out["inner"][point] = gradient @ g
        out["g2"][point] = g @ g
        out["gamma"][point] = gamma
        out["L"][point] = smooth
    return out


def finite_distribution(rng: np.random.Generator, atoms: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A random zero-mean distribution on ``atoms`` points of R^dim: (probabilities, points)."""
    weights = rng.dirichlet(np.ones(atoms))
    points = rng.normal(size=(atoms, dim)) * rng.uniform(0.2, 3.0)
    points = points - weights @ points
    return weights, points


def mean_square_of_average(weights: np.ndarray, points: np.ndarray, batch: int) -> float:
    """E||(1/batch) sum_j n_j||^2 for i.i.d. n_j from (weights, points), by exact enumeration."""
    total = 0.0
    for outcome in itertools.product(range(len(weights)), repeat=batch):
        probability = float(np.prod(weights[list(outcome)]))
        average = points[list(outcome)].mean(axis=0)
        total += probability * float(average @ average)
    return total


def second_moment_numbers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` exact evaluations of E||m + n||^2 and ||m||^2 + E||n||^2 for zero-mean
    noise n on random finite laws (the unbiased-noise identity)."""
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        dim = int(rng.integers(1, 5))
        weights, atoms = finite_distribution(rng, int(rng.integers(2, 6)), dim)
        mean = rng.normal(size=dim) * 3
        lhs[k] = weights @ np.sum((mean + atoms) ** 2, axis=1)
        rhs[k] = mean @ mean + weights @ np.sum(atoms**2, axis=1)
    return lhs, rhs


def minibatch_numbers(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` exact evaluations of E||average of a batch||^2 and E||n||^2 / batch for
    i.i.d. zero-mean noise on random finite laws (the mini-batch variance identity)."""
    lhs, rhs = np.empty(count), np.empty(count)
    for k in range(count):
        batch = int(rng.integers(1, 5))
        weights, atoms = finite_distribution(rng, int(rng.integers(2, 4)), int(rng.integers(1, 4)))
        lhs[k] = mean_square_of_average(weights, atoms, batch)
        rhs[k] = weights @ np.sum(atoms**2, axis=1) / batch
    return lhs, rhs
