"""oslo.config glue: the manager's options, config reload on SIGHUP, option logging.

Job: ``setup()`` registers ``graceful_shutdown_timeout`` and ``log_options`` in the
DEFAULT group and calls ``link()``; ``link()`` (for callers that registered those options
themselves, like oslo.service) copies the timeout into the manager, logs the options, and
registers the hooks: on SIGHUP the master reloads (or mutates) the config files and
re-applies its options; in each worker, the new-worker hook logs the options and makes the
worker reload/mutate its own copy of the config **before** ``Service.reload()`` runs.
``list_opts()`` feeds oslo-config-generator (entry point ``cotyledon``).

The hooks are instances of module-level classes, never closures or bound methods of the
manager. A config object is not picklable: when the new-worker hook is shipped to a
spawn/forkserver worker it travels without it and does nothing there.

Must not: import oslo.config at package import time (it is an optional extra).
"""

from __future__ import annotations

import copy
import logging
import os
from typing import TYPE_CHECKING, Any

from oslo_config import cfg

if TYPE_CHECKING:
    from cotyledon._service import Service
    from cotyledon._service_manager import ServiceManager
    from cotyledon.types import ServiceId, WorkerId

LOG = logging.getLogger(__name__)

_options = (
    cfg.BoolOpt(
        "log_options",
        default=True,
        mutable=True,
        help="Enables or disables logging values of all registered options "
        "when starting a service (at DEBUG level).",
    ),
    cfg.IntOpt(
        "graceful_shutdown_timeout",
        mutable=True,
        default=60,
        help="Specify a timeout after which a gracefully shutdown server will exit. "
        "Zero value means endless wait.",
    ),
)

RELOAD_METHODS = ("reload", "mutate")


def _log_options(conf: cfg.ConfigOpts) -> None:
    if conf.log_options:
        LOG.debug("Full set of CONF:")
        conf.log_opt_values(LOG, logging.DEBUG)


def _reload_conf(conf: cfg.ConfigOpts, reload_method: str) -> None:
    if reload_method == "reload":
        conf.reload_config_files()
    else:
        conf.mutate_config_files()


class _MasterReloadHook:
    """on_reload, in the master: re-read the config and re-apply the manager options."""

    def __init__(self, manager: ServiceManager, conf: cfg.ConfigOpts, method: str) -> None:
        self.manager = manager
        self.conf = conf
        self.method = method

    def __call__(self) -> None:
        _reload_conf(self.conf, self.method)
        _configure_manager(self.manager, self.conf)
        _log_options(self.conf)


class _WorkerReload:
    """Set on the service as ``_on_reload_internal_hook``: runs before Service.reload()."""

    def __init__(self, conf: cfg.ConfigOpts, method: str) -> None:
        self.conf = conf
        self.method = method

    def __call__(self) -> None:
        _reload_conf(self.conf, self.method)
        _log_options(self.conf)


class _NewWorkerHook:
    """on_new_worker, in the worker: log the options, arm the config reload on SIGHUP."""

    def __init__(self, conf: cfg.ConfigOpts | None, method: str) -> None:
        self.conf = conf
        self.method = method

    def __getstate__(self) -> dict[str, Any]:
        # A ConfigOpts does not pickle: a spawned worker gets a hook without it.
        return {"conf": None, "method": self.method}

    def __call__(self, service_id: ServiceId, worker_id: WorkerId, service: Service) -> None:
        if self.conf is None:
            return
        _log_options(self.conf)
        service._on_reload_internal_hook = _WorkerReload(self.conf, self.method)  # type: ignore[attr-defined]


def _configure_manager(manager: ServiceManager, conf: cfg.ConfigOpts) -> None:
    manager._graceful_shutdown_timeout = conf.graceful_shutdown_timeout


def _check_method(reload_method: str) -> None:
    if reload_method not in RELOAD_METHODS:
        raise ValueError(
            f"'reload_method' must be one of {', '.join(RELOAD_METHODS)}, not: {reload_method!r}"
        )


def link(
    service_manager: ServiceManager, conf: cfg.ConfigOpts, reload_method: str = "reload"
) -> None:
    """Use ``conf``'s ``graceful_shutdown_timeout`` and ``log_options`` (registered by the
    caller: nothing is registered here) and reload ``conf`` on SIGHUP.

    :param reload_method: ``"reload"`` (``reload_config_files()``) or ``"mutate"``
        (``mutate_config_files()``: only mutable options change).
    :raises ValueError: unknown ``reload_method``.
    """
    _check_method(reload_method)
    _configure_manager(service_manager, conf)
    _log_options(conf)
    if os.name == "posix":
        service_manager.register_hooks(
            on_reload=_MasterReloadHook(service_manager, conf, reload_method),
            on_new_worker=_NewWorkerHook(conf, reload_method),
        )


def setup(
    service_manager: ServiceManager, conf: cfg.ConfigOpts, reload_method: str = "reload"
) -> None:
    """Register cotyledon's options on ``conf`` (DEFAULT group), then :func:`link`.

    :raises ValueError: unknown ``reload_method``.
    """
    _check_method(reload_method)
    conf.register_opts(_options)
    link(service_manager, conf, reload_method)


def list_opts() -> list[tuple[str | None, list[cfg.Opt]]]:
    """Entry point for oslo-config-generator: ``[(None, [options])]``."""
    return [(None, copy.deepcopy(list(_options)))]
