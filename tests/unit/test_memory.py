"""Unit tests for cotyledon.wsgi._memory: real /proc of real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cotyledon.wsgi._memory import MemoryKind, memory_bytes, rss_bytes, uss_bytes

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")

MIB = 1024 * 1024


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_own_memory_is_plausible() -> None:
    rss = rss_bytes(os.getpid())
    uss = uss_bytes(os.getpid())
    assert rss is not None
    assert uss is not None
    assert 1 * MIB < rss < 64 * 1024 * MIB
    assert 0 < uss <= rss


def test_memory_of_a_gone_process_is_none() -> None:
    pid = _dead_pid()
    assert rss_bytes(pid) is None
    assert uss_bytes(pid) is None
    assert memory_bytes(pid, MemoryKind.USS) is None
    assert memory_bytes(pid, MemoryKind.RSS) is None


@pytest.mark.timeout(60)
def test_measures_one_process_not_its_group() -> None:
    """A child that allocates 64 MiB grows by that much; this process does not."""
    code = (
        "import sys\n"
        "print('small', flush=True); sys.stdin.readline()\n"
        "blob = bytearray(64 * 1024 * 1024)\n"
        "for i in range(0, len(blob), 4096): blob[i] = 1\n"
        "print('big', flush=True); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "small"
        before = {kind: memory_bytes(proc.pid, kind) for kind in MemoryKind}
        mine_before = uss_bytes(os.getpid())
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "big"
        after = {kind: memory_bytes(proc.pid, kind) for kind in MemoryKind}
        mine_after = uss_bytes(os.getpid())
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    for kind in MemoryKind:
        grown = after[kind] - before[kind]  # type: ignore[operator]
        assert 60 * MIB <= grown <= 80 * MIB, (kind, grown)
    assert abs(mine_after - mine_before) < 32 * MIB  # type: ignore[operator]


def test_uss_excludes_pages_shared_with_the_parent() -> None:
    """After fork, the child's USS is far below its RSS (pages shared copy-on-write)."""
    ballast = bytearray(32 * MIB)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        rss = rss_bytes(pid)
        uss = uss_bytes(pid)
    finally:
        os.write(write_end, b"x")
        os.close(write_end)
        os.waitpid(pid, 0)
    assert rss is not None
    assert uss is not None
    assert rss >= 32 * MIB
    assert uss < rss - 24 * MIB
    del ballast
