"""cotyledon-wsgi-logstats on logs written by the real server, in both formats.

The test starts ``cotyledon-wsgi`` with ``--access-log-file`` on a tiny app of its own
(status and body size chosen by the path), sends a known set of requests, stops the
server, then runs the analyser as a command and checks the counts in its ``--json``.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.functional.test_wsgi_cli import LISTENING, tcp_address
from tests.functional.wsgi_helpers import RawClient, wsgi_command
from tests.support.processes import ROOT, Program, wait_for

pytestmark = pytest.mark.timeout(90)

APP = """
def app(environ, start_response):
    path = environ["PATH_INFO"]
    status, size = {"/ok": ("200 OK", 5), "/big": ("200 OK", 50000),
                    "/gone": ("404 Not Found", 9), "/boom": ("500 Oops", 0),
                    "/moved": ("302 Found", 0)}[path]
    start_response(status, [("Content-Length", str(size))])
    return [b"x" * size]
"""

# (target, status, body bytes): 4 paths, 9 requests
REQUESTS = [
    ("/ok?n=1", 200, 5),
    ("/ok?n=2", 200, 5),
    ("/ok", 200, 5),
    ("/big", 200, 50000),
    ("/gone?x", 404, 9),
    ("/gone", 404, 9),
    ("/boom", 500, 0),
    ("/moved", 302, 0),
    ("/ok?n=3", 200, 5),
]


def logstats(*args: str, stdin: bytes | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "cotyledon.wsgi.logstats", "--json", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=True,
        cwd=ROOT,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.mark.parametrize("fmt", ["combined", "json"])
def test_logstats_on_the_servers_own_log(program: type[Program], tmp_path: Path, fmt: str) -> None:
    (tmp_path / "tinyapp.py").write_text(APP)
    log = tmp_path / "access.log"
    argv = wsgi_command("--access-log-file", str(log), "--access-log-format", fmt, "tinyapp:app")
    prog = program(argv, env={"PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])})
    address = tcp_address(prog.wait_line(LISTENING, 30).group(1))
    with RawClient(address) as client:
        for target, status, size in REQUESTS:
            response = client.get(target)
            assert (response.status, len(response.body)) == (status, size)
    wait_for(lambda: log.read_bytes().count(b"\n") == len(REQUESTS), 30, "every line logged")
    prog.signal(signal.SIGTERM)
    assert prog.wait(30) == 0
    with log.open("ab") as out:
        out.write(b"a line that is not a request\n")

    report = logstats(str(log))
    assert report["lines"] == {"total": 10, "requests": 9, "malformed": 1, "filtered": 0}
    assert report["malformed_lines"] == [{"file": str(log), "line": 10}]
    assert report["status"]["codes"] == {"200": 5, "302": 1, "404": 2, "500": 1}
    assert report["status"]["classes"]["4xx"] == {"count": 2, "share": round(2 / 9, 4)}
    rows = {row["path"]: row for row in report["paths"]["by_count"]}
    assert {path: row["count"] for path, row in rows.items()} == {
        "/ok": 4,
        "/big": 1,
        "/gone": 2,
        "/boom": 1,
        "/moved": 1,
    }
    assert report["paths"]["by_count"][0]["path"] == "/ok"
    # The bytes field is the body length (Apache %b) or, in older logs, the whole response
    # with its head: at least the body either way.
    assert rows["/ok"]["bytes"] >= 20
    assert report["biggest"][0]["target"] == "/big"
    assert report["biggest"][0]["bytes"] >= 50000
    assert report["bytes"] == sum(row["bytes"] for row in rows.values())
    assert len(report["slowest"]) == 9
    assert all(row["duration_ms"] > 0 for row in report["slowest"])

    # The same log rotated and compressed, read from standard input.
    again = logstats("-", stdin=gzip.compress(log.read_bytes()))
    assert again["lines"]["requests"] == 9
    assert again["status"] == report["status"]
