"""Throughput of the durable test queue on a real (embedded) PostgreSQL.

Run: ``python bench/sensor_queue.py [--tests N] [--workers W] [--readings R]``

Three figures, each over N tests:

* submit: ``TestRepository.submit`` (one transaction: the test row and its readings as
  float64 ``bytea``) from W concurrent callers;
* queue only: W workers ``claim`` then ``complete`` (result and outbox event in one
  transaction) with a fixed outcome: the cost of SKIP LOCKED, the lease and the outbox;
* end to end: the same with the real analysis (``runner.run_job`` in a thread pool of W).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sensor_backend.core.db import Database
from sensor_backend.launcher import embedded_postgres as epg
from sensor_backend.sensor.jobs import JobQueue, Outcome
from sensor_backend.sensor.reading_blocks import pack
from sensor_backend.sensor.repository import NewTest, TestRepository
from sensor_backend.sensor.runner import run_job
from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import get_spec

if TYPE_CHECKING:
    from collections.abc import Awaitable

FIXED = Outcome("pass", [], {"verdict": "pass"}, {"count": 1}, 0.1)


def new_test(readings: int, values: bytes, timestamps: bytes, reference: bytes) -> NewTest:
    spec = get_spec("temperature")
    return NewTest(
        sensor_type=spec.name,
        device_id="bench",
        source="readings",
        spec=spec.model_dump(mode="json"),
        params={"readings": {"timestamps": True, "reference": True}, "spec_overrides": {}},
        n_readings=readings,
        submitted_by="bench",
        idempotency_key=None,
        fingerprint=b"bench",
        traceparent=None,
        max_attempts=3,
        values=values,
        timestamps=timestamps,
        reference=reference,
    )


async def timed(label: str, count: int, work: Awaitable[object]) -> None:
    started = time.perf_counter()
    await work
    elapsed = time.perf_counter() - started
    print(f"{label:<34} {count / elapsed:9.1f} tests/s  ({elapsed:.2f} s for {count})")


async def drain(
    queue: JobQueue, workers: int, executor: ThreadPoolExecutor, *, analyse: bool
) -> None:
    loop = asyncio.get_running_loop()

    async def worker(name: str) -> None:
        while (job := await queue.claim(name)) is not None:
            outcome = FIXED
            if analyse:
                readings = await queue.readings(job)
                work = partial(run_job, job, readings, max_indices=1000)
                outcome = await loop.run_in_executor(executor, work)
            assert await queue.complete(job, outcome)

    await asyncio.gather(*(worker(f"w{i}") for i in range(workers)))


async def bench(dsn: str, tests: int, workers: int, readings: int) -> None:
    db = Database(
        dsn=dsn,
        schema="sensor",
        migrations=files("sensor_backend.sensor").joinpath("migrations"),
        max_size=workers + 2,
    )
    await db.start()
    await db.wait_until_up(60)
    repo = TestRepository(db)
    queue = JobQueue(db, lease_s=30, retry_base_s=1)
    sim = simulate(get_spec("temperature"), n=readings, seed=1)
    arrays = [pack(np.asarray(a)) or b"" for a in (sim.values, sim.timestamps, sim.reference)]
    sem = asyncio.Semaphore(workers)

    async def submit_one() -> None:
        async with sem:
            await repo.submit(new_test(readings, *arrays))

    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        for label, analyse in (("queue only (claim + complete)", False), ("end to end", True)):
            submits = asyncio.gather(*(submit_one() for _ in range(tests)))
            await timed(f"submit ({readings} readings)", tests, submits)
            await timed(label, tests, drain(queue, workers, executor, analyse=analyse))
    finally:
        executor.shutdown()
        await db.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--readings", type=int, default=600)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sensor-queue-bench-"))
    layout = epg.PostgresLayout(data_dir=root / "pg", port=epg.find_free_port())
    process = epg.start(layout, root / "postgres.log")
    try:
        epg.wait_ready_blocking(layout.dsn, 30.0, process=process, log_file=root / "postgres.log")
        print(f"{args.tests} tests, {args.workers} workers, {args.readings} readings each")
        asyncio.run(bench(layout.dsn, args.tests, args.workers, args.readings))
    finally:
        epg.stop(process)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
