"""A fake driver for the pure supervisor: performs actions in memory, with a fake clock."""

from __future__ import annotations

import itertools
import uuid

from cotyledon import _supervisor as sv
from cotyledon._replacement import ReplacePolicy
from cotyledon._restart_policy import GiveUpPolicy
from cotyledon.types import ServiceId


class FakeMaster:
    """Feeds events to a Supervisor and plays the driver's part: forks succeed at once
    (unless ``fail_forks``), killed workers stay alive until the test reaps them."""

    def __init__(self, timeout: float = 60, **kwargs: object) -> None:
        self.sup = sv.Supervisor(graceful_shutdown_timeout=timeout, **kwargs)  # type: ignore[arg-type]
        self.now = 0.0
        self.pids = itertools.count(100)
        self.alive: dict[int, tuple[ServiceId, int]] = {}
        self.actions: list[sv.Action] = []
        self.signalled: dict[int, list[str]] = {}
        self.fail_forks = False
        self.exit_code: int | None = None

    def add(
        self,
        workers: int,
        give_up: GiveUpPolicy | None = None,
        name: str = "",
        **replace: object,
    ) -> ServiceId:
        """``replace``: ``reload="replace"`` and the ReplacePolicy fields."""
        sid = ServiceId(uuid.uuid4())
        reload = str(replace.pop("reload", "signal"))
        prepare = bool(replace.pop("prepare", False))
        policy = ReplacePolicy(**replace)  # type: ignore[arg-type]
        self.feed(
            sv.ServiceAdded(
                sid, workers, give_up, name=name, reload=reload, replace=policy, prepare=prepare
            )
        )
        return sid

    def feed(self, event: sv.Event) -> list[sv.Action]:
        out: list[sv.Action] = []
        pending = [event]
        while pending:
            actions = self.sup.on_event(pending.pop(0), self.now)
            out.extend(actions)
            for action in actions:
                pending.extend(self.perform(action))
        self.actions.extend(out)
        return out

    def perform(self, action: sv.Action) -> list[sv.Event]:
        if isinstance(action, sv.SpawnWorker):
            if self.fail_forks:
                return [sv.SpawnFailed(action.service_id, action.worker_id, "EAGAIN")]
            pid = next(self.pids)
            self.alive[pid] = (action.service_id, action.worker_id)
            return [sv.ChildSpawned(action.service_id, action.worker_id, pid)]
        if isinstance(action, sv.StopWorker):
            self.signalled.setdefault(action.pid, []).append("TERM")
        elif isinstance(action, (sv.StopWorkers, sv.InterruptWorkers, sv.ReloadWorkers)):
            for pid in action.pids:
                self.signalled.setdefault(pid, []).append(type(action).__name__)
        elif isinstance(action, (sv.KillWorkers, sv.GracefulTimeout)):
            for pid in action.pids:
                self.alive.pop(pid, None)
            if isinstance(action, sv.GracefulTimeout):
                self.exit_code = 1
        elif isinstance(action, sv.Exit):
            self.exit_code = action.code
        return []

    def start(self) -> list[sv.Action]:
        return self.feed(sv.Started())

    def die(self, pid: int, code: int = 0) -> list[sv.Action]:
        del self.alive[pid]
        return self.feed(sv.ChildExited(pid, code))

    def started_all(self) -> None:
        for pid in list(self.alive):
            self.feed(sv.WorkerStarted(pid))

    def advance(self, seconds: float) -> list[sv.Action]:
        self.now += seconds
        return self.feed(sv.Tick())

    def workers_of(self, sid: ServiceId) -> dict[int, int]:
        return dict(self.sup.current_pids(sid))

    def of_type(self, kind: type, actions: list[sv.Action] | None = None) -> list[sv.Action]:
        return [a for a in (self.actions if actions is None else actions) if isinstance(a, kind)]
