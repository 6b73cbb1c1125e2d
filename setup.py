"""Package discovery for the one non-standard part of the layout (everything else is in pyproject.toml).

The repository root is the package ``edgeopt`` and its folders ``models/``, ``solvers/`` and
``analysis/`` are ``edgeopt.models``, ``edgeopt.solvers`` and ``edgeopt.analysis`` (mapped in
``[tool.setuptools.package-dir]``). Every folder below them holding an ``__init__.py`` is a
subpackage, so a new model's folders are installed without editing a list.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SUBPACKAGES = ("models", "solvers", "analysis")


def discover_packages() -> list[str]:
    """``edgeopt`` and the dotted name of every package folder under the three code folders."""
    packages = ["edgeopt"]
    for folder in SUBPACKAGES:
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            packages.append(".".join(("edgeopt", *init.parent.relative_to(ROOT).parts)))
    return packages


class BuildWithoutSetupScript(build_py):
    """The root folder is the package ``edgeopt``; this script lives there but is not part of it."""

    def find_package_modules(self, package: str, package_dir: str) -> list[tuple[str, str, str]]:
        modules = super().find_package_modules(package, package_dir)
        return [m for m in modules if not (package == "edgeopt" and m[1] == "setup")]


setup(packages=discover_packages(), cmdclass={"build_py": BuildWithoutSetupScript})
