"""The per-device terms of ``fl_energy`` as SymPy expressions (one device, symbols positive).

``derived`` (NumPy, used by the solvers) and ``evaluator`` (plain loops) are tested against
these expressions at random points.
"""

from __future__ import annotations

from typing import Any


def terms() -> dict[str, Any]:
    """``cycles`` A = I c D, ``compute_time`` A/f [s], ``compute_energy`` kappa A f^2 [J],
    ``rate`` b log2(1 + g p/(N0 b)) [bit/s], ``upload_time`` s/r [s], ``upload_energy``
    p s/r [J], ``round_time`` [s], ``energy`` [J], ``cheapest_frequency`` A/(T - s/r) [Hz]
    (the least f meeting the deadline on b Hz) and ``energy_at_cheapest_frequency`` [J]."""
    import sympy as sp

    passes, c, D, f, kappa, p, g, N0, b, s, T = sp.symbols(
        "I c D f kappa p g N_0 b s T", positive=True
    )
    cycles = passes * c * D
    rate = b * sp.log(1 + g * p / (N0 * b)) / sp.log(2)
    compute_time = cycles / f
    upload_time = s / rate
    compute_energy = kappa * cycles * f**2
    upload_energy = p * upload_time
    cheapest = cycles / (T - upload_time)
    return {
        "cycles": cycles,
        "compute_time": compute_time,
        "compute_energy": compute_energy,
        "rate": rate,
        "upload_time": upload_time,
        "upload_energy": upload_energy,
        "round_time": compute_time + upload_time,
        "energy": compute_energy + upload_energy,
        "cheapest_frequency": cheapest,
        "energy_at_cheapest_frequency": (compute_energy + upload_energy).subs(f, cheapest),
    }
