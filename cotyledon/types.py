"""Types of the public API: service and worker identifiers, hook signatures.

Job: names for the types users see. Must not: import anything heavier than the stdlib
typing helpers (it is imported by every module, pure ones included).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NewType

if TYPE_CHECKING:
    from typing import TypeAlias

    from cotyledon._service import Service

ServiceId = NewType("ServiceId", uuid.UUID)
WorkerId = NewType("WorkerId", int)

OnTerminateHook: TypeAlias = Callable[[], None]
OnReloadHook: TypeAlias = Callable[[], None]
OnNewWorkerHook: TypeAlias = Callable[[ServiceId, WorkerId, "Service"], None]
OnDeadWorkerHook: TypeAlias = Callable[[ServiceId, WorkerId, int], None]
ServiceFactory: TypeAlias = Callable[..., "Service"]
AnyArgs: TypeAlias = "tuple[Any, ...]"

__all__ = [
    "AnyArgs",
    "OnDeadWorkerHook",
    "OnNewWorkerHook",
    "OnReloadHook",
    "OnTerminateHook",
    "ServiceFactory",
    "ServiceId",
    "WorkerId",
]
