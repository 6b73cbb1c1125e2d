"""Is there a choice of cuts that fits both budgets at makespan T? An exact search priced by
the two-resource Lagrangian (see :mod:`pricing`).

At makespan T each option has a price vector (x, y, z); a choice fits iff its summed vector
passes :func:`pricing.fits`, which holds iff sum_i h_i(theta) <= 1 for every price theta.
On a grid of prices (uniform, plus points closing in on the relaxation's best price):

1. *Lagrangian proof.* If Psi(theta) = sum_i min_c h_{i,c}(theta) > 1 at a grid price, nothing
   fits.
2. *Reduced-cost fixing.* Option c of device i is dropped when Psi(theta) - min_c' h_{i,c'}(theta)
   + h_{i,c}(theta) > 1 at a grid price (no choice using it can fit); repeated until nothing
   changes. Devices left with one option are fixed and summed into one price vector.
3. *Branch and bound* over the remaining ("free") devices, depth first, cheapest option first,
   with the same fixing at every node (forward checking) and the exact closed-form check at
   the leaves. Identical free devices take non-decreasing option indices (their order does
   not matter), so a group of m identical devices costs multisets, not m-tuples.

Grid tests only ever prove that something does not fit, so the search is exact whatever the
grid; a good grid only makes it shorter. Every grid test keeps a margin of
:data:`MARGIN` for rounding, so a choice is never dropped because of float error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeopt.solvers.edgesplit.pricing import PricedOptions, fits, price

MARGIN = 1e-12
"""Relative slack of every grid test (Psi is about 1 where it matters) [-]."""

UNIFORM_PRICES = 17
ZOOM_STEPS = 40
"""The grid: UNIFORM_PRICES equally spaced prices plus theta* +- 2^-k for k = 1..ZOOM_STEPS."""

CHUNK_ELEMENTS = 2_000_000
"""Devices are priced in blocks of at most this many (device, option, price) values."""

DEADLINE_EVERY = 64
"""Branch-and-bound nodes between two deadline checks (the first node is checked)."""


@dataclass(frozen=True)
class SearchOutcome:
    """``index``: an option index per device that fits, or ``None``; ``complete``: whether the
    search ran to its end (``index is None and complete`` proves that nothing fits);
    ``free_devices``: devices left after reduced-cost fixing; ``nodes``: branch-and-bound nodes."""

    index: np.ndarray | None
    complete: bool
    free_devices: int
    nodes: int


def price_grid(theta: float) -> np.ndarray:
    """Uniform prices plus prices closing in on ``theta`` from both sides."""
    offsets = 2.0 ** -np.arange(1, ZOOM_STEPS + 1)
    points = np.concatenate([np.linspace(0.0, 1.0, UNIFORM_PRICES), theta - offsets, theta + offsets, [theta]])
    return np.unique(np.clip(points, 0.0, 1.0))


def search_fit(options: PricedOptions, T: float, theta: float, deadline=None) -> SearchOutcome:
    """Find option indices that fit both budgets at makespan ``T`` [s], or prove there are none."""
    x, y, z, keep = options.vectors(T)
    if not keep.any(axis=1).all():
        return SearchOutcome(None, True, 0, 0)
    grid = price_grid(theta)
    while True:
        least = _least_prices(x, y, z, keep, grid)
        total = least.sum(axis=0)
        if total.max() > 1.0 + MARGIN:
            return SearchOutcome(None, True, 0, 0)
        kept = _reduced_cost_fixing(x, y, z, keep, grid, least, total)
        if not kept.any(axis=1).all():
            return SearchOutcome(None, True, 0, 0)
        if (kept == keep).all():
            break
        keep = kept

    count = keep.sum(axis=1)
    fixed = count == 1
    index = np.argmax(keep, axis=1)
    rows = np.flatnonzero(fixed)
    base = np.array([v[rows, index[rows]].sum() for v in (x, y, z)])
    free = np.flatnonzero(~fixed)
    if not len(free):
        return SearchOutcome(index if fits(*base) else None, True, 0, 0)
    tree = _FreeDevices(x[free], y[free], z[free], keep[free], grid, base, _identical_groups(options, free))
    found, complete, nodes = tree.search(deadline)
    if found is not None:
        index[free] = found
        return SearchOutcome(index, True, len(free), nodes)
    return SearchOutcome(None, complete, len(free), nodes)


def _blocks(n: int, width: int):
    step = max(1, CHUNK_ELEMENTS // max(width, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _least_prices(x, y, z, keep, grid) -> np.ndarray:
    """min over kept options of h(theta) per device and grid price, shape (N, G)."""
    least = np.empty((x.shape[0], len(grid)))
    for block in _blocks(x.shape[0], x.shape[1] * len(grid)):
        h = price(grid, x[block], y[block], z[block])
        least[block] = np.where(keep[block][..., None], h, np.inf).min(axis=1)
    return least


def _reduced_cost_fixing(x, y, z, keep, grid, least, total) -> np.ndarray:
    """Drop every option whose reduced price exceeds the slack 1 - Psi at some grid price."""
    slack = 1.0 + MARGIN - total
    kept = keep.copy()
    for block in _blocks(x.shape[0], x.shape[1] * len(grid)):
        h = price(grid, x[block], y[block], z[block])
        fits_everywhere = (h - least[block][:, None, :] <= slack).all(axis=2)
        kept[block] &= fits_everywhere
    return kept


def _identical_groups(options: PricedOptions, devices: np.ndarray) -> np.ndarray:
    """A group label per device in ``devices``: equal labels have identical options."""
    rows = np.concatenate([options.device_s[devices], options.comm_s[devices], options.server_s[devices]], axis=1)
    _, labels = np.unique(rows, axis=0, return_inverse=True)
    return labels.ravel()


class _FreeDevices:
    """Depth-first branch and bound over the devices that reduced-cost fixing left free.

    Arrays have shape (F, K) for F free devices; ``base`` is the summed price vector of the
    fixed devices. A node is (allowed options, assigned index or -1, summed price vector of
    the fixed and assigned devices). Prices are linear in the vector, so the assigned
    devices' prices on the grid are ``price(grid, *vector)``.
    """

    def __init__(self, x, y, z, allowed, grid, base, groups):
        self.grid = grid
        self.vectors = np.stack([x, y, z], axis=2)  # (F, K, 3)
        self.prices = price(grid, x, y, z)  # (F, K, G)
        self.allowed = allowed
        self.base = base
        self.groups = groups
        self.nodes = 0

    def search(self, deadline) -> tuple[np.ndarray | None, bool, int]:
        """(option index per free device that fits or None, whether complete, nodes)."""
        stack = [(self.allowed.copy(), np.full(len(self.groups), -1), self.base.copy())]
        while stack:
            self.nodes += 1
            if deadline is not None and self.nodes % DEADLINE_EVERY == 1 and deadline.expired:
                return None, False, self.nodes
            allowed, assigned, vector = stack.pop()
            total = self._propagate(allowed, assigned, vector)
            if total is None:
                continue
            open_ = np.flatnonzero(assigned < 0)
            if not len(open_):
                if fits(*vector):
                    return assigned, True, self.nodes
                continue
            device = int(open_[np.argmin(allowed[open_].sum(axis=1))])  # fewest options left
            choices = np.flatnonzero(allowed[device])
            tight = int(np.argmax(total))
            for option in choices[np.argsort(-self.prices[device, choices, tight])]:
                child = allowed.copy(), assigned.copy(), vector.copy()
                self._assign(*child, device, int(option))
                stack.append(child)  # the cheapest option ends on top of the stack
        return None, True, self.nodes

    def _assign(self, allowed, assigned, vector, device, option) -> None:
        """Give ``device`` its ``option``; identical open devices keep the index order."""
        assigned[device] = option
        vector += self.vectors[device, option]
        allowed[device] = False
        allowed[device, option] = True
        same = np.flatnonzero((self.groups == self.groups[device]) & (assigned < 0))
        allowed[same[same < device], option + 1:] = False
        allowed[same[same > device], :option] = False

    def _propagate(self, allowed, assigned, vector) -> np.ndarray | None:
        """Reduced-cost fixing among the open devices until nothing changes, assigning
        devices left with one option. Returns the node's bound Psi on the grid, or ``None``
        when the node cannot fit."""
        while True:
            open_ = np.flatnonzero(assigned < 0)
            total = price(self.grid, *vector)
            if not len(open_):
                return total
            prices = np.where(allowed[open_][..., None], self.prices[open_], np.inf)
            least = prices.min(axis=1)
            if not np.isfinite(least).all():
                return None
            total = total + least.sum(axis=0)
            if total.max() > 1.0 + MARGIN:
                return None
            narrowed = allowed[open_] & (prices - least[:, None, :] <= 1.0 + MARGIN - total).all(axis=2)
            if not narrowed.any(axis=1).all():
                return None
            changed = bool((narrowed != allowed[open_]).any())
            allowed[open_] = narrowed
            single = open_[narrowed.sum(axis=1) == 1]
            for device in single:
                if assigned[device] < 0 and allowed[device].any():
                    self._assign(allowed, assigned, vector, device, int(np.argmax(allowed[device])))
            if not changed and not len(single):
                return total
