"""What a real master tells a fake PID 1 over its life (examples/systemd/notify_service.py):
sender pid, order, READY after the workers' own readiness stamps, RELOADING's monotonic
time, STOPPING before exit, watchdog cadence and health, and the workers' environment."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

import cotyledon
from tests.support.fake_notify import FakeNotifySocket, Message
from tests.support.processes import Program, wait_for

if not hasattr(cotyledon, "ServiceManager"):  # the core lands in parallel with this file
    pytest.skip("cotyledon.ServiceManager is not there yet", allow_module_level=True)

WATCHDOG_USEC = 400_000  # pings expected every 0.2 s
HELLO = "examples.wsgi.hello:app"
PING = WATCHDOG_USEC / 2_000_000


@pytest.fixture(params=["path", "abstract"])
def pid1(request: pytest.FixtureRequest) -> Iterator[FakeNotifySocket]:
    with FakeNotifySocket(request.param) as server:
        yield server


@dataclass
class Stamp:
    worker: int
    pid: int
    at: float


class Demo:
    """The example program under a fake PID 1."""

    def __init__(
        self, program: type[Program], pid1: FakeNotifySocket, *args: str, **env: str
    ) -> None:
        self.pid1 = pid1
        self.prog = program.example("systemd/notify_service.py", *args, env=pid1.env(**env))
        self.pid = int(self.prog.wait_line(r"^master pid=(\d+)").group(1))

    def stamps(self, count: int) -> list[Stamp]:
        """The next ``count`` readiness stamps the workers print at the end of __init__."""
        pattern = r"^worker (\d+) ready pid=(\d+) at=([\d.]+)"
        found = [self.prog.wait_line(pattern) for _ in range(count)]
        return [Stamp(int(m.group(1)), int(m.group(2)), float(m.group(3))) for m in found]

    def ready(self, start: int = 0) -> Message:
        return self.pid1.wait_key("READY", "1", start=start)

    def assert_only_master_spoke(self) -> None:
        senders = {m.pid for m in self.pid1.snapshot()}
        assert senders <= {self.pid}, f"datagrams from {senders - {self.pid}}"


def lifecycle(messages: list[Message]) -> list[str]:
    keys = ("READY", "RELOADING", "STOPPING")
    return [key for m in messages for key in keys if key in m.fields]


@pytest.mark.timeout(90)
def test_ready_only_after_every_worker_started(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(program, pid1, "--workers", "3", "--init-delay", "0.5")
    ready = demo.ready()
    stamps = demo.stamps(3)
    assert sorted(s.worker for s in stamps) == [0, 1, 2]
    assert all(s.at < ready.received for s in stamps), (stamps, ready.received)
    assert ready.pid == demo.pid
    assert re.search(r"\b3/3\b", ready.fields.get("STATUS", "")), ready.fields
    assert lifecycle(pid1.snapshot()) == ["READY"]
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_reload_is_announced_with_monotonic_time(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(program, pid1, "--workers", "2", "--init-delay", "0.3")
    first_ready = demo.ready()
    old = demo.stamps(2)
    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    demo.prog.signal(signal.SIGHUP)
    reloading = pid1.wait_key("RELOADING", "1", start=first_ready.order + 1)
    usec = int(reloading.fields["MONOTONIC_USEC"])
    assert before_usec <= usec <= int(reloading.received * 1_000_000) + 1
    again = demo.ready(start=reloading.order + 1)
    new = demo.stamps(2)
    assert {s.pid for s in new}.isdisjoint({s.pid for s in old}), "workers were not restarted"
    assert all(s.at < again.received for s in new), (new, again.received)
    assert lifecycle(pid1.snapshot()) == ["READY", "RELOADING", "READY"]
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_stopping_is_sent_before_exit(program: type[Program], pid1: FakeNotifySocket) -> None:
    demo = Demo(program, pid1, "--workers", "2")
    demo.ready()
    demo.prog.signal(signal.SIGTERM)
    stopping = pid1.wait_key("STOPPING", "1")
    assert stopping.pid == demo.pid
    assert demo.prog.wait(timeout=30) == 0
    assert lifecycle(pid1.snapshot()) == ["READY", "STOPPING"]
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_long_graceful_stop_asks_systemd_for_more_time(program: type[Program]) -> None:
    """A drain longer than the master's extension interval (5 s) gets EXTEND_TIMEOUT_USEC
    while it lasts, after STOPPING=1, and the program still exits cleanly. (One address
    kind is enough here: the test is slow by nature.)"""
    with FakeNotifySocket("abstract") as pid1:
        demo = Demo(
            program, pid1, "--workers", "1", "--slow-stop", "6", "--graceful-timeout", "60"
        )
        demo.ready()
        demo.prog.signal(signal.SIGTERM)
        stopping = pid1.wait_key("STOPPING", "1")
        demo.prog.wait_line(r"^worker 0 draining")
        extend = pid1.wait_key("EXTEND_TIMEOUT_USEC", start=stopping.order + 1, timeout=30)
        assert int(extend.fields["EXTEND_TIMEOUT_USEC"]) > 0
        assert extend.pid == demo.pid
        assert demo.prog.wait(timeout=60) == 0
        assert lifecycle(pid1.snapshot()) == ["READY", "STOPPING"]
        demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_watchdog_pings_at_half_the_timeout(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(program, pid1, "--workers", "1", WATCHDOG_USEC=str(WATCHDOG_USEC))
    demo.ready()
    wait_for(lambda: len(pid1.with_key("WATCHDOG")) >= 6, timeout=30, what="6 pings")
    pings = pid1.with_key("WATCHDOG")
    assert {m.raw for m in pings} == {b"WATCHDOG=1"}
    # Not spammed: six pings span at least a few intervals (loose, never an upper bound).
    assert pings[5].received - pings[0].received >= 5 * PING * 0.5
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_watchdog_pings_stop_while_the_master_is_frozen(program: type[Program]) -> None:
    """The pings come from the master's own loop: a stopped (wedged) master sends none,
    and they resume when it runs again."""
    with FakeNotifySocket("abstract") as pid1:
        demo = Demo(program, pid1, "--workers", "1", WATCHDOG_USEC=str(WATCHDOG_USEC))
        demo.ready()
        wait_for(lambda: len(pid1.with_key("WATCHDOG")) >= 2, timeout=30, what="pings")
        demo.prog.signal(signal.SIGSTOP)
        try:
            wait_for(lambda: no_ping_for(pid1, 5 * PING, 0), timeout=30, what="silence")
            frozen_at = len(pid1.snapshot())
        finally:
            demo.prog.signal(signal.SIGCONT)
        pid1.wait_key("WATCHDOG", "1", start=frozen_at)
        demo.assert_only_master_spoke()


def no_ping_for(pid1: FakeNotifySocket, seconds: float, since: float) -> bool:
    """True once ``seconds`` have passed since the later of ``since`` and the last ping."""
    pings = pid1.with_key("WATCHDOG")
    last = max([since, *(m.received for m in pings)])
    return time.monotonic() - last >= seconds


@pytest.mark.timeout(90)
def test_watchdog_of_another_pid_is_not_ours(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(
        program, pid1, "--workers", "1", WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID="1"
    )
    ready = demo.ready()
    # Five intervals of silence after READY: the watchdog belongs to pid 1, not to us.
    wait_for(lambda: no_ping_for(pid1, 5 * PING, ready.received), timeout=30, what="silence")
    assert pid1.with_key("WATCHDOG") == []


@pytest.mark.timeout(90)
def test_unhealthy_worker_stops_the_watchdog(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    with tempfile.NamedTemporaryFile("w", prefix="cth-", dir="/tmp") as health:
        demo = Demo(
            program,
            pid1,
            "--workers",
            "2",
            "--health-file",
            health.name,
            WATCHDOG_USEC=str(WATCHDOG_USEC),
        )
        demo.ready()
        wait_for(lambda: len(pid1.with_key("WATCHDOG")) >= 2, timeout=30, what="pings")
        with open(health.name, "w") as f:
            f.write("fail database unreachable")
        demo.prog.wait_line(r"^worker \d health fail database unreachable")
        demo.prog.wait_line(r"^worker \d health fail database unreachable")
        # The pings stop: silence for five intervals (fails on timeout if they go on).
        wait_for(lambda: no_ping_for(pid1, 5 * PING, 0), timeout=30, what="pings to stop")
        stopped_at = len(pid1.snapshot())
        with open(health.name, "w") as f:
            f.write("ok")
        pid1.wait_key("WATCHDOG", "1", start=stopped_at)
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_worker_status_is_relayed_by_the_master(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(program, pid1, "--workers", "2", "--status", "warming\\ncache")
    demo.ready()
    relayed = [pid1.wait_key("X_WORKER", str(worker)) for worker in (0, 1)]
    for message in relayed:
        assert message.fields["STATUS"] == "warming\\ncache"
        assert message.pid == demo.pid
    assert demo.prog.wait_line(r"^worker \d status relayed=(\w+)").group(1) == "True"
    demo.assert_only_master_spoke()


@pytest.mark.timeout(90)
def test_workers_and_their_subprocesses_see_no_systemd_variables(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    demo = Demo(
        program,
        pid1,
        "--workers",
        "2",
        "--show-env",
        WATCHDOG_USEC="30000000",
        LISTEN_PID="1",
        LISTEN_FDS="1",
        LISTEN_FDNAMES="web",
    )
    demo.ready()
    for _ in range(2):
        line = demo.prog.wait_line(r"^child-env (\[.*\]) worker=\d")
        assert json.loads(line.group(1)) == []
    # ... while the master kept NOTIFY_SOCKET and its watchdog (30 s: one ping at most).
    assert demo.pid1.snapshot()[0].pid == demo.pid
    assert os.environ.get("NOTIFY_SOCKET") != pid1.address  # the test's own env untouched


@pytest.mark.timeout(90)
def test_wsgi_reload_is_reloading_until_every_worker_was_replaced(
    program: type[Program], pid1: FakeNotifySocket
) -> None:
    """cotyledon-wsgi replaces its workers one by one: RELOADING until the last one."""
    prog = program(
        [sys.executable, "-m", "cotyledon.wsgi", "-w", "3", "-b", "127.0.0.1:0", HELLO],
        env=pid1.env(),
    )
    ready = pid1.wait_key("READY", "1")
    assert ready.fields["STATUS"] == "3/3 workers running (wsgi 3/3)"
    before = set(prog.descendants())
    prog.signal(signal.SIGHUP)
    reloading = pid1.wait_key("RELOADING", "1", start=ready.order + 1)
    again = pid1.wait_key("READY", "1", start=reloading.order + 1)
    assert again.fields["STATUS"] == "3/3 workers running (wsgi 3/3)"
    between = pid1.snapshot()[reloading.order + 1 : again.order]
    progress = [m.fields["STATUS"] for m in between if "STATUS" in m.fields]
    assert progress
    assert all(text.startswith("reloading: ") for text in progress), progress
    # READY came once all three slots had a new worker (the old ones were told to stop).
    for _ in range(3):
        prog.wait_line(r"wsgi worker \d replaced: pid \d+ is serving", 10)
    prog.wait_line(r"Every wsgi worker was replaced", 10)
    wait_for(lambda: not set(prog.descendants()) & before, 30)
    assert lifecycle(pid1.snapshot()) == ["READY", "RELOADING", "READY"]
    assert {m.pid for m in pid1.snapshot()} == {prog.pid}
