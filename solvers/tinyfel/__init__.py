"""Solvers of the TinyFEL model (spec ``tinyfel.md`` §5); declared in ``registration``."""
