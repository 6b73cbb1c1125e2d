"""Bring your own testbed: measured per-layer times in EdgeSplit and TinyFEL instances.

:mod:`.measured` holds what the models' ``measured`` objects share (validation, the
conversion to seconds per iteration).
"""
