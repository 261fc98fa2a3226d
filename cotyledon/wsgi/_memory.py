"""Measure the memory of ONE process: its RSS or its USS, from /proc.

Job: give the master a number for a worker's own memory, for ``--max-memory`` and the
health page. USS (unique set size: private clean + private dirty pages) is what the
worker would give back if it exited; RSS also counts pages shared with the master and
the other workers (copy-on-write after fork), so it overstates each worker.

Must not: add up a process group (Spawning's mistake: one fat worker looked like the
whole fleet), cache, log, or raise for a process that is gone or unreadable: every
function returns None when it cannot measure.

Sources, in order: ``/proc/<pid>/smaps_rollup`` (Linux 4.14+, one cheap read) then
``/proc/<pid>/smaps`` (summed) for USS; ``/proc/<pid>/status`` ``VmRSS`` then
``/proc/<pid>/statm`` for RSS.
"""

from __future__ import annotations

import enum
import os

_KIB = 1024
_PRIVATE_KEYS = (b"Private_Clean:", b"Private_Dirty:", b"Private_Hugetlb:")


class MemoryKind(enum.Enum):
    """Which measure ``--max-memory`` compares (``--max-memory-kind``)."""

    RSS = "rss"
    USS = "uss"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _sum_kib(text: bytes, keys: tuple[bytes, ...]) -> int | None:
    """Sum the ``Key:   N kB`` lines of ``text`` whose key is in ``keys``, in bytes."""
    total = 0
    found = False
    for line in text.splitlines():
        if line.startswith(keys):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                total += int(parts[1]) * _KIB
                found = True
    return total if found else None


def uss_bytes(pid: int) -> int | None:
    """Unique set size of ``pid`` in bytes, or None if it cannot be read."""
    text = _read(f"/proc/{pid}/smaps_rollup")
    if text is None:
        text = _read(f"/proc/{pid}/smaps")
    if text is None:
        return None
    return _sum_kib(text, _PRIVATE_KEYS)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes, or None if it cannot be read."""
    status = _read(f"/proc/{pid}/status")
    if status is not None:
        value = _sum_kib(status, (b"VmRSS:",))
        if value is not None:
            return value
    statm = _read(f"/proc/{pid}/statm")
    if statm is None:
        return None
    fields = statm.split()
    if len(fields) < 2 or not fields[1].isdigit():
        return None
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_bytes(pid: int, kind: MemoryKind = MemoryKind.USS) -> int | None:
    """The ``kind`` measure of ``pid``; USS falls back to RSS when smaps is unreadable."""
    if kind is MemoryKind.USS:
        uss = uss_bytes(pid)
        if uss is not None:
            return uss
    return rss_bytes(pid)
