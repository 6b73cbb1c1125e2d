"""Where a sweep keeps its rows: a JSON-lines journal and a Parquet table.

Every finished point is appended to the journal (``FILE.parquet.jsonl``, one JSON object
per line, flushed per row), so a sweep killed at any moment loses no finished point. The
Parquet file is rewritten atomically (a temporary file in the same folder, then
``os.replace``) now and then and at the end; readers never see a half-written table.
Resuming reads both; a torn last journal line (the process died mid-write) is ignored.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


class SweepStore:
    """The journal and Parquet file of one sweep output ``path`` (``*.parquet``)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".jsonl")
        self._handle = None

    def start(self, resume: bool) -> dict[str, dict[str, Any]]:
        """Open the journal for appending; return the rows already done (point_id -> row).

        Without ``resume`` any previous journal and table of this path are discarded.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        done: dict[str, dict[str, Any]] = {}
        if resume:
            if self.path.exists():
                for row in pd.read_parquet(self.path).to_dict("records"):
                    done.setdefault(row["point_id"], _clean(row))
            for row in self._journal_rows():
                done.setdefault(row["point_id"], row)
        else:
            self.journal.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
        self._handle = self.journal.open("a", encoding="utf-8")
        if self._handle.tell() and not self.journal.read_bytes().endswith(b"\n"):
            self._handle.write("\n")  # end a line torn by a kill, so the next row starts clean
        return done

    def append(self, row: dict[str, Any]) -> None:
        """Add one finished point to the journal and flush it to the operating system."""
        self._handle.write(json.dumps(row, allow_nan=False) + "\n")
        self._handle.flush()

    def write_table(self, frame: pd.DataFrame) -> None:
        """Replace the Parquet file by ``frame`` atomically."""
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(descriptor)
        try:
            frame.to_parquet(temporary, index=False)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _journal_rows(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        rows = []
        for line in self.journal.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill mid-write: that point was not finished
            if isinstance(row, dict) and "point_id" in row:
                rows.append(row)
        return rows


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
