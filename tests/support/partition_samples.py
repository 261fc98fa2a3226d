"""Read the ownership samples the workers of ``partition_host.py`` write, and judge them.

Each worker appends ``{"m", "pid", "t0", "t1", "bits"}`` lines (wall-clock times bracketing
one ``owned()`` call; ``bits``: hex bitmap of owned key indexes) to ``<dir>/<pid>.jsonl``.

Double claims are judged on *intervals*, not on instants no two processes can sample at
once: if two consecutive samples of a worker both hold key k, the worker held k over
the whole gap between the end of the first and the start of the second (a worker cannot
drop a key and claim it back within one sampling period: claiming again takes a lease;
gaps of a second or more, from a starved sampler, are not trusted).
Two workers whose such intervals overlap in time on a common key both claimed it at once.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sample:
    member: str
    pid: int
    t0: float
    t1: float
    bits: int


@dataclass
class SampleLog:
    directory: str
    nkeys: int
    samples: dict[int, list[Sample]] = field(default_factory=dict)
    _offsets: dict[str, int] = field(default_factory=dict)

    @property
    def all_bits(self) -> int:
        return (1 << self.nkeys) - 1

    def poll(self) -> None:
        """Read the complete lines written since the last poll."""
        for name in sorted(os.listdir(self.directory)):
            path = os.path.join(self.directory, name)
            with open(path, "rb") as f:
                f.seek(self._offsets.get(name, 0))
                data = f.read()
            end = data.rfind(b"\n") + 1
            self._offsets[name] = self._offsets.get(name, 0) + end
            for raw in data[:end].splitlines():
                d = json.loads(raw)
                sample = Sample(d["m"], d["pid"], d["t0"], d["t1"], int(d["bits"], 16))
                self.samples.setdefault(sample.pid, []).append(sample)

    def latest_since(self, pids: Iterable[int], since: float) -> list[Sample] | None:
        """The latest sample of each pid, or None if one has none started after ``since``."""
        out = []
        for pid in pids:
            history = self.samples.get(pid)
            if not history or history[-1].t0 <= since:
                return None
            out.append(history[-1])
        return out

    def exactly_once(self, pids: Iterable[int], since: float) -> bool:
        """True when the latest samples (after ``since``) of ``pids`` own every key once."""
        latest = self.latest_since(pids, since)
        if latest is None:
            return False
        seen = 0
        for sample in latest:
            if seen & sample.bits:
                return False
            seen |= sample.bits
        return seen == self.all_bits

    def none_owned(self, pids: Iterable[int], since: float) -> bool:
        latest = self.latest_since(pids, since)
        return latest is not None and all(s.bits == 0 for s in latest)

    def covered_at(self, pids: Iterable[int], since: float) -> float:
        """When every key was first seen owned by one of ``pids`` after ``since`` (the
        latest of those first times): how long the keys took to be owned again."""
        first: dict[int, float] = {}
        for pid in pids:
            for sample in self.samples.get(pid, []):
                if sample.t0 <= since:
                    continue
                bits = sample.bits
                while bits:
                    low = bits & -bits
                    index = low.bit_length() - 1
                    if index not in first or sample.t1 < first[index]:
                        first[index] = sample.t1
                    bits ^= low
        assert len(first) == self.nkeys, f"{self.nkeys - len(first)} keys never owned again"
        return max(first.values())

    def double_claims(self, max_gap: float = 1.0) -> list[str]:
        """Every pair of workers that held a common key over overlapping intervals.

        Two samples further apart than ``max_gap`` (a starved sampler) are not taken as
        one interval: keep it below the lease, the shortest a worker can drop a key and
        claim it back in.
        """
        intervals = []  # (start, end, pid, bits held throughout)
        for pid, history in self.samples.items():
            for a, b in itertools.pairwise(history):
                common = a.bits & b.bits
                if common and b.t0 - a.t1 < max_gap:
                    intervals.append((a.t1, b.t0, pid, common))
        intervals.sort()
        problems: list[str] = []
        active: list[tuple[float, float, int, int]] = []
        for interval in intervals:
            start, end, pid, bits = interval
            active = [i for i in active if i[1] > start]
            for other in active:
                if other[2] != pid and other[3] & bits:
                    count = bin(other[3] & bits).count("1")
                    problems.append(
                        f"pids {other[2]} and {pid} both held {count} keys over "
                        f"[{max(start, other[0]):.3f}, {min(end, other[1]):.3f}]"
                    )
            active.append(interval)
        return problems
