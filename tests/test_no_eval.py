"""Nothing a user gives (instance files, flags, sweep stores) is evaluated as code, and every
file the package writes for a user is written atomically.

The package's sources are read as syntax trees (so comments and docstrings do not count):
no pickle-like loader, no ``eval``/``exec``/``compile``, no shell; imports by name only in
the places listed in :data:`NAMED_IMPORTS`, each from a fixed table or an explicit
code-naming flag; and every write of a file goes through :func:`edgeopt.files.atomic_path`
(the sweep journal, append-only by design, is the one listed exception).
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import edgeopt
from edgeopt.files import atomic_path, write_text
from edgeopt.models import InstanceError, load_instance

PACKAGE = Path(edgeopt.__file__).parent
FOLDERS = ("models", "solvers", "analysis")

UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "yaml"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_METHODS = {"read_pickle", "load_module", "system", "popen", "getoutput", "getstatusoutput"}
NAMED_IMPORTS = {
    # module -> why the imported name cannot come from an instance file or a data flag
    "analysis/cli.py": "COMMAND_MODULES, a fixed tuple of the package's own commands",
    "analysis/verification/registry.py": "VERIFIERS, a fixed table of the package's modules",
    "models/base.py": "a model class's own presets_module and examples_module attributes",
    "models/plugins.py": "the edgeopt.* entry points of installed packages, or a target the "
                         "program registered itself (register_model); never instance data",
    "solvers/registry.py": "a method's entry in its model's registration table",
    "solvers/parametric.py": "the resolver table of registered methods",
    "solvers/tinyfel/registration.py": "the package's own method modules",
    "solvers/two_stage/registration.py": "the package's own method modules",
    "analysis/commands/profile.py": "--factory MODULE:FACTORY names the user's own network "
                                    "code to profile (documented: it runs that code)",
}
WRITERS = {"write_text", "write_bytes", "to_parquet", "to_csv", "to_json", "to_excel",
           "to_pickle", "to_hdf", "savefig", "tofile"}
"""Methods that write the file named by their first argument (``write_*``: their receiver)."""
ARRAY_WRITERS = {"save", "savez", "savez_compressed", "savetxt"}
"""Functions of numpy or torch (``np.save(path, ...)``) that write a file."""
APPEND_ONLY = {
    # (module, function) -> why the file is not replaced atomically
    ("analysis/sweep_store.py", "start"): "the sweep journal: one flushed line per finished "
                                          "point; a torn last line is dropped on resume",
}


def sources() -> dict[str, ast.Module]:
    files = [PACKAGE / "__init__.py", PACKAGE / "files.py"]
    for folder in FOLDERS:
        files += sorted((PACKAGE / folder).rglob("*.py"))
    assert len(files) > 100  # the whole package is read, not an empty folder
    return {str(f.relative_to(PACKAGE)): ast.parse(f.read_text(), str(f)) for f in files}


SOURCES = sources()


def called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def calls(tree: ast.AST):
    """(call, enclosing function name, names bound by enclosing ``with atomic_path(...)``)."""

    def walk(node, function: str, temporaries: frozenset[str]):
        for child in ast.iter_child_nodes(node):
            inner, bound = function, temporaries
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if isinstance(child, ast.With):
                for item in child.items:
                    if (isinstance(item.context_expr, ast.Call)
                            and called_name(item.context_expr) == "atomic_path"
                            and isinstance(item.optional_vars, ast.Name)):
                        bound = bound | {item.optional_vars.id}
            if isinstance(child, ast.Call):
                yield child, inner, bound
            yield from walk(child, inner, bound)

    yield from walk(tree, "<module>", frozenset())


def name_of(node: ast.AST | None) -> str | None:
    return node.id if isinstance(node, ast.Name) else None


def opens_for_writing(call: ast.Call) -> bool:
    """``open(path, "w")``, ``path.open("a")``, ``open(path, mode="wb")``..."""
    if called_name(call) != "open":
        return False
    position = 1 if isinstance(call.func, ast.Name) else 0
    modes = [k.value for k in call.keywords if k.arg == "mode"]
    if len(call.args) > position:
        modes.append(call.args[position])
    return any(isinstance(m, ast.Constant) and isinstance(m.value, str)
               and set(m.value) & set("wax+") for m in modes)


def test_no_pickle_eval_exec_or_shell_anywhere_in_the_package():
    found = []
    for module, tree in SOURCES.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found += [f"{module}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in UNSAFE_MODULES]
            if isinstance(node, ast.Call):
                name = called_name(node)
                bare = isinstance(node.func, ast.Name)
                if name in (UNSAFE_BUILTINS if bare else UNSAFE_METHODS):
                    found.append(f"{module}:{node.lineno} calls {name}")
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant)
                                                       and keyword.value.value is False):
                        found.append(f"{module}:{node.lineno} passes shell=")
                    if keyword.arg in ("allow_pickle", "weights_only") and not (
                            isinstance(keyword.value, ast.Constant)
                            and keyword.value.value is (keyword.arg == "weights_only")):
                        found.append(f"{module}:{node.lineno} passes {keyword.arg}=")
                if name == "load" and isinstance(node.func, ast.Attribute) and \
                        name_of(node.func.value) in ("torch", "np", "numpy", "yaml"):
                    found.append(f"{module}:{node.lineno} calls {name_of(node.func.value)}.load")
    assert found == []


def test_modules_are_imported_by_name_only_from_fixed_tables_or_the_factory_flag():
    importing = set()
    for module, tree in SOURCES.items():
        for call, _, _ in calls(tree):
            if called_name(call) in ("import_module", "exec_module", "spec_from_file_location"):
                importing.add(module)
    assert importing == set(NAMED_IMPORTS)


@pytest.mark.parametrize("model", ["os:system", "builtins:eval", "edgeopt.files:write_text",
                                   "__import__('os')"])
def test_an_instance_cannot_name_code_to_import(model):
    with pytest.raises(InstanceError, match="model"):
        load_instance({"model": model, "version": 1})


def test_every_file_the_package_writes_goes_through_atomic_path():
    unsafe = []
    for module, tree in SOURCES.items():
        if module == "files.py":
            continue  # atomic_path itself
        for call, function, temporaries in calls(tree):
            name = called_name(call)
            if opens_for_writing(call):
                target = call.args[0] if isinstance(call.func, ast.Name) else call.func.value
                if (module, function) in APPEND_ONLY or name_of(target) in temporaries:
                    continue
                if isinstance(target, ast.Attribute) and target.attr == "devnull":
                    continue  # os.devnull: discarding output, no user file
                unsafe.append(f"{module}:{call.lineno} open(..., writing) in {function}")
            elif isinstance(call.func, ast.Attribute) and (
                    name in WRITERS or (name in ARRAY_WRITERS
                                        and name_of(call.func.value) in ("np", "numpy", "torch"))):
                written = call.args[0] if call.args else None
                if name in ("write_text", "write_bytes"):
                    written = call.func.value
                if name == "to_json" and written is None:
                    continue  # to_json() returns text; nothing is written
                if name_of(written) not in temporaries:
                    unsafe.append(f"{module}:{call.lineno} {name} in {function}")
    assert unsafe == []


def test_atomic_path_replaces_on_success_and_keeps_the_old_file_on_an_error(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("the writer failed")
    assert target.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [target]
    with atomic_path(target) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".csv"
        temporary.write_text("new\n")
    assert target.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [target]
    umask = os.umask(0o022)
    os.umask(umask)
    write_text(tmp_path / "fresh.json", "{}")
    assert (tmp_path / "fresh.json").stat().st_mode & 0o777 == 0o666 & ~umask


KILLED_WRITER = """
import os, signal, sys
from edgeopt.files import atomic_path
with atomic_path(sys.argv[1]) as temporary:
    with open(temporary, "w") as handle:
        handle.write("half of the new")
        handle.flush()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "instance.json"
    target.write_text('{"old": true}\n')
    done = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(target)], timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert target.read_text() == '{"old": true}\n'


def test_saving_a_model_is_atomic(tmp_path, monkeypatch):
    model = load_instance(Path(__file__).parent / "data" / "edgesplit_t1.json")
    target = tmp_path / "t1.json"
    target.write_text("previous\n")
    # a lone surrogate cannot be encoded: the write fails part way, inside the atomic block
    monkeypatch.setattr(type(model), "to_json", lambda self, indent=2: '{"a": "\ud800"}')
    with pytest.raises(UnicodeEncodeError):
        model.save(target)
    assert target.read_text() == "previous\n" and sorted(tmp_path.iterdir()) == [target]
    monkeypatch.undo()
    model.save(target)
    assert load_instance(target).to_dict() == model.to_dict()
