"""Shared fixtures: the spec's known-answer instances and random instance generators."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings

from edgeopt.models.two_stage import TwoStageModel

DATA = Path(__file__).parent / "data"

settings.register_profile("regular", max_examples=10, deadline=None, print_blob=True)
settings.register_profile("slow", max_examples=200, deadline=None, print_blob=True)
"""Hypothesis budgets: ``regular`` for every test run (the property suites take well under a
minute), ``slow`` with ``pytest --slow`` (20x the examples). Tests scale ``max_examples`` with
``properties.examples``."""


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the property suites with the large hypothesis budget")


def pytest_configure(config):
    settings.load_profile("slow" if config.getoption("--slow") else "regular")


def known_answer_path(name: str) -> Path:
    """tests/data/edgesplit_<name>.json for name in t1, t2, t3 (spec §6)."""
    return DATA / f"edgesplit_{name}.json"


def random_tinyfel_layers(rng: np.random.Generator, count: int) -> list[dict]:
    """``count`` random TinyFEL layers at the scale of the spec's instance A (FLOP ~ 1e9,
    parameters ~ 1e5 bytes, G_l^2 in [0.1, 1])."""
    return [
        {
            "name": f"l{j + 1}",
            "fwd_flops": float(rng.uniform(5e8, 3e9)),
            "bwd_weight_flops": None,
            "bwd_act_flops": None,
            "param_bytes": float(rng.uniform(5e4, 8e5)),
            "in_bytes": float(rng.uniform(1e5, 5e5)),
            "act_factor": 2,
            "grad_sq_bound": float(rng.uniform(0.1, 1.0)),
        }
        for j in range(count)
    ]


def random_edgesplit_document(
    rng: np.random.Generator,
    devices: int = 3,
    layers: int = 4,
    server_mode: str = "dedicated",
    include_sync: bool | None = None,
    allow_full_local: bool | None = None,
) -> dict:
    """A random, memory-feasible EdgeSplit instance with SI-scale numbers (seconds ~ 0.1-10)."""
    layer_list = [
        {
            "name": f"l{j + 1}",
            "fwd_flops": float(rng.uniform(1e8, 2e9)),
            "bwd_flops": None if rng.random() < 0.7 else float(rng.uniform(1e8, 4e9)),
            "param_bytes": float(rng.uniform(1e4, 2e6)),
            "out_bytes": float(rng.uniform(1e3, 1e6)),
            "saved_act_bytes": None if rng.random() < 0.7 else float(rng.uniform(1e3, 1e6)),
        }
        for j in range(layers)
    ]
    device_list = [
        {
            "name": f"d{i}",
            "flops_per_s": float(rng.uniform(1e9, 3e10)),
            "memory_bytes": float(rng.uniform(5e7, 1e9)),
            "spectral_efficiency": float(rng.uniform(0.5, 5.0)),
            "samples": int(rng.integers(1, 50)),
        }
        for i in range(devices)
    ]
    return {
        "model": "edgesplit",
        "version": 1,
        "layers": layer_list,
        "devices": device_list,
        "server_flops_per_s": float(rng.uniform(5e9, 1e11)),
        "bandwidth_hz": float(rng.uniform(1e6, 5e7)),
        "batch_size": int(rng.integers(1, 16)),
        "rounds": int(rng.integers(1, 20)),
        "optimizer_state_factor": float(rng.choice([1.0, 2.0, 3.0])),
        "server_mode": server_mode,
        "allow_full_local": bool(rng.random() < 0.3) if allow_full_local is None else allow_full_local,
        "include_sync": bool(rng.random() < 0.7) if include_sync is None else include_sync,
    }


def random_two_stage(rng: np.random.Generator, devices: int, rounds: tuple[int, int],
                     cap: int = 16) -> TwoStageModel:
    """A small random fleet of the §8 cell whose budgets bind: T_max is 0.7-1.1 of the least
    delay of the largest cell at the caps, E_max 0.3-1 of that cell's least energy."""
    doc = TwoStageModel.preset("default", devices=devices,
                               seed=int(rng.integers(1 << 30))).to_dict()
    doc["server"]["max_batch"] = int(rng.integers(4, 2 * cap))
    doc["server"]["max_clock_hz"] = float(rng.uniform(0.5e9, 5e9))
    for device in doc["devices"]:
        device["max_batch"] = int(rng.integers(2, cap))
        device["max_clock_hz"] = float(rng.uniform(0.2e9, 1e9))
    doc["max_pretrain_rounds"], doc["max_finetune_rounds"] = rounds
    doc["learning"].update(initial_gap=float(rng.uniform(0.02, 0.3)),
                           grad_variance=float(rng.uniform(4, 40)),
                           shift=float(rng.uniform(0.2, 2.0)))
    caps = (doc["server"]["max_batch"], [d["max_batch"] for d in doc["devices"]])
    model = TwoStageModel.from_dict(doc)
    slowest = model.min_energy(*rounds, *caps, energy_budget_j=1e9)
    doc["delay_budget_s"] = float(slowest.min_delay_s * rng.uniform(0.7, 1.1))
    model = TwoStageModel.from_dict(doc)
    cheapest = model.min_energy(*rounds, *caps, energy_budget_j=1e9)
    if not math.isfinite(cheapest.energy_j):
        cheapest = model.min_energy(*rounds, *caps, delay_budget_s=1e6)
    doc["energy_budget_j"] = float(cheapest.energy_j * rng.uniform(0.3, 1.0))
    return TwoStageModel.from_dict(doc)



@pytest.fixture(params=["t1", "t2", "t3"])
def known_answer(request):
    from edgeopt.models import load_instance

    return request.param, load_instance(known_answer_path(request.param))
