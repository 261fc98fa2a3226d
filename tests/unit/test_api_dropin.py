"""Drop-in contract with cotyledon 2.2 (spec/api.md, top and section 7): what programs and
test suites written for 2.2 reach into: the default ``mp_context``, ``_utils.spawn_process``,
a sleeping ``_slowdown_respawn_if_needed()``, a version that satisfies ``>=2.2`` and an
``import cotyledon`` that stays light."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from unittest import mock

import pytest

import cotyledon
from cotyledon import _supervisor, _utils

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def manager() -> Iterator[cotyledon.ServiceManager]:
    cotyledon.ServiceManager._process_runner_already_created = False
    yield cotyledon.ServiceManager()
    cotyledon.ServiceManager._process_runner_already_created = False


class Svc(cotyledon.Service):
    pass


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
        cwd=ROOT,
    )


# -- mp_context ---------------------------------------------------------------------------


def test_default_mp_context_reads_as_multiprocessing_default(
    manager: cotyledon.ServiceManager,
) -> None:
    assert manager.mp_context == multiprocessing.get_context()
    assert "mp_context" in vars(manager)  # a plain attribute, as in 2.2
    ctx = multiprocessing.get_context("spawn")
    manager.mp_context = ctx
    assert manager.mp_context is ctx


def test_default_mp_context_keeps_the_fork_path_and_assigned_ones_are_honoured() -> None:
    # Python 3.14's default start method is forkserver; set_start_method() makes it the
    # default here too. The manager must not fix the start method itself.
    result = _run_python(
        """
        import multiprocessing, cotyledon
        m = cotyledon.ServiceManager()
        assert multiprocessing.get_start_method(allow_none=True) is None
        multiprocessing.set_start_method("forkserver")
        cotyledon.ServiceManager._process_runner_already_created = False
        m = cotyledon.ServiceManager()
        assert m.mp_context is multiprocessing.get_context(), m.mp_context
        calls = []
        m._fork = lambda config: calls.append("fork") or 1
        m._start_through_context = lambda ctx, config: calls.append(ctx.get_start_method()) or 2
        m._start_worker(None)
        m.mp_context = multiprocessing.get_context("spawn")
        m._start_worker(None)
        m.mp_context = multiprocessing.get_context("fork")
        m._start_worker(None)
        m.mp_context = None
        m._start_worker(None)
        cotyledon.ServiceManager._process_runner_already_created = False
        given = cotyledon.ServiceManager(mp_context=multiprocessing.get_context("forkserver"))
        given._start_through_context = m._start_through_context
        given._start_worker(None)
        print(calls)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "['fork', 'spawn', 'fork', 'fork', 'forkserver']"


# -- _utils.spawn_process -----------------------------------------------------------------


def test_spawn_process_starts_a_process_of_the_given_context() -> None:
    ctx = multiprocessing.get_context("fork")
    proc = _utils.spawn_process(os._exit, 7, ctx=ctx)
    proc.join(30)
    assert isinstance(proc, ctx.Process)
    assert proc.exitcode == 7


def test_spawn_process_without_context_uses_multiprocessing_process() -> None:
    proc = _utils.spawn_process(os._exit, 3)
    proc.join(30)
    assert type(proc) is multiprocessing.Process
    assert proc.exitcode == 3


# -- _slowdown_respawn_if_needed ----------------------------------------------------------


def test_slowdown_respawn_called_by_a_program_sleeps_once_per_call(
    manager: cotyledon.ServiceManager,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="cotyledon._service_manager")
    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    manager.add(Svc, workers=2)
    for _ in range(5):
        manager._slowdown_respawn_if_needed()
    # N = 2 workers: three forks within 2 s pass, then 5 s pauses.
    assert sleeps == [0.01, 0.01, 0.01, 5, 5]
    assert caplog.messages == ["Forking too fast, sleeping"] * 2


def test_slowdown_respawn_reads_the_wall_clock_through_the_time_module(
    manager: cotyledon.ServiceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr("time.time", lambda: next(clock))
    manager.add(Svc, workers=1)
    for _ in range(4):
        manager._slowdown_respawn_if_needed()
    assert sleeps == [0.01] * 4  # forks 10 s apart are never too fast


def test_slowdown_history_is_cleared_by_reconfigure(
    manager: cotyledon.ServiceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("time.sleep", sleeps.append)
    sid = manager.add(Svc, workers=1)
    for _ in range(3):
        manager._slowdown_respawn_if_needed()
    manager.reconfigure(sid, 1)
    manager._slowdown_respawn_if_needed()
    assert sleeps == [0.01, 0.01, 5, 0.01]


def test_slowdown_patched_with_mock_like_2x_suites_means_now(
    manager: cotyledon.ServiceManager,
) -> None:
    sid = manager.add(Svc)
    with mock.patch.object(cotyledon.ServiceManager, "_slowdown_respawn_if_needed") as slow:
        assert manager._respawn_gate(sid, 0.0) == 0.0
    assert slow.call_args_list == [mock.call()]


def test_master_respawn_gate_never_sleeps(
    manager: cotyledon.ServiceManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda s: pytest.fail("slept"))
    sid = manager.add(Svc)
    sup = _supervisor.Supervisor(respawn_gate=manager._respawn_gate)
    sup.on_event(_supervisor.ServiceAdded(sid, 1), 0.0)
    manager._supervisor = sup
    assert manager._respawn_gate(sid, 0.0) == 0.0


@pytest.mark.parametrize("where", ["class", "instance"])
def test_patched_out_slowdown_is_called_like_2x_and_means_now(
    manager: cotyledon.ServiceManager, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    calls: list[tuple[object, ...]] = []
    sid = manager.add(Svc)
    if where == "class":
        monkeypatch.setattr(
            cotyledon.ServiceManager, "_slowdown_respawn_if_needed", lambda *a: calls.append(a)
        )
    else:
        monkeypatch.setattr(manager, "_slowdown_respawn_if_needed", lambda *a: calls.append(a))
    assert manager._respawn_gate(sid, 0.0) == 0.0
    assert calls == ([(manager,)] if where == "class" else [()])


# -- version ------------------------------------------------------------------------------


def test_version_satisfies_what_2x_users_require() -> None:
    major = int(metadata.version("cotyledon").split(".")[0])
    assert major >= 3


def test_pip_keeps_this_checkout_for_a_2_2_requirement() -> None:
    """oslo.service requires ``cotyledon>=2.2.0``: pip must not swap us for 2.x."""
    probe = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, timeout=60, check=False
    )
    if probe.returncode != 0:
        pytest.skip("pip cannot run in this environment")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--no-index",
            "--no-deps",
            "--disable-pip-version-check",
            "cotyledon>=2.2.0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Requirement already satisfied: cotyledon>=2.2.0" in result.stdout
    assert "Would install" not in result.stdout


# -- import cost --------------------------------------------------------------------------


def test_import_cotyledon_stays_light() -> None:
    result = _run_python(
        """
        import sys
        import cotyledon
        heavy = ["futurist", "httptools", "cotyledon.wsgi", "multiprocessing"]
        heavy += ["dataclasses", "inspect", "ctypes", "socket", "random"]  # our own cost
        print(sorted(name for name in heavy if name in sys.modules))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
