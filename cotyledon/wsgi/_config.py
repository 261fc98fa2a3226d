"""The WSGI server's settings: one frozen, typed dataclass, every option declared once.

Each field of :class:`ServerConfig` carries its command-line flags, help text, parser and
validator in its metadata, so the CLI (``_cli``), the API (``add(**options)``), the
``--print-config`` output and the generated reference page (``doc/source/cli.rst``, built
with ``python -m cotyledon.wsgi._config --rst``) all come from the same declaration.

This module is pure: it opens no socket, imports no app and reads the environment only
when a caller hands it a mapping (:func:`environ_defaults`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

ACCESS_LOG_FORMATS = ("combined", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
FORWARDED_HEADERS = ("x-forwarded", "forwarded")


class ConfigError(ValueError):
    """A setting has a wrong value; the message names the setting (``option``)."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


@dataclasses.dataclass(frozen=True)
class Cli:
    """How one setting appears on the command line and in the docs."""

    flags: tuple[str, ...]
    help: str
    section: str
    parse: Callable[[str], Any] | None = None  # None: a boolean switch
    check: Callable[[Any], None] | None = None
    metavar: str | None = None
    repeat: bool = False  # appended to a tuple, flag may be given many times
    negative: str | None = None  # "--no-x" flag of a boolean switch
    env: str | None = None  # environment variable giving the default (documented)
    #: The default for people, when the value says too little; ``{q}`` wraps literals.
    default_doc: str | None = None


def _opt(default: T, cli: Cli) -> T:
    field: T = dataclasses.field(default=default, metadata={"cli": cli})
    return field


# --- value parsers (str -> value) and checks (value -> None, raises ValueError) -----------


def _parse_int(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.lstrip("-").isdigit():
        raise ValueError(f"must be an integer, not: {text!r}")
    return int(text)


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"must be a number of seconds, not: {text!r}") from None
    return value


_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def _parse_size(text: str) -> int:
    """``536870912``, ``512M``, ``512MiB``, ``1G``, ``1.5G`` -> bytes (units are 1024-based)."""
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = cleaned[-1:] if cleaned[-1:] in "KMG" else ""
    number = cleaned[: len(cleaned) - len(unit)]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"must be a size such as 512M or 1G, not: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a size such as 512M or 1G, not: {text!r}")
    return int(value * _SIZE_UNITS[unit])


def _parse_ip_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _at_least(minimum: float) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number >= {minimum}, not: {value!r}")
        if math.isnan(value) or value < minimum:
            raise ValueError(f"must be >= {minimum}, not: {value!r}")

    return check


def _int_at_least(minimum: int) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"must be an int >= {minimum}, not: {value!r} ({type(value).__name__})"
            )
        if value < minimum:
            raise ValueError(f"must be an int >= {minimum}, not: {value!r}")

    return check


def _one_of(choices: Sequence[str]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not: {value!r}")

    return check


def _check_str(value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not: {value!r} ({type(value).__name__})")


def _check_optional_str(value: Any) -> None:
    if value is not None:
        _check_str(value)


def _check_str_tuple(value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a tuple of strings, not: {value!r}")


def _optional_int_at_least(minimum: int) -> Callable[[Any], None]:
    check = _int_at_least(minimum)

    def optional(value: Any) -> None:
        if value is not None:
            check(value)

    return optional


def _optional_port(value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"must be a port number 0-65535, not: {value!r}")


def _check_bool(value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"must be True or False, not: {value!r}")


def _check_root_path(value: Any) -> None:
    _check_str(value)
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError(f"must start with '/' and not end with '/', not: {value!r}")


def _check_ips(value: Any) -> None:
    _check_str_tuple(value)
    for item in value:
        if item == "*":
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or network: {item!r}") from None


SOCKET = "Sockets"
WORKERS = "Workers and threads"
HTTP = "HTTP and limits"
PROXY = "Proxies"
APP = "Application"
LOGGING = "Logging"
LIFECYCLE = "Worker replacement and recycling"
STATUS = "Status page"
SECTIONS = (SOCKET, WORKERS, LIFECYCLE, STATUS, HTTP, PROXY, APP, LOGGING)


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Every setting of the WSGI server; invalid values raise :class:`ConfigError`.

    Build it with keywords (``ServerConfig(workers=4, threads=8)``); each field is described
    in the CLI reference. ``bind=()`` means the environment default: systemd sockets when
    ``LISTEN_FDS`` is set, ``0.0.0.0:$PORT`` when ``PORT`` is set, else ``127.0.0.1:8000``.
    """

    bind: tuple[str, ...] = _opt(
        (),
        Cli(
            ("-b", "--bind"),
            "Address to listen on; repeat for several. host:port, [v6addr]:port, unix:/path, "
            "fd://N, or systemd.",
            SOCKET,
            parse=str,
            check=_check_str_tuple,
            metavar="ADDRESS",
            repeat=True,
            env="PORT",
            default_doc="systemd sockets, else {q}0.0.0.0:$PORT{q}, else {q}127.0.0.1:8000{q}",
        ),
    )
    backlog: int = _opt(
        2048,
        Cli(
            ("--backlog",),
            "listen() backlog of each socket.",
            SOCKET,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    workers: int = _opt(
        1,
        Cli(
            ("-w", "--workers"),
            "Number of worker processes.",
            WORKERS,
            _parse_int,
            _int_at_least(1),
            "N",
            env="WEB_CONCURRENCY",
            default_doc="{q}$WEB_CONCURRENCY{q}, else {q}1{q}",
        ),
    )
    threads: int = _opt(
        8,
        Cli(
            ("-t", "--threads"),
            "Request-handling threads in each worker.",
            WORKERS,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    max_queue: int = _opt(
        128,
        Cli(
            ("--max-queue",),
            "Requests a worker queues when all its threads are busy; one more is answered "
            "at once with 503 Service Unavailable.",
            WORKERS,
            _parse_int,
            _int_at_least(0),
            "N",
        ),
    )
    max_connections: int = _opt(
        1000,
        Cli(
            ("--max-connections",),
            "Open client connections per worker; at the limit the worker stops accepting "
            "and leaves new connections to the other workers.",
            WORKERS,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    graceful_timeout: float = _opt(
        30.0,
        Cli(
            ("--graceful-timeout",),
            "Seconds a stopping worker has to finish its in-flight requests. On SIGTERM the "
            "whole stop counts, --shutdown-delay included.",
            WORKERS,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    shutdown_delay: float = _opt(
        0.0,
        Cli(
            ("--shutdown-delay",),
            "Seconds the server keeps accepting and serving after SIGTERM while /readyz "
            "answers 503, so that load balancers stop sending before anything closes; then "
            "the listening sockets close and in-flight requests finish. Part of "
            "--graceful-timeout.",
            WORKERS,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    max_surge: int = _opt(
        1,
        Cli(
            ("--max-surge",),
            "Workers replaced at the same time on SIGHUP and when recycling; each old worker "
            "keeps serving until its replacement accepts connections.",
            LIFECYCLE,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    start_timeout: float = _opt(
        60.0,
        Cli(
            ("--start-timeout",),
            "Seconds a replacement worker has to start serving; past that, or if it dies "
            "first, the replacement is aborted and the old worker keeps serving.",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0.001),
            "SECONDS",
        ),
    )
    max_restarts: int | None = _opt(
        None,
        Cli(
            ("--max-restarts",),
            "Give up when workers die and are restarted more than N times within "
            "--restart-period seconds: the server stops with exit status 3 and says why "
            "(log, sd-notify STATUS=).",
            LIFECYCLE,
            _parse_int,
            _optional_int_at_least(0),
            "N",
            default_doc="never give up (a pause when workers die too fast)",
        ),
    )
    restart_period: float = _opt(
        5.0,
        Cli(
            ("--restart-period",),
            "The window of --max-restarts, in seconds.",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0.001),
            "SECONDS",
        ),
    )
    max_requests: int = _opt(
        0,
        Cli(
            ("--max-requests",),
            "Replace a worker after it has served this many requests (0: never).",
            LIFECYCLE,
            _parse_int,
            _int_at_least(0),
            "N",
        ),
    )
    max_requests_jitter: int = _opt(
        0,
        Cli(
            ("--max-requests-jitter",),
            "Add a random 0..N to each worker's --max-requests, so that workers do not all "
            "go at once.",
            LIFECYCLE,
            _parse_int,
            _int_at_least(0),
            "N",
        ),
    )
    max_age: float = _opt(
        0.0,
        Cli(
            ("--max-age",),
            "Replace a worker after it has run this many seconds (0: never).",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    max_age_jitter: float = _opt(
        0.0,
        Cli(
            ("--max-age-jitter",),
            "Add a random 0..SECONDS to each worker's --max-age.",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    max_memory: int = _opt(
        0,
        Cli(
            ("--max-memory",),
            "Replace a worker whose own memory (USS: the pages no other process shares) "
            "passes this size, such as 512M or 1G (0: never).",
            LIFECYCLE,
            _parse_size,
            _int_at_least(0),
            "SIZE",
        ),
    )
    reload: bool = _opt(
        False,
        Cli(
            ("--reload",),
            "Development: when a source file of the app (any imported module) or a "
            "--reload-extra-file changes and compiles, replace the workers one by one. "
            "Implies --no-preload (each worker imports the app).",
            LIFECYCLE,
            check=_check_bool,
        ),
    )
    reload_extra_file: tuple[str, ...] = _opt(
        (),
        Cli(
            ("--reload-extra-file",),
            "More files to watch with --reload (templates, configuration); repeatable. "
            "Globs are allowed, recursive ones too.",
            LIFECYCLE,
            str,
            _check_str_tuple,
            "PATH",
            repeat=True,
        ),
    )
    timeout: float = _opt(
        30.0,
        Cli(
            ("--timeout",),
            "A worker silent for this many seconds (its event loop stuck, or the process "
            "stopped) has its thread stacks written to the log, is killed and replaced "
            "(0: never).",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    memory_check_interval: float = _opt(
        5.0,
        Cli(
            ("--memory-check-interval",),
            "Seconds between two measures of a worker's memory for --max-memory.",
            LIFECYCLE,
            _parse_seconds,
            _at_least(0.01),
            "SECONDS",
        ),
    )
    status_port: int | None = _opt(
        None,
        Cli(
            ("--status-port",),
            "Serve the status page on this port: / (HTML), /json, /metrics (Prometheus) "
            "and /_sysinfo.",
            STATUS,
            _parse_int,
            _optional_port,
            "PORT",
            default_doc="off",
        ),
    )
    status_host: str = _opt(
        "127.0.0.1",
        Cli(
            ("--status-host",),
            "Address of the status page. It shows pids, paths and sys.path: keep it on "
            "localhost unless a firewall guards it.",
            STATUS,
            str,
            _check_str,
            "HOST",
        ),
    )
    ready_min: int = _opt(
        1,
        Cli(
            ("--ready-min",),
            "Workers that must accept connections for /readyz on the status port to answer "
            "200 (it answers 503 below that, and from SIGTERM on).",
            STATUS,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    keepalive: bool = _opt(
        True,
        Cli(
            ("--keepalive",),
            "Keep connections open between requests (HTTP/1.1 keep-alive).",
            HTTP,
            negative="--no-keepalive",
            check=_check_bool,
        ),
    )
    keepalive_timeout: float = _opt(
        5.0,
        Cli(
            ("--keepalive-timeout",),
            "Seconds an idle keep-alive connection is kept open.",
            HTTP,
            _parse_seconds,
            _at_least(0.001),
            "SECONDS",
        ),
    )
    header_timeout: float = _opt(
        10.0,
        Cli(
            ("--header-timeout",),
            "Seconds a client has to send a complete request head (slow clients are cut "
            "off with 408); also the longest wait for each piece of a request body.",
            HTTP,
            _parse_seconds,
            _at_least(0.001),
            "SECONDS",
        ),
    )
    body_timeout: float = _opt(
        300.0,
        Cli(
            ("--body-timeout",),
            "Seconds a client has to send a whole request body, counted from the end of "
            "its head (cut off with 408); 0: no total limit.",
            HTTP,
            _parse_seconds,
            _at_least(0),
            "SECONDS",
        ),
    )
    body_min_rate: float = _opt(
        1024.0,
        Cli(
            ("--body-min-rate",),
            "Slowest average rate, in bytes per second, of a request body once the first "
            "--header-timeout seconds have passed (slower clients are cut off with 408); "
            "0: no minimum.",
            HTTP,
            _parse_seconds,
            _at_least(0),
            "BYTES",
        ),
    )
    max_request_line: int = _opt(
        8190,
        Cli(
            ("--max-request-line",),
            "Longest request line in bytes (414 beyond).",
            HTTP,
            _parse_int,
            _int_at_least(16),
            "BYTES",
        ),
    )
    max_header_count: int = _opt(
        100,
        Cli(
            ("--max-header-count",),
            "Most header fields in a request (431 beyond).",
            HTTP,
            _parse_int,
            _int_at_least(1),
            "N",
        ),
    )
    max_header_size: int = _opt(
        8190,
        Cli(
            ("--max-header-size",),
            "Longest header field in bytes (431 beyond).",
            HTTP,
            _parse_int,
            _int_at_least(16),
            "BYTES",
        ),
    )
    max_head_size: int = _opt(
        65536,
        Cli(
            ("--max-head-size",),
            "Largest request head (line and headers) in bytes (431 beyond).",
            HTTP,
            _parse_int,
            _int_at_least(64),
            "BYTES",
        ),
    )
    max_body_size: int = _opt(
        0,
        Cli(
            ("--max-body-size",),
            "Largest request body in bytes (413 beyond); 0: no limit.",
            HTTP,
            _parse_int,
            _int_at_least(0),
            "BYTES",
        ),
    )
    forwarded_allow_ips: tuple[str, ...] = _opt(
        ("127.0.0.1", "::1"),
        Cli(
            ("--forwarded-allow-ips",),
            "Comma-separated addresses or networks of proxies whose proxy headers are "
            "trusted (which headers: --forwarded-headers); '*' trusts every peer. "
            "Unix-socket peers are always trusted.",
            PROXY,
            _parse_ip_list,
            _check_ips,
            "IPS",
        ),
    )
    forwarded_headers: str = _opt(
        "x-forwarded",
        Cli(
            ("--forwarded-headers",),
            "The proxy headers honoured from a trusted proxy: x-forwarded for "
            "X-Forwarded-For and X-Forwarded-Proto, forwarded for the RFC 7239 Forwarded "
            "header. The other family is ignored (left to the app as client headers).",
            PROXY,
            str,
            _one_of(FORWARDED_HEADERS),
            "{x-forwarded,forwarded}",
        ),
    )
    root_path: str = _opt(
        "",
        Cli(
            ("--root-path",),
            "URL prefix the app is mounted at (SCRIPT_NAME), e.g. /api.",
            PROXY,
            str,
            _check_root_path,
            "PATH",
        ),
    )
    preload: bool = _opt(
        True,
        Cli(
            ("--preload",),
            "Import the app once, in a zygote process that forks the workers: import errors "
            "stop start-up, workers share the code, and SIGHUP imports new code in a new "
            "zygote.",
            APP,
            negative="--no-preload",
            check=_check_bool,
        ),
    )
    pythonpath: tuple[str, ...] = _opt(
        (),
        Cli(
            ("--pythonpath",),
            "Directory added to sys.path before loading the app; repeatable.",
            APP,
            str,
            _check_str_tuple,
            "DIR",
            repeat=True,
        ),
    )
    chdir: str | None = _opt(
        None,
        Cli(
            ("--chdir",),
            "Change to this directory before loading the app.",
            APP,
            str,
            _check_optional_str,
            "DIR",
        ),
    )
    access_log_file: str | None = _opt(
        None,
        Cli(
            ("--access-log-file",),
            "Write one line per request to this file ('-': standard output). Reopened on SIGUSR1.",
            LOGGING,
            str,
            _check_optional_str,
            "FILE",
            default_doc="off",
        ),
    )
    access_log_format: str = _opt(
        "combined",
        Cli(
            ("--access-log-format",),
            "Access log format: combined (Apache) or json (one object per line).",
            LOGGING,
            str,
            _one_of(ACCESS_LOG_FORMATS),
            "{combined,json}",
        ),
    )
    error_log_file: str | None = _opt(
        None,
        Cli(
            ("--error-log-file",),
            "Write the server's own log to this file instead of standard error. Reopened "
            "on SIGUSR1.",
            LOGGING,
            str,
            _check_optional_str,
            "FILE",
            default_doc="standard error",
        ),
    )
    log_level: str = _opt(
        "info",
        Cli(
            ("--log-level",),
            "Level of the server's own log (stderr).",
            LOGGING,
            str.lower,
            _one_of(LOG_LEVELS),
            "LEVEL",
        ),
    )

    def __post_init__(self) -> None:
        for name, cli in iter_options():
            value = getattr(self, name)
            if isinstance(value, list):  # lists from keyword callers become tuples
                value = tuple(value)
                object.__setattr__(self, name, value)
            if cli.check is not None:
                try:
                    cli.check(value)
                except ValueError as exc:
                    raise ConfigError(name, str(exc)) from None
        if self.ready_min > self.workers:
            raise ConfigError(
                "ready_min",
                f"--ready-min ({self.ready_min}) is more than --workers ({self.workers}): "
                "/readyz would never answer 200",
            )
        if self.shutdown_delay > self.graceful_timeout:
            raise ConfigError(
                "shutdown_delay",
                f"--shutdown-delay ({self.shutdown_delay:g}s) is longer than "
                f"--graceful-timeout ({self.graceful_timeout:g}s): the delay is part of the "
                "graceful stop, so no time would be left to finish in-flight requests; "
                "raise --graceful-timeout",
            )

    def replace(self, **changes: Any) -> ServerConfig:
        """A copy with ``changes`` applied (validated, unknown names raise ConfigError)."""
        return ServerConfig(**_known(changes, self.as_dict()))

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (tuples as lists), as ``--print-config`` shows them."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in ((n, getattr(self, n)) for n, _ in iter_options())
        }


def _known(changes: Mapping[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    for name in changes:
        if name not in base:
            raise ConfigError(name, "unknown setting")
    return {**base, **changes}


def make_config(**options: Any) -> ServerConfig:
    """A :class:`ServerConfig` from keywords; an unknown keyword raises ConfigError."""
    return ServerConfig(**_known(options, ServerConfig().as_dict()))


def iter_options() -> Iterator[tuple[str, Cli]]:
    """(field name, Cli) for every setting, in declaration order."""
    for field in dataclasses.fields(ServerConfig):
        yield field.name, field.metadata["cli"]


def option_flag(name: str) -> str:
    """The long flag of setting ``name`` (``workers`` -> ``--workers``)."""
    for field_name, cli in iter_options():
        if field_name == name:
            return cli.flags[-1]
    return name


def environ_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """Defaults the environment overrides: ``WEB_CONCURRENCY`` gives ``workers``.

    (``PORT`` and ``LISTEN_FDS`` are read when the binds are resolved, see ``_bind``.)
    Raises ConfigError naming the variable when its value is not valid.
    """
    result: dict[str, Any] = {}
    text = environ.get("WEB_CONCURRENCY", "").strip()
    if text:
        try:
            workers = _parse_int(text)
            _int_at_least(1)(workers)
        except ValueError as exc:
            raise ConfigError("WEB_CONCURRENCY", str(exc)) from None
        result["workers"] = workers
    return result


# Options of the command itself (not settings), declared here so the docs list them too.
COMMAND_OPTIONS: tuple[tuple[str, str], ...] = (
    (
        "--check-config",
        (
            "Validate the settings, open and close every bind (a busy port or an fd://N "
            "that is not an open listening socket is named), import the app, then exit 0 "
            "(or 1)."
        ),
    ),
    ("--print-config", "Print the resolved settings as JSON, then exit 0."),
    ("--version", "Print the version, then exit 0."),
    ("-h, --help", "Show the options, then exit 0."),
)


def default_text(name: str, cli: Cli, literal: str = "") -> str:
    """The default of setting ``name`` for people (``literal`` wraps values, e.g. ``````)."""
    default = getattr(ServerConfig(), name)
    q = literal
    if cli.default_doc is not None:
        return cli.default_doc.format(q=q)
    if isinstance(default, tuple):
        return f"{q}{','.join(default)}{q}" if default else "none"
    if default is None or default == "":
        return "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    return f"{q}{default}{q}"


def render_rst() -> str:
    """The CLI reference page (reST), generated from the declarations above."""
    title = "Command-line reference"
    lines = [
        ".. This file is generated by ``python -m cotyledon.wsgi._config --rst``;",
        "   do not edit it by hand (a unit test fails when it is stale).",
        "",
        title,
        "=" * len(title),
        "",
        "::",
        "",
        "    cotyledon-wsgi [options] module:app",
        "",
        "``module:app`` names the WSGI callable (``module:factory()`` calls a factory).",
        "The current directory is added to ``sys.path`` first. Every setting is also a",
        "keyword of ``cotyledon.wsgi.add()`` and of ``ServerConfig`` (the name after",
        "each flag).",
        "",
    ]
    for section in SECTIONS:
        lines += [section, "-" * len(section), ""]
        for name, cli in iter_options():
            if cli.section != section:
                continue
            flags = ", ".join(
                f"{flag} {cli.metavar}" if cli.metavar else flag for flag in cli.flags
            )
            if cli.negative:
                flags += f", {cli.negative}"
            lines += [f".. option:: {flags}", ""]
            lines += [
                *textwrap.wrap(cli.help, 95, initial_indent="   ", subsequent_indent="   "),
                "",
            ]
            extra = " Repeatable." if cli.repeat else ""
            tail = f"Setting ``{name}``; default: {default_text(name, cli, '``')}.{extra}"
            lines += [*textwrap.wrap(tail, 95, initial_indent="   ", subsequent_indent="   "), ""]
    lines += ["Command", "-------", ""]
    for flag, text in COMMAND_OPTIONS:
        wrapped = textwrap.wrap(text, 95, initial_indent="   ", subsequent_indent="   ")
        lines += [f".. option:: {flag}", "", *wrapped, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _main(argv: Sequence[str]) -> int:
    if list(argv) != ["--rst"]:
        sys.stderr.write("usage: python -m cotyledon.wsgi._config --rst > doc/source/cli.rst\n")
        return 2
    sys.stdout.write(render_rst())
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
