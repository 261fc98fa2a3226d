"""Render a ``cotyledon-wsgi-logstats`` report as text for a terminal (PURE).

Job: turn the dict of :meth:`Aggregator.report` (the ``--json`` schema) into aligned
plain-text sections. It reads nothing but that dict, so the text never says more than
the JSON does.

Must not: do I/O, read clocks or log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["render_text"]

_BAR = 40


def _duration(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.2f} ms"


def _span(seconds: float) -> str:
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _table(headers: Sequence[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Columns right-aligned except the last ``left`` ones."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    split = len(headers) - left

    def line(cells: Sequence[str]) -> str:
        right = [c.rjust(w) for c, w in zip(cells[:split], widths[:split], strict=True)]
        return "  " + "  ".join([*right, *cells[split:]]).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _header(report: dict[str, Any]) -> list[str]:
    lines = report["lines"]
    out = [
        (
            f"Lines: {lines['total']}  requests: {lines['requests']}  "
            f"malformed: {lines['malformed']}  outside --since/--until: {lines['filtered']}"
        )
    ]
    if report["malformed_lines"]:
        where = ", ".join(f"{m['file']}:{m['line']}" for m in report["malformed_lines"])
        more = "" if len(report["malformed_lines"]) >= lines["malformed"] else ", ..."
        out.append(f"Malformed lines at: {where}{more}")
    out.extend(f"Could not read {f['name']}: {f['error']}" for f in report["files"] if f["error"])
    span = report["span"]
    if span["start"] is not None:
        rps = span["requests_per_second"]
        rate = f", {rps:.2f} requests/s" if rps is not None else ""
        out.append(f"Time span: {span['start']} .. {span['end']} ({_span(span['seconds'])}{rate})")
    return out


def _rate(report: dict[str, Any]) -> list[str]:
    rate = report["rate"]
    buckets = rate["buckets"]
    if not buckets:
        return []
    peak = max(b["count"] for b in buckets) or 1
    rows = [
        [
            b["start"],
            str(b["count"]),
            f"{b['per_second']:.2f}",
            "#" * round(_BAR * b["count"] / peak),
        ]
        for b in buckets
    ]
    title = f"Requests per second (buckets of {rate['bucket_seconds']:g} s, UTC)"
    return ["", title, *_table(["start", "requests", "req/s", ""], rows)]


def _status(report: dict[str, Any]) -> list[str]:
    classes = report["status"]["classes"]
    rows = [
        [name, str(c["count"]), f"{100 * c['share']:.1f}%"]
        for name, c in classes.items()
        if c["count"] or name != "1xx"
    ]
    codes = "  ".join(f"{code}: {n}" for code, n in report["status"]["codes"].items())
    return ["", "Status classes", *_table(["class", "requests", "share"], rows, 0), f"  ({codes})"]


def _latency(report: dict[str, Any]) -> list[str]:
    lat = report["latency"]
    return [
        "",
        (
            f"Latency of all requests (percentiles within {100 * lat['relative_error']:g}%): "
            f"mean {_duration(lat['mean_ms'])}  p50 {_duration(lat['p50_ms'])}  "
            f"p95 {_duration(lat['p95_ms'])}  p99 {_duration(lat['p99_ms'])}  "
            f"max {_duration(lat['max_ms'])}"
        ),
    ]


def _paths(title: str, rows_in: list[dict[str, Any]]) -> list[str]:
    if not rows_in:
        return []
    rows = [
        [
            str(r["count"]),
            f"{100 * r['share']:.1f}%",
            _duration(r["total_ms"]),
            _duration(r["p50_ms"]),
            _duration(r["p95_ms"]),
            _duration(r["p99_ms"]),
            _duration(r["max_ms"]),
            r["path"],
        ]
        for r in rows_in
    ]
    headers = ["requests", "share", "total", "p50", "p95", "p99", "max", "path"]
    return ["", title, *_table(headers, rows)]


def _requests(title: str, rows_in: list[dict[str, Any]]) -> list[str]:
    if not rows_in:
        return []
    rows = [
        [
            _duration(r["duration_ms"]),
            str(r["bytes"]),
            str(r["status"]),
            r["time"],
            f"{r['method']} {r['target']}",
        ]
        for r in rows_in
    ]
    return ["", title, *_table(["duration", "bytes", "status", "time", "request"], rows)]


def render_text(report: dict[str, Any]) -> str:
    """The report as plain text, one section after the other, newline-terminated."""
    paths = report["paths"]
    top = len(paths["by_count"])
    lines = [*_header(report)]
    if report["lines"]["requests"]:
        lines += _rate(report) + _status(report) + _latency(report)
        lines += _paths(f"Top {top} paths by requests", paths["by_count"])
        lines += _paths(f"Top {top} paths by total time", paths["by_total_time"])
        if paths["other_requests"]:
            lines.append(
                f"  ({paths['other_requests']} requests to paths beyond the first "
                f"{paths['max_tracked']} are counted as (other))"
            )
        lines += _requests("Slowest requests", report["slowest"])
        lines += _requests("Biggest responses", report["biggest"])
    return "\n".join(lines) + "\n"
