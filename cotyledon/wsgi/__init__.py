"""cotyledon.wsgi: a pre-fork WSGI server that runs as one more service of a ServiceManager.

::

    sm = cotyledon.ServiceManager()
    sm.add(Collector, workers=2)
    cotyledon.wsgi.add(sm, "myproject.api:application", bind=["127.0.0.1:8080"], workers=4)
    sm.run()

:func:`add` opens the listening sockets and loads the app right away (with ``preload``,
the default, in a *zygote* process forked from the master, which then forks the workers:
see :mod:`cotyledon.wsgi._zygote`), so a bad address or an app that cannot be imported
fails here (before ``run()``), and the workers share both. The ``cotyledon-wsgi`` command
is a thin wrapper around it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cotyledon.wsgi import _master
from cotyledon.wsgi._config import ConfigError, ServerConfig, make_config
from cotyledon.wsgi._master import WSGIMaster
from cotyledon.wsgi._worker import WSGIService

if TYPE_CHECKING:
    from cotyledon import ServiceManager
    from cotyledon.types import ServiceId
    from cotyledon.wsgi._zygote import ZygoteSpawner

__all__ = ["ConfigError", "ServerConfig", "WSGIService", "add", "check_app", "resolve_binds"]

LOG = logging.getLogger("cotyledon.wsgi")

WSGIApp = Callable[..., Any]


def resolve_binds(config: ServerConfig, environ: Mapping[str, str]) -> list[str]:
    """The binds ``config`` will open, as text; ``()`` resolves from the environment.

    Raises ``ValueError`` (``BindError``) naming a bind that cannot be parsed.
    """
    from cotyledon.wsgi import _bind  # noqa: PLC0415

    return [_bind.format_bind(bind) for bind in _parse_binds(config, environ)]


def _parse_binds(config: ServerConfig, environ: Mapping[str, str]) -> list[Any]:
    from cotyledon.wsgi import _bind  # noqa: PLC0415

    if config.bind:
        return [_bind.parse_bind(text) for text in config.bind]
    return list(_bind.default_binds(environ))


def check_app(app: str | WSGIApp, config: ServerConfig | None = None) -> WSGIApp:
    """Import ``app`` (``module:app`` or ``module:factory()``) and return the callable.

    Raises ``AppLoadError`` (a ``RuntimeError``) with a clear message when it cannot.
    """
    if callable(app):
        return app
    from cotyledon.wsgi._app_loader import load_app  # noqa: PLC0415

    pythonpath = config.pythonpath if config is not None else ()
    loaded: WSGIApp = load_app(app, pythonpath=pythonpath)
    return loaded


def _count(number: int, noun: str) -> str:
    """``1 worker``, ``2 workers``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _make_master(config: ServerConfig, listeners: Sequence[Any]) -> WSGIMaster:
    """The service's master extension; a status port that cannot be opened is named."""
    from cotyledon.wsgi import _bind, _listeners  # noqa: PLC0415

    try:
        return WSGIMaster(config, [listener.display for listener in listeners])
    except OSError as exc:
        where = _bind.format_bind(_bind.TCPBind(config.status_host, config.status_port or 0))
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise _listeners.ListenerError(
            exc.errno, f"cannot serve the status page on {where} (--status-port): {why}"
        ) from exc


def _uses_zygote(app: str | WSGIApp, config: ServerConfig) -> bool:
    """Preload through a zygote: the app is named (not an object already imported here)
    and the platform lets the master adopt the zygote's workers (a Linux subreaper)."""
    return config.preload and isinstance(app, str) and sys.platform.startswith("linux")


def _set_slot(slot: int | None) -> None:
    """In the zygote, before it forks a worker: the slot the master claimed for it."""
    _master.assigned_slot = slot


def _start_zygote(
    manager: ServiceManager, app: str, config: ServerConfig, master: WSGIMaster, sockets: Any
) -> ZygoteSpawner:
    """Fork the first zygote and wait for it to import the app (AppLoadError if it
    cannot), as the master itself did before."""
    from cotyledon.wsgi._zygote import ZygoteSpawner  # noqa: PLC0415

    spawner = ZygoteSpawner(
        app,
        pythonpath=config.pythonpath,
        factory=WSGIService,
        worker_args=(config, sockets, master.board, master.stop_notice),
        load_timeout=config.start_timeout,
        master_fds=lambda: [*master.read_fds(), *master.write_fds()],
        slot=lambda: _master.assigned_slot,
        set_slot=_set_slot,
    )
    spawner.manager = manager
    # ServiceManager.run() makes the master a session leader (when it can): do it before
    # this fork, so that the zygote and its workers are in the master's session too.
    with contextlib.suppress(OSError):
        os.setsid()
    spawner.start()
    master.zygote = spawner.status  # for the status page
    # No fork after a stop; and the zygote's copies of the listening sockets must not
    # keep them open once the master and the workers have closed theirs.
    manager.register_hooks(on_terminate=spawner.close)
    return spawner


def _merge_config(
    config: ServerConfig | None,
    bind: Sequence[str] | str | None,
    workers: int | None,
    threads: int | None,
    options: dict[str, Any],
) -> ServerConfig:
    """``config`` (or the defaults) with the arguments of :func:`add` applied."""
    changes = dict(options)
    if bind is not None:
        changes["bind"] = (bind,) if isinstance(bind, str) else tuple(bind)
    if workers is not None:
        changes["workers"] = workers
    if threads is not None:
        changes["threads"] = threads
    config = config.replace(**changes) if config is not None else make_config(**changes)
    if config.reload and config.preload:
        # --reload watches the files each worker imported: every worker imports the app.
        config = config.replace(preload=False)
    return config


def add(
    manager: ServiceManager,
    app: str | WSGIApp,
    *,
    bind: Sequence[str] | str | None = None,
    workers: int | None = None,
    threads: int | None = None,
    config: ServerConfig | None = None,
    environ: Mapping[str, str] | None = None,
    **options: Any,
) -> ServiceId:
    """Serve the WSGI ``app`` from ``manager``, next to its other services.

    :param manager: the :class:`cotyledon.ServiceManager` that will run the workers.
    :param app: a WSGI callable or its ``"module:app"`` spec.
    :param bind: address(es) to listen on (``host:port``, ``[v6]:port``, ``unix:/path``,
        ``fd://N``, ``systemd``); default from the environment, else ``127.0.0.1:8000``.
    :param workers: worker processes (default 1).
    :param threads: request threads per worker (default 8).
    :param config: a :class:`ServerConfig` to start from.
    :param environ: where ``PORT``/``LISTEN_FDS`` are read (default ``os.environ``).
    :param options: any other :class:`ServerConfig` setting, by name.
    :returns: the service id given by ``manager.add()``.
    :raises ConfigError: a setting is invalid (a ``ValueError`` naming it).
    :raises ValueError: a bind cannot be parsed.
    :raises OSError: a listening socket cannot be opened.
    :raises RuntimeError: the app cannot be imported (``AppLoadError``), or ``manager``
        is already running (call this before ``manager.run()``: the master must create
        the workers' shared statistics and status page before its first fork).
    """
    from cotyledon.wsgi import _boot_watch, _listeners  # noqa: PLC0415

    if getattr(manager, "_state", "new") != "new":
        raise RuntimeError("cotyledon.wsgi.add() must be called before the manager runs")

    config = _merge_config(config, bind, workers, threads, options)
    environ = os.environ if environ is None else environ
    binds = _parse_binds(config, environ)
    target: str | WSGIApp = app
    zygote = _uses_zygote(app, config)
    if (config.preload and not zygote) or callable(app):
        target = check_app(app, config)
    listeners = _listeners.open_listeners(binds, backlog=config.backlog, environ=environ)
    sockets = [listener.sock for listener in listeners]
    watch: _boot_watch.BootWatch | None = None
    spawner: ZygoteSpawner | None = None
    master: WSGIMaster | None = None
    try:
        master = _make_master(config, listeners)
        if zygote and isinstance(app, str):  # the zygote imports the app, forks workers
            spawner = _start_zygote(manager, app, config, master, sockets)
        manager._attach_extension(master)  # status page and hung workers, in the master
        if spawner is not None:
            manager._attach_extension(spawner)
        elif isinstance(target, str):  # each worker imports the app: stop if none can
            watch = _boot_watch.BootWatch(master.board)
            manager._attach_extension(watch)
    except (OSError, RuntimeError):
        if spawner is not None:
            spawner.close()
        if master is not None:
            master.close()
        _listeners.close_listeners(listeners)
        raise
    # SIGHUP and recycling replace workers progressively: a new worker accepts before
    # the old one stops, so neither drops a request.
    service_id: ServiceId = manager.add(
        WSGIService,
        workers=config.workers,
        args=(target, config, sockets, master.board, master.stop_notice),
        reload="replace",
        max_surge=config.max_surge,
        start_timeout=config.start_timeout,
        max_restarts=config.max_restarts,
        restart_period=config.restart_period,
        spawner=spawner,
    )
    master.service_id = service_id
    master.manager = manager
    if watch is not None:
        watch.service_id = service_id
        watch.manager = manager
    # SIGTERM: /readyz turns 503 and the workers learn of the stop before they are signalled;
    # after --shutdown-delay the master closes its copies of the listening sockets (and
    # unlinks its Unix socket files) while the workers drain the accept queue and close theirs.
    master.close_listeners = lambda: _listeners.close_listeners(listeners)
    manager.register_hooks(on_terminate=master.stop_requested)
    for listener in listeners:
        LOG.info(
            "Listening at %s (%s, %s)",
            listener.display,
            _count(config.workers, "worker"),
            _count(config.threads, "thread"),
        )
    if master.health is not None:
        from cotyledon.wsgi import _bind  # noqa: PLC0415

        LOG.info(
            "Status page at http://%s/", _bind.format_bind(_bind.TCPBind(*master.health.address))
        )
    return service_id
