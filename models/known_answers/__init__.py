"""The specs' known-answer instances, shipped with the package.

``edgesplit_t1`` .. ``edgesplit_t3`` (EdgeSplit spec §6), ``tinyfel_a``, ``tinyfel_a_prime``,
``tinyfel_b``, ``tinyfel_c`` (TinyFEL spec §6) and ``two_stage_t1`` .. ``two_stage_t4``
(two-stage spec §7): small instances whose optima were derived by hand or by exact
enumeration. The tests read the same files (``tests/data`` links here), and notebooks and
scripts load them from the installed package, whatever the working directory.

    >>> from edgeopt.models import known_answers
    >>> known_answers.load("edgesplit_t1").size
    {'devices': 2, 'layers': 3, 'candidate_cuts': 2}
    >>> "tinyfel_a" in known_answers.names()
    True
"""

from __future__ import annotations

import difflib
import json
from importlib.resources import files
from typing import Any


def names() -> list[str]:
    """The shipped instances, sorted."""
    return sorted(entry.name[: -len(".json")] for entry in files(__name__).iterdir()
                  if entry.name.endswith(".json"))


def document(name: str) -> dict[str, Any]:
    """The canonical JSON document of instance ``name``; ``KeyError`` with the nearest name."""
    known = names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        raise KeyError(f"no known-answer instance {name!r}; {hint}")
    return json.loads((files(__name__) / f"{name}.json").read_text())


def load(name: str) -> Any:
    """Instance ``name`` as a validated model (any registered model id)."""
    from edgeopt.models.registry import load_instance

    return load_instance(document(name))
