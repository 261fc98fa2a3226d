"""Throughput and peak memory of ``cotyledon-wsgi-logstats`` on a synthetic access log.

    python bench/logstats.py                 # 200 MB, combined format
    python bench/logstats.py --size-mb 1024  # 1 GB
    python bench/logstats.py --format json   # or mixed (one line in 10 is JSON), gzip

The log is written by the server's own formatters (``cotyledon.wsgi._access_log``), with a
seeded random mix: 300 paths (Zipf-like weights) plus one path in 20 carrying a unique
id (more distinct paths than the 1000 tracked, so the ``(other)`` bucket is exercised),
query strings, statuses (200/304/404/500), log-normal durations and sizes, about 300
requests per second of log time. It lives in a temporary directory removed at the end.

The analyser runs as a child process (``python -m cotyledon.wsgi.logstats --json``);
the wall time gives MB/s and ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` the peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cotyledon.wsgi._access_log import AccessRecord, format_combined, format_json

ROOT = Path(__file__).resolve().parent.parent
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PATHS = [f"/api/v1/resource{n}/items" for n in range(300)]
WEIGHTS = [1 / (rank + 1) for rank in range(len(PATHS))]
AGENTS = ["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0", "python-requests/2.32"]


def _lines(rng: random.Random, count: int, fmt: str, now: float) -> tuple[list[str], float]:
    paths = rng.choices(PATHS, WEIGHTS, k=count)
    out = []
    for path in paths:
        now += rng.expovariate(300.0)
        target = path
        if rng.random() < 0.05:
            target = f"/users/{rng.randrange(10**9)}"
        if rng.random() < 0.3:
            target += f"?page={rng.randrange(50)}&sort=name"
        roll = rng.random()
        status = 200 if roll < 0.9 else 304 if roll < 0.95 else 404 if roll < 0.99 else 500
        record = AccessRecord(
            remote_addr=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
            method="GET" if rng.random() < 0.8 else "POST",
            target=target,
            protocol="HTTP/1.1",
            status=status,
            size=0 if status == 304 else int(rng.lognormvariate(7, 1.5)),
            referer="https://example.com/" if rng.random() < 0.5 else None,
            user_agent=rng.choice(AGENTS),
            user=None,
            start_time=now,
            duration=rng.lognormvariate(-5, 1.2),
        )
        json_line = fmt == "json" or (fmt == "mixed" and rng.random() < 0.1)
        out.append(format_json(record) if json_line else format_combined(record))
    return out, now


def generate(path: Path, size_mb: float, fmt: str, seed: int) -> int:
    """Write about ``size_mb`` MB of log lines to ``path``; return the number of lines."""
    rng = random.Random(seed)
    limit = int(size_mb * 1024 * 1024)
    written = lines = 0
    now = START
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="ascii") as out:  # type: ignore[operator]
        while written < limit:
            chunk, now = _lines(rng, 5000, "combined" if fmt == "gzip" else fmt, now)
            text = "".join(chunk)
            out.write(text)
            written += len(text)
            lines += len(chunk)
    return lines


def analyse(path: Path) -> tuple[float, float, int, dict[str, object]]:
    """Run the analyser on ``path``; return (wall s, CPU s, peak RSS in KiB, report).

    CPU seconds (user + system of the child) are the figure to compare on a busy machine.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cotyledon.wsgi.logstats", "--json", str(path)]
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=True, env=env, timeout=600)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return elapsed, cpu, after.ru_maxrss, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200.0, help="log size (200)")
    parser.add_argument(
        "--format", choices=("combined", "json", "mixed", "gzip"), default="combined"
    )
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="logstats-bench-") as tmp:
        path = Path(tmp) / ("access.log.gz" if args.format == "gzip" else "access.log")
        began = time.perf_counter()
        lines = generate(path, args.size_mb, args.format, args.seed)
        print(f"generated {lines} lines ({args.format}) in {time.perf_counter() - began:.1f} s")
        size_mb = path.stat().st_size / (1024 * 1024)
        elapsed, cpu, peak_kib, report = analyse(path)
        counted = report["lines"]
        assert isinstance(counted, dict)
        print(
            f"analysed {size_mb:.1f} MB on disk, {counted['requests']} requests, "
            f"{counted['malformed']} malformed, in {elapsed:.2f} s wall, {cpu:.2f} s CPU: "
            f"{size_mb / elapsed:.1f} MB/s wall, {size_mb / cpu:.1f} MB/s CPU, "
            f"{lines / cpu / 1000:.0f} k lines per CPU second, peak RSS {peak_kib / 1024:.1f} MiB"
        )
        print(
            f"1 GB would take about {1024 / (size_mb / elapsed):.0f} s at this wall rate, "
            f"{1024 / (size_mb / cpu):.0f} s of CPU"
        )


if __name__ == "__main__":
    main()
