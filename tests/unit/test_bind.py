"""Bind text: every accepted form, every refusal naming the bad text, and the round trip."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotyledon.wsgi._bind import (
    DEFAULT_BIND,
    BindError,
    FDBind,
    SystemdBind,
    TCPBind,
    UnixBind,
    default_binds,
    format_bind,
    parse_bind,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", TCPBind("127.0.0.1", 8000)),
        ("0.0.0.0:80", TCPBind("0.0.0.0", 80)),
        ("localhost:8000", TCPBind("localhost", 8000)),
        ("Example.COM:443", TCPBind("example.com", 443)),
        ("my_host:1", TCPBind("my_host", 1)),
        (":8000", TCPBind("127.0.0.1", 8000)),
        ("8000", TCPBind("127.0.0.1", 8000)),
        ("127.0.0.1:0", TCPBind("127.0.0.1", 0)),
        ("[::1]:8000", TCPBind("::1", 8000)),
        ("[::]:80", TCPBind("::", 80)),
        ("[0:0:0:0:0:0:0:1]:80", TCPBind("::1", 80)),
        ("[fe80::1%eth0]:80", TCPBind("fe80::1%eth0", 80)),
        ("  127.0.0.1:8000 ", TCPBind("127.0.0.1", 8000)),
        ("unix:/run/app.sock", UnixBind("/run/app.sock")),
        ("unix:/run/app.sock:660", UnixBind("/run/app.sock", 0o660)),
        ("unix:/run/app.sock:0600", UnixBind("/run/app.sock", 0o600)),
        ("unix:relative.sock", UnixBind("relative.sock")),
        ("unix:/tmp/a:b.sock", UnixBind("/tmp/a:b.sock")),
        ("fd://3", FDBind(3)),
        ("fd://12", FDBind(12)),
        ("systemd", SystemdBind()),
        ("systemd:web", SystemdBind("web")),
    ],
)
def test_accepted_forms(text: str, expected: object) -> None:
    assert parse_bind(text) == expected


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("127.0.0.1", "no port"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:-1", "not a number"),
        ("127.0.0.1:65536", "out of range"),
        ("127.0.0.1:٣", "not a number"),
        ("::1:8000", "brackets"),
        ("fe80::1:80", "brackets"),
        ("[::1]8000", "[ADDRESS]:PORT"),
        ("[::1", "[ADDRESS]:PORT"),
        ("[not-v6]:80", "not an IPv6 address"),
        ("999.1.1.1:80", "not a host name"),
        ("bad host:80", "not a host name"),
        ("-bad:80", "not a host name"),
        ("nonsense:port:x", "not a host name"),
        ("::1", "brackets"),
        ("unix:", "no path"),
        ("unix:" + "/x" * 60, "107 bytes"),
        ("unix:/a\0b", "NUL"),
        ("fd://", "not a number"),
        ("fd://x", "not a number"),
        ("fd://1", "stdin, stdout and stderr"),
        ("systemd:", "not a FileDescriptorName"),
        ("systemd:a b", "not a FileDescriptorName"),
        ("http://127.0.0.1:80", "only fd://"),
    ],
)
def test_refused_forms_name_the_text_and_the_choices(text: str, why: str) -> None:
    with pytest.raises(BindError) as info:
        parse_bind(text)
    message = str(info.value)
    assert repr(text) in message
    assert why in message
    assert "HOST:PORT" in message
    assert isinstance(info.value, ValueError)


def test_non_string_is_refused() -> None:
    with pytest.raises(BindError, match="a bind is a string"):
        parse_bind(8000)  # type: ignore[arg-type]


def test_family() -> None:
    assert parse_bind("[::1]:1").family == socket.AF_INET6  # type: ignore[union-attr]
    assert parse_bind("127.0.0.1:1").family == socket.AF_INET  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:8000",
        "[::1]:8000",
        "localhost:1",
        "unix:/run/a.sock",
        "unix:/run/a.sock:660",
        "fd://3",
        "systemd",
        "systemd:web",
    ],
)
def test_format_is_the_canonical_text(text: str) -> None:
    assert format_bind(parse_bind(text)) == text


# A label may hold '-' but not end with it.
_HOST_NAME = r"[a-z]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z][a-z0-9]{0,20}){0,3}"

_binds = st.one_of(
    st.builds(
        TCPBind,
        st.one_of(
            st.ip_addresses(v=4).map(str),
            st.ip_addresses(v=6).map(lambda a: a.compressed),
            st.from_regex(_HOST_NAME, fullmatch=True),
        ),
        st.integers(0, 65535),
    ),
    st.builds(
        UnixBind,
        # A path ending in ":NNN" reads as a mode: such paths need their mode spelled out.
        st.from_regex(r"/[A-Za-z0-9_./:-]{0,80}[A-Za-z_.-]", fullmatch=True),
        st.none() | st.integers(0, 0o7777),
    ),
    st.builds(FDBind, st.integers(3, 10**6)),
    st.builds(SystemdBind, st.none() | st.from_regex(r"[A-Za-z0-9_.-]{1,40}", fullmatch=True)),
)


@given(_binds)
def test_parse_reads_back_what_format_wrote(bind: object) -> None:
    assert parse_bind(format_bind(bind)) == bind  # type: ignore[arg-type]


def test_default_is_localhost_8000() -> None:
    assert default_binds({}) == [DEFAULT_BIND] == [TCPBind("127.0.0.1", 8000)]


def test_port_from_the_environment_listens_on_every_interface() -> None:
    assert default_binds({"PORT": "9123"}) == [TCPBind("0.0.0.0", 9123)]


@pytest.mark.parametrize("port", ["http", "70000", "-1"])
def test_bad_port_in_the_environment(port: str) -> None:
    with pytest.raises(BindError, match="PORT"):
        default_binds({"PORT": port})


def test_socket_activation_for_this_process_wins() -> None:
    import os

    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid()), "PORT": "9000"}
    assert default_binds(env) == [SystemdBind()]


def test_socket_activation_meant_for_another_process_is_ignored() -> None:
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
    assert default_binds(env) == [DEFAULT_BIND]
