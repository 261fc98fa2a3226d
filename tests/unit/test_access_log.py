"""Access log lines: both formats, escaping that no client can break, files and reopen."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cotyledon.wsgi._access_log import AccessLog, AccessRecord, format_combined, format_json

pytestmark = pytest.mark.timeout(60)

FIELDS: dict[str, Any] = {
    "remote_addr": "127.0.0.1",
    "method": "GET",
    "target": "/p?q=1",
    "protocol": "HTTP/1.1",
    "status": 200,
    "size": 13,
    "referer": "http://ref/",
    "user_agent": "tester/1.0",
    "user": None,
    "start_time": 1_700_000_000.25,
    "duration": 0.0123,
}

COMBINED = re.compile(
    r"^(\S+) - (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)" (\d+)\n$'
)


def record(**changes: Any) -> AccessRecord:
    return AccessRecord(**{**FIELDS, **changes})


def test_combined_line() -> None:
    line = format_combined(record())
    match = COMBINED.match(line)
    assert match, line
    assert match.group(1, 2) == ("127.0.0.1", "-")
    assert match.group(4, 5, 6) == ("GET /p?q=1 HTTP/1.1", "200", "13")
    assert match.group(7, 8, 9) == ("http://ref/", "tester/1.0", "12300")


def test_combined_time_is_local_with_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert "[14/Nov/2023:22:13:20 +0000]" in format_combined(record())
    finally:
        monkeypatch.undo()
        time.tzset()


def test_combined_empty_fields_are_dashes() -> None:
    line = format_combined(record(size=0, referer=None, user_agent="", user="alice"))
    match = COMBINED.match(line)
    assert match, line
    assert match.group(2, 6, 7, 8) == ("alice", "-", "-", "-")


@pytest.mark.parametrize(
    ("agent", "escaped"),
    [
        ('evil" 200 0 "x', 'evil\\" 200 0 \\"x'),
        ("back\\slash", "back\\\\slash"),
        ("new\nline\r\x00\x1b[31m", "new\\x0aline\\x0d\\x00\\x1b[31m"),
        ("caf\xe9\x7f", "caf\\xe9\\x7f"),
        ("\u2603", "\\u2603"),
    ],
)
def test_combined_escapes_what_a_client_sends(agent: str, escaped: str) -> None:
    line = format_combined(record(user_agent=agent, target=f"/{agent}"))
    assert line.count("\n") == 1
    assert line.isascii()
    match = COMBINED.match(line)
    assert match, line
    assert match.group(8) == escaped
    assert match.group(4) == f"GET /{escaped} HTTP/1.1"


latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF))


@given(target=latin1_text, agent=latin1_text, referer=latin1_text)
def test_no_client_value_can_forge_a_line_or_a_field(
    target: str, agent: str, referer: str
) -> None:
    line = format_combined(record(target=target, user_agent=agent, referer=referer))
    match = COMBINED.match(line)
    assert match, line
    assert match.group(5) == "200"
    unescape = lambda s: s.encode().decode("unicode_escape")  # noqa: E731
    assert unescape(match.group(8)) == (agent or "-")
    assert unescape(match.group(7)) == (referer or "-")
    parsed = json.loads(format_json(record(target=target, user_agent=agent)))
    assert (parsed["target"], parsed["user_agent"]) == (target, agent)


def test_json_line() -> None:
    line = format_json(record(user="bob"))
    assert line.endswith("\n")
    assert line.count("\n") == 1
    data = json.loads(line)
    assert data == {
        "time": data["time"],
        "remote_addr": "127.0.0.1",
        "method": "GET",
        "target": "/p?q=1",
        "path": "/p",
        "query": "q=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 13,
        "referer": "http://ref/",
        "user_agent": "tester/1.0",
        "user": "bob",
        "duration_ms": 12.3,
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.250[+-]\d\d:\d\d", data["time"])


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="must be one of combined, json, not 'xml'"):
        AccessLog("-", "xml")


def test_disabled() -> None:
    log = AccessLog(None)
    assert not log.enabled
    log.log(**FIELDS)  # nothing to do, no error
    log.close()


def test_file_appends_whole_lines_from_many_threads(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("existing line\n")
    log = AccessLog(str(path), "json")
    assert log.enabled

    def burst(thread: int) -> None:
        for number in range(200):
            log.log(**{**FIELDS, "target": f"/t{thread}/{number}" + "x" * 300})

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    lines = path.read_text().splitlines()
    assert lines[0] == "existing line"
    targets = {json.loads(line)["target"] for line in lines[1:]}
    assert len(lines) == 1 + 8 * 200 == 1 + len(targets)
    assert not os.get_inheritable(os.open(path, os.O_RDONLY | os.O_CLOEXEC))


def test_reopen_after_rotation(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(str(path))
    log.log(**FIELDS)
    path.rename(tmp_path / "access.log.1")
    log.log(**{**FIELDS, "target": "/before-reopen"})
    log.reopen()
    log.log(**{**FIELDS, "target": "/after-reopen"})
    log.close()
    rotated = (tmp_path / "access.log.1").read_text()
    assert rotated.count("\n") == 2
    assert "/before-reopen" in rotated
    assert "/after-reopen" in path.read_text()
    assert path.read_text().count("\n") == 1


def test_reopen_failure_keeps_the_old_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    log = AccessLog(str(directory / "access.log"))
    (directory / "access.log").rename(tmp_path / "moved.log")
    directory.rmdir()
    log.reopen()
    assert "cannot reopen" in caplog.text
    log.log(**FIELDS)
    log.close()
    assert "GET /p?q=1" in (tmp_path / "moved.log").read_text()


def test_write_errors_drop_lines_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    log = AccessLog("/dev/full")
    for _ in range(3):
        log.log(**FIELDS)
    log.close()
    assert log.dropped == 3
    assert caplog.text.count("cannot write") == 1


def test_stdout_writes_one_line_per_request() -> None:
    code = (
        "from cotyledon.wsgi._access_log import AccessLog\n"
        f"log = AccessLog('-')\nlog.log(**{FIELDS!r})\nlog.log(**{FIELDS!r})\nlog.close()\n"
        "print('still open', flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(COMBINED.match(line + "\n") for line in lines[:2])
    assert lines[2] == "still open"  # close() leaves standard output alone
