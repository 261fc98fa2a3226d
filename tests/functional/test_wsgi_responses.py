"""The response side of a real cotyledon-wsgi process tree: app errors, large bodies, the
access log and the counters of refused requests.

One worker (``-w 1``) serves an app written in ``tmp_path``; clients are raw sockets.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
from pathlib import Path

import pytest

from tests.functional.wsgi_helpers import RawClient
from tests.support.processes import Program, wait_for

pytestmark = pytest.mark.timeout(90)

LISTENING = r"Listening at http://127\.0\.0\.1:(\d+) "
STATUS = r"Status page at http://127\.0\.0\.1:(\d+)/"
MiB = 1 << 20
BIG = 96 * MiB  # large body of the memory test
SLACK = 40 * MiB  # what a worker may add on top of the body while sending it
ERROR_500_TEXT = b"Internal Server Error\n"  # the body of our 500

APP = """
import os

BIG = int(os.environ["BIG_SIZE"])


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    if path == "/str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["a str, not bytes"]
    if path == "/longer":
        start_response("200 OK", [("Content-Length", "3")])
        return [b"abcdef"]
    if path == "/shorter":
        start_response("200 OK", [("Content-Length", "10")])
        return [b"abc"]
    if path == "/first-chunk-longer":
        start_response("200 OK", [("Content-Length", "3")])
        return iter([b"abcdef"])
    if path == "/big-first-chunk-longer":
        start_response("200 OK", [("Content-Length", "3")])
        return iter([b"x" * (1 << 20)])
    if path == "/short-stream":
        start_response("200 OK", [("Content-Length", "10")])
        return iter([b"abc"])
    if path == "/exit":
        raise SystemExit(3)
    if path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [b"x" * BIG]
    if path == "/big-chunked":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return iter([b"x" * BIG])
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]
"""


def start(program: type[Program], tmp_path: Path, *args: str) -> tuple[Program, int]:
    (tmp_path / "resp_app.py").write_text(APP)
    argv = [sys.executable, "-m", "cotyledon.wsgi", "-b", "127.0.0.1:0", "-w", "1"]
    argv += ["--pythonpath", str(tmp_path), *args, "resp_app:app"]
    prog = program(argv, env={"BIG_SIZE": str(BIG)})
    port = int(prog.wait_line(LISTENING, 30).group(1))
    return prog, port


def get(port: int, path: str, method: str = "GET") -> tuple[int, bytes, bytes]:
    """One request on a fresh connection: (status, raw head, body) then EOF expected."""
    with RawClient(("127.0.0.1", port)) as client:
        client.send(f"{method} {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        resp = client.response(method)
        return resp.status, repr(resp.headers).encode(), resp.body


# -- A: an app error before any byte went out is a 500 -------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/str", "/longer", "/shorter", "/first-chunk-longer", "/big-first-chunk-longer", "/exit"],
)
def test_app_mistake_before_any_byte_is_a_500(
    program: type[Program], tmp_path: Path, path: str
) -> None:
    prog, port = start(program, tmp_path)
    with RawClient(("127.0.0.1", port)) as client:
        client.send(
            f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        )
        resp = client.response()
        assert resp.status == 500
        assert resp.header("connection") == "close"
        assert client.wait_closed()
        assert not client.buffer  # the pipelined request is not answered after a 500
    assert get(port, "/")[0] == 200  # the worker lives on
    prog.wait_line(r"Error in the WSGI application", 10)
    prog.wait_line(r"^(\w+\.)*\w+(Error|Exit)\b", 10)  # the end of its traceback
    output = prog.output()
    assert output.count("Traceback (most recent call last)") == 1, output  # logged once
    assert output.count("Error in the WSGI application") == 1, output
    assert "aborting" not in output


def test_body_shorter_than_its_length_after_the_head_closes(
    program: type[Program], tmp_path: Path
) -> None:
    _, port = start(program, tmp_path)
    with RawClient(("127.0.0.1", port)) as client:
        client.send(
            b"GET /short-stream HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        head = client.head()
        assert head.status == 200
        assert head.header("content-length") == "10"
        assert client.wait_closed()
        # the 3 bytes, then the end: never the next response read as the body's end
        assert bytes(client.buffer) == b"abc"


# -- B: a large body is sent without a copy -----------------------------------------------


def _proc_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def _read_all(port: int, path: str) -> tuple[bytes, int]:
    """GET ``path`` with Connection: close; the head and the byte count of everything."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        buf = bytearray(MiB)
        head = b""
        total = 0
        while True:
            n = sock.recv_into(buf)
            if not n:
                return head, total
            if len(head) < 4096:
                head += bytes(buf[: min(n, 4096)])
            total += n


@pytest.mark.parametrize(
    ("path", "framing"),
    [("/big", b"content-length: %d" % BIG), ("/big-chunked", b"transfer-encoding: chunked")],
)
def test_large_body_peak_memory_is_body_plus_a_constant(
    program: type[Program], tmp_path: Path, path: str, framing: bytes
) -> None:
    _, port = start(program, tmp_path)
    status, _, body = get(port, "/pid")
    assert status == 200
    pid = int(body)
    for _ in range(3):  # warm up: imports, thread pool, allocator
        assert get(port, "/")[0] == 200
    with contextlib.suppress(OSError):  # reset VmHWM to the current RSS where allowed
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = _proc_kib(pid, "VmRSS")
    head, total = _read_all(port, path)
    peak = _proc_kib(pid, "VmHWM")
    growth = peak - before
    assert growth < BIG + SLACK, f"peak grew by {growth / MiB:.0f} MiB for a {BIG // MiB} MiB body"
    assert framing in head.lower()
    assert total > BIG


# -- C and D: the access log and the counters ---------------------------------------------


def _log_lines(path: Path, count: int) -> list[str]:
    def enough() -> list[str] | None:
        lines = path.read_text().splitlines() if path.exists() else []
        return lines if len(lines) >= count else None

    lines = wait_for(enough, 20, f"{count} access log lines")
    assert isinstance(lines, list)
    return lines


def test_access_log_size_is_the_body_length(program: type[Program], tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    _, port = start(program, tmp_path, "--access-log-file", str(log))
    assert get(port, "/")[0] == 200
    assert get(port, "/", "HEAD")[0] == 200
    assert get(port, "/empty")[0] == 204
    assert get(port, "/str")[0] == 500
    lines = _log_lines(log, 4)
    # keyed by request: a line is written after its response, so lines may swap
    fields = dict(re.search(r'"(\w+ \S+) [^"]*" (\d{3} \S+) "', line).groups() for line in lines)  # type: ignore[union-attr]
    assert fields == {
        "GET /": "200 13",
        "HEAD /": "200 -",
        "GET /empty": "204 -",
        "GET /str": f"500 {len(ERROR_500_TEXT)}",
    }


def _doc_example(name: str, language: str) -> str:
    doc = Path(__file__).parents[2] / "doc" / "source" / name
    text = doc.read_text()
    block = text.split("Access log\n----------\n", 1)[1].split(f".. code-block:: {language}\n", 1)[
        1
    ]
    return block.strip("\n").split("\n\n", 1)[0]


def _shape(line: str) -> str:
    """A combined line with its values masked: what the docs and the server must share."""
    line = re.sub(r"\[[^]]*\]", "[TIME]", line)
    line = re.sub(r'"[^"]*"', '"S"', line)
    return re.sub(r"[^\s\[\]\"-]+", "V", line)


def test_docs_access_log_examples_match_a_real_line(
    program: type[Program], tmp_path: Path
) -> None:
    combined, as_json = tmp_path / "combined.log", tmp_path / "json.log"
    for target, fmt in ((combined, "combined"), (as_json, "json")):
        _, port = start(
            program, tmp_path, "--access-log-file", str(target), "--access-log-format", fmt
        )
        with RawClient(("127.0.0.1", port)) as client:
            client.send(
                b"GET /p?q=1 HTTP/1.1\r\nHost: t\r\nReferer: http://ref/\r\n"
                b"User-Agent: curl/8.5.0\r\n\r\n"
            )
            assert client.response().status == 200
    real = _log_lines(combined, 1)[0]
    documented = _doc_example("wsgi-apps.rst", "text").strip()
    assert _shape(real) == _shape(documented)
    assert real.split('"')[2] == documented.split('"')[2] == " 200 13 "  # status, body bytes
    real_json = json.loads(_log_lines(as_json, 1)[0])
    doc_json = json.loads(_doc_example("wsgi-apps.rst", "json"))
    assert real_json.keys() == doc_json.keys()
    assert real_json["bytes"] == doc_json["bytes"] == 13
    assert {k: type(v) for k, v in real_json.items() if k != "user"} == {
        k: type(v) for k, v in doc_json.items() if k != "user"
    }


REFUSED = [
    (b"GARBAGE\r\n\r\n", 400, ("GARBAGE", "-", "-")),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505, ("GET", "/", "HTTP/2.0")),
    (b"GET /" + b"a" * 300 + b" HTTP/1.1\r\n", 414, ("GET", "/" + "a" * 300, "HTTP/1.1")),
    (b"GET /big HTTP/1.1\r\n" + b"X-A: b\r\n" * 12 + b"\r\n", 431, ("GET", "/big", "HTTP/1.1")),
    (
        b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 999\r\n\r\n",
        413,
        ("POST", "/up", "HTTP/1.1"),
    ),
    (b"GET /slow HTTP/1.1\r\nHost: t\r\n", 408, ("GET", "/slow", "HTTP/1.1")),
]


def _metric(status_port: int, code: str) -> int:
    with RawClient(("127.0.0.1", status_port)) as client:
        text = client.get("/metrics").body.decode()
    match = re.search(rf'^cotyledon_http_requests_total{{code="{code}"}} (\d+)', text, re.M)
    assert match is not None, text
    return int(match.group(1))


def test_refused_requests_are_logged_and_counted(program: type[Program], tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    prog, port = start(
        program,
        tmp_path,
        *("--access-log-file", str(log), "--status-port", "0", "--header-timeout", "1"),
        *("--max-request-line", "256", "--max-header-count", "10", "--max-body-size", "100"),
    )
    status_port = int(prog.wait_line(STATUS, 30).group(1))
    for request, status, _ in REFUSED:
        with RawClient(("127.0.0.1", port)) as client:
            client.send(request)
            assert client.response().status == status
            assert client.wait_closed()
    lines = _log_lines(log, len(REFUSED))
    for line, (_, status, fields) in zip(lines, REFUSED, strict=True):
        match = re.fullmatch(r'127\.0\.0\.1 - - \[[^]]+\] "(.*)" (\d{3}) (\S+) "-" "-" \d+', line)
        assert match is not None, line
        assert int(match.group(2)) == status
        assert match.group(3) != "-"  # the error text is the body
        assert match.group(1) == " ".join(fields)
    wait_for(lambda: _metric(status_port, "4xx") == len(REFUSED) - 1, 20, "4xx counted")
    assert _metric(status_port, "5xx") == 1  # the 505
    assert _metric(status_port, "2xx") == 0
