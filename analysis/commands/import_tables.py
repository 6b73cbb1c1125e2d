"""``edgeopt import``: a complete instance file from a testbed's measured tables.

    edgeopt import MODEL (--times TIMES.csv --layers LAYERS.csv | --workbook BOOK.xlsx)
        [--devices DEVICES.csv] [--server NAME] [--measured-batch-size B]
        [--weight-grad-share X] [--input-bytes N] [--set PATH=VALUE ...] [-o instance.json] [--json]

MODEL is ``edgesplit`` or ``tinyfel``. TIMES is the long table ``device, layer, fwd_ms,
bwd_ms, update_ms`` (ms per mini-batch), LAYERS ``layer, activation_bytes, param_bytes``
(bytes per sample), DEVICES optional per-device fields; a workbook holds one sheet per
device and a ``memory`` sheet. ``--set`` gives what no table holds, as a field path and a
JSON value: ``--set bandwidth_hz=2e7 --set 'devices[*].memory_bytes=4e9'``. A value nobody
gave is an error naming its path; nothing is filled in silently. The instance is validated
and written as canonical JSON (stdout or ``-o``). Exit codes: 0 written, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _assignment(text: str) -> tuple[str, Any]:
    """``PATH=VALUE`` with VALUE read as JSON (a bare word stays a string)."""
    import json

    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: expected PATH=VALUE, e.g. bandwidth_hz=2e7")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return path.strip(), value


def register(subparsers: Any) -> None:
    """Add the ``import`` parser."""
    parser = subparsers.add_parser(
        "import", help="build an EdgeSplit/TinyFEL instance from measured per-layer tables",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("model", choices=("edgesplit", "tinyfel"), help="model id")
    parser.add_argument("--times", metavar="CSV", help="long table device,layer,fwd_ms,bwd_ms,update_ms")
    parser.add_argument("--layers", metavar="CSV", help="layer table layer,activation_bytes,param_bytes")
    parser.add_argument("--workbook", metavar="XLSX",
                        help="Excel workbook: one sheet per device and a memory sheet (needs edgeopt[excel])")
    parser.add_argument("--memory-sheet", default="memory", metavar="NAME",
                        help="the workbook's layer sheet (default: memory)")
    parser.add_argument("--devices", metavar="CSV", help="optional table device,<device fields>...")
    parser.add_argument("--server", metavar="NAME",
                        help="EdgeSplit: the times-table device that is the server")
    parser.add_argument("--measured-batch-size", type=int, metavar="B",
                        help="mini-batch the times were measured with (unless the times table has batch_size)")
    parser.add_argument("--weight-grad-share", type=float, metavar="X",
                        help="TinyFEL without bwd_weight_ms/bwd_act_ms: share of bwd_ms on weight gradients")
    parser.add_argument("--input-bytes", type=float, metavar="N",
                        help="TinyFEL: input activation of the first layer per sample [byte]")
    parser.add_argument("--set", dest="fields", type=_assignment, action="append", default=[],
                        metavar="PATH=VALUE", help="a field no table holds (repeatable)")
    parser.add_argument("-o", "--output", metavar="FILE", help="instance file (default: stdout)")
    parser.add_argument("--json", action="store_true",
                        help="stdout is JSON only: the instance, or with -o a note of the file written")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Build, validate and write the instance; 2 on bad input."""
    from edgeopt.models.errors import InstanceError
    from edgeopt.models.testbed import TableError, from_tables, read_workbook

    try:
        if args.workbook:
            if args.times or args.layers:
                raise TableError("give --workbook or --times with --layers, not both")
            times, layers = read_workbook(args.workbook, args.memory_sheet)
        elif args.times and args.layers:
            times, layers = args.times, args.layers
        else:
            raise TableError("give --times and --layers (CSV files) or --workbook")
        model = from_tables(
            args.model, times, layers, args.devices, dict(args.fields), server=args.server,
            measured_batch_size=args.measured_batch_size,
            weight_grad_share=args.weight_grad_share, input_bytes=args.input_bytes,
        )
    except (TableError, InstanceError) as error:
        print(f"edgeopt import: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = model.to_json() + "\n"
    if args.output:
        from edgeopt.files import write_text

        write_text(args.output, text)
        print(f"wrote {args.output}: {model!r}", file=sys.stderr)
        if args.json:
            from edgeopt.analysis.commands.streams import print_json

            print_json({"output": args.output, "model": model.model_id, **model.size})
    else:
        sys.stdout.write(text)
    return EXIT_OK
