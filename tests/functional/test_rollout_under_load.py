"""A progressive rollout of real forked workers under continuous load loses no request.

The test plays the master: it forks workers that share one listening socket, writes
nothing but drives ``_lifecycle.Lifecycle`` (scoreboard, rollout) through a real
``Effects`` (fork, SIGTERM, SIGKILL) and a select loop, while a client process hammers
the socket. This checks the building blocks end to end before the core wires them.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import time

import pytest

from cotyledon.wsgi._lifecycle import Lifecycle, LifecycleConfig
from cotyledon.wsgi._rollout import RolloutConfig
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus

pytestmark = pytest.mark.timeout(120)

WORKERS = 3
CLIENT = r"""
import http.client, sys
host, port = sys.argv[1], int(sys.argv[2])
ok = failed = 0
pids = set()
stop = False
while not stop:
    try:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/")
        body = conn.getresponse().read()
        conn.close()
        pids.add(int(body))
        ok += 1
    except Exception as exc:
        failed += 1
        print("failure", repr(exc), flush=True)
    if ok == 1:
        print("first", flush=True)
    if ok % 20 == 0:
        import select
        stop = bool(select.select([sys.stdin], [], [], 0)[0])
print("done", ok, failed, len(pids), flush=True)
"""


def _serve_one(conn: socket.socket) -> None:
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            return
        data += chunk
    time.sleep(0.02)  # some work: a retired worker often has a request in hand
    body = str(os.getpid()).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )


def worker(
    listener: socket.socket, board: Scoreboard, index: int, slot: int, ready_w: int
) -> None:
    """Child: accept on the shared socket until SIGTERM; exit once the request in hand is done."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    writer = board.writer(index)
    listener.settimeout(0.05)
    writer.set_status(SlotStatus.READY)
    os.write(ready_w, b"%d %d\n" % (slot, os.getpid()))
    while not stopping:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            writer.heartbeat()
            continue
        writer.request_started()
        start = time.monotonic()
        with conn, contextlib.suppress(OSError):
            _serve_one(conn)
        writer.request_finished(time.monotonic() - start, 200)
    writer.set_status(SlotStatus.DRAINING)


class Master:
    """The test's master: forks, signals, reaps; feeds the lifecycle."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.board = Scoreboard(16)
        self.ready_r, self.ready_w = os.pipe()
        self.notified: list[dict[str, object]] = []
        self.life = Lifecycle(
            LifecycleConfig(
                workers=WORKERS,
                rollout=RolloutConfig(max_surge=1, max_unavailable=1, drain_timeout=10),
                memory_interval=0,
                timeout=30,
            ),
            self,
            self.board,
        )
        self.slot_of: dict[int, int] = {}
        self._buffer = b""

    # Effects
    def start_replacement(self, slot: int, generation: int, board_index: int) -> int:
        return self.fork(slot, board_index)

    def retire(self, pid: int) -> None:
        os.kill(pid, signal.SIGTERM)

    def send_signal(self, pid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    def notify(self, **fields: object) -> None:
        self.notified.append(fields)

    # the core's part
    def fork(self, slot: int, index: int) -> int:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                os.close(self.ready_r)
                worker(self.listener, self.board, index, slot, self.ready_w)
                code = 0
            finally:
                os._exit(code)
        self.slot_of[pid] = slot
        return pid

    def boot(self, slot: int) -> None:
        index = self.life.claim_board_index(slot)
        pid = self.fork(slot, index)
        self.life.on_forked(slot, pid)

    def step(self, timeout: float = 0.1) -> None:
        deadline = self.life.next_deadline()
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - time.monotonic()))
        readable, _, _ = select.select([self.ready_r], [], [], timeout)
        if readable:
            self._buffer += os.read(self.ready_r, 4096)
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                slot, pid = map(int, line.split())
                self.life.on_ready(slot, pid)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.life.on_exited(self.slot_of.pop(pid), pid, os.waitstatus_to_exitcode(status))
        self.life.on_tick()

    def run_until(self, predicate: object, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "timed out"
            self.step()

    def close(self) -> None:
        for pid in list(self.slot_of):
            self.send_signal(pid, signal.SIGKILL)
        for pid in list(self.slot_of):
            os.waitpid(pid, 0)
        os.close(self.ready_r)
        os.close(self.ready_w)
        self.listener.close()
        self.board.close()


CLIENTS = 3


def test_sighup_rollout_under_load_loses_no_request() -> None:
    master = Master()
    clients: list[subprocess.Popen[str]] = []
    outputs = []
    try:
        for slot in range(WORKERS):
            master.boot(slot)
        master.run_until(lambda: len(master.life.rollout.current()) == WORKERS)
        old = set(master.life.rollout.current().values())
        host, port = master.listener.getsockname()
        for _ in range(CLIENTS):
            client = subprocess.Popen(
                [sys.executable, "-c", CLIENT, host, str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            clients.append(client)
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "first"
        master.life.request_rollout("SIGHUP")
        master.run_until(lambda: not master.life.rollout.active)
        new = set(master.life.rollout.current().values())
        served = master.board.totals().requests
        master.run_until(lambda: master.board.totals().requests > served + 50)
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("stop\n")
            client.stdin.flush()
        outputs = [client.communicate(timeout=60)[0] for client in clients]
    finally:
        for client in clients:
            if client.poll() is None:
                client.kill()
                client.communicate()
        master.close()
    out = "\n".join(outputs)
    done = [line.split() for line in out.splitlines() if line.startswith("done")]
    assert len(done) == CLIENTS, out
    assert sum(int(d[2]) for d in done) == 0, out  # no failed request
    assert sum(int(d[1]) for d in done) > 50
    assert max(int(d[3]) for d in done) > WORKERS  # answers from old and new workers
    assert not old & new
    assert len(new) == WORKERS
    assert master.life.restarts == {"reload": WORKERS}
    assert master.notified[0]["RELOADING"] == 1
    assert master.notified[-1]["READY"] == 1
