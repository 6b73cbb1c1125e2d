"""The heuristic and the baseline of ``fl_energy``: both split the band equally.

* ``equal_bandwidth``: b_k = B/K (raised to b_k^min for a device that cannot meet the
  deadline on B/K, the others sharing the rest equally), then the cheapest frequency
  f_k = A_k / (T - s_k/r_k(b_k)) that meets the deadline.
* ``max_frequency``: the same bandwidths, every CPU at f_k^max (finish compute as early as
  possible, the "race to idle" reference).
"""

from __future__ import annotations

from edgeopt.models.fl_energy import FLEnergyModel
from edgeopt.models.fl_energy.derived import cheapest_frequency
from edgeopt.solvers.common.deadline import Deadline
from edgeopt.solvers.fl_energy.common import equal_share, make_result
from edgeopt.solvers.result import Result, Status


def solve_equal_bandwidth(model: FLEnergyModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Equal shares of the band, then the least frequency meeting the deadline."""
    clock = Deadline(None)
    bandwidth = equal_share(model)
    frequency = cheapest_frequency(bandwidth, model.fleet)
    return make_result(model, "equal_bandwidth", Status.FEASIBLE, frequency, bandwidth, solve_s=clock.elapsed)


def solve_max_frequency(model: FLEnergyModel, *, backend=None, time_limit=None, seed=None) -> Result:
    """Equal shares of the band, every device at its highest frequency."""
    clock = Deadline(None)
    bandwidth = equal_share(model)
    return make_result(model, "max_frequency", Status.FEASIBLE, model.fleet.max_frequency_hz, bandwidth,
                       solve_s=clock.elapsed)
