"""A real, private ``systemd --user`` manager for the ``@pytest.mark.systemd`` tier.

PID 1 of the test machine is not systemd, so (spec/systemd.md 1.8) we boot a user manager
inside ``unshare --mount --pid --fork --mount-proc`` with a private tmpfs on ``/run``
(``/run/systemd/system`` marks "booted with systemd"; ``/run/user/0`` is its runtime dir,
unit files go to ``/run/user/0/config/systemd/user``), then drive it with ``nsenter``.
Nothing is written outside that tmpfs, and tearing down the namespace's init kills every
process in it, so nothing can survive the fixture.

The manager logs at debug level to a file: its state-change lines (``Changed running ->
reload``) are what tests synchronise on, instead of polling ``systemctl show`` for a
state that may be too short-lived to catch.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.support.processes import ROOT, Program, children_of, wait_for

SYSTEMD = "/lib/systemd/systemd"
RUNTIME_DIR = "/run/user/0"
UNIT_DIR = f"{RUNTIME_DIR}/config/systemd/user"
MANAGER_LOG = f"{RUNTIME_DIR}/manager.log"
BOOT_TIMEOUT = 30.0
COMMAND_TIMEOUT = 30.0

# Runs as PID 1 of the new pid namespace. It must stay bash (not exec) so it reaps, and it
# exits when the manager exits.
BOOT_SCRIPT = f"""
set -eu
mount -t tmpfs -o mode=755 cotyledon-run /run
mkdir -p /run/systemd/system {RUNTIME_DIR}
chmod 700 {RUNTIME_DIR}
mkdir -p {UNIT_DIR}
export XDG_RUNTIME_DIR={RUNTIME_DIR} XDG_CONFIG_HOME={RUNTIME_DIR}/config
{SYSTEMD} --user --log-level=debug --log-target=console \\
    >{MANAGER_LOG} 2>&1 &
manager=$!
for _ in $(seq 1 300); do
    state=$(systemctl --user is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break;; esac
    sleep 0.05
done
echo "manager-state=$state manager-pid=$manager"
wait $manager || true
"""


class SystemdUnavailable(Exception):
    """Why this machine cannot run the real-systemd tier (the tests skip with it)."""


def unavailable_reason() -> str | None:
    """None if a private user manager can be tried here, else a reason to skip."""
    if os.geteuid() != 0:
        return "needs root (unshare --mount --pid and a private /run)"
    for tool in ("unshare", "nsenter", "systemctl", "systemd-run"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not os.access(SYSTEMD, os.X_OK):
        return f"{SYSTEMD} is not installed"
    return None


def systemd_version() -> int:
    out = subprocess.run(
        [SYSTEMD, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else 0


class UserManager:
    """One private ``systemd --user`` manager; see the module docstring."""

    def __init__(self) -> None:
        self.program = Program(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
             "bash", "-c", BOOT_SCRIPT],
        )  # fmt: skip
        try:
            match = self.program.wait_line(r"manager-state=(\S*) manager-pid=(\d+)", BOOT_TIMEOUT)
        except AssertionError as exc:
            self.close()
            raise SystemdUnavailable(f"the user manager did not boot: {exc}") from None
        if match.group(1) not in ("running", "degraded"):
            log = self.read(MANAGER_LOG)
            self.close()
            raise SystemdUnavailable(f"user manager state {match.group(1)!r}:\n{log[-3000:]}")
        self.init_pid = children_of(self.program.pid)[0]

    # --- inside the namespace ------------------------------------------------------------

    def host_path(self, path: str) -> Path:
        """``path`` inside the namespace, seen from the host (through /proc/<pid>/root)."""
        return Path(f"/proc/{self.init_pid}/root{path}")

    def read(self, path: str) -> str:
        try:
            return self.host_path(path).read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def manager_log(self) -> str:
        return self.read(MANAGER_LOG)

    def run(
        self, *argv: str, check: bool = True, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace, as the manager's user, with its runtime dir."""
        env = dict(os.environ)
        env.update(XDG_RUNTIME_DIR=RUNTIME_DIR, XDG_CONFIG_HOME=f"{RUNTIME_DIR}/config")
        result = subprocess.run(
            ["nsenter", "--target", str(self.init_pid), "--mount", "--pid", "--", *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{argv} exited {result.returncode}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}\nmanager log tail:\n{self.manager_log()[-3000:]}"
            )
        return result

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--user", "--no-pager", *args, check=check)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.systemctl("show", unit, *(f"--property={p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_show(
        self,
        unit: str,
        predicate: Callable[[dict[str, str]], bool],
        props: tuple[str, ...] = ("ActiveState", "SubState", "Result", "StatusText"),
        timeout: float = COMMAND_TIMEOUT,
        what: str = "unit state",
    ) -> dict[str, str]:
        last: dict[str, str] = {}

        def check() -> bool:
            last.update(self.show(unit, *props))
            return predicate(last)

        try:
            wait_for(check, timeout=timeout, what=f"{unit}: {what}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last: {last}\n{self.manager_log()[-3000:]}") from None
        return dict(last)

    def wait_log(self, pattern: str, timeout: float = COMMAND_TIMEOUT, start: int = 0) -> int:
        """Wait for a manager log line matching ``pattern`` after offset ``start``; return
        the offset just after the match."""
        regex = re.compile(pattern)
        found: list[int] = []

        def check() -> bool:
            match = regex.search(self.manager_log(), start)
            if match:
                found.append(match.end())
            return bool(match)

        try:
            wait_for(check, timeout=timeout, what=f"manager log /{pattern}/")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.manager_log()[start:][-4000:]}") from None
        return found[0]

    def install_unit(self, name: str, text: str) -> None:
        """Write a unit file (and reload the manager)."""
        self.host_path(f"{UNIT_DIR}/{name}").write_text(text)
        self.systemctl("daemon-reload")

    def install_dropin(self, unit: str, text: str) -> None:
        dropin = self.host_path(f"{UNIT_DIR}/{unit}.d")
        dropin.mkdir(exist_ok=True)
        (dropin / "test.conf").write_text(text)
        self.systemctl("daemon-reload")

    # --- teardown -----------------------------------------------------------------------

    def close(self) -> None:
        """Ask the manager to exit (it stops its units), then kill the namespace's init."""
        if self.program.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.systemctl("exit", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.program.proc.wait(timeout=15)
        if self.program.proc.poll() is None:
            # --kill-child: unshare's death SIGKILLs the namespace init, and with it the ns.
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.program.pid, signal.SIGKILL)
        self.program.kill_tree()


def example_unit(name: str, replace: dict[str, str] | None = None) -> str:
    """A shipped unit file of examples/systemd with its ExecStart pointed at this checkout
    (and ``replace`` applied: ``{"old text": "new text"}``)."""
    text = (ROOT / "examples" / "systemd" / name).read_text()
    text = text.replace("/usr/bin/python3 /opt/cotyledon/", f"{sys.executable} {ROOT}/")
    for old, new in (replace or {}).items():
        assert old in text, f"{old!r} not in {name}"
        text = text.replace(old, new)
    return text


def output_dropin(log_name: str) -> str:
    """Send the program's output to a file we can read, and make imports work."""
    return (
        "[Service]\n"
        f"Environment=PYTHONPATH={ROOT} PYTHONUNBUFFERED=1\n"
        f"StandardOutput=append:{RUNTIME_DIR}/{log_name}\n"
        "StandardError=inherit\n"
    )


@contextlib.contextmanager
def user_manager() -> Iterator[UserManager]:
    manager = UserManager()
    try:
        yield manager
    finally:
        manager.close()
