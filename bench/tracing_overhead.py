"""CPU per request of the core middleware with tracing off and on, in process.

    python bench/tracing_overhead.py [--requests 20000]

A FastAPI app built by ``core.app.create_app`` (the middleware every service runs) answers
a GET called straight through ASGI, no sockets, so nothing else on the machine blurs the
difference: off; on with nothing sampled (``parentbased_traceidratio`` 0, the span exists
but is not recorded); 10 % sampled; all sampled. Spans go through the real batch processor
and OTLP/HTTP exporter to a throwaway receiver in the process. One process per mode
(tracing is configured once per process, as in a service), logging as a service does.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

MODES = {"off": None, "on, none sampled": 0.0, "on, 10 % sampled": 0.1, "on, all sampled": 1.0}


class Sink(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def measure(ratio: float | None, requests: int) -> float:
    """Microseconds of CPU per request in this process."""
    if ratio is not None:
        sink = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.server_address[1]}"
        os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
        os.environ["OTEL_TRACES_SAMPLER_ARG"] = str(ratio)
    from pydantic_settings import SettingsConfigDict  # noqa: PLC0415 - after the env is set

    from sensor_backend.core import tracing  # noqa: PLC0415
    from sensor_backend.core.app import ServiceContext, create_app  # noqa: PLC0415
    from sensor_backend.core.log import configure_logging  # noqa: PLC0415
    from sensor_backend.core.settings import ServiceSettings  # noqa: PLC0415

    class BenchSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="TRACEBENCH_", frozen=True, extra="ignore")
        service_name: ClassVar[str] = "bench"
        default_port: ClassVar[int] = 8097

    assert tracing.configure_tracing("bench") is (ratio is not None)
    # As a service logs: one JSON line per request, with its ids (stderr: discarded).
    configure_logging("bench", json=True)
    app = create_app(ServiceContext(BenchSettings()), title="bench")

    @app.get("/item")
    async def item() -> dict[str, int]:
        return {"n": 1}

    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/item",
        "raw_path": b"/item",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 1),
        "server": ("bench", 80),
        "root_path": "",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_: object) -> None:
        pass

    async def run(n: int) -> None:
        for _ in range(n):
            await app(dict(scope), receive, send)

    asyncio.run(run(2000))  # warm up
    started = time.process_time()
    asyncio.run(run(requests))
    used = time.process_time() - started
    if ratio is not None:
        tracing.shutdown_tracing()
    return used / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(measure(MODES[args.mode], args.requests))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    results = {}
    for mode in MODES:
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--requests", str(args.requests)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            check=True,
            env=env,
        ).stdout
        results[mode] = float(out.split()[-1])
    off = results["off"]
    print(f"core middleware, GET through ASGI in process, {args.requests} requests per mode")
    for mode, us in results.items():
        print(f"  tracing {mode:17} {us:6.1f} us CPU/request   +{us - off:5.1f} us")


if __name__ == "__main__":
    main()
