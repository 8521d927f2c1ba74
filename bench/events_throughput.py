"""Events per second through ``POST /send-event`` beside a plain aiokafka producer, one run.

    python bench/events_throughput.py [--events 3000] [--concurrency 32]

Starts PostgreSQL, the broker, auth and the event service through the launcher's supervisor,
then sends the same kind of CloudEvents (acks=all in both cases) to the same broker:
  service single   one event per HTTP request, ``concurrency`` requests in flight
  aiokafka single  one send_and_wait per event, ``concurrency`` sends in flight
  service batch    100 events per HTTP request
  aiokafka batch   100 sends, then wait for all of them
and prints events/s and the service/plain ratios. Loopback only, bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import Harness, free_offset

BATCH = 100


def event() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "source": "/bench",
        "type": "bench.event",
        "subject": f"device-{uuid.uuid4().hex[:4]}",
        "time": "2026-11-25T00:00:00Z",
        "data": {"sensor_type": "humidity", "verdict": "pass", "value": 42.0},
    }


async def pool(n: int, concurrency: int, one: object) -> float:
    """Run ``one(i)`` for i in range(n) with ``concurrency`` in flight; elapsed seconds."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())  # type: ignore[operator]

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def measure(harness: Harness, n: int, concurrency: int) -> dict[str, float]:
    url = f"{harness.url('events')}/send-event"
    headers = harness.headers()
    results: dict[str, float] = {}
    # aiohttp, not httpx: httpx's pool is O(N^2) under concurrency (httpx#3215) and would
    # measure the client instead of the service.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as client:

        async def single(_: int) -> None:
            async with client.post(url, json=event()) as response:
                assert response.status == 201, await response.text()

        async def batch(_: int) -> None:
            async with client.post(url, json=[event() for _ in range(BATCH)]) as response:
                assert response.status == 201, await response.text()

        await pool(200, concurrency, single)  # warm up
        results["service single"] = n / await pool(n, concurrency, single)
        results["service batch"] = n / await pool(n // BATCH, min(concurrency, 8), batch)

    producer = AIOKafkaProducer(bootstrap_servers=harness.url("broker"), acks="all")
    await producer.start()
    try:

        async def plain_single(_: int) -> None:
            ev = event()
            await producer.send_and_wait(
                "sensor-events", json.dumps(ev).encode(), key=str(ev["subject"]).encode()
            )

        async def plain_batch(_: int) -> None:
            futures = []
            for _ in range(BATCH):
                ev = event()
                futures.append(
                    await producer.send(
                        "sensor-events", json.dumps(ev).encode(), key=str(ev["subject"]).encode()
                    )
                )
            await asyncio.gather(*futures)

        await pool(200, concurrency, plain_single)
        results["aiokafka single"] = n / await pool(n, concurrency, plain_single)
        results["aiokafka batch"] = n / await pool(n // BATCH, min(concurrency, 8), plain_batch)
    finally:
        await producer.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    harness = Harness(
        {"postgres", "broker", "auth", "events"}, offset_start=free_offset(46000)
    ).start()
    try:
        results = asyncio.run(measure(harness, args.events, args.concurrency))
    finally:
        harness.close()
    print(f"{args.events} CloudEvents, acks=all, {args.concurrency} in flight, one run")
    for name, rate in results.items():
        print(f"  {name:16} {rate:9.0f} events/s")
    single = results["service single"] / results["aiokafka single"]
    batch = results["service batch"] / results["aiokafka batch"]
    print(f"  service/aiokafka: single {single:.2f}, batch {batch:.2f}")


if __name__ == "__main__":
    main()
