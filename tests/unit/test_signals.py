"""The self-pipe, in-process: signals become bytes, and everything is restored."""

from __future__ import annotations

import os
import signal
import threading

from cotyledon import _signals


def test_signals_become_bytes_and_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGUSR1)
    old_wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(old_wakeup)
    pipe = _signals.SignalPipe([signal.SIGUSR1, signal.SIGUSR2])
    pipe.install()
    try:
        signal.raise_signal(signal.SIGUSR1)
        signal.raise_signal(signal.SIGUSR2)
        pipe.wake()
        assert pipe.read() == [signal.SIGUSR1, signal.SIGUSR2, _signals.WAKE]
        assert pipe.read() == []
    finally:
        pipe.restore()
        pipe.close()
    assert signal.getsignal(signal.SIGUSR1) == before
    assert signal.set_wakeup_fd(-1) == old_wakeup
    signal.set_wakeup_fd(old_wakeup)


def test_pipe_is_cloexec_and_nonblocking() -> None:
    pipe = _signals.SignalPipe([])
    try:
        for fd in (pipe.read_fd, pipe.write_fd):
            assert not os.get_inheritable(fd)
            assert not os.get_blocking(fd)
    finally:
        pipe.close()


def test_blocked_defers_delivery_until_the_block_ends() -> None:
    pipe = _signals.SignalPipe([signal.SIGUSR1])
    pipe.install()
    try:
        with _signals.blocked([signal.SIGUSR1]) as previous:
            assert signal.SIGUSR1 not in previous
            # to this thread: under xdist other threads would take a process signal
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            assert signal.SIGUSR1 in signal.sigpending()
            assert pipe.read() == []
        assert pipe.read() == [signal.SIGUSR1]
    finally:
        pipe.restore()
        pipe.close()


def test_wake_never_blocks_on_a_full_pipe() -> None:
    pipe = _signals.SignalPipe([])
    try:
        for _ in range(70_000):
            pipe.wake()
        assert len(pipe.read()) >= 4096
    finally:
        pipe.close()
