"""SIGUSR1: reopen the log files (logrotate's convention).

Job: make every ``logging.FileHandler`` of the process (on the root logger and on every
named logger) write to a fresh file at its path, so that after logrotate renamed the
file the next lines go to the new one. The stream is closed and dropped under the
handler's lock; ``FileHandler.emit`` opens the path again on the next record.

Must not: run inside a signal handler (the interrupted code may be in the middle of a
write holding the handler's re-entrant lock): the master calls it from its loop after
the self-pipe delivered SIGUSR1, a worker from its own loop or a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable


def file_handlers(loggers: Iterable[logging.Logger] | None = None) -> list[logging.FileHandler]:
    """Every distinct FileHandler (WatchedFileHandler and rotating ones included)."""
    if loggers is None:
        named = logging.Logger.manager.loggerDict.values()
        loggers = [logging.getLogger(), *(lg for lg in named if isinstance(lg, logging.Logger))]
    seen: dict[int, logging.FileHandler] = {}
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.FileHandler):
                seen.setdefault(id(handler), handler)
    return list(seen.values())


def reopen_log_files(loggers: Iterable[logging.Logger] | None = None) -> int:
    """Close the stream of every file handler; the next record reopens the path.

    Returns how many handlers were reopened.
    """
    handlers = file_handlers(loggers)
    for handler in handlers:
        handler.acquire()
        try:
            stream = handler.stream
            handler.stream = None
            if stream is not None:
                stream.flush()
                stream.close()
        finally:
            handler.release()
    return len(handlers)
