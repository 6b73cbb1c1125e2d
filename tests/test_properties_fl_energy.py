"""Property suite of the fl_energy model (hypothesis; budgets from the profile in conftest, see
tests/properties.py): mutated documents load or name the field; every method gives an
honest, verified answer on random, mutated-but-accepted and numerically extreme instances;
time limits are honoured on a hard instance."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from properties import (
    CASES,
    backends,
    every_method,
    examples,
    load_or_name_the_field,
    time_limits_honoured,
)

from edgeopt.models import InstanceError

CASE = CASES["fl_energy"]


@examples(4.0)
@given(CASE.mutants())
def test_a_mutant_loads_or_its_error_names_the_field(mutant):
    load_or_name_the_field(mutant)


@examples(0.3)
@given(CASE.mutants())
def test_an_accepted_mutant_gets_an_honest_answer_from_every_method(mutant):
    model = load_or_name_the_field(mutant)
    assume(model is not None)
    every_method(CASE, model)


@examples(0.4)
@given(CASE.instances())
def test_a_random_instance_gets_an_honest_answer_from_every_method(model):
    every_method(CASE, model)


@examples(0.4)
@given(CASE.instances(), CASE.extreme_changes())
def test_numerically_extreme_values_get_a_verified_answer_or_an_honest_status(model, changes):
    try:
        model = model.with_changes(changes)
    except InstanceError:
        assume(False)  # a rule between fields (memory, budgets) rejects the combination
    every_method(CASE, model)


@pytest.mark.parametrize(("spec", "backend"), backends(CASE),
                         ids=[f"{spec.method}-{backend}" for spec, backend in backends(CASE)])
def test_the_time_limit_is_honoured_on_a_hard_instance(spec, backend):
    time_limits_honoured(CASE, spec, backend)

