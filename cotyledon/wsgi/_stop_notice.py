"""When the master was asked to stop, in memory that its workers share.

Job: one ``float`` in an anonymous shared ``mmap`` created by the master before the first
fork. The master writes the ``time.monotonic()`` of its SIGTERM there (before it signals
the workers); a worker that gets SIGTERM reads it to know whether the whole server is
stopping (keep serving through ``--shutdown-delay``, then drain the accept queue) or only
this worker is being replaced or recycled (stop accepting at once: the others serve).

Must not: decide anything (see ``_readiness``).
"""

from __future__ import annotations

import mmap
import struct

_DOUBLE = struct.Struct("=d")


class StopNotice:
    """The shared "stop requested at" time (0.0 in memory: not requested)."""

    def __init__(self) -> None:
        self._buf = mmap.mmap(-1, mmap.PAGESIZE)

    def announce(self, requested_at: float) -> None:
        """Master: a stop was requested at ``requested_at`` (monotonic seconds)."""
        _DOUBLE.pack_into(self._buf, 0, requested_at)

    def requested_at(self) -> float | None:
        """Worker or master: when the stop was requested, None if it was not."""
        (value,) = _DOUBLE.unpack_from(self._buf, 0)
        return value if value > 0.0 else None

    def close(self) -> None:
        self._buf.close()
