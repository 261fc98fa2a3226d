"""Parse one access-log line of ``cotyledon-wsgi``, combined or JSON (PURE).

Job: turn one line (decoded as latin-1, newline optional) written by
:mod:`cotyledon.wsgi._access_log` into a :data:`Request` tuple, or ``None`` when the line
is not one of ours. Lines starting with ``{`` are JSON; every other line is the combined
format followed by the duration in microseconds::

    127.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "GET /p?q=1 HTTP/1.1" 200 13 "-" "ua" 12300

The combined parser is hand-written (``find``/``split``, no regex on the fast path): it is
the hot loop of ``cotyledon-wsgi-logstats``. Timestamps are converted through a small cache
keyed by the minute, so a log costs one calendar computation per minute, not per line.

Also parses the ``--since``/``--until`` arguments (:func:`parse_moment`).

Must not: do I/O, read clocks or log.
"""

from __future__ import annotations

import datetime
import json
import re

__all__ = ["Request", "TimeParser", "parse_combined", "parse_json", "parse_moment"]

# (epoch seconds, method, target, status, response bytes, duration in µs)
Request = tuple[float, str, str, int, int, float]

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_CACHE_LIMIT = 4096

# The slow path, for request lines holding an escaped quote or backslash before the
# closing quote: a quoted field is any run of non-quote, non-backslash or escaped bytes.
_COMBINED = re.compile(r'^\S+ \S+ \S+ \[([^]]+)\] "((?:[^"\\]|\\.)*)" (\S+) (\S+) ')


def _combined_epoch(stamp: str) -> float:
    """``14/Nov/2023:22:13:20 +0000`` -> epoch seconds; ValueError/KeyError if malformed."""
    if len(stamp) != 26 or stamp[2] != "/" or stamp[20] != " " or stamp[21] not in "+-":
        raise ValueError(stamp)
    zone = stamp[22:]
    if not (zone.isascii() and zone.isdigit()):
        raise ValueError(stamp)
    minutes = int(zone[:2]) * 60 + int(zone[2:])
    offset = datetime.timedelta(minutes=-minutes if stamp[21] == "-" else minutes)
    moment = datetime.datetime(
        int(stamp[7:11]),
        _MONTHS[stamp[3:6]],
        int(stamp[:2]),
        int(stamp[12:14]),
        int(stamp[15:17]),
        int(stamp[18:20]),
        tzinfo=datetime.timezone(offset),
    )
    return moment.timestamp()


class TimeParser:
    """Timestamps of both formats to epoch seconds, through bounded caches.

    ``seconds`` maps a whole combined-format stamp to its epoch: the parser looks there
    first (one dict lookup per line); on a miss, :meth:`combined` computes the minute's
    epoch once (cached too) and adds the seconds.
    """

    __slots__ = ("_minutes", "seconds")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._minutes: dict[str, float] = {}

    def combined(self, stamp: str) -> float:
        key = stamp[:17] + stamp[20:]  # everything but the seconds
        base = self._minutes.get(key)
        if base is None:
            base = _combined_epoch(stamp[:18] + "00" + stamp[20:])
            _remember(self._minutes, key, base)
        seconds = stamp[18:20]
        if not (seconds.isascii() and seconds.isdigit()):
            raise ValueError(stamp)
        epoch = base + int(seconds)
        _remember(self.seconds, stamp, epoch)
        return epoch

    def iso(self, stamp: str) -> float:
        # Our JSON writes 2023-11-14T22:13:20.250+00:00; anything else takes the slow path.
        if len(stamp) == 29 and stamp[16] == ":" and stamp[19] == "." and stamp[23] in "+-":
            key = stamp[:16] + stamp[23:]
            base = self._minutes.get(key)
            if base is None:
                base = _iso_epoch(key)
                _remember(self._minutes, key, base)
            return base + float(stamp[17:23])
        return _iso_epoch(stamp)


def _remember(cache: dict[str, float], key: str, value: float) -> None:
    if len(cache) >= _CACHE_LIMIT:
        cache.clear()
    cache[key] = value


def _iso_epoch(text: str) -> float:
    """ISO 8601 -> epoch seconds; a time without offset is local time."""
    if text.endswith(("Z", "z")):  # fromisoformat() takes "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def parse_moment(text: str) -> float:
    """A ``--since``/``--until`` value to epoch seconds.

    Accepts ISO 8601 (``2026-03-01``, ``2026-03-01T10:00``, ``2026-03-01T10:00:00+01:00``,
    ``...Z``; without an offset it is local time) or the combined format's timestamp
    (``01/Mar/2026:10:00:00 +0100``, brackets optional).

    :raises ValueError: neither form.
    """
    stripped = text.strip().strip("[]")
    try:
        return _combined_epoch(stripped)
    except (ValueError, KeyError):
        pass
    try:
        return _iso_epoch(stripped)
    except ValueError:
        raise ValueError(f"not an ISO 8601 time nor a combined-log timestamp: {text!r}") from None


def _split_request(request: str) -> tuple[str, str]:
    """``GET /p?q=1 HTTP/1.1`` -> (method, target); odd request lines keep what they have."""
    first = request.find(" ")
    last = request.rfind(" ")
    if 0 < first < last:
        return request[:first], request[first + 1 : last]
    if first > 0:
        return request[:first], request[first + 1 :]
    return request, "-"


def parse_combined(line: str, times: TimeParser) -> Request | None:
    """One combined-format line (with the trailing duration in µs), or None if malformed."""
    try:
        open_ = line.index(" [")
        close = line.index('] "', open_)
        start = close + 3
        end = line.index('" ', start)
        if line[end - 1] == "\\":  # a backslash before the quote: let the regex decide
            match = _COMBINED.match(line)
            if match is None:
                return None
            end = match.end(2)
        first = line.index(" ", end + 2)
        second = line.index(" ", first + 1)
        status = int(line[end + 2 : first])
        size_text = line[first + 1 : second]
        size = 0 if size_text == "-" else int(size_text)
        duration = int(line[line.rindex(" ") + 1 :])
        if not 100 <= status <= 999 or size < 0 or duration < 0:
            return None
        stamp = line[open_ + 2 : close]
        epoch = times.seconds.get(stamp)
        if epoch is None:
            epoch = times.combined(stamp)
    except (ValueError, KeyError, IndexError):
        return None
    method, target = _split_request(line[start:end])
    return epoch, method, target, status, size, float(duration)


def parse_json(line: str, times: TimeParser) -> Request | None:
    """One JSON line of our format, or None if malformed (not JSON, fields missing/wrong)."""
    try:
        record = json.loads(line)
        status = record["status"]
        size = record["bytes"]
        duration_ms = record["duration_ms"]
        method = record["method"]
        target = record["target"]
        stamp = record["time"]
        if not (
            type(status) is int
            and type(size) is int
            and isinstance(duration_ms, (int, float))
            and isinstance(method, str)
            and isinstance(target, str)
            and isinstance(stamp, str)
        ):
            return None
        if not 100 <= status <= 999 or size < 0 or duration_ms < 0:
            return None
        epoch = times.iso(stamp)
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return epoch, method, target, status, size, duration_ms * 1000.0
