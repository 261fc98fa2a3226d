"""oslo.config glue for real: SIGHUP reloads (or mutates) the config in the master and in
the worker, before Service.reload() runs."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.functional._core import master_pid

pytest.importorskip("oslo_config")
pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("method", ["reload", "mutate"])
def test_sighup_reloads_config_in_master_and_worker(program, tmp_path: Path, method: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "example.conf"
    path.write_text("[DEFAULT]\ngreeting = hello\ngraceful_shutdown_timeout = 11\n")
    prog = program.example("oslo_glue.py", str(path), method)
    prog.wait_line(r"^master timeout=11$")
    master_pid(prog)
    prog.wait_line(r"^DEBUG:cotyledon.oslo_config_glue:Full set of CONF:$")
    prog.wait_line(r"^worker greeting=hello")
    path.write_text("[DEFAULT]\ngreeting = bye\n")
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^master greeting=bye$")
    prog.wait_line(r"^worker reloaded greeting=bye$")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    # options are logged by the master at start and reload, and by the worker at start
    # and reload
    assert prog.output().count("Full set of CONF:") == 4
