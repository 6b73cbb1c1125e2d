"""Machine output: with ``--json`` every command prints exactly one JSON document on stdout,
for every registered model; solver chatter (the HiGHS banner) never reaches stdout;
``| head`` does not raise; bare ``edgeopt``, ``--version`` and ``preset MODEL list``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgeopt
from edgeopt.models import load_instance
from edgeopt.solvers import solver_table

DATA = Path(__file__).parent / "data"
MODELS = sorted(solver_table()["model"].unique())
KINDS = ("exact", "relaxation", "heuristic")


def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt.analysis.cli", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def one_json_document(done: subprocess.CompletedProcess):
    """The single JSON document that is the whole of stdout (json.loads rejects any extra)."""
    assert done.stdout.strip(), f"nothing on stdout; stderr: {done.stderr[-2000:]}"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"stdout is not one JSON document ({error}):\n{done.stdout[:2000]}") from None


def feasible_instance(model_id: str, tmp_path: Path) -> Path:
    """A small feasible instance of ``model_id``: a known-answer file, else its first preset."""
    for path in sorted(DATA.glob(f"{model_id}_*.json")):
        model = load_instance(path)
        if model.model_id == model_id and model.infeasibility() is None:
            return path
    made = tmp_path / f"{model_id}.json"
    name = run("preset", model_id, "list").stdout.split()[0]
    assert run("preset", model_id, name, "-o", str(made)).returncode == 0
    return made


def numeric_field(path: Path) -> tuple[str, float]:
    """A top-level positive float field of the instance (a parameter to perturb)."""
    document = json.loads(path.read_text())
    for key, value in document.items():
        if isinstance(value, float) and not isinstance(value, bool) and value > 0:
            return key, value
    pytest.skip(f"{path.name} has no top-level float field")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("model_id", MODELS)
def test_solve_json_is_one_document_with_nothing_else(model_id, kind, tmp_path):
    instance = feasible_instance(model_id, tmp_path)
    done = run("solve", str(instance), "--method", kind, "--json")
    document = one_json_document(done)
    assert document["model"] == model_id and done.returncode in (0, 1), done.stderr
    assert "HiGHS" not in done.stderr, "solver logs need --verbose"


def test_solver_banner_goes_to_stderr_only_with_verbose():
    done = run("--verbose", "solve", str(DATA / "tinyfel_a.json"), "--json")
    assert one_json_document(done)["status"] == "optimal"
    assert "Running HiGHS" in done.stderr
    after = run("solve", str(DATA / "tinyfel_a.json"), "--json", "-v")
    assert one_json_document(after)["status"] == "optimal" and "Running HiGHS" in after.stderr


@pytest.mark.parametrize("model_id", MODELS)
def test_every_inspection_command_prints_one_document(model_id, tmp_path):
    instance = feasible_instance(model_id, tmp_path)
    names = one_json_document(run("preset", model_id, "list", "--json"))
    assert isinstance(names, list) and names and all(isinstance(n, str) for n in names)
    made = tmp_path / "preset.json"
    note = one_json_document(run("preset", model_id, names[0], "-o", str(made), "--json"))
    assert note["output"] == str(made) and load_instance(made).model_id == model_id
    assert one_json_document(run("preset", model_id, names[0]))["model"] == model_id

    verdict = one_json_document(run("validate", str(instance), "--json"))
    assert verdict["valid"] is True and verdict["feasible"] is True and verdict["model"] == model_id
    table = one_json_document(run("solvers", "--model", model_id, "--json"))
    assert {row["model"] for row in table} == {model_id} and all("method" in row for row in table)


@pytest.mark.parametrize("model_id", MODELS)
def test_check_of_a_saved_result_prints_one_document(model_id, tmp_path):
    instance = feasible_instance(model_id, tmp_path)
    saved = tmp_path / "result.json"
    saved.write_text(run("solve", str(instance), "--json").stdout)
    done = run("check", str(saved), str(instance), "--json")
    verdict = one_json_document(done)
    assert done.returncode == 0 and verdict["confirmed"] is True and verdict["model"] == model_id


@pytest.mark.parametrize("model_id", MODELS)
def test_analysis_commands_print_one_document(model_id, tmp_path):
    instance = feasible_instance(model_id, tmp_path)
    key, value = numeric_field(instance)
    sensitivity = run("sensitivity", str(instance), "--param", key, "--json")
    rows = one_json_document(sensitivity)
    assert sensitivity.returncode == 0 and [row["param"] for row in rows] == [key]

    out = tmp_path / "sweep.parquet"
    swept = run("sweep", str(instance), "--param", f"{key}={value!r},{value * 1.5!r}", "--serial",
                "--out", str(out), "--json")
    summary = one_json_document(swept)
    assert swept.returncode == 0 and summary["points"] == 2 and out.is_file()
    assert sum(summary["statuses"].values()) == 2

    preset = run("preset", model_id, "list").stdout.split()[0]
    benched = run("bench", "--model", model_id, "--preset", preset, "--sizes", "2", "--repeats", "1",
                  "--methods", "exact", "--quiet", "--out", str(tmp_path / "bench.csv"), "--json")
    rows = one_json_document(benched)
    assert benched.returncode == 0 and [row["method"] for row in rows] == ["exact"]


def test_validate_json_lists_every_problem_with_its_path(tmp_path):
    document = json.loads((DATA / "edgesplit_t1.json").read_text())
    document["devices"][1]["flops_per_s"] = -1
    document["bandwith_hz"] = 1e6
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document))
    done = run("validate", str(bad), "--json")
    verdict = one_json_document(done)
    assert done.returncode == 2 and verdict["valid"] is False
    assert {"devices[1].flops_per_s", "bandwith_hz"} <= {p["path"] for p in verdict["problems"]}


def test_verify_json_is_one_document():
    done = run("verify", "edgesplit", "--symbolic", "--json")
    checks = one_json_document(done)
    assert done.returncode == 0 and checks and all(check["passed"] for check in checks)


def test_a_reader_closing_the_pipe_early_is_not_an_error():
    """``edgeopt solvers | head -1``: the reader leaves before edgeopt writes."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgeopt.analysis.cli", "solvers"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr and "Exception ignored" not in stderr


def test_bare_edgeopt_prints_help_and_exits_0():
    done = run()
    assert done.returncode == 0 and "usage: edgeopt" in done.stdout and "solve" in done.stdout
    assert "exit codes:" in done.stdout


def test_version_is_the_package_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.split() == ["edgeopt", edgeopt.__version__]


def test_preset_list_names_the_presets_that_preset_accepts():
    listed = run("preset", "edgesplit", "list")
    names = listed.stdout.split()
    assert listed.returncode == 0 and "vgg16-cifar10-hetero8" in names
    for name in names:
        assert run("preset", "edgesplit", name, "--devices", "2").returncode == 0, name
    assert run("preset", "edgesplit", "nosuch").returncode == 2
