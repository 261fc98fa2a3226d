"""PartitionedService in-process against a real Redis server and tooz's file backend: the
public API, the log lines, the backend outage, and bad input at start (one clear error
line, bounded retries, exit status 2); plus one real program whose worker cannot start.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tooz", reason="cotyledon[partition] (tooz) is not installed")

from tooz import coordination

from cotyledon.partition import EXIT_START_FAILED, PartitionedService
from tests.support import redis_server
from tests.support.processes import wait_for

pytestmark = pytest.mark.timeout(60)
redis = redis_server.redis  # the fixture

HOST = str(Path(__file__).resolve().parents[1] / "support" / "partition_host.py")
KEYS = [f"k{i}" for i in range(200)]
LOGGER = "cotyledon.partition"


class Worker(PartitionedService):
    start_attempts = 3

    def __init__(self, worker_id: int, url: str, **kwargs: Any) -> None:
        self.rebalanced = threading.Event()
        super().__init__(worker_id, url, "unit", **kwargs)

    def on_rebalance(self) -> None:
        self.rebalanced.set()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers built by the test; every one is terminated at the end."""
    made: list[Worker] = []
    yield made
    for worker in made:
        worker.terminate()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.ERROR
    ]


# -- bad input at start -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("nope://host", "unknown coordination backend 'nope' in 'nope://host' (installed: "),
        ("redis://[bad", "malformed coordination URL 'redis://[bad': Invalid IPv6 URL"),
        ("redis://h:port", "malformed coordination URL 'redis://h:port': Port could not be"),
        ("localhost:6379", "unknown coordination backend 'localhost' in 'localhost:6379'"),
        ("127.0.0.1:6379", "malformed coordination URL '127.0.0.1:6379': no backend scheme"),
        ("file:///tmp/x", "the 'file' backend counts leases in whole seconds: 'lease' must"),
    ],
)
def test_bad_url_one_error_line_and_exit(caplog, url, expected) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, LOGGER)
    with pytest.raises(SystemExit) as info:
        Worker(0, url, lease=2.5, heartbeat=0.5)
    assert info.value.code == EXIT_START_FAILED
    (line,) = errors(caplog)
    assert expected in line
    assert not any(r.exc_info for r in caplog.records)


def test_unreachable_backend_bounded_retries_then_exit(caplog, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, LOGGER)
    calls = []
    real = coordination.get_coordinator
    monkeypatch.setattr(
        coordination, "get_coordinator", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    url = f"redis://:secret@127.0.0.1:{closed_port()}"
    with pytest.raises(SystemExit) as info:
        Worker(0, url, lease=2, heartbeat=0.2)
    assert info.value.code == EXIT_START_FAILED
    assert len(calls) == Worker.start_attempts
    (line,) = errors(caplog)
    assert "cannot join partition group 'unit' at redis://:***@127.0.0.1:" in line
    assert "after 3 attempts: ToozConnectionError: " in line
    assert "secret" not in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lease": 0}, "'lease' must be a number of seconds > 0, not: 0"),
        ({"heartbeat": -1}, "'heartbeat' must be a number of seconds > 0, not: -1"),
        ({"lease": 1, "heartbeat": 1}, "'heartbeat' (1) must be shorter than 'lease' (1)"),
        ({"weight": 0}, "'weight' must be an int >= 1, not: 0"),
        ({"weight": 1.5}, "'weight' must be an int >= 1, not: 1.5"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Worker(0, "redis://127.0.0.1:1", **kwargs)


def test_worker_that_cannot_start_is_respawned_by_the_master(program) -> None:  # type: ignore[no-untyped-def]
    """Real processes: one error line per start, no traceback, the restart budget applies."""
    url = f"redis://127.0.0.1:{closed_port()}"
    prog = program([sys.executable, HOST, url, "g", "/nonexistent", "--workers", "1"])
    pattern = r"^ERROR:cotyledon.partition:\S+:sampler:0: cannot join partition group 'g'"
    prog.wait_line(pattern, timeout=30)
    prog.wait_line(pattern, timeout=30)  # the master started it again
    assert "Traceback" not in prog.output()


# -- on a real backend ------------------------------------------------------------------


def test_api_on_redis(redis, workers, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.INFO, LOGGER)
    a = Worker(0, redis.url, lease=1, heartbeat=0.2, weight=3)
    workers.append(a)
    assert a.member_id.endswith(":Worker:0")
    assert a.owned(KEYS) == []  # settling: one lease before the first claim
    wait_for(lambda: a.owned(KEYS) == KEYS, what="a alone owns every key")
    assert a.members() == [a.member_id]
    assert a.rebalanced.is_set()
    a.rebalanced.clear()

    b = Worker(1, redis.url, lease=1, heartbeat=0.2)
    workers.append(b)
    wait_for(lambda: b.owned(KEYS) and len(a.owned(KEYS)) < len(KEYS), what="b claims its share")
    wait_for(lambda: sorted(a.owned(KEYS) + b.owned(KEYS)) == sorted(KEYS), what="split")
    assert len(a.owned(KEYS)) > len(b.owned(KEYS))  # weight 3 against 1
    assert a.members() == sorted([a.member_id, b.member_id])
    assert a.rebalanced.wait(5)
    assert all(a.owns(k) != b.owns(k) for k in KEYS)

    b.terminate()  # leaves at once: a takes everything back within a heartbeat
    assert b.owned(KEYS) == []
    wait_for(lambda: a.owned(KEYS) == KEYS, what="a owns every key again")
    assert a.members() == [a.member_id]
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert f"{b.member_id} left partition group 'unit'" in messages
    assert f"{a.member_id}: member {b.member_id} joined" in messages


def test_redis_outage_stops_claims_logs_once_and_recovers(redis, workers, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG, LOGGER)
    a = Worker(0, redis.url, lease=1, heartbeat=0.2)
    workers.append(a)
    wait_for(lambda: a.owned(KEYS) == KEYS, what="claiming")
    redis.stop()
    wait_for(lambda: not a.owns("k1"), what="claims stop")
    wait_for(lambda: any("stopped claiming" in r.getMessage() for r in caplog.records), what="log")
    # The outage goes on for many failed heartbeats (two more leases): still one line.
    last_good = a._state.heartbeat_at
    assert last_good is not None
    wait_for(lambda: time.monotonic() - last_good > 3, what="a long outage")
    redis.start()
    wait_for(lambda: a.owned(KEYS) == KEYS, what="claims again after recovery")
    lost = [r for r in caplog.records if "stopped claiming" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].levelno == logging.WARNING
    assert "no successful heartbeat for" in lost[0].getMessage()
    assert "Connection refused" in lost[0].getMessage()


def test_file_backend(tmp_path, workers) -> None:  # type: ignore[no-untyped-def]
    url = f"file://{tmp_path}"
    a = Worker(0, url, lease=1, heartbeat=0.2)
    b = Worker(1, url, lease=1, heartbeat=0.2)
    workers.extend([a, b])
    wait_for(lambda: sorted(a.owned(KEYS) + b.owned(KEYS)) == sorted(KEYS), what="split")
    assert a.owned(KEYS)
    assert b.owned(KEYS)


def test_example(program, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """examples/partition.py on the file backend: two workers split the 20 feeds."""
    prog = program.example("partition.py", f"file://{tmp_path}", "2")
    latest: dict[str, tuple[int, int]] = {}

    def split() -> bool:
        match = prog.wait_line(r"^(\S+): (\d+) members, I own (\d+) feeds$")
        latest[match.group(1)] = (int(match.group(2)), int(match.group(3)))
        values = list(latest.values())
        return (
            len(values) == 2 and all(m == 2 for m, _ in values) and sum(n for _, n in values) == 20
        )

    wait_for(split, what="two workers owning 20 feeds between them")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    assert prog.output().count("left partition group 'pollers'") == 2


def test_core_never_imports_partition() -> None:
    code = (
        "import sys, cotyledon, cotyledon.wsgi\n"
        "print(sorted(m for m in sys.modules if 'tooz' in m or 'partition' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hung_redis_stops_claims_and_recovers(redis, workers, caplog) -> None:  # type: ignore[no-untyped-def]
    """A Redis that accepts connections but never answers (SIGSTOP): requests time out
    after one heartbeat instead of hanging, claims stop, and come back after SIGCONT."""
    caplog.set_level(logging.INFO, LOGGER)
    a = Worker(0, redis.url, lease=1, heartbeat=0.2)
    workers.append(a)
    wait_for(lambda: a.owned(KEYS) == KEYS, what="claiming")
    redis.proc.send_signal(signal.SIGSTOP)
    try:
        wait_for(lambda: not a.owns("k1"), what="claims stop")
        wait_for(
            lambda: any("stopped claiming" in r.getMessage() for r in caplog.records), what="log"
        )
    finally:
        redis.proc.send_signal(signal.SIGCONT)
    wait_for(lambda: a.owned(KEYS) == KEYS, what="claims again after SIGCONT")
    (lost,) = [r.getMessage() for r in caplog.records if "stopped claiming" in r.getMessage()]
    assert "Timeout" in lost, lost
