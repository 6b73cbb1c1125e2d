"""edgeopt: optimisation models and solvers for resource management in edge learning.

This file is the top-level package ``edgeopt`` (pyproject.toml maps it to the repository
root); the code lives in its three subpackages, each installed from its own folder:
``edgeopt.models`` (models/), ``edgeopt.solvers`` (solvers/) and ``edgeopt.analysis``
(analysis/).

    >>> import edgeopt
    >>> edgeopt.__version__ == importlib.metadata.version("edgeopt")
    True
"""

import importlib.metadata

__version__: str = importlib.metadata.version("edgeopt")
"""The installed distribution's version (from the package metadata, i.e. pyproject.toml)."""

__all__ = ["__version__"]
