"""Sphinx configuration for the cotyledon documentation."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath("../.."))

project = "cotyledon"
author = "cotyledon developers"
copyright = "2026, cotyledon developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# No intersphinx: the build must not need the network (CI has none, and a failed
# inventory fetch is a warning, which -W turns into an error).

master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
