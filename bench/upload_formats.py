"""A million readings uploaded and judged end to end through the gateway, per upload format.

    python bench/upload_formats.py [--readings 1000000] [--repeat 3]

Starts PostgreSQL, auth, the sensor service and the gateway (the test harness: real
processes, loopback), builds the same readings (timestamps, values, reference) once in
each format, then per format and repeat: POST through the gateway, poll the test until it
is judged, and time it (bodies are built beforehand: a rig has its file already). Prints,
per format, the body size, the median time until judged and its ratio to JSON, and where
that time went, from the service's own timestamps (same clock, loopback):

* receive+parse: request start until the insert transaction began (``created_at``):
  the body through the gateway, the input guard, parsing and validation;
* insert: from there to the 202 (the readings' INSERT and COMMIT);
* queue: the 202 until a worker claimed the test (``started_at``);
* run: claimed until finished (``finished_at``, when the result's transaction began):
  the readings (handed over in-process when the accepting replica claims the test, else
  read back), the analysis, shaping the result; ``analysis`` is the part the service
  timed as such (``processing_ms``: the analysis and the result document). An idle
  worker pool begins the analysis while the readings are being inserted, so it mostly
  lies inside ``insert`` and ``run`` is near zero;
* record+poll: from there until this client saw the verdict: writing the result, the
  flags and the event (one COMMIT), and the polling (every 10 ms, a GET each).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
from harness import Harness

from sensor_backend.sensor.simulate import simulate
from sensor_backend.sensor.specs import get_spec

BOUNDARY = "bench-upload-boundary"


def bodies(n: int) -> dict[str, tuple[bytes, str, dict[str, str]]]:
    """{format: (body, content type, query)} for the same readings."""
    sim = simulate(get_spec("temperature"), n=n, seed=9)
    t = np.round(1764170000.0 + sim.timestamps, 4)
    v, r = np.round(sim.values, 3), np.round(sim.reference, 4)
    query = {"device_id": "bench-rig"}
    doc = {
        "device_id": "bench-rig",
        "readings": {"values": v.tolist(), "timestamps": t.tolist(), "reference": r.tolist()},
    }
    epoch = "".join(map("{!r},{!r},{!r}\n".format, t.tolist(), v.tolist(), r.tolist()))
    micros = np.round(t * 1e6).astype(np.int64).astype("datetime64[us]")
    stamps = [f"{s}Z" for s in np.datetime_as_string(micros)]
    iso = "".join(map("{},{!r},{!r}\n".format, stamps, v.tolist(), r.tolist()))
    parts = []
    for name, array in (("timestamp", t), ("value", v), ("reference", r)):
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        parts += [
            f"--{BOUNDARY}\r\n".encode(),
            f'Content-Disposition: form-data; name="{name}"; filename="{name}.npy"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            out.getvalue(),
            b"\r\n",
        ]
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    header = "timestamp,value,reference\n"
    return {
        "json": (json.dumps(doc).encode(), "application/json", {}),
        "csv (epoch s)": ((header + epoch).encode(), "text/csv", query),
        "csv (ISO 8601)": ((header + iso).encode(), "text/csv", query),
        "npy (multipart)": (
            b"".join(parts),
            f"multipart/form-data; boundary={BOUNDARY}",
            query,
        ),
    }


STAGES = ("receive+parse", "insert", "queue", "run", "analysis", "record+poll", "judged")


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def one_run(
    client: httpx.Client, gateway: str, body: bytes, content_type: str, query: dict[str, str]
) -> tuple[float, ...]:
    """Seconds per stage (`STAGES`) of one upload."""
    wall = time.time()
    started = time.perf_counter()
    response = client.post(
        f"{gateway}/test/sensor/temperature",
        content=body,
        params=query,
        headers={"Content-Type": content_type},
    )
    accepted = wall + time.perf_counter() - started
    assert response.status_code == 202, response.text[:500]
    test_id = response.json()["test_id"]
    while True:
        doc = client.get(f"{gateway}/test/{test_id}").json()
        if doc["status"] in {"completed", "failed"}:
            judged = time.perf_counter() - started
            break
        time.sleep(0.01)
    assert doc["status"] == "completed", doc
    assert doc["result"]["stats"]["count"] > 0
    created, begun, done = (_at(doc[k]) for k in ("created_at", "started_at", "finished_at"))
    return (
        created - wall,
        accepted - created,
        begun - accepted,
        done - begun,
        (doc["processing_ms"] or 0) / 1000,
        wall + judged - done,
        judged,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    prepared = bodies(args.readings)
    harness = Harness({"postgres", "auth", "sensor", "gateway"}, offset_start=43000).start()
    try:
        gateway = harness.url("gateway")
        with httpx.Client(headers=harness.headers(), timeout=300) as client:
            # Warm up (connections, first queries, numpy's first calls) on a small test.
            small = bodies(1000)
            for body, content_type, query in small.values():
                one_run(client, gateway, body, content_type, query)
            runs: dict[str, list[tuple[float, ...]]] = {k: [] for k in prepared}
            for _ in range(args.repeat):
                for name, (body, content_type, query) in prepared.items():
                    runs[name].append(one_run(client, gateway, body, content_type, query))
        medians = {
            k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in runs.items()
        }
        base = medians["json"][-1]
        print(
            f"{args.readings:,} readings (timestamps, values, reference), median of "
            f"{args.repeat}, through the gateway, seconds:"
        )
        print(f"{'format':<16} {'body MB':>7} " + " ".join(f"{h:>13}" for h in STAGES) + " vs JSON")
        for name, stages in medians.items():
            size = len(prepared[name][0])
            cells = " ".join(f"{x:13.2f}" for x in stages)
            print(f"{name:<16} {size / 1e6:7.1f} {cells} {base / stages[-1]:6.2f}x")
    finally:
        harness.close()


if __name__ == "__main__":
    main()
