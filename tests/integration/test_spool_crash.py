"""Accepted means durable: a spool survives SIGKILL with no loss and no torn batch.

A child Python process appends batches to a real spool file and prints ``appended k``
after each awaited append returned; the test SIGKILLs it mid-stream at a random point,
several times, each run resuming where the file says it stopped. After every kill the
reopened spool must hold every item the child reported (in order, payloads intact), at
most the one batch committed but not yet reported, and never part of a batch.
(A power cut cannot be simulated here; that part rests on SQLite's synchronous=FULL.)
"""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from typing import TYPE_CHECKING

import pytest

from sensor_backend.core.spool import Spool, SpoolInUseError

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.integration

NAME = "crash"
TOTAL = 4000
BATCH = 7  # odd size: a torn batch would show as a count that is not a multiple of 7

CHILD = r"""
import asyncio
import sys
from pathlib import Path

from sensor_backend.core.spool import Spool


def payload(i: int) -> bytes:
    return (f"{i}:" * (1 + i % 200)).encode()


async def main(directory: str, name: str, total: int, batch: int) -> None:
    spool = Spool(Path(directory), name=name)
    await spool.open()
    start = spool.depth
    print(f"start {start}", flush=True)
    for first in range(start, total, batch):
        last = min(first + batch, total)
        await spool.append([(f"e{i:06d}", payload(i)) for i in range(first, last)])
        print(f"appended {last}", flush=True)
    print("holding", flush=True)
    await asyncio.sleep(3600)


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


def _payload(i: int) -> bytes:
    return (f"{i}:" * (1 + i % 200)).encode()


async def _start_child(directory: Path, total: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(directory),
        NAME,
        str(total),
        str(BATCH),
        stdout=asyncio.subprocess.PIPE,
    )


async def _read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line, "child exited early"
    return line.decode().strip()


async def _kill(proc: asyncio.subprocess.Process) -> list[str]:
    """SIGKILL the child, reap it and return what it printed but was not read yet."""
    proc.send_signal(signal.SIGKILL)
    assert proc.stdout is not None
    rest = await asyncio.wait_for(proc.stdout.read(), 30)
    assert await asyncio.wait_for(proc.wait(), 30) == -signal.SIGKILL
    return rest.decode().split()


def _reported(lines: list[str], current: int) -> int:
    """The highest ``appended k`` in the child's output (``current`` if none)."""
    counts = [int(lines[i + 1]) for i, word in enumerate(lines[:-1]) if word == "appended"]
    return max([current, *counts])


async def _check_spool(directory: Path, reported: int) -> int:
    """Reopen the spool, check prefix/order/payloads/no torn batch; return its depth."""
    async with Spool(directory, name=NAME) as spool:
        items = await spool.peek(TOTAL + 1)
        depth = spool.depth
        assert depth == len(items)
        assert spool.bytes_used == sum(len(item.payload) for item in items)
    assert [item.key for item in items] == [f"e{i:06d}" for i in range(depth)]
    assert [item.seq for item in items] == sorted(item.seq for item in items)
    assert all(item.payload == _payload(i) for i, item in enumerate(items))
    # No loss: everything reported as appended is there. At most the batch that was
    # committed but not yet reported is extra, and batches are all-or-nothing.
    assert reported <= depth <= reported + BATCH
    assert depth % BATCH == 0 or depth == TOTAL
    return depth


async def test_sigkill_mid_stream_loses_nothing_and_tears_no_batch(tmp_path: Path) -> None:
    """Five SIGKILLs at random points: every returned append survives, in order, whole."""
    rng = random.Random()  # noqa: S311 (kill points only)
    directory = tmp_path / "spool"
    depth = 0
    kills = 0
    while kills < 5:
        proc = await _start_child(directory, TOTAL)
        try:
            assert await _read_line(proc) == f"start {depth}"
            kill_after = depth + rng.randint(1, (TOTAL - depth) // 3)
            reported = depth
            while reported < kill_after:
                reported = _reported((await _read_line(proc)).split(), reported)
            await asyncio.sleep(rng.uniform(0, 0.01))  # land anywhere in the next append
        finally:
            rest = await _kill(proc)
        kills += 1
        reported = _reported(rest, reported)
        depth = await _check_spool(directory, reported)
    assert depth < TOTAL, "the child finished before the last kill; raise TOTAL"


async def test_another_process_cannot_open_a_spool_in_use(tmp_path: Path) -> None:
    """While a process holds the spool, another gets SpoolInUseError; SIGKILL frees it."""
    directory = tmp_path / "spool"
    proc = await _start_child(directory, BATCH)
    try:
        assert await _read_line(proc) == "start 0"
        assert await _read_line(proc) == f"appended {BATCH}"
        assert await _read_line(proc) == "holding"
        with pytest.raises(SpoolInUseError):
            await Spool(directory, name=NAME, lock_timeout_s=0.1).open()
    finally:
        await _kill(proc)
    assert await _check_spool(directory, BATCH) == BATCH
