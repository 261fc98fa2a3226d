"""Scaling beyond one machine: the same daemon on several hosts splits the work.

Run one copy per host (systemd or Kubernetes starts it), all pointing at the same
coordination backend::

    python examples/partition.py redis://10.0.0.5:6379            # on every host
    python examples/partition.py file:///tmp/partition-demo 2     # on one machine, lease 2 s

Every worker of every host joins the tooz group "pollers". Each poll round, a worker
handles only the feeds it owns; when a host comes or goes, ``on_rebalance`` fires and the
feeds are split again. While the backend is unreachable a worker handles nothing.
Stop with Ctrl-C or SIGTERM: the workers leave the group and the others take over.
"""

from __future__ import annotations

import os
import sys
import threading

from _common import say, setup_logging

import cotyledon
from cotyledon.partition import PartitionedService

FEEDS = [f"feed-{i}" for i in range(20)]


class Poller(PartitionedService):
    name = "poller"

    def __init__(self, worker_id: int, url: str, lease: float) -> None:
        # lease: how long a dead worker's feeds stay unhandled (see the docs page);
        # heartbeat: a third of it or less.
        super().__init__(worker_id, url, "pollers", lease=lease, heartbeat=lease / 4)
        self._stop = threading.Event()

    def on_rebalance(self) -> None:
        mine = self.owned(FEEDS)
        say(f"{self.member_id}: {len(self.members())} members, I own {len(mine)} feeds")

    def run(self) -> None:
        say(f"poller {self.worker_id} running pid={os.getpid()} as {self.member_id}")
        while not self._stop.wait(2.0):
            for feed in FEEDS:
                if self.owns(feed):  # asked each time: ownership may change at any moment
                    self.poll(feed)

    def poll(self, feed: str) -> None:
        """Fetch one feed (the real work goes here)."""

    def terminate(self) -> None:
        super().terminate()  # stop claiming and leave the group first
        self._stop.set()


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} COORDINATION_URL [LEASE] (e.g. redis://127.0.0.1:6379)")
    lease = float(sys.argv[2]) if len(sys.argv) == 3 else 8.0
    setup_logging()
    manager = cotyledon.ServiceManager()
    manager.add(Poller, workers=2, args=(sys.argv[1], lease))
    manager.run()


if __name__ == "__main__":
    main()
