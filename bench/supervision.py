"""Supervision benchmark (issue 2): our core side by side with cotyledon 2.2.0, one run.

Runs bench/_sup_prog.py under each implementation and measures, from outside:
start latency (exec -> every worker in run()), graceful stop (SIGTERM -> every process
gone), respawn latency after SIGKILL of one worker, a burst of respawns in a row,
reload latency (SIGHUP -> every worker replaced, default reload()), idle wake-ups of
the master and a worker (context switches, all threads), and memory (RSS/USS).
Medians of a few repeats; prints a table with the ratio ours / 2.2.0.

Ours is the package importable by the Python running this script (the repo's .venv);
2.2.0 is installed from PyPI into bench/.venvs/cotyledon22.
Usage: python bench/supervision.py [--repeats N] [--sizes 1,4,16,64]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    BENCH,
    RESULTS,
    BenchError,
    ConditionTimeout,
    Server,
    children_of,
    context_switches,
    cpu_seconds,
    ensure_venv,
    fmt,
    log,
    machine,
    median,
    memory_kib,
    ratio,
    session_pids,
    short,
    table,
    wait_for,
    wait_pids_gone,
)

PROGRAM = BENCH / "_sup_prog.py"
IDLE_SECONDS = 5.0
START_TIMEOUT = 60.0


class Supervised:
    """One implementation's program running N workers, and the FIFO its workers report to."""

    def __init__(self, python: str, workers: int, label: str) -> None:
        self.workers = workers
        self._dir = tempfile.mkdtemp(prefix="cotyledon-bench-")
        fifo = os.path.join(self._dir, "run.fifo")
        os.mkfifo(fifo)
        self._rfd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        # Our own write end keeps the FIFO from reporting EOF between workers.
        self._wfd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        self._buf = b""
        self.t0 = time.monotonic()
        self.server = Server(
            [python, str(PROGRAM), str(workers)],
            RESULTS / "logs" / f"supervision-{label}-{workers}.log",
            env={"BENCH_FIFO": fifo},
        )
        self.master = self.server.pid

    def next_pids(self, count: int, timeout: float = START_TIMEOUT) -> list[tuple[int, float]]:
        """Wait for ``count`` workers to announce run(); return (pid, monotonic time) each."""
        found: list[tuple[int, float]] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            left = deadline - time.monotonic()
            if left <= 0 or self.server.proc.poll() is not None:
                msg = f"{len(found)}/{count} workers reported in {timeout}s"
                raise BenchError(f"{msg}; log:\n{self.server.output()[-2000:]}")
            ready, _, _ = select.select([self._rfd], [], [], min(left, 0.5))
            if not ready:
                continue
            now = time.monotonic()
            with contextlib.suppress(BlockingIOError):
                self._buf += os.read(self._rfd, 65536)
            *lines, self._buf = self._buf.split(b"\n")
            found.extend((int(line), now) for line in lines if line)
        return found

    def workers_now(self) -> list[int]:
        return children_of(self.master)

    def close(self) -> None:
        self.server.stop()
        os.close(self._rfd)
        os.close(self._wfd)
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(self._dir, "run.fifo"))
            os.rmdir(self._dir)


def measure_start_stop(python: str, label: str, workers: int) -> tuple[float, float, float]:
    """(start latency, master CPU used to start, graceful stop time) in seconds."""
    run = Supervised(python, workers, label)
    try:
        reported = run.next_pids(workers)
        start = reported[-1][1] - run.t0
        cpu = cpu_seconds([run.master])
        pids = [pid for pid, _ in reported] + [run.master]
        t_term = time.monotonic()
        os.kill(run.master, signal.SIGTERM)
        stop = wait_pids_gone(pids, 30.0) - t_term
        return start, cpu, stop
    finally:
        run.close()


def measure_respawn(run: Supervised, pids: list[int]) -> tuple[float, int]:
    """SIGKILL one worker; seconds until its replacement is in run(); the new pid."""
    victim = pids[0]
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    (new_pid, t_new) = run.next_pids(1, 30.0)[0]
    pids.remove(victim)
    pids.append(new_pid)
    return t_new - t_kill, new_pid


def measure_stop_in_pause(python: str, label: str) -> float:
    """Seconds from SIGTERM to every process gone while the respawn limiter pauses.

    Kills workers of a 2-worker program until a replacement does not come within 0.5 s
    (the limiter is holding it back), then asks for a graceful stop (spec/api.md 6.8:
    upstream's 5 s sleep delays shutdown).
    """
    run = Supervised(python, 2, label + "-pause")
    try:
        pids = [pid for pid, _ in run.next_pids(2)]
        for _ in range(20):
            victim = pids.pop(0)
            os.kill(victim, signal.SIGKILL)
            try:
                pids.append(run.next_pids(1, 0.5)[0][0])
            except BenchError:
                break
        else:
            return float("nan")  # never throttled
        alive = [p for p in pids if p != victim] + [run.master]
        t_term = time.monotonic()
        os.kill(run.master, signal.SIGTERM)
        wait_pids_gone(alive, 30.0)
        # A worker forked during the shutdown would be missed by the pidfds: wait for the
        # whole session to be empty.
        wait_for(lambda: not session_pids(run.master), 30.0, "session to empty")
        return time.monotonic() - t_term
    finally:
        run.close()


def measure_reload(run: Supervised, pids: list[int]) -> float:
    """SIGHUP the master; seconds until every old worker is gone and N new are in run()."""
    old = list(pids)
    t_hup = time.monotonic()
    os.kill(run.master, signal.SIGHUP)
    new = run.next_pids(run.workers, 30.0)
    t_gone = wait_pids_gone(old, 30.0)
    pids[:] = [pid for pid, _ in new]
    return max(t_gone, new[-1][1]) - t_hup


def idle_wakeups(pids: list[int], seconds: float) -> list[float]:
    """Context switches per second of each pid over ``seconds`` of idling."""
    before = [context_switches(p) for p in pids]
    time.sleep(seconds)
    after = [context_switches(p) for p in pids]
    return [(a - b) / seconds for a, b in zip(after, before, strict=True)]


def measure_steady(python: str, label: str, repeats: int) -> dict[str, float]:
    """Everything measured on one long-lived program with 4 workers."""
    workers = 4
    # Upstream's limiter allows N forks per N seconds: wait that long between single kills.
    window = workers + 0.5
    figures: dict[str, float] = {}
    run = Supervised(python, workers, label)
    try:
        pids = [pid for pid, _ in run.next_pids(workers)]
        time.sleep(1.0)  # let start-up allocations and threads settle
        master_rss, master_uss = memory_kib(run.master)
        figures["master RSS (MiB)"] = master_rss / 1024
        figures["master USS (MiB)"] = master_uss / 1024
        figures["worker USS (MiB, median)"] = median([memory_kib(p)[1] for p in pids]) / 1024
        figures["master threads"] = len(os.listdir(f"/proc/{run.master}/task"))
        wake = idle_wakeups([run.master, *pids], IDLE_SECONDS)
        figures["master idle wake-ups/s"] = wake[0]
        figures["worker idle wake-ups/s (median)"] = median(wake[1:])

        singles = []
        for _ in range(repeats):
            time.sleep(window)
            singles.append(measure_respawn(run, pids)[0])
        figures["respawn after SIGKILL (ms)"] = median(singles) * 1000

        time.sleep(window)
        burst = [measure_respawn(run, pids)[0] for _ in range(2 * workers)]
        figures[f"{2 * workers} respawns in a row, total (s)"] = sum(burst)
        figures[f"{2 * workers} respawns in a row, slowest (s)"] = max(burst)
        figures[f"{2 * workers} respawns in a row, >1 s"] = sum(1 for b in burst if b > 1.0)

        reloads = []
        for _ in range(repeats):
            time.sleep(window)
            reloads.append(measure_reload(run, pids))
        figures["reload SIGHUP -> all replaced (ms)"] = median(reloads) * 1000
        figures["workers after reload"] = len(run.workers_now())
    finally:
        run.close()
    return figures


def measure(python: str, label: str, sizes: list[int], repeats: int) -> dict[str, float]:
    figures: dict[str, float] = {"load average (1 min) at start": os.getloadavg()[0]}
    for workers in sizes:
        starts, cpus, stops = [], [], []
        for _ in range(repeats):
            start, cpu, stop = measure_start_stop(python, label, workers)
            starts.append(start)
            cpus.append(cpu)
            stops.append(stop)
        some = f"{workers} worker{'' if workers == 1 else 's'}"
        figures[f"start, {some} (ms)"] = median(starts) * 1000
        figures[f"master CPU to start {some} (ms)"] = median(cpus) * 1000
        figures[f"graceful stop, {some} (ms)"] = median(stops) * 1000
    figures.update(measure_steady(python, label, repeats))
    pauses = [measure_stop_in_pause(python, label) for _ in range(repeats)]
    figures["graceful stop while respawn throttled (ms)"] = median(pauses) * 1000
    return figures


def ours_available() -> str | None:
    """None if our ServiceManager imports under sys.executable, else the reason."""
    probe = subprocess.run(
        [sys.executable, "-c", "import cotyledon; cotyledon.ServiceManager"],
        capture_output=True,
        text=True,
        check=False,
        cwd=BENCH,
    )
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


def run(sizes: list[int], repeats: int) -> str:
    impls = {"cotyledon 2.2.0": str(ensure_venv("cotyledon22")), "ours": sys.executable}
    results: dict[str, dict[str, float]] = {}
    notes = []
    for label, python in impls.items():
        if label == "ours" and (why := ours_available()):
            notes.append(f"ours not measured: {why}")
            continue
        log(f"supervision: measuring {label}")
        try:
            results[label] = measure(python, label.replace(" ", "-"), sizes, repeats)
        except (BenchError, ConditionTimeout, OSError) as exc:
            notes.append(f"{label} failed: {short(exc)}")
            log(f"{label} failed: {short(exc)}")
    keys: list[str] = []
    for figures in results.values():
        keys.extend(k for k in figures if k not in keys)
    theirs = results.get("cotyledon 2.2.0", {})
    ours = results.get("ours", {})
    rows = [
        [
            key,
            fmt(theirs.get(key, float("nan"))),
            fmt(ours.get(key, float("nan"))),
            ratio(ours.get(key, float("nan")), theirs.get(key, float("nan"))),
        ]
        for key in keys
    ]
    text = [
        "## Supervision: ours vs cotyledon 2.2.0",
        "",
        (
            f"Machine: {machine()}. Median of {repeats} repeats; ratio = ours / 2.2.0 "
            "(below 1 is better for times, wake-ups and memory)."
        ),
        "",
        table(["measure", "cotyledon 2.2.0", "ours", "ratio"], rows),
    ]
    text.extend(f"\nNote: {n}" for n in notes)
    return "\n".join(text) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", default="1,4,16,64")
    args = parser.parse_args(argv)
    text = run([int(s) for s in args.sizes.split(",")], args.repeats)
    print(text)
    return text


if __name__ == "__main__":
    main()
