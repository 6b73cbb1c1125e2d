"""What every solver shares, whatever the model: the time budget, how a solve ended, typed
options and tolerances.

    >>> from edgeopt.solvers.common import Deadline, Termination
    >>> str(Termination.limit_reached("time", detail="SCIP maxTimeLimit"))
    'limit/time'
"""

from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.common.options import Option, check_options
from edgeopt.solvers.common.termination import Limit, Reason, Termination, pyomo_termination
from edgeopt.solvers.common.tolerances import OBJECTIVE_MATCH, OPTIMALITY_GAP

__all__ = [
    "Deadline", "Limit", "OBJECTIVE_MATCH", "OPTIMALITY_GAP", "Option", "Reason", "Termination",
    "check_options", "pyomo_termination",
]
