"""The exit codes of ``edgeopt``, one meaning each, and the help text that documents them.

A script can tell apart: a solved instance (0), an instance without a point (1: proven
infeasible, or the method found none), its own mistake (2: the message names the field or
flag), a failure of a solver or of edgeopt (3), and a time limit reached before any point (4).
"""

from __future__ import annotations

SOLVED = 0
"""Done: a point the model's evaluator accepted (also an incumbent at a time limit), or the
command's work completed (preset, validate, solvers, sweep, bench, sensitivity, profile)."""
NO_POINT = 1
"""No point: infeasible (the message names the binding budget or device), or the method
found none; ``validate``: valid but infeasible; ``verify`` / ``check``: a check failed."""
BAD_INPUT = 2
"""Bad input: unreadable or invalid file, unknown model, method, solver, option or field
(the message names it and the allowed values); nothing was solved."""
SOLVER_ERROR = 3
"""Internal or solver error: a backend failed or is not installed, a returned point was
rejected by the evaluator, or a bug (``--debug`` shows the traceback)."""
TIME_LIMIT = 4
"""The time limit was reached before any point was found (the bound, if any, is reported)."""
INTERRUPTED = 130
"""Interrupted (Ctrl-C): 128 + SIGINT."""
STDOUT_CLOSED = 141
"""The reader of stdout left early (``| head``): 128 + SIGPIPE, as for any Unix tool."""

MEANINGS: dict[int, str] = {
    SOLVED: "solved / done",
    NO_POINT: "infeasible or no point found (validate: infeasible; verify, check: a check failed)",
    BAD_INPUT: "bad input (the message names the field or flag)",
    SOLVER_ERROR: "solver or internal error (--debug: traceback)",
    TIME_LIMIT: "time limit reached without a point",
    INTERRUPTED: "interrupted",
    STDOUT_CLOSED: "stdout closed early (| head)",
}

COMMAND_CODES: dict[str, tuple[int, ...]] = {
    "solve": (SOLVED, NO_POINT, BAD_INPUT, SOLVER_ERROR, TIME_LIMIT),
    "check": (SOLVED, NO_POINT, BAD_INPUT, SOLVER_ERROR),
    "validate": (SOLVED, NO_POINT, BAD_INPUT),
    "verify": (SOLVED, NO_POINT, BAD_INPUT, SOLVER_ERROR),
    "demo": (SOLVED, NO_POINT, SOLVER_ERROR),
}
"""The codes each command can return besides 130 and 141 (default: 0, 2, 3)."""

COMMAND_MEANINGS: dict[tuple[str, int], str] = {
    ("solve", SOLVED): "solved: a verified point (also an incumbent at a time limit)",
    ("solve", NO_POINT): "infeasible (the reason names the budget or device) or no point found",
    ("check", SOLVED): "the saved point is feasible and its objective is the evaluator's",
    ("check", NO_POINT): "it is not, or the result carries no point",
    ("check", BAD_INPUT): "bad input: unreadable file, not a result, other model, instance hash mismatch",
    ("validate", SOLVED): "valid",
    ("validate", NO_POINT): "valid but infeasible (the reason is printed)",
    ("validate", BAD_INPUT): "invalid: every problem is listed with its field path",
    ("verify", SOLVED): "every check passed",
    ("verify", NO_POINT): "a derivation step or a simulated bound failed",
}


def epilog(command: str | None = None) -> str:
    """The 'Exit codes' paragraph of ``edgeopt --help`` (all codes) or of one command's help."""
    codes = tuple(MEANINGS) if command is None else (
        *COMMAND_CODES.get(command, (SOLVED, BAD_INPUT, SOLVER_ERROR)), INTERRUPTED, STDOUT_CLOSED
    )
    lines = ["exit codes:"]
    for code in codes:
        meaning = COMMAND_MEANINGS.get((command or "", code), MEANINGS[code])
        lines.append(f"  {code:<4} {meaning}")
    return "\n".join(lines)
