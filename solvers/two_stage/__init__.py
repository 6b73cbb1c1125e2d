"""Solvers of the two-stage edge learning model (spec ``two_stage.md`` §5-6).

Methods are declared in :mod:`.registration` and imported only when used.
"""
