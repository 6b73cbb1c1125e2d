"""Checks of the edgesplit model beside the generic property suite (tests/test_properties.py):
regressions the suite found and the model's own limits."""

from __future__ import annotations

import numpy as np
from properties import (
    CASES,
    every_method,
)

from edgeopt.solvers import Status

CASE = CASES["edgesplit"]


def test_scip_claiming_infeasible_on_a_feasible_instance_is_an_error_not_a_crash():
    """Speeds spanning 1e3..1e10 FLOP/s: SCIP's MISOCP says provenInfeasible (numerics) while
    every other exact method finds the optimum; found by the slow profile, where building the
    'error' Result raised TypeError."""
    model = CASE.instance(np.random.default_rng(0)).with_changes(
        {"devices[*].spectral_efficiency": 1000.0, "devices[0].flops_per_s": 1000.0})
    results = {r.method: r for r in every_method(CASE, model)}
    scip = results["misocp_perspective"]
    assert scip.status in (Status.ERROR, Status.OPTIMAL)  # never "infeasible"
    if scip.status is Status.ERROR:
        assert scip.message.startswith("SCIP stopped without a solution")
    assert results["brute_force"].status is Status.OPTIMAL
