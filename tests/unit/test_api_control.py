"""The worker -> master control channel (the interface the systemd and WSGI code use)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cotyledon import _control


@pytest.fixture
def channel() -> Iterator[_control.ControlChannel]:
    chan = _control.ControlChannel()
    yield chan
    _control.detach()
    chan.close()


def test_not_in_a_worker_by_default() -> None:
    assert not _control.in_worker()
    assert _control.send_to_master("started") is False


def test_messages_round_trip(channel: _control.ControlChannel) -> None:
    _control.attach_worker(channel.write_fd)
    assert _control.in_worker()
    assert _control.send_to_master("started")
    assert _control.send_to_master("health", "fail db\ndown")
    assert channel.read() == [
        _control.Message(os.getpid(), "started", ""),
        _control.Message(os.getpid(), "health", "fail db down"),
    ]
    assert channel.read() == []


def test_too_long_messages_are_refused(channel: _control.ControlChannel) -> None:
    _control.attach_worker(channel.write_fd)
    assert not _control.send_to_master("notify", "x" * _control.MAX_MESSAGE)
    assert channel.read() == []


def test_partial_lines_wait_for_their_end(channel: _control.ControlChannel) -> None:
    os.write(channel.write_fd, b"12 start")
    assert channel.read() == []
    os.write(channel.write_fd, b"ed \ngarbage\n13 health ok\n")
    assert channel.read() == [
        _control.Message(12, "started", ""),
        _control.Message(13, "health", "ok"),
    ]


def test_a_full_pipe_drops_the_message_instead_of_blocking(
    channel: _control.ControlChannel,
) -> None:
    _control.attach_worker(channel.write_fd)
    results = [_control.send_to_master("notify", "X_FILL=" + "y" * 400) for _ in range(400)]
    assert True in results
    assert False in results


@pytest.mark.parametrize("kind", ["", "two words", "tab\there"])
def test_kind_is_one_word(kind: str) -> None:
    with pytest.raises(ValueError, match="invalid message kind"):
        _control.send_to_master(kind)
