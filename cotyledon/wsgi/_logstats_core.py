"""Aggregate access-log lines into the ``cotyledon-wsgi-logstats`` report (PURE).

Job: stream lines (bytes) through :class:`Aggregator` and build the report, a plain dict
whose layout is the documented ``--json`` schema (:data:`SCHEMA`, doc/source/logstats.rst).

Memory is bounded whatever the log size:

- latency percentiles come from fixed log-scale histograms (1 % relative error, see
  :mod:`._logstats_histogram`), one for all requests and one per tracked path;
- at most ``max_paths`` distinct paths (query string removed) are tracked; requests to
  paths first seen after that are counted under :data:`OTHER`;
- the request-rate series starts at one-second buckets (or ``--bucket``) and doubles its
  bucket (along :data:`AUTO_STEPS`) whenever it holds more than :data:`MAX_BUCKETS`;
- the slowest and biggest requests are two heaps of ``top`` entries;
- malformed lines are counted, and only the first few line numbers kept.

Must not: open files, read clocks or log. The driver (:mod:`cotyledon.wsgi.logstats`)
feeds it lines and prints what :meth:`Aggregator.report` returns.
"""

from __future__ import annotations

import datetime
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cotyledon.wsgi._logstats_histogram import (
    BINS,
    MAX_US,
    RELATIVE_ERROR,
    LogHistogram,
    bin_index,
)
from cotyledon.wsgi._logstats_parse import TimeParser, parse_combined, parse_json

__all__ = ["OTHER", "SCHEMA", "Aggregator", "Options"]

SCHEMA = "cotyledon-wsgi-logstats/1"
OTHER = "(other)"
QUANTILES = (0.5, 0.95, 0.99)
MAX_BUCKETS = 10_000
MAX_ROWS = 60  # automatic bucket: the smallest step that shows the span in <= 60 rows
# Each step is a multiple of the one before, so counts re-bucket exactly.
AUTO_STEPS = (1, 5, 10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200, 86400, 604800)
_INV_LOG_GAMMA = 1 / math.log((1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR))


@dataclass(frozen=True)
class Options:
    """What to report; see ``cotyledon-wsgi-logstats --help``."""

    top: int = 10
    bucket: float | None = None  # seconds; None: chosen from the span
    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # epoch seconds, exclusive
    max_paths: int = 1000
    malformed_examples: int = 10

    def __post_init__(self) -> None:
        if self.top < 1:
            raise ValueError(f"top must be >= 1, not {self.top}")
        if self.bucket is not None and not self.bucket > 0:
            raise ValueError(f"bucket must be > 0 seconds, not {self.bucket}")
        if self.max_paths < 1:
            raise ValueError(f"max_paths must be >= 1, not {self.max_paths}")


class PathStats:
    """Counters of one path (or of :data:`OTHER`)."""

    __slots__ = ("bytes", "count", "hist", "max_us", "total_us")

    def __init__(self) -> None:
        self.count = 0
        self.total_us = 0.0
        self.max_us = 0.0
        self.bytes = 0
        self.hist = [0] * BINS


@dataclass
class _Source:
    name: str
    lines: int = 0
    malformed: int = 0
    error: str | None = None


def _iso(epoch: float, timespec: str = "milliseconds") -> str:
    moment = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    return moment.isoformat(timespec=timespec)


def _ms(us: float) -> float:
    return round(us / 1000.0, 3)


class Aggregator:
    """Feed it lines with :meth:`consume`; :meth:`report` gives the result at any time."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._times = TimeParser()
        self._sources: list[_Source] = []
        self.requests = 0
        self.malformed = 0
        self.filtered = 0
        self._malformed_at: list[tuple[str, int]] = []
        self._first = math.inf
        self._last = -math.inf
        self._statuses: dict[int, int] = {}
        self._paths: dict[str, PathStats] = {}
        self._other = PathStats()
        self._all = PathStats()
        self._steps = self._bucket_steps()
        self._step = 0
        self._rate: dict[int, int] = {}
        self._seq = 0
        self._slowest: list[tuple[float, int, tuple[Any, ...]]] = []
        self._biggest: list[tuple[int, int, tuple[Any, ...]]] = []

    def _bucket_steps(self) -> tuple[float, ...]:
        bucket = self.options.bucket
        if bucket is None:
            return AUTO_STEPS
        return tuple(bucket * 2**k for k in range(64))

    # -- feeding -------------------------------------------------------------------------

    def source_failed(self, name: str, error: str) -> None:
        """Record that ``name`` could not be read (entirely or from some point on)."""
        for source in self._sources:
            if source.name == name and source.error is None:
                source.error = error
                return
        self._sources.append(_Source(name, error=error))

    def consume(self, lines: Iterable[bytes], name: str) -> None:  # noqa: PLR0912, PLR0915
        """Add every line of one source (``name`` is what malformed-line reports show).

        This is the hot loop, deliberately one function: state is held in locals and
        written back at the end (a method call per line would cost about a tenth more).
        """
        source = _Source(name)
        self._sources.append(source)
        times, since, until = self._times, self.options.since, self.options.until
        paths, other, total = self._paths, self._other, self._all
        max_paths = self.options.max_paths
        statuses, rate = self._statuses, self._rate
        step = self._steps[self._step]
        top = self.options.top
        slowest, biggest = self._slowest, self._biggest
        slow_floor = slowest[0][0] if len(slowest) >= top else -1.0
        big_floor = biggest[0][0] if len(biggest) >= top else -1
        all_hist = total.hist
        first, last = self._first, self._last
        log, ceil, inv = math.log, math.ceil, _INV_LOG_GAMMA
        lineno = 0
        try:
            for lineno, raw in enumerate(lines, 1):
                line = raw.decode("latin-1")  # our logs are ASCII; latin-1 never fails
                if line[:1] == "{":
                    request = parse_json(line, times)
                else:
                    request = parse_combined(line, times)
                if request is None:
                    self._note_malformed(source, lineno)
                    continue
                epoch, method, target, status, size, us = request
                if (since is not None and epoch < since) or (until is not None and epoch >= until):
                    self.filtered += 1
                    continue
                # Plain ifs, not min()/max(): this loop runs once per line.
                if epoch < first:  # noqa: PLR1730
                    first = epoch
                if epoch > last:  # noqa: PLR1730
                    last = epoch
                key = int(epoch // step)
                if key in rate:
                    rate[key] += 1
                else:
                    rate[key] = 1
                    if len(rate) > MAX_BUCKETS:
                        step = self._coarsen()
                statuses[status] = statuses.get(status, 0) + 1
                cut = target.find("?")
                path = target if cut < 0 else target[:cut]
                stats = paths.get(path)
                if stats is None:
                    if len(paths) < max_paths:
                        stats = paths[path] = PathStats()
                    else:
                        stats = other
                slot = ceil(log(us) * inv) + 1 if 1.0 < us < MAX_US else bin_index(us)
                stats.count += 1
                stats.total_us += us
                stats.bytes += size
                stats.hist[slot] += 1
                if us > stats.max_us:  # noqa: PLR1730
                    stats.max_us = us
                all_hist[slot] += 1
                total.total_us += us
                total.bytes += size
                if us > slow_floor or size > big_floor:
                    entry = (epoch, method, target, status, size, us, name, lineno)
                    if us > slow_floor:
                        slow_floor = self._push(slowest, us, entry)
                    if size > big_floor:
                        big_floor = self._push(biggest, size, entry)
        finally:  # a read error mid-file keeps what was read until then
            self._first, self._last = first, last
            source.lines = lineno
            self.requests = sum(statuses.values())

    def _push(self, heap: list[Any], value: float, entry: tuple[Any, ...]) -> Any:
        """Keep the ``top`` largest values; return the value a newcomer must exceed."""
        self._seq += 1
        if len(heap) < self.options.top:
            heapq.heappush(heap, (value, self._seq, entry))
        else:
            heapq.heappushpop(heap, (value, self._seq, entry))
        return heap[0][0] if len(heap) >= self.options.top else -1

    def _note_malformed(self, source: _Source, lineno: int) -> None:
        self.malformed += 1
        source.malformed += 1
        if len(self._malformed_at) < self.options.malformed_examples:
            self._malformed_at.append((source.name, lineno))

    def _coarsen(self) -> float:
        """Move the rate series to the next bucket step; return the new step."""
        old = self._steps[self._step]
        while len(self._rate) > MAX_BUCKETS and self._step + 1 < len(self._steps):
            self._step += 1
            self._rate = self._rebucket(self._rate, old, self._steps[self._step])
            old = self._steps[self._step]
        return old

    @staticmethod
    def _rebucket(rate: dict[int, int], old: float, new: float) -> dict[int, int]:
        merged: dict[int, int] = {}
        for key, count in rate.items():
            wider = int((key * old) // new)
            merged[wider] = merged.get(wider, 0) + count
        rate.clear()
        rate.update(merged)  # the same dict object: consume() holds a reference to it
        return rate

    # -- the report ----------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """The whole result as the documented ``--json`` schema (:data:`SCHEMA`)."""
        self._all.max_us = max(
            (s.max_us for s in (*self._paths.values(), self._other)), default=0.0
        )
        has_span = self.requests > 0
        span = self._last - self._first if has_span else 0.0
        options = self.options
        return {
            "schema": SCHEMA,
            "files": [
                {"name": s.name, "lines": s.lines, "malformed": s.malformed, "error": s.error}
                for s in self._sources
            ],
            "lines": {
                "total": sum(s.lines for s in self._sources),
                "requests": self.requests,
                "malformed": self.malformed,
                "filtered": self.filtered,
            },
            "malformed_lines": [{"file": f, "line": n} for f, n in self._malformed_at],
            "filter": {
                "since": None if options.since is None else _iso(options.since),
                "until": None if options.until is None else _iso(options.until),
            },
            "span": {
                "start": _iso(self._first) if has_span else None,
                "end": _iso(self._last) if has_span else None,
                "seconds": round(span, 3),
                "requests_per_second": round(self.requests / span, 3) if span > 0 else None,
            },
            "rate": self._rate_report(span),
            "status": self._status_report(),
            "latency": {
                "relative_error": RELATIVE_ERROR,
                **self._latency(self._all, self.requests),
            },
            "bytes": self._all.bytes,
            "paths": self._paths_report(),
            "slowest": self._requests_report(self._slowest),
            "biggest": self._requests_report(self._biggest),
        }

    def _display_step(self, span: float) -> float:
        current = self._steps[self._step]
        if self.options.bucket is not None:
            return current
        for step in self._steps[self._step :]:
            if span / step <= MAX_ROWS:
                return step
        return self._steps[-1]

    def _rate_report(self, span: float) -> dict[str, Any]:
        step = self._display_step(span)
        counts = dict(self._rate)
        if step != self._steps[self._step]:
            counts = self._rebucket(counts, self._steps[self._step], step)
        rows = []
        if counts:
            for key in range(min(counts), max(counts) + 1):
                count = counts.get(key, 0)
                rows.append(
                    {
                        "start": _iso(key * step, "seconds"),
                        "count": count,
                        "per_second": round(count / step, 3),
                    }
                )
        return {"bucket_seconds": step, "buckets": rows}

    def _status_report(self) -> dict[str, Any]:
        classes = {f"{n}xx": 0 for n in range(1, 6)}
        for status, count in self._statuses.items():
            name = f"{status // 100}xx" if 100 <= status <= 599 else "other"
            classes[name] = classes.get(name, 0) + count
        total = self.requests or 1
        return {
            "classes": {
                name: {"count": count, "share": round(count / total, 4)}
                for name, count in classes.items()
            },
            "codes": {str(code): self._statuses[code] for code in sorted(self._statuses)},
        }

    @staticmethod
    def _latency(stats: PathStats, count: int) -> dict[str, Any]:
        hist = LogHistogram()
        hist.counts = stats.hist
        p50, p95, p99 = hist.quantiles(QUANTILES)
        return {
            "mean_ms": _ms(stats.total_us / count) if count else 0.0,
            "p50_ms": _ms(p50),
            "p95_ms": _ms(p95),
            "p99_ms": _ms(p99),
            "max_ms": _ms(stats.max_us),
        }

    def _path_row(self, path: str, stats: PathStats) -> dict[str, Any]:
        return {
            "path": path,
            "count": stats.count,
            "share": round(stats.count / (self.requests or 1), 4),
            "total_ms": _ms(stats.total_us),
            "bytes": stats.bytes,
            **self._latency(stats, stats.count),
        }

    def _paths_report(self) -> dict[str, Any]:
        items = list(self._paths.items())
        if self._other.count:
            items.append((OTHER, self._other))
        top = self.options.top
        by_count = heapq.nlargest(top, items, key=lambda item: (item[1].count, item[1].total_us))
        by_time = heapq.nlargest(top, items, key=lambda item: (item[1].total_us, item[1].count))
        return {
            "tracked": len(self._paths),
            "max_tracked": self.options.max_paths,
            "other_requests": self._other.count,
            "by_count": [self._path_row(p, s) for p, s in by_count],
            "by_total_time": [self._path_row(p, s) for p, s in by_time],
        }

    @staticmethod
    def _requests_report(heap: list[tuple[Any, int, tuple[Any, ...]]]) -> list[dict[str, Any]]:
        rows = []
        for _, _, entry in sorted(heap, key=lambda item: (-item[0], item[1])):
            epoch, method, target, status, size, us, name, lineno = entry
            rows.append(
                {
                    "time": _iso(epoch),
                    "method": method,
                    "target": target,
                    "status": status,
                    "bytes": size,
                    "duration_ms": _ms(us),
                    "file": name,
                    "line": lineno,
                }
            )
        return rows
