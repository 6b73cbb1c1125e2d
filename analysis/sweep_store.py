"""Where a sweep keeps its rows: a JSON-lines journal and a Parquet table.

Every finished point is appended to the journal (``FILE.parquet.jsonl``, one JSON object
per line, flushed per row), so a sweep killed at any moment loses no finished point. The
Parquet file is rewritten atomically (see :mod:`edgeopt.files`) now and then and at the
end; readers never see a half-written table.

Resuming reads both and trusts neither blindly. The only damage a kill can do is a torn
*last* journal line (the process died mid-write): that line is dropped and the journal is
rewritten without it (atomically) before new rows are appended. Anything else is reported as
a :class:`StoreError` naming the file and the line or point, and nothing is merged: a line
that is not a JSON row, a row without ``point_id``/``sweep_id``/``status`` or without a
value of a swept key, a ``point_id`` that is not the hash of the row's values, two rows of
one point that disagree, a table that is not readable Parquet or lacks those columns, and a
table row that disagrees with the journal's row of the same point.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from edgeopt.files import atomic_path

REQUIRED = ("point_id", "sweep_id", "status")
"""Columns every stored row has."""

UNTIMED = ("wall_time_s",)
"""Columns that may differ between two honest rows of one point (a point solved twice)."""


class StoreError(ValueError):
    """A sweep's saved rows are damaged or were edited: the message names the file, the line
    (journal) or point (table), and what is wrong."""


class SweepStore:
    """The journal and Parquet file of one sweep output ``path`` (``*.parquet``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".jsonl")
        self._handle = None

    def start(
        self, resume: bool, keys: Sequence[str] = (),
        identify: Callable[[dict[str, Any]], str] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Open the journal for appending; return the rows already done (point_id -> row).

        Without ``resume`` any previous journal and table of this path are discarded. With
        it, every stored row must hold a value for each of ``keys`` and, when ``identify``
        (values -> point id) is given, carry the id of its values; raises
        :class:`StoreError` on any damage (see the module docstring).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        done: dict[str, dict[str, Any]] = {}
        if resume:
            done = self._journal_rows(keys, identify)
            for row in self._table_rows(keys):
                kept = done.setdefault(row["point_id"], row)
                if not _same(kept, row):
                    raise StoreError(
                        f"{self.path}: the table's row of point {row['point_id']} disagrees with "
                        f"the journal {self.journal.name} (one of them was changed or damaged); "
                        "remove the damaged file, or run without resume"
                    )
        else:
            self.journal.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
        self._handle = self.journal.open("a", encoding="utf-8")
        return done

    def append(self, row: dict[str, Any]) -> None:
        """Add one finished point to the journal and flush it to the operating system."""
        self._handle.write(json.dumps(row, allow_nan=False) + "\n")
        self._handle.flush()

    def write_table(self, frame: pd.DataFrame) -> None:
        """Replace the Parquet file by ``frame`` atomically."""
        with atomic_path(self.path) as temporary:
            frame.to_parquet(temporary, index=False)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    # ---- reading back --------------------------------------------------------------------

    def _journal_rows(self, keys, identify) -> dict[str, dict[str, Any]]:
        """The journal's rows, checked; a torn last line is dropped from the file."""
        if not self.journal.exists():
            return {}
        data = self.journal.read_bytes()
        lines = data.split(b"\n")
        if lines[-1] == b"":
            lines.pop()  # the file ends with a newline, as every finished row does
        rows: dict[str, dict[str, Any]] = {}
        good: list[bytes] = []
        for number, line in enumerate(lines, start=1):
            where = f"{self.journal} line {number}"
            try:
                row = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                if number == len(lines) and not data.endswith(b"\n"):
                    continue  # the writer was killed mid-line: that point did not finish
                raise StoreError(f"{where}: not a JSON row ({_damaged})") from None
            _check_row(row, where, keys, identify)
            kept = rows.setdefault(row["point_id"], row)
            if not _same(kept, row):
                raise StoreError(f"{where}: point {row['point_id']} is stored twice with "
                                 f"different results ({_damaged})")
            good.append(line)
        if data and not data.endswith(b"\n"):  # end cleanly before appending: drop a torn line
            with atomic_path(self.journal) as temporary:
                temporary.write_bytes(b"".join(line + b"\n" for line in good))
        return rows

    def _table_rows(self, keys) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        try:
            frame = pd.read_parquet(self.path)
        except Exception as error:  # noqa: BLE001 - any reader failure means a damaged file
            raise StoreError(f"{self.path}: not a readable Parquet table "
                             f"({type(error).__name__}: {error}; {_damaged})") from None
        missing = [column for column in (*REQUIRED, *keys) if column not in frame.columns]
        if missing:
            raise StoreError(f"{self.path}: the table has no column {', '.join(missing)} "
                             f"({_damaged})")
        return [_clean(row) for row in frame.to_dict("records")]


_damaged = "the file is damaged or was edited; remove it, or run without resume to start over"


def _check_row(row: Any, where: str, keys: Sequence[str], identify) -> None:
    if not isinstance(row, dict):
        raise StoreError(f"{where}: not a JSON object ({_damaged})")
    missing = [column for column in (*REQUIRED, *keys) if column not in row]
    if missing:
        raise StoreError(f"{where}: no {', '.join(missing)} ({_damaged}, or it belongs to a "
                         "sweep over other keys)")
    if identify is not None:
        expected = identify({key: row[key] for key in keys})
        if row["point_id"] != expected:
            raise StoreError(f"{where}: point_id {row['point_id']!r} is not the id of its "
                             f"values {expected!r} ({_damaged})")


def _same(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two rows of one point hold the same results (timings aside; NaN = None)."""
    columns = (set(one) | set(other)) - set(UNTIMED)
    return all(_equal(one.get(column), other.get(column)) for column in columns)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """A Parquet row as plain Python values, NaN as ``None`` (as the journal stores them)."""
    cleaned = {}
    for key, value in row.items():
        if hasattr(value, "item"):
            value = value.item()
        if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            value = None
        cleaned[key] = value
    return cleaned
