"""The documentation sources: what a fresh `tox -e docs` needs, what the pages may refer
to, and what autodoc renders from the code."""

from __future__ import annotations

import ast
import configparser
import importlib
import importlib.metadata
import pathlib
import re
import runpy
import sys
from collections.abc import Iterator

import cotyledon.types

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "doc" / "source"
RENDERED = re.compile(r"^\.\. auto(module|class):: ([\w.]+)", re.MULTILINE)
AUTODOC = re.compile(r"^\.\. auto(?:module|class|function|data):: ([\w.]+)", re.MULTILINE)


def _pages() -> list[pathlib.Path]:
    return sorted(DOCS.glob("*.rst"))


def _autodoc_modules() -> set[str]:
    """Modules whose docstrings the pages render (``cotyledon.Service`` -> ``cotyledon``)."""
    modules = set()
    for page in _pages():
        for target in AUTODOC.findall(page.read_text()):
            parts = target.split(".")
            while parts and not _is_module(".".join(parts)):
                parts.pop()
            modules.add(".".join(parts))
    return modules


def _is_module(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _top_level_imports(module: str) -> Iterator[str]:
    """Modules imported when ``module`` is (TYPE_CHECKING blocks and try: fallbacks aside)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None
    assert spec.origin is not None
    tree = ast.parse(pathlib.Path(spec.origin).read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            if node.module == "cotyledon":
                yield from (f"cotyledon.{a.name}" for a in node.names if a.name.startswith("_"))


def _third_party_needed(modules: set[str]) -> set[str]:
    seen: set[str] = set()
    needed: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _top_level_imports(module):
            top = name.split(".")[0]
            if top == "cotyledon":
                if _is_module(name):
                    todo.append(name)
            elif top not in sys.stdlib_module_names and top != "__future__":
                needed.add(top)
    return needed


def _doc_extra() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["extras"]["doc"].split("\n")
    return {re.split(r"[<>=!~ \[]", line.strip())[0].lower() for line in lines if line.strip()}


def test_the_doc_extra_installs_what_autodoc_imports() -> None:
    """`tox -e docs` on a fresh clone installs only the `doc` extra; every third-party
    module the API pages import must come with it (oslo.config for the oslo glue)."""
    distributions = importlib.metadata.packages_distributions()
    extra = _doc_extra()
    for top in _third_party_needed(_autodoc_modules()):
        names = {d.lower() for d in distributions.get(top, [top])}
        assert names & extra, f"{top} ({', '.join(sorted(names))}) is not in the doc extra"
    assert "sphinx" in extra


def test_no_page_refers_to_files_outside_the_repository() -> None:
    """The pages once cited sections of a contract file ("spec/api.md", "spec 6.8",
    "(§6.8)") that is not in the repository. (http.rst's § are RFC sections.)"""
    for page in _pages():
        text = page.read_text()
        patterns = [r"spec/\w+\.md", r"\bspec (?:section )?\d"]
        if page.name != "http.rst":
            patterns.append(r"\(§\d")
        for pattern in patterns:
            assert not re.search(pattern, text), f"{page.name}: {pattern}"


def _rendered_docstrings() -> Iterator[tuple[str, str]]:
    """(name, docstring) of what the autodoc directives render, members included."""
    for page in _pages():
        for kind, target in RENDERED.findall(page.read_text()):
            module_name, _, attr = target.rpartition(".")
            obj = (
                importlib.import_module(target)
                if kind == "module"
                else getattr(importlib.import_module(module_name), attr)
            )
            yield target, obj.__doc__ or ""
            for name, member in vars(obj).items():
                if not name.startswith("_") and callable(member):
                    yield f"{target}.{name}", member.__doc__ or ""


def test_rendered_docstrings_refer_to_no_spec_file() -> None:
    names = []
    for name, docstring in _rendered_docstrings():
        names.append(name)
        assert "spec/" not in docstring, name
        assert not re.search(r"\bspec (?:section )?\d|§\d", docstring), name
    assert "cotyledon.ServiceManager.add" in names


def _strip() -> object:
    return runpy.run_path(str(DOCS / "conf.py"))["strip_contributor_notes"]


def test_contributor_notes_do_not_reach_the_api_reference() -> None:
    strip = _strip()
    for module in _autodoc_modules():
        lines = (importlib.import_module(module).__doc__ or "").splitlines()
        text = "\n".join(strip(lines))  # type: ignore[operator]
        for rule in ("Must not:", "Must:", "Job:"):
            assert rule not in text, f"{module}: {rule}"
    systemd_doc = "\n".join(
        strip(importlib.import_module("cotyledon.systemd").__doc__.splitlines())
    )  # type: ignore[operator,union-attr]
    assert "A small, stable API over" in systemd_doc  # the Job text stays, unlabelled


def test_the_types_section_lists_every_public_type() -> None:
    api = (DOCS / "api.rst").read_text()
    documented = set(re.findall(r"^\.\. py:data:: (\w+)", api, re.MULTILINE))
    assert documented == set(cotyledon.types.__all__)


def test_examples_and_pages_name_unit_files_that_exist() -> None:
    units = {p.name for p in (ROOT / "examples").rglob("*") if p.suffix in (".socket", ".service")}
    sources = [*(ROOT / "examples").rglob("*.py"), *_pages()]
    for source in sources:
        for name in re.findall(r"\b[\w-]+\.(?:socket|service)\b", source.read_text()):
            if name.startswith(("cotyledon", "demo")):
                assert name in units, f"{source.relative_to(ROOT)} names {name}"
