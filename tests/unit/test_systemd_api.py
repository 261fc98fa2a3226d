"""The public cotyledon.systemd API in-process: master side (direct datagrams to a fake
PID 1), worker side (what goes to the master over the control channel), health, and the
once-per-process adoption of activated sockets."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from cotyledon import _control, _systemd, systemd
from tests.support.fake_notify import FakeNotifySocket


@pytest.fixture(autouse=True)
def _fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(systemd, "_notifier", None)
    monkeypatch.setattr(systemd, "_adopted", None)
    _systemd.set_local_health(True)
    yield
    if systemd._notifier is not None:
        systemd._notifier.close()
    _systemd.set_local_health(True)


@pytest.fixture
def pid1(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNotifySocket]:
    with FakeNotifySocket("abstract") as server:
        monkeypatch.setenv("NOTIFY_SOCKET", server.address)
        monkeypatch.setenv("WATCHDOG_USEC", "1000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield server


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Pretend to be a worker: capture what would go to the master."""
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(_control, "in_worker", lambda: True)

    def send(kind: str, payload: str = "") -> bool:
        sent.append((kind, payload))
        return True

    monkeypatch.setattr(_control, "send_to_master", send)
    return sent


def test_master_notify_goes_to_pid1(pid1: FakeNotifySocket) -> None:
    assert systemd.notify(status="warming\ncache", X_PHASE=2)
    message = pid1.wait_key("X_PHASE")
    assert message.raw == b"STATUS=warming cache\nX_PHASE=2"
    assert message.pid == os.getpid()


def test_master_notify_without_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify(status="nobody listens") is False


def test_notify_needs_a_field() -> None:
    with pytest.raises(ValueError, match="at least one"):
        systemd.notify()


def test_worker_notify_is_relayed(worker: list[tuple[str, str]]) -> None:
    assert systemd.notify(status="a\\nb\nc", X_WORKER=1)
    assert worker == [("notify", "STATUS=a\\\\nb c\\nX_WORKER=1")]
    _kind, payload = worker[0]
    assert _systemd.unescape_payload(payload) == {"STATUS": "a\\nb c", "X_WORKER": "1"}


def test_worker_may_not_send_lifecycle_messages(worker: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError, match="READY"):
        systemd.notify(READY=1)
    with pytest.raises(ValueError, match="WATCHDOG"):
        systemd.notify(status="x", WATCHDOG=1)
    assert worker == []


def test_worker_health_goes_to_the_master(worker: list[tuple[str, str]]) -> None:
    assert systemd.set_health(False, "broker\nunreachable ")
    assert systemd.set_health(True, "ignored")
    assert systemd.set_health(False)
    assert worker == [("health", "fail broker unreachable"), ("health", "ok"), ("health", "fail")]
    assert systemd.is_healthy() == (True, "")  # the worker's own flag is not the master's


def test_master_health_stops_its_own_watchdog(pid1: FakeNotifySocket) -> None:
    notifier = _systemd.Notifier.from_environ()
    try:
        assert notifier.watchdog()
        assert systemd.set_health(False, "wedged hook")
        assert systemd.is_healthy() == (False, "wedged hook")
        assert not notifier.watchdog()
        assert systemd.set_health(True)
        assert systemd.is_healthy() == (True, "")
        assert notifier.watchdog()
        assert notifier.notify(X_END=1)
        pid1.wait_key("X_END")
    finally:
        notifier.close()
    assert [m.raw for m in pid1.snapshot()] == [b"WATCHDOG=1", b"WATCHDOG=1", b"X_END=1"]


def test_listen_sockets_adopted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    base = 210
    monkeypatch.setattr(_systemd, "SD_LISTEN_FDS_START", base)
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(3)]
    for offset, sock in enumerate(listeners):
        os.dup2(sock.fileno(), base + offset)
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "3", "LISTEN_FDNAMES": "web:web:admin"}
    try:
        first = systemd.listen_sockets(env)
        second = systemd.listen_sockets()
        assert sorted(first) == ["admin", "web"]
        assert [s.fileno() for s in first["web"]] == [base, base + 1]
        assert [s.fileno() for s in first["admin"]] == [base + 2]
        assert second == first
        assert second["web"][0] is first["web"][0]
        first["web"].clear()  # callers get copies of the lists
        assert len(systemd.listen_sockets()["web"]) == 2
        assert env == {}
    finally:
        for socks in systemd.listen_sockets().values():
            for sock in socks:
                sock.close()
        for sock in listeners:
            sock.close()


def test_listen_fds_passes_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.listen_fds() == []
    assert "LISTEN_FDS" not in os.environ


def test_booted_matches_the_marker_directory() -> None:
    assert systemd.booted() == os.path.isdir("/run/systemd/system")
