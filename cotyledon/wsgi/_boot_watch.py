"""Stop the server when its app cannot be loaded by any worker.

Job: a master extension (:mod:`cotyledon._extension`) attached by ``add()`` when the
workers import the app themselves (``--no-preload``, ``--reload``). A worker that cannot
load the app logs one line and exits with :data:`~cotyledon.wsgi._app_loader.APP_LOAD_ERROR`.
If no worker of the service has ever served, respawning it would only crash-loop while the
listening socket accepts connections nobody answers: the manager stops with exit status 3
(as a give-up policy does) and sd-notify ``STATUS=`` says why. Once a worker has served (a
bad code update under a reload), the serving workers are kept and the failure is logged.

Must not: decide anything else about workers (the supervisor respawns, the replacement
logic aborts a failed replacement), or read the scoreboard once a worker has served.
"""

from __future__ import annotations

import logging
from typing import Any

from cotyledon._extension import QuietExtension
from cotyledon.types import ServiceId, WorkerId
from cotyledon.wsgi._app_loader import APP_LOAD_ERROR
from cotyledon.wsgi._scoreboard import Scoreboard, SlotStatus

LOG = logging.getLogger("cotyledon.wsgi.master")

#: sd-notify STATUS= and the manager's reason when it stops.
REASON = "no worker could load the WSGI app (see the worker's error line)"


class BootWatch(QuietExtension):
    """Watches one WSGI service's workers until one of them serves.

    Set :attr:`service_id` and :attr:`manager` once the service is added.
    """

    signals: tuple[int, ...] = ()

    def __init__(self, board: Scoreboard) -> None:
        self.board = board
        self.service_id: ServiceId | None = None
        self.manager: Any = None  # the cotyledon.ServiceManager
        self.served = False
        self.gave_up = False

    def _look(self) -> bool:
        """True once any worker has reached READY (sticky)."""
        if not self.served:
            self.served = any(
                stats.status in (SlotStatus.READY, SlotStatus.DRAINING)
                for stats in self.board.read_all()
            )
        return self.served

    def on_exited(
        self, service_id: ServiceId, worker_id: WorkerId, pid: int, exit_code: int
    ) -> None:
        if service_id != self.service_id or exit_code != APP_LOAD_ERROR:
            self._look()
            return
        if self._look():
            LOG.warning(
                "Worker %d (pid %d) could not load the app; the workers already serving "
                "keep the code they loaded",
                worker_id,
                pid,
            )
            return
        if self.gave_up or self.manager is None:
            return
        self.gave_up = True
        LOG.error("No worker could load the app: stopping (exit status 3)")
        self.manager._give_up_now(REASON)

    def on_tick(self, now: float) -> None:
        self._look()

    # -- the rest of MasterExtension: nothing to do ----------------------------------------
