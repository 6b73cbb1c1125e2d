"""Tolerances every solver and the verifier share."""

OPTIMALITY_GAP = 1e-6
"""``optimal`` needs a proven bound within this relative gap of the objective."""

OBJECTIVE_MATCH = 1e-9
"""Relative agreement required between a solver's objective and the evaluator's."""
