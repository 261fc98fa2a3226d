"""What differs between tooz backends, in one place: which are installed, the options we
give them, and making the Redis client fail fast.

Must not: decide anything about ownership (that is :mod:`._ownership`).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from tooz import coordination

from cotyledon.partition import _url

#: Backends that keep sub-second leases; the others (file, etcd3, ...) count whole seconds.
SUBSECOND_LEASE_SCHEMES = frozenset({"redis"})


def installed() -> frozenset[str]:
    """The URL schemes of the tooz drivers installed (their entry points)."""
    return frozenset(ep.name for ep in importlib.metadata.entry_points(group="tooz.backends"))


def options(scheme: str, url: str, lease: float, heartbeat: float) -> dict[str, Any]:
    """Options given to tooz next to the URL: the lease (``timeout``, the membership
    timeout of the redis and file drivers), and for Redis socket timeouts of one heartbeat
    so a hung server fails a request instead of blocking it (unless the URL sets them)."""
    if scheme not in SUBSECOND_LEASE_SCHEMES and lease != int(lease):
        raise _url.CoordinationURLError(
            f"the {scheme!r} backend counts leases in whole seconds: 'lease' must be one, "
            f"not: {lease!r}"
        )
    options: dict[str, Any] = {
        "timeout": lease if scheme in SUBSECOND_LEASE_SCHEMES else int(lease)
    }
    if scheme == "redis":
        query = url.partition("?")[2]
        for name in ("socket_timeout", "socket_connect_timeout"):
            if name + "=" not in query:
                options[name] = heartbeat
    return options


def fail_fast(coordinator: coordination.CoordinationDriver) -> None:
    """Make a Redis driver's client fail a request at once when the server is down.

    redis-py (since 7.x/8.x) retries a failed connection 10 times with backoff by default,
    nested at two levels: a tooz call then blocks for about a minute while Redis is down,
    delaying our start-up retries, the "stopped claiming" log line and the rejoin. We have
    our own retry loop (the heartbeat), so one attempt per request is right. tooz has no
    option for it: wrap the driver's client factory and use redis-py's public
    ``set_retry()``. A tooz without that factory keeps its defaults (slower, still safe).
    """
    make_client = getattr(coordinator, "_make_client", None)
    if type(coordinator).__module__ != "tooz.drivers.redis" or not callable(make_client):
        return
    from redis.backoff import NoBackoff  # noqa: PLC0415 -- only with the Redis driver
    from redis.retry import Retry  # noqa: PLC0415

    def make_failing_fast(*args: Any, **kwargs: Any) -> Any:
        client = make_client(*args, **kwargs)
        if hasattr(client, "set_retry"):
            client.set_retry(Retry(NoBackoff(), 0))
        return client

    coordinator._make_client = make_failing_fast  # type: ignore[attr-defined]
