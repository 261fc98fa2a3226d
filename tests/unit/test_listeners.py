"""Opening listeners on real sockets: TCP (v4, v6), Unix (mode, stale file, live server),
inherited fds, errors naming the bind, and all-or-nothing on failure."""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from cotyledon.wsgi._bind import FDBind, SystemdBind, TCPBind, UnixBind, parse_bind
from cotyledon.wsgi._listeners import Listener, ListenerError, close_listeners, open_listeners


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.fixture
def opened() -> Iterator[list[Listener]]:
    listeners: list[Listener] = []
    yield listeners
    close_listeners(listeners)


def _roundtrip(listener: Listener) -> None:
    """A client connects and the listener accepts it: the socket really listens."""
    family = listener.sock.family
    address = listener.sock.getsockname()
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        listener.sock.settimeout(5)
        conn, _ = listener.sock.accept()
        conn.close()
        listener.sock.setblocking(False)


def test_tcp_port_zero_reports_the_real_port(opened: list[Listener]) -> None:
    opened += open_listeners([TCPBind("127.0.0.1", 0)])
    (listener,) = opened
    port = listener.sock.getsockname()[1]
    assert port > 0
    assert listener.display == f"http://127.0.0.1:{port}"
    assert listener.owned_path is None
    assert listener.sock.getblocking() is False
    assert listener.sock.get_inheritable() is False
    assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    _roundtrip(listener)


def test_backlog_is_applied(opened: list[Listener]) -> None:
    opened += open_listeners([TCPBind("127.0.0.1", 0)], backlog=7)
    assert opened[0].sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)


def test_host_name_is_resolved(opened: list[Listener]) -> None:
    opened += open_listeners([parse_bind("localhost:0")])
    assert opened[0].display.startswith(("http://127.0.0.1:", "http://[::1]:"))
    _roundtrip(opened[0])


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this host")
def test_ipv6_is_v6_only(opened: list[Listener]) -> None:
    opened += open_listeners([parse_bind("[::1]:0")])
    (listener,) = opened
    assert listener.sock.family == socket.AF_INET6
    assert listener.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    assert listener.display == f"http://[::1]:{listener.sock.getsockname()[1]}"
    _roundtrip(listener)


def test_address_in_use_names_the_bind() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenerError) as info:
            open_listeners([TCPBind("127.0.0.1", port)])
    assert info.value.errno == errno.EADDRINUSE
    assert str(info.value) == (
        f"[Errno {errno.EADDRINUSE}] cannot listen on 127.0.0.1:{port}: address already in use"
    )


def test_unresolvable_host_names_the_bind() -> None:
    with pytest.raises(ListenerError, match=r"cannot listen on no-such-host\.invalid:80"):
        open_listeners([TCPBind("no-such-host.invalid", 80)])


def test_all_or_nothing(tmp_path: Path) -> None:
    """The second bind fails: the first socket and its Unix file are gone again."""
    path = tmp_path / "a.sock"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ListenerError, match=f"127.0.0.1:{port}"):
            open_listeners([UnixBind(str(path)), TCPBind("127.0.0.1", port)])
    assert not path.exists()


def test_unix_socket_with_mode_is_owned(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    opened += open_listeners([parse_bind(f"unix:{path}:600")])
    (listener,) = opened
    assert listener.display == f"unix:{path}"
    assert listener.owned_path == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    _roundtrip(listener)
    close_listeners(opened)
    opened.clear()
    assert not path.exists()


def test_stale_unix_socket_is_replaced(opened: list[Listener], tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a killed server leaves
    assert path.exists()
    opened += open_listeners([UnixBind(str(path))])
    _roundtrip(opened[0])


def test_live_unix_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        with pytest.raises(ListenerError, match="another server is listening there"):
            open_listeners([UnixBind(str(path))])
        assert path.exists()


def test_unix_path_that_is_not_a_socket_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with pytest.raises(ListenerError, match="the path exists, not a socket"):
        open_listeners([UnixBind(str(path))])
    assert path.read_text() == "precious"


def test_unix_in_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ListenerError, match="no such file or directory"):
        open_listeners([UnixBind(str(tmp_path / "nope" / "a.sock"))])


def test_inherited_fd_is_adopted(opened: list[Listener]) -> None:
    parent = socket.socket()
    parent.bind(("127.0.0.1", 0))
    parent.listen()
    fd = os.dup(parent.fileno())
    parent.close()
    opened += open_listeners([FDBind(fd)])
    (listener,) = opened
    assert listener.sock.fileno() == fd
    assert listener.display.startswith("http://127.0.0.1:")
    _roundtrip(listener)


def test_fd_not_open() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(ListenerError, match=f"fd {fd} is not open"):
        open_listeners([FDBind(fd)])


def test_fd_not_a_socket_is_refused_and_left_open() -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with pytest.raises(ListenerError, match="is not a socket"):
            open_listeners([FDBind(fd)])
        os.fstat(fd)  # still ours
    finally:
        os.close(fd)


def test_fd_not_listening_is_refused_and_left_open() -> None:
    with socket.socket() as idle:
        with pytest.raises(ListenerError, match="not listening"):
            open_listeners([FDBind(idle.fileno())])
        assert idle.fileno() >= 0


def test_fd_datagram_is_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dgram,
        pytest.raises(ListenerError, match="not a stream"),
    ):
        open_listeners([FDBind(dgram.fileno())])


def test_systemd_without_activation_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cotyledon import systemd

    monkeypatch.setattr(systemd, "_adopted", None)  # a fresh process: nothing adopted yet
    with pytest.raises(ListenerError, match="systemd passed no socket"):
        open_listeners([SystemdBind()], environ={})


def test_no_bind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one bind"):
        open_listeners([])
