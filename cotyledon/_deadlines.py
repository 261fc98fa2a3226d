"""PURE named deadlines: when must the master wake up next?

Job: keep ``name -> monotonic time`` and answer :meth:`Deadlines.next_timeout` (how long
the event loop may sleep; None when nothing is scheduled, so an idle master never wakes)
and :meth:`Deadlines.pop_due` (which deadlines have passed).

Must not: read a clock, sleep or import ``os``/``time``/``signal``/``logging``: the
caller passes ``now``.
"""

from __future__ import annotations

from collections.abc import Hashable


class Deadlines:
    """A small set of named deadlines (a few per service at most: a dict is enough)."""

    def __init__(self) -> None:
        self._when: dict[Hashable, float] = {}

    def __contains__(self, name: Hashable) -> bool:
        return name in self._when

    def __len__(self) -> int:
        return len(self._when)

    def set(self, name: Hashable, when: float) -> None:
        """Schedule (or move) ``name`` at monotonic time ``when``."""
        self._when[name] = when

    def set_earliest(self, name: Hashable, when: float) -> None:
        """Schedule ``name`` at ``when`` unless it is already due earlier."""
        current = self._when.get(name)
        if current is None or when < current:
            self._when[name] = when

    def get(self, name: Hashable) -> float | None:
        return self._when.get(name)

    def cancel(self, name: Hashable) -> None:
        self._when.pop(name, None)

    def clear(self) -> None:
        self._when.clear()

    def next_deadline(self) -> float | None:
        """The earliest scheduled time, or None."""
        return min(self._when.values(), default=None)

    def next_timeout(self, now: float) -> float | None:
        """Seconds until the earliest deadline (0 if one has passed), None if none."""
        earliest = self.next_deadline()
        if earliest is None:
            return None
        return max(0.0, earliest - now)

    def pop_due(self, now: float) -> list[Hashable]:
        """Remove and return every deadline whose time is <= ``now``, earliest first."""
        due = sorted((when, i, name) for i, (name, when) in enumerate(self._when.items()))
        names = [name for when, _, name in due if when <= now]
        for name in names:
            del self._when[name]
        return names
