"""Tests for cotyledon.wsgi._reloader on real temporary files, both backends."""

from __future__ import annotations

import importlib
import logging
import os
import queue
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._reloader import (
    Reloader,
    check_syntax,
    describe_error,
    expand_paths,
    imported_files,
    is_ignored,
    watchfiles_available,
)

BACKENDS = [
    "poll",
    pytest.param(
        "watchfiles",
        marks=pytest.mark.skipif(not watchfiles_available(), reason="watchfiles not installed"),
    ),
]
TIMEOUT = 20.0


class Recorder:
    def __init__(self) -> None:
        self.changes: queue.Queue[list[str]] = queue.Queue()
        self.errors: queue.Queue[tuple[str, BaseException]] = queue.Queue()

    def on_change(self, paths: list[str]) -> None:
        self.changes.put(paths)

    def on_error(self, path: str, exc: BaseException) -> None:
        self.errors.put((path, exc))


def rewrite(path: Path, text: str) -> None:
    """Write ``text`` and make sure the stamp moves even on a coarse-mtime filesystem."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    after = path.stat().st_mtime_ns
    if after <= before:
        os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text("def application(environ, start_response):\n    pass\n")
    (tmp_path / "helpers.py").write_text("X = 1\n")
    (tmp_path / "settings.ini").write_text("[app]\n")
    return tmp_path


@pytest.fixture(params=BACKENDS)
def running(request: pytest.FixtureRequest, app_dir: Path) -> Iterator[tuple[Reloader, Recorder]]:
    recorder = Recorder()
    reloader = Reloader(
        recorder.on_change,
        recorder.on_error,
        extra_paths=[str(app_dir / "*.ini")],
        interval=0.05,
        backend=request.param,
        module_files=lambda: [str(app_dir / "app.py"), str(app_dir / "helpers.py")],
    )
    reloader.start()
    yield reloader, recorder
    reloader.stop()


@pytest.mark.timeout(60)
def test_edit_calls_back_with_the_file(running: tuple[Reloader, Recorder], app_dir: Path) -> None:
    _, recorder = running
    rewrite(app_dir / "helpers.py", "X = 2  # edited\n")
    assert recorder.changes.get(timeout=TIMEOUT) == [str(app_dir / "helpers.py")]
    assert recorder.errors.empty()


@pytest.mark.timeout(60)
def test_extra_file_glob_is_watched(running: tuple[Reloader, Recorder], app_dir: Path) -> None:
    _, recorder = running
    rewrite(app_dir / "settings.ini", "[app]\nkey = value\n")
    assert recorder.changes.get(timeout=TIMEOUT) == [str(app_dir / "settings.ini")]


@pytest.mark.timeout(60)
def test_syntax_error_is_reported_and_does_not_cycle(
    running: tuple[Reloader, Recorder], app_dir: Path
) -> None:
    _, recorder = running
    rewrite(app_dir / "app.py", "def application(:\n")
    path, exc = recorder.errors.get(timeout=TIMEOUT)
    assert path == str(app_dir / "app.py")
    assert isinstance(exc, SyntaxError)
    assert describe_error(path, exc).startswith(f"{app_dir / 'app.py'} line 1: ")
    assert recorder.changes.empty()
    # Fixed: now the cycle happens, naming the file.
    rewrite(app_dir / "app.py", "def application(environ, start_response):\n    return []\n")
    assert recorder.changes.get(timeout=TIMEOUT) == [str(app_dir / "app.py")]


@pytest.mark.timeout(60)
def test_files_changed_before_an_error_are_kept_for_the_next_cycle(app_dir: Path) -> None:
    recorder = Recorder()
    reloader = Reloader(
        recorder.on_change,
        recorder.on_error,
        backend="poll",
        module_files=lambda: [str(app_dir / "app.py"), str(app_dir / "helpers.py")],
    )
    reloader.scan_nowait()
    rewrite(app_dir / "helpers.py", "X = 3\n")
    rewrite(app_dir / "app.py", "def broken(:\n")
    changed = reloader.scan_nowait()
    assert sorted(changed) == [str(app_dir / "app.py"), str(app_dir / "helpers.py")]
    assert reloader.handle_changes(changed) is False
    assert recorder.errors.get_nowait()[0] == str(app_dir / "app.py")
    rewrite(app_dir / "app.py", "OK = True\n")
    assert reloader.handle_changes(reloader.scan_nowait()) is True
    assert recorder.changes.get_nowait() == [str(app_dir / "app.py"), str(app_dir / "helpers.py")]


def test_first_scan_is_a_baseline(app_dir: Path) -> None:
    reloader = Reloader(
        lambda _: None, backend="poll", module_files=lambda: [str(app_dir / "app.py")]
    )
    assert reloader.scan_nowait() == []
    assert reloader.scan_nowait() == []


def test_deleted_file_counts_as_a_change_and_compiles(app_dir: Path) -> None:
    calls: list[list[str]] = []
    target = str(app_dir / "helpers.py")
    reloader = Reloader(calls.append, backend="poll", module_files=lambda: [target])
    reloader.scan_nowait()
    os.unlink(target)
    assert reloader.handle_changes(reloader.scan_nowait()) is True
    assert calls == [[target]]


def test_check_syntax(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text("x = 1\n")
    bad = tmp_path / "bad.py"
    bad.write_text("x = (\n")
    nul = tmp_path / "nul.py"
    nul.write_bytes(b"x = 1\0\n")
    other = tmp_path / "data.txt"
    other.write_text("not python (")
    assert check_syntax([str(good), str(other), str(tmp_path / "gone.py")]) is None
    failure = check_syntax([str(good), str(bad)])
    assert failure is not None
    assert failure[0] == str(bad)
    assert isinstance(failure[1], SyntaxError)
    failure = check_syntax([str(nul)])
    assert failure is not None
    assert failure[0] == str(nul)
    # Nothing was written next to the sources.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad.py",
        "data.txt",
        "good.py",
        "nul.py",
    ]


def test_imported_files_include_a_fresh_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "cotyledon_reload_probe.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("cotyledon_reload_probe")
        files = imported_files()
    finally:
        sys.modules.pop("cotyledon_reload_probe", None)
    assert str(tmp_path / "cotyledon_reload_probe.py") in files
    assert os.path.abspath(__file__) in files


def test_expand_paths(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("")
    (tmp_path / "b.ini").write_text("")
    result = expand_paths([str(tmp_path / "*.ini"), str(tmp_path / "later.cfg")])
    assert result == sorted(
        [str(tmp_path / "a.ini"), str(tmp_path / "b.ini"), str(tmp_path / "later.cfg")]
    )
    assert expand_paths([str(tmp_path / "*.none")]) == []


def test_bad_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="'backend' must be 'auto', 'watchfiles' or 'poll'"):
        Reloader(lambda _: None, backend="inotify")


def test_default_error_handler_logs(app_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    reloader = Reloader(
        lambda _: pytest.fail("must not cycle"),
        backend="poll",
        module_files=lambda: [str(app_dir / "app.py")],
    )
    reloader.scan_nowait()
    rewrite(app_dir / "app.py", "def f(:\n")
    with caplog.at_level("ERROR", logger="cotyledon.wsgi._reloader"):
        assert reloader.handle_changes(reloader.scan_nowait()) is False
    assert "Reload skipped, the old workers keep serving: " in caplog.text
    assert f"{app_dir / 'app.py'} line 1" in caplog.text


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("app.py", False),
        ("templates/page.html", False),
        ("notes.txt", False),
        ("__pycache__/app.cpython-311.pyc", True),
        ("pkg/__pycache__", True),
        (".git/index", True),
        (".git", True),
        (".app.py.swp", True),
        (".app.py.swx", True),
        ("app.py~", True),
        (".#app.py", True),
        ("4913", True),
        ("server.log", True),  # given in ignore_paths
        ("access.log", True),
        ("other.log", False),
    ],
)
def test_is_ignored(tmp_path: Path, name: str, ignored: bool) -> None:
    logs = [str(tmp_path / "server.log"), str(tmp_path / "access.log")]
    assert is_ignored(str(tmp_path / name), logs) is ignored


def test_log_files_editor_files_and_caches_are_never_watched(app_dir: Path) -> None:
    """Even where a glob matches them: the server's logs (given, or a logging file
    handler of the process), __pycache__ and editor swap files."""
    handler = logging.FileHandler(app_dir / "error.log")
    logging.getLogger("cotyledon.test.reloader").addHandler(handler)
    try:
        for name in ("access.log", ".app.py.swp", "app.py~", "__pycache__/app.pyc"):
            (app_dir / name).parent.mkdir(exist_ok=True)
            (app_dir / name).write_text("x")
        reloader = Reloader(
            Recorder().on_change,
            extra_paths=[str(app_dir / "*"), str(app_dir / "**" / "*.pyc")],
            module_files=lambda: [str(app_dir / "app.py")],
            ignore_paths=[str(app_dir / "access.log"), None],
        )
        watched = {os.path.relpath(p, app_dir) for p in reloader.watched()}
        assert watched == {"app.py", "helpers.py", "settings.ini"}
    finally:
        logging.getLogger("cotyledon.test.reloader").removeHandler(handler)
        handler.close()
