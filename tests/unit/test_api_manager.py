"""The public API of cotyledon, in-process: names, argument errors and their messages,
one manager per process, no side effect at construction."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator

import pytest

import cotyledon
from cotyledon import _service_manager, _utils


@pytest.fixture
def manager() -> Iterator[cotyledon.ServiceManager]:
    cotyledon.ServiceManager._process_runner_already_created = False
    yield cotyledon.ServiceManager()
    cotyledon.ServiceManager._process_runner_already_created = False


class Svc(cotyledon.Service):
    pass


def test_package_exports() -> None:
    assert cotyledon.__all__ == ["Service", "ServiceManager"]
    assert cotyledon.ServiceManager.__module__ == "cotyledon._service_manager"


def test_only_one_manager_per_process(manager: cotyledon.ServiceManager) -> None:
    with pytest.raises(RuntimeError) as exc:
        cotyledon.ServiceManager()
    assert str(exc.value) == "Only one instance of ServiceManager per application is allowed"
    cotyledon.ServiceManager._process_runner_already_created = False
    cotyledon.ServiceManager()  # resetting the flag is how test suites build several


def test_constructor_has_no_side_effects() -> None:
    cotyledon.ServiceManager._process_runner_already_created = False
    handlers = {sig: signal.getsignal(sig) for sig in _service_manager.MASTER_SIGNALS}
    threads = threading.active_count()
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    sid = os.getsid(0)
    cotyledon.ServiceManager(mp_context=None, graceful_shutdown_timeout=5)
    cotyledon.ServiceManager._process_runner_already_created = False
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    assert threading.active_count() == threads
    assert signal.set_wakeup_fd(-1) == wakeup
    signal.set_wakeup_fd(wakeup)
    assert os.getsid(0) == sid


def test_add_returns_fresh_uuids(manager: cotyledon.ServiceManager) -> None:
    first = manager.add(Svc)
    second = manager.add(Svc, workers=3, args=(1,), kwargs={"a": 2})
    assert isinstance(first, uuid.UUID)
    assert first != second


def test_add_rejects_a_non_callable(manager: cotyledon.ServiceManager) -> None:
    with pytest.raises(TypeError, match=r"^'service' must be a callable$"):
        manager.add("nope")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("workers", "shown"),
    [(0, "0 (int)"), (-1, "-1 (int)"), (None, "None (NoneType)"), ("2", "2 (str)")],
)
def test_add_rejects_bad_worker_counts(
    manager: cotyledon.ServiceManager, workers: object, shown: str
) -> None:
    with pytest.raises(ValueError, match=r"^'workers' must be") as exc:
        manager.add(Svc, workers=workers)  # type: ignore[arg-type]
    assert str(exc.value) == f"'workers' must be an int >= 1, not: {shown}"


def test_add_accepts_bool_workers(manager: cotyledon.ServiceManager) -> None:
    manager.add(Svc, workers=True)


def test_reconfigure_unknown_id(manager: cotyledon.ServiceManager) -> None:
    sid = uuid.uuid4()
    with pytest.raises(ValueError, match="service id doesn't exists") as exc:
        manager.reconfigure(sid, 2)  # type: ignore[arg-type]
    assert str(exc.value) == f"{sid} service id doesn't exists"


def test_reconfigure_minimum_is_one_minus_current(manager: cotyledon.ServiceManager) -> None:
    sid = manager.add(Svc, workers=3)
    manager.reconfigure(sid, -2)  # upstream quirk: accepted, stops every worker
    with pytest.raises(ValueError, match=r"^'workers' must be") as exc:
        manager.reconfigure(sid, -3)
    # the current count is now -2: the minimum is 1 - (-2) = 3
    assert str(exc.value) == "'workers' must be an int >= 3, not: -3 (int)"


@pytest.mark.parametrize("hook", ["on_terminate", "on_reload", "on_new_worker", "on_dead_worker"])
def test_register_hooks_rejects_non_callables(
    manager: cotyledon.ServiceManager, hook: str
) -> None:
    with pytest.raises(TypeError, match=rf"^'{hook}' must be a callable$"):
        manager.register_hooks(**{hook: 42})  # type: ignore[arg-type]


def test_register_hooks_appends_in_order(manager: cotyledon.ServiceManager) -> None:
    calls: list[str] = []
    manager.register_hooks(on_reload=lambda: calls.append("a"))
    manager.register_hooks(on_reload=lambda: calls.append("b"), on_terminate=lambda: None)
    _utils.run_hooks("reload", manager._hooks["reload"])
    assert calls == ["a", "b"]


def test_give_up_arguments_are_checked(manager: cotyledon.ServiceManager) -> None:
    with pytest.raises(ValueError, match="max_restarts"):
        manager.add(Svc, max_restarts=-1)
    with pytest.raises(ValueError, match="restart_period"):
        manager.add(Svc, max_restarts=1, restart_period=-5)


def test_replacement_arguments_are_checked(manager: cotyledon.ServiceManager) -> None:
    with pytest.raises(ValueError, match="reload must be one of signal, replace, not: 'hup'"):
        manager.add(Svc, reload="hup")
    with pytest.raises(ValueError, match="max_surge must be an int >= 1, not: 0"):
        manager.add(Svc, reload="replace", max_surge=0)
    with pytest.raises(ValueError, match="start_timeout must be > 0"):
        manager.add(Svc, reload="replace", start_timeout=0)
    assert not manager._services  # nothing was added


def test_shutdown_before_run_does_not_kill_the_process(
    manager: cotyledon.ServiceManager, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="cotyledon._service_manager")
    manager.shutdown()
    assert caplog.messages == ["Manager shutdown requested"]
    assert manager._shutdown_requested


def test_mp_context_is_a_writable_public_attribute(manager: cotyledon.ServiceManager) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    manager.mp_context = ctx
    assert manager.mp_context is ctx


def test_service_defaults() -> None:
    class Named(cotyledon.Service):
        name = "custom"

    class Child(Named):
        pass

    class Plain(cotyledon.Service):
        pass

    class PlainChild(Plain):
        pass

    assert Named.name == "custom"
    assert Child.name == "custom"
    assert Plain.name == "Plain"
    assert PlainChild.name == "PlainChild"
    svc = Plain(3)
    assert svc.worker_id == 3
    assert svc.pid == os.getpid()
    assert svc.graceful_shutdown_timeout is None


def test_types_module() -> None:
    from cotyledon import types

    assert types.ServiceId(uuid.UUID(int=1)) == uuid.UUID(int=1)
    assert types.WorkerId(2) == 2


def test_signal_to_name_only_names_real_signals() -> None:
    assert _utils.signal_to_name(9) == "SIGKILL"
    assert _utils.signal_to_name(-15) == "SIGTERM"
    assert _utils.signal_to_name(signal.SIGCHLD) == "SIGCHLD"
    assert "SIG_BLOCK" not in _utils.SIGNAL_TO_NAME.values()


def test_run_outside_the_main_thread_fails_cleanly(manager: cotyledon.ServiceManager) -> None:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            manager.run()
        except BaseException as exc:
            errors.append(exc)

    fds_before = set(os.listdir("/proc/self/fd"))
    thread = threading.Thread(target=target)
    thread.start()
    thread.join(10)
    assert len(errors) == 1
    assert isinstance(errors[0], ValueError)
    assert set(os.listdir("/proc/self/fd")) <= fds_before  # no pipe leaked
    with pytest.raises(RuntimeError, match=r"can only be called once"):
        manager.run()


def test_run_after_shutdown_stops_at_once_and_restores_signals(
    manager: cotyledon.ServiceManager,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # run() in-process: keep pytest's session and title. The service is never forked:
    # a shutdown requested before run() stops before the first fork.
    monkeypatch.setattr(os, "setsid", lambda: None)
    monkeypatch.setattr(_utils, "setproctitle", lambda title: None)
    monkeypatch.setattr(os, "fork", lambda: pytest.fail("forked"))
    manager.add(Svc, workers=2)
    caplog.set_level("DEBUG", logger="cotyledon._service_manager")
    handlers = {sig: signal.getsignal(sig) for sig in _service_manager.MASTER_SIGNALS}
    manager.shutdown()
    with pytest.raises(SystemExit) as exc:
        manager.run()
    assert exc.value.code == 0
    assert caplog.messages == [
        "Manager shutdown requested",
        "Caught SIGTERM signal, graceful exiting of master process",
        "Killing services with signal SIGTERM",
        "Waiting services to terminate",
        "Shutdown finish",
    ]
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers
    manager.shutdown()  # after run(): logs only, does not kill us
    assert caplog.messages[-1] == "Manager shutdown requested"


# -- the spawner seam (cotyledon._spawner) --------------------------------------------------


class RecordingSpawner:
    """A WorkerSpawner that records calls and answers reloads from a list."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answers: list[str] = []

    def spawn(self, config: object, setup: object) -> int:
        self.calls.append("spawn")
        raise OSError("no worker today")

    def prepare_reload(self, setup: object, answer: object) -> None:
        self.calls.append("prepare_reload")
        assert callable(answer)
        answer(self.answers.pop(0))

    def close(self) -> None:
        self.calls.append("close")


def test_a_spawner_is_keyword_only_and_prepares_replaced_reloads(
    manager: cotyledon.ServiceManager,
) -> None:
    spawner = RecordingSpawner()
    with pytest.raises(TypeError):
        manager.add(Svc, 1, None, None, None, None, "replace", 1, 60.0, spawner)  # type: ignore[call-arg]
    sid = manager.add(Svc, workers=1, reload="replace", spawner=spawner)
    (event,) = manager._commands
    assert event.prepare is True  # type: ignore[union-attr]
    assert manager._services[sid].spawner is spawner
    assert manager.add(Svc, workers=1, reload="replace") != sid
    assert manager._commands[-1].prepare is False  # type: ignore[union-attr]


def test_prepare_reload_answers_become_reload_prepared_events(
    manager: cotyledon.ServiceManager,
) -> None:
    from cotyledon import _supervisor as sv
    from cotyledon._spawner import ChildSetup

    spawner = RecordingSpawner()
    spawner.answers = ["", "cannot import"]
    sid = manager.add(Svc, workers=1, reload="replace", spawner=spawner)
    setup = ChildSetup((signal.SIGHUP,), (5, 6), 7, 8)
    manager._child_setup = lambda: setup  # type: ignore[method-assign]
    manager._do_prepare_reload(sv.PrepareReload(sid))
    manager._do_prepare_reload(sv.PrepareReload(sid))
    prepared = [e for e in manager._events if isinstance(e, sv.ReloadPrepared)]
    assert prepared == [sv.ReloadPrepared(sid, ""), sv.ReloadPrepared(sid, "cannot import")]
    config = manager._worker_config(sid, cotyledon.types.WorkerId(0))
    with pytest.raises(OSError, match="no worker today"):
        manager._spawn(sid, config)  # pytest is a child subreaper already (conftest)
    manager._teardown()
    assert spawner.calls == ["prepare_reload", "prepare_reload", "spawn", "close"]
