"""The real-systemd tier: the examples under a private ``systemd --user`` manager
(tests/support/real_systemd.py), as transient units and with the shipped unit files.

Skipped, with the reason, where such a manager cannot start (not root, no unshare, no
systemd). Each test waits on ``systemctl show`` conditions with deadlines.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator

import pytest

import cotyledon
from tests.support import real_systemd
from tests.support.processes import ROOT, wait_for
from tests.support.real_systemd import RUNTIME_DIR, UserManager, example_unit, output_dropin

pytestmark = [pytest.mark.systemd, pytest.mark.timeout(120)]

if not hasattr(cotyledon, "ServiceManager"):  # the core lands in parallel with this file
    pytest.skip("cotyledon.ServiceManager is not there yet", allow_module_level=True)

NOTIFY_SERVICE = str(ROOT / "examples" / "systemd" / "notify_service.py")
HOLD = f"{RUNTIME_DIR}/hold"  # while it exists, new workers wait in __init__
STATE = ("ActiveState", "SubState", "Result", "StatusText", "MainPID")


@pytest.fixture(scope="module")
def systemd() -> Iterator[UserManager]:
    reason = real_systemd.unavailable_reason()
    if reason:
        pytest.skip(reason)
    try:
        manager = UserManager()
    except real_systemd.SystemdUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield manager
    finally:
        manager.close()


def master_pid(systemd: UserManager, log: str, after: int = 0) -> int:
    """The n-th (``after``+1) ``master pid=`` line the program wrote to its log."""

    def find() -> list[str]:
        return re.findall(r"^master pid=(\d+)", systemd.read(f"{RUNTIME_DIR}/{log}"), re.M)

    pids = wait_for(lambda: len(find()) > after and find(), timeout=30, what=f"{log} master")
    assert isinstance(pids, list)
    return int(pids[after])


def alive_in_namespace(systemd: UserManager, pid: int) -> bool:
    return systemd.host_path(f"/proc/{pid}/status").exists()


def worker_pids(systemd: UserManager, log: str) -> set[int]:
    text = systemd.read(f"{RUNTIME_DIR}/{log}")
    return {int(p) for p in re.findall(r"^worker \d+ ready pid=(\d+)", text, re.M)}


def reload_and_wait(systemd: UserManager, unit: str, *reload: str) -> dict[str, str]:
    """Reload while the hold file keeps the new workers in __init__: the unit must show
    ``reloading`` for as long as that lasts, then ``active`` once they are up."""
    hold = systemd.host_path(HOLD)
    hold.write_text("hold")
    try:
        # --no-block: a reload job may wait for READY=1, which the hold file delays.
        systemd.systemctl("--no-block", *reload, unit)
        # Our RELOADING=1 carries STATUS=reloading: seeing both at once shows the unit is
        # held in "reloading" by the master's message, not only by ExecReload's kill.
        systemd.wait_show(
            unit,
            lambda s: s["ActiveState"] == "reloading" and "reload" in s["StatusText"],
            what="reloading",
        )
    finally:
        hold.unlink()
    return systemd.wait_show(
        unit, lambda s: s["ActiveState"] == "active" and s["SubState"] == "running", STATE
    )


def stop_cleanly(systemd: UserManager, unit: str, pids: set[int]) -> None:
    systemd.systemctl("stop", unit)
    state = systemd.show(unit, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert state["ActiveState"] in ("inactive", "failed")
    assert state["Result"] == "success", state
    assert state["ExecMainStatus"] == "0", state
    alive = [pid for pid in pids if alive_in_namespace(systemd, pid)]
    assert alive == [], f"processes left after stop: {alive}"


def test_transient_notify_unit(systemd: UserManager) -> None:
    unit = "cotyledon-transient.service"
    systemd.run(
        "systemd-run", "--user", f"--unit={unit}",
        "-p", "Type=notify", "-p", "NotifyAccess=main", "-p", "KillMode=mixed",
        "-p", "TimeoutStopSec=60", "-p", f"Environment=PYTHONPATH={ROOT}",
        "-p", f"StandardOutput=append:{RUNTIME_DIR}/transient.log",
        "-p", "StandardError=inherit",
        sys.executable, NOTIFY_SERVICE, "--workers", "2", "--hold-file", HOLD,
    )  # fmt: skip
    # systemd-run returned once the start job finished, i.e. after READY=1.
    state = systemd.show(unit, *STATE)
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    assert re.search(r"\b2/2\b", state["StatusText"]), state
    pid = master_pid(systemd, "transient.log")
    assert int(state["MainPID"]) == pid
    old_workers = worker_pids(systemd, "transient.log")
    assert len(old_workers) == 2

    # No ExecReload: SIGHUP straight to the master; RELOADING=1 alone moves the unit.
    state = reload_and_wait(systemd, unit, "kill", "--signal=SIGHUP", "--kill-who=main")
    assert int(state["MainPID"]) == pid
    assert re.search(r"\b2/2\b", state["StatusText"]), state
    workers = worker_pids(systemd, "transient.log")
    assert len(workers - old_workers) == 2, "the reload did not restart the workers"

    stop_cleanly(systemd, unit, {pid, *workers})


def test_shipped_notify_unit(systemd: UserManager) -> None:
    unit = "cotyledon-demo.service"
    options = {"--workers 4": f"--workers 3 --hold-file {HOLD}"}
    systemd.install_unit(unit, example_unit(unit, options))
    systemd.install_dropin(unit, output_dropin("demo.log"))
    systemd.systemctl("start", unit)
    state = systemd.show(unit, *STATE, "NotifyAccess", "KillMode", "WatchdogUSec")
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    assert (state["NotifyAccess"], state["KillMode"]) == ("main", "mixed")
    assert re.search(r"\b3/3\b", state["StatusText"]), state
    pid = master_pid(systemd, "demo.log")
    assert int(state["MainPID"]) == pid

    state = reload_and_wait(systemd, unit, "reload")  # ExecReload=kill -HUP $MAINPID
    assert int(state["MainPID"]) == pid
    assert re.search(r"\b3/3\b", state["StatusText"]), state

    stop_cleanly(systemd, unit, {pid, *worker_pids(systemd, "demo.log")})


def test_shipped_socket_units(systemd: UserManager) -> None:
    path = f"{RUNTIME_DIR}/greeter.sock"
    listen = {"ListenStream=127.0.0.1:8080": f"ListenStream={path}"}
    socket_unit = example_unit("cotyledon-greeter.socket", listen)
    systemd.install_unit("cotyledon-greeter.socket", socket_unit)
    systemd.install_unit("cotyledon-greeter.service", example_unit("cotyledon-greeter.service"))
    systemd.install_dropin("cotyledon-greeter.service", output_dropin("greeter.log"))
    systemd.systemctl("start", "cotyledon-greeter.socket")
    assert systemd.show("cotyledon-greeter.service", "ActiveState")["ActiveState"] == "inactive"

    # The first connection starts the service; it waits in the backlog and is served.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(60)
        client.connect(str(systemd.host_path(path)))
        with client.makefile("rb") as reader:
            reply = reader.readline().decode()
    assert re.match(r"hello from worker [01] pid \d+ via web\n", reply), reply
    state = systemd.wait_show(
        "cotyledon-greeter.service",
        lambda s: s["ActiveState"] == "active",
        STATE,
        what="active",
    )
    assert state["SubState"] == "running"
    assert re.search(r"\b2/2\b", state["StatusText"]), state
    pid = master_pid(systemd, "greeter.log")
    assert int(state["MainPID"]) == pid

    stop_cleanly(systemd, "cotyledon-greeter.service", {pid})
    systemd.systemctl("stop", "cotyledon-greeter.socket")


def test_unhealthy_worker_gets_the_unit_restarted(systemd: UserManager) -> None:
    unit = "cotyledon-health.service"
    health = f"{RUNTIME_DIR}/health"
    systemd.host_path(health).write_text("ok")
    systemd.run(
        "systemd-run", "--user", f"--unit={unit}",
        "-p", "Type=notify", "-p", "NotifyAccess=main", "-p", "KillMode=mixed",
        "-p", "WatchdogSec=2", "-p", "Restart=on-failure", "-p", "RestartSec=3",
        "-p", f"Environment=PYTHONPATH={ROOT}",
        "-p", f"StandardOutput=append:{RUNTIME_DIR}/health.log",
        "-p", "StandardError=inherit",
        sys.executable, NOTIFY_SERVICE, "--workers", "2", "--health-file", health,
    )  # fmt: skip
    first = master_pid(systemd, "health.log")
    state = systemd.show(unit, *STATE, "NRestarts")
    assert (state["ActiveState"], state["NRestarts"]) == ("active", "0"), state

    systemd.host_path(health).write_text("fail simulated outage")
    # The master stops pinging; WatchdogSec later systemd kills it and schedules a restart.
    state = systemd.wait_show(
        unit,
        lambda s: s["Result"] == "watchdog",
        (*STATE, "NRestarts"),
        what="watchdog timeout",
    )
    systemd.host_path(health).write_text("ok")
    state = systemd.wait_show(
        unit,
        lambda s: s["NRestarts"] == "1" and s["ActiveState"] == "active",
        (*STATE, "NRestarts"),
        what="restarted",
    )
    second = master_pid(systemd, "health.log", after=1)
    assert second != first
    assert int(state["MainPID"]) == second
    stop_cleanly(systemd, unit, {second})


def test_notify_reload_unit(systemd: UserManager) -> None:
    version = real_systemd.systemd_version()
    if version < 253:
        pytest.skip(f"Type=notify-reload needs systemd 253+, this is {version}")
    unit = "cotyledon-demo-reload.service"
    systemd.install_unit(unit, example_unit(unit, {"--workers 4": "--workers 2"}))
    systemd.install_dropin(unit, output_dropin("reload.log"))
    systemd.systemctl("start", unit)
    pid = master_pid(systemd, "reload.log")
    # notify-reload: `systemctl reload` returns only after RELOADING=1 ... READY=1.
    systemd.systemctl("reload", unit)
    state = systemd.show(unit, *STATE)
    assert (state["ActiveState"], state["SubState"]) == ("active", "running"), state
    assert int(state["MainPID"]) == pid
    stop_cleanly(systemd, unit, {pid})


def test_shipped_wsgi_socket_units(systemd: UserManager) -> None:
    """cotyledon-wsgi under its shipped .socket/.service pair: no --bind needed beyond
    ``systemd:web``, the first request (which started the unit) is answered, READY=1 comes
    once both workers run, and a stop leaves nothing behind."""
    path = f"{RUNTIME_DIR}/wsgi.sock"
    socket_unit = example_unit(
        "cotyledon-wsgi.socket", {"ListenStream=127.0.0.1:8000": f"ListenStream={path}"}
    )
    service_unit = example_unit(
        "cotyledon-wsgi.service",
        {
            "/opt/cotyledon/.venv/bin/cotyledon-wsgi": f"{sys.executable} -m cotyledon.wsgi",
            "WorkingDirectory=/opt/cotyledon": f"WorkingDirectory={ROOT}",
        },
    )
    systemd.install_unit("cotyledon-wsgi.socket", socket_unit)
    systemd.install_unit("cotyledon-wsgi.service", service_unit)
    systemd.install_dropin("cotyledon-wsgi.service", output_dropin("wsgi.log"))
    systemd.systemctl("start", "cotyledon-wsgi.socket")
    assert systemd.show("cotyledon-wsgi.service", "ActiveState")["ActiveState"] == "inactive"

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(60)
        client.connect(str(systemd.host_path(path)))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        with client.makefile("rb") as reader:
            status = reader.readline().decode()
    assert status.startswith("HTTP/1.1 200 "), status
    state = systemd.wait_show(
        "cotyledon-wsgi.service", lambda s: s["ActiveState"] == "active", STATE, what="active"
    )
    assert state["SubState"] == "running"
    assert re.search(r"\b2/2\b", state["StatusText"]), state
    log = systemd.read(f"{RUNTIME_DIR}/wsgi.log")
    assert f"Listening at unix:{path} (2 workers" in log, log
    stop_cleanly(systemd, "cotyledon-wsgi.service", {int(state["MainPID"])})
    systemd.systemctl("stop", "cotyledon-wsgi.socket")
