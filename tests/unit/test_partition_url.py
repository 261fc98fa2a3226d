"""Coordination URL checks, member ids and retry spacing of cotyledon.partition (pure)."""

from __future__ import annotations

import pytest

from cotyledon.partition._url import CoordinationURLError, backoff, check_url, member_id, redact

SCHEMES = {"redis", "file", "etcd3+http"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "coordination URL must be a non-empty string, not: ''"),
        ("redis://[bad", "malformed coordination URL 'redis://[bad': Invalid IPv6 URL"),
        (
            "redis://127.0.0.1:port",
            (
                "malformed coordination URL 'redis://127.0.0.1:port': Port could not be cast "
                "to integer value as 'port'"
            ),
        ),
        (
            "127.0.0.1:6379",
            "malformed coordination URL '127.0.0.1:6379': no backend scheme (e.g. redis://host:6379)",
        ),
        (
            "localhost",
            "malformed coordination URL 'localhost': no backend scheme (e.g. redis://host:6379)",
        ),
        (
            "nope://u:secret@h",
            (
                "unknown coordination backend 'nope' in 'nope://u:***@h' "
                "(installed: etcd3+http, file, redis)"
            ),
        ),
    ],
)
def test_bad_urls_are_refused_with_one_clear_message(url: str, message: str) -> None:
    with pytest.raises(CoordinationURLError) as info:
        check_url(url, SCHEMES)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_good_urls_give_their_scheme() -> None:
    assert check_url("redis://127.0.0.1:6379?timeout=3", SCHEMES) == "redis"
    assert check_url("file:///tmp/x", SCHEMES) == "file"
    assert check_url("etcd3+http://h:2379", SCHEMES) == "etcd3+http"


def test_redact_hides_passwords_only() -> None:
    assert redact("redis://:pw@h:1") == "redis://:***@h:1"
    assert redact("redis://user:pw@h:1/0?x=1") == "redis://user:***@h:1/0?x=1"
    assert redact("redis://h:1") == "redis://h:1"
    assert redact("redis://u:pw@[bad") == "redis://***@[bad"


def test_member_id() -> None:
    assert member_id("web-3", 4242, "poller", 1) == "web-3:4242:poller:1"


def test_backoff_doubles_up_to_the_cap() -> None:
    assert backoff(5, 0.1, 0.5) == [0.1, 0.2, 0.4, 0.5]
    assert backoff(1, 0.1, 0.5) == []
    assert backoff(0, 0.1, 0.5) == []
