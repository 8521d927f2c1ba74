"""Append throughput of the durable spool: single items against 100-item batches.

Run: ``python bench/spool_throughput.py [--seconds S] [--payload BYTES] [--dir DIR]``

Every ``append`` is one SQLite transaction in WAL mode with ``synchronous=FULL``, so one
fsync of the write-ahead log per call, whatever the batch size: appends per second are
bounded by the disk's fsync latency, and items per second grow almost linearly with the
batch. For context it also measures draining (``peek(100)`` + ``ack`` of those, one fsync
per round). Point ``--dir`` at the disk the services will use: a tmpfs fsync is free and
says nothing about durability cost.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sensor_backend.core.spool import Spool


def _spool(directory: Path, name: str) -> Spool:
    return Spool(directory, name=name, max_items=100_000_000, max_bytes=2**40)


async def bench_append(directory: Path, batch: int, seconds: float, payload: bytes) -> None:
    """Append ``batch`` items per call for about ``seconds``; print the rates."""
    latencies: list[float] = []
    async with _spool(directory, f"append-{batch}") as spool:
        n = 0
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            items = [(f"k{n + i}", payload) for i in range(batch)]
            started = time.perf_counter()
            await spool.append(items)
            latencies.append(time.perf_counter() - started)
            n += batch
        elapsed = sum(latencies)
    calls = len(latencies)
    p50 = statistics.median(latencies) * 1e3
    p99 = statistics.quantiles(latencies, n=100)[98] * 1e3 if calls >= 100 else float("nan")
    print(
        f"append batch={batch:>3}: {calls / elapsed:8.0f} appends/s  "
        f"{n / elapsed:9.0f} items/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({calls} calls)"
    )


async def bench_drain(directory: Path, items: int, payload: bytes) -> None:
    """Fill a spool, then drain it with peek(100) + ack rounds; print the rate."""
    async with _spool(directory, "drain") as spool:
        for first in range(0, items, 1000):
            await spool.append([(f"k{i}", payload) for i in range(first, first + 1000)])
        started = time.perf_counter()
        rounds = 0
        while batch := await spool.peek(100):
            await spool.ack([item.seq for item in batch])
            rounds += 1
        elapsed = time.perf_counter() - started
    print(
        f"drain peek(100)+ack: {rounds / elapsed:8.0f} rounds/s  "
        f"{items / elapsed:9.0f} items/s  ({items} items)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per append measurement")
    parser.add_argument("--payload", type=int, default=512, help="bytes per item")
    parser.add_argument("--drain-items", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="default: a fresh temp dir")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="spool-bench-", dir=args.dir))
    payload = b"x" * args.payload
    print(
        f"python {platform.python_version()} sqlite {sqlite3.sqlite_version} "
        f"{platform.system()} {platform.machine()}; dir {directory}; payload {args.payload} B"
    )
    try:
        for batch in (1, 100):
            await bench_append(directory, batch, args.seconds, payload)
        await bench_drain(directory, args.drain_items, payload)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
