"""Running simulations over many seeds (serially or on Dask) and judging them against a bound.

Seeds 0..S-1 are cut into fixed blocks of :data:`SEED_BLOCK`; block (first, count) always
uses the generator ``default_rng([root, first, count])``, so the numbers do not depend on
where blocks run. A :class:`Runner` maps a module-level function over blocks in this process
or on a Dask cluster (:func:`edgeopt.analysis.cluster.dask_client`).

A bound holds when the seed mean of the measured quantity is at most the bound up to
:data:`CONFIDENCE_Z` standard errors: a one-sided test at level 0.135 % (normal
approximation of the mean over seeds) that does not reject "E[measured] <= bound".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.analysis.verification.report import Check

SEED_BLOCK = 16
"""Seeds per block (the unit of work sent to a worker)."""

CONFIDENCE_Z = 3.0
"""Standard errors allowed above the bound: one-sided confidence 99.865 %."""

CONFIDENCE = 0.5 * (1.0 + math.erf(CONFIDENCE_Z / math.sqrt(2.0)))
"""The confidence level of :data:`CONFIDENCE_Z` (normal approximation)."""


@dataclass(frozen=True)
class Configuration:
    """One simulated setting and the bound its measured quantity must not exceed.

    ``settings`` is JSON-ready and fully describes the run (printed when the check fails);
    ``bound`` is in the unit of the measured quantity; ``constants`` says which constants
    are exact, bounded or estimated; ``extra`` holds other bounds worth reporting as
    ratios (label -> value), e.g. a tighter form.
    """

    name: str
    statement: str
    settings: dict[str, Any]
    bound: float
    constants: str
    extra: dict[str, float] = field(default_factory=dict)


def seed_blocks(seeds: int) -> list[tuple[int, int]]:
    """Blocks (first seed, count) covering seeds 0..seeds-1.

    >>> seed_blocks(40)
    [(0, 16), (16, 16), (32, 8)]
    """
    if seeds < 1:
        raise ValueError(f"seeds = {seeds!r}: must be >= 1")
    return [(first, min(SEED_BLOCK, seeds - first)) for first in range(0, seeds, SEED_BLOCK)]


def block_rng(root: int, block: tuple[int, int]) -> np.random.Generator:
    """The generator of one block of seeds (independent of where the block runs)."""
    return np.random.default_rng([int(root), int(block[0]), int(block[1])])


class Runner:
    """Maps a module-level function over argument tuples, serially or on Dask.

    With no argument it runs in this process. ``workers`` starts a LocalCluster of that many
    processes; ``scheduler`` connects to a running cluster; ``client`` uses a
    ``distributed.Client`` as given. Inside ``with runner:`` (re-entrant) one connection
    serves every :meth:`map`; outside, each :meth:`map` connects (and starts a cluster) on
    its own.
    """

    def __init__(self, workers: int | None = None, scheduler: str | None = None, client: Any = None):
        if workers is not None and workers < 1:
            raise ValueError(f"workers = {workers!r}: must be >= 1")
        self.workers, self.scheduler, self.client = workers, scheduler, client
        self._session: Any = None
        self._connected: Any = None
        self._depth = 0

    @property
    def serial(self) -> bool:
        return self.workers is None and self.scheduler is None and self.client is None

    def __enter__(self) -> Runner:
        if not self.serial and self._depth == 0:
            from edgeopt.analysis.cluster import dask_client

            self._session = dask_client(self.workers, self.client, self.scheduler)
            self._connected = self._session.__enter__()
        self._depth += 1
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._session is not None:
            session, self._session, self._connected = self._session, None, None
            session.__exit__(*exc_info)

    def map(self, function: Callable, arguments: Sequence[tuple]) -> list:
        """``[function(*a) for a in arguments]``, in order."""
        if self.serial:
            return [function(*a) for a in arguments]
        if self._connected is None:
            with self:
                return self.map(function, arguments)
        futures = [self._connected.submit(function, *a, pure=False) for a in arguments]
        return self._connected.gather(futures)


def run_seeds(runner: Runner, function: Callable, items: Sequence[Any], seeds: int) -> list[np.ndarray]:
    """``function(item, block)`` over every block of ``seeds`` for each item (one Dask batch);
    per item, the block results concatenated along the first axis (seed order)."""
    blocks = seed_blocks(seeds)
    results = runner.map(function, [(item, block) for item in items for block in blocks])
    per_item = len(blocks)
    return [np.concatenate(results[k * per_item:(k + 1) * per_item]) for k in range(len(items))]


def rounds_to_target(curve: np.ndarray, target: float) -> int | None:
    """The least R with (1/R) sum_{r<R} curve[r] <= target (the quantity the bound controls),
    or ``None`` if no prefix of ``curve`` gets there.

    >>> rounds_to_target(np.array([4.0, 2.0, 0.0, 0.0]), 2.0)
    3
    """
    averages = np.cumsum(curve) / np.arange(1, len(curve) + 1)
    hits = np.flatnonzero(averages <= target)
    return int(hits[0]) + 1 if hits.size else None


def bound_check(configuration: Configuration, values: np.ndarray) -> Check:
    """The verdict on one configuration from its per-seed measured values."""
    values = np.asarray(values, dtype=float)
    seeds = len(values)
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else float("inf")
    bound = configuration.bound
    passed = bool(np.isfinite(mean) and mean - CONFIDENCE_Z * stderr <= bound)
    upper = (mean + CONFIDENCE_Z * stderr) / bound if bound > 0 else float("inf")
    detail = (f"measured/bound {mean / bound:.3g} (upper {CONFIDENCE:.3%} limit {upper:.3g})"
              if bound > 0 else f"bound {bound:g} <= 0")
    for label, value in configuration.extra.items():
        if value > 0:
            detail += f"; measured/{label} {mean / value:.3g}"
    detail += f"; constants: {configuration.constants}"
    how = (f"mean over {seeds} seeds <= bound + {CONFIDENCE_Z:g} standard errors "
           f"(one-sided {CONFIDENCE:.3%})")
    return Check(name=configuration.name, kind="simulated", category="bound",
                 statement=configuration.statement,
                 how=how, passed=passed, detail=detail, measured=mean, bound=bound,
                 stderr=stderr, seeds=seeds, config=configuration.settings)
