"""Unit tests for cotyledon.wsgi._health_render (pure: a snapshot in, bytes out)."""

from __future__ import annotations

import json
import math
from html.parser import HTMLParser

import pytest
from prometheus_client.parser import text_string_to_metric_families

from cotyledon.wsgi._health_render import (
    RESTART_REASONS,
    Snapshot,
    WorkerRow,
    format_bytes,
    format_duration,
    render_html,
    render_json,
    render_metrics,
    render_sysinfo,
    snapshot_from_json,
)

HOSTILE = '<script>alert("x")</script>&\'\n\\'


def make_snapshot(**changes: object) -> Snapshot:
    workers = (
        WorkerRow(
            0, 4101, 2, "ready", 3725.0, 120, 2, 0.4, 52 * 1024 * 1024, "max_requests", 3725.0
        ),
        WorkerRow(1, 4102, 2, "booting", 1.5, 0, 0, 0.1, None, "reload", 1.5),
        WorkerRow(2, 3999, 1, "draining", 7200.0, 9001, 1, 2.0, 80 * 1024 * 1024),
    )
    base = Snapshot(
        service="api",
        version="1.2.3",
        master_pid=4100,
        uptime=90061.0,
        binds=("127.0.0.1:8080", "unix:/run/api.sock"),
        workers_configured=3,
        threads=8,
        workers=workers,
        requests_total=9121,
        latency_sum=12.5,
        latency_buckets=((0.005, 100), (0.1, 9000), (1.0, 9120), (math.inf, 9121)),
        status_classes=(("2xx", 9000), ("4xx", 100), ("5xx", 21)),
        restarts=(("max_requests", 4), ("reload", 3)),
        generation=2,
        rollout="rolling: slot 1 booting",
        refresh_seconds=7,
    )
    return Snapshot(**{**base.__dict__, **changes})  # type: ignore[arg-type]


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(body: bytes) -> _TextCollector:
    parser = _TextCollector()
    parser.feed(body.decode())
    parser.close()
    return parser


def test_formatters() -> None:
    assert format_duration(5.0) == "5.0s"
    assert format_duration(3725) == "1h 2m 5s"
    assert format_duration(90061) == "1d 1h 1m"
    assert format_duration(-1) == "0.0s"
    assert format_bytes(None) == "-"
    assert format_bytes(512) == "512 B"
    assert format_bytes(52 * 1024 * 1024) == "52.0 MiB"
    assert format_bytes(3 * 1024**4) == "3072.0 GiB"


def test_html_shows_what_a_person_needs() -> None:
    page = render_html(make_snapshot())
    parsed = parse_html(page)
    text = " ".join(" ".join(parsed.text).split())
    for expected in [
        "api status",
        "1.2.3",
        "4100",
        "1d 1h 1m",  # uptime
        "127.0.0.1:8080",
        "unix:/run/api.sock",
        "1 / 3 ready (1 booting, 1 draining)",  # totals against configured
        "9121",
        "4101",
        "52.0 MiB",
        "max_requests (1h 2m 5s ago)",
        "booting",
        "draining",
        "rolling: slot 1 booting (generation 2)",
        "max_requests: 4, reload: 3",
        "refreshes every 7s",
    ]:
        assert expected in text, expected
    refresh = [a for tag, a in parsed.tags if tag == "meta" and a.get("http-equiv") == "refresh"]
    assert refresh == [{"http-equiv": "refresh", "content": "7"}]
    assert b'class="warn">1 / 3 ready' in page


def test_html_has_no_external_asset_and_no_script() -> None:
    parsed = parse_html(render_html(make_snapshot()))
    tags = {tag for tag, _ in parsed.tags}
    assert "script" not in tags
    assert "img" not in tags
    assert not [a for tag, a in parsed.tags if tag == "link"]
    hrefs = [a["href"] for tag, a in parsed.tags if tag == "a"]
    assert hrefs == ["json", "metrics", "_sysinfo"]


def test_full_fleet_is_shown_ok() -> None:
    rows = tuple(WorkerRow(i, 10 + i, 1, "ready", 5.0, 0, 0, 0.1) for i in range(3))
    page = render_html(make_snapshot(workers=rows))
    assert b'class="ok">3 / 3 ready' in page


def test_empty_fleet() -> None:
    page = render_html(make_snapshot(workers=()))
    assert b"no workers" in page
    assert b"0 / 3 ready" in page


def test_html_escapes_hostile_strings() -> None:
    row = WorkerRow(0, 1, 1, HOSTILE, 1.0, 0, 0, 0.0, None, HOSTILE, None)
    snapshot = make_snapshot(
        service=HOSTILE,
        version=HOSTILE,
        binds=(HOSTILE,),
        workers=(row,),
        rollout=HOSTILE,
        restarts=((HOSTILE, 1),),
        notes=(HOSTILE,),
    )
    page = render_html(snapshot)
    assert b"<script" not in page
    parsed = parse_html(page)
    assert "script" not in {tag for tag, _ in parsed.tags}
    # The text survives, escaped, so a person still sees it.
    assert '<script>alert("x")</script>' in "".join(parsed.text)


def test_json_round_trips() -> None:
    snapshot = make_snapshot()
    body = render_json(snapshot)
    data = json.loads(body)  # strict JSON: +Inf is a string
    assert data["latency_buckets"][-1] == ["+Inf", 9121]
    assert data["in_flight"] == 3
    assert data["ready_workers"] == 1
    assert data["workers"][0]["pid"] == 4101
    assert data["restarts"] == {"max_requests": 4, "reload": 3}
    assert snapshot_from_json(body) == snapshot


def test_json_round_trips_hostile_strings() -> None:
    snapshot = make_snapshot(service=HOSTILE, binds=(HOSTILE,), notes=(HOSTILE,))
    assert snapshot_from_json(render_json(snapshot)) == snapshot


def test_sysinfo_is_json() -> None:
    body = render_sysinfo({"platform": "Linux", "path": ["/a", "/b"], "odd": object})
    data = json.loads(body)
    assert data["platform"] == "Linux"
    assert data["path"] == ["/a", "/b"]
    assert "object" in data["odd"]


def _families(body: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def test_metrics_parse_with_the_reference_parser() -> None:
    body = render_metrics(make_snapshot())
    families = _families(body)
    requests = families["cotyledon_http_requests"]
    assert requests.type == "counter"  # type: ignore[attr-defined]
    by_code = {s.labels["code"]: s.value for s in requests.samples if s.name.endswith("_total")}  # type: ignore[attr-defined]
    assert by_code == {"1xx": 0, "2xx": 9000, "3xx": 0, "4xx": 100, "5xx": 21}

    hist = families["cotyledon_http_request_duration_seconds"]
    assert hist.type == "histogram"  # type: ignore[attr-defined]
    buckets = {
        s.labels["le"]: s.value  # type: ignore[attr-defined]
        for s in hist.samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket")
    }
    assert buckets == {"0.005": 100, "0.1": 9000, "1.0": 9120, "+Inf": 9121}
    others = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}  # type: ignore[attr-defined]
    assert others == {
        "cotyledon_http_request_duration_seconds_sum": 12.5,
        "cotyledon_http_request_duration_seconds_count": 9121,
    }

    def single(name: str) -> float:
        (sample,) = families[name].samples  # type: ignore[attr-defined]
        return float(sample.value)

    assert single("cotyledon_http_requests_in_progress") == 3
    assert single("cotyledon_workers_desired") == 3
    assert single("cotyledon_workers_busy") == 2
    assert single("cotyledon_uptime_seconds") == 90061.0
    assert single("cotyledon_rollout_generation") == 2
    states = {s.labels["state"]: s.value for s in families["cotyledon_workers"].samples}  # type: ignore[attr-defined]
    assert states == {"booting": 1, "ready": 1, "draining": 1}
    restarts = {
        s.labels["reason"]: s.value  # type: ignore[attr-defined]
        for s in families["cotyledon_worker_restarts"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_total")
    }
    assert restarts == {**dict.fromkeys(RESTART_REASONS, 0), "max_requests": 4, "reload": 3}
    memory = families["cotyledon_worker_memory_bytes"].samples  # type: ignore[attr-defined]
    assert {(s.labels["slot"], s.labels["pid"]): s.value for s in memory} == {
        ("0", "4101"): 52 * 1024 * 1024,
        ("2", "3999"): 80 * 1024 * 1024,
    }


def test_metrics_text_format_details() -> None:
    body = render_metrics(make_snapshot())
    text = body.decode()
    assert text.endswith("\n")
    assert "# TYPE cotyledon_http_requests_total counter" in text
    assert 'cotyledon_http_request_duration_seconds_bucket{le="+Inf"} 9121' in text
    # Every sample line belongs to a family announced by a TYPE line before it.
    announced: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            announced.add(line.split()[2])
        elif not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            assert any(name == a or name.startswith(a + "_") for a in announced), line


def test_metrics_escape_label_values() -> None:
    body = render_metrics(make_snapshot(restarts=((HOSTILE, 2),)))
    families = _families(body)
    restarts = {
        s.labels["reason"]: s.value  # type: ignore[attr-defined]
        for s in families["cotyledon_worker_restarts"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_total")
    }
    assert restarts[HOSTILE] == 2


@pytest.mark.parametrize("prefix", ["cotyledon", "myapp"])
def test_metrics_prefix(prefix: str) -> None:
    assert f"{prefix}_workers_desired" in _families(render_metrics(make_snapshot(), prefix))
