"""Sphinx extension: write the pages generated from the package before Sphinx reads sources.

Everything here iterates the registries, so a model that registers appears on its own:

* ``generated/models/<id>.md``: the model card (formulation and convergence terms in LaTeX
  from the model's SymPy expressions, parameter table from its pydantic schema, methods with
  their guarantees from the solver registry, a small measured scaling table);
* ``generated/derivations/<id>.md``: the convergence derivation step by step, from the
  model's verifier plug-in (every step is checked by ``edgeopt verify <id> --symbolic``);
* ``generated/cli.md``: the command-line reference, from the argparse parser;
* ``generated/formats.md`` and ``generated/schemas/*.json``: JSON Schemas of instances and
  result documents.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

SCALING_SIZES = (4, 8, 16)
"""Fleet sizes (the presets' ``devices`` option) of the measured scaling table."""

SCALING_TIME_LIMIT_S = 10.0
"""Time limit of each solve in the scaling table [s]."""

KIND_GUARANTEES = {
    "exact": "proves optimality: returns the optimum with a matching bound (gap 0), or an honest "
    "time_limit status with its incumbent and bound",
    "relaxation": "a valid lower bound on the optimum, and a rounded point checked by the evaluator",
    "heuristic": "a point checked by the evaluator; no bound",
    "baseline": "the reference policy the paper compares against; a point checked by the evaluator",
    "approximate": "a restriction of the problem: an upper bound only",
}
"""What each kind of method promises (every returned point is re-checked by ``evaluate``)."""


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", _generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


def _generate(app: Sphinx) -> None:
    out = Path(app.srcdir) / "generated"
    write_all(out)


def write_all(out: Path) -> None:
    """Write every generated page under ``out`` (pages whose text is unchanged are kept)."""
    from edgeopt.models.registry import MODEL_IDS

    model_ids = sorted(MODEL_IDS)
    cards = [f"models/{model_id}" for model_id in model_ids]
    derivations = [f"derivations/{model_id}" for model_id in model_ids if _verifier(model_id)]
    _write(out / "models" / "index.md", _toctree_page("Model cards", _MODELS_INTRO, [Path(c).name for c in cards]))
    for model_id in model_ids:
        _write(out / "models" / f"{model_id}.md", model_card(model_id))
    _write(
        out / "derivations" / "index.md",
        _toctree_page("Convergence derivations", _DERIVATIONS_INTRO, [Path(d).name for d in derivations]),
    )
    for page in derivations:
        model_id = Path(page).name
        _write(out / "derivations" / f"{model_id}.md", derivation_page(model_id))
    _write(out / "cli.md", cli_reference())
    schemas = {f"{model_id}.instance": instance_schema(model_id) for model_id in model_ids}
    schemas.update({f"{model_id}.result": result_schema(model_id) for model_id in model_ids})
    for name, schema in schemas.items():
        _write(out / "schemas" / f"{name}.schema.json", json.dumps(schema, indent=2) + "\n")
    _write(out / "formats.md", formats_page(model_ids, schemas))


# ---- model cards -----------------------------------------------------------------------
_MODELS_INTRO = """One card per registered model, generated from the model class, its pydantic
schema, its SymPy convergence terms and the solver registry."""


def model_card(model_id: str) -> str:
    """The Markdown card of ``model_id``."""
    from edgeopt.models.registry import model_class
    from edgeopt.solvers import solvers_for

    cls = model_class(model_id)
    model = _sample_model(cls)
    lines = [f"# `{model_id}`: {cls.__name__}", "", _first_paragraph(inspect.getmodule(cls)), ""]
    lines += ["## Formulation", "", f"Objective: `{cls.objective}`", "", "Decision variables:", ""]
    lines += _table(
        ["variable", "domain", "shape", "unit", "meaning"],
        [[f"`{v.name}`", v.domain, v.shape, v.unit, v.description] for v in cls.variables],
    )
    lines += ["", "Constraints (the names are the keys of `Evaluation.violations`):", ""]
    lines += _table(
        ["constraint", "statement", "unit"],
        [[f"`{c.name}`", f"`{c.statement}`", c.unit] for c in cls.constraints],
    )
    lines += ["", "## Convergence terms", ""]
    lines += [
        "The SymPy expressions the solvers and the evaluator use "
        f"(`{cls.__name__}.convergence_terms()`), printed by `sympy.latex`:",
        "",
    ]
    for name, expression in _sympy_terms(model).items():
        lines += [f"`{name}`", "", "$$", expression, "$$", ""]
    if _verifier(model_id):
        lines += [f"Their derivation step by step: [{model_id} derivation](../derivations/{model_id}.md).", ""]
    lines += ["## Parameters", "", "Generated from the pydantic schema of the canonical instance.", ""]
    frame = cls.parameters()
    lines += _table(
        ["field", "unit", "allowed", "default", "meaning"],
        [[f"`{r.field}`", r.unit, r.allowed, _default(r.default), r.description] for r in frame.itertuples()],
    )
    lines += ["", "## Size limits", ""]
    if cls.size_limits:
        lines += ["What the model rejects, or a method declines, before any work "
                  f"(`{cls.__name__}.size_limits`):", ""]
        lines += _table(["limited", "limit", "enforced", "why"],
                        [[limit.what, limit.limit, limit.enforced, limit.why]
                         for limit in cls.size_limits])
    else:
        lines += ["None beyond the parameter ranges above."]
    specs = solvers_for(model_id).specs
    lines += ["", "## Methods", "", "What each kind of method guarantees:", ""]
    for kind in sorted({spec.kind for spec in specs}, key=list(KIND_GUARANTEES).index):
        lines.append(f"- **{kind}**: {KIND_GUARANTEES[kind]}.")
    lines += [""]
    lines += _table(
        ["method", "kind", "backends", "capabilities", "description"],
        [
            [
                f"`{s.method}`",
                s.kind,
                ", ".join(s.backends) or "(pure Python)",
                ", ".join(sorted(c.value for c in s.capabilities)) or "-",
                s.description,
            ]
            for s in specs
        ],
    )
    lines += ["", "## Measured scaling", "", *_scaling_section(model_id), ""]
    return "\n".join(lines)


def _sample_model(cls: Any) -> Any:
    """The model's first preset: a representative instance for its convergence terms."""
    presets = importlib.import_module(cls.presets_module)
    return cls.preset(presets.preset_names()[0])


def _sympy_terms(model: Any) -> dict[str, str]:
    import sympy as sp

    return {
        name: sp.latex(expression)
        for name, expression in model.convergence_terms().items()
        if isinstance(expression, sp.Basic)
    }


def _scaling_section(model_id: str) -> list[str]:
    """A scaling table measured during the build: default exact, relaxation and heuristic."""
    from edgeopt.analysis.bench import bench, family
    from edgeopt.models.registry import model_class

    cls = model_class(model_id)
    preset_name = importlib.import_module(cls.presets_module).preset_names()[0]
    kinds = [k for k in ("exact", "relaxation", "heuristic") if any(s.kind == k for s in _specs(model_id))]
    try:
        instances = family(model_id, preset_name, sizes=list(SCALING_SIZES), seeds=[0])
        runs = bench(instances, kinds, repeats=1, time_limit=SCALING_TIME_LIMIT_S, progress=False)
    except TypeError as error:  # the preset takes no ``devices`` option
        return [f"Not measured: preset `{preset_name}` cannot be scaled by its device count ({error})."]
    size = "devices" if "devices" in runs.columns else "instance"
    header = [size, *(f"{kind} (default method)" for kind in kinds)]
    rows = []
    for value, group in runs.groupby(size, sort=True):
        by_kind = {row.method: row for row in group.itertuples()}
        rows.append([value, *(_timed(by_kind.get(kind)) for kind in kinds)])
    return [
        f"Measured while this page was built: preset `{preset_name}` with "
        f"{', '.join(map(str, SCALING_SIZES))} devices (seed 0), the default method of each kind "
        f"(one run each, time limit {SCALING_TIME_LIMIT_S:g} s): wall-clock seconds and status. "
        "Times depend on the build machine: compare them as ratios. The scripts in "
        "`benchmarks/` measure larger fleets over several runs.",
        "",
        *_table(header, rows),
    ]


def _timed(row: Any) -> str:
    if row is None or row.status == "skipped":
        return "-"
    return f"{row.time_s:.3g} s ({row.status})"


def _specs(model_id: str) -> tuple[Any, ...]:
    from edgeopt.solvers import solvers_for

    return solvers_for(model_id).specs


# ---- derivations -----------------------------------------------------------------------
_DERIVATIONS_INTRO = """Each model's convergence term derived step by step in SymPy. Every
step is checked by `edgeopt verify <model> --symbolic`: identities symbolically and at random
points, inequalities at random points drawn to satisfy their assumptions (and through a
non-negative certificate where one is given)."""


def _verifier(model_id: str) -> Any:
    from edgeopt.analysis.verification.registry import VERIFIERS, verifier

    return verifier(model_id) if model_id in VERIFIERS else None


def derivation_page(model_id: str) -> str:
    """The derivation of ``model_id`` as Markdown: one section per step."""
    import sympy as sp

    lines = [f"# `{model_id}` derivation", "", _first_paragraph(_verifier(model_id)), ""]
    for step in _verifier(model_id).steps():
        lines += [f"## {step.name}", "", f"Claim: `{step.statement}`", ""]
        if step.assumptions:
            lines += [f"Assumptions: {step.assumptions}", ""]
        if step.lhs is None:
            lines += ["Checked numerically (no closed form): both sides computed at random points.", ""]
            continue
        relation = r"=" if step.relation == "==" else r"\le"
        lines += ["$$", f"{sp.latex(step.lhs)} {relation} {sp.latex(step.rhs)}", "$$", ""]
    return "\n".join(lines)


# ---- command line ----------------------------------------------------------------------
def cli_reference() -> str:
    """Every command of ``edgeopt`` with its help, from the parser the program uses."""
    import argparse

    from edgeopt.analysis.cli import build_parser

    parser = build_parser()
    parser.prog = "edgeopt"
    lines = ["# Command line", "", "Generated from the `edgeopt` argument parser.", ""]
    lines += ["```text", parser.format_help().rstrip(), "```", ""]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in subparsers.choices.items():
        lines += [f"## `edgeopt {name}`", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


# ---- file formats ----------------------------------------------------------------------
def instance_schema(model_id: str) -> dict[str, Any]:
    """The JSON Schema of ``model_id``'s canonical instance, from its pydantic schema."""
    from edgeopt.models.registry import model_class

    return model_class(model_id).schema.model_json_schema()


def result_schema(model_id: str) -> dict[str, Any]:
    """The JSON Schema of the result document ``Result.to_dict()`` writes for ``model_id``.

    The solution fields are those of the model's empty solution (the registry's
    ``empty_solution``); the envelope fields those every result carries.
    """
    from edgeopt.models.registry import model_class
    from edgeopt.solvers import Status, solvers_for

    model = _sample_model(model_class(model_id))
    solution = solvers_for(model_id).empty_solution(model)
    number = {"type": ["number", "null"]}
    properties: dict[str, Any] = {
        "model": {"const": model_id},
        "status": {"enum": sorted({s.value for s in Status} - {Status.ITERATION_LIMIT.value})},
        "objective": {**number, "description": "objective value in the model's unit"},
        "bound": {**number, "description": "proven lower bound (minimisation)"},
        **{name: _value_schema(value) for name, value in solution.items()},
        "method": {"type": "string"},
        "solver": {"type": ["string", "null"]},
        "wall_time_s": {"type": "number", "description": "method wall time [s]"},
        "message": {"type": "string"},
        "infeasible_reason": {"type": "string"},
        "termination": {"type": "string"},
        "solver_version": {"type": "string"},
        "seed": {"type": "integer"},
        "verified": {"type": "boolean", "description": "the model's evaluator accepted the point"},
        "breakdown": {"type": "object", "additionalProperties": {"type": "array"}},
        "options": {"type": "object"},
        "trace": {"type": "array", "items": {"type": "object"}},
        "result_status": {"enum": sorted(s.value for s in Status),
                          "description": "the exact status (status is the canonical v1 one)"},
        "gap": {**number, "description": "relative gap (objective - bound) / |objective|"},
        "timings": {"type": "object", "description": "seconds: build_s, solve_s, wall_s, "
                    "solver_reported_s (the solver's own figure, or null)"},
        "instance_sha256": {"type": ["string", "null"],
                            "description": "SHA-256 of the instance's canonical JSON, sorted keys"},
        "device_names": {"type": "array", "items": {"type": "string"}},
        "solution_keys": {"type": "array", "items": {"type": "string"},
                          "description": "which top-level fields are the solution"},
    }
    required = ["model", "status", "objective", "bound", *solution, "method", "solver", "wall_time_s"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{model_id} result",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


def _value_schema(value: Any) -> dict[str, Any]:
    if isinstance(value, list):
        return {"type": ["array", "null"]}
    if isinstance(value, bool):
        return {"type": ["boolean", "null"]}
    if isinstance(value, int | float) or value is None:
        return {"type": ["number", "null"]}
    return {}


def formats_page(model_ids: list[str], schemas: dict[str, dict[str, Any]]) -> str:
    lines = [
        "# File formats",
        "",
        "Instances and results are JSON documents. Their JSON Schemas below are generated from "
        "the pydantic schemas (instances) and the result writer (results); `edgeopt validate "
        "FILE` checks an instance with every rule, including those a schema cannot state.",
        "",
    ]
    for model_id in model_ids:
        lines += [f"## `{model_id}`", ""]
        for kind in ("instance", "result"):
            name = f"{model_id}.{kind}"
            lines += [
                f"### {kind.capitalize()}",
                "",
                f"{{download}}`{name}.schema.json <schemas/{name}.schema.json>`",
                "",
                "```{code-block} json",
                ":class: schema",
                json.dumps(schemas[name], indent=2),
                "```",
                "",
            ]
    return "\n".join(lines)


# ---- Markdown helpers ------------------------------------------------------------------
def _toctree_page(title: str, intro: str, entries: list[str]) -> str:
    return "\n".join([f"# {title}", "", intro, "", "```{toctree}", ":maxdepth: 1", "", *entries, "```", ""])


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def _cell(value: Any) -> str:
    return str(value).replace("|", r"\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def _default(value: Any) -> str:
    return "(required)" if value is None else f"`{value!r}`"


def _write(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (so Sphinx rebuilds only what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
