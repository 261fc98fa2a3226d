"""Reload under load (issue 5): requests/s, p99 and failures through SIGHUP reloads.

For each server (gunicorn gthread's HUP reload, and ours with whatever SIGHUP does
today), on one app: a steady-state wrk run, then a wrk run of the same length during
which the master gets SIGHUP every few seconds. After each SIGHUP we wait (with a
deadline) until none of the workers that were serving before it is alive, so the table
also says how long a reload took and whether workers really were replaced. Failed
requests = wrk socket errors (connect/read/write/timeout) + non-2xx answers.
Done with keep-alive on and with ``Connection: close``.

Usage: python bench/reload_under_load.py [--duration S] [--reloads N] [--app NAME]
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BenchError, ConditionTimeout, fmt, log, machine, median, short, table, wait_for
from _servers import (
    THREADS,
    WORKERS,
    Running,
    WrkResult,
    how_ours_runs,
    ours_available,
    start,
    wrk,
)

SERVERS = ("gunicorn gthread", "ours")


def reload_series(running: Running, reloads: int, interval: float) -> list[float]:
    """Send ``reloads`` SIGHUPs ``interval`` apart; seconds until each set of old workers died.

    NaN for a reload whose old workers were still alive at the next SIGHUP.
    """
    took = []
    for _ in range(reloads):
        time.sleep(interval)  # spacing of the reloads inside the load run, by design
        old = set(running.worker_pids())
        t_hup = time.monotonic()
        running.server.signal(signal.SIGHUP)
        try:
            wait_for(
                lambda old=old: (
                    not old & set(running.worker_pids()) and len(running.worker_pids()) >= WORKERS
                ),
                interval,
                "old workers to be replaced",
            )
            took.append(time.monotonic() - t_hup)
        except ConditionTimeout:
            took.append(float("nan"))
    return took


def measure(
    name: str, app: str, duration: int, reloads: int, keepalive: bool
) -> dict[str, object]:
    mode = "keep-alive" if keepalive else "close"
    load_avg = os.getloadavg()[0]
    running = start(name, app, f"reload-{name.replace(' ', '-')}-{app}-{mode}")
    try:
        wrk(running.port, 1, keepalive=keepalive)  # warm-up
        steady = wrk(running.port, duration, keepalive=keepalive)
        first_workers = set(running.worker_pids())
        box: dict[str, WrkResult | BaseException] = {}

        def load() -> None:
            try:
                box["result"] = wrk(running.port, duration, keepalive=keepalive)
            except (BenchError, subprocess.SubprocessError) as exc:
                box["result"] = exc

        loader = threading.Thread(target=load)
        loader.start()
        took = reload_series(running, reloads, duration / (reloads + 1))
        loader.join(duration + 90)
        under = box.get("result")
        if not isinstance(under, WrkResult):
            raise BenchError(f"wrk during reloads failed: {under}")
        alive = running.server.proc.poll() is None
        survivors = len(first_workers & set(running.worker_pids()))
    finally:
        running.stop()
    return {
        "server": name,
        "mode": mode,
        "steady": steady,
        "reload": under,
        "took": took,
        "master alive": alive,
        "original workers left": survivors,
        "load": load_avg,
    }


def row(result: dict[str, object]) -> list[str]:
    steady: WrkResult = result["steady"]  # type: ignore[assignment]
    under: WrkResult = result["reload"]  # type: ignore[assignment]
    took: list[float] = result["took"]  # type: ignore[assignment]
    done = [t for t in took if not math.isnan(t)]  # NaN: the reload did not complete
    return [
        f"{result['server']}, {result['mode']}",
        fmt(steady.requests_per_s),
        fmt(under.requests_per_s),
        f"{under.requests_per_s / steady.requests_per_s:.2f}x" if steady.requests_per_s else "-",
        fmt(steady.p99_ms),
        fmt(under.p99_ms),
        f"{steady.errors}",
        f"{under.errors} {under.error_detail}".strip(),
        f"{len(done)}/{len(took)}",
        fmt(median(done) * 1000) if done else "n/a",
        f"{result['original workers left']}",
    ]


def run(servers: list[str], app: str, duration: int, reloads: int) -> str:
    notes = []
    results = []
    for name in servers:
        if name == "ours" and (why := ours_available()):
            notes.append(f"ours not measured: {why}")
            continue
        if name == "ours":
            notes.append(how_ours_runs())
        for keepalive in (True, False):
            log(f"reload under load: {name}, keep-alive {keepalive}")
            try:
                results.append(measure(name, app, duration, reloads, keepalive))
            except (BenchError, subprocess.SubprocessError, OSError) as exc:
                notes.append(f"{name} (keep-alive {keepalive}) failed: {short(exc)}")
                log(notes[-1])
    headers = [
        "server, mode",
        "steady req/s",
        "reload req/s",
        "ratio",
        "steady p99 ms",
        "reload p99 ms",
        "steady failed",
        "reload failed",
        "reloads done",
        "reload ms (median)",
        "first workers left",
    ]
    text = [
        "## Reload under load",
        "",
        (
            f"Machine: {machine()}. App `{app}`, {WORKERS} workers x {THREADS} threads, "
            f"wrk -t2 -c64 -d{duration}s; {reloads} SIGHUPs spread over the second run. "
            "'reload ms' = SIGHUP to every pre-SIGHUP worker gone and the worker count "
            "back; 'reloads done' counts those that completed before the next SIGHUP."
        ),
        "",
        table(headers, [row(r) for r in results]),
    ]
    if results:
        loads = [float(r["load"]) for r in results]  # type: ignore[arg-type]
        notes.append(
            f"1-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f} "
            "(it counts the threads of the benchmark's own previous run; compare it with "
            "a quiet run rather than with the core count)"
        )
    text.extend(f"\nNote: {n}" for n in notes)
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=12, help="seconds per wrk run")
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--app", default="hello")
    parser.add_argument("--servers", default=",".join(SERVERS))
    args = parser.parse_args(argv)
    text = run(args.servers.split(","), args.app, args.duration, args.reloads)
    print(text)
    return text


if __name__ == "__main__":
    main()
