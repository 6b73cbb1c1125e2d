"""Sphinx configuration of the edgeopt documentation site.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (see the README).
Pages under ``generated/`` are written at build time from the installed package
(``_ext/edgeopt_docs``): one model card and one derivation page per registered model, the
command-line reference and the JSON Schemas. Notebooks are executed during the build.
"""

import sys
from pathlib import Path

import jupyter_server_mathjax

import edgeopt

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "edgeopt"
author = "The edgeopt developers"
copyright = "2026, The edgeopt developers"
release = version = edgeopt.__version__

extensions = ["myst_nb", "edgeopt_docs"]
exclude_patterns = ["_build", "jupyter_execute", "**/.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_update_mathjax = False

# MathJax is served with the site (from the jupyter-server-mathjax package), not from a CDN:
# formulas render offline and the site needs nothing from outside.
html_static_path = [str(Path(jupyter_server_mathjax.__file__).parent / "static")]
mathjax_path = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"
mathjax2_config = {
    "HTML-CSS": {
        # the package ships the STIX web fonts only
        "availableFonts": [],
        "webFont": "STIX-Web",
        "imageFont": None,
        "preferredFont": None,
        # MathJax 2 declares its measuring font with src about:blank, which Chromium refuses
        # with a console error; an empty data URL is the same blank font without the error.
        "styles": {"@font-face": {"font-family": "MathJax_Blank", "src": "url('data:,')"}},
    },
}

nb_execution_mode = "cache"
nb_execution_cache_path = str(Path(__file__).parent / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
"""Seconds per notebook cell; the notebooks are written to run in seconds to a minute."""
nb_execution_raise_on_error = True
nb_merge_streams = True

html_theme = "furo"
html_title = f"edgeopt {release}"
