"""cotyledon: supervise long-running services.

Public API: :class:`Service` (subclass it) and :class:`ServiceManager` (add services,
run). Importing the package has no side effect.
"""

from __future__ import annotations

from cotyledon._service import Service
from cotyledon._service_manager import ServiceManager

__all__ = ["Service", "ServiceManager"]
