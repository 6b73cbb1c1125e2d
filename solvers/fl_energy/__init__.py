"""Solvers of the ``fl_energy`` model (declared in ``registration``)."""
