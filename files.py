"""Writing user files atomically: a reader (or a later run) sees the old file or the new one,
never a half-written one, whatever kills the writer.

Everything edgeopt writes to a path the user named (instances, profiles, tables, plots, sweep
tables) goes through :func:`atomic_path`: the writer writes a temporary file in the target's
folder and, once it has finished, the temporary replaces the target with ``os.replace`` (an
atomic rename on one file system). On an error the temporary is removed and the target is
left as it was.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_text(folder / "a.json", "{}\\n")
    >>> (folder / "a.json").read_text()
    '{}\\n'
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers that pick a format by suffix
    pick the right one); renamed onto ``path`` when the block ends without an exception,
    removed otherwise. The target's folder must exist."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp{target.suffix}")
    # created like any new file (mode 0o666 less the umask), so the result has the usual mode
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield Path(temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
