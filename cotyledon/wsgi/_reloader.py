"""Development reloader: watch the app's files, compile-check changes, ask for a cycle.

Job: for ``--reload``, watch the source files of every imported module and the
``--reload-extra-file`` paths (globs allowed); when some change, compile the changed
``.py`` files (no bytecode written) and, if they all compile, call ``on_change`` with the
list of files changed since the last successful cycle; if one does not, call
``on_error`` (default: log it) and do not cycle, so the old workers keep serving until the
file is fixed.

Two backends: ``watchfiles`` (inotify, the ``reload`` extra) when importable, else a thread
that polls ``os.stat`` every ``interval`` seconds. With watchfiles, inotify only wakes the
thread (and at least every ``interval`` to pick up new imports); ``os.stat`` stamps decide
what changed in both, so a write made while a watch is being armed is not lost. Both
debounce: a burst of writes (an editor saving several files) gives one call.

Never watched, even when a glob matches them: the server's own log files (the
``ignore_paths`` given, e.g. ``--access-log-file`` and ``--error-log-file``, and every
``logging.FileHandler`` of the process), ``__pycache__`` and ``.git`` (and what lies
under them), and editor files (``*.swp``, ``*.swx``, ``*~``, ``.#*``, vim's ``4913``
probe). watchfiles wakes the thread only for watched files, and its own loggers are set
to WARNING: its "N changes detected" INFO line, written to a log file in a watched
directory, was itself a change, forever.

Where it runs: in a worker (the master never imports the app), as a daemon thread; its
``on_change`` sends SIGHUP to the master, whose rollout coalesces duplicates. Must not:
import or reload application code itself, signal anything itself, or run in the master's
event loop.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

LOG = logging.getLogger(__name__)

ChangeCallback = Callable[[list[str]], None]
ErrorCallback = Callable[[str, BaseException], None]
_Stamp = tuple[int, int]  # (mtime_ns, size); (-1, -1) when missing


#: Directories whose content is never source (path components).
IGNORED_DIRS = frozenset({"__pycache__", ".git"})
#: Editor swap, backup and lock files (basename patterns); 4913: vim's write probe.
IGNORED_NAMES = ("*.swp", "*.swx", "*.swo", "*~", ".#*", "4913")


def is_ignored(path: str, ignore_paths: Iterable[str] = ()) -> bool:
    """True for a path the reloader never watches (see the module docstring)."""
    absolute = os.path.abspath(path)
    if absolute in {os.path.abspath(p) for p in ignore_paths}:
        return True
    parts = absolute.split(os.sep)
    if IGNORED_DIRS.intersection(parts):
        return True
    return any(fnmatch.fnmatchcase(parts[-1], pattern) for pattern in IGNORED_NAMES)


def log_file_paths() -> list[str]:
    """Paths of this process's logging file handlers (``--error-log-file``)."""
    from cotyledon.wsgi._logfiles import file_handlers  # noqa: PLC0415

    return [h.baseFilename for h in file_handlers()]


def imported_files() -> list[str]:
    """Source files of the modules imported now (``.py`` from ``.pyc`` where possible)."""
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        files.add(os.path.abspath(path))
    return sorted(files)


def expand_paths(patterns: Iterable[str]) -> list[str]:
    """Absolute paths for ``patterns`` (files or globs; a missing plain file is kept)."""
    out: set[str] = set()
    for pattern in patterns:
        matches = glob.glob(pattern, recursive=True)
        if not matches and not any(c in pattern for c in "*?["):
            matches = [pattern]
        out.update(os.path.abspath(m) for m in matches)
    return sorted(out)


def check_syntax(paths: Iterable[str]) -> tuple[str, BaseException] | None:
    """Compile every ``.py`` path (nothing written); the first failure, or None."""
    for path in paths:
        if not path.endswith(".py"):
            continue
        try:
            source = Path(path).read_bytes()
        except FileNotFoundError:
            continue  # deleted: the import in the new workers will tell
        except OSError as exc:
            return path, exc
        try:
            compile(source, path, "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
            return path, exc
    return None


def describe_error(path: str, exc: BaseException) -> str:
    """``app.py line 3: invalid syntax`` for the log."""
    if isinstance(exc, SyntaxError):
        where = f" line {exc.lineno}" if exc.lineno else ""
        return f"{path}{where}: {exc.msg}"
    return f"{path}: {exc}"


def _log_error(path: str, exc: BaseException) -> None:
    LOG.error("Reload skipped, the old workers keep serving: %s", describe_error(path, exc))


def _stamp(path: str) -> _Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_mtime_ns, st.st_size)


def watchfiles_available() -> bool:
    """True when the ``watchfiles`` package can be imported."""
    try:
        import watchfiles  # noqa: F401, PLC0415 - optional dependency
    except ImportError:
        return False
    return True


class Reloader:
    """Watches files in a daemon thread and reports compile-checked changes.

    :param on_change: called (from the reloader thread) with the changed files.
    :param on_error: called with ``(path, exception)`` when a changed file does not compile;
        default: an ERROR log line.
    :param extra_paths: ``--reload-extra-file`` values (files or globs).
    :param interval: seconds between polls (poll backend) and between refreshes of the
        module list (watchfiles backend).
    :param backend: ``"auto"`` (watchfiles if importable), ``"watchfiles"`` or ``"poll"``.
    :param module_files: what to watch besides ``extra_paths`` (default: imported modules).
    :param ignore_paths: files never watched (the server's log files; None entries are
        skipped), besides the process's logging file handlers and :func:`is_ignored`'s
        directories and editor files.
    """

    def __init__(
        self,
        on_change: ChangeCallback,
        on_error: ErrorCallback | None = None,
        *,
        extra_paths: Iterable[str] = (),
        interval: float = 1.0,
        backend: str = "auto",
        module_files: Callable[[], Iterable[str]] = imported_files,
        ignore_paths: Iterable[str | None] = (),
    ) -> None:
        if backend not in ("auto", "watchfiles", "poll"):
            msg = f"'backend' must be 'auto', 'watchfiles' or 'poll', not: {backend!r}"
            raise ValueError(msg)
        if backend == "auto":
            backend = "watchfiles" if watchfiles_available() else "poll"
        self.backend = backend
        self._on_change = on_change
        self._on_error = on_error or _log_error
        self._extra = list(extra_paths)
        self._interval = interval
        self._module_files = module_files
        self._ignore = [p for p in ignore_paths if p and p != "-"]
        self._stamps: dict[str, _Stamp] = {}
        self._pending: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Take the baseline (unless :meth:`scan_nowait` already did), then watch in a
        daemon thread. Take it right after importing the app: a change made between the
        import and the baseline would be missed."""
        if not self._stamps:
            self.scan_nowait()
        target = self._run_watchfiles if self.backend == "watchfiles" else self._run_poll
        self._thread = threading.Thread(target=target, name="cotyledon-reloader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- one step (also what tests drive) --------------------------------------------------

    def watched(self) -> list[str]:
        """Every file watched now (ignored ones left out)."""
        ignore = [*self._ignore, *log_file_paths()]
        paths = set(self._module_files()) | set(expand_paths(self._extra))
        return sorted(p for p in paths if not is_ignored(p, ignore))

    def _wakes(self, files: set[str]) -> Callable[[object, str], bool]:
        """watchfiles' filter: wake for a watched file or a new match of a glob."""
        globs = [os.path.abspath(p) for p in self._extra if any(c in p for c in "*?[")]
        ignore = [*self._ignore, *log_file_paths()]

        def wakes(_change: object, path: str) -> bool:
            path = os.path.abspath(path)
            if path in files:
                return True
            matches = any(fnmatch.fnmatchcase(path, pattern) for pattern in globs)
            return matches and not is_ignored(path, ignore)

        return wakes

    def scan_nowait(self) -> list[str]:
        """Stat every watched file once; return those changed since the previous scan.

        A file seen for the first time is recorded, not reported.
        """
        changed = []
        for path in self.watched():
            stamp = _stamp(path)
            previous = self._stamps.get(path)
            self._stamps[path] = stamp
            if previous is not None and previous != stamp:
                changed.append(path)
        return changed

    def handle_changes(self, paths: Iterable[str]) -> bool:
        """Compile-check and report; True when ``on_change`` was called."""
        self._pending.update(paths)
        if not self._pending:
            return False
        failure = check_syntax(sorted(self._pending))
        if failure is not None:
            self._on_error(*failure)
            return False
        batch, self._pending = sorted(self._pending), set()
        self._on_change(batch)
        return True

    # -- backends --------------------------------------------------------------------------

    def _run_poll(self) -> None:
        burst: list[str] = []
        while not self._stop.wait(self._interval):
            changed = self.scan_nowait()
            if changed:
                burst.extend(changed)  # wait for a quiet scan: editors write in steps
                continue
            if burst:
                self._safely(self.handle_changes, burst)
                burst = []

    def _run_watchfiles(self) -> None:
        import watchfiles  # noqa: PLC0415 - optional dependency

        for name in ("watchfiles", "watchfiles.main"):  # "N changes detected" is INFO
            logging.getLogger(name).setLevel(logging.WARNING)
        while not self._stop.is_set():
            files = set(self.watched())
            dirs = sorted({os.path.dirname(f) for f in files if os.path.isdir(os.path.dirname(f))})
            if not dirs:
                self._stop.wait(self._interval)
                continue
            for _changes in watchfiles.watch(
                *dirs,
                watch_filter=self._wakes(files),
                debounce=300,
                step=50,
                stop_event=self._stop,
                rust_timeout=max(int(self._interval * 1000), 1),
                yield_on_timeout=True,
                recursive=False,
                raise_interrupt=False,
            ):
                # inotify wakes us, stat decides: a change made while the watch was being
                # (re)armed is caught by the scan at the next wake-up or timeout.
                changed = self.scan_nowait()
                if changed:
                    self._safely(self.handle_changes, changed)
                if set(self.watched()) != files:
                    break  # new imports or new glob matches: watch again

    def _safely(self, handler: Callable[[list[str]], bool], paths: list[str]) -> None:
        # The thread must outlive a failing callback: log it and keep watching.
        try:
            handler(paths)
        except Exception:
            LOG.exception("Reloader callback failed")
