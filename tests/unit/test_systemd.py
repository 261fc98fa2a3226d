"""cotyledon._systemd in-process: message format, environment parsing, real datagrams to a
fake PID 1 (path and abstract), the compat failure line, and LISTEN_FDS adoption."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator

import pytest

from cotyledon import _systemd
from cotyledon._systemd import ListenFdsError, Notifier
from tests.support.fake_notify import FakeNotifySocket


@pytest.fixture(params=["path", "abstract"])
def pid1(request: pytest.FixtureRequest) -> Iterator[FakeNotifySocket]:
    with FakeNotifySocket(request.param) as server:
        yield server


@pytest.fixture(autouse=True)
def _healthy() -> Iterator[None]:
    _systemd.set_local_health(True)
    yield
    _systemd.set_local_health(True)


def notifier_for(server: FakeNotifySocket, **env: str) -> Notifier:
    return Notifier.from_environ(server.env(**env))


# --- addresses and message format -------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("/run/systemd/notify", "/run/systemd/notify"),
        ("@sd-notify", b"\0sd-notify"),
        ("@", None),
        ("", None),
        (None, None),
        ("vsock:2:1234", None),
        ("vsock-stream:2:1234", None),
        ("relative/path", None),
    ],
)
def test_notify_address(value: str | None, address: str | bytes | None) -> None:
    assert _systemd.notify_address(value) == address


def test_format_message_keeps_order_and_joins_with_newlines() -> None:
    assert _systemd.format_message({"READY": 1, "STATUS": "2/2 workers"}) == (
        b"READY=1\nSTATUS=2/2 workers"
    )
    assert _systemd.format_message({"STATUS": "x", "READY": True}) == b"STATUS=x\nREADY=1"


def test_format_message_makes_values_single_line() -> None:
    payload = _systemd.format_message({"STATUS": "line one\r\nline two\nthree\n"})
    assert payload == b"STATUS=line one line two three"


def test_format_message_encodes_utf8() -> None:
    assert _systemd.format_message({"STATUS": "caf\u00e9"}) == "STATUS=caf\u00e9".encode()


@pytest.mark.parametrize("key", ["ready", "STATUS ", "X-Y", "1ABC", "A=B", ""])
def test_format_message_rejects_bad_keys(key: str) -> None:
    with pytest.raises(ValueError, match="invalid sd_notify key"):
        _systemd.format_message({key: 1})


def test_format_message_rejects_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        _systemd.format_message({})


def test_escape_round_trip() -> None:
    payload = _systemd.format_message({"STATUS": "a\\nb c\\", "X_ONE": "1=2"})
    line = _systemd.escape_payload(payload)
    assert "\n" not in line
    assert _systemd.unescape_payload(line) == {"STATUS": "a\\nb c\\", "X_ONE": "1=2"}


def test_unescape_drops_garbage() -> None:
    assert _systemd.unescape_payload("no equal sign\\nlower=1\\nX_OK=yes") == {"X_OK": "yes"}


# --- environment parsing ----------------------------------------------------------------


def test_disabled_without_notify_socket() -> None:
    notifier = Notifier.from_environ({})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert not notifier.ready("x")
    assert not notifier.reloading()
    assert not notifier.stopping()
    assert not notifier.status("x")
    assert not notifier.watchdog()
    assert not notifier.extend_timeout(5)
    notifier.close()


def test_unsupported_address_disables_with_a_trace_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1)
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "vsock:2:999", "WATCHDOG_USEC": "1000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval is None
    assert [r.levelno for r in caplog.records] == [_systemd.TRACE]
    assert "vsock:2:999" in caplog.records[0].getMessage()


def test_from_environ_reads_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@from-os-environ")
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = Notifier.from_environ()
    assert notifier.address == b"\0from-os-environ"
    assert notifier.watchdog_interval == 1.5


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "400000"}, 0.2),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "<self>"}, 2.5),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "<other>"}, None),
        ({"WATCHDOG_USEC": "5000000", "WATCHDOG_PID": "nonsense"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_PID": "<self>"}, None),
        ({}, None),
    ],
)
def test_watchdog_environment(env: dict[str, str], interval: float | None) -> None:
    pids = {"<self>": str(os.getpid()), "<other>": str(os.getpid() + 1)}
    environ = {k: pids.get(v, v) for k, v in env.items()}
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "@x", **environ})
    assert notifier.enabled
    assert notifier.watchdog_interval == interval


def test_scrub_child_environ() -> None:
    env = dict.fromkeys(_systemd.CHILD_ENVIRON_KEYS, "1")
    env.update(PATH="/bin", INVOCATION_ID="abc")
    _systemd.scrub_child_environ(env)
    assert env == {"PATH": "/bin", "INVOCATION_ID": "abc"}
    _systemd.scrub_child_environ(env)  # idempotent
    assert env == {"PATH": "/bin", "INVOCATION_ID": "abc"}


def test_scrub_child_environ_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@x")
    monkeypatch.setenv("LISTEN_FDS", "1")
    _systemd.scrub_child_environ()
    assert "NOTIFY_SOCKET" not in os.environ
    assert "LISTEN_FDS" not in os.environ


# --- real datagrams ---------------------------------------------------------------------


def test_messages_reach_pid1_from_our_pid(pid1: FakeNotifySocket) -> None:
    notifier = notifier_for(pid1)
    try:
        assert notifier.ready("2/2 workers")
        assert notifier.status("line\nbreak")
        assert notifier.stopping("stopping")
        assert notifier.extend_timeout(2.5)
        assert notifier.mainpid(4242)
        assert notifier.notify(X_CUSTOM="yes", STATUS="s")
        pid1.wait_key("X_CUSTOM")
    finally:
        notifier.close()
    raws = [m.raw for m in pid1.snapshot()]
    assert raws == [
        b"READY=1\nSTATUS=2/2 workers",
        b"STATUS=line break",
        b"STOPPING=1\nSTATUS=stopping",
        b"EXTEND_TIMEOUT_USEC=2500000",
        b"MAINPID=4242",
        b"X_CUSTOM=yes\nSTATUS=s",
    ]
    assert {m.pid for m in pid1.snapshot()} == {os.getpid()}
    assert {m.uid for m in pid1.snapshot()} == {os.getuid()}


def test_reloading_carries_monotonic_usec(pid1: FakeNotifySocket) -> None:
    notifier = notifier_for(pid1)
    try:
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert notifier.reloading("reloading")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        message = pid1.wait_key("RELOADING", "1")
    finally:
        notifier.close()
    assert list(message.fields) == ["RELOADING", "MONOTONIC_USEC", "STATUS"]
    assert before <= int(message.fields["MONOTONIC_USEC"]) <= after
    assert message.fields["STATUS"] == "reloading"


def test_watchdog_pings_only_when_ours_and_healthy(pid1: FakeNotifySocket) -> None:
    mine = notifier_for(pid1, WATCHDOG_USEC="1000000")
    other = notifier_for(pid1, WATCHDOG_USEC="1000000", WATCHDOG_PID=str(os.getpid() + 1))
    try:
        assert mine.watchdog()
        assert not other.watchdog()
        _systemd.set_local_health(False, "database unreachable")
        assert _systemd.local_health() == (False, "database unreachable")
        assert not mine.watchdog()
        _systemd.set_local_health(True, "ignored when ok")
        assert _systemd.local_health() == (True, "")
        assert mine.watchdog()
        assert mine.notify(X_END=1)
        pid1.wait_key("X_END")
    finally:
        mine.close()
        other.close()
    assert [m.raw for m in pid1.snapshot()] == [b"WATCHDOG=1", b"WATCHDOG=1", b"X_END=1"]


def test_socket_is_close_on_exec(pid1: FakeNotifySocket) -> None:
    notifier = notifier_for(pid1)
    try:
        assert notifier.status("x")
        sock = notifier._sock
        assert sock is not None
        assert not os.get_inheritable(sock.fileno())
        assert sock.type == socket.SOCK_DGRAM
    finally:
        notifier.close()
    assert notifier._sock is None
    notifier.close()  # twice is fine


def test_forked_copy_stays_silent(pid1: FakeNotifySocket, monkeypatch: pytest.MonkeyPatch) -> None:
    notifier = notifier_for(pid1)
    try:
        assert notifier.status("from the master")
        real_pid = os.getpid()
        monkeypatch.setattr(_systemd.os, "getpid", lambda: real_pid + 1)
        assert not notifier.status("from a worker")
        assert notifier._sock is None
        monkeypatch.undo()
        assert notifier.notify(X_END=1)
        pid1.wait_key("X_END")
    finally:
        notifier.close()
    assert [m.raw for m in pid1.snapshot()] == [b"STATUS=from the master", b"X_END=1"]


def test_send_failure_logs_the_compat_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cotyledon")
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": "/nonexistent/cotyledon/notify"})
    try:
        assert notifier.enabled
        assert not notifier.ready()
    finally:
        notifier.close()
    lines = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [("cotyledon._service_manager", logging.DEBUG, "Systemd notification failed")]


def test_success_logs_nothing_at_debug(
    pid1: FakeNotifySocket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cotyledon")
    notifier = notifier_for(pid1, WATCHDOG_USEC="1000000")
    try:
        notifier.ready("x")
        notifier.reloading()
        notifier.watchdog()
        notifier.stopping()
    finally:
        notifier.close()
    assert caplog.records == []


def test_invalid_key_is_a_programming_error(pid1: FakeNotifySocket) -> None:
    notifier = notifier_for(pid1)
    with pytest.raises(ValueError, match="invalid sd_notify key"):
        notifier.notify(ready=1)
    notifier.close()


# --- LISTEN_FDS --------------------------------------------------------------------------

BASE = 200  # tests place the "activated" fds here instead of 3, which pytest already uses


@pytest.fixture
def activated(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """Three listeners dup'ed to BASE.. (TCP stream, UDP, unix stream), originals closed."""
    monkeypatch.setattr(_systemd, "SD_LISTEN_FDS_START", BASE)
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(b"\0cotyledon-listen-" + str(os.getpid()).encode())
    unix.listen()
    originals = [tcp, udp, unix]
    for offset, sock in enumerate(originals):
        os.dup2(sock.fileno(), BASE + offset, inheritable=True)
    yield originals
    for sock in originals:
        sock.close()
    for offset in range(len(originals)):
        with contextlib.suppress(OSError):  # adopted and closed by the test
            os.close(BASE + offset)


def listen_env(count: int, names: str | None = None, pid: int | None = None) -> dict[str, str]:
    env = {"LISTEN_PID": str(os.getpid() if pid is None else pid), "LISTEN_FDS": str(count)}
    if names is not None:
        env["LISTEN_FDNAMES"] = names
    return env


def test_listen_fds_adopts_sockets_by_name(activated: list[socket.socket]) -> None:
    env = listen_env(3, "web:metrics:admin")
    env["OTHER"] = "kept"
    adopted = _systemd.listen_fds(env)
    try:
        assert [fd.name for fd in adopted] == ["web", "metrics", "admin"]
        assert [fd.socket.fileno() for fd in adopted] == [BASE, BASE + 1, BASE + 2]
        kinds = [(fd.socket.family, fd.socket.type) for fd in adopted]
        assert kinds == [
            (socket.AF_INET, socket.SOCK_STREAM),
            (socket.AF_INET, socket.SOCK_DGRAM),
            (socket.AF_UNIX, socket.SOCK_STREAM),
        ]
        assert adopted[0].socket.getsockname() == activated[0].getsockname()
        assert all(not os.get_inheritable(fd.socket.fileno()) for fd in adopted)
        name, sock = adopted[0]  # a plain (name, socket) pair too
        assert (name, sock) == ("web", adopted[0].socket)
    finally:
        for fd in adopted:
            fd.socket.close()
    assert env == {"OTHER": "kept"}


def test_listen_fds_defaults_names_to_unknown(activated: list[socket.socket]) -> None:
    adopted = _systemd.listen_fds(listen_env(2))
    try:
        assert [fd.name for fd in adopted] == ["unknown", "unknown"]
    finally:
        for fd in adopted:
            fd.socket.close()


def test_listen_fds_empty_name_is_unknown(activated: list[socket.socket]) -> None:
    adopted = _systemd.listen_fds(listen_env(2, ":web"))
    try:
        assert [fd.name for fd in adopted] == ["unknown", "web"]
    finally:
        for fd in adopted:
            fd.socket.close()


def test_listen_fds_for_another_pid_are_ignored_and_unset(
    activated: list[socket.socket],
) -> None:
    env = listen_env(3, "a:b:c", pid=os.getpid() + 1)
    assert _systemd.listen_fds(env) == []
    assert env == {}
    assert os.get_inheritable(BASE)  # untouched


def test_listen_fds_can_keep_the_environment(activated: list[socket.socket]) -> None:
    env = listen_env(1, "web")
    adopted = _systemd.listen_fds(env, unset_environment=False)
    try:
        assert [fd.name for fd in adopted] == ["web"]
    finally:
        for fd in adopted:
            fd.socket.close()
    assert env == listen_env(1, "web")


def test_listen_fds_absent() -> None:
    assert _systemd.listen_fds({}) == []


def test_listen_fds_zero_ignores_names() -> None:
    env = listen_env(0, "web")
    assert _systemd.listen_fds(env) == []
    assert env == {}


@pytest.mark.parametrize("count", ["", "two", "-1"])
def test_listen_fds_bad_count(count: str) -> None:
    env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": count}
    with pytest.raises(ListenFdsError, match="LISTEN_FDS must be a count"):
        _systemd.listen_fds(env)
    assert env == {}


def test_listen_fds_names_mismatch(activated: list[socket.socket]) -> None:
    with pytest.raises(ListenFdsError, match="has 1 names"):
        _systemd.listen_fds(listen_env(2, "web"))
    assert os.get_inheritable(BASE)  # nothing adopted


def test_listen_fds_more_than_passed(activated: list[socket.socket]) -> None:
    env = listen_env(5)
    with pytest.raises(ListenFdsError, match=f"fd {BASE + 3} is not open"):
        _systemd.listen_fds(env)
    assert env == {}
    assert os.get_inheritable(BASE)  # nothing adopted, nothing closed


def test_listen_fds_not_a_socket(activated: list[socket.socket]) -> None:
    read_end, write_end = os.pipe()
    try:
        os.dup2(read_end, BASE + 1)
        with pytest.raises(ListenFdsError, match=f"fd {BASE + 1} is not a socket"):
            _systemd.listen_fds(listen_env(2))
    finally:
        os.close(read_end)
        os.close(write_end)
