"""One wall-clock budget object for every solver's ``time_limit``."""

from __future__ import annotations

import time


class Deadline:
    """A budget of ``seconds`` (``None``: unlimited) started at construction, on ``perf_counter``.

    ``expired`` (also ``deadline()``) says whether it has run out, ``remaining`` how many
    seconds are left (``None`` when unlimited) and ``elapsed`` how many have passed.
    """

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def expired(self) -> bool:
        return self.seconds is not None and self.elapsed >= self.seconds

    def __call__(self) -> bool:
        return self.expired

    @property
    def remaining(self) -> float | None:
        if self.seconds is None:
            return None
        return max(0.0, self.seconds - self.elapsed)

    def __repr__(self) -> str:
        budget = "unlimited" if self.seconds is None else f"{self.seconds:g} s"
        return f"Deadline({budget}, elapsed {self.elapsed:.3f} s)"
