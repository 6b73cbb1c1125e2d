"""Build a complete EdgeSplit or TinyFEL instance from the tables a testbed keeps.

Tables (CSV files, Excel sheets or pandas DataFrames; column names are matched without case,
spaces read as ``_``):

* **times**, long format, one row per (device, layer): ``device, layer, fwd_ms, bwd_ms,
  update_ms`` in milliseconds per mini-batch. ``update_ms`` is optional. TinyFEL reads the
  backward split ``bwd_weight_ms, bwd_act_ms`` when present, else ``bwd_ms`` split by an
  explicit ``weight_grad_share``. An optional ``batch_size`` column gives each device's
  measured mini-batch (else ``measured_batch_size``).
* **layers**, one row per layer in execution order: ``layer, activation_bytes, param_bytes``
  (output activation per sample and weight storage, bytes; ``*_kib`` columns in KiB are
  accepted, ambiguous ``*_kb`` are not). Any other column named like a layer field of the
  model (``fwd_flops``, ``act_factor``, ``grad_sq_bound``...) is copied into the instance.
* **devices** (optional), one row per device: ``device`` and device fields of the model
  (``memory_bytes``, ``samples``, ``spectral_efficiency``, ``power_w``...).
* An Excel workbook holds one sheet per device (columns ``layer, fwd_ms, bwd_ms,
  update_ms``) and a ``memory`` sheet (the layer table): :func:`read_workbook`.

Everything no table holds (bandwidth, rounds, budgets, memory, samples, FLOPs...) comes from
``fields``, a mapping of field paths (``bandwidth_hz``, ``devices[*].memory_bytes``,
``layers[*].fwd_flops``) to values. A value nobody gave is an error naming its path; nothing
is filled in silently. With EdgeSplit, ``server`` names the device of the times table that
is the server: its rows become ``server_measured``.

    >>> import pandas as pd
    >>> times = pd.DataFrame({"device": ["cpu"] * 2, "layer": ["conv", "fc"],
    ...                       "fwd_ms": [4.0, 1.0], "bwd_ms": [8.0, 2.0]})
    >>> layers = pd.DataFrame({"layer": ["conv", "fc"], "activation_bytes": [4096, 40],
    ...                        "param_bytes": [1e4, 2e4]})
    >>> model = from_tables("edgesplit", times, layers, measured_batch_size=32, fields={
    ...     "layers[*].fwd_flops": 0, "devices[*].flops_per_s": 1e9, "devices[*].memory_bytes": 4e9,
    ...     "devices[*].spectral_efficiency": 2.0, "devices[*].samples": 640,
    ...     "server_flops_per_s": 1e12, "bandwidth_hz": 1e7, "batch_size": 32, "rounds": 10})
    >>> model.instance.devices[0].measured.fwd_ms
    [4.0, 1.0]
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from edgeopt.models.errors import InstanceError, InstanceIssue
from edgeopt.models.paths import set_fields

MODELS = ("edgesplit", "tinyfel")
ACTIVATION_FIELD = {"edgesplit": "out_bytes", "tinyfel": "in_bytes"}
"""Where a layer's activation goes: EdgeSplit keeps each layer's output, TinyFEL each
layer's input (the previous layer's output; the first layer's is ``input_bytes``)."""

ALIASES = {"name": "layer", "forward_ms": "fwd_ms", "backward_ms": "bwd_ms",
           "weight_update_ms": "update_ms", "activation_kib": "activation_bytes",
           "weight_bytes": "param_bytes", "weight_kib": "param_bytes", "param_kib": "param_bytes"}
KIB_COLUMNS = {"activation_kib", "weight_kib", "param_kib"}
TIME_COLUMNS = ("fwd_ms", "bwd_ms", "bwd_weight_ms", "bwd_act_ms", "update_ms")


class TableError(ValueError):
    """A table that cannot be read as documented: names the table, the column or row."""


# ---- reading ---------------------------------------------------------------------------------
def example_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(times, layers) shipped with the package: VGG16 (CIFAR-10) measured on one CPU thread
    by :mod:`edgeopt.models.testbed.measure` (the command is in its docstring)."""
    from importlib.resources import files

    folder = files("edgeopt.models.testbed") / "data"
    with (folder / "times.csv").open() as times, (folder / "layers.csv").open() as layers:
        return read_table(pd.read_csv(times), "times"), read_table(pd.read_csv(layers), "layers")


def read_table(source: str | Path | pd.DataFrame, kind: str) -> pd.DataFrame:
    """A CSV file (or a DataFrame) with normalised column names; ``kind`` names the table in
    errors ('times', 'layers', 'devices')."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise TableError(f"{kind} table {str(source)!r}: no such file")
        frame = pd.read_csv(path)
    return _normalise(frame, kind)


def read_workbook(path: str | Path, memory_sheet: str = "memory") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(times, layers) from an Excel workbook with one sheet per device and a memory sheet
    (the layer table). Needs the optional ``excel`` extra (openpyxl)."""
    try:
        import openpyxl  # noqa: F401 - pandas' reader of .xlsx files
    except ImportError:
        raise TableError(
            "reading Excel workbooks needs openpyxl: pip install 'edgeopt[excel]'"
        ) from None
    if not Path(path).is_file():
        raise TableError(f"workbook {str(path)!r}: no such file")
    sheets = pd.read_excel(path, sheet_name=None)
    by_name = {name.strip().lower(): name for name in sheets}
    if memory_sheet.lower() not in by_name:
        raise TableError(
            f"workbook {Path(path).name!r} has no sheet {memory_sheet!r} (the layer table); "
            f"sheets: {', '.join(sheets)}"
        )
    layers = _normalise(sheets[by_name[memory_sheet.lower()]], f"sheet {memory_sheet!r}")
    frames = []
    for name, sheet in sheets.items():
        if name.strip().lower() == memory_sheet.lower():
            continue
        frame = _normalise(sheet, f"sheet {name!r}")
        if "device" in frame.columns:
            raise TableError(f"sheet {name!r}: a device sheet has no 'device' column (the sheet "
                             "name is the device)")
        frames.append(frame.assign(device=str(name).strip()))
    if not frames:
        raise TableError(f"workbook {Path(path).name!r} has no device sheet besides {memory_sheet!r}")
    return pd.concat(frames, ignore_index=True), layers


def _normalise(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    renamed: dict[Any, str] = {}
    scale: dict[str, float] = {}
    for column in frame.columns:
        key = str(column).strip().lower().replace(" ", "_").replace("(", "").replace(")", "")
        if key.endswith("_kb"):
            raise TableError(
                f"{kind} table, column {column!r}: 'KB' is ambiguous; rename it to "
                f"{key[:-3]}_kib (1024 bytes) or give bytes"
            )
        if key in KIB_COLUMNS:
            scale[ALIASES[key]] = 1024.0
        key = ALIASES.get(key, key)
        if key in renamed.values():
            raise TableError(f"{kind} table: two columns mean {key!r}")
        renamed[column] = key
    frame = frame.rename(columns=renamed)
    for column, factor in scale.items():
        frame[column] = frame[column] * factor
    for column in ("device", "layer"):
        if column in frame.columns:
            frame[column] = frame[column].astype(str).str.strip()
    return frame


# ---- building --------------------------------------------------------------------------------
def from_tables(
    model: str,
    times: str | Path | pd.DataFrame,
    layers: str | Path | pd.DataFrame,
    devices: str | Path | pd.DataFrame | None = None,
    fields: Mapping[str, Any] | None = None,
    *,
    server: str | None = None,
    measured_batch_size: int | None = None,
    weight_grad_share: float | None = None,
    input_bytes: float | None = None,
) -> Any:
    """The validated model (``EdgeSplitModel`` or ``TinyFELModel``) of the tables.

    ``fields`` maps field paths to the values no table holds. ``server`` (EdgeSplit) names
    the times-table device that is the server. ``measured_batch_size`` is the mini-batch the
    times were measured with, unless the times table has a ``batch_size`` column.
    ``weight_grad_share`` (TinyFEL, in [0, 1]) splits ``bwd_ms`` into weight and input
    gradients when the table has no ``bwd_weight_ms``/``bwd_act_ms``. ``input_bytes``
    (TinyFEL) is the input activation of the first layer per sample, unless the layer table
    has an ``in_bytes`` column. Raises :class:`TableError` for unreadable tables and
    ``InstanceError`` naming every missing or invalid field.
    """
    from edgeopt.models.registry import model_class

    if model not in MODELS:
        close = difflib.get_close_matches(str(model), MODELS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TableError(f"model {model!r}: tables import into {' or '.join(MODELS)}{hint}")
    cls = model_class(model)
    time_rows = read_table(times, "times")
    layer_rows = read_table(layers, "layers")
    layer_docs = _layers(model, layer_rows, input_bytes)
    names = [layer["name"] for layer in layer_docs]
    measured = _measured(model, time_rows, names, measured_batch_size, weight_grad_share)
    document: dict[str, Any] = {"model": model, "version": 1, "layers": layer_docs}
    if server is not None:
        if model != "edgesplit":
            raise TableError("server: only EdgeSplit has a server with measured times")
        if server not in measured:
            raise TableError(f"server {server!r} is not a device of the times table; "
                             f"{_did_you_mean(server, list(measured))}")
        document["server_measured"] = measured.pop(server)
    if not measured:
        raise TableError("times table: no device rows (besides the server)")
    document["devices"] = [{"name": name, "measured": times_} for name, times_ in measured.items()]
    if devices is not None:
        _merge_devices(document["devices"], read_table(devices, "devices"))
    document["metadata"] = {"imported_from": _provenance(times, layers, devices)}
    skipped = ignored_columns(model, layer_rows)
    if skipped:
        document["metadata"]["ignored_layer_columns"] = skipped
    document = set_fields(document, dict(fields or {}), cls.schema)
    try:
        return cls.from_dict(document)
    except InstanceError as error:
        raise InstanceError([_hint(issue) for issue in error.issues],
                            f"{model} instance built from tables") from None


def _layer_fields(model: str) -> set[str]:
    """The layer field names of ``model``'s canonical instance."""
    from edgeopt.models.registry import model_class

    layer = model_class(model).schema.model_fields["layers"].annotation.__args__[0]
    return set(layer.model_fields)


def ignored_columns(model: str, layers: pd.DataFrame) -> list[str]:
    """Columns of the layer table that are layer fields of another model only (a profile
    written for both models): they are left out, and listed in the instance's metadata."""
    own = _layer_fields(model)
    other = set().union(*(_layer_fields(name) for name in MODELS if name != model))
    return [c for c in layers.columns if c not in own and c in other]


def _layers(model: str, rows: pd.DataFrame, input_bytes: float | None) -> list[dict[str, Any]]:
    _require_columns(rows, ("layer", "activation_bytes", "param_bytes"), "layers")
    names = list(rows["layer"])
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise TableError(f"layers table: layer(s) listed twice: {', '.join(repeated)}")
    layer_fields = _layer_fields(model)
    ignored = ignored_columns(model, rows)
    extra = [c for c in rows.columns
             if c not in ("layer", "activation_bytes", "param_bytes", *ignored)]
    unknown = [c for c in extra if c not in layer_fields]
    if unknown:
        raise TableError(f"layers table, column {unknown[0]!r}: not a {model} layer field; "
                         f"{_did_you_mean(unknown[0], sorted(layer_fields))}")
    activation = [_number(v, f"layers table, row {i + 1} ({n}), activation_bytes")
                  for i, (n, v) in enumerate(zip(names, rows["activation_bytes"]))]
    docs: list[dict[str, Any]] = []
    for index, row in enumerate(rows.to_dict("records")):
        where = f"layers table, row {index + 1} ({row['layer']})"
        doc: dict[str, Any] = {"name": row["layer"],
                               "param_bytes": _number(row["param_bytes"], f"{where}, param_bytes")}
        if model == "edgesplit":
            doc["out_bytes"] = activation[index]
        elif "in_bytes" not in row:
            if index == 0 and input_bytes is None:
                raise TableError(
                    f"TinyFEL needs each layer's input activation: the first layer's "
                    f"({row['layer']}) is in no table; give input_bytes (--input-bytes, bytes "
                    "per sample) or an in_bytes column"
                )
            doc["in_bytes"] = float(input_bytes) if index == 0 else activation[index - 1]
        for column in extra:
            value = row[column]
            if not (isinstance(value, float) and math.isnan(value)):
                doc[column] = _cell(value)
        docs.append(doc)
    return docs


def _measured(model: str, rows: pd.DataFrame, names: list[str], batch: int | None,
              share: float | None) -> dict[str, dict[str, Any]]:
    _require_columns(rows, ("device", "layer", "fwd_ms"), "times")
    split = {"bwd_weight_ms", "bwd_act_ms"} <= set(rows.columns)
    if model == "edgesplit" or not split:
        _require_columns(rows, ("bwd_ms",), "times")
    if model == "tinyfel" and not split:
        if share is None:
            raise TableError(
                "times table: TinyFEL needs the backward split (weight gradients of the "
                "trained layers, input gradients above them): add bwd_weight_ms and bwd_act_ms "
                "columns, or give weight_grad_share (--weight-grad-share, the fraction of "
                "bwd_ms spent on weight gradients)"
            )
        if not 0 <= share <= 1:
            raise TableError(f"weight_grad_share = {share!r}: must be in [0, 1]")
    phases = ["fwd_ms"] + (["bwd_ms"] if model == "edgesplit" else ["bwd_weight_ms", "bwd_act_ms"])
    if "update_ms" in rows.columns:
        phases.append("update_ms")
    unknown = [c for c in rows.columns if c not in ("device", "layer", "batch_size", *TIME_COLUMNS)]
    if unknown:
        raise TableError(f"times table, column {unknown[0]!r}: not a time column; "
                         f"{_did_you_mean(unknown[0], ['device', 'layer', 'batch_size', *TIME_COLUMNS])}")
    result: dict[str, dict[str, Any]] = {}
    for device, group in rows.groupby("device", sort=False):
        given = list(group["layer"])
        missing = [n for n in names if n not in given]
        extra = [n for n in given if n not in names]
        if missing or extra or len(given) != len(set(given)):
            parts = [f"missing {', '.join(map(repr, missing))}"] if missing else []
            parts += [f"unknown layer {n!r} ({_did_you_mean(n, names)})" for n in extra]
            if len(given) != len(set(given)):
                parts.append("a layer listed twice")
            raise TableError(f"times table, device {device!r}: the layers must be those of the "
                             f"layers table; {'; '.join(parts)}")
        ordered = group.set_index("layer").loc[names]
        entry: dict[str, Any] = {"layers": names,
                                 "batch_size": _batch(device, ordered, batch)}
        for phase in phases:
            source = "bwd_ms" if phase.startswith("bwd_") and not split and model == "tinyfel" else phase
            values = [_number(v, f"times table, device {device!r}, layer {n!r}, {source}")
                      for n, v in zip(names, ordered[source])]
            if source != phase:
                fraction = share if phase == "bwd_weight_ms" else 1 - share
                values = [v * fraction for v in values]
            entry[phase] = values
        result[str(device)] = entry
    return result


def _batch(device: str, rows: pd.DataFrame, batch: int | None) -> int:
    if "batch_size" in rows.columns:
        values = set(rows["batch_size"])
        if len(values) != 1:
            raise TableError(f"times table, device {device!r}: batch_size differs between layers")
        value = values.pop()
    elif batch is not None:
        value = batch
    else:
        raise TableError(
            f"times table, device {device!r}: the mini-batch the times were measured with is "
            "in no table; give measured_batch_size (--measured-batch-size) or a batch_size column"
        )
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TableError(f"measured batch size {value!r} of device {device!r}: must be an integer >= 1")
    return int(value)


def _merge_devices(documents: list[dict[str, Any]], rows: pd.DataFrame) -> None:
    _require_columns(rows, ("device",), "devices")
    by_name = {doc["name"]: doc for doc in documents}
    for index, row in enumerate(rows.to_dict("records")):
        name = row.pop("device")
        if name not in by_name:
            raise TableError(f"devices table, row {index + 1}: device {name!r} has no times; "
                             f"{_did_you_mean(name, list(by_name))}")
        for column, value in row.items():
            if not (isinstance(value, float) and math.isnan(value)):
                by_name[name][column] = _cell(value)


def _require_columns(rows: pd.DataFrame, columns: tuple[str, ...], kind: str) -> None:
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise TableError(f"{kind} table: missing column(s) {', '.join(missing)} "
                         f"(has {', '.join(map(str, rows.columns)) or 'none'})")


def _number(value: Any, where: str) -> float:
    value = value.item() if hasattr(value, "item") else value  # NumPy scalars of a column
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TableError(f"{where} = {value!r}: must be a finite number")
    return float(value)


def _cell(value: Any) -> Any:
    """A table cell as a JSON value: NumPy scalars become Python ones, and whole floats
    integers (a column with an empty cell reads as floats; number fields accept ints)."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _did_you_mean(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"


def _provenance(*sources: Any) -> dict[str, str]:
    labels = ("times", "layers", "devices")
    return {label: (Path(source).name if not isinstance(source, pd.DataFrame) else "DataFrame")
            for label, source in zip(labels, sources) if source is not None}


def _hint(issue: InstanceIssue) -> InstanceIssue:
    """A missing field: say that no table held it and how to give it."""
    if not issue.missing:
        return issue
    generic = _generic(issue.path)
    column = {"devices": " or as a column of the devices table",
              "layers": " or as a column of the layers table"}.get(generic.split("[")[0], "")
    return InstanceIssue(
        issue.path, None,
        f"{issue.message}; no table holds it: give it as fields[{generic!r}] "
        f"(command line: --set '{generic}=VALUE'){column}",
        missing=True,
    )


def _generic(path: str) -> str:
    """``devices[2].samples`` -> ``devices[*].samples`` (the form that sets every entry)."""
    import re

    return re.sub(r"\[\d+\]", "[*]", path, count=1)
