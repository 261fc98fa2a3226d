"""cotyledon.partition on real backends: three "hosts" (three ServiceManagers in separate
process trees, 2 workers each) split 1,000 keys through a real Redis server, and two hosts
through tooz's file backend.

Every worker appends its owned-key set to a file every 50 ms (tests/support/partition_host.py);
the tests judge those samples: every key owned exactly once by the live workers, and no
two workers holding a key over overlapping intervals at any time of the test.
The timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("tooz", reason="cotyledon[partition] (tooz) is not installed")

from tests.support import redis_server
from tests.support.partition_samples import SampleLog
from tests.support.processes import Program, pid_alive, wait_for

pytestmark = pytest.mark.timeout(90)
redis = redis_server.redis  # the fixture

HOST = str(Path(__file__).resolve().parents[1] / "support" / "partition_host.py")
KEYS = 1000
LEASE = 2.0
HEARTBEAT = 0.5
TIMES = ("--lease", str(LEASE), "--heartbeat", str(HEARTBEAT))
SETTLE_TIMEOUT = 30.0  # generous: the machine is shared; the timings are printed


def start_host(
    program: type[Program], url: str, group: str, samples: Path
) -> tuple[Program, list[int]]:
    """Start one host; return it and its two workers' pids once both sample."""
    prog = program([sys.executable, HOST, url, group, str(samples), "--keys", str(KEYS), *TIMES])
    pids = [int(prog.wait_line(r"^worker \S+ pid=(\d+) ready$").group(1)) for _ in range(2)]
    return prog, pids


def settle(log: SampleLog, pids: list[int], since: float, what: str) -> float:
    """Wait until ``pids`` own every key exactly once; return how long after ``since``
    the last key was owned again (from the samples)."""

    def done() -> bool:
        log.poll()
        return log.exactly_once(pids, since=time.time() - 0.2)

    wait_for(done, timeout=SETTLE_TIMEOUT, what=what)
    return log.covered_at(pids, since) - since


def no_double_claims(log: SampleLog) -> None:
    log.poll()
    problems = log.double_claims()
    assert not problems, "\n".join(problems[:20])


def report(name: str, seconds: float) -> None:
    sys.stdout.write(f"\n[partition timing] {name}: {seconds:.2f}s\n")


def stopped_claiming_lines(prog: Program, start: int) -> int:
    """Lines (from line ``start`` on) where this host's workers (member ids hold the
    master pid) stopped claiming."""
    lines = prog.output().splitlines()[start:]
    return sum(1 for line in lines if f":{prog.pid}:" in line and "stopped claiming" in line)


def test_three_hosts_on_redis(program, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    samples = tmp_path / "samples"
    samples.mkdir()
    log = SampleLog(str(samples), KEYS)
    t_start = time.time()
    hosts = [start_host(program, redis.url, "three", samples) for _ in range(3)]
    (_, a_pids), (b, b_pids), (c, c_pids) = hosts
    every = a_pids + b_pids + c_pids
    report(
        "3 hosts started -> 1,000 keys owned exactly once", settle(log, every, t_start, "start")
    )

    # Redis stopped for 5 s, then restarted (empty): nobody claims while it is down,
    # every key is owned again after, and never twice.
    t_down = time.time()
    marks = [len(prog.output().splitlines()) for prog, _ in hosts]
    redis.stop()
    wait_for(
        lambda: log.poll() or log.none_owned(every, since=time.time() - 0.2),
        timeout=SETTLE_TIMEOUT,
        what="every worker to stop claiming while redis is down",
    )
    t_none = time.time()
    report("redis down -> no worker claims anything", t_none - t_down)
    time.sleep(max(0.0, 5.0 - (time.time() - t_down)))  # the outage lasts 5 s
    t_up = time.time()
    redis.start()
    report("redis back (empty) -> every key owned again", settle(log, every, t_up, "recovery"))
    for (prog, pids), mark in zip(hosts, marks, strict=True):  # once per worker and outage
        assert stopped_claiming_lines(prog, mark) == len(pids), prog.output()
    no_double_claims(log)

    # Graceful stop of host C: it leaves the group, A and B take over at once.
    t_stop = time.time()
    c.signal(signal.SIGTERM)
    report(
        "host C stopped gracefully -> keys re-owned",
        settle(log, a_pids + b_pids, t_stop, "handover"),
    )
    assert c.wait(timeout=20) == 0

    # kill -9 host B's master: its workers die through the seatbelt; A takes over.
    t_kill = time.time()
    os.kill(b.pid, signal.SIGKILL)
    report("host B master kill -9 -> keys re-owned", settle(log, a_pids, t_kill, "takeover"))
    wait_for(lambda: not any(pid_alive(p) for p in b_pids), what="host B workers gone")
    no_double_claims(log)


def test_crashed_host_on_file_backend(program, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """tooz's file backend; a whole host SIGKILLed (no leave): its keys are taken over when
    its lease expires."""
    samples = tmp_path / "samples"
    samples.mkdir()
    url = f"file://{tmp_path / 'coordination'}"
    log = SampleLog(str(samples), KEYS)
    t_start = time.time()
    (a, a_pids), (b, b_pids) = (start_host(program, url, "files", samples) for _ in range(2))
    report(
        "file backend: 2 hosts started -> keys owned once",
        settle(log, a_pids + b_pids, t_start, "start"),
    )
    t_crash = time.time()
    os.killpg(b.pid, signal.SIGKILL)
    report(
        f"file backend: host B SIGKILLed (lease {LEASE:g}s, heartbeat {HEARTBEAT:g}s) -> re-owned",
        settle(log, a_pids, t_crash, "takeover after a crash"),
    )
    no_double_claims(log)
    assert a.proc.poll() is None
