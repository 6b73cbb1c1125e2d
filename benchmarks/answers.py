"""Snapshot every registered method's answer on a fixed set of instances, and compare two snapshots.

A refactor must not change an answer. Run this before and after and compare:

    .venv/bin/python benchmarks/answers.py record before.json
    .venv/bin/python benchmarks/answers.py record after.json
    .venv/bin/python benchmarks/answers.py compare before.json after.json

The instances are the known-answer files of ``tests/data`` plus a few small presets of every
registered model. For each applicable, installed method the snapshot keeps the status, the
objective, the bound and the canonical solution fields; ``compare`` lists every difference
(numbers relative beyond ``--rtol``, everything else exactly) and exits 1 if there is one.
Wall times are recorded but never compared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRESETS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "edgesplit": [("vgg16-cifar10-hetero8", {}), ("vgg16-cifar10-hetero8", {"devices": 12, "seed": 3})],
    "tinyfel": [("resnet18-cifar10-cell", {"devices": 6, "seed": 1})],
    "two_stage": [("default", {"devices": 4, "seed": 1})],
}
"""Small presets per model id, solved by every method besides the known-answer files."""


def instances() -> list[tuple[str, Any]]:
    """(label, model) pairs: every ``tests/data`` file, then the presets above."""
    from edgeopt.models import load_instance, preset

    found = [(path.name, load_instance(path)) for path in sorted((ROOT / "tests" / "data").glob("*.json"))]
    for model_id, entries in PRESETS.items():
        for name, options in entries:
            label = f"preset:{model_id}:{name}:" + ",".join(f"{k}={v}" for k, v in options.items())
            found.append((label, preset(model_id, name, **options)))
    return found


def record(path: Path, time_limit: float) -> None:
    """Solve every instance with every applicable method and write the snapshot to ``path``."""
    from edgeopt.solvers import solve, solvers_for

    snapshot: dict[str, Any] = {}
    for label, model in instances():
        for spec in solvers_for(model.model_id).specs:
            if spec.unsupported_reason(model) is not None or not spec.availability():
                continue
            key = f"{label} | {spec.method}"
            start = time.perf_counter()
            try:
                result = solve(model, spec.method, time_limit=time_limit, seed=0)
            except Exception as error:  # a snapshot records failures too: they must not change
                snapshot[key] = {"exception": f"{type(error).__name__}: {error}"}
            else:
                document = result.to_dict()
                snapshot[key] = {
                    "status": result.status.value,
                    "objective": result.objective,
                    "bound": result.bound,
                    "solution": result.solution,
                    "verified": result.verified,
                    "infeasible_reason": result.infeasible_reason,
                    "termination": document.get("termination"),
                }
            snapshot[key]["wall_s"] = time.perf_counter() - start
            print(f"{time.perf_counter() - start:8.2f} s  {key}", file=sys.stderr)
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True, default=repr) + "\n")


def differences(before: Any, after: Any, rtol: float, where: str = "") -> list[str]:
    """Every place where two snapshot values differ (floats beyond ``rtol``)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out = []
        for key in sorted(set(before) | set(after)):
            if key == "wall_s":
                continue
            if key not in before or key not in after:
                out.append(f"{where}.{key}: only in {'after' if key in after else 'before'}")
                continue
            out += differences(before[key], after[key], rtol, f"{where}.{key}")
        return out
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [f"{where}: length {len(before)} -> {len(after)}"]
        return [d for i, (b, a) in enumerate(zip(before, after)) for d in differences(b, a, rtol, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(before, numbers) and isinstance(after, numbers) and not isinstance(before, bool):
        same = before == after or (math.isnan(before) and math.isnan(after)) or math.isclose(before, after, rel_tol=rtol, abs_tol=0.0)
        return [] if same else [f"{where}: {before!r} -> {after!r}"]
    return [] if before == after else [f"{where}: {before!r} -> {after!r}"]


def compare(before_path: Path, after_path: Path, rtol: float) -> int:
    before = json.loads(before_path.read_text())
    after = json.loads(after_path.read_text())
    found = differences(before, after, rtol)
    for line in found:
        print(line)
    print(f"{len(set(before) & set(after))} answers compared, {len(found)} differences (rtol {rtol:g})", file=sys.stderr)
    return 1 if found else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="solve everything and write a snapshot")
    rec.add_argument("output", type=Path)
    rec.add_argument("--time-limit", type=float, default=60.0, help="seconds per solve (default 60)")
    cmp_ = commands.add_parser("compare", help="list the differences of two snapshots")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    cmp_.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance on numbers (default 1e-9)")
    args = parser.parse_args(argv)
    if args.command == "record":
        record(args.output, args.time_limit)
        return 0
    return compare(args.before, args.after, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
