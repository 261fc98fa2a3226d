"""The HTTP events validate themselves; errors carry the status to answer with."""

from __future__ import annotations

import dataclasses

import pytest

from cotyledon.wsgi._http_events import (
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
    HTTPError,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Sentinel,
    trusted_request,
)


def _request(**changes: object) -> Request:
    fields: dict[str, object] = {
        "method": b"GET",
        "target": b"/",
        "http_version": b"1.1",
        "headers": ((b"host", b"a"),),
    }
    fields.update(changes)
    return Request(**fields)  # type: ignore[arg-type]


def test_valid_request() -> None:
    request = _request(headers=((b"host", b"a"), (b"x-empty", b""), (b"x", b"caf\xc3\xa9 \t x")))
    assert request.keep_alive
    assert not request.expect_continue


@pytest.mark.parametrize(
    "changes",
    [
        {"method": b""},
        {"method": b"GE T"},
        {"method": b"G\x00"},
        {"target": b""},
        {"target": b"/a b"},
        {"target": b"/\x7f"},
        {"target": b"/\xc3\xa9"},
        {"http_version": b"2.0"},
        {"http_version": b"1.1 "},
        {"headers": ((b"Host", b"a"),)},
        {"headers": ((b"x y", b"a"),)},
        {"headers": ((b"", b"a"),)},
        {"headers": ((b"x", b"a\r\nb"),)},
        {"headers": ((b"x", b"a\x00"),)},
        {"headers": ((b"x", b" padded"),)},
        {"headers": ((b"x", b"padded\t"),)},
    ],
)
def test_invalid_request_cannot_exist(changes: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        _request(**changes)


def test_events_are_frozen_and_compare_by_value() -> None:
    request = _request()
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = b"POST"  # type: ignore[misc]
    assert Data(b"x") == Data(b"x")
    assert EndOfMessage() == EndOfMessage()
    assert not hasattr(Data(b"x"), "__dict__")


def test_trusted_request_equals_the_validated_one() -> None:
    fast = trusted_request(
        b"GET", b"/", b"1.1", ((b"host", b"a"),), keep_alive=True, expect_continue=False
    )
    assert fast == _request()


def test_sentinels() -> None:
    assert NEED_DATA is Sentinel.NEED_DATA
    assert PAUSED is Sentinel.PAUSED
    assert repr(NEED_DATA) == "NEED_DATA"
    assert NEED_DATA is not PAUSED


def test_errors_say_whose_fault_and_which_status() -> None:
    remote = RemoteProtocolError("too big", 431)
    assert isinstance(remote, HTTPError)
    assert (remote.status_hint, remote.reason, str(remote)) == (431, "too big", "too big")
    assert RemoteProtocolError("bad").status_hint == 400
    local = LocalProtocolError("misuse")
    assert isinstance(local, HTTPError)
    assert local.status_hint == 500
    assert "status_hint=431" in repr(remote)
