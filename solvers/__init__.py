"""Exact, relaxation and heuristic solvers behind one ``solve`` call and one ``Result`` type.

    >>> from edgeopt.models import preset
    >>> from edgeopt.solvers import solve
    >>> result = solve(preset("edgesplit", "vgg16-cifar10-hetero8"), method="exact")
    >>> result.status.value, result.verified
    ('optimal', True)
"""

from edgeopt.solvers.api import select, solve, solver_table, verify
from edgeopt.solvers.registry import Availability, Capability, SolverSpec, solvers_for
from edgeopt.solvers.result import Result, Status, Timings

__all__ = [
    "solve", "select", "verify", "solver_table", "solvers_for",
    "Result", "Status", "Timings", "Capability", "Availability", "SolverSpec",
]
