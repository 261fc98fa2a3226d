"""One "host" for the partition tests: a ServiceManager whose workers share N keys.

Usage: ``partition_host.py URL GROUP SAMPLES_DIR [--workers 2] [--keys 1000] [--lease 2]
[--heartbeat 0.5]``.

Every worker samples its owned keys every ``--every`` seconds and appends one JSON line
to ``SAMPLES_DIR/<pid>.jsonl``: ``{"m": member, "pid": pid, "t0": t, "t1": t, "bits": hex}``
where ``t0``/``t1`` (``time.time()``) bracket the ``owned()`` call and ``bits`` is the
owned set as a hex bitmap (bit i = key ``key-i``). Lines are written in one ``write()``
each, so a reader never sees half a line from a live writer, only possibly from a
SIGKILLed one (the reader ignores a line without its newline).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time

import cotyledon
from cotyledon.partition import PartitionedService


class Sampler(PartitionedService):
    name = "sampler"

    def __init__(self, worker_id: int, args: argparse.Namespace) -> None:
        super().__init__(
            worker_id, args.url, args.group, lease=args.lease, heartbeat=args.heartbeat
        )
        self.keys = [f"key-{i}" for i in range(args.keys)]
        self.every = args.every
        self.path = os.path.join(args.samples, f"{os.getpid()}.jsonl")
        self.stop = threading.Event()
        self.rebalances = 0

    def on_rebalance(self) -> None:
        self.rebalances += 1

    def run(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        say(f"worker {self.member_id} pid={os.getpid()} ready")
        index = {k: i for i, k in enumerate(self.keys)}
        while not self.stop.is_set():
            t0 = time.time()
            owned = self.owned(self.keys)
            t1 = time.time()
            bits = 0
            for key in owned:
                bits |= 1 << index[key]
            line = {"m": self.member_id, "pid": os.getpid(), "t0": t0, "t1": t1}
            line["bits"] = format(bits, "x")
            os.write(fd, (json.dumps(line) + "\n").encode())
            self.stop.wait(self.every)

    def terminate(self) -> None:
        super().terminate()
        self.stop.set()


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("group")
    parser.add_argument("samples")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--heartbeat", type=float, default=0.5)
    parser.add_argument("--every", type=float, default=0.05)
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(levelname)s:%(name)s:%(message)s"
    )
    manager = cotyledon.ServiceManager()
    manager.add(Sampler, workers=args.workers, args=(args,))
    say(f"master pid={os.getpid()}")
    manager.run()


if __name__ == "__main__":
    main()
