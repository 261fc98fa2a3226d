"""A real HAProxy in front of real backends, for the load-balancer tier of the tests.

:class:`HAProxy` writes a configuration, starts Debian's ``haproxy`` in the foreground in
its own session (so teardown finds it) and reads the state of its backend servers from its
stats socket. Its frontend listens on a socket bound by the caller (``bind fd@N``), so no
port is guessed. The settings are those of a load balancer that forgives nothing:
``retries 0`` and no redispatch (a Kubernetes Service does not retry either), so every
request that a backend drops reaches the client as an error.

:class:`Backend` runs one server instance (ours or a peer) on fixed ports, and can stop
and start it again on the same ports, as a rolling restart does.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import Program, wait_for

HAPROXY = shutil.which("haproxy", path="/usr/sbin:/usr/bin:/sbin:/bin")
SKIP_REASON = "haproxy is not installed (Debian package 'haproxy'; .ci/run installs it)"


@dataclass
class ServerSpec:
    """One backend server as HAProxy sees it."""

    name: str
    port: int
    check_port: int | None = None  # None: the health check goes to ``port``


def haproxy_config(
    frontend_fd: int,
    servers: Sequence[ServerSpec],
    stats_socket: Path,
    *,
    check_path: str,
    inter_ms: int = 100,
    fall: int = 1,
    rise: int = 2,
) -> str:
    """The configuration text: one HTTP frontend, one backend, health checks on ``check_path``."""
    lines = [
        "global",
        f"    stats socket {stats_socket} mode 600 level admin",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout check 1s",
        "    retries 0",
        "    option http-keep-alive",
        "frontend web",
        f"    bind fd@{frontend_fd}",
        "    default_backend app",
        "backend app",
        "    balance roundrobin",
        "    no option redispatch",
        f"    option httpchk GET {check_path}",
        "    http-check expect status 200",
    ]
    for server in servers:
        check = f" port {server.check_port}" if server.check_port else ""
        lines.append(
            f"    server {server.name} 127.0.0.1:{server.port} check{check}"
            f" inter {inter_ms}ms fall {fall} rise {rise}"
        )
    return "\n".join(lines) + "\n"


class HAProxy:
    """HAProxy in the foreground (``-db``), its frontend on ``frontend``'s socket."""

    def __init__(
        self,
        workdir: Path,
        servers: Sequence[ServerSpec],
        *,
        check_path: str,
        inter_ms: int = 100,
        fall: int = 1,
        rise: int = 2,
    ) -> None:
        assert HAPROXY is not None, SKIP_REASON
        self.frontend = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.frontend.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.frontend.bind(("127.0.0.1", 0))
        self.frontend.listen(1024)
        self.address: tuple[str, int] = self.frontend.getsockname()
        self.stats_socket = workdir / "haproxy.sock"
        self.config_path = workdir / "haproxy.cfg"
        fd = self.frontend.fileno()
        self.config_path.write_text(
            haproxy_config(
                fd,
                servers,
                self.stats_socket,
                check_path=check_path,
                inter_ms=inter_ms,
                fall=fall,
                rise=rise,
            )
        )
        check = Program([HAPROXY, "-c", "-q", "-f", str(self.config_path)], pass_fds=[fd])
        code = check.wait()
        check.kill_tree()  # reaped already: closes its output pipe
        assert code == 0, f"haproxy -c refused the configuration:\n{check.output()}"
        self.program = Program([HAPROXY, "-db", "-f", str(self.config_path)], pass_fds=[fd])

    def command(self, line: str) -> str:
        """One command on the stats socket; its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[str, str]:
        """Each backend server's status (``UP``, ``DOWN``, ``MAINT``...), by name."""
        try:
            text = self.command("show stat")
        except OSError:
            return {}
        rows = [line.split(",") for line in text.splitlines() if line and line[0] != "#"]
        servers = [row for row in rows if row[0] == "app" and row[1] != "BACKEND"]
        return {row[1]: row[17].split(" ")[0] for row in servers}

    def wait_state(self, name: str, state: str, timeout: float = 20.0) -> None:
        wait_for(lambda: self.states().get(name) == state, timeout, f"haproxy: {name} {state}")

    def close(self) -> list[int]:
        leftovers = self.program.kill_tree()
        self.frontend.close()
        return leftovers


class Backend:
    """One server instance on fixed ports, which can be stopped and started again.

    ``argv(port, check_port)`` gives the command line; the first start may pass port 0
    when ``discover`` reads the real ports from the output.
    """

    def __init__(
        self,
        name: str,
        argv: Callable[[int, int], list[str]],
        *,
        discover: Callable[[Program], tuple[int, int]],
        ready: Callable[[Program], object],
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self._argv = argv
        self._discover = discover
        self._ready = ready
        self._cwd = cwd
        self._env = env
        self.port = 0
        self.check_port = 0
        self.program: Program | None = None
        self.exit_codes: list[int] = []

    @property
    def spec(self) -> ServerSpec:
        return ServerSpec(self.name, self.port, self.check_port)

    def start(self) -> None:
        assert self.program is None
        self.program = Program(
            self._argv(self.port, self.check_port), cwd=self._cwd, env=self._env
        )
        if not self.port:
            self.port, self.check_port = self._discover(self.program)
        self._ready(self.program)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send ``signum``, wait for the exit, check nothing is left; the exit code."""
        program = self.program
        assert program is not None
        program.signal(signum)
        code = program.wait(timeout)
        orphans = program.kill_tree()
        assert not orphans, f"{self.name}: processes outlived their master: {orphans}"
        self.program = None
        self.exit_codes.append(code)
        return code

    def close(self) -> None:
        if self.program is not None:
            with contextlib.suppress(Exception):
                self.program.kill_tree()
            self.program = None
