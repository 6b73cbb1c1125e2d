"""``edgeopt verify``: check a model's convergence derivation and its bound in simulation.

    edgeopt verify MODEL [--symbolic] [--simulate] [--seeds N] [--quick] [--json]
        [--workers N | --scheduler ADDRESS]

MODEL is a model id with a registered verifier (``edgesplit``, ``tinyfel``, ``two_stage``). ``--symbolic`` checks every derivation step, ``--simulate``
trains in simulation over ``--seeds`` seeds and compares each measured average squared
gradient norm with the model's bound, then the exact optimiser with the baselines; neither
flag means both. ``--quick`` uses the small set of configurations (seconds; the full set
trains TinyFEL's 20-device preset and takes much longer). ``--json`` prints the list
of checks (name, kind, passed, ...; simulated checks add measured, bound and seeds).
Exit codes: 0 every check passed, 1 a step or bound failed (its configuration is printed),
2 bad input (unknown model, no verifier, bad option), 3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_PASSED, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the ``verify`` parser."""
    parser = subparsers.add_parser(
        "verify", help="check a model's convergence derivation (SymPy) and its bound (simulation)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("model", help="model id: edgesplit, tinyfel, two_stage")
    parser.add_argument("--symbolic", action="store_true", help="check the derivation steps")
    parser.add_argument("--simulate", action="store_true",
                        help="simulate training and compare with the bound and the baselines")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="simulated runs per configuration (default 64, at least 2)")
    parser.add_argument("--quick", action="store_true", help="the small set of configurations")
    parser.add_argument("--json", action="store_true", help="print the checks as a JSON list")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, metavar="N",
                       help="run the seeds on a local Dask cluster of N processes")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="run the seeds on an existing Dask cluster, e.g. tcp://host:8786")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Verify; print the report (or JSON); 0 all passed, 1 a check failed, 2 bad input."""
    from edgeopt.analysis.commands.streams import solver_output
    from edgeopt.analysis.verification import DEFAULT_SEEDS, NoVerifier, Runner, verify
    from edgeopt.analysis.verification.registry import verifier

    seeds = DEFAULT_SEEDS if args.seeds is None else args.seeds
    if seeds < 2:
        return _bad(f"--seeds {seeds}: must be an integer >= 2")
    if args.workers is not None and args.workers < 1:
        return _bad(f"--workers {args.workers}: must be an integer >= 1")
    try:
        verifier(args.model)
    except NoVerifier as error:
        return _bad(str(error))
    both = not (args.symbolic or args.simulate)
    runner = Runner(workers=args.workers, scheduler=args.scheduler)
    with solver_output(getattr(args, "verbose", False)):
        report = verify(args.model, symbolic=args.symbolic or both, simulate=args.simulate or both,
                        seeds=seeds, runner=runner, quick=args.quick)
    print(report.to_json() if args.json else report)
    if not report.passed:
        for check in report.failures:
            print(f"edgeopt verify: FAILED {check.name}; configuration: {check.config}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_PASSED


def _bad(message: str) -> int:
    print(f"edgeopt verify: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
