"""Split keys between all workers of all hosts running the same service (optional).

Install with ``pip install cotyledon[partition]`` (tooz and the Redis client). The core
never imports this package. Public API: :class:`PartitionedService`; see the docs page
"Scaling beyond one machine".
"""

from __future__ import annotations

from cotyledon.partition._service import EXIT_START_FAILED, PartitionedService
from cotyledon.partition._url import CoordinationURLError

__all__ = ["EXIT_START_FAILED", "CoordinationURLError", "PartitionedService"]
