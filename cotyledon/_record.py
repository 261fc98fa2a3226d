"""PURE base classes of the small value types of the core (events, actions, policies).

Job: equality, hashing and repr over ``__slots__`` for classes that write their own
``__init__``. They replace ``dataclasses``, whose class creation (and the import of
``dataclasses`` and ``inspect``) made ``import cotyledon`` slower than cotyledon 2.2's:
programs pay it at every start, and workers started through a spawn context too.

Must not: import anything beyond the standard ``typing`` names.
"""

from __future__ import annotations

from typing import Any


class Record:  # noqa: PLW1641 - unhashable on purpose, as a mutable dataclass
    """A mutable record: ``==`` compares the type and every slot; unhashable (defining
    ``__eq__`` alone makes Python set ``__hash__`` to None)."""

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class FrozenRecord(Record):
    """An immutable, hashable record: each slot is set once, in ``__init__``."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"{type(self).__name__}.{name} is read-only")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__}.{name} is read-only")

    def __hash__(self) -> int:
        return hash((type(self), self._values()))
