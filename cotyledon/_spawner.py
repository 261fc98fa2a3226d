"""The seam through which a service's workers can be started by something other than a
``fork()`` of the master (cotyledon.wsgi's zygote; the core never imports it).

Job: say what the master hands a spawner and what it expects back. A service added with
``ServiceManager.add(..., spawner=...)`` has each of its workers started by
:meth:`WorkerSpawner.spawn` instead of the master's own fork. The process it starts must

* be a child of the master when ``spawn()`` returns (the master is a child subreaper while
  a spawner is in use: a process whose parent exits is reparented to it), so the master
  reaps it like any worker;
* run :func:`cotyledon._service_worker.forked_main` with the worker's
  :class:`~cotyledon._service_worker.WorkerConfig` and the fds of :class:`ChildSetup`
  (their numbers in the master; a spawner running elsewhere passes them on), every signal
  blocked until it restores ``mask``.

With ``reload="replace"``, a SIGHUP first calls :meth:`WorkerSpawner.prepare_reload` and
replaces the workers only once the spawner said it is ready (an error aborts the reload).

Must not: import anything beyond the core's types.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from cotyledon._record import FrozenRecord

if TYPE_CHECKING:
    from cotyledon._service_worker import WorkerConfig


class ChildSetup(FrozenRecord):
    """What the master's fds and signals are, as ``forked_main`` needs them.

    :param master_signals: signals whose master handlers the child resets.
    :param master_fds: the master's own fds (signal pipe, control read end, seatbelt write
        end, extensions' fds), closed first thing in the child.
    :param seatbelt_fd: the read end of the seatbelt pipe (EOF: the master died).
    :param control_fd: the write end of the worker -> master control pipe.
    """

    __slots__ = ("control_fd", "master_fds", "master_signals", "seatbelt_fd")

    master_signals: tuple[int, ...]
    master_fds: tuple[int, ...]
    seatbelt_fd: int
    control_fd: int

    def __init__(
        self,
        master_signals: tuple[int, ...],
        master_fds: tuple[int, ...],
        seatbelt_fd: int,
        control_fd: int,
    ) -> None:
        self.master_signals = master_signals
        self.master_fds = master_fds
        self.seatbelt_fd = seatbelt_fd
        self.control_fd = control_fd


#: Called once by the spawner with "" (ready) or an error message (the reload is aborted).
ReloadAnswer = Callable[[str], None]


class WorkerSpawner(Protocol):
    """Starts the workers of one service (see the module docstring). Called from the
    master's main thread only."""

    def spawn(self, config: WorkerConfig, setup: ChildSetup) -> int:
        """Start the worker described by ``config``; return its pid, a child of the master.

        :raises OSError: it cannot be started now (the master retries later, as for a
            failed fork).
        """

    def prepare_reload(self, setup: ChildSetup, answer: ReloadAnswer) -> None:
        """A reload was asked: get ready to start workers running the new code, then call
        ``answer("")``, or ``answer(error)`` if it cannot (the workers are kept). May
        answer from inside this call, or later from the master's loop (a master extension
        watching fds)."""

    def close(self) -> None:
        """The master is exiting: stop whatever the spawner runs (idempotent)."""
