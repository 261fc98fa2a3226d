"""The ``Service`` base class users subclass: the code each worker process runs.

Job: the hooks users override (``run``, ``terminate``, ``reload``) with upstream's
defaults and attributes (``name``, ``graceful_shutdown_timeout``, ``worker_id``, ``pid``).

Must not: know about the manager, signals or the worker loop (the worker driver,
:mod:`cotyledon._service_worker`, calls these methods).
"""

from __future__ import annotations

import os
import signal
from typing import Any, ClassVar

from cotyledon.types import WorkerId


class Service:
    """Base class for a service: one instance runs in each worker process.

    Every method is optional. Instances are built in the worker, after the fork, as
    ``ServiceClass(worker_id, *args, **kwargs)``.

    :param worker_id: the worker's number, ``0 .. workers - 1``.
    """

    #: Label used in process titles and log lines; defaults to the class name.
    name: ClassVar[str | None] = None

    #: Seconds :meth:`terminate` may take (None: the manager's value, 0: no limit).
    graceful_shutdown_timeout: ClassVar[float | None] = None

    _name_is_explicit: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name") is not None:
            cls._name_is_explicit = True
        elif not cls._name_is_explicit:
            cls.name = cls.__name__

    def __init__(self, worker_id: WorkerId | int) -> None:
        self.worker_id = worker_id
        self.pid = os.getpid()

    def run(self) -> None:
        """The worker's main activity, in a thread. It may block or return; returning does
        not end the worker. An exception is logged and the worker exits with status 2;
        ``SystemExit(n)`` makes the exit status ``n``."""

    def terminate(self) -> None:
        """Called in a thread on SIGTERM: stop what :meth:`run` does. The worker exits 0
        after it returns; ``SystemExit(n)`` gives status ``n``, another exception 2."""

    def reload(self) -> None:
        """Called in a thread on SIGHUP. By default the worker stops gracefully (SIGTERM to
        itself) and the master starts a new one with the same worker id."""
        os.kill(os.getpid(), signal.SIGTERM)
