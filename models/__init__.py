"""Declarative optimisation models of edge-learning resource management.

Each model module validates its canonical JSON instance, exposes derived quantities with
units, its SymPy convergence terms, and an ``evaluate`` method that re-checks any decision
with its own NumPy code, independently of every solver.

    >>> from edgeopt.models import load_instance
    >>> model = load_instance("instance.json")          # doctest: +SKIP
"""

from edgeopt.models import plugins
from edgeopt.models.errors import InstanceError, InstanceIssue
from edgeopt.models.registry import MODEL_IDS, load_instance, model_class, preset, register_model

__all__ = [
    "InstanceError", "InstanceIssue", "MODEL_IDS", "load_instance", "model_class", "plugins", "preset",
    "register_model",
]
