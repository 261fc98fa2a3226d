"""Master extensions: code that lives in the master's event loop (the core never imports
what implements them).

Job: define what the master asks of an extension. ``cotyledon.wsgi`` attaches one per
WSGI service to run its status page and its hung-worker watch inside the master: the
master waits on the extension's fds and deadline together with its own, tells it about
the processes it forks, replaces and reaps, and closes its fds in every worker it forks.

Must: never block and never raise out of a method (the master logs and goes on); all
calls come from the master's main thread, between two waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from cotyledon.types import ServiceId, WorkerId


class MasterExtension(Protocol):
    """What the master calls on an attached extension (see the module docstring)."""

    #: Signals the master catches for this extension (beyond its own) and passes to
    #: :meth:`on_signal` from its loop, never from a signal handler.
    signals: tuple[int, ...]

    def on_signal(self, signum: int) -> None:
        """One of :attr:`signals` arrived."""

    def read_fds(self) -> Iterable[int]:
        """Fds the master must wait on for reading."""

    def write_fds(self) -> Iterable[int]:
        """Fds the master must wait on for writing."""

    def on_ready(self, readable: list[int], writable: list[int]) -> None:
        """Some of the fds above are ready."""

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` must run next (monotonic time), None for never."""

    def on_tick(self, now: float) -> None:
        """Called after every wake-up of the master."""

    def before_fork(self, service_id: ServiceId, worker_id: WorkerId) -> None:
        """About to fork a worker (the child inherits what this sets up)."""

    def on_spawned(self, service_id: ServiceId, worker_id: WorkerId, pid: int) -> None:
        """A worker was forked."""

    def on_replacing(self, service_id: ServiceId, worker_id: WorkerId, reason: str) -> None:
        """The worker of this slot is being replaced, for ``reason``."""

    def on_replaced(self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None) -> None:
        """The slot's new process entered run(): the replacement counts; ``old_pid`` stops."""

    def on_replace_aborted(
        self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None
    ) -> None:
        """The slot's new process failed: ``old_pid`` (None: gone meanwhile) keeps the slot."""

    def on_exited(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        """A worker was reaped (``exit_code`` < 0: killed by that signal)."""

    def close(self) -> None:
        """The master is exiting."""


class QuietExtension:
    """A :class:`MasterExtension` that does nothing: subclass it and override only the
    calls you need (every call of the protocol has a do-nothing answer here)."""

    signals: tuple[int, ...] = ()

    def on_signal(self, signum: int) -> None:
        pass

    def read_fds(self) -> Iterable[int]:
        return []

    def write_fds(self) -> Iterable[int]:
        return []

    def on_ready(self, readable: list[int], writable: list[int]) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def on_tick(self, now: float) -> None:
        pass

    def before_fork(self, service_id: ServiceId, worker_id: WorkerId) -> None:
        pass

    def on_spawned(self, service_id: ServiceId, worker_id: WorkerId, pid: int) -> None:
        pass

    def on_replacing(self, service_id: ServiceId, worker_id: WorkerId, reason: str) -> None:
        pass

    def on_replaced(self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None) -> None:
        pass

    def on_replace_aborted(
        self, service_id: ServiceId, worker_id: WorkerId, old_pid: int | None
    ) -> None:
        pass

    def on_exited(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        pass

    def close(self) -> None:
        pass
