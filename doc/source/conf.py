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
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping = {"python": ("https://docs.python.org/3", None)}
# The build must not need the network (CI has none): intersphinx is only used when the
# inventory is cached; a missing inventory is not an error.
intersphinx_disabled_reftypes = ["*"]
intersphinx_timeout = 1

master_doc = "index"
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
