"""WSGI throughput benchmark (issue 4): ours beside gunicorn and waitress in one run.

Servers: gunicorn sync (2 workers), gunicorn gthread (2 workers x 8 threads), waitress
(one process, 8 threads: its own model) and ours (``cotyledon.wsgi -w 2 -t 8``), each on
the apps of bench/apps.py (hello, json, 10 ms sleep), loaded by ``wrk -t2 -c64 -d10s
--latency`` with keep-alive on and with ``Connection: close``. Reports requests/s,
p50/p99 latency, errors and per-worker USS after the load, with ratios vs gunicorn
gthread; writes a JSON file and (if matplotlib installs in bench/.venvs/plot) a PNG.

The machine has 2 cores: wrk's two threads and the servers compete for them, so the
figures are a comparison on the same footing, not absolute capacity.
Usage: python bench/wsgi_throughput.py [--duration S] [--servers a,b] [--apps a,b]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    BenchError,
    cpu_seconds,
    ensure_venv,
    fmt,
    log,
    machine,
    median,
    memory_kib,
    ratio,
    short,
    table,
)
from _servers import (
    SERVERS,
    THREADS,
    WORKERS,
    how_ours_runs,
    ours_available,
    results_dir,
    start,
    wrk,
)

APPS = ("hello", "json_app", "sleep_app")
BASELINE = "gunicorn gthread"
WARMUP_SECONDS = 1


def measure_server(name: str, app: str, duration: int) -> dict[str, object]:
    """Start one server on one app, load it both ways, read its workers' memory."""
    running = start(name, app, f"throughput-{name.replace(' ', '-')}-{app}")
    row: dict[str, object] = {"server": name, "app": app, "load": os.getloadavg()[0]}
    try:
        wrk(running.port, WARMUP_SECONDS, keepalive=True)
        for keepalive in (True, False):
            serving = [running.server.pid, *running.worker_pids()]
            cpu_before = cpu_seconds(serving)
            result = wrk(running.port, duration, keepalive=keepalive)
            cpu = cpu_seconds(serving) - cpu_before
            mode = "keep-alive" if keepalive else "close"
            row[mode] = vars(result)
            # CPU per request does not depend on who else uses the cores: the fairest figure.
            row[mode]["cpu_us"] = cpu / result.requests * 1e6 if result.requests else math.nan
            if result.errors:
                log(f"{name} {app} {mode}: {result.errors} errors ({result.error_detail})")
        pids = running.worker_pids()
        row["workers"] = len(pids)
        row["uss_mib"] = median([memory_kib(p)[1] for p in pids]) / 1024
        row["rss_mib"] = median([memory_kib(p)[0] for p in pids]) / 1024
    finally:
        running.stop()
    return row


def merge(rounds: list[dict[str, object]]) -> dict[str, object]:
    """One row from several rounds of the same server and app: medians, errors summed."""
    merged = dict(rounds[0])
    for mode in ("keep-alive", "close"):
        runs = [r[mode] for r in rounds]
        merged[mode] = {
            key: median([run[key] for run in runs])  # type: ignore[index]
            for key in ("requests_per_s", "p50_ms", "p99_ms", "cpu_us")
        }
        merged[mode]["errors"] = sum(run["errors"] for run in runs)  # type: ignore[index]
        details = [run["error_detail"] for run in runs if run["error_detail"]]  # type: ignore[index]
        merged[mode]["error_detail"] = "; ".join(details)  # type: ignore[index]
    for key in ("uss_mib", "rss_mib"):
        merged[key] = median([r[key] for r in rounds])  # type: ignore[misc]
    merged["load"] = max(r["load"] for r in rounds)  # type: ignore[type-var]
    merged["rounds"] = len(rounds)
    return merged


def render(rows: list[dict[str, object]], duration: int, notes: list[str]) -> str:
    """Markdown: one table per app and mode, ratios against gunicorn gthread."""
    out = [
        "## WSGI throughput: ours vs gunicorn and waitress",
        "",
        (
            f"Machine: {machine()}. wrk -t2 -c64 -d{duration}s --latency on 127.0.0.1, "
            "median of the rounds (servers rotated each round), "
            f"after a {WARMUP_SECONDS}s warm-up. gunicorn and ours: {WORKERS} workers "
            f"(gthread and ours x {THREADS} threads); waitress: 1 process x {THREADS} "
            "threads. wrk and the servers share the 2 cores. Ratio = requests/s vs "
            "gunicorn gthread. CPU us/req: user+system CPU of every server process per "
            "request (independent of other load). USS/RSS: median per serving process "
            "after the load."
        ),
    ]
    apps = [a for a in APPS if any(r["app"] == a for r in rows)]
    for app in apps:
        for mode in ("keep-alive", "close"):
            base = next((r for r in rows if r["app"] == app and r["server"] == BASELINE), None)
            base_rps = base[mode]["requests_per_s"] if base else float("nan")  # type: ignore[index]
            lines = []
            for row in (r for r in rows if r["app"] == app):
                res = row[mode]
                lines.append(
                    [
                        str(row["server"]),
                        fmt(res["requests_per_s"]),  # type: ignore[index]
                        ratio(res["requests_per_s"], base_rps),  # type: ignore[index]
                        fmt(res["p50_ms"]),  # type: ignore[index]
                        fmt(res["p99_ms"]),  # type: ignore[index]
                        fmt(res["cpu_us"]),  # type: ignore[index]
                        f"{res['errors']} {res['error_detail']}".strip(),  # type: ignore[index]
                        fmt(row["uss_mib"]),  # type: ignore[arg-type]
                        fmt(row["rss_mib"]),  # type: ignore[arg-type]
                    ]
                )
            headers = ["server", "req/s", "vs gthread", "p50 ms", "p99 ms", "CPU us/req", "errors"]
            headers += ["USS MiB", "RSS MiB"]
            out += ["", f"### {app}, {mode}", "", table(headers, lines)]
    out.extend(f"\nNote: {n}" for n in notes)
    return "\n".join(out) + "\n"


PLOT_SCRIPT = """
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
rows = json.load(open(sys.argv[1]))
apps = sorted({r["app"] for r in rows}, key=[r["app"] for r in rows].index)
servers = sorted({r["server"] for r in rows}, key=[r["server"] for r in rows].index)
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
for ax, mode in zip(axes, ("keep-alive", "close")):
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        values = [next((r[mode]["requests_per_s"] for r in rows
                        if r["app"] == a and r["server"] == server), 0) for a in apps]
        ax.bar([j + i * width for j in range(len(apps))], values, width, label=server)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(apps))], apps)
    ax.set_title(f"requests/s, {mode}")
axes[0].legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=90)
"""


def plot(json_path: Path, png_path: Path) -> str:
    """Draw the requests/s bars with the plot venv's matplotlib; return a note."""
    try:
        python = ensure_venv("plot")
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"plot skipped: matplotlib could not be installed ({exc})"
    done = subprocess.run(
        [str(python), "-c", PLOT_SCRIPT, str(json_path), str(png_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode:
        return f"plot failed: {done.stderr.strip()[-300:]}"
    return f"plot: {png_path.relative_to(BENCH.parent)}"


def run(servers: list[str], apps: list[str], duration: int, rounds: int) -> str:
    notes = []
    if "ours" in servers and (why := ours_available()):
        notes.append(f"ours not measured: {why}")
        servers = [s for s in servers if s != "ours"]
    if "ours" in servers:
        notes.append(how_ours_runs())
    rows = []
    for app in apps:
        per_server: dict[str, list[dict[str, object]]] = {name: [] for name in servers}
        for round_no in range(rounds):
            # Rotate the order so that background load is spread over every server.
            shift = round_no % max(len(servers), 1)
            for name in servers[shift:] + servers[:shift]:
                log(f"throughput: {name} / {app} (round {round_no + 1}/{rounds})")
                try:
                    per_server[name].append(measure_server(name, app, duration))
                except (BenchError, subprocess.SubprocessError, OSError) as exc:
                    notes.append(f"{name} on {app} failed: {short(exc)}")
                    log(notes[-1])
        rows.extend(merge(runs) for runs in per_server.values() if runs)
    loads = [float(r["load"]) for r in rows]  # type: ignore[arg-type]
    if loads:
        notes.append(
            f"1-minute load average before the runs: {min(loads):.1f} to {max(loads):.1f} "
            "(it counts the threads of the benchmark's own previous run; compare it with "
            "a quiet run rather than with the core count)"
        )
    stamp = time.strftime("%Y-%m-%d")
    json_path = results_dir() / f"wsgi-throughput-{stamp}.json"
    json_path.write_text(json.dumps(rows, indent=1))
    if rows:
        notes.append(plot(json_path, results_dir() / f"wsgi-throughput-{stamp}.png"))
    return render(rows, duration, notes)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="median over rounds")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--apps", default=",".join(APPS))
    args = parser.parse_args(argv)
    servers, apps = args.servers.split(","), args.apps.split(",")
    for name, given, known in (("--servers", servers, SERVERS), ("--apps", apps, APPS)):
        unknown = [item for item in given if item not in known]
        if unknown:
            parser.error(f"{name}: unknown {unknown}; choose from {', '.join(known)}")
    text = run(servers, apps, args.duration, args.rounds)
    print(text)
    return text


if __name__ == "__main__":
    main()
