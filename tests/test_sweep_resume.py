"""Sweeps survive kills and refuse damaged stores.

A Dask sweep loses a worker process to SIGKILL, then its driver; the resumed sweep has every
point exactly once and equals an uninterrupted sweep. A store whose journal or table was
damaged or edited is named on resume, and nothing of it is merged or rewritten.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import known_answer_path

from edgeopt.analysis.sweep import SweepError, point_id, rebuild, sweep

T1 = known_answer_path("t1")
GRID = {"bandwidth_hz": [5e6, 1e7, 1.5e7, 2e7, 3e7, 4e7, 6e7, 8e7], "rounds": [1, 2, 3]}
POINTS = 24
SOLVE_LOG = "EDGEOPT_TEST_SOLVE_LOG"
"""Environment variable: the file where :func:`slow` notes each solve (process id, point)."""


def slow(document, method, solver, time_limit):
    """A resolver factory: the real solve after 0.4 s, each solve noted in the solve log, so a
    sweep lasts long enough to be killed part way and the test knows the worker processes."""
    resolve = rebuild(document, method, solver, time_limit)

    def run(values):
        time.sleep(0.4)
        with open(os.environ[SOLVE_LOG], "a") as log:
            log.write(f"{os.getpid()} {point_id(values)}\n")
        return resolve(values)

    return run


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
from edgeopt.analysis.sweep import sweep
from test_sweep_resume import GRID, T1, slow

if __name__ == "__main__":
    sweep(T1, grid=GRID, workers=2, chunk_size=1, out={out!r}, resolver=slow, progress=False)
"""


def journal_lines(out: Path) -> list[str]:
    journal = out.with_name(out.name + ".jsonl")
    return journal.read_text().splitlines() if journal.exists() else []


def wait_for(condition, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_time_s").reset_index(drop=True)


@pytest.fixture(scope="module")
def uninterrupted() -> pd.DataFrame:
    return sweep(T1, grid=GRID, serial=True, progress=False)


def test_killing_a_worker_then_the_driver_loses_and_repeats_no_row(tmp_path, uninterrupted):
    out, log = tmp_path / "sweep.parquet", tmp_path / "solves.log"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), out=str(out)))
    driver = subprocess.Popen(
        [sys.executable, str(script)], env={**os.environ, SOLVE_LOG: str(log)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        wait_for(lambda: len(journal_lines(out)) >= 2, "two finished points")
        worker = int(log.read_text().split()[-2])  # the process of the latest solve
        assert worker != driver.pid
        os.kill(worker, signal.SIGKILL)
        after_worker = len(journal_lines(out))
        wait_for(lambda: len(journal_lines(out)) >= after_worker + 3,
                 "the sweep to go on after losing a worker")
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # the worker processes of this driver
        except ProcessLookupError:
            pass
    before = len(journal_lines(out))
    assert 5 <= before < POINTS, "the driver should have been killed part way"

    resumed = sweep(T1, grid=GRID, serial=True, out=out, resume=True, progress=False)

    ids = [json.loads(line)["point_id"] for line in journal_lines(out)]
    assert len(ids) == POINTS and len(set(ids)) == POINTS  # none lost, none twice
    assert resumed["point_id"].is_unique and len(resumed) == POINTS
    pd.testing.assert_frame_equal(without_timings(resumed), without_timings(uninterrupted))
    pd.testing.assert_frame_equal(without_timings(pd.read_parquet(out)),
                                  without_timings(uninterrupted), check_dtype=False)


def finished_store(tmp_path: Path, points: int = 6) -> Path:
    """A store that holds the first ``points`` rows of GRID, as a killed sweep leaves it."""
    out = tmp_path / "partial.parquet"
    first = dict(list(GRID.items())[:1])
    first["bandwidth_hz"] = GRID["bandwidth_hz"][: points // 3]
    sweep(T1, grid={**first, "rounds": GRID["rounds"]}, serial=True, out=out, progress=False)
    return out


def test_a_line_torn_by_a_kill_is_dropped_and_that_point_solved(tmp_path, uninterrupted):
    out = finished_store(tmp_path)
    journal = out.with_name(out.name + ".jsonl")
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:40])  # died mid-write
    out.unlink()  # and before the table was rewritten
    resumed = sweep(T1, grid=GRID, serial=True, out=out, resume=True, progress=False)
    ids = [json.loads(line)["point_id"] for line in journal_lines(out)]
    assert len(ids) == POINTS and len(set(ids)) == POINTS
    pd.testing.assert_frame_equal(without_timings(resumed), without_timings(uninterrupted))


def edit_line(number: int, change):
    """A damage: line ``number`` (0-based) of the journal replaced by ``change(line)``."""

    def damage(out: Path) -> None:
        journal = out.with_name(out.name + ".jsonl")
        lines = journal.read_text().splitlines()
        lines[number] = change(lines[number])
        journal.write_text("\n".join(lines) + "\n")

    return damage


def edit_row(number: int, **fields):
    return edit_line(number, lambda line: json.dumps({**json.loads(line), **fields}))


def duplicate_with(**fields):
    def damage(out: Path) -> None:
        journal = out.with_name(out.name + ".jsonl")
        first = json.loads(journal.read_text().splitlines()[0])
        with journal.open("a") as handle:
            handle.write(json.dumps({**first, **fields}) + "\n")

    return damage


def rewrite_table(change):
    def damage(out: Path) -> None:
        change(pd.read_parquet(out)).to_parquet(out, index=False)

    return damage


def truncate_table(out: Path) -> None:
    out.write_bytes(out.read_bytes()[:200])


def changed_objective(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[2, "objective"] *= 1.5
    return frame


DAMAGES = {
    "bytes in the middle of the journal": (
        edit_line(2, lambda line: line[:30] + "\x00garbage"), r"\.jsonl line 3: not a JSON row"),
    "a journal line that is not an object": (edit_line(1, lambda line: "[1, 2]"),
                                             r"\.jsonl line 2: not a JSON object"),
    "a journal row without its status": (
        edit_line(0, lambda line: json.dumps({k: v for k, v in json.loads(line).items()
                                              if k != "status"})), r"line 1: no status"),
    "a swept value edited in the journal": (edit_row(3, bandwidth_hz=9e6),
                                            r"line 4: point_id '\w+' is not the id of its values"),
    "a point twice with different results": (duplicate_with(objective=1.0),
                                              r"line 7: point \w+ is stored twice"),
    "a table that is not Parquet": (truncate_table, r"partial\.parquet: not a readable Parquet"),
    "a table without a point_id column": (rewrite_table(lambda f: f.drop(columns="point_id")),
                                          r"the table has no column point_id"),
    "a table that disagrees with the journal": (rewrite_table(changed_objective),
                                                r"table's row of point \w+ disagrees"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_a_damaged_store_is_named_and_nothing_is_merged(tmp_path, damage):
    change, named = DAMAGES[damage]
    out = finished_store(tmp_path)
    journal = out.with_name(out.name + ".jsonl")
    change(out)
    stored = {path: path.read_bytes() for path in (out, journal)}
    with pytest.raises(SweepError, match=named) as raised:
        sweep(T1, grid=GRID, serial=True, out=out, resume=True, progress=False)
    assert "cannot resume" in str(raised.value) and "run without resume" in str(raised.value)
    assert {path: path.read_bytes() for path in (out, journal)} == stored
    assert sorted(p.name for p in tmp_path.iterdir()) == ["partial.parquet", "partial.parquet.jsonl"]
