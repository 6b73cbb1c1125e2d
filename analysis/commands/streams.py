"""Standard output of ``edgeopt`` is for results only; solver chatter goes elsewhere.

Solver libraries write to the process's file descriptor 1 from C (HiGHS prints its banner
when the first ``Highs`` object is built, whatever ``output_flag`` says), to ``sys.stdout``
from Python, and from child processes that inherit descriptor 1 (Dask workers). While
:func:`solver_output` is active all three go to standard error with ``verbose``, else
nowhere; the command prints its result after the block, so ``--json`` output is exactly one
JSON document.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

STDOUT_FD = 1


@contextlib.contextmanager
def solver_output(verbose: bool = False) -> Iterator[None]:
    """Send everything written to standard output inside the block to standard error
    (``verbose``) or discard it; restore standard output afterwards."""
    sys.stdout.flush()
    try:
        saved = os.dup(STDOUT_FD)
    except OSError:  # descriptor 1 is closed: nothing to protect
        yield
        return
    target = os.dup(sys.stderr.fileno()) if verbose and _has_fileno(sys.stderr) else os.open(
        os.devnull, os.O_WRONLY
    )
    python_sink: Any = sys.stderr if verbose else io.StringIO()
    try:
        os.dup2(target, STDOUT_FD)
        with contextlib.redirect_stdout(python_sink):
            yield
    finally:
        sys.stdout.flush()
        _flush_c_streams()
        os.dup2(saved, STDOUT_FD)
        os.close(saved)
        os.close(target)


def print_json(document: Any) -> None:
    """Print ``document`` as one indented JSON document (non-finite floats written as null)."""
    print(json.dumps(_finite(document), indent=2))


def silence_stdout() -> None:
    """After the reader of standard output went away (``| head``): point descriptor 1 at
    /dev/null so that the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, STDOUT_FD)
    os.close(devnull)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _has_fileno(stream: Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return False
    return True


def _flush_c_streams() -> None:
    """``fflush(NULL)``: push out what C code buffered while descriptor 1 was redirected."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)
