"""--reload: an edited module is served by new workers; a syntax error keeps the old ones.

The app lives in the test's own directory; the test edits it the way an editor does and
waits (with deadlines) for what the server answers. Load runs during the cycles: the
workers are replaced one by one, so no request fails.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.functional.test_wsgi_status import ready_pids
from tests.functional.wsgi_helpers import Load, RawClient, wsgi_command
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

APP = """
def app(environ, start_response):
    body = b"{text}"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def write(path: Path, source: str) -> None:
    """Write like an editor, with a new mtime even on a coarse clock."""
    path.write_text(source)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def body(address: tuple[str, int]) -> bytes:
    with RawClient(address) as client:
        return client.get("/", "Connection: close\r\n").body


def test_reload_serves_edited_code_and_survives_a_syntax_error(
    program: type[Program], tmp_path: Path
) -> None:
    module = tmp_path / "devapp.py"
    write(module, APP.format(text="version 1"))
    watched = ("--reload", "--status-port", "0", "--pythonpath", str(tmp_path))
    prog = program(wsgi_command("-w", "2", *watched, "devapp:app"))
    port = int(prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30).group(1))
    address = ("127.0.0.1", port)
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    first = ready_pids(status_port, 2)  # both imported version 1 and watch from there
    assert body(address) == b"version 1"
    with Load(address, clients=4) as load:
        write(module, APP.format(text="version 2"))
        wait_for(lambda: body(address) == b"version 2", 30, "the edited code served")
        prog.wait_line(r"Every wsgi worker was replaced", 30)
        new = ready_pids(status_port, 2)  # the old ones have left the scoreboard
        assert not new & first
        assert all(body(address) == b"version 2" for _ in range(4))

        write(module, APP.format(text="version 3").replace("def app(", "def app(:"))
        prog.wait_line(r"Reload skipped, the old workers keep serving: .*devapp\.py line 2", 30)
        assert body(address) == b"version 2"

        write(module, APP.format(text="version 3"))
        wait_for(lambda: body(address) == b"version 3", 30, "the fixed code served")
    assert load.failures == []
    assert load.served() > 0


def test_reload_extra_file_triggers_a_cycle(program: type[Program], tmp_path: Path) -> None:
    (tmp_path / "devapp2.py").write_text(
        APP.format(text="x").replace(
            'b"x"', 'open(__file__.replace("devapp2.py", "t.txt"), "rb").read()'
        )
    )
    template = tmp_path / "t.txt"
    write(template, "one")
    watched = ("--reload", "--status-port", "0", "--pythonpath", str(tmp_path))
    prog = program(
        wsgi_command(*watched, "--reload-extra-file", str(tmp_path / "*.txt"), "devapp2:app")
    )
    port = int(prog.wait_line(r"Listening at http://127\.0\.0\.1:(\d+) ", 30).group(1))
    status_port = int(prog.wait_line(r"Status page at http://127\.0\.0\.1:(\d+)/", 30).group(1))
    (first,) = ready_pids(status_port, 1)
    write(template, "two")
    prog.wait_line(r"Changed: .*t\.txt; replacing the workers", 30)
    wait_for(lambda: first not in prog.workers() and prog.workers(), 30)
    assert body(("127.0.0.1", port)) == b"two"


def test_logs_in_the_watched_directory_trigger_no_reload(
    program: type[Program], tmp_path: Path
) -> None:
    """The access and error logs are written where a glob watches: requests (each one an
    access log line) cause no cycle and no watchfiles chatter; a real edit still does."""
    module = tmp_path / "devapp3.py"
    write(module, APP.format(text="version 1"))
    error_log = tmp_path / "server.log"
    prog = program(
        wsgi_command(
            "--reload",
            "--status-port",
            "0",
            "--pythonpath",
            str(tmp_path),
            "--reload-extra-file",
            str(tmp_path / "*"),
            "--access-log-file",
            str(tmp_path / "access.log"),
            "--error-log-file",
            str(error_log),
            "devapp3:app",
        )
    )

    def logged(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, error_log.read_text() if error_log.exists() else "")

    port = wait_for(lambda: logged(r"Listening at http://127\.0\.0\.1:(\d+) "), 30, "listening")
    status = wait_for(lambda: logged(r"Status page at http://127\.0\.0\.1:(\d+)/"), 30, "status")
    assert isinstance(port, re.Match)
    assert isinstance(status, re.Match)
    address = ("127.0.0.1", int(port.group(1)))
    (first,) = ready_pids(int(status.group(1)), 1)
    for _ in range(10):
        assert body(address) == b"version 1"
    write(module, APP.format(text="version 2"))  # the real edit, after the log writes
    wait_for(lambda: body(address) == b"version 2", 30, "the edited code served")
    wait_for(lambda: first not in prog.workers(), 30, "the old worker gone")
    text = error_log.read_text()
    changed = re.findall(r"Changed: (.*); replacing the workers", text)
    assert changed == [str(module)], text
    assert "change detected" not in text
    assert "changes detected" not in text
