"""Render a health snapshot as HTML, JSON and Prometheus text (PURE).

Job: turn one :class:`Snapshot` (built by the master from the scoreboard, the rollout and
its own counters) into the three bodies the status port serves: an HTML page a person
reads at a glance, the same data as JSON, and ``/metrics`` in the Prometheus text
exposition format 0.0.4.

Must not: read clocks, /proc or the scoreboard, do I/O or log. Every string that comes
from outside (bind names, reasons, the service name) is escaped for its format; the page
loads no external asset (no script at all), so it is safe to open from a localhost port.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Restart reasons always exported (at 0 when unseen) so that rate() and alerts work.
RESTART_REASONS: tuple[str, ...] = (
    "reload",
    "max_requests",
    "max_age",
    "max_memory",
    "hung",
    "crashed",
)
JSON_CONTENT_TYPE = "application/json"
HTML_CONTENT_TYPE = "text/html; charset=utf-8"
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class WorkerRow:
    """One worker as the health page shows it. Ages are seconds; memory is bytes."""

    slot: int
    pid: int
    generation: int
    status: str  # "booting", "ready" or "draining"
    age: float
    requests: int
    in_flight: int
    heartbeat_age: float
    memory: int | None = None
    last_restart_reason: str | None = None
    last_restart_age: float | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything the status port shows, at one instant.

    ``latency_buckets`` are ``(upper bound, cumulative count)`` pairs ending with
    ``(inf, count)``; ``status_classes`` and ``restarts`` are ``(label, count)`` pairs.
    """

    service: str
    version: str
    master_pid: int
    uptime: float
    binds: tuple[str, ...]
    workers_configured: int
    threads: int
    workers: tuple[WorkerRow, ...]
    requests_total: int
    latency_sum: float
    latency_buckets: tuple[tuple[float, int], ...]
    status_classes: tuple[tuple[str, int], ...] = ()
    restarts: tuple[tuple[str, int], ...] = ()
    generation: int = 0
    rollout: str = "idle"
    #: ``--preload``: the zygote that forks the workers (None: none, or none now), and
    #: the generation of the code it loaded (1 at start, +1 per reload that loaded).
    zygote_pid: int | None = None
    zygote_generation: int = 0
    memory_kind: str = "uss"
    refresh_seconds: int = 5
    notes: tuple[str, ...] = field(default=())

    @property
    def in_flight(self) -> int:
        """Requests being served now, over every worker."""
        return sum(w.in_flight for w in self.workers)

    @property
    def ready_workers(self) -> int:
        """Workers accepting connections."""
        return sum(1 for w in self.workers if w.status == "ready")


# -- small formatters ----------------------------------------------------------------------


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h 2m 5s"``; sub-minute values keep one decimal."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    shown = [f"{value}{unit}" for value, unit in parts if value]
    return " ".join(shown[:3])


def format_bytes(value: int | None) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1; "-" when unknown."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"  # pragma: no cover - loop always returns


def format_le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``+Inf`` for infinity)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


# -- JSON ----------------------------------------------------------------------------------


def snapshot_to_dict(snapshot: Snapshot) -> dict[str, Any]:
    """A JSON-ready dict (bucket bounds as strings, so +Inf survives strict JSON)."""
    data = asdict(snapshot)
    data["latency_buckets"] = [[format_le(b), n] for b, n in snapshot.latency_buckets]
    data["status_classes"] = dict(snapshot.status_classes)
    data["restarts"] = dict(snapshot.restarts)
    data["in_flight"] = snapshot.in_flight
    data["ready_workers"] = snapshot.ready_workers
    return data


def render_json(snapshot: Snapshot) -> bytes:
    """The snapshot as UTF-8 JSON (strict: no NaN or Infinity literals)."""
    return json.dumps(snapshot_to_dict(snapshot), allow_nan=False, indent=1).encode()


def snapshot_from_json(body: bytes | str) -> Snapshot:
    """Rebuild a :class:`Snapshot` from :func:`render_json` output."""
    data = json.loads(body)
    rows = tuple(WorkerRow(**row) for row in data.pop("workers"))
    names = {f.name for f in fields(Snapshot)}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs["binds"] = tuple(kwargs["binds"])
    kwargs["notes"] = tuple(kwargs["notes"])
    kwargs["latency_buckets"] = tuple((float(b), int(n)) for b, n in kwargs["latency_buckets"])
    kwargs["status_classes"] = tuple(kwargs["status_classes"].items())
    kwargs["restarts"] = tuple(kwargs["restarts"].items())
    return Snapshot(workers=rows, **kwargs)


def render_sysinfo(info: Mapping[str, Any]) -> bytes:
    """``/_sysinfo`` body: the mapping as UTF-8 JSON."""
    return json.dumps(info, indent=1, sort_keys=True, default=str).encode()


# -- Prometheus ----------------------------------------------------------------------------


def _label_value(value: object) -> str:
    text = str(value)
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, object]]) -> str:
    inner = ",".join(f'{name}="{_label_value(value)}"' for name, value in pairs)
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        help_escaped = help_text.replace("\\", "\\\\").replace("\n", "\\n")
        self.lines.append(f"# HELP {name} {help_escaped}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: Iterable[tuple[str, object]] = ()) -> None:
        self.lines.append(f"{name}{_labels(labels)} {_number(value)}")


def render_metrics(snapshot: Snapshot, prefix: str = "cotyledon") -> bytes:
    """``/metrics`` body in the Prometheus text format 0.0.4."""
    out = _Exposition()
    p = prefix
    out.family(f"{p}_http_requests_total", "counter", "HTTP requests served, by status class.")
    classes = dict(snapshot.status_classes)
    for label in ("1xx", "2xx", "3xx", "4xx", "5xx"):
        out.sample(f"{p}_http_requests_total", classes.get(label, 0), [("code", label)])
    hist = f"{p}_http_request_duration_seconds"
    out.family(hist, "histogram", "Time from request head to the end of the response.")
    for bound, count in snapshot.latency_buckets:
        out.sample(f"{hist}_bucket", count, [("le", format_le(bound))])
    out.sample(f"{hist}_sum", float(snapshot.latency_sum))
    out.sample(f"{hist}_count", snapshot.requests_total)
    out.family(f"{p}_http_requests_in_progress", "gauge", "Requests being served now.")
    out.sample(f"{p}_http_requests_in_progress", snapshot.in_flight)
    out.family(f"{p}_workers", "gauge", "Worker processes, by state.")
    for state in ("booting", "ready", "draining"):
        count = sum(1 for w in snapshot.workers if w.status == state)
        out.sample(f"{p}_workers", count, [("state", state)])
    out.family(f"{p}_workers_desired", "gauge", "Configured number of workers.")
    out.sample(f"{p}_workers_desired", snapshot.workers_configured)
    out.family(f"{p}_workers_busy", "gauge", "Workers serving at least one request.")
    out.sample(f"{p}_workers_busy", sum(1 for w in snapshot.workers if w.in_flight > 0))
    out.family(f"{p}_worker_restarts_total", "counter", "Worker replacements, by reason.")
    restarts = dict(snapshot.restarts)
    reasons = list(RESTART_REASONS) + sorted(set(restarts) - set(RESTART_REASONS))
    for reason in reasons:
        out.sample(f"{p}_worker_restarts_total", restarts.get(reason, 0), [("reason", reason)])
    out.family(
        f"{p}_worker_memory_bytes", "gauge", f"Memory of each worker ({snapshot.memory_kind})."
    )
    for w in snapshot.workers:
        if w.memory is not None:
            out.sample(f"{p}_worker_memory_bytes", w.memory, [("slot", w.slot), ("pid", w.pid)])
    out.family(f"{p}_uptime_seconds", "gauge", "Seconds since the master started.")
    out.sample(f"{p}_uptime_seconds", float(snapshot.uptime))
    out.family(f"{p}_rollout_generation", "gauge", "Generation of the latest rollout.")
    out.sample(f"{p}_rollout_generation", snapshot.generation)
    return ("\n".join(out.lines) + "\n").encode()


# -- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.3em;margin:0 0 .3em}
table{border-collapse:collapse;margin:.8em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}
td.l,th.l{text-align:left}
.ok{color:#176f2c}.warn{color:#a4000f;font-weight:bold}
tr.draining td{font-style:italic;color:#777}
tr.booting td{color:#8a6d00}
.summary td{text-align:left}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _summary_rows(s: Snapshot) -> list[tuple[str, str]]:
    ready = s.ready_workers
    css = "ok" if ready >= s.workers_configured else "warn"
    workers = f'<span class="{css}">{ready} / {s.workers_configured} ready</span>'
    others = [
        f"{n} {state}"
        for state in ("booting", "draining")
        if (n := sum(1 for w in s.workers if w.status == state))
    ]
    if others:
        workers += " (" + ", ".join(others) + ")"
    restarts = ", ".join(f"{_e(r)}: {n}" for r, n in s.restarts if n) or "none"
    return [
        ("Service", _e(s.service)),
        ("Version", _e(s.version)),
        ("Master pid", _e(s.master_pid)),
        ("Uptime", _e(format_duration(s.uptime))),
        ("Binds", "<br>".join(_e(b) for b in s.binds) or "-"),
        ("Workers", workers),
        ("Threads per worker", _e(s.threads)),
        ("Requests served", _e(s.requests_total)),
        ("In flight", _e(s.in_flight)),
        ("Rollout", f"{_e(s.rollout)} (generation {_e(s.generation)})"),
        ("Restarts", restarts),
    ]


_WORKER_HEADERS = (
    "Slot",
    "PID",
    "Gen",
    "State",
    "Age",
    "Requests",
    "In flight",
    "Heartbeat",
    "Memory",
    "Last restart",
)


def _worker_row(w: WorkerRow) -> str:
    if w.last_restart_reason is None:
        restart = "-"
    else:
        ago = "" if w.last_restart_age is None else f" ({format_duration(w.last_restart_age)} ago)"
        restart = _e(w.last_restart_reason + ago)
    cells = [
        _e(w.slot),
        _e(w.pid),
        _e(w.generation),
        f'<td class="l">{_e(w.status)}</td>',
        _e(format_duration(w.age)),
        _e(w.requests),
        _e(w.in_flight),
        _e(format_duration(w.heartbeat_age) + " ago"),
        _e(format_bytes(w.memory)),
        f'<td class="l">{restart}</td>',
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr class="{_e(w.status)}">{tds}</tr>'


def render_html(snapshot: Snapshot) -> bytes:
    """The status page: summary, one row per worker, auto-refresh, no external assets."""
    s = snapshot
    title = f"{s.service} status"
    summary = "".join(f'<tr><th class="l">{k}</th><td>{v}</td></tr>' for k, v in _summary_rows(s))
    head = "".join(
        f'<th class="l">{h}</th>' if h in ("State", "Last restart") else f"<th>{h}</th>"
        for h in _WORKER_HEADERS
    )
    rows = "".join(_worker_row(w) for w in s.workers) or (
        f'<tr><td colspan="{len(_WORKER_HEADERS)}" class="l">no workers</td></tr>'
    )
    notes = "".join(f'<p class="warn">{_e(n)}</p>' for n in s.notes)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(s.refresh_seconds)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>{notes}"
        f'<table class="summary">{summary}</table>'
        f'<h2>Workers</h2><table id="workers"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}</tbody></table>"
        f"<p>Memory is {_e(s.memory_kind.upper())}. This page refreshes every "
        f"{int(s.refresh_seconds)}s. Also: "
        '<a href="json">JSON</a>, <a href="metrics">metrics</a>, '
        '<a href="_sysinfo">sysinfo</a>.</p>'
        "</body></html>\n"
    )
    return page.encode()
