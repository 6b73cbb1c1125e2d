"""The shipped testbed tables, the measurement that wrote them, and measured vs FLOP plans
(issue 14, items 6-7)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_testbed_measured import edgesplit_measured, load, tinyfel_measured

from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.models.testbed import example_tables, from_tables
from edgeopt.models.testbed.compare import fitted_flop_model, plan_gap, plan_gap_sweep
from edgeopt.models.tinyfel import TinyFELModel

FLEET = {"devices[*].flops_per_s": 1.0, "devices[*].memory_bytes": 2e9,
         "devices[*].spectral_efficiency": 1.5, "devices[1].spectral_efficiency": 4.5,
         "devices[*].samples": 640, "server_flops_per_s": 1e13, "bandwidth_hz": 2e7,
         "batch_size": 8, "rounds": 50}


def example_model(**changes) -> EdgeSplitModel:
    times, layers = example_tables()
    fleet = pd.concat([times.assign(device="a"), times.assign(device="b")], ignore_index=True)
    return from_tables("edgesplit", fleet, layers, fields={**FLEET, **changes})


def test_shipped_tables_are_the_profiled_vgg16():
    times, layers = example_tables()
    preset = EdgeSplitModel.preset("vgg16-cifar10-hetero8").instance.layers
    assert list(layers["layer"]) == [layer.name.replace("+", "_") for layer in preset]
    assert list(layers["fwd_flops"]) == [layer.fwd_flops for layer in preset]  # spec §7.1, exact
    assert list(layers["param_bytes"]) == [layer.param_bytes for layer in preset]
    assert list(layers["activation_bytes"]) == [layer.out_bytes for layer in preset]
    assert set(times["device"]) == {"this-cpu"} and set(times["batch_size"]) == {8}
    assert list(times["layer"]) == list(layers["layer"])
    for column in ("fwd_ms", "bwd_ms", "update_ms"):
        assert all(math.isfinite(v) and v >= 0 for v in times[column]), column
    assert (times["fwd_ms"] > 0).all() and (times["bwd_ms"] > 0).all()


def test_fitted_flop_model_keeps_the_full_step_time():
    model = example_model(allow_full_local=True)
    fitted = fitted_flop_model(model)
    assert all(device.measured is None for device in fitted.instance.devices)
    measured_s, flop_s = model.options.device_s, fitted.options.device_s
    assert flop_s[:, -1] == pytest.approx(measured_s[:, -1], rel=1e-12)  # c = L: the whole step
    assert not np.allclose(flop_s[:, :-1], measured_s[:, :-1], rtol=1e-3)  # the spread differs

    document = tinyfel_measured(load("tinyfel_a"), only=1, speeds={"l1": 5.0})
    tiny = TinyFELModel.from_dict(document)
    tiny_fit = fitted_flop_model(tiny)
    assert tiny_fit.options.compute_s[:, -1] == pytest.approx(tiny.options.compute_s[:, -1], rel=1e-12)
    assert tiny_fit.instance.devices[0] == tiny.instance.devices[0]  # FLOP device unchanged


def test_measured_optimum_is_never_worse_than_the_flop_plan_on_the_testbed():
    sweep = plan_gap_sweep(example_model(), "bandwidth_hz", np.geomspace(2e6, 2e8, 7))
    assert (sweep["regret_pct"] >= -1e-7).all()
    assert (sweep["flop_on_testbed_s"] >= sweep["measured_s"] * (1 - 1e-9)).all()
    assert sweep["differs"].dtype == bool and len(sweep) == 7


def test_no_regret_when_measured_times_are_flops_over_speed():
    model = EdgeSplitModel.from_dict(edgesplit_measured(load("edgesplit_t1")))
    gap = plan_gap(model)
    assert gap["measured_plan"] == gap["flop_plan"] == (2, 1)
    assert gap["measured_s"] == pytest.approx(3.2, rel=1e-9)
    assert gap["regret_pct"] == pytest.approx(0.0, abs=1e-6)


def test_measure_network_writes_tables_from_tables_reads():
    torch = pytest.importorskip("torch")
    from edgeopt.models.testbed.measure import measure_network

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    times, layers = measure_network(network, torch.randn(4, 6), "tiny", repeats=2)
    assert list(times.columns) == ["device", "layer", "batch_size", "fwd_ms", "bwd_ms", "update_ms"]
    assert list(layers["param_bytes"]) == [4 * (6 * 5 + 5), 0.0, 4 * (5 * 2 + 2)]
    assert list(layers["fwd_flops"]) == [2 * 6 * 5, 0.0, 2 * 5 * 2]
    assert (times["update_ms"] > 0).tolist() == [True, False, True]  # ReLU has no weights
    one_device = {k: v for k, v in FLEET.items() if not k.startswith("devices[1]")}
    model = from_tables("edgesplit", times, layers, fields={**one_device, "batch_size": 4})
    assert model.instance.devices[0].measured.batch_size == 4


@pytest.mark.slow
def test_testbed_notebook_runs_outside_the_repository(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = Path(__file__).resolve().parents[1] / "notebooks" / "testbed.ipynb"
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2


def test_shipped_tables_import_into_tinyfel_with_an_explicit_backward_split():
    times, layers = example_tables()
    fields = {"devices[*].flops_per_s": 1.0, "devices[*].memory_bytes": 2e9, "devices[*].samples": 100,
              "devices[*].power_w": 0.2, "devices[*].channel_gain": 1e-10,
              "layers[*].act_factor": 3, "layers[*].grad_sq_bound": 1.0, "bandwidth_hz": 1e7,
              "noise_psd_w_per_hz": 4e-21, "batch_size": 8, "local_steps": 2,
              "optimizer_state_factor": 2, "bias_budget": 0.9, "min_selected": 1,
              "objective": "round_latency"}
    model = from_tables("tinyfel", times, layers, fields=fields, weight_grad_share=0.5,
                        input_bytes=3 * 32 * 32 * 4)
    assert model.to_dict()["metadata"]["ignored_layer_columns"] == ["bwd_flops", "saved_act_bytes"]
    assert model.instance.layers[1].in_bytes == layers["activation_bytes"][0]
    # n = L trains every layer: all forward, backward and update time but layer 1's input gradient
    step_ms = (times["fwd_ms"].sum() + times["bwd_ms"].sum() + times["update_ms"].sum()
               - 0.5 * times["bwd_ms"][0])
    assert model.options.compute_s[0, -1] == pytest.approx(2 * step_ms / 1000, rel=1e-12)
