"""``edgeopt profile``: the layer table of your own PyTorch network, as canonical JSON.

    edgeopt profile MODULE_PATH:FACTORY --input-shape 3 32 32 [--batch-size 2]
        [--blocks NAME ...] [--format edgesplit|tinyfel|profile]
        [--measure [--repeats R] [--threads N]] [--seed S] [-o layers.json]

MODULE_PATH is a dotted module name (``mypkg.nets``) or a ``.py`` file; FACTORY a callable in
it that returns a ``torch.nn.Module`` when called without arguments. The network runs on a
random batch of ``--batch-size`` samples of shape ``--input-shape`` (seeded). Output:
``edgesplit`` / ``tinyfel`` write the canonical ``layers`` list of that model (drop it into
an instance), ``profile`` the full layer profile (every column, measured times).
Exit codes: 0 written, 2 bad input (unimportable module, bad shape or blocks, no PyTorch),
3 internal error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2
FORMATS = ("edgesplit", "tinyfel", "profile")


class _Bad(Exception):
    """A user error: printed without a traceback, exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= 1")
    return value


def register(subparsers: Any) -> None:
    """Add the ``profile`` parser."""
    parser = subparsers.add_parser(
        "profile", help="layer table of a PyTorch network (canonical EdgeSplit/TinyFEL layers)",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("factory", metavar="MODULE_PATH:FACTORY",
                        help="module name or .py file, a colon, and a callable returning the network")
    parser.add_argument("--input-shape", type=_positive_int, nargs="+", required=True,
                        metavar="N", help="shape of one input sample, e.g. 3 32 32")
    parser.add_argument("--batch-size", type=_positive_int, default=2, metavar="B",
                        help="samples in the profiled batch (default 2; >= 2 with BatchNorm)")
    parser.add_argument("--blocks", nargs="+", default=None, metavar="NAME",
                        help="submodules to cut after (default: the top-level children)")
    parser.add_argument("--format", choices=FORMATS, default="edgesplit",
                        help="edgesplit | tinyfel layers list, or the full profile (default edgesplit)")
    parser.add_argument("--measure", action="store_true",
                        help="also time forward and backward per unit (needs --format profile)")
    parser.add_argument("--repeats", type=_positive_int, default=5, metavar="R",
                        help="timed passes per unit with --measure; the median is kept (default 5)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="torch intra-op threads for --measure (default: torch's; use 1 on "
                             "a busy machine)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the input")
    parser.add_argument("-o", "--output", default=None, metavar="FILE",
                        help="JSON file (default: stdout)")
    parser.add_argument("--json", action="store_true",
                        help="stdout is JSON only: the document, or with -o a note of the file written")
    parser.set_defaults(handler=run)


def load_factory(spec: str) -> Any:
    """The callable named by ``MODULE_PATH:FACTORY`` (module name or ``.py`` file)."""
    import importlib
    import importlib.util
    from pathlib import Path

    path, sep, name = spec.rpartition(":")
    if not sep or not path or not name:
        raise _Bad(f"{spec!r}: expected MODULE_PATH:FACTORY, e.g. mypkg.nets:build")
    try:
        if path.endswith(".py") or "/" in path or "\\" in path:
            file = Path(path)
            if not file.is_file():
                raise _Bad(f"{path}: no such file")
            module_spec = importlib.util.spec_from_file_location(file.stem, file)
            if module_spec is None or module_spec.loader is None:
                raise _Bad(f"{path}: not a Python module")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(path)
    except _Bad:
        raise
    except Exception as error:  # noqa: BLE001 - any failure of user code is bad input
        raise _Bad(f"cannot import {path!r}: {type(error).__name__}: {error}") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise _Bad(f"{path!r} has no callable {name!r}")
    return factory


def run(args: argparse.Namespace) -> int:
    """Profile the network and write the chosen format; 2 on bad input."""
    from edgeopt.analysis.commands.streams import print_json, solver_output

    try:
        with solver_output(getattr(args, "verbose", False)):
            text, summary = _profile(args)
    except _Bad as error:
        print(f"edgeopt profile: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.output:
        from edgeopt.files import write_text

        write_text(args.output, text)
        print(f"wrote {args.output}", file=sys.stderr)
        if args.json:
            print_json({"output": args.output, "format": args.format})
    else:
        print(text, end="")
    print(summary, file=sys.stderr)
    return EXIT_OK


def _profile(args: argparse.Namespace) -> tuple[str, str]:
    import json

    from edgeopt.models.profiles import TorchUnavailable, from_torch, require_torch

    if args.measure and args.format != "profile":
        raise _Bad("--measure needs --format profile (the layer lists carry no times)")
    try:
        torch = require_torch("edgeopt profile")
    except TorchUnavailable as error:
        raise _Bad(str(error)) from None
    factory = load_factory(args.factory)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        network = factory()
    except Exception as error:  # noqa: BLE001 - any failure of user code is bad input
        raise _Bad(f"{args.factory}() failed: {type(error).__name__}: {error}") from None
    if not isinstance(network, torch.nn.Module):
        raise _Bad(
            f"{args.factory}() returned {type(network).__name__} {network!r:.40}, "
            "not a torch.nn.Module"
        )
    shape = (args.batch_size, *args.input_shape)
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(args.seed))
    try:
        profile = from_torch(network, example, args.blocks, measure=args.measure,
                             repeats=args.repeats, source=args.factory)
    except (ValueError, TypeError) as error:
        raise _Bad(str(error)) from None
    except Exception as error:  # noqa: BLE001 - the user's network rejects the input
        lines = str(error).strip().splitlines()
        first = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
        raise _Bad(f"the network failed on an input of shape {shape}: {first}") from None
    if args.format == "edgesplit":
        document: Any = profile.edgesplit_layers()
    elif args.format == "tinyfel":
        try:
            document = profile.tinyfel_layers()
        except ValueError as error:
            raise _Bad(str(error)) from None
    else:
        document = profile.to_dict()
    frame = profile.to_frame()[["name", "fwd_flops", "param_bytes", "out_bytes", "saved_act_bytes"]]
    summary = f"{len(profile.units)} units (per sample):\n" + frame.to_string(index=False)
    return json.dumps(document, indent=2) + "\n", summary
