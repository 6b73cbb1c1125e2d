"""TinyFEL: sparse-update federated edge learning with device selection (spec ``tinyfel.md``).

Output of this model is labelled "TinyFEL model (edgeopt reconstruction)": only the paper's
abstract was available; every formula is the project's reconstruction.

Modules: ``schema`` (canonical JSON v1), ``options`` (derived quantities as arrays, for
solvers), ``radio`` (Shannon rate, rate cap, Lambert-W minimum bandwidth), ``convergence``
(SymPy derivation and its NumPy forms), ``evaluator`` (independent loops), ``diagnosis``
(infeasibility), ``profiles`` and ``presets`` (spec §7), ``model`` (the model object).
"""

from edgeopt.models.tinyfel.evaluator import TinyFELEvaluation
from edgeopt.models.tinyfel.model import LearningTerms, TinyFELModel
from edgeopt.models.tinyfel.options import OptionTable
from edgeopt.models.tinyfel.schema import Device, Layer, Learning, TinyFELInstance

__all__ = [
    "TinyFELModel",
    "TinyFELEvaluation",
    "LearningTerms",
    "OptionTable",
    "TinyFELInstance",
    "Layer",
    "Device",
    "Learning",
]
