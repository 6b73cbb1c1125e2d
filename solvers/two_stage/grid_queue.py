"""The best-first queue shared by the grid searches of ``exact`` and ``relaxation_per_round``.

Items are blocks of cells, cells, or later stages of a cell's work, each keyed by a valid lower
bound on Psi over what it covers. An item comes out with the least key; if cuts arrived since
it was queued it is priced again first (a higher bound closes it or queues it again); if its
key reaches the threshold (the incumbent less the pruning tolerance) the search stops and
everything still queued is closed by its key. Subclasses say how items are priced, closed and
visited.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable


class GridQueue:
    """Best-first processing of keyed items (module docstring). ``deadline()`` true stops the
    search with the queue as it is (``complete`` stays False)."""

    def __init__(self, deadline: Callable[[], bool]):
        self.deadline = deadline
        self.heap: list = []
        self._seq = 0
        self.complete = False

    # ---- what a search defines -----------------------------------------------------------
    def _cut_count(self) -> int:
        """How many cuts exist (an item queued with fewer is priced again)."""
        raise NotImplementedError

    def _threshold(self) -> float:
        """Items with a key >= this are closed."""
        raise NotImplementedError

    def _reprice(self, kind: str, payload) -> float | None:
        """A new bound of the item from the cuts (None: cuts do not price this kind)."""
        raise NotImplementedError

    def _count_closed(self, kind: str, payload, key: float) -> None:
        """Record that the item is closed by ``key``."""
        raise NotImplementedError

    def _visit(self, kind: str, payload, key: float) -> None:
        """Process an item that came out of the queue under ``key``."""
        raise NotImplementedError

    # ---- the loop ------------------------------------------------------------------------
    def _push(self, key: float, kind: str, payload) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (key, self._seq, kind, payload, self._cut_count()))

    def _drain(self) -> None:
        """Visit items until the queue is empty, the threshold is reached or the deadline."""
        while self.heap:
            if self.deadline():
                return
            key, _, kind, payload, seen = self.heap[0]
            if key >= self._threshold():
                break
            heapq.heappop(self.heap)
            if seen < self._cut_count():
                fresh = self._reprice(kind, payload)
                if fresh is not None and fresh > key:
                    if fresh >= self._threshold():
                        self._count_closed(kind, payload, fresh)
                    else:
                        self._push(fresh, kind, payload)
                    continue
            self._visit(kind, payload, key)
        for key, _, kind, payload, _seen in self.heap:
            self._count_closed(kind, payload, key)
        self.heap = []
        self.complete = True
