"""A fixed log-scale histogram of durations, for percentiles in bounded memory (PURE).

Job: count durations (microseconds) into logarithmic bins and answer quantiles with a
bounded *relative* error, whatever the number of samples: memory is one fixed-size list
per histogram (:data:`BINS` counters), never the samples themselves.

The bins follow the DDSketch mapping: with ``gamma = (1 + a) / (1 - a)``, bin ``i`` holds
the values in ``(gamma**(i-1), gamma**i]`` and reports ``2 * gamma**i / (gamma + 1)``, which
is within ``a`` (relative) of every value in the bin. Here ``a`` is :data:`RELATIVE_ERROR`
(1 %). Quantiles use the nearest-rank definition: ``quantile(q)`` estimates the
``ceil(q * n)``-th smallest sample. Values at or below 0 land in a zero bin (reported as 0);
values below 1 µs count as 1 µs and values above :data:`MAX_US` as :data:`MAX_US`.

Must not: do I/O or read clocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["BINS", "MAX_US", "RELATIVE_ERROR", "LogHistogram", "bin_index"]

RELATIVE_ERROR = 0.01
GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_INV_LOG_GAMMA = 1 / math.log(GAMMA)
MAX_US = 1e11  # about 28 hours: longer requests are clamped
# Slot 0 is the zero bin; slot i + 1 is bin i, for i = 0 (1 µs) .. ceil(log_gamma(MAX_US)).
BINS = math.ceil(math.log(MAX_US) * _INV_LOG_GAMMA) + 2


def bin_index(us: float) -> int:
    """The list slot for a duration in microseconds (see the module docstring)."""
    if us <= 0:
        return 0
    if us <= 1:
        return 1
    if us >= MAX_US:
        return BINS - 1
    return math.ceil(math.log(us) * _INV_LOG_GAMMA) + 1


def bin_value(slot: int) -> float:
    """The value a slot reports: within :data:`RELATIVE_ERROR` of every value it holds."""
    if slot == 0:
        return 0.0
    return 2 * GAMMA ** (slot - 1) / (GAMMA + 1)


def quantiles_of(counts: Sequence[int], qs: Sequence[float]) -> list[float]:
    """Nearest-rank quantiles (``qs`` ascending, in ``(0, 1]``) of a list of bin counts."""
    total = sum(counts)
    if not total:
        return [0.0 for _ in qs]
    ranks = [max(1, math.ceil(q * total - 1e-9)) for q in qs]
    result: list[float] = []
    seen = 0
    slot = -1
    for rank in ranks:
        while seen < rank:
            slot += 1
            seen += counts[slot]
        result.append(bin_value(slot))
    return result


class LogHistogram:
    """Counts of durations (µs) in :data:`BINS` fixed log-scale bins."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0] * BINS

    def add(self, us: float) -> None:
        self.counts[bin_index(us)] += 1

    def merge(self, other: LogHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def quantiles(self, qs: Sequence[float]) -> list[float]:
        """Nearest-rank quantiles in µs, each within :data:`RELATIVE_ERROR` of the exact one."""
        return quantiles_of(self.counts, qs)
