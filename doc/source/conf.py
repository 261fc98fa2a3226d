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


# Module docstrings open with notes for contributors: "Job:" (what the module does) and
# "Must not:" (what it leaves to others). The API reference keeps the first, without its
# label, and drops the second: readers of the reference need what a module offers.
_RULES = ("Must not:", "Must:")


def _paragraphs(lines: list[str]) -> list[list[str]]:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def _public(paragraph: list[str]) -> list[str]:
    kept: list[str] = []
    for line in paragraph:
        cut = min((i for i in (line.find(r) for r in _RULES) if i >= 0), default=-1)
        if cut >= 0:
            head = line[:cut].rstrip()
            if head:
                kept.append(head)
            break
        kept.append(line)
    if kept and kept[0].lstrip().startswith("Job: "):
        text = kept[0].lstrip().removeprefix("Job: ")
        kept[0] = text[:1].upper() + text[1:]
    return kept


def strip_contributor_notes(lines: list[str]) -> list[str]:
    """``lines`` of a docstring without its "Must not:" rules and "Job:" labels."""
    out: list[str] = []
    for paragraph in _paragraphs(lines):
        kept = _public(paragraph)
        if kept:
            out += [*kept, ""]
    return out


def _on_docstring(  # noqa: PLR0917 - the signature Sphinx calls
    app: object, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    if what == "module":
        lines[:] = strip_contributor_notes(lines)


def setup(app: object) -> None:
    app.connect("autodoc-process-docstring", _on_docstring)  # type: ignore[attr-defined]
