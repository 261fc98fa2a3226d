"""The ``cotyledon-wsgi`` command: argparse built from ``_config``, then one ServiceManager.

This module turns argv and the environment (``WEB_CONCURRENCY``, ``PORT``, ``LISTEN_FDS``)
into a :class:`ServerConfig`, configures logging, and either answers ``--check-config`` /
``--print-config`` / ``--version`` or runs the server. It must not hold server logic: the
sockets, the app loading and the workers belong to :func:`cotyledon.wsgi.add`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cotyledon.wsgi._config import (
    COMMAND_OPTIONS,
    Cli,
    ConfigError,
    ServerConfig,
    default_text,
    environ_defaults,
    iter_options,
    make_config,
    option_flag,
)

LOG = logging.getLogger("cotyledon.wsgi")
#: Exit status when the app cannot be loaded, in the master (preload) or in every worker.
EXIT_APP_LOAD = 3
LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"


def _version() -> str:
    from importlib import metadata  # noqa: PLC0415 - only --version needs it

    try:
        return metadata.version("cotyledon")
    except metadata.PackageNotFoundError:
        return "unknown"


def _typed(cli: Cli) -> Callable[[str], Any]:
    """An argparse ``type=``: parse then check, errors as ArgumentTypeError (exit 2)."""
    assert cli.parse is not None
    parse = cli.parse

    def convert(text: str) -> Any:
        try:
            value = parse(text)
            if cli.check is not None and not cli.repeat:
                cli.check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    convert.__name__ = cli.metavar or "value"
    return convert


class _Parser(argparse.ArgumentParser):
    """Errors on one line, without the long usage block (``--help`` has it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every setting comes from ``_config`` (defaults suppressed so
    only what the user typed overrides the environment and the built-in defaults)."""
    parser = _Parser(
        prog="cotyledon-wsgi",
        description="Serve a WSGI application with pre-forked, supervised workers.",
        argument_default=argparse.SUPPRESS,
        add_help=False,
    )
    parser.add_argument(
        "app", nargs="?", default=None, help="the WSGI app as module:app or module:factory()"
    )
    groups = {}
    for name, cli in iter_options():
        text = f"{cli.help} Default: {default_text(name, cli)}."
        if cli.section not in groups:
            groups[cli.section] = parser.add_argument_group(cli.section)
        group = groups[cli.section]
        if cli.parse is None:
            group.add_argument(*cli.flags, dest=name, action="store_true", help=text)
            if cli.negative:
                group.add_argument(
                    cli.negative,
                    dest=name,
                    action="store_false",
                    help=f"Turn {cli.flags[-1]} off.",
                )
        else:
            action = "append" if cli.repeat else "store"
            group.add_argument(
                *cli.flags,
                dest=name,
                action=action,
                type=_typed(cli),
                metavar=cli.metavar,
                help=text.replace("%", "%%"),
            )
    command = parser.add_argument_group("Command")
    helps = dict(COMMAND_OPTIONS)
    command.add_argument(
        "--check-config", action="store_true", default=False, help=helps["--check-config"]
    )
    command.add_argument(
        "--print-config", action="store_true", default=False, help=helps["--print-config"]
    )
    command.add_argument(
        "--version", action="version", version=f"cotyledon {_version()}", help=helps["--version"]
    )
    command.add_argument("-h", "--help", action="help", help=helps["-h, --help"])
    return parser


def config_from_args(
    parser: argparse.ArgumentParser, args: argparse.Namespace, environ: dict[str, str]
) -> ServerConfig:
    """Built-in defaults, then the environment, then the flags; bad values exit 2."""
    try:
        options = environ_defaults(environ)
    except ConfigError as exc:
        parser.error(str(exc))
    explicit = {name: getattr(args, name) for name, _ in iter_options() if hasattr(args, name)}
    options.update({k: tuple(v) if isinstance(v, list) else v for k, v in explicit.items()})
    try:
        return make_config(**options)
    except ConfigError as exc:
        parser.error(f"argument {option_flag(exc.option)}: {exc.message}")


def setup_logging(level: str, path: str | None = None) -> None:
    """Log with time, pid, level and logger name to stderr, or to ``path`` (reopened on
    SIGUSR1); the CLI owns the process."""
    if path:
        logging.basicConfig(level=level.upper(), format=LOG_FORMAT, filename=path)
    else:
        logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def _prepare_imports(config: ServerConfig) -> None:
    """``--chdir``, then the current directory and ``--pythonpath`` on sys.path."""
    if config.chdir:
        os.chdir(config.chdir)
    for path in (*reversed(config.pythonpath), os.getcwd()):
        if path not in sys.path:
            sys.path.insert(0, path)


def _print_config(
    parser: argparse.ArgumentParser, app: str | None, config: ServerConfig, environ: dict[str, str]
) -> int:
    from cotyledon.wsgi import resolve_binds  # noqa: PLC0415 - keeps --help light

    data: dict[str, Any] = {"app": app, **config.as_dict()}
    try:
        data["bind"] = resolve_binds(config, environ)
    except ValueError as exc:  # BindError: a bad --bind or PORT
        parser.error(str(exc))
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return 0


def _reason(exc: Exception) -> str:
    """The error for people: a ListenerError's message without its ``[Errno N]``."""
    from cotyledon.wsgi._listeners import ListenerError  # noqa: PLC0415

    if isinstance(exc, ListenerError) and exc.strerror:
        return exc.strerror
    return str(exc)


def _check_config(app: str, config: ServerConfig, environ: dict[str, str]) -> int:
    """The settings, then every bind opened and closed again, then the app imported."""
    from cotyledon.wsgi import _listeners, _parse_binds, check_app  # noqa: PLC0415

    try:
        binds = _parse_binds(config, environ)
        _listeners.check_listeners(binds, backlog=config.backlog, environ=environ)
        check_app(app, config)
    except (ValueError, RuntimeError, OSError) as exc:
        LOG.error("Configuration check failed: %s", _reason(exc))
        return 1
    LOG.info("Configuration OK: %s can be served", app)
    return 0


def _serve(app: str, config: ServerConfig) -> int:
    import cotyledon  # noqa: PLC0415
    from cotyledon import wsgi  # noqa: PLC0415
    from cotyledon.wsgi._app_loader import AppLoadError  # noqa: PLC0415

    manager = cotyledon.ServiceManager(graceful_shutdown_timeout=int(config.graceful_timeout) + 5)
    try:
        wsgi.add(manager, app, config=config)
    except AppLoadError as exc:  # the same status as when no worker can load it
        LOG.error("Cannot start: %s", exc)
        return EXIT_APP_LOAD
    except (ValueError, RuntimeError, OSError) as exc:
        LOG.error("Cannot start: %s", _reason(exc))
        return 1
    manager.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``cotyledon-wsgi``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    config = config_from_args(parser, args, environ)
    try:
        setup_logging(config.log_level, config.error_log_file)
    except OSError as exc:
        parser.error(f"argument --error-log-file: cannot open it: {exc}")
    if args.print_config:
        return _print_config(parser, args.app, config, environ)
    if not args.app:
        parser.error("the app to serve is required (module:app)")
    _prepare_imports(config)
    if args.check_config:
        return _check_config(args.app, config, environ)
    return _serve(args.app, config)
