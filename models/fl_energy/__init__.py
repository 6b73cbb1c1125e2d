"""fl_energy: joint bandwidth and CPU-frequency allocation for a federated-learning round.

K devices each run I_k c_k D_k CPU cycles at frequency f_k (energy kappa_k I_k c_k D_k f_k^2)
and upload s_k bits on b_k Hz of a shared band B at the Shannon rate
r_k(b) = b log2(1 + g_k p_k / (N0 b)) (energy p_k s_k / r_k); every device must finish
within the deadline T. Minimising the total energy is a convex problem. This model is the
worked example of adding a model to edgeopt (docs: "Adding a model").

Modules: ``schema`` (canonical JSON v1, see ``FORMAT.md``), ``derived`` (NumPy arrays for
solvers), ``evaluator`` (independent loops), ``symbolic`` (SymPy terms), ``presets``,
``model`` (the model object).
"""

from edgeopt.models.fl_energy.model import FLEnergyModel
from edgeopt.models.fl_energy.schema import Device, FLEnergyInstance

__all__ = ["FLEnergyModel", "FLEnergyInstance", "Device"]
