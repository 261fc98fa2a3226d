"""--preload through a zygote: SIGHUP serves new code, workers still fork from one import.

The app lives in the test's directory and appends a line to ``imports.log`` each time it is
imported, so a test can tell a fork from the zygote (no line) from a fresh import (a line).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import pytest

from tests.functional.test_wsgi_reload import write
from tests.functional.test_wsgi_status import ready_pids, status
from tests.functional.wsgi_helpers import Load, RawClient, wsgi_command
from tests.support.processes import Program, is_zygote, session_pids, wait_for

pytestmark = pytest.mark.timeout(90)

APP = """
import os
with open(os.path.join(os.path.dirname(__file__), "imports.log"), "a") as log:
    log.write(f"{{os.getpid()}}\\n")

def app(environ, start_response):
    body = b"{text}"
    start_response("200 OK", [("Content-Length", str(len(body))),
                              ("X-Worker-Pid", str(os.getpid()))])
    return [body]
"""


def edit(directory: Path, source: str) -> None:
    """Write the app as an editor does; drop its bytecode, whose check (mtime in seconds
    and size) cannot tell two versions of the same size written within a second apart."""
    write(directory / "zapp.py", source)
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)


def body(address: tuple[str, int]) -> bytes:
    with RawClient(address) as client:
        return client.get("/", "Connection: close\r\n").body


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def zygotes(prog: Program) -> list[int]:
    return [pid for pid in prog.descendants() if is_zygote(pid) and ppid(pid) == prog.pid]


def imports(tmp_path: Path) -> int:
    return len((tmp_path / "imports.log").read_text().splitlines())


def serve(
    program: type[Program], tmp_path: Path, text: str
) -> tuple[Program, tuple[str, int], int]:
    edit(tmp_path, APP.format(text=text))
    prog = program(
        wsgi_command("-w", "2", "--status-port", "0", "--pythonpath", str(tmp_path), "zapp:app")
    )
    port = int(prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30).group(1))
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    return prog, ("127.0.0.1", port), status_port


def test_sighup_serves_the_new_code_from_a_new_zygote_without_failures(
    program: type[Program], tmp_path: Path
) -> None:
    prog, address, status_port = serve(program, tmp_path, "version 1")
    first = ready_pids(status_port, 2)
    assert imports(tmp_path) == 1  # one import (the zygote's), not one per worker
    (old_zygote,) = zygotes(prog)
    page = status(status_port)
    assert (page["zygote_pid"], page["zygote_generation"]) == (old_zygote, 1)
    assert all(ppid(pid) == prog.pid for pid in first)  # the master's children
    with Load(address, clients=4) as load:
        edit(tmp_path, APP.format(text="version 2"))
        prog.signal(signal.SIGHUP)
        prog.wait_line(r"Every wsgi worker was replaced", 30)
        new = ready_pids(status_port, 2)
        assert all(body(address) == b"version 2" for _ in range(4))
    assert load.failures == []
    assert load.served() > 0
    assert not new & first
    assert all(ppid(pid) == prog.pid for pid in new)
    assert imports(tmp_path) == 2  # the new zygote's
    wait_for(lambda: zygotes(prog) and old_zygote not in zygotes(prog), 30, "old zygote gone")
    (zygote,) = zygotes(prog)
    assert str(zygote) not in load.pids  # the zygote serves nothing
    page = status(status_port)
    assert (page["zygote_pid"], page["zygote_generation"]) == (zygote, 2)
    assert str(old_zygote) not in load.pids


def test_a_new_version_that_cannot_load_aborts_the_reload(
    program: type[Program], tmp_path: Path
) -> None:
    prog, address, status_port = serve(program, tmp_path, "version 1")
    first = ready_pids(status_port, 2)
    (zygote,) = zygotes(prog)
    edit(tmp_path, APP.format(text="version 2").replace("def app(", "def app(:"))
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Reload of wsgi ended without replacing every worker", 30)
    assert body(address) == b"version 1"
    assert ready_pids(status_port, 2) == first
    assert zygotes(prog) == [zygote]  # kept, and it still forks the old code
    errors = [line for line in prog.output().splitlines() if " ERROR " in line]
    assert len(errors) == 1, errors
    assert re.search(
        r"Replacement of wsgi workers aborted: the new code cannot be loaded: syntax error in "
        r".*zapp\.py:\d+ .*; every worker keeps serving",
        errors[0],
    )
    # A crash is respawned from the kept zygote: the old code, no import.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(ready_pids(status_port, 2) - first) == 1, 30, "respawned worker")
    assert body(address) == b"version 1"
    # Fixed: the next SIGHUP loads it.
    edit(tmp_path, APP.format(text="version 2"))
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"Every wsgi worker was replaced", 30)
    # An old worker may still answer a connection it accepted before its SIGTERM.
    wait_for(lambda: body(address) == b"version 2", 30, "the fixed code served")


def test_a_crashed_worker_is_forked_again_from_the_zygote(
    program: type[Program], tmp_path: Path
) -> None:
    prog, address, status_port = serve(program, tmp_path, "version 1")
    first = ready_pids(status_port, 2)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    prog.wait_line(rf"Worker \d \(pid {victim}\) killed by signal SIGKILL", 30)
    new = wait_for(lambda: (p := ready_pids(status_port, 2)) != first and p, 30, "respawn")
    assert isinstance(new, set)
    assert imports(tmp_path) == 1  # forked from the zygote, not imported again
    assert all(ppid(pid) == prog.pid for pid in new)
    assert body(address) == b"version 1"


def test_a_killed_zygote_is_replaced_at_the_next_spawn(
    program: type[Program], tmp_path: Path
) -> None:
    prog, address, status_port = serve(program, tmp_path, "version 1")
    first = ready_pids(status_port, 2)
    (zygote,) = zygotes(prog)
    os.kill(zygote, signal.SIGKILL)
    prog.wait_line(rf"Zygote \(pid {zygote}\) lost: .*SIGKILL; the next worker starts a new", 30)
    assert body(address) == b"version 1"  # the workers do not care
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    prog.wait_line(r"No zygote to fork worker \d from: starting one", 30)
    new = wait_for(lambda: (p := ready_pids(status_port, 2)) != first and p, 30, "respawn")
    assert isinstance(new, set)
    assert all(ppid(pid) == prog.pid for pid in new)
    assert imports(tmp_path) == 2
    (new_zygote,) = zygotes(prog)
    assert new_zygote != zygote
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    assert not prog.descendants()  # the zygote is gone with the master


def test_workers_and_zygote_die_with_a_killed_master(
    program: type[Program], tmp_path: Path
) -> None:
    """The workers arm PR_SET_PDEATHSIG once the master is their parent (not the
    short-lived intermediate), and the zygote is the master's child too."""
    prog, _, status_port = serve(program, tmp_path, "version 1")
    workers = ready_pids(status_port, 2)
    (zygote,) = zygotes(prog)
    os.kill(prog.pid, signal.SIGKILL)
    prog.wait(30)
    wait_for(lambda: not session_pids(prog.pid), 30, "workers and zygote gone")
    assert not {*workers, zygote} & set(session_pids(prog.pid))


def test_a_worker_forked_after_a_log_rotation_writes_to_the_new_file(
    program: type[Program], tmp_path: Path
) -> None:
    """The zygote ignores SIGUSR1 (it logs nothing); a worker it forks after logrotate
    must not write to the renamed file through the zygote's stale handler."""
    errors = tmp_path / "error.log"
    write(tmp_path / "zapp.py", APP.format(text="version 1"))
    prog = program(
        wsgi_command(
            "-w",
            "2",
            "--status-port",
            "0",
            "--log-level",
            "debug",
            "--error-log-file",
            str(errors),
            "--pythonpath",
            str(tmp_path),
            "zapp:app",
        )
    )

    def logged(path: Path, pattern: str) -> re.Match[str] | None:
        return re.search(pattern, path.read_text() if path.exists() else "")

    status = wait_for(lambda: logged(errors, r"Status page at http://127\.0\.0\.1:(\d+)/"), 30)
    assert isinstance(status, re.Match)
    first = ready_pids(int(status.group(1)), 2)
    errors.rename(tmp_path / "error.log.1")
    prog.signal(signal.SIGUSR1)
    wait_for(lambda: logged(errors, r"SIGUSR1: \d+ log file\(s\) reopened"), 30, "reopened")
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    new = wait_for(lambda: (p := ready_pids(int(status.group(1)), 2) - first) and p, 30)
    assert isinstance(new, set)
    (pid,) = new
    wait_for(lambda: logged(errors, rf"Run service wsgi\(\d\) \[{pid}\]"), 30, "new worker's line")
    assert not logged(tmp_path / "error.log.1", rf"\[{pid}\]")
