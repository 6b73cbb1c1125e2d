"""EdgeSplit: parallel split learning on heterogeneous edge devices (spec ``edgesplit.md``).

Output of this model is labelled "EdgeSplit model (edgeopt reconstruction)": only the
paper's abstract was available; every formula is the project's reconstruction.
"""

from edgeopt.models.edgesplit.model import EdgeSplitModel, OptionTable
from edgeopt.models.edgesplit.schema import Convergence, Device, EdgeSplitInstance, Layer

__all__ = ["EdgeSplitModel", "OptionTable", "EdgeSplitInstance", "Layer", "Device", "Convergence"]
