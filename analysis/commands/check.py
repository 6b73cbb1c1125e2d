"""``edgeopt check``: re-check a saved result against its instance.

    edgeopt check RESULT.json INSTANCE.json [--json]

RESULT.json is what ``edgeopt solve --json`` (or ``Result.to_json``) wrote. The instance's
content hash (SHA-256 of its canonical JSON, sorted keys) must equal the result's
``instance_sha256``: a result is never checked against another instance. The point is then
re-evaluated by the model's own evaluator, and the status made honest again (a claimed
``optimal`` needs its bound within the optimality gap).
Exit codes: 0 the point is feasible and its objective is the evaluator's, 1 it is not (or the
result carries no point), 2 bad input (unreadable file, not a result, other model, hash
mismatch), 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

EXIT_CONFIRMED, EXIT_NOT_CONFIRMED, EXIT_BAD_INPUT = 0, 1, 2


class _Bad(Exception):
    """A user error: printed without a traceback, exit code 2."""


def register(subparsers: Any) -> None:
    """Add the ``check`` parser."""
    parser = subparsers.add_parser(
        "check", help="re-check a saved result (solve --json) against its instance",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("result", help="result JSON file (edgeopt solve --json)")
    parser.add_argument("instance", help="the canonical instance JSON file it was solved from")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check; print the verdict; 0 confirmed, 1 not confirmed, 2 bad input."""
    from edgeopt.analysis.commands.streams import print_json

    try:
        verdict = check(Path(args.result), Path(args.instance))
    except _Bad as error:
        print(f"edgeopt check: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        print_json(verdict)
    else:
        print(_text(verdict))
    return EXIT_CONFIRMED if verdict["confirmed"] else EXIT_NOT_CONFIRMED


def check(result_path: Path, instance_path: Path) -> dict[str, Any]:
    """The verdict on the result saved at ``result_path`` for the instance at ``instance_path``."""
    from edgeopt.models import InstanceError, load_instance
    from edgeopt.solvers.api import verify
    from edgeopt.solvers.result import Result

    for path in (result_path, instance_path):
        if not path.is_file():
            raise _Bad(f"{path}: no such file")
    try:
        saved = Result.from_json(result_path.read_text())
    except ValueError as error:
        raise _Bad(f"{result_path}: {error}") from None
    try:
        model = load_instance(instance_path)
    except InstanceError as error:
        raise _Bad(f"{instance_path}: {error}") from None
    if saved.model != model.model_id:
        raise _Bad(f"model: the result is for {saved.model!r}, {instance_path} is an instance of {model.model_id!r}")
    digest = model.content_hash()
    if saved.instance_hash is None:
        raise _Bad(f"{result_path}: instance_sha256 is missing: re-solve to record which instance it is for")
    if saved.instance_hash != digest:
        raise _Bad(
            f"instance_sha256: {result_path} was computed for instance {saved.instance_hash[:12]}..., "
            f"{instance_path} is {digest[:12]}...; refusing to check a result against another instance"
        )
    checked = verify(model, saved)
    evaluation = checked.evaluation
    return {
        "result": str(result_path),
        "instance": str(instance_path),
        "instance_sha256": digest,
        "model": model.model_id,
        "method": saved.method,
        "claimed_status": saved.status.value,
        "status": checked.status.value,
        "claimed_objective": saved.objective,
        "evaluated_objective": None if evaluation is None else evaluation.objective,
        "bound": saved.bound,
        "gap": checked.gap,
        "confirmed": checked.feasible,
        "message": checked.message if checked.message != saved.message else None,
        "violations": {} if evaluation is None else {k: v for k, v in evaluation.violations.items() if v > 0},
    }


def _text(verdict: dict[str, Any]) -> str:
    state = "confirmed" if verdict["confirmed"] else "NOT confirmed"
    lines = [
        f"{verdict['result']}: {state} against {verdict['instance']} "
        f"(sha256 {verdict['instance_sha256'][:12]}...)",
        f"  status      {verdict['claimed_status']} -> {verdict['status']}",
        f"  objective   {verdict['claimed_objective']} (evaluator: {verdict['evaluated_objective']})",
    ]
    if verdict["message"]:
        lines.append(f"  message     {verdict['message']}")
    for name, amount in verdict["violations"].items():
        lines.append(f"  violated    {name}: {amount:.3g}")
    return "\n".join(lines)
