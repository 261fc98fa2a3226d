"""A socket-activated cotyledon program: systemd owns the listening socket, we serve it.

Pair it with ``cotyledon-greeter.socket`` (``FileDescriptorName=web``), or try it without
systemd::

    systemd-socket-activate -l 127.0.0.1:8080 --fdname=web \\
        python examples/systemd/socket_service.py --name web

The master adopts the activated sockets once (:func:`cotyledon.systemd.listen_sockets`),
before the workers are forked; each worker inherits them and answers every connection
with one line, ``hello from worker <id> pid <pid> via <name>``. Connections that arrived
before the program started wait in the socket's backlog: none is lost.
"""

from __future__ import annotations

import argparse
import os
import select
import socket

import cotyledon
from cotyledon import systemd


def say(line: str) -> None:
    """One whole line per write: workers share stdout, and the tests read it."""
    os.write(1, line.encode() + b"\n")


class Greeter(cotyledon.Service):
    name = "greeter"

    def __init__(self, worker_id: int, name: str, listeners: list[socket.socket]) -> None:
        super().__init__(worker_id)
        self.listener_name = name
        self.listeners = listeners
        self.wake_r, self.wake_w = os.pipe()
        say(f"worker {worker_id} ready pid={os.getpid()}")

    def run(self) -> None:
        while True:
            readable, _, _ = select.select([self.wake_r, *self.listeners], [], [])
            if self.wake_r in readable:
                return
            for listener in readable:
                self.answer(listener)

    def answer(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()  # non-blocking: a sibling may have taken it
        except BlockingIOError:
            return
        with conn:
            conn.setblocking(True)
            line = f"hello from worker {self.worker_id} pid {os.getpid()} via {self.listener_name}"
            conn.sendall(line.encode() + b"\n")

    def terminate(self) -> None:
        os.write(self.wake_w, b"x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="web", help="FileDescriptorName= to serve")
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    listeners = systemd.listen_sockets().get(options.name)
    if not listeners:
        raise SystemExit(f"no socket named {options.name!r} was passed by systemd")
    for listener in listeners:
        listener.setblocking(False)
    manager = cotyledon.ServiceManager()
    manager.add(Greeter, workers=options.workers, args=(options.name, listeners))
    say(f"master pid={os.getpid()} serving {options.name}")
    manager.run()


if __name__ == "__main__":
    main()
