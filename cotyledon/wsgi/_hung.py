"""Which workers are hung? From their last heartbeats and the time now (PURE).

Job: apply ``--timeout`` (and the separate boot timeout) to heartbeat times read from the
scoreboard and name the workers to dump (faulthandler) and replace.

Must not: read clocks or the scoreboard, kill, or log. All times are from one monotonic
clock (CLOCK_MONOTONIC is shared by every process on the host, so a worker's heartbeat
and the master's "now" compare).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Heartbeat:
    """What the detector needs about one worker.

    :param booting: True until the worker reported ready; the boot timeout applies.
    :param draining: True once the worker was retired; its drain deadline (owned by the
        rollout) applies instead, so it is never reported hung.
    """

    pid: int
    last_heartbeat: float
    booting: bool = False
    draining: bool = False


@dataclass(frozen=True)
class Hung:
    """A worker silent for ``silent_for`` seconds, more than ``limit``."""

    pid: int
    silent_for: float
    limit: float
    booting: bool


def find_hung(
    heartbeats: Iterable[Heartbeat],
    now: float,
    timeout: float,
    boot_timeout: float | None = None,
) -> list[Hung]:
    """Return the workers whose last heartbeat is older than their limit.

    :param timeout: ``--timeout`` in seconds; 0 disables detection.
    :param boot_timeout: limit while booting (slow app imports); defaults to ``timeout``.
    """
    if timeout <= 0:
        return []
    boot_limit = timeout if boot_timeout is None else boot_timeout
    hung = []
    for beat in heartbeats:
        if beat.draining or beat.pid <= 0:
            continue
        limit = boot_limit if beat.booting else timeout
        if limit <= 0:
            continue
        silent_for = now - beat.last_heartbeat
        if silent_for > limit:
            hung.append(Hung(beat.pid, silent_for, limit, beat.booting))
    return hung


def next_check(
    heartbeats: Iterable[Heartbeat], timeout: float, boot_timeout: float | None = None
) -> float | None:
    """When the next worker would become hung if it stays silent (a deadline for the loop).

    None when there is nothing to watch.
    """
    if timeout <= 0:
        return None
    boot_limit = timeout if boot_timeout is None else boot_timeout
    times = [
        b.last_heartbeat + (boot_limit if b.booting else timeout)
        for b in heartbeats
        if not b.draining and b.pid > 0 and (boot_limit if b.booting else timeout) > 0
    ]
    return min(times) if times else None
