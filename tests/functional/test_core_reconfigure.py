"""reconfigure() and add() after run() take effect at once (spec 6.2), nothing is forked
during shutdown (6.3), and scale-down does not churn (6.4)."""

from __future__ import annotations

import signal

import pytest

from tests.functional._core import master_pid
from tests.support.processes import children_of, proc_title, wait_for

pytestmark = pytest.mark.timeout(60)


def _titles(pid: int) -> list[str]:
    return sorted(proc_title(child) for child in children_of(pid))


def test_reconfigure_up_from_a_hook_forks_at_once(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("reconfigure.py", "up")
    pid = master_pid(prog)
    for _ in range(2):
        prog.wait_line(r"^steady \d running")
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^reconfigured up$")
    seen = {int(prog.wait_line(r"^steady (\d) running").group(1)) for _ in range(2)}
    assert seen == {2, 3}
    wait_for(lambda: len(children_of(pid)) == 4, what="4 workers")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    assert prog.output().count("running pid=") == 4  # 6.3: nothing forked at shutdown


def test_reconfigure_down_stops_surplus_without_respawn(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("reconfigure.py", "down")
    pid = master_pid(prog)
    for _ in range(2):
        prog.wait_line(r"^steady \d running")
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^reconfigured down$")
    prog.wait_line(r"^INFO:cotyledon._service_manager:Child \d+ exited with status 0$")
    wait_for(lambda: len(children_of(pid)) == 1, what="1 worker left")
    assert _titles(pid) == ["reconfigure.py: steady worker(0)"]
    # A second reload: the stopped worker stays stopped (no churn, no "Forking too fast").
    prog.signal(signal.SIGHUP)
    prog.wait_line(r"^reconfigured down$")  # hooks run before SIGHUP is forwarded
    prog.wait_line(r"^steady 0 reloaded")
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
    out = prog.output()
    assert out.count("running pid=") == 2
    assert "Forking too fast" not in out


def test_add_after_run_from_a_hook_forks_at_once(program) -> None:  # type: ignore[no-untyped-def]
    prog = program.example("reconfigure.py", "add")
    pid = master_pid(prog)
    for _ in range(2):
        prog.wait_line(r"^steady \d running")
    prog.signal(signal.SIGHUP)
    for _ in range(2):
        prog.wait_line(r"^extra \d running")
    wait_for(lambda: len(children_of(pid)) == 4, what="4 workers")
    assert _titles(pid) == [
        "reconfigure.py: extra worker(0)",
        "reconfigure.py: extra worker(1)",
        "reconfigure.py: steady worker(0)",
        "reconfigure.py: steady worker(1)",
    ]
    prog.signal(signal.SIGTERM)
    assert prog.wait() == 0
