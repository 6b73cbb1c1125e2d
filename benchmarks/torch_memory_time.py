"""TinyFEL's memory model and EdgeSplit's time model against real PyTorch training (CPU).

    .venv/bin/python benchmarks/torch_memory_time.py                        # both networks
    .venv/bin/python benchmarks/torch_memory_time.py --networks resnet18-cifar10 \\
        --batch-size 32 --optimizer momentum --repeats 7 --allocator --direct

For each CIFAR network (plain torch.nn, random weights and data, nothing downloaded):

1. memory: one steady-state training step per TinyFEL option n (top n units updated, the
   rest frozen), peak live tensor bytes by category, against M_n with the profiled
   saved-activation factors (``model``) and with the spec's analytic ones (``reference``);
   ``--allocator`` adds the CPU allocator's peak of the same step (torch.profiler);
   then the >40% memory-saving claim from each;
2. time: measured device-side compute per cut (forward + backward of units 1..c, median of
   ``--repeats`` training passes) against EdgeSplit's FLOP-proportional time with one fitted
   FLOP/s; ``--direct`` also times each prefix network alone, interleaved; then the
   effective FLOP/s per unit and per layer type.

Requires the ``edgeopt[torch]`` extra. Takes about a minute per network with the defaults.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from edgeopt.analysis.torch_checks import edgesplit_time_check, memory_claim, tinyfel_memory_check
from edgeopt.models.tinyfel.profiles import tinyfel_layers

NETWORKS = ("resnet18-cifar10", "vgg16-cifar10")
MEMORY_COLUMNS = [
    "n", "first_unit", "measured_mib", "allocator_mib", "model_mib", "error_pct", "reference_mib",
    "reference_error_pct", "phase", "weights", "gradients", "optimizer", "saved", "input", "other",
    "model_weights", "model_grad_opt", "model_saved", "model_transient",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS))
    parser.add_argument("--batch-size", type=int, default=32, help="training batch (default 32)")
    parser.add_argument("--optimizer", choices=("sgd", "momentum", "adam"), default="momentum",
                        help="kappa 1, 2, 3 (default momentum)")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes (default 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--allocator", action="store_true", help="add the allocator-level peak")
    parser.add_argument("--direct", action="store_true", help="also time each prefix network")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-time", action="store_true")
    args = parser.parse_args(argv)

    from edgeopt.models.profiles.cifar import NETWORKS as BUILDERS

    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 40)
    fmt = {"float_format": lambda x: f"{x:.4g}", "index": False}
    for name in args.networks:
        started = time.perf_counter()
        print(f"\n=== {name}: batch {args.batch_size}, {args.optimizer}, {args.threads} thread(s)")
        if not args.skip_memory:
            table = tinyfel_memory_check(
                BUILDERS[name], (3, 32, 32), 10, batch_size=args.batch_size,
                optimizer=args.optimizer, reference_layers=tinyfel_layers(name),
                allocator=args.allocator, threads=args.threads,
            )
            columns = [c for c in MEMORY_COLUMNS if c in table]
            print("\n-- peak training memory per option n [MiB] (measured categories at the peak)")
            print(table[columns].to_string(**fmt))
            print("\n-- memory saved against full-model training (claim: > 40%)")
            print(memory_claim(table).to_string(**fmt))
        if not args.skip_time:
            check = edgesplit_time_check(
                BUILDERS[name], (3, 32, 32), batch_size=args.batch_size, repeats=args.repeats,
                direct=args.direct, threads=args.threads,
            )
            print(f"\n-- device compute per cut [s per batch]; fitted f = "
                  f"{check.flops_per_s / 1e9:.1f} GFLOP/s")
            print(check.per_cut.to_string(**fmt))
            print("\n-- per unit")
            print(check.per_unit.to_string(**fmt))
            print("\n-- per layer type (torch.profiler; FLOP/s where FLOPs are counted)")
            print(check.per_type.to_string(**fmt))
        print(f"\n({name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
