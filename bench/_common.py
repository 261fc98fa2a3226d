"""Shared plumbing for the benchmarks: venvs, processes, deadlines, /proc readings, tables.

This module only runs and measures things; it decides nothing about what a benchmark
measures and never asserts a timing. Every wait has a deadline, every process it starts
lives in its own session and is torn down (SIGTERM to the group, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import venv
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENVS = BENCH / ".venvs"
RESULTS = BENCH / "results"

# Peers are pinned so that figures from two runs compare.
PEERS: dict[str, list[str]] = {
    "cotyledon22": ["cotyledon==2.2.0"],
    "gunicorn": ["gunicorn==27.0.1"],
    "waitress": ["waitress==3.0.2"],
    "plot": ["matplotlib==3.11.2"],
}


class BenchError(RuntimeError):
    """A benchmark could not run (missing tool, server that never came up...)."""


def short(exc: BaseException) -> str:
    """The last line of an error (a traceback's last line says what went wrong)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def log(msg: str) -> None:
    """Progress on stderr, so stdout stays the tables."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_venv(name: str) -> Path:
    """Create ``bench/.venvs/<name>`` with its pinned packages once; return its python."""
    requirements = PEERS[name]
    home = VENVS / name
    python = home / "bin" / "python"
    stamp = home / ".bench-requirements"
    wanted = "\n".join(requirements)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    log(f"creating venv {home} with {' '.join(requirements)}")
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        check=True,
    )
    stamp.write_text(wanted)
    return python


def venv_bin(name: str, program: str) -> Path:
    """Path of a console script inside a peer venv (creating the venv if needed)."""
    return ensure_venv(name).parent / program


def require_wrk() -> str:
    """Return the path of wrk or explain how to install it."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(directory) / "wrk"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    msg = "wrk is not installed: run `apt-get update && apt-get install -y wrk` (Debian)"
    raise BenchError(msg)


# -- processes ---------------------------------------------------------------------------------


class Server:
    """One program started in its own session; output goes to a log file."""

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        pass_fds: Sequence[int] = (),
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        full_env = dict(os.environ)
        full_env.pop("PYTHONPATH", None)
        full_env.update(env or {})
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            pass_fds=tuple(pass_fds),
            cwd=str(cwd or BENCH),
            start_new_session=True,
        )
        self.pid = self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float = 30.0) -> str:
        """Wait until the log contains ``needle``; return the log."""

        def found() -> str | None:
            text = self.output()
            if needle in text:
                return text
            if self.proc.poll() is not None:
                raise BenchError(f"{self.argv[0]} exited early:\n{text[-3000:]}")
            return None

        return str(wait_for(found, timeout, f"{needle!r} in {self.log_path.name}"))

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the session, wait with a deadline, SIGKILL what is left."""
        sid = self.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
            self.proc.wait(timeout)
        with contextlib.suppress(ConditionTimeout):
            wait_for(lambda: not session_pids(sid), timeout, "session to empty")
        for pid in session_pids(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ConditionTimeout(BenchError):
    """A condition did not come true before its deadline."""


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Call ``predicate`` (1 ms to 50 ms apart) until truthy; raise on the deadline."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def wait_pids_gone(pids: Iterable[int], timeout: float) -> float:
    """Block on pidfds until every pid has exited; return the monotonic time of the last."""
    fds = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            fds.append(os.pidfd_open(pid))
    deadline = time.monotonic() + timeout
    try:
        pending = set(fds)
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConditionTimeout(f"{len(pending)} processes still alive after {timeout}s")
            ready, _, _ = select.select(list(pending), [], [], left)
            pending.difference_update(ready)
        return time.monotonic()
    finally:
        for fd in fds:
            os.close(fd)


def bind_socket() -> socket.socket:
    """A listening TCP socket on 127.0.0.1, port chosen by the kernel, inheritable."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def wait_http(port: int, timeout: float = 30.0, server: Server | None = None) -> None:
    """Wait until a GET / on 127.0.0.1:port answers with a status line.

    With ``server``, give up as soon as that program has exited.
    """
    request = b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"

    def answered() -> bool:
        if server is not None and server.proc.poll() is not None:
            raise BenchError(f"{server.argv[0]} exited early:\n{server.output()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.sendall(request)
                return conn.recv(16).startswith(b"HTTP/")
        except OSError:
            return False

    wait_for(answered, timeout, f"HTTP answer on 127.0.0.1:{port}")


# -- /proc -------------------------------------------------------------------------------------


def session_pids(sid: int) -> list[int]:
    """Every live (non-zombie) process whose session id is ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] != b"Z":
            pids.append(int(entry))
    return pids


def children_of(pid: int) -> list[int]:
    """Direct live children of ``pid`` (all threads)."""
    result: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
                result.extend(int(p) for p in text.split())
    return [p for p in result if _state(p) not in ("Z", "")]


def workers_of(pid: int) -> list[int]:
    """:func:`children_of` without a cotyledon.wsgi zygote (``--preload``: it forks the
    workers and serves nothing; its title ends with ": zygote")."""
    return [p for p in children_of(pid) if not _is_zygote(p)]


def _is_zygote(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0")
    except OSError:
        return False
    return not cmdline or cmdline.endswith(b": zygote")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    return stat[stat.rindex(b")") + 2 :].split()[0].decode()


def pss_kib(pid: int) -> int:
    """PSS of one process in KiB (shared pages count 1/n per process sharing them)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, USS) of one process in KiB, from /proc/<pid>/smaps_rollup."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            values[key] = int(parts[0])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return values.get("Rss", 0), uss


def context_switches(pid: int) -> int:
    """Voluntary + involuntary context switches summed over every thread of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time consumed so far by ``pids`` (exited ones count as 0)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2 :].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


# -- figures and tables ------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, theirs: float) -> str:
    """``ours / theirs`` formatted, or '-' when undefined."""
    if not theirs or math.isnan(ours) or math.isnan(theirs):
        return "-"
    return f"{ours / theirs:.2f}x"


def fmt(value: float, unit: str = "") -> str:
    if math.isnan(value):
        return "n/a"
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value)}{unit}"
    if abs(value) >= 100:
        return f"{value:.0f}{unit}"
    if abs(value) >= 10:
        return f"{value:.1f}{unit}"
    return f"{value:.2f}{unit}"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A Markdown table (also readable as plain text)."""
    rows = [list(map(str, r)) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def machine() -> str:
    """One line describing where the figures come from."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    log(f"{label}: {time.monotonic() - start:.1f}s")


def markdown_to_rst(text: str, width: int = 92) -> str:
    """Turn our Markdown results (headings, pipe tables, paragraphs) into reST.

    Headings below the top level become reST sections (## -> '-', ### -> '~'), pipe
    tables become ``csv-table`` directives, paragraphs are wrapped to ``width``.
    """
    out: list[str] = []
    table_rows: list[list[str]] = []

    def flush_table() -> None:
        if not table_rows:
            return
        out.extend([".. csv-table::", "   :header-rows: 1", ""])
        out.extend(
            "   " + ", ".join('"' + c.replace('"', '""') + '"' for c in cells)
            for cells in table_rows
        )
        out.append("")
        table_rows.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table_rows.append(cells)
            continue
        flush_table()
        if line.startswith("# "):
            continue
        if line.startswith(("## ", "### ")):
            level, _, title = line.partition(" ")
            out.extend([title, ("-" if level == "##" else "~") * len(title)])
        elif line.strip():
            out.extend(
                textwrap.wrap(
                    line.replace("`", "``"), width, break_on_hyphens=False, break_long_words=False
                )
                or [""]
            )
        else:
            out.append("")
    flush_table()
    return "\n".join(out) + "\n"
