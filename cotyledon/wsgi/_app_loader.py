"""Turn an app spec given on the command line into the WSGI callable.

Job: ``module:app``, ``module`` (its ``application``, else its ``app``),
``module:obj.attr``, ``module:factory()`` and ``module:factory('arg', debug=True)`` (literal
arguments only, read with ``ast``: nothing in the spec is executed), and Paste Deploy ini
files (``config:/path/app.ini``, ``app.ini``, ``app.ini#name``) when PasteDeploy is
installed.

Must: fail with one :class:`AppLoadError` whose message says what was asked, what went
wrong and where (the missing module's name, a syntax error's file and line, the innermost
frame of an exception raised while importing), so the CLI can print one line and exit
non-zero instead of crash-looping workers.
"""

from __future__ import annotations

import ast
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "APP_LOAD_ERROR",
    "AppLoadError",
    "AppSpec",
    "load_app",
    "load_app_in_worker",
    "parse_spec",
]

WSGIApp = Callable[..., Any]

#: Exit status of a worker that cannot load the app (gunicorn's APP_LOAD_ERROR is 4 too):
#: the master stops the server when no worker of it ever served (see ``_boot_watch``).
APP_LOAD_ERROR = 4

#: Attributes looked up, in order, when the spec names a module only.
DEFAULT_NAMES = ("application", "app")


class AppLoadError(RuntimeError):
    """The app spec cannot be turned into a WSGI callable; the message says why."""


@dataclass(frozen=True)
class AppSpec:
    """A parsed ``module:attr.path(args)`` spec."""

    module: str
    attrs: tuple[str, ...] = ()  # empty: try DEFAULT_NAMES
    call: bool = False
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PasteSpec:
    """A Paste Deploy ini file and the app section name in it."""

    path: str
    name: str = "main"


def _is_paste(spec: str) -> bool:
    return spec.startswith("config:") or spec.partition("#")[0].endswith(".ini")


def _parse_paste(spec: str) -> PasteSpec:
    text = spec.removeprefix("config:")
    path, _, name = text.partition("#")
    if not path:
        raise AppLoadError(f"invalid app spec {spec!r}: no ini file named")
    return PasteSpec(os.path.abspath(path), name or "main")


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise AppLoadError(
            f"invalid app spec {spec!r}: factory arguments must be literals "
            f"(strings, numbers, True/False/None, tuples, lists, dicts), "
            f"not {ast.unparse(node)!r}"
        ) from None


def _parse_target(
    target: str, spec: str
) -> tuple[tuple[str, ...], bool, tuple[Any, ...], dict[str, Any]]:
    try:
        tree = ast.parse(target.strip(), mode="eval").body
    except SyntaxError:
        raise AppLoadError(
            f"invalid app spec {spec!r}: expected module:name, module:name.attr or "
            f"module:factory(...)"
        ) from None
    call = isinstance(tree, ast.Call)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = {}
    if isinstance(tree, ast.Call):
        if any(kw.arg is None for kw in tree.keywords) or any(
            isinstance(a, ast.Starred) for a in tree.args
        ):
            raise AppLoadError(f"invalid app spec {spec!r}: no * or ** arguments")
        args = tuple(_literal(arg, spec) for arg in tree.args)
        kwargs = {kw.arg: _literal(kw.value, spec) for kw in tree.keywords if kw.arg}
        tree = tree.func
    attrs: list[str] = []
    while isinstance(tree, ast.Attribute):
        attrs.insert(0, tree.attr)
        tree = tree.value
    if not isinstance(tree, ast.Name):
        raise AppLoadError(
            f"invalid app spec {spec!r}: after ':' give a name, a dotted attribute or a "
            f"factory call"
        )
    attrs.insert(0, tree.id)
    return tuple(attrs), call, args, kwargs


def parse_spec(spec: str) -> AppSpec | PasteSpec:
    """Parse ``spec`` without importing anything; :class:`AppLoadError` if malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise AppLoadError(f"invalid app spec {spec!r}: expected module:app")
    spec = spec.strip()
    if _is_paste(spec):
        return _parse_paste(spec)
    module, colon, target = spec.partition(":")
    if not module or not all(part.isidentifier() for part in module.split(".")):
        raise AppLoadError(
            f"invalid app spec {spec!r}: {module!r} is not a module name{_file_hint(module, spec)}"
        )
    if not colon:
        return AppSpec(module)
    if not target.strip():
        raise AppLoadError(f"invalid app spec {spec!r}: nothing after ':'")
    attrs, call, args, kwargs = _parse_target(target, spec)
    return AppSpec(module, attrs, call, args, kwargs)


def _file_hint(module: str, spec: str) -> str:
    """A hint when ``module`` looks like a file name (``myapp.py``, ``app/main.py``)."""
    if not module.endswith(".py"):
        return ""
    name = module.removesuffix(".py").replace("/", ".").strip(".")
    return f" (name the module, not its file: drop the .py, e.g. {spec.replace(module, name, 1)})"


def _where(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc`` that is not importlib's."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    return f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""


def _missing_module(name: str, exc: ModuleNotFoundError) -> bool:
    """True when ``exc`` is about ``name`` itself or one of its parent packages."""
    missing = exc.name or ""
    return missing == name or name.startswith(missing + ".")


def _import(module: str, spec: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if _missing_module(module, exc):
            raise AppLoadError(
                f"cannot import {module!r} for app {spec!r}: no module named {exc.name!r}"
                f"{_file_hint(module, spec)} (sys.path starts with {sys.path[:3]!r}; see --chdir "
                f"and --pythonpath)"
            ) from None
        raise AppLoadError(
            f"error while importing {module!r} for app {spec!r}: "
            f"it imports {exc.name!r}, which is not installed{_where(exc)}"
        ) from exc
    except SyntaxError as exc:
        raise AppLoadError(
            f"syntax error in {exc.filename}:{exc.lineno} while importing {module!r} "
            f"for app {spec!r}: {exc.msg}"
        ) from exc
    except Exception as exc:  # the app's own code failed at import time
        raise AppLoadError(
            f"error while importing {module!r} for app {spec!r}: "
            f"{type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc


def _resolve(obj: Any, parsed: AppSpec, spec: str) -> Any:
    if not parsed.attrs:
        for name in DEFAULT_NAMES:
            if hasattr(obj, name):
                return getattr(obj, name)
        raise AppLoadError(
            f"module {parsed.module!r} has no 'application' or 'app' attribute; "
            f"name the app: {parsed.module}:NAME"
        )
    path = parsed.module
    for attr in parsed.attrs:
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            raise AppLoadError(f"{path!r} has no attribute {attr!r} (app spec {spec!r})") from None
        path = f"{path}.{attr}" if path != parsed.module else f"{path}:{attr}"
    return obj


def _call_factory(factory: Any, parsed: AppSpec, spec: str) -> Any:
    if not callable(factory):
        raise AppLoadError(f"app spec {spec!r}: the factory is not callable")
    try:
        return factory(*parsed.args, **parsed.kwargs)
    except Exception as exc:
        raise AppLoadError(
            f"app factory {spec!r} raised {type(exc).__name__}: {exc}{_where(exc)}"
        ) from exc


def _load_paste(parsed: PasteSpec, spec: str) -> Any:
    try:
        from paste.deploy import loadapp  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise AppLoadError(
            f"app {spec!r} is a Paste Deploy ini file: install PasteDeploy "
            f"(pip install 'cotyledon[paste]')"
        ) from None
    if not os.path.isfile(parsed.path):
        raise AppLoadError(f"app {spec!r}: no such ini file: {parsed.path}")
    try:
        return loadapp(f"config:{parsed.path}", name=parsed.name)
    except Exception as exc:
        raise AppLoadError(
            f"cannot load app {spec!r} from {parsed.path}: {type(exc).__name__}: {exc}"
            f"{_where(exc)}"
        ) from exc


def _extend_sys_path(pythonpath: Iterable[str]) -> None:
    """The current directory, then each ``pythonpath`` entry first, as the CLI does."""
    for entry in (os.getcwd(), *reversed(tuple(pythonpath))):
        path = os.path.abspath(entry)
        if path not in sys.path:
            sys.path.insert(0, path)


def load_app(spec: str, *, pythonpath: Iterable[str] = ()) -> WSGIApp:
    """Import the app named by ``spec`` and return the WSGI callable.

    :param spec: ``module:app``, ``module:factory(...)``, ``module`` or a Paste ini file.
    :param pythonpath: directories put at the front of ``sys.path`` first.
    :raises AppLoadError: with a message saying what failed and where.
    """
    parsed = parse_spec(spec)
    _extend_sys_path(pythonpath)
    if isinstance(parsed, PasteSpec):
        app = _load_paste(parsed, spec)
    else:
        app = _resolve(_import(parsed.module, spec), parsed, spec)
        if parsed.call:
            app = _call_factory(app, parsed, spec)
    if not callable(app):
        raise AppLoadError(
            f"app {spec!r} is not callable (it is a {type(app).__name__}); "
            f"a WSGI app is called as app(environ, start_response)"
        )
    loaded: WSGIApp = app
    return loaded


def load_app_in_worker(spec: str, *, pythonpath: Iterable[str] = ()) -> WSGIApp:
    """:func:`load_app` in a worker: on :class:`AppLoadError`, log one line (no traceback)
    and exit with :data:`APP_LOAD_ERROR`, so the master can tell a broken app from a
    crash."""
    try:
        return load_app(spec, pythonpath=pythonpath)
    except AppLoadError as exc:
        logging.getLogger("cotyledon.wsgi.worker").error("Worker cannot load the app: %s", exc)
        raise SystemExit(APP_LOAD_ERROR) from None
