"""Coordination URLs and member ids: checks and formatting (PURE).

Job: refuse a malformed URL or an unknown backend scheme with one message that names the
problem (password hidden), build the member id, and space start-up retries.

Must not: import tooz, open connections or log.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Collection


class CoordinationURLError(ValueError):
    """The coordination URL cannot be used: malformed, or no such backend installed."""


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for log lines and errors)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return re.sub(r"//[^/@]*@", "//***@", url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@" + parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def check_url(url: str, schemes: Collection[str]) -> str:
    """Return the backend scheme of ``url`` or raise :class:`CoordinationURLError`.

    :param schemes: the backend schemes installed (tooz's driver entry points).
    """
    shown = redact(url)
    if not isinstance(url, str) or not url:
        raise CoordinationURLError(f"coordination URL must be a non-empty string, not: {url!r}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError as exc:
        raise CoordinationURLError(f"malformed coordination URL {shown!r}: {exc}") from None
    if not parts.scheme:
        raise CoordinationURLError(
            f"malformed coordination URL {shown!r}: no backend scheme (e.g. redis://host:6379)"
        )
    if parts.scheme not in schemes:
        known = ", ".join(sorted(schemes)) or "none"
        raise CoordinationURLError(
            f"unknown coordination backend {parts.scheme!r} in {shown!r} (installed: {known})"
        )
    return parts.scheme


def member_id(host: str, master_pid: int, service: str, worker_id: int) -> str:
    """Our id in the group: unique per worker slot of one master on one host."""
    return f"{host}:{master_pid}:{service}:{worker_id}"


def backoff(attempts: int, first: float, cap: float) -> list[float]:
    """Delays before retries 2..``attempts``: doubling from ``first``, at most ``cap``."""
    return [min(first * 2**i, cap) for i in range(max(attempts - 1, 0))]
