"""Instances from a testbed's tables (issue 14, item 2): CSV, Excel, Python and ``edgeopt import``.

The tables are written from known-answer instances (times = FLOPs / speed), so the imported
instance must equal the one built by hand and solve to the spec's answer. Every value no
table holds must be given; one left out is an error naming its path.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from test_testbed_measured import edgesplit_measured, load, tinyfel_measured

from edgeopt.models import InstanceError, load_instance
from edgeopt.models.edgesplit import EdgeSplitModel
from edgeopt.models.testbed import TableError, from_tables, read_workbook
from edgeopt.solvers import solve


def tables_of(document: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(times, layers) tables holding ``document``'s measured times and layer sizes."""
    rows = []
    devices = list(document["devices"])
    if document.get("server_measured"):
        devices.append({"name": "server", "measured": document["server_measured"]})
    for device in devices:
        times = device["measured"]
        for index, layer in enumerate(times["layers"]):
            row = {"device": device["name"], "layer": layer}
            row.update({phase: times[phase][index] for phase in times
                        if phase.endswith("_ms") and times[phase] is not None})
            rows.append(row)
    key = "out_bytes" if document["model"] == "edgesplit" else "in_bytes"
    layers = pd.DataFrame({"layer": [layer["name"] for layer in document["layers"]],
                           "activation_bytes": [layer[key] for layer in document["layers"]],
                           "param_bytes": [layer["param_bytes"] for layer in document["layers"]]})
    return pd.DataFrame(rows), layers


def t1_fields(document: dict) -> dict:
    """What no table holds for T1: FLOPs, device fields and the top-level fields."""
    fields = {key: document[key] for key in ("server_flops_per_s", "bandwidth_hz", "batch_size",
                                             "rounds", "optimizer_state_factor", "server_mode",
                                             "allow_full_local", "include_sync")}
    for index, device in enumerate(document["devices"]):
        for key in ("flops_per_s", "memory_bytes", "spectral_efficiency", "samples"):
            fields[f"devices[{index}].{key}"] = device[key]
    for index, layer in enumerate(document["layers"]):
        fields[f"layers[{index}].fwd_flops"] = layer["fwd_flops"]
    return fields


@pytest.fixture
def t1():
    return edgesplit_measured(load("edgesplit_t1"))


def without_metadata(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "metadata"}


def assert_close(found, expected, rel=1e-14):
    """Equal documents up to the 15 significant digits an Excel cell keeps."""
    if isinstance(expected, dict):
        assert found.keys() == expected.keys()
        for key in expected:
            assert_close(found[key], expected[key], rel)
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for a, b in zip(found, expected):
            assert_close(a, b, rel)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=rel)
    else:
        assert found == expected


def test_edgesplit_from_tables_equals_the_instance_and_its_answer(t1):
    times, layers = tables_of(t1)
    model = from_tables("edgesplit", times, layers, fields=t1_fields(t1), server="server",
                        measured_batch_size=1)
    reference = copy.deepcopy(t1)
    for times_ in [device["measured"] for device in reference["devices"]] + [reference["server_measured"]]:
        times_["batch_size"] = 1
    written = model.to_dict()
    assert written["metadata"] == {"imported_from": {"times": "DataFrame", "layers": "DataFrame"}}
    assert without_metadata(written) == without_metadata(EdgeSplitModel.from_dict(reference).to_dict())
    result = solve(model, "exact")
    assert result.objective == pytest.approx(3.2, rel=1e-9) and result.solution["cuts"] == [2, 1]


def test_a_value_no_table_holds_is_named_never_filled(t1):
    times, layers = tables_of(t1)
    fields = t1_fields(t1)
    del fields["bandwidth_hz"], fields["devices[1].memory_bytes"]
    with pytest.raises(InstanceError) as caught:
        from_tables("edgesplit", times, layers, fields=fields, server="server", measured_batch_size=1)
    issues = {issue.path: issue for issue in caught.value.issues}
    assert set(issues) == {"bandwidth_hz", "devices[1].memory_bytes"}
    assert "--set 'devices[*].memory_bytes=VALUE'" in issues["devices[1].memory_bytes"].message
    with pytest.raises(TableError, match="measured_batch_size"):
        from_tables("edgesplit", times, layers, fields=t1_fields(t1), server="server")


def test_table_mismatches_name_the_device_and_layer(t1):
    times, layers = tables_of(t1)
    fields = t1_fields(t1)
    renamed = times.assign(layer=times["layer"].replace({"l3": "l33"}))
    with pytest.raises(TableError, match=r"device 'fast'.*missing 'l3'.*unknown layer 'l33' \(did you mean 'l3'\?\)"):
        from_tables("edgesplit", renamed, layers, fields=fields, measured_batch_size=1)
    broken = times.copy()
    broken.loc[4, "fwd_ms"] = float("nan")
    with pytest.raises(TableError, match=r"device 'slow', layer 'l2', fwd_ms = nan: must be a finite number"):
        from_tables("edgesplit", broken, layers, fields=fields, measured_batch_size=1)
    negative = times.copy()
    negative.loc[0, "bwd_ms"] = -1.0
    with pytest.raises(InstanceError, match=r"devices\[0\]\.measured\.bwd_ms\[0\] = -1\.0: must be a finite number >= 0 \[ms\]"):
        from_tables("edgesplit", negative, layers, fields=fields, measured_batch_size=1)
    with pytest.raises(TableError, match="'KB' is ambiguous"):
        from_tables("edgesplit", times, layers.rename(columns={"param_bytes": "weight KB"}),
                    fields=fields, measured_batch_size=1)
    with pytest.raises(TableError, match="server 'gpu' is not a device.*known: fast, slow, server"):
        from_tables("edgesplit", times, layers, fields=fields, server="gpu", measured_batch_size=1)


def test_whole_number_columns_are_numbers(t1):
    times, layers = tables_of(t1)
    whole = times.assign(fwd_ms=times["fwd_ms"].round().astype(int))
    model = from_tables("edgesplit", whole, layers.astype({"param_bytes": int}), fields=t1_fields(t1),
                        server="server", measured_batch_size=1)
    assert model.instance.devices[0].measured.fwd_ms == [float(v) for v in whole["fwd_ms"][:3]]


def test_kib_columns_are_scaled_to_bytes(t1):
    times, layers = tables_of(t1)
    kib = layers.assign(param_bytes=layers["param_bytes"] / 1024).rename(columns={"param_bytes": "weight KiB"})
    model = from_tables("edgesplit", times, kib, fields=t1_fields(t1), server="server",
                        measured_batch_size=1)
    assert [layer.param_bytes for layer in model.instance.layers] == [1e6, 1e6, 1e6]


def test_tinyfel_backward_split_is_read_or_asked_for():
    document = tinyfel_measured(load("tinyfel_a"))
    times, layers = tables_of(document)
    layers = layers.assign(act_factor=2, grad_sq_bound=[0.5, 0.3, 0.2])
    fields = {key: document[key] for key in ("bandwidth_hz", "noise_psd_w_per_hz", "batch_size",
                                             "local_steps", "optimizer_state_factor", "bias_budget",
                                             "min_selected", "objective", "learning")}
    for index, device in enumerate(document["devices"]):
        for key in ("flops_per_s", "memory_bytes", "samples", "power_w", "channel_gain"):
            fields[f"devices[{index}].{key}"] = device[key]
    fields["layers[*].fwd_flops"] = 0
    # in_bytes is the previous layer's activation: the table carries each layer's output
    outputs = layers.assign(activation_bytes=list(layers["activation_bytes"][1:]) + [1000.0])
    model = from_tables("tinyfel", times, outputs, fields=fields, measured_batch_size=1,
                        input_bytes=float(layers["activation_bytes"][0]))
    assert solve(model, "exact").objective == pytest.approx(1.47641658378, rel=1e-9)  # spec §6 A

    summed = times.assign(bwd_ms=times["bwd_weight_ms"] + times["bwd_act_ms"]).drop(
        columns=["bwd_weight_ms", "bwd_act_ms"])
    with pytest.raises(TableError, match="weight_grad_share"):
        from_tables("tinyfel", summed, outputs, fields=fields, measured_batch_size=1,
                    input_bytes=5e5)
    half = from_tables("tinyfel", summed, outputs, fields=fields, measured_batch_size=1,
                       input_bytes=5e5, weight_grad_share=0.5)
    assert solve(half, "exact").objective == pytest.approx(1.47641658378, rel=1e-9)  # equal split
    with pytest.raises(TableError, match="input_bytes"):
        from_tables("tinyfel", times, outputs, fields=fields, measured_batch_size=1)


def _write_csvs(tmp_path: Path, document: dict) -> tuple[Path, Path]:
    times, layers = tables_of(document)
    times_path, layers_path = tmp_path / "times.csv", tmp_path / "layers.csv"
    times.to_csv(times_path, index=False)
    layers.to_csv(layers_path, index=False)
    return times_path, layers_path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeopt.analysis.cli", "import", *args],
                          capture_output=True, text=True, timeout=300)


def test_import_command_writes_a_valid_instance(tmp_path, t1):
    times_path, layers_path = _write_csvs(tmp_path, t1)
    sets = [f"--set={path}={json.dumps(value)}" for path, value in t1_fields(t1).items()]
    out = tmp_path / "instance.json"
    done = _cli("edgesplit", "--times", str(times_path), "--layers", str(layers_path),
                "--server", "server", "--measured-batch-size", "1", *sets, "-o", str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"output": str(out), "model": "edgesplit", "devices": 2,
                                       "layers": 3, "candidate_cuts": 2}
    model = load_instance(out)
    assert model.to_dict()["metadata"] == {"imported_from": {"times": "times.csv", "layers": "layers.csv"}}
    assert solve(model, "exact").objective == pytest.approx(3.2, rel=1e-9)

    done = _cli("edgesplit", "--times", str(times_path), "--layers", str(layers_path),
                "--measured-batch-size", "1", *[s for s in sets if "rounds" not in s])
    assert done.returncode == 2 and done.stdout == ""
    assert "rounds: is required" in done.stderr and "--set 'rounds=VALUE'" in done.stderr


def test_excel_workbook_gives_the_same_instance(tmp_path, t1):
    pytest.importorskip("openpyxl")
    times, layers = tables_of(t1)
    book = tmp_path / "testbed.xlsx"
    with pd.ExcelWriter(book) as writer:
        for device, rows in times.groupby("device", sort=False):
            rows.drop(columns="device").to_excel(writer, sheet_name=device, index=False)
        layers.rename(columns={"activation_bytes": "activation KiB", "param_bytes": "weight KiB"}).assign(
            **{"activation KiB": layers["activation_bytes"] / 1024, "weight KiB": layers["param_bytes"] / 1024}
        ).to_excel(writer, sheet_name="Memory", index=False)
    sheet_times, sheet_layers = read_workbook(book)
    from_book = from_tables("edgesplit", sheet_times, sheet_layers, fields=t1_fields(t1),
                            server="server", measured_batch_size=1)
    from_frames = from_tables("edgesplit", times, layers, fields=t1_fields(t1), server="server",
                              measured_batch_size=1)
    assert_close(without_metadata(from_book.to_dict()), without_metadata(from_frames.to_dict()))

    sets = [f"--set={path}={json.dumps(value)}" for path, value in t1_fields(t1).items()]
    done = _cli("edgesplit", "--workbook", str(book), "--server", "server",
                "--measured-batch-size", "1", *sets)
    assert done.returncode == 0, done.stderr
    assert_close(without_metadata(json.loads(done.stdout)), without_metadata(from_frames.to_dict()))


def test_excel_without_openpyxl_says_which_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "openpyxl", None)
    with pytest.raises(TableError, match=r"pip install 'edgeopt\[excel\]'"):
        read_workbook(tmp_path / "missing.xlsx")
