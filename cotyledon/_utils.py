"""Compat helpers that programs written for cotyledon 2.x import: signal names, argument
checks, hook running, process titles.

Job: small shared helpers whose names and messages are part of the public contract
(spec/api.md): ``signal_to_name``, ``check_callable``, ``check_workers``, ``run_hooks``
(logger ``cotyledon._utils``), ``get_process_name``, ``setproctitle``, ``spawn_process``.

Must not: hold state or perform supervision.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

LOG = logging.getLogger(__name__)

#: Our diagnostics go below DEBUG so that DEBUG and above show upstream's lines only.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

SIGNAL_TO_NAME = {int(sig): sig.name for sig in signal.Signals}

_setproctitle: Callable[[str], None] | None
try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # pragma: no cover - setproctitle is optional at runtime
    _setproctitle = None


def signal_to_name(sig: int) -> str:
    """``9`` -> ``"SIGKILL"``; only real signals (no ``SIG_BLOCK``...) are named."""
    return SIGNAL_TO_NAME.get(abs(sig), str(sig))


def get_process_name() -> str:
    """Basename of ``argv[0]``, as used in process titles."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"


def setproctitle(title: str) -> None:
    """Set the process title if setproctitle is installed; otherwise do nothing."""
    if _setproctitle is not None:
        _setproctitle(title)


def master_title() -> str:
    return f"{get_process_name()}: master process [{' '.join(sys.argv)}]"


def worker_title(name: str, worker_id: int) -> str:
    return f"{get_process_name()}: {name} worker({worker_id})"


def check_callable(thing: object, name: str) -> None:
    """:raises TypeError: ``'<name>' must be a callable`` (upstream's message)."""
    if not callable(thing):
        raise TypeError(f"'{name}' must be a callable")


def check_workers(workers: object, minimum: int) -> None:
    """:raises ValueError: ``'workers' must be an int >= <minimum>, not: <v> (<type>)``."""
    if not isinstance(workers, int) or workers < minimum:
        raise ValueError(
            f"'workers' must be an int >= {minimum}, not: {workers} ({type(workers).__name__})"
        )


def run_hooks(name: str, hooks: Iterable[Callable[..., Any]], *args: Any) -> None:
    """Run hooks in registration order; the first exception stops the rest and is logged
    as ``Exception raised during <name> hooks``."""
    try:
        for hook in hooks:
            hook(*args)
    except Exception:
        LOG.exception("Exception raised during %s hooks", name)


def default_mp_context() -> Any:
    """What ``multiprocessing.get_context()`` returns, without fixing the start method as
    a side effect (a program may still call ``multiprocessing.set_start_method()``)."""
    import multiprocessing  # noqa: PLC0415 - not needed by `import cotyledon`

    method = multiprocessing.get_start_method(allow_none=True)
    return multiprocessing.get_context(method or multiprocessing.get_all_start_methods()[0])


def spawn_process(target: Callable[..., Any], *args: Any, ctx: Any = None) -> Any:
    """cotyledon 2.2's helper: start ``target(*args)`` in a ``ctx.Process`` (a
    ``multiprocessing.Process`` when ``ctx`` is None) and return the started process."""
    import multiprocessing  # noqa: PLC0415 - not needed by `import cotyledon`

    process_class = multiprocessing.Process if ctx is None else ctx.Process
    process = process_class(target=target, args=args)
    process.start()
    return process


class SignalManager:
    """Compat shim: upstream's base class of the master and worker signal loops.

    Kept so ``from cotyledon._utils import SignalManager`` still imports; the loops now
    live in :mod:`cotyledon._signals` (self-pipe) and the manager and worker drivers.
    """

    def __init__(self) -> None:
        self._signals_received: list[int] = []
