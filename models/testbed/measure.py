"""Measure a PyTorch network's per-layer training times on this machine, as testbed tables.

Reuses the project's profiler (:func:`edgeopt.models.profiles.from_torch`, which counts FLOPs
and bytes per unit and times forward and backward per unit) and adds the weight-update time
of each unit (an SGD-with-momentum step over the unit's parameters). The result is the two
tables :func:`edgeopt.models.testbed.from_tables` reads: ``times`` (``device, layer,
batch_size, fwd_ms, bwd_ms, update_ms``, ms per mini-batch, median of ``repeats`` runs) and
``layers`` (``layer, activation_bytes, param_bytes, fwd_flops, bwd_flops,
saved_act_bytes``, per sample). Needs the ``torch`` extra.

The shipped example (``edgeopt.models.testbed.data``) was written by::

    python -m edgeopt.models.testbed.measure --network vgg16 --batch-size 8 --repeats 15 \\
        --threads 1 --device this-cpu --out models/testbed/data
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

NETWORKS = ("vgg16", "resnet18")
"""The spec's CIFAR-10 networks (:mod:`edgeopt.models.profiles.cifar`), 32x32 inputs."""


def measure_network(
    network: Any,
    example: Any,
    device: str,
    blocks: Sequence[str] | None = None,
    *,
    repeats: int = 5,
    warmup: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(times, layers) tables of ``network`` trained on the mini-batch ``example`` here.

    ``device`` is the name the times table gives this machine; ``blocks`` the cut units
    (see ``from_torch``). Times are medians over ``repeats`` timed runs after ``warmup``.
    """
    from edgeopt.models.profiles import from_torch

    profile = from_torch(network, example, blocks, measure=True, repeats=repeats, warmup=warmup)
    update_s = update_times(network, [unit.param_names for unit in profile.units], repeats, warmup)
    times = pd.DataFrame({
        "device": device,
        "layer": profile.names,
        "batch_size": profile.batch_size,
        "fwd_ms": [1000.0 * unit.fwd_time_s for unit in profile.units],
        "bwd_ms": [1000.0 * unit.bwd_time_s for unit in profile.units],
        "update_ms": [1000.0 * seconds for seconds in update_s],
    })
    layers = pd.DataFrame({
        "layer": profile.names,
        "activation_bytes": [unit.out_bytes for unit in profile.units],
        "param_bytes": [unit.param_bytes for unit in profile.units],
        "fwd_flops": [unit.fwd_flops for unit in profile.units],
        "bwd_flops": [unit.bwd_flops for unit in profile.units],
        "saved_act_bytes": [unit.saved_act_bytes for unit in profile.units],
    })
    return times, layers


def update_times(network: Any, param_names: Sequence[Sequence[str]], repeats: int,
                 warmup: int) -> list[float]:
    """Median time [s] of one SGD-with-momentum step over each unit's parameters (0 for a
    unit without parameters). Gradients are random: the step's cost does not depend on them."""
    import torch

    named = dict(network.named_parameters())
    result = []
    with torch.no_grad():
        for names in param_names:
            params = [named[name] for name in names if name in named]
            if not params:
                result.append(0.0)
                continue
            saved = [p.detach().clone() for p in params]
            grads = [p.grad for p in params]
            for p in params:
                p.grad = torch.randn_like(p)
            optimizer = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
            samples = []
            for run in range(warmup + repeats):
                start = time.perf_counter()
                optimizer.step()
                if run >= warmup:
                    samples.append(time.perf_counter() - start)
            for p, value, grad in zip(params, saved, grads):
                p.copy_(value)
                p.grad = grad
            result.append(statistics.median(samples))
    return result


def main(argv: list[str] | None = None) -> int:
    """Measure one of :data:`NETWORKS` and write ``times.csv`` and ``layers.csv``."""
    parser = argparse.ArgumentParser(prog="python -m edgeopt.models.testbed.measure",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=NETWORKS, default="vgg16")
    parser.add_argument("--batch-size", type=int, default=8, help="samples per timed mini-batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per unit (median kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="this-cpu", help="name of this machine in the table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for times.csv, layers.csv")
    args = parser.parse_args(argv)

    from edgeopt.models.profiles import TorchUnavailable, require_torch

    try:
        torch = require_torch("measuring a network")
    except TorchUnavailable as error:
        print(error, file=sys.stderr)
        return 2
    from edgeopt.models.profiles import cifar

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    network = getattr(cifar, args.network)()
    example = torch.randn(args.batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    times, layers = measure_network(network, example, args.device, repeats=args.repeats)
    from edgeopt.files import atomic_path

    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "times.csv") as temporary:
        times.to_csv(temporary, index=False, float_format="%.6g")
    with atomic_path(args.out / "layers.csv") as temporary:
        layers.to_csv(temporary, index=False)
    print(f"wrote {args.out / 'times.csv'} and {args.out / 'layers.csv'} "
          f"({args.network}, batch {args.batch_size}, torch {torch.__version__}, "
          f"{args.threads} thread(s))", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
