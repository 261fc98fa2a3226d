"""Worker memory with --preload through a zygote, vs the master importing the app, vs
--no-preload (issue 11, section 4). About 30 s.

For each app (``apps:hello``, ``heavy_app:app``) and each way of loading it, start 4
workers, send each of them some requests, then read ``/proc/PID/smaps_rollup``: per
worker the median USS (private memory) and PSS (shared pages divided among the processes
sharing them), and the PSS of every process of the server (master, zygote, workers),
which is what the machine pays.

* ``master preload``: the app object imported by the master and handed to
  ``cotyledon.wsgi.add()`` (the path ``--preload`` took before the zygote; still the path
  of an app given as an object);
* ``zygote preload``: ``cotyledon-wsgi --preload`` (the default);
* ``no preload``: ``cotyledon-wsgi --no-preload``: each worker imports the app.
"""

from __future__ import annotations

import http.client
import sys

from _common import (
    RESULTS,
    Server,
    bind_socket,
    children_of,
    log,
    median,
    memory_kib,
    pss_kib,
    table,
    wait_for,
    wait_http,
    workers_of,
)

WORKERS = 4
APPS = (("hello", "apps", "hello"), ("heavy", "heavy_app", "app"))
MASTER_PRELOAD = (
    "import sys, cotyledon, cotyledon.wsgi, importlib\n"
    "module, name, fd = sys.argv[1:]\n"
    "app = getattr(importlib.import_module(module), name)\n"
    "manager = cotyledon.ServiceManager()\n"
    "cotyledon.wsgi.add(manager, app, bind=f'fd://{fd}', workers=4)\n"
    "manager.run()\n"
)


def _argv(mode: str, module: str, name: str, fd: int) -> list[str]:
    if mode == "master preload":
        return [sys.executable, "-c", MASTER_PRELOAD, module, name, str(fd)]
    flag = "--preload" if mode == "zygote preload" else "--no-preload"
    command = [sys.executable, "-m", "cotyledon.wsgi", "-w", str(WORKERS), flag]
    return [*command, "-b", f"fd://{fd}", f"{module}:{name}"]


def _requests(port: int, count: int) -> None:
    for _ in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/")
        conn.getresponse().read()
        conn.close()


def measure(mode: str, label: str, module: str, name: str) -> list[str]:
    sock = bind_socket()
    port, fd = sock.getsockname()[1], sock.fileno()
    log_path = RESULTS / "logs" / f"preload-{label}-{mode.replace(' ', '-')}.log"
    try:
        server = Server(_argv(mode, module, name, fd), log_path, pass_fds=[fd])
    finally:
        sock.close()
    with server:
        wait_http(port, server=server)
        wait_for(lambda: len(workers_of(server.pid)) >= WORKERS, 30.0, "workers")
        _requests(port, 200)  # every worker serves some (connections are spread)
        workers = workers_of(server.pid)
        everyone = [server.pid, *children_of(server.pid)]
        uss = median([memory_kib(pid)[1] for pid in workers]) / 1024
        pss = median([pss_kib(pid) for pid in workers]) / 1024
        total = sum(pss_kib(pid) for pid in everyone) / 1024
        master = memory_kib(server.pid)[1] / 1024
        zygotes = [pid for pid in children_of(server.pid) if pid not in workers]
        zygote = f"{memory_kib(zygotes[0])[1] / 1024:.1f}" if zygotes else "-"
    return [label, mode, f"{uss:.1f}", f"{pss:.1f}", f"{master:.1f}", zygote, f"{total:.1f}"]


def main() -> int:
    rows = []
    for label, module, name in APPS:
        for mode in ("master preload", "zygote preload", "no preload"):
            log(f"{label}: {mode}")
            rows.append(measure(mode, label, module, name))
    headers = ["app", "loading", "worker USS", "worker PSS", "master USS", "zygote USS"]
    headers.append("server PSS")
    print(f"MiB; {WORKERS} workers, medians over them; server = master + zygote + workers")
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
