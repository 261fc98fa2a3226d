"""Progressive worker replacement under real load: SIGHUP, recycling, a failed replacement.

The server runs as a real process tree; load threads keep keep-alive connections busy on
127.0.0.1 during the whole test, and every request must get its 200: a new worker accepts
before the old one stops, and the old one answers what it has been sent before closing.
"""

from __future__ import annotations

import re
import signal
import sys
from pathlib import Path

import pytest

from tests.functional.test_wsgi_status import status
from tests.functional.wsgi_helpers import Load, RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(120)

LISTENING = r"Listening at http://127\.0\.0\.1:(\d+) "


def start(program: type[Program], *args: str) -> tuple[Program, tuple[str, int]]:
    prog = program([sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", *args])
    port = int(prog.wait_line(LISTENING, 30).group(1))
    return prog, ("127.0.0.1", port)


def workers(prog: Program, count: int) -> set[int]:
    """Wait until exactly ``count`` worker processes run; return their pids."""
    pids = wait_for(lambda: len(prog.workers()) == count and prog.workers(), 30)
    assert isinstance(pids, list)
    return set(pids)


def replaced(prog: Program, old: set[int], count: int) -> set[int]:
    """Wait until none of ``old`` is alive and ``count`` workers run; return them."""
    pids = wait_for(
        lambda: (d := set(prog.workers())) and not d & old and len(d) == count and d,
        60,
        "every old worker replaced",
    )
    assert isinstance(pids, set)
    return pids


def test_sighup_under_load_replaces_every_worker_and_loses_no_request(
    program: type[Program],
) -> None:
    prog, address = start(program, "-w", "2", "-t", "4", "examples.wsgi.sleep_app:app")
    generation = workers(prog, 2)
    with Load(address, clients=8, path="/?ms=5") as load:
        wait_for(lambda: load.served() > 50, 30)
        for _ in range(3):
            prog.signal(signal.SIGHUP)
            generation = replaced(prog, generation, 2)
            count = load.served()
            wait_for(lambda: load.served() > count + 50, 30, "new serve")  # noqa: B023
    assert load.failures == []
    # The last workers served (keep-alive clients stick to a worker: not always both).
    assert {int(pid) for pid in load.pids} & generation
    prog.wait_line(r"Every wsgi worker was replaced", 5)
    assert "aborted" not in prog.output()
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0


def test_max_requests_recycles_workers_one_by_one_under_load(program: type[Program]) -> None:
    prog, address = start(
        program,
        "-w",
        "2",
        "--max-requests",
        "40",
        "--max-requests-jitter",
        "10",
        "examples.wsgi.sleep_app:app",
    )
    first = workers(prog, 2)
    with Load(address, clients=6, path="/?ms=1") as load:
        replaced(prog, first, 2)
    assert load.failures == []
    line = prog.wait_line(r"Replacing wsgi worker \d \(pid (\d+)\) \(max_requests: ", 5)
    assert int(line.group(1)) in first
    assert re.search(r"due for recycling: served \d+ requests >= limit (4\d|50)", prog.output())


def test_max_age_recycles_a_worker(program: type[Program]) -> None:
    prog, address = start(program, "--max-age", "1", "examples.wsgi.sleep_app:app")
    (first,) = workers(prog, 1)
    replaced(prog, {first}, 1)
    prog.wait_line(r"Replacing wsgi worker 0 \(pid \d+\) \(max_age: age 1\.\d+s", 10)
    with RawClient(address) as client:
        assert client.get("/?ms=0").status == 200


MEMORY_HOG = """
import os

hoard = []


def app(environ, start_response):
    hoard.append(bytearray(8 * 1024 * 1024))  # 8 MiB more private memory per request
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def test_max_memory_recycles_the_worker_that_allocates(
    program: type[Program], tmp_path: Path
) -> None:
    (tmp_path / "memory_hog.py").write_text(MEMORY_HOG)
    prog, address = start(
        program,
        "--pythonpath",
        str(tmp_path),
        "--max-memory",
        "64M",
        "--memory-check-interval",
        "0.2",
        "memory_hog:app",
    )
    (first,) = workers(prog, 1)
    with RawClient(address) as client:
        for _ in range(10):
            assert client.get("/").status == 200
    replaced(prog, {first}, 1)
    prog.wait_line(r"\(max_memory: memory \d+\.\d MiB > limit 64\.0 MiB\)", 10)


BREAKS_ON_RELOAD = """
import os
from pathlib import Path

here = Path(__file__).parent
if (here / "broken").exists():
    raise RuntimeError("the new code does not import")
(here / f"loaded-{os.getpid()}").touch()


def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_a_replacement_that_cannot_start_keeps_the_old_workers_serving(
    program: type[Program], tmp_path: Path
) -> None:
    (tmp_path / "fragile.py").write_text(BREAKS_ON_RELOAD)
    prog, address = start(
        program, "-w", "2", "--no-preload", "--pythonpath", str(tmp_path), "fragile:app"
    )
    old = workers(prog, 2)
    loaded = {f"loaded-{pid}" for pid in old}
    wait_for(lambda: loaded <= {p.name for p in tmp_path.iterdir()}, 30, "the good code")
    (tmp_path / "broken").touch()
    with Load(address, clients=4) as load:
        prog.signal(signal.SIGHUP)
        prog.wait_line(r"Replacement of wsgi worker 0 aborted: the new worker exited", 30)
        served = load.served()
        wait_for(lambda: load.served() > served + 20, 30, "the old workers still serving")
    assert load.failures == []
    assert set(prog.workers()) == old  # nobody else was touched, no retry loop
    assert "the new code does not import" in prog.output()
    # Fixed code: the next SIGHUP goes through.
    (tmp_path / "broken").unlink()
    prog.signal(signal.SIGHUP)
    replaced(prog, old, 2)


def test_sigterm_lets_every_in_flight_request_finish(program: type[Program]) -> None:
    """Twelve slow requests being served when SIGTERM comes: all of them are answered."""
    prog, address = start(
        program, "-w", "2", "-t", "12", "--status-port", "0", "examples.wsgi.sleep_app:app"
    )
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    workers(prog, 2)
    clients = [RawClient(address) for _ in range(12)]
    try:
        for client in clients:
            client.send(b"GET /?ms=2000 HTTP/1.1\r\nHost: t\r\n\r\n")
        wait_for(lambda: status(status_port)["in_flight"] == 12, 10, "12 requests in flight")
        prog.signal(signal.SIGTERM)
        responses = [client.response() for client in clients]
    finally:
        for client in clients:
            client.close()
    assert [(r.status, r.body) for r in responses] == [(200, b"slept 2000 ms\n")] * 12
    assert all(r.header("connection") == "close" for r in responses)
    assert prog.wait(30) == 0
