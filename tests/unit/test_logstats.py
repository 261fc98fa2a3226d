"""cotyledon-wsgi-logstats: parsing, percentiles, filters, malformed lines, gz, the report.

Lines are produced by the server's own formatters (``_access_log``), so a change of the
log format that the analyser does not follow fails here.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cotyledon.wsgi import _logstats_core, logstats
from cotyledon.wsgi._access_log import AccessRecord, format_combined, format_json
from cotyledon.wsgi._logstats_core import OTHER, SCHEMA, Aggregator, Options
from cotyledon.wsgi._logstats_histogram import RELATIVE_ERROR, LogHistogram
from cotyledon.wsgi._logstats_parse import TimeParser, parse_combined, parse_json, parse_moment
from cotyledon.wsgi._logstats_render import render_text

pytestmark = pytest.mark.timeout(60)

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def record(**changes: Any) -> AccessRecord:
    fields: dict[str, Any] = {
        "remote_addr": "127.0.0.1",
        "method": "GET",
        "target": "/p?q=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "size": 13,
        "referer": None,
        "user_agent": "tester/1.0",
        "user": None,
        "start_time": T0,
        "duration": 0.0123,
    }
    fields.update(changes)
    return AccessRecord(**fields)


def line(fmt: str, **changes: Any) -> bytes:
    formatter = format_json if fmt == "json" else format_combined
    return formatter(record(**changes)).encode("ascii")


def run(lines: list[bytes], **options: Any) -> dict[str, Any]:
    aggregator = Aggregator(Options(**options))
    aggregator.consume(lines, "access.log")
    return aggregator.report()


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


# -- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_both_formats_parse_to_the_same_request(fmt: str) -> None:
    text = line(fmt, start_time=T0 + 61, status=404, size=0, duration=0.25).decode()
    parse = parse_json if fmt == "json" else parse_combined
    request = parse(text, TimeParser())
    assert request is not None
    epoch, method, target, status, size, us = request
    assert (method, target, status, size) == ("GET", "/p?q=1", 404, 0)
    assert epoch == pytest.approx(T0 + 61, abs=1)  # combined has whole seconds
    assert us == pytest.approx(250_000)


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_timestamps_in_any_local_zone(monkeypatch: pytest.MonkeyPatch, tz: str) -> None:
    import time

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        times = TimeParser()
        for offset in (0, 59, 60, 3599, 86_400 * 200):  # across a DST change, too
            when = T0 + offset
            assert parse_combined(line("combined", start_time=when).decode(), times)[0] == when  # type: ignore[index]
            parsed = parse_json(line("json", start_time=when + 0.5).decode(), times)
            assert parsed is not None
            assert parsed[0] == pytest.approx(when + 0.5)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_escaped_quotes_in_the_request_line() -> None:
    text = line("combined", target='/a"b\\" 200 1 "c', user_agent='x" 1 "y').decode()
    request = parse_combined(text, TimeParser())
    assert request is not None
    assert request[2] == '/a\\"b\\\\\\" 200 1 \\"c'  # as logged (escaped), quotes never split it
    assert request[3:5] == (200, 13)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "garbage\n",
        '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 13 "-" "-"\n',  # no µs
        '127.0.0.1 - - [01/Foo/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 13 "-" "-" 5\n',
        '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1" abc 13 "-" "-" 5\n',
        '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 -5 "-" "-" 5\n',
        '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1',  # truncated
        '{"time": "2026-01-01T00:00:00.000+00:00", "status": 200}\n',  # fields missing
        (
            '{"time": "yesterday", "method": "GET", "target": "/", "status": 200, "bytes": 1, '
            '"duration_ms": 1}\n'
        ),
        (
            '{"time": "2026-01-01T00:00:00.000+00:00", "method": "GET", "target": "/", '
            '"status": "200", "bytes": 1, "duration_ms": 1}\n'
        ),
        "{not json\n",
        "\xff\xfe\x00binary\n",
    ],
)
def test_malformed_lines_are_none(text: str) -> None:
    parse = parse_json if text.startswith("{") else parse_combined
    assert parse(text, TimeParser()) is None


def test_parse_moment_iso_and_combined() -> None:
    assert parse_moment("2026-01-01T00:00:00Z") == T0
    assert parse_moment("2026-01-01T01:00:00+01:00") == T0
    assert parse_moment("01/Jan/2026:01:00:00 +0100") == T0
    assert parse_moment("[31/Dec/2025:19:00:00 -0500]") == T0
    assert parse_moment("2026-01-01T00:00") == parse_moment("2026-01-01")  # local time
    with pytest.raises(ValueError, match="not an ISO 8601"):
        parse_moment("last tuesday")


# -- percentiles ----------------------------------------------------------------------------


def _check_quantiles(values: list[float]) -> None:
    hist = LogHistogram()
    for value in values:
        hist.add(value)
    qs = (0.01, 0.5, 0.9, 0.95, 0.99, 1.0)
    for q, estimate in zip(qs, hist.quantiles(qs), strict=True):
        exact = max(exact_quantile(values, q), 1.0)  # below 1 µs counts as 1 µs
        assert abs(estimate - exact) <= RELATIVE_ERROR * exact * (1 + 1e-9), (q, exact)


def test_percentiles_within_the_documented_error_on_random_data() -> None:
    rng = random.Random(15)
    for _ in range(20):
        _check_quantiles([rng.lognormvariate(8, 2.5) for _ in range(rng.randrange(1, 5000))])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1.0, max_value=1e10), min_size=1, max_size=300))
def test_percentiles_within_the_documented_error_property(values: list[float]) -> None:
    _check_quantiles(values)


def test_path_percentiles_in_the_report_match_exact_ones() -> None:
    rng = random.Random(3)
    durations = {"/a": [rng.expovariate(1 / 0.02) for _ in range(700)], "/b": [0.5] * 5}
    lines = [
        line("json", target=f"{path}?n={n}", duration=d)
        for path, values in durations.items()
        for n, d in enumerate(values)
    ]
    rows = {row["path"]: row for row in run(lines)["paths"]["by_count"]}
    assert rows.keys() == {"/a", "/b"}
    for path, values in durations.items():
        us = [round(d * 1000, 3) * 1000 for d in values]  # as logged: ms with 3 decimals
        for name, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
            exact = exact_quantile(us, q) / 1000
            assert rows[path][name] == pytest.approx(exact, rel=RELATIVE_ERROR, abs=1e-3)
        assert rows[path]["max_ms"] == pytest.approx(max(us) / 1000)
        assert rows[path]["count"] == len(values)


# -- the report -----------------------------------------------------------------------------


def test_mixed_formats_counts_statuses_paths_and_tops() -> None:
    rng = random.Random(7)
    specs = [
        {
            "target": f"/p{sum(n >= edge for edge in (200, 320, 380))}"  # 200/120/60/20
            + ("?x=1" if n % 3 else ""),
            "status": rng.choice([200, 200, 200, 301, 404, 503]),
            "size": rng.randrange(0, 100_000),
            "duration": rng.uniform(0.001, 2.0),
            "start_time": T0 + n,
        }
        for n in range(400)
    ]
    lines = [line("json" if n % 2 else "combined", **s) for n, s in enumerate(specs)]
    report = run(lines, top=3)
    assert report["schema"] == SCHEMA
    assert report["lines"] == {"total": 400, "requests": 400, "malformed": 0, "filtered": 0}
    classes = report["status"]["classes"]
    for name, codes in (("2xx", {200}), ("3xx", {301}), ("4xx", {404}), ("5xx", {503})):
        expected = sum(1 for s in specs if s["status"] in codes)
        assert classes[name] == {"count": expected, "share": round(expected / 400, 4)}
    assert [row["path"] for row in report["paths"]["by_count"]] == ["/p0", "/p1", "/p2"]
    by_time = sorted(
        (
            (sum(s["duration"] for s in specs if s["target"].startswith(f"/p{k}")), f"/p{k}")
            for k in range(4)
        ),
        reverse=True,
    )
    assert [row["path"] for row in report["paths"]["by_total_time"]] == [p for _, p in by_time[:3]]
    slowest = sorted(specs, key=lambda s: -s["duration"])[:3]
    assert [r["duration_ms"] for r in report["slowest"]] == [
        pytest.approx(s["duration"] * 1000, abs=0.002) for s in slowest
    ]
    biggest = sorted(specs, key=lambda s: -s["size"])[:3]
    assert [r["bytes"] for r in report["biggest"]] == [s["size"] for s in biggest]
    assert report["span"]["seconds"] == 399
    assert report["span"]["start"] == "2026-01-01T00:00:00.000+00:00"


def test_malformed_lines_are_counted_with_their_numbers() -> None:
    good = line("combined")
    lines = [good, b"junk\n", good, b"{broken\n", b"\x00\xff\n", *([b"x\n"] * 20), good]
    report = run(lines)
    assert report["lines"]["requests"] == 3
    assert report["lines"]["malformed"] == 23
    assert report["malformed_lines"][:3] == [
        {"file": "access.log", "line": 2},
        {"file": "access.log", "line": 4},
        {"file": "access.log", "line": 5},
    ]
    assert len(report["malformed_lines"]) == 10  # only the first few
    assert "access.log:2, access.log:4" in render_text(report)


def test_since_is_inclusive_and_until_exclusive() -> None:
    lines = [line("combined", start_time=T0 + n) for n in range(10)]
    lines += [line("json", start_time=T0 + n + 0.5) for n in range(10)]
    report = run(lines, since=T0 + 3, until=T0 + 7)
    assert report["lines"]["requests"] == 8  # 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5
    assert report["lines"]["filtered"] == 12
    assert report["span"]["start"] == "2026-01-01T00:00:03.000+00:00"
    assert report["filter"]["until"] == "2026-01-01T00:00:07.000+00:00"


def test_distinct_paths_beyond_the_cap_are_other() -> None:
    lines = [line("combined", target=f"/user/{n}") for n in range(50)]
    report = run([*lines, line("combined", target="/user/1?again")], max_paths=10, top=20)
    paths = report["paths"]
    assert (paths["tracked"], paths["other_requests"]) == (10, 40)
    counts = {row["path"]: row["count"] for row in paths["by_count"]}
    assert counts[OTHER] == 40
    assert counts["/user/1"] == 2  # a tracked path stays tracked after the cap


def test_rate_buckets_auto_and_fixed() -> None:
    lines = [line("combined", start_time=T0 + n) for n in range(0, 3600, 2)]  # 1800 in 1 h
    auto = run(lines)["rate"]
    assert auto["bucket_seconds"] == 60  # the smallest step showing 1 h in <= 60 rows
    assert len(auto["buckets"]) == 60
    assert {b["count"] for b in auto["buckets"]} == {30}
    assert auto["buckets"][0]["per_second"] == 0.5
    fixed = run(lines, bucket=600)["rate"]
    assert fixed["bucket_seconds"] == 600
    assert [b["count"] for b in fixed["buckets"]] == [300] * 6


def test_rate_gaps_are_zero_rows() -> None:
    lines = [line("combined", start_time=T0), line("combined", start_time=T0 + 20)]
    buckets = run(lines, bucket=10)["rate"]["buckets"]
    assert [b["count"] for b in buckets] == [1, 0, 1]


def test_rate_series_coarsens_to_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_logstats_core, "MAX_BUCKETS", 50)
    lines = [line("combined", start_time=T0 + n) for n in range(1000)]  # 1000 s, 1 per second
    aggregator = Aggregator(Options(bucket=1))
    aggregator.consume(lines, "a")
    assert len(aggregator._rate) <= 50
    rate = aggregator.report()["rate"]
    assert rate["bucket_seconds"] == 32  # 1 s doubled until 1000 s fit in 50 buckets
    assert sum(b["count"] for b in rate["buckets"]) == 1000


def test_empty_input_reports_nothing_without_failing() -> None:
    report = run([])
    assert report["lines"]["requests"] == 0
    assert report["span"]["start"] is None
    assert report["rate"]["buckets"] == []
    assert render_text(report).startswith("Lines: 0")


def test_schema_keys_are_stable() -> None:
    report = run([line("combined")])
    assert list(report) == [
        "schema", "files", "lines", "malformed_lines", "filter", "span", "rate", "status",
        "latency", "bytes", "paths", "slowest", "biggest",
    ]  # fmt: skip
    assert set(report["paths"]["by_count"][0]) == {
        "path", "count", "share", "total_ms", "bytes", "mean_ms", "p50_ms", "p95_ms",
        "p99_ms", "max_ms",
    }  # fmt: skip
    assert set(report["slowest"][0]) == {
        "time", "method", "target", "status", "bytes", "duration_ms", "file", "line",
    }  # fmt: skip
    json.dumps(report)  # serialisable as is


# -- the driver: files, gzip, stdin, errors -------------------------------------------------


def test_gzip_plain_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "access.log"
    plain.write_bytes(b"".join(line("combined", start_time=T0 + n) for n in range(5)))
    rotated = tmp_path / "access.log.1.gz"
    with gzip.open(rotated, "wb") as out:
        out.write(b"".join(line("json", start_time=T0 - 100 + n) for n in range(7)))
    status = logstats.main(["--json", str(rotated), str(plain), str(tmp_path / "nope")])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert status == 1
    assert "cannot read" in captured.err
    assert report["lines"]["requests"] == 12
    files = {f["name"]: f for f in report["files"]}
    assert files[str(rotated)]["lines"] == 7
    assert files[str(tmp_path / "nope")]["error"].startswith("FileNotFoundError")


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    data = gzip.compress(b"".join(line("combined", start_time=T0 + n) for n in range(2000)))
    broken = tmp_path / "cut.gz"
    broken.write_bytes(data[: len(data) * 2 // 3])
    aggregator, errors = logstats.analyse([str(broken)], Options())
    assert len(errors) == 1
    report = aggregator.report()
    assert 0 < report["lines"]["requests"] < 2000
    assert report["files"][0]["error"]


def test_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    data = gzip.compress(line("combined") + line("json"))
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert logstats.main(["-", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"][0]["name"] == "<stdin>"
    assert report["lines"]["requests"] == 2


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--since", "soon", "f"], ["--top", "0", "f"], ["--bucket", "-1", "f"]):
        with pytest.raises(SystemExit) as exc:
            logstats.main(argv)
        assert exc.value.code == 2
    assert "not an ISO 8601" in capsys.readouterr().err
