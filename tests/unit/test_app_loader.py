"""App specs: every accepted form, and an error that says what and where for every failure.

Each test writes its app modules into its own directory and passes it as ``pythonpath``,
and removes those modules from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._app_loader import AppLoadError, AppSpec, PasteSpec, load_app, parse_spec

pytestmark = pytest.mark.timeout(30)


def hello(environ: dict[str, object], start_response: object) -> list[bytes]:
    return [b"hello"]


@pytest.fixture
def apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory for app modules; sys.path and sys.modules are restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write(directory: Path, name: str, source: str) -> None:
    path = directory.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in path.relative_to(directory).parents:
        if parent != Path("."):
            (directory / parent / "__init__.py").touch()
    path.write_text(textwrap.dedent(source))


APP_SOURCE = """
    def app(environ, start_response):
        return [b"app"]

    def application(environ, start_response):
        return [b"application"]

    class Holder:
        wsgi = staticmethod(app)

    def make(greeting="hi", *, debug=False):
        def made(environ, start_response):
            return [greeting.encode(), str(debug).encode()]
        return made

    def failing_factory():
        raise LookupError("no settings")

    NOT_CALLABLE = 42
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("mod", AppSpec("mod")),
        ("pkg.mod:app", AppSpec("pkg.mod", ("app",))),
        ("mod:Holder.wsgi", AppSpec("mod", ("Holder", "wsgi"))),
        ("mod:make()", AppSpec("mod", ("make",), call=True)),
        (
            "mod:make('x', debug=True)",
            AppSpec("mod", ("make",), True, ("x",), {"debug": True}),
        ),
        ("mod:make([1, 2], n=None)", AppSpec("mod", ("make",), True, ([1, 2],), {"n": None})),
        ("config:/srv/app.ini", PasteSpec("/srv/app.ini")),
        ("/srv/app.ini#api", PasteSpec("/srv/app.ini", "api")),
    ],
)
def test_parse_spec(spec: str, expected: object) -> None:
    assert parse_spec(spec) == expected


def test_relative_ini_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_spec("app.ini") == PasteSpec(str(tmp_path / "app.ini"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected module:app"),
        ("   ", "expected module:app"),
        ("mod:", "nothing after ':'"),
        (":app", "'' is not a module name"),
        ("my-mod:app", "'my-mod' is not a module name"),
        ("mod:1app", "expected module:name"),
        ("mod:app[0]", "give a name, a dotted attribute or a factory call"),
        ("mod:make(__import__('os'))", "arguments must be literals"),
        ("mod:make(*args)", "no * or ** arguments"),
        ("mod:make(**kw)", "no * or ** arguments"),
        ("config:", "no ini file named"),
    ],
)
def test_malformed_specs_are_refused_before_importing(spec: str, message: str) -> None:
    with pytest.raises(AppLoadError, match="invalid app spec") as info:
        parse_spec(spec)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("spec", "body"),
    [
        ("appmod:app", [b"app"]),
        ("appmod", [b"application"]),  # 'application' wins over 'app'
        ("appmod:Holder.wsgi", [b"app"]),
        ("appmod:make()", [b"hi", b"False"]),
        ("appmod:make('yo', debug=True)", [b"yo", b"True"]),
    ],
)
def test_accepted_forms(apps: Path, spec: str, body: list[bytes]) -> None:
    write(apps, "appmod", APP_SOURCE)
    app = load_app(spec, pythonpath=[str(apps)])
    assert app({}, None) == body


def test_module_with_app_only(apps: Path) -> None:
    write(apps, "only_app", "def app(environ, start_response):\n    return [b'only']\n")
    assert load_app("only_app", pythonpath=[str(apps)])({}, None) == [b"only"]


def test_package_module(apps: Path) -> None:
    write(apps, "site_pkg.web.wsgi", APP_SOURCE)
    assert load_app("site_pkg.web.wsgi:app", pythonpath=[str(apps)])({}, None) == [b"app"]


def test_pythonpath_goes_first(apps: Path) -> None:
    write(apps, "appmod", APP_SOURCE)
    load_app("appmod:app", pythonpath=[str(apps)])
    assert sys.path[0] == str(apps)


def test_missing_module_names_it_without_a_traceback(apps: Path) -> None:
    with pytest.raises(AppLoadError) as info:
        load_app("no_such_module_here:app", pythonpath=[str(apps)])
    message = str(info.value)
    assert "cannot import 'no_such_module_here'" in message
    assert "--pythonpath" in message
    assert info.value.__cause__ is None
    assert "no_such_module_here" not in sys.modules


def test_missing_parent_package(apps: Path) -> None:
    with pytest.raises(AppLoadError, match="no module named 'nopkg'"):
        load_app("nopkg.sub:app", pythonpath=[str(apps)])


def test_a_missing_dependency_is_named_with_the_importing_line(apps: Path) -> None:
    write(apps, "needs_dep", "import os\nimport not_installed_dep\napp = None\n")
    with pytest.raises(AppLoadError) as info:
        load_app("needs_dep:app", pythonpath=[str(apps)])
    message = str(info.value)
    assert "it imports 'not_installed_dep', which is not installed" in message
    assert f"{apps / 'needs_dep.py'}:2" in message


def test_syntax_error_gives_file_and_line(apps: Path) -> None:
    write(apps, "pkg_ok", "from pkg_bad import app\n")
    write(apps, "pkg_bad", "x = 1\ndef app(:\n")
    with pytest.raises(AppLoadError) as info:
        load_app("pkg_ok:app", pythonpath=[str(apps)])
    assert f"syntax error in {apps / 'pkg_bad.py'}:2" in str(info.value)


def test_exception_at_import_gives_type_message_and_frame(apps: Path) -> None:
    write(apps, "boom", "\n\nraise RuntimeError('database unreachable')\n")
    with pytest.raises(AppLoadError) as info:
        load_app("boom:app", pythonpath=[str(apps)])
    message = str(info.value)
    assert "RuntimeError: database unreachable" in message
    assert f"(at {apps / 'boom.py'}:3)" in message
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("appmod:nothing", "'appmod' has no attribute 'nothing'"),
        ("appmod:Holder.nope", "'appmod:Holder' has no attribute 'nope'"),
        ("appmod:NOT_CALLABLE", "is not callable (it is a int)"),
        ("appmod:NOT_CALLABLE()", "the factory is not callable"),
        ("appmod:make(1, 2, 3)", "raised TypeError"),
        ("appmod:failing_factory()", "raised LookupError: no settings"),
        ("appmod:make(greeting=None)()", "give a name, a dotted attribute or a factory call"),
    ],
)
def test_bad_attributes_and_factories(apps: Path, spec: str, message: str) -> None:
    write(apps, "appmod", APP_SOURCE)
    with pytest.raises(AppLoadError) as info:
        load_app(spec, pythonpath=[str(apps)])
    assert message in str(info.value)


def test_factory_returning_a_non_callable(apps: Path) -> None:
    write(apps, "factory_none", "def make():\n    return None\n")
    with pytest.raises(AppLoadError, match="is not callable \\(it is a NoneType\\)"):
        load_app("factory_none:make()", pythonpath=[str(apps)])


def test_module_without_default_names(apps: Path) -> None:
    write(apps, "nameless", "def wsgi(environ, start_response):\n    return []\n")
    with pytest.raises(AppLoadError, match="no 'application' or 'app' attribute"):
        load_app("nameless", pythonpath=[str(apps)])


PASTE_INI = """
    [app:main]
    paste.app_factory = pasteapp:factory
    greeting = from paste

    [app:other]
    paste.app_factory = pasteapp:factory
    greeting = other section
"""

PASTE_APP = """
    def factory(global_config, greeting):
        def app(environ, start_response):
            return [greeting.encode()]
        return app
"""


@pytest.mark.parametrize(
    ("spec", "body"),
    [
        ("config:{ini}", b"from paste"),
        ("{ini}", b"from paste"),
        ("{ini}#other", b"other section"),
        ("config:{ini}#other", b"other section"),
    ],
)
def test_paste_deploy_ini(apps: Path, spec: str, body: bytes) -> None:
    pytest.importorskip("paste.deploy")
    write(apps, "pasteapp", PASTE_APP)
    ini = apps / "site.ini"
    ini.write_text(textwrap.dedent(PASTE_INI))
    app = load_app(spec.format(ini=ini), pythonpath=[str(apps)])
    assert app({}, None) == [body]


def test_paste_missing_file(apps: Path) -> None:
    with pytest.raises(AppLoadError, match="no such ini file"):
        load_app(str(apps / "absent.ini"))


def test_paste_bad_section(apps: Path) -> None:
    pytest.importorskip("paste.deploy")
    ini = apps / "site.ini"
    ini.write_text("[app:main]\nuse = egg:NoSuchDistribution\n")
    with pytest.raises(AppLoadError, match=f"cannot load app .* from {ini}"):
        load_app(f"{ini}#main")


def test_paste_not_installed(apps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = apps / "site.ini"
    ini.write_text(textwrap.dedent(PASTE_INI))
    monkeypatch.setitem(sys.modules, "paste.deploy", None)  # import fails as if absent
    with pytest.raises(AppLoadError, match=r"install PasteDeploy"):
        load_app(str(ini))


def test_a_callable_is_returned_as_is_by_check_app() -> None:
    from cotyledon.wsgi import check_app

    assert check_app(hello) is hello
